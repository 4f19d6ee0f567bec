"""Would a correction for class frequencies help the shipped model? Logit adjustment (Menon et al., 2021).

    python results/logit_adjustment/logit_adjustment.py [checkpoint]    # default results/best_model.pt

FER-2013's classes are unbalanced (disgust is 1.5% of the training faces, happy 25%). A network trained
on them may lean towards the frequent classes; logit adjustment predicts argmax(log p - tau * log prior),
with prior the training frequencies and one number, tau, chosen on validation. tau = 0 is the model as
it is. This prints accuracy on validation and PrivateTest, with and without flip TTA, over a grid of tau,
and the PrivateTest figure at the tau that validation picks (ties go to tau = 0, then to the smaller |tau|).
"""

import sys

import numpy as np
import torch

from emo.evaluation import labels_in_model_order
from emo.model import load_model, predict_proba
from emo.splits import load_splits

torch.set_num_threads(2)
path = sys.argv[1] if len(sys.argv) > 1 else "results/best_model.pt"
splits = load_splits()
model = load_model(path)
prior = np.bincount(labels_in_model_order(splits.train, splits.classes, model), minlength=len(model.classes))
prior = prior / prior.sum()
print(f"{path}; training frequencies: " + ", ".join(f"{c} {p:.3f}" for c, p in zip(model.classes, prior)))
probs = {(s, tta): (predict_proba(model, splits[s].images, tta=tta), labels_in_model_order(splits[s], splits.classes, model))
         for s in ("val", "test") for tta in (False, True)}
taus = np.round(np.arange(-1.0, 1.001, 0.1), 1) + 0.0  # + 0.0: no "-0.0"
acc = {k: [100 * float(((np.log(p + 1e-12) - t * np.log(prior)).argmax(1) == y).mean()) for t in taus]
       for k, (p, y) in probs.items()}
print("tau  | " + " | ".join(f"{s}{' TTA' if tta else ''}" for s, tta in probs))
for i, t in enumerate(taus):
    print(f"{t:+.1f} | " + " | ".join(f"{acc[k][i]:.2f}" for k in probs))
for tta in (False, True):
    v = acc["val", tta]
    i = max(range(len(taus)), key=lambda j: (v[j], taus[j] == 0, -abs(taus[j])))
    name = "with TTA" if tta else "without TTA"
    print(f"{name}: validation picks tau {taus[i]:+.1f} ({v[i]:.2f}% against {v[list(taus).index(0.0)]:.2f}% at 0); "
          f"PrivateTest {acc['test', tta][i]:.2f}% against {acc['test', tta][list(taus).index(0.0)]:.2f}% at 0")
