"""Import a dataset once (`python -m emo.data import`), describe what is imported, write one back out as folders.

    python -m emo.data import ~/Downloads/fer2013.zip                      # -> data/fer2013.npz
    python -m emo.data import ~/Downloads/raf-basic --name rafdb --detect  # any image-folder dataset
    python -m emo.data info
    python -m emo.data export fer2013 /tmp/fer6 --merge disgust=angry      # back out, with classes merged

The reading is :mod:`emo.importers`'s, the storing :mod:`emo.datasets`'s; splits are :mod:`emo.splits`'s.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from emo.cli import HelpFormatter, parser, run_command
from emo.datasets import (
    DATA_DIR,
    FER2013_CLASSES,
    NO_DATA_MESSAGE,
    PRIVATE_TEST,
    PUBLIC_TEST,
    TEST_UNSPLIT,
    TRAINING,
    FaceDataset,
    dataset_file,
    imported_datasets,
    load_imported,
    make_synthetic,
    save_dataset,
)
from emo.files import folder_lock
from emo.importers import merge_classes, read_dataset, write_image_folders
from emo.synthetic import FACE_SIZE

#: Datasets whose classes are known before their folders are read (an import with other folders is refused).
KNOWN_CLASSES = {"fer2013": FER2013_CLASSES}


def import_dataset(path: str | os.PathLike, name: str = "fer2013", data_dir: str | os.PathLike | None = None,
                   numeric_labels: bool = False, **folders: Any) -> FaceDataset:
    """Import ``path`` into ``data_dir/<name>.npz`` (:func:`emo.importers.read_dataset`, with the classes
    :data:`KNOWN_CLASSES` knows for ``name``). Any earlier import is replaced only once the new copy is complete
    (a failed or interrupted import leaves it as it was)."""
    out = dataset_file(name, data_dir)
    with folder_lock(out.parent, "--name", name=out.stem):  # (a second import of this name is refused meanwhile)
        ds = read_dataset(path, name, KNOWN_CLASSES.get(name), numeric_labels, **folders)
        save_dataset(ds, out)
    return ds


def read_fer2013(path: str | os.PathLike, numeric_labels: bool = False) -> FaceDataset:
    """FER-2013 from the Kaggle archive or folder, or the challenge's CSV (:func:`emo.importers.read_dataset`)."""
    return read_dataset(path, "fer2013", FER2013_CLASSES, numeric_labels)


def import_fer2013(path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                   numeric_labels: bool = False) -> FaceDataset:
    """Import FER-2013 from ``path`` into ``data_dir/fer2013.npz`` (:func:`import_dataset`)."""
    return import_dataset(path, "fer2013", data_dir, numeric_labels)


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.data", __doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("import", formatter_class=HelpFormatter,
                        description="Import a dataset into data/NAME.npz: FER-2013 (its Kaggle archive or "
                                    "fer2013.csv), or with --name any image-folder dataset (docs/your-own-data.md).",
                        help="import FER-2013 (zip, tar.gz, folder or fer2013.csv), or with --name any image-folder "
                             "dataset, into data/")
    pi.add_argument("path", help="FER-2013's archive, folder or CSV; with --name, your dataset's folder, zip or tar")
    pi.add_argument("--name", default="fer2013",
                    help="the dataset's name (data/NAME.npz, --data NAME); any name but fer2013 reads image folders: "
                         "train/<class>/*, test/<class>/* and optionally val/<class>/*, or one folder of <class>/*")
    pi.add_argument("--data-dir", default=None, help=f"where to write NAME.npz (default: {DATA_DIR})")
    pi.add_argument("--numeric-labels", action="store_true",
                    help="FER-2013: label folders 0-6 are the challenge's emotion ids (0 angry, 1 disgust, 2 fear, "
                         "3 happy, 4 sad, 5 surprise, 6 neutral)")
    pi.add_argument("--detect", action="store_true",
                    help="image folders: crop the largest face the demos' detector finds in each image (images "
                         "without one are skipped and counted) instead of taking each image as a cropped face")
    pi.add_argument("--size", type=int, default=FACE_SIZE, help="image folders: store faces at SIZE x SIZE pixels")
    pi.add_argument("--val-fraction", type=float, default=0.1,
                    help="image folders: the share of each class that validates where there is no val/ folder")
    pi.add_argument("--test-fraction", type=float, default=0.1,
                    help="image folders: the share of each class that tests where there is no train/ and test/")
    pi.add_argument("--seed", type=int, default=0, help="image folders: seeds those splits")
    pi.add_argument("--groups", default=None, metavar="PATTERN|CSV",
                    help="image folders: what images belong together (a person, a video sequence), so that the "
                         "splits the import makes keep each group in one split: a regular expression whose first "
                         "group is found in each file's name (\"^(S[0-9]+)_\" for S005_001_00000011.png), or a CSV "
                         "file with the columns file,group")
    ps = sub.add_parser("info", help="describe the imported datasets (or one)")
    ps.add_argument("name", nargs="?", default=None, help="one dataset (default: all imported)")
    ps.add_argument("--data-dir", default=None)
    pe = sub.add_parser("export", formatter_class=HelpFormatter,
                        help="write an imported dataset out as image folders (train/ val/ test/<class>/*.png), "
                             "optionally with classes merged")
    pe.add_argument("name", help="an imported dataset, e.g. fer2013")
    pe.add_argument("out", help="a new (or empty) folder")
    pe.add_argument("--merge", nargs="+", default=[], metavar="A=B", help="relabel class A as class B")
    pe.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.cmd == "export":
        return run_command(lambda: export_command(a.name, a.out, a.merge, a.data_dir))
    if a.cmd == "info":
        return run_command(lambda: describe(a.name, a.data_dir))
    try:
        return run_command(lambda: import_and_describe(a.data_dir, a.path, a.numeric_labels, a.name, a.detect, a.size,
                                                       a.val_fraction, a.test_fraction, a.seed, a.groups),
                           interrupt=False)
    except KeyboardInterrupt:
        out = dataset_file(a.name, a.data_dir)
        kept = f"{out} is as it was before" if out.exists() else f"nothing was written to {out}"
        print(f"\ninterrupted: {kept}; run the same command again to import", file=sys.stderr)
        return 130


def split_counts(ds: FaceDataset) -> str:
    """``Training 28,709, PublicTest 3,589, PrivateTest 3,589`` (the dataset's own names for its splits): the faces
    of ``ds`` per usage."""
    names = ds.split_names
    counts = {name: int((ds.usage == code).sum()) for name, code in
              [(names[0], TRAINING), (names[1], PUBLIC_TEST), (names[2], PRIVATE_TEST),
               ("test (unnamed)", TEST_UNSPLIT)]}
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)


def what_will_not_work(ds: FaceDataset) -> list[str]:
    """One line for each way ``ds`` is partial, naming what will not work with it."""
    notes = []
    if not (ds.usage != TRAINING).any():
        notes.append("no test faces (test/<label>/): evaluation has nothing to score, and the standard protocol "
                     "has no validation split; import the whole archive")
    elif not ((ds.usage == PUBLIC_TEST).any() and (ds.usage == PRIVATE_TEST).any()):
        notes.append(f"the test faces are not split into PublicTest_* ({int((ds.usage == PUBLIC_TEST).sum()):,}) and "
                     f"PrivateTest_* ({int((ds.usage == PRIVATE_TEST).sum()):,}), which the standard protocol needs: "
                     "train with `python -m emo.train --protocol reference`")
    if not (ds.usage == TRAINING).any():
        notes.append("no training faces (train/<label>/): nothing to train on; import the whole archive")
    for split, code in (("training", TRAINING), ("test", PRIVATE_TEST)):
        missing = [c for k, c in enumerate(ds.classes) if not ((ds.labels == k) & (ds.usage == code)).any()]
        if missing and (ds.usage == code).any():
            notes.append(f"no {split} faces of {', '.join(missing)}: " + (
                f"a model trained on this never learns {'that class' if len(missing) == 1 else 'those classes'}"
                if code == TRAINING else "the test scores say nothing about "
                + ("that class" if len(missing) == 1 else "those classes")))
    return notes


def named(files: list[str], first: int = 3) -> str:
    """The first few of ``files``, then how many more: ``a.jpg, b.jpg, c.jpg and 12 more``."""
    return ", ".join(files[:first]) + (f" and {len(files) - first:,} more" if len(files) > first else "")


def import_and_describe(data_dir: str | None, path: str, numeric_labels: bool = False, name: str = "fer2013",
                        detect: bool = False, size: int = FACE_SIZE, val_fraction: float = 0.1,
                        test_fraction: float = 0.1, seed: int = 0, groups: str | None = None) -> None:
    """``python -m emo.data import PATH [--name NAME]``: import ``path``, then describe the copy in ``data_dir``."""
    out = dataset_file(name, data_dir)
    before = load_imported(name, data_dir) if out.exists() else None
    print(f"importing {path} into {out}" + (f" (it holds {len(before):,} faces now, kept until the new copy "
                                             "is complete)" if before is not None else ""))
    options = dict(detect=detect, size=size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    if groups:
        options["groups"] = groups
    ds = import_dataset(path, name, data_dir, numeric_labels, **options)
    print(f"imported {len(ds):,} faces into {out}" + (
        f", replacing {len(before):,} ({split_counts(before)})" if before is not None else ""))
    for why, files in ds.passed_over.items():
        print(f"skipped {len(files):,} file(s), {why}: {named(files)}")
    for what, files in (("could not read", ds.unreadable), ("found no face in", ds.no_face)):
        if files:
            print(f"{what} {len(files):,} image(s), skipped: {named(files, 5)}")
    if ds.group_counts:
        print("groups per split (--groups): " + ", ".join(f"{k} {v:,}" for k, v in ds.group_counts.items())
              + ("; none is in two splits" if not ds.groups_across else ""))
    if ds.groups_across:
        print(f"WARNING: {len(ds.groups_across):,} group(s) have faces in two splits, as the folders say (e.g. "
              f"{ds.groups_across[0]}): test scores on them are optimistic; move each group's images into one "
              "split, or put all class folders in one folder so the import splits by group", file=sys.stderr)
    if ds.duplicates:
        a, b = ds.duplicates[0]
        print(f"WARNING: {len(ds.duplicates):,} file(s) have the same bytes as a file of another split (e.g. {a} and "
              f"{b}): test scores on them are optimistic; remove one copy of each", file=sys.stderr)
    copies = {b for _, b in ds.duplicates}
    near = [(a, b) for a, b in ds.near_duplicates if b not in copies]
    if near:
        a, b = near[0]
        more = " more" if copies else ""
        print(f"WARNING: {len(near):,}{more} validation or test face(s) look nearly the same as a training face "
              f"(e.g. {a} and {b}): neighbouring frames of one video, or one person photographed twice? Test "
              "scores on them are optimistic" + ("; split by person or sequence with --groups PATTERN|CSV"
                                                  if ds.import_split and not ds.group_counts else ""),
              file=sys.stderr)
    for note in what_will_not_work(ds):
        print(f"NOTE: {note}")
    if ds.framing:
        f = ds.framing
        print(f"NOTE: the images are larger than a face (median side {f['median_side']} pixels) and each was taken "
              "as its centred square, as if cropped to the face already. " + (
                  f"In {f['one_face']} of {f['sampled']} sampled, the demos' detector finds exactly one face: "
                  "import again with --detect to store each face framed as the demos and emo.predict frame them "
                  "(docs/your-own-data.md)" if f["one_face"] >= f["sampled"] / 2 else
                  f"The demos' detector finds exactly one face in only {f['one_face']} of {f['sampled']} sampled: "
                  "crop the images to their faces first, or keep the centred squares"))
    describe(name, data_dir)


def describe(name: str | None = None, data_dir: str | None = None) -> None:
    """``python -m emo.data info [NAME]``: the faces of each imported dataset (or of ``name``) by split and class."""
    names = [name] if name else imported_datasets(data_dir)
    if not names:
        raise FileNotFoundError(NO_DATA_MESSAGE)
    for n in names:
        ds = make_synthetic() if n == "synthetic" else load_imported(n, data_dir)
        print(f"{n}: {len(ds):,} faces of {ds.images.shape[1]}x{ds.images.shape[2]}, {len(ds.classes)} classes; "
              f"{split_counts(ds)}")
        print("  per class: " + ", ".join(f"{c} {int((ds.labels == k).sum()):,}" for k, c in enumerate(ds.classes)))


def export_command(name: str, out: str, merge: list[str], data_dir: str | None = None) -> None:
    """``python -m emo.data export NAME OUT [--merge A=B ...]``."""
    pairs = {}
    for m in merge:
        a, sep, b = m.partition("=")
        if not sep or not a or not b:
            raise ValueError(f"--merge {m!r}: write it as A=B, e.g. disgust=angry")
        pairs[a.lower()] = b.lower()
    ds = merge_classes(load_imported(name, data_dir), pairs)
    with folder_lock(Path(out).parent, "folder", name=Path(out).name):  # (two exports into one folder: refused)
        counts = write_image_folders(ds, out)
    print(f"wrote {sum(counts.values()):,} faces of {name} to {out} as train/, val/ and test/<class>/*.png "
          f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); classes: {', '.join(ds.classes)}")
    print(f"it is derived from {name}'s images: keep it out of any repository")


if __name__ == "__main__":
    warnings.simplefilter("default")
    sys.exit(main())
