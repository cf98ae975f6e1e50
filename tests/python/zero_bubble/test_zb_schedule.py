"""The zero-bubble schedules from Python and from smp-schedule, in one
process without smp.init (pure queries): smp.pipeline.schedule's names
and op kinds, the V layout, and smp-schedule's JSON with split backward
costs against the closed forms (F = B = W = 1, free transfers)."""
import json
import os
import subprocess

import pytest

import smp
from smp.pipeline import (BACKWARD, BACKWARD_INPUT, BACKWARD_WEIGHT, FORWARD, RECV_ACTIVATION,
                          SEND_ACTIVATION, schedule, virtual_stage)

TOOL = os.environ.get("SMP_SCHEDULE_TOOL")


def compute(ops):
    return [(k, m, c) for k, m, c, _, _ in ops if k in (FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT)]


@pytest.mark.parametrize("name,chunks", [("zb-h1", 1), ("zb-v", 2)])
def test_every_op_once_in_order(name, chunks):
    pp, m = 4, 8
    for stage in range(pp):
        ops = schedule(name, stage, pp, m, chunks)
        assert not [o for o in ops if o[0] == BACKWARD]
        seen = {}
        for i, (k, mb, c) in enumerate(compute(ops)):
            seen.setdefault((mb, c), []).append(k)
        assert len(seen) == m * chunks
        assert all(v == [FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT] for v in seen.values())


def test_v_layout():
    # pp = 3: virtual stages 0 1 2 on ranks 0 1 2, then 3 4 5 on ranks 2 1 0.
    assert [virtual_stage("zb-v", s, 3, 0) for s in range(3)] == [0, 1, 2]
    assert [virtual_stage("zb-v", s, 3, 1) for s in range(3)] == [5, 4, 3]
    assert [virtual_stage("virtual", s, 3, 1) for s in range(3)] == [3, 4, 5]
    # zb-v: the last rank hands chunk 0's output to its own chunk 1 (no
    # send); rank 0 receives chunk 1's input from rank 1.
    last = schedule("zb-v", 2, 3, 3, 2)
    assert not [o for o in last if o[0] == SEND_ACTIVATION and o[2] == 0]
    first = schedule("zb-v", 0, 3, 3, 2)
    assert {(o[2], o[3]) for o in first if o[0] == RECV_ACTIVATION} == {(1, 1)}
    with pytest.raises(smp.SmpError):
        virtual_stage("zb-v", 0, 3, 2)


@pytest.mark.parametrize("args,why", [
    (("zb-h1", 0, 4, 3, 1), "microbatches >= pp"),
    (("zb-v", 0, 4, 4, 1), "2 chunks"),
    (("zb-h1", 0, 1, 4, 1), "pp >= 2"),
])
def test_bad_parameters(args, why):
    with pytest.raises(smp.SmpError, match=why):
        schedule(*args)


def tool(*args):
    if not TOOL:
        pytest.skip("SMP_SCHEDULE_TOOL not set")
    r = subprocess.run([TOOL] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("pp,m", [(4, 8), (8, 16)])
def test_smp_schedule_closed_forms(pp, m):
    unit = ["--pp", str(pp), "-m", str(m), "--forward", "1", "--backward-input", "1",
            "--backward-weight", "1"]
    f1b = tool("--kind", "interleaved", *unit)
    h1 = tool("--kind", "zb-h1", *unit)
    zv = tool("--kind", "zb-v", *unit)
    assert f1b["bubble_fraction"] == pytest.approx((pp - 1) / (m + pp - 1), abs=1e-12)
    assert h1["bubble_fraction"] == pytest.approx((pp - 1) / (3 * m + pp - 1), abs=1e-12)
    assert zv["chunks"] == 2
    assert zv["bubble_fraction"] <= 1.4 * (pp - 1) / (6 * m + pp - 1)
    assert h1["bubble_fraction"] <= 0.5 * f1b["bubble_fraction"]
    assert zv["bubble_fraction"] <= 0.3 * f1b["bubble_fraction"]
    assert h1["step_time"] == pytest.approx(3 * m + pp - 1)
    # 1F1B's activation memory, stage by stage.
    assert h1["peak_activations"] == [pp - s for s in range(pp)] == f1b["peak_activations"]
    assert max(zv["peak_activations"]) <= 2 * pp
    ops = {o["op"] for st in h1["stages"] for o in st}
    assert {"backward_input", "backward_weight"} <= ops and "backward" not in ops
    # Without --backward-input/--backward-weight, the backward splits in halves.
    halves = tool("--kind", "zb-h1", "--pp", str(pp), "-m", str(m), "--backward", "2")
    assert halves["step_time"] == h1["step_time"]
    assert halves["backward_input"] == halves["backward_weight"] == 1


def test_smp_schedule_weight_cost_is_its_own():
    # A costlier W lengthens the step by exactly the extra work where W
    # fills no bubble: pp=2, m=2, W=3 (the last stage's own chain:
    # F F B B W W on stage 1 after its first input at 1).
    a = tool("--kind", "zb-h1", "--pp", "2", "-m", "2", "--backward-input", "1",
             "--backward-weight", "1")
    b = tool("--kind", "zb-h1", "--pp", "2", "-m", "2", "--backward-input", "1",
             "--backward-weight", "3")
    busy_a = sum(o["end"] - o["start"] for st in a["stages"] for o in st
                 if o["op"] in ("forward", "backward_input", "backward_weight"))
    busy_b = sum(o["end"] - o["start"] for st in b["stages"] for o in st
                 if o["op"] in ("forward", "backward_input", "backward_weight"))
    assert busy_b - busy_a == pytest.approx(2 * 2 * 2)  # 2 stages x 2 microbatches x 2 more
    assert b["step_time"] > a["step_time"]
