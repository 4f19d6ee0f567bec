import csv
import dataclasses
import subprocess
import sys

import pytest
import torch

from emo import checkpoint
from emo.checkpoint import full_history
from emo.distill import Distill
from emo.inference_search import BN_SOURCES
from emo.model import load_model, predict_proba
from emo.plots import plot_history
from emo.preprocess import preprocessing_of, set_preprocessing
from emo.swa import WeightAveraging
from emo.train import TrainConfig, make_trainer
from emo.trainer import Trainer, autocast_dtype
from tests.conftest import ROOT, tiny_config


def extension(trainer, kind):
    return next(e for e in trainer.extensions if isinstance(e, kind))


def notes(trainer) -> str:
    return " ".join(e.note for e in trainer.extensions)


def test_run_writes_checkpoint_history_and_log(tiny_run):
    out, trainer = tiny_run
    assert {"best_model.pt", "last.pt", "history.csv"} <= {p.name for p in out.iterdir()}
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    m = load_model(out / "best_model.pt")
    assert m.classes == trainer.splits.classes and m.meta["protocol"] == "standard"
    assert m.meta["dataset"] == "synthetic"
    assert set(m.meta["metrics"]) == {"val_acc", "val_acc_tta", "test_acc", "test_acc_tta"}
    best = max(float(r["val_acc"]) for r in rows)
    # inference settings are chosen on validation: the whole face with trained BN scores as the best epoch did
    search = m.meta["inference_search"]
    assert [(r["crop"], r["bn"]) for r in search] == [(c, bn) for bn in BN_SOURCES for c in (1, .95, .9, .85)]
    assert search[0]["val_acc"] == pytest.approx(best)
    top = max(r["val_acc"] for r in search)
    assert {"crop": preprocessing_of(m).crop, "bn": m.meta["bn"], "val_acc": top} in search
    assert m.meta["metrics"]["val_acc"] == pytest.approx(top)
    assert m.meta["train_config"]["model"]["widths"] == [16, 32, 64, 64, 64]


def test_training_learns_the_generated_faces(tmp_path, synthetic_splits):
    cfg = tiny_config(epochs=12, mixup_alpha=0.0, gamma=0.0, lr=1e-2, batch_size=16)
    Trainer(cfg, tmp_path, "cpu", splits=synthetic_splits, progress=False).fit()
    acc = load_model(tmp_path / "best_model.pt").meta["metrics"]["test_acc"]
    assert acc > 0.6  # chance is 1/7 on the 7 balanced classes


def run_interrupted_after_two(cfg, out, splits):
    """A run stopped (as by Ctrl-C) after its second epoch."""
    def interrupt_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    trainer = make_trainer(cfg, out, "cpu", splits=splits, progress=False, tune=False)
    trainer.on_epoch = interrupt_after_two
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    return trainer


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, synthetic_splits):
    cfg = tiny_config(epochs=4)
    full = Trainer(cfg, tmp_path / "full", "cpu", splits=synthetic_splits, progress=False)
    full.fit()
    run_interrupted_after_two(cfg, tmp_path / "cut", synthetic_splits)
    second = Trainer(cfg, tmp_path / "cut", "cpu", splits=synthetic_splits, progress=False)
    second.fit(resume=True)
    assert second.epoch == 4
    for a, b in zip(full.history, second.history):
        assert a["val_acc"] == pytest.approx(b["val_acc"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    for (k, v), w in zip(full.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-4), k


def test_resume_from_best_when_last_was_lost(tmp_path, synthetic_splits):
    cfg = tiny_config(epochs=4)
    full = Trainer(cfg, tmp_path / "full", "cpu", splits=synthetic_splits, progress=False)
    first = run_interrupted_after_two(cfg, tmp_path / "cut", synthetic_splits)
    best_epoch = first.best_epoch
    (tmp_path / "cut" / "last.pt").unlink()
    second = Trainer(cfg, tmp_path / "cut", "cpu", splits=synthetic_splits, progress=False)
    second.resume()
    assert second.epoch == best_epoch and [r["epoch"] for r in second.history] == list(range(1, best_epoch + 1))
    assert "best_model.pt" in second.resume_note
    # the One-Cycle schedule goes on where it stopped: the same learning rate as an uninterrupted run there
    for _ in range(best_epoch * full.steps_per_epoch):
        full.opt.step()
        full.sched.step()
    assert second.opt.param_groups[0]["lr"] == pytest.approx(full.opt.param_groups[0]["lr"])
    second.fit(resume=False)
    assert second.epoch == 4 and len(second.history) == 4


def test_resume_from_best_when_last_was_cut_short(tmp_path, synthetic_splits):
    """A last.pt cut short (a crash while the disk was full, a copy broken off) is passed over, and the log says why."""
    cfg = tiny_config(epochs=4)
    first = run_interrupted_after_two(cfg, tmp_path / "cut", synthetic_splits)
    last = tmp_path / "cut" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    second = Trainer(cfg, tmp_path / "cut", "cpu", splits=synthetic_splits, progress=False)
    second.resume()
    assert second.epoch == first.best_epoch and second.resume_note.startswith("NOTE: last.pt cannot be read")


def test_resume_refuses_other_settings(tmp_path, synthetic_splits):
    Trainer(tiny_config(epochs=1), tmp_path, "cpu", splits=synthetic_splits, progress=False).fit()
    with pytest.raises(ValueError, match="lr"):
        Trainer(tiny_config(epochs=1, lr=0.1), tmp_path, "cpu", splits=synthetic_splits,
                progress=False).fit(resume=True)
    with pytest.raises(ValueError, match="--epochs 1"):
        Trainer(tiny_config(epochs=5), tmp_path, "cpu", splits=synthetic_splits, progress=False).fit(resume=True)


def test_early_stopping(tmp_path, synthetic_splits):
    t = Trainer(tiny_config(epochs=30, patience=2, lr=1e-7), tmp_path, "cpu", splits=synthetic_splits, progress=False)
    t.fit()
    assert t.epoch < 30 and t.epoch - t.best_epoch == 2


def test_subset_limit_is_a_random_sample(synthetic_splits, tmp_path):
    t = Trainer(tiny_config(limit=70), tmp_path, "cpu", splits=synthetic_splits, progress=False)
    assert len(t.train_labels) == 70 and len(torch.unique(t.train_labels)) == 7


def test_config_errors():
    with pytest.raises(ValueError, match="epochs=0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="amp='fp8'"):
        TrainConfig(amp="fp8")
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(ValueError, match="needs CUDA"):
        autocast_dtype("fp16", torch.device("cpu"))


def test_the_command_line_sets_the_architecture():
    from emo.network import MiniXception, ModelConfig
    from emo.train import config_from_args, parse_args
    cfg = config_from_args(parse_args(["runs/x", "--stem", "32", "--widths", "32", "64", "128"]))
    model = MiniXception(ModelConfig.from_dict(cfg.model))
    assert model.stem[0].out_channels == 32 and [b.body[0][1].out_channels for b in model.blocks] == [32, 64, 128]
    assert cfg.model["strides"] == [2, 2, 1] and cfg.model["input_size"] == 48


def test_cli_trains_and_resume_without_last_is_a_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "emo.train", str(tmp_path), "--source", "synthetic", "--epochs", "1", "--limit", "64",
           "--widths", "16", "16", "32", "32", "32", "--no-progress"]
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "no " in r.stderr and "last.pt" in r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "best_model.pt").exists() and "python -m emo.train" in (tmp_path / "train_log.txt").read_text()


def test_init_starts_from_a_checkpoint_and_refuses_another_model(tmp_path, synthetic_splits, tiny_run):
    src = tiny_run[0] / "best_model.pt"
    start = load_model(src)
    t = make_trainer(tiny_config(epochs=1, init=str(src)), tmp_path / "warm", "cpu", splits=synthetic_splits,
                     progress=False)
    for (k, v), w in zip(start.state_dict().items(), t.model.state_dict().values()):
        assert torch.equal(v, w), k
    assert preprocessing_of(t.model).normalize == pytest.approx(preprocessing_of(start).normalize)
    assert str(src) in notes(t)
    assert t.opt.param_groups[0]["lr"] < 3e-3 / 10  # a fresh One-Cycle: warming up again from lr / 25
    t.fit()
    warm = load_model(tmp_path / "warm" / "best_model.pt")
    assert t.epoch == 1 and warm.meta["train_config"]["init"] == str(src)
    # the learning curves follow the chain: the 3 epochs of the starting run, then this one, numbered on
    history, restarts = full_history(warm.meta)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and restarts == [4]
    # ... and need not find the starting checkpoint: the new one carries the earlier runs' histories
    assert warm.meta["init_histories"] == [tiny_run[1].history]
    assert full_history({**warm.meta, "train_config": {"init": str(tmp_path / "gone.pt")}}) == (history, restarts)
    assert history[3]["val_acc"] == t.history[0]["val_acc"]
    assert history[0]["val_acc"] == tiny_run[1].history[0]["val_acc"]
    labels = [line.get_label() for line in plot_history(history, restarts=restarts).axes[1].get_lines()]
    assert "warm restart (--init)" in labels
    other = tiny_config(init=str(src), model={**tiny_config().model, "widths": [16, 16, 32, 32, 32]})
    with pytest.raises(ValueError, match="--init .*architecture differs"):
        make_trainer(other, tmp_path / "other", "cpu", splits=synthetic_splits, progress=False)


def test_swa_saves_the_weight_average_with_fresh_bn_and_resumes(tmp_path, synthetic_splits, tiny_run):
    src = str(tiny_run[0] / "best_model.pt")
    cfg = tiny_config(epochs=3, init=src, swa=True, lr=1e-3, swa_bn_faces=64)
    # the reference run: uninterrupted; keep every epoch's weights to check the average by hand
    snapshots = []
    full = make_trainer(cfg, tmp_path / "full", "cpu", splits=synthetic_splits, progress=False, tune=True)
    full.on_epoch = lambda row: snapshots.append({k: v.clone() for k, v in full.model.state_dict().items()})
    assert full.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.04)  # warming up
    full.fit()
    assert full.opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # then constant, no One-Cycle decay
    assert all("raw_val_acc" in row for row in full.history)
    assert "raw_val_acc" in next(csv.DictReader(open(tmp_path / "full" / "history.csv")))
    avg = extension(full, WeightAveraging).averaged_model(full)
    for k, v in avg.state_dict().items():
        if "running" in k or "num_batches" in k:
            continue
        expected = torch.stack([s[k].float() for s in snapshots]).mean(0)
        assert torch.allclose(v.float(), expected, atol=1e-5), k
    # BN statistics are measured for the average, not copied from any snapshot
    bn = next(k for k in avg.state_dict() if k.endswith("running_mean"))
    assert not any(torch.allclose(avg.state_dict()[bn], s[bn]) for s in snapshots)
    saved = load_model(tmp_path / "full" / "best_model.pt")
    assert saved.meta["train_config"]["swa"] is True
    # the saved average (BN measured on clean whole faces) is what the first tuning row scores
    assert saved.meta["inference_search"][0] == {"crop": 1.0, "bn": "trained",
                                                 "val_acc": pytest.approx(max(r["val_acc"] for r in full.history))}
    # an interrupted SWA run resumes with its running average
    run_interrupted_after_two(cfg, tmp_path / "cut", synthetic_splits)
    second = make_trainer(cfg, tmp_path / "cut", "cpu", splits=synthetic_splits, progress=False, tune=False)
    second.fit(resume=True)
    assert int(extension(second, WeightAveraging).average.n_averaged) == 3
    for a, b in zip(full.history, second.history):
        assert a["val_acc"] == pytest.approx(b["val_acc"])
    with pytest.raises(ValueError, match="pass init"):
        tiny_config(swa=True)
    labels = [line.get_label() for line in plot_history(full.history).axes[1].get_lines()]
    assert "validation, last weights (SWA epochs)" in labels


def test_distillation_pulls_the_student_towards_its_teacher(tmp_path, synthetic_splits, tiny_run):
    """With ``teacher`` (a network or an ensemble) the loss is the distillation loss on the same batches."""
    from emo.losses import distillation_loss
    from emo.model import Ensemble
    from emo.preprocess import center_crop
    # a teacher with an unmistakable opinion: "fear" (class 2) for every face, with probability ~0.9
    teacher = load_model(tiny_run[0] / "best_model.pt")
    teacher.head[-1].weight.data.zero_()
    teacher.head[-1].bias.data.copy_(torch.tensor([0, 0, 4.0, 0, 0, 0, 0]))
    teacher_path = checkpoint.save_network(teacher, tmp_path / "teacher.pt")
    faces = preprocessing_of(teacher).with_(crop=1.0)(synthetic_splits.val.images)

    def kl_to_teacher(model) -> float:
        with torch.no_grad():
            return distillation_loss(model.eval()(faces), teacher(faces)).item()

    cfg = tiny_config(epochs=2, teacher=str(teacher_path), seed=5)
    t = make_trainer(cfg, tmp_path / "kd", "cpu", splits=synthetic_splits, progress=False)
    kd = extension(t, Distill)
    assert isinstance(kd.teacher, type(teacher)) and "teacher: " in notes(t)
    before = kl_to_teacher(t.model)
    t.fit()
    after = kl_to_teacher(t.model)
    assert after < 0.75 * before, (before, after)  # (measured: 1.34 -> 0.78; the labels say otherwise)
    assert t.history[1]["train_loss"] < t.history[0]["train_loss"] / 2  # the loss is the distillation loss
    student = load_model(tmp_path / "kd" / "best_model.pt")
    assert student.meta["train_config"]["teacher"] == str(teacher_path)
    # the teacher's batches are the student's, in the teacher's own normalisation
    x = torch.rand(4, 1, 48, 48)
    set_preprocessing(t.model, preprocessing_of(t.model).with_(mean=0.3, std=0.2))
    mean, std = preprocessing_of(teacher).normalize
    assert torch.allclose(kd.teacher_logits(t, (x - 0.3) / 0.2), teacher((x - mean) / std), atol=1e-5)
    # an ensemble teaches too; a teacher with other classes or input size is refused in one line
    t2 = make_trainer(tiny_config(epochs=1, teacher=str(teacher_path), distill_weight=0.5), tmp_path / "kd2", "cpu",
                      splits=synthetic_splits, progress=False)
    kd2 = extension(t2, Distill)
    kd2.teacher = Ensemble([teacher, teacher])  # (the ensemble crops each face as its members were tuned to)
    x = (torch.rand(4, 1, 48, 48) - 0.3) / 0.2
    assert torch.allclose(kd2.teacher_logits(t2, x).softmax(1),
                          teacher(center_crop(x, preprocessing_of(teacher).crop)).softmax(1), atol=1e-5)
    t2.fit()
    assert t2.history[0]["train_loss"] > 0
    # the teacher is part of the recipe: resuming with another (here none) is refused
    with pytest.raises(ValueError, match="other settings .*teacher"):
        make_trainer(tiny_config(epochs=3, seed=5), tmp_path / "kd", "cpu", splits=synthetic_splits,
                     progress=False).resume()
    other = tiny_config(teacher=str(teacher_path), model={**tiny_config().model, "input_size": 64})
    with pytest.raises(ValueError, match="--teacher .*differ from this run's"):
        make_trainer(other, tmp_path / "other", "cpu", splits=synthetic_splits, progress=False)
    with pytest.raises(ValueError, match="distill_weight=2"):
        tiny_config(distill_weight=2)


def test_distillation_from_targets_computed_once(tmp_path, synthetic_splits, tiny_run):
    """``teacher_targets``: the teacher's flip-averaged predictions on the clean training faces, computed once into
    a file (then read from it), MixUp-blended like the labels; the student moves towards them."""
    from emo.distill import teacher_targets
    from emo.losses import distillation_loss
    teacher = load_model(tiny_run[0] / "best_model.pt")  # "fear" for every face, as in the test above
    teacher.head[-1].weight.data.zero_()
    teacher.head[-1].bias.data.copy_(torch.tensor([0, 0, 4.0, 0, 0, 0, 0]))
    teacher_path = str(checkpoint.save_network(teacher, tmp_path / "teacher.pt"))
    targets = tmp_path / "targets.pt"
    probs = teacher_targets(teacher_path, synthetic_splits, targets, progress=False)
    assert targets.is_file() and probs.shape == (len(synthetic_splits.train), 7)
    assert probs == pytest.approx(predict_proba(teacher, synthetic_splits.train.images, tta=True), abs=1e-6)
    (tmp_path / "teacher.pt").rename(tmp_path / "gone.pt")  # from now on the file is read, the teacher not needed
    assert teacher_targets(teacher_path, synthetic_splits, targets) == pytest.approx(probs)
    faces = preprocessing_of(teacher).with_(crop=1.0)(synthetic_splits.val.images)

    def kl_to_teacher(model) -> float:
        with torch.no_grad():
            return distillation_loss(model.eval()(faces), teacher(faces)).item()

    cfg = tiny_config(epochs=2, teacher=teacher_path, teacher_targets=str(targets), seed=5)
    t = make_trainer(cfg, tmp_path / "kd", "cpu", splits=synthetic_splits, progress=False)
    assert extension(t, Distill).teacher is None and extension(t, Distill).soft_targets is not None
    assert str(targets) in notes(t)
    before = kl_to_teacher(t.model)
    t.fit()
    assert kl_to_teacher(t.model) < 0.75 * before
    assert t.history[1]["train_loss"] < t.history[0]["train_loss"] / 2  # the loss is the distillation loss
    assert load_model(tmp_path / "kd" / "best_model.pt").meta["train_config"]["teacher_targets"] == str(targets)
    # with the labels' loss at half weight the student is pulled less far from them
    half = make_trainer(tiny_config(epochs=2, teacher=teacher_path, teacher_targets=str(targets), seed=5,
                                    distill_weight=0.5), tmp_path / "half", "cpu", splits=synthetic_splits,
                        progress=False)
    half.fit()
    assert kl_to_teacher(t.model) < kl_to_teacher(half.model)
    # the file belongs to its teacher and its faces; and it needs a teacher
    with pytest.raises(ValueError, match="for another teacher than other.pt: delete it"):
        teacher_targets("other.pt", synthetic_splits, targets)
    changed = synthetic_splits.train.images.copy()
    changed[0, 0, 0] ^= 1  # one pixel of one face
    other_faces = dataclasses.replace(synthetic_splits,
                                      train=dataclasses.replace(synthetic_splits.train, images=changed))
    with pytest.raises(ValueError, match="on other faces"):
        teacher_targets(teacher_path, other_faces, targets)
    torch.save({"weights": 1}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not a file of teacher predictions"):
        teacher_targets(teacher_path, synthetic_splits, tmp_path / "junk.pt")
    (tmp_path / "cut.pt").write_bytes(targets.read_bytes()[:100])  # a copy cut short
    with pytest.raises(ValueError, match="could not be read .*delete it"):
        teacher_targets(teacher_path, synthetic_splits, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match="pass teacher"):
        tiny_config(teacher_targets=str(targets))


def test_tune_inference_picks_the_best_on_validation_and_tune_and_score_stores_it(tmp_path, tiny_run, synthetic_splits):
    import shutil

    from emo.inference_search import tune_and_score, tune_inference
    path = tmp_path / "m.pt"
    shutil.copy(tiny_run[0] / "best_model.pt", path)
    m = load_model(path)
    val, train = synthetic_splits.val, synthetic_splits.train
    before, crop = {k: v.clone() for k, v in m.state_dict().items()}, preprocessing_of(m).crop
    chosen, rows = tune_inference(m, val.images, val.labels, train.images[:64], crops=(1.0, 0.7))
    assert [(r["crop"], r["bn"]) for r in rows] == [(1.0, "trained"), (0.7, "trained"), (1.0, "clean"), (0.7, "clean"),
                                                    (1.0, "clean+dropout"), (0.7, "clean+dropout")]
    assert preprocessing_of(m).crop == crop
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # left as it was
    top = max(r["val_acc"] for r in rows)
    assert float((predict_proba(chosen, val.images).argmax(1) == val.labels).mean()) == pytest.approx(top)
    set_preprocessing(m, preprocessing_of(m).with_(crop=0.7))
    assert rows[1]["val_acc"] == pytest.approx(float((predict_proba(m, val.images).argmax(1) == val.labels).mean()))
    # "clean" BN: the running statistics are those of the given faces at that crop
    import copy

    from emo.inference_search import recompute_bn
    clean = recompute_bn(copy.deepcopy(m), train.images[:64])
    bn = next(k for k in before if k.endswith("running_mean"))
    assert not torch.allclose(clean.state_dict()[bn], before[bn])
    assert rows[3]["val_acc"] == pytest.approx(float((predict_proba(clean, val.images).argmax(1) == val.labels).mean()))
    # "clean+dropout": measured with dropout's masks, which add variance; seeded, so the same every time
    noisy = recompute_bn(copy.deepcopy(m), train.images[:64], dropout=True)
    var = next(k for k in before if k.startswith("blocks.1.") and k.endswith("running_var"))  # behind a dropout
    assert not noisy.training and not torch.allclose(noisy.state_dict()[var], clean.state_dict()[var])
    assert torch.equal(noisy.state_dict()[var],
                       recompute_bn(copy.deepcopy(m), train.images[:64], dropout=True).state_dict()[var])
    assert rows[5]["val_acc"] == pytest.approx(float((predict_proba(noisy, val.images).argmax(1) == val.labels).mean()))
    with pytest.raises(ValueError, match="crops is empty"):
        tune_inference(m, val.images, val.labels, crops=())
    from emo.plots import plot_inference_search
    points = [y for line in plot_inference_search(rows).axes[0].lines if line.get_marker() == "o"
              for y in line.get_ydata()]  # one line of points per BN source (the dashed best line has no marker)
    assert sorted(points) == pytest.approx(sorted(r["val_acc"] for r in rows))
    ck = tune_and_score(path, synthetic_splits, bn_faces=64)
    again = load_model(path)
    assert preprocessing_of(again).crop == ck["crop"] and again.meta["inference_search"] == ck["inference_search"]
    assert again.meta["metrics"]["val_acc"] == pytest.approx(max(r["val_acc"] for r in ck["inference_search"]))
    test = synthetic_splits.test
    assert again.meta["metrics"]["test_acc"] == pytest.approx(
        float((predict_proba(again, test.images).argmax(1) == test.labels).mean()))


def test_cli_writes_a_new_run_folder_and_never_over_another_run(tmp_path, monkeypatch, capsys):
    import emo.train
    monkeypatch.setattr(emo.train, "RUNS_DIR", tmp_path / "runs")
    quick = ["--source", "synthetic", "--epochs", "1", "--limit", "64", "--widths", "16", "16", "32", "32", "32",
             "--no-progress"]
    assert emo.train.main(quick) == 0
    (run,) = (tmp_path / "runs").iterdir()  # named by the date and time, said at the start
    assert (run / "best_model.pt").is_file() and f"writing {run / 'best_model.pt'}" in capsys.readouterr().out
    before = (run / "best_model.pt").read_bytes()
    assert emo.train.main([str(run), *quick]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds best_model.pt and last.pt" in err and "--overwrite" in err
    assert (run / "best_model.pt").read_bytes() == before
    assert emo.train.main([str(run), *quick, "--overwrite"]) == 0


def test_ctrl_c_prints_a_command_that_goes_on_when_pasted(tmp_path, monkeypatch, capsys):
    import shlex

    import emo.train
    monkeypatch.setattr(emo.train, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.chdir(tmp_path)  # as a user in the project's folder
    save_last = Trainer.save_last

    def save_then_interrupt(self):
        save_last(self)
        if self.epoch == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "save_last", save_then_interrupt)
    quick = ["--source", "synthetic", "--epochs", "3", "--limit", "64", "--lr", "2e-3", "--widths", "16", "16", "32",
             "32", "32", "--no-progress"]
    assert emo.train.main(quick) == 130
    command = capsys.readouterr().err.strip().splitlines()[-1].strip()
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "emo.train"] and args[-1] == "--resume" and "2e-3" in args
    assert emo.train.main(args[3:]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "history.csv"))] == [1, 2, 3]
