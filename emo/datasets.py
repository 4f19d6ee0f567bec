"""Datasets as the project keeps them: one compact file per imported dataset, and the generated faces.

A :class:`FaceDataset` is uint8 faces, integer labels into ``classes``, and a usage code per face (which
split it belongs to). ``python -m emo.data import`` (:mod:`emo.importers`) writes one as ``data/<name>.npz``:
FER-2013's 35,887 faces of 48x48 take 83 MB and load in well under a second. Every command reads a dataset
by name (``--data NAME``): ``auto`` (FER-2013 where imported, else the generated faces, with a note),
``synthetic`` (the generated faces, :mod:`emo.synthetic`), or any imported name.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emo.files import PROJECT_ROOT, TEMP_PREFIX, write_with
from emo.synthetic import FACE_SIZE, draw_face

DATA_DIR = Path(os.environ.get("EMO_DATA_DIR", PROJECT_ROOT / "data"))

#: The emotion ids of the original challenge CSV (0 Angry ... 6 Neutral), as published.
CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: FER-2013's classes in this project's order: its archive's label folders, i.e. alphabetical.
#: Checkpoints store their own copy; code that predicts reads ``model.classes``, never this.
FER2013_CLASSES = tuple(sorted(CSV_EMOTIONS))

#: ``usage`` codes stored per face. FER-2013 names them Training, PublicTest, PrivateTest; a dataset of one's
#: own train, val, test. ``TEST_UNSPLIT``: test faces of an old import that did not say which half.
TRAINING, PUBLIC_TEST, PRIVATE_TEST, TEST_UNSPLIT = 0, 1, 2, 3
#: What the three splits are called, by default and where they are published test halves (FER-2013).
SPLIT_NAMES = ("train", "val", "test")
PUBLISHED_SPLIT_NAMES = ("Training", "PublicTest", "PrivateTest")
#: The datasets every checkout has a name for; ``--data`` also takes the name of any imported dataset.
SOURCES = ("auto", "fer2013", "synthetic")
#: What ``--name`` may be: lower-case letters, digits, ``-``, ``_`` and ``.`` (it names ``data/<name>.npz``).
_DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")

NO_DATA_MESSAGE = (
    "FER-2013 has not been imported: run `python -m emo.data import PATH` with the Kaggle archive "
    "(fer2013.zip), its unpacked folder or the challenge's fer2013.csv (see data/README.md)"
)


@dataclass
class FaceDataset:
    """Faces (N x S x S uint8), integer labels into ``classes``, and per-face ``usage`` codes.

    ``split_names`` says what the splits are called; where they are :data:`PUBLISHED_SPLIT_NAMES`, the
    validation split is half of a published test set, so "all test faces" (both halves) is a split too.
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    classes: tuple[str, ...]
    name: str
    split_names: tuple[str, str, str] = SPLIT_NAMES
    skipped: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # files that could not be decoded (import only)
    no_face: list[str] = field(default_factory=list)  # images --detect found no face in (import only)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # same bytes in two splits (import only)
    # (import only) files passed over, by why; faces that look nearly the same as a face of another split; the
    # groups (people, sequences) per split where the import split by group, and those found in two splits
    passed_over: dict[str, list[str]] = field(default_factory=dict)
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)
    group_counts: dict[str, int] = field(default_factory=dict)
    groups_across: list[str] = field(default_factory=list)
    import_split: bool = False  # (import only) the splits were drawn by the import, not given by folders
    framing: dict[str, int] = field(default_factory=dict)  # (import only) emo.importers.framing's figures

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_synthetic(self) -> bool:
        return self.name == "synthetic"

    @property
    def published_test_halves(self) -> bool:
        """True where validation and test are the two halves of a published test set (FER-2013's)."""
        return tuple(self.split_names) == PUBLISHED_SPLIT_NAMES


class DataImportError(ValueError):
    """The file given to the importer is not a dataset in a layout we read."""


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
                  if not f.name.startswith(TEMP_PREFIX) and _DATASET_NAME.fullmatch(f.stem))


def save_dataset(ds: FaceDataset, out: str | os.PathLike) -> Path:
    """Write ``ds`` atomically (a half-written file never replaces a good one)."""
    return write_with(out, lambda f: np.savez(f, images=ds.images, labels=ds.labels, usage=ds.usage,
                                              classes=np.array(ds.classes), name=ds.name,
                                              split_names=np.array(ds.split_names)))


def load_imported(name: str, data_dir: str | os.PathLike | None = None) -> FaceDataset:
    """Load the dataset imported as ``name``, or raise FileNotFoundError with what to do."""
    f = dataset_file(name, data_dir)
    if not f.exists():
        if name == "fer2013":
            raise FileNotFoundError(NO_DATA_MESSAGE)
        have = imported_datasets(data_dir)
        raise FileNotFoundError(f"no dataset named {name!r} in {f.parent}: import it with `python -m emo.data import "
                                f"PATH --name {name}`" + (f" (imported: {', '.join(have)})" if have else "")
                                + "; one imported with --data-dir DIR is read with EMO_DATA_DIR=DIR")
    with np.load(f, allow_pickle=False) as z:
        stored = str(z["name"])
        # imports from before split_names was stored: FER-2013's were the only published halves
        names = (tuple(str(n) for n in z["split_names"]) if "split_names" in z.files
                 else PUBLISHED_SPLIT_NAMES if stored == "fer2013" else SPLIT_NAMES)
        return FaceDataset(z["images"], z["labels"], z["usage"], tuple(str(c) for c in z["classes"]), stored,
                           names)  # type: ignore[arg-type]


def fer2013_available(data_dir: str | os.PathLike | None = None) -> bool:
    return dataset_file("fer2013", data_dir).exists()


def make_synthetic(per_class: int = 60, seed: int = 0, classes: tuple[str, ...] = FER2013_CLASSES) -> FaceDataset:
    """Generated expression faces (:func:`emo.synthetic.draw_face`), ``per_class`` per class, split 70/15/15."""
    rng = np.random.default_rng(seed)
    imgs, labs, uses = [], [], []
    for k, c in enumerate(classes):
        for i in range(per_class):
            imgs.append(draw_face(c, rng, FACE_SIZE))
            labs.append(k)
            frac = i / per_class
            uses.append(TRAINING if frac < 0.7 else PUBLIC_TEST if frac < 0.85 else PRIVATE_TEST)
    return FaceDataset(np.stack(imgs), np.asarray(labs, np.int64), np.asarray(uses, np.int8), tuple(classes),
                       "synthetic")


def load_dataset(source: str = "auto", data_dir: str | os.PathLike | None = None, quiet: bool = False) -> FaceDataset:
    """``auto``: FER-2013 where imported, else the generated faces (with a note on stderr); ``synthetic``: the
    generated faces; any other name: the dataset imported under it (``fer2013``, or one of
    :func:`imported_datasets`)."""
    if source not in ("auto", "synthetic"):
        return load_imported(source, data_dir)
    if source == "auto" and fer2013_available(data_dir):
        return load_imported("fer2013", data_dir)
    if source == "auto" and not quiet:
        print(f"NOTE: {NO_DATA_MESSAGE}. Using generated synthetic faces instead: "
              "figures and accuracies below are NOT FER-2013 results.", file=sys.stderr)
    return make_synthetic()


def data_for_model(trained_on: str | None, data_dir: str | os.PathLike | None = None) -> str:
    """The ``--data`` a model trained on ``trained_on`` is scored on by default: that dataset where this checkout
    has it (or can make it: the generated faces), else ``auto``."""
    if trained_on == "synthetic" or (trained_on and trained_on in imported_datasets(data_dir)):
        return trained_on
    return "auto"
