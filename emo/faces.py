"""Finding faces in a frame and cutting them out as the network expects them.

Detectors are callables ``image -> N x 4 boxes (x, y, w, h)`` (gray or BGR frames); one that also knows how
far each face is tilted has ``locate(image) -> (boxes, angles)``. All share one policy: faces of at least
:data:`MIN_FACE` of the frame's shorter side, one box per face. :class:`HaarDetector` is the cascade shipped
inside the OpenCV 4.x wheel (OpenCV 5 wheels dropped ``CascadeClassifier``, hence ``opencv-python-headless<5``);
the demos and ``emo.predict`` use :func:`emo.mtcnn.default_detector` (MTCNN where installed, else Haar).
:func:`crop_faces` cuts a square around each box, grown by :data:`FACE_MARGIN` and turned upright where the
angle is known, padded with edge pixels where it leaves the frame. What is done with the faces is
:mod:`emo.pipeline`'s; where frames come from is :mod:`emo.video`'s. This module imports nothing else of ``emo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

Boxes = np.ndarray  # N x 4 int (x, y, w, h)
#: The smallest face the demos and ``emo.predict`` look for, as a fraction of the frame's shorter side (24
#: pixels in a 640x480 frame, 71 in a 2000x1428 group photo): one policy, whatever the frame's size, so the app,
#: the widget and ``emo.predict`` find the same faces in the same image.
MIN_FACE = 0.05
#: How much the square crop around a detected box grows on each side, as a fraction of the box's side. FER-2013
#: faces fill their frame, and the Haar box on them is 0.96 of the side: measured on validation faces placed in
#: 640x480 scenes, 0.02 classified best (0.1, the old default, cost 4.3 points more): experiments/framing/.
FACE_MARGIN = 0.02
#: Faces turned by less than this (degrees) are cropped as they are. FER-2013's own faces lean a little either
#: way, and the network learnt them so: leveling every face cost upright faces 1.6 points on validation, leveling
#: from 15 degrees none, while it turns -10.3 points into -1.8 for faces at 30 degrees (experiments/detectors/).
MIN_ROLL = 15.0


def check_min_face(min_face: float) -> None:
    """The one check of the policy's parameter, for every detector."""
    if not 0 < min_face <= 1:
        raise ValueError(f"min_face={min_face} must be a fraction of the frame's shorter side, in (0, 1]")


class Detector(Protocol):
    def __call__(self, gray: np.ndarray) -> Boxes: ...


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, looking for faces of at least ``min_face`` of the frame's shorter side;
    the frame is first shrunk so that such a face is the cascade's 24-pixel window (as fast as the policy allows)."""

    WINDOW = 24  # the side of the default cascade's window, pixels

    def __init__(self, min_face: float = MIN_FACE, scale_factor: float = 1.2, min_neighbors: int = 6,
                 cascade: str = "haarcascade_frontalface_default.xml") -> None:
        check_min_face(min_face)
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError("this OpenCV has no CascadeClassifier (OpenCV 5 dropped it): "
                               "pip install 'opencv-python-headless>=4.8,<5'")
        path = Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path}: reinstall opencv-python-headless>=4.8,<5")
        self.min_face, self.scale_factor, self.min_neighbors = min_face, scale_factor, min_neighbors

    def __call__(self, image: np.ndarray) -> Boxes:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        smallest = self.min_face * min(gray.shape)
        scale = max(1.0, smallest / self.WINDOW)
        if scale > 1:
            gray = cv2.resize(gray, (round(gray.shape[1] / scale), round(gray.shape[0] / scale)),
                              interpolation=cv2.INTER_AREA)
        side = max(self.WINDOW, round(smallest / scale))
        boxes = self.cascade.detectMultiScale(cv2.equalizeHist(gray), self.scale_factor, self.min_neighbors,
                                              minSize=(side, side))
        boxes = (np.asarray(boxes, np.float64).reshape(-1, 4) * scale).round().astype(int)
        return boxes[outermost(boxes)]


def locate(detector: Detector, image: np.ndarray) -> tuple[Boxes, np.ndarray]:
    """``(boxes, angles)`` from any detector: its own angles where it has :meth:`locate`, else zeros."""
    if hasattr(detector, "locate"):
        return detector.locate(image)
    boxes = np.asarray(detector(image)).reshape(-1, 4)
    return boxes, np.zeros(len(boxes))


def intersections(a: Boxes, b: Boxes) -> np.ndarray:
    """len(a) x len(b) areas of overlap of boxes (x, y, w, h)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    iw = np.minimum(a[:, 0:1] + a[:, 2:3], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0])
    ih = np.minimum(a[:, 1:2] + a[:, 3:4], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def outermost(boxes: Boxes, overlap: float = 0.5) -> np.ndarray:
    """Indices (in order) of ``boxes`` that do not lie mostly (``overlap`` of their area or more) inside a
    larger one: a face gets one box, where a detector sometimes returns a second, smaller one inside it."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) < 2:
        return np.arange(len(boxes))
    area = boxes[:, 2] * boxes[:, 3]
    inter = intersections(boxes, boxes)
    kept: list[int] = []
    for i in np.argsort(-area, kind="stable"):
        if not any(inter[i, j] >= overlap * area[i] for j in kept):
            kept.append(int(i))
    return np.array(sorted(kept), int)


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


def crop_faces(gray: np.ndarray, boxes: Boxes, size: int, margin: float = FACE_MARGIN,
               angles: np.ndarray | None = None, min_roll: float = MIN_ROLL) -> np.ndarray:
    """Square crops around each box, grown by ``margin`` of its size on every side, resized to ``size``; where
    ``angles`` (degrees) are given, each face is first turned by its angle about the box's centre (the eyes
    level; faces turned by less than ``min_roll`` degrees are left as they are)."""
    out = np.zeros((len(boxes), size, size), np.uint8)
    H, W = gray.shape
    for i, (x, y, w, h) in enumerate(boxes):
        angle = 0.0 if angles is None or abs(angles[i]) < min_roll else float(angles[i])
        side = max(w, h) * (1 + 2 * margin)
        grow = 1.5 if angle else 1.0  # turning a square needs its surroundings: cut a larger one, then its middle
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(round(cx - grow * side / 2)), int(round(cy - grow * side / 2))
        x1, y1 = int(round(cx + grow * side / 2)), int(round(cy + grow * side / 2))
        crop = gray[max(0, y0):min(H, y1), max(0, x0):min(W, x1)]
        # pad with edge pixels where the grown box leaves the frame, so the face stays centred
        crop = cv2.copyMakeBorder(crop, max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W), cv2.BORDER_REPLICATE)
        n = round(size * grow)
        interp = cv2.INTER_AREA if crop.shape[0] > n else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (n, n), interpolation=interp)
        if angle:
            turn = cv2.getRotationMatrix2D((n / 2, n / 2), angle, 1.0)
            crop = cv2.warpAffine(crop, turn, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            crop = crop[(n - size) // 2:(n - size) // 2 + size, (n - size) // 2:(n - size) // 2 + size]
        out[i] = crop
    return out
