#!/usr/bin/env python3
"""Numerical equivalence: train examples/train_gpt.py under mpirun with a
given (pp, tp, rdp), then train the same model in this one process with
plain PyTorch from the same seed, and require every step's loss to agree
within --tolerance (relative). Exit 0 only if they do.

    run_equivalence.py --mpirun mpirun --example examples/train_gpt.py \
        --pp 2 --tp 2 --rdp 2 [-- extra train_gpt.py arguments]

Extra arguments go to both runs and to the single-process reference, so
`-- --device cuda` compares a GPU run with a GPU reference.

With --saved-at, a first run at another layout trains steps 0-2 and saves
a checkpoint that the main run resumes; --save-args / --load-args give
the two runs different arguments (e.g. smp's sharded optimizer in one,
torch's AdamW in the other). --missing-optimizer-state instead saves the
model alone and requires the main run to refuse to resume from it.
"""
import argparse
import json
import os
import shlex
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
    p.add_argument("--save-args", default="", help="train_gpt.py arguments of the saving run only")
    p.add_argument("--load-args", default="", help="train_gpt.py arguments of the main run only")
    p.add_argument("--missing-optimizer-state", action="store_true",
                   help="resume from a checkpoint of the model alone: the main run must fail "
                        "and name the missing optimizer state")
    p.add_argument("--write-model-only", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--require-cuda", action="store_true",
                   help="exit 77 (skipped) unless torch sees a GPU (pass -- --device cuda)")
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    if a.require_cuda:
        import torch
        if not torch.cuda.is_available():
            print("run_equivalence: torch sees no GPU: skipped")
            return 77
    train_args = TINY + a.extra
    if a.write_model_only:
        return write_model_only(a, train_args)

    def launch(pp, tp, rdp, extra, program=None):
        cmd = [a.mpirun, "-np", str(pp * tp * rdp), "-x", f"SMP_PP_SIZE={pp}",
               "-x", f"SMP_TP_SIZE={tp}", a.python] + (program or [a.example] + train_args) + extra
        print(" ".join(cmd), flush=True)
        r = subprocess.run(cmd, timeout=600)
        if r.returncode != 0:
            print(f"FAIL: the parallel run exited {r.returncode}")
        return r.returncode == 0

    if a.missing_optimizer_state:
        return missing_optimizer_state(a, train_args, launch)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "losses.json")
        extra = ["--losses-out", out] + shlex.split(a.load_args)
        saved = []
        if a.saved_at:
            # The saving run's own steps 0..2 are checked too.
            ckpt = os.path.join(tmp, "ckpt")
            out0 = os.path.join(tmp, "saved.json")
            pp, tp, rdp = (int(x) for x in a.saved_at.split(","))
            if not launch(pp, tp, rdp, ["--steps", "3", "--save", ckpt, "--losses-out", out0]
                          + shlex.split(a.save_args)):
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
    from gpt_model import make_batch
    torch.manual_seed(args.seed)
    with torch.no_grad():
        untrained = train_gpt.loss_of(args, train_gpt.build(args, cfg),
                                      *make_batch(cfg, args.batch, args.steps - 1,
                                                  args.seed)).item()
    if abs(untrained - full_reference[-1]) <= 1e-4 * abs(untrained):
        print(f"FAIL: training did not change the loss ({untrained} vs {full_reference[-1]})")
        return 1
    if worst > a.tolerance:
        print(f"FAIL: largest relative difference {worst:.2e} > {a.tolerance:g}")
        return 1
    print(f"OK: largest relative difference {worst:.2e} <= {a.tolerance:g}")
    return 0


def write_model_only(a, train_args):
    """(Under mpirun -np 1.) A checkpoint of the untrained model's
    parameters, under the names train_gpt.py uses, without optimizer
    state."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.example)))
    import torch
    import smp
    import train_gpt
    from gpt_model import GPT, GPTConfig, build_chunks
    from smp.checkpoint import Checkpoint
    args = train_gpt.parse_args(train_args)
    cfg = GPTConfig(vocab=args.vocab, seq=args.seq, hidden=args.hidden, heads=args.heads,
                    layers=args.layers)
    smp.init()
    torch.manual_seed(args.seed)
    ck = Checkpoint()
    for ch in build_chunks(GPT(cfg), 1):
        for local, p in ch.named_parameters():
            ck.add(ch.full_names[local], p)
    ck.set_user("step", 3)
    ck.save(a.write_model_only)
    ck.close()
    smp.finalize()
    return 0


def missing_optimizer_state(a, train_args, launch):
    """A checkpoint without optimizer state must not resume training (with
    zero moments, silently): the run fails and names a missing tensor."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")
        if not launch(1, 1, 1, [], program=[os.path.abspath(__file__), "--mpirun", a.mpirun,
                                            "--example", a.example, "--write-model-only",
                                            ckpt, "--"] + a.extra):
            return 1
        cmd = [a.mpirun, "-np", str(a.pp * a.tp * a.rdp), "-x", f"SMP_PP_SIZE={a.pp}",
               "-x", f"SMP_TP_SIZE={a.tp}", a.python, a.example] + train_args + [
                   "--load", ckpt] + shlex.split(a.load_args)
        print(" ".join(cmd), flush=True)
        r = subprocess.run(cmd, timeout=600, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        print(r.stdout)
        if r.returncode == 0:
            print("FAIL: resumed from a checkpoint without optimizer state")
            return 1
        want = "train_gpt: cannot resume from"
        if want not in r.stdout or ".exp_avg" not in r.stdout:
            print(f"FAIL: exited {r.returncode} without '{want}' naming an .exp_avg tensor")
            return 1
        if "Traceback" in r.stdout:
            print("FAIL: a traceback instead of one error line")
            return 1
    print(f"OK: exited {r.returncode}, naming the missing optimizer state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
