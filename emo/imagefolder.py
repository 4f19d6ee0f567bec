"""Any expression dataset kept as image folders: read it into a :class:`~emo.data.FaceDataset`, or write one out.

Two layouts are read, zipped, tarred or unpacked:

- ``train/<class>/*``, ``test/<class>/*`` and optionally ``val/<class>/*`` (``valid/``, ``validation/``);
  without a ``val/`` folder, a seeded ``val_fraction`` of each training class validates;
- one folder of ``<class>/*``: a seeded split of each class, ``val_fraction`` and ``test_fraction`` of it.

Classes are the folder names, lower-cased, in alphabetical order (as FER-2013's are); every checkpoint trained on
the dataset stores them. Any image OpenCV reads is taken, colour or gray, of any size: a square centre crop of it
(faces are assumed cropped already), or with ``detect`` the largest face that the demos' detector finds in it,
framed as the demos frame faces (:data:`emo.faces.FACE_MARGIN`). The faces are stored gray at ``size`` pixels.
Splits map onto the stored usage codes as train = Training, val = PublicTest, test = PrivateTest, so the
standard protocol validates on ``val`` and tests on ``test``.

    python -m emo.data import ~/Downloads/my-faces --name mine            # -> data/mine.npz
    python -m emo.data export fer2013 /tmp/fer6 --merge disgust=angry   # a dataset back out as image folders
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from tqdm.auto import tqdm

from emo.data import (FACE_SIZE, IMAGE_SUFFIXES, PRIVATE_TEST, PUBLIC_TEST, TRAINING, DataImportError, FaceDataset,
                      _list_archive, _read_members)
from emo.faces import HaarDetector, crop_faces

#: Folder names of each split (lower-cased), and the usage code its faces are stored with.
SPLIT_FOLDERS = {"train": TRAINING, "val": PUBLIC_TEST, "valid": PUBLIC_TEST, "validation": PUBLIC_TEST,
                 "test": PRIVATE_TEST}
SPLIT_NAMES = {TRAINING: "train", PUBLIC_TEST: "val", PRIVATE_TEST: "test"}
_SPLIT_MEMBER = re.compile(r"(?:^|/)(train|val|valid|validation|test)/([^/]+)/(.+)$", re.IGNORECASE)


def _hidden(member: str) -> bool:
    """Files that are no one's data: hidden files and folders, and the ``__MACOSX/`` copies macOS zips carry."""
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(member).parts)


def _class_layout(files: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The folder that holds the class folders (the deepest one that holds every image), and (class, member) for
    the files under it laid out as ``root/<class>/...``."""
    parts = [PurePosixPath(f).parts for f in files]
    images = [p for p, f in zip(parts, files) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    depth = 0
    while images and all(len(p) > depth + 2 for p in images) and len({p[depth] for p in images}) == 1:
        depth += 1
    root = images[0][:depth] if images else ()
    return "/".join(root), [(p[depth], f) for p, f in zip(parts, files) if p[:depth] == root and len(p) > depth + 1]


def _square(img: np.ndarray) -> np.ndarray:
    """The largest centred square of ``img``."""
    h, w = img.shape
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return img[y:y + side, x:x + side]


class _FaceCropper:
    """A decoded gray image -> one ``size`` x ``size`` face (or None where ``detect`` finds none)."""

    def __init__(self, size: int, detect: bool) -> None:
        self.size = size
        self.detector = HaarDetector() if detect else None  # as the demos run it

    def __call__(self, gray: np.ndarray) -> np.ndarray | None:
        if self.detector is None:
            face = _square(gray)
            interp = cv2.INTER_AREA if face.shape[0] > self.size else cv2.INTER_LINEAR
            return cv2.resize(face, (self.size, self.size), interpolation=interp)
        boxes = self.detector(gray)
        if len(boxes) == 0:
            return None
        largest = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])][None]
        return crop_faces(gray, largest, self.size)[0]


def read_image_folders(path: str | os.PathLike, name: str, detect: bool = False, size: int = FACE_SIZE,
                       val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> FaceDataset:
    """Read the image-folder dataset at ``path`` (see the module's docstring for the layouts) as ``name``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give the folder (or its zip / tar) that holds the class folders")
    for what, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{what}={value} must be in [0, 1)")
    if not 16 <= size <= 512:
        raise ValueError(f"size={size}: store faces at 16 to 512 pixels (48 is FER-2013's)")
    listed, folders = _list_archive(path)
    files = [m for m in listed if not _hidden(m)]
    split = [(m, mt) for m, mt in ((m, _SPLIT_MEMBER.search(m)) for m in files) if mt]
    if split:
        found = [(mt.group(2).lower(), SPLIT_FOLDERS[mt.group(1).lower()], m) for m, mt in split]
        layout = "split"
        class_dirs = {d for d in folders if not _hidden(d) and PurePosixPath(d).parent.name.lower() in SPLIT_FOLDERS}
    else:
        root, by_class = _class_layout(files)
        found = [(c.lower(), -1, m) for c, m in by_class]
        layout = "classes"
        class_dirs = {d for d in folders if not _hidden(d) and PurePosixPath(d).parent.as_posix() == (root or ".")}
    images = [(c, u, m) for c, u, m in found if Path(m).suffix.lower() in IMAGE_SUFFIXES]
    skipped = {"not an image file": len(found) - len(images), "not in a class folder": len(files) - len(found)}
    if not images:
        raise DataImportError(f"no images in class folders under {path}: lay it out as train/<class>/*, test/<class>/* "
                              "(and optionally val/<class>/*), or as <class>/*")
    held = {PurePosixPath(m).parent.as_posix() for _, _, m in images}
    empty = sorted(d for d in class_dirs if d not in held and not any(h.startswith(d + "/") for h in held))
    if empty:
        raise DataImportError(f"class folder {empty[0]}/ in {path} holds no images"
                              + (f" (nor do {len(empty) - 1} more)" if len(empty) > 1 else "")
                              + ": add its images or remove the folder")
    classes = tuple(sorted({c for c, _, _ in images}))
    if layout == "split":
        train = {c for c, u, _ in images if u == TRAINING}
        if not train:
            raise DataImportError(f"{path} has no train/<class>/ folders: a dataset needs training faces")
        if not any(u == PRIVATE_TEST for _, u, _ in images):
            raise DataImportError(f"{path} has train/ but no test/<class>/ folders: add test/, or put every class "
                                  "folder in one folder to have a seeded split made")
        extra = sorted(set(classes) - train)
        if extra:
            raise DataImportError(f"class(es) {extra} in {path} have val/ or test/ faces but no train/ folder: a model "
                                  f"cannot learn them; add train/{extra[0]}/ or remove them")

    cropper = _FaceCropper(size, detect)
    out_img, out_lab, out_use, unreadable, no_face, digests, kept = [], [], [], [], [], [], []
    where = {m: (c, u) for c, u, m in images}
    for m, buf in tqdm(_read_members(path, list(where)), total=len(where), desc="decoding faces", unit="img",
                       mininterval=1.0):
        gray = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            unreadable.append(m)
            continue
        face = cropper(gray)
        if face is None:
            no_face.append(m)
            continue
        c, u = where[m]
        out_img.append(face)
        out_lab.append(classes.index(c))
        out_use.append(u)
        digests.append(hashlib.sha1(buf).digest())
        kept.append(m)
    if not out_img:
        raise DataImportError(f"none of the {len(images):,} images under {path} could be read"
                              + (" or held a face the detector found" if detect else ""))
    labels = np.asarray(out_lab, np.int64)
    usage = np.asarray(out_use, np.int8)
    if layout == "classes":
        usage = seeded_split(labels, val_fraction, test_fraction, seed)
    elif not (usage == PUBLIC_TEST).any():
        train = np.flatnonzero(usage == TRAINING)
        usage[train[seeded_split(labels[train], val_fraction, 0.0, seed) == PUBLIC_TEST]] = PUBLIC_TEST
    skipped.update({"unreadable image": len(unreadable), "no face found (--detect)": len(no_face)})
    return FaceDataset(np.stack(out_img), labels, usage, classes, name,
                       skipped={k: v for k, v in skipped.items() if v}, unreadable=unreadable, no_face=no_face,
                       duplicates=_cross_split_duplicates(digests, usage, kept))


def seeded_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Usage codes that split each class at random (seeded): ``test_fraction`` of it test, ``val_fraction``
    validation, the rest training."""
    usage = np.full(len(labels), TRAINING, np.int8)
    rng = np.random.default_rng(seed)
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_test, n_val = int(round(test_fraction * len(idx))), int(round(val_fraction * len(idx)))
        usage[idx[:n_test]] = PRIVATE_TEST
        usage[idx[n_test:n_test + n_val]] = PUBLIC_TEST
    return usage


def _cross_split_duplicates(digests: list[bytes], usage: np.ndarray, members: list[str]) -> list[tuple[str, str]]:
    """Pairs of files with the same bytes in two different splits."""
    first: dict[bytes, int] = {}
    pairs = []
    for i, d in enumerate(digests):
        j = first.setdefault(d, i)
        if j != i and usage[j] != usage[i]:
            pairs.append((members[j], members[i]))
    return pairs


def merge_classes(ds: FaceDataset, merge: dict[str, str]) -> FaceDataset:
    """``ds`` with each class ``a`` of ``merge`` relabelled as ``merge[a]`` (e.g. ``{"disgust": "angry"}``)."""
    for a, b in merge.items():
        for c in (a, b):
            if c not in ds.classes:
                raise ValueError(f"--merge {a}={b}: {ds.name} has no class {c!r} (its classes: {', '.join(ds.classes)})")
    classes = tuple(sorted({merge.get(c, c) for c in ds.classes}))
    mapping = np.array([classes.index(merge.get(c, c)) for c in ds.classes])
    return FaceDataset(ds.images, mapping[ds.labels], ds.usage, classes, ds.name)


def export_image_folders(ds: FaceDataset, out: str | os.PathLike) -> dict[str, int]:
    """Write ``ds`` as ``out/{train,val,test}/<class>/<n>.png`` (the layout :func:`read_image_folders` reads);
    returns the faces written per split. ``out`` must be new or empty (nothing is ever overwritten)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: give a new folder")
    counts: dict[str, int] = defaultdict(int)
    for split in SPLIT_NAMES.values():
        for c in ds.classes:
            (out / split / c).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(len(ds)), desc="writing faces", unit="img", mininterval=1.0):
        split = SPLIT_NAMES.get(int(ds.usage[i]))
        if split is None:
            continue
        cv2.imwrite(str(out / split / ds.classes[int(ds.labels[i])] / f"{i:06d}.png"), ds.images[i])
        counts[split] += 1
    return {split: counts[split] for split in SPLIT_NAMES.values() if counts[split]}
