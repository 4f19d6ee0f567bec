"""``--swa``: stochastic weight averaging around a trained model (Izmailov et al., 2018).

After ``--init``: a constant learning rate (after a one-epoch linear warm-up) instead of One-Cycle, and the
weights averaged over the epochs. The average is the model that is validated and saved each epoch, its
batch-norm statistics measured afresh on clean training faces (an average of weights is a model no batch
ever went through); the last weights' own validation accuracy goes into the history as ``raw_val_acc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from emo.evaluation import accuracy_and_nll
from emo.hooks import Extension, Option
from emo.inference_search import recompute_bn
from emo.network import MiniXception, build_model
from emo.preprocess import preprocessing_of, set_preprocessing

if TYPE_CHECKING:
    from emo.trainer import Trainer


class WeightAveraging(Extension):
    """Average the weights over the epochs; validate and save the average."""

    key = "swa"
    options = (Option("swa", False, "with --init: constant --lr (after a one-epoch warm-up) and the weights averaged "
                      "over the epochs (stochastic weight averaging); the averaged model is validated and saved"),
               Option("swa_bn_faces", 8192, "with --swa: clean training faces whose batch statistics the averaged "
                      "model's BN layers get", int))
    resumes_from_best = False  # the running average lives only in last.pt
    epochs_free = True  # a constant learning rate: resume with more --epochs to go on, fewer to stop

    @classmethod
    def wanted(cls, cfg: Any) -> bool:
        return bool(cfg.swa)

    @classmethod
    def check(cls, cfg: Any) -> None:
        if cfg.swa and not cfg.init:
            raise ValueError("swa=True averages the weights around a trained model: pass init (--init CHECKPOINT) too")
        if cfg.swa_bn_faces < 1:
            raise ValueError(f"swa_bn_faces={cfg.swa_bn_faces} must be at least 1")

    def setup(self, trainer: "Trainer") -> None:
        self.average = AveragedModel(trainer.model)
        self.note = f"swa: constant lr {trainer.cfg.lr:g} after a one-epoch warm-up, weights averaged over the epochs"

    def schedule(self, trainer: "Trainer") -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LinearLR(trainer.opt, start_factor=0.04, end_factor=1.0,
                                                 total_iters=trainer.steps_per_epoch)

    def after_epoch(self, trainer: "Trainer", row: dict[str, float]) -> None:
        self.average.update_parameters(trainer.model)
        val = trainer.splits.val
        row["raw_val_acc"] = accuracy_and_nll(trainer.model, val.images, val.labels)[0]

    def model_to_score(self, trainer: "Trainer") -> MiniXception:
        return self.averaged_model(trainer)

    def averaged_model(self, trainer: "Trainer") -> MiniXception:
        """The running average as a plain model, its BN statistics measured on ``swa_bn_faces`` seeded clean
        training faces with dropout on (:func:`emo.inference_search.recompute_bn`)."""
        cfg = trainer.cfg
        model = build_model(trainer.model.config, classes=trainer.model.classes)
        set_preprocessing(model, preprocessing_of(trainer.model))
        model.load_state_dict(self.average.module.state_dict())
        model.to(trainer.device).to(memory_format=torch.channels_last)
        pick = np.random.default_rng(cfg.seed).permutation(len(trainer.train_labels))[:cfg.swa_bn_faces]
        faces = trainer.train_images[torch.as_tensor(pick).to(trainer.device)]
        return recompute_bn(model, faces, cfg.batch_size, dropout=True, seed=cfg.seed)

    def state_dict(self) -> dict[str, Any]:
        return {"swa_state": {k: v.detach().cpu() for k, v in self.average.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.load_state_dict(state["swa_state"])
