#!/usr/bin/env python3
"""Training throughput of examples/train_gpt.py: (pp, tp, rdp) = (1,1,1) in
one process (no launcher) versus (1,1,2), (2,1,1), (1,2,1) under mpirun,
side by side in one run, configurations interleaved over --reps rounds.
Per run: the median step time over the steps after the first; per
configuration: the median over rounds. Also the share of rank 0's step
time spent inside smp calls (smp.comm_seconds(): collectives, sends,
receives, waits, the sharded optimizer's step).

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_train.py
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
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "train_gpt.py")
CONFIGS = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1)]


def run(cfg, steps, extra, tmp):
    pp, tp, rdp = cfg
    out = os.path.join(tmp, "r.json")
    base = [sys.executable, EXAMPLE, "--steps", str(steps), "--quiet", "--losses-out", out] + extra
    if cfg == (1, 1, 1):
        cmd = base  # one process, no launcher: smp is a world of one
    else:
        env_args = ["-x", f"SMP_PP_SIZE={pp}", "-x", f"SMP_TP_SIZE={tp}"]
        cmd = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe",
               "-np", str(pp * tp * rdp)] + env_args + base
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more train_gpt.py arguments")
    a = p.parse_args()
    results = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.reps):
            for c in CONFIGS:
                results[c].append(run(c, a.steps, a.extra, tmp))
    base = statistics.median(r["tokens_per_s"] for r in results[(1, 1, 1)])
    print("| (pp, tp, rdp) | ranks | tokens/s | vs (1,1,1) | time in smp calls |")
    print("|---|---|---|---|---|")
    for c in CONFIGS:
        tok = statistics.median(r["tokens_per_s"] for r in results[c])
        share = statistics.median(r["comm_share"] for r in results[c])
        print(f"| ({c[0]},{c[1]},{c[2]}) | {c[0] * c[1] * c[2]} | {tok:.0f} | {tok / base:.2f}x "
              f"| {100 * share:.1f}% |")


if __name__ == "__main__":
    main()
