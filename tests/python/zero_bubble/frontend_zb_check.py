#!/usr/bin/env python3
"""zb-h1 or zb-v through the front end (smp.DistributedModel, @smp.step),
run on every rank under mpirun (pp, tp from the launcher):

    mpirun -np 4 -x SMP_PP_SIZE=4 python3 frontend_zb_check.py --microbatches 4 \
        [--schedule zb-v]

The unmodified GPT of tests/python/frontend/families.py takes --steps
training steps (SGD) under smp.init({"pipeline": schedule}); then, on one
more batch, its gradients under the schedule and under 'interleaved'
(1F1B) are taken from the same parameters and must agree within
--tolerance (relative to the largest gradient of each parameter), as must
the losses. On every stage but the first, the stage server must have
split its backwards (every one, unless --allow-whole: then those that
reach a call the stage made to another stage may run whole): a W after
each B of a microbatch and chunk, the
first W after every forward and backward that the runtime's schedule
lists before it, and some W after a later microbatch's forward or
backward (deferred, as the schedule does). Every rank exits 0 only if all
of that holds on every rank.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "frontend"))

from families import FAMILIES, GLOBAL_BATCH  # noqa: E402


def check_order(log, order, M):
    """The stage server's (kind, mb, chunk) log of one step against the
    schedule's list; returns the failures. A microbatch may reach a stage
    in several requests, each with its own B and W: the first of each
    counts as the schedule's op. "BW" is a pass run whole (B and W at
    once: it reached a call this stage made to another stage, whose
    backward a separate W would repeat); it counts as the schedule's B."""
    fails = []
    if not any(k == "W" for k, _, _ in log):
        fails.append("no backward pass was split into B and W")
    for m in range(M):
        for c in range(order.chunks):
            b = [i for i, op in enumerate(log) if op == ("B", m, c)]
            w = [i for i, op in enumerate(log) if op == ("W", m, c)]
            whole = [i for i, op in enumerate(log) if op == ("BW", m, c)]
            if not (b or whole) or len(b) != len(w) or any(j < i for i, j in zip(b, w)):
                fails.append(f"microbatch {m} chunk {c}: B passes at {b}, W passes at {w}, "
                             f"whole passes at {whole} (one W after each B)")
    first = {}
    for i, (k, m, c) in enumerate(log):
        first.setdefault(("B" if k == "BW" else k, m, c), i)
    for i, op in enumerate(order.ops):
        if op[0] != "W" or op not in first:
            continue
        late = [o for o in order.ops[:i] if o[0] != "W" and first.get(o, len(log)) > first[op]]
        if late:
            fails.append(f"{op} ran before {late}, which the schedule lists before it")
    # The point of the schedule: some W waits past a later microbatch's work.
    if not any(first[("W", m, c)] > first[(k, m2, c2)]
               for (_, m, c) in [o for o in order.ops if o[0] == "W" and o in first]
               for (k, m2, c2) in first if k in "FB" and m2 > m):
        fails.append("no W ran after a later microbatch's forward or backward: not deferred")
    return fails


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--schedule", choices=["zb-h1", "zb-v"], default="zb-h1")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tp-modules", action="store_true")
    p.add_argument("--ddp", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.add_argument("--allow-whole", action="store_true",
                   help="backward passes that reach another stage's module may run whole")
    a = p.parse_args()
    torch.set_num_threads(1)
    import smp
    from smp.split_backward import WeightOrder

    M = a.microbatches
    smp.init({"microbatches": M, "pipeline": a.schedule, "ddp": a.ddp})
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
                order = WeightOrder(a.schedule, smp.pp_rank(), smp.pp_size(), M,
                                    2 if a.schedule == "zb-v" else 1)
            fails += [f"step {step}: {f}" for f in check_order(server.op_log, order, M)]
            whole = [op for op in server.op_log if op[0] == "BW"]
            if whole and not a.allow_whole:
                fails.append(f"step {step}: backward passes not split: {whole}")
        if step < a.steps:
            opt.step()
    if a.schedule == "zb-v":
        # The V: the first stage holds the first segment and the last (the
        # head), the last stage the two middle ones.
        pmap = model.partition_map()
        stages = (pmap["wte"], pmap["lm_head"])
        if stages != (0, 0):
            fails.append(f"zb-v placed wte and lm_head on stages {stages}, not both on 0")
    zb_loss = float(loss)
    zb_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                if p.grad is not None}
    if smp.pp_rank() > 0:
        print(f"rank {me} (pp {smp.pp_rank()}): {a.schedule} step: {server.op_log}", flush=True)

    # The same batch from the same parameters under 1F1B (same partition).
    smp.config().pipeline = "interleaved"
    opt.zero_grad()
    loss = train_step(model, *batch(a.steps)).reduce_mean()
    if model._server.op_log:
        fails.append(f"interleaved logged split passes {model._server.op_log}")
    ref_loss = float(loss)
    ref_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                 if p.grad is not None}
    if zb_grads.keys() != ref_grads.keys():
        fails.append(f"parameters with gradients differ: {a.schedule} {sorted(zb_grads)}, "
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
        fails.append(f"loss {zb_loss!r} under {a.schedule}, {ref_loss!r} under interleaved")
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
