#!/usr/bin/env python3
"""Tensor parallelism end to end: models built inside
smp.tensor_parallelism() and trained 10 steps through smp.DistributedModel
/ smp.DistributedOptimizer / @smp.step at a (pp, tp, rdp) layout given by
the launcher, against the one-process unwrapped torch model:

    mpirun -np 8 -x SMP_PP_SIZE=2 -x SMP_TP_SIZE=2 python3 run_tp.py \\
        --family tp_lm --steps 10 --microbatches 2

This is the front end's equivalence test (tests/python/frontend/
run_family.py: per-step per-replica losses within --tolerance of the
reference, every pp/tp rank of a replica agreeing, and the gathered full
state_dict loading (strict) into the plain module and reproducing the
trained reference's output), run on these families, each built inside
smp.tensor_parallelism() (so DistributedModel swaps in smp.nn's modules;
the reference trains the same build unwrapped, where the marks do
nothing):

  tp_transformer  the frontend's "transformer": Embedding + positions,
                  nn.TransformerEncoder (6 layers, batch_first, dropout 0),
                  LayerNorm, Linear head over mean-pooled states
  tp_lm           a causal LM: token and position embeddings,
                  nn.TransformerEncoder (6 layers, post-norm, seq-first,
                  causal src_mask, gelu, dropout 0), LayerNorm, a Linear
                  head over the vocabulary
  tp_lm_ckpt      tp_lm with its encoder layers checkpointed
                  (smp.set_activation_checkpointing before the swap)
  tp_tied         the frontend's "tied": an embedding tied to the output
                  Linear (split by vocabulary on both), Linear blocks

run_family's --tp-modules is always on: with tp > 1 the wrapped model
must hold smp.nn modules (the swap ran).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "frontend"))

import families  # noqa: E402
import run_family  # noqa: E402


class TPLM(nn.Module):
    def __init__(self, vocab=32, seq=8, d=32, heads=4, ff=64, layers=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.0,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        S = ids.shape[1]
        h = self.emb(ids) + self.pos(torch.arange(S, device=ids.device))
        mask = torch.ones(S, S, dtype=torch.bool, device=ids.device).triu(1)
        h = self.encoder(h.transpose(0, 1), mask=mask).transpose(0, 1)
        return self.head(self.norm(h))


def in_tp(build):
    """build(seed) inside smp.tensor_parallelism()."""
    def b(seed):
        import smp
        with smp.tensor_parallelism():
            return build(seed)
    return b


def with_checkpointing(build):
    """build(seed), its encoder layers under smp.set_activation_checkpointing
    (set before DistributedModel swaps them: the marks move to smp.nn's
    layers) the first time in a process (the module smp trains); plain after
    (the references)."""
    first = [True]

    def b(seed):
        import smp
        m = build(seed)
        if first[0]:
            first[0] = False
            smp.set_activation_checkpointing(m.encoder.layers)
        return m
    return b


TP_FAMILIES = {
    "tp_transformer": families.Family(in_tp(families.FAMILIES["transformer"].build),
                                      families.seq_cls_batch, families.cross_entropy),
    "tp_lm": families.Family(in_tp(families._built(TPLM)), families.tied_batch,
                             families.lm_loss),
    "tp_lm_ckpt": families.Family(with_checkpointing(in_tp(families._built(TPLM))),
                                  families.tied_batch, families.lm_loss),
    "tp_tied": families.Family(in_tp(families.FAMILIES["tied"].build), families.tied_batch,
                               families.lm_loss),
}


def main(argv):
    families.FAMILIES.update(TP_FAMILIES)
    if "--reference-only" not in argv and "--tp-modules" not in argv:
        argv = argv + ["--tp-modules"]   # run_family then requires smp.nn modules at tp > 1
    return run_family.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
