"""Train / validation / test splits of a dataset, by protocol.

``standard``: train = Training, validation = PublicTest (a dataset of one's own: val), test = PrivateTest (test).
``reference``: the original project's split: a seeded 20% of the training faces validates, and every test
face tests (for FER-2013: all 7,178 of PublicTest and PrivateTest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from emo.datasets import PRIVATE_TEST, PUBLIC_TEST, TRAINING, FaceDataset, load_dataset

PROTOCOLS = ("standard", "reference")


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


def load_splits(protocol: str = "standard", source: str = "auto", seed: int = 0, quiet: bool = False,
                data_dir: str | os.PathLike | None = None) -> Splits:
    """The splits of the dataset ``source`` (:func:`emo.datasets.load_dataset`) under ``protocol``."""
    return make_splits(load_dataset(source, data_dir, quiet), protocol, seed)


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
