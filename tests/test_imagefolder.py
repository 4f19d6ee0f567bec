"""Datasets of one's own: image folders imported under a name, trained on with --data, fine-tuned with --init."""

import csv
import json
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
import torch

import emo.datasets
from emo import data
from emo.datasets import (
    PRIVATE_TEST,
    PUBLIC_TEST,
    TRAINING,
    DataImportError,
    load_dataset,
    load_imported,
    make_synthetic,
)
from emo.importers import merge_classes, read_image_folders
from emo.importers import write_image_folders as export_image_folders
from emo.model import load_model
from emo.splits import make_splits
from emo.video import sample_photo
from tests.conftest import tiny_config

CLASSES = ("angry", "happy", "sad")


def _face(value: int, shape=(48, 48), colour=False) -> np.ndarray:
    img = np.full(shape, value, np.uint8)
    img[shape[0] // 4:shape[0] // 2, shape[1] // 4:3 * shape[1] // 4] = 255 - value
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if colour else img


def _write(path, img, ext=".png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(ext).write_bytes(cv2.imencode(ext, img)[1].tobytes())


def _split_folders(root, n=10):
    """train/ and test/ of three classes: colour and gray, JPEG and PNG, of several sizes."""
    for k, c in enumerate(CLASSES):
        for i in range(n):
            _write(root / "train" / c / f"t{i}", _face(20 * k + i, (60 + i, 50 + 2 * i), colour=i % 2 == 0),
                   ".jpg" if i % 3 else ".png")
        for i in range(3):
            _write(root / "test" / c / f"x{i}", _face(100 + 20 * k + i, (90, 90)))
    return root


def test_train_test_folders_of_any_size_and_colour_import_with_a_seeded_validation_split(tmp_path):
    root = _split_folders(tmp_path / "mine")
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not an image")
    (root / "train" / "happy" / "notes.txt").write_text("hello")
    ds = read_image_folders(root, "mine", size=40)
    assert ds.classes == CLASSES and ds.name == "mine"
    assert ds.images.shape[1:] == (40, 40) and ds.images.dtype == np.uint8
    assert ds.unreadable == ["train/happy/broken.jpg"]
    assert ds.skipped == {"not an image file": 1, "unreadable image": 1}
    # no val/: one training face in ten of each class validates; test/ tests
    for k in range(3):
        assert ((ds.labels == k) & (ds.usage == PUBLIC_TEST)).sum() == 1
        assert ((ds.labels == k) & (ds.usage == TRAINING)).sum() == 9
        assert ((ds.labels == k) & (ds.usage == PRIVATE_TEST)).sum() == 3
    again = read_image_folders(root, "mine", size=40)
    assert np.array_equal(ds.usage, again.usage)  # seeded
    assert not np.array_equal(ds.usage, read_image_folders(root, "mine", size=40, seed=1).usage)
    splits = make_splits(ds)  # the standard protocol validates on val and tests on test
    assert splits.sizes() == {"train": 27, "val": 3, "test": 9} and splits.classes == CLASSES
    with tarfile.open(tmp_path / "mine.tar.gz", "w:gz") as tf:  # the same folders as a tar.gz, read in one pass
        tf.add(root, arcname="mine")
    packed = read_image_folders(tmp_path / "mine.tar.gz", "mine", size=40)
    order = np.lexsort((packed.usage, packed.labels, packed.images.reshape(len(packed), -1).sum(1)))
    order0 = np.lexsort((ds.usage, ds.labels, ds.images.reshape(len(ds), -1).sum(1)))
    assert np.array_equal(packed.images[order], ds.images[order0]) and packed.unreadable == ["mine/" + ds.unreadable[0]]


def test_one_folder_of_classes_in_a_zip_is_split_by_class(tmp_path):
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for k, c in enumerate(("Neutral", "Contempt")):
            for i in range(20):
                zf.writestr(f"export/{c}/{i}.png", cv2.imencode(".png", _face(30 * k + i))[1].tobytes())
        zf.writestr("__MACOSX/export/Neutral/._0.png", b"resource fork")
        zf.writestr("export/README.txt", b"read me")
    ds = read_image_folders(path, "kdef", val_fraction=0.1, test_fraction=0.2)
    assert ds.classes == ("contempt", "neutral") and len(ds) == 40  # lower-cased, alphabetical
    assert ds.skipped == {"not in a class folder": 1}
    for k in range(2):
        assert [((ds.labels == k) & (ds.usage == u)).sum() for u in (TRAINING, PUBLIC_TEST, PRIVATE_TEST)] == [14, 2, 4]


@pytest.mark.parametrize("make, message", [
    (lambda r: (r / "train" / "fear").mkdir(), "class folder train/fear/ .* holds no images"),
    (lambda r: _write(r / "test" / "fear" / "a", _face(9)), r"class\(es\) \['fear'\] .* no train/ folder"),
    (lambda r: __import__("shutil").rmtree(r / "test"), "no test/<class>/ folders"),
])
def test_bad_datasets_get_one_line_errors(tmp_path, make, message):
    root = _split_folders(tmp_path / "mine", n=3)
    make(root)
    with pytest.raises(DataImportError, match=message) as e:
        read_image_folders(root, "mine")
    assert "\n" not in str(e.value)


def test_duplicates_across_splits_are_warned_and_faces_found_with_detect(tmp_path, capsys):
    root = _split_folders(tmp_path / "mine", n=3)
    (root / "test" / "sad" / "copy.png").write_bytes((root / "train" / "sad" / "t0.png").read_bytes())
    assert data.main(["import", str(root), "--name", "mine", "--data-dir", str(tmp_path / "d")]) == 0
    assert "1 file(s) have the same bytes as a file of another split" in capsys.readouterr().err
    _write(root / "train" / "happy" / "photo", sample_photo(), ".jpg")  # a photo, not a cropped face
    assert data.main(["import", str(root), "--name", "mine", "--detect", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    ds = load_imported("mine", tmp_path / "d")
    # the flat drawn faces hold no face for the detector: skipped, counted and listed; the photo's face is kept
    assert "found no face in 19 image(s), skipped: test/angry/x0.png" in out
    assert len(ds) == 1 and ds.usage[0] == TRAINING and ds.labels[0] == CLASSES.index("happy")
    assert "replacing 19" in out  # the earlier import, replaced only once the new one was complete


def test_export_with_merged_classes_imports_again_as_its_own_dataset(tmp_path):
    syn = make_synthetic(per_class=10)
    six = merge_classes(syn, {"disgust": "angry"})
    assert six.classes == ("angry", "fear", "happy", "neutral", "sad", "surprise")
    assert (six.labels == 0).sum() == 20
    counts = export_image_folders(six, tmp_path / "six")
    assert counts == {"train": 49, "val": 14, "test": 7}
    with pytest.raises(FileExistsError, match="not empty"):
        export_image_folders(six, tmp_path / "six")  # never writes over a folder
    back = read_image_folders(tmp_path / "six", "six")
    assert back.classes == six.classes and np.array_equal(np.sort(back.usage), np.sort(six.usage))
    with pytest.raises(ValueError, match="no class 'contempt'"):
        merge_classes(syn, {"contempt": "angry"})


def test_a_dataset_of_your_own_in_five_commands(tmp_path, monkeypatch, tiny_model_path, capsys):
    """docs/your-own-data.md's commands, in-process, on generated people in several frames each: import split by
    person, the 7-class model's baseline over the 3 classes it shares, fine-tune, evaluate, predict."""
    from emo import evaluate, predict, train
    sequences(tmp_path / "folders", people=10, frames=3)
    monkeypatch.setattr(emo.datasets, "DATA_DIR", tmp_path / "data")
    assert data.main(["import", str(tmp_path / "folders"), "--name", "mine", "--groups", "^(P[0-9]+)_"]) == 0
    assert "none is in two splits" in capsys.readouterr().out
    assert data.main(["info"]) == 0 and "mine: 90 faces of 48x48, 3 classes" in capsys.readouterr().out
    mine = load_dataset("mine")
    # the baseline before fine-tuning: the 7-class model scored over the 3 classes it shares with the data
    before = tmp_path / "before"
    assert evaluate.main(["--model", str(tiny_model_path), "--data", "mine", "--out", str(before)]) == 0
    err = capsys.readouterr().err
    assert "scored over the 3 they share" in err and "predicting it counts as wrong" in err
    record = json.loads((before / "metrics.json").read_text())
    assert record["class_match"]["model_only"] == ["angry", "disgust", "fear", "neutral"]
    assert record["test"]["faces"] == (mine.usage == 2).sum()
    assert (before / "roc.png").exists() and not (before / "learning_curves.png").exists()  # no foreign curves
    assert evaluate.main([str(tiny_model_path), "--data", "mine", "--out", str(tmp_path / "masked"),
                          "--shared-classes", "--no-figures"]) == 0
    masked = json.loads((tmp_path / "masked" / "metrics.json").read_text())
    assert masked["test"]["accuracy"] >= record["test"]["accuracy"]  # (never predicts a class the data lacks)
    run = tmp_path / "run"
    assert train.main([str(run), "--data", "mine", "--init", str(tiny_model_path), "--epochs", "1",
                       "--no-progress"]) == 0
    log = (run / "train_log.txt").read_text()
    assert "data mine" in log and "the linear head (2 tensors) is initialised afresh" in log
    model = load_model(run / "best_model.pt")
    start = load_model(tiny_model_path)
    assert model.classes == mine.classes and model.config.widths == start.config.widths  # its architecture adopted
    assert evaluate.main([str(run / "best_model.pt"), "--no-figures", "--out", str(tmp_path / "ev")]) == 0
    assert "mine, standard protocol" in capsys.readouterr().out  # scored on its own data, unasked
    after = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert after["test"]["faces"] == record["test"]["faces"] and "class_match" not in after  # the same faces
    assert predict.main([str(tmp_path / "folders" / "happy"), "--model", str(run / "best_model.pt"), "--no-detect",
                         "--out", str(tmp_path / "pred")]) == 0
    with open(tmp_path / "pred" / "faces.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and list(rows[0])[-3:] == list(mine.classes)  # each face taken whole, three bars
    assert data.main(["import", str(tmp_path / "folders"), "--name", "auto"]) == 2  # a name that means something else
    with pytest.raises(FileNotFoundError, match="no dataset named 'other'.*imported: mine"):
        load_dataset("other")


def test_init_across_class_sets_keeps_the_body_and_starts_the_head_afresh(tmp_path, tiny_model_path):
    from emo.train import config_from_args, make_trainer, parse_args
    splits = make_splits(merge_classes(make_synthetic(), {"disgust": "angry"}))
    t = make_trainer(tiny_config(epochs=1, init=str(tiny_model_path)), tmp_path, "cpu", splits=splits, progress=False)
    start = load_model(tiny_model_path).state_dict()
    for k, v in t.model.state_dict().items():
        if k.startswith("head."):
            assert v.shape[0] == 6
        else:
            assert torch.equal(v, start[k]), k
    assert "initialised afresh" in t.extensions[0].note
    # the command line adopts the checkpoint's architecture where no model option is given
    cfg = config_from_args(parse_args(["out", "--init", str(tiny_model_path)]))
    assert cfg.model["widths"] == list(load_model(tiny_model_path).config.widths)
    with pytest.raises(ValueError, match="architecture differs"):
        make_trainer(tiny_config(init=str(tiny_model_path), model={**tiny_config().model, "stem_channels": 8}),
                     tmp_path / "x", "cpu", splits=splits, progress=False)


def sequences(root, people=12, frames=4):
    """Faces of ``people`` people in three expressions, ``frames`` nearly equal frames of each (as a video sequence
    gives), named ``P<person>_<class>_<frame>.png`` in class folders."""
    from emo.synthetic import draw_face
    rng = np.random.default_rng(0)
    for pid in range(people):
        for k, cls in enumerate(("happy", "sad", "surprise")):
            base = draw_face(cls, np.random.default_rng(100 * pid + k)).astype(np.int16)
            (root / cls).mkdir(parents=True, exist_ok=True)
            for f in range(frames):
                face = np.clip(base + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(root / cls / f"P{pid:02d}_{cls}_{f}.png"), face)
    return root


def test_a_split_by_person_keeps_each_person_in_one_split(tmp_path, capsys):
    root = sequences(tmp_path / "seq")
    (root / "happy" / "notes.txt").write_text("not a face")
    d = str(tmp_path / "d")
    assert data.main(["import", str(root), "--name", "seq", "--data-dir", d]) == 0  # per image: frames leak
    said = capsys.readouterr()
    assert "skipped 1 file(s), not an image file: happy/notes.txt" in said.out  # named, once
    assert "look nearly the same as a training face" in said.err and "--groups" in said.err
    assert data.main(["import", str(root), "--name", "seq", "--data-dir", d, "--groups", "^(P[0-9]+)_"]) == 0
    said = capsys.readouterr()
    assert "none is in two splits" in said.out and "nearly the same" not in said.err
    ds = read_image_folders(root, "seq", groups="^(P[0-9]+)_")
    people = np.array([m.split("/")[-1][:3] for m in sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))])
    assert ds.groups_across == [] and sum(ds.group_counts.values()) == 12 and len(people) == len(ds) == 144
    with open(tmp_path / "groups.csv", "w") as f:  # the same grouping from a CSV beside the images
        f.write("file,group\n" + "".join(f"{p.name},{p.name[:3]}\n" for p in root.rglob("*.png")))
    by_csv = read_image_folders(root, "seq", groups=str(tmp_path / "groups.csv"))
    assert np.array_equal(by_csv.usage, ds.usage)
    assert data.main(["import", str(root), "--name", "seq", "--data-dir", d, "--groups", "^(Q[0-9]+)_"]) == 2
    assert "finds no group in the file name" in capsys.readouterr().err


def test_group_splits_are_seeded_and_never_share_a_group():
    from emo.importers import seeded_group_split
    groups = np.repeat(np.arange(40), np.random.default_rng(1).integers(1, 9, 40)).astype(str)
    usage = seeded_group_split(groups, 0.1, 0.2, seed=3)
    for g in np.unique(groups):
        assert len(np.unique(usage[groups == g])) == 1
    assert np.array_equal(usage, seeded_group_split(groups, 0.1, 0.2, seed=3))
    shares = [(usage == u).mean() for u in (PRIVATE_TEST, PUBLIC_TEST)]
    assert abs(shares[0] - 0.2) < 0.08 and abs(shares[1] - 0.1) < 0.08


def test_head_shots_taken_whole_get_a_framing_suggestion(tmp_path, capsys):
    from emo.video import sample_photo
    photo = cv2.cvtColor(sample_photo(), cv2.COLOR_BGR2GRAY)
    for cls in ("happy", "sad"):
        (tmp_path / "shots" / cls).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(tmp_path / "shots" / cls / f"{k}.jpg"), np.roll(photo, 7 * k, axis=1))
    d = str(tmp_path / "d")
    assert data.main(["import", str(tmp_path / "shots"), "--name", "shots", "--data-dir", d]) == 0
    out = capsys.readouterr().out
    assert "larger than a face (median side 512 pixels)" in out and "In 6 of 6 sampled" in out and "--detect" in out
    assert data.main(["import", str(tmp_path / "shots"), "--name", "shots", "--data-dir", d, "--detect"]) == 0
    assert "larger than a face" not in capsys.readouterr().out  # framed as the demos frame faces: nothing to say
