"""FER-2013's 7,178 test faces (PublicTest and PrivateTest, which the shipped model never trained on) written as a
dataset of one's own: one folder of <class>/*.png, disgust merged into angry (six classes), plus groups.csv, which
puts each face with its near-copies (24x24 thumbnails correlating above 0.99, as emo.importers measures) in one
group. Writes under the folder given (never into the repository: the faces are FER-2013's).

    python experiments/own_data/make_folders.py /tmp/own
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from emo.datasets import TRAINING, load_imported
from emo.importers import NEAR_DUPLICATE, _thumbnails, merge_classes

out = Path(sys.argv[1])
ds = merge_classes(load_imported("fer2013"), {"disgust": "angry"})
keep = np.flatnonzero(ds.usage != TRAINING)
names = []
for i in keep:
    rel = f"{ds.classes[ds.labels[i]]}/{i:05d}.png"
    (out / "faces" / rel).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "faces" / rel), ds.images[i])
    names.append(rel)
t = _thumbnails(ds.images[keep])
parent = list(range(len(keep)))


def root(a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


for s in range(0, len(keep), 1024):
    corr = t[s:s + 1024] @ t.T
    for i, j in zip(*np.nonzero(corr > NEAR_DUPLICATE)):
        parent[root(s + i)] = root(j)
groups = [root(i) for i in range(len(keep))]
with open(out / "groups.csv", "w") as f:
    f.write("file,group\n" + "".join(f"{n},g{g}\n" for n, g in zip(names, groups)))
sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
print(f"{len(keep):,} faces in {out / 'faces'}; {len(sizes):,} groups, {int((sizes > 1).sum()):,} of them hold "
      f"near-copies ({int(sizes[sizes > 1].sum()):,} faces)")
