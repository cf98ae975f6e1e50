"""Checkpoints of models split by pipeline and tensor parallelism, over
smp's checkpoint module: each rank registers the pieces it holds of the
full model's tensors (by their full names and shapes), and save/load are
collective over WORLD. A checkpoint saved with one (pp, tp, rdp) loads
into any other, and a consolidated one is plain safetensors files.

A tensor-parallel parameter made by smp.tensor_parallel carries
`shard_spec` = (dim, parts, full shape); with parts > 1 (a fused q/k/v
projection) each block is its own tensor in the checkpoint, named
`<name>.<block>`, since a rank's share of the fused tensor is not one box.

smp's sharded optimizer (smp.optim.ShardedOptimizer) registers its state
with add_sharded_optimizer(): every state buffer but the master weights
(exp_avg, exp_avg_sq / momentum_buffer) as `<name>.<state>`, the names
torch.optim's state gets under the same convention, so a checkpoint of
either optimizer loads into the other and into any layout.

Tensors on a GPU are registered through host copies (smp's checkpoint
module reads and writes host memory): save() copies them to the host
first, load() copies the loaded values back to the GPU.
"""

import json
import math

import torch

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


class _ShardedState:
    """A ShardedOptimizer's shard inside a Checkpoint: one persistent float32
    host buffer per stored state, each piece of it registered as a range of
    `<name>.<state>` placed like its parameter. save() exports into the
    buffers first, load() imports from them after.

    Master weights: for a float32 model they equal the parameters, so they
    are not stored twice; after a load they are rebuilt from the loaded
    parameters (exact). A model with 16-bit parameters stores them too, as
    `<name>.master`, since rounding loses what the float32 copy holds; such
    a model then loads only checkpoints that have them (a missing tensor
    fails the load, as missing moments do)."""

    def __init__(self, ck, opt, names):
        info = opt.info()
        self.opt = opt
        self.shard_elems = info["shard_elems"]
        keep_master = any(p.dtype != torch.float32 for _, p in opt.named)
        self.states = [s for s in info["states"] if s != "master" or keep_master]
        self.buffers = {s: torch.zeros(self.shard_elems, dtype=torch.float32)
                        for s in self.states}
        self.pieces = []  # (parameter, tensor_offset, shard_offset, length)
        for index, tname, toff, soff, n in info["pieces"]:
            oname, p = opt.named[index]
            if oname != tname:
                raise RuntimeError(f"sharded optimizer piece names '{tname}', expected '{oname}'")
            self.pieces.append((p, toff, soff, n))
            full = names.get(oname, oname) if names is not None else oname
            # A tensor-parallel slice's pieces are disjoint across the whole
            # world; a TP-replicated parameter's pieces are the same on every
            # rank of the TP group (one layout over the same tensor list), so
            # those copies are flagged to be stored once. Across RDP_GROUP the
            # pieces never overlap (ZeRO-1 shards).
            flags = OPTIMIZER | (0 if getattr(p, "tensor_parallel", False) else REPLICATED)
            for s in self.states:
                ck.add_range(f"{full}.{s}", self.buffers[s][soff:soff + n], like=p, begin=toff,
                             flags=flags)

    def before_save(self):
        for s in self.states:
            self.opt.export_state(s, out=self.buffers[s])

    def after_load(self):
        for s in self.states:
            self.opt.import_state(s, self.buffers[s])
        if "master" not in self.states:
            master = torch.zeros(self.shard_elems, dtype=torch.float32)
            for p, toff, soff, n in self.pieces:
                master[soff:soff + n] = p.detach().reshape(-1)[toff:toff + n].to(
                    "cpu", torch.float32)
            self.opt.import_state("master", master)


class Checkpoint:
    """Register tensors, then save() or load() (collective over WORLD)."""

    def __init__(self):
        self._ck = smp._smp.Checkpoint()
        self._optimizers = []
        self._staged = []  # (device tensor, its host copy) registered in its place

    def _host(self, tensor, name):
        """tensor, flat; a GPU tensor's host copy instead (save and load
        move the data)."""
        flat = tensor.detach().reshape(-1)
        if flat.device.type == "cpu":
            return flat
        if not tensor.is_contiguous():
            raise ValueError(f"{name}: a tensor on {tensor.device} must be contiguous to be "
                             "registered (load writes it in place)")
        host = torch.empty(flat.shape, dtype=flat.dtype, device="cpu")
        self._staged.append((flat, host))
        return host

    def add(self, name, tensor, like=None, flags=0):
        """Register `tensor` as this rank's share of global tensor `name`;
        its placement in the full tensor is that of parameter `like`
        (default: the tensor itself), e.g. an optimizer moment of a
        tensor-parallel weight."""
        flat = self._host(tensor, name)
        for bname, gshape, off, lshape, begin in boxes(like if like is not None else tensor, name):
            count = math.prod(lshape)
            self._ck.add(bname, flat[begin:begin + count], list(gshape), list(off), list(lshape),
                         0, 0, int(flags))

    def add_range(self, name, data, like, begin, flags=0):
        """Register `data` (n elements) as elements [begin, begin + n) of
        this rank's piece of parameter `like` (flat, row-major), in global
        tensor `name` placed like `like`: a sharded optimizer's state. Where
        `like` is split into blocks, the range is split at their borders."""
        flat = self._host(data, name)
        n = flat.numel()
        if begin < 0 or begin + n > like.numel():
            raise ValueError(f"{name}: range [{begin}, {begin + n}) outside the "
                             f"{like.numel()} elements of its parameter")
        for bname, gshape, off, lshape, b0 in boxes(like, name):
            lo, hi = max(begin, b0), min(begin + n, b0 + math.prod(lshape))
            if lo < hi:
                self._ck.add(bname, flat[lo - begin:hi - begin], list(gshape), list(off),
                             list(lshape), lo - b0, hi - lo, int(flags))

    def add_sharded_optimizer(self, opt, names=None):
        """Register smp.optim.ShardedOptimizer `opt`'s state (this rank's
        shard) as optimizer tensors `<name>.exp_avg`, `<name>.exp_avg_sq`
        (AdamW) or `<name>.momentum_buffer` (SGD), where `names` maps the
        optimizer's tensor names to checkpoint names (default: the same).
        Register the parameters themselves too (add()): a load rebuilds the
        master weights from them. save() stores the current state; load()
        restores it. The step count is yours to store (set_user) and to
        give back with opt.set_step() after load()."""
        self._optimizers.append(_ShardedState(self, opt, names))

    def set_user(self, key, value):
        """JSON-serialisable `value`, stored per rank."""
        self._ck.set_user(key, json.dumps(value).encode())

    def get_user(self, key, rank=-1):
        return json.loads(self._ck.get_user(key, int(rank)).decode())

    def save(self, directory, sharded=False, keep_last=0):
        """Returns the new checkpoint's folder."""
        for dev, host in self._staged:
            host.copy_(dev)
        for o in self._optimizers:
            o.before_save()
        return self._ck.save(str(directory), 1 if sharded else 0, int(keep_last))

    def load(self, path):
        """path: a checkpoint folder or a folder of them (newest complete).
        Returns the folder loaded."""
        path = self._ck.load(str(path))
        for dev, host in self._staged:
            dev.copy_(host)
        for o in self._optimizers:
            o.after_load()
        return path

    def saved_world_size(self):
        return self._ck.saved_world_size()

    def close(self):
        self._optimizers = []
        self._staged = []
        self._ck.close()
