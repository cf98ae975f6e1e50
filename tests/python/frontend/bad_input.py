#!/usr/bin/env python3
"""Bad input to the front end, under mpirun with pp = ranks (2 or 3): each
case must raise one SmpError naming the problem on every rank, hang
nothing, and leave the job able to go on (the next case trains a step).

    mpirun -np 3 -x SMP_PP_SIZE=3 python3 bad_input.py
"""
import sys

import torch
import torch.nn as nn

import smp
from smp import model as smp_model


class Net(nn.Module):
    def __init__(self, n=6):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(n))
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)


def fresh(module):
    """A new DistributedModel (the test drops the previous one: a program
    wraps one model)."""
    smp_model._active["model"] = None
    return smp.DistributedModel(module)


def make_step(use_model_backward=True):
    @smp.step
    def train_step(model, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        if use_model_backward:
            model.backward(loss)
        else:
            loss.backward()
        return loss
    return train_step


X, Y = torch.randn(8, 4), torch.randint(0, 3, (8,))


def case_more_stages_than_modules():
    model = fresh(nn.Sequential(nn.Linear(4, 3)))
    make_step()(model, X, Y)


def case_memory_limit():
    cfg = smp.config()
    cfg.memory_limit_bytes = 100.0  # as smp.init({"memory_limit_bytes": 100}) sets it
    try:
        make_step()(fresh(Net()), X, Y)
    finally:
        cfg.memory_limit_bytes = None


def case_batch_not_divisible():
    make_step()(fresh(Net()), X[:7], Y[:7])


def case_model_outside_step():
    model = fresh(Net())
    make_step()(model, X, Y)  # partitioned; still not callable outside a step
    model(X)


def case_loss_backward():
    make_step(use_model_backward=False)(fresh(Net()), X, Y)


def case_second_model():
    fresh(Net())
    smp.DistributedModel(Net())


def case_partition_beyond_pp():
    with smp.partition(smp.pp_size()):
        nn.Linear(4, 4)


CASES = [
    (case_more_stages_than_modules, "placeable module"),
    (case_memory_limit, "memory limit"),
    (case_batch_not_divisible, "does not divide into 2 microbatches"),
    (case_model_outside_step, "called outside an smp.step"),
    (case_loss_backward, "call model.backward(loss) instead"),
    (case_second_model, "a model is already wrapped"),
    (case_partition_beyond_pp, "there are only"),
]


def main():
    torch.set_num_threads(1)
    smp.init({"microbatches": 2})
    failures = 0
    for fn, expect in CASES:
        try:
            fn()
            ok, what = False, "no error"
        except smp.SmpError as e:
            ok, what = expect in str(e), str(e)
        # Every rank must have raised it; then the job goes on: a good step.
        flag = torch.tensor([0 if ok else 1], dtype=torch.int32)
        smp.allreduce(flag, smp.MAX, smp.WORLD)
        torch.manual_seed(0)
        model = fresh(Net())
        before = {k: v.clone() for k, v in model.state_dict().items()}
        loss = make_step()(model, X, Y).reduce_mean()
        good = bool(torch.isfinite(loss)) and all(
            torch.equal(before[k], v) for k, v in model.state_dict().items())
        status = "ok" if flag.item() == 0 and good else "FAIL"
        failures += status != "ok"
        print(f"rank {smp.rank()}: {fn.__name__}: {status}: {what}", flush=True)
    verdict = torch.tensor([failures], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    smp.finalize()
    return 1 if verdict.item() else 0


if __name__ == "__main__":
    sys.exit(main())
