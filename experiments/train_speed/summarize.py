"""Issue 46, item 4: validation accuracy of the runs of run.sh, and the time each takes at the rates that
``python -m emo.bench --train`` measured side by side (results/benchmarks.md, its training section).

    python experiments/train_speed/summarize.py > experiments/train_speed/summary.md

A run's time is projected from those rates (28,709 faces an epoch, at 32 px for a progressive run's first
epochs; each run at the rate of the setting it ran with), not taken from its own log: the runs shared the
machine with other work, the benchmark did not.
"""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FACES = 28709
#: run name: (what it is, the share of its epochs at 32 px, the benchmark setting whose rate it ran at)
RUNS = {"shipped": ("as shipped (--no-fast-path)", 0.0, "shipped"),
        "fast": ("dropout masks and allocator, without implicit bfloat16", 0.0, "masks"),
        "amx": ("the fast path (the default: with implicit bfloat16 on AMX)", 0.0, "fast"),
        "prog": ("masks and allocator, --progressive 0.6", 0.6, "masks")}


def bench_rates() -> dict[str, float]:
    """faces/s by setting from results/benchmarks.md's training section."""
    text = (ROOT / "results" / "benchmarks.md").read_text(encoding="utf-8")
    section = text[text.index("## Training throughput"):]
    rates = {}
    for label, key in (("as shipped before issue 46", "shipped"), ("+ 16-bit dropout masks", "masks"),
                       ("the fast path (default)", "fast"), ("an epoch on 32 px crops", "small")):
        m = re.search(re.escape(label) + r"[^|]*\| ([\d,]+) \|", section)
        if m:
            rates[key] = float(m.group(1).replace(",", ""))
    return rates


def history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main() -> None:
    rates = bench_rates()
    print("| run | seed | validation after each epoch | final | best | projected time | vs as shipped |")
    print("|---|---:|---|---:|---:|---:|---:|")
    finals: dict[str, list[float]] = {}
    times: dict[str, float] = {}
    for name, (label, fraction, setting) in RUNS.items():
        for seed in (0, 1):
            run = HERE / "logs" / f"{name}-s{seed}"
            if not (run / "history.csv").exists():
                continue
            rows = history(run)
            epochs = len(rows)
            small = round(fraction * epochs)
            rate = rates[setting]
            seconds = (small * FACES / rates["small"] if small else 0.0) + (epochs - small) * FACES / rate
            times[name] = seconds
            finals.setdefault(name, []).append(rows[-1]["val_acc"])
            accs = " ".join(f"{r['val_acc']:.1%}" for r in rows)
            print(f"| {label} | {seed} | {accs} | {rows[-1]['val_acc']:.2%} | "
                  f"{max(r['val_acc'] for r in rows):.2%} | {seconds / 60:.1f} min | "
                  f"{times['shipped'] / seconds if 'shipped' in times else float('nan'):.2f}x |")
    print()
    base = finals.get("shipped", [])
    if len(base) == 2:
        print(f"As shipped, the two seeds end {min(base):.2%} and {max(base):.2%} on validation: a spread of "
              f"{100 * (max(base) - min(base)):.2f} points.")
    for name, accs in finals.items():
        if name != "shipped" and base:
            print(f"- {RUNS[name][0]}: mean final {statistics.mean(accs):.2%} against {statistics.mean(base):.2%} "
                  f"({100 * (statistics.mean(accs) - statistics.mean(base)):+.2f} points), in "
                  f"{times[name] / times['shipped']:.2f} of the time ({times['shipped'] / times[name]:.2f}x faster)")
    shipped_runs = [history(HERE / "logs" / f"shipped-s{seed}") for seed in (0, 1)
                    if (HERE / "logs" / f"shipped-s{seed}" / "history.csv").exists()]
    epoch_min = FACES / rates["shipped"] / 60
    print("\nTime to the same validation accuracy: when the recipe as shipped first reached each run's final "
          "accuracy (its epochs at the shipped rate):")
    for name, accs in finals.items():
        if name == "shipped":
            continue
        for acc in accs:
            reached = [next((r["epoch"] for r in rows if r["val_acc"] >= acc), None) for rows in shipped_runs]
            said = ", ".join(f"seed {k}: epoch {int(e)} ({e * epoch_min:.1f} min, "
                             f"{e * epoch_min / (times[name] / 60):.2f}x the run's time)" if e else
                             f"seed {k}: not within its {len(shipped_runs[k])} epochs" for k, e in enumerate(reached))
            print(f"- {RUNS[name][0]} ({acc:.2%} in {times[name] / 60:.1f} min): {said}")
    print(f"\n(rates from results/benchmarks.md: {', '.join(f'{k} {v:,.0f} faces/s' for k, v in rates.items())})")


if __name__ == "__main__":
    main()
