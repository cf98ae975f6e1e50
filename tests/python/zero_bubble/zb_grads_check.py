#!/usr/bin/env python3
"""Under mpirun (SMP_PP_SIZE = the ranks): one training step of the GPT
(examples/gpt_model.py) on smp.pipeline.PipelineRunner under a split-
backward schedule (zb-h1 or zb-v: B through torch.autograd.grad, W later)
and under 1F1B ('interleaved') from the same weights and batch. Every
parameter's gradient, by its full-model name, must match 1F1B's within
--tolerance (relative to the largest entry), every microbatch loss must
match, and some gradient must be non-zero. Rank 0 compares what every
rank wrote to --out.

    mpirun -np 4 -x SMP_PP_SIZE=4 python3 zb_grads_check.py --schedule zb-v \\
        --examples examples --out DIR
"""
import argparse
import os
import sys

import torch


def check_timeline(path, pp, m, chunks):
    """The executor's timeline: on every rank, one backward_input (B) and
    one backward_weight (W) event per microbatch and chunk of the split
    run (and 1F1B's m whole backwards), each W after its own B, and no W
    overlapping another compute op (its time is its own)."""
    import json
    with open(path) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    for r in range(pp):
        mine = [e for e in events if e["pid"] == r]
        ops = {k: [e for e in mine if e["name"] == k]
               for k in ("forward", "backward", "backward_input", "backward_weight")}
        want = {"forward": m * chunks + m, "backward": m, "backward_input": m * chunks,
                "backward_weight": m * chunks}
        got = {k: len(v) for k, v in ops.items()}
        if got != want:
            print(f"FAIL: timeline rank {r}: {got} events, expected {want}")
            return 1
        key = lambda e: (e["args"]["microbatch"], e["args"]["chunk"])  # noqa: E731
        b_end = {key(e): e["ts"] + e["dur"] for e in ops["backward_input"]}
        if len(b_end) != m * chunks:
            print(f"FAIL: timeline rank {r}: B events repeat a (microbatch, chunk)")
            return 1
        compute = sorted((e for k in ops for e in ops[k]), key=lambda e: e["ts"])
        for e in ops["backward_weight"]:
            if e["ts"] < b_end[key(e)]:
                print(f"FAIL: timeline rank {r}: W {key(e)} starts before its B ended")
                return 1
        for x, y in zip(compute, compute[1:]):
            if y["ts"] < x["ts"] + x["dur"] - 1e-3:
                print(f"FAIL: timeline rank {r}: {x['name']} {key(x)} overlaps {y['name']} {key(y)}")
                return 1
    print(f"OK: timeline: B and W of every microbatch and chunk recorded apart on {pp} ranks")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--schedule", required=True, choices=["zb-h1", "zb-v"])
    p.add_argument("--examples", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--microbatches", type=int, default=4)
    p.add_argument("--tolerance", type=float, default=1e-6)
    a = p.parse_args()
    sys.path.insert(0, a.examples)
    torch.set_num_threads(1)
    import smp
    from smp.pipeline import PipelineRunner
    from gpt_model import GPT, GPTConfig, build_chunks, make_batch

    smp.init()
    pp, rank = smp.pp_size(), smp.pp_rank()
    cfg = GPTConfig(vocab=32, seq=8, hidden=32, heads=4, layers=2 * pp)
    torch.manual_seed(7)
    full = GPT(cfg)
    x, y = make_batch(cfg, 2 * a.microbatches, 0, 7)
    xs, ys = x.chunk(a.microbatches), y.chunk(a.microbatches)
    results = {}
    for sched, per_stage in ((a.schedule, 2 if a.schedule == "zb-v" else 1), ("interleaved", 1)):
        chunks = build_chunks(full, per_stage, sched)
        for prm in full.parameters():  # chunks may share the full model's tensors
            prm.grad = None
        for ch in chunks:
            ch.zero_grad(set_to_none=True)
        losses = PipelineRunner(chunks, schedule=sched).run(xs, ys)
        grads = {ch.full_names[n]: prm.grad.clone() for ch in chunks
                 for n, prm in ch.named_parameters() if prm.grad is not None}
        results[sched] = (losses, grads)
    torch.save(results, os.path.join(a.out, f"rank{rank}.pt"))
    timeline = os.environ.get("SMP_TIMELINE")
    if timeline:
        smp.timeline_write()
    smp.barrier(smp.WORLD)
    status = 0
    if rank == 0 and timeline:
        status = check_timeline(timeline, pp, a.microbatches, 2 if a.schedule == "zb-v" else 1)
    if rank == 0:
        got, ref, lz, lr = {}, {}, None, None
        for r in range(pp):
            res = torch.load(os.path.join(a.out, f"rank{r}.pt"))
            got.update(res[a.schedule][1])
            ref.update(res["interleaved"][1])
            if res[a.schedule][0] is not None:
                lz = res[a.schedule][0]
            if res["interleaved"][0] is not None:
                lr = res["interleaved"][0]
        worst, nonzero = 0.0, False
        if sorted(got) != sorted(ref) or len(got) != len(list(full.parameters())):
            print(f"FAIL: {a.schedule} has gradients of {len(got)} parameters, 1F1B of "
                  f"{len(ref)}, the model has {len(list(full.parameters()))}")
            status = 1
        for name in sorted(set(got) & set(ref)):
            scale = ref[name].abs().max().item()
            nonzero |= scale > 0
            d = (got[name] - ref[name]).abs().max().item() / max(scale, 1e-30)
            worst = max(worst, d)
        if not nonzero:
            print("FAIL: every gradient is zero")
            status = 1
        if lz is None or lr is None or len(lz) != a.microbatches or any(
                abs(u - v) > 1e-6 * abs(v) for u, v in zip(lz, lr)):
            print(f"FAIL: losses {lz} vs 1F1B's {lr}")
            status = 1
        if worst > a.tolerance:
            print(f"FAIL: largest relative gradient difference {worst:.2e} > {a.tolerance:g}")
            status = 1
        if status == 0:
            print(f"OK: {a.schedule} at pp={pp}: {len(got)} gradients equal 1F1B's "
                  f"(largest relative difference {worst:.1e}), losses equal")
    flag = torch.tensor([status], dtype=torch.int32)
    smp.broadcast(flag, 0, smp.WORLD)
    smp.finalize()
    return int(flag.item())


if __name__ == "__main__":
    sys.exit(main())
