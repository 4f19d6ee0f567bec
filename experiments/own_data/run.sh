#!/usr/bin/env bash
# Issue 44's before/after: FER-2013's test faces as "your own data" (experiments/own_data/make_folders.py), imported
# split per image and split by group (near-copies kept together), the shipped model scored before fine-tuning,
# then fine-tuned for 5 epochs and scored after, each command timed. From the project root, .venv active:
#   bash experiments/own_data/run.sh > experiments/own_data/log.txt 2>&1
set -eu
T=${1:-/tmp/own}
echo "# $(date +%F) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
timed() { local s=$(date +%s.%N); "$@"; echo "## $(printf '%.1f' "$(echo "$(date +%s.%N) - $s" | bc)") s: $*"; }
rm -rf "$T"
timed python experiments/own_data/make_folders.py "$T"
for split in image group; do
  extra=(); [ "$split" = group ] && extra=(--groups "$T/groups.csv")
  timed python -m emo.data import "$T/faces" --name "own-$split" "${extra[@]}"
  timed python -m emo.evaluate --model default --data "own-$split" --out "$T/before-$split" --no-figures
  timed python -m emo.train "$T/ft-$split" --data "own-$split" --init default --epochs 5 --no-progress
  timed python -m emo.evaluate "$T/ft-$split/best_model.pt" --out "$T/after-$split" --no-figures
done
