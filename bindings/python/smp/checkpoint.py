"""Checkpoints of models split by pipeline and tensor parallelism, over
smp's checkpoint module: each rank registers the pieces it holds of the
full model's tensors (by their full names and shapes), and save/load are
collective over WORLD. A checkpoint saved with one (pp, tp, rdp) loads
into any other, and a consolidated one is plain safetensors files.

A tensor-parallel parameter made by smp.tensor_parallel carries
`shard_spec` = (dim, parts, full shape); with parts > 1 (a fused q/k/v
projection) each block is its own tensor in the checkpoint, named
`<name>.<block>`, since a rank's share of the fused tensor is not one box.
"""

import json
import math

import smp

REPLICATED = smp._smp.CKPT_REPLICATED
OPTIMIZER = smp._smp.CKPT_OPTIMIZER


def boxes(param, name, group=smp.TP_GROUP):
    """[(checkpoint name, global shape, offsets, local shape, first local
    element)] for this rank's piece(s) of `param`."""
    shape = tuple(param.shape)
    spec = getattr(param, "shard_spec", None)
    if spec is None:
        return [(name, shape, (0,) * len(shape), shape, 0)]
    dim, parts, full = spec
    n, r = smp.size(group), smp.rank(group)
    if parts > 1 and dim != 0:
        raise ValueError(f"{name}: blocks are supported along dimension 0 only")
    per_part = full[dim] // parts
    k = per_part // n
    out = []
    for q in range(parts):
        g = list(full)
        g[dim] = per_part
        off = [0] * len(full)
        off[dim] = r * k
        local = list(shape)
        local[dim] = k
        begin = q * k * math.prod(shape[1:]) if parts > 1 else 0
        out.append((f"{name}.{q}" if parts > 1 else name, tuple(g), tuple(off), tuple(local),
                    begin))
    return out


class Checkpoint:
    """Register tensors, then save() or load() (collective over WORLD)."""

    def __init__(self):
        self._ck = smp._smp.Checkpoint()

    def add(self, name, tensor, like=None, flags=0):
        """Register `tensor` as this rank's share of global tensor `name`;
        its placement in the full tensor is that of parameter `like`
        (default: the tensor itself), e.g. an optimizer moment of a
        tensor-parallel weight."""
        flat = tensor.detach().reshape(-1)
        for bname, gshape, off, lshape, begin in boxes(like if like is not None else tensor, name):
            count = math.prod(lshape)
            self._ck.add(bname, flat[begin:begin + count], list(gshape), list(off), list(lshape),
                         0, 0, int(flags))

    def set_user(self, key, value):
        """JSON-serialisable `value`, stored per rank."""
        self._ck.set_user(key, json.dumps(value).encode())

    def get_user(self, key, rank=-1):
        return json.loads(self._ck.get_user(key, int(rank)).decode())

    def save(self, directory, sharded=False, keep_last=0):
        """Returns the new checkpoint's folder."""
        return self._ck.save(str(directory), 1 if sharded else 0, int(keep_last))

    def load(self, path):
        """path: a checkpoint folder or a folder of them (newest complete).
        Returns the folder loaded."""
        return self._ck.load(str(path))

    def saved_world_size(self):
        return self._ck.saved_world_size()

    def close(self):
        self._ck.close()
