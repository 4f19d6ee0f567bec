import numpy as np

from emo.model import load_model
from emo.preprocess import preprocessing_of, set_preprocessing
from emo.saliency import grad_cam


def test_grad_cam_maps_lie_on_the_face_and_respect_the_crop(tiny_model_path, synthetic_splits):
    m = load_model(tiny_model_path)
    faces = synthetic_splits.test.images[:6]
    set_preprocessing(m, preprocessing_of(m).with_(crop=1.0))
    whole = grad_cam(m, faces)
    assert whole.shape == faces.shape and whole.min() >= 0 and whole.max() <= 1 + 1e-6
    # with a centre crop the network never saw the border: the map is zero there, and lives inside
    set_preprocessing(m, preprocessing_of(m).with_(crop=0.7))
    cams = grad_cam(m, faces, class_index=np.zeros(6, int))
    border = 48 * 0.15 - 1  # 7.2 px each side lie outside the central 70%
    ring = np.ones((48, 48), bool)
    ring[int(border) + 1:-(int(border) + 1), int(border) + 1:-(int(border) + 1)] = False
    assert cams.shape == faces.shape and np.all(cams[:, ring] == 0)
    assert cams[:, ~ring].max() > 0
