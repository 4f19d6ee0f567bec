"""The training loop of the core recipe, resumable, with hooks for what is layered on top of it.

One epoch: per-face random resized crop, rotation and flip on whole batches, MixUp, focal loss, AdamW,
a One-Cycle learning rate, mixed precision where it helps. After each epoch the model is validated;
``best_model.pt`` is replaced atomically only when validation accuracy improves, ``last.pt`` holds everything
needed to resume (weights, optimiser, scheduler, history, random state), and training stops early after
``patience`` epochs without improvement. At the end the best checkpoint is scored on validation and test.

Under ``torchrun`` the same loop runs in every process, each on its shard of the epoch, with the gradients
averaged by DistributedDataParallel; only rank 0 writes (:mod:`emo.distributed`).

Everything else is an :class:`emo.hooks.Extension` (:mod:`emo.finetune`, :mod:`emo.swa`, :mod:`emo.distill`,
:mod:`emo.inference_search`), combined by one rule:

1. observing hooks (``setup``, ``after_epoch``) run for every extension, in order;
2. deciding hooks (``schedule``, ``batch_targets``/``loss``, ``model_to_score``, ``finish``) belong to at most
   one extension of a run: two that claim one are refused when the trainer starts, in one line;
3. each extension keeps its state in ``last.pt`` under ``extensions[<its key>]`` and its checkpoint entries
   under names no other extension writes.

:func:`emo.train.make_trainer` picks the extensions from the recipe.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from emo import checkpoint, distributed
from emo.augment import augment, mixup
from emo.evaluation import accuracy_and_nll, score_checkpoint
from emo.fastpath import implicit_bf16, use_fast_path
from emo.files import folder_lock, write_csv
from emo.hooks import Extension, check_extensions, merged_meta
from emo.losses import focal_loss
from emo.model import Model, default_device
from emo.network import ModelConfig, build_model
from emo.preprocess import Preprocessing, preprocessing_of, set_preprocessing
from emo.recipe import Recipe, flag_of
from emo.splits import Splits, load_splits


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """fp16 on CUDA by default; on CPU full precision unless bf16 is asked for (measured: not faster here)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA: use 'bf16' or 'off' on the CPU")
    return torch.float16 if amp in ("auto", "fp16") else torch.bfloat16


def check_finite(model: torch.nn.Module, epoch: int) -> None:
    """A one-line FloatingPointError where a weight or a batch-norm statistic of ``model`` is NaN or infinite
    (a finite loss can still be followed by a step that overflows): such a model is never saved."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise FloatingPointError(f"after epoch {epoch} {len(bad)} weight tensor(s) hold NaN or infinity "
                                 f"(e.g. {bad[0]}): training diverged (try a lower --lr); nothing of this epoch "
                                 "was saved")


def _said(flag: str, value: Any) -> str:
    """How a run's setting reads: ``--lr 0.001``; a switch ``with --swa`` / ``without --no-fast-path``."""
    if not isinstance(value, bool):
        return f"{flag} {value!r}"
    given = value if not flag.startswith("--no-") else not value
    return ("with " if given else "without ") + flag


class Trainer:
    """One training run into ``out_dir``; ``fit()`` trains (or resumes) and returns the history."""

    HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")

    def __init__(self, cfg: Recipe, out_dir: str | Path, device: str | None = None,
                 splits: Splits | None = None, progress: bool = True,
                 on_epoch: Callable[[dict[str, float]], None] | None = None,
                 extensions: Sequence[Extension] = ()) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        check_extensions(extensions)
        self.world, where = distributed.world(str(default_device(device)))
        self.device = torch.device(where)
        self.amp_dtype = autocast_dtype(cfg.amp, self.device)
        self.progress, self.on_epoch, self.extensions = progress, on_epoch, list(extensions)
        self.splits = splits or load_splits(cfg.protocol, cfg.source, cfg.seed)
        train = self.splits.train
        keep = np.arange(len(train))
        if cfg.limit and cfg.limit < len(train):  # a seeded random subset: the faces are stored grouped by class
            keep = np.sort(np.random.default_rng(cfg.seed).choice(len(train), cfg.limit, replace=False))
        self.keep = keep  # which training faces this run uses
        self.train_images = torch.as_tensor(train.images[keep]).to(self.device)
        self.train_labels = torch.as_tensor(train.labels[keep]).to(self.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(ModelConfig.from_dict(cfg.model), classes=self.splits.classes)
        pix = train.images[keep].astype(np.float32) / 255.0  # the preprocessing travels with the weights:
        set_preprocessing(self.model, Preprocessing(self.model.input_size, float(pix.mean()), float(pix.std())))
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.fast_path = cfg.fast_path and self.device.type == "cpu"  # (emo.fastpath: the CPU only)
        if self.fast_path:
            use_fast_path(self.model)  # cheaper dropout masks, freed memory kept (emo.fastpath; same weights)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # under torchrun each process trains on its shard of the epoch (as DistributedSampler pads it)
        self.steps_per_epoch = math.ceil(math.ceil(len(keep) / self.world.size) / cfg.batch_size)
        for ext in self.extensions:
            ext.setup(self)
        self.net: torch.nn.Module = self.model  # what training steps call: the model, or under torchrun its DDP
        if self.world.size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
            torch.manual_seed(cfg.seed + 7919 * self.world.rank)  # each process its own dropout masks
        schedules = [s for s in (ext.schedule(self) for ext in self.extensions) if s is not None]
        self.sched: torch.optim.lr_scheduler.LRScheduler = schedules[0] if schedules else \
            torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.history: list[dict[str, float]] = []
        self.best_acc, self.best_epoch, self.epoch = -1.0, 0, 0
        self.resume_note = ""  # set when a run goes on from best_model.pt because last.pt was lost
        self.on_step: Callable[[int], None] | None = None  # called after every optimiser step with its number

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def best_path(self) -> Path:
        return self.out / "best_model.pt"

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    def _meta(self) -> dict[str, Any]:
        return {"protocol": self.splits.protocol, "dataset": self.splits.dataset, "train_config": self.cfg.to_dict(),
                **merged_meta(self.extensions)}

    def save_last(self) -> None:
        if not self.world.is_main:
            return
        state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "epoch": self.epoch,
                 "history": self.history, "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                 "torch_rng": torch.get_rng_state(),
                 "extensions": {ext.key: s for ext in self.extensions if (s := ext.state_dict())}}
        checkpoint.save({**checkpoint.entries(self.model), **self._meta(), **state}, self.last_path)

    def resume(self) -> None:
        """Restore the run from ``last.pt`` (refusing one trained with another recipe).

        Where ``last.pt`` was lost but ``best_model.pt`` is there, go on from the best epoch instead: its
        weights, history and schedule position are restored; the optimiser's moment estimates restart at zero.
        """
        has_last, has_best = distributed.from_main((self.last_path.exists(), self.best_path.exists()))
        if not has_last and has_best:
            for ext in self.extensions:
                if not ext.resumes_from_best:
                    raise FileNotFoundError(f"--resume of this run needs {self.last_path} ({type(ext).__name__}'s "
                                            "state lives only there): start the run again without --resume")
            return self._resume_from_best()
        ck = distributed.from_main(self._read_last() if self.world.is_main else None)
        if isinstance(ck, str):  # last.pt unreadable: go on from the best epoch, as where it is missing
            return self._resume_from_best(ck)
        self._load_same_recipe(ck, self.last_path)
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.epoch, self.history = int(ck["epoch"]), list(ck["history"])
        self.best_acc, self.best_epoch = float(ck["best_acc"]), int(ck["best_epoch"])
        torch.set_rng_state(ck["torch_rng"])
        for ext in self.extensions:
            ext.load_state_dict(ck.get("extensions", {}).get(ext.key, ck))  # (version 2: flat in the checkpoint)

    def _read_last(self) -> dict[str, Any] | str:
        """``last.pt``, or where it cannot be read but ``best_model.pt`` is there to go on from, why not."""
        try:
            return checkpoint.read(self.last_path)
        except ValueError as e:
            if not self.best_path.exists() or any(not ext.resumes_from_best for ext in self.extensions):
                raise
            return f"{self.last_path.name} cannot be read ({str(e).split(': pass')[0]})"

    def _resume_from_best(self, why: str = "") -> None:
        ck = distributed.from_main(checkpoint.read(self.best_path) if self.world.is_main else None)
        self._load_same_recipe(ck, self.best_path)
        self.epoch = int(ck["epoch"])
        self.history = [row for row in ck["history"] if row["epoch"] <= self.epoch]
        self.best_acc, self.best_epoch = float(ck["metrics"]["val_acc"]), self.epoch
        with warnings.catch_warnings():  # advance the schedule to where the run stopped (no optimiser step taken)
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(self.epoch * self.steps_per_epoch):
                self.sched.step()
        self.resume_note = (f"NOTE: {why or 'no ' + self.last_path.name}: going on from {self.best_path.name} "
                            f"after epoch {self.epoch} "
                            "(weights, history and schedule restored; the optimiser's moments restart at zero)")
        if self.world.is_main:
            print(self.resume_note, file=sys.stderr)

    def _load_same_recipe(self, ck: dict[str, Any], path: Path) -> None:
        """Load the weights and normalisation of ``ck``, refusing a checkpoint trained with another recipe."""
        mine = self.cfg.to_dict()
        # checkpoints written before an option existed were trained with its default
        theirs = {**type(self.cfg)().to_dict(), **ck.get("train_config", {})}
        diff = sorted(k for k in mine if k not in ("epochs", "patience") and mine[k] != theirs.get(k))
        if diff:
            said = ", ".join("the model options" if k == "model" else _said(flag_of(k), theirs.get(k)) for k in diff)
            raise ValueError(f"{path} was trained with other settings ({said}): "
                             "resume with the same options, or use another output folder")
        if theirs.get("epochs") != mine["epochs"] and not any(ext.epochs_free for ext in self.extensions):
            raise ValueError(f"{path} was trained for --epochs {theirs.get('epochs')}: the One-Cycle "
                             "schedule depends on it, so resume with the same --epochs")
        self.model.load_state_dict(ck["state_dict"])
        set_preprocessing(self.model, Preprocessing.from_checkpoint(ck))

    def autocast(self) -> torch.autocast:
        """Mixed precision for forward passes as ``amp`` asks (off where it is off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, float]:
        cfg, model = self.cfg, self.model
        model.train()
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch + 1_000_003 * self.world.rank)
        order = self.epoch_order(g)
        pre = preprocessing_of(model)
        n_classes = len(model.classes)
        size = cfg.input_size_at(self.epoch)  # smaller crops early in a progressive run
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not (self.progress and self.world.is_main), mininterval=2.0)
        tot_loss = tot_correct = seen = 0.0
        with implicit_bf16(self.fast_path):  # (AMX CPUs: bfloat16 products in the steps; validation stays float32)
            for i in bar:
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x = self.train_images[idx].float().div_(255.0).unsqueeze(1)
                y = self.train_labels[idx]
                x = pre.normalized(augment(x, size, g, scale=cfg.crop_scale, degrees=cfg.rotation))
                extra = [ext.batch_targets(self, idx) for ext in self.extensions]  # blended with the labels' partners
                t = torch.cat([F.one_hot(y, n_classes).float()] + [e for e in extra if e is not None], 1)
                x, t = mixup(x, t, cfg.mixup_alpha, g)
                x = x.contiguous(memory_format=torch.channels_last)
                with self.autocast():
                    logits = self.net(x)
                loss = focal_loss(logits, t[:, :n_classes], cfg.gamma)
                start = n_classes
                for ext, e in zip(self.extensions, extra):
                    mine = None if e is None else t[:, start:start + e.shape[1]]
                    start += 0 if e is None else e.shape[1]
                    loss = ext.loss(self, logits, x, loss, mine)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss is {float(loss.detach())} at epoch {self.epoch + 1}, "
                                             f"step {i + 1}: training diverged (try a lower --lr); nothing of this "
                                             "epoch was saved")
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()  # (the scaler passes the loss through unless fp16 is on)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.sched.step()
                if self.on_step:
                    self.on_step(self.epoch * self.steps_per_epoch + i + 1)
                tot_loss += float(loss.detach()) * len(y)
                tot_correct += float((logits.argmax(1) == t[:, :n_classes].argmax(1)).sum())
                seen += len(y)
                if i % 20 == 0:
                    bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        tot_loss, tot_correct, seen = distributed.sum_over_processes(tot_loss, tot_correct, seen)
        return tot_loss / seen, tot_correct / seen

    def epoch_order(self, g: torch.Generator) -> torch.Tensor:
        """The training faces of this epoch, in order: a permutation drawn from ``g``, or under torchrun this
        process's shard of a permutation that all processes draw alike (``DistributedSampler``)."""
        if self.world.size == 1:
            return torch.randperm(len(self.train_labels), generator=g).to(self.device)
        sampler = torch.utils.data.DistributedSampler(range(len(self.train_labels)), self.world.size, self.world.rank,
                                                      shuffle=True, seed=self.cfg.seed)
        sampler.set_epoch(self.epoch)
        return torch.tensor(list(sampler), device=self.device)

    def validate(self, model: Model) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on the validation faces; under torchrun each process scores its share
        and the sums are gathered, so every process gets the same figures (and stops early alike)."""
        val = self.splits.val
        if self.world.size == 1:
            return accuracy_and_nll(model, val.images, val.labels)
        distributed.share_buffers(model)
        mine = slice(self.world.rank, None, self.world.size)
        acc, nll = accuracy_and_nll(model, val.images[mine], val.labels[mine])
        n = len(val.labels[mine])
        right, loss, total = distributed.sum_over_processes(acc * n if n else 0.0, nll * n if n else 0.0, n)
        return right / total, loss / total

    # -- the run ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        """Train (or with ``resume`` go on from ``last.pt``) until the last epoch or early stopping, holding the
        output folder's lock (:func:`emo.files.folder_lock`: a second writer there is refused)."""
        self.out.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.out, "output folder") if self.world.is_main else contextlib.nullcontext():
            return self._fit(resume)

    def _fit(self, resume: bool) -> list[dict[str, float]]:
        cfg = self.cfg
        say = print if self.world.is_main else (lambda *a, **k: None)
        if resume:
            self.resume()
            say(f"resuming after epoch {self.epoch} (best val acc {self.best_acc:.4f})")
        while self.epoch < cfg.epochs and self.epoch - self.best_epoch < cfg.patience:
            row = self.run_epoch()
            if self.on_epoch:
                self.on_epoch(row)
        if self.epoch - self.best_epoch >= cfg.patience:
            say(f"early stop: no val improvement for {cfg.patience} epochs (best epoch {self.best_epoch})")
        if self.world.is_main:
            self.finish()
        distributed.wait_for_all()
        return self.history

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, let the extensions observe it, validate (the model an extension chose, or the trained
        one), save ``best_model.pt`` when validation improved and ``last.pt`` always; returns the history row."""
        t0 = time.time()
        lr = self.opt.param_groups[0]["lr"]
        train_loss, train_acc = self.train_epoch()
        extra: dict[str, float] = {}
        for ext in self.extensions:
            ext.after_epoch(self, extra)
        scored = next((m for m in (ext.model_to_score(self) for ext in self.extensions) if m is not None), self.model)
        for net in {id(self.model): self.model, id(scored): scored}.values():
            check_finite(net, self.epoch + 1)
        val_acc, val_loss = self.validate(scored)
        self.epoch += 1
        row = {"epoch": self.epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc, "seconds": time.time() - t0, **extra}
        self.history.append(row)
        improved = val_acc > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = val_acc, self.epoch
        if improved and self.world.is_main:
            checkpoint.save_network(scored, self.best_path, epoch=self.epoch, history=self.history,
                                    metrics={"val_acc": val_acc}, **self._meta())
        self.save_last()
        self.write_history()
        if self.world.is_main:
            print(f"epoch {self.epoch:3d}/{self.cfg.epochs}  lr {lr:.2e}  "
                  f"train loss {train_loss:.4f} acc {train_acc:.4f}  "
                  f"val loss {val_loss:.4f} acc {val_acc:.4f}" + "".join(f"  {k} {v:.4f}" for k, v in extra.items())
                  + f"  {row['seconds']:.0f}s{'  *best' if improved else ''}"
                  + (f"  ({size} px crops)" if (size := self.cfg.input_size_at(self.epoch - 1)) != self.model.input_size
                     else ""), flush=True)
        return row

    def write_history(self) -> None:
        """``history.csv``: one row per epoch (the extensions' columns after the loop's own)."""
        if not self.world.is_main:
            return
        columns = list(self.HISTORY_FIELDS) + [k for k in self.history[-1] if k not in self.HISTORY_FIELDS]
        write_csv(self.out / "history.csv", columns, self.history)

    def finish(self) -> dict[str, Any]:
        """Score the best checkpoint on validation and test and store the scores and the history in it
        (or let an extension do that, as :class:`emo.inference_search.Tune` does after choosing inference settings)."""
        ck = None
        for ext in self.extensions:
            ck = ext.finish(self) or ck
        if ck is None:
            ck = score_checkpoint(self.best_path, self.splits, self.device, history=self.history)
        settings = f", test-time crop {ck['crop']:g}, {ck['bn']} BN statistics" if "bn" in ck else ""
        print(f"best epoch {ck['epoch']}{settings}: " + ", ".join(f"{k} {v:.4f}" for k, v in ck["metrics"].items()))
        return ck


def one_cycle_lrs(epochs: int, steps_per_epoch: int, lr: float = 1e-3) -> list[float]:
    """The learning rate at every step of the One-Cycle schedule that :class:`Trainer` uses."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    out = []
    for _ in range(epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out
