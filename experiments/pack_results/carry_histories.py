"""Store in the shipped checkpoints the histories of the runs they were ``--init``-ed from (``init_histories``).

Their starting checkpoints left the tree when results/ was cut to what ships (they stay in git at 34a519c),
and the learning curves that ``python -m emo.evaluate`` draws follow that chain. This reads the chain from
git and adds it to each checkpoint; the weights and every other entry stay as they are (checked).
Training with ``--init`` now stores the chain itself (emo.finetune), so this was needed once.

    python experiments/pack_results/carry_histories.py results/best_model.pt results/ensemble/best_model.pt
"""

import subprocess
import sys
import tempfile

import torch

from emo.checkpoint import full_history
from emo.files import PROJECT_ROOT
from emo.model import atomic_save, read_checkpoint

COMMIT = "34a519c"  # the last commit with every experiment's checkpoint


def checkpoint_at_commit(path: str) -> dict:
    blob = subprocess.run(["git", "show", f"{COMMIT}:{path}"], capture_output=True, check=True, cwd=PROJECT_ROOT).stdout
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(blob)
        f.flush()
        return read_checkpoint(f.name)


def earlier_runs(ck: dict) -> list[list[dict]]:
    """The histories of the checkpoints ``ck`` was --init-ed from, oldest first, read at COMMIT."""
    init = ck.get("train_config", {}).get("init")
    if not init:
        return []
    start = checkpoint_at_commit(init)
    return earlier_runs(start) + [list(start.get("history") or [])]


def main(paths: list[str]) -> None:
    for path in paths:
        ck = read_checkpoint(path)
        runs = earlier_runs(ck)
        new = {**ck, "init_histories": runs}
        history, restarts = full_history(new)
        assert len(history) == sum(map(len, runs)) + len(ck["history"]) and len(restarts) == len(runs), path
        atomic_save(new, path)
        again = read_checkpoint(path)
        assert set(again) == set(ck) | {"init_histories"}
        if "state_dict" in ck:
            assert all(torch.equal(v, again["state_dict"][k]) for k, v in ck["state_dict"].items())
        print(f"{path}: {len(runs)} earlier run(s), {sum(map(len, runs))} epochs, stored")


if __name__ == "__main__":
    main(sys.argv[1:])
