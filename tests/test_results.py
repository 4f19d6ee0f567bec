"""The committed results agree with one another and with what the READMEs say about them.

``python -m emo.evaluate`` writes ``metrics.json`` beside a checkpoint. These tests read the committed
files only (no data, no inference), so they run the same on a fresh clone. They fail when a checkpoint
is replaced without evaluating it again, or when a README keeps a figure the files no longer give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emo import checkpoint
from emo.checkpoint import SHIPPED_MODELS
from emo.evaluate import format_results
from emo.files import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "results"
README = PROJECT_ROOT / "README.md"
RESULTS_README = RESULTS / "README.md"
#: metrics.json's split -> the key of the same score in a checkpoint's own ``metrics``
CHECKPOINT_KEYS = {"val": "val_acc", "val_tta": "val_acc_tta", "test": "test_acc", "test_tta": "test_acc_tta"}


def percent(x: float) -> str:
    return f"{100 * x:.2f}%"


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


EVALUATED = sorted(p.parent.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("metrics.json")
                   if (p.parent / "best_model.pt").exists())


def test_the_shipped_model_and_the_ensemble_are_evaluated():
    assert {".", "ensemble"} <= set(EVALUATED)


@pytest.mark.parametrize("folder", EVALUATED)
def test_metrics_json_was_measured_on_the_checkpoint_beside_it(folder):
    metrics, ck = metrics_of(RESULTS / folder), checkpoint.read(RESULTS / folder / "best_model.pt")
    for key in ("classes", "input_size", "crop", "dataset", "protocol"):
        assert metrics[key] == ck[key], f"results/{folder}: metrics.json's {key} is not the checkpoint's"
    for split, key in CHECKPOINT_KEYS.items():  # the checkpoint's own scores, written when it was made
        assert metrics[split]["accuracy"] == pytest.approx(ck["metrics"][key], abs=1e-6), (folder, split)


@pytest.mark.parametrize("folder", EVALUATED)
def test_evaluate_stdout_prints_the_metrics(folder):
    printed = (RESULTS / folder / "evaluate_stdout.txt").read_text()
    assert format_results(metrics_of(RESULTS / folder)) in printed, f"results/{folder}/evaluate_stdout.txt"


@pytest.mark.parametrize("doc", [README, RESULTS_README], ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_the_readmes_state_what_metrics_json_measured(doc):
    text = doc.read_text()
    for folder in (".", "ensemble"):
        metrics = metrics_of(RESULTS / folder)
        for split in ("test", "test_tta", "reference_test", "reference_test_tta"):
            assert percent(metrics[split]["accuracy"]) in text, f"{doc.name} lacks results/{folder}'s {split}"
    if doc == RESULTS_README:
        assert percent(metrics_of(RESULTS)["val"]["accuracy"]) in text


def test_the_readmes_state_the_measured_speed_ratio():
    table = (RESULTS / "benchmarks.md").read_text()
    ratio = re.search(r"^\| latency per face, batch 1 \(median\) \|.*\| ([\d.]+)x \|$", table, re.M)
    assert ratio, "results/benchmarks.md has no batch-1 latency row"
    assert f"{ratio.group(1)}x" in RESULTS_README.read_text()
    assert f"{ratio.group(1)} times" in README.read_text()


def test_results_holds_only_what_ships():
    """The shipped models (default, ensemble, small where it ships) and the members the ensemble names: no other
    checkpoint, no code."""
    ensemble = RESULTS / "ensemble" / "best_model.pt"
    members = {(ensemble.parent / m["path"]).resolve() for m in checkpoint.read(ensemble)["members"]}
    shipped = {p.resolve() for p in SHIPPED_MODELS.values() if p.exists()}
    assert {p.resolve() for p in RESULTS.rglob("*.pt")} == shipped | members
    assert {(RESULTS / "best_model.pt").resolve(), ensemble.resolve()} <= shipped
    assert not [p for p in RESULTS.rglob("*") if p.suffix in (".py", ".sh", ".ipynb")]


def test_the_lab_log_has_a_row_for_every_experiment_folder():
    lab = PROJECT_ROOT / "experiments"
    index = (lab / "README.md").read_text()
    folders = [d.name for d in lab.iterdir() if d.is_dir()]
    assert folders and all(f"`{name}/" in index for name in folders), [n for n in folders if f"`{n}/" not in index]
