"""One-off (issue 34): the shipped ensemble's members moved into ``results/ensemble/members/``.

The six files were moved with ``git mv`` (unchanged, same SHA-256) to ``members/<round>-<run>.pt``, the names
``python -m emo.ensemble`` gives the copies it makes now; this rewrites the ensemble checkpoint's ``members``
to name them there, checking each file's SHA-256 against the one the checkpoint recorded.

    python experiments/pack_results/move_members.py results/ensemble/best_model.pt
"""

import hashlib
import os
import sys
from pathlib import Path

import torch


def main(path: Path) -> None:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    kept = [r for r in ck["ensemble"]["rounds"] if r["kept"]]
    moved = []
    for k, (member, row) in enumerate(zip(ck["members"], kept), 1):
        rel = f"members/{k}-{Path(row['path']).parent.name}.pt"
        sha = hashlib.sha256((path.parent / rel).read_bytes()).hexdigest()
        if sha != member["sha256"]:
            raise SystemExit(f"{rel} is not the member {member['path']} the ensemble was made with")
        moved.append({"path": rel, "sha256": sha})
    ck["members"] = moved
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(ck, tmp)
    os.replace(tmp, path)
    print("\n".join(m["path"] for m in moved))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
