"""Tensor parallelism for PyTorch over smp collectives on TP_GROUP.

Megatron-LM's scheme: a column-parallel linear splits its output features
over the tensor-parallel ranks, a row-parallel linear splits its input
features and sums the partial products, so an MLP or an attention block
needs one allreduce forward and one backward. The vocabulary-parallel
embedding and cross-entropy split the vocabulary, so the full logits never
exist on one rank.

Every rank of a TP group sees the same input (data is sharded by rdp_rank),
so replicated parameters (layer norms, row-parallel biases) get identical
gradients on every TP rank and need no synchronisation among them.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

import smp


def _tp_size(group):
    return smp.size(group)


def _mark_spec(param, dim, parts, full):
    # How the local tensor sits in the full one (a tensor or its shape; for
    # checkpoints and full state dicts): split along `dim`, in `parts`
    # blocks each split over the TP group.
    param.shard_spec = (dim, parts, tuple(getattr(full, "shape", full)))


def _mark_sharded(*params):
    # Split over the TP group (each rank holds a different slice), as
    # opposed to replicated on every TP rank: the sharded optimizer counts
    # replicated tensors once in the global gradient norm.
    for p in params:
        if p is not None:
            p.tensor_parallel = True


class _CopyToTP(torch.autograd.Function):
    """Identity forward; backward sums the input gradient over the group
    (each rank's partial gradient covers only its slice of the next layer)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        smp.allreduce(grad, smp.SUM, ctx.group)
        return grad, None


class _ReduceFromTP(torch.autograd.Function):
    """Sum of the group's partial results forward; identity backward."""

    @staticmethod
    def forward(ctx, x, group):
        out = x.contiguous().clone()
        smp.allreduce(out, smp.SUM, group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def copy_to_tp(x, group=smp.TP_GROUP):
    return _CopyToTP.apply(x, group) if _tp_size(group) > 1 else x


def reduce_from_tp(x, group=smp.TP_GROUP):
    return _ReduceFromTP.apply(x, group) if _tp_size(group) > 1 else x


def shard_dim(full, dim, parts=1, group=smp.TP_GROUP):
    """This TP rank's slice of `full` along `dim`. With parts > 1 the
    dimension is first cut into `parts` equal blocks (e.g. the q, k and v
    blocks of a fused attention projection) and the rank takes its slice of
    each, concatenated, so every block is split the same way."""
    n, r = smp.size(group), smp.rank(group)
    blocks = full.chunk(parts, dim) if parts > 1 else (full,)
    out = []
    for b in blocks:
        if b.shape[dim] % n:
            raise ValueError(f"dimension {dim} of size {b.shape[dim]} does not divide by "
                             f"the tensor-parallel degree {n}")
        k = b.shape[dim] // n
        out.append(b.narrow(dim, r * k, k))
    return torch.cat(out, dim).clone() if len(out) > 1 else out[0].clone()


def shard_parameter(full, dim, parts=1, group=smp.TP_GROUP):
    """A new Parameter holding this TP rank's shard of `full` (see
    shard_dim), marked sharded with its place in the full tensor. A `full`
    on the meta device (smp.delay_param_initialization) gives a meta shard
    that remembers its source, so that materializing it later initializes
    the full tensor as an eager build would and keeps this rank's slice."""
    if full.is_meta:
        shape = list(full.shape)
        n = smp.size(group)
        if (shape[dim] // parts) % n or shape[dim] % parts:
            raise ValueError(f"dimension {dim} of size {shape[dim]} does not divide by "
                             f"{parts} blocks times the tensor-parallel degree {n}")
        shape[dim] //= n
        p = nn.Parameter(torch.empty(shape, dtype=full.dtype, device="meta"),
                         requires_grad=full.requires_grad)
        p._smp_source = (full, dim, parts, group)
    else:
        p = nn.Parameter(shard_dim(full.detach(), dim, parts, group),
                         requires_grad=full.requires_grad)
    _mark_sharded(p)
    _mark_spec(p, dim, parts, full)
    return p


class ColumnParallelLinear(nn.Module):
    """y_local = x W_local^T + b_local: this rank's share of the output
    features. The input is replicated; its gradient is summed over the group."""

    def __init__(self, in_features, out_features, bias=True, group=smp.TP_GROUP):
        super().__init__()
        n = smp.size(group)
        if out_features % n:
            raise ValueError(f"out_features {out_features} does not divide by tp {n}")
        self.group = group
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features // n, in_features))
        self.bias = nn.Parameter(torch.empty(out_features // n)) if bias else None
        _mark_sharded(self.weight, self.bias)
        _mark_spec(self.weight, 0, 1, (out_features, in_features))
        if self.bias is not None:
            _mark_spec(self.bias, 0, 1, (out_features,))

    @classmethod
    def from_full(cls, linear, parts=1, group=smp.TP_GROUP):
        """The shard of a full nn.Linear (see shard_dim for `parts`)."""
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, group)
        with torch.no_grad():
            m.weight.copy_(shard_dim(linear.weight, 0, parts, group))
            _mark_spec(m.weight, 0, parts, linear.weight)
            if m.bias is not None:
                m.bias.copy_(shard_dim(linear.bias, 0, parts, group))
                _mark_spec(m.bias, 0, parts, linear.bias)
        return m

    def forward(self, x):
        return F.linear(copy_to_tp(x, self.group), self.weight, self.bias)


class RowParallelLinear(nn.Module):
    """y = sum over the group of x_local W_local^T, plus the (replicated)
    bias: the input arrives split by features (a column-parallel output)."""

    def __init__(self, in_features, out_features, bias=True, group=smp.TP_GROUP):
        super().__init__()
        n = smp.size(group)
        if in_features % n:
            raise ValueError(f"in_features {in_features} does not divide by tp {n}")
        self.group = group
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features // n))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        _mark_sharded(self.weight)
        _mark_spec(self.weight, 1, 1, (out_features, in_features))

    @classmethod
    def from_full(cls, linear, group=smp.TP_GROUP):
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, group)
        with torch.no_grad():
            m.weight.copy_(shard_dim(linear.weight, 1, 1, group))
            _mark_spec(m.weight, 1, 1, linear.weight)
            if m.bias is not None:
                m.bias.copy_(linear.bias)
        return m

    def forward(self, x):
        y = reduce_from_tp(F.linear(x, self.weight), self.group)
        return y + self.bias if self.bias is not None else y


class VocabParallelEmbedding(nn.Module):
    """Rows [r*V/n, (r+1)*V/n) of the embedding table on TP rank r; a token
    outside the range contributes zeros and the group sums the lookups."""

    def __init__(self, num_embeddings, embedding_dim, group=smp.TP_GROUP):
        super().__init__()
        n, r = smp.size(group), smp.rank(group)
        if num_embeddings % n:
            raise ValueError(f"vocabulary {num_embeddings} does not divide by tp {n}")
        self.group = group
        self.num_embeddings = num_embeddings
        self.start = r * (num_embeddings // n)
        self.end = self.start + num_embeddings // n
        self.weight = nn.Parameter(torch.empty(num_embeddings // n, embedding_dim))
        _mark_sharded(self.weight)
        _mark_spec(self.weight, 0, 1, (num_embeddings, embedding_dim))

    @classmethod
    def from_full(cls, emb, group=smp.TP_GROUP):
        m = cls(emb.num_embeddings, emb.embedding_dim, group)
        with torch.no_grad():
            m.weight.copy_(shard_dim(emb.weight, 0, 1, group))
            _mark_spec(m.weight, 0, 1, emb.weight)
        return m

    def forward(self, ids):
        outside = (ids < self.start) | (ids >= self.end)
        local = (ids - self.start).masked_fill(outside, 0)
        out = F.embedding(local, self.weight).masked_fill(outside.unsqueeze(-1), 0.0)
        return reduce_from_tp(out, self.group)


class _VocabParallelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, start, group):
        # Softmax over the whole vocabulary from three small allreduces: the
        # row max, the sum of exponentials and the target's logit.
        logits = logits.float()
        vmax = logits.max(dim=-1).values.contiguous()
        smp.allreduce(vmax, smp.MAX, group)
        shifted = logits - vmax.unsqueeze(-1)
        n_local = logits.shape[-1]
        local_t = targets - start
        mine = (local_t >= 0) & (local_t < n_local)
        idx = local_t.clamp(0, n_local - 1)
        target_logit = shifted.gather(-1, idx.unsqueeze(-1)).squeeze(-1) * mine
        target_logit = target_logit.contiguous()
        exp = shifted.exp()
        sum_exp = exp.sum(dim=-1).contiguous()
        smp.allreduce(target_logit, smp.SUM, group)
        smp.allreduce(sum_exp, smp.SUM, group)
        loss = sum_exp.log() - target_logit
        ctx.save_for_backward(exp.div_(sum_exp.unsqueeze(-1)), idx, mine)
        return loss

    @staticmethod
    def backward(ctx, grad):
        softmax, idx, mine = ctx.saved_tensors
        g = softmax.clone()
        g.scatter_add_(-1, idx.unsqueeze(-1), -mine.to(g.dtype).unsqueeze(-1))
        return g * grad.unsqueeze(-1), None, None, None


def vocab_parallel_cross_entropy(logits, targets, vocab_start, group=smp.TP_GROUP):
    """Per-token cross-entropy from logits split by vocabulary over the
    group: `logits` (..., V/n) holds columns [vocab_start, vocab_start+V/n)
    on this rank; `targets` (...) are global token ids. Same value and
    gradient as F.cross_entropy on the full logits, reduction='none'."""
    shape = targets.shape
    loss = _VocabParallelCrossEntropy.apply(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), vocab_start, group)
    return loss.view(shape)


# ---- for smp.nn (appended; the names above are unchanged) ----

class _GatherFromTP(torch.autograd.Function):
    """Every rank's slice concatenated along `dim` forward; backward keeps
    this rank's slice of the (replicated) gradient."""

    @staticmethod
    def forward(ctx, x, dim, group):
        ctx.dim, ctx.group = dim, group
        n = smp.size(group)
        buf = torch.empty((n,) + tuple(x.shape), dtype=x.dtype, device=x.device)
        smp.allgather(x.contiguous(), buf, group)
        return torch.cat(buf.unbind(0), dim)

    @staticmethod
    def backward(ctx, grad):
        n, r = smp.size(ctx.group), smp.rank(ctx.group)
        return grad.chunk(n, ctx.dim)[r].contiguous(), None, None


def gather_from_tp(x, dim=-1, group=smp.TP_GROUP):
    """The full tensor from every TP rank's equal slice along `dim` (rank
    order), differentiable: the gradient of the result must be the same on
    every rank of the group (it is when everything downstream is replicated)."""
    if _tp_size(group) == 1:
        return x
    return _GatherFromTP.apply(x, dim % x.dim(), group)


def gather_full(local, spec, group=smp.TP_GROUP):
    """The full tensor from every TP rank's shard, `spec` being a shard's
    shard_spec (dim, parts, full shape); collective over the group, no
    autograd. The inverse of shard_dim(full, dim, parts)."""
    dim, parts = spec[0], spec[1]
    n = smp.size(group)
    if n == 1:
        return local.detach().clone()
    buf = torch.empty((n,) + tuple(local.shape), dtype=local.dtype, device=local.device)
    smp.allgather(local.detach().contiguous(), buf, group)
    blocks = [b.chunk(parts, dim) for b in buf.unbind(0)]
    return torch.cat([torch.cat([b[q] for b in blocks], dim) for q in range(parts)], dim)
