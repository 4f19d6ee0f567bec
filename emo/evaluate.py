"""Evaluate a checkpoint: accuracy and macro-F1 with and without flip TTA, report, figures.

    python -m emo.evaluate                      # results/best_model.pt -> results/metrics.json + figures
    python -m emo.evaluate runs/try1/best_model.pt --out runs/try1
    python -m emo.evaluate OLD.pt --tune        # first tune its crop and BN statistics on validation -> OLD.tuned.pt

TTA here is deterministic: the mean of the softmax of each face and of its mirror image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import classification_report, f1_score, roc_auc_score
from tqdm.auto import tqdm

from emo.cli import DATA_HELP, HelpFormatter, add_data_option, add_runtime_options, pick_device, run_command, shown_path
from emo.data import PROJECT_ROOT, Split, data_for_model, load_dataset, make_splits
from emo.metrics import full_history, labels_in_model_order
from emo.model import DEFAULT_MODEL, Model, load_model, predict_proba


@dataclass
class Evaluation:
    """Predictions of one model on one split, and the scores that follow from them."""

    name: str
    labels: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]
    tta: bool

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean())

    @property
    def macro_f1(self) -> float:
        return float(f1_score(self.labels, self.preds, labels=np.arange(len(self.classes)), average="macro",
                              zero_division=0))

    def auc_per_class(self) -> dict[str, float]:
        return {c: float(roc_auc_score(self.labels == k, self.probs[:, k]))
                for k, c in enumerate(self.classes) if 0 < (self.labels == k).sum() < len(self.labels)}

    def report(self) -> str:
        return classification_report(self.labels, self.preds, labels=np.arange(len(self.classes)),
                                     target_names=list(self.classes), digits=4, zero_division=0)

    def summary(self) -> dict[str, Any]:
        return {"faces": int(len(self.labels)), "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "auc": self.auc_per_class(),
                "report": classification_report(self.labels, self.preds, labels=np.arange(len(self.classes)),
                                                target_names=list(self.classes), output_dict=True, zero_division=0)}


def evaluate_split(model: Model, split: Split, data_classes: tuple[str, ...], tta: bool = False,
                   name: str = "test", batch_size: int | None = None) -> Evaluation:
    probs = predict_proba(model, split.images, tta=tta, batch_size=batch_size)
    return Evaluation(name, labels_in_model_order(split, data_classes, model), probs, model.classes, tta)


def save_figures(ev: Evaluation, ev_tta: Evaluation, out: Path, history: list[dict[str, float]] | None,
                 restarts: Sequence[int] = ()) -> list[Path]:
    """Confusion matrices (counts, normalised), ROC and learning curves as PNG files in ``out``."""
    import matplotlib.pyplot as plt

    from emo.plots import plot_confusion, plot_history, plot_roc

    written = []
    figs = {
        "confusion_matrix.png": plot_confusion(ev_tta.labels, ev_tta.preds, ev.classes,
                                               title=f"{ev.name}, flip TTA: counts"),
        "confusion_matrix_normalized.png": plot_confusion(ev_tta.labels, ev_tta.preds, ev.classes, normalize=True,
                                                          title=f"{ev.name}, flip TTA: recall per class"),
        "roc.png": plot_roc(ev_tta.labels, ev_tta.probs, ev.classes, title=f"One-vs-rest ROC, {ev.name}, flip TTA"),
    }
    if history:
        figs["learning_curves.png"] = plot_history(history, restarts=restarts)
    out.mkdir(parents=True, exist_ok=True)
    for fname, fig in figs.items():
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        written.append(out / fname)
    return written


def run(model_path: str | Path = DEFAULT_MODEL, out_dir: str | Path | None = None, source: str | None = None,
        figures: bool = True, batch_size: int | None = None, default_out: bool = False,
        tune: bool = False, device: str | None = None) -> dict[str, Any]:
    """Evaluate ``model_path`` on the test split of its own protocol (and on the reference protocol's).

    ``source`` is the dataset (``--data``); None scores the model on the dataset it was trained on, where this
    checkout has it (:func:`emo.data.data_for_model`). Writes ``metrics.json``, the report and figures to
    ``out_dir`` (nothing when None). With ``default_out`` they go beside the model, unless the data is not what the model was trained on
    (e.g. generated faces on a fresh clone): then to ``runs/evaluate/``, so shipped results stay intact.
    With ``tune`` the checkpoint's inference settings (centre crop, BN statistics) are first chosen on the
    validation split (as training does at its end) and written to a new checkpoint beside it,
    ``<name>.tuned.pt``, which is then evaluated (the original is never rewritten); refused on data the model
    was not trained on, or where that file exists already.
    """
    device = pick_device(device)
    model = load_model(model_path, device)
    meta = model.meta
    protocol = meta.get("protocol", "standard")
    ds = load_dataset(source or data_for_model(meta.get("dataset")))
    mismatch = bool(meta.get("dataset")) and meta["dataset"] != ds.name
    if tune:
        if mismatch:
            raise ValueError(f"--tune: {model_path} was trained on {meta['dataset']}, not {ds.name}: "
                             "tune it on its own data")
        from emo.tune import tune_and_score
        tuned = Path(model_path).with_suffix(".tuned.pt")
        if tuned.exists():
            raise FileExistsError(f"--tune: {tuned} exists already: evaluate it directly, or move it away to tune again")
        ck = tune_and_score(model_path, make_splits(ds, protocol), device, out=tuned, progress=True)
        model_path = tuned
        print(f"wrote {tuned}: inference settings chosen on validation: centre crop {ck['crop']:g}, {ck['bn']} BN statistics\n"
              + "\n".join(f"  crop {r['crop']:<5g} {r['bn']:13s} BN: validation {r['val_acc']:.2%}"
                          for r in ck["inference_search"]))
        model = load_model(model_path, device)  # with the settings just chosen
        meta = model.meta
    if default_out:
        out_dir = PROJECT_ROOT / "runs" / "evaluate" if mismatch else Path(model_path).parent
    if mismatch:
        print(f"NOTE: this model was trained on {meta['dataset']} but is evaluated on {ds.name}: "
              f"the figures below say nothing about its accuracy", file=sys.stderr)
    splits = make_splits(ds, protocol)
    t0 = time.time()
    shown = shown_path(model_path, PROJECT_ROOT)
    results: dict[str, Any] = {"model": str(shown), "dataset": ds.name, "protocol": protocol,
                               "classes": list(model.classes), "input_size": model.input_size, "crop": model.crop}
    passes = [(name, splits[name], splits.classes, tta) for name in ("val", "test") for tta in (False, True)]
    if protocol == "standard" and ds.name == "fer2013":  # like-for-like with the seed: all 7,178 test faces
        ref = make_splits(ds, "reference")
        passes += [("reference_test", ref.test, ref.classes, tta) for tta in (False, True)]
    members = f" ({len(model.members)} networks)" if hasattr(model, "members") else ""
    print(f"evaluating {shown}{members} on {ds.name} ({protocol} protocol): "
          + ", ".join(f"{name} {len(split):,}" for name, split, _, tta in passes if not tta)
          + f" faces, with and without flip TTA; on {device}, {torch.get_num_threads()} CPU threads"
          + (f"; writing to {out_dir}" if out_dir is not None else ""), flush=True)
    evals = {}
    for name, split, classes, tta in tqdm(passes, desc="evaluating", unit="pass"):
        ev = evaluate_split(model, split, classes, tta, name.replace("_", " "), batch_size)
        evals[name, tta] = ev
        key = f"{name}{'_tta' if tta else ''}"
        results[key] = ev.summary() if name != "reference_test" else {
            "faces": int(len(ev.labels)), "accuracy": ev.accuracy, "macro_f1": ev.macro_f1}
    results["seconds"] = round(time.time() - t0, 1)
    if out_dir is not None:
        out = Path(out_dir)
        if figures:
            save_figures(evals["test", False], evals["test", True], out, *full_history(meta))
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".metrics.json.tmp"
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(out / "metrics.json")
        (out / "classification_report.txt").write_text(
            f"{Path(model_path).name} on {ds.name} {protocol} test ({len(evals['test', True].labels)} faces), "
            f"flip TTA\n\n{evals['test', True].report()}")
        results["out_dir"] = str(out)
    results["_evals"] = evals
    return results


def format_results(r: dict[str, Any]) -> str:
    rows = [("validation", "val"), ("test", "test"), ("reference-protocol test", "reference_test")]
    split_names = {"standard": ("PublicTest", "PrivateTest"), "reference": ("20% of Training", "all test faces")}
    names = split_names.get(r["protocol"], ("val", "test")) if r["dataset"] in ("fer2013", "synthetic") else ("val", "test")
    crop = f", centre crop {r['crop']:g}" if r.get("crop", 1.0) != 1.0 else ""
    lines = [f"{r['model']}: {r['dataset']}, {r['protocol']} protocol, {r['input_size']}x{r['input_size']} input{crop}",
             f"{'split':38s} {'faces':>6s} {'acc':>8s} {'acc TTA':>8s} {'F1':>8s} {'F1 TTA':>8s}"]
    for label, key in rows:
        if key not in r:
            continue
        detail = {"val": names[0], "test": names[1], "reference_test": "all 7,178 test faces"}[key]
        a, b = r[key], r[key + "_tta"]
        lines.append(f"{label + ' (' + detail + ')':38s} {a['faces']:6d} {a['accuracy']:8.2%} {b['accuracy']:8.2%} "
                     f"{a['macro_f1']:8.4f} {b['macro_f1']:8.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emo.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("model_path", nargs="?", default=str(DEFAULT_MODEL), help="a best_model.pt (default: results/best_model.pt)")
    p.add_argument("--out", default=None, help="where metrics.json and figures go (default: the model's folder; runs/evaluate/ "
                   "when the data is not what the model was trained on)")
    add_data_option(p, default=None, help="the dataset to score on (default: the one the model was trained on, where "
                    "imported, else auto); " + DATA_HELP)
    p.add_argument("--no-figures", action="store_true", help="metrics and report only")
    add_runtime_options(p, batch_size=True)
    p.add_argument("--tune", action="store_true",
                   help="first choose the centre crop and BN statistics on validation, write them to "
                        "MODEL.tuned.pt and evaluate that (training does this at its end)")
    a = p.parse_args(argv)
    return run_command(lambda: report(run(a.model_path, a.out, a.data, not a.no_figures, a.batch_size,
                                          default_out=a.out is None, tune=a.tune, device=a.device)), a.threads)


def report(r: dict[str, Any]) -> None:
    """Print what :func:`run` measured: the accuracy table, the per-class report and where the files went."""
    print(format_results(r))
    print(f"\nper-class report, test with flip TTA:\n{r['_evals']['test', True].report()}")
    print(f"wrote metrics.json and figures to {r['out_dir']} ({r['seconds']} s)")


if __name__ == "__main__":
    sys.exit(main())
