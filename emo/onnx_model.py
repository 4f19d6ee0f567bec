"""ONNX: export a model as one graph, and run such a graph with ONNX Runtime like the PyTorch model.

The graph takes whole faces resized to the model's input size and normalised, ``(x / 255 - mean) / std``
(N x 1 x S x S float32; N free), applies the checkpoint's centre crop itself (each member's own, for an
ensemble) and returns class probabilities (N x C). What is needed to use it travels in the file's metadata:
``classes``, ``input_size``, ``normalize_mean``, ``normalize_std`` and ``crop``. ONNX Runtime (``pip install
onnxruntime``, an optional dependency) runs it; :class:`OnnxModel` wraps a session so that ``predict_proba``,
``emo.predict``, ``emo.evaluate``, the demos and the benchmark take it like a checkpoint.
The command line is :mod:`emo.export`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from emo.datasets import SOURCES, imported_datasets
from emo.files import check_size, limit_from_env, write_bytes
from emo.preprocess import Preprocessing, center_crop, preprocessing_of
from emo.splits import load_splits

#: The largest .onnx file read, in MB (the limit checkpoints have).
MAX_ONNX_MB = limit_from_env("EMO_MAX_CHECKPOINT_MB", 512)

INSTALL = "pip install onnxruntime onnx onnxscript"
OPSET = 20  # AffineGrid (the centre crop) needs 20


class Probabilities(nn.Module):
    """What the ONNX graph computes: the model's class probabilities of whole, normalised faces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(center_crop(x, preprocessing_of(self.model).crop)).float().softmax(1)


def metadata(model: nn.Module, source: str = "") -> dict[str, str]:
    """The preprocessing and class names that travel in an exported file (ONNX metadata is strings)."""
    pre = preprocessing_of(model)
    members = getattr(model, "members", None)
    meta = {"format": "emo-onnx", "classes": json.dumps(list(model.classes)), "input_size": str(pre.input_size),
            "normalize_mean": repr(pre.mean), "normalize_std": repr(pre.std),
            "crop": json.dumps([preprocessing_of(m).crop for m in members] if members is not None else pre.crop),
            "crop_in_graph": "true", "output": "probabilities"}
    if source:
        meta["source"] = source
    return meta


def onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ImportError(f"the ONNX path needs ONNX Runtime and onnx: {INSTALL}") from None
    return onnx, onnxruntime


def export_onnx(model: nn.Module, out: str | Path | None = None, source: str = "") -> bytes:
    """Export ``model`` (in eval mode, on the CPU) as an ONNX graph with a free batch size; write it to ``out``
    (atomically) if given. Returns the serialised model."""
    onnx, _ = onnx_modules()
    model = model.cpu().eval()
    x = torch.zeros(2, 1, model.input_size, model.input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Probabilities(model), (x,), None, input_names=["faces"],
                                    output_names=["probabilities"], opset_version=OPSET, dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    proto = program.model_proto
    for k, v in metadata(model, source).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    data = proto.SerializeToString()
    if out is not None:
        write_bytes(out, data)
    return data


class OnnxModel(nn.Module):
    """An exported model in an ONNX Runtime session, with the attributes that code which predicts reads
    (``classes``, ``input_size``, ``preprocess``, ``meta``). ``forward`` returns log-probabilities, so
    the softmax that callers apply gives the graph's probabilities back. CPU only; ``threads`` 0 takes
    PyTorch's thread count."""

    runtime = "onnx"

    def __init__(self, source: str | Path | bytes, threads: int = 0) -> None:
        super().__init__()
        _, ort = onnx_modules()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        what = "the exported model" if isinstance(source, bytes) else str(source)
        if not isinstance(source, bytes):
            if not Path(source).exists():
                raise FileNotFoundError(f"no ONNX model at {source}: make one with `python -m emo.export CHECKPOINT`")
            check_size(source, MAX_ONNX_MB, "ONNX model", "EMO_MAX_CHECKPOINT_MB")  # (a FIFO or a huge file: refused)
            source = str(source)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types for damaged or foreign files
            raise ValueError(f"{what} is not a readable ONNX model ({type(e).__name__}): "
                             "export one with `python -m emo.export CHECKPOINT`") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != "emo-onnx":
            raise ValueError(f"{what} is an ONNX model but not one `python -m emo.export` wrote (no emo metadata): "
                             "export the checkpoint with it")
        self.meta: dict[str, Any] = dict(meta)
        try:
            classes = json.loads(meta["classes"])
            if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
                raise ValueError("classes")
            self.classes = tuple(classes)
            self.input_size = int(meta["input_size"])
            # the graph crops (meta["crop"] says how much), so the faces it takes are whole
            self.preprocess = Preprocessing(self.input_size, float(meta["normalize_mean"]),
                                            float(meta["normalize_std"]))
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{what}'s emo metadata is damaged ({type(e).__name__}: {e}): export the checkpoint "
                             "again with `python -m emo.export`") from None
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().cpu().contiguous().numpy()
        p = self.session.run(None, {self.input_name: x})[0]
        return torch.from_numpy(p).clamp_min(1e-12).log()


def onnx_model(source: str | Path | nn.Module, threads: int = 0, name: str = "") -> OnnxModel:
    """An :class:`OnnxModel` of an ``.onnx`` file, or of a loaded PyTorch model (exported in memory, ~10 s a
    network; ``name`` is recorded as its source)."""
    if isinstance(source, nn.Module):
        return OnnxModel(export_onnx(source, source=name), threads)
    return OnnxModel(source, threads)


# --------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------


def quantize_int8(float_path: str | Path, out: str | Path, faces: np.ndarray, batch_size: int = 64) -> Path:
    """ONNX Runtime's static quantisation of the exported ``float_path`` (QOperator format: its int8 kernels, such
    as QLinearConv, which ran 2x faster than float32 here, where the QDQ format ran slower; per-channel weights;
    min-max ranges), calibrated on ``faces`` (uint8 training faces, prepared as that file's metadata says); written
    atomically to ``out``."""
    onnx, _ = onnx_modules()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reference = OnnxModel(float_path)

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[torch.Tensor] = (reference.preprocess(faces[i:i + batch_size])
                                                    for i in range(0, len(faces), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.batches, None)
            return None if x is None else {reference.input_name: np.ascontiguousarray(x.numpy())}

    out = Path(out)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a warning per tensor whose type it infers differently
    try:  # the quantiser writes files by name: it works in a temporary folder; the result is written atomically
        with tempfile.TemporaryDirectory(prefix=".emo-quantise-", dir=out.parent) as work:
            tmp_pre, tmp = Path(work) / "pre.onnx", Path(work) / "int8.onnx"
            quant_pre_process(str(float_path), str(tmp_pre), skip_symbolic_shape=True)
            quantize_static(str(tmp_pre), str(tmp), Faces(), quant_format=QuantFormat.QOperator, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            proto = onnx.load(str(tmp))
            kept = {p.key for p in proto.metadata_props}
            for p in onnx.load(str(float_path)).metadata_props:
                if p.key not in kept:
                    entry = proto.metadata_props.add()
                    entry.key, entry.value = p.key, p.value
            entry = proto.metadata_props.add()
            entry.key, entry.value = "int8", (f"static, QOperator, per-channel weights, calibrated on {len(faces)} "
                                              "training faces")
            write_bytes(out, proto.SerializeToString())
    finally:
        root.setLevel(level)
    return out


def calibration_faces(n: int, dataset: str = "", seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` seeded training faces of ``dataset`` (the one a model was trained on; "": FER-2013 if imported, else
    generated) and that dataset's name."""
    splits = load_splits(source=dataset if dataset in (*SOURCES, *imported_datasets()) else "auto")
    idx = np.random.default_rng(seed).permutation(len(splits.train))[:n]
    return splits.train.images[idx], splits.dataset
