"""smp.reduce, scatterv, alltoallv, recv_any and created groups, on NumPy
arrays and torch tensors, against NumPy references."""
import numpy as np
import pytest
import torch

import smp
from conftest import rank_data


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_reduce(world, kind, dtype):
    rank, size = world
    inputs = np.stack([rank_data(r, 29, dtype, salt=5) for r in range(size)])
    root = size - 1
    wrap = torch.from_numpy if kind == "torch" else (lambda a: a)
    inp = wrap(inputs[rank].copy())
    out = wrap(np.zeros(29, dtype)) if rank == root else None
    got = smp.reduce(inp, out, op=smp.MAX, root=root)
    if rank == root:
        assert got is out
        np.testing.assert_array_equal(np.asarray(out), inputs.max(0))
    # In place on root.
    inp = inputs[rank].copy()
    smp.reduce(inp, inp if rank == 0 else None, op=smp.SUM, root=0)
    if rank == 0:
        np.testing.assert_array_equal(inp, inputs.sum(0).astype(dtype))


def test_scatterv_and_alltoallv(world):
    rank, size = world
    counts = [(r * 2 + 1) % 5 for r in range(size)]  # uneven: 1, 3, 0, 2
    full = np.arange(sum(counts), dtype=np.float64)
    out = np.full(counts[rank], -1.0)
    smp.scatterv(full if rank == 1 else None, counts if rank == 1 else None, out, root=1)
    start = sum(counts[:rank])
    np.testing.assert_array_equal(out, full[start:start + counts[rank]])
    # alltoallv: rank r sends (r + p) % 3 elements of value 10 r + p to rank p.
    send_counts = [(rank + p) % 3 for p in range(size)]
    recv_counts = [(p + rank) % 3 for p in range(size)]
    inp = torch.tensor([10 * rank + p for p in range(size) for _ in range(send_counts[p])], dtype=torch.int32)
    res = torch.full((sum(recv_counts),), -1, dtype=torch.int32)
    smp.alltoallv(inp, send_counts, res, recv_counts)
    expect = [10 * p + rank for p in range(size) for _ in range(recv_counts[p])]
    assert res.tolist() == expect


def test_recv_any(world):
    rank, size = world
    if rank == 0:
        sources = set()
        for _ in range(size - 1):
            buf = np.zeros(5, np.int32)
            src = smp.recv_any(buf, tag=7)
            assert buf.tolist() == [src] * 5
            sources.add(src)
        assert sources == set(range(1, size))
    else:
        smp.send(np.full(5, rank, np.int32), 0, tag=7)


def test_group_create_use_destroy(world):
    rank, size = world
    ranks = list(range(size))[::-1]  # group rank i = world rank size-1-i
    g = smp.group_create(ranks)
    assert g >= 64
    assert smp.rank(g) == size - 1 - rank and smp.size(g) == size
    t = torch.tensor([float(rank)])
    smp.allreduce(t, group=g)
    assert t.item() == size * (size - 1) / 2
    b = np.array([rank], np.int64)
    smp.broadcast(b, root=0, group=g)  # group rank 0 = the last world rank
    assert b[0] == size - 1
    # The tensor transport on a created group: group rank r sends to r + 1.
    me, n = smp.rank(g), smp.size(g)
    if me + 1 < n:
        smp.send_tensor(torch.full((2, 3), float(rank)), me + 1, group=g, tag=4)
    if me > 0:
        got = smp.recv_tensor(me - 1, group=g, tag=4)
        assert got.shape == (2, 3) and torch.all(got == ranks[me - 1])
    smp.group_set_timeout(g, 30)
    smp.barrier(group=g)
    smp.group_destroy(g)
    with pytest.raises(smp.SmpError, match="destroyed"):
        smp.barrier(group=g)
    with pytest.raises(smp.SmpError, match="listed twice"):
        smp.group_create([rank, rank])
    if rank == 0:  # a group of one
        solo = smp.group_create([0])
        x = np.ones(3, np.float32)
        smp.allreduce(x, group=solo)
        assert smp.size(solo) == 1 and x.tolist() == [1, 1, 1]
        smp.group_destroy(solo)
    smp.barrier()
