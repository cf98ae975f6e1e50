"""Data parallelism: which samples a rank trains on, and gradient averaging.

Data is sharded by rdp_rank only, so every rank of a tensor-parallel group
(and every stage of a pipeline) sees the same samples (SageMaker's
prescaled batch, Megatron's default); the replicas that hold the same
parameters form RDP_GROUP, and that is the group gradients are averaged
over.
"""

import torch

import smp


def shard_batch(batch, group=smp.RDP_GROUP):
    """This replica's contiguous share of a global batch (first dimension)."""
    n, r = smp.size(group), smp.rank(group)
    if batch.shape[0] % n:
        raise ValueError(f"global batch {batch.shape[0]} does not divide by the "
                         f"data-parallel degree {n}")
    k = batch.shape[0] // n
    return batch[r * k:(r + 1) * k]


def allreduce_gradients(params, group=smp.RDP_GROUP, bucket_bytes=32 << 20):
    """Average every parameter's .grad over `group`, a few large buckets at
    a time (one allreduce per bucket instead of one per tensor: small
    messages cost latency, not bandwidth). Parameters without a gradient
    count as zero, so every rank issues the same allreduces."""
    if smp.size(group) == 1:
        return
    params = [p for p in params if p.requires_grad]
    bucket = []
    size = 0
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        bucket.append(p)
        size += p.numel() * p.element_size()
        if size >= bucket_bytes:
            _reduce_bucket(bucket, group)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket, group)


def _reduce_bucket(bucket, group):
    by_dtype = {}
    for p in bucket:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for dtype, ps in by_dtype.items():
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        smp.allreduce(flat, smp.AVG, group)
        off = 0
        for p in ps:
            n = p.numel()
            p.grad.copy_(flat[off:off + n].view_as(p.grad))
            off += n
