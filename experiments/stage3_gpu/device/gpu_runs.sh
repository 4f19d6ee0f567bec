#!/bin/bash
# One device call, any training runs: gpu_swa.sh with the emo.train options as a parameter instead of stage 3's.
# Rebuild FER-2013 from the packed JPEGs, import it with the project's own command, run the RUNS in parallel on
# the GPU until done or DEADLINE (then SIGINT: each run saves last.pt and can be resumed), copy the results to $OUT.
#   RUNS="name:lr:seed ..."   one emo.train run each, into runs/<name>
#   ARGS="..."                the options every run shares; {name} and {seed} are replaced by the run's own
#   KEEP="last"               also bring back last.pt (to resume a run that the deadline cut, here or on a later call)
#   THEN="..."                optional second stage of each run, into runs/<name>w once the first ends well: its emo.train
#                             options ({name}, {seed} as above; {epochs}: as many epochs, at most SWA_MAX, as the first
#                             stage's pace leaves time for before DEADLINE; under SWA_MIN it is skipped). The first stage's
#                             best_model.pt is copied to results/$DEST/<name>/ (so --init paths resolve back home too)
# e.g. from scratch:  RUNS="s61:1e-3:61 s62:1e-3:62" ARGS="--epochs 60" bash .devdata/gpu_runs.sh
#      then SWA:      RUNS="w61:8e-4:61 w62:8e-4:62" ARGS="--init results/scratch/s{seed}.pt --swa --epochs 24" ...
#      both in one call: DEST=scratch_gpu THEN="--init results/scratch_gpu/{name}/best_model.pt --swa --epochs {epochs} --lr 8e-4" ...
set -um  # -m: background runs keep SIGINT (non-interactive bash would ignore it in them)
export PYTHONUNBUFFERED=1
T0=$(date +%s)
DEADLINE=${DEADLINE:-470}   # seconds after start at which unfinished runs are interrupted (SIGINT)
PY=${PY:-python3}
RUNS=${RUNS:?set RUNS=\"name:lr:seed ...\"}
ARGS=${ARGS:?set ARGS to the emo.train options the runs share}
OUT=${OUT:-/tmp/out}
mkdir -p runs "$OUT"
LOG=runs/device_log.txt
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; $PY -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"; nproc; } 2>&1 | tee $LOG
if [ -d .devdata ] && { [ ! -f data/fer2013.npz ] || [ -n "${FORCE_IMPORT:-}" ]; }; then
  $PY .devdata/unpack.py .devdata/fer /tmp/fer_rebuilt.zip 2>&1 | tee -a $LOG
  $PY -m emo.data import /tmp/fer_rebuilt.zip 2>&1 | grep -v decoding | tee -a $LOG
  $PY .devdata/check.py .devdata/fer 2>&1 | tee -a $LOG
fi
echo "prep done at $(( $(date +%s) - T0 )) s" | tee -a $LOG
SWA_MAX=${SWA_MAX:-20}; SWA_MIN=${SWA_MIN:-6}; THEN=${THEN:-}; DEST=${DEST:-gpu}
subst() { local t=${1//\{name\}/$2}; echo "${t//\{seed\}/$3}"; }
chain() {  # one run: the first stage, then (THEN) the second, unless the deadline has come
  local name=$1 lr=$2 seed=$3 args resume
  args=$(subst "$ARGS" "$name" "$seed")
  resume=$( [ -f runs/$name/last.pt ] && echo --resume )
  echo "$name: python -m emo.train runs/$name --lr $lr --seed $seed $args --threads 2 --no-progress $resume" | tee -a $LOG
  # shellcheck disable=SC2086  # the options are meant to split into words
  $PY -m emo.train runs/$name --lr $lr --seed $seed $args --threads 2 --no-progress $resume \
      >> runs/$name/train_stdout.txt 2>&1 || return
  [ -n "$THEN" ] && [ ! -f runs/STOP ] && [ -f runs/$name/best_model.pt ] || return 0
  mkdir -p results/$DEST/$name && cp runs/$name/best_model.pt results/$DEST/$name/
  local n
  n=$($PY -c "import csv, sys; s = [float(r['seconds']) for r in csv.DictReader(open('runs/$name/history.csv'))][-5:]
print(min($SWA_MAX, int(($DEADLINE - $(( $(date +%s) - T0 )) - 60) / (1.25 * sum(s) / len(s)))))")
  if [ "$n" -lt "$SWA_MIN" ]; then echo "${name}w: skipped, time for $n epochs only" | tee -a $LOG; return 0; fi
  args=$(subst "$THEN" "$name" "$seed"); args=${args//\{epochs\}/$n}
  mkdir -p runs/${name}w
  echo "${name}w: python -m emo.train runs/${name}w --seed $seed $args --threads 2 --no-progress" | tee -a $LOG
  # shellcheck disable=SC2086
  $PY -m emo.train runs/${name}w --seed $seed $args --threads 2 --no-progress >> runs/${name}w/train_stdout.txt 2>&1
}
rm -f runs/STOP
pids=()
for r in $RUNS; do
  IFS=: read name lr seed <<< "$r"
  mkdir -p runs/$name
  chain "$name" "$lr" "$seed" &
  pids+=($!)
done
while :; do
  alive=0; for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && alive=$((alive+1)); done
  [ $alive -eq 0 ] && break
  now=$(( $(date +%s) - T0 ))
  if [ $now -ge $DEADLINE ]; then
    echo "deadline at $now s: interrupting $alive run(s)" | tee -a $LOG
    touch runs/STOP  # no second stage starts after this
    for p in "${pids[@]}"; do kill -INT -- -$p 2>/dev/null; done  # each chain is its own process group (set -m)
    for i in $(seq 30); do sleep 1; a=0; for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && a=1; done; [ $a = 0 ] && break; done
    for p in "${pids[@]}"; do kill -9 -- -$p 2>/dev/null; done
    break
  fi
  sleep 5
done
echo "training ended at $(( $(date +%s) - T0 )) s" | tee -a $LOG
names=()
for r in $RUNS; do
  name=${r%%:*}
  for d in $name ${name}w; do
    [ -d runs/$d ] || continue
    names+=($d)
    echo "== $d" | tee -a $LOG; tail -n 4 runs/$d/train_stdout.txt | tee -a $LOG
    [ -f runs/$d/best_model.pt ] && cp runs/$d/best_model.pt "$OUT/$d.pt"
    [ "${KEEP:-}" = last ] && [ -f runs/$d/last.pt ] && cp runs/$d/last.pt "$OUT/$d.last.pt"
  done
done
( cd runs && tar czf "$OUT/logs.tgz" device_log.txt $(for b in "${names[@]}"; do echo $b/history.csv $b/train_log.txt $b/train_stdout.txt; done) 2>/dev/null )
ls -la "$OUT"
echo "all done at $(( $(date +%s) - T0 )) s"
