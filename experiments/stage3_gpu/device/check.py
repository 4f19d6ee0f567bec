import gzip, hashlib, json, sys
import numpy as np
meta = json.load(gzip.open(sys.argv[1] + ".json.gz", "rt"))
ds = np.load(sys.argv[2] if len(sys.argv) > 2 else "data/fer2013.npz")
got = {k: hashlib.sha256(np.ascontiguousarray(ds[k]).tobytes()).hexdigest() for k in ("images", "labels", "usage")}
print("DATA", "MATCH" if got == meta["sha256"] else f"MISMATCH {got} vs {meta['sha256']}")
