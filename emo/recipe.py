"""The training recipe as one typed config: everything that decides a run, stored in every checkpoint it writes.

The seed recipe's options come first; the options of the extensions layered on top of the training loop
(``--init``, ``--swa``, ``--teacher``) follow, each read only by its extension (:mod:`emo.finetune`,
:mod:`emo.swa`, :mod:`emo.distill`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emo.data import PROTOCOLS, SOURCES, check_dataset_name
from emo.model import ModelConfig

#: TrainConfig options added after the first checkpoints were written (which were trained with their defaults).
LATER_OPTIONS = ("init", "swa", "swa_bn_faces", "teacher", "distill_weight", "temperature", "teacher_targets")
AMP_MODES = ("auto", "off", "bf16", "fp16")
#: The architecture a run trains unless told otherwise (the shipped model's): the seed's at 48x48 input.
MODEL = ModelConfig(input_size=48, downsample="stride")


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in every checkpoint it writes)."""

    # the seed recipe
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3  # peak of One-Cycle
    weight_decay: float = 1e-4  # AdamW's
    gamma: float = 2.0  # focal loss (0 = cross-entropy)
    mixup_alpha: float = 0.2  # 0 = off
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop
    rotation: float = 10.0  # degrees, either way
    patience: int = 30  # early stopping: epochs without a better validation accuracy
    seed: int = 0
    protocol: str = "standard"
    source: str = "auto"  # the dataset (--data): auto, fer2013, synthetic or an imported dataset's name
    amp: str = "auto"
    limit: int = 0  # train on a seeded random N training faces (quick runs, tests)
    # extensions (emo.finetune, emo.swa, emo.distill)
    init: str = ""  # start from this checkpoint's weights (a warm restart: new optimiser, new One-Cycle)
    swa: bool = False  # constant lr (after a one-epoch warm-up), weights averaged over epochs (Izmailov et al., 2018)
    swa_bn_faces: int = 8192  # training faces whose batch statistics the averaged model's BN layers get
    teacher: str = ""  # distil from this checkpoint (a network or an ensemble) shown the same batches
    distill_weight: float = 1.0  # with a teacher: loss = w * distillation + (1 - w) * focal loss on the labels
    temperature: float = 1.0  # with a teacher: softmax temperature of the distillation loss
    teacher_targets: str = ""  # with a teacher: file of its predictions on the clean training faces (made if missing)
    model: dict[str, Any] = field(default_factory=lambda: MODEL.to_dict())

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if self.source not in SOURCES:
            check_dataset_name(self.source)
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}: use one of {AMP_MODES}")
        if self.swa and not self.init:
            raise ValueError("swa=True averages the weights around a trained model: pass init (--init CHECKPOINT) too")
        if self.swa_bn_faces < 1:
            raise ValueError(f"swa_bn_faces={self.swa_bn_faces} must be at least 1")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight={self.distill_weight} must be between 0 and 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.teacher_targets and not self.teacher:
            raise ValueError("teacher_targets holds a teacher's predictions: pass teacher (--teacher CHECKPOINT) too")
        self.crop_scale = tuple(self.crop_scale)  # type: ignore[assignment]
