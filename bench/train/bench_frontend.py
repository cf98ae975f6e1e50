#!/usr/bin/env python3
"""The front end against the hand-split pipeline, side by side in one run:

1. tokens/s of examples/train_gpt.py (the plain GPT in smp.DistributedModel,
   partitioned automatically, run by the execution server; also with
   SMP_SERVER_ASYNC=0, every remote call waiting for its reply) against
   examples/train_gpt_hand_split.py (today's hand-cut stages on the
   PipelineRunner) at (pp, tp, rdp) = (2,1,1), (1,1,2), (2,2,2);
2. the front end's first step (trace + partition + the step) against its
   median step;
3. the front end's step time with the data-parallel gradient averaging
   overlapped with the backward pass against averaging after it, at
   (1,1,2) and (2,1,2).

Configurations interleaved over --reps rounds; per run the median step
after the first; per configuration the median over rounds.

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_frontend.py
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
FRONT = os.path.join(EXAMPLES, "train_gpt.py")
HAND = os.path.join(EXAMPLES, "train_gpt_hand_split.py")


def run(script, cfg, args, extra, tmp, env=()):
    pp, tp, rdp = cfg
    out = os.path.join(tmp, "r.json")
    if os.path.exists(out):
        os.remove(out)
    base = [sys.executable, script, "--steps", str(args.steps), "--quiet", "--losses-out", out,
            "--hidden", str(args.hidden), "--layers", str(args.layers), "--seq", str(args.seq),
            "--batch", str(args.batch), "--microbatches", str(args.microbatches)] + extra
    cmd = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe",
           "-np", str(pp * tp * rdp), "-x", f"SMP_PP_SIZE={pp}", "-x", f"SMP_TP_SIZE={tp}",
           "-x", "PYTHONPATH", "-x", "OMP_NUM_THREADS=1"] + [a for e in env for a in ("-x", e)] + base
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=900)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=1.0)
    args = p.parse_args()
    variants = ("front", "wait", "hand")  # wait: the front end with every call waiting
    tput = {(c, v): [] for c in [(2, 1, 1), (1, 1, 2), (2, 2, 2)] for v in variants}
    first = []
    overlap = {(c, v): [] for c in [(1, 1, 2), (2, 1, 2)] for v in ("on", "off")}
    bucket = ["--bucket-mb", str(args.bucket_mb)]
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for (cfg, v) in tput:
                r = run(HAND if v == "hand" else FRONT, cfg, args, [], tmp,
                        ["SMP_SERVER_ASYNC=0"] if v == "wait" else [])
                tput[(cfg, v)].append(r["tokens_per_s"])
                if v == "front" and cfg == (2, 2, 2):
                    first.append(r["first_step_s"] / r["median_step_s"])
            for (cfg, v) in overlap:
                extra = bucket + ([] if v == "on" else ["--no-overlap"])
                r = run(FRONT, cfg, args, extra, tmp)
                overlap[(cfg, v)].append(r["median_step_s"])
            print(f"round {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    med = statistics.median
    print(f"GPT hidden {args.hidden}, {args.layers} layers, seq {args.seq}, batch {args.batch}, "
          f"{args.microbatches} microbatches, {args.steps} steps, {args.reps} rounds "
          "(medians)\n")
    print("| (pp,tp,rdp) | front end tokens/s | every call waiting | hand-split | "
          "front / hand | waiting / hand |")
    print("|---|---|---|---|---|---|")
    for cfg in [(2, 1, 1), (1, 1, 2), (2, 2, 2)]:
        f, w, h = (med(tput[(cfg, v)]) for v in variants)
        print(f"| {cfg} | {f:.0f} | {w:.0f} | {h:.0f} | {f / h:.2f}x | {w / h:.2f}x |")
    print(f"\nFirst step / median step, front end at (2,2,2): {med(first):.2f}x "
          f"(rounds: {', '.join(f'{x:.2f}' for x in first)})\n")
    print(f"| (pp,tp,rdp) | overlapped ms | after backward ms | after / overlapped "
          f"(buckets {args.bucket_mb} MiB) |")
    print("|---|---|---|---|")
    for cfg in [(1, 1, 2), (2, 1, 2)]:
        on, off = med(overlap[(cfg, "on")]), med(overlap[(cfg, "off")])
        print(f"| {cfg} | {1e3 * on:.1f} | {1e3 * off:.1f} | {off / on:.2f}x |")


if __name__ == "__main__":
    main()
