"""Does leveling the eyes help? End-to-end accuracy of the default detector (MTCNN, ``emo.mtcnn``) on FER-2013
faces placed in 640x480 frames, upright and turned in the image plane, against the same 48x48 faces
classified directly (upright).

Each face is enlarged to 120-240 pixels, turned by the condition's angle (either way, seeded) and placed as in
``experiments/framing/``. Found faces (IoU > 0.3 with the placed square) are cropped as the pipeline crops them
(``emo.faces.crop_faces``) at each margin, with and without the roll angle from the eyes, and classified; the
placed square's side over the detector's square's side (median) checks ``emo.mtcnn.SQUARE``.

    python experiments/detectors/align.py --split val     # chooses the margin and whether to level
    python experiments/detectors/align.py --split test    # reports
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emo.evaluation import labels_in_model_order
from emo.files import write_text
from emo.faces import crop_faces
from emo.model import load_model, predict_proba
from emo.mtcnn import SQUARE, MTCNNDetector
from emo.splits import load_splits
from emo.tracking import iou_matrix

from measure import place  # (beside this file)

MARGINS = (-0.05, 0.0, 0.02)
ANGLES = (0, 15, 30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("-n", type=int, default=1000, help="faces per condition (a seeded sample of the split)")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = load_model("default")
    splits = load_splits()
    split = getattr(splits, a.split)
    labels = labels_in_model_order(split, splits.classes, model)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(split), min(a.n, len(split)), replace=False)
    direct = predict_proba(model, split.images[pick]).argmax(1) == labels[pick]
    det = MTCNNDetector()
    t0 = time.time()
    lines = [f"`default` model, {len(pick):,} {splits.dataset} {a.split} faces per condition (seeded sample), "
             f"placed in 640x480 frames (`python experiments/detectors/align.py --split {a.split}`). "
             "Accuracy on the faces found; direct: the same faces, upright 48x48, classified as they are.", "",
             "| faces turned by | found | placed side / detector's square (median) | crop | accuracy | direct, "
             "same faces | difference |", "|---|---:|---:|---|---:|---:|---:|"]
    eyes_at = None  # where the eyes sit in FER-2013's square, measured on the upright faces (first condition)
    for angle in ANGLES:
        found, frames, raws, ratios, truths = [], [], [], [], []
        for k, i in enumerate(tqdm(pick, desc=f"±{angle}°", unit="face", mininterval=5)):
            turn = angle * rng.choice([-1, 1]) if angle else 0.0
            frame, truth = place(split.images[i], rng, int(rng.integers(120, 241)), turn)
            boxes, points = det.raw(frame)
            if not len(boxes):
                continue
            b = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]
            iou = iou_matrix(np.asarray(truth, float), b)[0]
            if iou.max() > 0.3:
                j = int(iou.argmax())
                found.append(k), frames.append(frame), raws.append((boxes[j], points[j])), truths.append(truth[0])
                ratios.append(truth[0][2] / (SQUARE * np.sqrt(b[j, 2] * b[j, 3])))
        found = np.asarray(found)
        ref = float(direct[found].mean())
        if eyes_at is None:
            rel = [((p[0] + p[1]) / 2 - t[:2]) / t[2] for (_, p), t in zip(raws, truths)]
            dist = [np.hypot(*(p[1] - p[0])) / t[2] for (_, p), t in zip(raws, truths)]
            eyes_at = (*np.median(rel, 0), float(np.median(dist)))
            lines.insert(1, f"\nThe eyes' midpoint lies at ({eyes_at[0]:.3f}, {eyes_at[1]:.3f}) of FER-2013's square "
                            f"and they are {eyes_at[2]:.3f} of its side apart (medians, upright faces).")
        roll = [np.degrees(np.arctan2(*(p[1] - p[0])[::-1])) for _, p in raws]

        def squares(framing):
            out = []
            for (box, p), r in zip(raws, roll):
                if framing == "box":
                    w, h = box[2:] - box[:2]
                    side, (cx, cy) = SQUARE * np.sqrt(w * h), (box[:2] + box[2:]) / 2
                else:  # from the eyes: their distance gives the side, their midpoint the centre, along the tilt
                    side = np.hypot(*(p[1] - p[0])) / eyes_at[2]
                    t = np.radians(r)
                    dx, dy = (0.5 - eyes_at[0]) * side, (0.5 - eyes_at[1]) * side
                    cx = (p[0][0] + p[1][0]) / 2 + dx * np.cos(t) - dy * np.sin(t)
                    cy = (p[0][1] + p[1][1]) / 2 + dx * np.sin(t) + dy * np.cos(t)
                out.append(np.array([cx - side / 2, cy - side / 2, side, side]).round().astype(int))
            return out
        for framing in ("box", "eyes"):
            sq = squares(framing)
            for min_roll in (None, 3, 10, 15):
                for m in MARGINS:
                    crops = np.stack([crop_faces(f, b[None], model.input_size, m,
                                                 None if min_roll is None else np.array([r]), min_roll or 0.0)[0]
                                      for f, b, r in zip(frames, sq, roll)])
                    acc = float((predict_proba(model, crops).argmax(1) == labels[pick][found]).mean())
                    crop = (f"{framing}, margin {m:+.2f}, " +
                            ("not leveled" if min_roll is None else f"leveled from {min_roll}°"))
                    lines.append(f"| ±{angle}° | {len(found) / len(pick):.1%} | {np.median(ratios):.3f} | {crop} | "
                                 f"{acc:.2%} | {ref:.2%} | {100 * (acc - ref):+.2f} |")
    lines.append(f"\nDirect accuracy on the {len(pick):,} faces: {direct.mean():.2%}. {time.time() - t0:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(Path(__file__).parent / f"align-{a.split}.md", text)  # (the project's one atomic writer)


if __name__ == "__main__":
    main()
