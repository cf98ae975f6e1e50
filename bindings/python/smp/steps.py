"""@smp.step: one training (or evaluation) step of the DistributedModel.

The decorated function's tensor arguments are split into `microbatches`
along the batch axis (dim 0, or input_split_axes[name]; arguments named in
non_split_inputs pass whole), and the body runs once per microbatch on the
pipeline's first stage under the configured schedule, every other stage
serving the modules it owns. The first call partitions the model. Every
rank calls the step; every rank gets the StepOutput (the leader's outputs,
detached, broadcast over PP_GROUP). A failure anywhere raises SmpError on
every rank, after the step has been wound down on all of them.
"""

import functools
import inspect

import torch

import smp
from ._errors import SmpError
from .model import active_model, agree, broadcast_object
from .pytree import map_tensors

_INVALID = -1


class StepOutput:
    """The step function's return value of every microbatch (`outputs`)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def _tensors(self):
        return [o if isinstance(o, torch.Tensor) else torch.as_tensor(o) for o in self.outputs]

    def reduce_mean(self):
        """Mean over this replica's microbatches (not over replicas)."""
        return torch.stack(self._tensors()).mean(dim=0)

    def reduce_sum(self):
        return torch.stack(self._tensors()).sum(dim=0)

    def concat(self):
        return torch.cat(self._tensors(), dim=0)

    def stack(self):
        return torch.stack(self._tensors())

    def __repr__(self):
        return f"StepOutput({self.outputs!r})"


def _split(value, m, axis, where):
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return [value] * m
        if value.shape[axis] % m:
            raise SmpError(_INVALID, f"smp.step: argument '{where}' has {value.shape[axis]} "
                                     f"along axis {axis}, which does not divide into {m} "
                                     "microbatches")
        return list(torch.chunk(value, m, dim=axis))
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        parts = [_split(v, m, axis, f"{where}[{i}]") for i, v in enumerate(value)]
        return [type(value)(p[k] for p in parts) for k in range(m)]
    if isinstance(value, dict):
        parts = {k: _split(v, m, axis, f"{where}[{k!r}]") for k, v in value.items()}
        return [type(value)((k, p[i]) for k, p in parts.items()) for i in range(m)]
    return [value] * m


def step(fn=None, *, non_split_inputs=None, input_split_axes=None):
    """@smp.step or @smp.step(non_split_inputs=[names], input_split_axes={name: axis})."""
    if fn is None:
        return lambda f: step(f, non_split_inputs=non_split_inputs,
                              input_split_axes=input_split_axes)
    sig = inspect.signature(fn)
    keep = set(non_split_inputs or ())
    axes = dict(input_split_axes or {})
    for name in keep | set(axes):
        if name not in sig.parameters:
            raise SmpError(_INVALID, f"smp.step: {fn.__name__} has no argument '{name}'")

    @functools.wraps(fn)
    def run(*args, **kwargs):
        model = active_model()
        if model is None:
            raise SmpError(_INVALID, "smp.step: no smp.DistributedModel has been built")
        cfg = smp.config()
        m = cfg.microbatches
        error = None
        per = []
        try:
            bound = sig.bind(*args, **kwargs)
            split = {name: ([v] * m if name in keep else _split(v, m, axes.get(name, 0), name))
                     for name, v in bound.arguments.items()}
            per = [inspect.BoundArguments(sig, {k: split[k][i] for k in bound.arguments})
                   for i in range(m)]
        except (SmpError, TypeError) as e:
            error = e.message if isinstance(e, SmpError) else f"smp.step: {e}"
        agree(error)
        if model._owner is None:
            first = per[0]
            # convert: the tracer's hook on the inputs (to the meta device
            # for a model built by smp.delay_param_initialization)
            model._partition(lambda convert=lambda v: v:
                             fn(*convert(first.args), **convert(first.kwargs)))
        leader = smp.pp_rank() == 0
        grad = torch.is_grad_enabled()  # tasks run in threads of their own: carry it

        def microbatch(b):
            with torch.set_grad_enabled(grad):
                return map_tensors(torch.Tensor.detach, fn(*b.args, **b.kwargs))
        tasks = [functools.partial(microbatch, b) for b in per] if leader else []
        active = cfg.active_microbatches or (smp.pp_size() + 2)
        outs, error = model._run(m, tasks, cfg.pipeline, active)
        try:
            (did_backward,) = agree(error, [model._server.did_backward],
                                    status=model._server.aborted_status or -6)
        except SmpError:
            model._discard_gradient_sync()
            raise
        if did_backward:
            model._reduce_gradients()
        outs = broadcast_object(outs, 0, smp.PP_GROUP)
        if outs and isinstance(outs[0], tuple) and not hasattr(outs[0], "_fields"):
            return tuple(StepOutput(o) for o in zip(*outs))
        return StepOutput(outs)

    return run
