import numpy as np
import pytest
import torch

from emo import checkpoint
from emo.datasets import FER2013_CLASSES
from emo.model import load_model, predict_proba
from emo.network import (
    ModelConfig,
    SeparableConv,
    SqueezeExcite,
    build_model,
    count_parameters,
)
from emo.preprocess import preprocessing_of, set_preprocessing


def test_reference_parameter_count():
    assert count_parameters(build_model()) == 2_152_775


@pytest.mark.parametrize("size,downsample", [(48, "stride"), (64, "pool"), (128, "pool")])
def test_output_shape(size, downsample):
    m = build_model(input_size=size, downsample=downsample).eval()
    assert m(torch.zeros(2, 1, size, size)).shape == (2, 7)


def test_blocks():
    sc = SeparableConv(8, 16, stride=2)
    assert sc(torch.zeros(1, 8, 10, 10)).shape == (1, 16, 5, 5)
    assert count_parameters(sc) == 8 * 9 + 8 * 16 + 2 * 16  # depthwise + pointwise + BN
    se = SqueezeExcite(32, 16)
    x = torch.randn(2, 32, 5, 5)
    gate = se(x) / x
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)  # one gate per channel
    assert ((gate > 0) & (gate < 1)).all()


def test_config_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="downsample='avg'"):
        ModelConfig(downsample="avg")
    with pytest.raises(ValueError, match="same length"):
        ModelConfig(widths=(8, 8), strides=(2,))
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"depth": 3})


def test_checkpoint_round_trip(tmp_path):
    classes = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")  # deliberately not alphabetical
    m = build_model(input_size=48, downsample="stride", widths=(16, 16, 32, 32, 32), classes=classes).eval()
    set_preprocessing(m, preprocessing_of(m).with_(mean=(0.4, 0.2)[0], std=(0.4, 0.2)[1]))
    path = checkpoint.save_network(m, tmp_path / "m.pt", protocol="standard", metrics={"test_acc": 0.5})
    ck = torch.load(path, weights_only=True)
    assert ck["classes"] == list(classes) and ck["protocol"] == "standard" and ck["input_size"] == 48
    loaded = load_model(path)
    assert loaded.classes == classes and loaded.input_size == 48 and preprocessing_of(loaded).normalize == (0.4, 0.2)
    assert not loaded.training and loaded.meta["metrics"] == {"test_acc": 0.5}
    x = torch.randn(3, 1, 48, 48)
    assert torch.allclose(loaded(x), m(x), atol=1e-5)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m emo.train"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an emo checkpoint"):
        load_model(tmp_path / "foreign.pt")
    m = build_model(input_size=48, widths=(16, 16, 32, 32, 32))
    path = checkpoint.save_network(m, tmp_path / "m.pt")
    ck = torch.load(path, weights_only=True)
    ck["config"]["widths"] = [16, 16, 32, 32, 64]
    torch.save(ck, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not match its config"):
        load_model(tmp_path / "mismatch.pt")


def test_truncated_write_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    m = build_model(input_size=48, widths=(16, 16, 32, 32, 32))
    path = checkpoint.save_network(m, tmp_path / "best.pt")
    good = path.read_bytes()

    def dies_halfway(obj, f, *a, **k):
        f.write(good[: len(good) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_network(m, path)
    assert path.read_bytes() == good
    load_model(path)


def test_predict_proba_and_tta():
    torch.manual_seed(0)
    m = build_model(input_size=48, downsample="stride", widths=(16, 16, 32, 32, 32), classes=FER2013_CLASSES).eval()
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    p = predict_proba(m, faces)
    assert p.shape == (5, 7) and np.allclose(p.sum(1), 1, atol=1e-5)
    mirrored = predict_proba(m, faces[:, :, ::-1].copy())
    assert np.allclose(predict_proba(m, faces, tta=True), (p + mirrored) / 2, atol=1e-5)
    # any size: 96x96 faces are resized to the model's input
    big = np.repeat(np.repeat(faces, 2, 1), 2, 2)
    assert predict_proba(m, big).shape == (5, 7)
    assert predict_proba(m, [faces[0], big[1]]).shape == (2, 7)
    assert predict_proba(m, np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    # converted where the meaning is clear: one face, floats in [0, 1] or [0, 255], BGR colour, nested lists
    import cv2
    assert np.allclose(predict_proba(m, faces[0]), p[:1], atol=1e-6)
    assert np.allclose(predict_proba(m, faces / 255.0), p, atol=1e-5)
    assert np.allclose(predict_proba(m, faces.astype(np.float32)), p, atol=1e-5)
    bgr = np.stack([cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in faces])
    assert np.allclose(predict_proba(m, bgr[0]), p[:1], atol=1e-6) and np.allclose(predict_proba(m, bgr), p, atol=1e-6)
    assert np.allclose(predict_proba(m, faces.tolist()), p, atol=1e-6)
    # refused in one line that names what came: wrong shape, values out of range, no pixels, not numbers
    for bad, says in [(np.zeros((2, 3, 4, 5)), r"shape \(2, 3, 4, 5\)"), (np.full((48, 48), 300.0), "0-255"),
                      (np.zeros((1, 0, 0), np.uint8), "at least 8 x 8"), (np.zeros((48, 48), bool), "bool array")]:
        with pytest.raises(ValueError, match=says) as e:
            predict_proba(m, bad)
        assert "\n" not in str(e.value)


def test_test_time_crop_travels_with_the_checkpoint_and_is_applied(tmp_path, tiny_model_path, synthetic_splits):
    m = load_model(tiny_model_path)
    set_preprocessing(m, preprocessing_of(m).with_(crop=0.7))
    path = checkpoint.save_network(m, tmp_path / "m.pt")
    loaded = load_model(path)
    assert preprocessing_of(loaded).crop == 0.7
    faces = synthetic_splits.test.images[:8]
    with torch.inference_mode():
        cropped, whole = (loaded(preprocessing_of(loaded).with_(crop=c)(faces)).softmax(1).numpy() for c in (0.7, 1.0))
    assert not np.allclose(cropped, whole, atol=1e-4)
    assert np.allclose(predict_proba(loaded, faces), cropped, atol=1e-6)
    set_preprocessing(loaded, preprocessing_of(loaded).with_(crop=1.0))
    assert np.allclose(predict_proba(loaded, faces), whole, atol=1e-6)
    # checkpoints written before the crop existed show the model the whole face
    ck = torch.load(path, weights_only=True)
    del ck["crop"]
    torch.save(ck, tmp_path / "old.pt")
    assert preprocessing_of(load_model(tmp_path / "old.pt")).crop == 1.0
