"""The training recipe as one typed config: everything that decides a run, stored in every checkpoint it writes.

:class:`Recipe` holds the core recipe (the options lesson 03 teaches). The tools that extend the trainer
(:mod:`emo.hooks`) each declare their own options; :func:`recipe_with` adds them as fields of a recipe class,
which is how ``emo.train.TrainConfig`` is made. A checkpoint records the recipe as one flat dict
(``train_config``), so checkpoints from before an option existed read as trained with its default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, ClassVar, Sequence

from emo.datasets import SOURCES, check_dataset_name
from emo.network import ModelConfig
from emo.splits import PROTOCOLS

AMP_MODES = ("auto", "off", "bf16", "fp16")
#: The architecture a run trains unless told otherwise (the shipped model's): the original design at 48x48 input.
MODEL = ModelConfig(input_size=48, downsample="stride")


@dataclass
class Recipe:
    """The core recipe: data, augmentation, loss, optimiser, schedule, early stopping."""

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
    fast_path: bool = True  # on the CPU: cheaper dropout masks and freed memory kept for reuse (emo.fastpath)
    progressive: float = 0.0  # the first fraction of the epochs trains on smaller crops (0 = off) ...
    progressive_size: int = 32  # ... of this many pixels a side (the model is validated at its own size)
    model: dict[str, Any] = field(default_factory=lambda: MODEL.to_dict())

    #: the extensions whose options this recipe class carries (set by :func:`recipe_with`)
    extension_types: ClassVar[tuple[type, ...]] = ()

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.limit < 0:
            raise ValueError(f"limit={self.limit}: give a number of training faces, or 0 for all of them")
        for name in ("lr", "weight_decay", "gamma", "mixup_alpha", "rotation"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name}={value} must be a finite number" + (" > 0" if name == "lr" else " >= 0"))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if self.source not in SOURCES:
            check_dataset_name(self.source)
        if not 0 <= self.progressive < 1:
            raise ValueError(f"progressive={self.progressive}: give the fraction of the epochs trained on smaller "
                             "crops, from 0 (off) to below 1")
        size = ModelConfig.from_dict(self.model).input_size
        if self.progressive and not 8 <= self.progressive_size <= size:
            raise ValueError(f"progressive_size={self.progressive_size}: the smaller crops' size must be from 8 to "
                             f"the model's input size ({size})")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}: use one of {AMP_MODES}")
        self.crop_scale = tuple(self.crop_scale)  # type: ignore[assignment]
        ModelConfig.from_dict(self.model)  # refuse a bad architecture before anything is built
        for ext in self.extension_types:
            ext.check(self)  # type: ignore[attr-defined]

    def input_size_at(self, epoch: int) -> int:
        """The size of the training crops in epoch ``epoch`` (from 0): ``progressive_size`` for the first
        ``progressive`` of the epochs, then the model's own input size."""
        size = int(self.model["input_size"])
        return self.progressive_size if self.progressive and epoch < round(self.progressive * self.epochs) else size

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a checkpoint records it (``train_config``): one flat dict, tuples as lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: Recipe fields whose command-line flag is not ``--`` and the field's name with dashes.
FLAGS = {"source": "--data", "mixup_alpha": "--mixup", "crop_scale": "crop scale", "rotation": "rotation",
         "fast_path": "--no-fast-path"}


def flag_of(name: str) -> str:
    """How the command line spells the recipe field ``name`` (``source`` -> ``--data``)."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def recipe_with(extensions: Sequence[type], name: str = "TrainConfig") -> type[Recipe]:
    """A :class:`Recipe` class with a field for every option the ``extensions`` (classes of
    :class:`emo.hooks.Extension`) declare, whose validation also runs each extension's ``check``."""
    core = {f.name for f in fields(Recipe)}
    extra: list[tuple[str, type, Any]] = []
    for ext in extensions:
        for opt in ext.options:  # type: ignore[attr-defined]
            if opt.name in core or any(opt.name == e[0] for e in extra):
                raise ValueError(f"option {opt.name!r} of {ext.__name__} is declared twice")
            extra.append((opt.name, type(opt.default), field(default=opt.default)))
    cls = make_dataclass(name, extra, bases=(Recipe,))
    cls.extension_types = tuple(extensions)
    cls.__doc__ = (f"Everything that decides a training run: the core :class:`emo.recipe.Recipe` and the options of "
                   f"{', '.join(e.__name__ for e in extensions)}.")
    return cls
