#!/usr/bin/env bash
# Issue 34's table (new rows and spellings with issue 41's redesign): each bad input a user may give, the command, its exit status and what it says (its error and
# NOTE lines, or else its last line).
#   bash experiments/reliability/try_bad_inputs.sh > experiments/reliability/what_users_see.md
# Run from the project root with its .venv active; writes only under a temporary folder.
set -u
T=$(mktemp -d)
export QT_QPA_PLATFORM=offscreen
python - "$T" <<'PY'
import sys, zipfile, csv, datetime, torch, cv2, numpy as np
t = sys.argv[1]
import os
os.makedirs(f"{t}/empty"); os.makedirs(f"{t}/numeric/train/3"); os.makedirs(f"{t}/numeric/test/3")
ok = cv2.imencode(".jpg", np.full((48, 48), 128, np.uint8))[1].tobytes()
open(f"{t}/numeric/train/3/Training_1.jpg", "wb").write(ok)
open(f"{t}/numeric/test/3/PublicTest_2.jpg", "wb").write(ok)
with open(f"{t}/wrong.csv", "w") as f:
    csv.writer(f).writerows([["label", "image"], ["1", "2 3"]])
open(f"{t}/notes.pt", "w").write("not a checkpoint")
open(f"{t}/notes.onnx", "w").write("not a model")
torch.save({"when": datetime.datetime(2026, 1, 1)}, f"{t}/pickled.pt")
with zipfile.ZipFile(f"{t}/unreadable.zip", "w") as z:
    z.writestr("train/happy/Training_1.jpg", ok)
    z.writestr("train/happy/Training_2.jpg", b"not a jpeg")
    z.writestr("test/happy/PublicTest_3.jpg", ok)
    z.writestr("test/happy/PrivateTest_4.jpg", ok)
for d, files in {"mine": ["train/happy/a.jpg", "test/happy/b.jpg"], "extra": ["train/happy/a.jpg", "test/happy/b.jpg",
                 "test/contempt/c.jpg"]}.items():
    for f in files:
        os.makedirs(os.path.dirname(f"{t}/{d}/{f}"), exist_ok=True)
        open(f"{t}/{d}/{f}", "wb").write(ok)
os.makedirs(f"{t}/mine/train/sad")
PY
head -c 1000000 ../shared/data/fer2013.zip > "$T/cut.zip" 2>/dev/null || head -c 1000000 /dev/urandom > "$T/cut.zip"
head -c 100000 results/best_model.pt > "$T/cut.pt"
mkdir -p "$T/ens" && cp results/ensemble/best_model.pt "$T/ens/"
mkdir -p "$T/run" && cp results/best_model.pt "$T/run/"

row() {  # description, then the command
  local what=$1; shift
  out=$(timeout 300 "$@" 2>&1 </dev/null); rc=$?
  said=$(printf '%s\n' "$out" | grep -E '^(error|NOTE|could not read|[A-Za-z]+Error)' | paste -sd '~' | sed 's/~/ <br> /g')
  [ -n "$said" ] || said=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -1)
  line=$(printf '%s' "$said" | sed "s#$T#TMP#g; s/|/\\\\|/g")
  printf '| %s | `%s` | %s | %s |\n' "$what" "$(echo "$*" | sed "s#$T#TMP#g")" "$rc" "$line"
}
echo "# What users see on bad input"
echo
echo "Written by \`bash experiments/reliability/try_bad_inputs.sh\` on $(date +%F). Exit 2: a bad input, one line on stderr;"
echo "exit 1: the app could show nothing; 0: done, with a note. TMP is a scratch folder."
echo
echo "| bad input | command | exit | what it says |"
echo "|---|---|---:|---|"
row "a path that does not exist" python -m emo.data import "$T/none.zip" --data-dir "$T/d"
row "a download cut short (the first MB of the zip)" python -m emo.data import "$T/cut.zip" --data-dir "$T/d"
row "an empty folder" python -m emo.data import "$T/empty" --data-dir "$T/d"
row "a CSV with other columns" python -m emo.data import "$T/wrong.csv" --data-dir "$T/d"
row "label folders named 0-6" python -m emo.data import "$T/numeric" --data-dir "$T/d"
row "... with --numeric-labels (a partial copy: one class)" python -m emo.data import "$T/numeric" --data-dir "$T/d" --numeric-labels
row "an image OpenCV cannot read" python -m emo.data import "$T/unreadable.zip" --data-dir "$T/d"
row "a dataset of one's own with an empty class folder" python -m emo.data import "$T/mine" --name mine --data-dir "$T/d"
row "... with a class in test/ but not in train/" python -m emo.data import "$T/extra" --name extra --data-dir "$T/d"
row "a dataset name that means something else" python -m emo.data import "$T/extra" --name auto --data-dir "$T/d"
row "a dataset that was never imported" python -m emo.train "$T/new3" --data rafdb --epochs 1
row "merging a class the dataset lacks" python -m emo.data export fer2013 "$T/six" --merge contempt=neutral
row "no checkpoint there" python -m emo.evaluate --model "$T/none.pt"
row "a checkpoint cut short" python -m emo.evaluate "$T/cut.pt"
row "a text file named .pt" python -m emo.evaluate "$T/notes.pt"
row "a pickle holding other objects" python -m emo.evaluate "$T/pickled.pt"
row "an ensemble without its members" python -m emo.evaluate "$T/ens/best_model.pt"
row "training into a folder with another run's model" python -m emo.train "$T/run" --epochs 1
row "resuming where nothing was trained" python -m emo.train "$T/nothing" --resume
row "a bad option value" python -m emo.train "$T/new" --epochs 0
row "a soup over an existing file" python -m emo.soup results/best_model.pt results/ensemble/members/1-s83w.pt --out "$T/run/best_model.pt"
row "an ensemble as --init" python -m emo.train "$T/new2" --init results/ensemble/best_model.pt --epochs 1
row "a video that does not exist" python -m emo.app --input "$T/none.mp4" --frames 5
row "a camera that is not there" python -m emo.app --input 9 --frames 5
row "an ONNX export over an existing file" python -m emo.export --out "$T/notes.onnx"
row "a file that is not an ONNX model" python -m emo.predict --model "$T/notes.onnx" --out "$T/p"
row "ONNX Runtime asked for on a GPU" python -m emo.predict --runtime onnx --device cuda --out "$T/p"
row "a negative thread count" python -m emo.predict --threads -1 --out "$T/p"
row "a device that is not there" python -m emo.predict --device cuda --out "$T/p"
row "a device that does not exist" python -m emo.train "$T/new4" --device tpu --epochs 1
row "two different models" python -m emo.evaluate results/best_model.pt --model ensemble
row "a benchmark of a model that is not there" python -m emo.bench --model "$T/none.pt"
row "early stopping that could never wait" python -m emo.train "$T/new5" --patience 0
row "a training loss that is not a number" python -m emo.train "$T/new6" --lr inf
row "predict_proba on a 4-D array" python -c "import numpy as np, emo; emo.predict_proba(emo.load_model(), np.zeros((2, 3, 4, 5)))"
rm -rf "$T"
