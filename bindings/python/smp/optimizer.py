"""smp.DistributedOptimizer: wraps the user's torch optimizer; once the
first step has partitioned the model it holds this stage's parameters only
(with shard_optimizer_state: smp.optim.ShardedOptimizer over RDP_GROUP)."""

import torch

import smp
from ._errors import SmpError
from .model import _active

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
    only. static_loss_scale / dynamic_loss_scale (fp16) are not built yet."""

    def __init__(self, optimizer, static_loss_scale=1.0, dynamic_loss_scale=False, **kwargs):
        model = _active["model"]
        if model is None:
            raise SmpError(_INVALID, "smp.DistributedOptimizer: wrap the model in "
                                     "smp.DistributedModel first")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise SmpError(_INVALID, f"smp.DistributedOptimizer wraps a torch.optim.Optimizer, "
                                     f"not {type(optimizer).__name__}")
        if static_loss_scale != 1.0 or dynamic_loss_scale or kwargs:
            raise SmpError(_UNSUPPORTED, "smp.DistributedOptimizer: loss scaling (fp16) is not "
                                         "built yet")
        self.optimizer = optimizer
        self.model = model
        self.sharded = None  # smp.optim.ShardedOptimizer with shard_optimizer_state
        self._pending = None  # a checkpoint's state for it, resumed before it was built
        if smp.config().shard_optimizer_state:
            self._sharded_settings = _sharded_settings(optimizer)
        model._optimizers.append(self)
        if model._local is not None:
            self._retarget(model)

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
            if self._pending is not None:
                self._import_pending()

    def _import_pending(self):
        """A checkpoint resumed before the first step: this rank's shard of
        the loaded optimizer state."""
        moments, step = self._pending
        self._pending = None
        info = self.sharded.info()
        for s in info["states"]:
            if s == "master":
                continue  # built from the loaded parameters
            buf = torch.zeros(info["shard_elems"], dtype=torch.float32)
            for _, tname, toff, soff, n in info["pieces"]:
                buf[soff:soff + n] = moments[(tname, s)].reshape(-1)[toff:toff + n]
            self.sharded.import_state(s, buf)
        self.sharded.set_step(int(step))

    def step(self, *args, **kwargs):
        """With shard_optimizer_state: reduce-scatter the gradients over the
        stage's replicas, update this rank's shard, allgather."""
        if self.sharded is not None:
            return self.sharded.step()
        return self.optimizer.step(*args, **kwargs)

    def zero_grad(self, *args, **kwargs):
        if self.sharded is not None:
            return self.sharded.zero_grad(*args, **kwargs)
        return self.optimizer.zero_grad(*args, **kwargs)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        return self.optimizer.load_state_dict(state)

    def __getattr__(self, name):
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)
