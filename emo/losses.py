"""Focal loss (Lin et al., 2017) for hard and soft (MixUp) targets; the distillation loss (Hinton et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``-sum_c t_c (1 - p_c)^gamma log p_c``.

    ``targets`` are class indices (N) or probabilities (N x C, e.g. MixUp's blended one-hots).
    ``gamma=0`` gives cross-entropy; larger ``gamma`` down-weights faces the model already gets right,
    which shifts the gradient towards rare, hard classes such as disgust.
    """
    if gamma < 0:
        raise ValueError(f"gamma={gamma} must be >= 0")
    logp = F.log_softmax(logits.float(), dim=1)
    if targets.dim() == 1:
        targets = F.one_hot(targets, logits.shape[1]).float()
    loss = -(targets * (1 - logp.exp()).pow(gamma) * logp)
    if weight is not None:
        loss = loss * weight[None, :]
    return loss.sum(1).mean()


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean KL divergence from the teacher's softened distribution to the student's, times ``temperature**2``.

    Both are softmaxes of logits divided by ``temperature`` (Hinton et al., 2015); the factor keeps the
    gradient's scale independent of it. ``teacher_logits`` may be any log-probabilities, such as an
    :class:`~emo.model.Ensemble`'s log mean softmax. Zero exactly where the two distributions agree.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    logq = F.log_softmax(logits.float() / temperature, dim=1)
    logp = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(logq, logp, reduction="batchmean", log_target=True) * temperature ** 2


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.gamma, self.weight)
