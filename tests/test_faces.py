import cv2
import numpy as np
import pytest

from emo import mtcnn
from emo.faces import HaarDetector, YuNetDetector, crop_faces, outermost
from emo.model import load_model
from emo.mtcnn import default_detector
from emo.pipeline import EmotionPipeline
from emo.video import FpsMeter, FrameSource, SourceError, sample_photo
from tests.conftest import SHIPPED_MODEL

# Where the one face of scikit-image's astronaut photo is (x, y, w, h), by eye.
ASTRONAUT_FACE = (175, 65, 95, 95)


def _iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_haar_finds_the_one_real_face():
    boxes = HaarDetector()(cv2.cvtColor(sample_photo(), cv2.COLOR_BGR2GRAY))
    assert len(boxes) == 1 and _iou(boxes[0], ASTRONAUT_FACE) > 0.7


def test_no_face_in_a_blank_frame():
    assert len(HaarDetector()(np.full((480, 640), 128, np.uint8))) == 0


def test_crop_faces_grows_the_box_and_pads_with_edge_pixels_where_it_leaves_the_frame():
    gray = np.tile(np.arange(100, dtype=np.uint8), (100, 1)) + np.arange(100, dtype=np.uint8)[:, None]  # x + y
    # a box in the corner: grown by a quarter of its side each way, it starts 10 pixels outside the frame
    corner = crop_faces(gray, np.array([[0, 0, 40, 40]]), 60, margin=0.25)[0]  # 60 = its grown side: no resampling
    inside = np.arange(50, dtype=np.int32)
    assert np.array_equal(corner[10:, 10:], inside[:, None] + inside[None, :])  # the frame's pixels, in place
    assert np.array_equal(corner[:10, 10:], np.tile(inside, (10, 1)))  # above the frame: its top row repeated
    assert np.array_equal(corner[10:, :10], np.tile(inside[:, None], (1, 10)))  # left of it: its first column
    assert (corner[:10, :10] == 0).all()
    # a box inside the frame is cut around its centre, grown by the margin, nothing padded
    middle = crop_faces(gray, np.array([[30, 30, 20, 20]]), 30, margin=0.25)[0]
    assert np.array_equal(middle, gray[25:55, 25:55])
    # resized to the network's input, as many crops as boxes
    assert crop_faces(gray, np.array([[0, 0, 40, 40], [30, 30, 20, 20]]), 48).shape == (2, 48, 48)
    assert crop_faces(gray, np.zeros((0, 4), int), 48).shape == (0, 48, 48)


def test_pipeline_annotates_every_face(tiny_model_path):
    pipe = EmotionPipeline(load_model(tiny_model_path))
    img = sample_photo()
    annotated, faces = pipe(img)
    assert len(faces) == 1
    f = faces[0]
    assert f.label in pipe.model.classes and np.isclose(f.probs.sum(), 1, atol=1e-4)
    x, y, w, h = f.box
    assert annotated.shape[0] == img.shape[0] and annotated.shape[1] > img.shape[1]  # the bars in a panel beside
    assert not np.array_equal(annotated[:, :img.shape[1]], img)
    assert (annotated[y + h // 2, x] == (0, 220, 0)).all()  # the green box is drawn around the face
    assert pipe.draw(img, []).shape == annotated.shape  # the same size with or without faces (a video's frames)


def test_a_label_never_covers_another_face_and_the_panel_says_how_many_did_not_fit():
    from emo.pipeline import Face, label_place, probability_panel
    upper, lower = (100, 40, 80, 80), (100, 125, 80, 80)  # one face just above the other
    size = (90, 24)
    for box, other in ((lower, upper), (upper, lower)):
        lx, ty = label_place((480, 640), box, size, [other])
        top, bottom = ty - size[1], ty + size[1] // 3
        ox, oy, ow, oh = other
        assert not (lx < ox + ow and ox < lx + size[0] and top < oy + oh and oy < bottom)
    faces = [Face((0, 0, 10, 10), np.full(7, 1 / 7), tuple("abcdefg"), k) for k in range(1, 6)]
    full = probability_panel(700, faces)
    cut = probability_panel(200, faces)  # room for one face's bars: the rest are counted, not drawn over
    assert full.shape[0] == 700 and cut.shape[0] == 200
    assert (cut[-12:] > 100).any() and not (full[-12:] > 100).any()  # "+N more" at the bottom only where cut


def test_temporal_smoothing_blends_with_the_previous_frame(tiny_model_path):
    m = load_model(tiny_model_path)
    img = sample_photo()
    raw = EmotionPipeline(m, smoothing=0.0).detect(img)[0].probs
    pipe = EmotionPipeline(m, smoothing=0.5)
    first = pipe.detect(img)[0]
    assert np.allclose(first.probs, raw, atol=1e-6)  # (nothing to blend with in a track's first frame)
    sure = np.eye(7, dtype=np.float32)[0]
    pipe._previous[first.track] = sure  # pretend the track's last frame was sure of class 0
    second = pipe.detect(img)[0]
    assert second.track == first.track
    assert np.allclose(second.probs, 0.5 * sure + 0.5 * raw, atol=1e-5)
    pipe.reset()
    assert np.allclose(pipe.detect(img)[0].probs, raw, atol=1e-6)
    with pytest.raises(ValueError, match="smoothing=1"):
        EmotionPipeline(m, smoothing=1)


@pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason="no shipped model in results/")
def test_shipped_model_sees_the_astronaut_smile():
    _, faces = EmotionPipeline(load_model(SHIPPED_MODEL))(sample_photo())
    assert [f.label for f in faces] == ["happy"]


def test_frame_sources(face_video, tmp_path):
    with FrameSource(face_video) as src:
        frames = list(src)
    assert src.kind == "video" and len(frames) == 12 and frames[0].shape == (480, 640, 3)
    cv2.imwrite(str(tmp_path / "a.png"), sample_photo())
    img = FrameSource(tmp_path / "a.png")
    assert img.kind == "image" and img.read().shape == (512, 512, 3) and img.read() is not None  # never ends
    with pytest.raises(SourceError, match="does not exist"):
        FrameSource(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    with pytest.raises(SourceError, match="not a readable video"):
        FrameSource(tmp_path / "bad.mp4")
    with pytest.raises(SourceError, match="no camera 7"):
        FrameSource(7)


def test_yunet_needs_its_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="YuNet"):
        YuNetDetector(tmp_path / "missing.onnx")


def test_fps_meter():
    m = FpsMeter()
    assert m.fps == 0.0
    m.times = [0.0, 0.5, 1.0]
    assert m.fps == pytest.approx(2.0)


def test_a_face_gets_one_box_where_the_cascade_returns_a_second_one_inside_it():
    face, inner, neighbour = [100, 100, 120, 120], [130, 140, 50, 50], [260, 100, 110, 110]
    kept = outermost(np.array([inner, face, neighbour]))
    assert kept.tolist() == [1, 2]  # the larger box stays, in the order given; a neighbour stays
    touching = [200, 100, 120, 120]  # overlapping a fifth of its area: another face, kept
    assert len(outermost(np.array([face, touching]))) == 2
    assert outermost(np.zeros((0, 4), int)).shape == (0,)


def test_haar_looks_for_faces_relative_to_the_frame_not_in_pixels():
    photo = cv2.cvtColor(sample_photo(), cv2.COLOR_BGR2GRAY)
    small = HaarDetector()(photo)
    large = HaarDetector()(cv2.resize(photo, (2048, 2048), interpolation=cv2.INTER_CUBIC))  # 4x the pixels a side
    assert len(small) == len(large) == 1
    assert _iou(large[0] / 4, small[0]) > 0.8  # the same face, though the frame was shrunk to 1/4 first
    assert len(HaarDetector(min_face=0.3)(photo)) == 0  # the face is 0.19 of the side: smaller than asked for
    with pytest.raises(ValueError, match="min_face=2"):
        HaarDetector(min_face=2)


def _turned(image, angle):
    h, w = image.shape[:2]
    return cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h),
                          borderMode=cv2.BORDER_REPLICATE)


def test_crop_faces_turns_a_tilted_face_upright():
    gray = cv2.cvtColor(sample_photo(), cv2.COLOR_BGR2GRAY)
    box = np.array([ASTRONAUT_FACE])
    upright = crop_faces(gray, box, 64).astype(float)
    tilted = _turned(gray, 25)  # about the photo's centre; the face's centre moves with it
    cx, cy = ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2] / 2, ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3] / 2
    m = cv2.getRotationMatrix2D((256, 256), 25, 1.0)
    nx, ny = m @ [cx, cy, 1]
    moved = np.array([[round(nx - 47.5), round(ny - 47.5), 95, 95]])
    as_is = crop_faces(tilted, moved, 64).astype(float)
    leveled = crop_faces(tilted, moved, 64, angles=np.array([-25.0])).astype(float)
    corr = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]  # noqa: E731
    assert corr(leveled, upright) > 0.95 > corr(as_is, upright) + 0.1
    assert np.array_equal(crop_faces(gray, box, 64, angles=np.array([2.0])), crop_faces(gray, box, 64))  # < MIN_ROLL


needs_mtcnn = pytest.mark.skipif(not mtcnn.available(), reason=f"MTCNN not installed: {mtcnn.INSTALL}")


@needs_mtcnn
def test_mtcnn_finds_the_face_framed_as_fer2013_and_how_far_it_is_turned():
    photo = sample_photo()
    boxes, angles = mtcnn.MTCNNDetector().locate(photo)
    assert len(boxes) == 1 and _iou(boxes[0], ASTRONAUT_FACE) > 0.6 and boxes[0][2] == boxes[0][3]
    assert abs(angles[0]) < 8
    _, turned = mtcnn.MTCNNDetector().locate(_turned(photo, 20))  # counter-clockwise on screen
    assert len(turned) == 1 and turned[0] == pytest.approx(angles[0] - 20, abs=5)
    assert len(mtcnn.MTCNNDetector()(np.full((480, 640, 3), 128, np.uint8))) == 0
    assert len(mtcnn.MTCNNDetector(min_face=0.3)(photo)) == 0  # the face is 0.19 of the side: smaller than asked
    for tiny in [(1, 1, 3), (10, 10, 3), (3, 3), (11, 5000, 3)]:  # smaller than any face it can find: none
        assert len(mtcnn.MTCNNDetector()(np.zeros(tiny, np.uint8))) == 0
    assert isinstance(default_detector(), mtcnn.MTCNNDetector)


def test_the_demos_and_predict_find_the_same_faces_in_a_large_frame_with_small_faces(tiny_model_path, tmp_path):
    from emo.pipeline import live_pipeline
    x, y, w, h = ASTRONAUT_FACE
    face = sample_photo()[y - 30:y + h + 40, x - 30:x + w + 30]  # the face and a little around it
    frame = np.full((1400, 2000, 3), 90, np.uint8)
    spots = [(150, 300), (900, 800), (1600, 200)]
    for sx, sy in spots:  # three faces of about 115 pixels: 0.08 of the frame's height
        frame[sy:sy + face.shape[0], sx:sx + face.shape[1]] = face
    cv2.imwrite(str(tmp_path / "group.png"), frame)
    model = load_model(tiny_model_path)
    predict_faces = EmotionPipeline(model).detect(FrameSource(tmp_path / "group.png", size=None).read())  # emo.predict
    live = live_pipeline(model)  # what the app and the widget run, on the frames their source gives
    live_faces = live.detect(FrameSource(tmp_path / "group.png").read())
    assert len(predict_faces) == 3
    assert [f.box for f in live_faces] == [f.box for f in predict_faces]
    assert np.allclose([f.probs for f in live_faces], [f.probs for f in predict_faces])
    # the live demos detect every few frames: the frames between reuse the boxes, then the detector runs again
    calls = []
    detector = live.detector
    live.detector = lambda image: calls.append(1) or detector(image)
    for _ in range(2 * live.detect_every):
        assert [f.box for f in live.detect(frame)] == [f.box for f in predict_faces]
    assert len(calls) == 2
