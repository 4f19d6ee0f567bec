import gzip, json, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
meta = json.load(gzip.open(src + ".json.gz", "rt"))
header = bytes.fromhex(meta["header"])
data = open(src + ".bin", "rb").read()
pos = 0
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    for name, n in meta["entries"]:
        if n == -1:
            z.writestr(name, b""); continue  # folder entry
        if n <= -2:
            n = -2 - n; z.writestr(name, data[pos:pos + n])
        else:
            z.writestr(name, header + data[pos:pos + n])
        pos += n
assert pos == len(data)
print("rebuilt", out, len(meta["entries"]), "entries")
