#!/usr/bin/env python3
"""A sharded optimizer's checkpoint resumes training exactly, at another
group size: train 5 steps on 3 ranks without stopping (the reference), and
separately train steps 0-2 on 3 ranks, save, load on 2 ranks into a model
and optimizer made from other values, and train steps 3-4. The final
parameters must be bit-identical: gradients are the same on every rank and
multiples of 1/64, so averaging them is exact at any group size and only
the restored state can make a difference. With 16-bit parameters this
needs the float32 master weights in the checkpoint (rounding the loaded
parameters back up loses what they hold); with SGD, the momentum buffer.

    sharded_ckpt_roundtrip.py --mpirun mpirun --dtype bfloat16 --kind adamw
"""
import argparse
import os
import subprocess
import sys
import tempfile

SHAPES = [(7, 5), (33,), (4, 3, 2), (1,), (50,)]  # odd sizes: pieces split mid-tensor


def grad(step, i, shape, torch):
    """Deterministic, the same on every rank, exact in 16 bits."""
    g = torch.Generator().manual_seed(1000 * step + i)
    return torch.randint(-64, 65, shape, generator=g).float() / 64


def train(a, steps, load=None, save=None, out=None):
    import torch
    import smp
    from smp.checkpoint import Checkpoint
    from smp.optim import ShardedOptimizer
    smp.init()
    dtype = getattr(torch, a.dtype)
    torch.manual_seed(7 if load is None else 8)  # a loaded run starts from other values
    params = [torch.nn.Parameter(torch.randn(s).to(dtype)) for s in SHAPES]
    kw = {"kind": a.kind, "lr": 0.05}
    if a.kind == "sgd":
        kw.update(momentum=0.9)
    opt = ShardedOptimizer([(f"p{i}", p) for i, p in enumerate(params)], **kw)
    ck = Checkpoint()
    for i, p in enumerate(params):
        ck.add(f"p{i}", p, flags=smp.checkpoint.REPLICATED)
    ck.add_sharded_optimizer(opt)
    first = 0
    if load:
        ck.load(load)
        first = ck.get_user("step")
        opt.set_step(first)
    for step in range(first, steps):
        for i, p in enumerate(params):
            p.grad = grad(step, i, p.shape, torch).to(dtype)
        opt.step()
    if save:
        ck.set_user("step", steps)
        ck.save(save, sharded=True)
    if out and smp.rank() == 0:
        torch.save([p.detach().clone() for p in params], out)
    ck.close()
    opt.close()
    smp.finalize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mpirun", required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--kind", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--phase", choices=["reference", "save", "resume"], help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.phase:
        ck, out = os.path.join(a.dir, "ckpt"), os.path.join(a.dir, a.phase + ".pt")
        if a.phase == "reference":
            train(a, 5, out=out)
        elif a.phase == "save":
            train(a, 3, save=ck)
        else:
            train(a, 5, load=ck, out=out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for phase, n in (("reference", 3), ("save", 3), ("resume", 2)):
            cmd = [a.mpirun, "-np", str(n), a.python, os.path.abspath(__file__), "--mpirun",
                   a.mpirun, "--dtype", a.dtype, "--kind", a.kind, "--phase", phase, "--dir", tmp]
            print(" ".join(cmd), flush=True)
            r = subprocess.run(cmd, timeout=300)
            if r.returncode != 0:
                print(f"FAIL: phase {phase} exited {r.returncode}")
                return 1
        import torch
        ref = torch.load(os.path.join(tmp, "reference.pt"))
        got = torch.load(os.path.join(tmp, "resume.pt"))
    bad = [i for i, (x, y) in enumerate(zip(ref, got)) if not torch.equal(x, y)]
    for i in bad:
        d = (ref[i].float() - got[i].float()).abs().max().item()
        print(f"FAIL: p{i} differs from the uninterrupted run (max |diff| {d:g})")
    if bad:
        return 1
    print(f"OK: {a.dtype} {a.kind}: resumed on 2 ranks from 3 = uninterrupted, bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
