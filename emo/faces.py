"""Finding faces in a frame and cutting them out as the network expects them.

Detectors are pluggable callables ``gray -> N x 4 boxes (x, y, w, h)``. :class:`HaarDetector` uses the cascade
shipped inside the OpenCV 4.x wheel (OpenCV 5 wheels dropped ``CascadeClassifier``, hence
``opencv-python-headless<5``); :class:`YuNetDetector` wraps ``cv2.FaceDetectorYN`` for users who have its ONNX
model file. :func:`crop_faces` cuts a square around each box, grown by :data:`FACE_MARGIN`, padded with edge
pixels where it leaves the frame. What is done with the faces is :mod:`emo.pipeline`'s; where frames come
from is :mod:`emo.video`'s. This module imports nothing else of ``emo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

Boxes = np.ndarray  # N x 4 int (x, y, w, h)
#: The smallest face (pixels, in the frame) that the live demos look for: searching down to 30 pixels costs a
#: third more detection time, the larger part of a frame's time, for faces farther than about 2 m from a webcam.
LIVE_MIN_FACE = 60
#: How much the square crop around a detected box grows on each side, as a fraction of the box's side. FER-2013
#: faces fill their frame, and the Haar box on them is 0.96 of the side: measured on validation faces placed in
#: 640x480 scenes, 0.02 classified best (0.1, the old default, cost 4.3 points more): experiments/framing/.
FACE_MARGIN = 0.02


class Detector(Protocol):
    def __call__(self, gray: np.ndarray) -> Boxes: ...


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a frame downscaled to ``detect_width`` for speed."""

    def __init__(self, scale_factor: float = 1.2, min_neighbors: int = 6, min_size: int = 30,
                 detect_width: int | None = 400, cascade: str = "haarcascade_frontalface_default.xml") -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError("this OpenCV has no CascadeClassifier (OpenCV 5 dropped it): "
                               "pip install 'opencv-python-headless>=4.8,<5'")
        path = Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path}: reinstall opencv-python-headless>=4.8,<5")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.detect_width = detect_width

    def __call__(self, gray: np.ndarray) -> Boxes:
        scale = 1.0
        if self.detect_width and gray.shape[1] > self.detect_width:
            scale = gray.shape[1] / self.detect_width
            gray = cv2.resize(gray, (self.detect_width, round(gray.shape[0] / scale)), interpolation=cv2.INTER_AREA)
        min_size = max(12, round(self.min_size / scale))
        boxes = self.cascade.detectMultiScale(cv2.equalizeHist(gray), self.scale_factor, self.min_neighbors,
                                              minSize=(min_size, min_size))
        return drop_nested((np.asarray(boxes, np.float64).reshape(-1, 4) * scale).round().astype(int))


def intersections(a: Boxes, b: Boxes) -> np.ndarray:
    """len(a) x len(b) areas of overlap of boxes (x, y, w, h)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    iw = np.minimum(a[:, 0:1] + a[:, 2:3], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0])
    ih = np.minimum(a[:, 1:2] + a[:, 3:4], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def drop_nested(boxes: Boxes, overlap: float = 0.5) -> Boxes:
    """``boxes`` without those that lie mostly (``overlap`` of their area or more) inside a larger one: a face
    gets one box, where a cascade sometimes returns a second, smaller one inside it (the larger is kept)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) < 2:
        return boxes
    area = boxes[:, 2] * boxes[:, 3]
    inter = intersections(boxes, boxes)
    kept: list[int] = []
    for i in np.argsort(-area, kind="stable"):
        if not any(inter[i, j] >= overlap * area[i] for j in kept):
            kept.append(int(i))
    return boxes[sorted(kept)]


class YuNetDetector:
    """``cv2.FaceDetectorYN`` (YuNet): stronger on turned and small faces; needs its .onnx model file."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.7) -> None:
        if not Path(model_path).exists():
            raise FileNotFoundError(f"no YuNet model at {model_path}: pass the path of face_detection_yunet_*.onnx")
        self.net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)

    def __call__(self, gray: np.ndarray) -> Boxes:
        bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.net.detect(bgr)
        return np.zeros((0, 4), int) if faces is None else faces[:, :4].round().astype(int)


def crop_faces(gray: np.ndarray, boxes: Boxes, size: int, margin: float = FACE_MARGIN) -> np.ndarray:
    """Square crops around each box, grown by ``margin`` of its size on every side, resized to ``size``."""
    out = np.zeros((len(boxes), size, size), np.uint8)
    H, W = gray.shape
    for i, (x, y, w, h) in enumerate(boxes):
        side = max(w, h) * (1 + 2 * margin)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
        crop = gray[max(0, y0):min(H, y1), max(0, x0):min(W, x1)]
        # pad with edge pixels where the grown box leaves the frame, so the face stays centred
        crop = cv2.copyMakeBorder(crop, max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W), cv2.BORDER_REPLICATE)
        interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(crop, (size, size), interpolation=interp)
    return out
