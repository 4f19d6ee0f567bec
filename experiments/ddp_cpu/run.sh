#!/usr/bin/env bash
# Issue 35: epoch time of the same training in 1 process and in 2 torchrun processes (gloo), on this machine's
# 2 CPU cores, side by side in one run. No GPU was lent, so this is the only multi-process figure measured.
# The same 8,192 faces and the same effective batch (1 x 128 against 2 x 64); one epoch each, validation included.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/ddp_cpu
COMMON=(--data "${DATA:-auto}" --epochs 1 --limit 8192 --no-progress --no-tune --overwrite)
{
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  python -m emo.train runs/ddp_cpu/one "${COMMON[@]}" --batch-size 128 --threads 2
  OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m emo.train runs/ddp_cpu/two "${COMMON[@]}" --batch-size 64
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | grep -v "^\*\*\*\|OMP_NUM_THREADS" | tee "$HERE/console.txt"
for run in one two; do cp "runs/ddp_cpu/$run/train_log.txt" "$HERE/$run.train_log.txt"; done
