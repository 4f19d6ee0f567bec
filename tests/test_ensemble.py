import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emo import checkpoint
from emo.ensemble import make_ensemble, select_members
from emo.evaluate import run as evaluate
from emo.model import Ensemble, load_model, predict_proba
from emo.network import MiniXception
from emo.preprocess import preprocessing_of
from emo.saliency import grad_cam
from emo.soup import make_soup
from emo.train import make_trainer
from tests.conftest import ROOT, tiny_config


def test_select_members_adds_the_most_helpful_candidate_while_accuracy_rises():
    labels = np.array([0, 1, 2, 0])
    a = np.array([[.8, .1, .1], [.1, .8, .1], [.1, .1, .8], [.3, .6, .1]])    # 3 of 4: wrong on the last face
    b = np.array([[.35, .4, .25], [.4, .35, .25], [.25, .4, .35], [.9, .05, .05]])  # 1 of 4, but sure of the last
    probs = [a, a.copy(), b]  # the copy ties with a alone and adds nothing to it
    rows = select_members(probs, labels)
    assert [r["index"] for r in rows] == [0, 2, 1] and [r["kept"] for r in rows] == [True, True, False]
    assert [r["val_acc"] for r in rows] == [0.75, 0.25, 0.75]
    assert [r["ensemble_val_acc"] for r in rows] == [0.75, 1.0, 1.0]  # a third member that adds nothing: stop
    # a cap on the size ends selection there, without a stopping round
    assert [r["index"] for r in select_members(probs, labels, max_members=1)] == [0]
    with pytest.raises(ValueError, match="max_members must be at least 1, got 0"):
        select_members(probs, labels, max_members=0)
    with pytest.raises(ValueError, match="at least one"):
        select_members([], labels)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, synthetic_splits, tiny_run):
    """Copies of the tiny trained model and of a second one trained with another seed: whole face and a 0.9 crop."""
    out = tmp_path_factory.mktemp("second_run")
    make_trainer(tiny_config(epochs=2, seed=7), out / "run", "cpu", splits=synthetic_splits, progress=False,
                 tune=True).fit()
    paths = []
    for src, crop, name in ((tiny_run[0] / "best_model.pt", 1.0, "a.pt"), (out / "run" / "best_model.pt", 0.9, "b.pt")):
        ck = checkpoint.read(src)
        ck["crop"] = crop
        torch.save(ck, out / name)
        paths.append(out / name)
    return tuple(paths)


def test_ensemble_predicts_the_mean_of_its_members_each_at_its_crop(two_runs, synthetic_splits):
    a, b = (load_model(p) for p in two_runs)
    assert (preprocessing_of(a).crop, preprocessing_of(b).crop) == (1.0, 0.9)
    ens = Ensemble([a, b]).eval()
    faces = synthetic_splits.test.images[:20]
    expected = (predict_proba(a, faces) + predict_proba(b, faces)) / 2
    assert np.allclose(predict_proba(ens, faces), expected, atol=1e-5)
    expected_tta = (predict_proba(a, faces, tta=True) + predict_proba(b, faces, tta=True)) / 2
    assert np.allclose(predict_proba(ens, faces, tta=True), expected_tta, atol=1e-5)
    other = MiniXception(a.config, tuple(reversed(a.classes)))
    with pytest.raises(ValueError, match="member 1 differs from member 0 in classes"):
        Ensemble([a, other])


def test_make_ensemble_writes_a_checkpoint_that_loads_scores_and_explains_itself(two_runs, tmp_path, synthetic_splits):
    out = tmp_path / "ens" / "best_model.pt"
    lines: list[str] = []
    ck = make_ensemble(list(two_runs), out, source="synthetic", log=lines.append)
    rounds = ck["ensemble"]["rounds"]
    assert rounds[0]["kept"] and rounds[0]["val_acc"] == max(r["val_acc"] for r in rounds)
    assert [r["path"] for r in rounds] and set(r["path"] for r in rounds) <= set(map(str, two_runs))
    assert all("crop" in r and "bn" in r for r in rounds) and len(lines) == len(rounds) + 1
    model = load_model(out)
    kept = [r for r in rounds if r["kept"]]
    if len(kept) == 1:  # one member: the ensemble must be exactly that network
        assert isinstance(model, Ensemble) and len(model.members) == 1
    assert [preprocessing_of(m).crop for m in model.members] == [r["crop"] for r in kept]
    assert model.classes == tuple(ck["classes"])
    assert model.meta["history"] == checkpoint.read(kept[0]["path"])["history"]
    # its recorded scores are what evaluation measures, and the validation one is selection's
    r = evaluate(out, None, source="synthetic", figures=False)
    assert r["test"]["accuracy"] == pytest.approx(model.meta["metrics"]["test_acc"])
    assert r["val_tta"]["accuracy"] == pytest.approx(model.meta["metrics"]["val_acc_tta"])
    assert model.meta["metrics"]["val_acc"] == pytest.approx(kept[-1]["ensemble_val_acc"], abs=1e-9)
    # grad-CAM of an ensemble: the mean of its members' maps
    cams = grad_cam(model, synthetic_splits.test.images[:4])
    assert cams.shape == (4, 48, 48) and 0 <= cams.min() and cams.max() <= 1 + 1e-6


def test_a_selection_that_keeps_both_is_the_mean_of_both(two_runs, tmp_path, synthetic_splits):
    """Whatever selection keeps, the written ensemble is the members it lists, with their own crops."""
    out = tmp_path / "both.pt"
    ck = make_ensemble(list(two_runs), out, source="synthetic", log=lambda s: None)
    members = [load_model(r["path"]) for r in ck["ensemble"]["rounds"] if r["kept"]]
    faces = synthetic_splits.val.images[:16]
    expected = np.mean([predict_proba(m, faces) for m in members], 0)
    assert np.allclose(predict_proba(load_model(out), faces), expected, atol=1e-5)


def test_an_ensemble_is_refused_where_one_network_is_needed(two_runs, tmp_path, synthetic_splits):
    out = tmp_path / "ens.pt"
    make_ensemble(list(two_runs), out, source="synthetic", log=lambda s: None)
    with pytest.raises(ValueError, match="is an ensemble of .* --init takes a single network"):
        make_trainer(tiny_config(init=str(out)), tmp_path / "t", "cpu", splits=synthetic_splits, progress=False)
    with pytest.raises(ValueError, match="a soup takes a single network"):
        make_soup([out, two_runs[0]], tmp_path / "s.pt", source="synthetic")
    with pytest.raises(ValueError, match="an ensemble takes a single network"):
        make_ensemble([out, two_runs[0]], tmp_path / "e2.pt", source="synthetic")
    with pytest.raises(ValueError, match="tuning the inference settings takes a single network"):
        evaluate(out, None, source="synthetic", figures=False, tune=True)


def test_an_ensemble_is_made_on_its_members_own_data(two_runs, tmp_path):
    moved = []
    for i, path in enumerate(two_runs):
        ck = checkpoint.read(path)
        ck["dataset"] = "fer2013"
        torch.save(ck, tmp_path / f"{i}.pt")
        moved.append(tmp_path / f"{i}.pt")
    with pytest.raises(ValueError, match="trained on fer2013, not synthetic: make an ensemble on their own data"):
        make_ensemble(moved, tmp_path / "e.pt", source="synthetic")
    assert not (tmp_path / "e.pt").exists()


def test_cli_writes_the_ensemble_and_refuses_bad_input(two_runs, tmp_path):
    out = tmp_path / "e.pt"
    cmd = [sys.executable, "-m", "emo.ensemble", *map(str, two_runs), "--out", str(out), "--source", "synthetic"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "of 2 candidates" in r.stdout
    assert load_model(out).meta["ensemble"]["command"].startswith("python -m emo.ensemble")
    before = out.read_bytes()  # a second ensemble into the same file: refused, the first left as it was
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "exists already" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == before
    assert subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, cwd=ROOT).returncode == 0
    r = subprocess.run([sys.executable, "-m", "emo.ensemble", str(two_runs[0]), str(tmp_path / "missing.pt"),
                        "--source", "synthetic"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error: no model at") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "emo.ensemble", str(two_runs[0]), "--source", "synthetic"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "an ensemble needs at least two checkpoints, got 1" in r.stderr


def test_an_ensemble_folder_holds_its_members_and_loads_wherever_it_is_copied(two_runs, tmp_path):
    out = tmp_path / "ens" / "best_model.pt"
    ck = make_ensemble(list(two_runs), out, source="synthetic", log=lambda s: None)
    assert "state_dict" not in checkpoint.read(out) and out.stat().st_size < two_runs[0].stat().st_size / 4
    assert all(m["path"].startswith("members/") and (out.parent / m["path"]).is_file() for m in ck["members"])
    moved = tmp_path / "elsewhere" / "copy"  # the folder alone, copied: it needs nothing outside itself
    shutil.copytree(out.parent, moved)
    shutil.rmtree(out.parent)
    ens = load_model(moved / "best_model.pt")
    assert isinstance(ens, Ensemble) and len(ens.members) == len(ck["members"])
    member = moved / ck["members"][0]["path"]
    spoiled = checkpoint.read(member)
    spoiled["crop"] = 0.85
    torch.save(spoiled, member)
    with pytest.raises(ValueError, match="has changed since the ensemble .* was made: make the ensemble again"):
        load_model(moved / "best_model.pt")
    member.unlink()
    with pytest.raises(FileNotFoundError, match="needs its member .*: copy or move the ensemble's whole folder"):
        load_model(moved / "best_model.pt")
    with pytest.raises(ValueError, match="is one of the candidates"):
        make_ensemble(list(two_runs), two_runs[1], source="synthetic")
    with pytest.raises(ValueError, match="load it with load_model"):
        checkpoint.network(ck)


SHIPPED_ENSEMBLE = ROOT / "results" / "ensemble" / "best_model.pt"


@pytest.mark.skipif(not SHIPPED_ENSEMBLE.exists(), reason="no ensemble in results/ensemble/")
def test_the_committed_ensemble_loads_from_its_committed_members(tmp_path):
    ens = load_model(SHIPPED_ENSEMBLE)  # checks each member file's SHA-256
    kept = [r for r in ens.meta["ensemble"]["rounds"] if r["kept"]]
    assert isinstance(ens, Ensemble) and len(ens.members) == len(kept) == len(ens.meta["members"]) >= 2
    assert [preprocessing_of(m).crop for m in ens.members] == [r["crop"] for r in kept]
    # each member lives in the ensemble's own folder, named after the round that kept it
    assert [m["path"] for m in ens.meta["members"]] == \
        [f"members/{k}-{Path(r['path']).parent.name}.pt" for k, r in enumerate(kept, 1)]
    copy = shutil.copytree(SHIPPED_ENSEMBLE.parent, tmp_path / "elsewhere")  # the folder stands alone
    moved = load_model(copy / SHIPPED_ENSEMBLE.name)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(moved, faces), predict_proba(ens, faces), atol=1e-6)
