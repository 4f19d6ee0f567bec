"""Would float16 weights shrink results/ without changing a prediction? Compares every shipped network's
predicted class (with and without flip TTA) on validation and on all 7,178 test faces, float32 against its
weights rounded to float16 and back. Prints one line per network and the ensemble.

    python experiments/pack_results/check_fp16.py
"""

import copy

import numpy as np
import torch

from emo.datasets import load_dataset
from emo.model import Ensemble, load_model, predict_proba
from emo.splits import make_splits


def rounded(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return m


def main() -> None:
    ds = load_dataset("fer2013")
    faces = np.concatenate([make_splits(ds).val.images, make_splits(ds, "reference").test.images])
    models = {"results/best_model.pt": load_model("results/best_model.pt")}
    ensemble = load_model("results/ensemble/best_model.pt")
    models["results/ensemble/best_model.pt"] = ensemble
    for name, model in models.items():
        half = Ensemble([rounded(m) for m in model.members]) if isinstance(model, Ensemble) else rounded(model)
        changed = [int((predict_proba(model, faces, tta).argmax(1) != predict_proba(half, faces, tta).argmax(1)).sum())
                   for tta in (False, True)]
        print(f"{name}: float16 weights change the class of {changed[0]} of {len(faces):,} faces "
              f"({changed[1]} with flip TTA)")


if __name__ == "__main__":
    main()
