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

The graph and the ONNX Runtime model are :mod:`emo.onnx_model`'s. ``--int8`` adds ONNX Runtime's static
quantisation (int8 operators, per-channel weights), calibrated on 2,048 training faces; its accuracy and speed
against float32 are in ``results/benchmarks.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from emo import checkpoint as chk
from emo.cli import (
    add_model_option,
    add_runtime_options,
    chosen_model,
    parser,
    refuse_to_replace,
    run_command,
)
from emo.files import file_sha256, shown_path
from emo.model import Ensemble, Model, load_model, predict_proba
from emo.onnx_model import (
    OnnxModel,
    calibration_faces,
    export_onnx,
    onnx_modules,
    quantize_int8,
)

# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def check_export(model: Model, exported: OnnxModel, n: int = 64) -> float:
    """Largest probability difference between ``model`` and its export on ``n`` seeded random faces."""
    faces = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    return float(np.abs(predict_proba(model, faces) - predict_proba(exported, faces)).max())


def exported_from(path: Path) -> str | None:
    """The ``source`` an existing file of ours records (None for anything else)."""
    try:
        return OnnxModel(path).meta.get("source")
    except (ValueError, FileNotFoundError):
        return None


def export_jobs(model: Model, checkpoint: Path, out: Path, members: bool) -> list[tuple[Model, Path, str]]:
    """(network, its .onnx path, where it came from) of each file to write: one, or with ``members`` one per
    member of an ensemble."""
    if not members:
        return [(model, out, f"{shown_path(checkpoint)} (sha256 {file_sha256(checkpoint)[:12]})")]
    if not isinstance(model, Ensemble):
        raise ValueError(f"--members: {shown_path(checkpoint)} is a single network, not an ensemble; drop --members")
    return [(m, out.with_name(f"{out.stem}-member{k}.onnx"), f"{shown_path(checkpoint)} member {rec['path']}")
            for k, (m, rec) in enumerate(zip(model.members, model.meta["members"]), 1)]


def write_job(model: Model, path: Path, source: str, exported: bool, faces: np.ndarray | None) -> list[Path]:
    """Export ``model`` to ``path`` (unless it is ``exported`` there already) and check it against PyTorch; with
    calibration ``faces``, quantise it beside it. Returns the files written."""
    written = []
    if exported:
        print(f"{shown_path(path)} is {source} exported already: quantising it", flush=True)
    else:
        print(f"exporting {source} -> {shown_path(path)}", flush=True)
        export_onnx(model, path, source)
        diff = check_export(model, OnnxModel(path))
        print(f"  {path.stat().st_size / 2**20:.1f} MiB; largest probability difference from PyTorch on 64 "
              f"faces: {diff:.1e}")
        written.append(path)
    if faces is not None:
        q = quantize_int8(path, path.with_name(f"{path.stem}-int8.onnx"), faces)
        print(f"  int8: {shown_path(q)} ({q.stat().st_size / 2**20:.1f} MiB)")
        written.append(q)
    return written


def run(checkpoint: str | Path, out: str | Path | None = None, members: bool = False, int8: bool = False,
        calibration: int = 2048, overwrite: bool = False) -> list[Path]:
    """Export ``checkpoint`` (a network or an ensemble) beside it, or to ``out``; returns the files written.

    A file already at an output path is replaced only with ``overwrite``, except a float32 export of this
    same checkpoint, which ``--int8`` reuses as it is."""
    onnx_modules()
    if int8 and calibration < 1:
        raise ValueError(f"--calibration {calibration}: int8 calibration needs training faces (2048 chose best)")
    checkpoint = chk.model_path(checkpoint)
    model = load_model(checkpoint)
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out}: an ONNX file's name ends in .onnx")
    jobs = export_jobs(model, checkpoint, out, members)
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
        written += write_job(m, path, source, path in reuse, faces)
    return written


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.export", __doc__)
    add_model_option(p, positional=True, help="the model to export: a shipped model's name (default, ensemble) or a "
                     "best_model.pt, a network or an ensemble")
    p.add_argument("--out", default=None, help="the .onnx file (default: the checkpoint's path with .onnx)")
    p.add_argument("--members", action="store_true", help="an ensemble: one file per member (OUT-member<k>.onnx)")
    p.add_argument("--int8", action="store_true", help="also write OUT-int8.onnx, statically quantised")
    p.add_argument("--calibration", type=int, default=2048, help="with --int8: training faces to calibrate on")
    p.add_argument("--overwrite", action="store_true", help="replace files already at the output paths")
    add_runtime_options(p, device=False)
    a = p.parse_args(argv)
    try:
        return run_command(lambda: run(chosen_model(a), a.out, a.members, a.int8, a.calibration, a.overwrite),
                           a.threads, interrupt=False)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: files already at the output paths are as they were (each is written whole, then "
              "renamed); run the same command again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
