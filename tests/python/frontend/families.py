"""Six model families for the front end's equivalence tests.

Each is a plain torch.nn.Module (nothing here imports smp), float32 and
deterministic: no dropout, no BatchNorm (replicas would update running
statistics differently); GroupNorm and LayerNorm only. Each has at least
six executed child modules of comparable cost, so that four pipeline
stages can be cut. They are tiny: 8 ranks on 2 cores train 10 steps in
seconds.

    FAMILIES[name] = Family(build, batch, loss)
      build(seed) -> module         the same weights for the same seed; the
                                    global RNG is left as it was
      batch(step, global_batch) -> (x, y)
                                    the same on every rank, from its own
                                    generator (the global RNG is not used)
      loss(out, y) -> 0-dim tensor  a mean over the batch

The global batch is 16, divisible by rdp * microbatches for rdp in {1, 2}
and microbatches in {2, 4}.
"""
import collections
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

GLOBAL_BATCH = 16

Family = collections.namedtuple("Family", ["build", "batch", "loss"])


def _built(cls, *args, **kwargs):
    """build(seed): cls(*args) from torch.manual_seed(seed), without
    disturbing the caller's RNG state."""
    def build(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(*args, **kwargs)
    return build


def _gen(salt, step):
    g = torch.Generator()
    g.manual_seed(1_000_003 * salt + step)
    return g


# ---------------------------------------------------------------- mlp

class ResBlock(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class ResidualMLP(nn.Module):
    """Input projection, 6 residual blocks (direct children block0 ...
    block5, no container), norm, head."""

    def __init__(self, d_in=16, d=32, hidden=64, n_blocks=6, d_out=4):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.n_blocks = n_blocks
        for i in range(n_blocks):
            setattr(self, f"block{i}", ResBlock(d, hidden))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, d_out)

    def forward(self, x):
        h = self.inp(x)
        for i in range(self.n_blocks):
            h = getattr(self, f"block{i}")(h)
        return self.head(self.norm(h))


_MLP_TEACHER = torch.Generator().manual_seed(7)
_MLP_W = torch.randn(16, 4, generator=_MLP_TEACHER) / 4


def mlp_batch(step, n):
    g = _gen(1, step)
    x = torch.randn(n, 16, generator=g)
    y = torch.tanh(x @ _MLP_W) + 0.1 * torch.randn(n, 4, generator=g)
    return x, y


def mse(out, y):
    return F.mse_loss(out, y)


# ---------------------------------------------------------------- transformer

class TransformerClassifier(nn.Module):
    """Embedding + learned positions, nn.TransformerEncoder (6 layers,
    batch_first, dropout 0), mean pool over the sequence, linear head."""

    def __init__(self, vocab=32, seq=8, d=32, heads=4, ff=64, layers=6, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, ids):
        t = torch.arange(ids.shape[1], device=ids.device)
        h = self.emb(ids) + self.pos(t)
        h = self.encoder(h)
        return self.head(h.mean(dim=1))


def seq_cls_batch(step, n, vocab=32, seq=8, classes=4, salt=2):
    g = _gen(salt, step)
    ids = torch.randint(0, vocab, (n, seq), generator=g)
    # A learnable label: which quarter of the vocabulary the first token is in.
    y = (ids[:, 0] * classes) // vocab
    return ids, y


def cross_entropy(out, y):
    return F.cross_entropy(out, y)


# ---------------------------------------------------------------- cnn

class ConvBlock(nn.Module):
    def __init__(self, c, groups=4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(groups, c)

    def forward(self, x):
        return F.relu(x + self.norm(self.conv(x)))


class SmallCNN(nn.Module):
    """Stem conv, 5 residual conv/GroupNorm/ReLU blocks (direct children,
    a pooling between the 2nd and 3rd), global pooling, linear head, on
    3x8x8 images."""

    def __init__(self, c=16, classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GroupNorm(4, c), nn.ReLU())
        self.block1 = ConvBlock(c)
        self.block2 = ConvBlock(c)
        self.down = nn.AvgPool2d(2)
        self.block3 = ConvBlock(c)
        self.block4 = ConvBlock(c)
        self.block5 = ConvBlock(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        h = self.stem(x)
        h = self.block2(self.block1(h))
        h = self.down(h)
        h = self.block5(self.block4(self.block3(h)))
        return self.head(torch.flatten(self.pool(h), 1))


def image_batch(step, n, classes=4):
    g = _gen(3, step)
    y = torch.randint(0, classes, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, 8, 8, generator=g)
    # A learnable label: the class brightens one quadrant of channel 0.
    for k in range(classes):
        sel = y == k
        r, c = divmod(k, 2)
        x[sel, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 1.0
    return x, y


# ---------------------------------------------------------------- skip_tuple

class Stem(nn.Module):
    """Returns a tuple (h, aux) whose aux is None."""

    def __init__(self, d_in, d):
        super().__init__()
        self.fc = nn.Linear(d_in, d)

    def forward(self, x):
        return torch.tanh(self.fc(x)), None


class GateBlock(nn.Module):
    """(h, state) -> (h, state): state is a dict of tensors (or None), mask
    an optional bool tensor, ids an optional int64 tensor; all keyword-able."""

    def __init__(self, d, n_ids=0):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)
        self.id_emb = nn.Embedding(n_ids, d) if n_ids else None

    def forward(self, h, state=None, *, mask=None, ids=None):
        u = self.fc(self.norm(h))
        if ids is not None:
            u = u + self.id_emb(ids)
        if mask is not None:
            u = torch.where(mask.unsqueeze(-1), u, -u)
        if state is not None:
            u = u * state["gate"]
        h = h + F.gelu(u)
        return h, {"gate": torch.sigmoid(self.gate(h)), "depth": 0 if state is None
                   else state["depth"] + 1}


class Merge(nn.Module):
    """Takes the stem's output by keyword (skip=...), jumping over the
    blocks in between, and the last block's gate."""

    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(2 * d, d)

    def forward(self, h, skip, gate=None):
        out = F.gelu(self.fc(torch.cat([h, skip], dim=-1)))
        return out if gate is None else out * gate


class IdHead(nn.Module):
    """Head with one output row per id: picks by the int64 ids."""

    def __init__(self, d, n_ids=3, d_out=2):
        super().__init__()
        self.fc = nn.Linear(d, n_ids * d_out)
        self.n_ids, self.d_out = n_ids, d_out

    def forward(self, h, ids):
        out = self.fc(h).view(-1, self.n_ids, self.d_out)
        return out[torch.arange(out.shape[0], device=out.device), ids]


class SkipTuple(nn.Module):
    """Tuples between modules, a dict and a None, keyword arguments, a skip
    connection from the stem to merge (over four blocks), and non-grad
    tensors (int64 ids, a bool mask) computed at the start and used by
    later modules (ids by block2, block5 and the head, mask by block3 and
    block5). Every parameter gets a gradient every step."""

    def __init__(self, d_in=12, d=32, n_ids=3):
        super().__init__()
        self.stem = Stem(d_in, d)
        self.block1 = GateBlock(d)
        self.block2 = GateBlock(d, n_ids)
        self.block3 = GateBlock(d)
        self.block4 = GateBlock(d)
        self.merge = Merge(d)
        self.block5 = GateBlock(d, n_ids)
        self.head = IdHead(d, n_ids)
        self.n_ids = n_ids

    def forward(self, x):
        ids = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()   # int64 in [0, n_ids)
        mask = x[:, 2] > 0                                  # bool
        h, aux = self.stem(x)
        assert aux is None
        skip = h
        h, state = self.block1(h, None)
        h, state = self.block2(h, state=state, ids=ids)
        h, state = self.block3(h, state, mask=mask)
        h, state = self.block4(h, state)
        assert state["depth"] == 3
        h = self.merge(h, skip=skip, gate=state["gate"])
        h, state = self.block5(h, None, ids=ids, mask=mask)
        return self.head(h * state["gate"], ids)


def skip_tuple_batch(step, n):
    g = _gen(4, step)
    x = torch.randn(n, 12, generator=g)
    y = torch.stack([x[:, 3] * x[:, 4], torch.sin(x[:, 5] + x[:, 0])], dim=1)
    return x, y


# ---------------------------------------------------------------- tied

class TokenBlock(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.mix = nn.Linear(d, d, bias=False)   # mixes along time via a shift

    def forward(self, h):
        u = self.norm(h)
        prev = F.pad(u, (0, 0, 1, 0))[:, :-1]      # token t sees token t-1
        return h + self.fc2(F.gelu(self.fc1(u + self.mix(prev))))


class TiedLM(nn.Module):
    """Next-token model: emb.weight is also head.weight; the position
    embedding `pos` and `logit_scale` are parameters of this module itself,
    used directly in forward. The blocks are in an nn.Sequential (the
    transformer's are in TransformerEncoder's ModuleList; the other
    families' blocks are direct children)."""

    def __init__(self, vocab=32, seq=8, d=32, hidden=64, n_blocks=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        nn.init.normal_(self.emb.weight, std=0.1)   # it is also the head's weight
        self.pos = nn.Parameter(0.02 * torch.randn(seq, d))
        self.logit_scale = nn.Parameter(torch.ones(()))
        self.blocks = nn.Sequential(*(TokenBlock(d, hidden) for _ in range(n_blocks)))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.blocks(h))
        return self.logit_scale * self.head(h)


def tied_batch(step, n, vocab=32, seq=8):
    g = _gen(5, step)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    stride = torch.randint(1, 4, (n, 1), generator=g)
    ids = (start + stride * torch.arange(seq + 1)) % vocab   # arithmetic sequences
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def lm_loss(out, y):
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


# ---------------------------------------------------------------- control_flow

class ControlFlow(nn.Module):
    """Data-dependent Python control flow: the sign of sum(x[:, 0]) picks
    `pos_branch` or `neg_branch` (x[:, 0] is +1.0 or -1.5, so the sum of 2,
    4, 8 or 16 rows is never 0 and the choice is exact); the number of
    rows with x[:, 1] > 0 sets how many times `shared` runs in a loop (1 to
    3 times, after one call before the loop: always at least twice).
    Some microbatches, replicas and steps give one branch no gradient."""

    def __init__(self, d_in=8, d=32, d_out=2):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.pos_branch = ResBlock(d, 2 * d)
        self.neg_branch = ResBlock(d, 2 * d)
        self.shared = ResBlock(d, 2 * d)
        self.block1 = ResBlock(d, 2 * d)
        self.block2 = ResBlock(d, 2 * d)
        self.head = nn.Linear(d, d_out)

    def forward(self, x):
        h = self.inp(x)
        if x[:, 0].sum() > 0:
            h = self.pos_branch(h)
        else:
            h = self.neg_branch(h)
        h = self.shared(h)
        trips = 1 + int((x[:, 1] > 0).sum().item()) % 3
        for _ in range(trips):
            h = self.shared(h)
        h = self.block2(self.block1(h))
        return self.head(h)


def control_flow_batch(step, n):
    g = _gen(6, step)
    x = torch.randn(n, 8, generator=g)
    # Mostly positive or mostly negative batches, so whole replicas and
    # steps take one branch only.
    p = 0.85 if step % 3 != 2 else 0.15
    x[:, 0] = torch.where(torch.rand(n, generator=g) < p, torch.tensor(1.0), torch.tensor(-1.5))
    y = torch.stack([x[:, 0] * x[:, 2], torch.tanh(x[:, 3] - x[:, 4])], dim=1)
    return x, y


# ---------------------------------------------------------------- gpt
# examples/stock_gpt.py (plain torch, no smp): the repo's GPT from stock modules.

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "examples"))
from stock_gpt import StockGPT  # noqa: E402


def gpt_batch(step, n, vocab=32, seq=8):
    """Counting modulo the vocabulary from a random start with a random
    stride (gpt_model.make_batch's task): learnable from two tokens."""
    g = _gen(7, step)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    stride = torch.randint(1, 4, (n, 1), generator=g)
    toks = (start + stride * torch.arange(seq + 1)) % vocab
    return toks[:, :-1].contiguous(), toks[:, 1:].contiguous()


FAMILIES = {
    "mlp": Family(_built(ResidualMLP), mlp_batch, mse),
    "transformer": Family(_built(TransformerClassifier), seq_cls_batch, cross_entropy),
    "cnn": Family(_built(SmallCNN), image_batch, cross_entropy),
    "skip_tuple": Family(_built(SkipTuple), skip_tuple_batch, mse),
    "tied": Family(_built(TiedLM), tied_batch, lm_loss),
    "control_flow": Family(_built(ControlFlow), control_flow_batch, mse),
    "gpt": Family(_built(StockGPT, vocab=32, seq=8, d=32, heads=4, layers=4), gpt_batch,
                  lm_loss),
}
