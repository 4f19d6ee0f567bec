#!/bin/bash
# One device call: rebuild FER-2013 from the packed JPEGs, import it with the project's own command, then run
# several stage-3 SWA runs from results/stage2 in parallel on the GPU until done or the deadline; copy them to $OUT.
set -um  # -m: background runs keep SIGINT (non-interactive bash would ignore it in them)
export PYTHONUNBUFFERED=1
T0=$(date +%s)
EPOCHS=${EPOCHS:-24}
DEADLINE=${DEADLINE:-470}   # seconds after start at which unfinished runs are interrupted (SIGINT)
PY=${PY:-python3}
LIMIT=${LIMIT:-0}
RUNS=${RUNS:-"g11:5e-4:11 g12:5e-4:12 g13:5e-4:13 g14:5e-4:14 g21:3e-4:21 g22:3e-4:22 g31:8e-4:31"}
mkdir -p runs
LOG=runs/device_log.txt
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; $PY -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"; nproc; } 2>&1 | tee $LOG
if [ ! -f data/fer2013.npz ] || [ -n "${FORCE_IMPORT:-}" ]; then
  $PY .devdata/unpack.py .devdata/fer /tmp/fer_rebuilt.zip 2>&1 | tee -a $LOG
  $PY -m emo.data import /tmp/fer_rebuilt.zip 2>&1 | grep -v decoding | tee -a $LOG
fi
$PY .devdata/check.py .devdata/fer 2>&1 | tee -a $LOG
echo "prep done at $(( $(date +%s) - T0 )) s" | tee -a $LOG
pids=()
for r in $RUNS; do
  IFS=: read name lr seed <<< "$r"
  mkdir -p runs/$name
  $PY -m emo.train runs/$name --init results/stage2/best_model.pt --swa --epochs $EPOCHS --lr $lr --seed $seed \
      --threads 2 --no-progress $( [ "$LIMIT" != 0 ] && echo --limit $LIMIT ) > runs/$name/train_stdout.txt 2>&1 &
  pids+=($!)
done
while :; do
  alive=0; for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && alive=$((alive+1)); done
  [ $alive -eq 0 ] && break
  now=$(( $(date +%s) - T0 ))
  if [ $now -ge $DEADLINE ]; then
    echo "deadline at $now s: interrupting $alive run(s)" | tee -a $LOG
    for p in "${pids[@]}"; do kill -INT $p 2>/dev/null; done
    for i in $(seq 30); do sleep 1; a=0; for p in "${pids[@]}"; do kill -0 $p 2>/dev/null && a=1; done; [ $a = 0 ] && break; done
    for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done
    break
  fi
  sleep 5
done
echo "training ended at $(( $(date +%s) - T0 )) s" | tee -a $LOG
for r in $RUNS; do
  name=${r%%:*}
  echo "== $name" | tee -a $LOG; tail -n 4 runs/$name/train_stdout.txt | tee -a $LOG
  [ -f runs/$name/best_model.pt ] && cp runs/$name/best_model.pt "${OUT:-/tmp/out}/$name.pt"
done
tar czf "${OUT:-/tmp/out}/logs.tgz" runs/device_log.txt runs/g*/history.csv runs/g*/train_log.txt runs/g*/train_stdout.txt 2>/dev/null
ls -la "${OUT:-/tmp/out}"
echo "all done at $(( $(date +%s) - T0 )) s"
