# python3 json round trip (file and string), hashlib digests, base64, struct, zlib
python3 - <<'PY'
import json, hashlib, base64, struct, zlib, collections
data = {"name": "moat", "nums": [1, 2.5, -3, 10**20], "nested": {"ok": True, "none": None},
        "text": "caf\u00e9 \u2603", "empty": []}
with open("data.json", "w") as f:
    json.dump(data, f, sort_keys=True, indent=2, ensure_ascii=True)
with open("data.json") as f:
    back = json.load(f)
print("round trip equal:", back == data)
print(json.dumps(back, sort_keys=True, separators=(",", ":")))
print(json.dumps(back["text"], ensure_ascii=False))
try:
    json.loads("{bad json}")
except json.JSONDecodeError as e:
    print("decode error at", e.pos, e.msg)
raw = open("data.json", "rb").read()
for algo in ("md5", "sha1", "sha256", "sha512", "blake2b"):
    print(algo, hashlib.new(algo, raw).hexdigest()[:32])
h = hashlib.sha256()
for i in range(1000):
    h.update(str(i).encode())
print("incremental", h.hexdigest())
print("hmac-ish", hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex()[:32])
print(base64.b64encode(b"\x00\x01moat").decode(), base64.b32encode(b"hi").decode())
packed = struct.pack("<IhQ", 0xdeadbeef, -2, 1 << 40)
print(packed.hex(), struct.unpack("<IhQ", packed))
comp = zlib.compress(raw * 10, 9)
print("zlib ok", zlib.decompress(comp) == raw * 10, zlib.crc32(raw), zlib.adler32(raw))
print(collections.Counter("mississippi").most_common(3))
PY
