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
        """The faces the detector finds in ``frame``, classified (and smoothed along their tracks)."""
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
        in one batch, numbered by :attr:`tracker` and smoothed along each track."""
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
        """Each face boxed and numbered (``1 happy 80%``: its track's number, as in the demos' side panels), the
        label placed where it covers no other face; with ``draw_bars`` (annotated files, which have no window
        around them) a panel to the right of the frame lists every face's probabilities, so that no bar covers a
        face. Text grows with the frame (:func:`text_scale`)."""
        out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
        s = text_scale(out.shape)
        for k, f in enumerate(faces, 1):
            x, y, w, h = f.box
            cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), max(2, round(2 * s)))
            text = f"{f.track or k} {f.label} {f.confidence:.0%}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, max(1, round(2 * s)))
            pad = round(6 * s)
            ty = label_baseline(out.shape, f.box, (tw + pad, th + pad), [o.box for o in faces if o is not f])
            cv2.rectangle(out, (x, ty - th - pad), (x + tw + pad, ty + pad // 2), (0, 220, 0), -1)
            cv2.putText(out, text, (x + pad // 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0),
                        max(1, round(2 * s)), cv2.LINE_AA)
        if self.draw_bars:
            out = np.hstack([out, probability_panel(out.shape[0], faces, s)])
        return out

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, list[Face]]:
        faces = self.whole(frame) if self.whole_frames else self.detect(frame)
        return self.draw(frame, faces), faces


def text_scale(shape: tuple[int, ...]) -> float:
    """How much larger than at 640x480 labels are drawn on a frame of ``shape``: 1 up to 600 pixels on the
    short side, then in proportion (a 4032x3024 photo's labels stay readable when it is shown whole)."""
    return max(1.0, min(shape[0], shape[1]) / 600)


def label_baseline(shape: tuple[int, ...], box: tuple[int, int, int, int], size: tuple[int, int],
                   others: list[tuple[int, int, int, int]]) -> int:
    """The baseline of a label of ``size`` (w, h) for ``box``: above it, else below it, else inside its top,
    the first place that stays in the frame and covers none of the ``others`` faces."""
    x, y, w, h = box
    lw, lh = size
    for ty in (y - lh // 3, y + h + lh, y + lh):
        top, bottom = ty - lh, ty + lh // 3
        inside = top >= 0 and bottom <= shape[0]
        if inside and not any(x < ox + ow and ox < x + lw and top < oy + oh and oy < bottom
                              for ox, oy, ow, oh in others):
            return ty
    return y + lh


def probability_panel(height: int, faces: list[Face], scale: float = 1.0) -> np.ndarray:
    """A dark panel ``height`` pixels high listing each face's number, label and per-class bars, as many as fit
    (then how many more there are): drawn beside a frame, it covers no face."""
    row, width = round(13 * scale), round(190 * scale)
    panel = np.full((height, width, 3), 30, np.uint8)
    font, small = 0.45 * scale, 0.35 * scale
    block = row * (len(faces[0].classes) + 2) if faces else row
    fit = max(0, (height - row) // block)
    for k, f in enumerate(faces[:fit], 1):
        y = 4 + (k - 1) * block
        cv2.putText(panel, f"{f.track or k}: {f.label}", (4, y + row), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 220, 0),
                    max(1, round(scale)), cv2.LINE_AA)
        for j, (c, p) in enumerate(zip(f.classes, f.probs)):
            yy = y + row * (j + 1) + 4
            cv2.putText(panel, c[:9], (6, yy + round(9 * scale)), cv2.FONT_HERSHEY_SIMPLEX, small, (255, 255, 255),
                        1, cv2.LINE_AA)
            bx, bw = round(70 * scale), round(80 * scale)
            cv2.rectangle(panel, (bx, yy + 1), (bx + int(bw * float(p)), yy + round(9 * scale)), (0, 200, 255), -1)
            cv2.putText(panel, f"{float(p):.0%}", (bx + bw + 4, yy + round(9 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        small, (200, 200, 200), 1, cv2.LINE_AA)
    if len(faces) > fit:
        cv2.putText(panel, f"+{len(faces) - fit} more (faces.csv)", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX,
                    font, (255, 255, 255), 1, cv2.LINE_AA)
    if not faces:
        cv2.putText(panel, "no face found", (4, row + 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return panel


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
