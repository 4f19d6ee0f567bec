"""Pack FER-2013's JPEG bodies (one shared 328-byte header stripped) so the data fits the device transfer."""
import hashlib, json, gzip, sys, zipfile
import numpy as np
src, out = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(src)
infos = z.infolist()
header, entries, bodies = None, [], []
for info in infos:
    if info.is_dir():
        entries.append([info.filename, -1]); continue
    b = z.read(info)
    i = b.index(b"\xff\xda"); e = i + 2 + int.from_bytes(b[i + 2:i + 4], "big")
    if header is None: header = b[:e]
    if b[:e] == header:
        entries.append([info.filename, len(b) - e]); bodies.append(b[e:])
    else:
        entries.append([info.filename, -2 - len(b)]); bodies.append(b)
ds = np.load("../data/fer2013.npz")
sha = {k: hashlib.sha256(np.ascontiguousarray(ds[k]).tobytes()).hexdigest() for k in ("images", "labels", "usage")}
open(out + ".bin", "wb").write(b"".join(bodies))
with gzip.open(out + ".json.gz", "wt") as f:
    json.dump({"header": header.hex(), "entries": entries, "sha256": sha}, f)
print(len(entries), sum(len(b) for b in bodies), sha)
