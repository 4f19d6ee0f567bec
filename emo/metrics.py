"""Scores of a model on labelled faces, and the scores a checkpoint records about itself.

Training, evaluation, soups and ensembles all score models the same way; this module is where that
happens, below each of them (it imports none of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emo.data import Split, Splits
from emo.model import (MiniXception, Model, atomic_save, model_from_checkpoint, predict_proba, read_checkpoint,
                       require_network)


def labels_in_model_order(split: Split, data_classes: tuple[str, ...], model: Model) -> np.ndarray:
    """Re-index ``split.labels`` (into ``data_classes``) to the model's output order, by name."""
    if set(data_classes) != set(model.classes):
        raise ValueError(f"the model predicts {list(model.classes)} but the data is labelled {list(data_classes)}: "
                         "evaluate on the data the model was trained for")
    remap = np.array([model.classes.index(c) for c in data_classes])
    return remap[split.labels]


def accuracy_and_nll(model: Model, images: np.ndarray, labels: np.ndarray, tta: bool = False,
                     batch_size: int | None = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on uint8 faces whose ``labels`` index ``model.classes``."""
    p = predict_proba(model, images, tta=tta, batch_size=batch_size)
    if not len(labels):
        return float("nan"), float("nan")
    acc = float((p.argmax(1) == labels).mean())
    nll = float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1)).mean())
    return acc, nll


def split_accuracies(model: Model, splits: Splits) -> dict[str, float]:
    """Accuracy on validation and test, with and without flip TTA: the ``metrics`` a checkpoint records
    (keys ``val_acc``, ``val_acc_tta``, ``test_acc``, ``test_acc_tta``)."""
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        labels = labels_in_model_order(splits[split], splits.classes, model)
        for tta in (False, True):
            metrics[f"{split}_acc{'_tta' if tta else ''}"] = accuracy_and_nll(
                model, splits[split].images, labels, tta)[0]
    return metrics


def read_network(path: str | Path, task: str, device: str | torch.device = "cpu") -> tuple[dict[str, Any], MiniXception]:
    """The checkpoint dict at ``path`` and its network, ready to score (refused in one line for an ensemble)."""
    ck = read_checkpoint(path)
    require_network(ck, path, task)
    return ck, model_from_checkpoint(ck).to(device).to(memory_format=torch.channels_last).eval()


def store_scores(ck: dict[str, Any], model: MiniXception, splits: Splits, out: str | Path,
                 history: list[dict[str, float]] | None = None, **entries: Any) -> dict[str, Any]:
    """Score ``model`` on validation and test (:func:`split_accuracies`) and write ``ck`` with the scores (and
    ``history`` and ``entries``, where given) to ``out``, atomically. Returns the updated checkpoint."""
    ck.update(entries, metrics=split_accuracies(model, splits))
    if history is not None:
        ck["history"] = history
    atomic_save(ck, out)
    return ck


def score_checkpoint(path: str | Path, splits: Splits, device: str | torch.device = "cpu",
                     history: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """Score the network at ``path`` as it is and store the scores (and ``history``) in it. Returns the checkpoint."""
    ck, model = read_network(path, "scoring", device)
    return store_scores(ck, model, splits, path, history)


def training_runs(meta: dict[str, Any], _seen: frozenset[str] = frozenset()) -> list[list[dict[str, float]]]:
    """The histories of the runs that made a checkpoint, oldest first: those of the checkpoints it was
    ``--init``-ed from, then its own.

    They come from the checkpoint itself where it carries them (``init_histories``, as training with
    ``--init`` stores them); otherwise each ``init`` checkpoint is read in turn (its path tried as given and
    from the project root), and one that is not at hand ends the chain.
    """
    from emo.data import PROJECT_ROOT
    own = list(meta.get("history") or [])
    if "init_histories" in meta:
        return [list(h) for h in meta["init_histories"]] + [own]
    init = meta.get("train_config", {}).get("init")
    if not init or init in _seen:  # (a run started from its own folder's checkpoint names itself)
        return [own]
    path = next((p for p in (Path(init), PROJECT_ROOT / init) if p.is_file()), None)
    return (training_runs(read_checkpoint(path), _seen | {init}) if path is not None else []) + [own]


def full_history(meta: dict[str, Any]) -> tuple[list[dict[str, float]], list[int]]:
    """A checkpoint's training history preceded by those of the checkpoints it was ``--init``-ed from
    (:func:`training_runs`), the epochs numbered on across the runs; and the epoch at which each warm restart began.
    """
    history: list[dict[str, float]] = []
    restarts: list[int] = []
    for i, rows in enumerate(training_runs(meta)):
        if i:
            restarts.append(len(history) + 1)
        history += [{**row, "epoch": len(history) + j + 1} for j, row in enumerate(rows)]
    return history, restarts
