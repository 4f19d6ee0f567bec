"""Mini-Xception with Squeeze-and-Excitation: the network alone, a pure ``nn.Module``.

Building blocks, smallest first: :class:`SeparableConv` (depthwise 3x3 + pointwise 1x1 + BN),
:class:`SqueezeExcite`, :class:`ResidualBlock`; then :class:`MiniXception`, built from a typed
:class:`ModelConfig`. With the default config (1x128x128 input, widths 128-256-512-512-512) this is the
original project's design, 2,152,775 parameters; the shipped model is the same network at 48x48.

This module imports nothing else of ``emo``. What a network needs around it to be used (how faces are
prepared for it: :mod:`emo.preprocess`; its weights on disk: :mod:`emo.checkpoint`) lives elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn

#: Bounds on a config, checked before anything is allocated (a checkpoint's config is untrusted input).
LIMITS = {"num_classes": (2, 1000), "input_size": (8, 1024), "in_channels": (1, 4), "stem_channels": (1, 2048),
          "width": (1, 4096), "blocks": (1, 16), "se_reduction": (1, 1024)}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. The defaults are the original project's design (1x128x128 input, stride-2 depthwise
    downsampling); ``input_size=48`` is the shipped one; ``downsample="pool"`` is the max-pool variant of
    Arriaga et al.'s mini-Xception (the network PyPI ``fer`` runs)."""

    num_classes: int = 7
    input_size: int = 128
    in_channels: int = 1
    stem_channels: int = 64
    widths: tuple[int, ...] = (128, 256, 512, 512, 512)
    strides: tuple[int, ...] = (2, 2, 2, 2, 1)
    se_reduction: int = 16
    downsample: str = "stride"
    block_dropout: float = 0.1
    head_dropout: float = 0.3

    def __post_init__(self) -> None:
        self._check_bounds()
        if self.downsample not in ("pool", "stride"):
            raise ValueError(f"downsample={self.downsample!r}: use 'stride' (a stride-2 first depthwise conv, the "
                             "original design) or 'pool' (a 3x3 max-pool after the block, Arriaga-style: ~3x the work)")
        if len(self.widths) != len(self.strides):
            raise ValueError(f"widths {self.widths} and strides {self.strides} must have the same length")
        if self.input_size < 2 ** sum(s == 2 for s in self.strides):
            raise ValueError(f"input_size={self.input_size} is too small for {len(self.strides)} blocks")

    def _check_bounds(self) -> None:
        for name in ("num_classes", "input_size", "in_channels", "stem_channels", "se_reduction"):
            lo, hi = LIMITS[name]
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"model config {name}={value!r}: must be an integer from {lo} to {hi}")
        lo, hi = LIMITS["blocks"]
        if not lo <= len(self.widths) <= hi or any(not isinstance(w, int) or not 1 <= w <= LIMITS["width"][1]
                                                   for w in self.widths):
            raise ValueError(f"model config widths={self.widths!r}: {lo} to {hi} blocks of 1 to "
                             f"{LIMITS['width'][1]} channels")
        if any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"model config strides={self.strides!r}: each stride is 1 or 2")
        for name in ("block_dropout", "head_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"model config {name}={getattr(self, name)!r}: must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        d = {"downsample": "pool", **d}  # (the default when a config without it could have been written)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 conv, pointwise 1x1 conv, batch norm: ~9x fewer weights than a 3x3 conv."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al., 2018): global pool -> bottleneck MLP -> sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean((2, 3)))
        return x * w[:, :, None, None]


class ResidualBlock(nn.Module):
    """Two separable convs, SE, and a (projected) shortcut.

    A strided block downsamples with a stride-2 first depthwise conv (``"stride"``, the original design), so
    the body runs at the lower resolution, or with a 3x3 max-pool after a full-resolution body (``"pool"``,
    as Arriaga et al.'s mini-Xception does).
    """

    def __init__(self, cin: int, cout: int, stride: int = 2, se_reduction: int = 16, dropout: float = 0.1,
                 downsample: str = "stride") -> None:
        super().__init__()
        first_stride = stride if downsample == "stride" else 1
        self.body = nn.Sequential(
            SeparableConv(cin, cout, first_stride), nn.ReLU(inplace=True),
            SeparableConv(cout, cout),
            SqueezeExcite(cout, se_reduction),
        )
        self.pool = nn.MaxPool2d(3, stride, padding=1) if stride > 1 and downsample == "pool" else nn.Identity()
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if cin != cout or stride != 1 else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.pool(self.body(x)) + self.shortcut(x)))


class MiniXception(nn.Module):
    """Stem conv, residual SE blocks, global average pooling, dropout, linear head.

    ``classes`` (names in output order) travel with the module, so code that predicts never needs a second
    list of names; ``input_size`` is the config's.
    """

    def __init__(self, config: ModelConfig = ModelConfig(), classes: tuple[str, ...] | None = None) -> None:
        super().__init__()
        if classes is not None and len(classes) != config.num_classes:
            raise ValueError(f"{len(classes)} class names for num_classes={config.num_classes}")
        self.config = config
        self.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(config.num_classes))
        self.input_size = config.input_size
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.stem_channels, 3, padding=1),
            nn.BatchNorm2d(config.stem_channels), nn.ReLU(inplace=True),
        )
        blocks, cin = [], config.stem_channels
        for w, s in zip(config.widths, config.strides):
            blocks.append(ResidualBlock(cin, w, s, config.se_reduction, config.block_dropout, config.downsample))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.head_dropout),
                                  nn.Linear(cin, config.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def build_model(config: ModelConfig | None = None, classes: tuple[str, ...] | None = None,
                **overrides: Any) -> MiniXception:
    """``build_model(input_size=48)``: the original architecture with any config field changed."""
    config = config or ModelConfig()
    if classes is not None and "num_classes" not in overrides:
        overrides["num_classes"] = len(classes)
    if overrides:
        config = ModelConfig(**{**asdict(config), **overrides})
    return MiniXception(config, classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.inference_mode()
def layer_table(model: MiniXception) -> list[dict[str, Any]]:
    """Output shape and parameter count of the stem, each block and the head, for one input face."""
    x = torch.zeros(1, model.config.in_channels, model.input_size, model.input_size)
    rows = []
    was_training = model.training
    model.eval()
    for name, part in [("stem", model.stem), *[(f"block{i + 1}", b) for i, b in enumerate(model.blocks)],
                       ("head", model.head)]:
        x = part(x)
        rows.append({"layer": name, "output": tuple(x.shape[1:]), "parameters": count_parameters(part)})
    model.train(was_training)
    return rows
