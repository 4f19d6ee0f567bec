#!/usr/bin/env bash
# Issue 46, item 4: the recipe's accuracy with and without the speed-ups, 5 epochs on all 28,709 FER-2013
# training faces, seeds 0 and 1, scored on validation (PublicTest); one run at a time on 2 cores.
#   shipped: the recipe as it ran before the fast path (--no-fast-path), from commit 72c6b8d, where
#            --no-fast-path did not exist yet and the recipe was this;
#   fast:    the fast path (the default now);
#   prog:    the fast path, the first 60% of the epochs (3 of 5) on 32 px crops (--progressive 0.6);
#   prog8:   the same with 80% (4 of 5).
# Each run's history.csv, train_log.txt and console output land in experiments/train_speed/runs/<name>-s<seed>/
# (checkpoints are not kept). Then: python experiments/train_speed/summarize.py > experiments/train_speed/summary.md
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/train_speed/runs
for s in 0 1; do
  python -m emo.train "$out/shipped-s$s" --epochs 5 --seed "$s" --no-fast-path --no-tune --no-progress --threads 2
  python -m emo.train "$out/prog-s$s" --epochs 5 --seed "$s" --progressive 0.6 --no-tune --no-progress --threads 2
  python -m emo.train "$out/fast-s$s" --epochs 5 --seed "$s" --no-tune --no-progress --threads 2
  python -m emo.train "$out/prog8-s$s" --epochs 5 --seed "$s" --progressive 0.8 --no-tune --no-progress --threads 2
done
