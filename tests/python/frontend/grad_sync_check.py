#!/usr/bin/env python3
"""Gradient buckets that start during the backward pass (smp.grad_sync),
under mpirun:

- `model` (pp 2 x rdp 2, or pp 1 x rdp R): a model trained through the
  front end with one parameter per bucket must equal one process's losses
  and weights, and buckets must have started during backward passes;
- `early` (pp 1, any rdp): GradSync told that a first backward pass is
  the last starts its buckets during it; a second one grows
  them, so the buckets must be averaged again from the final gradients:
  the result must equal the mean of every rank's full gradient.

    mpirun -np 4 -x SMP_PP_SIZE=2 python3 grad_sync_check.py model
    mpirun -np 3 python3 grad_sync_check.py early
"""
import sys

import torch
import torch.nn as nn

import smp
from smp.grad_sync import GradSync


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.ModuleList(nn.Linear(8, 8) for _ in range(4))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        for m in self.b:
            h = torch.tanh(m(h))
        return self.head(h)


def check_model():
    M = 2
    smp.init({"microbatches": M})
    R, r = smp.rdp_size(), smp.rdp_rank()
    torch.manual_seed(0)
    model = smp.DistributedModel(Net(), bucket_cap_mb=1e-6)
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    torch.manual_seed(0)
    ref = Net()
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)

    @smp.step
    def train_step(model, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        model.backward(loss)
        return loss

    worst = 0.0
    for step in range(6):
        g = torch.Generator().manual_seed(step)
        X, Y = torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
        k = 8 // R
        opt.zero_grad()
        loss = train_step(model, X[r * k:(r + 1) * k], Y[r * k:(r + 1) * k]).reduce_mean()
        opt.step()
        ropt.zero_grad()
        mine = []
        for rr in range(R):
            for xm, ym in zip(X[rr * k:(rr + 1) * k].chunk(M), Y[rr * k:(rr + 1) * k].chunk(M)):
                lv = nn.functional.cross_entropy(ref(xm), ym)
                (lv / (R * M)).backward()
                if rr == r:
                    mine.append(lv.item())
        ropt.step()
        worst = max(worst, abs(loss.item() - sum(mine) / M) / abs(sum(mine) / M))
    sd = model.state_dict()
    wdiff = max((sd[k] - v).abs().max().item() for k, v in ref.state_dict().items())
    early = torch.tensor([sum(s.early for s in model._syncs)], dtype=torch.int64)
    smp.allreduce(early, smp.MIN, smp.WORLD)
    ok = worst < 1e-5 and wdiff < 1e-5 and early.item() > 0
    return ok, (f"loss rel diff {worst:.1e}, weight diff {wdiff:.1e}, buckets started during "
                f"the backward (fewest on a rank) {early.item()}")


def check_early():
    smp.init()
    torch.manual_seed(smp.rank())
    params = [nn.Parameter(torch.randn(5)) for _ in range(4)]
    sync = GradSync(params, smp.WORLD, 1)
    x = torch.randn(5)
    sync.begin_final({id(p) for p in params})  # told (wrongly) that this pass is the last
    sum((p * x).sum() for p in params).backward()  # starts every bucket
    sum((p * p).sum() for p in params).backward()  # grows them: too early
    full = [p.grad.clone() for p in params]
    sync.finish()
    want = [f.clone() for f in full]
    for w in want:
        smp.allreduce(w, smp.AVG, smp.WORLD)
    diff = max((p.grad - w).abs().max().item() for p, w in zip(params, want))
    ok = sync.early == 4 and sync.redone == 4 and diff == 0.0
    return ok, f"started early {sync.early}, averaged again {sync.redone}, difference {diff}"


def main():
    torch.set_num_threads(1)
    ok, what = {"model": check_model, "early": check_early}[sys.argv[1]]()
    print(f"rank {smp.rank()}: {sys.argv[1]}: {what}: {'ok' if ok else 'FAIL'}", flush=True)
    verdict = torch.tensor([0 if ok else 1], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    smp.finalize()
    return int(verdict.item())


if __name__ == "__main__":
    sys.exit(main())
