import subprocess
import sys

import pytest
import torch

from emo import checkpoint
from emo.model import load_model
from emo.soup import average_weights, make_soup, read_ingredients
from tests.conftest import ROOT


def test_average_weights_is_the_mean_and_keeps_counters():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    avg = average_weights([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and avg["n"].item() == 5 and avg["n"].dtype == a["n"].dtype
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])


@pytest.fixture()
def ingredients(tmp_path, tiny_run):
    """The tiny trained model, and a spoiled copy of it whose head votes against it."""
    good = tiny_run[0] / "best_model.pt"
    ck = checkpoint.read(good)
    ck["state_dict"] = {k: -v if k == "head.3.weight" else v for k, v in ck["state_dict"].items()}
    spoiled = tmp_path / "spoiled.pt"
    torch.save(ck, spoiled)
    return good, spoiled


def test_greedy_soup_ranks_by_validation_and_leaves_out_what_hurts(ingredients, tmp_path):
    good, spoiled = ingredients
    out = tmp_path / "soup" / "best_model.pt"
    lines: list[str] = []
    ck = make_soup([spoiled, good], out, source="synthetic", bn_faces=64, log=lines.append)
    rows = ck["soup"]["ingredients"]
    # ranked best first, whatever the order given; the spoiled head's mean with the good one is a zero head
    assert [r["path"] for r in rows] == [str(good), str(spoiled)]
    assert rows[0]["val_acc"] > rows[1]["val_acc"] and rows[1]["soup_val_acc"] < rows[0]["val_acc"]
    assert [r["kept"] for r in rows] == [True, False] and len(lines) == 3 and "left out" in lines[1]
    soup, alone = load_model(out), load_model(good)
    for w in ("stem.0.weight", "head.3.weight"):  # the soup is the good model alone
        assert torch.equal(soup.state_dict()[w], alone.state_dict()[w])
    assert soup.meta["soup"]["ingredients"] == rows and soup.meta["history"] == alone.meta["history"]
    assert soup.meta["metrics"]["val_acc"] == pytest.approx(max(r["val_acc"] for r in soup.meta["inference_search"]))


def test_a_kept_ingredient_is_averaged_in(ingredients, tmp_path, tiny_run, synthetic_splits):
    from emo.soup import greedy_soup
    good, _ = ingredients
    head = "head.3.weight"
    first, twin = checkpoint.read(good), checkpoint.read(good)
    twin["state_dict"][head] = twin["state_dict"][head] * 0.5  # other weights, the same architecture
    state, crop, rows = greedy_soup([first, twin], synthetic_splits, bn_faces=64)
    assert sorted(r["index"] for r in rows) == [0, 1] and rows[0]["val_acc"] >= rows[1]["val_acc"]
    assert rows[1]["kept"] == (rows[1]["soup_val_acc"] >= rows[0]["val_acc"])
    best = first if rows[0]["index"] == 0 else twin
    expected = first["state_dict"][head] * 0.75 if rows[1]["kept"] else best["state_dict"][head]
    assert torch.allclose(state[head], expected)
    from emo.inference_search import BN_SOURCES, CROP_CANDIDATES
    assert crop in CROP_CANDIDATES and rows[1]["crop"] in CROP_CANDIDATES and rows[1]["bn"] in BN_SOURCES
    assert crop == (rows[1]["crop"] if rows[1]["kept"] else rows[0]["crop"])


def test_ingredients_must_match(tiny_run, tmp_path):
    good = tiny_run[0] / "best_model.pt"
    ck = checkpoint.read(good)
    ck["classes"] = list(reversed(ck["classes"]))
    other = tmp_path / "other.pt"
    torch.save(ck, other)
    with pytest.raises(ValueError, match="differs from .* in 'classes'"):
        read_ingredients([good, other])
    with pytest.raises(ValueError, match="at least two"):
        read_ingredients([good])


def test_cli_writes_the_soup_and_refuses_bad_input(ingredients, tmp_path):
    good, spoiled = ingredients
    out = tmp_path / "s.pt"
    cmd = [sys.executable, "-m", "emo.soup", str(good), str(spoiled), "--out", str(out), "--source", "synthetic",
           "--bn-faces", "64"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "1 of 2 ingredients" in r.stdout and load_model(out).meta["soup"]["command"].startswith("python -m emo.soup")
    before = out.read_bytes()  # a second soup into the same file: refused, the first left as it was
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "exists already" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == before
    r = subprocess.run([sys.executable, "-m", "emo.soup", str(good), str(tmp_path / "missing.pt"), "--source",
                        "synthetic"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error: no model at") and len(r.stderr.strip().splitlines()) == 1
