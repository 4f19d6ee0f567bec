"""MTCNN, the default face detector: boxes and eye positions from the PyPI wheel ``facenet-pytorch``.

Its three small PyTorch networks (about 2 MB of weights inside the wheel; nothing is downloaded) run on the
torch the project already has. Install it without its pinned dependencies (they would replace that torch)::

    pip install --no-deps facenet-pytorch==2.6.0

Chosen over OpenCV's Haar cascade and MediaPipe's BlazeFace on placed FER-2013 faces, rotated and covered
faces and three-face frames (``experiments/detectors/``): it finds the most faces, gives five landmarks (the
eyes level a tilted head, :func:`emo.faces.crop_faces` with ``angles``), and its cost is set by the smallest
face asked for relative to the frame, not by the frame's pixels. :func:`default_detector` is the one the demos
and ``emo.predict`` use: MTCNN where the wheel is installed, else Haar with a one-line note. This module imports
only :mod:`emo.faces`.
"""

from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np

from emo.faces import MIN_FACE, Boxes, Detector, HaarDetector, check_min_face, outermost

INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
#: MTCNN's box is narrower and taller than a FER-2013 face's square; a square of this many times the box's
#: geometric-mean side, on the box's centre, matches FER-2013's framing (median over validation faces placed
#: in 640x480 frames: experiments/detectors/align-val.md).
SQUARE = 1.08
#: The crop's margin around that square: 0 classified best on validation, upright (0.02 cost 0.7 points, -0.05
#: 1.3) (experiments/detectors/align-val.md).
MARGIN = 0.0


def available() -> bool:
    return importlib.util.find_spec("facenet_pytorch") is not None


class MTCNNDetector:
    """Faces of at least ``min_face`` of the frame's shorter side, as squares framed like FER-2013's faces,
    with the roll angle (degrees) that levels each face's eyes (:meth:`locate`)."""

    margin = MARGIN  # read by emo.pipeline.EmotionPipeline and the importer's --detect
    WINDOW = 12  # the side of MTCNN's smallest window (its first network's input), pixels

    def __init__(self, min_face: float = MIN_FACE, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)) -> None:
        check_min_face(min_face)
        if not available():
            raise RuntimeError(f"MTCNN needs facenet-pytorch: {INSTALL}")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from facenet_pytorch import MTCNN
        self.min_face, self.thresholds = min_face, thresholds
        self._nets = {}  # min_face in pixels -> MTCNN (its image pyramid starts from that size)
        self._make = lambda px: MTCNN(keep_all=True, min_face_size=px, thresholds=list(thresholds), device="cpu")

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MTCNN's own output for a gray or BGR frame: N x 4 boxes (x0, y0, x1, y1) and N x 5 x 2 landmarks (the
        eye on the image's left, the other eye, the nose, the mouth's left and right corners)."""
        if min(image.shape[:2]) < self.WINDOW:  # no face fits (and MTCNN's image pyramid would be empty)
            return np.zeros((0, 4)), np.zeros((0, 5, 2))
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        px = max(self.WINDOW, round(self.min_face * min(rgb.shape[:2])))
        net = self._nets.get(px) or self._nets.setdefault(px, self._make(px))
        import torch

        with torch.inference_mode():
            boxes, _, points = net.detect(rgb, landmarks=True)
        if boxes is None:
            return np.zeros((0, 4)), np.zeros((0, 5, 2))
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(points, np.float64).reshape(-1, 5, 2)

    def locate(self, image: np.ndarray) -> tuple[Boxes, np.ndarray]:
        """``(boxes, angles)``: N x 4 int squares (x, y, side, side) and the N angles by which to rotate each
        face (counter-clockwise, degrees) so that its eyes are level."""
        boxes, points = self.raw(image)
        if not len(boxes):
            return np.zeros((0, 4), int), np.zeros(0)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        side = SQUARE * np.sqrt(np.clip(w * h, 1, None))
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        squares = np.c_[cx - side / 2, cy - side / 2, side, side].round().astype(int)
        eyes = points[:, :2]
        angles = np.degrees(np.arctan2(eyes[:, 1, 1] - eyes[:, 0, 1], eyes[:, 1, 0] - eyes[:, 0, 0]))
        # MTCNN's pyramid starts at the smallest face asked for but still finds some smaller ones: the policy is
        # a floor, so that a smaller min_face is the only way to get smaller faces (the same in every demo)
        large = squares[:, 2] >= self.min_face * min(image.shape[:2])
        squares, angles = squares[large], angles[large]
        keep = outermost(squares)
        return squares[keep], angles[keep]

    def __call__(self, image: np.ndarray) -> Boxes:
        return self.locate(image)[0]


def default_detector(min_face: float = MIN_FACE, quiet: bool = False) -> Detector:
    """MTCNN where ``facenet-pytorch`` is installed, else Haar with a one-line note on stderr."""
    if available():
        return MTCNNDetector(min_face)
    if not quiet:
        print(f"note: MTCNN is not installed, so faces are found with OpenCV's Haar cascade, which misses turned, "
              f"covered and small faces ({INSTALL})", file=sys.stderr)
    return HaarDetector(min_face)
