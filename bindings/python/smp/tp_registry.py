"""Which modules tensor parallelism distributes, and swapping them in.

    with smp.tensor_parallelism(enabled=True, **tp_config):
        model = MyModel()          # modules built here are marked
    smp.set_tensor_parallelism(model.block, True)   # a module and its subtree
    smp.tp_register_with_module(MyAttention, MyDistAttention)
    model = smp.DistributedModel(model)   # calls swap_tensor_parallel(model)

swap_tensor_parallel(module) replaces, top-down, every marked module whose
exact type has a registered distributed twin by that twin, the outermost
first (a marked nn.TransformerEncoderLayer is replaced whole, its inner
Linear not separately); a module reachable under several names is
replaced once, everywhere, and parameters shared between swapped modules
stay shared (split once). Built-in pairs: nn.Linear, nn.Embedding,
nn.MultiheadAttention and nn.TransformerEncoderLayer with smp.nn's
Distributed* classes. At tp_size() == 1 nothing is replaced.

A registered dist_cls with a classmethod `from_module(twin, **tp_config)`
is built from the torch module; otherwise (or when an init_hook is given)
from the torch module's recorded constructor arguments, translated by
`init_hook(*args, **kwargs) -> (args, kwargs)` (tp_config merged into the
keyword arguments), and then loads the twin's full state_dict: tensors the
dist_cls marked with `shard_spec` (tensor_parallel.shard_parameter /
_mark_spec) are sliced for it, unless it defines its own load_state_dict or
_load_from_state_dict (then it gets the full tensors and slices itself).
Constructor arguments are recorded for modules built inside
smp.tensor_parallelism() and for registered classes without from_module
(register before building): the values the outermost __init__ holds when
nn.Module.__init__ runs. `forward_hook(*args, **kwargs) -> (args, kwargs)`
translates the twin's forward call for dist_cls's forward and
`return_hook(outputs) -> outputs` its outputs back.

Errors (smp.SmpError, status -1, one line naming the module by qualified
name): a marked module that cannot be split (heads or features not
divisible by the tensor-parallel degree, an unsupported option), and an
explicit set_tensor_parallelism(module) on a module with no registered
type anywhere in its subtree. Unregistered modules built inside the
context (LayerNorm, Dropout, containers) stay replicated.

Hooks the twin carried (register_forward_hook etc.) do not move to the
distributed module; smp's own state does, module by module under the same
names: attributes named _smp_* (pins of smp.partition, activation
checkpointing marks) and an instance forward that
smp.set_activation_checkpointing bound to the twin (bound again to the
distributed module, whose own forward then runs inside).
"""

import collections
import sys
import types

import torch
import torch.nn as nn

import smp
from ._errors import SmpError

__all__ = ["tensor_parallelism", "set_tensor_parallelism", "tp_register_with_module",
           "swap_tensor_parallel", "registered"]

_INVALID = -1
_MARK = "_smp_tp"        # (enabled, tp_config, explicit)
_ARGS = "_smp_tp_args"   # (args, kwargs) of the outermost __init__

Registration = collections.namedtuple("Registration",
                                      ["dist_cls", "init_hook", "forward_hook", "return_hook"])
_registry = collections.OrderedDict()   # torch class -> Registration
_record_args = set()                    # classes whose constructor arguments are always recorded
_context = []                           # the active smp.tensor_parallelism blocks (innermost last)
_hook = [False]


def _install_init_hook():
    # Every module's __init__ reaches nn.Module.__init__ (through super());
    # wrapping it marks what is built inside a tensor_parallelism block.
    # Chains with smp.partition's hook, whichever is installed first.
    if _hook[0]:
        return
    original = nn.Module.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if _context:
            enabled, cfg = _context[-1]
            self.__dict__[_MARK] = (enabled, cfg, False)
            if enabled and _ARGS not in self.__dict__:
                self.__dict__[_ARGS] = _constructor_args(self)
        elif type(self) in _record_args and _ARGS not in self.__dict__:
            self.__dict__[_ARGS] = _constructor_args(self)

    init._smp_tp_hook = True
    if getattr(original, "_smp_pin_hook", False):
        init._smp_pin_hook = True   # smp.partition's check: its hook is already in the chain
    nn.Module.__init__ = init
    _hook[0] = True


def _constructor_args(module):
    """(args, kwargs) of the outermost __init__ running on `module` (the
    most derived class's), read from its frame."""
    f = sys._getframe(1)
    outer = None
    while f is not None:
        co = f.f_code
        if co.co_argcount < 1 or f.f_locals.get(co.co_varnames[0]) is not module:
            if outer is not None:
                break
        elif co.co_name == "__init__":
            outer = f
        f = f.f_back
    if outer is None:
        return None
    co, loc = outer.f_code, outer.f_locals
    n, k = co.co_argcount, co.co_kwonlyargcount
    names = co.co_varnames
    args = [loc[x] for x in names[1:n]]
    kwargs = {x: loc[x] for x in names[n:n + k]}
    i = n + k
    if co.co_flags & 0x04:   # *args
        args += list(loc[names[i]])
        i += 1
    if co.co_flags & 0x08:   # **kwargs
        kwargs.update(loc[names[i]])
    return tuple(args), kwargs


class tensor_parallelism:
    """`with smp.tensor_parallelism(enabled=True, **tp_config):` marks
    every module built inside for tensor parallelism (enabled=False: not,
    inside an enabled block); tp_config goes to the distributed module's
    from_module (or constructor). The swap happens when
    smp.DistributedModel wraps the model."""

    def __init__(self, enabled=True, **tp_config):
        self.enabled, self.config = bool(enabled), dict(tp_config)

    def __enter__(self):
        _install_init_hook()
        _context.append((self.enabled, self.config))
        return self

    def __exit__(self, *exc):
        _context.pop()
        return False


def set_tensor_parallelism(module, enabled=True, **tp_config):
    """Marks `module` and every module in it for tensor parallelism (or,
    enabled=False, not). With enabled=True, some module in its subtree must
    have a registered distributed twin when the model is wrapped."""
    if not isinstance(module, nn.Module):
        raise SmpError(_INVALID, f"smp.set_tensor_parallelism takes a torch.nn.Module, not "
                                 f"{type(module).__name__}")
    cfg = dict(tp_config)
    for m in module.modules():
        m.__dict__[_MARK] = (bool(enabled), cfg, m is module)


def tp_register_with_module(torch_cls, dist_cls, init_hook=None, forward_hook=None,
                            return_hook=None):
    """Marked modules of exactly type torch_cls are replaced by dist_cls
    (see the module's docstring for the hooks and how it is built)."""
    for what, cls in (("torch_cls", torch_cls), ("dist_cls", dist_cls)):
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise SmpError(_INVALID, f"smp.tp_register_with_module: {what} must be a "
                                     f"torch.nn.Module subclass, not {cls!r}")
    for what, fn in (("init_hook", init_hook), ("forward_hook", forward_hook),
                     ("return_hook", return_hook)):
        if fn is not None and not callable(fn):
            raise SmpError(_INVALID, f"smp.tp_register_with_module: {what} must be callable")
    _registry[torch_cls] = Registration(dist_cls, init_hook, forward_hook, return_hook)
    if init_hook is not None or not hasattr(dist_cls, "from_module"):
        _record_args.add(torch_cls)
        _install_init_hook()
    else:
        _record_args.discard(torch_cls)


def registered(torch_cls):
    """The Registration of torch_cls (exact type), or None."""
    return _registry.get(torch_cls)


def _register_builtins():
    from . import nn as dnn
    for t, d in ((nn.Linear, dnn.DistributedLinear), (nn.Embedding, dnn.DistributedEmbedding),
                 (nn.MultiheadAttention, dnn.DistributedMultiheadAttention),
                 (nn.TransformerEncoderLayer, dnn.DistributedTransformerEncoderLayer)):
        _registry.setdefault(t, Registration(d, None, None, None))


_register_builtins()


# ---- the swap ----

def swap_tensor_parallel(module):
    """`module` with every marked, registered module replaced by its
    distributed twin (the root too: the result may be a new module). No
    communication; deterministic, so every rank fails alike."""
    if smp.tp_size() == 1 or not isinstance(module, nn.Module):
        return module
    from . import nn as dnn
    # Parameters of embeddings to be swapped: a Linear tied to one splits
    # its rows (vocabulary) the same way.
    rows = set()
    for m in module.modules():
        if type(m) is nn.Embedding and _enabled(m) and type(m) in _registry:
            rows.add(id(m.weight))
    with dnn.tied_shards(rows) as ties:
        with torch.random.fork_rng(devices=[]):   # constructors draw initial values
            edits, kept = [], []
            out = _visit(module, "", {}, edits, kept)
    # A parameter split for a swapped module but still held whole by
    # another (unswapped) one would silently lose its tie.
    split = ties.split_ids()
    for name, m in kept:
        for pname, p in m._parameters.items():
            if p is not None and id(p) in split:
                raise SmpError(_INVALID, f"tensor parallelism: module {_name(name)} "
                                         f"({type(m).__name__}) shares its parameter "
                                         f"{pname!r} with a distributed module but is not "
                                         "itself distributed: build it inside "
                                         "smp.tensor_parallelism() as well")
    # Only now, all of it checked, does the model change (an error above
    # leaves it as it was).
    for parent, name, new in edits:
        parent._modules[name] = new
    # The recorded constructor arguments have served (they may hold
    # tensors or whole modules, e.g. TransformerEncoder's layer).
    for m in out.modules():
        m.__dict__.pop(_ARGS, None)
    return out


def _enabled(m):
    mark = m.__dict__.get(_MARK)
    return bool(mark and mark[0])


def _visit(m, qual, memo, edits, kept):
    if id(m) in memo:
        return memo[id(m)]
    mark = m.__dict__.get(_MARK)
    enabled = bool(mark and mark[0])
    reg = _registry.get(type(m))
    if enabled and reg is not None:
        new = _build(m, reg, qual, mark[1])
        memo[id(m)] = new
        return new
    if enabled and mark[2] and not any(type(s) in _registry for s in m.modules()):
        raise SmpError(_INVALID, f"smp.set_tensor_parallelism: module {_name(qual)} "
                                 f"({type(m).__name__}) has no distributed twin: no module in "
                                 "it has a type registered with smp.tp_register_with_module")
    memo[id(m)] = m
    kept.append((qual, m))
    for name, child in list(m._modules.items()):
        if child is None:
            continue
        new = _visit(child, f"{qual}.{name}" if qual else name, memo, edits, kept)
        if new is not child:
            edits.append((m, name, new))
    return m


def _name(qual):
    return repr(qual) if qual else "'' (the root)"


def _build(twin, reg, qual, cfg):
    from . import nn as dnn
    dist_cls = reg.dist_cls
    where = f"tensor parallelism: module {_name(qual)} ({type(twin).__name__})"
    try:
        if reg.init_hook is None and hasattr(dist_cls, "from_module"):
            dist = dist_cls.from_module(twin, **cfg)
        else:
            recorded = twin.__dict__.get(_ARGS)
            if recorded is None:
                raise dnn.Unsplittable(
                    f"its constructor arguments were not recorded ({dist_cls.__name__} has no "
                    "from_module): build it inside smp.tensor_parallelism(), or register its "
                    "class before building it")
            args, kwargs = recorded[0], dict(recorded[1])
            if reg.init_hook is not None:
                args, kwargs = reg.init_hook(*args, **kwargs)
                args, kwargs = tuple(args), dict(kwargs)
            kwargs.update(cfg)
            dist = dist_cls(*args, **kwargs)
            _load_full(dist, twin.state_dict())
            dist.train(twin.training)
    except dnn.Unsplittable as e:
        raise SmpError(_INVALID, f"{where} cannot be split over tensor-parallel degree "
                                 f"{smp.tp_size()}: {e}") from None
    except SmpError as e:
        raise SmpError(e.status, f"{where}: {e.message}") from None
    except Exception as e:  # noqa: BLE001 - the user's class or hooks failed
        raise SmpError(_INVALID, f"{where}: building {dist_cls.__name__} failed: "
                                 f"{type(e).__name__}: {e}") from None
    if reg.forward_hook is not None or reg.return_hook is not None:
        _wrap_forward(dist, reg.forward_hook, reg.return_hook)
    _carry_attributes(twin, dist)
    return dist


def _load_full(dist, full):
    cls = type(dist)
    if cls.load_state_dict is not nn.Module.load_state_dict or \
            cls._load_from_state_dict is not nn.Module._load_from_state_dict:
        dist.load_state_dict(full)
        return
    from . import nn as dnn
    dnn.load_full_state_dict(dist, full)


def _wrap_forward(dist, forward_hook, return_hook):
    # (Inputs still on another pipeline stage need no care here: smp.remote
    # makes every autograd.Function take their values.)
    inner = dist.forward

    def forward(*args, **kwargs):
        if forward_hook is not None:
            args, kwargs = forward_hook(*args, **kwargs)
        out = inner(*args, **kwargs)
        return return_hook(out) if return_hook is not None else out

    dist.__dict__["forward"] = forward


def _carry_attributes(twin, dist):
    """smp's own per-module state from each twin module to the distributed
    module of the same name: attributes named _smp_* (partition pins,
    activation checkpointing marks, ...), and an instance forward that
    such a feature bound to the twin (smp.set_activation_checkpointing),
    bound again to the distributed module with that module's own forward
    inside."""
    theirs = dict(twin.named_modules())
    for name, m in dist.named_modules():
        t = theirs.get(name)
        if t is None or t is m:
            continue
        td, md = t.__dict__, m.__dict__
        for k, v in td.items():
            if k.startswith("_smp_") and k not in (_MARK, _ARGS, "_smp_inner") and k not in md:
                md[k] = v
        f = td.get("forward")
        if isinstance(f, types.MethodType) and f.__self__ is t:
            if "forward" in md:
                md["_smp_inner"] = md["forward"]
            md["forward"] = types.MethodType(f.__func__, m)
