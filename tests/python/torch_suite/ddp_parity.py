"""DistributedDataParallel over smp's data-parallel group equals the same
over Gloo: 10 steps of the same model, data and optimizer, run in one job
(default group on gloo, smp.get_dp_process_group() beside a gloo group of
the same ranks); parameters agree within 1e-6 after every step, and the
replicas of each data-parallel group agree exactly.

    smprun -np N --pp P python3 ddp_parity.py
"""
import sys

import torch
import torch.distributed as dist
import torch.nn as nn

import smp
import smp.distributed  # noqa: F401  registers "smp", fills env:// variables

STEPS = 10


def model():
    torch.manual_seed(1234)
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 4))


def train(ddp, dp_rank):
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    history = []
    for step in range(STEPS):
        g = torch.Generator().manual_seed(100 * step + dp_rank)  # each replica its own data
        x = torch.randn(8, 16, generator=g)
        y = torch.randn(8, 4, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(ddp(x), y).backward()
        opt.step()
        history.append(torch.cat([p.detach().reshape(-1).clone() for p in ddp.parameters()]))
    return history


def main():
    smp.init()
    dist.init_process_group("gloo")
    smp_dp = smp.get_dp_process_group()
    # A gloo group per data-parallel group: every rank takes part in making each.
    mine = smp.distributed._members_by_group()[smp.DP_GROUP]  # noqa: SLF001 - smp's own layout
    every = [None] * smp.size()
    dist.all_gather_object(every, tuple(mine))
    gloo_dp = None
    for ranks in sorted(set(every)):
        g = dist.new_group(list(ranks), backend="gloo")
        if smp.rank() in ranks:
            gloo_dp = g
    assert smp_dp.size() == gloo_dp.size() == smp.dp_size()

    dp_rank = smp.dp_rank()
    with_smp = train(nn.parallel.DistributedDataParallel(model(), process_group=smp_dp), dp_rank)
    with_gloo = train(nn.parallel.DistributedDataParallel(model(), process_group=gloo_dp), dp_rank)
    worst = max(float((a - b).abs().max()) for a, b in zip(with_smp, with_gloo))
    moved = float((with_smp[-1] - with_smp[0]).abs().max())
    # Replicas agree: the reduction really ran (each replica saw other data).
    final = with_smp[-1]
    gathered = [torch.zeros_like(final) for _ in range(smp_dp.size())]
    dist.all_gather(gathered, final, group=smp_dp)
    spread = max(float((t - final).abs().max()) for t in gathered)
    ok = worst <= 1e-6 and spread == 0.0 and moved > 1e-3
    print(f"rank {smp.rank()}: dp {dp_rank}/{smp.dp_size()}: max |smp - gloo| {worst:.3g} over "
          f"{STEPS} steps, replicas differ by {spread}, parameters moved {moved:.3g}: "
          f"{'OK' if ok else 'FAIL'}", flush=True)
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
