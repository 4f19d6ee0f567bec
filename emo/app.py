"""PyQt5 desktop demo: webcam (or a video file / image), faces boxed with their emotion.

    python -m emo.app                                  # results/best_model.pt, camera 0
    python -m emo.app path/to/best_model.pt --source clip.mp4
    python -m emo.app --source photo.jpg --device cuda
    python -m emo.app --model small --runtime onnx --source clip.mp4   # the small model on ONNX Runtime

Frames are pulled by a QTimer on the GUI thread: capture, detection and classification of one 640x480
frame with one face take about 28 ms on our 2 CPU cores (the demo row of results/benchmarks.md). Closing
the window releases the camera; a video that ends stops the timer and says so in the status bar. On Linux
a missing system library of Qt's window plugin is named with its Debian package (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from emo.cli import FEW_FACES_THREADS, HelpFormatter, add_runtime_options, open_model, run_command
from emo.faces import EmotionPipeline, FpsMeter, FrameSource, SourceError
from emo.model import DEFAULT_MODEL, Model, load_model, model_device

try:
    from PyQt5.QtCore import Qt, QTimer
    from PyQt5.QtGui import QImage, QPixmap
    from PyQt5.QtWidgets import QApplication, QLabel, QMainWindow
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("the desktop demo needs PyQt5: pip install PyQt5") from e


def to_qimage(frame: np.ndarray) -> QImage:
    """BGR uint8 frame -> QImage (a deep copy, so the array may be freed)."""
    rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class EmoWindow(QMainWindow):
    """A 640x480 preview of annotated frames with the frame rate in the status bar."""

    def __init__(self, pipeline: EmotionPipeline, source: FrameSource | None, message: str | None = None,
                 interval_ms: int = 0) -> None:
        super().__init__()
        self.pipeline, self.source = pipeline, source
        self.fps = FpsMeter()
        self.frames = 0
        self.last_frame: np.ndarray | None = None
        self.last_faces: list = []
        self.setWindowTitle("Mini-Xception-Emo")
        self.view = QLabel(alignment=Qt.AlignCenter)
        self.view.setMinimumSize(640, 480)
        self.view.setStyleSheet("background: #202020; color: #f0f0f0; font-size: 16px;")
        self.setCentralWidget(self.view)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.step)
        if source is None:
            self.show_message(message or "no video source")
        else:
            # a still image needs no refresh beyond the first frame; video and camera run as fast as they come
            self.timer.start(interval_ms if source.kind != "image" else 200)

    def show_message(self, text: str) -> None:
        self.view.setText(text)
        self.statusBar().showMessage(text)

    def step(self) -> bool:
        """Read, annotate and show one frame; False (and the timer stopped) when the source has ended."""
        if self.source is None:
            return False
        frame = self.source.read()
        if frame is None:
            self.timer.stop()
            self.source.release()
            self.statusBar().showMessage(f"end of video after {self.frames} frames")
            return False
        annotated, faces = self.pipeline(frame)
        self.frames += 1
        self.last_frame, self.last_faces = annotated, faces
        self.view.setPixmap(QPixmap.fromImage(to_qimage(annotated)))
        labels = ", ".join(f"{f.label} {f.confidence:.0%}" for f in faces) or "no face"
        self.statusBar().showMessage(f"{self.fps.tick():5.1f} FPS | {len(faces)} face(s): {labels}")
        return True

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.timer.stop()
        if self.source is not None:
            self.source.release()
        super().closeEvent(event)


def build_window(model: Model | str | Path = DEFAULT_MODEL, source: str = "0", device: str = "cpu",
                 smoothing: float = 0.5) -> EmoWindow:
    """Load the model (or take a loaded one) and open the source; a missing camera gives a window with the message."""
    if isinstance(model, (str, Path)):
        model = load_model(model, device)
    pipeline = EmotionPipeline(model, smoothing=smoothing)
    try:
        src: FrameSource | None = FrameSource(source)
        msg = None
    except SourceError as e:
        src, msg = None, str(e)
        print(f"error: {e}", file=sys.stderr)
    return EmoWindow(pipeline, src, msg)


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
    """One line that names the fix, instead of Qt's abort ("Could not load the Qt platform plugin xcb")."""
    missing = missing_window_libraries()
    if missing:
        raise FileNotFoundError(f"Qt needs {', '.join(missing)} to open a window: sudo apt-get install {' '.join(missing)} "
                                "(or run without a window: python -m emo.predict)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emo.app", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("model_path", nargs="?", default=None,
                   help="a best_model.pt or .onnx file, or a shipped model: default, ensemble, small (default: default)")
    p.add_argument("--model", default=None, help="the same as MODEL_PATH")
    p.add_argument("--source", default="0", help="camera index (default 0), a video file or an image")
    p.add_argument("--smoothing", type=float, default=0.5, help="temporal smoothing of probabilities, 0 = off")
    p.add_argument("--frames", type=int, default=0, help="quit after this many frames (0 = run until closed)")
    add_runtime_options(p, runtime=True, threads=FEW_FACES_THREADS)
    a = p.parse_args(argv)

    def run() -> int:
        check_window_libraries()
        model = open_model(a.model or a.model_path or "default", a)
        return run_app(model, a.source, str(model_device(model)), a.smoothing, a.frames)
    return run_command(run, a.threads)


def run_app(model: Model, source: str, device: str = "cpu", smoothing: float = 0.5, frames: int = 0) -> int:
    """Show the window on ``source`` until it is closed (or after ``frames`` frames). Returns Qt's exit status,
    or 1 where the source could not be opened (the window said why), so that scripts can tell."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = build_window(model, source, device, smoothing)
    win.show()
    if frames:
        def stop_when_done() -> None:
            if win.frames >= frames or not win.timer.isActive():
                app.quit()
        guard = QTimer()
        guard.timeout.connect(stop_when_done)
        guard.start(20)
    code = app.exec_()
    if win.source is not None:
        win.source.release()
    print(f"{win.frames} frames shown, {win.fps.fps:.1f} FPS at the end")
    return 1 if win.source is None else code


if __name__ == "__main__":
    sys.exit(main())
