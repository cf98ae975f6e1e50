"""Nested Python values with tensors in them (tuples, named tuples, lists,
dicts, anything else as it is): what crosses a pipeline stage and what a
step function returns."""

import torch


class _Leaf:
    """A tensor's place in a flattened structure."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        return (_Leaf, (self.i,))


def flatten(obj, out):
    """obj with every tensor replaced by a _Leaf indexing `out`."""
    if isinstance(obj, torch.Tensor):
        out.append(obj)
        return _Leaf(len(out) - 1)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(flatten(o, out) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(flatten(o, out) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, flatten(v, out)) for k, v in obj.items())
    return obj


def unflatten(spec, leaves):
    if isinstance(spec, _Leaf):
        return leaves[spec.i]
    if isinstance(spec, tuple) and hasattr(spec, "_fields"):
        return type(spec)(*(unflatten(o, leaves) for o in spec))
    if isinstance(spec, (list, tuple)):
        return type(spec)(unflatten(o, leaves) for o in spec)
    if isinstance(spec, dict):
        return type(spec)((k, unflatten(v, leaves)) for k, v in spec.items())
    return spec


def leaf_count(spec):
    """How many tensors a flattened structure holds."""
    if isinstance(spec, _Leaf):
        return 1
    if isinstance(spec, (list, tuple)):
        return sum(leaf_count(o) for o in spec)
    if isinstance(spec, dict):
        return sum(leaf_count(o) for o in spec.values())
    return 0


def map_tensors(fn, obj):
    """obj with every tensor t replaced by fn(t)."""
    leaves = []
    spec = flatten(obj, leaves)
    return unflatten(spec, [fn(t) for t in leaves])
