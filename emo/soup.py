"""Average the weights of models fine-tuned from one start: a greedy model soup (Wortsman et al., 2022).

    python -m emo.soup results/best_model.pt runs/other_swa/best_model.pt --out runs/soup/best_model.pt

Two runs from the same starting weights (say two ``--swa`` runs from one checkpoint, with other seeds
and learning rates) usually end in one basin of the loss, where the mean of their weights is a model as
good as either, often better, at the cost of one. Greedy: the ingredients are ranked by validation
accuracy; each one joins the soup only if the soup's validation accuracy, with its BN statistics measured
afresh, does not drop. The soup then gets its inference settings tuned on validation and is scored like
the end of a training run (:func:`emo.inference_search.tune_and_score`). Only validation chooses.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from emo import checkpoint
from emo.cli import checkpoints_parser, command_line, refuse_to_replace, run_command
from emo.datasets import load_dataset
from emo.evaluation import accuracy_and_nll, labels_in_model_order
from emo.files import RUNS_DIR
from emo.inference_search import clean_bn_faces, tune_and_score, tune_inference
from emo.preprocess import preprocessing_of
from emo.splits import Splits, make_splits

DEFAULT_SOUP = RUNS_DIR / "soup" / "best_model.pt"
#: What must agree between ingredients for their mean to mean anything.
MUST_MATCH = ("config", "classes", "input_size", "normalize", "dataset", "protocol")


def average_weights(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; counters (BN's ``num_batches_tracked``) from the first."""
    if not state_dicts:
        raise ValueError("no state dicts to average: pass at least one")
    first = state_dicts[0]
    return {k: torch.stack([sd[k].float() for sd in state_dicts]).mean(0).to(v.dtype) if v.is_floating_point()
            else v.clone() for k, v in first.items()}


def read_ingredients(paths: Sequence[str | Path], task: str = "a soup") -> list[dict[str, Any]]:
    """The checkpoints at ``paths``, refused with a one-line error unless they are single networks that share
    architecture, classes and data (``task`` names what they are for, in the errors: a soup, an ensemble)."""
    if len(paths) < 2:
        raise ValueError(f"{task} needs at least two checkpoints, got {len(paths)}: pass more paths")
    cks = [checkpoint.read(checkpoint.model_path(p)) for p in paths]
    for path, ck in zip(paths, cks):
        checkpoint.require_network(ck, path, task)
    for path, ck in zip(paths[1:], cks[1:]):
        for key in MUST_MATCH:
            if ck.get(key) != cks[0].get(key):
                raise ValueError(f"{path} differs from {paths[0]} in {key!r} ({ck.get(key)!r} vs {cks[0].get(key)!r}): "
                                 f"{task} takes models of one architecture, trained on the same data")
    return cks


def ingredients_splits(ck: dict[str, Any], source: str, task: str = "a soup") -> Splits:
    """The splits of the data and protocol that checkpoint ``ck`` was trained on, refused on other data."""
    ds = load_dataset(source)
    if ck.get("dataset") and ck["dataset"] != ds.name:
        raise ValueError(f"these models were trained on {ck['dataset']}, not {ds.name}: "
                         f"make {task} on their own data")
    return make_splits(ds, ck.get("protocol", "standard"))


def greedy_soup(cks: Sequence[dict[str, Any]], splits: Splits, bn_faces: int = 8192, seed: int = 0,
                device: str | torch.device = "cpu",
                log: Any = print) -> tuple[dict[str, torch.Tensor], float, list[dict[str, Any]]]:
    """Greedy soup of checkpoint dicts on ``splits``: the soup's weights, its centre crop, a row per ingredient.

    Each ingredient is scored as it is, with the inference settings its own training tuned on validation,
    then they are tried from best to worst: a candidate soup (the mean of the weights kept so far and the
    ingredient's) gets the same tuning (:func:`emo.inference_search.tune_inference`: centre crop, and BN statistics
    averaged or measured on ``bn_faces`` seeded clean training faces), so that both sides of the comparison
    had the same search, and is kept when its validation accuracy is at least the soup's so far. Rows, in
    the order tried: ``index`` (into ``cks``), ``val_acc`` (the ingredient alone), ``soup_val_acc`` (the
    candidate; the first row: the ingredient alone), ``kept``, and the candidate's best ``crop`` and ``bn``
    (one of :data:`emo.inference_search.BN_SOURCES`; "trained" is the mean of the ingredients' statistics).
    Returns the weights and the centre crop.
    """
    models = [checkpoint.network(ck).to(device).to(memory_format=torch.channels_last).eval() for ck in cks]
    val = splits.val
    labels = labels_in_model_order(val, splits.classes, models[0])
    scores = [accuracy_and_nll(m, val.images, labels)[0] for m in models]
    order = sorted(range(len(cks)), key=lambda i: -scores[i])  # stable: ties keep the order given
    bn_images = clean_bn_faces(splits, bn_faces, seed)
    kept = [order[0]]
    soup = {k: v.detach().clone() for k, v in models[order[0]].state_dict().items()}
    crop = preprocessing_of(models[order[0]]).crop
    best = scores[order[0]]
    rows = [{"index": order[0], "val_acc": best, "soup_val_acc": best, "kept": True, "crop": crop,
             "bn": cks[order[0]].get("bn", "trained")}]
    log(f"ingredient {order[0]}: validation {best:.2%} (the soup's first)")
    for i in order[1:]:
        candidate = copy.deepcopy(models[i])
        candidate.load_state_dict(average_weights([models[j].state_dict() for j in kept + [i]]))
        candidate, search = tune_inference(candidate, val.images, labels, bn_images)
        chosen = max(search, key=lambda r: r["val_acc"])  # the first best, as tune_inference chose
        acc = chosen["val_acc"]
        keep = acc >= best
        rows.append({"index": i, "val_acc": scores[i], "soup_val_acc": acc, "kept": keep, "crop": chosen["crop"],
                     "bn": chosen["bn"]})
        log(f"ingredient {i}: validation {scores[i]:.2%} alone, soup with it {acc:.2%} "
            f"(centre crop {chosen['crop']:g}, {chosen['bn']} BN statistics): "
            + ("kept" if keep else f"left out (soup so far {best:.2%})"))
        if keep:
            kept.append(i)
            best = acc
            soup, crop = ({k: v.detach().clone() for k, v in candidate.state_dict().items()},
                          preprocessing_of(candidate).crop)
    return {k: v.cpu().contiguous() for k, v in soup.items()}, crop, rows


def make_soup(paths: Sequence[str | Path], out: str | Path = DEFAULT_SOUP, source: str = "auto",
              bn_faces: int = 8192, seed: int = 0, log: Any = print, overwrite: bool = False) -> dict[str, Any]:
    """Cook a greedy soup of the checkpoints at ``paths`` into ``out``, tune and score it; returns the checkpoint.

    The soup's checkpoint keeps the metadata (training config, history) of its best ingredient and adds
    ``soup``: the ingredients' paths, their validation accuracies and which were kept. ``out`` is written
    atomically, after every ingredient has been read; a file already there (one of the ingredients, say) is
    replaced only with ``overwrite``.
    """
    refuse_to_replace(Path(out), overwrite)
    cks = read_ingredients(paths)
    splits = ingredients_splits(cks[0], source)
    state, crop, rows = greedy_soup(cks, splits, bn_faces, seed, log=log)
    first = cks[rows[0]["index"]]
    for r in rows:
        r["path"] = str(paths[r.pop("index")])
    ck = {**first, "state_dict": state, "crop": crop,
          "soup": {"ingredients": rows, "bn_faces": bn_faces, "seed": seed, "command": command_line("emo.soup"),
                   "time": time.strftime("%Y-%m-%d %H:%M:%S")}}
    checkpoint.save(ck, out)
    ck = tune_and_score(out, splits, bn_faces=bn_faces, seed=seed)
    log(f"{out}: {sum(r['kept'] for r in rows)} of {len(rows)} ingredients, centre crop {ck['crop']:g}, "
        f"{ck['bn']} BN statistics: " + ", ".join(f"{k} {v:.4f}" for k, v in ck["metrics"].items()))
    return ck


def main(argv: list[str] | None = None) -> int:
    p = checkpoints_parser("emo.soup", __doc__, "two or more best_model.pt files trained from one start",
                           DEFAULT_SOUP)
    p.add_argument("--bn-faces", type=int, default=8192, help="clean training faces for the BN statistics")
    p.add_argument("--seed", type=int, default=0, help="which training faces measure the BN statistics")
    a = p.parse_args(argv)
    return run_command(lambda: make_soup(a.checkpoints, a.out, a.data, a.bn_faces, a.seed,
                                                 overwrite=a.overwrite), a.threads)


if __name__ == "__main__":
    sys.exit(main())
