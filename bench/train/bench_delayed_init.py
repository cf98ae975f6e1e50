#!/usr/bin/env python3
"""Per-rank parameter memory of a GPT from stock modules (examples/
stock_gpt.py) built inside smp.tensor_parallelism(), eagerly against
smp.delay_param_initialization(), at pp x tp (default 2 x 2).

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_delayed_init.py

runs one mpirun job per mode and prints a table, per rank: the parameter
bytes allocated once the model is built, once DistributedModel has
partitioned it (first step), the delayed replay's peak of tensors held at
once, the process's peak RSS growth over the build and first step, and the
build and first-step times. RSS is counted from after a warm-up (torch's
first operations allocate buffers and threads of their own); it includes
the first step's activations and gradients and the allocator's slack. The ideal is model bytes / (pp x tp).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rank_main(args):
    import torch
    import smp
    sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
    from stock_gpt import StockGPT

    torch.set_num_threads(1)
    smp.init({"microbatches": 2, "pipeline": "interleaved"})
    kw = dict(vocab=args.vocab, seq=args.seq, d=args.hidden, heads=args.heads,
              layers=args.layers)
    # Warm torch up first (its first operations allocate buffers and threads
    # that would count as the model's).
    w = torch.nn.Linear(64, 64)
    w(torch.rand(8, 64)).sum().backward()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    with smp.tensor_parallelism():
        if args.mode == "delayed":
            with smp.delay_param_initialization():
                module = StockGPT(**kw)
        else:
            module = StockGPT(**kw)
    built = sum(p.numel() * p.element_size() for p in module.parameters() if not p.is_meta)
    full = sum(p.numel() * p.element_size() for p in module.parameters())
    t_build = time.perf_counter() - t0
    rss_built = rss_mb() - rss0
    model = smp.DistributedModel(module)
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.0))

    @smp.step
    def step(model, x, y):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        model.backward(loss)
        return loss

    x = torch.randint(0, args.vocab, (4, args.seq))
    t1 = time.perf_counter()
    step(model, x, x)
    opt.step()
    t_first = time.perf_counter() - t1
    resident = sum(p.numel() * p.element_size() for p in model.module.parameters())
    row = [smp.rank(), built, resident, getattr(model, "init_peak_bytes", 0),
           rss_mb() - rss0, t_build, t_first, full, rss_built]
    rows = torch.zeros(smp.size(), len(row), dtype=torch.float64)
    rows[smp.rank()] = torch.tensor(row, dtype=torch.float64)
    smp.allreduce(rows, smp.SUM, smp.WORLD)
    if smp.rank() == 0:
        print("ROWS " + json.dumps(rows.tolist()), flush=True)
    smp.finalize()


def driver(args):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1",
               SMP_PP_SIZE=str(args.pp), SMP_TP_SIZE=str(args.tp))
    n = args.pp * args.tp
    results = {}
    for mode in ("eager", "delayed"):
        cmd = ["mpirun", "-np", str(n), "-x", "PYTHONPATH", "-x", "SMP_PP_SIZE", "-x",
               "SMP_TP_SIZE", sys.executable, os.path.abspath(__file__), "--rank",
               "--mode", mode] + [f"--{k}={getattr(args, k)}" for k in
                                  ("vocab", "seq", "hidden", "heads", "layers")]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("ROWS ")]
        if out.returncode or not line:
            sys.exit(f"bench_delayed_init: {mode} failed:\n{out.stdout}\n{out.stderr}")
        results[mode] = json.loads(line[0][5:])
    full = results["eager"][0][7]
    ideal = full / n
    print(f"GPT from stock modules: vocab {args.vocab}, seq {args.seq}, hidden {args.hidden}, "
          f"{args.layers} layers: {full / 2**20:.1f} MiB of float32 parameters; pp {args.pp} x "
          f"tp {args.tp}: ideal {ideal / 2**20:.1f} MiB per rank\n")
    print("| mode | rank | built (MiB) | after partition (MiB) | / ideal | replay peak (MiB) "
          "| peak RSS growth: build, + first step (MiB) | build (s) | first step (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in ("eager", "delayed"):
        for r in results[mode]:
            print(f"| {mode} | {int(r[0])} | {r[1] / 2**20:.1f} | {r[2] / 2**20:.1f} | "
                  f"{r[2] / ideal:.2f}x | {r[3] / 2**20:.1f} | {r[8]:.0f}, {r[4]:.0f} | {r[5]:.2f} | "
                  f"{r[6]:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pp", type=int, default=2)
    p.add_argument("--tp", type=int, default=2)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--mode", choices=["eager", "delayed"])
    p.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    rank_main(args) if args.rank else driver(args)


if __name__ == "__main__":
    main()
