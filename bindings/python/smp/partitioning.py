"""Automatic partitioning of an nn.Module tree over the pipeline stages
(SageMaker's auto_partition), and the pins of `with smp.partition(i):`.

1. trace(): one microbatch's forward with a hook on every module records,
   per module, the order of its first call, its own forward time (without
   its children's) and the bytes of its outputs.
2. plan(): the tree is cut into placeable units, top-down: a unit is a
   subtree that runs on one stage. The heaviest unit is split into its
   children (in the order they ran) while there are fewer units than
   segments or it costs more than a segment's fair share; a module whose
   parameters are tied to a module outside its subtree is always split, and
   units sharing a parameter are merged into one (they must live together).
   The units, in execution order, go to the runtime's partitioner
   (smp_pipeline_partition: contiguous segments minimising the largest
   cost, memory_weight * memory + (1 - memory_weight) * time, within the
   memory limit). With `chunks` > 1 (the virtual schedule) there are
   pp * chunks segments and segment g runs on stage g % pp; with
   placement="v" (zb-v, two chunks) segment g runs on stage g for g < pp
   and on stage 2 * pp - 1 - g after, so chunk 1 of stage s is virtual
   stage 2 * pp - 1 - s.
3. Every module then has an owner stage: a unit's modules are its stage's;
   a split module (glue: its own forward, its direct parameters) goes with
   its first child that ran; a module that never ran goes with its parent.

Pure apart from torch and the partitioner binding: no communication (the
model shares the result).
"""

import re
import time

import torch

from ._errors import SmpError
from . import _smp

_INVALID = -1

# Memory of a parameter byte on its device: the parameter, its gradient and
# optimizer state (SageMaker's proxy: 3x the parameter bytes).
PARAM_MEMORY_FACTOR = 3.0

_pin = [None]  # the innermost `with smp.partition(i):`


class partition:
    """`with smp.partition(i):` pins every module created inside to
    pipeline stage i (modules created in a nested block take its stage)."""

    def __init__(self, index):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SmpError(_INVALID, f"smp.partition({index!r}): the stage must be an integer "
                                     ">= 0")
        from . import is_initialized, pp_size
        if is_initialized() and index >= pp_size():
            raise SmpError(_INVALID, f"smp.partition({index}): there are only {pp_size()} "
                                     f"pipeline stages (0..{pp_size() - 1})")
        self.index = index

    def __enter__(self):
        self._outer = _pin[0]
        if self._outer is None:
            _install_init_hook()
        _pin[0] = self.index
        return self

    def __exit__(self, *exc):
        _pin[0] = self._outer
        return False


def _install_init_hook():
    # Every module's __init__ reaches nn.Module.__init__ (through super());
    # wrapping it once marks what is built inside a partition block.
    if getattr(torch.nn.Module.__init__, "_smp_pin_hook", False):
        return
    original = torch.nn.Module.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if _pin[0] is not None:
            object.__setattr__(self, "_smp_pin", _pin[0])

    init._smp_pin_hook = True
    torch.nn.Module.__init__ = init


def pin_of(module):
    return module.__dict__.get("_smp_pin")


class Node:
    """One module of the tree, with what the trace measured."""

    __slots__ = ("name", "module", "parent", "children", "order", "self_time", "act_bytes",
                 "param_bytes", "params")

    def __init__(self, name, module, parent):
        self.name, self.module, self.parent = name, module, parent
        self.children = []
        self.order = None       # index of its first call, None if it never ran
        self.self_time = 0.0    # seconds in its own forward, children excluded
        self.act_bytes = 0      # bytes of its outputs, all calls
        self.param_bytes = 0    # its direct parameters (tied ones counted once)
        self.params = []        # its direct parameters

    def subtree(self):
        out = [self]
        for c in self.children:
            out.extend(c.subtree())
        return out


def build_tree(module):
    """{module name: Node} for every module ("" is the root); a module
    reachable under two names is its first name's node."""
    nodes = {}
    for name, m in module.named_modules():
        # named_modules lists a parent before its children, each module once.
        parent = None if name == "" else nodes[name.rpartition(".")[0]]
        n = Node(name, m, parent)
        nodes[name] = n
        if parent is not None:
            parent.children.append(n)
    counted = set()
    for n in nodes.values():
        for p in n.module._parameters.values():
            if p is None:
                continue
            n.params.append(p)
            if id(p) not in counted:
                counted.add(id(p))
                n.param_bytes += p.numel() * p.element_size()
    return nodes


def _bytes(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_bytes(o) for o in obj.values())
    return 0


def trace(nodes, run):
    """Calls run() (one microbatch's forward) with timing hooks on every
    module; fills order, self_time and act_bytes."""
    by_id = {id(n.module): n for n in nodes.values()}
    stack = []  # [node, start, children's time]
    counter = [0]
    handles = []

    def pre(m, inputs):
        n = by_id[id(m)]
        if n.order is None:
            n.order = counter[0]
            counter[0] += 1
        stack.append([n, time.perf_counter(), 0.0])

    def post(m, inputs, output):
        n, t0, inner = stack.pop()
        dt = time.perf_counter() - t0
        n.self_time += max(dt - inner, 0.0)
        n.act_bytes += _bytes(output)
        if stack:
            stack[-1][2] += dt

    for n in nodes.values():
        handles.append(n.module.register_forward_pre_hook(pre))
        handles.append(n.module.register_forward_hook(post))
    try:
        # Twice: the first call of an operator pays one-off costs (lazy
        # initialization, allocation) that would weigh on the first modules.
        for _ in range(2):
            for n in nodes.values():
                n.order, n.self_time, n.act_bytes = None, 0.0, 0
            counter[0] = 0
            run()
    finally:
        for h in handles:
            h.remove()

    # A container that is never called itself (an nn.ModuleList) ran when
    # its first member did.
    def settle(n):
        orders = [settle(c) for c in n.children]
        if n.order is None and any(o is not None for o in orders):
            n.order = min(o for o in orders if o is not None) - 0.5
        return n.order

    settle(nodes[""])


class Unit:
    """Modules that run on one stage: whole subtrees, in execution order."""

    __slots__ = ("roots", "order", "compute", "memory", "pin")

    def __init__(self, roots):
        self.roots = roots
        self.order = min(r.order for r in roots)
        members = [n for r in roots for n in r.subtree()]
        self.compute = sum(n.self_time for n in members)
        self.memory = sum(PARAM_MEMORY_FACTOR * n.param_bytes + n.act_bytes for n in members)
        pins = {pin_of(n.module) for n in members} - {None}
        self.pin = pins.pop() if len(pins) == 1 else None

    def cost(self, memory_weight, total_compute, total_memory):
        c = self.compute / total_compute if total_compute > 0 else 0.0
        m = self.memory / total_memory if total_memory > 0 else 0.0
        return memory_weight * m + (1 - memory_weight) * c


def _ran(n):
    return [c for c in sorted((c for c in n.children if c.order is not None),
                              key=lambda c: c.order)]


def _must_split(n, tie_owner):
    """A subtree that cannot be one unit: its pins differ, or a parameter of
    it is shared with a module outside it."""
    members = n.subtree()
    pins = {pin_of(m.module) for m in members} - {None}
    if len(pins) > 1:
        return True
    inside = {id(m) for m in members}
    return any(not tie_owner[id(p)] <= inside for m in members for p in m.params)


def _units(nodes, segments, memory_weight):
    root = nodes[""]
    tie_owner = {}  # id(param) -> {id(node)} of the modules that hold it
    for n in nodes.values():
        for p in n.params:
            tie_owner.setdefault(id(p), set()).add(id(n))
    total_c = sum(n.self_time for n in nodes.values())
    total_m = sum(PARAM_MEMORY_FACTOR * n.param_bytes + n.act_bytes for n in nodes.values())

    def cost(ns):
        return Unit(ns).cost(memory_weight, total_c, total_m)

    # Split top-down: the root always (its glue goes with its first child).
    units = [[c] for c in _ran(root)] if _ran(root) else [[root]]
    while True:
        splittable = [i for i, u in enumerate(units) if _ran(u[0])]
        forced = [i for i in splittable if _must_split(units[i][0], tie_owner)]
        if forced:
            pick = forced[0]
        else:
            heavy = [i for i in splittable
                     if len(units) < segments or cost(units[i]) > 1.0 / segments]
            if not heavy:
                break
            pick = max(heavy, key=lambda i: cost(units[i]))
        units[pick:pick + 1] = [[c] for c in _ran(units[pick][0])]
    # Units that share a parameter become one (at the first one's place).
    node_unit = {}
    for i, u in enumerate(units):
        for n in u[0].subtree():
            node_unit[id(n)] = i
    merged = list(range(len(units)))

    def find(i):
        while merged[i] != i:
            merged[i] = merged[merged[i]]
            i = merged[i]
        return i

    for holders in tie_owner.values():
        idx = sorted({node_unit[h] for h in holders if h in node_unit})
        for j in idx[1:]:
            merged[find(j)] = find(idx[0])
    groups = {}
    for i in range(len(units)):
        groups.setdefault(find(i), []).extend(units[i])
    out = sorted((Unit(g) for g in groups.values()), key=lambda u: u.order)
    # A split module's own cost (its glue, its direct parameters) is its
    # first child's unit's: that is where it will run (plan()).
    unit_of = {id(n): u for u in out for r in u.roots for n in r.subtree()}

    def first_unit(n):
        if id(n) in unit_of:
            return unit_of[id(n)]
        for c in _ran(n):
            u = first_unit(c)
            if u is not None:
                return u
        return None

    for n in nodes.values():
        if id(n) not in unit_of and n.order is not None:
            u = first_unit(n)
            if u is not None:
                u.compute += n.self_time
                u.memory += PARAM_MEMORY_FACTOR * n.param_bytes + n.act_bytes
    return out


def _segments_of(units, segments, memory_weight, memory_limit):
    """Stage of every unit from the runtime's partitioner (pins respected)."""
    free = [u for u in units if u.pin is None]
    assigned = {id(u): u.pin for u in units if u.pin is not None}
    if free:
        if len(free) < segments and not assigned:
            raise SmpError(_INVALID, f"the model has {len(free)} placeable module"
                                     f"{'s' if len(free) != 1 else ''} but the pipeline has "
                                     f"{segments} stages; use fewer stages (pp x chunks) or "
                                     "a model with more modules")
        if len(free) >= segments:
            layers = [(u.compute, u.memory) for u in free]
            try:
                stages, _ = _smp.pipeline_partition(layers, segments, memory_weight,
                                                    memory_limit or 0.0)
            except SmpError as e:
                # The runtime counts layers; say which modules they are.
                msg = re.sub(r"layer (\d+)", lambda m: "module '" + "+".join(
                    r.name for r in free[int(m.group(1))].roots) + "'", e.message)
                msg = msg[len("partition: "):] if msg.startswith("partition: ") else msg
                raise SmpError(e.status, f"automatic partitioning (memory_limit_bytes, "
                                         f"memory_weight): {msg}") from None
            for seg, (first, count, _, _, _) in enumerate(stages):
                for u in free[first:first + count]:
                    assigned[id(u)] = seg
        else:
            # Pins place the rest: a free unit runs where the unit before it does.
            prev = 0
            for u in units:
                if id(u) in assigned:
                    prev = assigned[id(u)]
                else:
                    assigned[id(u)] = prev
    return assigned


def plan(nodes, pp, chunks=1, memory_weight=0.8, memory_limit=None, auto=True,
         default_partition=0, placement="modulo", chunk_of=None):
    """{module name: stage} for every module of a traced tree; with a dict
    `chunk_of`, also {module name: its chunk on its stage} there."""
    owner = {}
    root = nodes[""]
    if not auto:
        def place(n, inherited):
            s = pin_of(n.module)
            s = inherited if s is None else s
            owner[n.name] = s
            for c in n.children:
                place(c, s)
        place(root, default_partition)
        return owner
    segments = pp * chunks
    if root.order is None:
        raise SmpError(_INVALID, "the traced step never called the model")
    units = _units(nodes, segments, memory_weight)
    seg = _segments_of(units, segments, memory_weight, memory_limit)
    chunk = {}
    for u in units:
        g = seg[id(u)]
        if u.pin is not None:
            stage = g
        elif placement == "v":
            stage = g if g < pp else 2 * pp - 1 - g
        else:
            stage = g % pp
        for r in u.roots:
            for n in r.subtree():
                owner[n.name] = stage
                chunk[n.name] = g // pp
    if memory_limit and chunks > 1:
        per = [0.0] * pp
        for u in units:
            per[owner[u.roots[0].name]] += u.memory
        worst = max(per)
        if worst > memory_limit:
            raise SmpError(_INVALID, f"automatic partitioning: a stage needs {worst:.0f} bytes, "
                                     f"above memory_limit_bytes {memory_limit:.0f}")

    # Split modules follow their first child that ran; those that never ran
    # follow their parent.
    def settle(n):
        for c in n.children:
            settle(c)
        if n.name not in owner:
            ran = _ran(n)
            if ran:
                owner[n.name] = owner[ran[0].name]
                chunk[n.name] = chunk.get(ran[0].name, 0)

    settle(root)

    def inherit(n, s, c):
        if n.name not in owner:
            owner[n.name] = s
            chunk[n.name] = c
        for k in n.children:
            inherit(k, owner[n.name], chunk.get(n.name, 0))

    inherit(root, 0, 0)
    if chunk_of is not None:
        chunk_of.update(chunk)
    return owner
