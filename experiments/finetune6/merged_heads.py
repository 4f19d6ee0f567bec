"""The zero-training reference for finetune6: the shipped 7-class model on the 6-class data, its disgust
probability added to angry's. What fine-tuning has to beat.

    python experiments/finetune6/merged_heads.py      # after run.sh has imported data/fer6.npz
"""

import numpy as np

from emo.datasets import load_dataset
from emo.model import load_model, predict_proba
from emo.splits import make_splits

model = load_model("default")
splits = make_splits(load_dataset("fer6"))
for split in ("val", "test"):
    for tta in (False, True):
        p7 = predict_proba(model, splits[split].images, tta=tta)
        p6 = np.stack([p7[:, model.classes.index(c)] for c in splits.classes], 1)
        p6[:, splits.classes.index("angry")] += p7[:, model.classes.index("disgust")]
        acc = float((p6.argmax(1) == splits[split].labels).mean())
        print(f"{split:4s} {'flip TTA' if tta else 'plain':8s} {acc:.2%}")
