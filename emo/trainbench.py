"""Training throughput, side by side (``python -m emo.bench --train``; issue 46).

Each setting runs in a process of its own (the fast path changes process-wide allocator settings, so "as
shipped" must not share a process with it), through the trainer's own epoch loop (:class:`emo.trainer.Trainer`:
augmentation, MixUp, focal loss, AdamW, One-Cycle), on FER-2013 where imported, else on generated faces (the
speed does not depend on the pixels). Faces per second are timed over ``steps`` steps after ``warmup``; the
settings take turns, ``rounds`` times, and the median of each is reported with the load average.

    python -m emo.trainbench fast --steps 20 --warmup 3   # one setting, one JSON line (what emo.bench runs)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

try:
    import resource
except ImportError:  # (Windows)
    resource = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Setting:
    name: str  # as the table shows it
    options: dict[str, Any]  # recipe fields that differ from the shipped recipe
    allocator_only: bool = False  # the fast path's allocator setting without its dropout masks
    env: tuple[tuple[str, str], ...] = ()  # environment variables of its process


FER_TRAIN_FACES = 28709  # an epoch of FER-2013's training faces

#: What ``emo.bench --train`` compares: the recipe as it ran before the fast path, the fast path's parts added one
#: by one (the last is the default), bfloat16 autocast (not taken), and an epoch of a progressive run at 32 px.
SETTINGS = {
    "shipped": Setting("as shipped before issue 46 (--no-fast-path)", {"fast_path": False}),
    "allocator": Setting("+ freed memory kept for reuse", {"fast_path": False}, allocator_only=True),
    "masks": Setting("+ 16-bit dropout masks", {}, env=(("EMO_IMPLICIT_BF16", "0"),)),
    "fast": Setting("+ implicit bfloat16 where the CPU has AMX: the fast path (default)", {}),
    "bf16": Setting("fast path + bfloat16 autocast (--amp bf16)", {"amp": "bf16"}),
    "small": Setting("fast path without implicit bfloat16, an epoch on 32 px crops (--progressive)",
                     {"progressive": 0.5, "epochs": 2}, env=(("EMO_IMPLICIT_BF16", "0"),)),
}


def measure(name: str, steps: int, warmup: int, batch: int, source: str = "auto") -> dict[str, Any]:
    """Faces per second of ``steps`` training steps (after ``warmup``) of setting ``name``, in this process."""
    from emo.fastpath import keep_freed_memory
    from emo.train import TrainConfig, make_trainer

    setting = SETTINGS[name]
    if setting.allocator_only:
        keep_freed_memory()
    cfg = TrainConfig(**{"epochs": 1, "batch_size": batch, "limit": batch * (steps + warmup), "source": source,
                         **setting.options})
    with tempfile.TemporaryDirectory() as out:  # (nothing is written there: one epoch is run, not fit)
        t = make_trainer(cfg, out, "cpu", progress=False, tune=False)
        stamps: list[float] = []
        t.on_step = lambda i: stamps.append(time.perf_counter())
        t.train_epoch()
    timed = stamps[warmup:]
    rate = batch * (len(timed) - 1) / (timed[-1] - timed[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if resource else float("nan")  # (KiB on Linux)
    return {"setting": name, "faces_per_s": rate, "dataset": t.splits.dataset,
            "threads": torch.get_num_threads(), "peak_mib": peak}


def compare(names: list[str], steps: int = 20, warmup: int = 3, batch: int = 128, rounds: int = 2,
            threads: int = 0, source: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Run every setting in ``names`` in its own process, taking turns ``rounds`` times; the median rate of
    each, and the load average before and after."""
    from tqdm.auto import tqdm

    load = [os.getloadavg()[0]]
    rates: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, float] = {}
    info: dict[str, Any] = {}
    jobs = [n for _ in range(rounds) for n in names]
    for name in tqdm(jobs, desc="training throughput", unit="run", disable=not progress):
        cmd = [sys.executable, "-m", "emo.trainbench", name, "--steps", str(steps), "--warmup", str(warmup),
               "--batch", str(batch), "--data", source] + (["--threads", str(threads)] if threads else [])
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **dict(SETTINGS[name].env)})
        if done.returncode != 0:
            raise RuntimeError(f"the training benchmark of {name!r} failed: "
                               f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rates[name].append(row["faces_per_s"])
        peaks[name] = max(peaks.get(name, 0.0), row["peak_mib"])
        info.update(dataset=row["dataset"], threads=row["threads"])
    load.append(os.getloadavg()[0])
    return {"rates": {n: statistics.median(r) for n, r in rates.items()}, "all": rates, "peaks": peaks, "load": load,
            "steps": steps, "warmup": warmup, "batch": batch, "rounds": rounds, **info}


def format_table(result: dict[str, Any]) -> str:
    """The markdown table and the summary line ``training: BASE faces/s as shipped, BEST faces/s ...``."""
    rates, base = result["rates"], result["rates"]["shipped"]
    lines = [f"Training throughput with the full recipe (augmentation, MixUp, focal loss, AdamW, One-Cycle; "
             f"the trainer's own loop), batch {result['batch']}, {result['threads']} threads, "
             f"{result['dataset']}: the median of {result['rounds']} runs of {result['steps']} steps after "
             f"{result['warmup']} of warm-up, each in a process of its own, the settings taking turns. 1-minute "
             f"load average {result['load'][0]:.2f} before, {result['load'][1]:.2f} after.", "",
             f"| setting | faces/s | epoch of {FER_TRAIN_FACES:,} faces | vs as shipped | peak memory of the process |",
             "|---|---:|---:|---:|---:|"]
    for name, rate in rates.items():
        lines.append(f"| {SETTINGS[name].name} | {rate:,.0f} | {FER_TRAIN_FACES / rate / 60:.1f} min | "
                     f"{rate / base:.2f}x | {result['peaks'][name]:,.0f} MiB |")
    best = max(rate for name, rate in rates.items() if name != "small")  # (a 32 px epoch is not a whole run's rate)
    line = f"training: {base:,.0f} faces/s as shipped, {best:,.0f} faces/s fastest, ratio {best / base:.2f}"
    return "\n".join(lines + ["", line]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser("python -m emo.trainbench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setting", choices=sorted(SETTINGS))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--data", default="auto")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(measure(a.setting, a.steps, a.warmup, a.batch, a.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
