"""Input-size ablation: the same model and recipe at several input sizes, on one fixed short schedule.

    python -m emo.ablation                          # 48, 64 and 128 pixels -> runs/ablation/
    python -m emo.ablation --sizes 48 64 --epochs 2 --limit 2000 runs/quick   # a quicker look

FER-2013 faces are 48x48, so a larger input only upsamples them: the question is whether the extra
compute buys accuracy. Every run trains the shipped architecture (stride downsampling) from scratch on the
same seeded subset of training faces and is scored on validation (PublicTest); the test split stays out of
the decision. Writes ``ablation.csv``, ``README.md`` (the table and the command) and each size's
``size<N>/history.csv``; the checkpoints stay in ``size<N>/`` but are not meant to be committed. The
run behind notebook 02's table is in the lab log, ``experiments/ablation/``.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import torch

from emo.bench import flops_per_face
from emo.cli import (
    add_data_option,
    add_runtime_options,
    command_line,
    parser,
    run_command,
)
from emo.files import RUNS_DIR, write_csv, write_text
from emo.model import load_model
from emo.network import ModelConfig, count_parameters
from emo.splits import load_splits
from emo.train import TrainConfig, check_output, make_trainer

DEFAULT_ABLATION = RUNS_DIR / "ablation"
FIELDS = ("input_size", "params", "mflops", "train_faces", "epochs", "seconds_per_epoch", "best_epoch", "val_acc",
          "val_acc_tta")
INT_FIELDS = {"input_size", "params", "train_faces", "epochs", "best_epoch"}


def run_ablation(sizes: list[int], out_dir: str | Path | None = None, epochs: int = 3, limit: int = 5000,
                 seed: int = 0, source: str = "auto", device: str | None = None,
                 progress: bool = True, command: str = "python -m emo.ablation",
                 overwrite: bool = False) -> list[dict[str, Any]]:
    """Train one model per input size on the same faces and schedule; returns a row of figures per size.

    The table is rewritten after every size, so an interrupted ablation keeps the rows it finished.
    ``out_dir`` defaults to ``runs/ablation``; a size whose folder holds another run's checkpoint is refused
    unless ``overwrite``.
    """
    if not sizes or any(s < 16 for s in sizes):
        raise ValueError(f"sizes={sizes}: give one or more input sizes of at least 16 pixels")
    splits = load_splits("standard", source, seed)
    out = Path(out_dir) if out_dir else DEFAULT_ABLATION
    for size in sizes:
        check_output(out / f"size{size}", resume=False, overwrite=overwrite)
    rows = []
    for size in sizes:
        cfg = TrainConfig(epochs=epochs, limit=limit, seed=seed, source=source,
                          model=ModelConfig(input_size=size, downsample="stride").to_dict())
        trainer = make_trainer(cfg, out / f"size{size}", device, splits=splits, progress=progress, tune=True)
        n = len(trainer.train_labels)
        print(f"input {size}x{size}: {n:,} faces, {epochs} epochs", flush=True)
        history = trainer.fit()
        model = load_model(trainer.best_path)
        seconds = sum(r["seconds"] for r in history) / len(history)
        rows.append({"input_size": size, "params": count_parameters(model),
                     "mflops": round(flops_per_face(model) / 1e6, 1), "train_faces": n, "epochs": len(history),
                     "seconds_per_epoch": round(seconds, 1),
                     "best_epoch": model.meta["epoch"], "val_acc": model.meta["metrics"]["val_acc"],
                     "val_acc_tta": model.meta["metrics"]["val_acc_tta"]})
        write_results(rows, out, splits.dataset, command)
    print(f"wrote {out / 'README.md'}")
    return rows


def write_results(rows: list[dict[str, Any]], out: Path, dataset: str, command: str) -> None:
    """``ablation.csv`` and a ``README.md`` with the table and the command that made it."""
    write_csv(out / "ablation.csv", FIELDS, rows)
    lines = [
        "# Input-size ablation", "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')} "
        f"({torch.get_num_threads()} CPU threads, torch {torch.__version__}, data: {dataset}).", "",
        "The same model (stride downsampling) and recipe, trained from scratch on the same seeded subset of "
        "training faces for the same number of epochs; only the input size changes. Accuracy is on validation "
        "(PublicTest): the test split takes no part in this choice. Seconds per epoch include the validation pass.", "",
        "| input | parameters | MFLOP per face | s per epoch | best epoch | val top-1 | val, flip TTA |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['input_size']}x{r['input_size']} | {r['params']:,} | {r['mflops']:,} | "
                     f"{r['seconds_per_epoch']:.0f} | {r['best_epoch']} of {r['epochs']} | "
                     f"{100 * r['val_acc']:.2f}% | {100 * r['val_acc_tta']:.2f}% |")
    lines += ["", f"Each row trained on {rows[0]['train_faces']:,} faces; per-epoch curves are in "
              "`size<N>/history.csv`."]
    write_text(out / "README.md", "\n".join(lines) + "\n")


def load_results(out_dir: str | Path = DEFAULT_ABLATION) -> list[dict[str, Any]]:
    """The rows of an ablation's ``ablation.csv``, with numbers as numbers."""
    path = Path(out_dir) / "ablation.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m emo.ablation` first")
    with open(path, newline="") as f:
        return [{k: int(v) if k in INT_FIELDS else float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.ablation", __doc__)
    p.add_argument("output_dir", nargs="?", default=None,
                   help="default runs/ablation/")
    p.add_argument("--sizes", type=int, nargs="+", default=[48, 64, 128], help="input sizes to train at")
    p.add_argument("--epochs", type=int, default=3, help="epochs per size (one fixed short schedule)")
    p.add_argument("--limit", type=int, default=5000, help="training faces per run (a seeded random subset)")
    p.add_argument("--seed", type=int, default=0, help="seeds the subset and the training")
    add_data_option(p)
    add_runtime_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoints of an earlier ablation there")
    a = p.parse_args(argv)
    return run_command(lambda: run_ablation(a.sizes, a.output_dir, a.epochs, a.limit, a.seed, a.data, a.device,
                                            not a.no_progress, command_line("emo.ablation", argv), a.overwrite),
                       a.threads)


if __name__ == "__main__":
    sys.exit(main())
