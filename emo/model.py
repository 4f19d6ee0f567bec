"""A trained model, ready to use: load it by name or path, and classify faces.

    model = load_model()                          # results/best_model.pt: a MiniXception in eval mode
    probs = predict_proba(model, faces)           # uint8 N x H x W (any size) -> N x len(model.classes)

What :func:`load_model` returns is one network (:class:`emo.network.MiniXception`), an :class:`Ensemble` of
them, or with ``runtime="onnx"`` an :class:`emo.onnx_model.OnnxModel`; each has ``classes``, ``input_size``,
``preprocess`` (:class:`emo.preprocess.Preprocessing`) and ``meta`` (the checkpoint's metadata), and
:func:`predict_proba` treats them alike.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from emo import checkpoint
from emo.checkpoint import DEFAULT_MODEL, SHIPPED_MODELS, model_path
from emo.network import MiniXception
from emo.onnx_model import onnx_model
from emo.preprocess import Preprocessing, as_gray_faces, center_crop, preprocessing_of

#: How a model can run: PyTorch, or ONNX Runtime (an optional dependency, :mod:`emo.onnx_model`).
RUNTIMES = ("torch", "onnx")

__all__ = ["DEFAULT_MODEL", "SHIPPED_MODELS", "RUNTIMES", "Ensemble", "Model", "load_model", "predict_proba",
           "model_device", "default_device", "class_probabilities", "model_path"]


class Ensemble(nn.Module):
    """Several MiniXceptions of one architecture and classes, voting by the mean of their softmax outputs.

    Each member looks at the face through its own centre crop (chosen on validation when it was trained),
    so the ensemble itself takes the whole face (crop 1). ``forward`` returns the log of the mean
    probability: its softmax is that mean, so everything that calls a model (``predict_proba``, the demos,
    evaluation) treats an ensemble as one model, at the cost of one forward pass per member.
    """

    def __init__(self, members: list[MiniXception]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = preprocessing_of(members[0])
        for i, m in enumerate(members[1:], 1):
            pre = preprocessing_of(m)
            for what, a, b in (("config", m.config, members[0].config), ("classes", m.classes, members[0].classes),
                               ("normalisation", pre.normalize, first.normalize)):
                if a != b:
                    raise ValueError(f"ensemble member {i} differs from member 0 in {what} ({a!r} vs {b!r}): "
                                     "members must share architecture, classes and normalisation")
        self.members = nn.ModuleList(members)
        self.config, self.classes, self.input_size = members[0].config, members[0].classes, members[0].input_size
        self.preprocess = first.with_(crop=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([m(center_crop(x, preprocessing_of(m).crop)).float().softmax(1) for m in self.members]).mean(0)
        return p.clamp_min(1e-12).log()


#: What a checkpoint loads as: one network, or an ensemble of them.
Model = MiniXception | Ensemble


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given (refused in one line where it names no device of this machine), or CUDA where it is
    available, else the CPU."""
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device}: name a device, such as cpu, cuda or cuda:1") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this machine has no CUDA device PyTorch can use: drop --device to run "
                         "on the CPU") from None
    if chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: emo runs on cpu or cuda")
    return chosen


def load_model(path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu",
               runtime: str = "torch", threads: int = 0) -> Model:
    """A ready-to-use model in eval mode, with ``.classes``, ``.input_size``, ``.preprocess`` and ``.meta``.

    ``path`` is a checkpoint, an ``.onnx`` file (:mod:`emo.export`) or a shipped model's name (``default``,
    ``ensemble``). ``runtime="onnx"`` (or an ``.onnx`` file) gives an :class:`emo.onnx_model.OnnxModel` on the
    CPU (``threads``: ONNX Runtime's, 0 for PyTorch's count), which predicts like the network it was exported
    from; a checkpoint is exported in memory for it.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: use one of {RUNTIMES}")
    path = model_path(path)
    onnx = runtime == "onnx" or path.suffix == ".onnx"
    if onnx and torch.device(device).type != "cpu":
        raise ValueError(f"the ONNX Runtime path runs on the CPU, not {device}: drop --device or use --runtime torch")
    if path.suffix == ".onnx":
        return onnx_model(path, threads)  # type: ignore[return-value]
    ck = checkpoint.read(path)
    model: Model = (Ensemble([checkpoint.network(m) for m in checkpoint.members(ck, path)]) if "members" in ck
                    else checkpoint.network(ck))
    model.meta = checkpoint.metadata(ck)
    if onnx:
        exported = onnx_model(model.eval(), threads, name=str(path))
        exported.meta = {**model.meta, **exported.meta}
        return exported  # type: ignore[return-value]
    return model.to(device).to(memory_format=torch.channels_last).eval()


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model without PyTorch weights, such as an ONNX Runtime one)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.inference_mode()
def class_probabilities(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class probabilities of prepared input ``x``; with ``tta`` the mean over the face and its mirror."""
    x = x.contiguous(memory_format=torch.channels_last)
    p = model(x).float().softmax(1)
    if tta:
        p = 0.5 * (p + model(x.flip(3)).float().softmax(1))
    return p


def predict_proba(model: nn.Module, faces: Any, tta: bool = False, batch_size: int | None = None) -> np.ndarray:
    """Faces -> N x C probabilities, columns in ``model.classes`` order.

    ``faces`` are uint8 grayscale N x H x W (any size), or what :func:`emo.preprocess.as_gray_faces` converts:
    one face, BGR colour images, floats, a list of faces of different sizes. Each face is prepared as the
    model's checkpoint says (:func:`emo.preprocess.preprocessing_of`: resized, centre-cropped, normalised).
    With ``tta`` each face is also classified mirrored and the two softmax outputs are averaged (deterministic
    flip test-time augmentation). ``batch_size`` defaults to 32 on CPU (on our 2-core machine 1.5-2x faster
    than 512: large activations cost page faults) and 512 on CUDA.
    """
    faces = as_gray_faces(faces)
    device = model_device(model)
    if batch_size is None:
        batch_size = 512 if device.type == "cuda" else 32
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pre: Preprocessing = preprocessing_of(model)
    was_training = model.training
    model.eval()
    try:
        out = [class_probabilities(model, pre(faces[i:i + batch_size], device), tta).cpu()
               for i in range(0, len(faces), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.classes)), np.float32)
