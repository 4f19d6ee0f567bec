#!/usr/bin/env bash
# The README's first hour, timed step by step on a fresh clone: set up, see the model on a real face, import
# FER-2013, run a lesson, train a small model, evaluate it, open the demo on a video.
#   bash experiments/first_hour/walkthrough.sh ../shared/data/fer2013.zip > experiments/first_hour/times.md
# Works in a temporary clone of this checkout; leaves nothing behind.
set -eu
zip=$(realpath "$1")
here=$(pwd)
T=$(mktemp -d)
git clone -q --depth 1 "file://$here" "$T/mini-xception-emo"
cd "$T/mini-xception-emo"
export QT_QPA_PLATFORM=offscreen
step() {  # a name, then the command; prints a table row with the seconds it took
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@" > "$T/out.txt" 2>&1 || { echo "| $name | \`$*\` | failed: $(tail -1 "$T/out.txt") |"; return; }
  printf '| %s | `%s` | %.0f |\n' "$name" "$(echo "$*" | sed "s#$zip#fer2013.zip#; s#$T#TMP#g")" "$(python3 -c "print($(date +%s.%N) - $t0)")"
}
echo "# The first hour, timed"
echo
echo "Written by \`bash experiments/first_hour/walkthrough.sh\` on $(date +%F) on $(nproc) cores, 1-minute load"
echo "average $(cut -d' ' -f1 /proc/loadavg) at the start; pip read the wheels from this machine's cache."
echo
echo "| step | command | seconds |"
echo "|---|---|---:|"
step "set up" bash -c "python3 -m venv .venv && .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 && .venv/bin/pip install -q -e '.[dev]'"
. .venv/bin/activate
step "the shipped model on a real face" python -m emo.predict
step "import FER-2013" python -m emo.data import "$zip"
step "lesson 01, executed" jupyter nbconvert --to notebook --execute --output "$T/01.ipynb" notebooks/01_data_exploration.ipynb
step "train a small model (3 epochs, 3,000 faces)" python -m emo.train runs/first --epochs 3 --limit 3000 --no-progress
step "evaluate it" python -m emo.evaluate runs/first/best_model.pt --no-figures
step "the demo on a video (100 frames)" bash -c "python -c 'from emo.faces import *; write_test_video(\"$T/clip.avi\", sample_photo(), frames=100)' && python -m emo.app --source $T/clip.avi --frames 100"
cd "$here"
rm -rf "$T"
