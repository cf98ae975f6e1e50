#!/usr/bin/env python3
"""Mixed precision and loss scaling through the front end, under mpirun
(the layout, pp, from SMP_PP_SIZE; rdp = ranks / pp):

    mpirun -np 3 -x SMP_PP_SIZE=3 python3 precision_check.py inf-dynamic

Cases (argv[1]):
  inf-static, inf-dynamic   fp32 model, loss scale 2**10 (static) or
      dynamic (init 2**16, window 3): at step INF_STEP one parameter on the
      last rank only gets an inf gradient (a hook, that step only). Every
      rank must skip that step (its parameters bit-identical before and
      after, `overflow` True), the dynamic scale must halve (the static one
      stay), and every step's loss and the final state_dict must match a
      one-process reference that skips the same step, within 1e-5 relative.
  inf-sharded               the same (dynamic) with shard_optimizer_state.
  bf16, bf16-sharded        config bf16 (model in bfloat16, float32
      masters), dynamic scale, an inf at INF_STEP: equal to a one-process
      bfloat16 reference with float32 masters (rdp 1: the same sums in the
      same order), within BF16_TOLERANCE.
  fp16, fp16-sharded        config fp16 on the CPU through elementwise ops
      (torch 1.13 has float16 CPU kernels for those only; the refusal's
      probe is patched): a first scale of 2**16 overflows float16 for real,
      and the (loss, overflow, scale) history and the final parameters must
      equal a one-process float16 reference bit for bit (rdp 1).
  checkpoint, checkpoint-sharded   bf16: save_checkpoint, then resume into
      the same model and into a fresh one before its first step; both
      repeat the continued run bit for bit.
  clip                      clip_master_grads every step against
      torch.nn.utils.clip_grad_norm_ on the reference (-1 at the inf).
  growth                    the dynamic scale's history with scale_window 3
      (and delayed_shift 2: the first overflow keeps the scale).
  bad-args                  bad arguments: one SmpError on every rank.
Every rank exits 0 only if every rank passed.
"""
import math
import sys

import torch
import torch.nn as nn

import smp
from smp import model as smp_model

STEPS, INF_STEP, M, GLOBAL_BATCH, WIDTH = 7, 3, 2, 12, 8
TOLERANCE, BF16_TOLERANCE = 1e-5, 1e-3
SEED = 1234


class Net(nn.Module):
    def __init__(self, n=5):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(n))
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)


def build():
    torch.manual_seed(SEED)
    return Net()


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    return (torch.randn(GLOBAL_BATCH, WIDTH, generator=g),
            torch.randint(0, 3, (GLOBAL_BATCH,), generator=g))


def make_opt(params):
    # SGD with momentum: a wrongly scaled gradient would show (AdamW hides it).
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def tensor_rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


class RefScaler:
    """The one-process reference's scale: smp.loss_scaler's rules, written
    out again (apex's DynamicLossScaler)."""

    def __init__(self, dynamic, scale, window=1000, delayed_shift=1):
        self.dynamic, self.scale, self.window = dynamic, scale, window
        self.it, self.last, self.shift, self.hyst = 0, -1, delayed_shift, delayed_shift

    def update(self, overflow):
        if self.dynamic:
            if overflow:
                if self.shift == 1 or self.hyst == 1:
                    self.scale = max(self.scale / 2, 1.0)
                else:
                    self.hyst -= 1
                self.last = self.it
            elif (self.it - self.last) % self.window == 0:
                self.hyst = self.shift
                self.scale *= 2
        self.it += 1


def reference(R, dtype, scaler, skip, clip=None, norms=None):
    """One process: R replicas x M microbatches per step, the loss scaled
    as model.backward scales it, the step skipped at `skip` (and the scale
    updated as smp does). dtype bfloat16: a bf16 model over float32 masters.
    Returns (module, losses[step][r], scales after each step)."""
    ref = build().to(dtype)
    params = list(ref.parameters())
    masters = [p.detach().float().clone().requires_grad_() for p in params]
    opt = make_opt(masters)
    losses, scales = [], []
    for step in range(STEPS):
        x, y = batch(step)
        x = x.to(dtype)
        for p in params:
            p.grad = None
        scale = scaler.scale
        per = []
        for r in range(R):
            k = GLOBAL_BATCH // R
            xr, yr = x[r * k:(r + 1) * k], y[r * k:(r + 1) * k]
            ls = []
            for xm, ym in zip(torch.chunk(xr, M), torch.chunk(yr, M)):
                loss = nn.functional.cross_entropy(ref(xm), ym)
                root = loss.float() if scale != 1 else loss
                (root * (scale / (R * M))).backward()
                ls.append(loss.detach())
            per.append(torch.stack(ls).mean().item())
        losses.append(per)
        overflow = step == skip
        if not overflow:
            for p, m in zip(params, masters):
                m.grad = None if p.grad is None else p.grad.float() * (1.0 / scale)
            if clip is not None:
                norms.append(torch.nn.utils.clip_grad_norm_(masters, clip).item())
            opt.step()
            with torch.no_grad():
                for p, m in zip(params, masters):
                    p.copy_(m)
        if clip is not None and overflow:
            norms.append(-1.0)
        scaler.update(overflow)
        scales.append(scaler.scale)
    return ref, losses, scales


def train(model, opt, dtype, inject_at, log, steps=None, clip=None, norms=None):
    """smp training; returns (losses[step] of this replica, scales, fails)."""
    @smp.step
    def train_step(model, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        model.backward(loss)
        return loss

    R, r = smp.rdp_size(), smp.rdp_rank()
    losses, scales, fails = [], [], []
    for step in (range(STEPS) if steps is None else steps):
        x, y = batch(step)
        k = GLOBAL_BATCH // R
        x, y = x[r * k:(r + 1) * k].to(dtype), y[r * k:(r + 1) * k]
        opt.zero_grad()
        hook = None
        if step == inject_at and smp.rank() == smp.size() - 1 and model._local is not None:
            p = next(p for p in model.parameters() if p.requires_grad)
            hook = p.register_hook(lambda g: torch.full_like(g, float("inf")))
        out = train_step(model, x, y)
        if step == 0 and inject_at == 0 and smp.rank() == smp.size() - 1:
            fails.append("inject_at 0 is not supported (the model is partitioned there)")
        if hook is not None:
            hook.remove()
        before = {k: v.clone() for k, v in model.local_state_dict().items()}
        if clip is not None:
            norms.append(opt.clip_master_grads(clip))
        opt.step()
        after = model.local_state_dict()
        if step == inject_at:
            if not opt.overflow:
                fails.append(f"step {step}: the injected inf was not seen (overflow False)")
            changed = [k for k in before if not torch.equal(before[k], after[k])]
            if changed:
                fails.append(f"step {step}: skipped step changed {changed[:3]}")
        elif opt.overflow:
            fails.append(f"step {step}: overflow without an injected inf")
        losses.append(out.reduce_mean().item())
        scales.append(opt.loss_scale)
    return losses, scales, fails


def compare(model, opt, dtype, scaler_args, log, tol):
    dynamic, scale = scaler_args
    fails = []
    losses, scales, f = train(model, opt, dtype, INF_STEP, log)
    fails += f
    ref, ref_losses, ref_scales = reference(smp.rdp_size(), dtype,
                                            RefScaler(dynamic, scale, window=3), INF_STEP)
    r = smp.rdp_rank()
    worst = max(rel(a, b[r]) for a, b in zip(losses, ref_losses))
    log(f"losses {[f'{v:.6f}' for v in losses]}; worst relative difference {worst:.2e}")
    if not worst <= tol:
        fails.append(f"losses differ from the reference by {worst:.3e} > {tol:g}: "
                     f"{losses} vs {[b[r] for b in ref_losses]}")
    if scales != ref_scales:
        fails.append(f"loss scales {scales}, expected {ref_scales}")
    if dynamic and scales[INF_STEP] != scales[INF_STEP - 1] / 2:
        fails.append(f"the overflow did not halve the scale: {scales}")
    if not dynamic and set(scales) != {scale}:
        fails.append(f"the static scale changed: {scales}")
    sd, ref_sd = model.state_dict(), ref.state_dict()
    worst_sd = max(tensor_rel(sd[k].float(), ref_sd[k].float()) for k in ref_sd)
    log(f"state_dict worst relative difference {worst_sd:.2e}; scales {scales}")
    if not worst_sd <= tol:
        fails.append(f"state_dict differs from the reference by {worst_sd:.3e} > {tol:g}")
    if dtype != torch.float32:
        bad = [k for k, v in sd.items() if v.is_floating_point() and v.dtype != dtype]
        if bad:
            fails.append(f"tensors not in {dtype}: {bad[:3]}")
    return fails


def fresh(module):
    smp_model._active["model"] = None
    return smp.DistributedModel(module)


def case_train(mode, log):
    cfg = {"microbatches": M}
    dtype = torch.float32
    if mode.startswith("bf16"):
        cfg["bf16"] = True
        dtype = torch.bfloat16
    if mode.endswith("sharded"):
        cfg["shard_optimizer_state"] = True
    smp.init(cfg)
    model = smp.DistributedModel(build())
    if mode == "inf-static":
        opt = smp.DistributedOptimizer(make_opt(model.parameters()), static_loss_scale=2.0 ** 10)
        args = (False, 2.0 ** 10)
    else:
        opt = smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True,
                                       dynamic_loss_args={"init_scale": 2.0 ** 16,
                                                          "scale_window": 3})
        args = (True, 2.0 ** 16)
    return compare(model, opt, dtype, args, log, BF16_TOLERANCE if dtype != torch.float32
                   else TOLERANCE)


def case_growth(log):
    smp.init({"microbatches": M})
    fails = []
    model = smp.DistributedModel(build())
    opt = smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True,
                                   dynamic_loss_args={"init_scale": 256.0, "scale_window": 3,
                                                      "delayed_shift": 2})
    if opt.loss_scale != 256.0:
        fails.append(f"init_scale: loss_scale {opt.loss_scale}")
    global STEPS
    STEPS = 9
    # NaN at steps 3 (hysteresis: the scale is kept) and 4 (halved).
    scales = []
    overflows = []

    @smp.step
    def train_step(model, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        model.backward(loss)
        return loss
    R, r = smp.rdp_size(), smp.rdp_rank()
    for step in range(STEPS):
        x, y = batch(step)
        k = GLOBAL_BATCH // R
        opt.zero_grad()
        hook = None
        if step in (3, 4) and smp.rank() == smp.size() - 1 and model._local is not None:
            p = next(p for p in model.parameters() if p.requires_grad)
            hook = p.register_hook(lambda g: torch.full_like(g, float("nan")))
        train_step(model, x[r * k:(r + 1) * k], y[r * k:(r + 1) * k])
        if hook is not None:
            hook.remove()
        opt.step()
        scales.append(opt.loss_scale)
        overflows.append(opt.overflow)
    ref = RefScaler(True, 256.0, window=3, delayed_shift=2)
    want = []
    for step in range(STEPS):
        ref.update(step in (3, 4))
        want.append(ref.scale)
    # by hand: 256 256 512 | 512 (hysteresis) 256 (halved) | 256 256 512 512
    assert want == [256, 256, 512, 512, 256, 256, 256, 512, 512], want
    log(f"scales {scales}; overflows {overflows}")
    if scales != want:
        fails.append(f"scales {scales}, expected {want}")
    if overflows != [s in (3, 4) for s in range(STEPS)]:
        fails.append(f"overflows {overflows}")
    sd = opt.state_dict()["loss_scaler"]
    if sd.get("cur_scale") != 512.0 or sd.get("cur_iter") != STEPS:
        fails.append(f"state_dict's loss_scaler {sd}")
    opt2 = smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True)
    opt2.load_state_dict(opt.state_dict())
    if opt2.loss_scale != 512.0:
        fails.append(f"load_state_dict: loss_scale {opt2.loss_scale}")
    model._optimizers.remove(opt2)
    return fails


def case_checkpoint(mode, log):
    """bf16, dynamic scale, SGD with momentum: 4 steps (an inf at step 1),
    save_checkpoint, 3 more steps; then resume_from_checkpoint into the
    same model, and into a fresh model before its first step: both must
    repeat those 3 steps bit for bit (float32 masters, moments and the
    loss scaler's state restored). The fresh model may be partitioned
    otherwise (the plan uses measured times): whole state_dicts compare."""
    import shutil
    import tempfile
    sharded = mode.endswith("sharded")
    cfg = {"microbatches": M, "bf16": True}
    if sharded:
        cfg["shard_optimizer_state"] = True
    smp.init(cfg)
    dtype = torch.bfloat16
    tmp = smp_model.broadcast_object(tempfile.mkdtemp() if smp.rank() == 0 else None, 0,
                                     smp.WORLD)

    def make(model):
        return smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True,
                                        dynamic_loss_args={"init_scale": 2.0 ** 16,
                                                           "scale_window": 3})
    fails = []
    model = smp.DistributedModel(build())
    opt = make(model)
    _, scales0, f = train(model, opt, dtype, 1, log, steps=range(4))
    fails += f
    smp.save_checkpoint(tmp, "a", partial=not sharded, model=model, optimizer=opt)
    want_scale = opt.loss_scale
    at_save = model.state_dict()
    runs = {}
    runs["continued"] = train(model, opt, dtype, -1, log, steps=range(4, 7))[:2] + (
        model.state_dict(),)
    smp.resume_from_checkpoint(tmp, "a")
    got = opt.loss_scale
    runs["resumed"] = train(model, opt, dtype, -1, log, steps=range(4, 7))[:2] + (
        model.state_dict(),)
    model = fresh(build())
    opt = make(model)
    smp.resume_from_checkpoint(tmp)
    got_fresh = opt.loss_scale
    runs["resumed before the first step"] = train(model, opt, dtype, -1, log,
                                                  steps=range(4, 7))[:2] + (
        model.state_dict(),)
    # model.load_state_dict after training: the next step starts the
    # masters from the loaded parameters (lr 0: the parameters stay).
    saved = at_save
    model.load_state_dict(saved)
    for g in opt.optimizer.param_groups:
        g["lr"] = 0.0
    if opt.sharded is not None:
        opt.sharded.set_lr(0.0)
    train(model, opt, dtype, -1, log, steps=range(7, 8))
    now = model.state_dict()
    moved = [k for k in saved if not torch.equal(saved[k], now[k])]
    if moved:
        fails.append(f"model.load_state_dict then a step at lr 0 moved {moved[:3]} (stale "
                     "float32 masters written back)")
    smp.barrier()
    if smp.rank() == 0:
        shutil.rmtree(tmp)
    if got != want_scale or got_fresh != want_scale:
        fails.append(f"loss scale after resume {got} / {got_fresh}, saved {want_scale}")
    base = runs.pop("continued")
    log(f"scales {scales0} then {base[1]}; losses {base[0]}")
    for name, (losses, scales, state) in runs.items():
        if losses != base[0] or scales != base[1]:
            fails.append(f"{name}: losses {losses} scales {scales}, continued "
                         f"{base[0]} {base[1]}")
        diff = [k for k in base[2] if not torch.equal(base[2][k], state[k])]
        if diff:
            fails.append(f"{name}: parameters differ from the continued run's: {diff[:3]}")
    return fails


class HalfNet(nn.Module):
    """Only ops torch 1.13 has float16 CPU kernels for (elementwise), so
    fp16's real overflows run on the CPU."""

    def __init__(self, n=4):
        super().__init__()
        self.layers = nn.ModuleList(_Elementwise() for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class _Elementwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(1 + 0.3 * torch.randn(WIDTH))
        self.b = nn.Parameter(0.1 * torch.randn(WIDTH))

    def forward(self, x):
        h = x * self.w + self.b
        h = h + 0.5 * h.roll(1, -1)
        return torch.where(h > 0, h, 0.1 * h)


def case_fp16(mode, log):
    """fp16 on the CPU through elementwise ops (the refusal's probe
    patched): a first scale of 2**16 overflows float16
    for real; every rank must skip the same steps and the trajectory must
    equal a one-process float16 reference with float32 masters and the same
    scaler (it finds its own overflows), bit for bit."""
    from smp import loss_scaler
    loss_scaler._cpu_half_works = lambda: True
    sharded = mode.endswith("sharded")
    smp.init({"microbatches": M, "fp16": True, "shard_optimizer_state": sharded})
    torch.manual_seed(SEED)
    model = smp.DistributedModel(HalfNet())
    opt = smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True,
                                   dynamic_loss_args={"init_scale": 2.0 ** 16,
                                                      "scale_window": 3})

    def data(step):
        x, _ = batch(step)
        return x.half(), torch.tanh(x).half()

    @smp.step
    def train_step(model, x, y):
        loss = ((model(x) - y) ** 2).mean()
        model.backward(loss)
        return loss
    R, r = smp.rdp_size(), smp.rdp_rank()
    k = GLOBAL_BATCH // R
    got = []
    for step in range(STEPS + 3):
        x, y = data(step)
        opt.zero_grad()
        out = train_step(model, x[r * k:(r + 1) * k], y[r * k:(r + 1) * k])
        opt.step()
        got.append((out.reduce_mean().item(), opt.overflow, opt.loss_scale))
    # The reference.
    torch.manual_seed(SEED)
    ref = HalfNet().half()
    params = list(ref.parameters())
    masters = [p.detach().float().clone().requires_grad_() for p in params]
    ropt = make_opt(masters)
    scaler = RefScaler(True, 2.0 ** 16, window=3)
    want = []
    for step in range(STEPS + 3):
        x, y = data(step)
        for p in params:
            p.grad = None
        per = []
        for rr in range(R):
            ls = []
            for xm, ym in zip(torch.chunk(x[rr * k:(rr + 1) * k], M),
                              torch.chunk(y[rr * k:(rr + 1) * k], M)):
                loss = ((ref(xm) - ym) ** 2).mean()
                (loss.float() * (scaler.scale / (R * M))).backward()
                ls.append(loss.detach())
            per.append(torch.stack(ls).mean().item())
        grads = [None if p.grad is None else p.grad.float() / scaler.scale for p in params]
        overflow = any(g is not None and not bool(torch.isfinite(g).all()) for g in grads)
        if not overflow:
            for m, g in zip(masters, grads):
                m.grad = g
            ropt.step()
            with torch.no_grad():
                for p, m in zip(params, masters):
                    p.copy_(m)
        scaler.update(overflow)
        want.append((per[r], overflow, scaler.scale))
    log(f"(loss, overflow, scale) per step: {got}")
    fails = []
    n_over = sum(o for _, o, _ in want)
    if not 1 <= n_over < len(want) - 2:
        fails.append(f"the reference overflowed at {n_over} of {len(want)} steps: the case "
                     "no longer tests fp16 overflows")
    if got != want:
        fails.append(f"(loss, overflow, scale) {got}, the reference's {want}")
    sd, ref_sd = model.state_dict(), ref.state_dict()
    diff = [k for k in ref_sd if not torch.equal(sd[k], ref_sd[k])]
    if diff or any(v.dtype != torch.float16 for v in sd.values()):
        fails.append(f"state_dict differs from the reference's (or is not float16): {diff[:3]}")
    return fails


def case_clip(log):
    """clip_master_grads(0.05) every step (clipping active), fp32 model,
    dynamic scale, an inf at INF_STEP (the norm is -1 and the step skipped):
    the norms, losses and parameters of torch.nn.utils.clip_grad_norm_ on
    a one-process reference, within 1e-5."""
    smp.init({"microbatches": M})
    model = smp.DistributedModel(build())
    opt = smp.DistributedOptimizer(make_opt(model.parameters()), dynamic_loss_scale=True,
                                   dynamic_loss_args={"init_scale": 2.0 ** 16,
                                                      "scale_window": 3})
    norms, ref_norms, fails = [], [], []
    losses, scales, fails = train(model, opt, torch.float32, INF_STEP, log, clip=0.05,
                                  norms=norms)
    ref, ref_losses, ref_scales = reference(smp.rdp_size(), torch.float32,
                                            RefScaler(True, 2.0 ** 16, window=3), INF_STEP,
                                            clip=0.05, norms=ref_norms)
    r = smp.rdp_rank()
    log(f"norms {norms}")
    if norms[INF_STEP] != -1.0 or min(n for n in ref_norms if n > 0) <= 0.05:
        fails.append(f"norms {norms}: want -1 at step {INF_STEP} and clipping everywhere else")
    worst = max([rel(a, b) for a, b in zip(norms, ref_norms)] +
                [rel(a, b[r]) for a, b in zip(losses, ref_losses)])
    if not worst <= TOLERANCE or scales != ref_scales:
        fails.append(f"norms {norms} losses {losses} scales {scales}; the reference's "
                     f"{ref_norms} {[b[r] for b in ref_losses]} {ref_scales}")
    sd, ref_sd = model.state_dict(), ref.state_dict()
    worst_sd = max(tensor_rel(sd[k], ref_sd[k]) for k in ref_sd)
    log(f"worst relative difference: norms and losses {worst:.2e}, state_dict {worst_sd:.2e}")
    if not worst_sd <= TOLERANCE:
        fails.append(f"state_dict differs from the reference by {worst_sd:.3e}")
    return fails


def case_bad_args(log):
    smp.init({"microbatches": M})
    fails = []
    model = smp.DistributedModel(build())
    cases = [
        ("negative static scale", dict(static_loss_scale=-1.0), "static_loss_scale"),
        ("nan static scale", dict(static_loss_scale=float("nan")), "static_loss_scale"),
        ("unknown dynamic_loss_args key", dict(dynamic_loss_scale=True,
                                               dynamic_loss_args={"scale_windwo": 10}),
         "scale_windwo"),
        ("dynamic_loss_args without dynamic", dict(dynamic_loss_args={"scale_window": 10}),
         "dynamic_loss_scale=True"),
        ("zero scale_window", dict(dynamic_loss_scale=True,
                                   dynamic_loss_args={"scale_window": 0}), "scale_window"),
        ("min_scale above init_scale", dict(dynamic_loss_scale=True,
                                            dynamic_loss_args={"init_scale": 4.0,
                                                               "min_scale": 8.0}), "min_scale"),
        ("static and dynamic", dict(static_loss_scale=8.0, dynamic_loss_scale=True),
         "choose one"),
        ("unknown argument", dict(loss_scale=8.0), "loss_scale"),
    ]
    for what, kwargs, needle in cases:
        try:
            smp.DistributedOptimizer(make_opt(model.parameters()), **kwargs)
            fails.append(f"{what}: no error")
        except smp.SmpError as e:
            msg = str(e)
            log(f"{what}: {msg}")
            if "\n" in msg or needle not in msg:
                fails.append(f"{what}: message {msg!r} (want one line naming {needle!r})")
    # A static scale of None is SageMaker's spelling of "dynamic only".
    smp.DistributedOptimizer(make_opt(model.parameters()), static_loss_scale=None,
                             dynamic_loss_scale=True)
    model._optimizers.clear()
    # fp16 with a CPU model: refused where torch has no CPU half kernels.
    smp.config().fp16 = True
    try:
        try:
            torch.nn.functional.linear(torch.ones(2, 2).half(), torch.ones(2, 2).half())
            cpu_half = True
        except RuntimeError:
            cpu_half = False
        try:
            fresh(build())
            if not cpu_half:
                fails.append("fp16 with a CPU model: no error")
        except smp.SmpError as e:
            log(f"fp16 on the CPU: {e}")
            if cpu_half or "bf16" not in str(e):
                fails.append(f"fp16 on the CPU: {e}")
            if smp_model._active["model"] is not None:
                fails.append("fp16 on the CPU: the refused model stays registered")
    finally:
        smp.config().fp16 = False
    # Training still works afterwards.
    model = fresh(build())
    opt = smp.DistributedOptimizer(make_opt(model.parameters()), static_loss_scale=4.0)
    losses, _, f = train(model, opt, torch.float32, -1, log)
    fails += f
    try:
        opt.clip_master_grads(-1.0)
        fails.append("clip_master_grads(-1.0): no error")
    except smp.SmpError as e:
        log(f"clip_master_grads(-1.0): {e}")
        if "\n" in str(e) or "max_norm" not in str(e):
            fails.append(f"clip_master_grads(-1.0): message {str(e)!r}")
    if not all(math.isfinite(v) for v in losses):
        fails.append(f"training after the bad arguments: losses {losses}")
    return fails


def main():
    mode = sys.argv[1]

    def log(msg):
        print(f"[rank {smp.rank()}] {mode}: {msg}", flush=True)
    try:
        if mode == "growth":
            fails = case_growth(log)
        elif mode == "bad-args":
            fails = case_bad_args(log)
        elif mode == "clip":
            fails = case_clip(log)
        elif mode in ("fp16", "fp16-sharded"):
            fails = case_fp16(mode, log)
        elif mode in ("checkpoint", "checkpoint-sharded"):
            fails = case_checkpoint(mode, log)
        elif mode in ("inf-static", "inf-dynamic", "inf-sharded", "bf16", "bf16-sharded"):
            fails = case_train(mode, log)
        else:
            raise SystemExit(f"unknown case {mode}")
    except smp.SmpError as e:
        fails = [f"SmpError: {e}"]
    for f in fails:
        log(f"FAIL {f}")
    ok = True
    try:
        smp_model.agree("; ".join(fails) if fails else None)
    except smp.SmpError as e:
        ok = False
        if smp.rank() == 0:
            print(f"FAILED: {e}", flush=True)
    if ok and smp.rank() == 0:
        print(f"PASS {mode} at pp {smp.pp_size()} rdp {smp.rdp_size()}", flush=True)
    smp.finalize()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
