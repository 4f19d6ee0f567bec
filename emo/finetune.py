"""``--init``: start a run from a trained checkpoint's weights (a warm restart: new optimiser, new schedule).

The checkpoint must have the run's architecture. Where its classes differ from the run's (fine-tuning the shipped
FER-2013 model on a dataset of your own, :mod:`emo.imagefolder`), everything but the linear head is kept and the
head starts afresh, as the training log says. The runs that made it travel on in the new checkpoints
(``init_histories``), so its learning curves need no other file.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from emo import checkpoint
from emo.hooks import Extension, Option
from emo.network import ModelConfig
from emo.preprocess import Preprocessing, set_preprocessing

if TYPE_CHECKING:
    from emo.trainer import Trainer

#: The parameters of :class:`emo.model.MiniXception` that depend on the classes: its final linear layer.
HEAD = "head."


def same_body(a: ModelConfig, b: ModelConfig) -> bool:
    """True where two architectures differ at most in their number of classes."""
    return {**asdict(a), "num_classes": 0} == {**asdict(b), "num_classes": 0}


class InitFrom(Extension):
    """Load the weights and normalisation of the checkpoint at ``path`` into the run's model (all but the head
    where the classes differ)."""

    key = "init"
    options = (Option("init", "", "start from this checkpoint's weights (a path, or a shipped model's name: default) "
                      "with a fresh optimiser and One-Cycle (a warm restart)", str, "MODEL"),)

    def __init__(self, path: str) -> None:
        self.path = path
        self.runs: list[list[dict[str, float]]] = []

    @classmethod
    def wanted(cls, cfg: Any) -> bool:
        return bool(cfg.init)

    @classmethod
    def from_config(cls, cfg: Any) -> "InitFrom":
        return cls(cfg.init)

    def setup(self, trainer: "Trainer") -> None:
        ck = checkpoint.read(checkpoint.model_path(self.path))
        checkpoint.require_network(ck, self.path, "--init")
        model = trainer.model
        if not same_body(ModelConfig.from_dict(ck["config"]), model.config):
            raise ValueError(f"--init {self.path}: its architecture differs from this run's; pass the same model "
                             "options (--input-size, --stem, --widths, --downsample) as it was trained with, or none")
        theirs = tuple(ck.get("classes", []))
        start = (f"init: weights of {self.path} (epoch {ck.get('epoch')}, "
                 f"val acc {ck.get('metrics', {}).get('val_acc', float('nan')):.4f})")
        if theirs == model.classes:
            model.load_state_dict(ck["state_dict"])
            self.note = start
        else:
            body = {k: v for k, v in ck["state_dict"].items() if not k.startswith(HEAD)}
            missing, unexpected = model.load_state_dict(body, strict=False)
            assert not unexpected and all(k.startswith(HEAD) for k in missing), (missing, unexpected)
            self.note = (f"{start}, all but the head: its classes ({', '.join(theirs)}) differ from this data's "
                         f"({', '.join(model.classes)}), so the linear head ({len(missing)} tensors) is "
                         "initialised afresh")
        set_preprocessing(model, Preprocessing.from_checkpoint(ck).with_(crop=1.0))  # its data's normalisation
        self.runs = checkpoint.training_runs(ck)

    def meta(self) -> dict[str, Any]:
        return {"init_histories": self.runs}
