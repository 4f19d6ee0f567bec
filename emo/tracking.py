"""Faces followed through a video: a track number for each face that stays with the same person while the
boxes of consecutive frames overlap.

    tracker = Tracker()
    numbers = tracker.update(boxes)   # one number per box (x, y, w, h), 1, 2, ... in order of first appearance

Matching is greedy by overlap (intersection over union, IoU): the best-overlapping pair of a box and a live
track is matched first, then the next, as long as the IoU is at least ``min_iou``. A track not matched for more
than ``patience`` frames ends, so a face that leaves and comes back much later gets a new number; a face missed
by the detector for a few frames keeps its own. Boxes that match no track start new ones, numbered left to
right within their frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emo.faces import intersections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """len(a) x len(b) intersection over union of boxes (x, y, w, h)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    inter = intersections(a, b)
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


@dataclass
class Track:
    number: int
    box: np.ndarray
    missed: int = 0  # frames since it was last matched


@dataclass
class Tracker:
    """Track numbers for the boxes of consecutive frames (see the module's text)."""

    min_iou: float = 0.3
    patience: int = 15  # frames a track may go unmatched before it ends (half a second at 30 fps)
    tracks: list[Track] = field(default_factory=list)
    next_number: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_iou <= 1:
            raise ValueError(f"min_iou={self.min_iou}: must be in (0, 1]")
        if self.patience < 0:
            raise ValueError(f"patience={self.patience}: must be at least 0 frames")

    def reset(self) -> None:
        self.tracks, self.next_number = [], 1

    def update(self, boxes: np.ndarray) -> list[int]:
        """The track number of each of ``boxes`` (N x 4: x, y, w, h), in their order."""
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        numbers = [0] * len(boxes)
        iou = iou_matrix(boxes, np.array([t.box for t in self.tracks])) if self.tracks else np.zeros((len(boxes), 0))
        matched_tracks: set[int] = set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), iou.shape[1])
            if iou[i, j] < self.min_iou:
                break
            if numbers[i] or j in matched_tracks:
                continue
            numbers[i] = self.tracks[j].number
            self.tracks[j].box, self.tracks[j].missed = boxes[i], 0
            matched_tracks.add(j)
        for j, t in enumerate(self.tracks):
            if j not in matched_tracks:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.patience]
        for i in sorted((i for i in range(len(boxes)) if not numbers[i]), key=lambda i: boxes[i, 0]):
            numbers[i] = self.next_number
            self.tracks.append(Track(self.next_number, boxes[i]))
            self.next_number += 1
        return numbers
