"""Which crop should the demo pipeline hand the model? FER-2013 faces placed in 640x480 frames, run through
the whole pipeline (Haar detection, crop at each candidate margin, classification), against the same 48x48
faces classified directly.

Each face is enlarged to a random size (120-240 pixels, seeded) and placed at a random spot of a 640x480 frame
whose surroundings continue its edge pixels (``cv2.BORDER_REPLICATE``): the face fills its square as in
FER-2013, and the detector sees a face in a larger scene. A detection counts when its box overlaps the placed
square (IoU > 0.3); accuracy is over the faces found, beside the direct accuracy on those same faces.

    python experiments/framing/measure.py --split val     # chose the margin (PublicTest): 0.02, emo.faces.FACE_MARGIN
    python experiments/framing/measure.py --split test    # reports it (PrivateTest)

Writes ``<split>.md`` beside this file.
"""

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from emo.evaluation import labels_in_model_order
from emo.faces import FACE_MARGIN, HaarDetector, crop_faces
from emo.model import load_model, predict_proba
from emo.pipeline import EmotionPipeline
from emo.splits import load_splits
from emo.tracking import iou_matrix

MARGINS = (-0.05, 0.0, 0.02, 0.04, 0.1, 0.2)


def place(face: np.ndarray, rng: np.random.Generator, size=(640, 480)) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    side = int(rng.integers(120, 241))
    x, y = int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    frame = cv2.copyMakeBorder(big, y, size[1] - side - y, x, size[0] - side - x, cv2.BORDER_REPLICATE)
    return frame, (x, y, side, side)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--model", default="default")
    a = p.parse_args()
    model = load_model(a.model)
    splits = load_splits()
    split = getattr(splits, a.split)
    labels = labels_in_model_order(split, splits.classes, model)
    pipe = EmotionPipeline(model, HaarDetector(), smoothing=0)  # Haar's framing (MTCNN's: experiments/detectors/)
    rng = np.random.default_rng(0)
    found, boxes, frames, sides, shifts, placed_boxes = [], [], [], [], [], []
    t0 = time.time()
    for i, face in enumerate(tqdm(split.images, desc=f"detecting ({a.split})", unit="face", mininterval=10)):
        frame, placed = place(face, rng)
        det = pipe.detector(frame)
        iou = iou_matrix(np.asarray(placed), det)[0] if len(det) else np.zeros(0)
        best = det[int(iou.argmax())] if len(det) else None
        if best is not None and iou.max() > 0.3:
            found.append(i)
            boxes.append(best)
            placed_boxes.append(np.asarray(placed))
            frames.append(frame)
            sides.append(best[2] / placed[2])
            shifts.append(((placed[0] + placed[2] / 2 - best[0] - best[2] / 2) / best[2],
                           (placed[1] + placed[3] / 2 - best[1] - best[3] / 2) / best[3]))
    found = np.asarray(found)
    direct = predict_proba(model, split.images).argmax(1) == labels
    rows = [f"`{a.model}` model on {len(split):,} {splits.dataset} {a.split} faces placed in 640x480 frames "
            f"(`experiments/framing/measure.py --split {a.split}`, {time.time() - t0:.0f} s). "
            f"Haar found {len(found):,} ({len(found) / len(split):.1%}); its box is {np.median(sides):.2f} of the "
            f"placed face's side (median), and the placed face's centre lies {np.median(shifts, 0)[0]:+.3f} (x) and "
            f"{np.median(shifts, 0)[1]:+.3f} (y) of the box's side from the box's (median). Direct: the 48x48 faces "
            "classified as they are.", "",
            "| crop handed to the model | accuracy on the faces found | direct, same faces | difference |",
            "|---|---:|---:|---:|"]
    for m in MARGINS:
        crops = np.stack([crop_faces(f, b[None], model.input_size, m)[0] for f, b in zip(frames, boxes)])
        acc = float((predict_proba(model, crops).argmax(1) == labels[found]).mean())
        ref = float(direct[found].mean())
        rows.append(f"| box grown by {m:+.2f} of its side on each side | {acc:.2%} | {ref:.2%} | {100 * (acc - ref):+.2f} |")
    ref = float(direct[found].mean())

    def accuracy(boxes_: list, margin: float, tta: bool = False) -> float:
        crops = np.stack([crop_faces(f, b[None], model.input_size, margin)[0] for f, b in zip(frames, boxes_)])
        return float((predict_proba(model, crops, tta=tta).argmax(1) == labels[found]).mean())
    for what, acc in [("the placed square itself (a perfect detector), margin 0", accuracy(placed_boxes, 0.0)),
                      (f"box grown by {FACE_MARGIN:+.2f} (the pipeline's), with flip TTA", accuracy(boxes, FACE_MARGIN, True))]:
        rows.append(f"| {what} | {acc:.2%} | {ref:.2%} | {100 * (acc - ref):+.2f} |")
    rows.append(f"\nDirect accuracy on all {len(split):,} faces: {direct.mean():.2%}.")
    text = "\n".join(rows) + "\n"
    print(text)
    (Path(__file__).parent / f"{a.split}.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
