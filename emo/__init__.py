"""Mini-Xception-Emo: real-time facial-expression recognition in PyTorch.

    from emo import load_model, predict_proba
    model = load_model()                      # results/best_model.pt, eval mode
    probs = predict_proba(model, faces)       # uint8 N x H x W -> N x len(model.classes)

The package, lowest layer first: a module imports only modules of lower layers (``tests/test_layout.py``
holds the exact order and checks it). The course's core, what the lessons teach and what it needs to run:

- ``files``: paths and the one atomic writer;   ``network``: Mini-Xception, a pure ``nn.Module`` (lesson 02);
- ``preprocess``: how a face becomes the network's input;   ``synthetic``, ``datasets``, ``importers``,
  ``splits``, ``augment``: data (lesson 01);   ``losses`` (lesson 03);   ``hooks``: the extension rule;
  ``faces``: detection and crops (lesson 05);
- ``checkpoint``: one schema, save, read;   ``onnx_model``: the ONNX Runtime path;   ``model``: ``load_model``,
  ``predict_proba``, ensembles;   ``evaluation``: scores (lesson 04);
- ``distributed``, ``recipe``, ``trainer``: training (lesson 03);   ``pipeline``, ``video``: the demos' frame
  pipeline;   ``plots``, ``saliency``: figures and Grad-CAM.

The tools on top, through the hook rule of :mod:`emo.hooks` where they touch training: ``finetune``
(``--init``), ``swa``, ``distill``, ``inference_search``, ``soup``, ``ensemble``, ``peers``, ``bench``,
``ablation``. The commands and apps: ``train``, ``evaluate``, ``predict``, ``data``, ``export``, ``app``,
``widget``, ``nbclean``, with ``cli`` (what they share).
"""

import os

from emo.model import DEFAULT_MODEL, Ensemble, load_model, predict_proba
from emo.network import MiniXception, ModelConfig, build_model


def quick_mode() -> bool:
    """True under test (``EMO_QUICK=1``, set by the test suite): notebooks then train briefly and say so."""
    return os.environ.get("EMO_QUICK") == "1"


__all__ = ["quick_mode", "DEFAULT_MODEL", "Ensemble", "MiniXception", "ModelConfig", "build_model", "load_model",
           "predict_proba"]
__version__ = "0.1.0"
