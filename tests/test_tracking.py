"""Track numbers follow each face through a video (emo.tracking), in the pipeline the demos and emo.predict share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emo.tracking import Tracker, iou_matrix


def test_two_people_keep_their_numbers_while_they_move_in_whatever_order_the_detector_lists_them():
    t = Tracker()
    a, b = np.array([10, 50, 60, 60]), np.array([300, 40, 70, 70])
    assert t.update(np.stack([b, a])) == [2, 1]  # new faces numbered left to right
    for step in range(1, 30):
        shift = np.array([3 * step, step, 0, 0])
        boxes = [a + shift, b - shift]
        order = [1, 0] if step % 2 else [0, 1]
        assert t.update(np.stack([boxes[k] for k in order])) == [[1, 2][k] for k in order]


def test_a_face_missed_for_a_few_frames_keeps_its_number_and_one_gone_longer_gets_a_new_one():
    t = Tracker(patience=3)
    face = np.array([[100, 100, 80, 80]])
    assert t.update(face) == [1]
    for _ in range(3):
        assert t.update(np.zeros((0, 4))) == []
    assert t.update(face) == [1]
    for _ in range(4):
        t.update(np.zeros((0, 4)))
    assert t.update(face) == [2]
    t.reset()
    assert t.update(face) == [1]


def test_a_box_that_overlaps_too_little_starts_a_new_track():
    t = Tracker(min_iou=0.3)
    t.update(np.array([[0, 0, 100, 100]]))
    assert t.update(np.array([[80, 0, 100, 100]])) == [2]  # IoU 20 / 180 = 0.11
    with pytest.raises(ValueError, match="min_iou=0"):
        Tracker(min_iou=0)


boxes = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500), st.integers(1, 200), st.integers(1, 200)),
                 min_size=0, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=8))
def test_within_a_frame_no_two_faces_share_a_number(frames):
    t = Tracker()
    for frame in frames:
        numbers = t.update(np.array(frame, float).reshape(-1, 4))
        assert len(numbers) == len(frame) and len(set(numbers)) == len(numbers) and all(n >= 1 for n in numbers)


@settings(max_examples=60, deadline=None)
@given(boxes, boxes)
def test_iou_matrix_is_the_overlap_over_the_union_of_each_pair(a, b):
    m = iou_matrix(np.array(a, float), np.array(b, float))
    assert m.shape == (len(a), len(b))
    for i, (ax, ay, aw, ah) in enumerate(a):
        for j, (bx, by, bw, bh) in enumerate(b):
            iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
            ih = max(0, min(ay + ah, by + bh) - max(ay, by))
            assert m[i, j] == pytest.approx(iw * ih / (aw * ah + bw * bh - iw * ih))


def test_the_pipeline_numbers_the_drifting_face_of_a_video_as_one_person(face_video, tiny_model_path):
    from emo.model import load_model
    from emo.pipeline import EmotionPipeline
    from emo.video import FrameSource
    pipe = EmotionPipeline(load_model(tiny_model_path))
    with FrameSource(face_video) as src:
        tracks = [f.track for frame in src for f in pipe.detect(frame)]
    assert len(tracks) > 5 and set(tracks) == {1}
