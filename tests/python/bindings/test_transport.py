"""The tensor transport (smp.send_tensor / recv_tensor / recv_tensor_into /
exchange_tensors): dtype and shape travel with the data, runtime-allocated
receives come back zero-copy, mismatches and bad arguments raise SmpError.
Every receiver recomputes what its peer sent from the peer's rank (the
independent reference). Plus a pure check that the pipeline runner's use of
exchange_tensors (sends waited for inside each exchange) cannot deadlock on
any schedule."""
import numpy as np
import pytest
import torch

import smp
from smp import pipeline


def expected(rank, dtype, shape, salt=0):
    """Rank `rank`'s tensor: small integers (exact in every dtype, bfloat16
    and int8 included), different per rank, shape, dtype and salt."""
    n = int(np.prod(shape)) if len(shape) else 1
    v = (torch.arange(n, dtype=torch.int64) * (rank + 2) + 3 * rank + salt) % 97 - 40
    return v.reshape(shape).to(dtype)


TORCH_CASES = [
    (torch.float32, (2, 3, 4)),
    (torch.float64, ()),
    (torch.bfloat16, (3, 1, 5)),
    (torch.int32, (7,)),
    (torch.int8, (0, 3)),
    (torch.float32, (4, 0, 2)),
]
NUMPY_CASES = [
    (np.float32, ()),
    (np.float64, (3, 2, 2)),
    (np.int32, (5,)),
    (np.int8, (2, 0)),
]


def ring(world):
    rank, size = world
    return (rank + 1) % size, (rank - 1) % size


def blocking_ring(rank, send, recv):
    # Even ranks send first, odd ones receive first: blocking calls around
    # a ring of any size complete (rank 0 ... size-1 even/odd chain).
    if rank % 2 == 0:
        send()
        return recv()
    got = recv()
    send()
    return got


@pytest.mark.parametrize("dtype,shape", TORCH_CASES)
def test_torch_recv_learns_dtype_and_shape(world, dtype, shape):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    mine = expected(rank, dtype, shape)
    got = blocking_ring(rank, lambda: smp.send_tensor(mine, nxt, tag=3),
                        lambda: smp.recv_tensor(prev, tag=3))
    assert isinstance(got, torch.Tensor)
    assert got.dtype == dtype and tuple(got.shape) == shape
    assert torch.equal(got, expected(prev, dtype, shape))


@pytest.mark.parametrize("dtype,shape", NUMPY_CASES)
def test_numpy_send_recv(world, dtype, shape):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    mine = expected(rank, torch.int64, shape).numpy().astype(dtype)
    got = blocking_ring(rank, lambda: smp.send_tensor(mine, nxt, tag=4),
                        lambda: smp._from_capsule(smp._smp.recv_tensor(prev, 0, 4), "numpy"))
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.dtype(dtype) and got.shape == shape
    np.testing.assert_array_equal(got, expected(prev, torch.int64, shape).numpy().astype(dtype))
    # A torch receiver of a NumPy sender gets the same dtype and values.
    got_t = blocking_ring(rank, lambda: smp.send_tensor(mine, nxt, tag=4),
                          lambda: smp.recv_tensor(prev, tag=4))
    assert got_t.dtype == torch.from_numpy(np.zeros(1, dtype)).dtype
    np.testing.assert_array_equal(got_t.numpy(), got)


def test_recv_into_and_requires_grad(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    mine = expected(rank, torch.float32, (3, 4)).requires_grad_()
    into = torch.full((3, 4), float("nan"))
    out = blocking_ring(rank, lambda: smp.send_tensor(mine, nxt, tag=5),
                        lambda: smp.recv_tensor_into(into, prev, tag=5))
    assert out is into
    assert torch.equal(into, expected(prev, torch.float32, (3, 4)))
    buf = np.full((2, 2), -1, np.int32)
    blocking_ring(rank, lambda: smp.send_tensor(expected(rank, torch.int32, (2, 2)), nxt, tag=6),
                  lambda: smp.recv_tensor_into(buf, prev, tag=6))
    np.testing.assert_array_equal(buf, expected(prev, torch.int32, (2, 2)).numpy())


def test_received_tensor_is_zero_copy_and_freed(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    shape = (64, 1024)  # 256 KiB: one buffer-cache size class of its own

    def one():
        return blocking_ring(rank, lambda: smp.send_tensor(expected(rank, torch.float32, shape),
                                                          nxt, tag=8),
                             lambda: smp._smp.recv_tensor(prev, 0, 8))

    cap = one()
    ptr, code, bits, cap_shape = smp._smp.capsule_info(cap)
    assert (code, bits, tuple(cap_shape)) == (2, 32, shape)  # kDLFloat
    t = smp._from_capsule(cap, "torch")
    assert t.data_ptr() == ptr  # torch wraps the runtime's buffer
    assert torch.equal(t, expected(prev, torch.float32, shape))
    held = one()  # t still alive: a different buffer
    assert smp._smp.capsule_info(held)[0] != ptr
    del t, cap
    # The deleter gave the buffer back to the runtime's cache, which
    # hands it out again (most recently freed first).
    cap = one()
    assert smp._smp.capsule_info(cap)[0] == ptr
    a = smp._from_capsule(cap, "numpy")
    assert a.__array_interface__["data"][0] == ptr
    np.testing.assert_array_equal(a, expected(prev, torch.float32, shape).numpy())
    del a, cap
    cap = one()  # freed through NumPy too
    assert smp._smp.capsule_info(cap)[0] == ptr
    del held, cap  # an unconsumed capsule frees its tensor as well
    cap = one()
    assert smp._smp.capsule_info(cap)[0] == ptr


def test_recv_into_mismatch_names_difference(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)

    def failing_recv(into):
        with pytest.raises(smp.SmpError) as e:
            smp.recv_tensor_into(into, prev, tag=9)
        return e.value

    send = lambda: smp.send_tensor(expected(rank, torch.float32, (2, 3)), nxt, tag=9)  # noqa: E731
    err = blocking_ring(rank, send, lambda: failing_recv(torch.zeros(3, 2)))
    assert err.status == smp.Status.PEER_FAILED
    msg = str(err)
    assert "float32[2, 3]" in msg and "float32[3, 2]" in msg and "dimension 0 differs (2 vs 3)" in msg
    err = blocking_ring(rank, send, lambda: failing_recv(torch.zeros(2, 3, dtype=torch.float64)))
    assert "dtype differs" in str(err)
    # The mismatched payloads were drained: the channel still pairs up.
    got = blocking_ring(rank, lambda: smp.send_tensor(expected(rank, torch.int8, (4,), 1), nxt, tag=9),
                        lambda: smp.recv_tensor(prev, tag=9))
    assert torch.equal(got, expected(prev, torch.int8, (4,), 1))


def test_exchange_ring_both_directions(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    # Two tensors each way (same tag: they match in order), mixed dtypes;
    # from prev into new tensors, from next into preallocated ones. With 2
    # ranks prev == next and tags keep the directions apart.
    sends = [(expected(rank, torch.float32, (2, 5), salt=1), nxt, 10),
             (expected(rank, torch.bfloat16, (3,), salt=2), nxt, 10),
             (expected(rank, torch.int32, (4, 1, 2), salt=3), prev, 11),
             (expected(rank, torch.float64, (), salt=4), prev, 11)]
    into_a = torch.empty(4, 1, 2, dtype=torch.int32)
    into_b = np.empty((), np.float64)
    # The receives listed in another order than the peers send them.
    recvs = [(into_a, nxt, 11), (None, prev, 10), (into_b, nxt, 11), (None, prev, 10)]
    got = smp.exchange_tensors(sends, recvs, smp.WORLD)
    assert len(got) == 4
    assert got[0] is into_a and got[2] is into_b
    assert torch.equal(into_a, expected(nxt, torch.int32, (4, 1, 2), salt=3))
    assert into_b == expected(nxt, torch.float64, (), salt=4).item()
    assert got[1].dtype == torch.float32 and torch.equal(got[1], expected(prev, torch.float32, (2, 5), salt=1))
    assert got[3].dtype == torch.bfloat16 and torch.equal(got[3], expected(prev, torch.bfloat16, (3,), salt=2))
    # Only receives, only sends, and nothing at all are fine too.
    if rank % 2 == 0:
        assert smp.exchange_tensors([(expected(rank, torch.int8, (3,)), nxt, 12)], [], smp.WORLD) == []
        assert smp.exchange_tensors([], [(None, prev, 12)], smp.WORLD)[0].tolist() == \
            expected(prev, torch.int8, (3,)).tolist()
    else:
        got = smp.exchange_tensors([], [(None, prev, 12)], smp.WORLD)
        assert torch.equal(got[0], expected(prev, torch.int8, (3,)))
        smp.exchange_tensors([(expected(rank, torch.int8, (3,)), nxt, 12)], [], smp.WORLD)
    assert smp.exchange_tensors([], [], smp.WORLD) == []


def test_exchange_deferred_sends_complete_later(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    # 4 MiB around the ring, sent in one exchange and received in the next:
    # far past MPI's eager limit, so a send that waited for its receive
    # inside the first exchange would never return.
    big = expected(rank, torch.float32, (1024, 1024), salt=5)
    got, sent = smp.exchange_tensors([(big, nxt, 15)], [], smp.WORLD, defer_sends=True)
    assert got == [] and isinstance(sent, smp.Request)
    del big  # the request keeps the sent tensor alive
    got, none = smp.exchange_tensors([], [(None, prev, 15)], smp.WORLD, defer_sends=True)
    assert torch.equal(got[0], expected(prev, torch.float32, (1024, 1024), salt=5))
    none.wait()
    sent.wait()
    assert sent.test() and none.test()  # finished requests stay finished
    with pytest.raises(smp.SmpError) as e:
        smp.exchange_tensors([(got[0], size, 15)], [], smp.WORLD, defer_sends=True)
    assert e.value.status == smp.Status.INVALID_ARGUMENT


def test_exchange_mismatch_raises_after_every_transfer(world):
    rank, size = world
    if size == 1:
        return
    nxt, prev = ring(world)
    sends = [(expected(rank, torch.float32, (4,)), nxt, 13), (expected(rank, torch.float32, (5,)), nxt, 14)]
    with pytest.raises(smp.SmpError) as e:
        smp.exchange_tensors(sends, [(None, prev, 13), (torch.zeros(6), prev, 14)], smp.WORLD)
    assert e.value.status == smp.Status.PEER_FAILED
    assert "float32[5]" in str(e.value) and "float32[6]" in str(e.value)
    smp.barrier()


def test_bad_arguments_raise_before_communicating(world):
    rank, size = world
    t = torch.zeros(3)
    with pytest.raises(smp.SmpError) as e:
        smp.send_tensor(t, size)
    assert e.value.status == smp.Status.INVALID_ARGUMENT and "peer" in str(e.value)
    with pytest.raises(smp.SmpError) as e:
        smp.recv_tensor(0, tag=16384)
    assert e.value.status == smp.Status.INVALID_ARGUMENT and "16383" in str(e.value)
    with pytest.raises(smp.SmpError) as e:
        smp.send_tensor(torch.zeros(3, 4).t(), 0)
    assert "contiguous" in str(e.value)
    with pytest.raises(smp.SmpError) as e:
        smp.send_tensor("not a tensor", 0)
    assert "expected a tensor" in str(e.value)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(smp.SmpError) as e:
        smp.recv_tensor_into(ro, 0)
    assert "read-only" in str(e.value)
    with pytest.raises(smp.SmpError) as e:
        smp.exchange_tensors([], [(None, -1, 0)], smp.WORLD)
    assert e.value.status == smp.Status.INVALID_ARGUMENT
    with pytest.raises(smp.SmpError) as e:
        smp._smp.exchange_tensors([(t, 0)], [], 0)
    assert "(tensor, peer, tag)" in str(e.value)


# ---- The runner's exchanges cannot deadlock (pure; no communication) ----
# Once a tensor is too large for MPI to buffer, a send completes only when
# its receive is posted. The runner leaves its sends in flight until the
# end of the step (exchange_tensors(defer_sends=True)); this model of the
# rendezvous shows the schedules then always finish, and that waiting for
# the sends in each exchange (plain exchange_tensors) would stall some.

SEND_KINDS = (pipeline.SEND_ACTIVATION, pipeline.SEND_GRADIENT)


def key_of(kind, m, c, stage, pp):
    """(direction, receiving virtual stage, microbatch): the same on both
    sides of a transfer."""
    g = c * pp + stage
    return {pipeline.SEND_ACTIVATION: (0, g + 1, m), pipeline.RECV_ACTIVATION: (0, g, m),
            pipeline.SEND_GRADIENT: (1, g - 1, m), pipeline.RECV_GRADIENT: (1, g, m)}[kind]


def listed_exchanges(ops):
    """The schedule's batches as the runner groups them: runs of transfers
    with one batch number, between computations."""
    out, prev = [], None
    for kind, m, c, peer, batch in ops:
        if kind in (pipeline.FORWARD, pipeline.BACKWARD):
            prev = None
            continue
        if batch != prev:
            out.append([])
            prev = batch
        out[-1].append((kind, m, c, peer))
    return out


def model(exchanges, stage, pp):
    return [[(kind in SEND_KINDS, key_of(kind, m, c, stage, pp), peer) for kind, m, c, peer in ex]
            for ex in exchanges]


def deadlocks(stages, deferred_sends):
    """Run every stage's exchanges as the transport does (all posted,
    headers awaited in order, each payload receive posted once its header
    and all earlier ones arrived) with rendezvous sends (a send completes
    only once its payload receive is posted). An exchange ends when its
    receives have, and its sends too unless deferred_sends. Returns the
    stuck stages."""
    pos = [0] * len(stages)

    def posted_send(stage, key):
        return any(s and k == key for ex in stages[stage][:pos[stage] + 1] for s, k, _ in ex)

    def payload_posted(stage, key):
        done = stages[stage][:pos[stage]]
        if any(not s and k == key for ex in done for s, k, _ in ex):
            return True
        if pos[stage] == len(stages[stage]):
            return False
        for s, k, peer in stages[stage][pos[stage]]:
            if s:
                continue
            if not posted_send(peer, k):
                return False  # this header (and every later payload) waits
            if k == key:
                return True
        return False

    progress = True
    while progress:
        progress = False
        for st, ex in enumerate(stages):
            if pos[st] == len(ex):
                continue
            cur = ex[pos[st]]
            if all(posted_send(peer, k) if not s else deferred_sends or payload_posted(peer, k)
                   for s, k, peer in cur):
                pos[st] += 1
                progress = True
    return [st for st in range(len(stages)) if pos[st] < len(stages[st])]


def test_deadlock_model_detects_a_cycle():
    # Both stages send first, in an exchange of their own, then receive:
    # with rendezvous sends that is the classic deadlock, unless the sends
    # are left in flight.
    a = [[(True, (0, 1, 0), 1)], [(False, (1, 0, 0), 1)]]
    b = [[(True, (1, 0, 0), 0)], [(False, (0, 1, 0), 0)]]
    assert deadlocks([a, b], deferred_sends=False) == [0, 1]
    assert deadlocks([a, b], deferred_sends=True) == []
    # A receive listed first holds up a later one's payload until its header
    # arrives: stage 0 waits for stage 2, which waits on stage 1's send to 0.
    s0 = [[(False, (0, 0, 0), 2), (False, (0, 0, 1), 1)]]
    s1 = [[(True, (0, 0, 1), 0)], [(False, (0, 1, 9), 2)]]
    s2 = [[(True, (0, 1, 9), 1)], [(True, (0, 0, 0), 0)]]
    assert deadlocks([s0, s1, s2], deferred_sends=False) == [0, 1, 2]
    s0_ordered = [[(False, (0, 0, 1), 1), (False, (0, 0, 0), 2)]]
    assert deadlocks([s0_ordered, s1, s2], deferred_sends=False) == []
    # A receive nobody sends stalls whatever the sends do.
    assert deadlocks([[[(False, (0, 1, 5), 1)]], [[]]], deferred_sends=True) == [0]


def schedule_cases(pp):
    cases = []
    for m in range(1, 9):
        for chunks in (1, 2, 3):
            cases.append(("simple", m, chunks, 0))
        for active in range(0, pp + 3):
            cases.append(("interleaved", m, 1, active))
    for m in range(pp, 3 * pp + 1, pp):
        for chunks in (1, 2, 3):
            cases.append(("virtual", m, chunks, 0))
    return cases


@pytest.mark.parametrize("pp", [2, 3, 4])
def test_runner_exchanges_cannot_deadlock(pp):
    blocking_stalls = 0
    for name, m, chunks, active in schedule_cases(pp):
        listed = [model(listed_exchanges(pipeline.schedule(name, s, pp, m, chunks, active)), s, pp)
                  for s in range(pp)]
        assert deadlocks(listed, deferred_sends=True) == [], (name, pp, m, chunks, active)
        blocking_stalls += deadlocks(listed, deferred_sends=False) != []
    # Why the sends are deferred: several chunks with microbatches >= 2 * pp
    # stall when each exchange waits for its sends.
    assert blocking_stalls > 0


# ---- The runner over WORLD (every rank a stage) vs one process ----

class Block(torch.nn.Module):
    """Virtual stage g of a chain: tanh(W x + b); the last one returns the
    mean squared error against the targets."""

    def __init__(self, g, width, last):
        super().__init__()
        torch.manual_seed(100 + g)
        self.lin = torch.nn.Linear(width, width)
        self.last = last

    def forward(self, x, y=None):
        h = torch.tanh(self.lin(x))
        return ((h - y) ** 2).mean() if self.last else h


RUNNER_CASES = [  # schedule, chunks, microbatches (x stages), active, act_shape given
    ("simple", 1, 2, 0, False),
    ("interleaved", 1, 2, 0, False),
    ("interleaved", 1, 2, 1, True),
    ("simple", 2, 2, 0, False),   # stalls if each exchange waits for its sends
    ("virtual", 2, 2, 0, False),  # likewise
    ("virtual", 2, 1, 0, True),
]


@pytest.mark.parametrize("name,chunks,mb_per_stage,active,shaped", RUNNER_CASES)
def test_runner_matches_one_process(world, name, chunks, mb_per_stage, active, shaped):
    rank, size = world
    width, rows = 64, 32  # 8 KiB activations: past MPI's eager limit, so sends rendezvous
    M = mb_per_stage * size
    virtual = size * chunks
    mine = [Block(c * size + rank, width, c * size + rank == virtual - 1) for c in range(chunks)]
    gen = torch.Generator().manual_seed(7)
    inputs = [torch.randn(rows, width, generator=gen) for _ in range(M)]
    targets = [torch.randn(rows, width, generator=gen) for _ in range(M)]
    runner = pipeline.PipelineRunner(mine, act_shape=(rows, width) if shaped else None,
                                     schedule=name, group=smp.WORLD, active_microbatches=active)
    losses = runner.run(inputs, targets)

    # The same chain in this process.
    ref = [Block(g, width, g == virtual - 1) for g in range(virtual)]
    ref_losses = []
    for x, y in zip(inputs, targets):
        for b in ref[:-1]:
            x = b(x)
        loss = ref[-1](x, y)
        (loss / M).backward()
        ref_losses.append(loss.item())
    assert (losses is not None) == (rank == (virtual - 1) % size)
    if losses is not None:
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for c, block in enumerate(mine):
        for p, q in zip(block.parameters(), ref[c * size + rank].parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
