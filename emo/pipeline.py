"""Frame -> faces -> emotions -> annotated frame: the one pipeline behind the demos and ``emo.predict``.

    pipe = EmotionPipeline(load_model())
    annotated, faces = pipe(frame_bgr)          # every face boxed, numbered, labelled, with class probabilities

Each frame: detect (:mod:`emo.faces`: MTCNN where installed, else Haar; faces of at least
:data:`emo.faces.MIN_FACE` of the frame's shorter side), crop with the margin and a tilted head leveled,
classify all faces in one batch (the model's own preprocessing), follow each face from frame to frame
(:mod:`emo.tracking`: a track number per person), smooth each face's probabilities with its track's previous
ones, draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from emo.faces import FACE_MARGIN, Boxes, crop_faces, locate
from emo.model import Model, predict_proba
from emo.mtcnn import default_detector
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
    (:class:`emo.tracking.Tracker`); :meth:`reset` starts afresh (a new video or photo). ``detect_every`` > 1
    (the live demos): the detector runs on every n-th frame only and the frames between reuse its faces' boxes
    (each is still classified on its own pixels); a still image gets the same faces either way. ``margin``:
    the detector's own (``detector.margin``) unless given, else :data:`emo.faces.FACE_MARGIN`.
    """

    model: Model
    detector: Callable[[np.ndarray], Boxes] | None = None
    margin: float | None = None
    smoothing: float = 0.5
    tta: bool = False
    draw_bars: bool = True
    whole_frames: bool = False  # each frame is one face cropped already (no detection: --no-detect)
    tracker: Tracker = field(default_factory=Tracker)
    detect_every: int = 1
    _frames: int = field(default=0, repr=False)  # frames seen since reset (which of them detect)
    _found: tuple[Boxes, np.ndarray] = field(default=(np.zeros((0, 4), int), np.zeros(0)), repr=False)
    _previous: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # each live track's last probs

    def __post_init__(self) -> None:
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing={self.smoothing} must be in [0, 1)")
        if self.detect_every < 1:
            raise ValueError(f"detect_every={self.detect_every} must be at least 1 (every frame)")
        if self.detector is None and not self.whole_frames:
            self.detector = default_detector()
        if self.margin is None:
            self.margin = getattr(self.detector, "margin", FACE_MARGIN)
        self.model.eval()

    def reset(self) -> None:
        self._previous, self._frames = {}, 0
        self.tracker.reset()

    def detect(self, frame: np.ndarray) -> list[Face]:
        """The faces the detector finds in ``frame``, classified (and smoothed along their tracks)."""
        if self._frames % self.detect_every == 0:
            self._found = locate(self.detector, frame)  # type: ignore[arg-type]
        self._frames += 1
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return self.classify(gray, *self._found)

    def whole(self, frame: np.ndarray) -> list[Face]:
        """``frame`` taken as one face that is cropped already: its centred square, as ``emo.data import`` takes
        an image without ``--detect``."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        side = min(h, w)
        return self.classify(gray, np.array([[(w - side) // 2, (h - side) // 2, side, side]]), margin=0.0)

    def classify(self, gray: np.ndarray, boxes: Boxes, angles: np.ndarray | None = None,
                 margin: float | None = None) -> list[Face]:
        """The faces in ``boxes`` of the gray frame, cropped (with ``margin``, default the pipeline's; turned
        upright by ``angles``, degrees, where given), classified in one batch, numbered by :attr:`tracker` and
        smoothed along each track."""
        order = np.argsort(boxes[:, 0], kind="stable") if len(boxes) else np.arange(0)  # listed left to right
        boxes = boxes[order]
        angles = None if angles is None else np.asarray(angles)[order]
        numbers = self.tracker.update(boxes)
        live = {t.number for t in self.tracker.tracks}
        self._previous = {k: v for k, v in self._previous.items() if k in live}
        if len(boxes) == 0:
            return []
        crops = crop_faces(gray, boxes, self.model.input_size, self.margin if margin is None else margin, angles)
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
        labels: list[tuple[int, int, int, int]] = []  # the labels drawn so far: a label covers none of them either
        for k, f in enumerate(faces, 1):
            x, y, w, h = f.box
            cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), max(2, round(2 * s)))
            text = f"{f.track or k} {f.label} {f.confidence:.0%}"
            ls = min(s, max(0.6, w / 90))  # a small face in a large photo: its label no wider than about twice it
            thick = max(1, round(2 * ls))
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * ls, thick)
            pad = round(6 * ls)
            lw = tw + pad + thick  # (getTextSize leaves out part of the strokes' width)
            lx, ty = label_place(out.shape, f.box, (lw, th + pad), [o.box for o in faces if o is not f] + labels)
            labels.append((lx, ty - th - pad, lw, th + pad + pad // 2))
            cv2.rectangle(out, (lx, ty - th - pad), (lx + lw, ty + pad // 2), (0, 220, 0), -1)
            cv2.putText(out, text, (lx + pad // 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * ls, (0, 0, 0), thick,
                        cv2.LINE_AA)
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


def label_place(shape: tuple[int, ...], box: tuple[int, int, int, int], size: tuple[int, int],
                others: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Where a label of ``size`` (w, h) for ``box`` goes, as (left, baseline): above the box, else below it
    (each flush with its left edge, else its right), else inside its top; the first place that stays in the
    frame and covers none of ``others`` (the other faces, and the labels placed already)."""
    x, y, w, h = box
    lw, lh = size
    lefts = [max(0, min(left, shape[1] - lw)) for left in (x, x + w - lw)]
    for ty in (y - lh // 3, y + h + lh):
        for lx in lefts:
            top, bottom = ty - lh, ty + lh // 3
            inside = top >= 0 and bottom <= shape[0]
            if inside and not any(lx < ox + ow and ox < lx + lw and top < oy + oh and oy < bottom
                                  for ox, oy, ow, oh in others):
                return lx, ty
    return lefts[0], y + lh


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
        rows.append(f"<b>{f.track or k}: {f.label}</b><table cellspacing='0' cellpadding='0' style='line-height: 1.3'>"
                    f"{cells}</table>")
    return "".join(rows)


#: The live demos run the detector on every n-th frame and reuse its boxes between (at 30 fps, faces move a few
#: pixels in that time): measured by ``python -m emo.bench`` (demo FPS, idle and with one core busy).
LIVE_DETECT_EVERY = 3


def live_pipeline(model: Model, smoothing: float = 0.5, detect: bool = True) -> EmotionPipeline:
    """The pipeline of the live demos (the app, the notebook widget, the benchmark's demo rows): the same detector
    and policy as ``emo.predict`` (:func:`emo.mtcnn.default_detector`), run every :data:`LIVE_DETECT_EVERY`
    frames, probability bars left to the demo's side panel; without ``detect``, each frame taken whole as one
    face that is cropped already."""
    return EmotionPipeline(model, default_detector() if detect else None, smoothing=smoothing, draw_bars=False,
                           whole_frames=not detect, detect_every=LIVE_DETECT_EVERY)
