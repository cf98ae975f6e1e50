"""How much the front end's relays cost at pp = 2: the GPT of
examples/train_gpt.py rewritten as two halves that the root calls once
each (front(x), then back(h, y)), so stage 1 gets one request per
microbatch and direction instead of one per block. Prints its tokens/s;
compare with train_gpt.py and train_gpt_hand_split.py at the same size:

    mpirun -np 2 -x SMP_PP_SIZE=2 python3 bench/train/gpt_halves.py
    mpirun -np 2 -x SMP_PP_SIZE=2 python3 examples/train_gpt.py --steps 10 --quiet \
        --hidden 128 --microbatches 4
"""
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples"))
import smp  # noqa: E402
from gpt_model import GPT, GPTConfig, make_batch  # noqa: E402


class Front(nn.Module):
    def __init__(self, g, k):
        super().__init__()
        self.wte, self.wpe = g.wte, g.wpe
        self.blocks = nn.ModuleList(g.blocks[:k])

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return x


class Back(nn.Module):
    def __init__(self, g, k):
        super().__init__()
        self.blocks = nn.ModuleList(g.blocks[k:])
        self.ln_f, self.lm_head = g.ln_f, g.lm_head

    def forward(self, x, targets):
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


class Halves(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.front, self.back = Front(g, len(g.blocks) // 2), Back(g, len(g.blocks) // 2)

    def forward(self, idx, targets):
        return self.back(self.front(idx), targets)


def main():
    torch.set_num_threads(1)
    smp.init({"microbatches": 4})
    cfg = GPTConfig(vocab=64, seq=32, hidden=128, heads=4, layers=4)
    torch.manual_seed(1234)
    model = smp.DistributedModel(Halves(GPT(cfg)))
    opt = smp.DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=3e-3))

    @smp.step
    def train_step(model, x, y):
        loss = model(x, y)
        model.backward(loss)
        return loss

    times = []
    for step in range(10):
        x, y = make_batch(cfg, 16, step, 1234)
        t0 = time.perf_counter()
        opt.zero_grad()
        train_step(model, x, y)
        opt.step()
        times.append(time.perf_counter() - t0)
    if smp.rank() == 0:
        pm = model.partition_map()
        print(f"gpt_halves: {16 * cfg.seq / statistics.median(times[1:]):.0f} tokens/s "
              f"(front on stage {pm['front']}, back on stage {pm['back']})")
    smp.finalize()


if __name__ == "__main__":
    main()
