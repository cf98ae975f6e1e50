#!/usr/bin/env python3
"""The first smp.step run under torch.no_grad() (an evaluation before any
training) partitions the model and builds the gradient buckets; training
steps after it must average gradients over the replicas as usual. Under
mpirun with rdp >= 2 (the buckets hook the parameters' accumulators, which
grad mode off used to hide); weights after two SGD steps against one
process."""
import sys

import torch
import torch.nn as nn

import smp


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def main():
    torch.set_num_threads(1)
    smp.init({"microbatches": 2})
    R, r = smp.rdp_size(), smp.rdp_rank()
    model = smp.DistributedModel(build())
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1))

    @smp.step
    def evaluate(model, x):
        return model(x)

    @smp.step
    def train(model, x):
        loss = model(x).pow(2).mean()
        model.backward(loss)
        return loss

    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(4 * R, 4, generator=g) for _ in range(2)]
    with torch.no_grad():
        evaluate(model, xs[0][r * 4:(r + 1) * 4])
    for x in xs:
        opt.zero_grad()
        train(model, x[r * 4:(r + 1) * 4])
        opt.step()
    sd = model.state_dict()

    ref = build()
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for x in xs:
        ropt.zero_grad()
        for xr in x.chunk(R):
            for xm in xr.chunk(2):
                (ref(xm).pow(2).mean() / (2 * R)).backward()
        ropt.step()
    ok = all(torch.allclose(sd[k], v, rtol=1e-5, atol=1e-6) for k, v in ref.state_dict().items())
    verdict = torch.tensor([0 if ok else 1], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    if smp.rank() == 0:
        print(f"first step under no_grad, then training at rdp {R}: weights "
              f"{'equal' if verdict.item() == 0 else 'DIFFER from'} one process's", flush=True)
    smp.finalize()
    return int(verdict.item())


if __name__ == "__main__":
    sys.exit(main())
