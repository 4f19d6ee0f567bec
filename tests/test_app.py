import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("PyQt5")
from PyQt5.QtWidgets import QApplication  # noqa: E402

from emo.app import build_window  # noqa: E402
from emo.preprocess import preprocessing_of, set_preprocessing
from tests.conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def qapp():
    return QApplication.instance() or QApplication([])


def test_window_annotates_video_frames_then_stops(qapp, tiny_model_path, face_video):
    win = build_window(tiny_model_path, str(face_video), threaded=False)  # driven frame by frame
    shown = 0
    while win.step():
        shown += 1
        assert win.last_frame.shape == (480, 640, 3)
        assert len(win.last_faces) == 1 and win.last_faces[0].label in win.pipeline.model.classes
        pm = win.view.pixmap()
        assert not pm.isNull() and abs(pm.width() / pm.height() - 640 / 480) < 0.02  # whole, letterboxed
        assert win.panel.text().startswith(f"<b>{win.last_faces[0].track}: ")  # the side panel, numbered like the box
    assert shown == 12 and win.frames == 12
    assert "end of video after 12 frames" in win.statusBar().currentMessage()
    assert win.source.cap is None  # released
    win.close()


def test_window_takes_a_loaded_ensemble(qapp, tiny_model_path, face_video):
    from emo.model import Ensemble, load_model
    a, b = load_model(tiny_model_path), load_model(tiny_model_path)
    set_preprocessing(b, preprocessing_of(b).with_(crop=0.9))
    ens = Ensemble([a, b]).eval()
    win = build_window(ens, str(face_video), threaded=False)
    assert win.pipeline.model is ens and win.step()
    face = win.last_faces[0]
    assert face.label in ens.classes and np.isclose(face.probs.sum(), 1, atol=1e-5)
    win.close()


def test_missing_camera_shows_a_message(qapp, tiny_model_path):
    win = build_window(tiny_model_path, "9")
    assert win.source is None and "no camera 9" in win.view.text() and not win.step()
    win.close()


def test_a_long_error_wraps_inside_the_window(qapp, tiny_model_path, tmp_path):
    w = build_window(tiny_model_path, source=str(tmp_path / ("a_long_folder_name_" * 6) / "interview.mp4"),
                     threaded=False)
    w.resize(640 + 230, 480)
    w.show()
    qapp.processEvents()
    text = w.view.text()
    assert "does not exist" in text
    one_line = w.view.fontMetrics().horizontalAdvance(text)
    assert one_line > w.view.width()  # too long for one line ...
    assert w.view.heightForWidth(w.view.width()) > 2 * w.view.fontMetrics().height()  # ... so it wraps
    w.close()


def test_close_releases_the_source(qapp, tiny_model_path, face_video):
    win = build_window(tiny_model_path, str(face_video))
    assert win.source.cap is not None
    win.show()
    win.close()
    assert win.source.cap is None and not win.running


def test_cli_runs_offscreen_on_a_video_and_stops_after_the_frames_asked(tiny_model_path, face_video):
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    for args in ([str(tiny_model_path), "--source", str(face_video)],  # the first spellings still work
                 ["--model", str(tiny_model_path), "--input", str(face_video)]):
        r = subprocess.run([sys.executable, "-m", "emo.app", *args, "--frames", "5"], capture_output=True, text=True,
                           cwd=ROOT, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        shown, fps = r.stdout.strip().splitlines()[-1].split(" frames shown, ")
        assert int(shown) == 5 and float(fps.split()[0]) > 0  # stopped where asked, having shown frames
    r = subprocess.run([sys.executable, "-m", "emo.app", str(tiny_model_path), "--model", "default", "--frames", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert r.returncode == 2 and "two models given" in r.stderr  # one model, however it is given


def test_cli_missing_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emo.app", str(tmp_path / "none.pt")], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 2 and r.stderr.strip().startswith("error: no model at") and "\n" not in r.stderr.strip()


def test_cli_exits_non_zero_when_its_source_cannot_be_opened(tiny_model_path, tmp_path):
    r = subprocess.run([sys.executable, "-m", "emo.app", str(tiny_model_path), "--source", str(tmp_path / "gone.mp4"),
                        "--frames", "5"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 2 and "error: " in r.stderr and "gone.mp4" in r.stderr


def test_missing_window_libraries_are_named_with_their_fix(monkeypatch, capsys):
    import ctypes.util

    from emo import app
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":99")  # (a display, but not the libraries to open a window on it)
    found = {"xcb-keysyms": None, "xcb-xinerama": None}
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: found.get(name, f"lib{name}.so"))
    assert app.missing_window_libraries() == ["libxcb-keysyms1", "libxcb-xinerama0"]
    assert app.main(["--source", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sudo apt-get install libxcb-keysyms1 libxcb-xinerama0" in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.missing_window_libraries() == []


def test_a_portrait_photo_is_shown_whole_and_analysed_once(qapp, tiny_model_path, tmp_path):
    import cv2

    from emo.video import sample_photo
    photo = cv2.resize(sample_photo(), (360, 640))  # portrait
    cv2.imwrite(str(tmp_path / "portrait.png"), photo)
    win = build_window(tiny_model_path, str(tmp_path / "portrait.png"))
    win.resize(900, 400)  # a wide, short window
    win._worker.join(30)
    qapp.processEvents()
    assert not win.running and win.frames == 1  # analysed once, by the worker thread
    pm = win.view.pixmap()
    assert abs(pm.width() / pm.height() - 360 / 640) < 0.02 and pm.height() <= win.view.height()
    win.close()


def test_the_worker_plays_a_video_in_real_time_dropping_what_it_cannot_show(qapp, tiny_model_path, face_video):
    import time
    win = build_window(tiny_model_path, str(face_video))  # 12 frames at 15 FPS: 0.8 s of video
    t = time.perf_counter()
    win._worker.join(60)
    elapsed = time.perf_counter() - t
    qapp.processEvents()
    assert elapsed >= 11 / 15 - 0.05  # never faster than the video
    assert win.frames + win.pacer.dropped == 12 and "end of video" in win.statusBar().currentMessage()
    win.close()


def test_no_display_is_one_line_that_names_the_ways_out(tmp_path):
    unset = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    env = {k: v for k, v in __import__("os").environ.items() if k not in unset}
    r = subprocess.run([sys.executable, "-m", "emo.app", "--frames", "1"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr  # not Qt's abort
    assert "QT_QPA_PLATFORM=offscreen" in r.stderr and "xvfb-run" in r.stderr


def test_faces_cropped_already_in_the_widget_and_the_app(tiny_model_path, tmp_path, qapp):
    """A dataset's 48x48 face: the detector finds nothing in it; without detection it is one face, in both demos."""
    import cv2
    import numpy as np

    from emo.model import load_model
    from emo.synthetic import draw_face
    from emo.widget import WidgetDemo
    face = cv2.cvtColor(draw_face("happy", np.random.default_rng(0)), cv2.COLOR_GRAY2BGR)
    assert len(WidgetDemo(load_model(tiny_model_path), detect=False).show_image(face)) == 1
    cv2.imwrite(str(tmp_path / "face.png"), face)
    win = build_window(tiny_model_path, str(tmp_path / "face.png"), detect=False)
    win._worker.join(30)
    qapp.processEvents()
    assert len(win.last_faces) == 1 and win.last_faces[0].box == (0, 0, 48, 48)
    win.close()
    bomb = __import__("tests.test_predict", fromlist=["png_declaring"]).png_declaring(30000, 30000)
    demo = WidgetDemo(load_model(tiny_model_path))
    assert demo.show_image(bomb) == [] and "30,000 x 30,000 pixels" in demo.status.value  # bounded before decoding
