#!/usr/bin/env python3
"""zb-h1 through the front end (smp.DistributedModel, @smp.step), run on
every rank under mpirun (pp, tp from the launcher):

    mpirun -np 4 -x SMP_PP_SIZE=4 python3 frontend_zb_check.py --microbatches 4

The unmodified GPT of tests/python/frontend/families.py takes --steps
training steps (SGD) under smp.init({"pipeline": "zb-h1"}); then, on one
more batch, its gradients under zb-h1 and under 'interleaved' (1F1B) are
taken from the same parameters and must agree within --tolerance
(relative to the largest gradient of each parameter), as must the losses.
On every stage but the first, the stage server must have split each
backward: a W after each B of a microbatch, the first W after
every forward and backward that the runtime's zb-h1 schedule lists
before it, and W of microbatch 0 after the forward of the last one (the
schedule defers it past the pipeline's drain). Every rank exits 0 only if
all of that holds on every rank.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "frontend"))

from families import FAMILIES, GLOBAL_BATCH  # noqa: E402


def check_order(log, order, M):
    """The stage server's (kind, mb) log of one zb-h1 step against the
    schedule's list (a microbatch may reach a stage in several requests,
    each with its own B and W: the first of each counts as the schedule's
    op); returns the failures."""
    fails = []
    if any(k == "BW" for k, _ in log):
        fails.append(f"backward passes not split: {[op for op in log if op[0] == 'BW']}")
    for m in range(M):
        b = [i for i, op in enumerate(log) if op == ("B", m)]
        w = [i for i, op in enumerate(log) if op == ("W", m)]
        if not b or len(b) != len(w) or any(j < i for i, j in zip(b, w)):
            fails.append(f"microbatch {m}: B passes at {b}, W passes at {w} (one W after "
                         "each B)")
    first = {}
    for i, op in enumerate(log):
        first.setdefault(op, i)
    for i, (kind, m) in enumerate(order.ops):
        if kind != "W" or ("W", m) not in first:
            continue
        late = [op for op in order.ops[:i]
                if op[0] != "W" and first.get(op, len(log)) > first[("W", m)]]
        if late:
            fails.append(f"W({m}) ran before {late}, which the schedule lists before it")
    if first.get(("W", 0), len(log)) < first.get(("F", M - 1), -1):
        fails.append("W(0) ran before the last microbatch's forward: not deferred")
    return fails


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tp-modules", action="store_true")
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-6)
    a = p.parse_args()
    torch.set_num_threads(1)
    import smp
    from smp.split_backward import WeightOrder

    M = a.microbatches
    smp.init({"microbatches": M, "pipeline": "zb-h1", "ddp": a.ddp})
    fam = FAMILIES["gpt"]
    R, r, me = smp.rdp_size(), smp.rdp_rank(), smp.rank()
    if a.tp_modules:
        with smp.tensor_parallelism():
            module = fam.build(1234)
    else:
        module = fam.build(1234)
    # Partitioned by parameter counts, not measured times: the same plan on
    # a loaded machine as on a quiet one.
    model = smp.DistributedModel(module, trace_execution_times=False)
    opt = smp.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05))

    @smp.step
    def train_step(model, x, y):
        loss = fam.loss(model(x), y)
        model.backward(loss)
        return loss

    def batch(step):
        x, y = fam.batch(step, GLOBAL_BATCH)
        k = GLOBAL_BATCH // R
        return x[r * k:(r + 1) * k], y[r * k:(r + 1) * k]

    fails = []
    server = None
    order = None
    for step in range(a.steps + 1):
        opt.zero_grad()
        loss = train_step(model, *batch(step)).reduce_mean()
        server = model._server
        if smp.pp_rank() > 0:
            if order is None:
                order = WeightOrder("zb-h1", smp.pp_rank(), smp.pp_size(), M)
            fails += [f"step {step}: {f}" for f in check_order(server.op_log, order, M)]
        if step < a.steps:
            opt.step()
    zb_loss = float(loss)
    zb_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                if p.grad is not None}
    if smp.pp_rank() > 0:
        print(f"rank {me} (pp {smp.pp_rank()}): zb-h1 step: {server.op_log}", flush=True)

    # The same batch from the same parameters under 1F1B.
    smp.config().pipeline = "interleaved"
    opt.zero_grad()
    loss = train_step(model, *batch(a.steps)).reduce_mean()
    if model._server.op_log:
        fails.append(f"interleaved logged split passes {model._server.op_log}")
    ref_loss = float(loss)
    ref_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                 if p.grad is not None}
    if zb_grads.keys() != ref_grads.keys():
        fails.append(f"parameters with gradients differ: zb-h1 {sorted(zb_grads)}, "
                     f"interleaved {sorted(ref_grads)}")
    worst, name = 0.0, None
    for n in sorted(zb_grads.keys() & ref_grads.keys()):
        g, h = zb_grads[n].double(), ref_grads[n].double()
        d = (g - h).abs().max().item() / max(h.abs().max().item(), 1e-30)
        if d >= worst:
            worst, name = d, n
    if worst > a.tolerance:
        fails.append(f"gradient of {name} differs from 1F1B's by {worst:.3e} (relative) > "
                     f"{a.tolerance:g}")
    if abs(zb_loss - ref_loss) > a.tolerance * abs(ref_loss):
        fails.append(f"loss {zb_loss!r} under zb-h1, {ref_loss!r} under interleaved")
    print(f"rank {me}: {len(zb_grads)} gradients, largest relative difference from 1F1B "
          f"{worst:.2e} ({name}); loss {zb_loss:.8f} vs {ref_loss:.8f}", flush=True)
    for f in fails:
        print(f"FAIL rank {me}: {f}", flush=True)
    v = torch.tensor([1 if fails else 0], dtype=torch.int32)
    smp.allreduce(v, op=smp.MAX, group=smp.WORLD)
    ok = v.item() == 0
    if me == 0:
        print(f"frontend_zb_check: {'OK' if ok else 'FAILED'}", flush=True)
    smp.finalize()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
