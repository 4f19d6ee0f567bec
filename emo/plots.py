"""Figures: learning curves, confusion matrices, ROC curves, face grids, class balance.

Each function draws on a matplotlib ``Axes`` (made when none is given) and returns its figure, so
notebooks show them inline and the evaluation command saves them.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import auc, confusion_matrix, roc_curve


def _axes(ax: Any = None, figsize: tuple[float, float] = (6, 5)) -> tuple[Figure, Any]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_history(history: Sequence[dict[str, float]], title: str = "Learning curves",
                 restarts: Sequence[int] = ()) -> Figure:
    """Loss and accuracy per epoch, train against validation, with the best epoch and any warm restarts marked."""
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for a in (a1, a2):
        for i, r in enumerate(restarts):
            a.axvline(r - 0.5, ls=":", c="k", lw=1, label="warm restart (--init)" if i == 0 else None)
    a1.plot(ep, [h["train_loss"] for h in history], label="train (focal, MixUp)")
    a1.plot(ep, [h["val_loss"] for h in history], label="validation (cross-entropy)")
    a1.set(xlabel="epoch", ylabel="loss", title="Loss")
    a2.plot(ep, [h["train_acc"] for h in history], label="train (MixUp targets)")
    a2.plot(ep, [h["val_acc"] for h in history], label="validation")
    raw = [(h["epoch"], h["raw_val_acc"]) for h in history if "raw_val_acc" in h]
    if raw:  # --swa epochs: validation is the weight average; this is the weights being trained
        a2.plot(*zip(*raw), ls="--", marker=".", label="validation, last weights (SWA epochs)")
    best = int(np.argmax([h["val_acc"] for h in history]))
    a2.axvline(ep[best], ls="--", c="grey", lw=1)
    a2.annotate(f"best {history[best]['val_acc']:.1%} (epoch {ep[best]})", (ep[best], history[best]["val_acc"]),
                textcoords="offset points", xytext=(-120, -30))
    a2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for a in (a1, a2):
        a.legend()
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_inference_search(rows: Sequence[dict[str, Any]], ax: Any = None,
                          title: str = "Inference settings on validation") -> Figure:
    """Validation accuracy per setting tried by ``emo.tune.tune_inference``: crops along x, a line of points per
    BN source (points, not bars: the y-axis spans only the accuracies reached, and a bar's length would then
    mislead), the legend outside the plot."""
    crops = sorted({r["crop"] for r in rows}, reverse=True)
    sources = list(dict.fromkeys(r["bn"] for r in rows))
    fig, ax = _axes(ax, (7.5, 3.5))
    for bn in sources:
        acc = {r["crop"]: r["val_acc"] for r in rows if r["bn"] == bn}
        ax.plot(np.arange(len(crops)), [acc.get(c, np.nan) for c in crops], marker="o", label=f"BN statistics: {bn}")
    best = max(rows, key=lambda r: r["val_acc"])
    ax.axhline(best["val_acc"], ls="--", c="grey", lw=1, label=f"best: {best['val_acc']:.2%}")
    ax.set_xticks(np.arange(len(crops)), [f"{c:g}" for c in crops])
    accs = [r["val_acc"] for r in rows]
    ax.set(xlabel="centre crop (fraction of the face's side)", ylabel="validation accuracy", title=title,
           ylim=(min(accs) - 0.005, max(accs) + 0.005))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(labels: np.ndarray, preds: np.ndarray, classes: Sequence[str], normalize: bool = False,
                   ax: Any = None, title: str | None = None) -> Figure:
    """Confusion matrix as a seaborn heatmap: counts, or rows normalised to recall."""
    cm = confusion_matrix(labels, preds, labels=np.arange(len(classes)))
    fig, ax = _axes(ax)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", square=True, cbar=False,
                xticklabels=classes, yticklabels=classes, ax=ax, vmin=0, vmax=1 if normalize else None)
    ax.set(xlabel="predicted", ylabel="true",
           title=title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"))
    fig.tight_layout()
    return fig


def plot_roc(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], ax: Any = None,
             title: str = "One-vs-rest ROC") -> Figure:
    """One ROC curve per class (that class against the rest), with its AUC in the legend."""
    fig, ax = _axes(ax, (6, 6))
    for k, c in enumerate(classes):
        if (labels == k).any() and (labels != k).any():
            fpr, tpr, _ = roc_curve(labels == k, probs[:, k])
            ax.plot(fpr, tpr, label=f"{c} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_faces(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.3, suptitle: str | None = None) -> Figure:
    """A grid of grayscale faces with optional titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            if titles:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_class_balance(counts: dict[str, dict[str, int]], title: str = "Faces per class") -> Figure:
    """Grouped bars: ``counts[split][class]``."""
    splits = list(counts)
    classes = list(next(iter(counts.values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(splits)
    x = np.arange(len(classes))
    for i, s in enumerate(splits):
        ax.bar(x + i * width, [counts[s][c] for c in classes], width, label=s)
    ax.set_xticks(x + width * (len(splits) - 1) / 2, classes)
    ax.set(ylabel="faces", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_focal_vs_ce(gammas: Sequence[float] = (0, 0.5, 1, 2, 5), ax: Any = None) -> Figure:
    """Loss of the true class against its predicted probability, for several focal gammas (0 = cross-entropy)."""
    p = np.linspace(0.01, 1, 200)
    fig, ax = _axes(ax, (6, 4))
    for g in gammas:
        ax.plot(p, -((1 - p) ** g) * np.log(p), label="cross-entropy" if g == 0 else f"focal, gamma={g}")
    ax.set(xlabel="probability of the true class", ylabel="loss", title="Focal loss down-weights easy faces",
           ylim=(0, 4))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_lr_schedule(lrs: Sequence[float], steps_per_epoch: int, ax: Any = None) -> Figure:
    fig, ax = _axes(ax, (6, 3.5))
    ax.plot(np.arange(len(lrs)) / steps_per_epoch, lrs)
    ax.set(xlabel="epoch", ylabel="learning rate", title="One-Cycle learning rate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_saliency(faces: np.ndarray, cams: np.ndarray, titles: Sequence[str], ncols: int = 7,
                  suptitle: str | None = None) -> Figure:
    """Faces with their Grad-CAM heat maps overlaid."""
    n = len(faces)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.6, nrows * 1.9))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
            ax.imshow(cams[i], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
