"""``--init``: start a run from a trained checkpoint's weights (a warm restart: new optimiser, new schedule).

The checkpoint must have the run's architecture and classes. The runs that made it travel on in the new
checkpoints (``init_histories``), so its learning curves need no other file.
"""

from __future__ import annotations

from typing import Any

from emo.metrics import training_runs
from emo.model import read_checkpoint, require_network
from emo.trainer import Extension, Trainer


class InitFrom(Extension):
    """Load the weights and normalisation of the checkpoint at ``path`` into the run's model."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.runs: list[list[dict[str, float]]] = []

    def setup(self, trainer: Trainer) -> None:
        ck = read_checkpoint(self.path)
        require_network(ck, self.path, "--init")
        model = trainer.model
        if ck.get("config") != model.config.to_dict() or list(ck.get("classes", [])) != list(model.classes):
            raise ValueError(f"--init {self.path}: its model or classes differ from this run's; "
                             "pass the same model options (--input-size, --widths, --downsample) as it was trained with")
        model.load_state_dict(ck["state_dict"])
        model.normalize = (ck["normalize"]["mean"], ck["normalize"]["std"])
        self.runs = training_runs(ck)
        self.note = (f"init: weights of {self.path} (epoch {ck.get('epoch')}, "
                     f"val acc {ck.get('metrics', {}).get('val_acc', float('nan')):.4f})")

    def meta(self) -> dict[str, Any]:
        return {"init_histories": self.runs}
