"""Shared fixtures: generated faces, a tiny trained checkpoint, offscreen Qt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(min(2, torch.get_num_threads()))

from emo.datasets import make_synthetic  # noqa: E402
from emo.network import ModelConfig  # noqa: E402
from emo.splits import make_splits  # noqa: E402
from emo.train import (
    TrainConfig,  # noqa: E402
    make_trainer,  # noqa: E402
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = ROOT / "results" / "best_model.pt"
TINY = ModelConfig(input_size=48, stem_channels=16, widths=(16, 32, 64, 64, 64), downsample="stride", se_reduction=4)


def tiny_config(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=32, lr=3e-3, source="synthetic", model=TINY.to_dict())
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def synthetic():
    return make_synthetic()


@pytest.fixture(scope="session")
def synthetic_splits(synthetic):
    return make_splits(synthetic)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synthetic_splits):
    """A tiny model trained for a few epochs on the generated faces, its inference settings then tuned on
    validation as the command line does: (output folder, trainer)."""
    out = tmp_path_factory.mktemp("tiny_run")
    trainer = make_trainer(tiny_config(epochs=3), out, "cpu", splits=synthetic_splits, progress=False, tune=True)
    trainer.fit()
    return out, trainer


@pytest.fixture(scope="session")
def tiny_model_path(tiny_run):
    return tiny_run[0] / "best_model.pt"


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """A 640x480 video of a real photo (scikit-image's astronaut) drifting across the frame."""
    from emo.video import sample_photo, write_test_video
    return write_test_video(tmp_path_factory.mktemp("video") / "face.avi", sample_photo(), frames=12)
