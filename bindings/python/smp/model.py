"""smp.DistributedModel: an unmodified
nn.Module trained over pipeline stages and data-parallel replicas.

The first smp.step partitions the model (smp.partition: traced on world
rank 0, the plan shared with every rank), then every rank keeps only its
stage's parameters and buffers (the others are freed) and every module's
forward is routed: run here when this stage owns it, else through the
execution server (smp.server). After each step the gradients are averaged
over the data-parallel replicas of the stage: parameters that tensor
parallelism distributes over RDP_GROUP, the rest over DP_GROUP; a
parameter some replica did not use counts as zero there, and one that no
replica used keeps no gradient, as in a single process.
"""

import collections
import functools
import pickle

import torch

import smp
from ._errors import SmpError
from . import activations as _activations
from . import partitioning as _partition
from .delayed_init import end_until_wrapped, is_unallocated, materialize, zeros_while_running
from .grad_sync import GradSync
from .pytree import map_tensors
from .remote import resolve, resolve_function_inputs
from .server import Server
from .tensor_parallel import shard_dim

_INVALID, _NOT_INITIALIZED, _UNSUPPORTED = -1, -2, -3
_active = {"model": None}


def broadcast_object(obj, root, group):
    """Any picklable object from `root` (a rank within group) to every rank."""
    if smp.size(group) == 1:
        return obj
    mine = smp.rank(group) == root
    data = pickle.dumps(obj) if mine else b""
    n = torch.tensor([len(data)], dtype=torch.int64)
    smp.broadcast(n, root, group)
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8) if mine
           else torch.empty(int(n.item()), dtype=torch.uint8))
    smp.broadcast(buf, root, group)
    return obj if mine else pickle.loads(buf.numpy().tobytes())


def agree(error, flags=(), status=_INVALID):
    """Collective over WORLD. error: this rank's failure in words, or None.
    If any rank failed, every rank raises SmpError with the lowest failing
    rank's message (and status); else returns the element-wise max of
    `flags` (ints) over the world."""
    v = torch.tensor([1 if error is not None else 0] + [int(f) for f in flags],
                     dtype=torch.int64)
    smp.allreduce(v, smp.MAX, smp.WORLD)
    if v[0].item():
        first = torch.tensor([smp.rank() if error is not None else smp.size()],
                             dtype=torch.int64)
        smp.allreduce(first, smp.MIN, smp.WORLD)
        root = int(first.item())
        st, msg = broadcast_object((status, error), root, smp.WORLD)
        raise SmpError(st, msg)
    return v[1:].tolist()


def active_model():
    return _active["model"]


class DistributedModel(torch.nn.Module):
    """Wraps any nn.Module for smp (one per program). Call it inside an
    smp.step function only; use model.backward(loss) for loss.backward()."""

    def __init__(self, module, average_grads_across_microbatches=True, bucket_cap_mb=25,
                 overlapping_allreduce=True, trace_execution_times=True):
        if not smp.is_initialized():
            raise SmpError(_NOT_INITIALIZED, "smp.DistributedModel: call smp.init() first")
        if not isinstance(module, torch.nn.Module):
            raise SmpError(_INVALID, f"smp.DistributedModel wraps a torch.nn.Module, not "
                                     f"{type(module).__name__}")
        if _active["model"] is not None:
            raise SmpError(_INVALID, "smp.DistributedModel: a model is already wrapped; smp "
                                     "trains one DistributedModel per program")
        end_until_wrapped()  # config delayed_parameter_initialization: the build is over
        super().__init__()
        from .tp_registry import swap_tensor_parallel  # marked modules -> smp.nn's twins
        module = swap_tensor_parallel(module)
        self.module = module
        self._average = bool(average_grads_across_microbatches)
        self._bucket_bytes = int(bucket_cap_mb * (1 << 20))
        self._overlap = bool(overlapping_allreduce)
        self._syncs = []
        self._trace_times = bool(trace_execution_times)
        self._owner = None      # module name -> pp stage, once partitioned
        self._entries = None    # state_dict key -> (stage, full shape, dtype, TP shard spec)
        self._local = None      # ids of this stage's parameters
        self._server = None
        self._tracing = False
        self._sharded = False
        self._optimizers = []
        _active["model"] = self
        from .loss_scaler import cast_module  # config fp16 / bf16: the module in that dtype
        cast_module(module)

    # ---- what users call ----
    def forward(self, *args, **kwargs):
        if self._tracing:
            return self.module(*args, **kwargs)
        if self._server is None or self._server.current is None:
            raise SmpError(_INVALID, "the model was called outside an smp.step function: "
                                     "decorate the function that runs it with @smp.step")
        return map_tensors(lambda t: _Sentinel.apply(self._server, t) if t.requires_grad else t,
                           resolve(self.module(*args, **kwargs)))

    def backward(self, loss):
        """Replaces loss.backward() inside an smp.step function."""
        if self._tracing:
            return
        if self._server is None or self._server.current is None:
            raise SmpError(_INVALID, "model.backward(loss) was called outside an smp.step "
                                     "function")
        from .loss_scaler import scaled_loss
        loss, scale = scaled_loss(self, loss)  # the optimizer's loss scale, in float32
        self._server.backward(loss, scale / self._server.n_mb if self._average else scale)

    def partition_map(self):
        """{module name: pp stage} ("" is the whole model); empty until the
        first step has partitioned it."""
        return dict(self._owner or {})

    def named_parameters(self, prefix="", recurse=True, **kwargs):
        for n, p in self.module.named_parameters(prefix=prefix, recurse=recurse, **kwargs):
            if self._local is None or id(p) in self._local:
                yield n, p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def state_dict(self, *args, **kwargs):
        """The whole model under the original names, on every rank
        (collective over PP_GROUP once partitioned; over TP_GROUP before)."""
        if self._entries is None:
            out = self.module.state_dict(*args, **kwargs)
            if smp.tp_size() > 1 and not args and not kwargs:  # gather the TP shards
                for k, t in self.module.state_dict(keep_vars=True).items():
                    spec = getattr(t, "shard_spec", None)
                    if spec is not None and not t.is_meta:
                        out[k] = _gather_tp(t.detach(), spec)
            return out
        local = self.module.state_dict(keep_vars=True)
        me = smp.pp_rank()
        out = collections.OrderedDict()
        for key, (stage, shape, dtype, spec) in self._entries.items():
            if stage == me:
                t = local[key].detach().clone().contiguous()
                if spec is not None:
                    t = _gather_tp(t, spec)
            else:
                t = torch.empty(shape, dtype=dtype, device=self._device)
            if smp.pp_size() > 1:
                smp.broadcast(t.view(torch.uint8) if t.dtype == torch.bool else t, stage,
                              smp.PP_GROUP)
            out[key] = t
        return out

    def local_state_dict(self):
        """This rank's own tensors (its stage's), under the original names."""
        if self._entries is None:
            return self.module.state_dict()
        local = self.module.state_dict()
        me = smp.pp_rank()
        return collections.OrderedDict((k, local[k]) for k, e in self._entries.items()
                                       if e[0] == me)

    def load_state_dict(self, state_dict, strict=True):
        """A full state_dict (original names); each rank takes its own tensors."""
        if self._entries is None:
            if smp.tp_size() > 1:  # this rank's TP shard of the full tensors
                mine = self.module.state_dict(keep_vars=True)
                state_dict = collections.OrderedDict(
                    (k, shard_dim(v, mine[k].shard_spec[0], mine[k].shard_spec[1])
                     if k in mine and getattr(mine[k], "shard_spec", None) is not None
                     and tuple(v.shape) == tuple(mine[k].shard_spec[2]) else v)
                    for k, v in state_dict.items())
            return self.module.load_state_dict(state_dict, strict)
        keys = set(self._entries)
        missing = sorted(keys - set(state_dict))
        unexpected = sorted(set(state_dict) - keys)
        if strict and (missing or unexpected):
            raise SmpError(_INVALID, f"load_state_dict: missing keys {missing[:5]}, unexpected "
                                     f"keys {unexpected[:5]}")
        local = self.module.state_dict(keep_vars=True)
        me = smp.pp_rank()
        with torch.no_grad():
            for key, (stage, shape, _, spec) in self._entries.items():
                if stage == me and key in state_dict:
                    src = state_dict[key]
                    if tuple(src.shape) != tuple(shape):
                        raise SmpError(_INVALID, f"load_state_dict: {key} has shape "
                                                 f"{tuple(src.shape)}, the model's is {shape}")
                    local[key].copy_(src if spec is None
                                     else shard_dim(src.to(local[key].device), spec[0], spec[1]))
        return torch.nn.modules.module._IncompatibleKeys(missing, unexpected)

    # ---- used by smp.step ----
    def _partition(self, trace):
        """Collective over WORLD: rank 0 plans (tracing one microbatch with
        trace() unless the plan needs no costs), every rank applies it."""
        cfg = smp.config()
        pp = smp.pp_size()
        plan = err = None
        chunk_of = {}  # zb-v: module name -> its chunk on its stage
        # Rank 0's whole TP group traces (tensor-parallel modules make TP
        # collectives); rank 0 plans.
        tracer = smp.pp_rank() == 0 and smp.rdp_rank() == 0
        if tracer:
            try:
                nodes = _partition.build_tree(self.module)
                if pp == 1:
                    plan = {n: 0 for n in nodes}
                else:
                    if cfg.auto_partition:
                        self._trace(nodes, trace)
                    if smp.rank() == 0:
                        plan = _partition.plan(nodes, pp, cfg.chunks, cfg.memory_weight,
                                               cfg.memory_limit_bytes, cfg.auto_partition,
                                               cfg.default_partition or 0,
                                               "v" if cfg.pipeline == "zb-v" else "modulo",
                                               chunk_of)
                        _check_ties(self.module, plan)
            except SmpError as e:
                err = (e.status, e.message)
            except Exception as e:  # the user's step failed while tracing
                err = (-6, f"tracing the model's first microbatch failed: "
                           f"{type(e).__name__}: {e}")
        plan, chunk_of, err = broadcast_object((plan, chunk_of, err), 0, smp.WORLD)
        if err is not None:
            raise SmpError(*err)
        self._apply(plan)
        self._server.chunk_of = chunk_of

    def _trace(self, nodes, trace):
        # The trace must leave no trace: buffers (running statistics) and
        # the random generators are restored afterwards.
        buffers = [(b, b.detach().clone()) for b in self.module.buffers()]
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        unallocated = is_unallocated(self.module)
        self._tracing = True
        try:
            if not unallocated:
                _partition.trace(nodes, trace)
            else:
                # On the meta device: shapes flow, nothing is allocated, and
                # a module's cost is its parameter count. A forward that
                # needs values (it branches on its input) is traced on the
                # real input instead, each module given zeros while it runs.
                meta = functools.partial(map_tensors, lambda t: t.to("meta"))
                try:
                    _partition.trace(nodes, functools.partial(trace, meta))
                except (NotImplementedError, RuntimeError):
                    with zeros_while_running(self.module):
                        _partition.trace(nodes, trace)
        finally:
            self._tracing = False
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        if unallocated:
            for n in nodes.values():
                n.self_time = (1.0 + sum(p.numel() for p in n.module.parameters(recurse=False))
                               if n.order is not None else 0.0)
        elif not self._trace_times:
            for n in nodes.values():
                n.self_time = 1.0 if n.order is not None else 0.0

    def _apply(self, plan):
        me = smp.pp_rank()
        self._owner = plan
        modules = dict(self.module.named_modules())
        local_modules = [m for name, m in modules.items() if plan[name] == me]
        self._local = {id(p) for m in local_modules for p in m._parameters.values()
                       if p is not None}
        local_buffers = {id(b) for m in local_modules for b in m._buffers.values()
                         if b is not None}
        # state_dict key -> (stage, full shape, dtype, TP shard spec or None)
        self._entries = collections.OrderedDict()
        for k, t in self.module.state_dict(keep_vars=True).items():
            spec = getattr(t, "shard_spec", None) if smp.tp_size() > 1 else None
            shape = tuple(spec[2]) if spec is not None else tuple(t.shape)
            self._entries[k] = (plan[k.rpartition(".")[0]], shape, t.dtype, spec)
        if is_unallocated(self.module):  # smp.delay_param_initialization
            self._materialize(local_modules)
            self._local = {id(p) for m in local_modules for p in m._parameters.values()
                           if p is not None}
            local_buffers = {id(b) for m in local_modules for b in m._buffers.values()
                             if b is not None}
        params = [p for m in local_modules for p in m._parameters.values() if p is not None]
        self._device = params[0].device if params else torch.device("cpu")
        # Free what other stages own.
        for name, m in modules.items():
            if plan[name] == me:
                continue
            for p in m._parameters.values():
                if p is not None and id(p) not in self._local:
                    p.data = torch.empty(0, dtype=p.dtype, device=p.device)
                    p.grad = None
            for k, b in m._buffers.items():
                if b is not None and id(b) not in local_buffers:
                    m._buffers[k] = torch.empty(0, dtype=b.dtype, device=b.device)
        forwards = {}
        for name, m in modules.items():
            forwards[name] = m.forward
            m.forward = self._router(name, m.forward)
        self._server = Server(forwards, self._device)
        self._server.params = [p for _, p in self._local_named() if p.requires_grad]
        if smp.pp_size() > 1:
            resolve_function_inputs()
        for opt in self._optimizers:
            opt._retarget(self)
        if not self._sharded:
            local = [p for _, p in self._local_named() if p.requires_grad]
            check = self._server.check_final
            self._syncs = [
                GradSync([p for p in local if not getattr(p, "tensor_parallel", False)],
                         smp.DP_GROUP, self._bucket_bytes, self._overlap, check),
                GradSync([p for p in local if getattr(p, "tensor_parallel", False)],
                         smp.RDP_GROUP, self._bucket_bytes, self._overlap, check)]
            self._server.final_listeners = [s.begin_final for s in self._syncs]
            self._server.pass_listeners = [s.begin_pass for s in self._syncs]

    def _materialize(self, local_modules):
        """Each rank allocates and initializes only its own stage's tensors
        (its TP shards of them), with an eager build's values."""
        own = {id(t) for m in local_modules
               for t in list(m._parameters.values()) + list(m._buffers.values())
               if t is not None}
        idx = smp.device()
        device = (torch.device("cuda", idx) if idx >= 0 and torch.cuda.is_available()
                  else torch.device("cpu"))
        replaced, self.init_peak_bytes = materialize(self.module, own, device)
        for opt in self._optimizers:  # built from the unallocated parameters
            for g in opt.optimizer.param_groups:
                g["params"] = [replaced.get(id(p), p) for p in g["params"]]

    def _router(self, name, own):
        if not self.__dict__.get("_checked_activations"):
            # The first module routed: every rank checks the plan against
            # activation checkpointing and offloading (a collective).
            self.__dict__["_checked_activations"] = True
            _activations.after_partition(self)
        me = smp.pp_rank()
        owner = self._owner[name]
        if owner == me:
            if smp.pp_size() == 1:
                return own

            def local(*args, **kwargs):
                if not _activations.in_region():  # a checkpointed region never yields
                    self._server.maybe_yield()
                return own(*args, **kwargs)
            return local

        def forward(*args, **kwargs):
            if _activations.in_region():
                raise SmpError(_INVALID, _activations.remote_in_region(name, owner))
            return self._server.remote_forward(owner, name, args, kwargs)
        return forward

    def _run(self, n, microbatches, schedule, active):
        return self._server.run(n, microbatches, schedule, active)

    def _local_named(self):
        """(original name, parameter) of this stage's parameters (a tied
        parameter under its first name), the same on every replica."""
        return [(n, p) for n, p in self.module.named_parameters() if id(p) in self._local]

    def _reduce_gradients(self):
        """Average over the replicas that hold the same parameters (the
        sharded optimizer does it itself)."""
        for sync in self._syncs:
            sync.finish()

    def _discard_gradient_sync(self):
        for sync in self._syncs:
            sync.reset()


def _gather_tp(local, spec):
    """The full tensor from every TP rank's shard (tensor_parallel's
    shard_spec: split along `dim`, in `parts` blocks each split over TP)."""
    dim, parts, _ = spec
    n = smp.tp_size()
    buf = torch.empty((n,) + tuple(local.shape), dtype=local.dtype, device=local.device)
    smp.allgather(local.contiguous(), buf, smp.TP_GROUP)
    blocks = [b.chunk(parts, dim) for b in buf.unbind(0)]
    return torch.cat([torch.cat([b[q] for b in blocks], dim) for q in range(parts)], dim)


def _check_ties(module, plan):
    holders = {}
    for name, m in module.named_modules():
        for p in m._parameters.values():
            if p is not None:
                holders.setdefault(id(p), []).append(name)
    for names in holders.values():
        stages = {plan[n] for n in names}
        if len(stages) > 1:
            raise SmpError(_INVALID, f"modules {', '.join(repr(n) for n in names)} share a "
                                     f"parameter but are placed on stages {sorted(stages)}; "
                                     "modules that share a parameter must be on one stage")


class _Sentinel(torch.autograd.Function):
    """Identity on the model's outputs; its backward fails loudly unless it
    runs inside model.backward (loss.backward() would skip the scaling and,
    across stages, the server's bookkeeping)."""

    @staticmethod
    def forward(ctx, server, t):
        ctx.server = server
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        ctx.server.require_model_backward()
        return None, g
