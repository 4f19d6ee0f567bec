#!/usr/bin/env bash
# Issue 34's table (new rows and spellings with issue 41's redesign, hostile files and faults with issue 43's):
# each bad input or fault, its family, the command, its exit status, what it says (its error and NOTE lines,
# or else its last line) and a verdict: "clear error" (exit 2, one error line), "handled" (exit 0), "TRACEBACK",
# or "LOST DATA" where a file that was in the scratch folder before the command changed or vanished.
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
# issue 43: hostile files
import struct, zlib, shutil
from emo.video import sample_photo, write_test_video
os.makedirs(f"{t}/photos/a"); os.makedirs(f"{t}/photos/b")
cv2.imwrite(f"{t}/photos/a/x.jpg", sample_photo()); cv2.imwrite(f"{t}/photos/b/x.jpg", sample_photo())
cv2.imwrite(f"{t}/photos/a/x.png", sample_photo())
os.makedirs(f"{t}/hostile")
shutil.copy(f"{t}/photos/a/x.jpg", os.fsencode(f"{t}/hostile/") + b"caf\xe9.jpg")
os.mkfifo(f"{t}/hostile/pipe.jpg"); os.mkfifo(f"{t}/pipe.zip"); os.mkfifo(f"{t}/pipe.pt")
def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
open(f"{t}/bomb.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                                  + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b""))
write_test_video(f"{t}/short.avi", sample_photo(), frames=5)
open(f"{t}/empty.jpg", "wb").close()
with zipfile.ZipFile(f"{t}/bigmember.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("train/happy/a.jpg", ok); z.writestr("test/happy/b.jpg", ok)
    z.writestr("train/happy/huge.jpg", bytes(200 * 2**20))  # 200 MB unpacked, 200 KB packed
pixels = " ".join(["128"] * 2304)
open(f"{t}/bom.csv", "w", encoding="utf-8").write("\ufeffemotion,pixels,Usage\n3," + pixels + ",Training\n0," + pixels + ",PrivateTest\n")
open(f"{t}/longfield.csv", "w").write("emotion,pixels,Usage\n3," + "1" * 200000 + ",Training\n")
ck = torch.load("results/ensemble/best_model.pt", weights_only=True)
ck["members"][0]["path"] = "../../../../etc/passwd"
os.makedirs(f"{t}/evil"); torch.save(ck, f"{t}/evil/best_model.pt")
try:
    import onnx
    from emo.onnx_model import export_onnx
    from emo.model import load_model
    proto = onnx.load_from_string(export_onnx(load_model("results/best_model.pt")))
    for m in proto.metadata_props:
        if m.key == "classes": m.value = "{not json"
    open(f"{t}/badmeta.onnx", "wb").write(proto.SerializeToString())
except ImportError:
    pass
PY
head -c 1000000 ../shared/data/fer2013.zip > "$T/cut.zip" 2>/dev/null || head -c 1000000 /dev/urandom > "$T/cut.zip"
head -c 100000 results/best_model.pt > "$T/cut.pt"
mkdir -p "$T/ens" && cp results/ensemble/best_model.pt "$T/ens/"
mkdir -p "$T/run" && cp results/best_model.pt "$T/run/"
python -m emo.train "$T/tiny" --data synthetic --stem 16 --widths 16 16 32 32 32 --limit 256 --epochs 2 --no-progress --no-tune >/dev/null 2>&1
# a training killed (-9) after a few epochs, whose last.pt a power cut left empty
python -m emo.train "$T/powercut" --data synthetic --stem 16 --widths 16 16 32 32 32 --limit 256 --epochs 20 --patience 20 --no-progress --no-tune >/dev/null 2>&1 &
PID=$!; until [ "$(grep -c '^{' "$T/powercut/train_log.txt" 2>/dev/null)" -ge 3 ]; do sleep 0.2; done; kill -9 $PID; wait $PID 2>/dev/null
: > "$T/powercut/last.pt"
python -m emo.evaluate "$T/tiny/best_model.pt" --data synthetic --out "$T/tiny" >/dev/null 2>&1  # results to keep
hold() {  # hold FOLDER's lock (or, with a second argument, that dataset name's) from another process
  python -c "import sys, time; from emo.files import folder_lock
with folder_lock(sys.argv[1], name=sys.argv[2] or None):
    print('held', flush=True); time.sleep(600)" "$1" "${2:-}" > "$T/held" &
  HOLDER=$!
  until [ -s "$T/held" ]; do sleep 0.2; done; : > "$T/held"
}

FAMILY="bad values and paths"
VERDICTS="$T/verdicts"
snap() { (cd "$T" && find . -type f ! -name verdicts ! -name held -print0 | sort -z | xargs -0 md5sum 2>/dev/null | sort); }
row() {  # description, then the command (run where no file over $FSIZE KB may be written, when set)
  local what=$1; shift
  before=$(snap)
  out=$( { (ulimit -f "${FSIZE:-unlimited}"; timeout 300 "$@") 2>&1 </dev/null; echo "EXIT=$?"; } | tr '\r' '\n')
  rc=$(printf '%s\n' "$out" | tail -1 | sed 's/^EXIT=//'); out=$(printf '%s\n' "$out" | sed '$d')
  lost=$(comm -23 <(printf '%s\n' "$before") <(snap) | grep -v '\./p/\|\./powercut/' | head -1)
  said=$(printf '%s\n' "$out" | grep -E '^(error|NOTE|note|warning|skipped|could not read|[A-Za-z]+Error)' | paste -sd '~' | sed 's/~/ <br> /g')
  [ -n "$said" ] || said=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -1)
  line=$(printf '%s' "$said" | sed "s#$T#TMP#g; s/|/\\\\|/g" | cut -c1-900)
  last=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -1)
  if [ "$1" = python ] && [ "$2" = -c ] && printf '%s' "$last" | grep -qE '^(Value|FileNotFound)Error: '; then
    verdict="clear error (a library call: its exception, one line)"
  elif printf '%s' "$out" | grep -q Traceback; then verdict="TRACEBACK"
  elif [ -n "$lost" ]; then verdict="LOST DATA"
  elif [ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | grep -c '^error: ')" = 1 ]; then verdict="clear error"
  elif [ "$rc" = 0 ]; then verdict="handled"
  else verdict="exit $rc"; fi
  echo "$FAMILY|$verdict" >> "$VERDICTS"
  printf '| %s | %s | `%s` | %s | %s | %s |\n' "$what" "$FAMILY" "$(echo "$*" | sed "s#$T#TMP#g")" "$rc" "$verdict" "$line"
}
echo "# What users see on bad input"
echo
echo "Written by \`bash experiments/reliability/try_bad_inputs.sh\` on $(date +%F). Exit 2: a bad input or a fault, one line on stderr;"
echo "0: done, with a note. TMP is a scratch folder. The verdict: \"clear error\" (exit 2"
echo "and one error line), \"handled\" (exit 0), \"TRACEBACK\", or \"LOST DATA\" where a file that was in TMP before the"
echo "command (an input, an earlier result) changed or vanished. A full disk is the kernel refusing writes over a size"
echo "(\`ulimit -f\`); a second writer is another process holding the folder's lock."
echo
echo "| bad input | family | command | exit | verdict | what it says |"
echo "|---|---|---|---:|---|---|"
row "a path that does not exist" python -m emo.data import "$T/none.zip" --data-dir "$T/d"
row "a download cut short (the first MB of the zip)" python -m emo.data import "$T/cut.zip" --data-dir "$T/d"
row "an empty folder" python -m emo.data import "$T/empty" --data-dir "$T/d"
row "a CSV with other columns" python -m emo.data import "$T/wrong.csv" --data-dir "$T/d"
row "label folders named 0-6" python -m emo.data import "$T/numeric" --data-dir "$T/d"
row "... with --numeric-labels (a partial copy: one class)" python -m emo.data import "$T/numeric" --data-dir "$T/d1" --numeric-labels
row "an image OpenCV cannot read" python -m emo.data import "$T/unreadable.zip" --data-dir "$T/d2"
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
FAMILY="hostile files"
row "a folder of photos with a name that is not UTF-8, a FIFO named .jpg, an empty .jpg" python -m emo.predict "$T/hostile" "$T/empty.jpg" --out "$T/p"
row "a PNG declaring 30000 x 30000 pixels" python -m emo.predict "$T/bomb.png" --out "$T/p"
row "a five-frame video" python -m emo.predict "$T/short.avi" --out "$T/p"
row "photos with one name in two folders, and one stem twice, into their own folder" python -m emo.predict "$T/photos" --out "$T/photos"
row "a zip member declaring 200 MB (over EMO_MAX_IMAGE_MB)" python -m emo.data import "$T/bigmember.zip" --name big --data-dir "$T/d"
row "a FIFO as the archive" python -m emo.data import "$T/pipe.zip" --name pipe --data-dir "$T/d"
row "a CSV saved by a spreadsheet (a byte-order mark)" python -m emo.data import "$T/bom.csv" --data-dir "$T/d3"
row "a CSV field over the csv module's limit" python -m emo.data import "$T/longfield.csv" --data-dir "$T/d"
row "a FIFO as the model" python -m emo.evaluate "$T/pipe.pt"
row "an ensemble naming /etc/passwd as a member" python -m emo.evaluate "$T/evil/best_model.pt"
[ -f "$T/badmeta.onnx" ] && row "an ONNX file with damaged metadata" python -m emo.predict --model "$T/badmeta.onnx" --out "$T/p"
row "--runtime torch with an .onnx file" python -m emo.predict --model "$T/notes.onnx" --runtime torch --out "$T/p"
row "a training rate that overflows the weights" python -m emo.train "$T/new7" --data synthetic --stem 16 --widths 16 16 32 32 32 --limit 256 --epochs 2 --lr 1e30 --no-progress
FAMILY="faults"
FSIZE=20 row "a full disk while annotating photos (no file over 20 KB)" python -m emo.predict "$T/photos/a/x.jpg" "$T/photos/b/x.jpg" --out "$T/full"
FSIZE=8 row "a full disk while evaluating into a folder that holds results" python -m emo.evaluate "$T/tiny/best_model.pt" --data synthetic --out "$T/tiny"
FSIZE=40 row "a full disk while training" python -m emo.train "$T/full2" --data synthetic --stem 16 --widths 16 16 32 32 32 --limit 256 --epochs 2 --no-progress --no-tune
row "a training killed, its last.pt left empty by a power cut, then --resume" python -m emo.train "$T/powercut" --data synthetic --stem 16 --widths 16 16 32 32 32 --limit 256 --epochs 20 --patience 20 --no-progress --no-tune --resume
hold "$T/tiny"; row "a second training into a folder being written" python -m emo.train "$T/tiny" --data synthetic --epochs 3 --resume; kill $HOLDER
hold "$T/tiny"; row "a second evaluation into a folder being written" python -m emo.evaluate "$T/tiny/best_model.pt" --data synthetic --out "$T/tiny"; kill $HOLDER
hold "$T/p"; row "a second emo.predict into a folder being written" python -m emo.predict --out "$T/p"; kill $HOLDER
hold "$T/d" fer2013; row "a second import of one dataset name" python -m emo.data import "$T/bom.csv" --data-dir "$T/d"; kill $HOLDER
sleep 1; row "... after the first was killed: its lock is taken over" python -m emo.predict --out "$T/p"
echo
echo "By family (inputs and faults tried, and their verdicts):"
echo
sort "$VERDICTS" | uniq -c | awk '{n=$1; $1=""; sub(/^ /, ""); split($0, f, "|"); printf "- %s: %d %s\n", f[1], n, f[2]}'
rm -rf "$T"
