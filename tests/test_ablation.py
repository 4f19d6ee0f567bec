import pytest

from emo import ablation
from emo.ablation import main
from emo.model import load_model


def test_ablation_trains_each_size_and_writes_its_table(tmp_path):
    rc = main([str(tmp_path), "--sizes", "16", "24", "--epochs", "1", "--limit", "64", "--data", "synthetic",
               "--no-progress"])
    assert rc == 0
    rows = ablation.load_results(tmp_path)
    assert [r["input_size"] for r in rows] == [16, 24]  # small sizes: the default network, trained quickly
    for r in rows:
        m = load_model(tmp_path / f"size{r['input_size']}" / "best_model.pt")
        assert m.input_size == r["input_size"]
        assert r["val_acc"] == pytest.approx(m.meta["metrics"]["val_acc"])
        assert r["train_faces"] == 64 and r["epochs"] == 1
        assert (tmp_path / f"size{r['input_size']}" / "history.csv").is_file()
    assert rows[0]["params"] == rows[1]["params"]  # global pooling: the weights do not depend on the input size
    assert rows[1]["mflops"] > 1.5 * rows[0]["mflops"]  # (24/16)^2 = 2.25
    text = (tmp_path / "README.md").read_text()
    assert "`python -m emo.ablation " in text and "--sizes 16 24" in text
    assert "| 16x16 |" in text and "| 24x24 |" in text


def test_ablation_refuses_a_size_too_small(capsys):
    assert main(["--sizes", "48", "8"]) == 2
    assert "sizes=[48, 8]" in capsys.readouterr().err


def test_ablation_writes_under_runs_and_never_over_another_runs_checkpoints(tmp_path, monkeypatch, capsys):
    default = tmp_path / "runs" / "ablation"
    monkeypatch.setattr(ablation, "DEFAULT_ABLATION", default)
    ablation.run_ablation([16], epochs=1, limit=32, source="synthetic", progress=False)
    assert (default / "ablation.csv").is_file()
    assert f"wrote {default / 'README.md'}" in capsys.readouterr().out
    before = (default / "size16" / "best_model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        ablation.run_ablation([16], epochs=1, limit=32, source="synthetic", progress=False)
    assert (default / "size16" / "best_model.pt").read_bytes() == before


def test_load_results_says_what_to_run_when_there_is_no_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m emo.ablation"):
        ablation.load_results(tmp_path)
