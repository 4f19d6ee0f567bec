"""emo.files: the one writer every file goes through."""

from __future__ import annotations

import csv
import os

import pytest

from emo.files import TEMP_PREFIX, append_text, atomic_path, atomic_write, write_csv, write_text


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    for failure in (KeyboardInterrupt, OSError(28, "No space left on device")):
        with pytest.raises(type(failure) if isinstance(failure, Exception) else failure):
            with atomic_write(target, "w") as f:
                f.write("half of the new")
                raise failure
        assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_a_written_file_has_the_mode_open_would_give_or_the_replaced_files(tmp_path):
    mask = os.umask(0o022)
    try:
        fresh = write_text(tmp_path / "a.txt", "x")
        assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
        fresh.chmod(0o640)
        write_text(fresh, "y")
        assert fresh.stat().st_mode & 0o777 == 0o640 and fresh.read_text() == "y"
    finally:
        os.umask(mask)


def test_files_written_by_name_are_renamed_into_place_only_when_whole(tmp_path):
    target = tmp_path / "sub" / "clip.avi"  # its folder is made
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(TEMP_PREFIX) and tmp.suffix == ".avi"
        tmp.write_bytes(b"frames")
        assert not target.exists()
    assert target.read_bytes() == b"frames" and os.listdir(target.parent) == ["clip.avi"]


def test_csv_and_log_helpers(tmp_path):
    rows = [{"file": "a.jpg", "label": "happy"}, {"file": "b.jpg", "label": "sad"}]
    path = write_csv(tmp_path / "faces.csv", ["file", "label"], rows)
    assert list(csv.DictReader(open(path))) == rows
    append_text(tmp_path / "log.txt", "one\n")
    append_text(tmp_path / "log.txt", "two\n")
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\n"
