"""``--teacher``: knowledge distillation from a trained network or ensemble (Hinton et al., 2015).

The loss becomes ``w * distillation + (1 - w) * focal loss on the labels``, the distillation term pulling the
model's predictions (at a temperature) towards the teacher's. Two ways to get the teacher's predictions:

- online: the teacher sees the same augmented, MixUp-blended batch as the student (one teacher pass per
  step: what the teacher costs, every step);
- ``--teacher-targets FILE``: the teacher's flip-averaged predictions on the clean training faces, computed
  once into FILE (:func:`teacher_targets`) and MixUp-blended like the labels (no teacher pass per step).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from emo import distributed
from emo.files import write_with
from emo.hooks import Extension, Option
from emo.losses import distillation_loss
from emo.model import Model, load_model, predict_proba
from emo.preprocess import preprocessing_of
from emo.splits import Splits

if TYPE_CHECKING:
    from emo.trainer import Trainer


def load_teacher(path: str | Path, classes: tuple[str, ...], device: str | torch.device = "cpu",
                 input_size: int | None = None) -> Model:
    """The model (network or ensemble) at ``path`` as a teacher: the same classes in the same order and, where
    ``input_size`` is given (a teacher shown the student's batches), the same input size; refused in one line."""
    teacher = load_model(path, device)
    if tuple(teacher.classes) != tuple(classes) or input_size not in (None, teacher.input_size):
        raise ValueError(f"--teacher {path}: its classes {list(teacher.classes)} or input size {teacher.input_size} "
                         f"differ from this run's ({list(classes)}, {input_size or 'any'}): "
                         "distil from a model trained on the same data and input size")
    return teacher


def teacher_targets(teacher: str | Path, splits: Splits, path: str | Path, device: str | torch.device = "cpu",
                    progress: bool = True) -> np.ndarray:
    """The teacher's flip-averaged probabilities on every clean training face of ``splits`` (N x C, the
    student's class order), read from ``path`` or, where it does not exist yet, computed and saved there.

    The file records the teacher's path, the classes and a digest of the faces, and is refused for another
    teacher or other faces. It is derived from the faces' pixels, so it belongs beside the data (``data/``),
    never in the repository.
    """
    path = Path(path)
    digest = hashlib.sha1(np.ascontiguousarray(splits.train.images).tobytes()).hexdigest()
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # not a torch file, truncated, or holding objects weights_only refuses
            raise ValueError(f"--teacher-targets {path} could not be read ({type(e).__name__}): delete it, "
                             "or pass another path") from None
        if not isinstance(saved, dict) or not {"teacher", "faces_sha1", "classes", "probs"} <= set(saved):
            raise ValueError(f"--teacher-targets {path} is not a file of teacher predictions: pass another path")
        if (os.path.normpath(saved["teacher"]), saved["faces_sha1"], tuple(saved["classes"])) != (
                os.path.normpath(teacher), digest, tuple(splits.classes)):
            raise ValueError(f"--teacher-targets {path} holds the predictions of {saved['teacher']} on other faces or "
                             f"for another teacher than {teacher}: delete it, or pass another path")
        return saved["probs"].numpy()
    model = load_teacher(teacher, splits.classes, device)  # (any input size: it sees the faces, not the batches)
    faces, step = splits.train.images, 1024
    probs = np.concatenate([predict_proba(model, faces[i:i + step], tta=True) for i in tqdm(
        range(0, len(faces), step), desc="teacher predictions", unit="chunk", disable=not progress, mininterval=2.0)])
    saved = {"teacher": str(teacher), "faces_sha1": digest, "classes": list(splits.classes),
             "probs": torch.as_tensor(probs, dtype=torch.float32)}
    write_with(path, lambda f: torch.save(saved, f))
    return probs


class Distill(Extension):
    """Add the distillation loss towards ``teacher`` (a checkpoint path), online or from ``targets_file``."""

    key = "distill"
    options = (
        Option("teacher", "", "knowledge distillation: pull the predictions towards this model's or ensemble's "
               "(a path, or a shipped model's name: default, ensemble), shown the same augmented batches",
               str, "MODEL"),
        Option("distill_weight", 1.0, "with --teacher: weight of the distillation loss (the focal loss on the labels "
               "gets 1 - it)", float),
        Option("temperature", 1.0, "with --teacher: softmax temperature of the distillation loss", float),
        Option("teacher_targets", "", "with --teacher: distil towards the teacher's predictions on the clean training "
               "faces, computed once into FILE (or read from it), instead of a teacher pass on every batch", str,
               "FILE"),
    )

    @classmethod
    def wanted(cls, cfg: Any) -> bool:
        return bool(cfg.teacher)

    @classmethod
    def from_config(cls, cfg: Any) -> "Distill":
        return cls(cfg.teacher, cfg.distill_weight, cfg.temperature, cfg.teacher_targets)

    @classmethod
    def check(cls, cfg: Any) -> None:
        if not 0 <= cfg.distill_weight <= 1:
            raise ValueError(f"distill_weight={cfg.distill_weight} must be between 0 and 1")
        if not cfg.temperature > 0 or cfg.temperature == float("inf"):
            raise ValueError(f"temperature={cfg.temperature} must be a finite number > 0")
        if cfg.teacher_targets and not cfg.teacher:
            raise ValueError("teacher_targets holds a teacher's predictions: pass teacher (--teacher CHECKPOINT) too")

    def __init__(self, teacher: str, weight: float = 1.0, temperature: float = 1.0, targets_file: str = "") -> None:
        self.teacher_path, self.weight, self.temperature, self.targets_file = teacher, weight, temperature, targets_file
        self.teacher: Model | None = None
        self.soft_targets: torch.Tensor | None = None  # the teacher's predictions on each training face (N x C)

    def setup(self, trainer: "Trainer") -> None:
        how = f"distill weight {self.weight:g}, temperature {self.temperature:g}"
        if self.targets_file:
            # under torchrun, rank 0 alone reads or writes the file and hands the predictions to the others
            probs = distributed.from_main(teacher_targets(self.teacher_path, trainer.splits, self.targets_file,
                                                          trainer.device, trainer.progress)
                                          if trainer.world.is_main else None)
            self.soft_targets = torch.as_tensor(probs[trainer.keep]).to(trainer.device)
            self.note = (f"teacher: {self.teacher_path}, its predictions on the clean training faces from "
                         f"{self.targets_file}, {how}")
        else:
            self.teacher = load_teacher(self.teacher_path, trainer.model.classes, trainer.device,
                                        trainer.model.input_size)
            val = self.teacher.meta.get("metrics", {}).get("val_acc", float("nan"))
            self.note = f"teacher: {self.teacher_path} ({type(self.teacher).__name__}, val acc {val:.4f}), {how}"

    def batch_targets(self, trainer: "Trainer", idx: torch.Tensor) -> torch.Tensor | None:
        return None if self.soft_targets is None else self.soft_targets[idx]

    @torch.no_grad()
    def teacher_logits(self, trainer: "Trainer", x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (an ensemble's: log mean probability) for the student's normalised batch ``x``."""
        assert self.teacher is not None
        mean, std = preprocessing_of(trainer.model).normalize
        tmean, tstd = preprocessing_of(self.teacher).normalize
        if (tmean, tstd) != (mean, std):  # the same pixels under the teacher's own normalisation
            x = (x * std + mean - tmean) / tstd
        with trainer.autocast():
            return self.teacher(x).float()

    def loss(self, trainer: "Trainer", logits: torch.Tensor, x: torch.Tensor, loss: torch.Tensor,
             targets: torch.Tensor | None) -> torch.Tensor:
        teacher_logp = targets.clamp_min(1e-8).log() if targets is not None else self.teacher_logits(trainer, x)
        return self.weight * distillation_loss(logits, teacher_logp, self.temperature) + (1 - self.weight) * loss
