"""Calls to modules another pipeline stage owns, as the caller sees them.

A call whose output structure this rank can predict (the module returned
the same nesting of tensors, tuples, lists, dicts and None on every call it
has answered so far) does not wait: the request goes out and the call
returns *remote tensors* at once, placeholders for outputs that stay on the
owner. Passed to another call on the same owner they travel as references,
so a chain of modules on one stage (the blocks of a transformer that a root
on another stage loops over) runs there back to back, its activations never
leaving it, and its backward pass runs there as one pass when the chain's
end is needed. Anything else done with a remote tensor (an op, a method,
.shape, passing it to a module elsewhere) fetches its value first, which
then stands in for it.

Autograd: a call made with a reply, and a fetch, are a _RemoteCall node
whose inputs are the tensors sent as data to the owner anywhere in the
chain behind it (the chain's leaves). Its backward sends the output
gradients and gets the gradients of those leaves: the owner's backward runs
through the whole chain, which is held in its own autograd graph.

Any call that returns anything else (numbers, strings), a module whose
structure has varied, and every call with SMP_SERVER_ASYNC=0 waits for its
outputs as before. A module whose output, once predicted, has another
structure fails the step with an error naming it.
"""

import os
import pickle

import torch

from ._errors import SmpError
from .pytree import _Leaf, flatten, leaf_count, unflatten

ASYNC = os.environ.get("SMP_SERVER_ASYNC", "1") != "0"
_INVALID = -1


def predictable(spec):
    """Whether an output structure holds only tensors, containers and None
    (so that it can be handed out before the owner has run)."""
    if isinstance(spec, _Leaf) or spec is None:
        return True
    if isinstance(spec, (list, tuple)):
        return all(predictable(s) for s in spec)
    if isinstance(spec, dict):
        return all(predictable(s) for s in spec.values())
    return False


class CallRecord:
    """One call this rank made (caller side). `sent`: the tensors that went
    as data; `parents`: the records whose outputs went as references;
    `value`: the output leaves once fetched (or replied)."""

    __slots__ = ("owner", "cid", "name", "sent", "parents", "grad_enabled", "spec", "value",
                 "error", "step")

    def __init__(self, step, owner, cid, name, sent, parents, grad_enabled, spec=None):
        self.step = step  # call ids restart every step
        self.owner, self.cid, self.name = owner, cid, name
        self.sent, self.parents = sent, parents
        self.grad_enabled = grad_enabled
        self.spec = spec
        self.value = None
        self.error = None

    def chain(self):
        """(cid, index, tensor) of every gradient-carrying tensor sent as
        data by this call and the calls behind it, in (cid, index) order."""
        if not self.grad_enabled:
            return []
        out, seen, stack = [], set(), [self]
        while stack:
            r = stack.pop()
            if id(r) in seen:
                continue
            seen.add(id(r))
            out += [(r.cid, i, t) for i, t in enumerate(r.sent) if t.requires_grad]
            stack.extend(r.parents)
        out.sort(key=lambda x: (x[0], x[1]))
        return out


class RemoteTensor(torch.Tensor):
    """Output `leaf` of an unanswered call `record`. Any torch function,
    method or attribute fetches the value and runs on it instead."""

    @staticmethod
    def __new__(cls, server, record, leaf):
        t = torch.Tensor._make_subclass(cls, torch.zeros(()), False)
        t._smp_server, t._smp_record, t._smp_leaf = server, record, leaf
        return t

    def smp_value(self):
        return self._smp_server.fetch(self._smp_record)[self._smp_leaf]

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        args = resolve(args)
        kwargs = resolve(kwargs or {})
        with torch._C.DisableTorchFunction():
            return func(*args, **kwargs)


def resolve(obj):
    """obj with every remote tensor in it (nested in tuples, lists, dicts)
    replaced by its value."""
    if isinstance(obj, RemoteTensor):
        return obj.smp_value()
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        if not any(isinstance(o, (RemoteTensor, list, tuple, dict)) for o in obj):
            return obj
        return type(obj)(resolve(o) for o in obj)
    if isinstance(obj, tuple):
        return type(obj)(*(resolve(o) for o in obj))
    if isinstance(obj, dict):
        return type(obj)((k, resolve(v)) for k, v in obj.items())
    return obj


_FUNCTION_APPLY = torch._C._FunctionBase.__dict__["apply"]


def _apply_resolved(cls, *args, **kwargs):
    # A custom autograd.Function does not go through __torch_function__: a
    # remote tensor handed to it would enter its forward as a placeholder
    # and its backward would end there, cutting the gradient to the stage
    # that owns the value. Its value goes in instead.
    if any(isinstance(a, RemoteTensor) for a in args):
        args = tuple(a.smp_value() if isinstance(a, RemoteTensor) else a for a in args)
    return _FUNCTION_APPLY.__get__(None, cls)(*args, **kwargs)


def resolve_function_inputs():
    """Makes every torch.autograd.Function.apply take remote tensors'
    values (installed once, when a model spans several stages)."""
    if not isinstance(torch.autograd.Function.__dict__.get("apply"), classmethod):
        torch.autograd.Function.apply = classmethod(_apply_resolved)


class RemoteCall(torch.autograd.Function):
    """A call answered with its outputs (or a fetch of an earlier call's).
    Inputs: the server, the record, what to send (kind, meta, tensors), an
    anchor that requires grad (so the outputs do whenever grad is on, even
    for integer inputs: the owner's parameters need their gradients), then
    the chain's leaves. Outputs: a token, then the result's tensor leaves."""

    @staticmethod
    def forward(ctx, server, record, kind, meta, tensors, anchor, *leaves):
        cid = record.cid if kind == server.FWD_REQ else server.next_cid()
        _, rmeta, outs = server.call(record.owner, kind, meta, tensors, cid=cid)
        record.spec, record.value = rmeta["spec"], outs
        ctx.server, ctx.record = server, record
        ctx.chain = [(c, i) for c, i, _ in record.chain()]
        ctx.mark_non_differentiable(*[o for o, g in zip(outs, rmeta["grad"]) if not g])
        ctx.set_materialize_grads(False)
        return (anchor.detach().clone(),) + tuple(outs)

    @staticmethod
    def backward(ctx, _token, *grads):
        server, record = ctx.server, ctx.record
        server.require_model_backward()
        mask = [g is not None for g in grads]
        meta = {"root": record.cid, "mask": mask, "leaves": ctx.chain}
        _, rmeta, gin = server.call(record.owner, server.BWD_REQ, meta,
                                    [g.contiguous() for g in grads if g is not None],
                                    cid=server.next_cid())
        it = iter(gin)
        out = [next(it) if has else None for has in rmeta["has"]]
        return (None,) * 6 + tuple(out)


class Caller:
    """The caller's side of the server: the calls this rank made in the
    step, the output structures it has learnt, and the unanswered calls."""

    def __init__(self, server):
        self.server = server
        self.learnt = {}   # module name -> pickled output structure, or False
        self.step = 0
        self.reset()

    def reset(self):
        self.step += 1
        self.unanswered = {}  # (owner, cid) -> (task, record) of a call that did not wait

    def call(self, owner, name, args, kwargs):
        s = self.server
        leaves = []
        spec = flatten((args, kwargs), leaves)
        sent, parents, where = [], [], []
        for t in leaves:
            if (isinstance(t, RemoteTensor) and t._smp_record.owner == owner
                    and t._smp_record.value is None and t._smp_record.step == self.step):
                parents.append(t._smp_record)
                where.append(("r", t._smp_record.cid, t._smp_leaf))
            else:
                where.append(("d", len(sent)))
                sent.append(resolve(t))
        grad = torch.is_grad_enabled()
        meta = {"name": name, "spec": spec, "where": where,
                "grad": [t.requires_grad for t in sent], "grad_enabled": grad}
        expect = self.learnt.get(name) if ASYNC else None
        task = s.current
        if task is None:
            raise SmpError(_INVALID, "a module of another pipeline stage was called outside "
                                     "an smp.step")
        if expect:
            cid = s.next_cid()
            meta["expect"] = expect
            record = CallRecord(self.step, owner, cid, name, sent, parents, grad,
                                spec=pickle.loads(expect))
            s.send_call(owner, cid, meta, sent)
            self.unanswered[(owner, cid)] = (task, record)
            task.unanswered += 1
            return unflatten(record.spec, [RemoteTensor(s, record, i)
                                           for i in range(leaf_count(record.spec))])
        record = CallRecord(self.step, owner, s.next_cid(), name, sent, parents, grad)
        outs = RemoteCall.apply(s, record, s.FWD_REQ, meta, sent, s.anchor,
                                *[t for _, _, t in record.chain()])
        self.learn(name, record.spec)
        return unflatten(record.spec, list(outs[1:]))

    def learn(self, name, spec):
        if self.learnt.get(name) is False:
            return
        if not predictable(spec):
            self.learnt[name] = False
            return
        blob = pickle.dumps(spec)
        self.learnt[name] = blob if self.learnt.get(name, blob) == blob else False

    def fetch(self, record):
        """The output leaves of a call that did not wait (fetched once)."""
        if record.value is None:
            s = self.server
            if record.step != self.step:
                raise SmpError(_INVALID, f"an output of module '{record.name}' kept from an "
                                         "earlier smp.step was used: it was never fetched "
                                         "there, and its stage has dropped it")
            if record.error is not None:
                raise SmpError(*record.error)
            with torch.set_grad_enabled(record.grad_enabled):
                outs = RemoteCall.apply(s, record, s.FETCH, {"ref": record.cid}, [], s.anchor,
                                        *[t for _, _, t in record.chain()])
            record.value = list(outs[1:])
        return record.value

    def answered(self, owner, cid, error):
        """A call that did not wait has been answered (error: (status,
        message) or None); returns its task if that task now waits for
        nothing more and is parked in settle()."""
        task, record = self.unanswered.pop((owner, cid), (None, None))
        if task is None:
            return None
        task.unanswered -= 1
        if error is not None:
            record.error = error
            self.learnt[record.name] = False  # a mismatch, say: wait for it from now on
            task.call_error = task.call_error or error
        return task if task.settling and task.unanswered == 0 else None

    def settle(self, task):
        """From a task: waits until every call it made without waiting has
        been answered; raises the first one's error."""
        while task.unanswered:
            task.settling = True
            task.park()
        task.settling = False
        if task.call_error is not None:
            raise SmpError(*task.call_error)
