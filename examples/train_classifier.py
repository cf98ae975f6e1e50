#!/usr/bin/env python3
"""Bring your own model: a plain torch.nn.TransformerEncoder classifier,
written without smp, trained with pipeline and data parallelism by adding
the front end's few lines (smp.init, DistributedModel, DistributedOptimizer,
@smp.step, model.backward).

    smprun -np 4 --pp 2 /usr/bin/python3 examples/train_classifier.py --compare

The task: is the sum of a sequence of digits odd? --compare also trains the
same model in one process (rank 0) with the same microbatches and checks
that every step's loss agrees within --tolerance.
"""

import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    """Token and position embeddings, a TransformerEncoder, mean pooling and
    a linear head: nothing here knows about smp."""

    def __init__(self, vocab=10, seq=16, dim=64, heads=4, layers=4, classes=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        h = self.encoder(self.embed(ids) + self.pos[:, :ids.shape[1]])
        return self.head(h.mean(dim=1))


def batch(step, n, seq, seed):
    g = torch.Generator().manual_seed(seed * 7919 + step)
    ids = torch.randint(0, 10, (n, seq), generator=g)
    return ids, ids.sum(dim=1) % 2


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=16, help="global batch")
    p.add_argument("--microbatches", type=int, default=2)
    p.add_argument("--schedule", choices=["simple", "interleaved"], default="interleaved")
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-5)
    args = p.parse_args()
    torch.set_num_threads(1)

    import smp  # the lines smp adds start here
    smp.init({"microbatches": args.microbatches, "pipeline": args.schedule, "ddp": True})
    torch.manual_seed(args.seed)
    model = smp.DistributedModel(Classifier(seq=args.seq))
    opt = smp.DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-3))

    @smp.step
    def train_step(model, ids, labels):
        loss = F.cross_entropy(model(ids), labels)
        model.backward(loss)
        return loss

    k, r = args.batch // smp.rdp_size(), smp.rdp_rank()
    losses = []
    for step in range(args.steps):
        ids, labels = batch(step, args.batch, args.seq, args.seed)
        opt.zero_grad()
        loss = train_step(model, ids[r * k:(r + 1) * k], labels[r * k:(r + 1) * k]).reduce_mean()
        opt.step()
        total = loss.detach().double().reshape(1) / smp.rdp_size()
        smp.allreduce(total, smp.SUM, smp.RDP_GROUP)  # the global batch's mean
        losses.append(total.item())
        if smp.rank() == 0:
            print(f"step {step:3d}  loss {losses[-1]:.6f}", flush=True)
    if smp.rank() == 0:
        stages = sorted(set(model.partition_map().values()))
        print(f"train_classifier: {smp.size()} ranks = pp {smp.pp_size()} x rdp "
              f"{smp.rdp_size()}; stages {stages}: " + "; ".join(
                  f"{s}: " + " ".join(n for n, st in model.partition_map().items()
                                      if st == s and n.count(".") <= 2 and n)
                  for s in stages), flush=True)

    status = 0
    if args.compare and smp.rank() == 0:
        torch.manual_seed(args.seed)
        ref = Classifier(seq=args.seq)
        ropt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
        worst = 0.0
        for step in range(args.steps):
            ids, labels = batch(step, args.batch, args.seq, args.seed)
            ropt.zero_grad()
            parts = args.microbatches * smp.rdp_size()
            total = 0.0
            for i, l in zip(ids.chunk(parts), labels.chunk(parts)):
                loss = F.cross_entropy(ref(i), l)
                (loss / parts).backward()
                total += loss.item() / parts
            ropt.step()
            worst = max(worst, abs(total - losses[step]) / abs(total))
        ok = worst <= args.tolerance
        print(f"train_classifier: largest relative loss difference from one process "
              f"{worst:.2e} ({'within' if ok else 'ABOVE'} {args.tolerance:g})", flush=True)
        status = 0 if ok else 1
    verdict = torch.tensor([status], dtype=torch.int32)
    smp.broadcast(verdict, 0, smp.WORLD)
    smp.finalize()
    return int(verdict.item())


if __name__ == "__main__":
    sys.exit(main())
