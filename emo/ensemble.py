"""Ensemble trained networks: greedy forward selection on validation (Caruana et al., 2004).

    python -m emo.ensemble runs/a/best_model.pt runs/b/best_model.pt ... --out runs/ensemble/best_model.pt

A weight average (``python -m emo.soup``) costs nothing at inference but helps only where the runs share
one basin of the loss; an ensemble averages the runs' predicted probabilities instead, which helps
wherever their errors differ, at the cost of one forward pass per member. Greedy: the ensemble starts
with the candidate most accurate on validation; each round, the candidate whose addition gives the
highest validation accuracy joins if it raises that accuracy (a member that adds nothing would only cost
time), and selection stops when none does (or at ``max_members``). Each candidate keeps the inference
settings (centre crop, BN statistics) that its own training chose on validation. Only validation
chooses; the test split is scored once, at the end.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from emo import checkpoint
from emo.cli import checkpoints_parser, command_line, refuse_to_replace, run_command
from emo.evaluation import labels_in_model_order, split_accuracies
from emo.files import RUNS_DIR, file_sha256, folder_lock, write_with
from emo.model import Ensemble, predict_proba
from emo.soup import ingredients_splits, read_ingredients

DEFAULT_ENSEMBLE = RUNS_DIR / "ensemble" / "best_model.pt"
#: A member's own record that describes the member, not the ensemble: kept per member in ``ensemble``.
MEMBER_KEYS = ("crop", "bn", "inference_search", "metrics", "soup")


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def select_members(probs: Sequence[np.ndarray], labels: np.ndarray,
                   max_members: int | None = None) -> list[dict[str, Any]]:
    """Greedy forward selection over candidates' class probabilities (one N x C array each) on ``labels``.

    Returns a row per round: ``index`` (the candidate that did best joined to the members so far), ``val_acc``
    (that candidate alone), ``ensemble_val_acc`` (the members so far with it) and ``kept``. The first row is
    the best candidate alone (kept); the last row is the round that stopped selection, if one did (not kept).
    Ties go to the earlier candidate.
    """
    if not probs:
        raise ValueError("no candidates to select from: pass at least one")
    if max_members is not None and max_members < 1:
        raise ValueError(f"max_members must be at least 1, got {max_members}")
    alone = [accuracy(p, labels) for p in probs]
    first = int(np.argmax(alone))
    rows = [{"index": first, "val_acc": alone[first], "ensemble_val_acc": alone[first], "kept": True}]
    kept, total, best = [first], probs[first].astype(np.float64), alone[first]
    while len(kept) < min(len(probs), max_members or len(probs)):
        rest = [i for i in range(len(probs)) if i not in kept]
        scores = [accuracy(total + probs[i], labels) for i in rest]
        j = int(np.argmax(scores))
        i, acc = rest[j], scores[j]
        keep = acc > best
        rows.append({"index": i, "val_acc": alone[i], "ensemble_val_acc": acc, "kept": keep})
        if not keep:
            break
        kept.append(i)
        total, best = total + probs[i], acc
    return rows


def copy_members(paths: Sequence[Path], folder: Path, overwrite: bool = False) -> list[Path]:
    """Copy the checkpoints at ``paths`` into ``folder`` as ``<k>-<name>.pt`` (``name``: the file's folder, or its
    stem for a bare file), each atomically; a different file already at a target is replaced only with ``overwrite``."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for k, src in enumerate(paths, 1):
        dst = folder / f"{k}-{src.parent.name if src.name == 'best_model.pt' and src.parent.name else src.stem}.pt"
        if dst.exists() and file_sha256(dst) != file_sha256(src):
            refuse_to_replace(dst, overwrite)
        with open(src, "rb") as f:
            write_with(dst, lambda out: shutil.copyfileobj(f, out))  # noqa: B023 (called at once)
        copies.append(dst)
    return copies


def rounds_record(rows: list[dict[str, Any]], paths: Sequence[str | Path], cks: list[dict[str, Any]]) -> list[dict]:
    """The ``ensemble`` record's rows: each round's candidate path, its scores and its own inference settings."""
    return [{"path": str(paths[r["index"]]), **{k: v for k, v in r.items() if k != "index"},
             **{k: cks[r["index"]][k] for k in MEMBER_KEYS if k in cks[r["index"]]}} for r in rows]


def ensemble_entries(best: dict[str, Any]) -> dict[str, Any]:
    """The entries an ensemble keeps of its best member: its training configuration, its history and those of the
    runs it was ``--init``-ed from (its learning curves, without the files they came from)."""
    entries = {k: v for k, v in best.items() if k not in MEMBER_KEYS and k != "state_dict"}
    entries["init_histories"] = checkpoint.training_runs(best)[:-1]
    return entries


def make_ensemble(paths: Sequence[str | Path], out: str | Path = DEFAULT_ENSEMBLE, source: str = "auto",
                  max_members: int | None = None, log: Any = print, overwrite: bool = False) -> dict[str, Any]:
    """Select an ensemble from the checkpoints at ``paths`` on validation, score it, and write it to ``out``.

    The members' files are copied into ``members/`` beside ``out`` (``<round>-<its folder's name>.pt``), so
    the folder stands alone: copied anywhere, it loads. The checkpoint names them, ``members``: each one's path
    relative to ``out``'s folder and the SHA-256 of its file (:func:`emo.checkpoint.members`), and holds the
    metadata of the best member (its training configuration and history), ``metrics`` of the ensemble
    (validation and test, with and without flip TTA), and ``ensemble``: a row per selection round with the
    candidate's path, its own inference settings and scores. ``out`` is written atomically, last, and may
    not be one of the candidates; it and member files already there are replaced only with ``overwrite``.
    """
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in paths):
        raise ValueError(f"--out {out} is one of the candidates, whose file the ensemble would need: "
                         "write the ensemble elsewhere")
    refuse_to_replace(out, overwrite)
    cks = read_ingredients(paths, task="an ensemble")
    splits = ingredients_splits(cks[0], source, "an ensemble")
    models = [checkpoint.network(ck).to(memory_format=torch.channels_last).eval() for ck in cks]
    val_labels = labels_in_model_order(splits.val, splits.classes, models[0])
    probs = [predict_proba(m, splits.val.images) for m in tqdm(models, desc="candidates on validation", leave=False)]
    rows = select_members(probs, val_labels, max_members)
    for r in rows:
        log(f"{paths[r['index']]}: validation {r['val_acc']:.2%} alone, ensemble with it {r['ensemble_val_acc']:.2%}: "
            + ("kept" if r["kept"] else "left out, and selection stops"))
    kept = [r["index"] for r in rows if r["kept"]]
    model = Ensemble([models[i] for i in kept]).eval()
    metrics = split_accuracies(model, splits)
    with folder_lock(out.parent, "--out folder"):  # (its members and its checkpoint: one writer at a time)
        members = [{"path": path.relative_to(out.parent).as_posix(), "sha256": file_sha256(path)}
                   for path in copy_members([Path(paths[i]) for i in kept], out.parent / "members", overwrite)]
        ck = {**ensemble_entries(cks[kept[0]]), "version": checkpoint.VERSION, "crop": 1.0, "members": members,
              "metrics": metrics, "ensemble": {"rounds": rounds_record(rows, paths, cks),
                                               "candidates": [str(p) for p in paths],
                                               "max_members": max_members, "command": command_line("emo.ensemble"),
                                               "time": time.strftime("%Y-%m-%d %H:%M:%S")}}
        checkpoint.save(ck, out)
    log(f"{out}: {len(kept)} of {len(paths)} candidates: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return ck


def main(argv: list[str] | None = None) -> int:
    p = checkpoints_parser("emo.ensemble", __doc__, "two or more best_model.pt files of one architecture and data",
                           DEFAULT_ENSEMBLE)
    p.add_argument("--max-members", type=int, default=None,
                   help="at most this many members (each costs a forward pass)")
    a = p.parse_args(argv)
    return run_command(lambda: make_ensemble(a.checkpoints, a.out, a.data, a.max_members,
                                                     overwrite=a.overwrite), a.threads)


if __name__ == "__main__":
    sys.exit(main())
