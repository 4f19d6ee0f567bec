"""PyQt5 desktop demo: webcam (or a video file / image), faces boxed with their emotion.

    python -m emo.app                                  # results/best_model.pt, camera 0
    python -m emo.app path/to/best_model.pt --input clip.mp4
    python -m emo.app --input photo.jpg --device cuda
    python -m emo.app --model ensemble --runtime onnx --input clip.mp4   # on ONNX Runtime

A worker thread captures, detects and classifies (one 640x480 frame with one face: the demo rows of
results/benchmarks.md); the window shows each frame whole, letterboxed, with a side panel of each face's
probabilities. A video plays at its own frame rate, dropping frames when the CPU falls behind; an image is
analysed once. Closing the window stops the worker and releases the camera. On Linux
a missing system library of Qt's window plugin is named with its Debian package (exit 2).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from emo.cli import (
    FEW_FACES_THREADS,
    add_model_option,
    add_runtime_options,
    chosen_model,
    open_model,
    parser,
    run_command,
)
from emo.model import DEFAULT_MODEL, Model, load_model, model_device
from emo.pipeline import EmotionPipeline, faces_html, live_pipeline
from emo.video import FpsMeter, FrameSource, Pacer, SourceError

try:
    from PyQt5.QtCore import Qt, QTimer, pyqtSignal
    from PyQt5.QtGui import QImage, QPixmap
    from PyQt5.QtWidgets import (
        QApplication,
        QHBoxLayout,
        QLabel,
        QMainWindow,
        QSizePolicy,
        QWidget,
    )
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("the desktop demo needs PyQt5: pip install PyQt5") from e


def to_qimage(frame: np.ndarray) -> QImage:
    """BGR uint8 frame -> QImage (a deep copy, so the array may be freed)."""
    rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class EmoWindow(QMainWindow):
    """Annotated frames, letterboxed into a resizable view, and a side panel with each face's probabilities
    (numbered like the boxes). A worker thread captures and classifies frames, so the window stays responsive;
    a video plays at its own frame rate, dropping frames when classification falls behind (:class:`Pacer`);
    a still image is analysed once. ``step()`` does one frame on the calling thread instead (tests drive it)."""

    result = pyqtSignal(object, object)  # (annotated frame, faces), from the worker to the UI thread
    ended = pyqtSignal()

    def __init__(self, pipeline: EmotionPipeline, source: FrameSource | None, message: str | None = None,
                 threaded: bool = True) -> None:
        super().__init__()
        self.pipeline, self.source = pipeline, source
        self.pacer = Pacer(source) if source is not None else None
        self.fps = FpsMeter()
        self.frames = 0
        self.frame_limit = 0  # show at most this many frames (0: no limit; --frames)
        self.last_frame: np.ndarray | None = None
        self.last_faces: list = []
        self._pixmap: QPixmap | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.setWindowTitle("Mini-Xception-Emo")
        self.view = QLabel(alignment=Qt.AlignCenter)
        self.view.setMinimumSize(320, 240)
        self.view.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)  # the pixmap follows the window
        self.view.setStyleSheet("background: #202020; color: #f0f0f0; font-size: 16px; padding: 16px;")
        self.view.setWordWrap(True)  # (a message as long as a path wraps instead of running off both edges)
        self.panel = QLabel(faces_html([]), alignment=Qt.AlignTop | Qt.AlignLeft)
        self.panel.setTextFormat(Qt.RichText)
        self.panel.setFixedWidth(250)
        self.panel.setStyleSheet("background: #2a2a2a; color: #f0f0f0; padding: 8px; font-family: monospace;")
        body = QWidget()
        row = QHBoxLayout(body)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.view, 1)
        row.addWidget(self.panel)
        self.setCentralWidget(body)
        self.resize(640 + 230, 480 + 24)
        self.result.connect(self.show_result)
        self.ended.connect(self.on_end)
        if source is None:
            self.show_message(message or "no video source")
        elif threaded:
            self.start()

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def show_message(self, text: str) -> None:
        self.view.setText(text)
        self.statusBar().showMessage(text)

    def next_result(self, paced: bool) -> tuple[np.ndarray, list] | None:
        """Read the next frame (the next due one when ``paced``) and annotate it; None at the end."""
        if self.source is None or self.pacer is None:
            return None
        frame = self.pacer.read() if paced else self.source.read()
        return None if frame is None else self.pipeline(frame)

    def start(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, daemon=True, name="emo-frames")
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            r = self.next_result(paced=True)
            if r is None:
                self.ended.emit()
                return
            self.result.emit(*r)
            if self.source is not None and self.source.kind == "image":
                return  # a still image is analysed once

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    def step(self) -> bool:
        """Read, annotate and show one frame on this thread; False when the source has ended."""
        r = self.next_result(paced=False)
        if r is None:
            if self.source is not None:
                self.on_end()
            return False
        self.show_result(*r)
        return True

    def show_result(self, annotated: np.ndarray, faces: list) -> None:
        if self.frame_limit and self.frames >= self.frame_limit:
            return  # (a result the worker queued before the window's timer saw the limit reached)
        self.frames += 1
        self.last_frame, self.last_faces = annotated, faces
        self._pixmap = QPixmap.fromImage(to_qimage(annotated))
        self._fit()
        self.panel.setText(faces_html(faces, bar=12))
        if self.source is not None and self.source.kind == "image":
            self.statusBar().showMessage(f"photo: {len(faces)} face(s)")
            return
        dropped = self.pacer.dropped_note if self.pacer else ""
        self.statusBar().showMessage(f"{self.fps.tick():5.1f} FPS{dropped} | {len(faces)} face(s)")

    def _fit(self) -> None:
        """The whole frame, as large as the view allows, at its own aspect ratio (letterboxed)."""
        if self._pixmap is not None:
            area = self.view.contentsRect().size()  # (inside its frame and margins: the whole picture shows)
            self.view.setPixmap(self._pixmap.scaled(area, Qt.KeepAspectRatio, Qt.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def on_end(self) -> None:
        if self.source is not None:
            self.source.release()
        self.statusBar().showMessage(f"end of video after {self.frames} frames"
                                     + (self.pacer.dropped_note if self.pacer else ""))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.stop()
        if self.source is not None:
            self.source.release()
        super().closeEvent(event)


def build_window(model: Model | str | Path = DEFAULT_MODEL, source: str = "0", device: str = "cpu",
                 smoothing: float = 0.5, threaded: bool = True, detect: bool = True) -> EmoWindow:
    """Load the model (or take a loaded one) and open the source; a missing camera gives a window with the message.
    Without ``detect``, each frame is taken whole as one face that is cropped already."""
    if isinstance(model, (str, Path)):
        model = load_model(model, device)
    pipeline = live_pipeline(model, smoothing, detect)
    try:
        src: FrameSource | None = FrameSource(source)
        msg = None
    except SourceError as e:
        src, msg = None, str(e)
        print(f"error: {e}", file=sys.stderr)
    return EmoWindow(pipeline, src, msg, threaded)


#: The system libraries that Qt's xcb platform plugin (a real window on Linux) loads, and their Debian packages.
XCB_LIBRARIES = {"xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1", "xcb-xinerama": "libxcb-xinerama0",
                 "xcb-render-util": "libxcb-render-util0", "xcb-image": "libxcb-image0",
                 "xkbcommon-x11": "libxkbcommon-x11-0"}


def missing_window_libraries() -> list[str]:
    """The Debian packages that Qt's xcb plugin needs and this Linux lacks (none elsewhere, or offscreen)."""
    import ctypes.util
    import os
    platform = os.environ.get("QT_QPA_PLATFORM", "xcb" if sys.platform.startswith("linux") else "")
    if not platform.startswith("xcb"):
        return []
    return [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]


def check_window_libraries() -> None:
    """One line that names the fix, instead of Qt's abort ("Could not load the Qt platform plugin xcb"): where
    there is no display to open a window on, or Qt's xcb plugin lacks system libraries."""
    import os
    platform = os.environ.get("QT_QPA_PLATFORM", "xcb" if sys.platform.startswith("linux") else "")
    if platform.startswith("xcb") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FileNotFoundError("no display to open a window on (DISPLAY is not set): run it on a desktop, under a "
                                "virtual display (xvfb-run python -m emo.app ...), or without a window: "
                                "QT_QPA_PLATFORM=offscreen, or python -m emo.predict for annotated files")
    missing = missing_window_libraries()
    if missing:
        raise FileNotFoundError(f"Qt needs {', '.join(missing)} to open a window: "
                                f"sudo apt-get install {' '.join(missing)} "
                                "(or run without a window: python -m emo.predict)")


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.app", __doc__)
    add_model_option(p, positional=True)
    p.add_argument("--input", default="0", metavar="CAMERA|FILE",
                   help="a camera's index (default 0), a video file or a photo")
    p.add_argument("--source", dest="input", help=argparse.SUPPRESS)  # (its first name)
    p.add_argument("--smoothing", type=float, default=0.5, help="temporal smoothing of probabilities, 0 = off")
    p.add_argument("--frames", type=int, default=0, help="quit after this many frames (0 = run until closed)")
    p.add_argument("--no-detect", dest="detect", action="store_false",
                   help="take each frame (a photo, a video of one face) whole as one face that is cropped already")
    add_runtime_options(p, runtime=True, threads=FEW_FACES_THREADS)
    a = p.parse_args(argv)

    def run() -> int:
        if a.frames < 0:
            raise ValueError(f"--frames {a.frames}: give a number of frames, or 0 to run until the window is closed")
        check_window_libraries()
        model = open_model(chosen_model(a), a)
        return run_app(model, a.input, str(model_device(model)), a.smoothing, a.frames, a.detect)
    return run_command(run, a.threads)


def run_app(model: Model, source: str, device: str = "cpu", smoothing: float = 0.5, frames: int = 0,
            detect: bool = True) -> int:
    """Show the window on ``source`` until it is closed (or after ``frames`` frames). Returns Qt's exit status,
    or 2 where the source could not be opened (a bad input: the window and one error line said why)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = build_window(model, source, device, smoothing, detect=detect)
    win.show()
    if frames:
        win.frame_limit = frames

        def stop_when_done() -> None:
            if win.frames >= frames or not win.running:
                app.quit()
        guard = QTimer()
        guard.timeout.connect(stop_when_done)
        guard.start(20)
    code = app.exec_()
    win.stop()
    if win.source is not None:
        win.source.release()
    print(f"{win.frames} frames shown, {win.fps.fps:.1f} FPS at the end")
    return 2 if win.source is None else code


if __name__ == "__main__":
    sys.exit(main())
