#!/usr/bin/env python3
"""What splitting a backward costs in torch, one process, no MPI: the GPT's
blocks (examples/gpt_model.py) on one microbatch, timed as one backward
(torch.autograd.backward, what 1F1B runs) against PipelineRunner's split:
B = torch.autograd.grad on the blocks' input keeping the graph, then W =
torch.autograd.grad on the parameters (which walks the graph again).
Alternated, medians of --reps pairs.

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/pipeline/zb_split_cost.py
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from gpt_model import GPT, GPTConfig  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--rows", type=int, default=2, help="sequences per microbatch")
    p.add_argument("--reps", type=int, default=40)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab=64, seq=a.seq, hidden=a.hidden, heads=4, layers=a.layers))
    blocks = torch.nn.Sequential(*gpt.blocks)
    params = list(blocks.parameters())
    x0 = torch.randn(a.rows, a.seq, a.hidden)
    gy = torch.randn(a.rows, a.seq, a.hidden)
    t = {"forward": [], "backward": [], "B": [], "W": []}
    for r in range(a.reps + 2):
        for split in (False, True) if r % 2 else (True, False):
            x = x0.clone().requires_grad_()
            t0 = time.perf_counter()
            y = blocks(x)
            t1 = time.perf_counter()
            if split:
                torch.autograd.grad(y, x, gy, retain_graph=True)
                t2 = time.perf_counter()
                torch.autograd.grad(y, params, gy)
                t3 = time.perf_counter()
                if r >= 2:
                    t["B"].append(t2 - t1)
                    t["W"].append(t3 - t2)
            else:
                torch.autograd.backward(y, gy)
                t2 = time.perf_counter()
                if r >= 2:
                    t["forward"].append(t1 - t0)
                    t["backward"].append(t2 - t1)
    m = {k: statistics.median(v) * 1e3 for k, v in t.items()}
    print(f"blocks {a.layers} x hidden {a.hidden}, {a.rows} x {a.seq} tokens, medians of {a.reps}:")
    print(f"forward {m['forward']:.2f} ms; one backward {m['backward']:.2f} ms "
          f"({m['backward'] / m['forward']:.2f}x forward); split: B {m['B']:.2f} ms + W {m['W']:.2f} ms "
          f"= {m['B'] + m['W']:.2f} ms ({(m['B'] + m['W']) / m['backward']:.2f}x the one backward; "
          f"B {m['B'] / m['backward']:.2f}x, W {m['W'] / m['backward']:.2f}x)")


if __name__ == "__main__":
    main()
