"""Frame -> faces -> emotions -> annotated frame: the one pipeline behind the demos and ``emo.predict``.

    pipe = EmotionPipeline(load_model())
    annotated, faces = pipe(frame_bgr)          # every face boxed, numbered, labelled, with class probabilities

Each frame: detect (:mod:`emo.faces`), crop with the margin, classify all faces in one batch (the model's own
preprocessing), follow each face from frame to frame (:mod:`emo.tracking`: a track number per person), smooth
each face's probabilities with its track's previous ones, draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from emo.faces import FACE_MARGIN, LIVE_MIN_FACE, Boxes, HaarDetector, crop_faces
from emo.model import Model, predict_proba
from emo.tracking import Tracker


@dataclass
class Face:
    box: tuple[int, int, int, int]
    probs: np.ndarray
    classes: tuple[str, ...]
    track: int = 0  # the person's number through a video (emo.tracking); 0 where not tracked

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


@dataclass
class EmotionPipeline:
    """Detect, crop, classify all faces of a frame in one batch, smooth over time, draw.

    ``smoothing`` in [0, 1): weight of a face's track's previous probabilities (an exponential moving average
    along the track: causal, as a live demo needs); 0 turns it off. ``tracker`` numbers the faces
    (:class:`emo.tracking.Tracker`); :meth:`reset` starts afresh (a new video or photo).
    """

    model: Model
    detector: Callable[[np.ndarray], Boxes] | None = None
    margin: float = FACE_MARGIN
    smoothing: float = 0.5
    tta: bool = False
    draw_bars: bool = True
    whole_frames: bool = False  # each frame is one face cropped already (no detection: --no-detect)
    tracker: Tracker = field(default_factory=Tracker)
    _previous: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # each live track's last probs

    def __post_init__(self) -> None:
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing={self.smoothing} must be in [0, 1)")
        self.detector = self.detector or HaarDetector()
        self.model.eval()

    def reset(self) -> None:
        self._previous = {}
        self.tracker.reset()

    def detect(self, frame: np.ndarray) -> list[Face]:
        """The faces the detector finds in ``frame``, classified (and smoothed with the previous frame's)."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return self.classify(gray, self.detector(gray))  # type: ignore[misc]

    def whole(self, frame: np.ndarray) -> list[Face]:
        """``frame`` taken as one face that is cropped already: its centred square, as ``emo.data import`` takes
        an image without ``--detect``."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        side = min(h, w)
        return self.classify(gray, np.array([[(w - side) // 2, (h - side) // 2, side, side]]), margin=0.0)

    def classify(self, gray: np.ndarray, boxes: Boxes, margin: float | None = None) -> list[Face]:
        """The faces in ``boxes`` of the gray frame, cropped (with ``margin``, default the pipeline's), classified
        in one batch and smoothed with the overlapping faces of the previous frame."""
        boxes = boxes[np.argsort(boxes[:, 0], kind="stable")] if len(boxes) else boxes  # listed left to right
        numbers = self.tracker.update(boxes)
        live = {t.number for t in self.tracker.tracks}
        self._previous = {k: v for k, v in self._previous.items() if k in live}
        if len(boxes) == 0:
            return []
        crops = crop_faces(gray, boxes, self.model.input_size, self.margin if margin is None else margin)
        probs = predict_proba(self.model, crops, tta=self.tta)
        faces = []
        for box, p, number in zip(boxes, probs, numbers):
            if self.smoothing and number in self._previous:
                p = self.smoothing * self._previous[number] + (1 - self.smoothing) * p
            self._previous[number] = p
            faces.append(Face(tuple(int(v) for v in box), p, self.model.classes, number))
        return faces

    def draw(self, frame: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Each face boxed and numbered (``1 happy 80%``: its track's number, as in the demos' side panels),
        with its probability bars beside it when ``draw_bars`` (annotated files, which have no side panel)."""
        out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
        for k, f in enumerate(faces, 1):
            x, y, w, h = f.box
            cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), 2)
            text = f"{f.track or k} {f.label} {f.confidence:.0%}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
            ty = y - 8 if y - th - 12 > 0 else y + h + th + 8
            if ty + 4 > out.shape[0]:  # (no room above or below the box: inside its top)
                ty = y + th + 8
            cv2.rectangle(out, (x, ty - th - 6), (x + tw + 6, ty + 4), (0, 220, 0), -1)
            cv2.putText(out, text, (x + 3, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
            if self.draw_bars:
                self._draw_bars(out, f, x + w + 6, y)
        return out

    @staticmethod
    def _draw_bars(out: np.ndarray, f: Face, x: int, y: int, name_w: int = 58, bar_w: int = 60) -> None:
        """Per-class probabilities as a small bar panel beside the box (left of it if no room on the right)."""
        panel_w, row = name_w + bar_w + 8, 13
        if x + panel_w > out.shape[1]:
            x = max(0, f.box[0] - panel_w - 6)
        y = max(0, min(y, out.shape[0] - row * len(f.classes) - 4))
        cv2.rectangle(out, (x, y), (x + panel_w, y + row * len(f.classes) + 4), (30, 30, 30), -1)
        for k, (c, p) in enumerate(zip(f.classes, f.probs)):
            yy = y + 4 + row * k
            cv2.putText(out, c[:9], (x + 3, yy + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
            bx = x + name_w + 4
            cv2.rectangle(out, (bx, yy + 1), (bx + int(bar_w * float(p)), yy + 9), (0, 200, 255), -1)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, list[Face]]:
        faces = self.whole(frame) if self.whole_frames else self.detect(frame)
        return self.draw(frame, faces), faces


def faces_html(faces: list[Face], bar: int = 20) -> str:
    """Each face's probabilities as HTML bars (block characters, which Qt's labels and browsers both draw),
    numbered like the boxes: the demos' side panel."""
    if not faces:
        return "<i>no face found</i>"
    rows = []
    for k, f in enumerate(faces, 1):
        cells = "".join(f"<tr><td>{c}</td><td><span style='color:#f0a000'>{'&#9608;' * round(bar * float(p))}</span>"
                        f"</td><td align='right'>{float(p):.0%}</td></tr>" for c, p in zip(f.classes, f.probs))
        rows.append(f"<b>{f.track or k}: {f.label}</b><table>{cells}</table>")
    return "".join(rows)


def live_pipeline(model: Model, smoothing: float = 0.5, detect: bool = True) -> EmotionPipeline:
    """The pipeline of the live demos (the app, the notebook widget, the benchmark's demo rows): faces of at
    least :data:`LIVE_MIN_FACE` pixels, probability bars left to the demo's side panel; without ``detect``, each
    frame taken whole as one face that is cropped already."""
    return EmotionPipeline(model, HaarDetector(min_size=LIVE_MIN_FACE), smoothing=smoothing, draw_bars=False,
                           whole_frames=not detect)
