#!/usr/bin/env python3
"""Step time and peak memory of a GPT from stock modules (examples/
stock_gpt.py, dropout on) trained through the front end with and without
activation checkpointing (smp.set_activation_checkpointing on its
transformer layers, strategy "each"), and with offload_activations, at
pp x tp x rdp layouts (default 1x2x1 and 2x2x2: tensor parallelism swaps
the layers for smp.nn's twins; --layouts 1x1x1,2x1x1 without it).

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_activation_ckpt.py

runs one mpirun job per (layout, mode) and prints a markdown table: the
median step time over --steps timed steps (after --warmup), and per rank
(the largest over ranks) the peak memory: on a GPU torch's peak allocated
bytes over the timed steps, on the CPU the process's peak RSS growth over
all steps from before the first (partitioning, optimizer state and
allocator slack included: the same in every mode); and the
activation bytes rank 0 (the first stage) held for backward at their
peak over one more step (smp.activations.SavedMemory: what autograd saved
in the microbatch threads, checkpointed regions' inputs and
recomputations). The machine may be shared: compare ratios.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rank_main(args):
    import torch
    import torch.nn as nn
    import smp
    from smp import activations
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
    from stock_gpt import StockGPT

    torch.set_num_threads(1)
    smp.init({"microbatches": args.microbatches, "pipeline": args.pipeline,
              "offload_activations": args.mode == "offload",
              "activation_loading_horizon": args.horizon})
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", smp.local_rank() % torch.cuda.device_count()) if cuda else None
    if cuda:
        torch.cuda.set_device(dev)
    torch.manual_seed(0)
    kw = dict(vocab=args.vocab, seq=args.seq, d=args.hidden, heads=args.heads,
              layers=args.layers, dropout=0.1)
    if smp.tp_size() > 1:
        with smp.tensor_parallelism():
            module = StockGPT(**kw)
    else:
        module = StockGPT(**kw)
    if cuda:
        module = module.to(dev)
    model = smp.DistributedModel(module)
    if args.mode != "off":
        # After wrapping: tensor parallelism has swapped in the twins.
        smp.set_activation_checkpointing(model.module.blocks, strategy="each")
    opt = smp.DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-4))
    meter = activations.SavedMemory(model.module.parameters())

    @smp.step
    def train(model, ids):
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           ids[:, 1:].reshape(-1))
        model.backward(loss)
        return loss

    @smp.step
    def train_measured(model, ids):
        with meter.hooks():
            return train.__wrapped__(model, ids)

    g = torch.Generator().manual_seed(smp.rdp_rank())
    times = []
    w = torch.nn.Linear(64, 64)  # torch's first operations allocate buffers of their own
    w(torch.rand(8, 64)).sum().backward()
    rss0 = rss_mb()  # the model and optimizer built, no step yet
    for s in range(args.warmup + args.steps + 1):
        ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
        if cuda:
            ids = ids.to(dev)
        measured = s == args.warmup + args.steps
        if s == args.warmup and cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        smp.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        if measured:
            with meter:
                train_measured(model, ids)
        else:
            train(model, ids)
        opt.step()
        if cuda:
            torch.cuda.synchronize(dev)
        smp.barrier()
        dt = time.perf_counter() - t0
        if args.warmup <= s < args.warmup + args.steps:
            times.append(dt)
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else (rss_mb() - rss0)
    stats = torch.tensor([peak], dtype=torch.float64)
    smp.allreduce(stats, smp.MAX, smp.WORLD)
    if smp.rank() == 0:
        print("RESULT " + json.dumps({
            "median_s": statistics.median(times), "times": times,
            "peak_mb": float(stats[0]), "act_mb": meter.peak / 2**20, "cuda": cuda,
            "layout": [smp.pp_size(), smp.tp_size(), smp.rdp_size()]}), flush=True)
    smp.finalize()


def driver(args):
    rows = []
    for layout in args.layouts.split(","):
        pp, tp, rdp = (int(v) for v in layout.split("x"))
        n = pp * tp * rdp
        for mode in args.modes.split(","):
            cmd = ["mpirun", "-np", str(n), "-x", f"SMP_PP_SIZE={pp}", "-x", f"SMP_TP_SIZE={tp}",
                   "-x", "PYTHONPATH", "-x", "LD_LIBRARY_PATH", "-x", "OMP_NUM_THREADS=1",
                   sys.executable, os.path.abspath(__file__), "--rank", "--mode", mode]
            for k in ("layers", "hidden", "heads", "seq", "vocab", "batch", "microbatches",
                      "steps", "warmup", "horizon", "pipeline"):
                cmd += [f"--{k}", str(getattr(args, k))]
            env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
                       OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_rmaps_base_oversubscribe="1")
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            res = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode or not res:
                sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
                rows.append((layout, mode, None))
                continue
            rows.append((layout, mode, json.loads(res[-1][len("RESULT "):])))
            print(f"# {layout} {mode}: {rows[-1][2]}", file=sys.stderr, flush=True)
    where = "GPU" if any(r and r["cuda"] for _, _, r in rows) else "CPU"
    mem = "peak allocated MB" if where == "GPU" else "peak RSS growth MB"
    print(f"\nStockGPT layers={args.layers} d={args.hidden} heads={args.heads} seq={args.seq} "
          f"vocab={args.vocab} batch={args.batch} microbatches={args.microbatches} "
          f"pipeline={args.pipeline}, "
          f"dropout 0.1, {where}; median of {args.steps} steps after {args.warmup}\n")
    print(f"| pp x tp x rdp | checkpointing | step time (s) | vs off | {mem} (max rank) | "
          "rank-0 activation MB held for backward (peak) |")
    print("|---|---|---|---|---|---|")
    base = {}
    for layout, mode, r in rows:
        if r is None:
            print(f"| {layout} | {mode} | failed | | | |")
            continue
        if mode == "off":
            base[layout] = r["median_s"]
        ratio = f"{r['median_s'] / base[layout]:.2f}x" if layout in base else ""
        label = {"off": "off", "each": "each layer",
                 "offload": f"each layer + offload (horizon {args.horizon})"}[mode]
        print(f"| {layout.replace('x', ' x ')} | {label} | {r['median_s']:.3f} | {ratio} | "
              f"{r['peak_mb']:.1f} | {r['act_mb']:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="off", choices=["off", "each", "offload"])
    p.add_argument("--layouts", default="1x2x1,2x2x2")
    p.add_argument("--modes", default="off,each,offload")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--microbatches", type=int, default=4)
    p.add_argument("--horizon", type=int, default=1)
    p.add_argument("--pipeline", default="interleaved", choices=["interleaved", "simple"],
                   help="the schedule ('interleaved' at pp 1 runs each backward right after "
                        "its forward: nothing to offload)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args()
    if args.rank:
        rank_main(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
