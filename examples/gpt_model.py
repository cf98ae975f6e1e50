"""A small GPT: `GPT`, a plain PyTorch model (what train_gpt.py hands to
smp.DistributedModel, and the single-process reference);
`tensor_parallel`, which splits its blocks over TP_GROUP in place with
smp.tensor_parallel's modules; and `build_chunks`, which cuts the same
model's weights into one rank's hand-made pipeline chunks
(train_gpt_hand_split.py).

Every rank builds the full GPT from the same seed and then takes its
shards, so the parallel model starts bit-identical to the reference.
Dropout is absent, so both compute the same function.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import smp
from smp.tensor_parallel import (ColumnParallelLinear, RowParallelLinear,
                                 VocabParallelEmbedding, vocab_parallel_cross_entropy)


@dataclass
class GPTConfig:
    vocab: int = 64
    seq: int = 16
    hidden: int = 32
    heads: int = 4
    layers: int = 4


def causal_attention(q, k, v, heads):
    """q, k, v: (batch, seq, heads * head_dim) -> same shape."""
    B, T, C = q.shape
    hd = C // heads
    q, k, v = (t.view(B, T, heads, hd).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, C)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.hidden
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(D)
        self.c_attn = nn.Linear(D, 3 * D)
        self.c_proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D)
        self.c_fc = nn.Linear(D, 4 * D)
        self.mlp_proj = nn.Linear(4 * D, D)

    def forward(self, x):
        q, k, v = self.c_attn(self.ln1(x)).chunk(3, dim=-1)
        x = x + self.c_proj(causal_attention(q, k, v, self.heads))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.hidden)
        self.wpe = nn.Embedding(cfg.seq, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


class ParallelBlock(nn.Module):
    """A Block with its attention heads and MLP columns split over TP_GROUP."""

    def __init__(self, block):
        super().__init__()
        tp = smp.tp_size()
        if block.heads % tp:
            raise ValueError(f"heads ({block.heads}) must divide by tp ({tp})")
        self.heads = block.heads // tp
        # The Block's names, so state dicts and checkpoints match the GPT's.
        self.ln1 = copy.deepcopy(block.ln1)
        self.c_attn = ColumnParallelLinear.from_full(block.c_attn, parts=3)
        self.c_proj = RowParallelLinear.from_full(block.c_proj)
        self.ln2 = copy.deepcopy(block.ln2)
        self.c_fc = ColumnParallelLinear.from_full(block.c_fc)
        self.mlp_proj = RowParallelLinear.from_full(block.mlp_proj)

    def forward(self, x):
        q, k, v = self.c_attn(self.ln1(x)).chunk(3, dim=-1)
        x = x + self.c_proj(causal_attention(q, k, v, self.heads))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln2(x))))


class Chunk(nn.Module):
    """Virtual pipeline stage `vstage` of `vstages`: an equal share of the
    blocks, plus the embeddings on the first and the head and loss on the
    last."""

    def __init__(self, full, vstage, vstages):
        super().__init__()
        cfg = full.cfg
        if cfg.layers % vstages:
            raise ValueError(f"layers ({cfg.layers}) must divide by the virtual pipeline "
                             f"stages ({vstages})")
        per = cfg.layers // vstages
        self.first, self.last = vstage == 0, vstage == vstages - 1
        if self.first:
            self.wte = VocabParallelEmbedding.from_full(full.wte)
            self.wpe = copy.deepcopy(full.wpe)
        self.blocks = nn.ModuleList(ParallelBlock(full.blocks[i])
                                    for i in range(vstage * per, (vstage + 1) * per))
        if self.last:
            self.ln_f = copy.deepcopy(full.ln_f)
            self.lm_head = ColumnParallelLinear.from_full(full.lm_head)
            self.vocab_start = smp.tp_rank() * (cfg.vocab // smp.tp_size())
        # Local parameter name -> the full GPT's (checkpoints use those).
        self.full_names = {}
        for local, _ in self.named_parameters():
            parts = local.split(".")
            if parts[0] == "blocks":
                parts[1] = str(vstage * per + int(parts[1]))
            self.full_names[local] = ".".join(parts)

    def forward(self, x, targets=None):
        if self.first:
            x = self.wte(x) + self.wpe(torch.arange(x.shape[1], device=x.device))
        for b in self.blocks:
            x = b(x)
        if not self.last:
            return x
        logits = self.lm_head(self.ln_f(x))
        return vocab_parallel_cross_entropy(logits, targets, self.vocab_start).mean()


def tensor_parallel(gpt):
    """The GPT with its blocks' attention heads and MLP columns, and its
    token embedding's vocabulary, split over TP_GROUP (Megatron's scheme,
    smp.tensor_parallel's modules), in place; same function, same names.
    With tp = 1 it is returned as it is."""
    if smp.tp_size() == 1:
        return gpt
    gpt.wte = VocabParallelEmbedding.from_full(gpt.wte)
    for i, b in enumerate(gpt.blocks):
        gpt.blocks[i] = ParallelBlock(b)
    return gpt


def build_chunks(full, chunks_per_stage, schedule="interleaved"):
    """This rank's chunks: chunk c of pipeline stage s is virtual stage
    c * pp + s (the interleaved schedule's assignment; zb-v's V: the
    runtime's smp.pipeline.virtual_stage)."""
    from smp.pipeline import virtual_stage
    pp, s = smp.pp_size(), smp.pp_rank()
    return [Chunk(full, virtual_stage(schedule, s, pp, c), pp * chunks_per_stage)
            for c in range(chunks_per_stage)]


def make_batch(cfg, batch, step, seed):
    """The global batch of `step`: deterministic, the same on every rank.
    Each sequence counts modulo the vocabulary from a random start with a
    random stride, so the next token is learnable from the previous two.
    Returns (inputs, targets), both (batch, seq) int64."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    start = torch.randint(0, cfg.vocab, (batch, 1), generator=g)
    stride = torch.randint(1, 8, (batch, 1), generator=g)
    toks = (start + stride * torch.arange(cfg.seq + 1)) % cfg.vocab
    return toks[:, :-1].contiguous(), toks[:, 1:].contiguous()
