import csv

import cv2

from emo.predict import main
from emo.video import sample_photo


def read_rows(path):
    return list(csv.DictReader(open(path)))


def test_photos_videos_and_folders_become_annotated_files_and_one_csv(tiny_model_path, face_video, tmp_path, capsys):
    album = tmp_path / "album"
    album.mkdir()
    cv2.imwrite(str(album / "portrait.png"), sample_photo())
    (album / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main([str(album), str(face_video), "--out", str(out), "--model", str(tiny_model_path)]) == 0
    rows = read_rows(out / "faces.csv")
    photo = [r for r in rows if r["file"] == "portrait.png"]
    video = [r for r in rows if r["file"] == face_video.name]
    assert len(photo) == 1 and photo[0]["frame"] == "0" and photo[0]["label"] in photo[0]
    assert abs(sum(float(photo[0][c])
                   for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")) - 1) < 1e-3
    assert len({r["frame"] for r in video}) > 6 and float(video[-1]["time_s"]) > 0  # a face in most frames, timed
    assert (out / "portrait.jpg").is_file() and (out / f"{face_video.stem}.avi").is_file()
    assert (out / f"{face_video.stem}_emotions.png").stat().st_size > 10_000
    said = capsys.readouterr()
    assert "skipped: " in said.err and "broken.jpg is not a readable image" in said.err  # the rest went on
    assert "2 of 3 file(s) analysed" in said.out


def test_no_path_shows_the_model_on_the_bundled_photo(tiny_model_path, tmp_path):
    assert main(["--out", str(tmp_path), "--model", str(tiny_model_path)]) == 0
    (row,) = read_rows(tmp_path / "faces.csv")
    assert row["file"] == "astronaut.png" and (tmp_path / "astronaut.jpg").is_file()


def test_nothing_to_analyse_is_a_one_line_error(tiny_model_path, tmp_path, capsys):
    assert main([str(tmp_path / "gone.mp4"), "--out", str(tmp_path / "o"), "--model", str(tiny_model_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: nothing could be analysed") and "gone.mp4 does not exist" in err[-1]
