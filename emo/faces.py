"""Frame -> faces -> emotions -> annotated frame: the one pipeline behind both demos.

    pipe = EmotionPipeline(load_model())
    annotated, faces = pipe(frame_bgr)          # every face boxed, labelled, with class probabilities

Detectors are pluggable callables ``gray -> N x 4 boxes (x, y, w, h)``. :class:`HaarDetector` uses
the cascade shipped inside the OpenCV 4.x wheel (OpenCV 5 wheels dropped ``CascadeClassifier``, hence
``opencv-python-headless<5``); :class:`YuNetDetector` wraps ``cv2.FaceDetectorYN`` for users who
have its ONNX model file. Frames come from :func:`open_source`: a camera index, a video or an image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

from emo.model import Model, predict_proba

Boxes = np.ndarray  # N x 4 int (x, y, w, h)
#: The smallest face (pixels, in the frame) that the live demos look for: searching down to 30 pixels costs a
#: third more detection time, the larger part of a frame's time, for faces farther than about 2 m from a webcam.
LIVE_MIN_FACE = 60
#: How much the square crop around a detected box grows on each side, as a fraction of the box's side. FER-2013
#: faces fill their frame, and the Haar box on them is 0.96 of the side: measured on validation faces placed in
#: 640x480 scenes, 0.02 classified best (0.1, the old default, cost 4.3 points more): experiments/framing/.
FACE_MARGIN = 0.02
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"}


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
        return (np.asarray(boxes, np.float64).reshape(-1, 4) * scale).round().astype(int)


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


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


@dataclass
class Face:
    box: tuple[int, int, int, int]
    probs: np.ndarray
    classes: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


@dataclass
class EmotionPipeline:
    """Detect, crop, classify all faces of a frame in one batch, smooth over time, draw.

    ``smoothing`` in [0, 1): weight of the previous frame's probabilities for a face that overlaps
    (IoU > 0.3) a face of the previous frame; 0 turns it off.
    """

    model: Model
    detector: Callable[[np.ndarray], Boxes] | None = None
    margin: float = FACE_MARGIN
    smoothing: float = 0.5
    tta: bool = False
    draw_bars: bool = True
    _previous: list[Face] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing={self.smoothing} must be in [0, 1)")
        self.detector = self.detector or HaarDetector()
        self.model.eval()

    def reset(self) -> None:
        self._previous = []

    def detect(self, frame: np.ndarray) -> list[Face]:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = self.detector(gray)
        boxes = boxes[np.argsort(boxes[:, 0], kind="stable")] if len(boxes) else boxes  # numbered left to right
        if len(boxes) == 0:
            self._previous = []
            return []
        probs = predict_proba(self.model, crop_faces(gray, boxes, self.model.input_size, self.margin), tta=self.tta)
        faces = []
        for box, p in zip(boxes, probs):
            if self.smoothing and self._previous:
                best = max(self._previous, key=lambda f: _iou(np.asarray(f.box), box))
                if _iou(np.asarray(best.box), box) > 0.3:
                    p = self.smoothing * best.probs + (1 - self.smoothing) * p
            faces.append(Face(tuple(int(v) for v in box), p, self.model.classes))
        self._previous = faces
        return faces

    def draw(self, frame: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Each face boxed and numbered (``1 happy 80%``: the number of its row in the demos' side panels),
        with its probability bars beside it when ``draw_bars`` (annotated files, which have no side panel)."""
        out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
        for k, f in enumerate(faces, 1):
            x, y, w, h = f.box
            cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), 2)
            text = f"{k} {f.label} {f.confidence:.0%}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
            ty = y - 8 if y - th - 12 > 0 else y + h + th + 8
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
        faces = self.detect(frame)
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
        rows.append(f"<b>{k}: {f.label}</b><table>{cells}</table>")
    return "".join(rows)


def live_pipeline(model: Model, smoothing: float = 0.5) -> EmotionPipeline:
    """The pipeline of the live demos (the app, the notebook widget, the benchmark's demo rows): faces of at
    least :data:`LIVE_MIN_FACE` pixels, probability bars left to the demo's side panel."""
    return EmotionPipeline(model, HaarDetector(min_size=LIVE_MIN_FACE), smoothing=smoothing, draw_bars=False)


# --------------------------------------------------------------------------------------------
# Frame sources: camera, video file, image
# --------------------------------------------------------------------------------------------


class SourceError(RuntimeError):
    """A camera, video or image that cannot be opened."""


class FrameSource:
    """Frames as BGR arrays from a camera index, a video file or a still image (repeated).

    ``read()`` returns ``None`` at the end of a video; an image yields the same frame each call.
    ``release()`` frees the camera; the object is also a context manager and an iterator.
    """

    def __init__(self, source: int | str | Path, size: tuple[int, int] | None = (640, 480)) -> None:
        self.source, self.size = source, size
        self.cap: cv2.VideoCapture | None = None
        self.image: np.ndarray | None = None
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        if isinstance(source, int):
            self.cap = cv2.VideoCapture(source)
            if not self.cap.isOpened():
                self.cap.release()
                raise SourceError(f"no camera {source} could be opened: pass --source with a video file or an image")
            if size:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            self.kind = "camera"
            return
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path} does not exist: pass a camera index, a video file or an image")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            self.image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if self.image is None:
                raise SourceError(f"{path} is not a readable image")
            self.kind = "image"
            return
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"{path} is not a readable video: pass a video file (mp4, avi), an image or a camera index")
        self.kind = "video"

    @property
    def fps(self) -> float:
        return float(self.cap.get(cv2.CAP_PROP_FPS) or 0) if self.cap is not None else 0.0

    def read(self) -> np.ndarray | None:
        if self.image is not None:
            frame = self.image.copy()
        else:
            if self.cap is None:
                return None
            ok, frame = self.cap.read()
            if not ok:
                return None
        if self.size and self.kind != "camera" and frame.shape[1] > self.size[0]:
            s = self.size[0] / frame.shape[1]
            frame = cv2.resize(frame, (self.size[0], round(frame.shape[0] * s)), interpolation=cv2.INTER_AREA)
        return frame

    def skip(self) -> bool:
        """Pass over one video frame without decoding it into an image; False at the end."""
        return self.cap is not None and bool(self.cap.grab())

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Pacer:
    """Plays a video file at its own frame rate: waits when processing is ahead, and drops (skips without
    showing) the frames whose time has passed when it falls behind, so the video never plays slowed down.
    Cameras and images are not paced (a camera delivers frames in real time; an image is shown once)."""

    def __init__(self, source: "FrameSource") -> None:
        self.source = source
        self.period = 1.0 / source.fps if source.kind == "video" and source.fps > 0 else 0.0
        self.start: float | None = None
        self.index = 0  # frames taken from the source so far (shown or dropped)
        self.dropped = 0

    def read(self) -> np.ndarray | None:
        """The next frame that is due, or None at the end."""
        if self.period:
            now = time.perf_counter()
            if self.start is None:
                self.start = now
            due = int((now - self.start) / self.period)
            while self.index < due:  # behind: skip the frames already past their time
                if not self.source.skip():
                    return None
                self.index += 1
                self.dropped += 1
            wait = self.start + self.index * self.period - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        self.index += 1
        return self.source.read()

    @property
    def dropped_note(self) -> str:
        """`` (N dropped to keep time)`` once frames were dropped, else nothing: for status lines."""
        return f" ({self.dropped} dropped to keep time)" if self.dropped else ""


class FpsMeter:
    """Frames per second over a sliding window of the last ``window`` frames."""

    def __init__(self, window: int = 30) -> None:
        self.window, self.times = window, []  # type: ignore[var-annotated]

    def tick(self) -> float:
        self.times = (self.times + [time.perf_counter()])[-self.window:]
        return self.fps

    @property
    def fps(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0


def write_test_video(path: str | Path, face_image: np.ndarray, frames: int = 30, fps: float = 15.0,
                     size: tuple[int, int] = (640, 480)) -> Path:
    """A short video of ``face_image`` (BGR) drifting across a ``size`` canvas: input for demos and tests."""
    path = Path(path)
    w, h = size
    fh, fw = face_image.shape[:2]
    scale = min(0.9 * h / fh, 0.6 * w / fw)
    face = cv2.resize(face_image, (int(fw * scale), int(fh * scale)), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise SourceError(f"cannot write a video at {path}")
    for i in range(frames):
        canvas = np.full((h, w, 3), 40, np.uint8)
        x = int((w - face.shape[1]) * (0.5 + 0.3 * np.sin(2 * np.pi * i / max(frames, 1))))
        y = (h - face.shape[0]) // 2
        canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return path


def sample_photo() -> np.ndarray:
    """A real photo with one face that ships offline: scikit-image's ``astronaut`` (Eileen Collins), BGR."""
    try:
        from skimage import data as skdata
    except ImportError as e:
        raise RuntimeError("sample_photo needs scikit-image: pip install scikit-image (in the dev extra)") from e
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
