"""smp.save_checkpoint / smp.resume_from_checkpoint for the DistributedModel
and DistributedOptimizer, over smp.checkpoint (collective over WORLD).

Every tensor is stored under the unwrapped module's names; optimizer state
as `<parameter>.<state>` (AdamW: exp_avg, exp_avg_sq; SGD: momentum_buffer),
whichever optimizer holds it (torch's or smp's sharded one), so a
checkpoint saved at one (pp, tp, rdp) resumes at another. A copy that other
ranks hold too (data-parallel replicas, TP-replicated tensors, the whole
model before the first step) is flagged to be written once. partial=True
writes one file per writing rank (a sharded checkpoint); False, one
consolidated safetensors file set. `path/tag` holds the checkpoint and
`path/newest` names the newest tag.

Resuming before the first step (as SageMaker users do) loads into the whole
model on every rank, which the first step then partitions; the sharded
optimizer, built by that step, takes its shard of the loaded moments then.
"""

import os
import pickle

import torch

import smp
from ._errors import SmpError
from .checkpoint import OPTIMIZER, REPLICATED, Checkpoint
from .model import active_model

_INVALID, _UNSUPPORTED = -1, -3
_STATES = {torch.optim.AdamW: ("exp_avg", "exp_avg_sq"), torch.optim.Adam: ("exp_avg", "exp_avg_sq"),
           torch.optim.SGD: ("momentum_buffer",)}


def _states_of(opt):
    states = _STATES.get(type(opt))
    if states is None:
        raise SmpError(_UNSUPPORTED, f"smp checkpoints: the state of {type(opt).__name__} is not "
                                     "supported (AdamW, Adam and SGD are)")
    if isinstance(opt, torch.optim.SGD) and not all(g["momentum"] for g in opt.param_groups):
        return ()
    return states


def _register(ck, model, dopt, load):
    """Registers the model's (this rank's) tensors and the optimizer's state
    (made, zero, where a load needs it and no step has made it yet)."""
    partitioned = model._local is not None
    named = model._local_named() if partitioned else list(model.module.named_parameters())

    def flags_of(p):
        # Before partitioning every rank holds the whole model.
        copies = (not partitioned or smp.rdp_size() > 1
                  or not getattr(p, "tensor_parallel", False))
        return REPLICATED if copies else 0

    for name, p in named:
        ck.add(name, p, flags=flags_of(p))
    local = set(model.local_state_dict())
    params = {id(p) for _, p in model.module.named_parameters()}
    for name, b in model.module.state_dict(keep_vars=True).items():
        if id(b) not in params and name in local:
            ck.add(name, b, flags=REPLICATED)
    if dopt is None:
        return
    if dopt.sharded is not None:
        ck.add_sharded_optimizer(dopt.sharded, None)
        return
    opt = dopt.optimizer
    states = _states_of(opt)
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    for name, p in named:
        # Mixed precision (fp16 / bf16): torch's optimizer updates a float32
        # master of p (smp.loss_scaler), stored as `<name>.master` as the
        # sharded optimizer stores its own.
        master = dopt._checkpoint_master(p, load)
        q = dopt.master_of(p)
        q = p if q is None else q
        if id(q) not in optimized:
            continue
        if master is not None:
            ck.add(f"{name}.master", master, like=p, flags=flags_of(p) | OPTIMIZER)
        st = opt.state[q]
        for s in states:
            if s not in st:
                if not load:
                    continue  # not made yet (no step): nothing to save
                st[s] = torch.zeros_like(q, memory_format=torch.contiguous_format,
                                         dtype=None if master is None else torch.float32)
            ck.add(f"{name}.{s}", st[s], like=p, flags=flags_of(p) | OPTIMIZER)
        if load and "step" not in st and states and states[0] == "exp_avg":
            st["step"] = torch.tensor(0.0)


def save_checkpoint(path, tag, partial=True, model=None, optimizer=None, user_content=None,
                    num_kept_partial_checkpoints=None):
    """Collective over WORLD: writes `path/tag` (and `path/newest`)."""
    model = model or active_model()
    if model is None:
        raise SmpError(_INVALID, "smp.save_checkpoint: no smp.DistributedModel")
    ck = Checkpoint()
    try:
        _register(ck, model, optimizer, load=False)
        ck._ck.set_user("user_content", pickle.dumps(user_content))
        ck._ck.set_user("optimizer_step", pickle.dumps(_step_of(optimizer)))
        if optimizer is not None:
            ck._ck.set_user("loss_scaler", pickle.dumps(optimizer.scaler.state_dict()))
        where = ck.save(os.path.join(str(path), str(tag)), sharded=bool(partial))
    finally:
        ck.close()
    if smp.rank() == 0:
        tmp = os.path.join(str(path), ".newest.tmp")
        with open(tmp, "w") as f:
            f.write(str(tag))
        os.replace(tmp, os.path.join(str(path), "newest"))
    smp.barrier()
    return where


def _step_of(dopt):
    if dopt is None:
        return None
    if dopt.sharded is not None:
        return dopt.sharded.info()["step"]
    steps = [st["step"] for st in dopt.optimizer.state.values() if "step" in st]
    return float(steps[0]) if steps else 0


def resume_from_checkpoint(path, tag=None, partial=True, load_optimizer=True, model=None,
                           optimizer=None):
    """Collective over WORLD: loads `path/tag` (tag None: `path/newest`'s,
    else path itself) into the model and, with load_optimizer, into every
    DistributedOptimizer of it; returns the user_content saved with it.
    Any layout loads any other's checkpoint, sharded or consolidated
    (`partial` is accepted for SageMaker's signature)."""
    model = model or active_model()
    if model is None:
        raise SmpError(_INVALID, "smp.resume_from_checkpoint: no smp.DistributedModel")
    where = str(path)
    if tag is None and os.path.exists(os.path.join(where, "newest")):
        with open(os.path.join(where, "newest")) as f:
            tag = f.read().strip()
    if tag is not None:
        where = os.path.join(where, str(tag))
    opts = [optimizer] if optimizer is not None else (model._optimizers if load_optimizer else [])
    if len(opts) > 1:
        raise SmpError(_INVALID, "smp.resume_from_checkpoint: the model has several optimizers; "
                                 "pass optimizer=")
    dopt = opts[0] if opts else None
    deferred = dopt is not None and dopt.sharded is None and smp.config().shard_optimizer_state
    ck = Checkpoint()
    try:
        if deferred:
            moments = _register_deferred(ck, model, dopt)
        else:
            _register(ck, model, dopt, load=True)
        ck.load(where)
        user = pickle.loads(ck._ck.get_user("user_content", -1))
        step = pickle.loads(ck._ck.get_user("optimizer_step", -1))
        try:
            scaler = pickle.loads(ck._ck.get_user("loss_scaler", -1))
        except SmpError:  # saved without an optimizer, or before loss scaling existed
            scaler = None
    finally:
        ck.close()
    if dopt is not None:
        dopt._resumed(scaler)
    if dopt is not None and step is not None:
        if deferred:
            dopt._pending = (moments, step)
        elif dopt.sharded is not None:
            dopt.sharded.set_step(int(step))
        else:
            for st in dopt.optimizer.state.values():
                if "step" in st:
                    st["step"] = torch.tensor(float(step))
    return user


def _register_deferred(ck, model, dopt):
    """Before the first step with shard_optimizer_state: the whole model,
    and the optimizer's state as this rank's whole tensors for the sharded
    optimizer built later (DistributedOptimizer._import_pending)."""
    _register(ck, model, None, load=True)
    moments = {}
    kind = dopt._sharded_settings
    states = (("exp_avg", "exp_avg_sq") if kind["kind"] == "adamw"
              else (("momentum_buffer",) if kind["momentum"] else ()))
    if dopt._dtype is not None:
        states += ("master",)  # a 16-bit model's float32 masters (as _ShardedState stores them)
    for name, p in model.module.named_parameters():
        for s in states:
            t = torch.zeros(p.shape, dtype=torch.float32)
            moments[(name, s)] = t
            ck.add(f"{name}.{s}", t, like=p, flags=REPLICATED | OPTIMIZER)
    return moments
