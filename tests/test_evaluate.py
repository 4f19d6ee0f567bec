import json

import numpy as np
import pytest

from emo.evaluate import run
from emo.evaluation import evaluate_split, labels_in_model_order
from emo.model import load_model
from emo.network import build_model
from emo.preprocess import preprocessing_of
from emo.splits import Split


def test_run_writes_metrics_and_figures(tiny_model_path, tmp_path):
    r = run(tiny_model_path, tmp_path, source="synthetic")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("val", "val_tta", "test", "test_tta"):
        assert 0 <= saved[key]["accuracy"] <= 1 and saved[key]["faces"] == 63
    assert saved["classes"] == list(load_model(tiny_model_path).classes)
    ev = r["_evals"]["test", False]
    assert saved["test"]["accuracy"] == pytest.approx(float((ev.probs.argmax(1) == ev.labels).mean()))
    for f in ("confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "learning_curves.png"):
        assert (tmp_path / f).stat().st_size > 5000
    assert "macro avg" in (tmp_path / "classification_report.txt").read_text()
    # the checkpoint's own scores (written at the end of training) agree with the evaluation command
    meta = load_model(tiny_model_path).meta["metrics"]
    assert saved["test"]["accuracy"] == pytest.approx(meta["test_acc"])
    assert saved["test_tta"]["accuracy"] == pytest.approx(meta["test_acc_tta"])


def test_labels_are_matched_to_the_model_by_name():
    data_classes = ("a", "b", "c")
    model = build_model(input_size=48, widths=(8, 8, 8, 8, 8), num_classes=3, classes=("c", "a", "b"))
    split = Split(np.zeros((3, 48, 48), np.uint8), np.array([0, 1, 2]))
    assert list(labels_in_model_order(split, data_classes, model)) == [1, 2, 0]
    with pytest.raises(ValueError, match="predicts"):
        labels_in_model_order(split, ("a", "b", "x"), model)


def test_tta_evaluation_is_deterministic(tiny_model_path, synthetic_splits):
    m = load_model(tiny_model_path)
    a = evaluate_split(m, synthetic_splits.test, synthetic_splits.classes, tta=True)
    b = evaluate_split(m, synthetic_splits.test, synthetic_splits.classes, tta=True)
    assert np.array_equal(a.probs, b.probs)


def test_cli_on_other_data_keeps_the_models_folder_intact(tiny_model_path, tmp_path):
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT
    model = tmp_path / "m" / "best_model.pt"
    model.parent.mkdir()
    shutil.copy(tiny_model_path, model)
    # a model that says it was trained on FER-2013, evaluated where only generated faces exist
    import torch
    ck = torch.load(model, weights_only=True)
    ck["dataset"] = "fer2013"
    torch.save(ck, model)
    r = subprocess.run([sys.executable, "-m", "emo.evaluate", str(model), "--source", "synthetic", "--no-figures"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "trained on fer2013 and is scored on synthetic" in r.stderr
    assert not (model.parent / "metrics.json").exists()
    assert "runs/evaluate" in r.stdout


def test_cli_tune_writes_the_chosen_settings_into_a_new_checkpoint_beside_it(tiny_model_path, tmp_path, capsys):
    import shutil

    from emo.evaluate import main
    model = tmp_path / "best_model.pt"
    shutil.copy(tiny_model_path, model)
    ck, before = load_model(model).meta, model.read_bytes()
    assert main([str(model), "--tune", "--source", "synthetic", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert model.read_bytes() == before  # the model it did not write is left as it was
    tuned = load_model(tmp_path / "best_model.tuned.pt")
    assert "inference settings chosen on validation" in out and f"centre crop {preprocessing_of(tuned).crop:g}" in out
    from emo.inference_search import BN_SOURCES, CROP_CANDIDATES
    tried = [(r["crop"], r["bn"]) for r in tuned.meta["inference_search"]]
    assert tried == [(c, bn) for bn in BN_SOURCES for c in CROP_CANDIDATES] and tuned.meta["epoch"] == ck["epoch"]
    assert all(f"{bn:13s} BN: validation" in out for bn in BN_SOURCES)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["crop"] == preprocessing_of(tuned).crop
    assert saved["val"]["accuracy"] == pytest.approx(tuned.meta["metrics"]["val_acc"])
    assert main([str(model), "--tune", "--source", "synthetic", "--no-figures"]) == 2  # never over an earlier one
    assert "best_model.tuned.pt exists already" in capsys.readouterr().err
