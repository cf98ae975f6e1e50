#!/usr/bin/env python3
"""smp.nn's distributed modules against their torch twins, and the swap
(smp.tensor_parallelism / set_tensor_parallelism / tp_register_with_module),
on every rank of one TP group under mpirun (tp = the world size):

    mpirun -np 3 -x SMP_TP_SIZE=3 python3 modules_check.py [--only NAME]

Each case builds the torch twin from a seed, a deep copy as the
one-process reference, and the distributed module from the twin
(from_module) or from the same constructor arguments and seed; with the
same inputs on every rank it requires, within 1e-5 relative (max |a-b| /
max |b|): the outputs (and attention weights), the inputs' gradients and
every parameter's full gradient (shards gathered) for a random upstream
gradient; full_state_dict() equal to the twin's state_dict, and the
reference's state_dict loaded into a distributed module built from another
seed giving the reference's outputs. Dimensions divide by 2 and 3 (the
sizes run). Bad input: an unsplittable module raises smp.SmpError naming
it (qualified name) and the reason, on every rank.

Exit 0 on every rank only if every case passed on every rank.
"""
import argparse
import copy
import sys
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

import smp

TOL = 1e-5
failures = []
counts = {"cases": 0, "comparisons": 0}


def log(msg):
    if smp.rank() == 0:
        print(msg, flush=True)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        return float("inf")
    if b.numel() == 0:
        return 0.0
    finite = torch.isfinite(b)
    if not torch.equal(finite, torch.isfinite(a)):
        return float("inf")
    a, b = a[finite], b[finite]
    if b.numel() == 0:
        return 0.0
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def expect(case, what, got, want, tol=TOL):
    counts["comparisons"] += 1
    if got is None or want is None:
        if got is not want:
            failures.append(f"{case}: {what}: one is None ({got is None}, {want is None})")
        return
    d = rel(got, want)
    if not d <= tol:
        failures.append(f"{case}: {what}: relative difference {d:.3e} > {tol:g} "
                        f"(shapes {tuple(got.shape)} / {tuple(want.shape)})")


def expect_true(case, what, cond):
    counts["comparisons"] += 1
    if not cond:
        failures.append(f"{case}: {what}")


def full_grads(module):
    """{name: full gradient} (shards gathered), collective over TP."""
    from smp.tensor_parallel import gather_full
    out = {}
    for n, p in module.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        spec = getattr(p, "shard_spec", None)
        out[n] = gather_full(g, spec) if spec is not None else g.detach().clone()
    return out


def as_list(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def fresh(x):
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.detach().clone().requires_grad_(True)
    return x


def compare_pair(case, ref, dist, inputs, call, upstream_seed=99, check_state=True,
                 other_twin=None, from_twin=None):
    """ref (torch) and dist on the same inputs: outputs, input and
    parameter gradients, and the state dicts."""
    counts["cases"] += 1
    # Fresh leaves, keeping which inputs are the same object (self-attention).
    seen_d, seen_r = {}, {}
    xd = [seen_d[id(x)] if id(x) in seen_d else seen_d.setdefault(id(x), fresh(x))
          for x in inputs]
    xr = [seen_r[id(x)] if id(x) in seen_r else seen_r.setdefault(id(x), fresh(x))
          for x in inputs]
    out_r = as_list(call(ref, *xr))
    out_d = as_list(call(dist, *xd))
    expect_true(case, f"{len(out_d)} outputs, the twin's {len(out_r)}", len(out_r) == len(out_d))
    for i, (a, b) in enumerate(zip(out_d, out_r)):
        expect(case, f"output {i}", a, b)
    g = torch.Generator()
    g.manual_seed(upstream_seed)
    loss_r, loss_d = 0.0, 0.0
    for a, b in zip(out_d, out_r):
        if isinstance(b, torch.Tensor) and b.requires_grad:
            up = torch.randn(b.shape, generator=g, dtype=b.dtype)
            loss_r = loss_r + (b * up).sum()
            loss_d = loss_d + (a * up).sum()
    if isinstance(loss_r, torch.Tensor):
        loss_r.backward()
        loss_d.backward()
        done = set()
        for i, (a, b) in enumerate(zip(xd, xr)):
            if isinstance(b, torch.Tensor) and b.requires_grad and id(b) not in done:
                done.add(id(b))
                expect(case, f"input {i} gradient", a.grad, b.grad)
        gd = full_grads(dist)
        gr = {n: (p.grad if p.grad is not None else torch.zeros_like(p))
              for n, p in ref.named_parameters()}
        expect_true(case, f"parameter names {sorted(gd)} vs the twin's {sorted(gr)}",
                    sorted(gd) == sorted(gr))
        for n in gr:
            if n in gd:
                expect(case, f"gradient of {n}", gd[n], gr[n])
    if check_state:
        check_state_dicts(case, ref, dist, inputs, call, other_twin, from_twin)
    return out_d, out_r


def check_state_dicts(case, ref, dist, inputs, call, other_twin, from_twin):
    sd = smp.nn.full_state_dict(dist)
    want = ref.state_dict()
    expect_true(case, f"state_dict keys {sorted(sd)} vs the twin's {sorted(want)}",
                sorted(sd) == sorted(want))
    for k in want:
        if k in sd:
            expect(case, f"full_state_dict[{k}]", sd[k], want[k], tol=0.0)
    if other_twin is None:
        return
    # The reference's state_dict into a distributed module built from another seed.
    d2 = from_twin(other_twin())
    smp.nn.load_full_state_dict(d2, want)
    sd2 = smp.nn.full_state_dict(d2)
    for k in want:
        if k in sd2:
            expect(case, f"loaded then gathered [{k}]", sd2[k], want[k], tol=0.0)
    with torch.no_grad():
        a = as_list(call(d2, *inputs))
        b = as_list(call(ref, *inputs))
    for i, (x, y) in enumerate(zip(a, b)):
        expect(case, f"output {i} after loading the twin's state_dict", x, y)


def seeded(fn, seed):
    def build():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn()
    return build


def module_case(case, cls, make_twin, inputs, call, seed=1, from_kwargs=None):
    """twin from seed; dist = cls.from_module(twin); also the constructor
    path (cls(*same args) from the same seed) gives the twin's weights."""
    build = seeded(make_twin, seed)
    twin = build()
    ref = copy.deepcopy(twin)
    dist = cls.from_module(twin, **(from_kwargs or {}))
    compare_pair(case, ref, dist, inputs, call, other_twin=seeded(make_twin, seed + 1),
                 from_twin=lambda t: cls.from_module(t, **(from_kwargs or {})))


def ctor_case(case, twin_cls, dist_cls, args, kwargs, seed=5):
    """dist_cls(*args) from a seed holds the shards of twin_cls(*args) from it."""
    counts["cases"] += 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = twin_cls(*args, **kwargs)
        torch.manual_seed(seed)
        dist = dist_cls(*args, **kwargs)
    sd, want = smp.nn.full_state_dict(dist), twin.state_dict()
    expect_true(case, f"keys {sorted(sd)} vs {sorted(want)}", sorted(sd) == sorted(want))
    for k in want:
        if k in sd:
            expect(case, f"constructor's {k}", sd[k], want[k], tol=0.0)


def expect_error(case, fn, *needles):
    counts["comparisons"] += 1
    try:
        fn()
    except smp.SmpError as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        if missing or "\n" in e.message or e.status != -1:
            failures.append(f"{case}: SmpError {msg!r} (status {e.status}) lacks {missing} "
                            "or is not one line with status -1")
        else:
            log(f"  {case}: SmpError as expected: {msg}")
        return
    except Exception as e:  # noqa: BLE001
        failures.append(f"{case}: expected smp.SmpError, got {type(e).__name__}: {e}")
        return
    failures.append(f"{case}: expected smp.SmpError, nothing raised")


def randn(*shape, seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randn(*shape, generator=g)


# ---------------------------------------------------------------- cases

def linear_cases():
    D = smp.nn.DistributedLinear
    call = lambda m, x: m(x)  # noqa: E731
    module_case("linear 12->18 (input split)", D, lambda: nn.Linear(12, 18), [randn(4, 5, 12)], call)
    module_case("linear 7->12 (output split)", D, lambda: nn.Linear(7, 12), [randn(4, 7)], call)
    module_case("linear 12->6 no bias", D, lambda: nn.Linear(12, 6, bias=False), [randn(3, 12)],
                call)
    module_case("linear 12->18 split=output", D, lambda: nn.Linear(12, 18), [randn(2, 3, 12)],
                call, from_kwargs={"split": "output"})
    module_case("linear 12->6 unbatched", D, lambda: nn.Linear(12, 6), [randn(12)], call)
    ctor_case("linear constructor", nn.Linear, D, (12, 18), {})
    ctor_case("linear constructor (output split)", nn.Linear, D, (7, 12), {"bias": True})
    m = D.from_module(nn.Linear(12, 18))
    expect_true("linear input split marks", "weight sharded along 1, bias replicated",
                m.weight.shard_spec[:2] == (1, 1) and getattr(m.weight, "tensor_parallel", 0)
                and not hasattr(m.bias, "shard_spec"))


def embedding_cases():
    D = smp.nn.DistributedEmbedding
    g = torch.Generator()
    g.manual_seed(3)
    ids = torch.randint(0, 12, (4, 5), generator=g)
    ids[0, :2] = 5
    call = lambda m, i: m(i)  # noqa: E731
    module_case("embedding 12x8", D, lambda: nn.Embedding(12, 8), [ids], call)
    module_case("embedding padding_idx", D, lambda: nn.Embedding(12, 8, padding_idx=5), [ids],
                call)
    module_case("embedding padding_idx -1", D, lambda: nn.Embedding(12, 6, padding_idx=-1),
                [ids[1]], call)
    ctor_case("embedding constructor", nn.Embedding, D, (12, 8), {"padding_idx": 2})
    expect_error("embedding max_norm", lambda: D(12, 8, max_norm=1.0), "max_norm")
    expect_error("embedding sparse", lambda: D(12, 8, sparse=True, scale_grad_by_freq=True),
                 "sparse", "scale_grad_by_freq")


def _causal(L, S=None, dtype=torch.bool):
    S = S or L
    m = torch.ones(L, S, dtype=torch.bool).triu(1)
    if dtype == torch.bool:
        return m
    return torch.zeros(L, S).masked_fill(m, float("-inf"))


def mha_cases():
    D = smp.nn.DistributedMultiheadAttention
    E, H, L, S, N = 12, 6, 5, 4, 3
    x = randn(L, N, E, seed=1)
    module_case("mha self-attention", D, lambda: nn.MultiheadAttention(E, H), [x],
                lambda m, x: m(x, x, x))
    xb = randn(N, L, E, seed=2)
    kpm = torch.zeros(N, L, dtype=torch.bool)
    kpm[0, -2:] = True
    kpm[2, -1] = True
    module_case("mha batch_first 2-D bool mask, padding, per-head weights", D,
                lambda: nn.MultiheadAttention(E, H, batch_first=True), [xb],
                lambda m, x: m(x, x, x, key_padding_mask=kpm, attn_mask=_causal(L),
                               average_attn_weights=False))
    q, k, v = randn(L, N, E, seed=3), randn(S, N, 6, seed=4), randn(S, N, 9, seed=5)
    mask3 = randn(N * H, L, S, seed=6)
    module_case("mha kdim/vdim, 3-D float mask", D,
                lambda: nn.MultiheadAttention(E, H, kdim=6, vdim=9), [q, k, v],
                lambda m, q, k, v: m(q, k, v, attn_mask=mask3))
    qb, kb, vb = randn(N, L, E, seed=7), randn(N, S, E, seed=8), randn(N, S, E, seed=9)
    kpm2 = torch.zeros(N, S, dtype=torch.bool)
    kpm2[1, 0] = True
    fmask = randn(L, S, seed=10)
    module_case("mha bias_kv, zero_attn, float mask, padding, batch_first", D,
                lambda: nn.MultiheadAttention(E, H, add_bias_kv=True, add_zero_attn=True,
                                              batch_first=True),
                [qb, kb, vb], lambda m, q, k, v: m(q, k, v, key_padding_mask=kpm2,
                                                   attn_mask=fmask))
    module_case("mha 3-D bool mask, no weights", D, lambda: nn.MultiheadAttention(E, H),
                [q, randn(S, N, E, seed=11)],
                lambda m, q, k: m(q, k, k, attn_mask=(mask3 > 1.0), need_weights=False))
    xu = randn(L, E, seed=12)
    module_case("mha unbatched, no bias, 3-D mask", D,
                lambda: nn.MultiheadAttention(E, H, bias=False), [xu],
                lambda m, x: m(x, x, x, attn_mask=randn(H, L, L, seed=13)))
    module_case("mha unbatched, per-head weights", D, lambda: nn.MultiheadAttention(E, H),
                [xu], lambda m, x: m(x, x, x, average_attn_weights=False))
    ctor_case("mha constructor", nn.MultiheadAttention, D, (E, H), {"kdim": 6, "vdim": 9})
    ctor_case("mha constructor fused", nn.MultiheadAttention, D, (E, H), {"add_bias_kv": True})


def encoder_layer_cases():
    D = smp.nn.DistributedTransformerEncoderLayer
    d, H, ff, L, N = 12, 6, 24, 5, 3
    x = randn(L, N, d, seed=20)
    module_case("encoder layer post-norm relu, causal float mask", D,
                lambda: nn.TransformerEncoderLayer(d, H, ff, dropout=0.0), [x],
                lambda m, x: m(x, src_mask=_causal(L, dtype=torch.float32)))
    xb = randn(N, L, d, seed=21)
    kpm = torch.zeros(N, L, dtype=torch.bool)
    kpm[1, -2:] = True
    module_case("encoder layer batch_first, norm_first, gelu, padding", D,
                lambda: nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, activation="gelu",
                                                   batch_first=True, norm_first=True),
                [xb], lambda m, x: m(x, src_key_padding_mask=kpm))
    module_case("encoder layer callable activation, eps", D,
                lambda: nn.TransformerEncoderLayer(d, H, ff, dropout=0.0, activation=torch.tanh,
                                                   layer_norm_eps=1e-6, batch_first=True),
                [xb], lambda m, x: m(x, _causal(L)))
    ctor_case("encoder layer constructor", nn.TransformerEncoderLayer, D, (d, H),
              {"dim_feedforward": ff, "batch_first": True})


class _TwinLM(nn.Module):
    """The one-process reference for DistributedTransformerLMHead."""

    def __init__(self, d, V, bias=False, tie=None):
        super().__init__()
        self.lin = nn.Linear(d, V, bias=bias)
        if tie is not None:
            self.lin.weight = tie.weight


def lm_head_cases():
    D = smp.nn.DistributedTransformerLMHead
    d, V, N, L = 12, 18, 3, 4
    h = randn(N, L, d, seed=30)
    g = torch.Generator()
    g.manual_seed(31)
    y = torch.randint(0, V, (N, L), generator=g)
    y_ign = y.clone()
    y_ign[0, 1] = -100

    class Ref(nn.Module):
        def __init__(self, lin):
            super().__init__()
            self.weight, self.bias = lin.weight, lin.bias

        def forward(self, h, targets=None, reduction="mean"):
            logits = F.linear(h, self.weight, self.bias)
            if targets is None:
                return logits
            return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                   reduction=reduction).reshape(
                -1 if reduction != "none" else targets.shape)

    for bias in (False, True):
        for what, call in (
                ("logits", lambda m, h: m(h)),
                ("mean loss", lambda m, h: m(h, y).reshape(())),
                ("per-token loss, ignore_index", lambda m, h: m(h, y_ign, reduction="none")),
                ("mean loss, ignore_index", lambda m, h: m(h, y_ign).reshape(())),
                ("sum loss", lambda m, h: m(h, y, reduction="sum").reshape(()))):
            build = seeded(lambda: nn.Linear(d, V, bias=bias), 40)
            lin = build()
            ref = Ref(copy.deepcopy(lin))
            dist = D.from_module(lin)
            compare_pair(f"lm head bias={bias} {what}", ref, dist, [h], call,
                         check_state=False)
            check_state_dicts(f"lm head bias={bias}", ref, dist, [h], call,
                              seeded(lambda: nn.Linear(d, V, bias=bias), 41), D.from_module)

    # Tied to an embedding: ids -> embedding -> head's loss.
    class TwinTied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, d)
            self.head = nn.Linear(d, V, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids, targets):
            return F.cross_entropy(self.head(self.emb(ids)).reshape(-1, V), targets.reshape(-1))

    class DistTied(nn.Module):
        def __init__(self, twin):
            super().__init__()
            self.emb = smp.nn.DistributedEmbedding.from_module(twin.emb)
            self.head = D.from_module(twin.head, embedding=self.emb)

        def forward(self, ids, targets):
            return self.head(self.emb(ids), targets)

    twin = seeded(TwinTied, 50)()
    ref = copy.deepcopy(twin)
    dist = DistTied(twin)
    expect_true("lm head tied", "the head's weight is the embedding's Parameter",
                dist.head.weight is dist.emb.weight)
    ids = y.clone()
    compare_pair("lm head tied to embedding", ref, dist, [ids, y],
                 lambda m, i, t: m(i, t).reshape(()), check_state=False)
    sd = smp.nn.full_state_dict(dist)
    expect_true("lm head tied", f"state_dict keys {sorted(sd)}",
                sorted(sd) == ["emb.weight", "head.weight"])
    expect("lm head tied", "head.weight", sd["head.weight"], ref.head.weight, tol=0.0)
    ctor_case("lm head constructor", lambda *a, **k: nn.Linear(*a[:2], bias=k["bias"]),
              D, (d, V), {"bias": True})


# ---------------------------------------------------------------- the swap

class Block(nn.Module):
    def __init__(self, d, ff):
        super().__init__()
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.norm(x + self.fc2(F.gelu(self.fc1(x))))


class Net(nn.Module):
    def __init__(self, V=12, d=12, heads=6, ff=24, tied=False):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.block = Block(d, ff)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.alias = self.block   # the same module under two names
        self.head = nn.Linear(d, V)
        if tied:
            self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.block(self.emb(ids))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.encoder(self.alias(h)))


class Gate(nn.Module):
    """A user's module: x * weight * scale."""

    def __init__(self, d, scale=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d))
        self.scale = scale

    def forward(self, x):
        return x * self.weight * self.scale


class DistGate(nn.Module):
    """Its distributed twin, with other constructor arguments (init_hook
    translates) and a forward taking a tuple (forward_hook/return_hook)."""

    calls = 0

    def __init__(self, dim, scale):
        super().__init__()
        from smp.tensor_parallel import _mark_sharded, _mark_spec
        n, r = smp.tp_size(), smp.tp_rank()
        self.k, self.r = dim // n, r
        self.weight = nn.Parameter(torch.empty(dim // n))
        _mark_sharded(self.weight)
        _mark_spec(self.weight, 0, 1, (dim,))
        self.scale = scale

    def forward(self, pair):
        DistGate.calls += 1
        x = pair[0]
        from smp.tensor_parallel import copy_to_tp, gather_from_tp
        part = copy_to_tp(x).narrow(-1, self.r * self.k, self.k) * self.weight * self.scale
        return [gather_from_tp(part, -1)]


def swap_cases():
    from smp.tp_registry import swap_tensor_parallel
    Dn = smp.nn
    g = torch.Generator()
    g.manual_seed(60)
    ids = torch.randint(0, 12, (3, 5), generator=g)
    for tied in (False, True):
        case = f"swap Net (tied={tied})"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(61)
            with smp.tensor_parallelism():
                net = Net(tied=tied)
        ref = copy.deepcopy(net)
        out = swap_tensor_parallel(net)
        expect_true(case, "the root is swapped in place", out is net)
        types = {n: type(m).__name__ for n, m in out.named_modules()}
        want = {"emb": "DistributedEmbedding", "block.fc1": "DistributedLinear",
                "block.fc2": "DistributedLinear", "block.norm": "LayerNorm",
                "attn": "DistributedMultiheadAttention",
                "encoder.layers.0": "DistributedTransformerEncoderLayer",
                "encoder.layers.1": "DistributedTransformerEncoderLayer",
                "encoder.layers.0.linear1": "_ColumnLinear", "head": "DistributedLinear",
                "encoder": "TransformerEncoder"}
        bad = {k: (types.get(k), v) for k, v in want.items() if types.get(k) != v}
        expect_true(case, f"module types (got, want): {bad}", not bad)
        expect_true(case, "an aliased module is swapped once, under both names",
                    out.alias is out.block)
        if tied:
            expect_true(case, "the tie is kept (one shard Parameter, rows split)",
                        out.head.weight is out.emb.weight and out.head.split == "output")
        compare_pair(case, ref, out, [ids], lambda m, i: m(i), check_state=True)

    # set_tensor_parallelism on modules built outside any block.
    case = "set_tensor_parallelism"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(62)
        seq = nn.Sequential(nn.Linear(12, 18), nn.ReLU(), nn.Linear(18, 12), nn.Linear(12, 12))
    ref = copy.deepcopy(seq)
    smp.set_tensor_parallelism(seq, True)
    smp.set_tensor_parallelism(seq[3], False)
    out = swap_tensor_parallel(seq)
    expect_true(case, f"types {[type(m).__name__ for m in out]}",
                [type(m).__name__ for m in out] ==
                ["DistributedLinear", "ReLU", "DistributedLinear", "Linear"])
    compare_pair(case, ref, out, [randn(4, 12, seed=63)], lambda m, x: m(x))

    # A root that is itself registered, and enabled=False inside a block.
    with smp.tensor_parallelism():
        root = nn.Linear(12, 6)
        with smp.tensor_parallelism(enabled=False):
            keep = nn.Linear(12, 6)
    expect_true("swap root", "a registered root is replaced",
                isinstance(swap_tensor_parallel(root), Dn.DistributedLinear))
    expect_true("swap enabled=False", "a module built with enabled=False stays",
                type(swap_tensor_parallel(keep)) is nn.Linear)

    # tp_config reaches from_module: DistributedLinear's split.
    with torch.random.fork_rng(devices=[]), smp.tensor_parallelism(split="output"):
        torch.manual_seed(68)
        lin = nn.Sequential(nn.Linear(12, 6))
    ref = copy.deepcopy(lin)
    out = swap_tensor_parallel(lin)
    expect_true("tp_config", "split='output' reached DistributedLinear",
                getattr(out[0], "split", None) == "output")
    compare_pair("tp_config split=output", ref, out, [randn(3, 12, seed=66)], lambda m, x: m(x))
    with smp.tensor_parallelism(bogus=1):
        m = nn.Sequential(nn.Identity(), nn.MultiheadAttention(12, 6))
    expect_error("unknown tp_config", lambda: swap_tensor_parallel(m), "'1'", "bogus")

    # A user's registration with from_module (a subclass's twin).
    class Scaled(nn.Linear):
        pass

    class DistScaled(smp.nn.DistributedLinear):
        @classmethod
        def from_module(cls, twin, **cfg):
            m = super().from_module(twin, split="output", **cfg)
            m.user_built = True
            return m

    smp.tp_register_with_module(Scaled, DistScaled)
    with torch.random.fork_rng(devices=[]), smp.tensor_parallelism():
        torch.manual_seed(69)
        sm = nn.Sequential(Scaled(12, 6))
    ref = copy.deepcopy(sm)
    out = swap_tensor_parallel(sm)
    expect_true("tp_register_with_module (from_module)", "the user's from_module built it",
                type(out[0]) is DistScaled and getattr(out[0], "user_built", False))
    compare_pair("tp_register_with_module (from_module)", ref, out, [randn(3, 12, seed=67)],
                 lambda m, x: m(x))

    # A user's registration without from_module: recorded arguments, hooks.
    case = "tp_register_with_module(Gate, DistGate, hooks)"
    smp.tp_register_with_module(
        Gate, DistGate,
        init_hook=lambda d, scale=1.0: ((), {"dim": d, "scale": scale}),
        forward_hook=lambda x: (((x, None),), {}),
        return_hook=lambda out: out[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(64)
        with smp.tensor_parallelism():
            gated = nn.Sequential(nn.Linear(12, 12), Gate(12, scale=0.5))
    ref = copy.deepcopy(gated)
    out = swap_tensor_parallel(gated)
    expect_true(case, f"swapped: {type(out[1]).__name__}", type(out[1]) is DistGate)
    expect_true(case, "the recorded scale reached the constructor",
                getattr(out[1], "scale", None) == 0.5)
    compare_pair(case, ref, out, [randn(2, 12, seed=65)], lambda m, x: m(x))
    expect_true(case, "the forward went through the hooks", DistGate.calls >= 1)


def bad_input_cases():
    from smp.tp_registry import swap_tensor_parallel
    n = smp.tp_size()

    class Deep(nn.Module):
        def __init__(self, heads):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Identity(), nn.ModuleDict(
                {"attn": nn.MultiheadAttention(12, heads)})])

    with smp.tensor_parallelism():
        deep = Deep(n + 1)   # 12 divides by 3 (tp 2) and 4 (tp 3)
    expect_error("unsplittable heads", lambda: swap_tensor_parallel(deep), "'blocks.1.attn'",
                 "MultiheadAttention", f"num_heads {n + 1}")
    with smp.tensor_parallelism():
        m = nn.Sequential(nn.Linear(12, 12), nn.Sequential(nn.Linear(7, 5)))
    expect_error("unsplittable linear", lambda: swap_tensor_parallel(m), "'1.0'", "Linear",
                 "in_features 7")
    with smp.tensor_parallelism():
        m = nn.ModuleDict({"emb": nn.Embedding(12, 4, max_norm=2.0)})
    expect_error("unsupported embedding option", lambda: swap_tensor_parallel(m), "'emb'",
                 "max_norm")
    with smp.tensor_parallelism():
        m = nn.ModuleDict({"layer": nn.TransformerEncoderLayer(12, 6, dim_feedforward=12 * n + 1)})
    expect_error("unsplittable feed-forward", lambda: swap_tensor_parallel(m), "'layer'",
                 "dim_feedforward")
    m = nn.Sequential(nn.Linear(12, 12), nn.Sequential(nn.LayerNorm(12), nn.GELU()))
    smp.set_tensor_parallelism(m[1])
    expect_error("set_tensor_parallelism without a twin", lambda: swap_tensor_parallel(m),
                 "'1'", "Sequential", "no distributed twin")

    class HalfTied(nn.Module):
        def __init__(self):
            super().__init__()
            with smp.tensor_parallelism():
                self.emb = nn.Embedding(12, 6)
            self.head = nn.Linear(6, 12, bias=False)
            self.head.weight = self.emb.weight

    expect_error("tie with an unswapped module", lambda: swap_tensor_parallel(HalfTied()),
                 "'head'", "weight")


def meta_cases():
    """from_module on a twin on the meta device (delayed initialization):
    meta shards of the right shapes, nothing allocated, replicated
    parameters the twin's own."""
    n = smp.tp_size()
    case = "from_module on the meta device"
    counts["cases"] += 1
    twin = nn.TransformerEncoderLayer(12, 6, 24, dropout=0.0, device="meta")
    d = smp.nn.DistributedTransformerEncoderLayer.from_module(twin)
    shapes = {k: tuple(v.shape) for k, v in d.state_dict(keep_vars=True).items()}
    want = {"self_attn.in_proj_weight": (36 // n, 12), "self_attn.in_proj_bias": (36 // n,),
            "self_attn.out_proj.weight": (12, 12 // n), "self_attn.out_proj.bias": (12,),
            "linear1.weight": (24 // n, 12), "linear1.bias": (24 // n,),
            "linear2.weight": (12, 24 // n), "linear2.bias": (12,)}
    bad = {k: (shapes.get(k), v) for k, v in want.items() if shapes.get(k) != v}
    expect_true(case, f"shard shapes (got, want): {bad}", not bad)
    expect_true(case, "every tensor on the meta device",
                all(t.is_meta for t in d.state_dict(keep_vars=True).values()))
    expect_true(case, "replicated parameters are the twin's",
                d.norm1.weight is twin.norm1.weight and d.linear2.bias is twin.linear2.bias)
    e = smp.nn.DistributedEmbedding.from_module(nn.Embedding(12, 4, device="meta"))
    expect_true(case, "embedding shard", e.weight.is_meta and tuple(e.weight.shape) == (12 // n, 4))


CASES = {"linear": linear_cases, "embedding": embedding_cases, "mha": mha_cases,
         "encoder_layer": encoder_layer_cases, "lm_head": lm_head_cases, "meta": meta_cases, "swap": swap_cases,
         "bad_input": bad_input_cases}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=sorted(CASES), action="append")
    args = p.parse_args()
    torch.set_num_threads(1)
    smp.init({})
    n = smp.tp_size()
    log(f"modules_check: world {smp.size()}, tp {n}, pp {smp.pp_size()}, rdp {smp.rdp_size()}")
    for name in args.only or CASES:
        before = len(failures)
        try:
            CASES[name]()
        except Exception:  # noqa: BLE001 - reported as a failure
            failures.append(f"{name}: raised\n{traceback.format_exc()}")
        log(f"{name}: {'OK' if len(failures) == before else 'FAILED'}")
    bad = torch.tensor([1 if failures else 0], dtype=torch.int32)
    smp.allreduce(bad, smp.MAX, smp.WORLD)
    for f in failures:
        print(f"[rank {smp.rank()}] FAIL {f}", flush=True)
    log(f"modules_check: {counts['cases']} cases, {counts['comparisons']} comparisons: "
        f"{'FAILED' if bad.item() else 'OK'}")
    smp.finalize()
    return int(bad.item())


if __name__ == "__main__":
    sys.exit(main())
