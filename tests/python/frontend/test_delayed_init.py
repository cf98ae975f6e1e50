"""smp.delay_param_initialization without MPI: what the record replays
against an eager build from the same seed (values, the random generator
afterwards, how much it holds at once), and what it refuses."""
import math

import pytest
import torch
import torch.nn as nn

import smp
from smp.delayed_init import delay_param_initialization, is_unallocated, materialize


class PositionalEncoding(nn.Module):
    """A buffer computed from factories and out-of-place arithmetic."""

    def __init__(self, d, n):
        super().__init__()
        pos = torch.arange(n).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(n, d)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)


class Net(nn.Module):
    """Children initialized by their own constructors, then again by the
    parent (GPT style), a tied head, a .data write, a parameter from a
    random factory and a buffer."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.pe = PositionalEncoding(16, 12)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)
                                    for _ in range(2))
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight
        self.scale = nn.Parameter(torch.randn(16) * 0.1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
        self.layers[0].linear1.bias.data.fill_(0.5)


def build(seed=7):
    torch.manual_seed(seed)   # seeded inside the block: replayed at that point
    return Net()


def everything(m):
    return {id(t) for t in list(m.parameters()) + list(m.buffers())}


def test_values_and_generator_equal_an_eager_build():
    eager = build()
    after_eager = torch.rand(4)
    with delay_param_initialization():
        m = build()
    after = torch.rand(4)
    assert is_unallocated(m)
    assert all(t.is_meta for t in m.parameters())
    assert torch.equal(after, after_eager), "the generator must end where an eager build leaves it"
    torch.manual_seed(123)
    materialize(m, everything(m), torch.device("cpu"))
    x = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(x, torch.rand(3)), "materializing must not move the generator"
    a, b = m.state_dict(), eager.state_dict()
    assert list(a) == list(b)
    for k in b:
        assert torch.equal(a[k], b[k]), k
    assert m.head.weight is m.emb.weight, "a tied parameter stays one object"


def test_only_own_tensors_are_kept_and_the_replay_holds_little():
    eager = build()
    with delay_param_initialization():
        m = build()
    own_modules = list(m.layers[1].modules())
    own = {id(t) for mod in own_modules for t in list(mod.parameters(recurse=False))}
    replaced, peak = materialize(m, own, torch.device("cpu"))
    sizes = {n: p.numel() for n, p in m.named_parameters()}
    for n, p in eager.named_parameters():
        if n.startswith("layers.1."):
            assert torch.equal(dict(m.named_parameters())[n], p), n
        else:
            assert sizes[n] == 0, f"{n} belongs to no one here but was allocated"
    total = sum(p.numel() * 4 for p in eager.parameters())
    largest = max(p.numel() * 4 for p in eager.parameters())
    # The parent re-initializes every weight after building it: an eager-
    # order replay holding everything would peak at the whole model.
    assert peak <= largest * 4, (peak, largest, total)
    assert peak < total / 2


def test_a_constructor_that_reads_a_value_is_refused():
    class Reads(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4))
            if self.w.sum().item() > 100:
                raise AssertionError("unreachable")

    with pytest.raises(smp.SmpError, match="outside the context"):
        with delay_param_initialization():
            Reads()


def test_disabled_is_an_eager_build():
    with delay_param_initialization(enabled=False):
        m = build()
    assert not is_unallocated(m)
