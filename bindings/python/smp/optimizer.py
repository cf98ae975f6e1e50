"""smp.DistributedOptimizer: wraps the user's torch optimizer; once the
first step has partitioned the model it holds this stage's parameters only
(with shard_optimizer_state: smp.optim.ShardedOptimizer over RDP_GROUP)."""

import math

import torch

import smp
from ._errors import SmpError
from .loss_scaler import make_scaler, model_dtype, unscale_and_check
from .model import _active, agree

_INVALID, _UNSUPPORTED = -1, -3


def _sharded_settings(opt):
    """ShardedOptimizer's arguments for a torch AdamW or SGD (one group)."""
    if len(opt.param_groups) != 1 or type(opt) not in (torch.optim.AdamW, torch.optim.SGD):
        raise SmpError(_UNSUPPORTED, f"shard_optimizer_state: smp shards torch.optim.AdamW and "
                                     f"torch.optim.SGD with one parameter group, not "
                                     f"{type(opt).__name__} with {len(opt.param_groups)}")
    g = opt.param_groups[0]
    if isinstance(opt, torch.optim.AdamW):
        if g.get("amsgrad") or g.get("maximize"):
            raise SmpError(_UNSUPPORTED, "shard_optimizer_state: AdamW's amsgrad and maximize "
                                         "are not supported")
        return dict(kind="adamw", lr=g["lr"], betas=g["betas"], eps=g["eps"],
                    weight_decay=g["weight_decay"])
    if g.get("maximize"):
        raise SmpError(_UNSUPPORTED, "shard_optimizer_state: SGD's maximize is not supported")
    return dict(kind="sgd", lr=g["lr"], momentum=g["momentum"], dampening=g["dampening"],
                nesterov=g["nesterov"], weight_decay=g["weight_decay"])


class DistributedOptimizer:
    """Wraps any torch optimizer built from model.parameters(). Once the
    first step has partitioned the model it holds this stage's parameters
    only.

    Mixed precision (smp.loss_scaler): with config fp16 / bf16 the torch
    optimizer updates float32 master copies of the stage's parameters,
    which step() copies back into the model. static_loss_scale (a number >
    0; None = 1) or dynamic_loss_scale=True (dynamic_loss_args: init_scale,
    scale_factor, scale_window, min_scale, delayed_shift,
    consecutive_hysteresis) scale the loss in model.backward; step() then
    divides the gradients by the scale and skips the update on every rank
    when any rank's gradients hold inf or NaN (`overflow` says so after
    each step, `loss_scale` is the scale the next backward uses).
    clip_master_grads(max_norm) clips the unscaled gradients in between.
    Parameters written in place between steps (model.load_state_dict)
    restart their masters."""

    def __init__(self, optimizer, static_loss_scale=1.0, dynamic_loss_scale=False,
                 dynamic_loss_args=None, **kwargs):
        model = _active["model"]
        if model is None:
            raise SmpError(_INVALID, "smp.DistributedOptimizer: wrap the model in "
                                     "smp.DistributedModel first")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise SmpError(_INVALID, f"smp.DistributedOptimizer wraps a torch.optim.Optimizer, "
                                     f"not {type(optimizer).__name__}")
        if kwargs:
            raise SmpError(_INVALID, f"smp.DistributedOptimizer: unknown argument(s) "
                                     f"{', '.join(sorted(kwargs))}")
        self.scaler = make_scaler(static_loss_scale, dynamic_loss_scale, dynamic_loss_args)
        self._dtype = model_dtype()  # the model's 16-bit dtype, or None
        # Gradients are checked (and the step maybe skipped) with a 16-bit
        # model or a loss scale; plain float32 training is as before.
        self._checked = (self._dtype is not None or self.scaler.dynamic
                         or self.scaler.loss_scale != 1.0)
        self.overflow = False
        self._prepared = False  # clip_master_grads has unscaled this step's gradients
        self.optimizer = optimizer
        self.model = model
        self.sharded = None  # smp.optim.ShardedOptimizer with shard_optimizer_state
        self._pending = None  # a checkpoint's state for it, resumed before it was built
        self._pairs = None  # (model parameter, float32 master or itself) once partitioned
        self._master_by_id = {}
        self._loaded_masters = {}  # id(parameter) -> float32 master resumed before the first step
        if smp.config().shard_optimizer_state:
            self._sharded_settings = _sharded_settings(optimizer)
            if self._checked:
                self._sharded_settings["check_finite"] = True
        model._optimizers.append(self)
        if model._local is not None:
            self._retarget(model)

    @property
    def loss_scale(self):
        """The scale model.backward multiplies the loss by (1.0: none)."""
        return self.scaler.loss_scale

    @property
    def loss_scaler(self):
        """The scaler (smp.loss_scaler.LossScaler or DynamicLossScaler), as
        Megatron's FP16_Optimizer names it."""
        return self.scaler

    def _retarget(self, model):
        """Once partitioned: this stage's parameters only (collective with
        shard_optimizer_state: the sharded optimizer is built here)."""
        for g in self.optimizer.param_groups:
            g["params"] = [p for p in g["params"] if id(p) in model._local]
        for p in list(self.optimizer.state):
            if id(p) not in model._local:
                del self.optimizer.state[p]
        if smp.config().shard_optimizer_state:
            from .optim import ShardedOptimizer
            named = model._local_named()
            self.sharded = ShardedOptimizer(named, group=smp.RDP_GROUP,
                                            **self._sharded_settings)
            model._sharded = True
            smp._state["before_finalize"].append(self.sharded.close)
            self._sharded_versions = [p._version for _, p in self.sharded.named]
            if self._pending is not None:
                self._import_pending()
        else:
            self._make_masters()

    def _make_masters(self):
        """The torch optimizer's parameters become float32 masters of the
        16-bit ones (its state, if any, moves over in float32)."""
        self._pairs = []
        for g in self.optimizer.param_groups:
            params = []
            for p in g["params"]:
                m = p
                if p.is_floating_point() and p.dtype != torch.float32 and self._dtype is not None:
                    loaded = self._loaded_masters.pop(id(p), None)
                    m = torch.nn.Parameter(loaded if loaded is not None
                                           else p.detach().to(torch.float32, copy=True),
                                           requires_grad=p.requires_grad)
                    st = self.optimizer.state.pop(p, None)
                    if st is not None:
                        self.optimizer.state[m] = {
                            k: (v.float() if torch.is_tensor(v) and v.is_floating_point()
                                and k != "step" else v) for k, v in st.items()}
                self._pairs.append((p, m))
                params.append(m)
            g["params"] = params
        self._master_by_id = {id(p): m for p, m in self._pairs}
        self._note_versions()

    def _note_versions(self):
        # A 16-bit parameter written outside the optimizer (e.g.
        # model.load_state_dict) bumps its version: step() then restarts
        # its master from it instead of writing the stale master back.
        self._versions = [p._version for p, _ in self._pairs]

    def _adopt_changed(self):
        with torch.no_grad():
            for (p, m), v in zip(self._pairs, self._versions):
                if m is not p and p._version != v:
                    m.copy_(p)

    def master_of(self, p):
        """The float32 tensor the torch optimizer updates for model
        parameter p (p itself without a 16-bit master), or None."""
        return self._master_by_id.get(id(p))

    def _checkpoint_master(self, p, load):
        """smp checkpoints (non-sharded): the float32 master to store as
        `<name>.master` for 16-bit parameter p, or None. Before the first
        step a save stores p in float32 and a load fills a buffer the
        master then starts from."""
        if self._dtype is None or not p.is_floating_point() or p.dtype == torch.float32:
            return None
        m = self.master_of(p)
        if m is not None:
            return None if m is p else m
        if not load:
            return p.detach().float()
        buf = torch.empty(p.shape, dtype=torch.float32)
        self._loaded_masters[id(p)] = buf
        return buf

    def _resumed(self, scaler_state):
        """After smp.resume_from_checkpoint: the loss scaler's state, when
        a scaler of the same kind (static / dynamic) saved it, else the
        configured one stays; the parameters' versions noted (the load
        wrote the masters and the parameters together, and a GPU tensor's
        copy back bumps its version)."""
        if (isinstance(scaler_state, dict)
                and bool(scaler_state.get("dynamic")) == self.scaler.dynamic):
            self.scaler.load_state_dict(scaler_state)
        if self._pairs is not None:
            self._note_versions()
        if self.sharded is not None:
            self._sharded_versions = [p._version for _, p in self.sharded.named]

    def _copy_back(self):
        with torch.no_grad():
            for p, m in self._pairs:
                if m is not p:
                    p.copy_(m)
        self._note_versions()

    def sync_masters(self):
        """Re-reads every master from its parameter (step() does it itself
        for parameters written in place since the last step; this is for
        writes that bypass torch, e.g. through a raw pointer)."""
        with torch.no_grad():
            for p, m in self._pairs or ():
                if m is not p:
                    m.copy_(p)
        if self._pairs is not None:
            self._note_versions()

    def _adopt_changed_sharded(self):
        """The sharded optimizer's float32 masters restart from the
        parameters when one was written in place since the last step, e.g.
        by model.load_state_dict (its own writes bypass torch and bump no
        version)."""
        versions = [p._version for _, p in self.sharded.named]
        if self._sharded_versions != versions:
            info = self.sharded.info()
            master = self.sharded.export_state("master")
            for index, _, toff, soff, n in info["pieces"]:
                p = self.sharded.named[index][1]
                master[soff:soff + n] = p.detach().reshape(-1)[toff:toff + n].to(
                    "cpu", torch.float32)
            self.sharded.import_state("master", master)
        self._sharded_versions = versions

    def _import_pending(self):
        """A checkpoint resumed before the first step: this rank's shard of
        the loaded optimizer state."""
        moments, step = self._pending
        self._pending = None
        info = self.sharded.info()
        for s in info["states"]:
            if s == "master" and not any(k[1] == "master" for k in moments):
                continue  # built from the loaded parameters (a float32 model)
            buf = torch.zeros(info["shard_elems"], dtype=torch.float32)
            for _, tname, toff, soff, n in info["pieces"]:
                buf[soff:soff + n] = moments[(tname, s)].reshape(-1)[toff:toff + n]
            self.sharded.import_state(s, buf)
        self.sharded.set_step(int(step))

    def step(self, *args, **kwargs):
        """Collective over WORLD with a 16-bit model or a loss scale (the
        inf/NaN check); with shard_optimizer_state: reduce-scatter the
        gradients over the stage's replicas, update this rank's shard,
        allgather."""
        prepared, self._prepared = self._prepared, False
        if not self._checked:
            if self.sharded is not None:
                self._adopt_changed_sharded()
                return self.sharded.step()
            return self.optimizer.step(*args, **kwargs)
        inv = 1.0 / self.scaler.loss_scale
        result = None
        if self.sharded is not None:
            # The sharded optimizer unscales, checks over RDP x MP (= WORLD)
            # and skips on every rank itself.
            self._adopt_changed_sharded()
            skipped, _ = self.sharded.step(inv)
            self.overflow = bool(skipped)
        else:
            if not prepared:
                self._prepare()
                self._prepared = False
            if not self.overflow:
                result = self.optimizer.step(*args, **kwargs)
                self._copy_back()
        self.scaler.update(self.overflow)
        return result

    def _prepare(self):
        """Collective over WORLD: the gradients unscaled into the float32
        masters and the overflow agreed (one MAX allreduce)."""
        if self._pairs is None:
            raise SmpError(_INVALID, "smp.DistributedOptimizer: no smp.step has run yet "
                                     "(mixed precision and loss scaling need the partitioned "
                                     "model)")
        self._adopt_changed()
        bad = unscale_and_check(self._pairs, 1.0 / self.scaler.loss_scale)
        (flag,) = agree(None, [bad])
        self.overflow = bool(flag)
        self._prepared = True

    def clip_master_grads(self, max_norm, norm_type=2):
        """Between the step function and step() (Megatron / apex
        FP16_Optimizer's name): clips the unscaled float32 gradients by
        their global L2 norm over every stage (as
        torch.nn.utils.clip_grad_norm_ on the whole model) and returns that
        norm, or -1 when a gradient is inf or NaN (step() then skips).
        Collective over WORLD."""
        if self.sharded is not None:
            raise SmpError(_UNSUPPORTED, "clip_master_grads with shard_optimizer_state is not "
                                         "supported (the sharded optimizer unscales inside its "
                                         "step)")
        if norm_type != 2:
            raise SmpError(_UNSUPPORTED, f"clip_master_grads: norm_type {norm_type!r}; only the "
                                         "L2 norm (2) is supported")
        if not (isinstance(max_norm, (int, float)) and math.isfinite(max_norm) and max_norm > 0):
            raise SmpError(_INVALID, f"clip_master_grads: max_norm must be a finite number > 0, "
                                     f"not {max_norm!r}")
        if not self._prepared:
            self._prepare()
        if self.overflow:
            return -1.0
        # Data-parallel replicas hold the same (averaged) gradients; a
        # parameter that tensor parallelism does not split is the same on
        # every TP rank and counts once.
        grads = [m.grad for p, m in self._pairs if m.grad is not None
                 and (smp.tp_rank() == 0 or getattr(p, "tensor_parallel", False))]
        sq = torch.zeros(1, dtype=torch.float64)
        for g in grads:
            sq += g.detach().double().pow(2).sum().cpu()
        if smp.mp_size() > 1:
            smp.allreduce(sq, smp.SUM, smp.MP_GROUP)
        norm = math.sqrt(sq.item())
        coef = max_norm / (norm + 1e-6)
        if coef < 1:
            for p, m in self._pairs:
                if m.grad is not None:
                    m.grad.mul_(coef)
        return norm

    def zero_grad(self, *args, **kwargs):
        if self.sharded is not None:
            return self.sharded.zero_grad(*args, **kwargs)
        self._prepared = False
        out = self.optimizer.zero_grad(*args, **kwargs)
        set_to_none = kwargs.get("set_to_none", args[0] if args else False)
        for p, m in self._pairs or ():
            if m is not p and p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()
        return out

    def state_dict(self):
        """The torch optimizer's state_dict (over the masters, with a
        16-bit model), plus "loss_scaler" and, with masters,
        "fp32_masters" (this stage's, in parameter order)."""
        sd = self.optimizer.state_dict()
        sd["loss_scaler"] = self.scaler.state_dict()
        if self._pairs is not None and any(m is not p for p, m in self._pairs):
            sd["fp32_masters"] = [m.detach().clone() for _, m in self._pairs]
        return sd

    def load_state_dict(self, state):
        state = dict(state)
        scaler = state.pop("loss_scaler", None)
        masters = state.pop("fp32_masters", None)
        out = self.optimizer.load_state_dict(state)
        if scaler is not None:
            self.scaler.load_state_dict(scaler)
        if masters is not None and self._pairs is not None:
            if len(masters) != len(self._pairs):
                raise SmpError(_INVALID, f"load_state_dict: {len(masters)} fp32 masters for "
                                         f"{len(self._pairs)} parameters")
            with torch.no_grad():
                for (_, m), t in zip(self._pairs, masters):
                    m.copy_(t)
            self._copy_back()
        return out

    def __getattr__(self, name):
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)
