"""ONNX export and the ONNX Runtime path: the same probabilities as PyTorch, preprocessing in the file."""

import csv
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from emo import checkpoint
from emo.export import main  # noqa: E402
from emo.model import Ensemble, load_model, predict_proba  # noqa: E402
from emo.onnx_model import OnnxModel  # noqa: E402
from emo.predict import main as predict_main  # noqa: E402
from emo.preprocess import preprocessing_of
from emo.video import sample_photo  # noqa: E402


@pytest.fixture(scope="module")
def cropped(tiny_model_path, tmp_path_factory):
    """The tiny model with a 0.9 centre crop."""
    folder = tmp_path_factory.mktemp("onnx")
    ck = checkpoint.read(tiny_model_path)
    ck["crop"] = 0.9
    torch.save(ck, folder / "cropped.pt")
    return folder / "cropped.pt"


def test_the_exported_graph_gives_pytorchs_probabilities_on_the_whole_generated_test_split(
        cropped, tmp_path, synthetic_splits):
    out = tmp_path / "m.onnx"
    assert main([str(cropped), "--out", str(out)]) == 0
    ort_model, torch_model = load_model(out), load_model(cropped)
    assert isinstance(ort_model, OnnxModel)
    assert preprocessing_of(ort_model).crop == 1.0  # the graph crops, not the caller
    meta = ort_model.meta
    assert json.loads(meta["classes"]) == list(torch_model.classes) and int(meta["input_size"]) == 48
    assert float(meta["crop"]) == 0.9 and float(meta["normalize_mean"]) == preprocessing_of(torch_model).normalize[0]
    faces = synthetic_splits.test.images
    for tta in (False, True):
        assert np.abs(predict_proba(ort_model, faces, tta) - predict_proba(torch_model, faces, tta)).max() < 1e-4
    # one colour image, a face of another size: converted the same way as for PyTorch
    photo = sample_photo()[100:260, 150:310]
    assert np.abs(predict_proba(ort_model, photo) - predict_proba(torch_model, photo)).max() < 1e-4


def test_an_ensemble_exports_as_one_graph_with_each_members_crop_or_as_its_members(
        cropped, tiny_model_path, tmp_path, synthetic_splits):
    from emo.ensemble import make_ensemble
    ens_path = tmp_path / "ens" / "best_model.pt"
    make_ensemble([tiny_model_path, cropped], ens_path, source="synthetic", log=lambda *_: None)
    ens = load_model(ens_path)
    faces = synthetic_splits.test.images[:200]
    assert main([str(ens_path), "--out", str(tmp_path / "ens.onnx")]) == 0
    one = load_model(tmp_path / "ens.onnx")
    assert np.abs(predict_proba(one, faces) - predict_proba(ens, faces)).max() < 1e-4
    if isinstance(ens, Ensemble):
        assert main([str(ens_path), "--out", str(tmp_path / "ens.onnx"), "--members"]) == 0
        for k, member in enumerate(ens.members, 1):
            alone = load_model(tmp_path / f"ens-member{k}.onnx")
            assert np.abs(predict_proba(alone, faces) - predict_proba(member, faces)).max() < 1e-4


def test_runtime_onnx_exports_in_memory_and_predicts_the_same(tiny_model_path, synthetic_splits):
    ort_model = load_model(tiny_model_path, runtime="onnx")
    faces = synthetic_splits.val.images[:100]
    assert np.abs(predict_proba(ort_model, faces) - predict_proba(load_model(tiny_model_path), faces)).max() < 1e-4
    with pytest.raises(ValueError, match="runtime='tflite': use one of"):
        load_model(tiny_model_path, runtime="tflite")


def test_int8_is_written_beside_the_float_file_and_classifies_like_it(tiny_model_path, tmp_path, synthetic_splits):
    out = tmp_path / "m.onnx"
    assert main([str(tiny_model_path), "--out", str(out), "--int8", "--calibration", "256"]) == 0
    made = out.stat().st_mtime_ns
    (tmp_path / "m-int8.onnx").unlink()  # int8 again: the float32 export of this checkpoint is reused, not replaced
    assert main([str(tiny_model_path), "--out", str(out), "--int8", "--calibration", "256"]) == 0
    assert out.stat().st_mtime_ns == made
    q = load_model(tmp_path / "m-int8.onnx")
    assert "calibrated on 256 training faces" in q.meta["int8"]
    faces = synthetic_splits.test.images
    p, ref = predict_proba(q, faces), predict_proba(load_model(out), faces)
    assert p.shape == ref.shape and np.allclose(p.sum(1), 1, atol=1e-4)
    assert np.abs(p - ref).max() < 0.05  # (the tiny model's classes are close: compare probabilities, not argmax)
    assert (tmp_path / "m-int8.onnx").stat().st_size < out.stat().st_size / 2


def test_export_never_replaces_a_file_and_refuses_bad_requests_in_one_line(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"someone's model")
    assert main([str(tiny_model_path), "--out", str(out)]) == 2
    assert out.read_bytes() == b"someone's model"
    assert main([str(tiny_model_path), "--out", str(tmp_path / "m.pt")]) == 2
    assert main([str(tiny_model_path), "--out", str(tmp_path / "n.onnx"), "--members"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--overwrite" in err[0] and "ends in .onnx" in err[1] and "drop --members" in err[2]
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        OnnxModel(out)
    with pytest.raises(FileNotFoundError, match="python -m emo.export"):
        OnnxModel(tmp_path / "gone.onnx")


def test_predict_and_the_app_take_runtime_onnx(tiny_model_path, face_video, tmp_path):
    for runtime in ("torch", "onnx"):
        assert predict_main(["--out", str(tmp_path / runtime), "--model", str(tiny_model_path),
                             "--runtime", runtime]) == 0
    classes = load_model(tiny_model_path).classes
    rows = [next(csv.DictReader(open(tmp_path / r / "faces.csv"))) for r in ("torch", "onnx")]
    a, b = ([float(r[c]) for c in classes] for r in rows)
    assert np.abs(np.subtract(a, b)).max() <= 1e-4
    pytest.importorskip("PyQt5")
    from PyQt5.QtWidgets import QApplication

    from emo.app import build_window
    app = QApplication.instance() or QApplication([])  # noqa: F841 (Qt needs it alive)
    win = build_window(load_model(tiny_model_path, runtime="onnx"), str(face_video), threaded=False)
    assert win.step() and win.step() and win.last_faces[0].label in win.pipeline.model.classes
    win.close()
