#!/usr/bin/env python3
"""The front end's equivalence test for one model family, run on every
rank under mpirun (the layout, pp and tp, comes from the launcher):

    mpirun -np 4 -x SMP_PP_SIZE=2 python3 run_family.py --family mlp \\
        --steps 10 --microbatches 2 --schedule interleaved

Every rank builds the family's module from --seed and trains it through
smp.DistributedModel / smp.DistributedOptimizer / @smp.step, on the same
global batches sharded by rdp_rank. Then world rank 0 trains the same
module (from the same seed) in this one process with plain PyTorch, each
step being

    zero_grad; for each replica r, for each microbatch m of its shard:
        l = loss(ref(x_rm), y_rm); (l / (R * M)).backward()
    step

and requires every step's per-replica loss (the replica's reduce_mean())
to be within --tolerance (relative) of the mean of that replica's M
reference losses, every pp/tp rank of a replica to report the same loss,
and model.state_dict() to have the reference's keys, to load (strict)
into a freshly built module and to give the trained reference's output
within 1e-5 (relative) on a fixed input. Every rank exits 0 only if all of
that holds (rank 0's verdict is broadcast).

--reference-only runs nothing through smp (smp is not imported): for
every family (or --family), at each (rdp, microbatches) in {1, 2} x {2, 4},
two reference runs must be bit-identical and finite, a run whose
gradients are summed in another order (per microbatch, then per replica,
as a data-parallel runtime sums them) must agree within --tolerance, the
loss on a fixed batch must fall over the run, and a state_dict must load
into a module built from another seed and give the same outputs.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from families import FAMILIES, GLOBAL_BATCH  # noqa: E402

EVAL_STEP = 10 ** 6       # batch(EVAL_STEP, ...) is the fixed input: no training step uses it
OUTPUT_TOLERANCE = 1e-5


def make_optimizer(name, params):
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.02, momentum=0.9)
    raise ValueError(name)


def shard(t, R, r):
    k = t.shape[0] // R
    return t[r * k:(r + 1) * k]


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def tensor_rel(a, b):
    """max |a - b| / max |b| (0 when both are all zero)."""
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


def reference_run(fam, steps, R, M, opt_name, seed, reorder=False):
    """The exact single-process reference: returns (module, losses) with
    losses[step][r] = mean of replica r's M microbatch losses (float64).

    reorder=True gives the same mathematics with another float order: each
    microbatch's gradients apart (autograd.grad), summed per replica, / M,
    summed over replicas, / R; a parameter that no microbatch reached keeps
    the gradient zero_grad left (None or zeros) as in the plain loop."""
    ref = fam.build(seed)
    opt = make_optimizer(opt_name, ref.parameters())
    params = [p for p in ref.parameters() if p.requires_grad]
    losses = []
    for step in range(steps):
        x, y = fam.batch(step, GLOBAL_BATCH)
        opt.zero_grad()
        per = []
        total = [None] * len(params)
        for r in range(R):
            xr, yr = shard(x, R, r), shard(y, R, r)
            ls = []
            rep = [None] * len(params)
            for xm, ym in zip(torch.chunk(xr, M), torch.chunk(yr, M)):
                l = fam.loss(ref(xm), ym)
                if reorder:
                    gs = torch.autograd.grad(l, params, allow_unused=True)
                    rep = [a if g is None else (g.clone() if a is None else a + g)
                           for a, g in zip(rep, gs)]
                else:
                    (l / (R * M)).backward()
                ls.append(l.item())
            per.append(math.fsum(ls) / M)
            if reorder:
                total = [t if a is None else (a / M if t is None else t + a / M)
                         for t, a in zip(total, rep)]
        if reorder:
            for p, t in zip(params, total):
                if t is not None:
                    p.grad = t / R
        opt.step()
        losses.append(per)
    return ref, losses


def eval_output(module, fam):
    x, _ = fam.batch(EVAL_STEP, GLOBAL_BATCH)
    with torch.no_grad():
        return module(x)


def eval_loss(module, fam):
    _, y = fam.batch(EVAL_STEP, GLOBAL_BATCH)
    with torch.no_grad():
        return fam.loss(eval_output(module, fam), y).item()


def check_state_dict(fam, seed, sd, ref, log):
    """sd (from smp, or the reference's own) against the trained reference:
    the same keys, a strict load into a module built from another seed,
    and the same output on the fixed input. Returns the failures."""
    fails = []
    ref_sd = ref.state_dict()
    keys, ref_keys = set(sd.keys()), set(ref_sd.keys())
    if keys != ref_keys:
        fails.append(f"state_dict keys differ: missing {sorted(ref_keys - keys)}, "
                     f"unexpected {sorted(keys - ref_keys)}")
        return fails
    worst_name, worst = None, 0.0
    for k in sorted(keys):
        v = sd[k]
        if not isinstance(v, torch.Tensor):
            fails.append(f"state_dict[{k!r}] is a {type(v).__name__}, not a tensor")
            continue
        if tuple(v.shape) != tuple(ref_sd[k].shape):
            fails.append(f"state_dict[{k!r}] has shape {tuple(v.shape)}, "
                         f"the module's is {tuple(ref_sd[k].shape)}")
            continue
        d = tensor_rel(v.cpu(), ref_sd[k])
        if d >= worst:
            worst_name, worst = k, d
    if fails:
        return fails
    # Information only: a parameter whose true gradient is zero (attention's
    # key bias) moves by rounding noise under AdamW, harmlessly.
    log(f"state_dict: {len(keys)} keys, as the reference's; largest relative difference "
        f"from the reference's tensors (information only): {worst:.2e} ({worst_name})")
    fresh = fam.build(seed + 1)
    try:
        fresh.load_state_dict({k: v.detach().cpu() for k, v in sd.items()}, strict=True)
    except Exception as e:  # noqa: BLE001 - reported as the failure
        fails.append(f"load_state_dict(strict=True) into a fresh module failed: {e}")
        return fails
    d = tensor_rel(eval_output(fresh, fam), eval_output(ref, fam))
    log(f"state_dict loaded into a fresh module: output on the fixed input differs from the "
        f"trained reference's by {d:.2e} (relative; tolerance {OUTPUT_TOLERANCE:g})")
    if not d <= OUTPUT_TOLERANCE:
        fails.append(f"loaded state_dict's output differs by {d:.3e} > {OUTPUT_TOLERANCE:g}")
    return fails


# ---------------------------------------------------------------- --reference-only

REFERENCE_LAYOUTS = [(1, 2), (2, 2), (1, 4), (2, 4)]   # (rdp, microbatches)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def reference_only(args):
    names = [args.family] if args.family else list(FAMILIES)
    failures = []
    print(f"reference-only: {len(names)} families, {args.steps} steps, seed {args.seed}, "
          f"layouts (rdp, microbatches) {REFERENCE_LAYOUTS}, tolerance {args.tolerance:g}")
    for name in names:
        fam = FAMILIES[name]

        def fail(msg, name=name):
            failures.append(f"{name}: {msg}")
            print(f"  FAIL {msg}")

        rng = torch.random.get_rng_state()
        m0 = fam.build(args.seed)
        if not torch.equal(rng, torch.random.get_rng_state()):
            fail("build(seed) changed the global RNG state")
        if not same_state(m0, fam.build(args.seed)):
            fail("two builds from one seed differ")
        x0, y0 = fam.batch(3, GLOBAL_BATCH)
        x1, y1 = fam.batch(3, GLOBAL_BATCH)
        if not (torch.equal(x0, x1) and torch.equal(y0, y1)):
            fail("batch(step) is not deterministic")
        nparams = sum(p.numel() for p in m0.parameters())
        print(f"{name}: {nparams} parameters, {len(list(m0.children()))} top-level children; "
              f"x {tuple(x0.shape)} {x0.dtype}, y {tuple(y0.shape)} {y0.dtype}")
        before = eval_loss(m0, fam)
        for R, M in REFERENCE_LAYOUTS:
            opts = [args.optimizer] + (["sgd"] if (R, M) == (2, 2) and args.optimizer != "sgd"
                                       else [])
            for opt in opts:
                t0 = time.perf_counter()
                ref_a, la = reference_run(fam, args.steps, R, M, opt, args.seed)
                secs = time.perf_counter() - t0
                ref_b, lb = reference_run(fam, args.steps, R, M, opt, args.seed)
                ref_c, lc = reference_run(fam, args.steps, R, M, opt, args.seed, reorder=True)
                flat_a = [v for row in la for v in row]
                ident = la == lb and same_state(ref_a, ref_b)
                finite = all(math.isfinite(v) for v in flat_a)
                drift = max(rel(c, a) for ra, rc in zip(la, lc) for a, c in zip(ra, rc))
                after = eval_loss(ref_a, fam)
                print(f"  rdp {R} mb {M} {opt:5s}: {secs:5.2f} s; step 0 {la[0]} -> "
                      f"step {args.steps - 1} {[round(v, 6) for v in la[-1]]}; "
                      f"fixed-batch loss {before:.5f} -> {after:.5f}; reordered sums drift "
                      f"{drift:.2e}; {'bit-identical' if ident else 'NOT IDENTICAL'}")
                if not ident:
                    fail(f"rdp {R} mb {M} {opt}: two reference runs differ")
                if not finite:
                    fail(f"rdp {R} mb {M} {opt}: a loss is not finite")
                if not after < before:
                    fail(f"rdp {R} mb {M} {opt}: the fixed-batch loss did not fall "
                         f"({before} -> {after})")
                if not drift <= args.tolerance:
                    fail(f"rdp {R} mb {M} {opt}: summing the gradients in another order moves "
                         f"a loss by {drift:.3e} > tolerance {args.tolerance:g}")
                if (R, M) == REFERENCE_LAYOUTS[0] and opt == args.optimizer:
                    for msg in check_state_dict(fam, args.seed, ref_a.state_dict(), ref_a,
                                                lambda s: print("  " + s)):
                        fail(msg)
    if failures:
        print(f"reference-only: FAILED ({len(failures)}):")
        for f in failures:
            print("  " + f)
        return 1
    print("reference-only: OK")
    return 0


# ---------------------------------------------------------------- through smp

def distributed(args):
    import smp

    fam = FAMILIES[args.family]
    M = args.microbatches
    config = {"microbatches": M, "pipeline": args.schedule}
    config.update(json.loads(args.smp_config))
    if config.get("delayed_parameter_initialization"):
        args.delayed_init = "config"   # smp.init opens the context; check the same way
    smp.init(config)
    W, me = smp.size(), smp.rank()
    R, r = smp.rdp_size(), smp.rdp_rank()

    def log(msg):
        if me == 0:
            print(msg, flush=True)

    log(f"run_family: {args.family}, world {W} = pp {smp.pp_size()} x tp {smp.tp_size()} x "
        f"rdp {R}; smp.init({config}); {args.steps} steps, optimizer {args.optimizer}, "
        f"seed {args.seed}, tolerance {args.tolerance:g}")
    if GLOBAL_BATCH % (R * M):
        log(f"run_family: the global batch {GLOBAL_BATCH} does not divide by rdp * microbatches "
            f"= {R * M}")
        smp.finalize()
        return 2

    torch.manual_seed(args.seed)
    if args.delayed_init:
        with contextlib.ExitStack() as build:
            if args.tp_modules:
                build.enter_context(smp.tensor_parallelism())
            if args.delayed_init != "config":
                build.enter_context(smp.delay_param_initialization())
            module = fam.build(args.seed)
        unallocated = [n for n, t in list(module.named_parameters()) + list(module.named_buffers())
                       if not t.is_meta]
        if unallocated:
            log(f"FAIL delay_param_initialization allocated {unallocated[:3]}")
            return 1
    elif args.tp_modules:
        with smp.tensor_parallelism():
            module = fam.build(args.seed)
    else:
        module = fam.build(args.seed)
    model = smp.DistributedModel(module)
    if args.tp_modules and smp.tp_size() > 1:
        swapped = sorted({type(m).__name__ for m in model.module.modules()
                          if type(m).__module__ == "smp.nn"})
        log(f"tensor parallelism: modules swapped for {swapped}")
        if not swapped:
            log("FAIL --tp-modules: no module was swapped for its smp.nn twin")
            return 1
        if not args.delayed_init:
            # Before the first step: the full state_dict (gathered over TP) is
            # the plain module's, and loads back.
            before, plain = model.state_dict(), fam.build(args.seed).state_dict()
            if list(before) != list(plain) or not all(torch.equal(before[k], plain[k])
                                                      for k in plain):
                log("FAIL state_dict() before the first step is not the plain module's")
                return 1
            model.load_state_dict(before)
    opt = smp.DistributedOptimizer(make_optimizer(args.optimizer, model.parameters()))

    @smp.step
    def train_step(model, x, y):
        out = model(x)
        loss = fam.loss(out, y)
        model.backward(loss)
        return loss

    t0 = time.perf_counter()
    mine = []
    not_tensor = 0
    for step in range(args.steps):
        x, y = fam.batch(step, GLOBAL_BATCH)
        x, y = shard(x, R, r), shard(y, R, r)
        opt.zero_grad()
        loss = train_step(model, x, y).reduce_mean()
        opt.step()
        if not (isinstance(loss, torch.Tensor) and loss.dim() == 0):
            not_tensor = 1
            mine.append(float(loss))
        else:
            mine.append(float(loss.detach().cpu().item()))
    smp_secs = time.perf_counter() - t0

    # Every rank's losses and coordinates to everyone (each writes its own column).
    losses = torch.zeros(args.steps, W, dtype=torch.float64)
    losses[:, me] = torch.tensor(mine, dtype=torch.float64)
    smp.allreduce(losses, op=smp.SUM, group=smp.WORLD)
    coords = torch.zeros(W, 4, dtype=torch.int64)
    coords[me] = torch.tensor([smp.rdp_rank(), smp.pp_rank(), smp.tp_rank(), not_tensor])
    smp.allreduce(coords, op=smp.SUM, group=smp.WORLD)

    sd = model.state_dict()   # collective: every rank
    memory_fails = check_allocation(model, log) if args.delayed_init else 0

    verdict = 1
    if me == 0:
        try:
            verdict = compare(args, fam, R, M, losses, coords, sd, smp_secs, log)
        except Exception:  # noqa: BLE001 - a failure of the check is a failure
            traceback.print_exc()
            verdict = 1
    # rank 0's verdict, failed by any rank's allocation check
    v = torch.tensor([(verdict if me == 0 else 0) | memory_fails], dtype=torch.int32)
    smp.allreduce(v, op=smp.MAX, group=smp.WORLD)
    smp.finalize()
    return int(v.item())


def check_allocation(model, log):
    """Collective. Under smp.delay_param_initialization each rank must hold
    only its own stage's parameters (its TP shards of them): allocated bytes
    at most 1.1 x what the plan gives it. Prints the per-rank table against
    the ideal model bytes / (pp x tp). Returns 1 on failure (this rank)."""
    import smp
    allocated = sum(p.numel() * p.element_size() for p in model.module.parameters())
    own = full = 0
    for key, (stage, shape, dtype, spec) in model._entries.items():
        n = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        full += n
        if stage == smp.pp_rank():
            own += n // smp.tp_size() if spec is not None else n
    # buffers are in the entries too; count parameters only on both sides
    own_params = sum(p.numel() * p.element_size() for n, p in model.named_parameters())
    row = torch.tensor([[allocated, own_params, own, full, getattr(model, "init_peak_bytes", 0)]],
                       dtype=torch.float64)
    rows = torch.zeros(smp.size(), 5, dtype=torch.float64)
    rows[smp.rank()] = row[0]
    smp.allreduce(rows, op=smp.SUM, group=smp.WORLD)
    ideal = full / (smp.pp_size() * smp.tp_size())
    log(f"delayed init: {'rank':>4} {'allocated':>10} {'own (plan)':>10} {'ideal':>10} "
        f"{'replay peak':>11}  (bytes; ideal = model {int(full)} / (pp x tp))")
    for w in range(smp.size()):
        a, op, _, _, pk = rows[w].tolist()
        log(f"delayed init: {w:4d} {int(a):10d} {int(op):10d} {int(ideal):10d} {int(pk):11d}")
    ok = allocated <= 1.1 * own_params and own_params <= own
    if not ok:
        print(f"FAIL rank {smp.rank()}: allocated {allocated} parameter bytes, its own "
              f"parameters are {own_params} (plan: {own})", flush=True)
    return 0 if ok else 1


def compare(args, fam, R, M, losses, coords, sd, smp_secs, log):
    fails = []
    W = losses.shape[1]
    coords = coords.tolist()
    lead = {}   # replica -> world rank of its (pp 0, tp 0) rank
    bad = [w for w, c in enumerate(coords) if c[3]]
    if bad:
        fails.append(f"ranks {bad}: reduce_mean() did not return a 0-dim torch tensor")
    for w, (rd, pp, tp, _) in enumerate(coords):
        if pp == 0 and tp == 0:
            if rd in lead:
                fails.append(f"ranks {lead[rd]} and {w} both claim (rdp {rd}, pp 0, tp 0)")
            lead[rd] = w
    if sorted(lead) != list(range(R)):
        fails.append(f"replicas with a (pp 0, tp 0) rank: {sorted(lead)}, expected 0..{R - 1}")
        for f in fails:
            log("FAIL " + f)
        return 1

    t0 = time.perf_counter()
    ref, ref_losses = reference_run(fam, args.steps, R, M, args.optimizer, args.seed)
    ref_secs = time.perf_counter() - t0

    log(f"{'step':>4} {'rdp':>3} {'smp loss':>14} {'reference':>14} {'rel diff':>9}")
    worst = 0.0
    for step in range(args.steps):
        for rd in range(R):
            got = losses[step, lead[rd]].item()
            want = ref_losses[step][rd]
            d = rel(got, want) if math.isfinite(got) else math.inf
            worst = max(worst, d)
            mark = "" if d <= args.tolerance else "  <-- FAIL"
            log(f"{step:4d} {rd:3d} {got:14.8f} {want:14.8f} {d:9.2e}{mark}")
            if d > args.tolerance:
                fails.append(f"step {step} replica {rd}: loss {got!r}, reference {want!r}, "
                             f"relative difference {d:.3e} > {args.tolerance:g}")
            others = [w for w in range(W) if coords[w][0] == rd and w != lead[rd]
                      and losses[step, w].item() != got]
            if others:
                fails.append(f"step {step} replica {rd}: ranks {others} report "
                             f"{[losses[step, w].item() for w in others]}, rank {lead[rd]} "
                             f"reports {got!r} (every pp/tp rank of a replica must agree)")
    log(f"losses: largest relative difference {worst:.2e} (tolerance {args.tolerance:g}); "
        f"smp {smp_secs:.2f} s, reference {ref_secs:.2f} s")
    fails += check_state_dict(fam, args.seed, sd, ref, log)
    for f in fails:
        log("FAIL " + f)
    log(f"run_family: {args.family}: {'FAILED' if fails else 'OK'}")
    return 1 if fails else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=sorted(FAMILIES))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--schedule", choices=["simple", "interleaved", "zb-h1", "zb-v"],
                   default="interleaved")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--smp-config", default="{}", metavar="JSON",
                   help="more smp.init keys, merged into {microbatches, pipeline}")
    p.add_argument("--tp-modules", action="store_true",
                   help="build the module inside smp.tensor_parallelism() (tp from "
                        "SMP_TP_SIZE): its standard modules become smp.nn's")
    p.add_argument("--delayed-init", action="store_true",
                   help="build the module inside smp.delay_param_initialization()")
    p.add_argument("--reference-only", action="store_true",
                   help="check the families and the reference alone (no smp)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.reference_only:
        return reference_only(args)
    if not args.family:
        p.error("--family is required (except with --reference-only)")
    return distributed(args)


if __name__ == "__main__":
    sys.exit(main())
