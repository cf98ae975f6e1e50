"""smp.delay_param_initialization: build a model without allocating it.

Inside the context every tensor a module's constructor creates lives on the
meta device (shapes and dtypes, no memory), and every operation on those
tensors is recorded in order: the factories, nn.init's functions, in-place
fills, copies. Once DistributedModel has partitioned the model, each rank
replays the record and keeps only what it owns (its pipeline stage, its
tensor-parallel shard). The replay runs every recorded operation in its
original order from the random state the build started with, so each
parameter gets exactly the values an eager build from the same seed gives
it (the CPU random stream of the whole model is drawn; that costs time,
not memory). A tensor is allocated only while its value is still needed:
an operation that overwrites a whole tensor (normal_, kaiming_uniform_,
zero_, copy_ ...) whose result is overwritten again before anything reads
it runs on a scratch tensor freed at once. So a model whose parent
re-initializes its children's weights after building them (GPT-style)
never holds more than the rank's own tensors plus one tensor in flight.

Leaving the context replays the record once, keeping nothing, so that the
random generator ends where an eager build leaves it.
"""

import contextlib

import torch
from torch.overrides import TorchFunctionMode

from ._errors import SmpError

_INVALID = -1

# Top-level functions that create a tensor from nothing (a device argument).
_FACTORIES = {
    "empty", "zeros", "ones", "full", "rand", "randn", "randint", "randperm", "arange",
    "linspace", "logspace", "eye", "tensor", "as_tensor", "empty_strided", "normal",
    "scalar_tensor", "tril_indices", "triu_indices", "bartlett_window", "hann_window",
    "hamming_window", "blackman_window", "kaiser_window",
}
# In-place operations whose result does not depend on the tensor's former
# values: the tensor (first argument) is overwritten whole.
_OVERWRITES = {
    "uniform_", "normal_", "fill_", "zero_", "random_", "exponential_", "cauchy_",
    "log_normal_", "geometric_", "copy_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "trunc_normal_", "orthogonal_", "sparse_",
}
# Full aliases: the same values under another Python object.
_ALIASES = {"detach", "detach_"}


def _name(func):
    return getattr(func, "__name__", "")


def _is_data_getter(func):
    return _name(func) == "__get__" and getattr(getattr(func, "__self__", None), "__name__",
                                                "") == "data"


class _Ref:
    """A recorded tensor in an argument list."""
    __slots__ = ("tid",)

    def __init__(self, tid):
        self.tid = tid


def _flat(obj, out):
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _flat(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flat(o, out)
    return out


def _sub(obj, fn):
    if isinstance(obj, (torch.Tensor, _Ref)):
        return fn(obj)
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_sub(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_sub(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _sub(v, fn) for k, v in obj.items()}
    return obj


class _Op:
    __slots__ = ("func", "args", "kwargs", "grad", "outs", "access", "factory")

    def __init__(self, func, args, kwargs, grad, outs, access, factory):
        self.func, self.args, self.kwargs, self.grad = func, args, kwargs, grad
        self.outs = outs        # recorded output tensor ids, in flattened order
        self.access = access    # [(root id, "def" | "over" | "read")]
        self.factory = factory  # a factory: its device is the one asked for


class Record:
    """What one delay_param_initialization block built."""

    def __init__(self):
        self.ops = []
        self.tensors = {}    # id -> meta tensor (held, so ids stay unique)
        self.root = {}       # id -> (root id, full alias?)
        self.meta = {}       # root id -> (shape, dtype, requested device)
        self.rng = None
        self.cuda_rng = None

    # ---- recording ----
    def track(self, t, root=None, full=True):
        self.tensors[id(t)] = t
        if root is None:
            self.root[id(t)] = (id(t), True)
        else:
            r, rfull = self.root[root]
            self.root[id(t)] = (r, full and rfull)

    def tracked(self, t):
        return isinstance(t, torch.Tensor) and id(t) in self.root

    def call(self, func, args, kwargs):
        name = _name(func)
        ins = [t for t in _flat((args, kwargs), []) if self.tracked(t)]
        if not ins and name in _FACTORIES:
            device = kwargs.get("device")
            if device is None or torch.device(device).type != "meta":
                out = func(*args, **dict(kwargs, device="meta"))
                self._log(func, args, kwargs, [], [out], factory=True, device=device)
                return out
        if not ins:
            return func(*args, **kwargs)
        try:
            out = func(*args, **kwargs)
        except (NotImplementedError, RuntimeError) as e:
            raise SmpError(_INVALID, f"smp.delay_param_initialization: the model's constructor "
                                     f"calls {name}, which needs the values of an unallocated "
                                     f"parameter ({e}); build that module outside the "
                                     "context") from None
        outs = _flat(out, [])
        if not outs and out is not None:
            return out  # metadata (size, dim, dtype): nothing to replay
        # (None: a mutation such as __setitem__, replayed as a read-write)
        if _is_data_getter(func) or name in _ALIASES:
            for o in outs:
                if not self.tracked(o):
                    self.track(o, id(ins[0]), full=True)
            return out
        self._log(func, args, kwargs, ins, outs)
        return out

    def _log(self, func, args, kwargs, ins, outs, factory=False, device=None):
        name = _name(func)
        access = []
        first = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
        for t in ins:
            r, full = self.root[id(t)]
            kind = "over" if (t is first and full and name in _OVERWRITES) else "read"
            access.append((r, kind))
        for o in outs:
            if self.tracked(o):
                continue  # in place: the same tensor
            if o._base is not None and self.tracked(o._base):
                self.track(o, id(o._base), full=False)  # a view: accesses read its root
            else:
                self.track(o)
                self.meta[id(o)] = (tuple(o.shape), o.dtype, device)
                access.append((id(o), "def"))
        self.ops.append(_Op(func, _sub(args, self._ref), _sub(kwargs, self._ref),
                            torch.is_grad_enabled(), [id(o) for o in outs], access, factory))

    def _ref(self, t):
        if self.tracked(t):
            return _Ref(id(t))
        return t

    def call_rng(self, func, args):
        """torch.manual_seed / get_rng_state / set_rng_state inside the
        block: run now and recorded, so that the replay seeds, saves and
        restores the generator at the same points as the build did."""
        out = func(*args)
        ins = [a for a in args if self.tracked(a)]
        outs = [out] if isinstance(out, torch.Tensor) else []
        self._log(func, args, {}, ins, outs)
        return out

    def alias_parameter(self, param, data):
        if self.tracked(data):
            self.track(param, id(data), full=True)

    # ---- replay ----
    def replay(self, keep=(), on_final=None, device=None):
        """Runs the record from the random state the build started with
        (the generators are left where an eager build leaves them).
        keep: root ids whose final tensors are returned; on_final(root id,
        tensor) sees every root's final value once (to slice tensor-parallel
        shards from it). Factories that asked for no device allocate on
        `device`. Returns ({root id: tensor}, peak bytes live at once)."""
        keep = set(keep)
        nxt = self._next_access()
        views = {}
        for tid, (r, full) in self.root.items():
            if tid != r:
                views.setdefault(r, []).append(tid)
        real = {}     # tensor id -> real tensor (roots, and views of live roots)
        live = {}     # root id -> bytes
        peak = 0

        def resolve(ref):
            if not isinstance(ref, _Ref):
                return ref
            if ref.tid in real:
                return real[ref.tid]
            r, full = self.root[ref.tid]
            if full and r in real:
                return real[r]
            raise SmpError(_INVALID, "smp.delay_param_initialization: the replay lost a "
                                     "tensor it still needed (an smp bug)")

        def drop(r):
            real.pop(r, None)
            live.pop(r, None)
            for tid in views.get(r, ()):
                real.pop(tid, None)

        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        for i, op in enumerate(self.ops):
            for r, kind in op.access:
                if kind == "over" and r not in real:
                    shape, dtype, dev = self.meta[r]
                    real[r] = torch.empty(shape, dtype=dtype, device=dev or device)
            args, kwargs = _sub(op.args, resolve), _sub(op.kwargs, resolve)
            if op.factory:
                kwargs = dict(kwargs, device=self.meta[op.outs[0]][2] or device)
            with torch.set_grad_enabled(op.grad):
                out = op.func(*args, **kwargs)
            for tid, o in zip(op.outs, _flat(out, [])):
                real.setdefault(tid, o)
            for r, _ in op.access:
                if r in real:
                    live[r] = real[r].numel() * real[r].element_size()
            peak = max(peak, sum(live.values()))
            for r, _ in op.access:
                after = nxt[(i, r)]
                if after is None and on_final is not None and r in real:
                    on_final(r, real[r])
                if after == "over" or (after is None and r not in keep):
                    drop(r)
        return {r: real[r] for r in keep if r in real}, peak

    def _next_access(self):
        """(op index, root) -> how the next op that touches that root
        touches it ("def", "over", "read"), or None after the last."""
        nxt, upcoming = {}, {}
        for i in range(len(self.ops) - 1, -1, -1):
            kinds = {}
            for r, kind in self.ops[i].access:
                kinds[r] = "read" if "read" in (kind, kinds.get(r)) else kinds.get(r, kind)
            for r in kinds:
                nxt[(i, r)] = upcoming.get(r)
            upcoming.update(kinds)
        return nxt

    def root_of(self, t):
        return self.root[id(t)][0] if self.tracked(t) else None


class _Mode(TorchFunctionMode):
    def __init__(self, record):
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self.record.call(func, args, kwargs or {})


@contextlib.contextmanager
def delay_param_initialization(enabled=True):
    """Modules built inside are not allocated; smp.DistributedModel
    materializes each rank's own part after partitioning (values as in an
    eager build from the same seed)."""
    if not enabled:
        yield
        return
    record = Record()
    record.rng = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        record.cuda_rng = torch.cuda.get_rng_state_all()
    original_new = torch.nn.Parameter.__new__

    def new(cls, data=None, requires_grad=True):
        p = original_new(cls, data, requires_grad)
        if data is not None:
            record.alias_parameter(p, data)
        return p

    torch.nn.Parameter.__new__ = new
    patched = []
    for owner in (torch, torch.random):
        for fname in ("manual_seed", "get_rng_state", "set_rng_state"):
            original = getattr(owner, fname)
            patched.append((owner, fname, original))
            setattr(owner, fname,
                    lambda *a, _f=original: record.call_rng(_f, a))
    ok = False
    try:
        with _Mode(record):
            yield
        ok = True
    finally:
        torch.nn.Parameter.__new__ = original_new
        for owner, fname, original in patched:
            setattr(owner, fname, original)
        _records.append(record)
        if ok:
            # Leave the random generators where an eager build leaves them.
            record.replay()


_records = []
_until_wrapped = []  # the context config delayed_parameter_initialization opened


def begin_until_wrapped():
    """Config key delayed_parameter_initialization: smp.init opens the
    context, smp.DistributedModel closes it (end_until_wrapped)."""
    if not _until_wrapped:
        ctx = delay_param_initialization()
        ctx.__enter__()
        _until_wrapped.append(ctx)


def end_until_wrapped():
    if _until_wrapped:
        _until_wrapped.pop().__exit__(None, None, None)


def record_of(t):
    """The Record that built meta tensor t (None for an ordinary tensor)."""
    for rec in reversed(_records):
        if rec.tracked(t):
            return rec
    return None


def is_unallocated(module):
    return any(t.is_meta for t in module.parameters()) or any(
        t.is_meta for t in module.buffers())


def materialize(module, own, device):
    """Gives the module's meta parameters and buffers real storage: those
    whose id is in `own` get their values (a tensor-parallel shard made by
    tensor_parallel.shard_parameter gets its slice of its source's value),
    the others an empty tensor. Parameters are replaced by new Parameter
    objects (a meta tensor cannot take real data in place) keeping their
    attributes; returns ({id(old): new} for parameters, peak bytes that the
    replays held at once)."""
    from .tensor_parallel import shard_dim
    params = {}
    for m in module.modules():
        for k, p in m._parameters.items():
            if p is not None and p.is_meta:
                params[id(p)] = p
    buffers = [(m, k, b) for m in module.modules() for k, b in m._buffers.items()
               if b is not None and b.is_meta]
    # What each record must hand back: root -> [(consumer, TP slicing or None)]
    wants = {}
    for p in params.values():
        if id(p) not in own:
            continue
        src = getattr(p, "_smp_source", None)
        t, cut = (src[0], src[1:]) if src is not None else (p, None)
        rec = record_of(t)
        if rec is None or not rec.root[id(t)][1]:
            raise SmpError(_INVALID, f"smp.delay_param_initialization: a parameter of shape "
                                     f"{tuple(p.shape)} was not built inside the context (or "
                                     "is a slice of another tensor); it cannot be materialized")
        wants.setdefault(rec, {}).setdefault(rec.root_of(t), []).append((id(p), cut))
    for _, _, b in buffers:
        if id(b) in own:
            rec = record_of(b)
            if rec is None or not rec.root[id(b)][1]:
                raise SmpError(_INVALID, "smp.delay_param_initialization: a buffer of shape "
                                         f"{tuple(b.shape)} was not built inside the context")
            wants.setdefault(rec, {}).setdefault(rec.root_of(b), []).append((id(b), None))
    values, peak = {}, 0
    rng = torch.get_rng_state()
    cuda_rng = (torch.cuda.get_rng_state_all()
                if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    try:
        for rec, roots in wants.items():
            def on_final(r, t, roots=roots):
                for tid, cut in roots.get(r, ()):
                    values[tid] = (t if cut is None else
                                   shard_dim(t.detach(), cut[0], cut[1], cut[2]))
            _, p = rec.replay(keep=(), on_final=on_final, device=device)
            peak = max(peak, p)
    finally:
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    replaced = {}
    for pid, p in params.items():
        data = values.get(pid)
        if data is None:
            data = torch.empty(0, dtype=p.dtype, device=device)
        # .to: a cast after the build (config fp16/bf16) is not in the record
        new = torch.nn.Parameter(data.detach().to(p.dtype), requires_grad=p.requires_grad)
        new.__dict__.update({k: v for k, v in p.__dict__.items() if k != "_smp_source"})
        replaced[pid] = new
    for m in module.modules():
        for k, p in m._parameters.items():
            if p is not None and id(p) in replaced:
                m._parameters[k] = replaced[id(p)]
    for m, k, b in buffers:
        data = values.get(id(b))
        m._buffers[k] = (data.detach().to(b.dtype) if data is not None
                         else torch.empty(0, dtype=b.dtype, device=device))
    return replaced, peak


@contextlib.contextmanager
def zeros_while_running(module):
    """For tracing an unallocated model on real inputs: each module's own
    meta parameters and buffers are zeros while its forward runs (one
    module's at a time along the call path), meta again afterwards."""
    saved = {}

    def pre(m, inputs):
        swap = []
        for table in (m._parameters, m._buffers):
            for k, t in table.items():
                if t is not None and t.is_meta:
                    z = torch.zeros(t.shape, dtype=t.dtype)
                    table[k] = (torch.nn.Parameter(z, requires_grad=t.requires_grad)
                                if isinstance(t, torch.nn.Parameter) else z)
                    swap.append((table, k, t))
        saved.setdefault(id(m), []).append(swap)

    def post(m, inputs, output):
        for table, k, t in saved[id(m)].pop():
            table[k] = t

    handles = []
    for m in module.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for stack in saved.values():  # a forward that raised
            for swap in stack:
                for table, k, t in swap:
                    table[k] = t
