"""Automatic partitioning (smp.partitioning), without MPI: the tree, the
units, and the stages they get, checked against brute force.

Costs come from a fake trace: each leaf module sleeps for no time; its
self time is set directly, so the expected partitions are exact.
"""
import itertools

import pytest
import torch
import torch.nn as nn

import smp
from smp import partitioning as P


class Chain(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(w, w, bias=False) for w in widths)

    def forward(self, x):
        for layer in self.layers:
            x = torch.nn.functional.pad(x, (0, layer.in_features - x.shape[-1]))[..., :layer.in_features]
            x = layer(x)
        return x


def traced(model, times):
    """Nodes with each leaf's self time set from `times` (name -> seconds),
    activation bytes zeroed (memory = parameters only)."""
    nodes = P.build_tree(model)
    P.trace(nodes, lambda: model(torch.zeros(1, 4)))
    for n in nodes.values():
        n.self_time = times.get(n.name, 0.0)
        n.act_bytes = 0
    return nodes


def node_cost(nodes, name, weight):
    """A module's own mixed cost, as the partitioner defines it."""
    tc = sum(n.self_time for n in nodes.values())
    tm = sum(P.PARAM_MEMORY_FACTOR * n.param_bytes for n in nodes.values())
    n = nodes[name]
    return (weight * P.PARAM_MEMORY_FACTOR * n.param_bytes / tm
            + (1 - weight) * n.self_time / tc)


def stage_cost(plan, nodes, pp, weight):
    cost = [0.0] * pp
    for name in nodes:
        cost[plan[name]] += node_cost(nodes, name, weight)
    return cost


def brute_force(costs, pp):
    """The smallest largest-stage cost over every split of a sequence into
    pp contiguous non-empty stages."""
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(costs)), pp - 1):
        bounds = (0,) + cuts + (len(costs),)
        best = min(best, max(sum(costs[a:b]) for a, b in zip(bounds, bounds[1:])))
    return best


def test_heavy_module_gets_a_stage_of_its_own():
    model = Chain([4] * 8)
    times = {f"layers.{i}": 1.0 for i in range(8)}
    times["layers.3"] = 10.0
    nodes = traced(model, times)
    plan = P.plan(nodes, pp=3, memory_weight=0.0)
    heavy = plan["layers.3"]
    assert [i for i in range(8) if plan[f"layers.{i}"] == heavy] == [3]
    assert sorted(set(plan.values())) == [0, 1, 2]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("pp", [2, 3, 4])
def test_partition_matches_brute_force(seed, pp):
    g = torch.Generator().manual_seed(seed)
    n = 5 + seed % 4
    widths = [int(w) for w in torch.randint(2, 9, (n,), generator=g)]
    model = Chain(widths)
    times = {f"layers.{i}": float(t) for i, t in enumerate(torch.rand(n, generator=g) * 5)}
    weight = [0.0, 0.5, 1.0][seed % 3]
    nodes = traced(model, times)
    plan = P.plan(nodes, pp=pp, memory_weight=weight)
    layer_costs = [node_cost(nodes, f"layers.{i}", weight) for i in range(n)]
    got = max(stage_cost(plan, nodes, pp, weight))
    assert got == pytest.approx(brute_force(layer_costs, pp), rel=1e-9)
    # Stages are contiguous in execution order, each used.
    stages = [plan[f"layers.{i}"] for i in range(n)]
    assert stages == sorted(stages) and set(stages) == set(range(pp))


def test_split_only_as_deep_as_needed():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.b(self.a(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*[Block() for _ in range(4)])

        def forward(self, x):
            return self.blocks(x)

    model = Net()
    times = {f"blocks.{i}.{c}": 1.0 for i in range(4) for c in "ab"}
    nodes = traced(model, times)
    plan = P.plan(nodes, pp=2, memory_weight=0.0)
    # Whole blocks per stage: a block's two layers stay together.
    for i in range(4):
        assert plan[f"blocks.{i}.a"] == plan[f"blocks.{i}.b"] == plan[f"blocks.{i}"]
    assert [plan[f"blocks.{i}"] for i in range(4)] == [0, 0, 1, 1]


def test_tied_modules_share_a_stage():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(8, 4)
            self.mid = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))
            self.head = nn.Linear(4, 8, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids):
            x = self.emb(ids)
            for m in self.mid:
                x = m(x)
            return self.head(x)

    model = Tied()
    nodes = P.build_tree(model)
    P.trace(nodes, lambda: model(torch.zeros(1, 3, dtype=torch.long)))
    plan = P.plan(nodes, pp=2)
    assert plan["emb"] == plan["head"]
    assert set(plan.values()) == {0, 1}


def test_pins_and_manual_placement():
    with smp.partition(1):
        late = nn.Linear(4, 4)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), late, nn.Linear(4, 4))
    nodes = P.build_tree(model)
    P.trace(nodes, lambda: model(torch.zeros(1, 4)))
    plan = P.plan(nodes, pp=2)
    assert plan["2"] == 1
    manual = P.plan(nodes, pp=2, auto=False, default_partition=0)
    assert manual["2"] == 1 and manual["0"] == manual["1"] == manual["3"] == 0


def test_errors():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    nodes = P.build_tree(model)
    P.trace(nodes, lambda: model(torch.zeros(1, 4)))
    with pytest.raises(smp.SmpError, match="2 placeable modules but the pipeline has 3"):
        P.plan(nodes, pp=3)
    with pytest.raises(smp.SmpError, match="module '0' alone needs [0-9]+ bytes, more than the "
                                           "memory limit of 10 bytes"):
        P.plan(nodes, pp=2, memory_limit=10)
    with pytest.raises(smp.SmpError, match="integer >= 0"):
        smp.partition(-1)


@pytest.mark.parametrize("pp", [2, 3])
def test_zb_v_places_segments_in_a_v(pp):
    # 2 * pp equal layers, one per segment: segment g on stage g, then back
    # (chunk 1 of stage s is segment 2 * pp - 1 - s); chunk_of says which.
    model = Chain([4] * (2 * pp))
    nodes = traced(model, {f"layers.{i}": 1.0 for i in range(2 * pp)})
    chunk_of = {}
    plan = P.plan(nodes, pp=pp, chunks=2, memory_weight=0.0, placement="v", chunk_of=chunk_of)
    stages = [plan[f"layers.{i}"] for i in range(2 * pp)]
    assert stages == list(range(pp)) + list(reversed(range(pp)))
    assert [chunk_of[f"layers.{i}"] for i in range(2 * pp)] == [0] * pp + [1] * pp
    assert chunk_of[""] == 0 and plan[""] == 0  # the root follows its first child
    modulo = P.plan(nodes, pp=pp, chunks=2, memory_weight=0.0)
    assert [modulo[f"layers.{i}"] for i in range(2 * pp)] == list(range(pp)) * 2
