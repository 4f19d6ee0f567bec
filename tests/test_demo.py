import cv2
import torch

from emo.model import load_model
from emo.pipeline import faces_html
from emo.video import sample_photo
from emo.widget import WidgetDemo


def test_widget_demo_plays_a_video_to_the_end(tiny_model_path, face_video):
    demo = WidgetDemo(load_model(tiny_model_path), source=str(face_video), max_fps=0)
    assert demo.start()
    demo.wait(60)
    assert not demo.running and demo.frames == 12
    assert demo.image.value[:2] == b"\xff\xd8"  # a JPEG frame was pushed to the widget
    assert demo.status.value == "end of video after 12 frames"
    assert demo.probs.value.startswith(f"<b>{demo.faces[0].track}: ") and not demo.start_button.disabled
    threads = torch.get_num_threads()
    assert demo.start()  # played again: counted from the start, PyTorch's threads as they were
    demo.wait(60)
    assert demo.status.value == "end of video after 12 frames" and torch.get_num_threads() == threads


def test_stop_button_stops_the_thread(tiny_model_path, tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), sample_photo())
    demo = WidgetDemo(load_model(tiny_model_path), source=str(path))
    demo.start_button.click()
    demo.wait(30)
    assert demo.frames == 1
    demo.stop_button.click()
    assert not demo.running and demo.status.value == "stopped"


def test_uploaded_photo_and_bad_input(tiny_model_path):
    demo = WidgetDemo(load_model(tiny_model_path))
    faces = demo.show_image(cv2.imencode(".jpg", sample_photo())[1].tobytes())
    assert len(faces) == 1 and demo.status.value == "photo: 1 face(s)"
    assert demo.show_image(b"not an image") == [] and "not an image" in demo.status.value
    assert demo.image.value  # the photo is shown ...
    assert not demo.start("/no/such/video.mp4") and "does not exist" in demo.status.value
    assert not demo.image.value and demo.faces == []  # ... and not left showing after a source that failed
    assert "--source" not in demo.status.value and "source box" in demo.status.value  # notebook terms


def test_a_photo_typed_as_the_source_says_photo_and_a_portrait_frame_fits_the_view(tiny_model_path, tmp_path):
    demo = WidgetDemo(load_model(tiny_model_path), max_fps=0)
    path = tmp_path / "portrait.jpg"
    photo = sample_photo()
    cv2.imwrite(str(path), cv2.resize(photo, (360, 640)))  # taller than wide, as a phone's video
    assert demo.start(str(path))
    demo.wait()
    assert demo.status.value.startswith("photo: ") and "FPS" not in demo.status.value
    assert (demo.image.layout.width, demo.image.layout.height) == ("auto", "480px")  # fits 480 pixels high
    demo.show_image(cv2.resize(photo, (640, 360)))  # a wide photo: 640 pixels wide (at most 480 high)
    assert (demo.image.layout.width, demo.image.layout.height) == ("640px", "auto")
    assert faces_html([]) == "<i>no face found</i>"


def test_a_video_plays_at_its_own_rate_in_the_widget(tiny_model_path, face_video):
    import time
    demo = WidgetDemo(load_model(tiny_model_path), source=str(face_video))  # 12 frames at 15 FPS
    t = time.perf_counter()
    assert demo.start()
    demo.wait(60)
    assert time.perf_counter() - t >= 11 / 15 - 0.05 and demo.status.value.startswith("end of video after")
    assert demo.image.layout.height == "auto"  # the frame keeps its aspect ratio beside a tall panel
