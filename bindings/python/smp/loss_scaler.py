"""Mixed precision for the front end: the model's dtype (config fp16 /
bf16) and loss scaling (smp.DistributedOptimizer's static_loss_scale,
dynamic_loss_scale, dynamic_loss_args).

With fp16 or bf16 smp.DistributedModel casts the module's floating
parameters and buffers to that dtype; smp.DistributedOptimizer keeps
float32 master copies of this stage's parameters, updates those and
copies them back (apex's FP16_Optimizer; with shard_optimizer_state the
sharded optimizer keeps the float32 masters itself).

Loss scaling: model.backward(loss) differentiates loss.float() * scale;
optimizer.step() divides the gradients by the scale (into the masters),
and if any gradient on any rank is inf or NaN (one MAX allreduce over
WORLD: pipeline stages hold different parameters) every rank skips the
step. The dynamic scaler then shrinks the scale, and grows it after
scale_window steps without overflow (apex / DeepSpeed's DynamicLossScaler,
hysteresis included).

The dynamic scale never goes below min_scale; at min_scale overflowing
steps keep being skipped (apex's behaviour; DeepSpeed raises instead).
Inputs are the user's to cast (x.to(torch.bfloat16)), as with any module.

fp16 on the CPU: torch 1.13 has no float16 CPU kernels for matmul,
softmax or most activations, so where a probe finds them missing fp16 with
a CPU model is refused (SmpError UNSUPPORTED) when DistributedModel is
built; bf16 computes on the CPU, and a CUDA model may use either.
"""

import math

import torch

import smp
from ._errors import SmpError

_INVALID, _UNSUPPORTED = -1, -3

# dynamic_loss_args keys and their defaults (apex / DeepSpeed / Megatron).
DYNAMIC_DEFAULTS = {"init_scale": 2.0 ** 32, "scale_factor": 2.0, "scale_window": 1000,
                    "min_scale": 1.0, "delayed_shift": 1, "consecutive_hysteresis": False}


def model_dtype():
    """torch.float16 / torch.bfloat16 under config fp16 / bf16, else None."""
    if not smp.is_initialized():
        return None
    cfg = smp.config()
    if cfg.fp16:
        return torch.float16
    if cfg.bf16:
        return torch.bfloat16
    return None


def _cpu_half_works():
    try:
        a = torch.ones(2, 2, dtype=torch.float16)
        torch.nn.functional.linear(a, a)
        torch.tanh(a)
        return True
    except RuntimeError:
        return False


def cast_module(module):
    """DistributedModel's last act: the module's floating parameters and
    buffers in the configured dtype (in place: the Parameter objects stay,
    so an optimizer built from them still holds them)."""
    dtype = model_dtype()
    if dtype is None:
        return
    on_cpu = any(t.is_floating_point() and t.device.type == "cpu"
                 for t in list(module.parameters()) + list(module.buffers()))
    if dtype == torch.float16 and on_cpu and not _cpu_half_works():
        from .model import _active
        _active["model"] = None
        raise SmpError(_UNSUPPORTED, f"fp16: torch {torch.__version__} cannot compute in "
                                     "float16 on the CPU (no half matmul / activation kernels); "
                                     "move the model to a CUDA device before "
                                     "smp.DistributedModel, or use bf16")
    module.to(dtype)


def scaled_loss(model, loss):
    """(loss to differentiate, its scale) for model.backward: float32 and
    the optimizers' loss scale when one is set."""
    scales = {o.loss_scale for o in model._optimizers}
    if len(scales) > 1:
        raise SmpError(_INVALID, f"model.backward: the model's optimizers have different loss "
                                 f"scales {sorted(scales)}")
    scale = scales.pop() if scales else 1.0
    if scale != 1.0 and loss.is_floating_point():
        loss = loss.float()
    return loss, scale


class LossScaler:
    """A constant scale (1.0: none). update() is a no-op."""

    dynamic = False

    def __init__(self, scale=1.0):
        self.cur_scale = float(scale)

    @property
    def loss_scale(self):
        return self.cur_scale

    def update(self, overflow):
        pass

    def state_dict(self):
        return {"dynamic": False, "cur_scale": self.cur_scale}

    def load_state_dict(self, state):
        _check_kind(self, state)
        self.cur_scale = float(state["cur_scale"])


class DynamicLossScaler(LossScaler):
    """On overflow: scale /= scale_factor (not below min_scale), after
    delayed_shift overflows (hysteresis); after scale_window steps since
    the last overflow: scale *= scale_factor. consecutive_hysteresis: any
    good step restores the hysteresis, else only a growth does."""

    dynamic = True

    def __init__(self, init_scale=2.0 ** 32, scale_factor=2.0, scale_window=1000, min_scale=1.0,
                 delayed_shift=1, consecutive_hysteresis=False):
        super().__init__(init_scale)
        self.scale_factor = float(scale_factor)
        self.scale_window = int(scale_window)
        self.min_scale = float(min_scale)
        self.delayed_shift = int(delayed_shift)
        self.consecutive_hysteresis = bool(consecutive_hysteresis)
        self.cur_iter = 0
        self.last_overflow_iter = -1
        self.cur_hysteresis = self.delayed_shift

    def update(self, overflow):
        if overflow:
            if self.delayed_shift == 1 or self.cur_hysteresis == 1:
                self.cur_scale = max(self.cur_scale / self.scale_factor, self.min_scale)
            else:
                self.cur_hysteresis -= 1
            self.last_overflow_iter = self.cur_iter
        else:
            if self.consecutive_hysteresis:
                self.cur_hysteresis = self.delayed_shift
            if (self.cur_iter - self.last_overflow_iter) % self.scale_window == 0:
                if not self.consecutive_hysteresis:
                    self.cur_hysteresis = self.delayed_shift
                self.cur_scale *= self.scale_factor
        self.cur_iter += 1

    _FIELDS = ("cur_scale", "scale_factor", "scale_window", "min_scale", "delayed_shift",
               "consecutive_hysteresis", "cur_iter", "last_overflow_iter", "cur_hysteresis")

    def state_dict(self):
        d = {"dynamic": True}
        d.update({k: getattr(self, k) for k in self._FIELDS})
        return d

    def load_state_dict(self, state):
        _check_kind(self, state)
        for k in self._FIELDS:
            if k in state:
                setattr(self, k, type(getattr(self, k))(state[k]))


def _check_kind(scaler, state):
    if not isinstance(state, dict) or bool(state.get("dynamic")) != scaler.dynamic:
        kinds = ("static", "dynamic")
        raise SmpError(_INVALID, f"load_state_dict: the saved loss scale is "
                                 f"{kinds[not scaler.dynamic]}, this optimizer's is "
                                 f"{kinds[scaler.dynamic]}; build the DistributedOptimizer with "
                                 "the same dynamic_loss_scale")


def _positive(what, v, integer=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if ok and integer:
        ok = float(v).is_integer()
    if not ok:
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: {what} must be a finite "
                                 f"{'integer' if integer else 'number'} > 0, not {v!r}")
    return v


def make_scaler(static_loss_scale=1.0, dynamic_loss_scale=False, dynamic_loss_args=None):
    """The scaler for DistributedOptimizer's arguments (SmpError on bad ones)."""
    if not isinstance(dynamic_loss_scale, bool):
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: dynamic_loss_scale must be True or "
                                 f"False, not {dynamic_loss_scale!r}")
    if static_loss_scale is not None:
        _positive("static_loss_scale", static_loss_scale)
    if not dynamic_loss_scale:
        if dynamic_loss_args is not None:
            raise SmpError(_INVALID, "smp.DistributedOptimizer: dynamic_loss_args needs "
                                     "dynamic_loss_scale=True")
        return LossScaler(1.0 if static_loss_scale is None else static_loss_scale)
    if static_loss_scale not in (None, 1, 1.0):
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: static_loss_scale="
                                 f"{static_loss_scale!r} with dynamic_loss_scale=True; choose "
                                 "one (dynamic_loss_args={'init_scale': ...} sets the first scale)")
    if not isinstance(dynamic_loss_args, (dict, type(None))):
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: dynamic_loss_args must be a dict, "
                                 f"not {type(dynamic_loss_args).__name__}")
    args = dict(dynamic_loss_args or {})
    unknown = sorted(set(args) - set(DYNAMIC_DEFAULTS))
    if unknown:
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: unknown dynamic_loss_args key(s) "
                                 f"{', '.join(map(repr, unknown))} (known: "
                                 f"{', '.join(DYNAMIC_DEFAULTS)})")
    for k in ("init_scale", "min_scale"):
        if k in args:
            _positive(f"dynamic_loss_args['{k}']", args[k])
    for k in ("scale_window", "delayed_shift"):
        if k in args:
            _positive(f"dynamic_loss_args['{k}']", args[k], integer=True)
    if "scale_factor" in args:
        _positive("dynamic_loss_args['scale_factor']", args["scale_factor"])
        if args["scale_factor"] <= 1:
            raise SmpError(_INVALID, f"smp.DistributedOptimizer: dynamic_loss_args"
                                     f"['scale_factor'] must be > 1, not {args['scale_factor']!r}")
    if "consecutive_hysteresis" in args and not isinstance(args["consecutive_hysteresis"], bool):
        raise SmpError(_INVALID, "smp.DistributedOptimizer: dynamic_loss_args"
                                 "['consecutive_hysteresis'] must be True or False")
    full = dict(DYNAMIC_DEFAULTS, **args)
    if full["min_scale"] > full["init_scale"]:
        raise SmpError(_INVALID, f"smp.DistributedOptimizer: dynamic_loss_args min_scale "
                                 f"{full['min_scale']!r} is above init_scale "
                                 f"{full['init_scale']!r}")
    return DynamicLossScaler(**full)


def unscale_and_check(pairs, inv_scale):
    """pairs: (model parameter, float32 tensor whose .grad the optimizer
    reads: a master, or the parameter itself). Writes grad * inv_scale
    into the second's .grad (in place when they are one tensor); True if
    any is inf or NaN (this rank only; one device sync in all)."""
    finite = []
    for p, m in pairs:
        g = p.grad
        if g is None:
            if m is not p:
                m.grad = None
            continue
        if m is p:
            if inv_scale != 1.0:
                g.mul_(inv_scale)
            out = g
        else:
            if m.grad is None or m.grad.shape != m.shape:
                m.grad = torch.empty_like(m)
            out = m.grad
            out.copy_(g)
            if inv_scale != 1.0:
                out.mul_(inv_scale)
        finite.append(torch.isfinite(out).all())
    return bool(finite) and not bool(torch.stack(finite).all())
