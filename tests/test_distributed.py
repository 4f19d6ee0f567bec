"""torchrun: two CPU processes (gloo) train the tiny model on generated faces with DistributedDataParallel."""

import json
import subprocess
import sys
from pathlib import Path

from emo.model import load_model

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = ["--widths", "16", "32", "64", "64", "64", "--stem", "16"]


def test_torchrun_processes_train_their_own_shards_in_step_and_resume(tmp_path):
    r = subprocess.run(TORCHRUN + [str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    checks = json.loads((tmp_path / "checks.json").read_text())
    # each process trains on its own half of the epoch, together all 294 training faces
    a, b = checks["shards"]
    assert len(a) == len(b) == 147 and not set(a) & set(b) and len(set(a) | set(b)) == 294
    # the weights agree after every step of both epochs, the second one resumed from last.pt
    assert checks["epochs"] == [1, 2] and checks["world"] == 2
    assert checks["steps"] == list(range(1, 2 * checks["steps_per_epoch"] + 1)) and checks["steps_per_epoch"] == 5
    assert checks["disagreeing_steps"] == []
    # and each epoch's validation, summed over the processes, scored the very model that rank 0 saves
    assert checks["validated_alike"] == [True, True]
    assert load_model(tmp_path / "best_model.pt").meta["epoch"] in (1, 2)


def test_torchrun_runs_emo_train_with_one_writer(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(TORCHRUN + ["-m", "emo.train", str(out), "--data", "synthetic", "--epochs", "2",
                                   "--limit", "128", "--batch-size", "32", *TINY, "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("epoch   2/2") == 1 and r.stdout.count("training on synthetic") == 1  # rank 0 speaks
    log = (out / "train_log.txt").read_text()
    assert "2 processes (gloo)" in log and "effective batch 64" in log
    assert sum(line.startswith("{") for line in log.splitlines()) == 2  # one row per epoch, written once
    model = load_model(out / "best_model.pt")  # the usual checkpoint format
    # validation summed over the processes is the saved model's own score on all the validation faces
    assert model.meta["history"][model.meta["epoch"] - 1]["val_acc"] == model.meta["metrics"]["val_acc"]
    assert model.meta["train_config"]["batch_size"] == 32 and len(model.classes) == 7
