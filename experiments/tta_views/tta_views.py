"""Would averaging over more views than the mirror image help the shipped model at test time?

    python results/tta_views/tta_views.py [checkpoint]    # default results/best_model.pt

Flip TTA averages the softmax of a face and of its mirror image. Many FER-2013 papers average over more
views: ten crops, small shifts, small rotations. This classifies every validation and PrivateTest face in
28 views (the whole face; rotated by -10, -5, 5, 10 degrees; shifted by 5% of its side left, right, up,
down; its central 95%, and four 95% crops moved by 5% of the side towards each corner; each also
mirrored), all drawn with the same bilinear ``grid_sample`` as training's augmentation, then prints each
view's accuracy and the accuracy of the mean softmax over a few fixed sets of views. A set would be
chosen on validation; PrivateTest is printed beside it for the record.
"""

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from emo.data import to_tensor
from emo.evaluation import labels_in_model_order
from emo.model import load_model
from emo.splits import load_splits

torch.set_num_threads(2)
path = sys.argv[1] if len(sys.argv) > 1 else "results/best_model.pt"
model = load_model(path).eval()
splits = load_splits()
# name: (scale, x shift, y shift, degrees); the names are built from the numbers
SHIFTS = {f"sh{tx:+.2f}{ty:+.2f}": (1, tx, ty, 0) for tx, ty in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05))}
CORNERS = {f"c0.95{tx:+.2f}{ty:+.2f}": (0.95, tx, ty, 0) for tx, ty in ((0.05, 0.05), (-0.05, 0.05), (0.05, -0.05), (-0.05, -0.05))}
VIEWS: dict[str, tuple[float, float, float, float]] = {"id": (1, 0, 0, 0)}
VIEWS.update({f"rot{d}": (1, 0, 0, d) for d in (-10, -5, 5, 10)})
VIEWS.update(SHIFTS)
VIEWS.update({"s0.95": (0.95, 0, 0, 0)})
VIEWS.update(CORNERS)


def view(x: torch.Tensor, scale: float, tx: float, ty: float, degrees: float, flip: bool) -> torch.Tensor:
    """The batch ``x`` resampled as one view: an affine map of output to input coordinates, as in ``emo.data.augment``."""
    c, s, m = math.cos(math.radians(degrees)), math.sin(math.radians(degrees)), -1.0 if flip else 1.0
    theta = torch.tensor([[c * scale * m, -s * scale, tx], [s * scale * m, c * scale, ty]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


probs: dict[tuple[str, str], np.ndarray] = {}
labels = {s: labels_in_model_order(splits[s], splits.classes, model) for s in ("val", "test")}
mean, std = model.normalize
print(f"{path}: accuracy of each view alone, %\nview                 |    val |   test")
with torch.inference_mode():
    for split in ("val", "test"):
        x0 = to_tensor(splits[split].images, model.input_size, mean, std, crop=model.crop)
        for flip in (False, True):
            for name, (scale, tx, ty, deg) in VIEWS.items():
                batches = [view(x0[i:i + 256], scale, tx, ty, deg, flip) if (name, flip) != ("id", False) else x0[i:i + 256]
                           for i in range(0, len(x0), 256)]
                probs[split, name + "f" * flip] = torch.cat([model(b.contiguous(memory_format=torch.channels_last))
                                                              .float().softmax(1) for b in batches]).numpy()
for name in [n + "f" * f for f in (False, True) for n in VIEWS]:
    print(f"{name:20s} | " + " | ".join(f"{100 * (probs[s, name].argmax(1) == labels[s]).mean():6.2f}" for s in ("val", "test")))


def both(names: list[str]) -> list[str]:
    return names + [n + "f" for n in names]


SETS = {"none (one view)": ["id"], "flip (what emo uses)": both(["id"]),
        "flip + rotations 5": both(["id", "rot-5", "rot5"]),
        "flip + rotations 5, 10": both(["id", "rot-5", "rot5", "rot-10", "rot10"]),
        "flip + shifts": both(["id", *SHIFTS]), "ten crops of 95%": both(["s0.95", *CORNERS]),
        "flip + shifts + rotations 5": both(["id", *SHIFTS, "rot-5", "rot5"]),
        "all 28 views": both(list(VIEWS))}
print("\nmean softmax over a set of views: accuracy, % (faces right)\nset                          | views |            val |           test")
for name, views in SETS.items():
    cells = []
    for s in ("val", "test"):
        right = int((np.mean([probs[s, v] for v in views], 0).argmax(1) == labels[s]).sum())
        cells.append(f"{100 * right / len(labels[s]):6.2f} ({right:,})")
    print(f"{name:28s} | {len(views):5d} | " + " | ".join(cells))
