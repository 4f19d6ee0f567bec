"""Train Mini-Xception-SE on FER-2013 (or the generated faces): the full recipe, resumable.

Recipe: per-face random resized crop / rotation / flip on whole batches, MixUp, focal loss, AdamW,
One-Cycle LR, mixed precision where it helps, early stopping on validation accuracy. With ``--swa``
(after ``--init``): a constant learning rate instead of One-Cycle, and the weights averaged over the
epochs (stochastic weight averaging); the averaged model is the one validated and saved. With
``--teacher``: knowledge distillation, the loss pulling the model's predictions towards those of a
trained model or ensemble shown the same augmented, MixUp-blended batch; with ``--teacher-targets`` as well,
towards the teacher's predictions on the clean faces, computed once and MixUp-blended like the labels (no
teacher pass per step).

    python -m emo.train                       # -> results/best_model.pt, history.csv, train_log.txt
    python -m emo.train runs/try1 --epochs 5  # another output folder
    python -m emo.train --resume              # go on from results/last.pt after an interruption
                                              # (or from best_model.pt where last.pt was lost)
    python -m emo.train runs/swa --init results/best_model.pt --swa --epochs 12 --lr 2e-4
    python -m emo.train runs/kd --init results/best_model.pt --teacher results/ensemble/best_model.pt --swa --lr 4e-4
    python -m emo.train runs/kd80 --epochs 80 --teacher results/ensemble/best_model.pt \
        --teacher-targets data/ensemble_targets.pt --distill-weight 0.5  # the teacher's predictions computed once

``best_model.pt`` is replaced atomically, only when validation accuracy improves; ``last.pt`` holds
everything needed to resume (weights, optimiser, scheduler, history, random state).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from emo.cli import command_line, run_command
from emo.data import PROJECT_ROOT, PROTOCOLS, SOURCES, Splits, augment, load_splits, mixup, to_tensor
from emo.losses import distillation_loss, focal_loss
from emo.model import (DEFAULT_MODEL, MiniXception, Model, ModelConfig, atomic_save, build_model, checkpoint_dict,
                       load_model, predict_proba, read_checkpoint, require_network, save_checkpoint)

DEFAULT_OUTPUT = DEFAULT_MODEL.parent
#: TrainConfig options added after the first checkpoints were written (which were trained with their defaults).
LATER_OPTIONS = ("init", "swa", "swa_bn_faces", "teacher", "distill_weight", "temperature", "teacher_targets")


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in every checkpoint it writes)."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    gamma: float = 2.0
    mixup_alpha: float = 0.2
    crop_scale: tuple[float, float] = (0.8, 1.0)
    rotation: float = 10.0
    patience: int = 30
    seed: int = 0
    protocol: str = "standard"
    source: str = "auto"
    amp: str = "auto"
    limit: int = 0  # train on a seeded random N training faces (quick runs, tests)
    init: str = ""  # start from this checkpoint's weights (a warm restart: new optimiser, new One-Cycle)
    swa: bool = False  # constant lr (after a one-epoch warm-up), weights averaged over epochs (Izmailov et al., 2018)
    swa_bn_faces: int = 8192  # training faces whose batch statistics the averaged model's BN layers get
    teacher: str = ""  # distil from this checkpoint (a network or an ensemble) shown the same batches
    distill_weight: float = 1.0  # with a teacher: loss = w * distillation + (1 - w) * focal loss on the labels
    temperature: float = 1.0  # with a teacher: softmax temperature of the distillation loss
    teacher_targets: str = ""  # with a teacher: file of its predictions on the clean training faces (made if missing)
    model: dict[str, Any] = field(default_factory=lambda: ModelConfig(input_size=48, downsample="stride").to_dict())

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}: use one of {SOURCES}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp={self.amp!r}: use auto, off, bf16 or fp16")
        if self.swa and not self.init:
            raise ValueError("swa=True averages the weights around a trained model: pass init (--init CHECKPOINT) too")
        if self.swa_bn_faces < 1:
            raise ValueError(f"swa_bn_faces={self.swa_bn_faces} must be at least 1")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight={self.distill_weight} must be between 0 and 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.teacher_targets and not self.teacher:
            raise ValueError("teacher_targets holds a teacher's predictions: pass teacher (--teacher CHECKPOINT) too")
        self.crop_scale = tuple(self.crop_scale)  # type: ignore[assignment]


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """fp16 on CUDA by default; on CPU full precision unless bf16 is asked for (measured: not faster here)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA: use 'bf16' or 'off' on the CPU")
    return torch.float16 if amp in ("auto", "fp16") else torch.bfloat16


def evaluate_accuracy(model: Model, images: np.ndarray, labels: np.ndarray, tta: bool = False,
                      batch_size: int | None = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on uint8 faces."""
    p = predict_proba(model, images, tta=tta, batch_size=batch_size)
    acc = float((p.argmax(1) == labels).mean()) if len(labels) else float("nan")
    nll = float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1)).mean()) if len(labels) else float("nan")
    return acc, nll


class Trainer:
    """One training run into ``out_dir``; ``fit()`` trains (or resumes) and returns the history."""

    HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")

    def __init__(self, cfg: TrainConfig, out_dir: str | Path = DEFAULT_OUTPUT, device: str | None = None,
                 splits: Splits | None = None, progress: bool = True,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.amp_dtype = autocast_dtype(cfg.amp, self.device)
        self.progress, self.on_epoch = progress, on_epoch
        self.splits = splits or load_splits(cfg.protocol, cfg.source, cfg.seed)
        train = self.splits.train
        keep = np.arange(len(train))
        if cfg.limit and cfg.limit < len(train):  # a seeded random subset: the faces are stored grouped by class
            keep = np.sort(np.random.default_rng(cfg.seed).choice(len(train), cfg.limit, replace=False))
        n = len(keep)
        self.train_images = torch.as_tensor(train.images[keep]).to(self.device)
        self.train_labels = torch.as_tensor(train.labels[keep]).to(self.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(ModelConfig.from_dict(cfg.model), classes=self.splits.classes)
        pix = train.images[keep].astype(np.float32) / 255.0
        self.model.normalize = (float(pix.mean()), float(pix.std()))
        self.init_note = ""  # what --init started from, for the log
        if cfg.init:
            self._load_init(cfg.init)
        self.teacher: Model | None = None
        self.soft_targets: torch.Tensor | None = None  # the teacher's predictions on each training face (N x C)
        if cfg.teacher and cfg.teacher_targets:
            probs = teacher_targets(cfg.teacher, self.splits, cfg.teacher_targets, self.device, progress)
            self.soft_targets = torch.as_tensor(probs[keep]).to(self.device)
            self.init_note += ("\n# " if self.init_note else "") + (
                f"teacher: {cfg.teacher}, its predictions on the clean training faces from {cfg.teacher_targets}, "
                f"distill weight {cfg.distill_weight:g}, temperature {cfg.temperature:g}")
        elif cfg.teacher:
            self._load_teacher(cfg.teacher)
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(n / cfg.batch_size)
        if cfg.swa:  # a linear warm-up over the first epoch, then constant
            self.sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LinearLR(
                self.opt, start_factor=0.04, end_factor=1.0, total_iters=self.steps_per_epoch)
        else:
            self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                             steps_per_epoch=self.steps_per_epoch)
        self.swa_model = AveragedModel(self.model) if cfg.swa else None
        self.history: list[dict[str, float]] = []
        self.best_acc, self.best_epoch, self.epoch = -1.0, 0, 0
        self.resume_note = ""  # set when a run goes on from best_model.pt because last.pt was lost

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def best_path(self) -> Path:
        return self.out / "best_model.pt"

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    def _meta(self) -> dict[str, Any]:
        return {"protocol": self.splits.protocol, "dataset": self.splits.dataset,
                "train_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.cfg).items()}}

    def save_last(self) -> None:
        atomic_save({**checkpoint_dict(self.model, **self._meta()), "optimizer": self.opt.state_dict(),
                     "scheduler": self.sched.state_dict(), "epoch": self.epoch, "history": self.history,
                     "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                     "torch_rng": torch.get_rng_state(),
                     **({"swa_state": {k: v.detach().cpu() for k, v in self.swa_model.state_dict().items()}}
                        if self.swa_model is not None else {})}, self.last_path)

    def resume(self) -> None:
        """Restore the run from ``last.pt`` (refusing one trained with another recipe).

        Where ``last.pt`` was lost but ``best_model.pt`` is there, go on from the best epoch instead: its
        weights, history and schedule position are restored; the optimiser's moment estimates restart at zero.
        """
        if not self.last_path.exists() and self.best_path.exists():
            if self.cfg.swa:
                raise FileNotFoundError(f"--resume of an --swa run needs {self.last_path} (the running average "
                                        "lives only there): start the run again without --resume")
            return self._resume_from_best()
        ck = read_checkpoint(self.last_path)
        self._load_same_recipe(ck, self.last_path)
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.epoch, self.history = int(ck["epoch"]), list(ck["history"])
        self.best_acc, self.best_epoch = float(ck["best_acc"]), int(ck["best_epoch"])
        torch.set_rng_state(ck["torch_rng"])
        if self.swa_model is not None:
            self.swa_model.load_state_dict(ck["swa_state"])

    def _resume_from_best(self) -> None:
        ck = read_checkpoint(self.best_path)
        self._load_same_recipe(ck, self.best_path)
        self.epoch = int(ck["epoch"])
        self.history = [row for row in ck["history"] if row["epoch"] <= self.epoch]
        self.best_acc, self.best_epoch = float(ck["metrics"]["val_acc"]), self.epoch
        with warnings.catch_warnings():  # advance One-Cycle to where the run stopped (no optimiser step taken)
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(self.epoch * self.steps_per_epoch):
                self.sched.step()
        self.resume_note = (f"NOTE: no {self.last_path.name}: going on from {self.best_path.name} after epoch {self.epoch} "
                            "(weights, history and schedule restored; the optimiser's moments restart at zero)")
        print(self.resume_note, file=sys.stderr)

    def _load_same_recipe(self, ck: dict[str, Any], path: Path) -> None:
        """Load the weights and normalisation of ``ck``, refusing a checkpoint trained with another recipe."""
        mine = self._meta()["train_config"]
        # checkpoints written before these options existed were trained with their defaults
        later = {f.name: f.default for f in fields(TrainConfig) if f.name in LATER_OPTIONS}
        theirs = {**later, **ck.get("train_config", {})}
        diff = sorted(k for k in mine if k not in ("epochs", "patience") and mine[k] != theirs.get(k))
        if diff:
            raise ValueError(f"{path} was trained with other settings ({', '.join(diff)}): "
                             "resume with the same options, or use another output folder")
        if theirs.get("epochs") != mine["epochs"] and not mine["swa"]:  # (--swa: constant lr, any --epochs)
            raise ValueError(f"{path} was trained for --epochs {theirs.get('epochs')}: the One-Cycle "
                             "schedule depends on it, so resume with the same --epochs")
        self._load_weights(ck)

    def _load_weights(self, ck: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["state_dict"])
        self.model.normalize = (ck["normalize"]["mean"], ck["normalize"]["std"])

    def _load_init(self, path: str) -> None:
        """Start from the weights of the checkpoint at ``path``, which must have this run's model and classes."""
        ck = read_checkpoint(path)
        require_network(ck, path, "--init")
        if ck.get("config") != self.model.config.to_dict() or list(ck.get("classes", [])) != list(self.model.classes):
            raise ValueError(f"--init {path}: its model or classes differ from this run's; "
                             "pass the same model options (--input-size, --widths, --downsample) as it was trained with")
        self._load_weights(ck)
        self.init_note = (f"init: weights of {path} (epoch {ck.get('epoch')}, "
                          f"val acc {ck.get('metrics', {}).get('val_acc', float('nan')):.4f})")

    def _load_teacher(self, path: str) -> None:
        """The model (network or ensemble) at ``path`` as the teacher: same classes in the same order, same input size."""
        teacher = self.teacher = load_teacher(path, self.model.classes, self.device, self.model.input_size)
        meta = teacher.meta
        self.init_note += ("\n# " if self.init_note else "") + (
            f"teacher: {path} ({type(teacher).__name__}, val acc {meta.get('metrics', {}).get('val_acc', float('nan')):.4f}), "
            f"distill weight {self.cfg.distill_weight:g}, temperature {self.cfg.temperature:g}")

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (an ensemble's: log mean probability) for the student's normalised batch ``x``."""
        assert self.teacher is not None
        mean, std = self.model.normalize
        tmean, tstd = self.teacher.normalize
        if (tmean, tstd) != (mean, std):  # the same pixels under the teacher's own normalisation
            x = (x * std + mean - tmean) / tstd
        with self.autocast():
            return self.teacher(x).float()

    def autocast(self) -> torch.autocast:
        """Mixed precision for forward passes as ``amp`` asks (off where it is off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, float]:
        cfg, model = self.cfg, self.model
        model.train()
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
        n = len(self.train_labels)
        order = torch.randperm(n, generator=g).to(self.device)
        mean, std = model.normalize
        size, n_classes = model.input_size, len(model.classes)
        tot_loss = tot_correct = seen = 0.0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not self.progress, mininterval=2.0)
        for i in bar:
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = self.train_images[idx].float().div_(255.0).unsqueeze(1)
            y = self.train_labels[idx]
            x = augment(x, size, g, scale=cfg.crop_scale, degrees=cfg.rotation).sub_(mean).div_(std)
            t = F.one_hot(y, n_classes).float()
            if self.soft_targets is not None:  # blended with the same partners and weight as the labels
                t = torch.cat([t, self.soft_targets[idx]], 1)
            x, t = mixup(x, t, cfg.mixup_alpha, g)
            t, soft = t[:, :n_classes], t[:, n_classes:]
            x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                logits = model(x)
            loss = focal_loss(logits, t, cfg.gamma)
            teacher_logp = (soft.clamp_min(1e-8).log() if self.soft_targets is not None
                            else self.teacher_logits(x) if self.teacher is not None else None)
            if teacher_logp is not None:
                kd = distillation_loss(logits, teacher_logp, cfg.temperature)
                loss = cfg.distill_weight * kd + (1 - cfg.distill_weight) * loss
            self.opt.zero_grad(set_to_none=True)
            if self.amp_dtype == torch.float16:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                loss.backward()
                self.opt.step()
            self.sched.step()
            b = len(y)
            tot_loss += float(loss.detach()) * b
            tot_correct += float((logits.argmax(1) == t.argmax(1)).sum())
            seen += b
            if i % 20 == 0:
                bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        return tot_loss / seen, tot_correct / seen

    # -- the run ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if resume:
            self.resume()
            print(f"resuming after epoch {self.epoch} (best val acc {self.best_acc:.4f})")
        val = self.splits.val
        while self.epoch < cfg.epochs and self.epoch - self.best_epoch < cfg.patience:
            t0 = time.time()
            lr = self.opt.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch()
            extra: dict[str, float] = {}
            scored = self.model
            if self.swa_model is not None:
                self.swa_model.update_parameters(self.model)  # validate (and keep) the average of the weights so far
                extra["raw_val_acc"] = evaluate_accuracy(self.model, val.images, val.labels)[0]
                scored = self.averaged_model()
            val_acc, val_loss = evaluate_accuracy(scored, val.images, val.labels)
            self.epoch += 1
            row = {"epoch": self.epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "seconds": time.time() - t0, **extra}
            self.history.append(row)
            improved = val_acc > self.best_acc
            if improved:
                self.best_acc, self.best_epoch = val_acc, self.epoch
                save_checkpoint(scored, self.best_path, epoch=self.epoch, history=self.history,
                                metrics={"val_acc": val_acc}, **self._meta())
            self.save_last()
            self.write_history()
            msg = (f"epoch {self.epoch:3d}/{cfg.epochs}  lr {lr:.2e}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
                   f"val loss {val_loss:.4f} acc {val_acc:.4f}"
                   + (f" (averaged; last weights {extra['raw_val_acc']:.4f})" if extra else "")
                   + f"  {row['seconds']:.0f}s{'  *best' if improved else ''}")
            print(msg, flush=True)
            if self.on_epoch:
                self.on_epoch(row)
        if self.epoch - self.best_epoch >= cfg.patience:
            print(f"early stop: no val improvement for {cfg.patience} epochs (best epoch {self.best_epoch})")
        self.finish()
        return self.history

    def averaged_model(self) -> MiniXception:
        """The running weight average as a plain model, its batch-norm statistics recomputed on training faces.

        The average of several weights is a model no batch ever went through, so its BN running means and
        variances are measured afresh (:func:`recompute_bn`) on a seeded subset of clean training faces
        (``swa_bn_faces``).
        """
        assert self.swa_model is not None
        model = build_model(self.model.config, classes=self.model.classes)
        model.normalize = self.model.normalize
        model.load_state_dict(self.swa_model.module.state_dict())
        model.to(self.device).to(memory_format=torch.channels_last)
        pick = np.random.default_rng(self.cfg.seed).permutation(len(self.train_labels))[:self.cfg.swa_bn_faces]
        return recompute_bn(model, self.train_images[torch.as_tensor(pick).to(self.device)], self.cfg.batch_size,
                            dropout=True, seed=self.cfg.seed)

    def write_history(self) -> None:
        tmp = self.out / ".history.csv.tmp"
        fields = self.HISTORY_FIELDS + (("raw_val_acc",) if self.cfg.swa else ())
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(self.history)
        tmp.replace(self.out / "history.csv")

    def finish(self) -> None:
        """Choose the best checkpoint's test-time crop on validation, score it, store both and the history in it."""
        ck = finalize_checkpoint(self.best_path, self.splits, self.device, history=self.history)
        print(f"best epoch {ck['epoch']}, test-time crop {ck['crop']:g}, {ck['bn']} BN statistics: "
              + ", ".join(f"{k} {v:.4f}" for k, v in ck["metrics"].items()))


def load_teacher(path: str | Path, classes: tuple[str, ...], device: str | torch.device = "cpu",
                 input_size: int | None = None) -> Model:
    """The model (network or ensemble) at ``path`` as a teacher: the same classes in the same order and, where
    ``input_size`` is given (a teacher shown the student's batches), the same input size; refused in one line."""
    teacher = load_model(path, device)
    if tuple(teacher.classes) != tuple(classes) or input_size not in (None, teacher.input_size):
        raise ValueError(f"--teacher {path}: its classes {list(teacher.classes)} or input size {teacher.input_size} "
                         f"differ from this run's ({list(classes)}, {input_size or 'any'}): "
                         "distil from a model trained on the same data and input size")
    return teacher


def teacher_targets(teacher: str | Path, splits: Splits, path: str | Path, device: str | torch.device = "cpu",
                    progress: bool = True) -> np.ndarray:
    """The teacher's flip-averaged probabilities on every clean training face of ``splits`` (N x C, the
    student's class order), read from ``path`` or, where it does not exist yet, computed and saved there.

    A teacher pass per training step costs what the teacher costs (one forward pass per member: a
    four-member ensemble doubled the time per epoch here); these targets cost one pass over the faces, once. The file records the teacher's path,
    the classes and a digest of the faces, and is refused for another teacher or other faces. It is derived
    from the faces' pixels, so it belongs beside the data (``data/``), never in the repository.
    """
    path = Path(path)
    digest = hashlib.sha1(np.ascontiguousarray(splits.train.images).tobytes()).hexdigest()
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # not a torch file, truncated, or holding objects weights_only refuses
            raise ValueError(f"--teacher-targets {path} could not be read ({type(e).__name__}): delete it, "
                             "or pass another path") from None
        if not isinstance(saved, dict) or not {"teacher", "faces_sha1", "classes", "probs"} <= set(saved):
            raise ValueError(f"--teacher-targets {path} is not a file of teacher predictions: pass another path")
        if (os.path.normpath(saved["teacher"]), saved["faces_sha1"], tuple(saved["classes"])) != (
                os.path.normpath(teacher), digest, tuple(splits.classes)):
            raise ValueError(f"--teacher-targets {path} holds the predictions of {saved['teacher']} on other faces or "
                             f"for another teacher than {teacher}: delete it, or pass another path")
        return saved["probs"].numpy()
    model = load_teacher(teacher, splits.classes, device)  # (any input size: it sees the faces, not the batches)
    faces, step = splits.train.images, 1024
    probs = np.concatenate([predict_proba(model, faces[i:i + step], tta=True) for i in tqdm(
        range(0, len(faces), step), desc="teacher predictions", unit="chunk", disable=not progress, mininterval=2.0)])
    atomic_save({"teacher": str(teacher), "faces_sha1": digest, "classes": list(splits.classes),
                 "probs": torch.as_tensor(probs, dtype=torch.float32)}, path)
    return probs


def recompute_bn(model: MiniXception, faces: np.ndarray | torch.Tensor, batch_size: int = 128,
                 dropout: bool = False, seed: int = 0) -> MiniXception:
    """Measure ``model``'s batch-norm statistics afresh on uint8 ``faces``, prepared as at inference (crop included).

    BN layers keep running means and variances of the batches they trained on: augmented and MixUp-blended
    faces, or, for an average of weights, no batch at all. This replaces them with the exact mean and variance
    over ``faces``. By default only the BN layers run in training mode, so dropout is off as at inference.
    With ``dropout`` the whole model runs in training mode, as ``torch.optim.swa_utils.update_bn`` does: the
    statistics then include the variance that dropout adds (the "variance shift" of Li et al., 2019), its masks
    drawn from ``seed`` so that the result is still deterministic. Which of the two validates better is an
    empirical question that :func:`tune_inference` answers per model. Returns the model, in eval mode.
    """
    device = next(model.parameters()).device
    mean, std = model.normalize
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.train(dropout)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, len(faces), batch_size):
            model(to_tensor(faces[i:i + batch_size], model.input_size, mean, std, device, model.crop).contiguous(
                memory_format=torch.channels_last))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


#: Test-time centre crops tried on validation (fractions of the face's side; 1 = the whole face).
CROP_CANDIDATES = (1.0, 0.95, 0.9, 0.85)


#: Where tune_inference's BN statistics come from: as trained, or measured on clean training faces with
#: dropout off or on (:func:`recompute_bn`).
BN_SOURCES = ("trained", "clean", "clean+dropout")


def tune_inference(model: MiniXception, images: np.ndarray, labels: np.ndarray, bn_faces: np.ndarray | None = None,
                   crops: tuple[float, ...] = CROP_CANDIDATES) -> tuple[MiniXception, list[dict[str, Any]]]:
    """The inference settings with the best accuracy on ``images`` (validation faces): a centre crop from
    ``crops``, and the BN statistics from training or, where ``bn_faces`` (clean training faces) is given,
    measured on them at that crop, with dropout off or on (:func:`recompute_bn`).

    Returns the chosen model (``model`` itself or a copy; ``model`` is left as it was) and one row per setting
    tried: crop, bn (one of ``BN_SOURCES``), val_acc. Ties go to the earlier row: trained BN, larger crop.
    """
    import copy
    if not crops:
        raise ValueError("crops is empty: pass at least one crop fraction, e.g. (1.0, 0.9)")
    rows: list[dict[str, Any]] = []
    best: tuple[float, MiniXception] | None = None
    for bn in BN_SOURCES if bn_faces is not None else BN_SOURCES[:1]:
        for c in crops:
            m = copy.deepcopy(model)
            m.crop = float(c)
            if bn != "trained":
                recompute_bn(m, bn_faces, dropout=bn == "clean+dropout")  # type: ignore[arg-type]
            acc = evaluate_accuracy(m, images, labels)[0]
            rows.append({"crop": float(c), "bn": bn, "val_acc": acc})
            if best is None or acc > best[0]:
                best = (acc, m)
    assert best is not None
    return best[1], rows


def clean_bn_faces(splits: Splits, n: int = 8192, seed: int = 0) -> np.ndarray:
    """``n`` training faces drawn with ``seed``, in their split's order: where tuning measures clean BN statistics."""
    return splits.train.images[np.sort(np.random.default_rng(seed).permutation(len(splits.train))[:n])]


def score_splits(model: Model, splits: Splits) -> dict[str, float]:
    """Accuracy on validation and test, with and without flip TTA: the ``metrics`` a checkpoint records."""
    from emo.evaluate import labels_in_model_order
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        labels = labels_in_model_order(splits[split], splits.classes, model)
        for tta in (False, True):
            metrics[f"{split}_acc{'_tta' if tta else ''}"] = evaluate_accuracy(model, splits[split].images, labels, tta)[0]
    return metrics


def finalize_checkpoint(path: str | Path, splits: Splits, device: str | torch.device = "cpu",
                        history: list[dict[str, float]] | None = None, bn_faces: int = 8192,
                        seed: int = 0) -> dict[str, Any]:
    """Tune the inference settings of the checkpoint at ``path`` on validation (:func:`tune_inference`, with
    ``bn_faces`` seeded clean training faces), then score it on validation and test with and without flip TTA;
    store the settings (``crop``, and the BN statistics in the weights), the search and the scores in the
    checkpoint, atomically.

    Only the validation split chooses; the test split is scored once, with the chosen settings.
    """
    from emo.evaluate import labels_in_model_order
    from emo.model import model_from_checkpoint
    ck = read_checkpoint(path)
    require_network(ck, path, "tuning the inference settings")
    model = model_from_checkpoint(ck).to(device).to(memory_format=torch.channels_last).eval()
    val_labels = labels_in_model_order(splits.val, splits.classes, model)
    model, search = tune_inference(model, splits.val.images, val_labels, clean_bn_faces(splits, bn_faces, seed))
    chosen = max(search, key=lambda r: r["val_acc"])  # the first best, as tune_inference chose
    metrics = score_splits(model, splits)
    ck.update(crop=model.crop, bn=chosen["bn"], inference_search=search, metrics=metrics,
              state_dict={k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    if history is not None:
        ck["history"] = history
    atomic_save(ck, path)
    return ck


def full_history(meta: dict[str, Any]) -> tuple[list[dict[str, float]], list[int]]:
    """A checkpoint's training history preceded by those of the checkpoints it was ``--init``-ed from.

    Returns the epochs numbered on across the runs, and the epoch at which each warm restart began.
    A starting checkpoint that is not at hand (its path is tried as given and from the project root) ends the chain.
    """
    runs = [list(meta.get("history") or [])]
    init, seen = meta.get("train_config", {}).get("init"), set()
    while init and init not in seen:
        seen.add(init)
        path = next((p for p in (Path(init), PROJECT_ROOT / init) if p.is_file()), None)
        if path is None:
            break
        ck = read_checkpoint(path)
        runs.insert(0, list(ck.get("history") or []))
        init = ck.get("train_config", {}).get("init")
    history: list[dict[str, float]] = []
    restarts: list[int] = []
    for i, rows in enumerate(runs):
        if i:
            restarts.append(len(history) + 1)
        history += [{**row, "epoch": len(history) + j + 1} for j, row in enumerate(rows)]
    return history, restarts


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d, m = TrainConfig(), ModelConfig(input_size=48, downsample="stride")
    p = argparse.ArgumentParser(prog="python -m emo.train", description=__doc__.split("\n\n")[0])
    p.add_argument("output_dir", nargs="?", default=str(DEFAULT_OUTPUT), help="where best_model.pt goes (default results/)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak One-Cycle learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--gamma", type=float, default=d.gamma, help="focal loss gamma (0 = cross-entropy)")
    p.add_argument("--mixup", type=float, default=d.mixup_alpha, help="MixUp alpha (0 = off)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping, epochs without val improvement")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol)
    p.add_argument("--source", choices=SOURCES, default=d.source, help="auto: FER-2013 if imported, else generated faces")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=d.amp)
    p.add_argument("--limit", type=int, default=0, help="train on a seeded random subset of N faces (quick runs)")
    p.add_argument("--input-size", type=int, default=m.input_size, help="48 (native, ours) or 128 (reference)")
    p.add_argument("--widths", type=int, nargs="+", default=list(m.widths))
    p.add_argument("--downsample", choices=("pool", "stride"), default=m.downsample,
                   help="pool: the reference's max-pool; stride: strided depthwise conv (faster)")
    p.add_argument("--reference", action="store_true", help="the reference configuration: 128x128 input, max-pool")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--resume", action="store_true", help="go on from OUTPUT_DIR/last.pt")
    p.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights with a fresh optimiser and One-Cycle (a warm restart)")
    p.add_argument("--swa", action="store_true",
                   help="with --init: constant --lr (after a one-epoch warm-up) and the weights averaged over "
                        "the epochs (stochastic weight averaging); the averaged model is validated and saved")
    p.add_argument("--teacher", default="", metavar="CHECKPOINT",
                   help="knowledge distillation: pull the predictions towards this model's or ensemble's, "
                        "shown the same augmented batches")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="with --teacher: weight of the distillation loss (the focal loss on the labels gets 1 - it)")
    p.add_argument("--temperature", type=float, default=d.temperature, help="with --teacher: distillation temperature")
    p.add_argument("--teacher-targets", default="", metavar="FILE",
                   help="with --teacher: distil towards the teacher's predictions on the clean training faces, "
                        "computed once into FILE (or read from it), instead of a teacher pass on every batch")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    model = ModelConfig() if a.reference else ModelConfig(
        input_size=a.input_size, widths=tuple(a.widths), strides=(2,) * (len(a.widths) - 1) + (1,),
        downsample=a.downsample)
    return TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, gamma=a.gamma,
                       mixup_alpha=a.mixup, patience=a.patience, seed=a.seed, protocol=a.protocol, source=a.source,
                       amp=a.amp, limit=a.limit, init=a.init, swa=a.swa, teacher=a.teacher,
                       distill_weight=a.distill_weight, temperature=a.temperature, teacher_targets=a.teacher_targets,
                       model=model.to_dict())


def train_from_args(a: argparse.Namespace, argv: list[str] | None = None) -> None:
    """Train as the command line ``a`` (parsed from ``argv``) says, logging to ``train_log.txt``."""
    cfg = config_from_args(a)
    trainer = Trainer(cfg, a.output_dir, a.device, progress=not a.no_progress)
    if a.resume and not (trainer.last_path.exists() or trainer.best_path.exists()):
        raise FileNotFoundError(f"--resume: no {trainer.last_path} (nor {trainer.best_path.name}) to resume from; "
                                "drop --resume to start afresh")
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_log.txt", "a") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {command_line('emo.train', argv)}\n# device {trainer.device}, "
                f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
                f"# data {trainer.splits.dataset} ({trainer.splits.protocol}): {trainer.splits.sizes()}\n"
                f"# config {json.dumps(asdict(cfg))}\n" + (f"# {trainer.init_note}\n" if trainer.init_note else ""))

    def log_epoch(row: dict[str, float]) -> None:
        with open(out / "train_log.txt", "a") as f:
            if trainer.resume_note:
                f.write(f"# {trainer.resume_note}\n")
                trainer.resume_note = ""
            f.write(json.dumps(row) + "\n")
    trainer.on_epoch = log_epoch
    print(f"training on {trainer.splits.dataset} ({trainer.splits.protocol} protocol, "
          f"{len(trainer.train_labels):,} faces) on {trainer.device}; writing {trainer.best_path}")
    trainer.fit(resume=a.resume)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        return run_command(lambda: train_from_args(a, argv), a.threads)
    except KeyboardInterrupt:
        print(f"\ninterrupted: resume with `python -m emo.train {a.output_dir} --resume` (same options)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
