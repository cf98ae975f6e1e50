"""smp: process groups and collectives for hybrid-parallel training.

The C API (include/smp/smp.h) with Python names. Any tensor that speaks
DLPack or the buffer protocol (NumPy arrays, PyTorch tensors, CPU or CUDA)
is passed zero-copy; results are written in place. Contiguous tensors only.
CUDA tensors from PyTorch are used on PyTorch's current stream (the DLPack
stream protocol), so the operation is ordered after the work that produced
them and before the work queued after the call.

    import smp
    smp.init()
    smp.allreduce(grad, op=smp.AVG, group=smp.RDP_GROUP)
"""

import atexit as _atexit
import enum as _enum
import functools as _functools
import sys as _sys
import time as _time

from ._errors import SmpError
from . import _smp
from . import _config

__all__ = [
    "SmpError", "Status", "Group", "Op", "Request",
    "WORLD", "PP_GROUP", "TP_GROUP", "DP_GROUP", "RDP_GROUP", "MP_GROUP",
    "SUM", "AVG", "MAX", "MIN", "PROD",
    "init", "finalize", "is_initialized", "version", "rank", "size",
    "local_rank", "local_size", "device",
    "pp_rank", "tp_rank", "dp_rank", "rdp_rank", "mp_rank",
    "pp_size", "tp_size", "dp_size", "rdp_size", "mp_size",
    "allreduce", "reduce_scatter", "allgather", "broadcast", "gatherv", "barrier",
    "send", "recv_into", "isend", "irecv", "iallreduce", "ireduce_scatter", "iallgather",
    "comm_seconds", "reset_comm_seconds", "timeline", "timeline_write",
]


# smp.h's enums, with smp.h's values (the extension reads them from there).
Status = _enum.IntEnum("Status", _smp.ENUMS["Status"], module=__name__)
Group = _enum.IntEnum("Group", _smp.ENUMS["Group"], module=__name__)
Op = _enum.IntEnum("Op", _smp.ENUMS["Op"], module=__name__)


WORLD, PP_GROUP, TP_GROUP, DP_GROUP, RDP_GROUP, MP_GROUP = (
    Group.WORLD, Group.PP, Group.TP, Group.DP, Group.RDP, Group.MP)
SUM, AVG, MAX, MIN, PROD = Op.SUM, Op.AVG, Op.MAX, Op.MIN, Op.PROD

# Seconds spent inside communicating smp calls (blocking calls, the
# posting of non-blocking ones, Request.wait/test) by this process: the
# runtime's share of a training step, measured where the program sees it.
_comm = [0.0]


def comm_seconds():
    return _comm[0]


def reset_comm_seconds():
    _comm[0] = 0.0


def _timed(fn):
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = _time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _comm[0] += _time.perf_counter() - t0
    return wrapper


class Request:
    """A non-blocking operation; it keeps its tensors alive until it is
    complete. Dropping an unfinished request waits for it."""

    __slots__ = ("_req",)

    def __init__(self, req):
        self._req = req

    @_timed
    def wait(self):
        self._req.wait()

    @_timed
    def test(self):
        return self._req.test()


def init(config=None, tp_size=0, placement=None, timeout=None, check=None, pp_size=0):
    """Start smp. `config`: a dict of SageMaker model parallelism's keys
    (pipeline_parallel_degree, microbatches, pipeline, ...; smp._config
    lists them); an unknown key, a bad value, or one that contradicts the
    launcher's layout raises SmpError naming the key, on every rank. (An
    int in its place is the older pp_size argument.)

    Unset layout arguments come from smprun's environment (SMP_PP_SIZE,
    SMP_TP_SIZE, SMP_PLACEMENT, SMP_TIMEOUT, SMP_CHECK), else the config,
    else the defaults (pp = tp = 1, cluster placement). Without any
    launcher the world is this one process.

    A program that forgets finalize() is finalized at exit, unless it dies
    of an uncaught exception: then it exits without finalizing (MPI's
    finalize would wait for ranks that may be waiting for this one), and
    the launcher ends the job instead of hanging.

    Where torch is imported and sees this rank's GPU (device()), it is made
    torch's current CUDA device, as SageMaker's smp.init does."""
    if isinstance(config, int) and not isinstance(config, bool):
        config, pp_size = None, config
    cfg = _config.parse(config)
    cpp, ctp, cplace = _config.layout(cfg)
    # smp.distributed may have started smp for torch's rendezvous: then the
    # layout check below holds this call to the world it built.
    if not (_state.pop("implicit_init", False) and is_initialized()):
        _smp.init(int(pp_size or cpp), int(tp_size or ctp), placement or cplace,
                  -1.0 if timeout is None else float(timeout),
                  -1 if check is None else int(bool(check)))
    _config.check_layout(cfg, pp_size_(), tp_size_())
    _state["config"] = cfg
    _install_exit_hooks()
    if cfg.delayed_parameter_initialization:
        # From here until smp.DistributedModel wraps the model, tensors are
        # built unallocated (smp.delay_param_initialization).
        from .delayed_init import begin_until_wrapped
        begin_until_wrapped()
    torch = _sys.modules.get("torch")
    d = device()
    if torch is not None and d >= 0 and torch.cuda.is_available() and d < torch.cuda.device_count():
        torch.cuda.set_device(d)


# The configuration smp.init was given (smp.config.Config); the front end
# (DistributedModel, step) reads it.
_state = {"config": None, "before_finalize": []}


def config():
    """The parsed configuration of smp.init (defaults if it had none)."""
    return _state["config"] or _config.Config()


_hooks = {"installed": False, "failed": False}


def _install_exit_hooks():
    if _hooks["installed"]:
        return
    _hooks["installed"] = True
    previous = _sys.excepthook

    def excepthook(tp, value, tb):
        _hooks["failed"] = True
        previous(tp, value, tb)

    _sys.excepthook = excepthook
    _atexit.register(_finalize_at_exit)


def _finalize_at_exit():
    if _hooks["failed"] or not is_initialized():
        return
    try:
        _release()
        _smp.finalize()
    except SmpError:
        pass


def finalize():
    _release()
    _smp.finalize()


def _release():
    # What the front end holds in the runtime (a sharded optimizer) goes
    # before the runtime does.
    hooks, _state["before_finalize"] = _state["before_finalize"], []
    for fn in hooks:
        fn()


def is_initialized():
    try:
        _smp.size(int(WORLD))
        return True
    except SmpError as e:
        if e.status == Status.NOT_INITIALIZED:
            return False
        raise


def version():
    """(major, minor, patch) of the loaded libsmp."""
    return _smp.version()


def rank(group=WORLD):
    return _smp.rank(int(group))


def size(group=WORLD):
    return _smp.size(int(group))


def local_rank():
    """Rank among the ranks on this host (ordered by world rank)."""
    return _smp.local_rank()


def local_size():
    """Ranks on this host."""
    return _smp.local_size()


def device():
    """Index of the GPU this rank should use: SMP_DEVICE (smprun's choice),
    else local_rank() modulo the GPUs visible; -1 without a GPU."""
    return _smp.device()


def pp_rank(): return _smp.rank(int(PP_GROUP))
def tp_rank(): return _smp.rank(int(TP_GROUP))
def dp_rank(): return _smp.rank(int(DP_GROUP))
def rdp_rank(): return _smp.rank(int(RDP_GROUP))
def mp_rank(): return _smp.rank(int(MP_GROUP))
def pp_size(): return _smp.size(int(PP_GROUP))
def tp_size(): return _smp.size(int(TP_GROUP))


pp_size_, tp_size_ = pp_size, tp_size  # init's own, as its arguments shadow the names
def dp_size(): return _smp.size(int(DP_GROUP))
def rdp_size(): return _smp.size(int(RDP_GROUP))
def mp_size(): return _smp.size(int(MP_GROUP))


def _arg(t):
    """What the extension reads: autograd-free (torch refuses to export a
    tensor that requires grad through DLPack; detach() shares the memory)."""
    if getattr(t, "requires_grad", False):
        return t.detach()
    return t


def _is_meta(t):
    """A tensor on PyTorch's meta device (a model traced before it is
    allocated, smp.delay_param_initialization): a shape without data, so a
    collective on it moves nothing and its result keeps its shape."""
    return getattr(t, "is_meta", False)


def _stream(t):
    """The DLPack stream protocol value for a CUDA tensor: PyTorch's current
    stream on the tensor's device (1 = the legacy default stream, which
    PyTorch reports as 0), so smp's work is ordered like a PyTorch kernel.
    None for host memory and for CUDA objects of other frameworks (they get
    the legacy default stream)."""
    if getattr(t, "is_cuda", False) and type(t).__module__.startswith("torch"):
        torch = _sys.modules["torch"]
        s = torch.cuda.current_stream(t.device).cuda_stream
        return 1 if s == 0 else s
    return None


@_timed
def allreduce(tensor, op=SUM, group=WORLD):
    """Reduce `tensor` over `group` in place; returns it."""
    if _is_meta(tensor):
        return tensor
    _smp.allreduce(_arg(tensor), int(op), int(group), _stream(tensor))
    return tensor


@_timed
def reduce_scatter(input, output, op=SUM, group=WORLD):
    """output (n elements) = block `rank(group)` of the reduction of every
    rank's input (size(group) * n elements). In place when output is this
    rank's block of input."""
    if _is_meta(output):
        return output
    _smp.reduce_scatter(_arg(input), _arg(output), int(op), int(group), _stream(output))
    return output


@_timed
def allgather(input, output, group=WORLD):
    """output (size(group) * n elements) = every rank's input (n elements)
    in rank order. In place when input is this rank's block of output."""
    if _is_meta(output):
        return output
    _smp.allgather(_arg(input), _arg(output), int(group), _stream(output))
    return output


@_timed
def broadcast(tensor, root=0, group=WORLD):
    """Every rank's tensor = root's (root is a rank within group)."""
    _smp.broadcast(_arg(tensor), int(root), int(group), _stream(tensor))
    return tensor


@_timed
def gatherv(input, output=None, counts=None, root=0, group=WORLD):
    """root's output = every rank's input concatenated in rank order;
    counts[r] = rank r's element count. output and counts are used on root
    only."""
    _smp.gatherv(_arg(input), None if output is None else _arg(output), counts,
                 int(root), int(group), _stream(input))
    return output


@_timed
def barrier(group=WORLD):
    _smp.barrier(int(group))


@_timed
def send(tensor, peer, group=WORLD, tag=0):
    """Send to `peer` (a rank within group); returns once the buffer may be reused."""
    _smp.send(_arg(tensor), int(peer), int(group), int(tag), _stream(tensor))


@_timed
def recv_into(tensor, peer, group=WORLD, tag=0):
    """Receive exactly tensor's size and dtype from `peer` into tensor."""
    _smp.recv(_arg(tensor), int(peer), int(group), int(tag), _stream(tensor))
    return tensor


@_timed
def isend(tensor, peer, group=WORLD, tag=0):
    """Non-blocking send; the Request keeps the tensor alive until wait()."""
    return Request(_smp.isend(_arg(tensor), int(peer), int(group), int(tag), _stream(tensor)))


@_timed
def irecv(tensor, peer, group=WORLD, tag=0):
    return Request(_smp.irecv(_arg(tensor), int(peer), int(group), int(tag), _stream(tensor)))


@_timed
def iallreduce(tensor, op=SUM, group=WORLD):
    return Request(_smp.iallreduce(_arg(tensor), int(op), int(group), _stream(tensor)))


@_timed
def ireduce_scatter(input, output, op=SUM, group=WORLD):
    return Request(_smp.ireduce_scatter(_arg(input), _arg(output), int(op), int(group), _stream(output)))


@_timed
def iallgather(input, output, group=WORLD):
    return Request(_smp.iallgather(_arg(input), _arg(output), int(group), _stream(output)))


# ---- More collectives, p2p from any rank, groups of any ranks ----

__all__ += ["reduce", "scatterv", "alltoallv", "recv_any",
            "group_create", "group_destroy", "group_set_timeout"]


@_timed
def reduce(input, output=None, op=SUM, root=0, group=WORLD):
    """root's output = the reduction of every rank's input (same size);
    output is used on root only (it may be input itself: in place)."""
    _smp.reduce(_arg(input), None if output is None else _arg(output), int(op), int(root), int(group),
                _stream(input))
    return output


@_timed
def scatterv(input, counts, output, root=0, group=WORLD):
    """The inverse of gatherv: rank r's output = counts[r] elements of
    root's input, after those of ranks 0..r-1. input and counts are used on
    root only."""
    _smp.scatterv(None if input is None else _arg(input), counts, _arg(output), int(root), int(group),
                  _stream(output))
    return output


@_timed
def alltoallv(input, send_counts, output, recv_counts, group=WORLD):
    """Rank p receives send_counts[p] elements of input (blocks packed in
    rank order) and output holds recv_counts[p] elements from each rank p,
    in rank order."""
    _smp.alltoallv(_arg(input), send_counts, _arg(output), recv_counts, int(group), _stream(output))
    return output


@_timed
def recv_any(tensor, group=WORLD, tag=0):
    """Receive into tensor from whichever rank of group sends first with
    this tag; returns that rank (within group)."""
    return _smp.recv_any(_arg(tensor), int(group), int(tag), _stream(tensor))


def group_create(ranks):
    """A group of the listed world ranks (group rank i = ranks[i]), usable as
    group= everywhere; every listed rank calls it with the same list, no
    other rank does. Returns its handle (an int >= 64)."""
    return _smp.group_create([int(r) for r in ranks])


def group_destroy(group):
    """Release a group from group_create (not collective)."""
    _smp.group_destroy(int(group))


def group_set_timeout(group, seconds):
    """Hang timeout of the operations on group, in place of SMP_TIMEOUT
    (0: none); call it on every member."""
    _smp.group_set_timeout(int(group), float(seconds))



# ---- Tensor transport (smp.h "Pipeline: tensor transport") ----
# Every tensor travels with its dtype and shape, so receivers need not know
# them: recv_tensor and exchange_tensors (with None) return new tensors
# that the runtime allocated, handed over zero-copy as DLPack capsules.
# Tags: 0..16383.

__all__ += ["send_tensor", "recv_tensor", "recv_tensor_into", "exchange_tensors"]


class _Capsule:
    """A runtime-allocated host tensor's capsule, dressed for NumPy's
    from_dlpack (which wants an object with __dlpack__, not a capsule)."""

    __slots__ = ("_capsule",)

    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, stream=None):
        c, self._capsule = self._capsule, None
        return c

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU: the runtime allocates host memory


def _from_capsule(capsule, lib=None):
    """The tensor in a capsule from the extension: a torch tensor when torch
    is importable (or lib == "torch"), else a NumPy array (lib == "numpy");
    both share the runtime's buffer, which goes back when they are freed."""
    if lib is None:
        lib = "torch"
        try:
            import torch  # noqa: F401
        except ImportError:
            lib = "numpy"
    if lib == "torch":
        import torch.utils.dlpack
        return torch.utils.dlpack.from_dlpack(capsule)
    import numpy
    return numpy.from_dlpack(_Capsule(capsule))


@_timed
def send_tensor(tensor, peer, group=WORLD, tag=0):
    """Send tensor (its dtype and shape travel with it) to `peer`, a rank
    within group; returns once the tensor may be reused."""
    _smp.send_tensor(_arg(tensor), int(peer), int(group), int(tag))


@_timed
def recv_tensor(peer, group=WORLD, tag=0):
    """Receive whatever tensor `peer` sends: a new tensor of the sender's
    dtype and shape (torch when importable, else NumPy)."""
    return _from_capsule(_smp.recv_tensor(int(peer), int(group), int(tag)))


@_timed
def recv_tensor_into(tensor, peer, group=WORLD, tag=0):
    """Receive into tensor; SmpError (PEER_FAILED, naming the difference)
    when the sender's dtype or shape differ. Returns tensor."""
    _smp.recv_tensor_into(_arg(tensor), int(peer), int(group), int(tag))
    return tensor


@_timed
def exchange_tensors(sends, recvs, group=WORLD, defer_sends=False):
    """Post every send and receive at once, then wait for all: no order of
    calls across ranks can deadlock it. sends: [(tensor, peer, tag)];
    recvs: [(tensor or None, peer, tag)]. Returns the received tensors in
    recvs' order: the given tensor, filled, or a new one where None was
    given. Receives from one (peer, tag) match that peer's sends in order.

    defer_sends=True returns (received tensors, smp.Request) as soon as the
    receives are complete: the request completes with the sends, which keep
    their tensors alive until then (smp_exchange_tensors_deferred; how a
    pipeline schedule's exchanges run)."""
    sends = [(_arg(t), int(p), int(g)) for t, p, g in sends]
    recvs = list(recvs)
    got = _smp.exchange_tensors(
        sends, [(None if t is None else _arg(t), int(p), int(g)) for t, p, g in recvs], int(group),
        bool(defer_sends))
    sent = None
    if defer_sends:
        got, sent = got
    tensors = [t if c is None else _from_capsule(c) for (t, _, _), c in zip(recvs, got)]
    return (tensors, Request(sent)) if defer_sends else tensors


class timeline:
    """Marks a region of the framework's own work (e.g. "forward" of
    microbatch m, chunk c) in the timeline SMP_TIMELINE / smprun --timeline
    records; a no-op when it is off.

        with smp.timeline("forward", microbatch=m, chunk=c): ...
    """

    __slots__ = ("name", "microbatch", "chunk")

    def __init__(self, name, microbatch=-1, chunk=-1):
        self.name, self.microbatch, self.chunk = name, int(microbatch), int(chunk)

    def __enter__(self):
        _smp.timeline_begin(self.name, self.microbatch, self.chunk)
        return self

    def __exit__(self, *exc):
        _smp.timeline_end()
        return False


def timeline_write():
    """Collective over WORLD: write every rank's timeline events to the
    Chrome-trace file SMP_TIMELINE names. Call before finalize(); a no-op
    when the timeline is off. finalize() writes them too when this was
    never called (and no rank saw a communication failure)."""
    _smp.timeline_write()


__all__ += ["timeline_begin", "timeline_end"]


def timeline_begin(name, microbatch=-1, chunk=-1):
    """Opens a framework mark (smp.timeline without the with-block, e.g.
    around a training step spread over a loop body); timeline_end closes
    the innermost open one on this thread. No-ops when the timeline is
    off."""
    _smp.timeline_begin(name, int(microbatch), int(chunk))


def timeline_end():
    _smp.timeline_end()


# ---- The front end (SageMaker v1's names): an unmodified nn.Module in
# pipeline x data parallelism. Imported last: it builds on the above.

__all__ += ["DistributedModel", "DistributedOptimizer", "step", "StepOutput", "partition",
            "config", "save_checkpoint", "resume_from_checkpoint",
            "nn", "tensor_parallelism", "set_tensor_parallelism", "tp_register_with_module",
            "delay_param_initialization", "set_activation_checkpointing"]

_FRONT_END = {"DistributedModel": "model", "DistributedOptimizer": "optimizer", "step": "steps",
              "StepOutput": "steps", "partition": "partitioning",
              "save_checkpoint": "checkpointing", "resume_from_checkpoint": "checkpointing",
              "tensor_parallelism": "tp_registry", "set_tensor_parallelism": "tp_registry",
              "tp_register_with_module": "tp_registry",
              "delay_param_initialization": "delayed_init",
              "set_activation_checkpointing": "activations"}
# torch.distributed's backend "smp" and smp's groups as its process groups.
__all__ += [f"get_{g}_process_group" for g in ("world", "pp", "tp", "dp", "rdp", "mp")]
_FRONT_END.update({f"get_{g}_process_group": "distributed"
                   for g in ("world", "pp", "tp", "dp", "rdp", "mp")})


def __getattr__(name):
    # Lazily: the front end needs torch, the rest of smp does not.
    import importlib
    if name == "nn":  # smp.nn, the distributed twins of torch.nn's modules
        value = importlib.import_module(".nn", __name__)
        globals()[name] = value
        return value
    where = _FRONT_END.get(name)
    if where is None:
        raise AttributeError(f"module 'smp' has no attribute '{name}'")
    value = getattr(importlib.import_module("." + where, __name__), name)
    globals()[name] = value
    return value
