"""Read what users download into a :class:`~emo.datasets.FaceDataset`: one importer for archives, folders and CSV.

Image folders, zipped, tarred or unpacked, in either layout:

- ``train/<class>/*``, ``test/<class>/*`` and optionally ``val/<class>/*`` (``valid/``, ``validation/``);
  without a ``val/`` folder, a seeded ``val_fraction`` of each training class validates. Test files named
  ``PublicTest_*`` and ``PrivateTest_*`` (FER-2013's Kaggle archive) are the two published halves of the test
  set: PublicTest validates, PrivateTest tests;
- one folder of ``<class>/*``: a seeded split of each class, ``val_fraction`` and ``test_fraction`` of it.

Classes are the folder names, lower-cased, in alphabetical order, or a known list (``classes``: FER-2013's,
whose archive may also name them by the challenge's ids 0-6 with ``numeric_labels``). Any image OpenCV reads is
taken, colour or gray, of any size: its centred square (faces are assumed cropped already), or with ``detect``
the largest face the demos' detector finds, framed as the demos frame faces (:data:`emo.faces.FACE_MARGIN`).
Faces are stored gray at ``size`` pixels. The challenge's ``fer2013.csv`` (``emotion,pixels,Usage``; bare or
inside an archive) is read too.

Splits made by the import (a seeded share of each class) are per image unless ``groups`` names what images
belong together (a person, a video sequence, a session): a pattern whose first group (or whole match) is found
in each file's name, or a CSV file with ``file,group`` columns. Then whole groups go to one split, so no person
or sequence is in two. Either way the import reports faces of one split that look nearly the same as a face of
another (the same 8 x 8 average-brightness hash: neighbouring video frames, the same photo twice).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tarfile
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterator

import cv2
import numpy as np
from tqdm.auto import tqdm

from emo.datasets import (
    CSV_EMOTIONS,
    FER2013_CLASSES,
    PRIVATE_TEST,
    PUBLIC_TEST,
    PUBLISHED_SPLIT_NAMES,
    SPLIT_NAMES,
    TRAINING,
    DataImportError,
    FaceDataset,
)
from emo.faces import FACE_MARGIN, crop_faces, locate
from emo.files import IMAGE_SUFFIXES, check_regular, check_size, limit_from_env, write_bytes
from emo.images import MAX_IMAGE_MB, decode_image
from emo.mtcnn import default_detector
from emo.synthetic import FACE_SIZE

#: Folder names of each split (lower-cased), and the usage code its faces are stored with.
SPLIT_FOLDERS = {"train": TRAINING, "val": PUBLIC_TEST, "valid": PUBLIC_TEST, "validation": PUBLIC_TEST,
                 "test": PRIVATE_TEST}
#: File-name prefixes of the two published halves of a test set (FER-2013's Kaggle archive).
_PUBLISHED = {"publictest": PUBLIC_TEST, "privatetest": PRIVATE_TEST}
_SPLIT_MEMBER = re.compile(r"(?:^|/)(train|val|valid|validation|test)/([^/]+)/(.+)$", re.IGNORECASE)
#: How the archives we read begin: zip, gzip, bzip2, xz.
_MAGIC = {b"PK\x03\x04": "zip", b"\x1f\x8b": "tar.gz", b"BZh": "tar.bz2", b"\xfd7zXZ": "tar.xz"}
#: What reading a damaged or cut-short archive raises.
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError)
#: A class name must be usable as a folder name and a CSV column: no path separators, no leading dot.
_CLASS_NAME = re.compile(r"[^/\\\x00-\x1f.][^/\\\x00-\x1f]*")
#: The largest CSV file (or CSV member of an archive) read, in MB: FER-2013's is 287 MB.
MAX_CSV_MB = limit_from_env("EMO_MAX_CSV_MB", 1024)


# --------------------------------------------------------------------------------------------
# Archives and folders: list, then read each file once
# --------------------------------------------------------------------------------------------


def _damaged(path: Path, kind: str) -> DataImportError:
    return DataImportError(f"{path} looks like a {kind} archive but is damaged or incomplete "
                           f"({path.stat().st_size:,} bytes read): download it again")


def _list_folder(path: Path) -> tuple[list[str], list[str]]:
    found = sorted(path.rglob("*"))
    files = [p.relative_to(path).as_posix() for p in found if p.is_file()]
    if not files:
        raise DataImportError(f"{path} is an empty folder: give the folder that holds the class folders")
    return files, [p.relative_to(path).as_posix() for p in found if p.is_dir()]


def _archive_kind(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    return next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)


def list_archive(path: Path) -> tuple[list[str], list[str]]:
    """The files and the folders in a zip, tar(.gz) or directory, as posix paths relative to it (one pass)."""
    if path.is_dir():
        return _list_folder(path)
    check_regular(path, "archive or folder")  # (a FIFO or a device would hang the reader)
    kind = _archive_kind(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
            return [i.filename for i in infos if not i.is_dir()], [i.filename.rstrip("/") for i in infos if i.is_dir()]
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                members = tf.getmembers()
            return [m.name for m in members if m.isfile()], [m.name for m in members if m.isdir()]
    except _DAMAGED:
        raise _damaged(path, kind or "tar") from None
    if kind:
        raise _damaged(path, kind)
    raise DataImportError(f"{path} is not a zip, tar archive, folder or CSV file")


def _member_limit(name: str) -> tuple[float, str]:
    """The most MB a member may declare (images :data:`emo.images.MAX_IMAGE_MB`, CSV files :data:`MAX_CSV_MB`),
    and the environment variable that raises it."""
    if name.lower().endswith(".csv"):
        return MAX_CSV_MB, "EMO_MAX_CSV_MB"
    return MAX_IMAGE_MB, "EMO_MAX_IMAGE_MB"


def _check_declared(path: Path, name: str, size: int) -> None:
    """A one-line refusal for a member that declares more bytes than its kind may have (checked before it is
    read: a 37 MB zip can hold an 8 GiB member)."""
    limit, variable = _member_limit(name)
    if size > limit * 2**20:
        raise DataImportError(f"{name} in {path} is {size / 2**20:,.0f} MB unpacked, over the {limit:g} MB such a "
                              f"file may be here: remove it from the archive, or raise the limit with {variable}=MB")


def read_members(path: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each file ``names`` lists in the folder, zip or tar ``path``, each archive opened once
    (a tar is read in one pass, in its own order); each member's size is checked before it is read
    (:func:`_check_declared`); a damaged archive raises :func:`_damaged`'s error."""
    try:
        if path.is_dir():
            for n in names:
                limit, variable = _member_limit(n)
                check_size(path / n, limit, "file", variable)
                yield n, (path / n).read_bytes()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for n in names:
                    _check_declared(path, n, zf.getinfo(n).file_size)
                    yield n, zf.read(n)
        else:
            wanted = set(names)
            with tarfile.open(path) as tf:
                for member in tf:
                    if member.name not in wanted or not member.isfile():
                        continue
                    _check_declared(path, member.name, member.size)
                    f = tf.extractfile(member)
                    if f is not None:
                        yield member.name, f.read()
    except _DAMAGED:
        if path.is_dir():  # an unpacked folder is not a damaged archive: its own error says what failed
            raise
        raise _damaged(path, "zip" if zipfile.is_zipfile(path) else "tar") from None


def _hidden(member: str) -> bool:
    """Files that are no one's data: hidden files and folders, and the ``__MACOSX/`` copies macOS zips carry."""
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(member).parts)


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------


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


def _split_usage(folder: str, filename: str) -> int:
    """The usage code of a file in a split folder: the folder's, or for a test file named as a published half
    (``PublicTest_*``, ``PrivateTest_*``) that half's."""
    usage = SPLIT_FOLDERS[folder.lower()]
    if usage == PRIVATE_TEST:
        usage = _PUBLISHED.get(PurePosixPath(filename).name.split("_", 1)[0].lower(), usage)
    return usage


def _in_test_folder(member: str) -> bool:
    found = _SPLIT_MEMBER.search(member)
    return found is not None and found.group(1).lower() == "test"


def _layout(files: list[str], folders: list[str]) -> tuple[str, list[tuple[str, int, str]], set[str]]:
    """How ``files`` are laid out (``"split"`` or ``"classes"``), the (class folder, usage, member) of each file
    in a class folder (usage -1 where the import must split), and the class folders themselves."""
    split = [(m, mt) for m, mt in ((m, _SPLIT_MEMBER.search(m)) for m in files) if mt]
    if split:
        found = [(mt.group(2), _split_usage(mt.group(1), mt.group(3)), m) for m, mt in split]
        dirs = {d for d in folders if not _hidden(d) and PurePosixPath(d).parent.name.lower() in SPLIT_FOLDERS}
        return "split", found, dirs
    root, by_class = _class_layout(files)
    dirs = {d for d in folders if not _hidden(d) and PurePosixPath(d).parent.as_posix() == (root or ".")}
    return "classes", [(c, -1, m) for c, m in by_class], dirs


def _class_of(folder: str, numeric_labels: bool) -> str:
    """The class a label folder names: its own name, lower-cased, or with ``numeric_labels`` the challenge's id."""
    folder = folder.lower()
    if numeric_labels and folder.isdigit() and int(folder) < len(CSV_EMOTIONS):
        return CSV_EMOTIONS[int(folder)]
    return folder


def _check_class_names(names: list[str], path: Path) -> None:
    bad = [c for c in names if not _CLASS_NAME.fullmatch(c) or c in ("file", "face", "track", "x", "y", "w", "h")]
    if bad:
        raise DataImportError(f"class folder name {bad[0]!r} in {path} cannot name a class (it must be usable as a "
                              "folder name and a CSV column): rename the folder")


def _classes(found: list[tuple[str, int, str]], path: Path, known: tuple[str, ...] | None) -> tuple[str, ...]:
    """The dataset's classes: ``known`` (refusing folders outside it), else the folders' names, sorted."""
    names = sorted({c for c, _, _ in found})
    _check_class_names(names, path)
    if known is None:
        return tuple(names)
    unknown = [c for c in names if c not in known]
    if unknown and all(c.isdigit() for c in unknown):
        raise DataImportError(
            f"label folders {unknown} in {path} are numbers: if they are the challenge's emotion ids, add "
            f"--numeric-labels to read them as " + ", ".join(f"{k} {c}" for k, c in enumerate(CSV_EMOTIONS)))
    if unknown:
        raise DataImportError(f"unknown label folder(s) {unknown} in {path}: its classes are {list(known)}")
    return tuple(known)


def _check_no_empty_folders(path: Path, images: list[tuple[str, int, str]], class_dirs: set[str]) -> None:
    held = {PurePosixPath(m).parent.as_posix() for _, _, m in images}
    empty = sorted(d for d in class_dirs if d not in held and not any(h.startswith(d + "/") for h in held))
    if empty:
        raise DataImportError(f"class folder {empty[0]}/ in {path} holds no images"
                              + (f" (nor do {len(empty) - 1} more)" if len(empty) > 1 else "")
                              + ": add its images or remove the folder")


def _check_splits(path: Path, images: list[tuple[str, int, str]]) -> None:
    """A split layout needs train/ and test/, and training faces of every class."""
    train = {c for c, u, _ in images if u == TRAINING}
    if not train:
        raise DataImportError(f"{path} has no train/<class>/ folders: a dataset needs training faces")
    if not any(_in_test_folder(m) for _, _, m in images):
        raise DataImportError(f"{path} has train/ but no test/<class>/ folders: add test/, or put every class "
                              "folder in one folder to have a seeded split made")
    extra = sorted({c for c, _, _ in images} - train)
    if extra:
        raise DataImportError(f"class(es) {extra} in {path} have val/ or test/ faces but no train/ folder: a model "
                              f"cannot learn them; add train/{extra[0]}/ or remove them")


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
        self.detector = default_detector() if detect else None  # as the demos run it

    def __call__(self, gray: np.ndarray) -> np.ndarray | None:
        if self.detector is None:
            face = _square(gray)
            if face.shape[0] == self.size:
                return face
            interp = cv2.INTER_AREA if face.shape[0] > self.size else cv2.INTER_LINEAR
            return cv2.resize(face, (self.size, self.size), interpolation=interp)
        boxes, angles = locate(self.detector, gray)
        if len(boxes) == 0:
            return None
        i = int(np.argmax(boxes[:, 2] * boxes[:, 3]))  # the largest face, framed and leveled as the demos do
        return crop_faces(gray, boxes[i:i + 1], self.size, getattr(self.detector, "margin", FACE_MARGIN),
                          angles[i:i + 1])[0]


#: How many images the import samples to suggest --detect (:func:`framing`).
FRAMING_SAMPLE = 40


def _decode_all(path: Path, where: dict[str, tuple[int, int]], cropper: _FaceCropper) -> dict[str, list]:
    """Decode and crop every image ``where`` names (member -> (label, usage)), in the archive's order; keep each
    image's size, and every few images whole (``sample``: at most :data:`FRAMING_SAMPLE`) for :func:`framing`."""
    out: dict[str, list] = defaultdict(list)
    every = max(1, len(where) // FRAMING_SAMPLE)
    for k, (m, buf) in enumerate(tqdm(read_members(path, list(where)), total=len(where), desc="decoding faces",
                                      unit="img", mininterval=1.0)):
        try:
            gray: np.ndarray | None = decode_image(buf, m, gray=True)  # (bounded before it is decoded)
        except ValueError:
            gray = None
        if gray is not None:
            out["sizes"].append(gray.shape)
            if k % every == 0 and len(out["sample"]) < FRAMING_SAMPLE:
                out["sample"].append(gray)
        face = None if gray is None else cropper(gray)
        if face is None:
            out["unreadable" if gray is None else "no_face"].append(m)
            continue
        label, usage = where[m]
        for key, value in (("images", face), ("labels", label), ("usage", usage), ("members", m),
                           ("digests", hashlib.sha1(buf).digest())):
            out[key].append(value)
    return out


def framing(sizes: list[tuple[int, int]], sample: list[np.ndarray], size: int) -> dict[str, int]:
    """What the import can tell a user who took images whole (no ``--detect``) about their framing: the median
    image side, and where images are well larger than a face (over twice ``size``), in how many of a sample the
    demos' detector finds exactly one face. Empty where the images are about face-sized."""
    if not sizes:
        return {}
    side = int(np.median([min(h, w) for h, w in sizes]))
    if side <= 2 * size:
        return {}
    detector = default_detector(quiet=True)
    one = sum(len(detector(g)) == 1 for g in sample)
    return {"median_side": side, "sampled": len(sample), "one_face": int(one)}


def seeded_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int = 0,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Usage codes that split each class at random (seeded): ``test_fraction`` of it test, ``val_fraction``
    validation, the rest training. With ``groups`` (one id per face), whole groups are split instead
    (:func:`seeded_group_split`)."""
    if groups is not None:
        return seeded_group_split(groups, val_fraction, test_fraction, seed)
    usage = np.full(len(labels), TRAINING, np.int8)
    rng = np.random.default_rng(seed)
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_test, n_val = int(round(test_fraction * len(idx))), int(round(val_fraction * len(idx)))
        usage[idx[:n_test]] = PRIVATE_TEST
        usage[idx[n_test:n_test + n_val]] = PUBLIC_TEST
    return usage


def seeded_group_split(groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Usage codes that keep each group (a person, a sequence) in one split: the groups in a seeded random order
    go to test until it holds ``test_fraction`` of the faces, then to validation until ``val_fraction``, the rest
    to training."""
    names, index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    usage_of = np.full(len(names), TRAINING, np.int8)
    filled = {PRIVATE_TEST: 0, PUBLIC_TEST: 0}
    goal = {PRIVATE_TEST: test_fraction * len(groups), PUBLIC_TEST: val_fraction * len(groups)}
    for g in order:
        split = next((u for u in (PRIVATE_TEST, PUBLIC_TEST) if filled[u] < goal[u] - sizes[g] / 2), TRAINING)
        usage_of[g] = split
        if split != TRAINING:
            filled[split] += int(sizes[g])
    return usage_of[index]


def _fill_splits(layout: str, labels: np.ndarray, usage: np.ndarray, val_fraction: float, test_fraction: float,
                 seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The usage codes: seeded splits of each class (or of the ``groups``) where the folders do not say (one
    folder of classes), or a seeded validation share of the training faces where there is no val/ folder."""
    if layout == "classes":
        return seeded_split(labels, val_fraction, test_fraction, seed, groups)
    if not (usage == PUBLIC_TEST).any():
        train = np.flatnonzero(usage == TRAINING)
        chosen = seeded_split(labels[train], val_fraction, 0.0, seed, None if groups is None else groups[train])
        usage[train[chosen == PUBLIC_TEST]] = PUBLIC_TEST
    return usage


def read_groups(spec: str, members: list[str]) -> np.ndarray:
    """Each member's group, as ``spec`` says: a CSV file (``file,group``; ``file`` a path relative to the dataset's
    folder, or a bare file name) or a regular expression searched in each file's name (its first group, or the
    whole match: ``--groups "^(S[0-9]+)_"`` for ``S005_001_00000011.png``). One-line errors name a file without one."""
    if spec.lower().endswith(".csv") and Path(spec).is_file():
        check_size(spec, MAX_CSV_MB, "CSV file", "EMO_MAX_CSV_MB")
        with open(spec, newline="", encoding="utf-8-sig") as f:
            try:
                rows = list(csv.DictReader(f))
            except csv.Error as e:
                raise DataImportError(f"--groups {spec} cannot be read as CSV ({e})") from None
        if not rows or not {"file", "group"} <= set(rows[0]):
            raise DataImportError(f"--groups {spec} needs the columns file,group (one row per image)")
        by_path = {r["file"].strip().replace("\\", "/"): r["group"].strip() for r in rows}
        by_name = {PurePosixPath(k).name: v for k, v in by_path.items()}
        found = [by_path.get(m, by_path.get(m.split("/", 1)[-1], by_name.get(PurePosixPath(m).name))) for m in members]
        missing = [m for m, g in zip(members, found) if not g]
        if missing:
            raise DataImportError(f"--groups {spec} gives no group for {len(missing):,} image(s), e.g. {missing[0]}: "
                                  "add a row (file,group) for each image")
        return np.array(found)
    try:
        pattern = re.compile(spec)
    except re.error as e:
        raise ValueError(f"--groups {spec!r} is neither a CSV file nor a regular expression ({e})") from None
    groups = []
    for m in members:
        found = pattern.search(PurePosixPath(m).name)
        if found is None:
            raise DataImportError(f"--groups {spec!r} finds no group in the file name {PurePosixPath(m).name} "
                                  f"({m}): give a pattern every file name matches, or a CSV file,group")
        groups.append(found.group(1) if pattern.groups else found.group(0))
    return np.array(groups)


#: Two faces are near-duplicates where their 24 x 24 thumbnails, less their mean brightness, correlate above this.
#: Importing FER-2013's Kaggle archive reports 50 such validation and test faces beyond the 594 byte-for-byte copies
#: across splits it reports first; generated faces of different people stay below 0.98.
NEAR_DUPLICATE = 0.99


def _thumbnails(images: np.ndarray, side: int = 24) -> np.ndarray:
    t = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in images]).reshape(len(images), -1)
    t = t.astype(np.float32) - t.mean(1, keepdims=True)
    return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-6)


def near_duplicates(images: np.ndarray, usage: np.ndarray, members: list[str]) -> list[tuple[str, str]]:
    """(training file, other file) for each face of validation or test that looks nearly the same as a training
    face (:data:`NEAR_DUPLICATE`): the same photo twice, neighbouring frames of one video."""
    train, other = np.flatnonzero(usage == TRAINING), np.flatnonzero(usage != TRAINING)
    if not len(train) or not len(other):
        return []
    a = _thumbnails(images[train])
    pairs = []
    for start in range(0, len(other), 1024):  # (in blocks: 1,024 x N correlations at a time)
        chunk = other[start:start + 1024]
        corr = _thumbnails(images[chunk]) @ a.T
        best = corr.argmax(1)
        pairs += [(members[train[j]], members[i]) for i, j, c in zip(chunk, best, corr[np.arange(len(chunk)), best])
                  if c > NEAR_DUPLICATE]
    return pairs


def _cross_split_duplicates(digests: list[bytes], usage: np.ndarray, members: list[str]) -> list[tuple[str, str]]:
    """Pairs of files with the same bytes in two different splits."""
    first: dict[bytes, int] = {}
    pairs = []
    for i, d in enumerate(digests):
        j = first.setdefault(d, i)
        if j != i and usage[j] != usage[i]:
            pairs.append((members[j], members[i]))
    return pairs


def _check_options(val_fraction: float, test_fraction: float, size: int) -> None:
    for what, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{what}={value} must be in [0, 1)")
    if not 16 <= size <= 512:
        raise ValueError(f"size={size}: store faces at 16 to 512 pixels (48 is FER-2013's)")


def _published_half(member: str) -> bool:
    """True for a test file named as one of a published test set's halves (``PublicTest_*``, ``PrivateTest_*``)."""
    return _in_test_folder(member) and PurePosixPath(member).name.split("_", 1)[0].lower() in _PUBLISHED


def _find_images(path: Path, numeric_labels: bool) -> tuple[str, list[tuple[str, int, str]], set[str],
                                                            dict[str, list[str]]]:
    """The layout of ``path``, its images as (class, usage, member), its class folders, and what was passed over."""
    listed, folders = list_archive(path)
    files = [m for m in listed if not _hidden(m)]
    layout, found, class_dirs = _layout(files, folders)
    found = [(_class_of(c, numeric_labels), u, m) for c, u, m in found]
    images = [(c, u, m) for c, u, m in found if Path(m).suffix.lower() in IMAGE_SUFFIXES]
    in_class = {m for _, _, m in found}
    passed = {"not an image file": [m for _, _, m in found if Path(m).suffix.lower() not in IMAGE_SUFFIXES],
              "not in a class folder": [m for m in files if m not in in_class]}
    return layout, images, class_dirs, passed


def read_image_folders(path: str | os.PathLike, name: str, detect: bool = False, size: int = FACE_SIZE,
                       val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                       classes: tuple[str, ...] | None = None, numeric_labels: bool = False,
                       groups: str | None = None) -> FaceDataset:
    """Read the image-folder dataset at ``path`` (see the module's docstring for the layouts) as ``name``; with
    ``groups`` (:func:`read_groups`), the splits the import makes keep each group in one split."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: "
                                "give the folder (or its zip / tar) that holds the class folders")
    _check_options(val_fraction, test_fraction, size)
    layout, images, class_dirs, passed = _find_images(path, numeric_labels)
    skipped = {why: len(files) for why, files in passed.items()}
    if not images:
        raise DataImportError(f"no images in class folders under {path}: lay it out as train/<class>/*, test/<class>/* "
                              "(and optionally val/<class>/*), or as <class>/*")
    _check_no_empty_folders(path, images, class_dirs)
    if layout == "split" and classes is None:  # (a dataset of known classes may be partial: the import says so)
        _check_splits(path, images)
    classes = _classes(images, path, classes)
    read = _decode_all(path, {m: (classes.index(c), u) for c, u, m in images}, _FaceCropper(size, detect))
    if not read["images"]:
        raise DataImportError(f"none of the {len(images):,} images under {path} could be read"
                              + (" or held a face the detector found" if detect else ""))
    labels, usage = np.asarray(read["labels"], np.int64), np.asarray(read["usage"], np.int8)
    group_of = read_groups(groups, read["members"]) if groups else None
    usage = _fill_splits(layout, labels, usage, val_fraction, test_fraction, seed, group_of)
    published = layout == "split" and any(_published_half(m) for _, _, m in images)
    skipped.update({"unreadable image": len(read["unreadable"]), "no face found (--detect)": len(read["no_face"])})
    faces = np.stack(read["images"])
    counts, across = {}, []
    if group_of is not None:
        split_of: dict[str, set[int]] = defaultdict(set)
        for g, u in zip(group_of, usage):
            split_of[str(g)].add(int(u))
        across = sorted(g for g, us in split_of.items() if len(us) > 1)
        counts = {n: len({str(g) for g, u in zip(group_of, usage) if u == code})
                  for n, code in zip(SPLIT_NAMES, (TRAINING, PUBLIC_TEST, PRIVATE_TEST))}
    return FaceDataset(faces, labels, usage, classes, name, PUBLISHED_SPLIT_NAMES if published else SPLIT_NAMES,
                       skipped={k: v for k, v in skipped.items() if v}, unreadable=read["unreadable"],
                       no_face=read["no_face"],
                       duplicates=_cross_split_duplicates(read["digests"], usage, read["members"]),
                       passed_over={k: v for k, v in passed.items() if v},
                       near_duplicates=near_duplicates(faces, usage, read["members"]),
                       group_counts=counts, groups_across=across, import_split=layout == "classes",
                       framing={} if detect else framing(read["sizes"], read["sample"], size))


# --------------------------------------------------------------------------------------------
# The challenge's CSV
# --------------------------------------------------------------------------------------------

_USAGE_NAMES = {"training": TRAINING, "publictest": PUBLIC_TEST, "privatetest": PRIVATE_TEST}


def _csv_row(row: list[str], ie: int, ip: int, iu: int | None) -> tuple[np.ndarray, int, int] | None:
    """(face, label, usage) of one CSV row, or None for an invalid row."""
    try:
        emotion = int(row[ie])
        pixels = np.array(row[ip].split(), dtype=np.int64)
        usage = _USAGE_NAMES[row[iu].strip().lower()] if iu is not None else TRAINING
    except (ValueError, IndexError, KeyError):
        return None
    if pixels.size != FACE_SIZE * FACE_SIZE or not 0 <= emotion < len(CSV_EMOTIONS) or pixels.min() < 0 \
            or pixels.max() > 255:
        return None
    return pixels.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE), FER2013_CLASSES.index(CSV_EMOTIONS[emotion]), usage


def read_csv(text: io.TextIOBase, origin: str, name: str = "fer2013") -> FaceDataset:
    """The challenge's ``fer2013.csv`` (``emotion,pixels,Usage``) from the open text ``text`` (a leading
    byte-order mark, as spreadsheet programs save CSV, is ignored)."""
    reader = csv.reader(text)
    try:
        header = [h.strip().lstrip("\ufeff").lower() for h in next(reader, [])]
        if not {"emotion", "pixels"} <= set(header):
            raise DataImportError(f"{origin} has columns {header}: expected 'emotion,pixels,Usage' (fer2013.csv)")
        iu = header.index("usage") if "usage" in header else None
        rows, bad = [], 0
        for row in tqdm(reader, desc="reading CSV rows", unit="row", mininterval=1.0):
            parsed = _csv_row(row, header.index("emotion"), header.index("pixels"), iu)
            if parsed is None:
                bad += 1
            else:
                rows.append(parsed)
    except csv.Error as e:
        raise DataImportError(f"{origin} line {reader.line_num} cannot be read as CSV ({e}): "
                              "check that it is fer2013.csv, comma-separated") from None
    except UnicodeDecodeError:
        raise DataImportError(f"{origin} line {reader.line_num + 1} is not UTF-8 text: is it fer2013.csv?") from None
    if not rows:
        raise DataImportError(f"{origin} holds no valid rows (each needs an emotion 0-6 and 2304 pixel values)")
    faces, labels, usage = zip(*rows)
    return FaceDataset(np.stack(faces), np.asarray(labels, np.int64), np.asarray(usage, np.int8), FER2013_CLASSES,
                       name, PUBLISHED_SPLIT_NAMES if iu is not None else SPLIT_NAMES,
                       skipped={"invalid CSV row": bad} if bad else {})


def read_dataset(path: str | os.PathLike, name: str, classes: tuple[str, ...] | None = None,
                 numeric_labels: bool = False, **folders: object) -> FaceDataset:
    """Read ``path`` as the dataset ``name``: image folders (:func:`read_image_folders`, which takes ``classes``,
    ``numeric_labels`` and the ``folders`` options), or the challenge's CSV, bare or archived."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give the path of an archive (zip, tar.gz), a folder or "
                                "fer2013.csv")
    if not path.is_dir():
        check_regular(path, "archive, folder or CSV file")  # (a FIFO or a device would hang the reader)
    if path.suffix.lower() == ".csv" and folders.get("groups"):
        raise ValueError(f"--groups: {path} is the challenge's CSV, which names no files; --groups is for image "
                         "folders")
    if path.suffix.lower() == ".csv":
        check_size(path, MAX_CSV_MB, "CSV file", "EMO_MAX_CSV_MB")
        with open(path, newline="", encoding="utf-8-sig") as f:
            return read_csv(f, str(path), name)
    if not path.is_dir():
        members, _ = list_archive(path)
        csvs = [m for m in members if m.lower().endswith(".csv") and "fer2013" in m.lower()]
        if csvs and not any(_SPLIT_MEMBER.search(m) for m in members):
            _, buf = next(read_members(path, csvs[:1]))
            with io.TextIOWrapper(io.BytesIO(buf), newline="", encoding="utf-8-sig") as f:
                return read_csv(f, f"{path}:{csvs[0]}", name)
    return read_image_folders(path, name, classes=classes, numeric_labels=numeric_labels, **folders)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Back out: classes merged, as image folders
# --------------------------------------------------------------------------------------------


def merge_classes(ds: FaceDataset, merge: dict[str, str]) -> FaceDataset:
    """``ds`` with each class ``a`` of ``merge`` relabelled as ``merge[a]`` (e.g. ``{"disgust": "angry"}``)."""
    for a, b in merge.items():
        for c in (a, b):
            if c not in ds.classes:
                raise ValueError(f"--merge {a}={b}: {ds.name} has no class {c!r} "
                                 f"(its classes: {', '.join(ds.classes)})")
    classes = tuple(sorted({merge.get(c, c) for c in ds.classes}))
    mapping = np.array([classes.index(merge.get(c, c)) for c in ds.classes])
    return FaceDataset(ds.images, mapping[ds.labels], ds.usage, classes, ds.name, ds.split_names)


def write_image_folders(ds: FaceDataset, out: str | os.PathLike) -> dict[str, int]:
    """Write ``ds`` as ``out/{train,val,test}/<class>/<n>.png`` (the layout :func:`read_image_folders` reads);
    returns the faces written per split. ``out`` must be new or empty (nothing is ever overwritten)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty (or not a folder): give a new folder")
    folders = dict(zip((TRAINING, PUBLIC_TEST, PRIVATE_TEST), SPLIT_NAMES))
    for c in ds.classes:
        if not _CLASS_NAME.fullmatch(c):
            raise ValueError(f"class name {c!r} cannot name a folder: merge or rename it first")
    counts: dict[str, int] = defaultdict(int)
    for split in folders.values():
        for c in ds.classes:
            (out / split / c).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(len(ds)), desc="writing faces", unit="img", mininterval=1.0):
        split = folders.get(int(ds.usage[i]))
        if split is None:
            continue
        ok, png = cv2.imencode(".png", ds.images[i])
        if not ok:
            raise ValueError(f"face {i} of {ds.name} could not be encoded as PNG")
        write_bytes(out / split / ds.classes[int(ds.labels[i])] / f"{i:06d}.png", png.tobytes())
        counts[split] += 1
    return {split: counts[split] for split in folders.values() if counts[split]}
