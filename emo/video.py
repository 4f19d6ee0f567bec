"""Where frames come from and go to: a camera, a video file or a still image; pacing and frame rate.

:class:`FrameSource` reads BGR frames; :class:`Pacer` plays a video at its own rate, dropping late frames;
:class:`FpsMeter` measures; :func:`write_test_video` and :func:`sample_photo` make inputs for the demos and
tests that ship with the project (no camera needed). This module imports nothing else of ``emo`` but its
file helpers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from emo.files import IMAGE_SUFFIXES, atomic_path, check_regular, printable
from emo.images import check_pixels, read_image


class SourceError(ValueError):
    """A camera, video or image that cannot be opened (a bad input: commands report it in one line)."""


@contextlib.contextmanager
def _openable_name(path: Path) -> Iterator[str]:
    """A name OpenCV can open for ``path``: the path itself, or where it is not valid UTF-8 (which OpenCV's
    readers crash on) a link to it with a plain name, in a temporary folder, for as long as the block runs."""
    try:
        os.fspath(path).encode("utf-8")
        yield str(path)
        return
    except UnicodeEncodeError:
        pass
    with tempfile.TemporaryDirectory(prefix=".emo-video-") as tmp:
        link = Path(tmp) / f"video{path.suffix.encode('ascii', 'ignore').decode() or '.bin'}"
        os.symlink(path.resolve(), link)
        yield str(link)


class FrameSource:
    """Frames as BGR arrays from a camera index, a video file or a still image (repeated).

    ``read()`` returns ``None`` at the end of a video; an image yields the same frame each call.
    ``release()`` frees the camera; the object is also a context manager and an iterator. Video frames wider
    than ``size`` are shrunk to its width (the live demos' cost per frame); a still image is kept whole, so the
    live demos and ``emo.predict`` classify the same pixels of a photo.
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
                raise SourceError(f"no camera {source} could be opened: pass --input with a video file or a photo")
            if size:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            self.kind = "camera"
            return
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{printable(path)} does not exist: pass a camera index, a video file or an image")
        try:
            check_regular(path, "video file or image")  # (a FIFO or a device would hang the reader)
            if path.suffix.lower() in IMAGE_SUFFIXES:
                self.image = read_image(path)  # (bounded before it is decoded)
                self.kind = "image"
                return
        except ValueError as e:
            raise SourceError(str(e)) from None
        except OSError as e:
            raise SourceError(f"{printable(path)} cannot be read ({e.strerror}): check its permissions") from None
        with _openable_name(path) as name:
            self.cap = cv2.VideoCapture(name)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"{printable(path)} is not a readable video: "
                              "pass a video file (mp4, avi), an image or a camera index")
        self.kind = "video"
        w, h = (int(self.cap.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_pixels(w, h, str(path))
        except ValueError as e:
            self.release()
            raise SourceError(str(e)) from None

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
        if self.size and self.kind == "video" and frame.shape[1] > self.size[0]:
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
    with atomic_path(path) as tmp:  # (its folder is made if missing)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        if not writer.isOpened():
            raise SourceError(f"cannot write a video at {path}: is its folder writable?")
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


def _portraits() -> list[np.ndarray]:
    """Head-and-shoulders cut-outs (BGR) of public-domain photos that ship offline: Eileen Collins (scikit-image's
    ``astronaut``), Grace Hopper (Matplotlib's sample data), scikit-image's ``camera`` man."""
    try:
        from matplotlib import cbook
        from skimage import data as skdata
    except ImportError as e:
        raise RuntimeError("the sample pictures need scikit-image and Matplotlib (in the dev extra)") from e
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [sample_photo()[10:340, 100:370], hopper[40:470, 80:440],
            cv2.cvtColor(skdata.camera()[70:280, 150:330], cv2.COLOR_GRAY2BGR)]


def _paste(canvas: np.ndarray, part: np.ndarray, x: int, y: int, height: int, angle: float = 0.0,
           mirror: bool = False) -> None:
    width = round(height * part.shape[1] / part.shape[0])
    part = cv2.resize(part[:, ::-1] if mirror else part, (width, height), interpolation=cv2.INTER_AREA)
    if angle:
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        part = cv2.warpAffine(part, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    h, w = min(height, canvas.shape[0] - y), min(width, canvas.shape[1] - x)
    canvas[y:y + h, x:x + w] = part[:h, :w]


def sample_group() -> np.ndarray:
    """A generated group photo, 1800x1100, BGR: five faces of 75-210 pixels (one head tilted by 20 degrees),
    cut from the public-domain portraits that ship offline (never FER-2013), on a gray background."""
    collins, hopper, camera = _portraits()
    canvas = np.full((1100, 1800, 3), 105, np.uint8)
    canvas[:] += np.linspace(0, 40, 1800, dtype=np.uint8)[None, :, None]
    for part, x, y, height, angle, mirror in [(collins, 60, 420, 620, 0, False), (hopper, 560, 300, 560, 20, False),
                                              (camera, 1040, 560, 380, 0, False), (collins, 1330, 640, 300, 0, True),
                                              (hopper, 1560, 700, 260, 0, True)]:
        _paste(canvas, part, x, y, height, angle, mirror)
    return canvas


def write_pair_video(path: str | Path, frames: int = 90, fps: float = 30.0) -> Path:
    """A 640x480 video of two people side by side (Collins and Hopper, public domain): the camera slowly drifts,
    and at the middle Hopper's head tilts by up to 25 degrees and back; input for demos and exercises."""
    path = Path(path)
    collins, hopper, _ = _portraits()
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
        if not writer.isOpened():
            raise SourceError(f"cannot write a video at {path}: is its folder writable?")
        for i in range(frames):
            t = i / max(frames - 1, 1)
            canvas = np.full((480, 640, 3), 60, np.uint8)
            dx = round(30 * np.sin(2 * np.pi * t))
            _paste(canvas, collins, 40 + dx, 80, 380)
            _paste(canvas, hopper, 320 + dx, 60, 400, angle=25 * np.sin(np.pi * t) ** 2)
            writer.write(canvas)
        writer.release()
    return path
