"""Screenshots of the desktop app for the README (issue 32 item 6), rendered by Qt itself (``QWidget.grab``,
offscreen: no display needed), on public-domain pictures only: scikit-image's astronaut photo, and a
generated frame with three copies of her face at different sizes and a mirrored one (never FER-2013 pixels).

    QT_QPA_PLATFORM=offscreen python experiments/screenshots/take.py     # -> results/screenshots/*.jpg
"""

import sys
from pathlib import Path

import cv2
import numpy as np
from PyQt5.QtWidgets import QApplication

from emo.app import build_window
from emo.video import sample_photo

OUT = Path(__file__).resolve().parents[2] / "results" / "screenshots"


def group_frame() -> np.ndarray:
    """A 960x540 frame with the astronaut's face three times, at three sizes, the middle one mirrored."""
    photo = sample_photo()
    face = photo[40:300, 130:330]  # her head and shoulders
    frame = np.full((540, 960, 3), 70, np.uint8)
    for (x, y, h), flip in [((20, 60, 460), False), ((340, 100, 400), True), ((660, 80, 440), False)]:
        w = round(h * face.shape[1] / face.shape[0])
        part = cv2.resize(face[:, ::-1] if flip else face, (w, h), interpolation=cv2.INTER_AREA)
        frame[y:y + h, x:x + w] = part[:540 - y, :960 - x]
    return frame


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
    shoot(group_frame(), "app_group", (1100, 560))


if __name__ == "__main__":
    main()
