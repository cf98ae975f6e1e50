"""Checkpoints of many tensors: smp-ckpt verify and consolidate, and the
Python load, on a sharded checkpoint of N tensors (ckpt_many_tensors).
Correctness only is asserted (consolidate's output read back with the
independent reader of read_safetensors_test.py, every value checked; the
Python load compared element by element); the times are printed, and
bench/ckpt/scale.sh records them in BENCHMARKS.md.

usage: scale_test.py SMP_CKPT MANY_TENSORS N [python]
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_safetensors_test import decode, read_safetensors  # noqa: E402


def timed(*args):
    t0 = time.perf_counter()
    r = subprocess.run(list(args), capture_output=True, text=True)
    assert r.returncode == 0, "%s: exit %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr)
    return r.stdout, time.perf_counter() - t0


def python_load(ckpt, n):
    """Loads every tensor through smp's Python checkpoint API; returns the
    seconds taken by registration + load."""
    import torch
    import smp
    import smp.checkpoint
    smp.init()
    try:
        out = [torch.zeros(4) for _ in range(n)]
        t0 = time.perf_counter()
        ck = smp.checkpoint.Checkpoint()
        for i, t in enumerate(out):
            ck.add("t%d" % i, t)
        ck.load(ckpt)
        took = time.perf_counter() - t0
        want = torch.arange(4 * n, dtype=torch.float32).reshape(n, 4)
        assert torch.equal(torch.stack(out), want), "the Python load differs from the reference"
        ck.close()
        return took
    finally:
        smp.finalize()


def main():
    cli, writer, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with tempfile.TemporaryDirectory() as root:
        ckpt, t_write = timed(writer, root, str(n), "sharded")
        ckpt = ckpt.strip()
        out, t_verify = timed(cli, "verify", ckpt)
        assert out.startswith("ok"), out
        dst = os.path.join(root, "consolidated")
        _, t_cons = timed(cli, "consolidate", ckpt, dst)
        tensors, _ = read_safetensors(os.path.join(dst, "model.safetensors"))
        assert len(tensors) == n, len(tensors)
        for i in range(n):
            dtype, shape, raw = tensors["t%d" % i]
            arr = decode(dtype, shape, raw)
            assert dtype == "F32" and list(shape) == [4], (i, dtype, shape)
            assert np.array_equal(arr, np.arange(4 * i, 4 * i + 4, dtype=np.float32)), (i, arr)
        line = "ok: %d tensors: write %.2f s, verify %.2f s, consolidate %.2f s" % (n, t_write, t_verify, t_cons)
        if len(sys.argv) > 4 and sys.argv[4] == "python":
            line += ", Python load %.2f s" % python_load(ckpt, n)
        print(line)


if __name__ == "__main__":
    main()
