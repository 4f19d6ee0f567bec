#!/usr/bin/env bash
# Issue 46, item 4: the recipe's accuracy with and without the speed-ups, 5 epochs on all 28,709 FER-2013
# training faces, scored on validation (PublicTest) after each; one run at a time on 2 cores.
#   shipped: the recipe as it ran before the fast path (--no-fast-path; run at commit 72c6b8d, before the flag
#            existed, which is the same code path), seeds 0 and 1;
#   fast:    the dropout masks and the allocator setting, without implicit bfloat16 (EMO_IMPLICIT_BF16=0; run
#            at commit 841a54c, before implicit bfloat16 existed), seeds 0 and 1;
#   amx:     the fast path as it is the default now (with implicit bfloat16 on this AMX CPU), seeds 0 and 1;
#   prog:    as fast, the first 60% of the epochs (3 of 5) on 32 px crops (--progressive 0.6), seed 0 (its
#            second seed was not run: 4 points below the others, against a 0.11-point spread).
# Each run's history.csv, train_log.txt and console output are in experiments/train_speed/logs/<name>-s<seed>/
# (no checkpoints). Then: python experiments/train_speed/summarize.py > experiments/train_speed/summary.md
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/train_speed/logs
run() { python -m emo.train "$out/$1" --epochs 5 --no-tune --no-progress --threads 2 "${@:2}"; }
for s in 0 1; do
  run "shipped-s$s" --seed "$s" --no-fast-path
  EMO_IMPLICIT_BF16=0 run "fast-s$s" --seed "$s"
  run "amx-s$s" --seed "$s"
done
EMO_IMPLICIT_BF16=0 run prog-s0 --seed 0 --progressive 0.6
