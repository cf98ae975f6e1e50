#!/usr/bin/env python3
"""Numerical equivalence: train examples/train_gpt.py under mpirun with a
given (pp, tp, rdp), then train the same model in this one process with
plain PyTorch from the same seed, and require every step's loss to agree
within --tolerance (relative). Exit 0 only if they do.

    run_equivalence.py --mpirun mpirun --example examples/train_gpt.py \
        --pp 2 --tp 2 --rdp 2 [-- extra train_gpt.py arguments]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

# The model is tiny so that 8 ranks on 2 cores take seconds.
TINY = ["--vocab", "32", "--seq", "8", "--hidden", "32", "--heads", "4", "--layers", "4",
        "--batch", "8", "--microbatches", "2", "--steps", "5", "--quiet"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mpirun", required=True)
    p.add_argument("--example", required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--rdp", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--saved-at", metavar="PP,TP,RDP",
                   help="first train 3 steps at this layout and save a checkpoint; the "
                        "main run loads it and trains steps 3 and 4")
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    train_args = TINY + a.extra

    def launch(pp, tp, rdp, extra):
        cmd = [a.mpirun, "-np", str(pp * tp * rdp), "-x", f"SMP_PP_SIZE={pp}",
               "-x", f"SMP_TP_SIZE={tp}", a.python, a.example] + train_args + extra
        print(" ".join(cmd), flush=True)
        r = subprocess.run(cmd, timeout=600)
        if r.returncode != 0:
            print(f"FAIL: the parallel run exited {r.returncode}")
        return r.returncode == 0

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "losses.json")
        extra = ["--losses-out", out]
        saved = []
        if a.saved_at:
            # The saving run's own steps 0..2 are checked too.
            ckpt = os.path.join(tmp, "ckpt")
            out0 = os.path.join(tmp, "saved.json")
            pp, tp, rdp = (int(x) for x in a.saved_at.split(","))
            if not launch(pp, tp, rdp, ["--steps", "3", "--save", ckpt, "--losses-out", out0]):
                return 1
            with open(out0) as f:
                saved = json.load(f)["losses"]
            extra += ["--load", ckpt]
        if not launch(a.pp, a.tp, a.rdp, extra):
            return 1
        with open(out) as f:
            result = json.load(f)
        first, parallel = result["first_step"], result["losses"]
        if a.saved_at:
            if first != 3 or len(saved) != 3:
                print(f"FAIL: resumed at step {first} after {len(saved)} saved steps, expected 3")
                return 1
            first, parallel = 0, saved + parallel

    sys.path.insert(0, os.path.dirname(os.path.abspath(a.example)))
    import torch
    import train_gpt
    from gpt_model import GPTConfig
    torch.set_num_threads(1)
    args = train_gpt.parse_args(train_args)
    cfg = GPTConfig(vocab=args.vocab, seq=args.seq, hidden=args.hidden, heads=args.heads,
                    layers=args.layers)
    full_reference = train_gpt.train_reference(args, cfg, args.steps)
    reference = full_reference[first:]

    print("step  parallel    single-process  rel.diff")
    worst = 0.0
    for i, (x, y) in enumerate(zip(parallel, reference)):
        d = abs(x - y) / abs(y)
        worst = max(worst, d)
        print(f"{first + i:4d}  {x:.7f}  {y:.7f}       {d:.1e}")
    if len(parallel) != len(reference):
        print(f"FAIL: {len(parallel)} parallel steps, expected {len(reference)}")
        return 1
    # The steps must have changed the model (else equal losses prove
    # little): the untrained model's loss on the last batch differs.
    from gpt_model import GPT, make_batch
    torch.manual_seed(args.seed)
    with torch.no_grad():
        untrained = GPT(cfg)(*make_batch(cfg, args.batch, args.steps - 1, args.seed)).item()
    if abs(untrained - full_reference[-1]) <= 1e-4 * abs(untrained):
        print(f"FAIL: training did not change the loss ({untrained} vs {full_reference[-1]})")
        return 1
    if worst > a.tolerance:
        print(f"FAIL: largest relative difference {worst:.2e} > {a.tolerance:g}")
        return 1
    print(f"OK: largest relative difference {worst:.2e} <= {a.tolerance:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
