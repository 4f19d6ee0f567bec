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
