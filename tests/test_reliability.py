"""Nothing a user gives is lost: each command over hostile files and real faults.

Each case checks what a user sees (exit 2 and one ``error:`` line, no traceback), that no input changed, and
that no earlier result was lost. Faults are real: a full disk is the kernel refusing writes over a size
(``RLIMIT_FSIZE``, in a child process), a second writer is a second process, a killed writer is killed.
(``emo.predict``'s own corpus is in test_predict.py.)"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch

from emo import data, evaluate, importers, train
from emo.datasets import DataImportError
from emo.files import (
    LOCK_NAME,
    TEMP_PREFIX,
    GrowingCsv,
    atomic_write,
    check_regular,
    csv_cell,
    folder_lock,
    write_csv,
    write_set,
    write_text,
)
from tests.conftest import TINY

FULL_DISK = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY)); "
             "from emo.{module} import main; sys.exit(main(sys.argv[1:]))")


def run_full_disk(module, args, limit):
    """``python -m emo.<module> args`` where no file over ``limit`` bytes can be written (as on a full disk)."""
    return subprocess.run([sys.executable, "-c", FULL_DISK.format(limit=limit, module=module), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [s for s in err.strip().splitlines() if s.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err
    return lines[-1]


def holder(folder, name=None):
    """A second process that holds ``folder``'s lock until killed."""
    code = ("import sys, time; from emo.files import folder_lock\n"
            "with folder_lock(sys.argv[1], name=sys.argv[2] or None):\n print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(folder), name or ""], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


# -- the one writer, locks, CSV cells --------------------------------------------------------------------


def test_a_set_of_files_is_replaced_whole_or_not_at_all(tmp_path):
    write_text(tmp_path / "a.txt", "old a")
    write_text(tmp_path / "b.txt", "old b")

    def fails(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        write_set({tmp_path / "a.txt": lambda f: f.write(b"new a"), tmp_path / "b.txt": fails})
    assert (tmp_path / "a.txt").read_text() == "old a" and sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]
    write_set({tmp_path / "a.txt": lambda f: f.write(b"new a"), tmp_path / "b.txt": lambda f: f.write(b"new b")})
    assert (tmp_path / "a.txt").read_text() + (tmp_path / "b.txt").read_text() == "new anew b"


def test_a_killed_writer_leaves_the_old_file_and_its_lock_is_taken_over(tmp_path):
    target = tmp_path / "last.pt"
    write_text(target, "the old checkpoint")
    code = ("import sys, time; from emo.files import atomic_write, folder_lock\n"
            "with folder_lock(sys.argv[1]), atomic_write(sys.argv[1] + '/last.pt') as f:\n"
            " f.write(b'half of the new'); f.flush(); print('writing', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.kill()
    p.wait()
    assert target.read_text() == "the old checkpoint"  # whole: the half-written file never replaced it
    assert any(n.startswith(TEMP_PREFIX) for n in os.listdir(tmp_path)) and LOCK_NAME in os.listdir(tmp_path)
    with folder_lock(tmp_path):  # the dead process's lock is taken over, its debris removed
        assert not any(n.startswith(TEMP_PREFIX) for n in os.listdir(tmp_path))
    assert os.listdir(tmp_path) == ["last.pt"]  # and released


def test_a_lock_is_held_against_other_processes_and_shared_within_one(tmp_path):
    p = holder(tmp_path)
    try:
        with pytest.raises(ValueError, match=f"process {p.pid}") as e:
            with folder_lock(tmp_path, "--out folder"):
                pass
        assert "\n" not in str(e.value) and "choose another --out folder" in str(e.value)
    finally:
        p.kill()
        p.wait()
    with folder_lock(tmp_path):
        with folder_lock(tmp_path):  # (a training that evaluates into its own folder)
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_csv_cells_cannot_become_formulas_and_columns_cannot_repeat(tmp_path):
    assert [csv_cell(v) for v in ("=cmd|'/c calc'!A1", "+1", "-2", "@SUM(1)", "a=b", -0.5, 3)] == [
        "'=cmd|'/c calc'!A1", "'+1", "'-2", "'@SUM(1)", "a=b", -0.5, 3]
    with pytest.raises(ValueError, match="repeat a name"):
        write_csv(tmp_path / "t.csv", ["file", "x", "x"], [])
    table = GrowingCsv(tmp_path / "faces.csv", ["file", "p"])
    table.add([{"file": "=a.jpg", "p": 0.5}])
    assert list(csv.reader(open(tmp_path / "faces.csv"))) == [["file", "p"], ["'=a.jpg", "0.5"]]  # on disk at once
    table.add([{"file": "b.jpg", "p": 1}])
    assert len(list(csv.reader(open(tmp_path / "faces.csv")))) == 3


def test_fifos_devices_and_folders_are_refused_before_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.zip")
    for path, kind in ((tmp_path / "pipe.zip", "a FIFO"), ("/dev/zero", "a device"), (tmp_path, "a folder")):
        with pytest.raises(ValueError, match=kind):
            check_regular(path)
    with pytest.raises(ValueError, match="is a FIFO"):  # (it used to hang)
        importers.read_dataset(tmp_path / "pipe.zip", "mine")


# -- emo.data import ------------------------------------------------------------------------------------------


def face_jpeg(value=128):
    return cv2.imencode(".jpg", np.full((48, 48), value, np.uint8))[1].tobytes()


def test_an_archive_member_is_bounded_by_its_declared_size_before_it_is_read(tmp_path, monkeypatch):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train/happy/a.jpg", face_jpeg())
        z.writestr("train/happy/huge.jpg", bytes(3 * 2**20))  # 3 MB unpacked, a few KB packed
        z.writestr("test/happy/b.jpg", face_jpeg())
    monkeypatch.setattr(importers, "MAX_IMAGE_MB", 2)  # (as EMO_MAX_IMAGE_MB=2 would set it)
    with pytest.raises(DataImportError, match=r"huge.jpg .* 3 MB unpacked, over the 2 MB.*EMO_MAX_IMAGE_MB"):
        importers.read_dataset(archive, "mine")


def test_an_image_declaring_a_huge_size_is_skipped_unread(tmp_path):
    from tests.test_predict import png_declaring
    for split in ("train", "test"):
        (tmp_path / "set" / split / "happy").mkdir(parents=True)
        (tmp_path / "set" / split / "happy" / "ok.jpg").write_bytes(face_jpeg())
    (tmp_path / "set" / "train" / "happy" / "bomb.png").write_bytes(png_declaring(30000, 30000))
    ds = importers.read_dataset(tmp_path / "set", "mine")
    assert len(ds) == 2 and ds.skipped == {"unreadable image": 1}


def fer_csv(rows, bom=False):
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["emotion", "pixels", "Usage"])
    w.writerows(rows)
    return ("\ufeff" if bom else "") + text.getvalue()


def test_a_spreadsheet_csv_with_a_byte_order_mark_is_read_and_a_damaged_one_is_one_line(tmp_path, capsys):
    pixels = " ".join(["128"] * 2304)
    (tmp_path / "fer2013.csv").write_text(fer_csv([[3, pixels, "Training"], [0, pixels, "PrivateTest"]], bom=True),
                                          encoding="utf-8")
    ds = importers.read_dataset(tmp_path / "fer2013.csv", "fer2013")
    assert len(ds) == 2 and not ds.skipped
    (tmp_path / "long.csv").write_text(fer_csv([[3, "1" * 200_000, "Training"]]))  # over the csv module's limit
    assert data.main(["import", str(tmp_path / "long.csv"), "--data-dir", str(tmp_path / "d")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "line 2 cannot be read as CSV" in line and not (tmp_path / "d" / "fer2013.npz").exists()


def test_a_second_import_of_one_name_is_refused_and_the_first_copy_kept(tmp_path, capsys):
    for split in ("train", "test"):
        (tmp_path / "set" / split / "happy").mkdir(parents=True)
        (tmp_path / "set" / split / "happy" / "a.jpg").write_bytes(face_jpeg())
    d = tmp_path / "d"
    assert data.main(["import", str(tmp_path / "set"), "--name", "mine", "--data-dir", str(d)]) == 0
    before = snapshot(d)
    p = holder(d, "mine")
    try:
        assert data.main(["import", str(tmp_path / "set"), "--name", "mine", "--data-dir", str(d)]) == 2
        assert f"process {p.pid}" in one_error_line(capsys.readouterr().err)
        assert data.main(["import", str(tmp_path / "set"), "--name", "other", "--data-dir", str(d)]) == 0  # (others go)
    finally:
        p.kill()
        p.wait()
    assert all(snapshot(d)[k] == v for k, v in before.items())


# -- training --------------------------------------------------------------------------------------------------


def tiny_args(out, *more):
    return [str(out), "--data", "synthetic", "--stem", "16", "--widths", "16", "16", "32", "32", "32", "--limit", "64",
            "--epochs", "1", "--batch-size", "32", "--no-progress", "--no-tune", *more]


def test_training_that_diverges_stops_in_one_line_and_saves_no_such_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(tiny_args(out, "--lr", "1e30")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "diverged" in line
    for f in ("best_model.pt", "last.pt"):
        if (out / f).exists():  # (whatever was saved before it diverged is finite)
            ck = torch.load(out / f, weights_only=True)
            assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_a_second_training_into_one_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    p = holder(out)
    try:
        assert train.main(tiny_args(out)) == 2
        assert f"process {p.pid}" in one_error_line(capsys.readouterr().err)
    finally:
        p.kill()
        p.wait()
    assert not (out / "best_model.pt").exists() and not (out / "train_log.txt").exists()


# -- evaluation ---------------------------------------------------------------------------------------------


def test_a_full_disk_during_evaluate_keeps_the_old_set_whole(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "ev"
    assert evaluate.main([str(tiny_model_path), "--out", str(out), "--data", "synthetic"]) == 0
    capsys.readouterr()
    before = snapshot(out)
    assert {"metrics.json", "roc.png", "classification_report.txt"} <= {p.name for p in before}
    r = run_full_disk("evaluate", [tiny_model_path, "--out", out, "--data", "synthetic"], limit=8_000)
    assert r.returncode == 2 and "File too large" in one_error_line(r.stderr)
    assert snapshot(out) == before  # every old file as it was, nothing half-written, no temporary file


def test_a_full_disk_during_training_is_one_line_and_resume_goes_on(tmp_path):
    out = tmp_path / "run"
    r = run_full_disk("train", tiny_args(out, "--epochs", "2"), limit=40_000)  # the log fits, checkpoints do not
    assert r.returncode == 2 and "File too large" in one_error_line(r.stderr)
    assert not [n for n in os.listdir(out) if n.startswith(".emo-")]  # no debris keeping the disk full


def test_a_model_that_is_a_fifo_is_refused_unread(tmp_path, capsys):
    os.mkfifo(tmp_path / "model.pt")
    assert evaluate.main([str(tmp_path / "model.pt"), "--out", str(tmp_path / "ev")]) == 2
    assert "not a regular file" in one_error_line(capsys.readouterr().err)


def test_damaged_onnx_metadata_is_one_line(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from emo.network import build_model
    from emo.onnx_model import OnnxModel, export_onnx
    proto = onnx.load_from_string(export_onnx(build_model(TINY, classes=tuple("abcdefg"))))
    for p in proto.metadata_props:
        if p.key == "classes":
            p.value = "{not json"
    path = tmp_path / "m.onnx"
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    with pytest.raises(ValueError, match="metadata is damaged"):
        OnnxModel(path)


def test_weights_that_turn_non_finite_after_a_finite_loss_are_never_saved(tmp_path, synthetic_splits):
    """A step can overflow the weights although its loss was finite: the epoch's check refuses to save them."""
    from emo.trainer import Trainer
    from tests.conftest import tiny_config
    t = Trainer(tiny_config(epochs=2, limit=32), tmp_path, "cpu", splits=synthetic_splits, progress=False)
    t.on_step = lambda step: t.model.head[-1].weight.data.fill_(float("inf"))  # (an overflowing step)
    with pytest.raises(FloatingPointError, match="after epoch 1 .* NaN or infinity"):
        t.fit()
    assert not (tmp_path / "best_model.pt").exists() and not (tmp_path / "last.pt").exists()


@pytest.fixture
def read_only(tmp_path):
    """A folder that nothing may be written into: chmod 555, or where that does not bind (root), immutable."""
    folder = tmp_path / "ro"
    folder.mkdir()
    write_text(folder / "faces.csv", "an earlier run's results\n")
    write_text(folder / "metrics.json", "{}\n")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("no way to make a folder read-only for root here (chattr +i)")
    else:
        folder.chmod(0o555)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_a_read_only_folder_is_one_line_and_keeps_what_it_holds(read_only, tiny_model_path, capsys):
    from emo import predict
    before = snapshot(read_only)
    assert predict.main(["--out", str(read_only), "--model", str(tiny_model_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert ("Operation not permitted" in line or "Permission denied" in line) and "permissions" in line
    assert evaluate.main([str(tiny_model_path), "--out", str(read_only), "--data", "synthetic"]) == 2
    one_error_line(capsys.readouterr().err)
    assert snapshot(read_only) == before
