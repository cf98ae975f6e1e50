"""smp's sharded optimizer (ZeRO-1) for PyTorch parameters.

Every rank of `group` holds the same parameters and keeps only its 1/n
shard of the float32 optimizer state; a step reduce-scatters the gradients
(average over the group), updates the shard with smp's fused AdamW or SGD
kernel, and allgathers the new values into the parameters, in place. So it
replaces both the data-parallel gradient allreduce and torch.optim.
"""

import torch

import smp


class ShardedOptimizer:
    """named_params: (name, parameter) pairs, the same names in the same
    order on every rank of `group` (e.g. RDP_GROUP with tensor
    parallelism). Hyperparameters follow torch.optim.AdamW / SGD."""

    def __init__(self, named_params, kind="adamw", lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=None, momentum=0.0, dampening=0.0, nesterov=False,
                 group=smp.RDP_GROUP, max_grad_norm=0.0, check_finite=False, bucket_bytes=0):
        self.named = [(n, p) for n, p in named_params if p.requires_grad]
        # The optimizer reads gradients from fixed memory for its whole life;
        # autograd may replace p.grad, so step() copies it here first.
        self._grads = [torch.zeros_like(p) for _, p in self.named]
        if weight_decay is None:
            weight_decay = 0.01 if kind == "adamw" else 0.0
        cfg = {"kind": {"adamw": 0, "sgd": 1}[kind], "lr": float(lr), "beta1": float(betas[0]),
               "beta2": float(betas[1]), "eps": float(eps),
               "weight_decay": float(weight_decay), "momentum": float(momentum),
               "dampening": float(dampening), "nesterov": bool(nesterov), "group": int(group),
               "max_grad_norm": float(max_grad_norm), "check_finite": bool(check_finite),
               "bucket_bytes": int(bucket_bytes)}
        tensors = [(n, p.detach(), g, not getattr(p, "tensor_parallel", False))
                   for (n, p), g in zip(self.named, self._grads)]
        self._opt = smp._smp.Optimizer(cfg, tensors)
        self.group = group

    def zero_grad(self, set_to_none=True):
        for _, p in self.named:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self, grad_scale=1.0):
        """Collective over the group. Returns (skipped, grad_norm)."""
        for (_, p), g in zip(self.named, self._grads):
            if p.grad is None:
                g.zero_()
            else:
                g.copy_(p.grad)
        t0 = smp._time.perf_counter()
        try:
            return self._opt.step(float(grad_scale))
        finally:
            smp._comm[0] += smp._time.perf_counter() - t0

    def set_lr(self, lr):
        self._opt.set_lr(float(lr))

    def info(self):
        """shard_elems, states (names), pieces, step, state_bytes."""
        return self._opt.info()

    def export_state(self, name, out=None):
        """State buffer `name` of this rank's shard (info()["states"]), into
        `out` (float32, shard_elems) when given, else a new tensor."""
        if out is None:
            out = torch.zeros(self._opt.info()["shard_elems"], dtype=torch.float32)
        self._opt.export_state(name, out)
        return out

    def import_state(self, name, values):
        self._opt.import_state(name, values.contiguous())

    def set_step(self, step):
        self._opt.set_step(int(step))

    def gather_params(self):
        self._opt.gather_params()

    def close(self):
        self._opt.close()
