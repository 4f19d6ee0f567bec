"""Train Mini-Xception-SE on FER-2013, the generated faces or a dataset of your own (the loop: emo/trainer.py).

    python -m emo.train                       # a new runs/<date>-<time>/: best_model.pt, history.csv, train_log.txt
    python -m emo.train runs/try1 --epochs 5  # a folder of your choice
    python -m emo.train runs/try1 --epochs 5 --resume   # go on after an interruption (the same options)
    python -m emo.train runs/swa --init results/best_model.pt --swa --epochs 12 --lr 2e-4
    python -m emo.train runs/kd --init results/best_model.pt --teacher results/ensemble/best_model.pt --swa --lr 4e-4
    python -m emo.train runs/kd80 --epochs 80 --teacher results/ensemble/best_model.pt \
        --teacher-targets data/ensemble_targets.pt --distill-weight 0.5  # the teacher's predictions computed once

A folder that already holds another run's checkpoint is refused unless ``--overwrite`` (or ``--resume``).
The extensions (:data:`EXTENSIONS`): ``--init`` (:mod:`emo.finetune`), ``--swa`` (:mod:`emo.swa`), ``--teacher``
(:mod:`emo.distill`), each declaring its own options, and the inference-setting search at the end
(:mod:`emo.inference_search`, skipped for ``--limit`` runs and runs under 5 epochs unless ``--tune``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from emo import checkpoint, distributed
from emo.checkpoint import model_path
from emo.cli import (
    add_data_option,
    add_runtime_options,
    command_line,
    parser,
    run_command,
)
from emo.distill import Distill
from emo.files import RUNS_DIR, append_text, folder_lock
from emo.finetune import InitFrom
from emo.hooks import Extension
from emo.inference_search import Tune
from emo.network import ModelConfig
from emo.recipe import AMP_MODES, MODEL, recipe_with
from emo.splits import PROTOCOLS, Splits
from emo.swa import WeightAveraging
from emo.trainer import Trainer

#: The extensions a run may use, in the order their hooks run; each declares its options.
EXTENSIONS: tuple[type[Extension], ...] = (InitFrom, WeightAveraging, Distill)
#: The whole recipe: the core and every extension's options (what a checkpoint's ``train_config`` records).
TrainConfig = recipe_with(EXTENSIONS)
#: The shortest run (in epochs) whose end tunes the inference settings unless asked (--tune / --no-tune).
TUNE_MIN_EPOCHS = 5


def extensions_for(cfg: Any, tune: bool | None = None) -> list[Extension]:
    """The extensions that ``cfg`` asks for, in the order they run; ``tune`` (None: only for runs of at least
    ``TUNE_MIN_EPOCHS`` epochs on all the training faces) adds the inference-setting search at the end."""
    exts = [ext.from_config(cfg) for ext in EXTENSIONS if ext.wanted(cfg)]
    if tune if tune is not None else (cfg.epochs >= TUNE_MIN_EPOCHS and not cfg.limit):
        exts.append(Tune())
    return exts


def make_trainer(cfg: Any, out_dir: str | Path, device: str | None = None, splits: Splits | None = None,
                 progress: bool = True, tune: bool | None = None) -> Trainer:
    """A :class:`Trainer` for ``cfg`` with the extensions it asks for (:func:`extensions_for`)."""
    return Trainer(cfg, out_dir, device, splits, progress, extensions=extensions_for(cfg, tune))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = TrainConfig()
    p = parser("emo.train", __doc__)
    p.add_argument("output_dir", nargs="?", default=None,
                   help="where best_model.pt, last.pt, history.csv and train_log.txt go "
                   "(default: a new runs/<date>-<time>/)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="epochs of One-Cycle (at most; early stopping may end sooner)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="faces per training step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak One-Cycle learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW's weight decay")
    p.add_argument("--gamma", type=float, default=d.gamma, help="focal loss gamma (0 = cross-entropy)")
    p.add_argument("--mixup", type=float, default=d.mixup_alpha, help="MixUp alpha (0 = off)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping, epochs without val improvement")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seeds the subset, the weights, the batches and augmentation")
    p.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol,
                   help="standard: PublicTest validates, PrivateTest tests; reference: the original project's split")
    add_data_option(p, d.source)
    p.add_argument("--amp", choices=AMP_MODES, default=d.amp, help="mixed precision (auto: fp16 on CUDA, off on CPU)")
    p.add_argument("--limit", type=int, default=0,
                   help="train on a seeded random subset of N faces (0: all; quick runs)")
    m = ("; with --init: the checkpoint's, otherwise %s")
    p.add_argument("--input-size", type=int, default=None,
                   help="48 (native, ours) or 128 (the original project's)" + m % 48)
    p.add_argument("--stem", type=int, default=None, help="channels of the stem conv" + m % MODEL.stem_channels)
    p.add_argument("--widths", type=int, nargs="+", default=None,
                   help="channels of each residual block" + m % " ".join(map(str, MODEL.widths)))
    p.add_argument("--downsample", choices=("pool", "stride"), default=None,
                   help="stride: stride-2 depthwise convs (the original design); "
                   "pool: max-pool after each block (Arriaga et al.)" + m % "stride")
    p.add_argument("--reference", action="store_true",
                   help="the original project's configuration: 128x128 input, stride-2 downsampling")
    add_runtime_options(p)
    p.add_argument("--resume", action="store_true", help="go on from OUTPUT_DIR/last.pt (same options)")
    p.add_argument("--overwrite", action="store_true", help="train into a folder that holds another run's checkpoint")
    tune = p.add_mutually_exclusive_group()
    tune.add_argument("--tune", dest="tune", action="store_true", default=None,
                      help="after training, choose the test-time crop and BN statistics on validation "
                           f"(without --tune or --no-tune: for runs of {TUNE_MIN_EPOCHS}+ epochs on all the faces)")
    tune.add_argument("--no-tune", dest="tune", action="store_false", default=None, help="skip that search")
    for ext in EXTENSIONS:  # each extension's own options
        for opt in ext.options:
            if opt.type is None:
                p.add_argument(opt.flag, action="store_true", help=opt.help)
            else:
                p.add_argument(opt.flag, type=opt.type, default=opt.default, metavar=opt.metavar, help=opt.help)
    p.add_argument("--no-fast-path", dest="fast_path", action="store_false",
                   help="on the CPU, draw dropout masks with torch's own generator, let memory be freed as usual "
                   "and multiply in float32 on AMX CPUs too (the recipe as it ran before the fast path; emo.fastpath)")
    p.add_argument("--progressive", type=float, default=d.progressive, metavar="FRACTION",
                   help="train the first FRACTION of the epochs on smaller crops (--progressive-size), "
                   "then at the model's input size (0 = off)")
    p.add_argument("--progressive-size", type=int, default=d.progressive_size, metavar="PIXELS",
                   help="the smaller crops' size with --progressive")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    """The run's config; model options not given are those of the ``--init`` checkpoint, else :data:`MODEL`'s."""
    base = MODEL
    if a.init and not a.reference:
        base = ModelConfig.from_dict(checkpoint.read(model_path(a.init))["config"])
    given = {"input_size": a.input_size, "stem_channels": a.stem, "downsample": a.downsample}
    changes: dict = {k: v for k, v in given.items() if v is not None}
    if a.widths:
        changes.update(widths=tuple(a.widths), strides=(2,) * (len(a.widths) - 1) + (1,))
    model = ModelConfig() if a.reference else replace(base, **changes)
    options = {opt.name: getattr(a, opt.name) for ext in EXTENSIONS for opt in ext.options}
    return TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, gamma=a.gamma,
                       mixup_alpha=a.mixup, patience=a.patience, seed=a.seed, protocol=a.protocol, source=a.data,
                       amp=a.amp, limit=a.limit, fast_path=a.fast_path, progressive=a.progressive,
                       progressive_size=a.progressive_size, model=model.to_dict(), **options)


def new_run_dir() -> Path:
    """A folder under ``runs/`` named by the date and time, not there yet."""
    base = RUNS_DIR / time.strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def check_output(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, in one line, to train into a folder that holds another run's checkpoint (unless ``overwrite``),
    or to ``resume`` where there is nothing to resume from."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: name a folder for the run (a new one is made)")
    held = [p.name for p in (out / "best_model.pt", out / "last.pt") if p.exists()]
    if resume and not held:
        raise FileNotFoundError(f"--resume: no {out / 'last.pt'} (nor best_model.pt) to resume from; "
                                "drop --resume to start afresh")
    if held and not resume and not overwrite:
        raise FileExistsError(f"{out} already holds {' and '.join(held)} from another run: pick a new folder, "
                              "add --resume to go on with it, or --overwrite to replace it")


def resume_command(argv: Sequence[str], out: Path) -> str:
    """The command that goes on with this run: the same options, the output folder named, and ``--resume``."""
    args = [s for s in argv if s not in ("--resume", "--overwrite")]
    if not any(s == str(out) or Path(s) == out for s in args if not s.startswith("-")):
        here, where = Path.cwd().resolve(), out.resolve()
        args.insert(0, str(where.relative_to(here) if where.is_relative_to(here) else where))
    return " ".join(["python -m emo.train", *map(shlex.quote, args), "--resume"])


def train_from_args(a: argparse.Namespace, argv: list[str] | None = None) -> None:
    """Train as the command line ``a`` (parsed from ``argv``) says, logging to ``train_log.txt``."""
    cfg = config_from_args(a)
    if a.output_dir is None and distributed.launched().size > 1:
        raise ValueError("under torchrun, name the output folder (python -m emo.train OUTPUT_DIR ...): "
                         "each process would pick its own new runs/<date>-<time>/")
    out = Path(a.output_dir) if a.output_dir else new_run_dir()
    a.output_dir = str(out)
    main_process = distributed.launched().is_main  # the process that writes (under torchrun the others wait for it)
    if main_process and out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: name a folder for the run (a new one is made)")
    with folder_lock(out, "output folder") if main_process else contextlib.nullcontext():
        if main_process:  # (checked under the lock: a second training into this folder is refused here)
            check_output(out, a.resume, a.overwrite)
        trainer = make_trainer(cfg, out, a.device, progress=not a.no_progress, tune=a.tune)
        try:
            if trainer.world.is_main:
                start_log(trainer, out, argv)
            trainer.fit(resume=a.resume)
        finally:
            distributed.leave()


def start_log(trainer: Trainer, out: Path, argv: list[str] | None) -> None:
    """Begin (or go on with) ``train_log.txt``, have every epoch's row appended to it, and say what runs where."""
    cfg, w = trainer.cfg, trainer.world
    out.mkdir(parents=True, exist_ok=True)
    notes = "".join(f"# {ext.note}\n" for ext in trainer.extensions if ext.note)
    spread = ""
    if w.size > 1:
        spread = (f"{w.size} processes ({w.backend}), {cfg.batch_size} faces each a step: effective batch "
                  f"{w.size * cfg.batch_size}, peak lr {cfg.lr:g} as given (not scaled with the batch)")
        notes += f"# distributed: {spread}\n"
    append_text(out / "train_log.txt", (f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {command_line('emo.train', argv)}\n"
                f"# device {trainer.device}, "
                f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
                f"# data {trainer.splits.dataset} ({trainer.splits.protocol}): {trainer.splits.sizes()}\n"
                f"# config {json.dumps(cfg.to_dict())}\n" + notes))

    def log_epoch(row: dict[str, float]) -> None:
        note = f"# {trainer.resume_note}\n" if trainer.resume_note else ""
        trainer.resume_note = ""
        append_text(out / "train_log.txt", note + json.dumps(row) + "\n")
    trainer.on_epoch = log_epoch
    print(f"training on {trainer.splits.dataset} ({trainer.splits.protocol} protocol, "
          f"{len(trainer.train_labels):,} faces) on {trainer.device}, {torch.get_num_threads()} threads; "
          f"writing {trainer.best_path}" + "".join(f"\n  {ext.note}" for ext in trainer.extensions if ext.note)
          + (f"\n  {spread}" if spread else ""))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        return run_command(lambda: train_from_args(a, argv), a.threads, interrupt=False)
    except KeyboardInterrupt:
        if a.output_dir and (Path(a.output_dir) / "last.pt").exists():
            print(f"\ninterrupted: every finished epoch is saved; go on with\n  "
                  f"{resume_command(sys.argv[1:] if argv is None else argv, Path(a.output_dir))}", file=sys.stderr)
        else:
            print("\ninterrupted before the first epoch ended: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
