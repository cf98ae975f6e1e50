"""smp.nn: tensor-parallel twins of torch.nn modules.

Each class takes its torch twin's constructor arguments, has its forward
signature and gives its outputs, full and replicated on every rank of the
TP group, while the parameters are split over TP_GROUP (Megatron's scheme:
one allreduce forward and one backward per block). The parameters keep the
twin's names, so a twin's state_dict loads into the distributed module
(load_full_state_dict here, or smp.DistributedModel.load_state_dict) and
the full state_dict gathered back (full_state_dict here, or
smp.DistributedModel.state_dict) loads into the twin:

    DistributedLinear                 nn.Linear: its input features split
                                      (row-parallel, one allreduce), or its
                                      output features when the input's do
                                      not divide or its weight is tied to a
                                      vocabulary-parallel embedding (column-
                                      parallel, one allgather)
    DistributedEmbedding              nn.Embedding, vocabulary-parallel
    DistributedMultiheadAttention     nn.MultiheadAttention, heads split
    DistributedTransformerEncoderLayer  nn.TransformerEncoderLayer
    DistributedTransformerLMHead      no twin: output projection over the
                                      vocabulary + vocabulary-parallel
                                      cross entropy (see its docstring)

A sharded parameter carries `shard_spec` (dim, parts, full shape) and
`tensor_parallel = True` (tensor_parallel.shard_parameter); a replicated
one (layer norms, row-parallel biases) is the twin's own Parameter, plain.
Constructing a class directly builds its torch twin first (the same
initialization, from the same random state, as the twin's) and keeps this
rank's shards; `from_module(twin)` builds it from an existing module
without allocating full tensors (a twin on the meta device gives meta
shards, see tensor_parallel.shard_parameter).

Every rank of a TP group must call the module with the same inputs (smp
feeds a TP group the same batch).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import smp
from ._errors import SmpError
from .tensor_parallel import (copy_to_tp, gather_from_tp, gather_full, reduce_from_tp,
                              shard_dim, shard_parameter, vocab_parallel_cross_entropy)

__all__ = ["DistributedLinear", "DistributedEmbedding", "DistributedMultiheadAttention",
           "DistributedTransformerEncoderLayer", "DistributedTransformerLMHead",
           "full_state_dict", "load_full_state_dict"]

_INVALID = -1


class Unsplittable(ValueError):
    """Why a module cannot be split over the TP group (the caller names it)."""


def _tp():
    return smp.tp_size(), smp.tp_rank()


# ---- shards shared between modules (tied parameters) while swapping ----

# During a swap: {"shards": {id(full parameter): (full, dim, parts, shard,
# owner)}, "rows": ids of full parameters to split by rows}.
_ties = [None]


class tied_shards:
    """While active, a parameter shared by several twins is split once:
    every distributed module gets the same shard Parameter (the tie kept),
    and splitting it two different ways is an error. `prefer_rows`: ids of
    full parameters that a vocabulary-parallel module will split by rows
    (DistributedLinear then splits its output features to match)."""

    def __init__(self, prefer_rows=()):
        self.prefer_rows = set(prefer_rows)

    def __enter__(self):
        self._outer = _ties[0]
        if self._outer is None:
            _ties[0] = {"shards": {}, "rows": set()}
        _ties[0]["rows"] |= self.prefer_rows
        return self

    def __exit__(self, *exc):
        if self._outer is None:
            self._shards = _ties[0]["shards"]
            _ties[0] = None
        return False

    def split_ids(self):
        """ids of the full parameters that were split (after the block)."""
        shards = getattr(self, "_shards", None)
        return set(shards) if shards is not None else set()


def _tied_dim(full):
    memo = _ties[0]
    if memo is None:
        return None
    hit = memo["shards"].get(id(full))
    if hit is not None:
        return hit[1]
    return 0 if id(full) in memo["rows"] else None


def _shard(full, dim, parts, owner):
    """This rank's shard of twin parameter `full` (a new sharded Parameter,
    or the one already made for a tied twin)."""
    memo = _ties[0]
    if memo is not None and id(full) in memo["shards"]:
        _, d, p, shard, other = memo["shards"][id(full)]
        if (d, p) != (dim, parts):
            raise Unsplittable(f"its parameter of shape {tuple(full.shape)} is shared with "
                               f"{other}, which splits it along dimension {d}, not {dim}")
        return shard
    n = smp.tp_size()
    size = full.shape[dim]
    if size % parts or (size // parts) % n:
        what = f"{parts} blocks of " if parts > 1 else ""
        raise Unsplittable(f"dimension {dim} of its parameter of shape {tuple(full.shape)} "
                           f"({what}size {size // parts}) does not divide by the "
                           f"tensor-parallel degree {n}")
    shard = shard_parameter(full, dim, parts)
    if memo is not None:
        memo["shards"][id(full)] = (full, dim, parts, shard, owner)
    return shard


def _construct(self, twin, **cfg):
    """The body of every class's __init__: set up from a freshly built twin,
    an unsplittable one reported as SmpError naming the class."""
    try:
        self._setup(twin, **cfg)
    except Unsplittable as e:
        raise SmpError(_INVALID, f"smp.nn.{type(self).__name__}: cannot split over "
                                 f"tensor-parallel degree {smp.tp_size()}: {e}") from None


class _FromModule:
    @classmethod
    def from_module(cls, twin, **tp_config):
        """The distributed module for torch module `twin` (its parameters
        sharded for this TP rank; its replicated parameters and submodules
        reused). Raises Unsplittable (a ValueError) when it cannot split."""
        if type(twin) is not cls._TWIN and not isinstance(twin, cls._TWIN):
            raise TypeError(f"{cls.__name__}.from_module takes a {cls._TWIN.__name__}, not "
                            f"{type(twin).__name__}")
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m._setup(twin, **tp_config)
        m.train(twin.training)
        return m


def _no_config(cls, cfg):
    if cfg:
        raise Unsplittable(f"{cls.__name__} takes no tensor-parallel options "
                           f"({', '.join(sorted(cfg))} given)")


# ---- building blocks: shards of a Linear (internal; the twin's names) ----

class _ColumnLinear(nn.Module):
    """nn.Linear's output features split: replicated input -> this rank's
    output columns (weight and bias sharded along dimension 0)."""

    def __init__(self, twin, owner):
        super().__init__()
        self.in_features, self.out_features = twin.in_features, twin.out_features
        self.weight = _shard(twin.weight, 0, 1, owner)
        if twin.bias is not None:
            self.bias = _shard(twin.bias, 0, 1, owner)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(copy_to_tp(x), self.weight, self.bias)


class _RowLinear(nn.Module):
    """nn.Linear's input features split: this rank's input columns -> the
    full output (partial products summed over TP; bias replicated)."""

    def __init__(self, twin, owner):
        super().__init__()
        self.in_features, self.out_features = twin.in_features, twin.out_features
        self.weight = _shard(twin.weight, 1, 1, owner)
        self.register_parameter("bias", twin.bias)

    def forward(self, x):
        y = reduce_from_tp(F.linear(x, self.weight))
        return y + self.bias if self.bias is not None else y


# ---- nn.Linear ----

class DistributedLinear(_FromModule, nn.Module):
    """nn.Linear(in_features, out_features, bias=True, device=None,
    dtype=None), same forward and output (full). The weight is split by
    input features (`split == "input"`: each rank multiplies its slice of
    the input, one allreduce forward, one backward; the bias replicated)
    when in_features divides by the TP degree, else by output features
    (`split == "output"`: weight and bias rows split, the output gathered:
    one allgather forward, one allreduce backward). A weight tied to a
    vocabulary-parallel embedding is split by output features (rows)."""

    _TWIN = nn.Linear

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _construct(self, nn.Linear(in_features, out_features, bias, device=device, dtype=dtype))

    def _setup(self, twin, split=None):
        n, r = _tp()
        self.in_features, self.out_features = twin.in_features, twin.out_features
        owner = f"a {type(self).__name__}"
        if split is None:
            tied = _tied_dim(twin.weight)
            if tied is not None:
                split = "input" if tied == 1 else "output"
            elif twin.in_features % n == 0:
                split = "input"
            elif twin.out_features % n == 0:
                split = "output"
            else:
                raise Unsplittable(f"neither in_features {twin.in_features} nor out_features "
                                   f"{twin.out_features} divides by the tensor-parallel "
                                   f"degree {n}")
        if split not in ("input", "output"):
            raise Unsplittable(f"split={split!r}: 'input' or 'output'")
        self.split = split
        if split == "input":
            self.weight = _shard(twin.weight, 1, 1, owner)
            self.register_parameter("bias", twin.bias)
            self._start = r * (twin.in_features // n)
            self._width = twin.in_features // n
        else:
            self.weight = _shard(twin.weight, 0, 1, owner)
            self.register_parameter(
                "bias", _shard(twin.bias, 0, 1, owner) if twin.bias is not None else None)

    def forward(self, input):
        if self.split == "input":
            x = copy_to_tp(input).narrow(-1, self._start, self._width)
            y = reduce_from_tp(F.linear(x, self.weight))
            return y + self.bias if self.bias is not None else y
        return gather_from_tp(F.linear(copy_to_tp(input), self.weight, self.bias), -1)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, split={self.split}, tp={smp.tp_size()}")


# ---- nn.Embedding ----

class DistributedEmbedding(_FromModule, nn.Module):
    """nn.Embedding, vocabulary-parallel: TP rank r holds rows
    [r*V/n, (r+1)*V/n) of the table; a token outside contributes zeros and
    the group sums the lookups (one allreduce forward, none backward).
    padding_idx is supported; max_norm, scale_grad_by_freq and sparse are
    not (SmpError naming them)."""

    _TWIN = nn.Embedding

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 device=None, dtype=None):
        super().__init__()
        bad = _embedding_unsupported(max_norm, scale_grad_by_freq, sparse)
        if bad:
            raise SmpError(_INVALID, f"smp.nn.DistributedEmbedding: unsupported option(s) "
                                     f"{bad}")
        _construct(self, nn.Embedding(num_embeddings, embedding_dim, padding_idx, max_norm,
                                      norm_type, scale_grad_by_freq, sparse, _weight,
                                      device=device, dtype=dtype))

    def _setup(self, twin, **cfg):
        _no_config(type(self), cfg)
        bad = _embedding_unsupported(twin.max_norm, twin.scale_grad_by_freq, twin.sparse)
        if bad:
            raise Unsplittable(f"unsupported option(s) {bad}")
        n, r = _tp()
        V = twin.num_embeddings
        if V % n:
            raise Unsplittable(f"the vocabulary num_embeddings {V} does not divide by the "
                               f"tensor-parallel degree {n}")
        self.num_embeddings, self.embedding_dim = V, twin.embedding_dim
        self.padding_idx = twin.padding_idx
        self.max_norm, self.norm_type = twin.max_norm, twin.norm_type
        self.scale_grad_by_freq, self.sparse = twin.scale_grad_by_freq, twin.sparse
        self.vocab_start = r * (V // n)
        self.vocab_end = self.vocab_start + V // n
        self.weight = _shard(twin.weight, 0, 1, f"a {type(self).__name__}")

    def forward(self, input):
        outside = (input < self.vocab_start) | (input >= self.vocab_end)
        local = (input - self.vocab_start).masked_fill(outside, 0)
        pad = self.padding_idx
        pad = (pad - self.vocab_start
               if pad is not None and self.vocab_start <= pad < self.vocab_end else None)
        out = F.embedding(local, self.weight, pad).masked_fill(outside.unsqueeze(-1), 0.0)
        return reduce_from_tp(out)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s + f", rows [{self.vocab_start}, {self.vocab_end})"


def _embedding_unsupported(max_norm, scale_grad_by_freq, sparse):
    bad = [f"max_norm={max_norm}" if max_norm is not None else None,
           "scale_grad_by_freq=True" if scale_grad_by_freq else None,
           "sparse=True" if sparse else None]
    return ", ".join(b for b in bad if b)


# ---- nn.MultiheadAttention ----

def _distinct(fn, q, k, v):
    """fn applied once per distinct tensor object of (q, k, v), keeping
    which of them are the same object."""
    qq = fn(q)
    kk = qq if k is q else fn(k)
    vv = kk if v is k else (qq if v is q else fn(v))
    return qq, kk, vv


class DistributedMultiheadAttention(_FromModule, nn.Module):
    """nn.MultiheadAttention (torch 1.13's arguments and forward), heads
    split over TP: rank r computes heads [r*H/n, (r+1)*H/n) (the fused
    in_proj_weight/in_proj_bias split as three q, k, v blocks; separate
    q/k/v_proj_weight when kdim/vdim differ; bias_k/bias_v by heads) and
    out_proj is row-parallel (its bias replicated): one allreduce forward
    and one backward for self-attention. A 3-D attn_mask (N*H, L, S) is per
    head: each rank takes its heads'. need_weights with
    average_attn_weights gives the average over all H heads (one more
    allreduce), without it every head's weights (one allgather)."""

    _TWIN = nn.MultiheadAttention

    def __init__(self, embed_dim, num_heads, dropout=0., bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        _construct(self, nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, add_bias_kv,
                                               add_zero_attn, kdim, vdim, batch_first,
                                               device=device, dtype=dtype))

    def _setup(self, twin, **cfg):
        _no_config(type(self), cfg)
        n, r = _tp()
        H = twin.num_heads
        if H % n:
            raise Unsplittable(f"num_heads {H} does not divide by the tensor-parallel degree {n}")
        owner = f"a {type(self).__name__}"
        self.embed_dim, self.kdim, self.vdim = twin.embed_dim, twin.kdim, twin.vdim
        self._qkv_same_embed_dim = twin._qkv_same_embed_dim
        self.num_heads, self.dropout, self.batch_first = H, twin.dropout, twin.batch_first
        self.head_dim = twin.head_dim
        self.local_heads = H // n
        self.head_start = r * self.local_heads
        if twin._qkv_same_embed_dim:
            self.in_proj_weight = _shard(twin.in_proj_weight, 0, 3, owner)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = _shard(twin.q_proj_weight, 0, 1, owner)
            self.k_proj_weight = _shard(twin.k_proj_weight, 0, 1, owner)
            self.v_proj_weight = _shard(twin.v_proj_weight, 0, 1, owner)
            self.register_parameter("in_proj_weight", None)
        if twin.in_proj_bias is not None:
            self.in_proj_bias = _shard(twin.in_proj_bias, 0, 3, owner)
        else:
            self.register_parameter("in_proj_bias", None)
        if twin.bias_k is not None:
            self.bias_k = _shard(twin.bias_k, 2, 1, owner)
            self.bias_v = _shard(twin.bias_v, 2, 1, owner)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = twin.add_zero_attn
        self.out_proj = _RowLinear(twin.out_proj, owner)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True):
        is_batched = query.dim() == 3
        if is_batched and self.batch_first:
            query, key, value = _distinct(lambda t: t.transpose(1, 0), query, key, value)
        if not is_batched:
            query, key, value = _distinct(lambda t: t.unsqueeze(1), query, key, value)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if key_padding_mask is not None and key_padding_mask.dtype != torch.bool \
                and not torch.is_floating_point(key_padding_mask):
            raise AssertionError("only bool and floating types of key_padding_mask are supported")
        L, N, E = query.shape
        if E != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, "
                                 f"but got {E}")
        H, h, d = self.num_heads, self.local_heads, self.head_dim
        El = h * d

        # In-projection of this rank's heads (inputs' gradients summed over TP).
        same = query is key and key is value
        query, key, value = _distinct(copy_to_tp, query, key, value)
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b = self.in_proj_bias
        b_q, b_k, b_v = b.chunk(3) if b is not None else (None, None, None)
        if same and self._qkv_same_embed_dim:
            q, k, v = F.linear(query, self.in_proj_weight, b).chunk(3, dim=-1)
        else:
            q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

        S = key.shape[0]
        if attn_mask is not None:
            if attn_mask.dtype == torch.uint8:
                attn_mask = attn_mask.to(torch.bool)
            elif not (attn_mask.is_floating_point() or attn_mask.dtype == torch.bool):
                raise AssertionError(f"Only float, byte, and bool types are supported for "
                                     f"attn_mask, not {attn_mask.dtype}")
            if attn_mask.dim() == 2:
                if tuple(attn_mask.shape) != (L, S):
                    raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, "
                                       f"but should be {(L, S)}.")
                attn_mask = attn_mask.unsqueeze(0)
            elif attn_mask.dim() == 3:
                if tuple(attn_mask.shape) != (N * H, L, S):
                    raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, "
                                       f"but should be {(N * H, L, S)}.")
                attn_mask = attn_mask.view(N, H, L, S)[:, self.head_start:self.head_start + h] \
                    .reshape(N * h, L, S)
            else:
                raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")

        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.repeat(1, N, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, N, 1)])
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = F.pad(key_padding_mask, (0, 1))

        q = q.contiguous().view(L, N * h, d).transpose(0, 1)
        k = k.contiguous().view(k.shape[0], N * h, d).transpose(0, 1)
        v = v.contiguous().view(v.shape[0], N * h, d).transpose(0, 1)
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros((N * h, 1, d))], dim=1)
            v = torch.cat([v, v.new_zeros((N * h, 1, d))], dim=1)
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = F.pad(key_padding_mask, (0, 1))
        S = k.size(1)

        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise AssertionError(f"expecting key_padding_mask shape of {(N, S)}, but got "
                                     f"{tuple(key_padding_mask.shape)}")
            key_padding_mask = key_padding_mask.view(N, 1, 1, S).expand(-1, h, -1, -1) \
                .reshape(N * h, 1, S)
            if attn_mask is None:
                attn_mask = key_padding_mask
            elif attn_mask.dtype == torch.bool:
                attn_mask = attn_mask.logical_or(key_padding_mask)
            else:
                attn_mask = attn_mask.masked_fill(key_padding_mask, float("-inf"))
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill_(attn_mask,
                                                                                float("-inf"))

        q = q / math.sqrt(d)
        if attn_mask is not None:
            w = torch.baddbmm(attn_mask, q, k.transpose(-2, -1))
        else:
            w = torch.bmm(q, k.transpose(-2, -1))
        w = F.softmax(w, dim=-1)
        p = self.dropout if self.training else 0.0
        if p > 0.0:
            w = F.dropout(w, p=p)
        out = torch.bmm(w, v).transpose(0, 1).contiguous().view(L * N, El)
        out = reduce_from_tp(F.linear(out, self.out_proj.weight))
        if self.out_proj.bias is not None:
            out = out + self.out_proj.bias
        out = out.view(L, N, E)

        weights = None
        if need_weights:
            w = w.view(N, h, L, S)
            weights = (reduce_from_tp(w.sum(dim=1)) / H if average_attn_weights
                       else gather_from_tp(w, 1))
            if not is_batched:
                weights = weights.squeeze(0)
        if not is_batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(1, 0)
        return out, weights

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, heads "
                f"[{self.head_start}, {self.head_start + self.local_heads}) here")


# ---- nn.TransformerEncoderLayer ----

class DistributedTransformerEncoderLayer(_FromModule, nn.Module):
    """nn.TransformerEncoderLayer (torch 1.13's arguments; forward(src,
    src_mask=None, src_key_padding_mask=None)): self_attn a
    DistributedMultiheadAttention, linear1 column-parallel and linear2
    row-parallel (the feed-forward block: one allreduce forward, one
    backward), norms and dropouts the twin's (replicated). Always the
    twin's general path (no fused fast path)."""

    _TWIN = nn.TransformerEncoderLayer

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, device=None,
                 dtype=None):
        super().__init__()
        _construct(self, nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
            norm_first, device=device, dtype=dtype))

    def _setup(self, twin, **cfg):
        _no_config(type(self), cfg)
        n, _ = _tp()
        ff = twin.linear1.out_features
        if ff % n:
            raise Unsplittable(f"dim_feedforward {ff} does not divide by the tensor-parallel "
                               f"degree {n}")
        owner = f"a {type(self).__name__}"
        self.self_attn = DistributedMultiheadAttention.from_module(twin.self_attn)
        self.linear1 = _ColumnLinear(twin.linear1, owner)
        self.dropout = twin.dropout
        self.linear2 = _RowLinear(twin.linear2, owner)
        self.norm_first = twin.norm_first
        self.norm1, self.norm2 = twin.norm1, twin.norm2
        self.dropout1, self.dropout2 = twin.dropout1, twin.dropout2
        self.activation_relu_or_gelu = twin.activation_relu_or_gelu
        self.activation = twin.activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        if src_key_padding_mask is not None:
            if src_key_padding_mask.dtype != torch.bool and \
                    not torch.is_floating_point(src_key_padding_mask):
                raise AssertionError("only bool and floating types of key_padding_mask are "
                                     "supported")
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


# ---- the LM head (no torch twin) ----

class DistributedTransformerLMHead(nn.Module):
    """The output projection of a language model over a vocabulary split
    across TP, as DistributedEmbedding splits it: weight (vocab_size,
    hidden_size) like nn.Linear(hidden_size, vocab_size, bias)'s (and
    initialized as it), TP rank r holding rows [r*V/n, (r+1)*V/n).
    `embedding`: a DistributedEmbedding (or an nn.Embedding, split here)
    whose weight this head shares (tied; the same shard).

    forward(hidden, targets=None, reduction="mean", ignore_index=-100):
      - targets None: the full logits (..., vocab_size), gathered (one
        allgather; avoid for large vocabularies);
      - else the cross entropy of `targets` (hidden's shape without its last
        dimension, global token ids) computed from the split logits (the
        full logits never exist: three small allreduces): reduction "none"
        gives the per-token loss (0 where targets == ignore_index), "sum"
        its sum, "mean" its mean over the tokens not ignored (as
        F.cross_entropy). The loss is float32 and the same on every TP rank.

    `from_module(linear, embedding=None)` builds it from an
    nn.Linear(hidden_size, vocab_size)."""

    def __init__(self, hidden_size, vocab_size, bias=False, embedding=None, device=None,
                 dtype=None):
        super().__init__()
        twin = nn.Linear(hidden_size, vocab_size, bias, device=device, dtype=dtype)
        try:
            self._setup(twin, embedding)
        except Unsplittable as e:
            raise SmpError(_INVALID, f"smp.nn.DistributedTransformerLMHead: {e}") from None

    @classmethod
    def from_module(cls, linear, embedding=None):
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m._setup(linear, embedding)
        m.train(linear.training)
        return m

    def _setup(self, twin, embedding):
        n, r = _tp()
        V, Hd = twin.out_features, twin.in_features
        if V % n:
            raise Unsplittable(f"vocab_size {V} does not divide by the tensor-parallel "
                               f"degree {n}")
        self.hidden_size, self.vocab_size = Hd, V
        self.vocab_start = r * (V // n)
        owner = f"a {type(self).__name__}"
        if embedding is not None:
            if isinstance(embedding, nn.Embedding):
                embedding = DistributedEmbedding.from_module(embedding)
            if not isinstance(embedding, DistributedEmbedding):
                raise Unsplittable(f"embedding: a DistributedEmbedding or nn.Embedding, not "
                                   f"{type(embedding).__name__}")
            if (embedding.num_embeddings, embedding.embedding_dim) != (V, Hd):
                raise Unsplittable(f"the embedding's table is ({embedding.num_embeddings}, "
                                   f"{embedding.embedding_dim}), the head's weight ({V}, {Hd})")
            self.weight = embedding.weight
        else:
            self.weight = _shard(twin.weight, 0, 1, owner)
        if twin.bias is not None:
            self.bias = _shard(twin.bias, 0, 1, owner)
        else:
            self.register_parameter("bias", None)

    def forward(self, hidden, targets=None, reduction="mean", ignore_index=-100):
        logits = F.linear(copy_to_tp(hidden), self.weight, self.bias)
        if targets is None:
            return gather_from_tp(logits, -1)
        if reduction not in ("none", "sum", "mean"):
            raise ValueError(f"reduction={reduction!r}: 'none', 'sum' or 'mean'")
        loss = vocab_parallel_cross_entropy(logits, targets, self.vocab_start)
        if ignore_index is not None:
            keep = targets != ignore_index
            loss = loss.masked_fill(~keep, 0.0)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        count = keep.sum() if ignore_index is not None else targets.numel()
        return loss.sum() / count

    def extra_repr(self):
        return (f"hidden_size={self.hidden_size}, vocab_size={self.vocab_size}, "
                f"bias={self.bias is not None}, rows from {self.vocab_start}")


# ---- whole state dicts of distributed modules (outside DistributedModel) ----

def full_state_dict(module):
    """module.state_dict() with every sharded tensor gathered whole (the
    twin's state_dict); collective over TP_GROUP."""
    out = module.state_dict(keep_vars=True)
    for k, t in out.items():
        spec = getattr(t, "shard_spec", None)
        t = t.detach()
        out[k] = gather_full(t, spec) if spec is not None and smp.tp_size() > 1 else t.clone()
    return out


def load_full_state_dict(module, state_dict, strict=True):
    """Loads a full (twin's) state_dict into a module holding shards: each
    sharded tensor takes this rank's slice. No communication."""
    own = module.state_dict(keep_vars=True)
    local = {}
    for k, v in state_dict.items():
        t = own.get(k)
        spec = getattr(t, "shard_spec", None) if t is not None else None
        if spec is not None and tuple(v.shape) == tuple(spec[2]) and \
                tuple(v.shape) != tuple(t.shape):
            v = shard_dim(v, spec[0], spec[1])
        local[k] = v
    return module.load_state_dict(local, strict)
