#!/usr/bin/env python3
"""Bad input to tensor parallelism through smp.DistributedModel, under
mpirun with tp = the world size (odd and even):

    mpirun -np 3 -x SMP_TP_SIZE=3 python3 bad_input.py

Each wrap below must raise smp.SmpError (status INVALID_ARGUMENT) on every
rank, one line naming the module by its qualified name and the reason,
leave the user's module as it was (nothing swapped) and leave smp usable: afterwards a good model built inside
smp.tensor_parallelism() wraps and trains one step, its loss equal on every
rank to the unwrapped model's.
"""
import copy
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import smp


class Model(nn.Module):
    def __init__(self, heads=6, ff=24, d=12, vocab=12, max_norm=None, ln_only=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, d, max_norm=max_norm)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0,
                                                                batch_first=True)])
        self.tail = nn.Sequential(nn.LayerNorm(d), nn.GELU())
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        h = self.emb(ids)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.tail(h))


def main():
    torch.set_num_threads(1)
    smp.init({})
    n = smp.tp_size()
    fails = []

    def log(msg):
        if smp.rank() == 0:
            print(msg, flush=True)

    def expect(what, build, *needles):
        module = build()
        try:
            smp.DistributedModel(module)
        except smp.SmpError as e:
            missing = [s for s in needles if s not in e.message]
            swapped = [n for n, m in module.named_modules() if type(m).__module__ == "smp.nn"]
            if swapped:
                fails.append(f"{what}: the failed wrap left modules swapped: {swapped}")
            if missing or e.status != -1 or "\n" in e.message:
                fails.append(f"{what}: {e} (status {e.status}) lacks {missing}")
            else:
                log(f"{what}: SmpError as expected: {e}")
            return
        except Exception as e:  # noqa: BLE001
            fails.append(f"{what}: {type(e).__name__}: {e} (expected smp.SmpError)")
            return
        fails.append(f"{what}: no error")

    def inside(**kw):
        def build():
            with smp.tensor_parallelism():
                return Model(**kw)
        return build

    def explicit():
        m = Model()
        smp.set_tensor_parallelism(m.tail)
        return m

    expect("heads not divisible", inside(heads=n + 1, d=12 * (n + 1)), "'layers.0'",
           "TransformerEncoderLayer", f"num_heads {n + 1}")
    expect("feed-forward not divisible", inside(ff=6 * n + 1), "'layers.0'", "dim_feedforward")
    expect("vocabulary not divisible", inside(vocab=6 * n + 1), "'emb'",
           f"num_embeddings {6 * n + 1}")
    expect("unsupported option", inside(max_norm=1.0), "'emb'", "max_norm")
    expect("explicit module without a twin", explicit, "'tail'", "Sequential",
           "no distributed twin")

    # smp is still usable: a good model wraps and trains one step.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with smp.tensor_parallelism():
            good = Model()
    ref = copy.deepcopy(good)
    model = smp.DistributedModel(good)
    if n > 1 and not any(type(m).__module__ == "smp.nn" for m in model.module.modules()):
        fails.append("the good model was not swapped")
    g = torch.Generator()
    g.manual_seed(8)
    ids = torch.randint(0, 12, (4, 6), generator=g)

    @smp.step
    def step(model, ids):
        loss = F.cross_entropy(model(ids).reshape(-1, 12), ids.reshape(-1))
        model.backward(loss)
        return loss

    got = step(model, ids).reduce_mean().item()
    want = F.cross_entropy(ref(ids).reshape(-1, 12), ids.reshape(-1)).item()
    if not abs(got - want) <= 1e-5 * abs(want):
        fails.append(f"the good model's loss {got!r}, unwrapped {want!r}")
    log(f"good model after the errors: loss {got:.7f}, unwrapped {want:.7f}")

    bad = torch.tensor([1 if fails else 0], dtype=torch.int32)
    smp.allreduce(bad, smp.MAX, smp.WORLD)
    for f in fails:
        print(f"[rank {smp.rank()}] FAIL {f}", flush=True)
    log(f"bad_input: {'FAILED' if bad.item() else 'OK'}")
    smp.finalize()
    return int(bad.item())


if __name__ == "__main__":
    sys.exit(main())
