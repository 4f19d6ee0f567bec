"""The checkpoint: one schema, one way to write it, one way to read it.

A checkpoint is a ``torch.save``-d dict, read back with ``weights_only=True`` (no pickled code runs). Its
entries, all written through :func:`save` and checked by :func:`read`:

=================== ===========================================================================================
``format``          ``"emo-checkpoint"``
``version``         :data:`VERSION`; files of versions 1 and 2 read as before
``config``          the network's :class:`emo.network.ModelConfig`, as a dict (validated before any allocation)
``classes``         class names, in output order
``input_size``,     the preprocessing (:class:`emo.preprocess.Preprocessing`): faces are resized to
``normalize``,      ``input_size``, normalised with the training faces' ``{"mean", "std"}`` and centre-cropped
``crop``            to ``crop`` of their side
``state_dict``      the weights (a single network), or
``members``         an ensemble's members: ``[{"path", "sha256"}]``, paths relative to the ensemble's folder
=================== ===========================================================================================

Metadata, each written by one part of the project (:data:`META`): ``epoch``, ``history``, ``metrics``,
``protocol``, ``dataset``, ``train_config`` (the trainer); ``init_histories`` (``--init``); ``bn``, ``inference_search``
(the inference-setting search); ``soup``; ``ensemble``. ``last.pt`` adds what resuming needs (:data:`RESUME`),
each training extension's state under its own key in ``extensions``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from emo.files import PROJECT_ROOT, RESULTS_DIR, file_sha256, limit_from_env, write_with
from emo.network import MiniXception, ModelConfig
from emo.preprocess import Preprocessing, preprocessing_of, set_preprocessing

FORMAT = "emo-checkpoint"
#: 3: ``last.pt`` keeps each extension's state under ``extensions[<its key>]``; 2: ``members``; 1: the first.
VERSION = 3
#: What every checkpoint holds.
REQUIRED = ("format", "version", "config", "classes", "input_size", "normalize")
#: Metadata entries and the part of the project that writes each.
META = {
    "crop": "preprocessing", "epoch": "trainer", "history": "trainer", "metrics": "scoring", "protocol": "trainer",
    "dataset": "trainer", "train_config": "trainer", "init_histories": "--init", "bn": "inference search",
    "inference_search": "inference search", "soup": "emo.soup", "ensemble": "emo.ensemble",
}
#: What ``last.pt`` holds besides a checkpoint's entries, for ``--resume``.
RESUME = ("optimizer", "scheduler", "best_acc", "best_epoch", "torch_rng", "extensions")
#: A checkpoint file larger than this is refused before it is read (the largest shipped network is 9 MB).
MAX_BYTES = int(limit_from_env("EMO_MAX_CHECKPOINT_MB", 512) * 2**20)
#: Where the models that ship live, by the names that every ``--model`` (and ``--init``, ``--teacher``) takes.
SHIPPED_MODELS = {"default": RESULTS_DIR / "best_model.pt", "ensemble": RESULTS_DIR / "ensemble" / "best_model.pt"}
DEFAULT_MODEL = SHIPPED_MODELS["default"]


def model_path(name: str | os.PathLike) -> Path:
    """The file a model name means: a shipped model's name (:data:`SHIPPED_MODELS`), or a path."""
    return SHIPPED_MODELS.get(str(name), Path(name))


def network_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights, detached, on the CPU, contiguous: as a checkpoint stores them."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def entries(model: MiniXception) -> dict[str, Any]:
    """The entries that describe the network ``model`` and how faces are prepared for it."""
    return {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(), "classes": list(model.classes),
            **preprocessing_of(model).to_checkpoint(), "state_dict": network_state(model)}


def check(ck: dict[str, Any], where: str | os.PathLike = "checkpoint") -> dict[str, Any]:
    """``ck`` if it follows the schema, else a one-line ValueError naming ``where`` and what is wrong."""
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{where} is a PyTorch file but not an emo checkpoint: "
                         "pass a best_model.pt written by `python -m emo.train`")
    version = ck.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(f"{where} has checkpoint version {version!r}, newer than this emo ({VERSION}): upgrade emo")
    missing = [k for k in REQUIRED if k not in ck] + ([] if "state_dict" in ck or "members" in ck else ["state_dict"])
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}: it is damaged, or not written by emo")
    try:
        config = ModelConfig.from_dict(ck["config"])
        Preprocessing.from_checkpoint(ck)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{where}: {e}") from None
    if not isinstance(ck["classes"], (list, tuple)) or len(ck["classes"]) != config.num_classes:
        raise ValueError(f"{where}: {len(ck['classes'])} class names for a network of {config.num_classes} outputs")
    return ck


def save(ck: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the checkpoint dict ``ck`` to ``path``, atomically, after checking it against the schema (an entry
    the schema does not know is refused, so every writer keeps to it)."""
    unknown = sorted(set(ck) - set(REQUIRED) - set(META) - set(RESUME) - {"state_dict", "members"})
    if unknown:
        raise ValueError(f"checkpoint entries {unknown} are not in the schema (emo.checkpoint.META)")
    check(ck, path)
    return write_with(path, lambda f: torch.save(ck, f))


def save_network(model: MiniXception, path: str | os.PathLike, **meta: Any) -> Path:
    """Write ``model`` with its preprocessing and the metadata ``meta`` to ``path``."""
    return save({**entries(model), **meta}, path)


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict at ``path``, read safely (``weights_only=True``) and checked; one-line errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: train one with `python -m emo.train`, or pass the path of a "
                                "best_model.pt, or a shipped model's name (default, ensemble)")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file: pass the path of a best_model.pt")
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size / 2**20:.0f} MB, "
                         f"over the {MAX_BYTES // 2**20} MB a checkpoint "
                         "may be: pass a best_model.pt (or raise EMO_MAX_CHECKPOINT_MB)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}): "
                         "pass a best_model.pt written by `python -m emo.train`") from None
    return check(ck, path)


def require_network(ck: dict[str, Any], path: str | os.PathLike, task: str) -> None:
    """One-line refusal for what only a single network can do (train from it, tune it, average it)."""
    if "members" in ck:
        raise ValueError(f"{path} is an ensemble of {len(ck['members'])} networks, and {task} takes a single "
                         "network: pass one of its members' checkpoints (their paths are in its 'ensemble' record)")


def network(ck: dict[str, Any]) -> MiniXception:
    """The network the checkpoint dict ``ck`` describes, with its preprocessing (an ensemble:
    :func:`emo.model.load_model`)."""
    if "members" in ck:
        raise ValueError("an ensemble's checkpoint names its members' files: load it with load_model(path)")
    model = MiniXception(ModelConfig.from_dict(ck["config"]), tuple(ck["classes"]))
    set_preprocessing(model, Preprocessing.from_checkpoint(ck))
    bad = [k for k, v in ck["state_dict"].items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"checkpoint weights are not finite ({len(bad)} tensors hold NaN or infinity, e.g. {bad[0]}): "
                         "the run that wrote them diverged; use another checkpoint")
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1:2] or [str(e)]
        raise ValueError(f"checkpoint weights do not match its config: {first[0].strip()}") from None
    return model


def members(ck: dict[str, Any], path: str | os.PathLike) -> list[dict[str, Any]]:
    """The checkpoints of the members that the ensemble checkpoint ``ck`` (read from ``path``) names.

    An ensemble's checkpoint holds no weights of its own: each member is a path relative to the ensemble's
    folder and the SHA-256 of that file when the ensemble was made, so a member that was moved or retrained
    since is refused rather than silently used. A member must be a regular file inside that folder.
    """
    folder = Path(path).resolve().parent
    cks = []
    for m in ck["members"]:
        member = (folder / str(m["path"])).resolve()
        if not member.is_relative_to(folder):
            raise ValueError(f"the ensemble {path} names a member outside its folder ({m['path']}): "
                             "make the ensemble again with `python -m emo.ensemble`")
        if not member.exists():
            raise FileNotFoundError(f"the ensemble {path} needs its member {member}: copy or move the ensemble's "
                                    "whole folder, with its members/ (the paths it names are relative to its folder)")
        if not member.is_file():
            raise ValueError(f"the ensemble member {member} is not a regular file: make the ensemble again")
        if file_sha256(member) != m["sha256"]:
            raise ValueError(f"the ensemble member {member} has changed since the ensemble {path} was made: "
                             "make the ensemble again with `python -m emo.ensemble`")
        cks.append(read(member))
    return cks


def metadata(ck: dict[str, Any]) -> dict[str, Any]:
    """Everything but the weights: what a loaded model keeps as ``model.meta``."""
    return {k: v for k, v in ck.items() if k != "state_dict"}


# --------------------------------------------------------------------------------------------
# Training histories a checkpoint carries
# --------------------------------------------------------------------------------------------


def training_runs(meta: dict[str, Any], _seen: frozenset[str] = frozenset()) -> list[list[dict[str, float]]]:
    """The histories of the runs that made a checkpoint, oldest first: those of the checkpoints it was
    ``--init``-ed from, then its own.

    They come from the checkpoint itself where it carries them (``init_histories``, as training with
    ``--init`` stores them); otherwise each ``init`` checkpoint is read in turn (its path tried as given and
    from the project root), and one that is not at hand ends the chain.
    """
    own = list(meta.get("history") or [])
    if "init_histories" in meta:
        return [list(h) for h in meta["init_histories"]] + [own]
    init = meta.get("train_config", {}).get("init")
    if not init or init in _seen:  # (a run started from its own folder's checkpoint names itself)
        return [own]
    path = next((p for p in (model_path(init), PROJECT_ROOT / init) if p.is_file()), None)
    return (training_runs(read(path), _seen | {init}) if path is not None else []) + [own]


def full_history(meta: dict[str, Any]) -> tuple[list[dict[str, float]], list[int]]:
    """A checkpoint's training history preceded by those of the checkpoints it was ``--init``-ed from
    (:func:`training_runs`), the epochs numbered on across the runs; and the epoch at which each warm restart began.
    """
    history: list[dict[str, float]] = []
    restarts: list[int] = []
    for i, rows in enumerate(training_runs(meta)):
        if i:
            restarts.append(len(history) + 1)
        history += [{**row, "epoch": len(history) + j + 1} for j, row in enumerate(rows)]
    return history, restarts
