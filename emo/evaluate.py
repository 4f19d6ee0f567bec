"""Evaluate a checkpoint: accuracy and macro-F1 with and without flip TTA, report, figures.

    python -m emo.evaluate                      # results/best_model.pt -> results/metrics.json + figures
    python -m emo.evaluate runs/try1/best_model.pt --out runs/try1
    python -m emo.evaluate OLD.pt --tune        # first tune its crop and BN statistics on validation -> OLD.tuned.pt

TTA here is deterministic: the mean of the softmax of each face and of its mirror image.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from emo import checkpoint
from emo.checkpoint import DEFAULT_MODEL, full_history
from emo.cli import (
    DATA_HELP,
    add_data_option,
    add_model_option,
    add_runtime_options,
    chosen_model,
    parser,
    pick_device,
    run_command,
)
from emo.datasets import data_for_model, load_dataset
from emo.evaluation import Evaluation, evaluate_split, shared_classes
from emo.files import PROJECT_ROOT, RUNS_DIR, folder_lock, shown_path, write_set
from emo.inference_search import tune_and_score
from emo.model import load_model
from emo.plots import plot_confusion, plot_history, plot_roc
from emo.preprocess import preprocessing_of
from emo.splits import make_splits


def figure_writers(ev: Evaluation, ev_tta: Evaluation, history: list[dict[str, float]] | None,
                   restarts: Sequence[int] = ()) -> dict[str, Callable[[IO[bytes]], object]]:
    """Confusion matrices (counts, normalised), ROC and (where ``history`` is given) learning curves: each
    figure's file name and what writes it as PNG into an open file."""
    import matplotlib.pyplot as plt

    makers = {
        "confusion_matrix.png": lambda: plot_confusion(ev_tta.labels, ev_tta.preds, ev.classes,
                                                       title=f"{ev.name}, flip TTA: counts"),
        "confusion_matrix_normalized.png": lambda: plot_confusion(ev_tta.labels, ev_tta.preds, ev.classes,
                                                                  normalize=True,
                                                                  title=f"{ev.name}, flip TTA: recall per class"),
        "roc.png": lambda: plot_roc(ev_tta.labels, ev_tta.probs, ev.classes,
                                    title=f"One-vs-rest ROC, {ev.name}, flip TTA"),
    }
    if history:
        makers["learning_curves.png"] = lambda: plot_history(history, restarts=restarts)

    def writer(make: Callable[[], Any]) -> Callable[[IO[bytes]], object]:
        def write(f: IO[bytes]) -> None:
            fig = make()
            try:
                fig.savefig(f, format="png", dpi=100)
            finally:
                plt.close(fig)
        return write
    return {name: writer(make) for name, make in makers.items()}


def save_figures(ev: Evaluation, ev_tta: Evaluation, out: Path, history: list[dict[str, float]] | None,
                 restarts: Sequence[int] = ()) -> list[Path]:
    """The figures of :func:`figure_writers` as PNG files in ``out``, written as a set (:func:`write_set`)."""
    return write_set({out / name: w for name, w in figure_writers(ev, ev_tta, history, restarts).items()})


def tune_first(model_path: Path, splits: Any, device: str) -> Path:
    """``--tune``: choose the checkpoint's inference settings on validation into ``<name>.tuned.pt``; its path."""
    tuned = Path(model_path).with_suffix(".tuned.pt")
    if tuned.exists():
        raise FileExistsError(f"--tune: {tuned} exists already: evaluate it directly, or move it away to tune again")
    ck = tune_and_score(model_path, splits, device, out=tuned, progress=True)
    print(f"wrote {tuned}: inference settings chosen on validation: "
          f"centre crop {ck['crop']:g}, {ck['bn']} BN statistics\n"
          + "\n".join(f"  crop {r['crop']:<5g} {r['bn']:13s} BN: validation {r['val_acc']:.2%}"
                      for r in ck["inference_search"]))
    return tuned


def evaluation_passes(ds: Any, splits: Any) -> list[tuple[str, Any, tuple[str, ...], bool]]:
    """(name, split, its classes, flip TTA) of each pass: validation and test, and where the validation and test
    splits are the two halves of a published test set, both halves together (the original project's test set)."""
    passes = [(name, splits[name], splits.classes, tta) for name in ("val", "test") for tta in (False, True)]
    if splits.protocol == "standard" and ds.published_test_halves:
        ref = make_splits(ds, "reference")
        passes += [("reference_test", ref.test, ref.classes, tta) for tta in (False, True)]
    return passes


def results_header(model: Any, ds: Any, protocol: str, shown: str) -> dict[str, Any]:
    """What ``metrics.json`` says before its scores: the model, the data, the splits' names, the preprocessing."""
    names = ({"val": ds.split_names[1], "test": ds.split_names[2]} if protocol == "standard" else
             {"val": f"20% of {ds.split_names[0]}", "test": "all test faces"})
    return {"model": shown, "dataset": ds.name, "protocol": protocol, "splits": names, "classes": list(model.classes),
            "input_size": model.input_size, "crop": preprocessing_of(model).crop}


def faces_per_pass(passes: list) -> str:
    """``val 3,589, test 3,589, ...``: the faces each pass scores (once, whether with flip TTA or not)."""
    return ", ".join(f"{name} {len(split):,}" for name, split, _, tta in passes if not tta)


def score_passes(model: Any, passes: list, batch_size: int | None,
                 only_shared: bool = False) -> dict[tuple[str, bool], Evaluation]:
    """``model``'s predictions in each pass of :func:`evaluation_passes`, by (name, flip TTA)."""
    return {(name, tta): evaluate_split(model, split, classes, tta, name.replace("_", " "), batch_size, only_shared)
            for name, split, classes, tta in tqdm(passes, desc="evaluating", unit="pass")}


def class_notes(model: Any, ds: Any, only_shared: bool) -> tuple[list[str], dict[str, Any] | None]:
    """Where the data's classes differ from the model's: the notes that say how the scores are taken, and
    what ``metrics.json`` records of it (None where the classes are the same)."""
    if set(model.classes) == set(ds.classes):
        if only_shared:
            print("note: --shared-classes changes nothing here: the model and the data have the same classes",
                  file=sys.stderr)
        return [], None
    shared = shared_classes(model.classes, ds.classes)
    left_out = [c for c in ds.classes if c not in shared]
    extra = [c for c in model.classes if c not in shared]
    counts = {c: int((ds.labels == ds.classes.index(c)).sum()) for c in left_out}
    notes = [f"the model predicts {len(model.classes)} classes and {ds.name} is labelled with {len(ds.classes)}: "
             f"scored over the {len(shared)} they share ({', '.join(shared)})"]
    if left_out:
        notes.append(f"faces of {', '.join(f'{c} ({n:,})' for c, n in counts.items())} are left out: the model "
                     "has no such class")
    if extra:
        notes.append(f"the model's {', '.join(extra)} " + (
            "left out of its choice (--shared-classes): it chooses among the shared classes only" if only_shared
            else "is not in the data: predicting it counts as wrong (--shared-classes leaves it out of the choice)"))
    return notes, {"shared": list(shared), "left_out_of_data": counts, "model_only": extra,
                   "model_only_predictable": not only_shared}


def write_outputs(out: Path, results: dict[str, Any], evals: dict, history: tuple | None, what: str) -> None:
    """The figures (where ``history`` is given, learning curves too), the report and ``metrics.json``, as one
    set (:func:`emo.files.write_set`: after a failure, such as a full disk, the old set is still whole), under
    the folder's lock (a second evaluation into it is refused)."""
    report = f"{what} test ({len(evals['test', True].labels)} faces), flip TTA\n\n{evals['test', True].report()}"
    writers = figure_writers(evals["test", False], evals["test", True], *history) if history is not None else {}
    writers["classification_report.txt"] = lambda f: f.write(report.encode())
    writers["metrics.json"] = lambda f: f.write((json.dumps(results, indent=2) + "\n").encode())
    with folder_lock(out, "--out folder"):
        write_set({out / name: w for name, w in writers.items()})


def run(model_path: str | Path = DEFAULT_MODEL, out_dir: str | Path | None = None, source: str | None = None,
        figures: bool = True, batch_size: int | None = None, default_out: bool = False,
        tune: bool = False, device: str | None = None, only_shared: bool = False) -> dict[str, Any]:
    """Evaluate ``model_path`` on the test split of its own protocol (and on the reference protocol's).

    ``source`` is the dataset (``--data``); None scores the model on the dataset it was trained on, where this
    checkout has it (:func:`emo.data.data_for_model`). Writes ``metrics.json``, the report and figures to
    ``out_dir`` (nothing when None). With ``default_out`` they go beside the model, unless the data is not what the
    model was trained on (e.g. generated faces on a fresh clone): then to ``runs/evaluate/``, so shipped results stay
    intact.
    With ``tune`` the checkpoint's inference settings (centre crop, BN statistics) are first chosen on the
    validation split (as training does at its end) and written to a new checkpoint beside it,
    ``<name>.tuned.pt``, which is then evaluated (the original is never rewritten); refused on data the model
    was not trained on, or where that file exists already.
    A model is scored on data labelled with other classes over the classes they share (:func:`class_notes`; with
    ``only_shared`` it chooses among those only): before fine-tuning, that is the baseline to beat.
    """
    device = pick_device(device)
    model_path = checkpoint.model_path(model_path)
    model = load_model(model_path, device)
    meta = model.meta
    protocol = meta.get("protocol", "standard")
    ds = load_dataset(source or data_for_model(meta.get("dataset")))
    mismatch = bool(meta.get("dataset")) and meta["dataset"] != ds.name
    if tune:
        if mismatch:
            raise ValueError(f"--tune: {model_path} was trained on {meta['dataset']}, not {ds.name}: "
                             "tune it on its own data")
        model_path = tune_first(model_path, make_splits(ds, protocol), device)
        model = load_model(model_path, device)  # with the settings just chosen
        meta = model.meta
    if default_out:
        out_dir = RUNS_DIR / "evaluate" if mismatch else Path(model_path).parent
    notes, class_record = class_notes(model, ds, only_shared)
    if mismatch:
        notes.insert(0, f"this model was trained on {meta['dataset']} and is scored on {ds.name}, as it stands: "
                        f"its accuracy on {ds.name} before any fine-tuning, the baseline a model trained on it "
                        f"(`python -m emo.train --data {ds.name} --init ...`) must beat")
    for note in notes:
        print(f"NOTE: {note}", file=sys.stderr)
    splits = make_splits(ds, protocol)
    t0 = time.time()
    results = results_header(model, ds, protocol, shown_path(model_path, PROJECT_ROOT))
    if class_record is not None:
        results["class_match"] = class_record
    passes = evaluation_passes(ds, splits)
    members = f" ({len(model.members)} networks)" if hasattr(model, "members") else ""
    where = f"; writing to {shown_path(out_dir)}" if out_dir is not None else ""
    print(f"evaluating {results['model']}{members} on {ds.name} ({protocol} protocol): {faces_per_pass(passes)} "
          f"faces, with and without flip TTA; on {device}, {torch.get_num_threads()} CPU threads{where}", flush=True)
    evals = score_passes(model, passes, batch_size, only_shared)
    for (name, tta), ev in evals.items():
        results[f"{name}{'_tta' if tta else ''}"] = ev.summary(brief=name == "reference_test")
    seconds = round(time.time() - t0, 1)  # (printed, not stored: the same model and data give the same files)
    if out_dir is not None:
        history = (full_history(meta) if not mismatch else ([], ())) if figures else None  # (no foreign curves)
        write_outputs(Path(out_dir), results, evals, history,
                      f"{Path(model_path).name} on {ds.name} {protocol}")
        results["out_dir"] = str(out_dir)
    results["_evals"], results["_seconds"], results["_figures"] = evals, seconds, figures
    return results


def format_results(r: dict[str, Any]) -> str:
    rows = [("validation", "val"), ("test", "test"), ("reference-protocol test", "reference_test")]
    names = r.get("splits", {"val": "val", "test": "test"})
    crop = f", centre crop {r['crop']:g}" if r.get("crop", 1.0) != 1.0 else ""
    lines = [f"{r['model']}: {r['dataset']}, {r['protocol']} protocol, {r['input_size']}x{r['input_size']} input{crop}",
             f"{'split':38s} {'faces':>6s} {'acc':>8s} {'acc TTA':>8s} {'F1':>8s} {'F1 TTA':>8s}"]
    for label, key in rows:
        if key not in r:
            continue
        detail = {**names, "reference_test": f"all {r[key]['faces']:,} test faces"}[key]
        a, b = r[key], r[key + "_tta"]
        lines.append(f"{label + ' (' + detail + ')':38s} {a['faces']:6d} {a['accuracy']:8.2%} {b['accuracy']:8.2%} "
                     f"{a['macro_f1']:8.4f} {b['macro_f1']:8.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.evaluate", __doc__)
    add_model_option(p, positional=True)
    p.add_argument("--out", default=None, help="where metrics.json and figures go (default: the model's folder; "
                   "runs/evaluate/ when the data is not what the model was trained on)")
    add_data_option(p, default=None, help="the dataset to score on (default: the one the model was trained on, where "
                    "imported, else auto); " + DATA_HELP)
    p.add_argument("--no-figures", action="store_true", help="metrics and report only")
    p.add_argument("--shared-classes", action="store_true",
                   help="where the data's classes differ from the model's: let the model choose among the classes "
                        "both have (by default predicting a class the data lacks counts as wrong)")
    add_runtime_options(p, batch_size=True)
    p.add_argument("--tune", action="store_true",
                   help="first choose the centre crop and BN statistics on validation, write them to "
                        "MODEL.tuned.pt and evaluate that (training does this at its end)")
    a = p.parse_args(argv)
    return run_command(lambda: report(run(chosen_model(a), a.out, a.data, not a.no_figures, a.batch_size,
                                          default_out=a.out is None, tune=a.tune, device=a.device,
                                          only_shared=a.shared_classes)), a.threads)


def report(r: dict[str, Any]) -> None:
    """Print what :func:`run` measured: the accuracy table, the per-class report and where the files went."""
    print(format_results(r))
    print(f"\nper-class report, test with flip TTA:\n{r['_evals']['test', True].report()}")
    what = "metrics.json, the report and figures" if r["_figures"] else "metrics.json and the report"
    print(f"wrote {what} to {shown_path(r['out_dir'])} ({r['_seconds']} s)")


if __name__ == "__main__":
    sys.exit(main())
