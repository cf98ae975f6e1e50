"""Reads a consolidated checkpoint written by the C++ library with the
safetensors format's rules implemented here, independently (json, struct,
numpy; torch's own bfloat16 decoding as a cross-check), and compares every
value with the formula the writer used. Also checks the Hugging Face index
and every file's CRC32C in MANIFEST.json with a CRC32C written here.

usage: read_safetensors_test.py WRITER_BINARY
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError:  # the numpy decoding is checked regardless
    torch = None

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": np.uint16,
          "I8": np.int8, "U8": np.uint8, "I32": np.int32, "I64": np.int64}
SIZES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def expected(dtype, n):
    """Mirror of fill() in write_checkpoint.cc."""
    i = np.arange(n, dtype=np.int64)
    f = (i % 17) * 0.75 - 5.0
    s = (i * 7) % 200 - 100
    if dtype in ("F32", "F64", "F16", "BF16"):
        return f
    if dtype == "U8":
        return (i * 7) % 256
    if dtype == "I32":
        return s * 1000
    if dtype == "I64":
        return s * 1000000007
    return s


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
    return dict(pairs)


def read_safetensors(path):
    """Returns ({name: (dtype, shape, raw bytes)}, metadata), validating as
    the format prescribes."""
    with open(path, "rb") as f:
        blob = f.read()
    assert len(blob) >= 8
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), "header runs past the file"
    assert (8 + n) % 8 == 0, f"{path}: data not 8-byte aligned (header {n} bytes)"
    header_text = blob[8:8 + n].decode("utf-8")
    assert header_text.startswith("{")
    assert header_text.rstrip(" ") == header_text.rstrip(), "padding must be spaces"
    header = json.loads(header_text, object_pairs_hook=no_duplicates)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    pos = 0
    out = {}
    for name, e in entries:
        assert set(e) == {"dtype", "shape", "data_offsets"}, e
        b, end = e["data_offsets"]
        assert b == pos, f"{name}: gap or overlap at {b}, expected {pos}"
        count = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
        assert end - b == count * SIZES[e["dtype"]], f"{name}: size mismatch"
        out[name] = (e["dtype"], tuple(e["shape"]), data[b:end])
        pos = end
    assert pos == len(data), "trailing bytes after the last tensor"
    return out, meta


def decode(dtype, shape, raw):
    arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<"))
    if dtype == "BF16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if torch is not None and len(raw):
            t = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
            assert np.array_equal(t, arr), "torch and numpy disagree on bfloat16"
    return arr.reshape(shape)


def crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def main():
    writer = sys.argv[1]
    with tempfile.TemporaryDirectory() as root:
        ckpt = subprocess.run([writer, root], check=True, capture_output=True, text=True).stdout.strip()
        names = sorted(os.listdir(ckpt))
        model_files = [n for n in names if n.startswith("model-") and n.endswith(".safetensors")]
        assert len(model_files) >= 2, names

        index = json.load(open(os.path.join(ckpt, "model.safetensors.index.json")))
        seen = {}
        total = 0
        for fname in model_files:
            tensors, meta = read_safetensors(os.path.join(ckpt, fname))
            assert meta == {"format": "pt"}, meta
            for name, (dtype, shape, raw) in tensors.items():
                assert index["weight_map"][name] == fname
                total += len(raw)
                seen[name] = decode(dtype, shape, raw)
                want = expected(dtype, int(np.prod(shape, dtype=np.int64)) if shape else 1).reshape(shape)
                assert np.array_equal(seen[name].astype(np.float64), want.astype(np.float64)), \
                    f"{name} ({dtype}) differs: {seen[name].ravel()[:8]} vs {want.ravel()[:8]}"
        assert set(seen) == set(index["weight_map"]), (sorted(seen), sorted(index["weight_map"]))
        assert index["metadata"]["total_size"] == total
        assert seen["i64.scalar"].shape == () and seen["empty"].shape == (0, 5)
        assert len(seen) == 9

        opt, _ = read_safetensors(os.path.join(ckpt, "optimizer.safetensors"))
        dtype, shape, raw = opt["f32.weight"]
        assert shape == (33, 17) and np.array_equal(decode(dtype, shape, raw).ravel(), expected("F32", 33 * 17))

        manifest = json.load(open(os.path.join(ckpt, "MANIFEST.json")))
        listed = {f["name"]: f for f in manifest["files"]}
        assert set(listed) == set(names) - {"MANIFEST.json"}, (sorted(listed), names)
        for name, f in listed.items():
            blob = open(os.path.join(ckpt, name), "rb").read()
            assert len(blob) == f["bytes"] and crc32c(blob) == f["crc32c"], f"{name}: size or CRC32C differs"
        assert open(os.path.join(root, "latest")).read().strip() == os.path.basename(ckpt)
    print("ok: 9 tensors in", len(model_files), "files, optimizer state, index, manifest checksums")


if __name__ == "__main__":
    main()
