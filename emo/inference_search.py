"""The inference-setting search: a trained network's centre crop and batch-norm statistics chosen on validation.

A trained network may score better on validation when shown a central crop of each face, or with its
batch-norm statistics measured afresh on clean faces (they were gathered on augmented, MixUp-blended
batches; an average of weights has none of its own). :func:`tune_inference` tries each setting on
validation; :func:`tune_and_score` stores the winner in the checkpoint and scores it. :class:`Tune` does
this at the end of a training run; soups and ``python -m emo.evaluate --tune`` call it directly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from emo import checkpoint
from emo.evaluation import (
    accuracy_and_nll,
    labels_in_model_order,
    read_network,
    store_scores,
)
from emo.hooks import Extension
from emo.network import MiniXception
from emo.preprocess import preprocessing_of, set_preprocessing
from emo.splits import Splits

if TYPE_CHECKING:
    from emo.trainer import Trainer

#: Test-time centre crops tried on validation (fractions of the face's side; 1 = the whole face).
CROP_CANDIDATES = (1.0, 0.95, 0.9, 0.85)
#: Where the BN statistics come from: as trained, or measured on clean training faces with dropout off or on.
BN_SOURCES = ("trained", "clean", "clean+dropout")


def recompute_bn(model: MiniXception, faces: np.ndarray | torch.Tensor, batch_size: int = 128,
                 dropout: bool = False, seed: int = 0) -> MiniXception:
    """Measure ``model``'s batch-norm statistics afresh on uint8 ``faces``, prepared as at inference (crop included).

    This replaces the running means and variances with the exact mean and variance over ``faces``. By default
    only the BN layers run in training mode, so dropout is off as at inference. With ``dropout`` the whole
    model runs in training mode, as ``torch.optim.swa_utils.update_bn`` does: the statistics then include the
    variance that dropout adds (the "variance shift" of Li et al., 2019), its masks drawn from ``seed`` so that
    the result is still deterministic. Returns the model, in eval mode.
    """
    device = next(model.parameters()).device
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.train(dropout)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, len(faces), batch_size):
            model(preprocessing_of(model)(faces[i:i + batch_size], device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def tune_inference(model: MiniXception, images: np.ndarray, labels: np.ndarray, bn_faces: np.ndarray | None = None,
                   crops: tuple[float, ...] = CROP_CANDIDATES,
                   progress: bool = False) -> tuple[MiniXception, list[dict[str, Any]]]:
    """The inference settings with the best accuracy on ``images`` (validation faces): a centre crop from
    ``crops``, and the BN statistics from training or, where ``bn_faces`` (clean training faces) is given,
    measured on them at that crop, with dropout off or on (:func:`recompute_bn`).

    Returns the chosen model (``model`` itself or a copy; ``model`` is left as it was) and one row per setting
    tried: crop, bn (one of ``BN_SOURCES``), val_acc. Ties go to the earlier row: trained BN, larger crop.
    """
    if not crops:
        raise ValueError("crops is empty: pass at least one crop fraction, e.g. (1.0, 0.9)")
    settings = [(bn, float(c)) for bn in (BN_SOURCES if bn_faces is not None else BN_SOURCES[:1]) for c in crops]
    rows: list[dict[str, Any]] = []
    best: tuple[float, MiniXception] | None = None
    for bn, c in tqdm(settings, desc="choosing crop and BN statistics on validation", unit="setting",
                      disable=not progress, leave=False):
        m = set_preprocessing(copy.deepcopy(model), preprocessing_of(model).with_(crop=c))
        if bn != "trained":
            recompute_bn(m, bn_faces, dropout=bn == "clean+dropout")  # type: ignore[arg-type]
        acc = accuracy_and_nll(m, images, labels)[0]
        rows.append({"crop": c, "bn": bn, "val_acc": acc})
        if best is None or acc > best[0]:
            best = (acc, m)
    assert best is not None
    return best[1], rows


def clean_bn_faces(splits: Splits, n: int = 8192, seed: int = 0) -> np.ndarray:
    """``n`` training faces drawn with ``seed``, in their split's order: where tuning measures clean BN statistics."""
    return splits.train.images[np.sort(np.random.default_rng(seed).permutation(len(splits.train))[:n])]


def tune_and_score(path: str | Path, splits: Splits, device: str | torch.device = "cpu",
                   history: list[dict[str, float]] | None = None, bn_faces: int = 8192, seed: int = 0,
                   out: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Tune the inference settings of the checkpoint at ``path`` on validation (:func:`tune_inference`, with
    ``bn_faces`` seeded clean training faces), then score it on validation and test with and without flip TTA;
    store the settings (``crop``, and the BN statistics in the weights), the search, the scores and
    ``history`` (where given) in the checkpoint at ``out`` (default: ``path`` itself), atomically.

    Only the validation split chooses; the test split is scored once, with the chosen settings.
    """
    ck, model = read_network(path, "tuning the inference settings", device)
    val_labels = labels_in_model_order(splits.val, splits.classes, model)
    model, search = tune_inference(model, splits.val.images, val_labels, clean_bn_faces(splits, bn_faces, seed),
                                   progress=progress)
    chosen = max(search, key=lambda r: r["val_acc"])  # the first best, as tune_inference chose
    return store_scores(ck, model, splits, out or path, history, crop=preprocessing_of(model).crop, bn=chosen["bn"],
                        inference_search=search, state_dict=checkpoint.network_state(model))


class Tune(Extension):
    """At the end of a run, choose the best checkpoint's inference settings on validation, then score it.

    It has no recipe option: ``python -m emo.train`` adds it for runs of 5+ epochs on all the training faces,
    or as ``--tune`` / ``--no-tune`` say (it decides nothing about training, only what the checkpoint keeps)."""

    key = "tune"

    def finish(self, trainer: "Trainer") -> dict[str, Any]:
        return tune_and_score(trainer.best_path, trainer.splits, trainer.device, history=trainer.history,
                              progress=trainer.progress)
