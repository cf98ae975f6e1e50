"""smp-ckpt info / verify / consolidate on a checkpoint written by C++:
verify accepts it and rejects it once a byte is flipped, consolidate's
output is read back with the independent reader of
read_safetensors_test.py, and usage errors exit 2.

usage: smp_ckpt_cli_test.py SMP_CKPT WRITER_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_safetensors_test import decode, expected, read_safetensors  # noqa: E402


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def main():
    cli, writer = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as root:
        ckpt = run(writer, root).stdout.strip()
        os.makedirs(os.path.join(root, ".tmp-ckpt-00000009"))  # a save that died

        r = run(cli, "verify", root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok   " + ckpt in r.stdout and "skip .tmp-ckpt-00000009" in r.stdout, r.stdout

        r = run(cli, "info", root)
        assert r.returncode == 0 and "consolidated checkpoint, saved by 1 ranks" in r.stdout, r.stdout
        assert r.stdout.count("\n  model ") == 9 and r.stdout.count("\n  optimizer ") == 1, r.stdout

        out = os.path.join(root, "out")
        r = run(cli, "consolidate", root, out)
        assert r.returncode == 0, r.stdout + r.stderr
        tensors, meta = read_safetensors(os.path.join(out, "model.safetensors"))
        assert len(tensors) == 9 and meta == {"format": "pt"}
        for name, (dtype, shape, raw) in tensors.items():
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            assert np.array_equal(decode(dtype, shape, raw).astype(np.float64).ravel(),
                                  expected(dtype, n).astype(np.float64)), name
        r = run(cli, "verify", os.path.join(out, "model.safetensors"))
        assert r.returncode == 0, r.stdout

        victim = os.path.join(ckpt, "optimizer.safetensors")
        blob = bytearray(open(victim, "rb").read())
        blob[-5] ^= 0x40
        open(victim, "wb").write(bytes(blob))
        r = run(cli, "verify", root)
        assert r.returncode == 1 and "FAIL" in r.stdout and "CRC32C" in r.stdout, r.stdout

        for bad in (["verify"], ["frobnicate", root], ["consolidate", root]):
            r = run(cli, *bad)
            assert r.returncode == 2 and r.stderr.count("\n") == 1, (bad, r.returncode, r.stderr)
        r = run(cli, "frobnicate", root)
        assert "unknown command 'frobnicate'" in r.stderr, r.stderr
        r = run(cli, "--help")
        assert r.returncode == 0 and all(c in r.stdout for c in ("info", "verify", "consolidate")), r.stdout
        r = run(cli, "consolidate", "--help")
        assert r.returncode == 0 and "SRC" in r.stdout and "DST" in r.stdout, r.stdout
        r = run(cli, "info", os.path.join(root, "missing"))
        assert r.returncode == 1 and "no complete checkpoint" in r.stderr, r.stderr
    print("ok: smp-ckpt verify, info, consolidate")


if __name__ == "__main__":
    main()
