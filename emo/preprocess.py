"""How a face becomes a network's input: the one place that reads the preprocessing a checkpoint carries.

A :class:`Preprocessing` holds the input size, the normalisation (the training faces' mean and standard
deviation of ``pixel / 255``) and the test-time centre crop. Training, evaluation, export, the demos and
:func:`emo.model.predict_proba` all prepare faces through it, so training and serving cannot drift apart:

    pre = preprocessing_of(model)            # what the checkpoint says (or the defaults for a new network)
    x = pre(faces)                           # uint8 N x H x W -> float N x 1 x S x S, channels-last

:func:`as_gray_faces` turns what users pass (one face, BGR colour images, floats, a list of faces of
different sizes) into uint8 grayscale, or refuses it in one line. This module imports nothing else of ``emo``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: The normalisation of a network no data has set yet: (mean, std) of pixel / 255.
DEFAULT_NORMALIZE = (0.5, 0.25)


def center_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central ``fraction`` of each image's width and height (N x C x H x W), resampled to the same size.

    The test-time counterpart of the training crop (:func:`emo.augment.augment` shows the model crops of
    80-100% of the face's area), with the same sampling (one affine ``grid_sample``), so fractional crops are exact.
    """
    if not 0.5 <= fraction <= 1.0:
        raise ValueError(f"crop fraction {fraction} must be between 0.5 and 1 (1 = the whole face)")
    return x if fraction == 1.0 else zoom(x, fraction)


def zoom(x: torch.Tensor, scale: float, padding_mode: str = "border") -> torch.Tensor:
    """Resample each image (N x C x H x W) about its centre, at the same size: ``scale`` < 1 shows the central
    ``scale`` of it enlarged (:func:`center_crop`), ``scale`` > 1 shrinks it back (Grad-CAM maps of a crop),
    the border filled by ``padding_mode`` (``grid_sample``'s)."""
    theta = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


@dataclass(frozen=True)
class Preprocessing:
    """uint8 faces -> what a network takes: resized to ``input_size`` (bilinear, antialiased), scaled to
    [0, 1], centre-cropped to ``crop``, normalised with ``mean`` and ``std``."""

    input_size: int
    mean: float = DEFAULT_NORMALIZE[0]
    std: float = DEFAULT_NORMALIZE[1]
    crop: float = 1.0

    def __post_init__(self) -> None:
        if not 8 <= self.input_size <= 1024:
            raise ValueError(f"input size {self.input_size} must be 8 to 1024 pixels")
        if not 0.5 <= self.crop <= 1.0:
            raise ValueError(f"crop fraction {self.crop} must be between 0.5 and 1 (1 = the whole face)")
        if not (np.isfinite(self.mean) and np.isfinite(self.std) and self.std > 0):
            raise ValueError(f"normalisation mean {self.mean}, std {self.std}: both must be finite, std > 0")

    @property
    def normalize(self) -> tuple[float, float]:
        return (self.mean, self.std)

    def with_(self, **changes: Any) -> "Preprocessing":
        """A copy with some fields changed (``pre.with_(crop=0.9)``)."""
        return replace(self, **changes)

    def scale(self, faces: np.ndarray | torch.Tensor | list, device: str | torch.device = "cpu") -> torch.Tensor:
        """uint8 faces (N x H x W, or a list of H x W faces of any sizes) -> float N x 1 x S x S in [0, 1],
        resized to the input size: the step before cropping and normalising (training augments here)."""
        if isinstance(faces, list):
            if not faces:
                return torch.zeros(0, 1, self.input_size, self.input_size, device=device)
            return torch.cat([self.scale(np.asarray(f)[None], device) for f in faces])
        x = torch.as_tensor(faces).to(device)
        x = x.float().div_(255.0).unsqueeze(1) if x.dim() == 3 else x.float().div_(255.0)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return x

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled faces (N x 1 x S x S in [0, 1]) normalised with the training data's mean and std."""
        return (x - self.mean) / self.std

    def __call__(self, faces: np.ndarray | torch.Tensor | list,
                 device: str | torch.device = "cpu") -> torch.Tensor:
        """uint8 faces -> the network's input (N x 1 x S x S, channels-last, on ``device``)."""
        x = center_crop(self.scale(faces, device), self.crop)
        return self.normalized(x).contiguous(memory_format=torch.channels_last)

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint entries that hold this preprocessing (``input_size``, ``normalize``, ``crop``)."""
        return {"input_size": int(self.input_size), "normalize": {"mean": float(self.mean), "std": float(self.std)},
                "crop": float(self.crop)}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> "Preprocessing":
        """The preprocessing a checkpoint dict records (checkpoints from before the test-time crop: the whole face)."""
        norm = ck["normalize"]
        return cls(int(ck["input_size"]), float(norm["mean"]), float(norm["std"]), float(ck.get("crop", 1.0)))


def preprocessing_of(model: Any) -> Preprocessing:
    """The preprocessing ``model`` was trained with (``model.preprocess``, set from its checkpoint or by the
    trainer), or for a network no data has touched yet the defaults at its input size."""
    pre = getattr(model, "preprocess", None)
    return pre if isinstance(pre, Preprocessing) else Preprocessing(int(model.input_size))


def set_preprocessing(model: Any, pre: Preprocessing) -> Any:
    """Attach ``pre`` to ``model`` (what :func:`preprocessing_of` then reads); returns the model."""
    if pre.input_size != model.input_size:
        raise ValueError(f"preprocessing for {pre.input_size}x{pre.input_size} faces given to a network that takes "
                         f"{model.input_size}x{model.input_size}")
    model.preprocess = pre
    return model


# --------------------------------------------------------------------------------------------
# What users pass -> uint8 grayscale faces
# --------------------------------------------------------------------------------------------


#: The smallest face side read from what users pass: an array whose only readings give smaller faces (a
#: 5 x 48 x 3 array: 48 x 3 faces, or a 5 x 48 image) is refused instead of guessed.
MIN_FACE_SIDE = 8
_CHANNELS = (1, 3, 4)  # gray, BGR, BGRA (channels last, as OpenCV reads images)


def _from_tensor(t: Any, what: str) -> np.ndarray:
    """A torch tensor as a numpy array with channels last: N x C x H x W (C 1 or 3, RGB as torchvision reads
    images) becomes N x H x W x C in BGR; a 1 x H x W tensor is one face; a 3 x H x W tensor is refused as
    ambiguous (one colour image, or three gray faces?)."""
    a = t.detach().cpu().numpy()
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in _CHANNELS:
        a = np.moveaxis(a, 1, -1)
        return a[..., ::-1] if a.shape[-1] == 3 else a  # (RGB -> BGR)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] not in _CHANNELS:
        raise ValueError(f"a {what} is ambiguous: pass one colour face as a 1 x 3 x H x W tensor, or gray faces "
                         "as N x H x W (or N x 1 x H x W)")
    if a.ndim == 3 and a.shape[0] == 1 and a.shape[-1] not in _CHANNELS:
        return a[0]
    return a


def _as_batch(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as N x H x W (gray), N x H x W x 3 (BGR) or N x H x W x 4 (BGRA), or a one-line refusal."""
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in _CHANNELS and min(a.shape[:2]) >= MIN_FACE_SIDE):
        a = a[None]  # one face: H x W, or one image with its channels last
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3 and not (a.ndim == 4 and a.shape[-1] in (3, 4)):
        raise ValueError(f"faces must be N x H x W grayscale (or H x W, or BGR H x W x 3), got a {what}")
    if len(a) and min(a.shape[1:3]) < MIN_FACE_SIDE:
        raise ValueError(f"faces must be at least {MIN_FACE_SIDE} x {MIN_FACE_SIDE} pixels: a {what} reads as "
                         f"{a.shape[1]} x {a.shape[2]} faces (N x H x W gray, or H x W x 3 BGR)")
    return a


def _as_uint8(a: np.ndarray, what: str) -> np.ndarray:
    """Pixel values as uint8: floats in [0, 1] are scaled by 255; other values must lie in 0-255."""
    if not a.size or a.dtype == np.uint8:
        return a.astype(np.uint8, copy=False)
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(a.dtype, np.floating) and 0 <= lo and hi <= 1:
        a = a * 255.0
    elif not (0 <= lo and hi <= 255):
        raise ValueError(f"pixel values must lie in 0-255 (or 0-1 for floats), got {lo:g} to {hi:g} in a {what}")
    return np.rint(a).astype(np.uint8)


def _to_gray(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3:
        return np.ascontiguousarray(a)  # (a mirrored view, face[:, ::-1], has negative strides torch refuses)
    if not len(a):
        return np.zeros(a.shape[:3], np.uint8)
    code = cv2.COLOR_BGR2GRAY if a.shape[-1] == 3 else cv2.COLOR_BGRA2GRAY
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), code) for f in a])


def as_gray_faces(faces: Any) -> np.ndarray | list[np.ndarray]:
    """``faces`` as uint8 grayscale: an N x H x W array, or a list of 2-D arrays of different sizes.

    Accepted, where the meaning is clear: N x H x W or one H x W face; colour images as OpenCV reads them
    (BGR, H x W x 3 or N x H x W x 3; BGRA with 4 channels; H x W x 1 too); torch tensors N x C x H x W
    (C 1 or 3, RGB); floats in [0, 1] or [0, 255]; other integer types within 0-255; a list of any of these
    faces. Faces are at least :data:`MIN_FACE_SIDE` pixels a side. Anything else is refused in one line that
    names it.
    """
    if isinstance(faces, torch.Tensor):
        faces = _from_tensor(faces, f"tensor of shape {tuple(faces.shape)}")
    if isinstance(faces, (list, tuple)):
        arrays = [_from_tensor(f, f"tensor of shape {tuple(f.shape)}") if isinstance(f, torch.Tensor)
                  else np.asarray(f) for f in faces]
        if arrays and all(a.ndim >= 2 for a in arrays) and len({a.shape for a in arrays}) > 1:
            return [as_gray_faces(a)[0] for a in arrays]  # faces of different sizes, resized later
        faces = np.stack(arrays) if arrays else np.zeros((0, 0, 0), np.uint8)
    a = np.asarray(faces)
    what = f"{a.dtype} array of shape {a.shape}"
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"faces must be images of numbers (uint8 grayscale N x H x W), got a {what}")
    a = _to_gray(_as_uint8(_as_batch(a, what), what))
    if a.size == 0 and len(a):
        raise ValueError(f"faces must have pixels, got a {what}")
    return a
