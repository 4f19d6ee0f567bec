"""Grad-CAM (Selvaraju et al., 2017): which parts of the face drive a class score."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emo.model import Ensemble, Model, predict_proba
from emo.preprocess import preprocessing_of, zoom


def grad_cam(model: Model, faces: np.ndarray, class_index: int | np.ndarray | None = None,
             layer: nn.Module | None = None) -> np.ndarray:
    """Heat maps (N x H x W in [0, 1], at the faces' size) for ``class_index`` (default: the predicted class).

    ``layer`` is the block whose activations are weighted by their pooled gradients; by default the
    last block with spatial resolution above 1x1 (at 48x48 input the last blocks are 3x3, so the
    second-to-last strided block is the sharper choice). For an :class:`~emo.model.Ensemble`, the mean of
    its members' maps for the ensemble's class (each member's map where its own crop puts it).
    """
    if faces.ndim != 3 or faces.dtype != np.uint8:
        raise ValueError(f"faces must be uint8 N x H x W, got {faces.dtype} {faces.shape}")
    if isinstance(model, Ensemble):
        if class_index is None:
            class_index = predict_proba(model, faces).argmax(1)
        return np.mean([grad_cam(m, faces, class_index) for m in model.members], 0)
    layer = layer or model.blocks[-3]
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = preprocessing_of(model)(faces, device)
        with torch.enable_grad():
            logits = model(x)
            idx = (logits.argmax(1) if class_index is None
                   else torch.as_tensor(class_index, device=device).expand(len(x)))
            a = acts[0]
            score = logits.gather(1, idx.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, a)
        cam = F.relu((grad.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
        crop = preprocessing_of(model).crop
        if crop < 1:  # the model saw the central crop: put the map back where that lies in the face
            cam = zoom(F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False), 1 / crop,
                       padding_mode="zeros")
        cam = F.interpolate(cam, size=faces.shape[1:], mode="bilinear", align_corners=False)[:, 0]
        cam = cam / cam.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
        return cam.detach().cpu().numpy()
    finally:
        handle.remove()
        model.train(was_training)
