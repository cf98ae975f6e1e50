#!/usr/bin/python3
"""torch.distributed (gloo) baseline for smp-bench: the same collectives,
sizes and formulas (nccl-tests' algbw / busbw), float32 sum. Run under
mpirun with Debian's python3-torch:

  mpirun -np 2 /usr/bin/python3 bench/comm/gloo_bench.py [--max-bytes N]

Rank and world size come from Open MPI's OMPI_COMM_WORLD_* variables."""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--min-bytes", type=int, default=8)
    p.add_argument("--max-bytes", type=int, default=64 << 20)
    p.add_argument("--factor", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--rep-seconds", type=float, default=0.02)
    p.add_argument("--ops", default="allreduce,allgather,broadcast,sendrecv")
    a = p.parse_args()
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    n = int(os.environ["OMPI_COMM_WORLD_SIZE"])
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=rank, world_size=n)
    torch.set_num_threads(1)

    def timed(fn, iters):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        t = torch.tensor([(time.perf_counter() - t0) / iters], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    for op in a.ops.split(","):
        bus = {"allreduce": 2 * (n - 1) / n, "allgather": (n - 1) / n}.get(op, 1.0)
        if rank == 0:
            print(f"# gloo {op}  ranks={n}  float32 sum  time: median of {a.reps} reps, slowest rank")
            print(f"# {'size(B)':>12} {'count':>12} {'time(us)':>11} {'algbw':>9} {'busbw':>9}   (GB/s)")
        size = a.min_bytes
        while size <= a.max_bytes:
            count = max(1, size // 4)
            if op == "allgather":
                count = max(1, count // n) * n
            nbytes = count * 4
            if op == "allreduce":
                x = torch.ones(count)
                fn = lambda: dist.all_reduce(x)
            elif op == "allgather":
                x = torch.ones(count // n)
                outs = [torch.empty(count // n) for _ in range(n)]
                fn = lambda: dist.all_gather(outs, x)
            elif op == "broadcast":
                x = torch.ones(count)
                fn = lambda: dist.broadcast(x, 0)
            else:  # sendrecv: to the next rank, from the previous
                x, y = torch.ones(count), torch.empty(count)
                def fn():
                    r = dist.irecv(y, (rank - 1) % n)
                    s = dist.isend(x, (rank + 1) % n)
                    s.wait()
                    r.wait()
            one = timed(fn, 1)
            iters = int(min(2000, max(1, a.rep_seconds / max(one, 1e-7))))
            it = torch.tensor([iters])
            dist.broadcast(it, 0)
            iters = int(it.item())
            ts = [timed(fn, iters) for _ in range(a.reps + 1)][1:]
            t = statistics.median(ts)
            if rank == 0:
                alg = nbytes / t / 1e9
                print(f"  {nbytes:>12} {count:>12} {t * 1e6:>11.2f} {alg:>9.3f} {alg * bus:>9.3f}", flush=True)
            size *= a.factor
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
