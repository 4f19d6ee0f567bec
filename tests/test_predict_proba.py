"""predict_proba takes faces in the forms users have them: each gives one row per face, or a one-line error.

Property-based (hypothesis): arrays of many shapes, layouts and dtypes are built from a known number of faces,
and the number of rows must be that number; shapes that have no face reading must be refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emo.model import predict_proba
from emo.network import ModelConfig, build_model
from emo.preprocess import MIN_FACE_SIDE

NET = build_model(ModelConfig(input_size=48, stem_channels=8, widths=(8, 8, 16), strides=(2, 2, 2), se_reduction=4),
                  classes=("a", "b", "c"))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pixels(shape, dtype, rng):
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype) * rng.choice([1.0, 255.0])
    return rng.integers(0, 256, shape).astype(dtype)


@st.composite
def faces(draw):
    """(what a user passes, how many faces it holds)."""
    n = draw(st.integers(1, 4))
    h, w = draw(st.integers(MIN_FACE_SIDE, 70)), draw(st.integers(MIN_FACE_SIDE, 70))
    layout = draw(st.sampled_from(["gray", "bgr", "bgra", "gray1", "torch_nchw", "torch_gray", "list_sizes"]))
    dtype = draw(st.sampled_from([np.uint8, np.int32, np.float32, np.float64, np.uint16]))
    single = draw(st.booleans()) and layout in ("gray", "bgr", "bgra", "gray1")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if layout == "list_sizes":
        return [pixels((h + k, w, 3) if k % 2 else (h, w + k), dtype, rng) for k in range(n)], n
    channels = {"gray": (), "bgr": (3,), "bgra": (4,), "gray1": (1,)}
    if layout in channels:
        a = pixels((n, h, w, *channels[layout]), dtype, rng)
        if draw(st.booleans()):
            a = a[:, :, ::-1]  # a mirrored view: negative strides
        return (a[0], 1) if single else (a, n)
    if dtype == np.uint16:
        dtype = np.int32  # (torch has no uint16 for every op)
    c = 3 if layout == "torch_nchw" else 1
    return torch.from_numpy(pixels((n, c, h, w), dtype, rng)), n


@SETTINGS
@given(faces())
def test_every_accepted_form_gives_one_row_per_face(case):
    given_faces, n = case
    p = predict_proba(NET, given_faces)
    assert p.shape == (n, 3) and np.isfinite(p).all() and np.allclose(p.sum(1), 1, atol=1e-5)


@st.composite
def not_faces(draw):
    """Arrays with no reading as faces: too few or too many dimensions, sides below MIN_FACE_SIDE, channels
    that are not 1, 3 or 4, values outside 0-255, booleans, strings."""
    kind = draw(st.sampled_from(["ndim", "small", "channels", "range", "dtype"]))
    if kind == "ndim":
        return np.zeros(draw(st.sampled_from([(), (48,), (2, 2, 48, 48, 3), (1, 1, 1, 48, 48, 3)])), np.uint8)
    if kind == "small":
        side = draw(st.integers(1, MIN_FACE_SIDE - 1))
        return np.zeros(draw(st.sampled_from([(5, 48, 3), (4, side, 48), (2, 48, side), (side, side)])), np.uint8)
    if kind == "channels":
        return np.zeros((2, 48, 48, draw(st.sampled_from([2, 5, 7]))), np.uint8)
    if kind == "range":
        return np.full((1, 48, 48), draw(st.sampled_from([-1.0, 256.0, np.nan, np.inf])), np.float32)
    return np.zeros((1, 48, 48), draw(st.sampled_from([bool, "U3", object])))


@SETTINGS
@given(not_faces())
def test_what_holds_no_face_is_refused_in_one_line(bad):
    with pytest.raises(ValueError) as e:
        predict_proba(NET, bad)
    assert "\n" not in str(e.value) and str(e.value)


def test_shapes_that_were_misread_before():
    """The cases that returned silently wrong row counts: a BGRA face (48 rows), a torch CHW tensor (3 rows),
    a (5, 48, 3) array; and a mirrored view that torch refused."""
    face = np.random.default_rng(0).integers(0, 256, (48, 48, 3)).astype(np.uint8)
    assert predict_proba(NET, np.dstack([face, np.full((48, 48), 255, np.uint8)])).shape == (1, 3)
    with pytest.raises(ValueError, match="ambiguous"):
        predict_proba(NET, torch.zeros(3, 48, 48))
    assert predict_proba(NET, torch.zeros(1, 3, 48, 48)).shape == (1, 3)
    with pytest.raises(ValueError, match="at least 8 x 8"):
        predict_proba(NET, np.zeros((5, 48, 3), np.uint8))
    assert np.allclose(predict_proba(NET, face[:, ::-1]), predict_proba(NET, face[:, ::-1].copy()))
    with pytest.raises(ValueError, match="batch_size"):
        predict_proba(NET, face, batch_size=0)
