#!/usr/bin/env bash
# Issue 35: bring your own dataset, with FER-2013 standing in for it. FER-2013 goes back out as image folders
# with six classes (disgust merged into angry), comes in again as a dataset of its own, and the same short
# budget (3 epochs of the seed recipe) trains it from scratch and from the shipped FER-2013 weights (--init: a
# fresh six-class head), the latter at the recipe's peak rate and at a fine-tuning rate (2e-4), chosen on val.
# Everything derived from FER-2013's pixels stays in data/ and runs/ (ignored by git); only logs come here.
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${EPOCHS:-3}
HERE=experiments/finetune6
[ -d data/fer6-folders ] || python -m emo.data export fer2013 data/fer6-folders --merge disgust=angry
[ -f data/fer6.npz ] || python -m emo.data import data/fer6-folders --name fer6 2>&1 | tee "$HERE/import.txt"
for run in init scratch init_lr2e-4; do
  case $run in
    init) extra=(--init results/best_model.pt) ;;
    scratch) extra=() ;;
    init_lr2e-4) extra=(--init results/best_model.pt --lr 2e-4) ;;
  esac
  [ -f "$HERE/$run/metrics.json" ] && continue  # done
  resume=(); [ -f "runs/fer6_$run/last.pt" ] && resume=(--resume)
  python -m emo.train "runs/fer6_$run" --data fer6 --epochs "$EPOCHS" "${extra[@]}" "${resume[@]}" --no-progress \
    2>&1 | tee -a "$HERE/$run.console.txt"
  python -m emo.evaluate "runs/fer6_$run/best_model.pt" --no-figures 2>/dev/null | tee "$HERE/$run.evaluate.txt"
  mkdir -p "$HERE/$run"
  cp "runs/fer6_$run"/{history.csv,train_log.txt,metrics.json,classification_report.txt} "$HERE/$run/"
done
python "$HERE/merged_heads.py" | tee "$HERE/merged_heads.txt"
