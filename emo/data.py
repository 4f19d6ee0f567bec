"""Datasets: import what users download, keep one compact copy each, split it, augment batches.

The import path reads the Kaggle image-folder archive (``train/<label>/*.jpg`` and
``test/<label>/*.jpg``, zipped or unpacked) or the original challenge CSV
(``emotion,pixels,Usage``, bare or inside the challenge's zip/tar.gz) and writes
``data/fer2013.npz``: 35,887 uint8 faces of 48x48 (83 MB) that load in well under a second.

Where no FER-2013 has been imported, :func:`load_dataset` with ``source="auto"`` falls back to
:func:`make_synthetic`, small drawn faces whose brows, eyes and mouth differ by class, and says so.

Any other expression dataset in image folders (``train/<class>/*``, ``test/<class>/*``, optionally
``val/<class>/*``, or one folder of ``<class>/*``) imports under a name of its own into ``data/<name>.npz``
(:mod:`emo.imagefolder`); every command then takes it as ``--data NAME``.

    python -m emo.data import ~/Downloads/fer2013.zip
    python -m emo.data import ~/Downloads/raf-basic --name rafdb --detect
    python -m emo.data info
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import tarfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from emo.cli import HelpFormatter, run_command

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EMO_DATA_DIR", PROJECT_ROOT / "data"))
DATASET_FILE = "fer2013.npz"
FACE_SIZE = 48

#: The emotion ids of the original challenge CSV (0 Angry ... 6 Neutral), as published.
CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Class order of this project: the label folders of the image archive, i.e. alphabetical.
#: Checkpoints store their own copy; code that predicts reads ``model.classes``, never this.
FER2013_CLASSES = tuple(sorted(CSV_EMOTIONS))

#: ``usage`` codes stored per face.
TRAINING, PUBLIC_TEST, PRIVATE_TEST, TEST_UNSPLIT = 0, 1, 2, 3
_USAGE_NAMES = {"training": TRAINING, "publictest": PUBLIC_TEST, "privatetest": PRIVATE_TEST}
PROTOCOLS = ("standard", "reference")
#: The datasets every checkout has a name for; ``--data`` also takes the name of any imported dataset.
SOURCES = ("auto", "fer2013", "synthetic")
#: What ``--name`` may be: lower-case letters, digits, ``-``, ``_`` and ``.`` (it names ``data/<name>.npz``).
_DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

NO_DATA_MESSAGE = (
    "FER-2013 has not been imported: run `python -m emo.data import PATH` with the Kaggle archive "
    "(fer2013.zip), its unpacked folder or the challenge's fer2013.csv (see data/README.md)"
)


class DataImportError(ValueError):
    """The file given to the importer is not FER-2013 in a layout we read."""


@dataclass
class FaceDataset:
    """Faces (N x 48 x 48 uint8), integer labels into ``classes``, and per-face ``usage`` codes."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    classes: tuple[str, ...]
    name: str = "fer2013"
    skipped: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # files that could not be decoded (import only)
    no_face: list[str] = field(default_factory=list)  # images --detect found no face in (import only)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # same bytes in two splits (import only)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_synthetic(self) -> bool:
        return self.name == "synthetic"


@dataclass
class Split:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    """Train / validation / test faces of one dataset under one protocol."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    dataset: str
    protocol: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def __getitem__(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise KeyError(f"unknown split {name!r}: use 'train', 'val' or 'test'")
        return getattr(self, name)

    def eval_sample(self, n: int, seed: int = 0) -> "Splits":
        """These splits with at most ``n`` seeded validation and test faces each (all the training faces): a
        quick look, e.g. the notebooks under test."""
        rng = np.random.default_rng(seed)
        pick = lambda s: s if len(s) <= n else Split(*(a[np.sort(rng.choice(len(s), n, replace=False))]  # noqa: E731
                                                       for a in (s.images, s.labels)))
        return Splits(self.train, pick(self.val), pick(self.test), self.classes, self.dataset, self.protocol)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _usage_from_name(split_dir: str, filename: str) -> int:
    if split_dir == "train":
        return TRAINING
    prefix = filename.split("_", 1)[0].lower()
    return _USAGE_NAMES.get(prefix, TEST_UNSPLIT)


_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$", re.IGNORECASE)


#: How the archives we read begin: zip, gzip, bzip2, xz.
_MAGIC = {b"PK\x03\x04": "zip", b"\x1f\x8b": "tar.gz", b"BZh": "tar.bz2", b"\xfd7zXZ": "tar.xz"}
#: What reading a damaged or cut-short archive raises.
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError)


def _damaged(path: Path, kind: str) -> DataImportError:
    return DataImportError(f"{path} looks like a {kind} archive but is damaged or incomplete "
                           f"({path.stat().st_size:,} bytes read): download it again")


def _list_archive(path: Path) -> tuple[list[str], list[str]]:
    """The files and the folders in a zip, tar(.gz) or directory, as posix paths relative to it (one pass)."""
    if path.is_dir():
        found = sorted(path.rglob("*"))
        files = [p.relative_to(path).as_posix() for p in found if p.is_file()]
        if not files:
            raise DataImportError(f"{path} is an empty folder: give the folder that holds train/ and test/")
        return files, [p.relative_to(path).as_posix() for p in found if p.is_dir()]
    with open(path, "rb") as f:
        head = f.read(8)
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
            return ([i.filename for i in infos if not i.is_dir()],
                    [i.filename.rstrip("/") for i in infos if i.is_dir()])
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                members = tf.getmembers()
            return [m.name for m in members if m.isfile()], [m.name for m in members if m.isdir()]
        if kind:
            raise _damaged(path, kind)
        raise DataImportError(f"{path} is not a zip, tar archive, folder or CSV file")
    except _DAMAGED:
        raise _damaged(path, kind or "tar") from None


def _read_members(path: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each file ``names`` lists in the folder, zip or tar ``path``, each archive opened once
    (a tar is read in one pass, in its own order); a damaged archive raises :func:`_damaged`'s error."""
    try:
        if path.is_dir():
            yield from ((n, (path / n).read_bytes()) for n in names)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                yield from ((n, zf.read(n)) for n in names)
        else:
            wanted = set(names)
            with tarfile.open(path) as tf:
                for member in tf:
                    f = tf.extractfile(member) if member.name in wanted else None
                    if f is not None:
                        yield member.name, f.read()
    except _DAMAGED:
        if path.is_dir():  # an unpacked folder is not a damaged archive: its own error says what failed
            raise
        raise _damaged(path, "zip" if zipfile.is_zipfile(path) else "tar") from None


def _decode(buf: bytes) -> np.ndarray | None:
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        return None
    if img.shape != (FACE_SIZE, FACE_SIZE):
        img = cv2.resize(img, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return img


def _label(folder: str, numeric_labels: bool) -> str:
    """The class a label folder names: its own name, or with ``numeric_labels`` the challenge CSV's id (0-6)."""
    folder = folder.lower()
    if numeric_labels and folder.isdigit() and int(folder) < len(CSV_EMOTIONS):
        return CSV_EMOTIONS[int(folder)]
    return folder


def _import_folders(path: Path, members: list[str], numeric_labels: bool = False) -> FaceDataset:
    found = [(m, _MEMBER.search(m)) for m in members]
    images = [(m, mt) for m, mt in found if mt and Path(m).suffix.lower() in IMAGE_SUFFIXES]
    skipped = {"not an image file": sum(1 for m, mt in found if mt and Path(m).suffix.lower() not in IMAGE_SUFFIXES)}
    folders = {mt.group(2).lower() for _, mt in images}
    unknown = sorted({f for f in folders if _label(f, numeric_labels) not in FER2013_CLASSES})
    if unknown and all(f.isdigit() for f in unknown) and not numeric_labels:
        raise DataImportError(
            f"label folders {unknown} in {path} are numbers: if they are the challenge's emotion ids, add "
            f"--numeric-labels to read them as " + ", ".join(f"{k} {c}" for k, c in enumerate(CSV_EMOTIONS)))
    if unknown:
        raise DataImportError(
            f"unknown label folder(s) {unknown} in {path}: FER-2013 labels are {list(FER2013_CLASSES)}"
        )
    out_img, out_lab, out_use, unreadable = [], [], [], []
    found = dict(images)
    for m, buf in tqdm(_read_members(path, list(found)), total=len(found), desc="decoding faces", unit="img",
                       mininterval=1.0):
        img = _decode(buf)
        if img is None:
            unreadable.append(m)
            continue
        mt = found[m]
        out_img.append(img)
        out_lab.append(FER2013_CLASSES.index(_label(mt.group(2), numeric_labels)))
        out_use.append(_usage_from_name(mt.group(1).lower(), mt.group(3)))
    skipped["unreadable image"] = len(unreadable)
    if not out_img:
        raise DataImportError(f"no readable faces under train/<label>/ or test/<label>/ in {path}")
    return FaceDataset(
        np.stack(out_img), np.asarray(out_lab, np.int64), np.asarray(out_use, np.int8), FER2013_CLASSES,
        skipped={k: v for k, v in skipped.items() if v}, unreadable=unreadable,
    )


def _import_csv(text: io.TextIOBase, origin: str) -> FaceDataset:
    reader = csv.reader(text)
    header = [h.strip().lower() for h in next(reader, [])]
    if not {"emotion", "pixels"} <= set(header):
        raise DataImportError(f"{origin} has columns {header}: expected 'emotion,pixels,Usage' (fer2013.csv)")
    ie, ip = header.index("emotion"), header.index("pixels")
    iu = header.index("usage") if "usage" in header else None
    imgs, labs, uses, bad = [], [], [], 0
    n_pix = FACE_SIZE * FACE_SIZE
    for row in tqdm(reader, desc="reading CSV rows", unit="row", mininterval=1.0):
        try:
            emotion = int(row[ie])
            pixels = np.array(row[ip].split(), dtype=np.int64)
            usage = _USAGE_NAMES[row[iu].strip().lower()] if iu is not None else TRAINING
        except (ValueError, IndexError, KeyError):
            bad += 1
            continue
        if pixels.size != n_pix or not 0 <= emotion < len(CSV_EMOTIONS) or pixels.min() < 0 or pixels.max() > 255:
            bad += 1
            continue
        imgs.append(pixels.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE))
        labs.append(FER2013_CLASSES.index(CSV_EMOTIONS[emotion]))
        uses.append(usage)
    if not imgs:
        raise DataImportError(f"{origin} holds no valid rows (each needs an emotion 0-6 and 2304 pixel values)")
    return FaceDataset(
        np.stack(imgs), np.asarray(labs, np.int64), np.asarray(uses, np.int8), FER2013_CLASSES,
        skipped={"invalid CSV row": bad} if bad else {},
    )


def read_fer2013(path: str | os.PathLike, numeric_labels: bool = False) -> FaceDataset:
    """Read FER-2013 from the Kaggle archive / folder or the challenge CSV (bare or archived).

    ``numeric_labels``: label folders named 0-6 are the challenge's emotion ids (0 angry ... 6 neutral)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give the path of fer2013.zip, its folder or fer2013.csv")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            return _import_csv(f, str(path))
    members, _ = _list_archive(path)
    if any(_MEMBER.search(m) for m in members):
        return _import_folders(path, members, numeric_labels)
    csvs = [m for m in members if m.lower().endswith(".csv") and "fer2013" in m.lower()]
    if csvs:
        _, buf = next(_read_members(path, csvs[:1]))
        with io.TextIOWrapper(io.BytesIO(buf), newline="") as f:
            return _import_csv(f, f"{path}:{csvs[0]}")
    raise DataImportError(
        f"{path} holds neither train/<label>/ and test/<label>/ image folders nor fer2013.csv"
    )


def save_dataset(ds: FaceDataset, out: str | os.PathLike) -> Path:
    """Write ``ds`` atomically (a half-written file never replaces a good one)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, images=ds.images, labels=ds.labels, usage=ds.usage, classes=np.array(ds.classes), name=ds.name)
    os.replace(tmp, out)
    return out


def check_dataset_name(name: str) -> str:
    """``name`` if it can name an imported dataset, else a ValueError that says what may."""
    if not _DATASET_NAME.fullmatch(name) or name in ("auto", "synthetic"):
        raise ValueError(f"dataset name {name!r}: use lower-case letters, digits, '-', '_' and '.', starting with a "
                         "letter or digit, other than 'auto' and 'synthetic'")
    return name


def dataset_file(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where the imported dataset ``name`` lives: ``data/<name>.npz``."""
    return Path(data_dir or DATA_DIR) / f"{check_dataset_name(name)}.npz"


def imported_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The names of the datasets imported into ``data_dir``."""
    return sorted(f.stem for f in Path(data_dir or DATA_DIR).glob("*.npz")
                  if not f.name.endswith(".tmp.npz") and _DATASET_NAME.fullmatch(f.stem))


def import_dataset(path: str | os.PathLike, name: str = "fer2013", data_dir: str | os.PathLike | None = None,
                   numeric_labels: bool = False, **folders: Any) -> FaceDataset:
    """Import ``path`` into ``data_dir/<name>.npz``: FER-2013 (:func:`read_fer2013`, with ``numeric_labels``) for
    ``name="fer2013"``, else an image-folder dataset (:func:`emo.imagefolder.read_image_folders`, which takes the
    ``folders`` options). Any earlier import is replaced only once the new copy is complete (a failed or
    interrupted import leaves it as it was)."""
    out = dataset_file(name, data_dir)
    if name == "fer2013":
        ds = read_fer2013(path, numeric_labels)
    else:
        from emo.imagefolder import read_image_folders
        ds = read_image_folders(path, name, **folders)
    save_dataset(ds, out)
    return ds


def import_fer2013(path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                   numeric_labels: bool = False) -> FaceDataset:
    """Import FER-2013 from ``path`` into ``data_dir/fer2013.npz`` (:func:`import_dataset`)."""
    return import_dataset(path, "fer2013", data_dir, numeric_labels)


def load_imported(name: str, data_dir: str | os.PathLike | None = None) -> FaceDataset:
    """Load the dataset imported as ``name``, or raise FileNotFoundError with what to do."""
    f = dataset_file(name, data_dir)
    if not f.exists():
        if name == "fer2013":
            raise FileNotFoundError(NO_DATA_MESSAGE)
        have = imported_datasets(data_dir)
        raise FileNotFoundError(f"no dataset named {name!r} in {f.parent}: import it with `python -m emo.data import "
                                f"PATH --name {name}`" + (f" (imported: {', '.join(have)})" if have else ""))
    with np.load(f, allow_pickle=False) as z:
        return FaceDataset(z["images"], z["labels"], z["usage"], tuple(str(c) for c in z["classes"]), str(z["name"]))


def load_fer2013(data_dir: str | os.PathLike | None = None) -> FaceDataset:
    """Load the imported copy of FER-2013, or raise FileNotFoundError with what to do."""
    return load_imported("fer2013", data_dir)


def fer2013_available(data_dir: str | os.PathLike | None = None) -> bool:
    return (Path(data_dir or DATA_DIR) / DATASET_FILE).exists()


# --------------------------------------------------------------------------------------------
# Synthetic faces
# --------------------------------------------------------------------------------------------


def _draw_face(cls: str, rng: np.random.Generator, size: int = FACE_SIZE) -> np.ndarray:
    s = 8  # draw at 8x resolution with sub-pixel shifts, then downsample (anti-aliased)
    big = size * s
    img = np.full((big, big), rng.integers(30, 90), np.uint8)
    cx, cy = big / 2 + rng.normal(0, 1.5 * s), big / 2 + rng.normal(0, 1.5 * s)
    face = rng.uniform(0.36, 0.44) * big
    skin = int(rng.integers(140, 210))
    P = lambda x, y: (int(cx + x * face), int(cy + y * face))  # noqa: E731  (face coordinates)
    cv2.ellipse(img, P(0, 0), (int(face * 0.85), int(face)), 0, 0, 360, skin, -1)
    dark = int(skin * rng.uniform(0.15, 0.35))
    t = max(1, int(0.05 * face))
    wide = cls in ("surprise", "fear")
    brow_y = -0.42 if not wide else -0.55
    eye_h = 0.09 if wide else 0.055
    for side in (-1, 1):
        ex = side * 0.35
        cv2.ellipse(img, P(ex, -0.2), (int(0.13 * face), int(eye_h * face)), 0, 0, 360, dark, -1)
        tilt = {"angry": 0.12, "sad": -0.12, "fear": -0.08, "disgust": 0.08 if side < 0 else -0.02}.get(cls, 0.0)
        inner, outer = P(ex - side * 0.18, brow_y + tilt), P(ex + side * 0.18, brow_y - tilt * 0.3)
        cv2.line(img, inner, outer, dark, t)
    mouth_y = 0.45
    if cls == "happy":
        cv2.ellipse(img, P(0, mouth_y - 0.12), (int(0.38 * face), int(0.2 * face)), 0, 20, 160, dark, t)
    elif cls == "sad":
        cv2.ellipse(img, P(0, mouth_y + 0.12), (int(0.3 * face), int(0.14 * face)), 0, 200, 340, dark, t)
    elif cls == "surprise":
        cv2.ellipse(img, P(0, mouth_y), (int(0.14 * face), int(0.2 * face)), 0, 0, 360, dark, -1)
    elif cls == "fear":
        cv2.ellipse(img, P(0, mouth_y), (int(0.3 * face), int(0.09 * face)), 0, 0, 360, dark, -1)
    elif cls == "angry":
        cv2.line(img, P(-0.25, mouth_y), P(0.25, mouth_y), dark, 2 * t)
    elif cls == "disgust":
        pts = np.array([P(-0.3, mouth_y), P(-0.1, mouth_y - 0.08), P(0.1, mouth_y + 0.02), P(0.3, mouth_y - 0.1)])
        cv2.polylines(img, [pts], False, dark, t)
        cv2.line(img, P(-0.08, 0.12), P(0.08, 0.08), dark, t)
    else:  # neutral
        cv2.line(img, P(-0.22, mouth_y), P(0.22, mouth_y), dark, t)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic(per_class: int = 60, seed: int = 0, classes: tuple[str, ...] = FER2013_CLASSES) -> FaceDataset:
    """Generate drawn expression faces, ``per_class`` per class, split 70/15/15 like FER-2013's usage."""
    rng = np.random.default_rng(seed)
    imgs, labs, uses = [], [], []
    for k, c in enumerate(classes):
        for i in range(per_class):
            imgs.append(_draw_face(c, rng))
            labs.append(k)
            frac = i / per_class
            uses.append(TRAINING if frac < 0.7 else PUBLIC_TEST if frac < 0.85 else PRIVATE_TEST)
    return FaceDataset(np.stack(imgs), np.asarray(labs, np.int64), np.asarray(uses, np.int8), tuple(classes), "synthetic")


# --------------------------------------------------------------------------------------------
# Loading and splitting
# --------------------------------------------------------------------------------------------


def load_dataset(source: str = "auto", data_dir: str | os.PathLike | None = None, quiet: bool = False) -> FaceDataset:
    """``auto``: FER-2013 where imported, else the generated faces; ``synthetic``: the generated faces; any other
    name: the dataset imported under it (``fer2013``, or one of :func:`imported_datasets`)."""
    if source not in ("auto", "synthetic"):
        return load_imported(source, data_dir)
    if source == "auto" and fer2013_available(data_dir):
        return load_fer2013(data_dir)
    if source == "auto" and not quiet:
        print(f"NOTE: {NO_DATA_MESSAGE}. Using generated synthetic faces instead: "
              "figures and accuracies below are NOT FER-2013 results.", file=sys.stderr)
    return make_synthetic()


def make_splits(ds: FaceDataset, protocol: str = "standard", seed: int = 0, val_fraction: float = 0.2) -> Splits:
    """Split by protocol.

    ``standard``: train = Training, validation = PublicTest, test = PrivateTest.
    ``reference``: validation = a seeded random ``val_fraction`` of Training, test = all test faces.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: use one of {PROTOCOLS}")
    train_idx = np.flatnonzero(ds.usage == TRAINING)
    if protocol == "standard":
        val_idx, test_idx = np.flatnonzero(ds.usage == PUBLIC_TEST), np.flatnonzero(ds.usage == PRIVATE_TEST)
        if len(val_idx) == 0 or len(test_idx) == 0:
            raise ValueError(
                "this copy of the data has no PublicTest/PrivateTest names, which the standard protocol needs: "
                "train with `python -m emo.train --protocol reference` (evaluation follows the model's protocol)"
            )
    else:
        perm = np.random.default_rng(seed).permutation(train_idx)
        n_val = int(round(val_fraction * len(perm)))
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        test_idx = np.flatnonzero(ds.usage != TRAINING)
    take = lambda idx: Split(ds.images[idx], ds.labels[idx])  # noqa: E731
    return Splits(take(train_idx), take(val_idx), take(test_idx), ds.classes, ds.name, protocol)


def load_splits(protocol: str = "standard", source: str = "auto", seed: int = 0, quiet: bool = False) -> Splits:
    return make_splits(load_dataset(source, quiet=quiet), protocol, seed)


def data_for_model(trained_on: str | None, data_dir: str | os.PathLike | None = None) -> str:
    """The ``--data`` a model trained on ``trained_on`` is scored on by default: that dataset where this checkout
    has it (or can make it: the generated faces), else ``auto``."""
    if trained_on == "synthetic" or (trained_on and trained_on in imported_datasets(data_dir)):
        return trained_on
    return "auto"


#: Split sizes that a correct import gives (FER-2013 as published; the synthetic set as generated).
EXPECTED_SIZES = {
    ("fer2013", "standard"): {"train": 28709, "val": 3589, "test": 3589},
    ("fer2013", "reference"): {"train": 22967, "val": 5742, "test": 7178},
    ("synthetic", "standard"): {"train": 294, "val": 63, "test": 63},
}


def class_counts(splits: Splits) -> dict[str, dict[str, int]]:
    """Faces per class in each split: ``{"train": {"angry": 3995, ...}, "val": ..., "test": ...}``."""
    return {name: {c: int((splits[name].labels == k).sum()) for k, c in enumerate(splits.classes)}
            for name in ("train", "val", "test")}


def check_sizes(splits: Splits) -> bool:
    """True when the split sizes are those published for this dataset and protocol."""
    return EXPECTED_SIZES.get((splits.dataset, splits.protocol)) == splits.sizes()


# --------------------------------------------------------------------------------------------
# Batches: uint8 faces -> normalised float tensors, with per-sample augmentation
# --------------------------------------------------------------------------------------------


def to_tensor(faces: np.ndarray | torch.Tensor, size: int, mean: float, std: float,
              device: torch.device | str = "cpu", crop: float = 1.0) -> torch.Tensor:
    """uint8 faces (N x H x W) -> normalised float (N x 1 x size x size), resized with antialiasing.

    ``crop`` < 1 keeps the central ``crop`` of each face's width and height (:func:`center_crop`).
    """
    x = torch.as_tensor(faces).to(device)
    x = x.float().div_(255.0).unsqueeze(1) if x.dim() == 3 else x.float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return center_crop(x, crop).sub_(mean).div_(std)


def center_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central ``fraction`` of each image's width and height, resampled to the same size.

    The test-time counterpart of the training crop: :func:`augment` shows the model crops of 80-100% of
    the face's area (89-100% of its side), so a whole face is at the edge of what it was trained on.
    Same sampling as :func:`augment` (one affine ``grid_sample``), so fractional crops are exact.
    """
    if not 0.5 <= fraction <= 1.0:
        raise ValueError(f"crop fraction {fraction} must be between 0.5 and 1 (1 = the whole face)")
    return x if fraction == 1.0 else zoom(x, fraction)


def zoom(x: torch.Tensor, scale: float, padding_mode: str = "border") -> torch.Tensor:
    """Resample each image (N x C x H x W) about its centre, at the same size: ``scale`` < 1 shows the central
    ``scale`` of it enlarged (:func:`center_crop`), ``scale`` > 1 shrinks it back (Grad-CAM maps of a crop),
    the border filled by ``padding_mode`` (``grid_sample``'s)."""
    theta = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def augment(faces: torch.Tensor, size: int, generator: torch.Generator | None = None,
            scale: tuple[float, float] = (0.8, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
            degrees: float = 10.0, flip: bool = True) -> torch.Tensor:
    """Random resized crop, rotation and horizontal flip, drawn per face, in one ``grid_sample``.

    ``faces`` is float N x 1 x H x W in [0, 1]; the output is N x 1 x size x size. torchvision's
    v2 transforms draw one set of parameters per call, i.e. the same crop for the whole batch;
    here every face gets its own, at the cost of one batched affine resampling.
    """
    n, dev = faces.shape[0], faces.device
    u = lambda lo, hi: torch.rand(n, generator=generator).mul_(hi - lo).add_(lo)  # noqa: E731
    area = u(*scale)
    log_r = u(float(np.log(ratio[0])), float(np.log(ratio[1])))
    w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
    h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    tx, ty = (1 - w) * u(-1, 1), (1 - h) * u(-1, 1)
    theta = torch.deg2rad(u(-degrees, degrees))
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(theta), torch.sin(theta)
    A = torch.stack([torch.stack([cos * w * sign, -sin * h, tx], 1), torch.stack([sin * w * sign, cos * h, ty], 1)], 1)
    grid = F.affine_grid(A.to(dev), [n, 1, size, size], align_corners=False)
    return F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al., 2018): blend each sample and its one-hot target with a shuffled partner."""
    if alpha <= 0:
        return x, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if generator is None else float(
        np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emo.data", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("import", formatter_class=HelpFormatter,
                        help="import FER-2013 (zip, tar.gz, folder or fer2013.csv), or with --name any image-folder "
                             "dataset, into data/")
    pi.add_argument("path", help="FER-2013's archive, folder or CSV; with --name, your dataset's folder, zip or tar")
    pi.add_argument("--name", default="fer2013",
                    help="the dataset's name (data/NAME.npz, --data NAME); any name but fer2013 reads image folders: "
                         "train/<class>/*, test/<class>/* and optionally val/<class>/*, or one folder of <class>/*")
    pi.add_argument("--data-dir", default=None, help=f"where to write NAME.npz (default: {DATA_DIR})")
    pi.add_argument("--numeric-labels", action="store_true",
                    help="FER-2013: label folders 0-6 are the challenge's emotion ids (0 angry, 1 disgust, 2 fear, "
                         "3 happy, 4 sad, 5 surprise, 6 neutral)")
    pi.add_argument("--detect", action="store_true",
                    help="image folders: crop the largest face the demos' detector finds in each image (images "
                         "without one are skipped and counted) instead of taking each image as a cropped face")
    pi.add_argument("--size", type=int, default=FACE_SIZE, help="image folders: store faces at SIZE x SIZE pixels")
    pi.add_argument("--val-fraction", type=float, default=0.1,
                    help="image folders: the share of each class that validates where there is no val/ folder")
    pi.add_argument("--test-fraction", type=float, default=0.1,
                    help="image folders: the share of each class that tests where there is no train/ and test/")
    pi.add_argument("--seed", type=int, default=0, help="image folders: seeds those splits")
    ps = sub.add_parser("info", help="describe the imported datasets (or one)")
    ps.add_argument("name", nargs="?", default=None, help="one dataset (default: all imported)")
    ps.add_argument("--data-dir", default=None)
    pe = sub.add_parser("export", formatter_class=HelpFormatter,
                        help="write an imported dataset out as image folders (train/ val/ test/<class>/*.png), "
                             "optionally with classes merged")
    pe.add_argument("name", help="an imported dataset, e.g. fer2013")
    pe.add_argument("out", help="a new (or empty) folder")
    pe.add_argument("--merge", nargs="+", default=[], metavar="A=B", help="relabel class A as class B")
    pe.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.cmd == "export":
        return run_command(lambda: export_command(a.name, a.out, a.merge, a.data_dir))
    if a.cmd == "info":
        return run_command(lambda: describe(a.name, a.data_dir))
    try:
        return run_command(lambda: import_and_describe(a.data_dir, a.path, a.numeric_labels, a.name, a.detect, a.size,
                                                       a.val_fraction, a.test_fraction, a.seed))
    except KeyboardInterrupt:
        out = dataset_file(a.name, a.data_dir)
        kept = f"{out} is as it was before" if out.exists() else f"nothing was written to {out}"
        print(f"\ninterrupted: {kept}; run the same command again to import", file=sys.stderr)
        return 130


def split_counts(ds: FaceDataset) -> str:
    """``Training 28,709, PublicTest 3,589, PrivateTest 3,589`` (FER-2013's names; ``train``, ``val``, ``test`` for
    other datasets): the faces of ``ds`` per usage."""
    names = ("Training", "PublicTest", "PrivateTest") if ds.name == "fer2013" else ("train", "val", "test")
    counts = {name: int((ds.usage == code).sum()) for name, code in
              [(names[0], TRAINING), (names[1], PUBLIC_TEST), (names[2], PRIVATE_TEST), ("test (unnamed)", TEST_UNSPLIT)]}
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)


def what_will_not_work(ds: FaceDataset) -> list[str]:
    """One line for each way ``ds`` is partial, naming what will not work with it."""
    notes = []
    if not (ds.usage != TRAINING).any():
        notes.append("no test faces (test/<label>/): evaluation has nothing to score, and the standard protocol "
                     "has no validation split; import the whole archive")
    elif not ((ds.usage == PUBLIC_TEST).any() and (ds.usage == PRIVATE_TEST).any()):
        notes.append(f"the test faces are not split into PublicTest_* ({int((ds.usage == PUBLIC_TEST).sum()):,}) and "
                     f"PrivateTest_* ({int((ds.usage == PRIVATE_TEST).sum()):,}), which the standard protocol needs: "
                     "train with `python -m emo.train --protocol reference`")
    if not (ds.usage == TRAINING).any():
        notes.append("no training faces (train/<label>/): nothing to train on; import the whole archive")
    for split, code in (("training", TRAINING), ("test", PRIVATE_TEST)):
        missing = [c for k, c in enumerate(ds.classes) if not ((ds.labels == k) & (ds.usage == code)).any()]
        if missing and (ds.usage == code).any():
            notes.append(f"no {split} faces of {', '.join(missing)}: " + (
                f"a model trained on this never learns {'that class' if len(missing) == 1 else 'those classes'}"
                if code == TRAINING else "the test scores say nothing about "
                + ("that class" if len(missing) == 1 else "those classes")))
    return notes


def import_and_describe(data_dir: str | None, path: str, numeric_labels: bool = False, name: str = "fer2013",
                        detect: bool = False, size: int = FACE_SIZE, val_fraction: float = 0.1,
                        test_fraction: float = 0.1, seed: int = 0) -> None:
    """``python -m emo.data import PATH [--name NAME]``: import ``path``, then describe the copy in ``data_dir``."""
    out = dataset_file(name, data_dir)
    before = load_imported(name, data_dir) if out.exists() else None
    print(f"importing {path} into {out}" + (f" (it holds {len(before):,} faces now, kept until the new copy "
                                             "is complete)" if before is not None else ""))
    ds = import_dataset(path, name, data_dir, numeric_labels, detect=detect, size=size, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed)
    print(f"imported {len(ds):,} faces into {out}" + (
        f", replacing {len(before):,} ({split_counts(before)})" if before is not None else ""))
    for why, n in ds.skipped.items():
        print(f"skipped {n:,} file(s): {why}")
    for what, files in (("could not read", ds.unreadable), ("found no face in", ds.no_face)):
        if files:
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5:,} more" if len(files) > 5 else "")
            print(f"{what} {len(files):,} image(s), skipped: {shown}")
    if ds.duplicates:
        a, b = ds.duplicates[0]
        print(f"WARNING: {len(ds.duplicates):,} file(s) have the same bytes as a file of another split (e.g. {a} and "
              f"{b}): test scores on them are optimistic; remove one copy of each", file=sys.stderr)
    for note in what_will_not_work(ds):
        print(f"NOTE: {note}")
    describe(name, data_dir)


def describe(name: str | None = None, data_dir: str | None = None) -> None:
    """``python -m emo.data info [NAME]``: the faces of each imported dataset (or of ``name``) by split and class."""
    names = [name] if name else imported_datasets(data_dir)
    if not names:
        raise FileNotFoundError(NO_DATA_MESSAGE)
    for n in names:
        ds = load_imported(n, data_dir)
        print(f"{n}: {len(ds):,} faces of {ds.images.shape[1]}x{ds.images.shape[2]}, {len(ds.classes)} classes; "
              f"{split_counts(ds)}")
        print("  per class: " + ", ".join(f"{c} {int((ds.labels == k).sum()):,}" for k, c in enumerate(ds.classes)))


def export_command(name: str, out: str, merge: list[str], data_dir: str | None = None) -> None:
    """``python -m emo.data export NAME OUT [--merge A=B ...]``."""
    from emo.imagefolder import export_image_folders, merge_classes
    pairs = {}
    for m in merge:
        a, sep, b = m.partition("=")
        if not sep or not a or not b:
            raise ValueError(f"--merge {m!r}: write it as A=B, e.g. disgust=angry")
        pairs[a.lower()] = b.lower()
    ds = merge_classes(load_imported(name, data_dir), pairs)
    counts = export_image_folders(ds, out)
    print(f"wrote {sum(counts.values()):,} faces of {name} to {out} as train/, val/ and test/<class>/*.png "
          f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); classes: {', '.join(ds.classes)}")
    print(f"it is derived from {name}'s images: keep it out of any repository")


if __name__ == "__main__":
    warnings.simplefilter("default")
    sys.exit(main())
