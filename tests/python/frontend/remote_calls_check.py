#!/usr/bin/env python3
"""Calls that need not wait (smp/remote.py), under mpirun (pp = world size,
every module pinned with smp.partition so that the stages are known):

1. a chain: a root on stage 0 loops over blocks spread over the other
   stages. Once the first step has learnt the blocks' outputs, the root
   waits for one reply per run of consecutive calls to one stage in the
   forward pass and one in the backward pass (counted by the server),
   where every call waited before (SMP_SERVER_ASYNC=0 must show that
   count); losses and weights equal one process's;
2. a skip: an output kept on its stage is passed on by reference *and*
   fetched, so two backward passes cross the same part of the owner's
   graph: weights equal one process's;
3. a module whose output changes structure after it was learnt: that step
   fails on every rank with an SmpError naming the module; the next steps
   run (the call now waits) and equal one process's;
4. a remote tensor kept (never fetched) from an earlier step and used:
   an SmpError on every rank, not another call's data;
5. a remote tensor handed to a user's torch.autograd.Function (which
   bypasses __torch_function__): the gradient still flows to its stage.

    mpirun -np 3 python3 remote_calls_check.py chain|skip|flip|function
"""
import os
import sys

import torch
import torch.nn as nn

import smp

ASYNC = os.environ.get("SMP_SERVER_ASYNC", "1") != "0"
M = 2
FAILED = []


def check(what, ok):
    if not ok:
        FAILED.append(what)
    if smp.rank() == 0:
        print(f"{what}: {'ok' if ok else 'FAIL'}", flush=True)


def stage_of(i, n, pp):
    """Block i of n: stage 0 holds the first two, the others share the rest."""
    return 0 if i < 2 else 1 + (i - 2) * (pp - 1) // (n - 2)


class Chain(nn.Module):
    def __init__(self, pp, n=6):
        super().__init__()
        with smp.partition(0):
            self.a = nn.Linear(6, 8)
        self.blocks = nn.ModuleList()
        for i in range(n):
            with smp.partition(stage_of(i, n, pp)):
                self.blocks.append(nn.Linear(8, 8))
        with smp.partition(pp - 1):
            self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        for b in self.blocks:
            h = b(h)
        if getattr(self, "use_kept", False):
            h = h + self.kept.sum()   # last step's, never fetched: an error
        self.kept = h                 # passed on to the head by reference
        return self.head(h)


class Skip(nn.Module):
    def __init__(self, pp):
        super().__init__()
        with smp.partition(0):
            self.a = nn.Linear(6, 8)
            self.head = nn.Linear(8, 3)
        with smp.partition(pp - 1):
            self.b1 = nn.Linear(8, 8)
            self.b2 = nn.Linear(8, 8)

    def forward(self, x):
        u = self.b1(torch.tanh(self.a(x)))   # kept on its stage ...
        v = self.b2(u)                       # ... passed on by reference ...
        if u.sum() > -1e9:                   # ... and fetched (both)
            v = v + u
        return self.head(torch.tanh(v))


class Flip(nn.Module):
    """A tensor, or (once `tuple_out` is set) a tuple of one."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.tuple_out = False

    def forward(self, x):
        y = self.lin(x)
        return (y,) if self.tuple_out else y


class Flipping(nn.Module):
    def __init__(self, pp):
        super().__init__()
        with smp.partition(0):
            self.a = nn.Linear(6, 8)
            self.head = nn.Linear(8, 3)
        with smp.partition(pp - 1):
            self.flip = Flip()

    def forward(self, x):
        y = self.flip(self.a(x))
        if isinstance(y, tuple):
            y = y[0]
        return self.head(torch.tanh(y))


class _Double(torch.autograd.Function):
    """A user's autograd.Function (not a torch op: no __torch_function__)."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class Doubler(nn.Module):
    def forward(self, x):
        return _Double.apply(x)


class FunctionOnRemote(nn.Module):
    """A remote tensor handed to a user's autograd.Function on the caller's
    stage: the gradient must still reach the stage that made it."""

    def __init__(self, pp):
        super().__init__()
        with smp.partition(0):
            self.a = nn.Linear(6, 8)
            self.twice = Doubler()
            self.head = nn.Linear(8, 3)
        with smp.partition(pp - 1):
            self.b = nn.Linear(8, 8)

    def forward(self, x):
        return self.head(torch.tanh(self.twice(self.b(torch.tanh(self.a(x))))))


@smp.step
def train_step(model, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    model.backward(loss)
    return loss


def close(a, b, tol=1e-5):
    return torch.allclose(a, b, rtol=tol, atol=tol)


def batch(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def reference_step(ref, ropt, x, y):
    ropt.zero_grad()
    losses = [nn.functional.cross_entropy(ref(xm), ym) for xm, ym in zip(x.chunk(M), y.chunk(M))]
    (sum(losses) / M).backward()
    ropt.step()
    return torch.stack(losses).mean().detach()


def run(name, build, steps, flip_at=None):
    pp = smp.pp_size()
    torch.manual_seed(0)
    model = smp.DistributedModel(build(pp))
    torch.manual_seed(0)
    ref = build(pp)
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)

    waits, losses_ok, failed_at = [], True, None
    for step in range(steps):
        if flip_at is not None and step == flip_at:
            model.module.flip.tuple_out = ref.flip.tuple_out = True
        x, y = batch(step)
        opt.zero_grad()
        try:
            loss = train_step(model, x, y).reduce_mean()
        except smp.SmpError as e:
            failed_at = (step, e.message)
            continue
        opt.step()
        waits.append(model._server.waits)
        losses_ok &= close(loss, reference_step(ref, ropt, x, y))
    sd = model.state_dict()
    check(f"{name}: losses and weights equal one process's",
          losses_ok and all(close(sd[k], v) for k, v in ref.state_dict().items()))
    return waits, failed_at, model


def main():
    torch.set_num_threads(1)
    case = sys.argv[1]
    smp.init({"microbatches": M, "auto_partition": False, "default_partition": 0})
    pp = smp.pp_size()
    if case == "chain":
        waits, _, model = run("chain", Chain, 4)
        calls = 5                  # blocks 2..5 and the head live elsewhere
        runs = pp - 1              # runs of consecutive calls to one stage
        want = (runs if ASYNC else calls) * 2 * M
        if smp.pp_rank() == 0:
            check(f"chain: after the first step the root waits {want} times "
                  f"({'once per run of calls to one stage' if ASYNC else 'for every call'}"
                  f", both ways); waited {waits}", all(w == want for w in waits[1:]))
        model.module.use_kept = True
        try:
            train_step(model, *batch(0))
            error = None
        except smp.SmpError as e:
            error = e.message
        check(f"chain: a remote tensor kept from an earlier step is refused ({error})",
              error is not None and "earlier smp.step" in error)
    elif case == "skip":
        run("skip", Skip, 3)
    elif case == "function":
        run("autograd.Function on a remote tensor", FunctionOnRemote, 3)
    else:
        _, failed_at, _ = run("structure change", Flipping, 4, flip_at=2)
        if ASYNC:
            check(f"structure change: step 2 fails naming the module ({failed_at})",
                  failed_at is not None and failed_at[0] == 2 and "'flip'" in failed_at[1])
        else:
            check("structure change: no step fails when every call waits", failed_at is None)

    verdict = torch.tensor([len(FAILED)], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    smp.finalize()
    return 1 if verdict.item() else 0


if __name__ == "__main__":
    sys.exit(main())
