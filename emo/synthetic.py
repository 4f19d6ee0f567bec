"""Generated faces: drawn ovals whose brows, eyes and mouth differ by expression.

Where FER-2013 has not been imported, every lesson, command and test runs on these instead, and says so
(:func:`emo.datasets.load_dataset`). They are no one's face, so they may be committed in figures. This module
imports nothing else of ``emo``.
"""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 48


def draw_face(cls: str, rng: np.random.Generator, size: int = FACE_SIZE) -> np.ndarray:
    """One face of expression ``cls`` (a FER-2013 class name), uint8 ``size`` x ``size``, drawn with ``rng``."""
    s = 8  # draw at 8x resolution with sub-pixel shifts, then downsample (anti-aliased)
    big = size * s
    img = np.full((big, big), rng.integers(30, 90), np.uint8)
    cx, cy = big / 2 + rng.normal(0, 1.5 * s), big / 2 + rng.normal(0, 1.5 * s)
    face = rng.uniform(0.36, 0.44) * big
    skin = int(rng.integers(140, 210))
    P = lambda x, y: (int(cx + x * face), int(cy + y * face))  # noqa: E731  (face coordinates)
    cv2.ellipse(img, P(0, 0), (int(face * 0.85), int(face)), 0, 0, 360, skin, -1)
    dark = int(skin * rng.uniform(0.15, 0.35))
    t = max(1, int(0.05 * face))
    wide = cls in ("surprise", "fear")
    brow_y = -0.42 if not wide else -0.55
    eye_h = 0.09 if wide else 0.055
    for side in (-1, 1):
        ex = side * 0.35
        cv2.ellipse(img, P(ex, -0.2), (int(0.13 * face), int(eye_h * face)), 0, 0, 360, dark, -1)
        tilt = {"angry": 0.12, "sad": -0.12, "fear": -0.08, "disgust": 0.08 if side < 0 else -0.02}.get(cls, 0.0)
        inner, outer = P(ex - side * 0.18, brow_y + tilt), P(ex + side * 0.18, brow_y - tilt * 0.3)
        cv2.line(img, inner, outer, dark, t)
    mouth_y = 0.45
    if cls == "happy":
        cv2.ellipse(img, P(0, mouth_y - 0.12), (int(0.38 * face), int(0.2 * face)), 0, 20, 160, dark, t)
    elif cls == "sad":
        cv2.ellipse(img, P(0, mouth_y + 0.12), (int(0.3 * face), int(0.14 * face)), 0, 200, 340, dark, t)
    elif cls == "surprise":
        cv2.ellipse(img, P(0, mouth_y), (int(0.14 * face), int(0.2 * face)), 0, 0, 360, dark, -1)
    elif cls == "fear":
        cv2.ellipse(img, P(0, mouth_y), (int(0.3 * face), int(0.09 * face)), 0, 0, 360, dark, -1)
    elif cls == "angry":
        cv2.line(img, P(-0.25, mouth_y), P(0.25, mouth_y), dark, 2 * t)
    elif cls == "disgust":
        pts = np.array([P(-0.3, mouth_y), P(-0.1, mouth_y - 0.08), P(0.1, mouth_y + 0.02), P(0.3, mouth_y - 0.1)])
        cv2.polylines(img, [pts], False, dark, t)
        cv2.line(img, P(-0.08, 0.12), P(0.08, 0.08), dark, t)
    else:  # neutral
        cv2.line(img, P(-0.22, mouth_y), P(0.22, mouth_y), dark, t)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
