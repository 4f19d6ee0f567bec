"""Scoring a model on labelled faces: accuracy, cross-entropy, macro-F1, per-class report, ROC AUC.

Training (validation each epoch), evaluation, the inference-setting search, soups and ensembles all score models
here, the same way; :func:`store_scores` records the scores a checkpoint keeps about itself. The
``python -m emo.evaluate`` command (tables, figures, files) is :mod:`emo.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import classification_report, f1_score, roc_auc_score

from emo import checkpoint
from emo.model import Model, predict_proba
from emo.network import MiniXception
from emo.splits import Split, Splits


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


def read_network(path: str | Path, task: str,
                 device: str | torch.device = "cpu") -> tuple[dict[str, Any], MiniXception]:
    """The checkpoint dict at ``path`` and its network, ready to score (refused in one line for an ensemble)."""
    ck = checkpoint.read(path)
    checkpoint.require_network(ck, path, task)
    return ck, checkpoint.network(ck).to(device).to(memory_format=torch.channels_last).eval()


def store_scores(ck: dict[str, Any], model: MiniXception, splits: Splits, out: str | Path,
                 history: list[dict[str, float]] | None = None, **entries: Any) -> dict[str, Any]:
    """Score ``model`` on validation and test (:func:`split_accuracies`) and write ``ck`` with the scores (and
    ``history`` and ``entries``, where given) to ``out``, atomically. Returns the updated checkpoint."""
    ck.update(entries, metrics=split_accuracies(model, splits))
    if history is not None:
        ck["history"] = history
    checkpoint.save(ck, out)
    return ck


def score_checkpoint(path: str | Path, splits: Splits, device: str | torch.device = "cpu",
                     history: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """Score the network at ``path`` as it is and store the scores (and ``history``) in it. Returns the checkpoint."""
    ck, model = read_network(path, "scoring", device)
    return store_scores(ck, model, splits, path, history)


@dataclass
class Evaluation:
    """Predictions of one model on one split, and the scores that follow from them."""

    name: str
    labels: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]
    tta: bool
    #: the classes (indices into ``classes``) that the macro averages and the report cover: all of them, or where
    #: the data is labelled with other classes than the model predicts, those both share
    scored: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        self.scored = tuple(self.scored) or tuple(range(len(self.classes)))

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean())

    @property
    def macro_f1(self) -> float:
        return float(f1_score(self.labels, self.preds, labels=list(self.scored), average="macro", zero_division=0))

    def auc_per_class(self) -> dict[str, float]:
        return {c: float(roc_auc_score(self.labels == k, self.probs[:, k]))
                for k, c in enumerate(self.classes) if 0 < (self.labels == k).sum() < len(self.labels)}

    def report(self) -> str:
        return classification_report(self.labels, self.preds, labels=list(self.scored),
                                     target_names=[self.classes[k] for k in self.scored], digits=4, zero_division=0)

    def summary(self, brief: bool = False) -> dict[str, Any]:
        """The scores ``metrics.json`` keeps: faces, accuracy and macro-F1, and unless ``brief`` the per-class
        ROC AUC and report."""
        if brief:
            return {"faces": int(len(self.labels)), "accuracy": self.accuracy, "macro_f1": self.macro_f1}
        return {"faces": int(len(self.labels)), "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "auc": self.auc_per_class(),
                "report": classification_report(self.labels, self.preds, labels=list(self.scored),
                                                target_names=[self.classes[k] for k in self.scored],
                                                output_dict=True, zero_division=0)}


def shared_classes(model_classes: tuple[str, ...], data_classes: tuple[str, ...]) -> tuple[str, ...]:
    """The classes a model and a dataset share, in the model's order; a one-line refusal where they share none."""
    shared = tuple(c for c in model_classes if c in data_classes)
    if not shared:
        raise ValueError(f"the model predicts {list(model_classes)} and the data is labelled {list(data_classes)}: "
                         "they share no class, so there is nothing to score")
    return shared


def evaluate_split(model: Model, split: Split, data_classes: tuple[str, ...], tta: bool = False,
                   name: str = "test", batch_size: int | None = None, only_shared: bool = False) -> Evaluation:
    """``model``'s predictions on ``split`` (labelled in ``data_classes``), with or without flip TTA.

    Where the data's classes differ from the model's, the faces of the classes both share are scored (the others
    are left out): a prediction of a class the data does not have counts as wrong, or with ``only_shared`` the
    model chooses among the shared classes only (its other classes' probabilities are set to 0, the rest
    renormalised). The macro averages and the report then cover the shared classes."""
    if set(data_classes) == set(model.classes):
        probs = predict_proba(model, split.images, tta=tta, batch_size=batch_size)
        return Evaluation(name, labels_in_model_order(split, data_classes, model), probs, model.classes, tta)
    shared = shared_classes(model.classes, data_classes)
    remap = np.array([model.classes.index(c) if c in shared else -1 for c in data_classes])
    keep = remap[split.labels] >= 0
    probs = predict_proba(model, split.images[keep], tta=tta, batch_size=batch_size)
    if only_shared:
        probs[:, [c not in shared for c in model.classes]] = 0.0
        probs /= probs.sum(1, keepdims=True)
    return Evaluation(name, remap[split.labels[keep]], probs, model.classes, tta,
                      scored=tuple(model.classes.index(c) for c in shared))
