"""Training-time augmentation on whole batches: random resized crop, rotation and flip per face, and MixUp.

Both work on float tensors already on the training device, so augmenting costs one ``grid_sample`` a batch.
This module imports nothing else of ``emo``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def augment(faces: torch.Tensor, size: int, generator: torch.Generator | None = None,
            scale: tuple[float, float] = (0.8, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
            degrees: float = 10.0, flip: bool = True) -> torch.Tensor:
    """Random resized crop, rotation and horizontal flip, drawn per face, in one ``grid_sample``.

    ``faces`` is float N x 1 x H x W in [0, 1]; the output is N x 1 x size x size. torchvision's
    v2 transforms draw one set of parameters per call, i.e. the same crop for the whole batch;
    here every face gets its own, at the cost of one batched affine resampling.
    """
    n, dev = faces.shape[0], faces.device
    u = lambda lo, hi: torch.rand(n, generator=generator).mul_(hi - lo).add_(lo)  # noqa: E731
    area = u(*scale)
    log_r = u(float(np.log(ratio[0])), float(np.log(ratio[1])))
    w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
    h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    tx, ty = (1 - w) * u(-1, 1), (1 - h) * u(-1, 1)
    theta = torch.deg2rad(u(-degrees, degrees))
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    cos, sin = torch.cos(theta), torch.sin(theta)
    A = torch.stack([torch.stack([cos * w * sign, -sin * h, tx], 1), torch.stack([sin * w * sign, cos * h, ty], 1)], 1)
    grid = F.affine_grid(A.to(dev), [n, 1, size, size], align_corners=False)
    return F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al., 2018): blend each sample and its one-hot target with a shuffled partner."""
    if alpha <= 0:
        return x, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if generator is None else float(
        np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]
