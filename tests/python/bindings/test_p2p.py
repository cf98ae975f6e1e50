"""send / recv_into / isend / irecv around a ring, with tags."""
import numpy as np
import torch

import smp
from conftest import rank_data


def test_ring_blocking(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = (rank + 1) % size, (rank - 1) % size
    got = np.zeros(10, np.float64)
    payload = rank_data(rank, 10, np.float64)
    # Even ranks send first; odd ranks receive first (blocking calls).
    if rank % 2 == 0:
        smp.send(payload, nxt, tag=7)
        smp.recv_into(got, prev, tag=7)
    else:
        smp.recv_into(got, prev, tag=7)
        smp.send(payload, nxt, tag=7)
    np.testing.assert_array_equal(got, rank_data(prev, 10, np.float64))


def test_nonblocking_tags_out_of_order(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = (rank + 1) % size, (rank - 1) % size
    a, b = torch.zeros(5), torch.zeros(5)
    # Post the receives in the opposite order of the sends: tags pick.
    rb = smp.irecv(b, prev, tag=2)
    ra = smp.irecv(a, prev, tag=1)
    sa = smp.isend(torch.full((5,), rank + 0.5), nxt, tag=1)
    sb = smp.isend(torch.full((5,), rank + 0.25), nxt, tag=2)
    for r in (ra, rb, sa, sb):
        r.wait()
    assert torch.all(a == prev + 0.5) and torch.all(b == prev + 0.25)
