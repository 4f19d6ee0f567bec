"""Screenshots of the desktop app for the README (issue 32 item 6, refreshed for issue 45), rendered by Qt
itself (``QWidget.grab``, offscreen: no display needed), on public-domain pictures only
(:func:`emo.video.sample_photo`, :func:`emo.video.sample_group`, :func:`emo.video.write_pair_video`; never
FER-2013 pixels).

    QT_QPA_PLATFORM=offscreen python experiments/screenshots/take.py     # -> results/screenshots/app_*.jpg
"""

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PyQt5.QtWidgets import QApplication

from emo.app import build_window
from emo.video import FrameSource, sample_group, sample_photo, write_pair_video

OUT = Path(__file__).resolve().parents[2] / "results" / "screenshots"


def pair_frame() -> np.ndarray:
    """The middle frame of the two-person video, where the second head is tilted most."""
    with tempfile.TemporaryDirectory() as d, FrameSource(write_pair_video(Path(d) / "pair.avi")) as src:
        return list(src)[45]


def shoot(image: np.ndarray, name: str, size: tuple[int, int]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f".{name}.source.png"
    cv2.imwrite(str(src), image)
    try:
        win = build_window("default", str(src))
        win.resize(*size)
        win.show()
        win._worker.join(60)
        for _ in range(5):
            QApplication.processEvents()
        path = OUT / f"{name}.jpg"
        win.grab().save(str(path), "JPG", 88)
        win.close()
        print(f"{path}: {len(win.last_faces)} face(s)")
        return path
    finally:
        src.unlink(missing_ok=True)


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 (Qt needs it alive)
    shoot(sample_photo(), "app_photo", (900, 560))
    shoot(sample_group(), "app_group", (1300, 700))
    shoot(pair_frame(), "app_pair", (1000, 560))


if __name__ == "__main__":
    main()
