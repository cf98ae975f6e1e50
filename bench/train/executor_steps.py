#!/usr/bin/env python3
"""The hand-split GPT's pipeline step (PipelineRunner.run: forward and
backward of every microbatch, no optimizer) on the runtime's executor
against the Python walker it replaced (legacy_walker.run), alternating step
by step inside one job, so both see the same machine at the same moment.
Every rank builds the model as examples/train_gpt_hand_split.py does
(tp = 1); each step starts on a barrier and counts as the slowest rank's
time. Rank 0 prints one JSON line: per variant the median step time, and
the median of the paired ratios (executor / walker) of consecutive steps,
the order alternating from pair to pair.

    mpirun -np 2 -x SMP_PP_SIZE=2 python3 bench/train/executor_steps.py --schedule interleaved

(bench_train.py --executor runs it for each of its configurations.)
--linear WIDTH replaces the GPT by one WIDTH x WIDTH linear layer per chunk
on 8-row microbatches, a step that is almost all per-operation overhead.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
sys.path.insert(0, HERE)

import smp  # noqa: E402
from smp.data_parallel import shard_batch  # noqa: E402
from smp.pipeline import PipelineRunner  # noqa: E402

import legacy_walker  # noqa: E402
from gpt_model import GPT, GPTConfig, build_chunks, make_batch  # noqa: E402


class Linear(torch.nn.Module):
    def __init__(self, width, last):
        super().__init__()
        self.lin = torch.nn.Linear(width, width)
        self.last = last

    def forward(self, x, y=None):
        h = self.lin(x)
        return ((h - y) ** 2).mean() if self.last else h


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--schedule", default="interleaved")
    p.add_argument("--chunks", type=int, default=2)
    p.add_argument("--microbatches", type=int, default=4)
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--linear", type=int, default=0, metavar="WIDTH")
    a = p.parse_args()
    torch.set_num_threads(1)
    smp.init()
    per_stage = a.chunks if a.schedule == "virtual" else 1
    torch.manual_seed(1234)
    if a.linear:
        virtual = smp.pp_size() * per_stage
        chunks = [Linear(a.linear, c * smp.pp_size() + smp.pp_rank() == virtual - 1)
                  for c in range(per_stage)]
        xs = [torch.randn(8, a.linear) for _ in range(a.microbatches)]
        ys = [torch.randn(8, a.linear) for _ in range(a.microbatches)]
    else:
        cfg = GPTConfig(vocab=64, seq=a.seq, hidden=a.hidden, heads=4, layers=a.layers)
        full = GPT(cfg)
        chunks = build_chunks(full, per_stage)
        del full
        x, y = make_batch(cfg, a.batch, 0, 1234)
        xs, ys = shard_batch(x).chunk(a.microbatches), shard_batch(y).chunk(a.microbatches)
    runner = PipelineRunner(chunks, schedule=a.schedule)
    variants = {"executor": PipelineRunner.run, "walker": legacy_walker.run}
    times = {v: [] for v in variants}
    for pair in range(a.pairs + 1):  # the first pair warms up
        order = ["executor", "walker"] if pair % 2 == 0 else ["walker", "executor"]
        for v in order:
            for ch in chunks:
                ch.zero_grad(set_to_none=True)
            smp.barrier()
            t0 = time.perf_counter()
            variants[v](runner, xs, ys)
            t = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
            smp.allreduce(t, smp.MAX)
            if pair > 0:
                times[v].append(t.item())
    if smp.rank() == 0:
        ratios = [e / w for e, w in zip(times["executor"], times["walker"])]
        print(json.dumps({"executor_s": statistics.median(times["executor"]),
                          "walker_s": statistics.median(times["walker"]),
                          "paired_time_ratio": statistics.median(ratios)}), flush=True)
    smp.finalize()


if __name__ == "__main__":
    main()
