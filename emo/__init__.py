"""Mini-Xception-Emo: real-time facial-expression recognition in PyTorch.

    from emo import load_model, predict_proba
    model = load_model()                      # results/best_model.pt, eval mode
    probs = predict_proba(model, faces)       # uint8 N x H x W -> N x len(model.classes)
"""

from emo.model import DEFAULT_MODEL, Ensemble, MiniXception, ModelConfig, build_model, load_model, predict_proba


def quick_mode() -> bool:
    """True under test (``EMO_QUICK=1``, set by the test suite): notebooks then train briefly and say so."""
    import os
    return os.environ.get("EMO_QUICK") == "1"


__all__ = ["quick_mode", "DEFAULT_MODEL", "Ensemble", "MiniXception", "ModelConfig", "build_model", "load_model", "predict_proba"]
__version__ = "0.1.0"
