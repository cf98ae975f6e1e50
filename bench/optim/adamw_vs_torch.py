"""Fused CPU AdamW (smp) vs torch.optim.AdamW(foreach=True) on the same
sizes, and both vs the memory bound, in one run. Bytes count reads plus
writes alike for everything: 28 per element for AdamW (read param,
exp_avg, exp_avg_sq, grad; write param, exp_avg, exp_avg_sq), 8 per float
for a copy. The bound is an in-place read-modify-write loop with AdamW's
access pattern (adamw-kernel-bench's rmw_bound); memcpy and a copy loop are
shown for reference. Rounds alternate smp and torch; every figure is a
median.

usage: /usr/bin/python3 bench/optim/adamw_vs_torch.py BUILD/bench/optim/adamw-kernel-bench
       [--elems 16777216] [--tensors 16] [--rounds 3] [--reps 7]
"""
import argparse
import os
import statistics
import subprocess
import time

import torch


def torch_adamw_seconds(elems, tensors, reps, threads):
    torch.set_num_threads(threads)
    per = elems // tensors
    params = [torch.full((per,), 0.5, requires_grad=True) for _ in range(tensors)]
    for p in params:
        p.grad = torch.linspace(-0.5, 0.5, per)
    opt = torch.optim.AdamW(params, lr=1e-3, foreach=True)
    opt.step()  # warm-up: allocates the state
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), per * tensors


def smp_run(exe, elems, reps):
    out = subprocess.run([exe, str(elems), str(reps)], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        name, n, secs, gbs, bound, frac = line.split()
        rows[name] = (float(secs), float(gbs), float(bound))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--elems", type=int, default=16 << 20)
    ap.add_argument("--tensors", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    default_threads = torch.get_num_threads()
    acc = {}
    for _ in range(a.rounds):
        for name, (secs, gbs, bound) in smp_run(a.bench, a.elems, a.reps).items():
            acc.setdefault(name, []).append(secs)
            acc.setdefault("bound", []).append(bound)
        for threads in sorted({1, default_threads, os.cpu_count() or 1}):
            secs, n = torch_adamw_seconds(a.elems, a.tensors, a.reps, threads)
            acc.setdefault(f"torch_foreach_{threads}t", []).append(secs)
    bound = statistics.median(acc.pop("bound"))
    smp_f32 = statistics.median(acc["smp_adamw_f32"])
    print(f"elements: {a.elems} (torch: {a.tensors} tensors); in-place read-modify-write "
          f"bound: {bound:.2f} GB/s; torch default threads: {default_threads}")
    print("| kernel | threads | ms / step | GB/s (28 B/elem) | of RMW bound | time / smp f32 |")
    print("|---|---|---|---|---|---|")
    for name in ["rmw_bound", "smp_adamw_f32", "smp_adamw_bf16", "smp_adamw_f16"] + sorted(k for k in acc if k.startswith("torch")):
        secs = statistics.median(acc[name])
        threads = name.rsplit("_", 1)[1].rstrip("t") if name.startswith("torch") else "1"
        gbs = 28.0 * a.elems / secs / 1e9
        print(f"| {name} | {threads} | {secs * 1e3:.1f} | {gbs:.2f} | {gbs / bound:.0%} | "
              f"{secs / smp_f32:.2f}x |")
    for name in ["memcpy", "copy_loop"]:
        secs = statistics.median(acc[name])
        print(f"| {name} | 1 | {secs * 1e3:.1f} | {8.0 * a.elems / secs / 1e9:.2f} (8 B/elem) | | |")


if __name__ == "__main__":
    main()
