"""Every collective against NumPy references, on NumPy arrays and torch
tensors, for each dtype and op."""
import numpy as np
import pytest
import torch

import smp
from conftest import rank_data

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.int8, np.uint8]
OPS = {smp.SUM: lambda a: a.sum(0), smp.MAX: lambda a: a.max(0), smp.MIN: lambda a: a.min(0),
       smp.PROD: lambda a: a.prod(0)}


def all_inputs(size, n, dtype, op):
    # PROD and unsigned types: small positive values keep the result exact.
    low, high = (1, 3) if op == smp.PROD or dtype == np.uint8 else (-5, 6)
    return np.stack([rank_data(r, n, dtype, low, high) for r in range(size)])


def reference(inputs, op, dtype, size):
    if op == smp.AVG:
        s = inputs.astype(np.float64).sum(0)
        if np.issubdtype(dtype, np.integer):
            return np.trunc(s / size).astype(dtype)  # C's division: toward zero
        return (s / size).astype(dtype)
    return OPS[op](inputs.astype(np.float64)).astype(dtype)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [smp.SUM, smp.AVG, smp.MAX, smp.MIN, smp.PROD])
def test_allreduce(world, kind, dtype, op):
    rank, size = world
    n = 37
    inputs = all_inputs(size, n, dtype, op)
    expect = reference(inputs, op, dtype, size)
    buf = inputs[rank].copy()
    t = torch.from_numpy(buf.copy()) if kind == "torch" else buf
    out = smp.allreduce(t, op=op)
    assert out is t
    got = t.numpy() if kind == "torch" else t
    np.testing.assert_allclose(got, expect, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_allreduce_half_accumulates_in_float32(world, dtype):
    rank, size = world
    inputs = [torch.from_numpy(rank_data(r, 64, np.float32) / 7) for r in range(size)]
    t = inputs[rank].to(dtype)
    smp.allreduce(t)
    expect = sum(x.to(dtype).float() for x in inputs).to(dtype)
    assert torch.equal(t, expect)


def test_allreduce_multidim_and_requires_grad(world):
    rank, size = world
    p = torch.full((3, 4), float(rank + 1), requires_grad=True)
    smp.allreduce(p, op=smp.SUM)  # detached view shares the memory
    assert torch.all(p.detach() == size * (size + 1) / 2)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_reduce_scatter(world, kind):
    rank, size = world
    n = 5
    inputs = np.stack([rank_data(r, n * size, np.float32) for r in range(size)])
    expect = inputs.sum(0)[rank * n:(rank + 1) * n]
    inp = inputs[rank].copy()
    out = np.zeros(n, np.float32)
    if kind == "torch":
        inp, out = torch.from_numpy(inp), torch.from_numpy(out)
    smp.reduce_scatter(inp, out)
    np.testing.assert_array_equal(np.asarray(out), expect)


def test_reduce_scatter_in_place(world):
    rank, size = world
    n = 4
    inputs = np.stack([rank_data(r, n * size, np.float64) for r in range(size)])
    buf = torch.from_numpy(inputs[rank].copy())
    mine = buf[rank * n:(rank + 1) * n]
    smp.reduce_scatter(buf, mine, op=smp.MAX)
    np.testing.assert_array_equal(mine.numpy(), inputs.max(0)[rank * n:(rank + 1) * n])


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_allgather(world, kind):
    rank, size = world
    n = 6
    inputs = [rank_data(r, n, np.int64) for r in range(size)]
    inp, out = inputs[rank].copy(), np.zeros(n * size, np.int64)
    if kind == "torch":
        inp, out = torch.from_numpy(inp), torch.from_numpy(out)
    smp.allgather(inp, out)
    np.testing.assert_array_equal(np.asarray(out), np.concatenate(inputs))


def test_allgather_in_place(world):
    rank, size = world
    n = 3
    out = torch.zeros(n * size)
    out[rank * n:(rank + 1) * n] = torch.from_numpy(rank_data(rank, n, np.float32))
    smp.allgather(out[rank * n:(rank + 1) * n], out)
    expect = np.concatenate([rank_data(r, n, np.float32) for r in range(size)])
    np.testing.assert_array_equal(out.numpy(), expect)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_broadcast_every_root(world, kind):
    rank, size = world
    for root in range(size):
        buf = rank_data(rank, 9, np.float32, salt=root)
        t = torch.from_numpy(buf) if kind == "torch" else buf
        smp.broadcast(t, root=root)
        np.testing.assert_array_equal(np.asarray(t), rank_data(root, 9, np.float32, salt=root))


def test_gatherv(world):
    rank, size = world
    counts = [r + 1 for r in range(size)]
    inp = torch.from_numpy(rank_data(rank, counts[rank], np.float32))
    root = size - 1
    out = torch.zeros(sum(counts)) if rank == root else None
    smp.gatherv(inp, out, counts if rank == root else None, root=root)
    if rank == root:
        expect = np.concatenate([rank_data(r, counts[r], np.float32) for r in range(size)])
        np.testing.assert_array_equal(out.numpy(), expect)


def test_barrier_and_nonblocking(world):
    rank, size = world
    smp.barrier()
    t = torch.full((100,), float(rank))
    req = smp.iallreduce(t)
    req.wait()
    assert torch.all(t == sum(range(size)))
    inputs = [rank_data(r, 4 * size, np.float32) for r in range(size)]
    out = torch.zeros(4)
    smp.ireduce_scatter(torch.from_numpy(inputs[rank]), out).wait()
    np.testing.assert_array_equal(out.numpy(), np.sum(inputs, 0)[rank * 4:(rank + 1) * 4])
    g = torch.zeros(4 * size)
    r = smp.iallgather(torch.from_numpy(inputs[rank][:4].copy()), g)
    while not r.test():
        pass
    np.testing.assert_array_equal(g.numpy(), np.concatenate([x[:4] for x in inputs]))


def test_groups_match_layout(world):
    """Each group's members, gathered over the group, are the world ranks
    with the coordinates DESIGN.md's placement formula (DPT by default)
    gives."""
    rank, size = world
    pp, tp = smp.pp_size(), smp.tp_size()
    rdp = size // (pp * tp)
    assert smp.rdp_size() == rdp and smp.dp_size() == tp * rdp and smp.mp_size() == pp * tp

    def coords(r):
        return r // (pp * tp), (r // tp) % pp, r % tp  # rdp, pp, tp for DPT
    me = coords(rank)
    same = {smp.PP_GROUP: lambda c: (c[0], c[2]) == (me[0], me[2]),
            smp.TP_GROUP: lambda c: (c[0], c[1]) == (me[0], me[1]),
            smp.RDP_GROUP: lambda c: (c[1], c[2]) == (me[1], me[2]),
            smp.DP_GROUP: lambda c: c[1] == me[1],
            smp.MP_GROUP: lambda c: c[0] == me[0],
            smp.WORLD: lambda c: True}
    for group, pred in same.items():
        members = [r for r in range(size) if pred(coords(r))]
        got = torch.zeros(smp.size(group), dtype=torch.int32)
        smp.allgather(torch.tensor([rank], dtype=torch.int32), got, group=group)
        assert got.tolist() == members, group
        assert smp.rank(group) == members.index(rank)
    assert (smp.pp_rank(), smp.tp_rank(), smp.rdp_rank()) == (me[1], me[2], me[0])
