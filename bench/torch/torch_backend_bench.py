"""torch.distributed through backend "smp" against "gloo" and against smp's
own Python binding, side by side in one job: all_reduce,
_allgather_base and _reduce_scatter_base (float32) at 8 B .. 64 MiB, and a
DDP training step. Medians of repetitions; busbw as nccl-tests define it.

    smprun -np N python3 bench/torch/torch_backend_bench.py [--quick]
"""
import statistics
import warnings
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn

import smp
import smp.distributed  # noqa: F401

SIZES = [8, 64 << 10, 1 << 20, 16 << 20, 64 << 20]
QUICK = "--quick" in sys.argv
warnings.filterwarnings("ignore", message=".*is a private function")


def reps_for(nbytes):
    if QUICK:
        return 3
    return max(5, min(200, (256 << 20) // max(nbytes, 1) // 4))


def timed(fn, reps):
    for _ in range(2):
        fn()
    samples = []
    for _ in range(reps):
        smp.barrier()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    # The slowest rank's time is the op's time.
    t = torch.tensor([statistics.median(samples)], dtype=torch.float64)
    smp.allreduce(t, op=smp.MAX)
    return float(t[0])


def main():
    dist.init_process_group("gloo")
    n = dist.get_world_size()
    pg = {"smp": smp.get_world_process_group(), "gloo": dist.new_group(list(range(n)), backend="gloo")}
    rows = []
    for nbytes in SIZES:
        count = max(1, nbytes // 4)
        x = torch.ones(count)
        big = torch.ones(count * n)
        ops = {
            "all_reduce": (2 * (n - 1) / n * count * 4, {
                "smp": lambda: dist.all_reduce(x, group=pg["smp"]),
                "gloo": lambda: dist.all_reduce(x, group=pg["gloo"]),
                "binding": lambda: smp.allreduce(x)}),
            "allgather": ((n - 1) / n * count * n * 4, {
                "smp": lambda: dist._all_gather_base(big, x, group=pg["smp"]),
                # gloo has no _allgather_base in torch 1.13: its list form
                "gloo": lambda: dist.all_gather(list(big.chunk(n)), x, group=pg["gloo"]),
                "binding": lambda: smp.allgather(x, big)}),
            "reduce_scatter": ((n - 1) / n * count * n * 4, {
                "smp": lambda: dist._reduce_scatter_base(x, big, group=pg["smp"]),
                "gloo": None,  # gloo has no reduce-scatter in torch 1.13
                "binding": lambda: smp.reduce_scatter(big, x)}),
        }
        for op, (bus_bytes, fns) in ops.items():
            t = {k: (timed(f, reps_for(count * 4 * n)) if f else None) for k, f in fns.items()}
            rows.append((op, count * 4, bus_bytes, t))
            if smp.rank() == 0:
                def cell(k):
                    return f"{t[k] * 1e6:10.1f} us {bus_bytes / t[k] / 1e9:6.2f}" if t[k] else " " * 20
                print(f"{op:15s} {count * 4:>9d} B | smp {cell('smp')} | gloo {cell('gloo')} | "
                      f"binding {cell('binding')} | smp/binding {t['binding'] / t['smp']:.2f}x"
                      + (f" smp/gloo {t['gloo'] / t['smp']:.2f}x" if t["gloo"] else ""),
                      flush=True)

    # DDP step: a 4-layer MLP of 4 x 1024 x 1024 float32 parameters (16 MiB).
    def ddp_step_time(group):
        torch.manual_seed(0)
        model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(4)])
        ddp = nn.parallel.DistributedDataParallel(model, process_group=group)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
        xs = torch.randn(16, 1024)

        def step():
            opt.zero_grad()
            ddp(xs).sum().backward()
            opt.step()
        return timed(step, 3 if QUICK else 15)
    ddp = {k: ddp_step_time(pg[k]) for k in ("smp", "gloo")}
    if smp.rank() == 0:
        print(f"DDP step (16 MiB of gradients) | smp {ddp['smp'] * 1e3:.1f} ms | gloo "
              f"{ddp['gloo'] * 1e3:.1f} ms | gloo/smp {ddp['gloo'] / ddp['smp']:.2f}x", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
