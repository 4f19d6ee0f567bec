"""ONNX export, and an ONNX Runtime model that predicts like the PyTorch one.

    python -m emo.export                                        # results/best_model.pt -> results/best_model.onnx
    python -m emo.export results/ensemble/best_model.pt         # the ensemble as one graph
    python -m emo.export results/ensemble/best_model.pt --members   # or one file per member
    python -m emo.export results/best_model.pt --int8           # also an int8 copy (static quantisation)
    python -m emo.predict photo.jpg --runtime onnx              # any command: exported in memory at start
    python -m emo.predict photo.jpg --model results/best_model.onnx

The graph takes whole faces resized to the model's input size and normalised, ``(x / 255 - mean) / std``
(N x 1 x S x S float32; N free), applies the checkpoint's centre crop itself (each member's own, for an
ensemble) and returns class probabilities (N x C). Everything needed to use it travels in the file's
metadata: ``classes``, ``input_size``, ``normalize_mean``, ``normalize_std`` and ``crop``. ONNX Runtime
(``pip install onnxruntime``, an optional dependency) runs it; :class:`OnnxModel` wraps a session so that
``predict_proba``, ``emo.predict``, ``emo.evaluate``, the demos and the benchmark take it like a checkpoint.

``--int8`` adds ONNX Runtime's static quantisation (int8 operators, per-channel weights), calibrated on 2,048
training faces; its accuracy and speed against float32 are in ``results/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from emo.cli import HelpFormatter, add_runtime_options, refuse_to_replace, run_command, shown_path
from emo.model import DEFAULT_MODEL, Ensemble, Model, file_sha256, load_model, prepare_faces

INSTALL = "pip install onnxruntime onnx onnxscript"
OPSET = 20  # AffineGrid (the centre crop) needs 20


class Probabilities(nn.Module):
    """What the ONNX graph computes: the model's class probabilities of whole, normalised faces."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from emo.data import center_crop
        return self.model(center_crop(x, self.model.crop)).float().softmax(1)


def metadata(model: Model, source: str = "") -> dict[str, str]:
    """The preprocessing and class names that travel in an exported file (ONNX metadata is strings)."""
    meta = {"format": "emo-onnx", "classes": json.dumps(list(model.classes)), "input_size": str(model.input_size),
            "normalize_mean": repr(float(model.normalize[0])), "normalize_std": repr(float(model.normalize[1])),
            "crop": json.dumps([m.crop for m in model.members] if isinstance(model, Ensemble) else model.crop),
            "crop_in_graph": "true", "output": "probabilities"}
    if source:
        meta["source"] = source
    return meta


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ImportError(f"the ONNX path needs ONNX Runtime and onnx: {INSTALL}") from None
    return onnx, onnxruntime


def export_onnx(model: Model, out: str | Path | None = None, source: str = "") -> bytes:
    """Export ``model`` (in eval mode, on the CPU) as an ONNX graph with a free batch size; write it to ``out``
    (atomically) if given. Returns the serialised model."""
    onnx, _ = _onnx_modules()
    model = model.cpu().eval()
    x = torch.zeros(2, 1, model.input_size, model.input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Probabilities(model), (x,), None, input_names=["faces"],
                                    output_names=["probabilities"], opset_version=OPSET, dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    proto = program.model_proto
    for k, v in metadata(model, source).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save_model(proto, buf)
    data = buf.getvalue()
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    return data


class OnnxModel(nn.Module):
    """An exported model in an ONNX Runtime session, with the attributes that code which predicts reads
    (``classes``, ``input_size``, ``normalize``, ``crop``, ``meta``). ``forward`` returns log-probabilities, so
    the softmax that callers apply gives the graph's probabilities back. CPU only; ``threads`` 0 takes
    PyTorch's thread count."""

    runtime = "onnx"

    def __init__(self, source: str | Path | bytes, threads: int = 0) -> None:
        super().__init__()
        _, ort = _onnx_modules()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        what = "the exported model" if isinstance(source, bytes) else str(source)
        if not isinstance(source, bytes):
            if not Path(source).exists():
                raise FileNotFoundError(f"no ONNX model at {source}: make one with `python -m emo.export CHECKPOINT`")
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
        self.classes = tuple(json.loads(meta["classes"]))
        self.input_size = int(meta["input_size"])
        self.normalize = (float(meta["normalize_mean"]), float(meta["normalize_std"]))
        self.crop = 1.0  # the graph crops (meta["crop"] says how much)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().cpu().contiguous().numpy()
        p = self.session.run(None, {self.input_name: x})[0]
        return torch.from_numpy(p).clamp_min(1e-12).log()


def onnx_model(path: str | Path, threads: int = 0) -> OnnxModel:
    """An :class:`OnnxModel` of an ``.onnx`` file, or of a checkpoint (exported in memory, ~10 s a network)."""
    if Path(path).suffix == ".onnx":
        return OnnxModel(path, threads)
    return OnnxModel(export_onnx(load_model(path), source=str(path)), threads)


# --------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------


def quantize_int8(float_path: str | Path, out: str | Path, faces: np.ndarray, batch_size: int = 64) -> Path:
    """ONNX Runtime's static quantisation of the exported ``float_path`` (QOperator format: its int8 kernels, such
    as QLinearConv, which ran 2x faster than float32 here, where the QDQ format ran slower; per-channel weights;
    min-max ranges), calibrated
    on ``faces`` (uint8 training faces, prepared as that file's metadata says); written atomically to ``out``."""
    onnx, _ = _onnx_modules()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reference = OnnxModel(float_path)

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[torch.Tensor] = (prepare_faces(reference, faces[i:i + batch_size])
                                                    for i in range(0, len(faces), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.batches, None)
            return None if x is None else {reference.input_name: np.ascontiguousarray(x.numpy())}

    out = Path(out)
    tmp_pre, tmp = out.with_name(f".{out.name}.pre.tmp"), out.with_name(f".{out.name}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a warning per tensor whose type it infers differently
    try:
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
        onnx.save_model(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        root.setLevel(level)
        tmp_pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


def calibration_faces(n: int, dataset: str = "", seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` seeded training faces of ``dataset`` (the one a model was trained on; "": FER-2013 if imported, else
    generated) and that dataset's name."""
    from emo.data import SOURCES, imported_datasets, load_splits
    splits = load_splits(source=dataset if dataset in (*SOURCES, *imported_datasets()) else "auto")
    idx = np.random.default_rng(seed).permutation(len(splits.train))[:n]
    return splits.train.images[idx], splits.dataset


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def check_export(model: Model, exported: OnnxModel, n: int = 64) -> float:
    """Largest probability difference between ``model`` and its export on ``n`` seeded random faces."""
    from emo.model import predict_proba
    faces = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    return float(np.abs(predict_proba(model, faces) - predict_proba(exported, faces)).max())


def exported_from(path: Path) -> str | None:
    """The ``source`` an existing file of ours records (None for anything else)."""
    try:
        return OnnxModel(path).meta.get("source")
    except (ValueError, FileNotFoundError):
        return None


def run(checkpoint: str | Path, out: str | Path | None = None, members: bool = False, int8: bool = False,
        calibration: int = 2048, overwrite: bool = False) -> list[Path]:
    """Export ``checkpoint`` (a network or an ensemble) beside it, or to ``out``; returns the files written.

    A file already at an output path is replaced only with ``overwrite``, except a float32 export of this
    same checkpoint, which ``--int8`` reuses as it is."""
    _onnx_modules()
    checkpoint = Path(checkpoint)
    model = load_model(checkpoint)
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out}: an ONNX file's name ends in .onnx")
    jobs: list[tuple[Model, Path, str]] = []
    if members:
        if not isinstance(model, Ensemble):
            raise ValueError(f"--members: {shown_path(checkpoint)} is a single network, not an ensemble; drop --members")
        for k, (m, rec) in enumerate(zip(model.members, model.meta["members"]), 1):
            jobs.append((m, out.with_name(f"{out.stem}-member{k}.onnx"), f"{shown_path(checkpoint)} member {rec['path']}"))
    else:
        jobs.append((model, out, f"{shown_path(checkpoint)} (sha256 {file_sha256(checkpoint)[:12]})"))
    reuse = {p for _, p, source in jobs if int8 and not overwrite and p.exists() and exported_from(p) == source}
    for p in [p for _, p, _ in jobs if p not in reuse] + (
            [p.with_name(f"{p.stem}-int8.onnx") for _, p, _ in jobs] if int8 else []):
        refuse_to_replace(p, overwrite)
    faces = None
    if int8:
        faces, dataset = calibration_faces(calibration, model.meta.get("dataset", ""))
        print(f"int8 calibration on {len(faces):,} training faces of {dataset}")
    written = []
    for m, path, source in jobs:
        if path in reuse:
            print(f"{shown_path(path)} is {source} exported already: quantising it", flush=True)
        else:
            print(f"exporting {source} -> {shown_path(path)}", flush=True)
            export_onnx(m, path, source)
            diff = check_export(m, OnnxModel(path))
            print(f"  {path.stat().st_size / 2**20:.1f} MiB; largest probability difference from PyTorch on 64 "
                  f"faces: {diff:.1e}")
            written.append(path)
        if faces is not None:
            q = quantize_int8(path, path.with_name(f"{path.stem}-int8.onnx"), faces)
            print(f"  int8: {shown_path(q)} ({q.stat().st_size / 2**20:.1f} MiB)")
            written.append(q)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emo.export", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("checkpoint", nargs="?", default=str(DEFAULT_MODEL),
                   help="a best_model.pt, a network or an ensemble (default: results/best_model.pt)")
    p.add_argument("--out", default=None, help="the .onnx file (default: the checkpoint's path with .onnx)")
    p.add_argument("--members", action="store_true", help="an ensemble: one file per member (OUT-member<k>.onnx)")
    p.add_argument("--int8", action="store_true", help="also write OUT-int8.onnx, statically quantised")
    p.add_argument("--calibration", type=int, default=2048, help="with --int8: training faces to calibrate on")
    p.add_argument("--overwrite", action="store_true", help="replace files already at the output paths")
    add_runtime_options(p, device=False)
    a = p.parse_args(argv)
    try:
        return run_command(lambda: run(a.checkpoint, a.out, a.members, a.int8, a.calibration, a.overwrite), a.threads)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: files already at the output paths are as they were (each is written whole, then "
              "renamed); run the same command again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
