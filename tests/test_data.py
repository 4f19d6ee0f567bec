import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch

from emo import data, importers
from emo.augment import augment, mixup
from emo.data import import_fer2013, read_fer2013
from emo.datasets import (
    FER2013_CLASSES,
    PRIVATE_TEST,
    PUBLIC_TEST,
    TRAINING,
    DataImportError,
    fer2013_available,
    load_dataset,
    load_imported,
)
from emo.preprocess import Preprocessing
from emo.splits import check_sizes, make_splits
from tests.conftest import ROOT


def _jpeg(value: int) -> bytes:
    img = np.full((48, 48), value, np.uint8)
    img[10:20, 10:30] = 255 - value
    return cv2.imencode(".jpg", img)[1].tobytes()


def _kaggle_files() -> dict[str, bytes]:
    return {
        "fer2013/train/happy/Training_1.jpg": _jpeg(10),
        "fer2013/train/sad/Training_2.jpg": _jpeg(20),
        "fer2013/train/disgust/Training_3.jpg": _jpeg(30),
        "fer2013/test/angry/PublicTest_4.jpg": _jpeg(40),
        "fer2013/test/surprise/PrivateTest_5.jpg": _jpeg(50),
        "fer2013/test/neutral/PrivateTest_6.png": cv2.imencode(".png", np.zeros((64, 64), np.uint8))[1].tobytes(),
        "fer2013/train/happy/broken.jpg": b"not a jpeg",
        "fer2013/train/happy/notes.txt": b"hello",
    }


@pytest.fixture
def kaggle_zip(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, buf in _kaggle_files().items():
            zf.writestr(name, buf)
    return path


def test_kaggle_zip_import(kaggle_zip, tmp_path):
    ds = import_fer2013(kaggle_zip, tmp_path / "data")
    assert len(ds) == 6 and ds.images.shape == (6, 48, 48) and ds.images.dtype == np.uint8
    names = [ds.classes[k] for k in ds.labels]
    assert sorted(names) == sorted(["happy", "sad", "disgust", "angry", "surprise", "neutral"])
    usage = dict(zip(names, ds.usage))
    assert usage["happy"] == TRAINING and usage["angry"] == PUBLIC_TEST and usage["surprise"] == PRIVATE_TEST
    assert ds.skipped == {"not an image file": 1, "unreadable image": 1}
    assert ds.unreadable == ["fer2013/train/happy/broken.jpg"]  # listed, so the user can look at it
    # the 64x64 PNG was resized to 48x48
    assert ds.images[names.index("neutral")].shape == (48, 48)
    again = load_imported("fer2013", tmp_path / "data")
    assert np.array_equal(again.images, ds.images) and again.classes == FER2013_CLASSES


def test_unpacked_folder_import_and_reimport_does_not_duplicate(tmp_path):
    root = tmp_path / "unpacked"
    for name, buf in _kaggle_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(buf)
    first = import_fer2013(root, tmp_path / "data")
    second = import_fer2013(root, tmp_path / "data")
    assert len(first) == len(second) == len(load_imported("fer2013", tmp_path / "data")) == 6


def test_import_says_what_it_replaces_and_what_a_partial_copy_cannot_do(kaggle_zip, tmp_path, capsys):
    out = tmp_path / "data"
    assert data.main(["import", str(kaggle_zip), "--data-dir", str(out)]) == 0
    full = (out / "fer2013.npz").read_bytes()
    only_train = tmp_path / "train_only.zip"
    with zipfile.ZipFile(only_train, "w") as zf:
        zf.writestr("train/happy/Training_1.jpg", _jpeg(10))
    capsys.readouterr()
    assert data.main(["import", str(only_train), "--data-dir", str(out)]) == 0
    said = capsys.readouterr().out
    assert "it holds 6 faces now" in said and "imported 1 faces" in said
    assert "replacing 6 (Training 3, PublicTest 1" in said
    assert "NOTE: no test faces" in said and "NOTE: no training faces of angry, disgust" in said
    # a damaged archive never replaces the copy there: the import fails first, with a one-line error
    cut = tmp_path / "cut.zip"
    cut.write_bytes(kaggle_zip.read_bytes()[:300])
    (out / "fer2013.npz").write_bytes(full)
    assert data.main(["import", str(cut), "--data-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "looks like a zip archive but is damaged or incomplete (300 bytes read): download it again" in err
    assert err.count("\n") == 1 and (out / "fer2013.npz").read_bytes() == full


def test_damaged_tar_and_empty_folder_name_the_cause(kaggle_zip, tmp_path):
    import tarfile
    tgz = tmp_path / "fer.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(kaggle_zip, arcname="archive.zip")
    (tmp_path / "cut.tar.gz").write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    with pytest.raises(DataImportError, match="tar.gz archive but is damaged or incomplete"):
        read_fer2013(tmp_path / "cut.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataImportError, match="is an empty folder"):
        read_fer2013(tmp_path / "empty")


def test_numeric_label_folders_are_offered_the_challenge_ids(tmp_path):
    root = tmp_path / "numeric"
    for k, name in enumerate(["Training_1.jpg", "Training_2.jpg"]):
        (root / "train" / str(3 + 3 * k)).mkdir(parents=True)  # 3 happy, 6 neutral
        (root / "train" / str(3 + 3 * k) / name).write_bytes(_jpeg(10 * k))
    with pytest.raises(DataImportError, match=r"are numbers: .*add --numeric-labels .*3 happy, 4 sad"):
        read_fer2013(root)
    ds = read_fer2013(root, numeric_labels=True)
    assert sorted(ds.classes[k] for k in ds.labels) == ["happy", "neutral"]


def test_unknown_label_folder_is_refused(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train/happy/Training_1.jpg", _jpeg(1))
        zf.writestr("train/contempt/Training_2.jpg", _jpeg(2))
    with pytest.raises(DataImportError, match="contempt"):
        read_fer2013(path)


def _csv(rows: list[str], header: str = "emotion,pixels,Usage") -> str:
    return "\n".join([header, *rows]) + "\n"


def test_challenge_csv_maps_ids_to_names(tmp_path):
    px = " ".join(["7"] * 2304)
    rows = [f"4,{px},Training", f"6,{px},PublicTest", f"0,{px},PrivateTest",
            f"3,{' '.join(['1'] * 100)},Training",  # wrong pixel count
            f"9,{px},Training"]                       # unknown emotion id
    path = tmp_path / "fer2013.csv"
    path.write_text(_csv(rows))
    ds = read_fer2013(path)
    # CSV ids: 4 = Sad, 6 = Neutral, 0 = Angry; stored in the project's (folder) order by name
    assert [ds.classes[k] for k in ds.labels] == ["sad", "neutral", "angry"]
    assert list(ds.usage) == [TRAINING, PUBLIC_TEST, PRIVATE_TEST]
    assert ds.skipped == {"invalid CSV row": 2}


def test_csv_inside_an_archive(tmp_path):
    path = tmp_path / "challenge.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fer2013/fer2013.csv", _csv([f"3,{' '.join(['9'] * 2304)},Training"]))
    ds = read_fer2013(path)
    assert len(ds) == 1 and ds.classes[ds.labels[0]] == "happy"


def test_csv_with_wrong_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text(_csv(["1,2"], header="label,image"))
    with pytest.raises(DataImportError, match="emotion,pixels,Usage"):
        read_fer2013(path)


def test_not_an_archive(tmp_path):
    path = tmp_path / "faces.bin"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(DataImportError, match="not a zip"):
        read_fer2013(path)


def test_cli_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emo.data", "import", str(tmp_path / "missing.zip"),
                        "--data-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


def test_no_data_falls_back_to_synthetic_with_a_message(tmp_path, capsys):
    ds = load_dataset("auto", data_dir=tmp_path)
    assert ds.is_synthetic
    err = capsys.readouterr().err
    assert "FER-2013 has not been imported" in err and "data/README.md" in err and "NOT FER-2013" in err
    with pytest.raises(FileNotFoundError, match="python -m emo.data import"):
        load_dataset("fer2013", data_dir=tmp_path)


def test_synthetic_splits_and_protocols(synthetic):
    std = make_splits(synthetic, "standard")
    assert check_sizes(std)
    ref = make_splits(synthetic, "reference", seed=3)
    assert len(ref.test) == len(std.val) + len(std.test)
    assert len(ref.train) + len(ref.val) == len(std.train)
    assert abs(len(ref.val) - 0.2 * len(std.train)) <= 1
    again = make_splits(synthetic, "reference", seed=3)
    assert np.array_equal(ref.val.images, again.val.images)
    with pytest.raises(ValueError, match="protocol='nope'"):
        make_splits(synthetic, "nope")


def test_eval_sample_keeps_the_training_faces_and_a_seeded_few_of_the_rest(synthetic):
    splits = make_splits(synthetic)
    few = splits.eval_sample(20)
    assert few.train is splits.train and few.sizes() == {"train": 294, "val": 20, "test": 20}
    assert np.array_equal(few.val.labels, splits.eval_sample(20).val.labels)  # seeded
    images = {tuple(img.ravel()) for img in splits.test.images}
    assert all(tuple(img.ravel()) in images for img in few.test.images)
    assert splits.eval_sample(1000).sizes() == splits.sizes()


def test_synthetic_classes_differ_visibly(synthetic):
    means = np.stack([synthetic.images[synthetic.labels == k].astype(float).mean(0) for k in range(7)])
    dists = [np.abs(means[i] - means[j]).mean() for i in range(7) for j in range(i + 1, 7)]
    assert min(dists) > 1.0  # every pair of classes differs on average


@pytest.mark.skipif(not fer2013_available(), reason="FER-2013 not imported (python -m emo.data import PATH)")
def test_imported_fer2013_has_the_published_sizes():
    ds = load_imported("fer2013")
    assert check_sizes(make_splits(ds, "standard")) and check_sizes(make_splits(ds, "reference"))
    counts = {c: int((ds.labels[ds.usage == TRAINING] == k).sum()) for k, c in enumerate(ds.classes)}
    assert counts == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
                      "surprise": 3171}


def test_augment_identity_and_randomness():
    x = torch.rand(6, 1, 48, 48)
    same = augment(x, 48, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0, flip=False)
    assert torch.allclose(same, x, atol=1e-5)
    y = augment(x.repeat(1, 1, 1, 1)[:1].repeat(6, 1, 1, 1), 64, torch.Generator().manual_seed(0))
    assert y.shape == (6, 1, 64, 64)
    assert not torch.allclose(y[0], y[1])  # per-face parameters, not one per batch


def test_mixup_blends_inputs_and_targets():
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    t = torch.eye(7)[[0, 1]]
    xm, tm = mixup(x, t, 0.2, torch.Generator().manual_seed(1))
    assert torch.allclose(tm.sum(1), torch.ones(2))
    # each blended image's mean equals its target's weight on class 1 (image 1 is all ones)
    assert torch.allclose(xm.mean((1, 2, 3)), tm[:, 1], atol=1e-6)
    assert mixup(x, t, 0.0)[0] is x


def test_center_crop_keeps_the_middle_of_the_face():
    from emo.preprocess import center_crop
    x = torch.zeros(1, 1, 48, 48)
    x[..., 12:36, 12:36] = 1.0  # a bright square over the central half
    assert torch.equal(center_crop(x, 1.0), x)
    half = center_crop(x, 0.5)
    assert half.shape == x.shape and half[..., 1:-1, 1:-1].min() > 0.99  # the square now fills the frame
    assert center_crop(x, 0.75).mean() == pytest.approx((24 / 36) ** 2, abs=0.01)  # 36 px kept, the square is 24
    faces = (x[:, 0] * 255).to(torch.uint8).numpy()
    assert torch.allclose(Preprocessing(48, 0.0, 1.0, crop=0.5)(faces).contiguous(), half, atol=1e-5)
    for bad in (0.0, 0.3, 1.2):
        with pytest.raises(ValueError, match=f"crop fraction {bad}"):
            center_crop(x, bad)


def test_an_interrupted_import_leaves_the_earlier_copy_and_says_so(kaggle_zip, tmp_path, monkeypatch, capsys):
    out = tmp_path / "data"
    assert data.main(["import", str(kaggle_zip), "--data-dir", str(out)]) == 0
    before = (out / "fer2013.npz").read_bytes()

    def ctrl_c(self, gray):
        raise KeyboardInterrupt
    monkeypatch.setattr(importers._FaceCropper, "__call__", ctrl_c)
    capsys.readouterr()
    assert data.main(["import", str(kaggle_zip), "--data-dir", str(out)]) == 130
    assert "is as it was before; run the same command again" in capsys.readouterr().err
    assert (out / "fer2013.npz").read_bytes() == before
    assert not list(out.glob(".emo-tmp-*")) and not list(out.glob("*.tmp*"))
