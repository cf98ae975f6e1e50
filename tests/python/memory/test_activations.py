"""smp.activations without MPI: checkpointing a plain module (every
strategy, bit-identical with dropout, the bytes it keeps), its bad input,
and the offload engine's order and horizon (fed by hand).

    python3 -m pytest -q test_activations.py
"""
import pytest
import torch
import torch.nn as nn

import smp
from smp import activations as A

H = 8


def net(k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Sequential(nn.Linear(H, 4 * H), nn.GELU(), nn.Dropout(0.3),
                                         nn.Linear(4 * H, H)) for _ in range(k)])


def train(model, x, meter=None):
    torch.manual_seed(1)
    x = x.clone().requires_grad_()
    if meter is None:
        out = model(x)
        live = None
    else:
        with meter.hooks():
            out = model(x)
            live = meter.live
    (out ** 2).sum().backward()
    return out.detach(), [p.grad for p in model.parameters()], x.grad, live


@pytest.mark.parametrize("strategy", ["each", "contiguous", "group_2", "group_3", "module"])
def test_bit_identical_and_smaller(strategy):
    x = torch.randn(16, H)
    base = train(net(), x, A.SavedMemory())
    model = net()
    if strategy == "module":
        A.set_activation_checkpointing(model[1])
    else:
        A.set_activation_checkpointing(model, strategy=strategy)
    with A.SavedMemory(model.parameters()) as meter:
        got = train(model, x, meter)
    assert torch.equal(base[0], got[0])
    assert all(torch.equal(a, b) for a, b in zip(base[1], got[1]))
    assert torch.equal(base[2], got[2])
    act = 16 * H * 4  # one block's input
    held = {"each": 4 * act, "contiguous": act, "group_2": 2 * act, "group_3": 2 * act}
    if strategy in held:  # what the forward leaves: the regions' inputs
        assert got[3] == held[strategy]
    assert got[3] < base[3]
    assert meter.live == 0  # everything released after the backward


def test_kwargs_tuples_nested_and_no_grad():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(H, H)
            self.drop = nn.Dropout(0.5)

        def forward(self, pair, scale=1.0, extra=None):
            a, b = pair
            return self.drop(self.lin(a) * scale + b), extra

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            y, _ = self.inner((x, x * 2), scale=0.5, extra="kept")
            return y

    torch.manual_seed(0)
    ref = Outer()
    torch.manual_seed(0)
    ck = Outer()
    A.set_activation_checkpointing(ck.inner)
    A.set_activation_checkpointing(ck)  # nested: the inner runs plainly inside
    x = torch.randn(4, H)
    outs = []
    for m in (ref, ck):
        torch.manual_seed(3)
        xi = x.clone().requires_grad_()
        y = m(xi)
        y.sum().backward()
        outs.append((y.detach(), xi.grad, m.inner.lin.weight.grad))
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    with torch.no_grad():
        assert ck(x).shape == (4, H)
    assert ck.inner((x, x), extra=1)[1] == 1


def test_in_place_input_is_an_error():
    lin = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(H, H))
    A.set_activation_checkpointing(lin)
    x = torch.randn(3, H).requires_grad_()
    with pytest.raises(smp.SmpError, match="modified in place"):
        lin(x * 1.0)


def test_bad_strategy_and_module_list():
    with pytest.raises(smp.SmpError, match="'each', 'contiguous' or 'group_N'"):
        A.set_activation_checkpointing(net(), strategy="group_0")
    with pytest.raises(smp.SmpError, match="needs an nn.Sequential"):
        A.set_activation_checkpointing(nn.ModuleList([nn.Linear(2, 2)]), strategy="contiguous")
    with pytest.raises(smp.SmpError, match="takes a torch.nn.Module"):
        A.set_activation_checkpointing(lambda x: x)
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    A.set_activation_checkpointing(ml)  # each child
    assert all("_smp_ckpt" in m.__dict__ for m in ml)


def regions(mbs, per_mb=2):
    """Regions run by hand, per microbatch, in forward order."""
    out = {}
    for mb in mbs:
        out[mb] = []
        for i in range(per_mb):
            r = A.Region(lambda t: (t * 2).sin(), True, f"r{mb}.{i}")
            x = torch.full((4,), float(mb * 10 + i)).requires_grad_()
            y = r.run((x,), {})
            out[mb].append((r, x, y))
    return out


def drive(order, horizon, forward=(0, 1, 2, 3), actual=None):
    eng = A.Offloader(horizon, "cpu")
    eng.reset(order)
    rs = {}
    for mb in forward:
        rs.update(regions([mb]))
        for r, _, _ in rs[mb]:
            eng.saved(r, mb)
    A._engine[0] = eng
    try:
        for mb in actual or order:
            eng.backward_pass(mb)
            for r, x, y in reversed(rs[mb]):
                y.sum().backward()
                assert torch.equal(x.grad, 2 * (2 * x.detach()).cos())
    finally:
        A._engine[0] = None
    return eng


def test_offloader_interleaved_horizon_1():
    eng = drive([0, 1, 2, 3], 1)
    assert eng.log == [
        ("order", [0, 1, 2, 3]),
        ("keep", 0, 0), ("keep", 0, 1), ("keep", 1, 0), ("keep", 1, 1),
        ("offload", 2, 0), ("offload", 2, 1), ("offload", 3, 0), ("offload", 3, 1),
        ("backward", 0), ("load", 0, 1, "kept"), ("load", 0, 0, "kept"),
        ("backward", 1), ("prefetch", 2, 0), ("prefetch", 2, 1),
        ("load", 1, 1, "kept"), ("load", 1, 0, "kept"),
        ("backward", 2), ("prefetch", 3, 0), ("prefetch", 3, 1),
        ("load", 2, 1, "prefetched"), ("load", 2, 0, "prefetched"),
        ("backward", 3), ("load", 3, 1, "prefetched"), ("load", 3, 0, "prefetched")]


def test_offloader_simple_order_horizon_2():
    eng = drive([3, 0, 1, 2], 2, forward=(0, 1, 2, 3))
    # 'simple': the last microbatch's backward first; 3, 0, 1 stay.
    assert [e for e in eng.log if e[0] in ("offload", "prefetch", "backward")] == [
        ("offload", 2, 0), ("offload", 2, 1), ("backward", 3), ("backward", 0),
        ("prefetch", 2, 0), ("prefetch", 2, 1), ("backward", 1), ("backward", 2)]
    assert all(e[3] != "late" for e in eng.log if e[0] == "load")


def test_offloader_late_load_and_learnt_order():
    # The step ran in another order than expected: what was not prefetched
    # loads when needed, and the next step expects the order it saw.
    eng = drive([0, 1, 2, 3], 1, actual=[0, 3, 1, 2])
    loads = {e[1]: e[3] for e in eng.log if e[0] == "load"}
    assert loads[2] == "late" and loads[3] == "prefetched"
    eng.reset([0, 1, 2, 3])
    assert eng.order == [0, 3, 1, 2]
