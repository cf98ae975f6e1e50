"""smp._smp.pipeline_schedule (the runtime's schedule, smp.h) against
expectations derived from the schedules' definitions; a pure query, so it
runs in one process without smp.init."""
import pytest

import smp
from smp.pipeline import (BACKWARD, FORWARD, RECV_ACTIVATION, RECV_GRADIENT, SEND_ACTIVATION,
                          SEND_GRADIENT, schedule)


def compute(ops):
    return [("F" if k == FORWARD else "B", m) for k, m, _, _, _ in ops if k in (FORWARD, BACKWARD)]


def comm_around(ops, i, after):
    """The transfers between compute op i and the next (after) or the
    previous (not after) compute op."""
    step = 1 if after else -1
    out, j = [], i + step
    while 0 <= j < len(ops) and ops[j][0] not in (FORWARD, BACKWARD):
        out.append(ops[j])
        j += step
    return out


def check_batches(ops):
    batches = [b for k, _, _, _, b in ops if k not in (FORWARD, BACKWARD)]
    assert all(b >= 0 for b in batches) and batches == sorted(batches)
    assert all(b == -1 and p == -1 for k, _, _, p, b in ops if k in (FORWARD, BACKWARD))


def test_gpipe_two_stages():
    # Stage 0 (first): F0 F1 then both backwards; each forward's output goes
    # to stage 1, each backward first receives its gradient from stage 1.
    s0 = smp._smp.pipeline_schedule(0, 2, 0, 2, 1, 0)
    assert compute(s0)[:2] == [("F", 0), ("F", 1)]
    assert sorted(compute(s0)[2:]) == [("B", 0), ("B", 1)]
    for i, (k, m, c, _, _) in enumerate(s0):
        if k == FORWARD:
            assert [(o[0], o[1], o[2], o[3]) for o in comm_around(s0, i, True)
                    if o[0] == SEND_ACTIVATION] == [(SEND_ACTIVATION, m, 0, 1)]
        if k == BACKWARD:
            assert [(o[0], o[1], o[2], o[3]) for o in comm_around(s0, i, False)
                    if o[0] == RECV_GRADIENT] == [(RECV_GRADIENT, m, 0, 1)]
    assert not [o for o in s0 if o[0] in (RECV_ACTIVATION, SEND_GRADIENT)]
    assert len(s0) == 8
    check_batches(s0)
    # Stage 1 (last): receives each activation before its forward, sends
    # each input gradient after its backward, nothing else.
    s1 = schedule("simple", 1, 2, 2)
    assert compute(s1)[:2] == [("F", 0), ("F", 1)]
    for i, (k, m, _, _, _) in enumerate(s1):
        if k == FORWARD:
            assert [o[:4] for o in comm_around(s1, i, False)] == [(RECV_ACTIVATION, m, 0, 0)]
        if k == BACKWARD:
            assert [o[:4] for o in comm_around(s1, i, True)] == [(SEND_GRADIENT, m, 0, 0)]
    assert len(s1) == 8
    check_batches(s1)


def test_1f1b_order():
    # PipeDream-flush: stage s warms up with pp - s - 1 extra forwards, then
    # alternates, then drains.
    assert compute(schedule("interleaved", 0, 2, 3)) == \
        [("F", 0), ("F", 1), ("B", 0), ("F", 2), ("B", 1), ("B", 2)]
    assert compute(schedule("interleaved", 1, 2, 3)) == \
        [("F", 0), ("B", 0), ("F", 1), ("B", 1), ("F", 2), ("B", 2)]
    # One stage: no transfers at all.
    assert schedule("interleaved", 0, 1, 2) == [(FORWARD, 0, 0, -1, -1), (BACKWARD, 0, 0, -1, -1),
                                                (FORWARD, 1, 0, -1, -1), (BACKWARD, 1, 0, -1, -1)]


def test_virtual_every_chunk_once():
    pp, m, chunks = 2, 4, 2
    for s in range(pp):
        ops = schedule("virtual", s, pp, m, chunks)
        for kind in (FORWARD, BACKWARD):
            got = sorted((o[1], o[2]) for o in ops if o[0] == kind)
            assert got == [(mb, c) for mb in range(m) for c in range(chunks)]
        check_batches(ops)


@pytest.mark.parametrize("args", [
    (7, 2, 0, 2, 1, 0),   # not a schedule kind
    (0, 0, 0, 2, 1, 0),   # pp < 1
    (0, 2, 2, 2, 1, 0),   # stage outside 0..pp-1
    (0, 2, -1, 2, 1, 0),
    (0, 2, 0, 0, 1, 0),   # no microbatches
    (1, 2, 0, 2, 2, 0),   # interleaved takes one chunk
    (0, 2, 0, 2, 1, 3),   # active cap only for interleaved
    (2, 2, 0, 3, 2, 0),   # virtual: microbatches not a multiple of pp
])
def test_bad_arguments(args):
    with pytest.raises(smp.SmpError) as e:
        smp._smp.pipeline_schedule(*args)
    assert e.value.status == smp.Status.INVALID_ARGUMENT
    assert "smp_pipeline_schedule" in str(e.value)
