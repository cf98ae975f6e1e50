"""Activation checkpointing and activation offloading (SageMaker v1's
smp.set_activation_checkpointing and config keys offload_activations,
activation_loading_horizon).

Checkpointing. A checkpointed call (a *region*) keeps only its inputs for
the backward pass: every tensor its forward saves for backward is replaced
by a placeholder (torch.autograd.graph.saved_tensors_hooks), and the first
time the backward pass needs one, the region's forward runs again from its
inputs, with the random state it had in the forward (dropout draws the same
masks) and the same autocast state, and the tensors it saves are the ones
handed back. This is PyTorch 1.13's non-reentrant torch.utils.checkpoint
(its helpers are used for the device random state), written out so that
the inputs live in an object that can be moved to host memory and back and
so that a region can be called remotely: the forward of a marked module is
replaced at marking time by one that runs it as a region, so both the
pipeline router (a call on this stage) and the execution server (a call
from another stage: it runs the module's own forward) run it checkpointed.

- Regions are not nested: inside a region's forward (or its recomputation)
  a marked module runs plainly (the outer region covers it).
- A region never gives the rank to another task: its inputs are fetched
  (remote tensors resolved) before it starts, the router does not yield
  inside it (in_region()), and every module in it must live on its stage
  (checked after partitioning, check_plan): another microbatch's forward
  running in the middle would draw random numbers the recomputation would
  not see, and a recomputation inside the backward pass must not make
  calls to other stages.
- nn.Sequential strategies: "each" marks every child; "contiguous" runs of
  children on one stage and "group_N" runs of N children are one region
  each. The Sequential's forward calls a run's first child with a hidden
  keyword (_smp_ckpt_group=(first, end)); that child's forward, wherever it
  lives, runs the whole run as one region there. nn.ModuleList: "each" only
  (its parent's code calls the children one by one).

Offloading (smp.init({"offload_activations": True, "microbatches": M > 1,
"activation_loading_horizon": H})). When a region's forward ends in a
microbatch task of the execution server, the Offloader either keeps its
inputs (its microbatch is in the window: the microbatch whose backward
pass began last on this rank, or the first due before any, and the H
after it in the backward order) or copies them to host memory (pinned,
on a copy stream, asynchronously, on CUDA; a host copy on the CPU, so
that the logic runs and is tested everywhere) and drops the device copy.
When a microbatch's backward pass begins on this rank (a server pass
listener), the window moves and its offloaded regions are prefetched (a
host-to-device copy on the copy stream; the recomputation waits on its
event): H microbatches ahead of their backward passes. The backward order
is the schedule's ('simple': the last microbatch, then the others oldest
first; 'interleaved': oldest first), or the order the last step with the
same expectation ran. A region whose inputs were not prefetched in time
loads them when it recomputes. `Offloader.log` records what happened, in
order, for the tests. (SageMaker offloads on tp_rank 0 only; here every
rank offloads its own.)
"""

import os
import threading
import weakref

import torch
import torch.utils.checkpoint as _tuc

import smp
from ._errors import SmpError
from .pytree import flatten, unflatten
from .remote import resolve

_INVALID, _UNSUPPORTED = -1, -3
_GROUP_KW = "_smp_ckpt_group"
_VERIFY = os.environ.get("SMP_CHECKPOINT_VERIFY", "0") != "0"

_tls = threading.local()  # depth: regions being run or recomputed on this thread
# Regions run and recomputed by this process (tests, benchmarks).
counts = {"regions": 0, "recomputed": 0}


def in_region():
    """Whether this thread is inside a checkpointed region's forward or its
    recomputation (the router must not yield there)."""
    return getattr(_tls, "depth", 0) > 0


class _Depth:
    """Inside a region (its name innermost last) on this thread."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _tls.depth = getattr(_tls, "depth", 0) + 1
        _tls.names = getattr(_tls, "names", []) + [self.name]

    def __exit__(self, *exc):
        _tls.depth -= 1
        _tls.names = _tls.names[:-1]
        return False


def remote_in_region(callee, stage):
    """The error of a call to another stage from inside a region."""
    region = _tls.names[0] if getattr(_tls, "names", None) else "?"
    return (f"checkpointed module {region!r} calls module {callee!r}, which lives on pipeline "
            f"stage {stage}: a checkpointed module must not call modules of another stage "
            "(its forward is run again inside the backward pass); place them on one stage or "
            "checkpoint a smaller module")


# ---- marking ----

class _Mark:
    """Options of a marked module (in its __dict__, not a submodule)."""

    __slots__ = ("preserve_rng_state", "pack_args_as_tuple", "strategy", "group_n", "groups",
                 "name")

    def __init__(self, preserve_rng_state, pack_args_as_tuple, strategy=None, group_n=0):
        self.preserve_rng_state = bool(preserve_rng_state)
        self.pack_args_as_tuple = bool(pack_args_as_tuple)
        self.strategy, self.group_n = strategy, group_n
        self.groups = None  # Sequential: [(first, end)], fixed once partitioned
        self.name = None    # its name in the DistributedModel, once partitioned


def _parse_strategy(strategy):
    if strategy in ("each", "contiguous"):
        return strategy, 0
    if isinstance(strategy, str) and strategy.startswith("group_"):
        n = strategy[len("group_"):]
        if n.isdigit() and int(n) >= 1:
            return "group", int(n)
    raise SmpError(_INVALID, f"smp.set_activation_checkpointing: strategy {strategy!r}: "
                             "'each', 'contiguous' or 'group_N' (N >= 1)")


def set_activation_checkpointing(module, preserve_rng_state=True, pack_args_as_tuple=False,
                                 strategy="each"):
    """Recompute `module`'s forward in the backward pass instead of keeping
    what it saves (SageMaker's signature). For an nn.Sequential or
    nn.ModuleList, `strategy` says which of its children form one
    checkpoint: "each" (every child alone), "contiguous" (runs of children
    on one pipeline stage; nn.Sequential only), "group_N" (runs of N
    children; nn.Sequential only); other modules ignore it. A checkpointed
    module must sit on one pipeline stage (an error at the first step
    otherwise). Call it before the first smp.step. pack_args_as_tuple is
    accepted for compatibility: any nesting of arguments is kept as it is."""
    if not isinstance(module, torch.nn.Module):
        raise SmpError(_INVALID, "smp.set_activation_checkpointing takes a torch.nn.Module, "
                                 f"not {type(module).__name__}")
    kind, n = _parse_strategy(strategy)
    from .model import DistributedModel, active_model
    if isinstance(module, DistributedModel):
        module = module.module
    model = active_model()
    if model is not None and model._owner is not None and any(
            m is module for m in model.module.modules()):
        raise SmpError(_INVALID, "smp.set_activation_checkpointing: the model is already "
                                 "partitioned; call it before the first smp.step")
    if isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
        children = list(module)
        if kind == "each":
            for c in children:
                _mark(c, _Mark(preserve_rng_state, pack_args_as_tuple))
            return
        if isinstance(module, torch.nn.ModuleList):
            raise SmpError(_INVALID, f"smp.set_activation_checkpointing: strategy {strategy!r} "
                                     "needs an nn.Sequential: an nn.ModuleList is called child "
                                     "by child by its parent's code (use 'each')")
        mark = _Mark(preserve_rng_state, pack_args_as_tuple, kind, n)
        module.__dict__["_smp_ckpt_seq"] = mark
        _patch(module)
        for c in children:
            c.__dict__["_smp_ckpt_parent"] = module  # not a submodule: in __dict__
            _patch(c)  # a run's first child runs the run
        return
    _mark(module, _Mark(preserve_rng_state, pack_args_as_tuple))


def _mark(module, mark):
    module.__dict__["_smp_ckpt"] = mark
    _patch(module)


def _patch(module):
    import types
    d = module.__dict__
    if "_smp_ckpt_patched" in d:
        return
    d["_smp_ckpt_patched"] = True
    if "forward" in d:  # an instance forward someone set before: it is what runs
        d["_smp_inner"] = d["forward"]
    d["forward"] = types.MethodType(_forward, module)


def _inner(module):
    f = module.__dict__.get("_smp_inner")
    return f if f is not None else type(module).forward.__get__(module)


def _tracing():
    from .model import active_model
    m = active_model()
    return m is not None and m._tracing


def _plain():
    return not torch.is_grad_enabled() or in_region() or _tracing()


def _forward(self, *args, **kwargs):
    """The forward of every module set_activation_checkpointing touched."""
    group = kwargs.pop(_GROUP_KW, None)
    d = self.__dict__
    if group is not None:
        return _run_group(self, group, args, kwargs)
    mark = d.get("_smp_ckpt")
    if mark is not None and not _plain():
        return checkpoint(_inner(self), args, kwargs, mark.preserve_rng_state,
                          name=mark.name or type(self).__name__)
    seq = d.get("_smp_ckpt_seq")
    if seq is not None and not _plain() and len(args) == 1 and not kwargs:
        x = args[0]
        children = list(self)
        for first, end in _groups(seq, len(children)):
            x = children[first](x, **{_GROUP_KW: (first, end)})
        return x
    return _inner(self)(*args, **kwargs)


# Pickled, a bound method is getattr(its object, its name): unpickled, a
# marked module gets its class's forward back (and is no longer marked).
_forward.__name__ = "forward"


def _run_group(child, group, args, kwargs):
    """Children [first, end) of the Sequential whose first child is
    `child`, as one region (on the stage they live on)."""
    first, end = group
    parent = child.__dict__.get("_smp_ckpt_parent")
    seq = parent.__dict__["_smp_ckpt_seq"] if parent is not None else None
    children = list(parent) if parent is not None else [child]

    def body(*a, **kw):
        x = _inner(child)(*a, **kw)
        for c in children[first + 1:end]:
            x = c(x)
        return x
    if _plain():
        return body(*args, **kwargs)
    name = seq.name if seq is not None and seq.name is not None else "Sequential"
    return checkpoint(body, args, kwargs, seq.preserve_rng_state if seq else True,
                      name=f"{name}[{first}:{end}]")


def _groups(mark, n):
    if mark.groups is not None:
        return mark.groups
    if mark.strategy == "group":
        return [(i, min(i + mark.group_n, n)) for i in range(0, n, mark.group_n)]
    return [(0, n)] if n else []  # contiguous, not partitioned: one stage


# ---- the check after partitioning ----

def check_plan(root, owner, cfg):
    """This rank's error in words (or None) for the partition `owner`
    ({module name: stage}) of the model `root`: a checkpointed module or
    run spanning stages, offloading without checkpointing or with one
    microbatch. Fixes the Sequential runs and names regions."""
    stages = {}
    for name, st in owner.items():
        parts = name.split(".") if name else []
        for k in range(len(parts) + 1):
            stages.setdefault(".".join(parts[:k]), set()).add(st)
    any_marked = False
    for name, m in root.named_modules():
        d = m.__dict__
        shown = f"module {name!r}" if name else f"the model's root module ({type(m).__name__})"
        mark = d.get("_smp_ckpt")
        if mark is not None:
            any_marked = True
            mark.name = name or type(m).__name__
            st = sorted(stages.get(name, ()))
            if len(st) > 1:
                return (f"smp.set_activation_checkpointing: {shown} spans pipeline "
                        f"stages {', '.join(map(str, st))}; a checkpointed module must sit on "
                        "one stage (pin it with smp.partition, or checkpoint its children)")
        seq = d.get("_smp_ckpt_seq")
        if seq is not None:
            any_marked = True
            seq.name = name or type(m).__name__
            kids = [f"{name}.{k}" if name else k for k in m._modules]
            where = [sorted(stages.get(k, ())) for k in kids]
            if seq.strategy == "contiguous":
                groups, start = [], 0
                for i, st in enumerate(where):
                    if len(st) > 1:
                        return (f"smp.set_activation_checkpointing: module {kids[i]!r} (a "
                                f"child of {shown}, strategy 'contiguous') spans pipeline "
                                f"stages {', '.join(map(str, st))}; a checkpointed run must "
                                "sit on one stage")
                    if i > start and st != where[start]:
                        groups.append((start, i))
                        start = i
                if kids:
                    groups.append((start, len(kids)))
            else:
                groups = [(i, min(i + seq.group_n, len(kids)))
                          for i in range(0, len(kids), seq.group_n)]
                for a, b in groups:
                    st = sorted(set().union(*where[a:b]))
                    if len(st) > 1:
                        return (f"smp.set_activation_checkpointing: modules "
                                f"{kids[a]!r}..{kids[b - 1]!r} (one group_{seq.group_n} "
                                f"checkpoint of {shown}) span pipeline stages "
                                f"{', '.join(map(str, st))}; a checkpointed run must sit on "
                                "one stage")
            seq.groups = groups
    if cfg.offload_activations:
        if not any_marked:
            return ("offload_activations needs activation checkpointing: no module of the model "
                    "is checkpointed (smp.set_activation_checkpointing)")
        if cfg.microbatches < 2:
            return ("offload_activations needs microbatches > 1 (it overlaps one microbatch's "
                    "copies with another's work); microbatches is 1")
    return None


def after_partition(model):
    """Collective over WORLD (every rank, right after the plan is applied):
    raises SmpError on every rank where any rank's check_plan failed."""
    from .model import agree
    error = None
    try:
        error = check_plan(model.module, model._owner, smp.config())
    except SmpError as e:
        error = e.message
    agree(error)


# ---- regions ----

class _Holder:
    """What autograd keeps for a tensor a region saved."""
    __slots__ = ("__weakref__",)


_DEVICE, _OFFLOADED, _PREFETCHED, _DONE = range(4)


class Region:
    """One checkpointed call: its inputs (on the device, or offloaded), the
    state to replay, and once recomputed the tensors autograd asks for."""

    def __init__(self, fn, preserve_rng_state, name):
        self.fn, self.preserve, self.name = fn, preserve_rng_state, name
        self.state = _DEVICE
        self.inputs = None      # detached input tensors while on the device
        self.host = None        # their host copies while offloaded
        self.event = None       # CUDA: the copy's completion
        self.mb, self.seq = -1, -1
        self.holders = []       # weak references, in the order the forward saved
        self.storage = weakref.WeakKeyDictionary()
        self.recomputed = False
        self.digest = None
        self.handles = []       # meter handles of what it holds on the device
        self.origin = None      # per input: the device it goes back to, or None (stays)

    # -- forward --
    def run(self, args, kwargs):
        counts["regions"] += 1
        leaves = []
        self.spec = flatten((args, kwargs), leaves)
        self.inputs = [t.detach() for t in leaves]
        self.grads = [t.requires_grad for t in leaves]
        self.versions = [t._version for t in leaves]
        self.devices = sorted({t.device for t in leaves if t.is_cuda}, key=str)
        if self.preserve:
            self.cpu_rng = torch.get_rng_state()
            self.had_cuda = torch.cuda._initialized
            if self.had_cuda:
                self.gpu_devices, self.gpu_states = _tuc.get_device_states(*leaves)
        self.autocast = _tuc._get_autocast_kwargs()
        meter = _meter[0]
        if meter is not None:
            self.handles = [meter.track(t) for t in self.inputs]
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack), \
                _Depth(self.name):
            out = self.fn(*args, **kwargs)
        if _VERIFY:
            self.digest = _digest(out)
        self._check_versions("its forward")
        return out

    def _pack(self, t):
        h = _Holder()
        self.holders.append(weakref.ref(h))
        return h

    def _check_versions(self, when):
        if self.inputs is None:
            return
        for t, v in zip(self.inputs, self.versions):
            if t._version != v:
                raise SmpError(_INVALID, f"checkpointed module {self.name!r}: an input was "
                                         f"modified in place after {when} began (an in-place "
                                         "op); checkpointing recomputes the forward from its "
                                         "inputs, so they must not change")

    # -- backward --
    def _unpack(self, h):
        if not self.recomputed:
            self._recompute()
        try:
            return self.storage[h][0]
        except KeyError:
            raise SmpError(_INVALID, f"checkpointed module {self.name!r}: the recomputed "
                                     "forward saved fewer tensors than the forward did (its "
                                     "forward must do the same work when run again)") from None

    def _recompute(self):
        self._check_versions("the step")
        engine = _engine[0]
        inputs = engine.load(self) if engine is not None and self.mb >= 0 else self.inputs
        leaves = [t.detach().requires_grad_(g) if g else t.detach()
                  for t, g in zip(inputs, self.grads)]
        args, kwargs = unflatten(self.spec, leaves)
        count = [0]
        meter = _meter[0]
        holders, storage = self.holders, self.storage

        def inner_pack(t):
            count[0] += 1
            if count[0] > len(holders):
                raise SmpError(_INVALID, f"checkpointed module {self.name!r}: the recomputed "
                                         "forward saved more tensors than the forward did (its "
                                         "forward must do the same work when run again)")
            h = holders[count[0] - 1]()
            if h is not None:
                t = t.detach()
                storage[h] = (t, meter.track(t) if meter is not None else None)
            return None

        def inner_unpack(_):
            raise RuntimeError("smp checkpoint: a recomputed tensor was used twice")

        devices = self.gpu_devices if self.preserve and self.had_cuda else []
        gpu, cpu = self.autocast
        with torch.random.fork_rng(devices=devices, enabled=self.preserve):
            if self.preserve:
                torch.set_rng_state(self.cpu_rng)
                if self.had_cuda:
                    _tuc.set_device_states(self.gpu_devices, self.gpu_states)
            with torch.enable_grad(), torch.cuda.amp.autocast(**gpu), \
                    torch.cpu.amp.autocast(**cpu), \
                    torch.autograd.graph.saved_tensors_hooks(inner_pack, inner_unpack), \
                    _Depth(self.name):
                out = self.fn(*args, **kwargs)
        if self.digest is not None and _digest(out) != self.digest:
            raise SmpError(_INVALID, f"checkpointed module {self.name!r}: its recomputed "
                                     "forward differs from its forward (SMP_CHECKPOINT_VERIFY)")
        self.recomputed = True
        counts["recomputed"] += 1
        self.inputs = self.host = None
        self.handles = []
        self.state = _DONE

    # -- offloading (the Offloader calls these) --
    def offload(self, stream):
        if stream is not None:
            ready = torch.cuda.Event()  # the inputs are ready on the compute stream
            ready.record(torch.cuda.current_stream(stream.device))
            with torch.cuda.stream(stream):
                stream.wait_event(ready)
                host = []
                for t, d in zip(self.inputs, self.origin):
                    if d is not None:
                        h = torch.empty(t.size(), dtype=t.dtype, pin_memory=True)
                        h.copy_(t, non_blocking=True)
                        t.record_stream(stream)  # its memory is reused after the copy
                        host.append(h)
                    else:
                        host.append(t)  # host memory already, or strided: stays
                self.event = torch.cuda.Event()
                self.event.record(stream)
        else:
            host = [t.clone() for t in self.inputs]
        self.host, self.inputs, self.handles = host, None, []
        self.state = _OFFLOADED

    def prefetch(self, stream, device):
        if stream is not None:
            with torch.cuda.stream(stream):
                dev = []
                for h, d in zip(self.host, self._host_devices()):
                    if d is not None:
                        t = torch.empty_like(h, device=d)
                        t.copy_(h, non_blocking=True)
                        dev.append(t)
                    else:
                        dev.append(h)
                self.event = torch.cuda.Event()
                self.event.record(stream)
        else:
            dev = [h.clone() for h in self.host]
        self.inputs = dev
        meter = _meter[0]
        if meter is not None:
            self.handles = [meter.track(t) for t in dev]
        self.state = _PREFETCHED

    def _host_devices(self):
        # Offloaded tensors go back to the device they came from.
        return self.origin

    def wait(self, stream):
        """The prefetched inputs, usable on the current stream."""
        if stream is not None and self.event is not None:
            cur = torch.cuda.current_stream()
            cur.wait_event(self.event)
            for t in self.inputs:
                if t.is_cuda:
                    t.record_stream(cur)
        self.host = None
        return self.inputs


def checkpoint(fn, args, kwargs, preserve_rng_state=True, name="module"):
    """fn(*args, **kwargs) as a checkpointed region (outputs as fn's)."""
    args, kwargs = resolve((args, kwargs))  # fetch remote inputs before the region
    region = Region(fn, preserve_rng_state, name)
    out = region.run(args, kwargs)
    engine = _engine_for_step()
    if engine is not None:
        engine.saved(region)
    return out


def _digest(out):
    leaves = []
    flatten(out, leaves)
    return [float(t.detach().double().sum()) for t in leaves if t.is_floating_point()]


# ---- offloading ----

_engine = [None]


def _backward_order(server):
    """The order in which this rank's microbatches reach their backward
    pass under the server's schedule (every stage follows the first):
    'simple' runs the last microbatch's backward as soon as its forward
    ends, then releases the gated ones oldest first; 'interleaved' starts
    each as its forward ends, oldest first."""
    n = server.n_mb
    if server.schedule == "simple":
        return [n - 1] + list(range(n - 1))
    return list(range(n))


class Offloader:
    """Moves checkpointed regions' inputs to host memory and back, per
    microbatch, `horizon` microbatches ahead of the backward passes.
    Driven by the regions (saved, load) and by the server's backward pass
    starts (backward_pass, a pass listener)."""

    def __init__(self, horizon, device):
        self.horizon = int(horizon)
        self.device = torch.device(device)
        self.stream = (torch.cuda.Stream(self.device) if self.device.type == "cuda"
                       else None)
        self.token = None
        self.learnt = {}        # expected order -> the order the last such step ran
        self.log = []
        self.reset([])

    def reset(self, order, horizon=None):
        """A new step whose microbatches should reach their backward in
        `order` (the order a step with that expectation last ran, if any)."""
        if horizon is not None:
            self.horizon = int(horizon)
        if getattr(self, "expected", None) is not None and sorted(self.seen) == sorted(
                self.expected):
            self.learnt[tuple(self.expected)] = list(self.seen)
        self.expected = list(order)
        self.order = self.learnt.get(tuple(order), list(order))
        self.pos = {mb: i for i, mb in enumerate(self.order)}
        self.cursor = -1        # position of the latest backward pass begun
        self.regions = {}       # mb -> [weak references to regions]
        self.started = set()
        self.seen = []          # backward passes begun, in order
        self.log = [("order", list(self.order))]

    def window(self):
        """The microbatches whose inputs stay on (or come back to) the
        device: the one in its backward pass (the next due, before any)
        and `horizon` more after it."""
        start = max(self.cursor, 0)
        return self.order[start:start + self.horizon + 1]

    def saved(self, region, mb):
        region.mb = mb
        refs = self.regions.setdefault(mb, [])
        region.seq = len(refs)
        refs.append(weakref.ref(region))
        if mb in self.window() or mb not in self.pos:
            self.log.append(("keep", mb, region.seq))
            return
        region.origin = [t.device if t.is_cuda and t.is_contiguous() else None
                         for t in region.inputs]
        region.offload(self.stream)
        self.log.append(("offload", mb, region.seq))

    def backward_pass(self, mb):
        if mb in self.started or mb not in self.pos:
            return
        self.started.add(mb)
        self.seen.append(mb)
        self.cursor = max(self.cursor, self.pos[mb])
        self.log.append(("backward", mb))
        for m in self.window():
            for ref in self.regions.get(m, ()):
                r = ref()
                if r is not None and r.state == _OFFLOADED:
                    r.prefetch(self.stream, self.device)
                    self.log.append(("prefetch", m, r.seq))

    def load(self, region):
        if region.state == _PREFETCHED:
            self.log.append(("load", region.mb, region.seq, "prefetched"))
            return region.wait(self.stream)
        if region.state == _OFFLOADED:  # not prefetched in time: now, and wait
            self.log.append(("load", region.mb, region.seq, "late"))
            region.prefetch(self.stream, self.device)
            return region.wait(self.stream)
        self.log.append(("load", region.mb, region.seq, "kept"))
        return region.inputs


def offloader():
    """This process's Offloader (None unless offload_activations)."""
    return _engine[0]


def _engine_for_step():
    """The Offloader, set up for the running step, when offloading applies
    to the region that just ran (a microbatch task of the server)."""
    if not smp.is_initialized() or not smp.config().offload_activations:
        return None
    from .model import active_model
    model = active_model()
    server = model._server if model is not None else None
    task = server.current if server is not None else None
    if task is None or task.mb < 0:
        return None
    engine = _engine[0]
    if engine is None:
        engine = _engine[0] = Offloader(smp.config().activation_loading_horizon, server.device)
    if engine.token != (id(server), server.caller.step):
        engine.token = (id(server), server.caller.step)
        engine.reset(_backward_order(server), smp.config().activation_loading_horizon)
    if not any(getattr(f, "__self__", None) is engine for f in server.pass_listeners):
        server.pass_listeners.append(engine._listener)
    return _Bound(engine, task.mb)


class _Bound:
    """The engine with the running task's microbatch."""
    __slots__ = ("engine", "mb")

    def __init__(self, engine, mb):
        self.engine, self.mb = engine, mb

    def saved(self, region):
        self.engine.saved(region, self.mb)


def _offloader_listener(self):
    """Server pass listener: a backward pass begins on this rank."""
    from .model import active_model
    model = active_model()
    server = model._server if model is not None else None
    task = server.current if server is not None else None
    if task is None or task.mb < 0 or self.token != (id(server), server.caller.step):
        return
    self.backward_pass(task.mb)


Offloader._listener = _offloader_listener


# ---- measuring (tests, benchmarks) ----

_meter = [None]


class _Handle:
    __slots__ = ("meter", "key", "__weakref__")

    def __init__(self, meter, key):
        self.meter, self.key = meter, key

    def __del__(self):
        self.meter._release(self.key)


class SavedMemory:
    """Bytes of activations held for the backward pass on this process:
    tensors autograd saved outside checkpointed regions (while hooks() is
    entered, on that thread), the inputs checkpointed regions hold on the
    device and what their recomputations saved; each storage counted once,
    parameters (exclude) not at all. `live` now, `peak` the most so far.

        meter = SavedMemory(model.parameters())
        with meter:                      # regions report to it
            ... with meter.hooks(): loss = f(model(x)); model.backward(loss)
    """

    def __init__(self, exclude=()):
        self.skip = {p.storage().data_ptr() for p in exclude}
        self.refs = {}   # storage pointer -> [count, bytes]
        self.live = self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self):
        _meter[0] = self
        return self

    def __exit__(self, *exc):
        _meter[0] = None
        return False

    def track(self, t):
        s = t.storage()
        key = s.data_ptr()
        if key in self.skip or s.nbytes() == 0:
            return None
        with self.lock:
            e = self.refs.get(key)
            if e is None:
                self.refs[key] = [1, s.nbytes()]
                self.live += s.nbytes()
                self.peak = max(self.peak, self.live)
            else:
                e[0] += 1
        return _Handle(self, key)

    def _release(self, key):
        with self.lock:
            e = self.refs.get(key)
            if e is None:
                return
            e[0] -= 1
            if e[0] == 0:
                del self.refs[key]
                self.live -= e[1]

    def reset_peak(self):
        self.peak = self.live

    def hooks(self):
        def pack(t):
            return (t, self.track(t))

        def unpack(p):
            return p[0]
        return torch.autograd.graph.saved_tensors_hooks(pack, unpack)
