"""ipywidgets demo for JupyterLab: camera, video file or uploaded photo, start and stop.

    from emo.widget import WidgetDemo
    WidgetDemo(load_model()).widget          # show it in a notebook cell

A kernel-side thread reads frames, runs :class:`emo.pipeline.EmotionPipeline` and pushes JPEG bytes
into an ``ipywidgets.Image``: this works in JupyterLab 4 with no browser extension (never
``cv2.imshow`` in a notebook; ``ipywebrtc`` is unmaintained and broken on JupyterLab 4).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import ipywidgets as W
import numpy as np
import torch

from emo.cli import FEW_FACES_THREADS
from emo.images import decode_image
from emo.model import Model
from emo.pipeline import Face, faces_html, live_pipeline
from emo.video import FpsMeter, FrameSource, Pacer, SourceError


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the frame as JPEG")
    return buf.tobytes()


class WidgetDemo:
    """The notebook demo. ``start()`` / ``stop()`` also work from code (that is how the tests drive it).

    A video file plays at its own frame rate, dropping frames when classification falls behind; a camera is
    read at up to ``max_fps``; ``max_fps=0`` takes every frame as fast as it comes (what the tests use).
    While a video runs, PyTorch uses ``threads`` CPU threads (default 1, as the app: the fastest for one frame
    at a time when other programs share the CPU; the threads table of ``results/benchmarks.md``)."""

    def __init__(self, model: Model, source: int | str = 0, smoothing: float = 0.5,
                 max_fps: float = 30.0, threads: int = FEW_FACES_THREADS, detect: bool = True) -> None:
        self.pipeline = live_pipeline(model, smoothing, detect)  # (detect=False: each photo one face, cropped)
        self.max_fps = max_fps
        self.threads = threads  # PyTorch's, while the video runs (0: leave them as they are)
        self.frames = 0
        self.faces: list[Face] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.fps = FpsMeter()
        # the frame keeps its aspect ratio whatever the panel beside it holds (no stretching to the row's height)
        self.image = W.Image(format="jpeg", layout=W.Layout(width="640px", height="auto", object_fit="contain"))
        self.source = W.Text(value=str(source), description="source",
                             placeholder="camera index (0) or a video / image path")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="photo")
        self.start_button = W.Button(description="start", icon="play", button_style="success")
        self.stop_button = W.Button(description="stop", icon="stop", button_style="danger", disabled=True)
        self.status = W.Label("stopped")
        self.probs = W.HTML()
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.upload.observe(self._on_upload, names="value")
        self.widget = W.VBox([
            W.HBox([self.source, self.start_button, self.stop_button, self.upload]),
            W.HBox([self.image, self.probs], layout=W.Layout(align_items="flex-start")), self.status,
        ])

    # -- still images ---------------------------------------------------------------------------
    def show_image(self, image: np.ndarray | bytes) -> list[Face]:
        """Annotate one photo (BGR array or encoded bytes) and show it."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            try:
                image = decode_image(bytes(image), "the uploaded file")  # (bounded before it is decoded)
            except ValueError as e:
                self.status.value = str(e)
                return []
        self.pipeline.reset()
        annotated, faces = self.pipeline(image)
        self._show(annotated, faces)
        self.status.value = f"photo: {len(faces)} face(s)"
        return faces

    def _on_upload(self, change: dict) -> None:
        value = change["new"]
        if value:
            item = value[0] if isinstance(value, (list, tuple)) else next(iter(value.values()))
            self.show_image(item["content"])

    def _show(self, annotated: np.ndarray, faces: list[Face]) -> None:
        h, w = annotated.shape[:2]
        fit = {"width": "640px", "height": "auto"} if w * 3 >= h * 4 else {"width": "auto", "height": "480px"}
        if (self.image.layout.width, self.image.layout.height) != (fit["width"], fit["height"]):
            self.image.layout.width, self.image.layout.height = fit["width"], fit["height"]  # a portrait frame fits
        self.image.value = encode_jpeg(annotated)
        self.faces = faces
        self.probs.value = faces_html(faces)

    # -- live video -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, source: int | str | Path | None = None) -> bool:
        """Open the source and start the capture thread; False (and a message) if it cannot be opened."""
        self.stop()
        src = self.source.value if source is None else str(source)
        try:
            frames = FrameSource(src)
        except SourceError as e:  # its message ends in a command-line hint; say what to do here instead
            self.status.value = (f"{str(e).split(': ')[0]}: type a video file or an image path in the source box, "
                                 "or upload a photo")
            self.image.value, self.probs.value, self.faces = b"", "", []  # (not the last source's frame)
            return False
        self.pipeline.reset()
        self.frames = 0
        self._stop.clear()
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._thread = threading.Thread(target=self._run, args=(frames,), daemon=True)
        self._thread.start()
        return True

    def _run(self, frames: FrameSource) -> None:
        pacer = Pacer(frames)  # a video at its own frame rate, dropping frames when behind
        period = 1.0 / self.max_fps if self.max_fps and not pacer.period else 0.0  # a camera: at most max_fps
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = pacer.read() if self.max_fps else frames.read()
                if frame is None:
                    self.status.value = f"end of video after {self.frames} frames{pacer.dropped_note}"
                    break
                annotated, faces = self.pipeline(frame)
                self._show(annotated, faces)
                self.frames += 1
                if frames.kind == "image":  # (a photo typed into the source box)
                    self.status.value = f"photo: {len(faces)} face(s)"
                    break
                self.status.value = f"{self.fps.tick():.1f} FPS, {len(faces)} face(s)"
                time.sleep(max(0.0, period - (time.perf_counter() - t0)))
        finally:
            torch.set_num_threads(threads)
            frames.release()
            self.start_button.disabled, self.stop_button.disabled = False, True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if not self.status.value.startswith("end of video"):
            self.status.value = "stopped"

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the source ends (a video or image) or ``timeout`` seconds pass."""
        if self._thread is not None:
            self._thread.join(timeout)
