"""emo.predict: annotated copies, faces.csv, emotions over time; and nothing a user gives is lost."""

import csv
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from emo.predict import emotions_over_time, main
from emo.video import sample_photo, write_test_video

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def png_declaring(width, height):
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


def test_photos_videos_and_folders_become_annotated_files_and_one_csv(tiny_model_path, face_video, tmp_path, capsys):
    album = tmp_path / "album"
    album.mkdir()
    cv2.imwrite(str(album / "portrait.png"), sample_photo())
    (album / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main([str(album), str(face_video), "--out", str(out), "--model", str(tiny_model_path)]) == 2
    rows = read_rows(out / "faces.csv")
    photo = [r for r in rows if r["file"].endswith("portrait.png")]
    video = [r for r in rows if r["file"].endswith(face_video.name)]
    assert len(photo) == 1 and photo[0]["frame"] == "0" and photo[0]["label"] in photo[0]
    assert photo[0]["annotated"] == "portrait_annotated.jpg" and (out / "portrait_annotated.jpg").is_file()
    assert abs(sum(float(photo[0][c]) for c in CLASSES) - 1) < 1e-3
    assert len({r["frame"] for r in video}) > 6 and float(video[-1]["time_s"]) > 0  # a face in most frames, timed
    assert (out / f"{face_video.stem}_annotated.avi").is_file()
    assert (out / f"{face_video.stem}_emotions.png").stat().st_size > 10_000
    said = capsys.readouterr()
    assert "broken.jpg is not a readable image" in said.err  # reported, and the rest went on
    assert "2 of 3 file(s) analysed" in said.out
    assert said.err.strip().splitlines()[-1].startswith("error: 1 of 3 file(s) could not be analysed")
    assert not [p for p in out.rglob("*") if p.name.startswith(".emo-")]  # no temporary file, no lock left


def test_no_path_shows_the_model_on_the_bundled_photo(tiny_model_path, tmp_path):
    assert main(["--out", str(tmp_path), "--model", str(tiny_model_path)]) == 0
    (row,) = read_rows(tmp_path / "faces.csv")
    assert row["file"] == "astronaut.png" and (tmp_path / row["annotated"]).is_file()


def test_nothing_to_analyse_is_a_one_line_error(tiny_model_path, tmp_path, capsys):
    assert main([str(tmp_path / "gone.mp4"), "--out", str(tmp_path / "o"), "--model", str(tiny_model_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: nothing could be analysed") and "gone.mp4 does not exist" in err[-1]


def test_outputs_never_replace_an_input_nor_each_other(tiny_model_path, tmp_path):
    photos = tmp_path / "photos"
    for rel in ("a/x.jpg", "b/x.jpg", "a/x.png", "x_annotated.jpg"):
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(photos / rel), sample_photo())
    (photos / "a" / "x_annotated.jpg").write_bytes((photos / "a" / "x.jpg").read_bytes())  # named as an output
    before = snapshot(photos)
    assert main([str(photos), "--out", str(photos), "--model", str(tiny_model_path)]) == 0  # into its own folder
    assert all(snapshot(photos)[p] == data for p, data in before.items())  # nothing of the user's touched
    rows = read_rows(photos / "faces.csv")
    outputs = [r["annotated"] for r in rows]
    assert len(rows) == 5 and len(set(outputs)) == 5  # five inputs, five distinct copies
    assert {"a/x_jpg_annotated.jpg", "a/x_png_annotated.jpg", "b/x_annotated.jpg"} <= set(outputs)
    assert all((photos / o).is_file() and (photos / o).relative_to(photos) not in before for o in outputs)
    assert main([str(photos), "--out", str(photos), "--model", str(tiny_model_path)]) == 0  # again: still safe
    assert all(snapshot(photos)[p] == data for p, data in before.items())


def test_each_bad_file_is_one_line_and_the_rest_go_on(tiny_model_path, face_video, tmp_path, capsys):
    """Files that crashed, hung or stopped the run: a name that is not UTF-8, a FIFO, a PNG declaring 30000 x
    30000 pixels, an empty file, a folder named like a photo, a damaged video, a five-frame video."""
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "good.jpg"), sample_photo())
    odd = os.fsencode(bad) + b"/caf\xe9.jpg"  # (Latin-1 bytes: not valid UTF-8)
    with open(odd, "wb") as f:
        f.write((bad / "good.jpg").read_bytes())
    os.mkfifo(bad / "pipe.jpg")
    (bad / "bomb.png").write_bytes(png_declaring(30000, 30000))
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "folder.jpg").mkdir()
    (bad / "cut.mp4").write_bytes(face_video.read_bytes()[:3000])
    write_test_video(bad / "short.avi", sample_photo(), frames=5)
    out = tmp_path / "out"
    assert main([str(bad), "--out", str(out), "--model", str(tiny_model_path)]) == 2
    said = capsys.readouterr()
    assert "Traceback" not in said.err
    rows = read_rows(out / "faces.csv")
    done = {r["file"].rsplit("/", 1)[-1] for r in rows}
    assert {"good.jpg", "caf\\xe9.jpg", "short.avi"} <= done  # read, named escaped in the CSV
    assert (out / "short_emotions.png").is_file()
    for name, why in (("pipe.jpg", "is a FIFO"), ("bomb.png", "30,000 x 30,000 pixels"),
                      ("empty.jpg", "not a readable image"), ("cut.mp4", "")):
        (line,) = [s for s in said.err.splitlines() if name in s and s.startswith("skipped: ")]
        assert why in line
    assert said.err.strip().splitlines()[-1].startswith("error: ")


def test_a_full_disk_skips_each_file_in_one_line_and_leaves_no_debris(tiny_model_path, tmp_path):
    """A real write failure from the kernel: the process may write no file over 20 KB (as a full disk would
    refuse), so each annotated copy fails while faces.csv still holds what was found."""
    photo = tmp_path / "a.jpg"
    cv2.imwrite(str(photo), sample_photo())
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY)); "
            "from emo.predict import main; sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, str(photo), str(photo), "--out", str(out), "--model",
                        str(tiny_model_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: nothing could be analysed")
    assert "File too large" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["faces.csv"]  # no temporary file, no half a photo


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys, time; from emo.files import folder_lock\n"
                                "with folder_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)",
                                str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "held"
        assert main(["--out", str(out), "--model", str(tiny_model_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and f"process {sleeper.pid}" in err and len(err.splitlines()) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(["--out", str(out), "--model", str(tiny_model_path)]) == 0  # a killed holder's lock is taken over
    assert "taking its lock over" in capsys.readouterr().err


@pytest.mark.parametrize("frames", [1, 5, 40])
def test_emotions_over_time_keep_the_ends_whole_and_leave_gaps(frames):
    rng = np.random.default_rng(frames)
    shown = [f for f in range(frames) if not frames // 3 <= f < frames // 2]  # a stretch without a face
    rows = []
    for f in shown:
        for _ in range(rng.integers(1, 3)):  # one or two faces a frame
            p = rng.dirichlet(np.ones(3))
            rows.append({"frame": f, "a": p[0], "b": p[1], "c": p[2]})
    smooth = emotions_over_time(rows, ["a", "b", "c"], frames, window=13)
    assert smooth.shape == (frames, 3)
    assert np.allclose(smooth[shown].sum(1), 1)  # probabilities at every frame with a face, the ends included
    assert np.isnan(np.delete(smooth, shown, 0)).all()  # gaps are gaps


def test_an_hour_of_video_is_smoothed_in_a_moment():
    frames = 30 * 3600
    rows = [{"frame": f, "a": 0.5, "b": 0.5} for f in range(0, frames, 2)]
    smooth = emotions_over_time(rows, ["a", "b"], frames, window=15)
    assert np.allclose(smooth[::2], 0.5)


def test_faces_csv_gives_each_class_its_own_column(tiny_model_path, tmp_path):
    from emo.predict import COLUMNS, csv_columns
    assert csv_columns(("x", "label", "happy")) == [*COLUMNS, "p_x", "p_label", "happy"]
    with pytest.raises(ValueError, match="repeat a name"):
        csv_columns(("x", "p_x"))


def test_runtime_torch_with_an_onnx_file_is_refused(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    assert main(["--model", str(model), "--runtime", "torch", "--out", str(tmp_path / "o")]) == 2
    assert "drop --runtime torch" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_made_is_one_line(tiny_model_path, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    assert main(["--out", str(tmp_path / "file" / "out"), "--model", str(tiny_model_path)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: Not a directory") and "\n" not in line and "choose another path" in line


def test_faces_cropped_already_are_taken_whole_and_the_csv_says_so(tiny_model_path, tmp_path, capsys):
    from emo.synthetic import draw_face
    crops = tmp_path / "crops"
    crops.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        cv2.imwrite(str(crops / f"{k}.png"), draw_face(CLASSES[k], rng))  # 48 x 48 faces, as a dataset holds them
    common = ["--model", str(tiny_model_path)]
    assert main([str(crops), "--out", str(tmp_path / "auto"), *common]) == 0
    rows = read_rows(tmp_path / "auto" / "faces.csv")
    whole = [r for r in rows if r["found_by"] == "whole image"]
    assert len(rows) == 3 and len(whole) == 3  # each a face cropped already: taken whole, framed alike
    assert {(r["x"], r["y"], r["w"], r["h"]) for r in whole} == {("0", "0", "48", "48")}
    assert f"{len(whole)} image(s) look like faces cropped already" in capsys.readouterr().out
    assert main([str(crops), "--out", str(tmp_path / "always"), "--detect", "always", *common]) == 0
    assert {r["found_by"] for r in read_rows(tmp_path / "always" / "faces.csv")} <= {"detector"}
    assert main([str(crops), "--out", str(tmp_path / "none"), "--no-detect", *common]) == 0
    assert [r["found_by"] for r in read_rows(tmp_path / "none" / "faces.csv")] == ["whole image"] * 3
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), sample_photo())
    assert main([str(photo), "--out", str(tmp_path / "never"), "--no-detect", *common]) == 0
    (row,) = read_rows(tmp_path / "never" / "faces.csv")
    assert row["found_by"] == "whole image" and row["w"] == row["h"] == "512"


def test_a_run_into_a_folder_inside_its_input_does_not_analyse_its_own_results(tiny_model_path, tmp_path):
    for album, out in ((tmp_path / "a", tmp_path / "a" / "results"), (tmp_path / "b", tmp_path / "b")):
        album.mkdir()  # --out inside the input folder, or the input folder itself
        cv2.imwrite(str(album / "portrait.jpg"), sample_photo())
        for _ in range(3):
            assert main([str(album), "--out", str(out), "--model", str(tiny_model_path)]) == 0
            assert [r["annotated"] for r in read_rows(out / "faces.csv")] == ["portrait_annotated.jpg"]


def test_ctrl_c_is_one_line_and_leaves_no_lock(tiny_model_path, tmp_path, monkeypatch, capsys):
    import emo.predict

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt  # (as a Ctrl-C during the first file would)
    monkeypatch.setattr(emo.predict, "analyse", ctrl_c)
    assert main(["--out", str(tmp_path), "--model", str(tiny_model_path)]) == 130
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("interrupted: ") and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["faces.csv"]  # its header; the lock released, no temporary file


def test_two_people_in_a_video_keep_their_track_numbers_and_get_a_panel_each(tiny_model_path, tmp_path):
    face = cv2.resize(sample_photo()[20:210, 130:320], (220, 220), interpolation=cv2.INTER_AREA)  # her head
    path = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(12):  # two people, one drifting right and one left; they never overlap
        canvas = np.full((480, 640, 3), 40, np.uint8)
        canvas[100:320, 20 + 4 * i:240 + 4 * i] = face
        canvas[130:350, 400 - 4 * i:620 - 4 * i] = face
        writer.write(canvas)
    writer.release()
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--model", str(tiny_model_path)]) == 0
    rows = read_rows(out / "faces.csv")
    by_frame = {}
    for r in rows:
        by_frame.setdefault(r["frame"], []).append(r)
    both = [fr for fr in by_frame.values() if len(fr) == 2]
    assert len(both) >= 8  # Haar finds both in most frames
    for fr in both:
        left, right = sorted(fr, key=lambda r: int(r["x"]))
        assert (left["track"], right["track"]) == ("1", "2")
    plot = cv2.imread(str(out / "two_emotions.png"))
    assert plot.shape[0] > 500  # a panel for each person (one panel alone is 350 pixels high)
