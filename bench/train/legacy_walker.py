#!/usr/bin/env python3
"""The Python op-list walker that smp.pipeline.PipelineRunner.run was before
it ran on the runtime's executor (smp_pipeline_run_step), kept here only as
the baseline of bench_train.py --executor (git: bindings/python/smp/pipeline.py
before the executor commit). It walks smp._smp.pipeline_schedule's
operations itself and exchanges tensors through smp.exchange_tensors
(defer_sends=True), with a unique tag per (direction, virtual stage,
microbatch).

As a program it runs examples/train_gpt_hand_split.py with this walker in
place of PipelineRunner.run:

    python3 bench/train/legacy_walker.py [train_gpt_hand_split.py options]
"""
import os
import runpy
import sys

import torch

import smp
from smp import pipeline
from smp.pipeline import (BACKWARD, FORWARD, RECV_GRADIENT, SEND_ACTIVATION, SEND_GRADIENT,
                          schedule)

_MAX_TAG = 16383  # smp.h: tensor tags are 0..16383


def _tag(self, backward, vstage, mb, microbatches):
    return ((1 if backward else 0) * microbatches + mb) * self.virtual + vstage


def run(self, inputs, targets):
    """One training step's forward and backward over every microbatch
    (gradients accumulate in the chunks' parameters). Returns the
    per-microbatch losses (floats) where this stage holds the last
    virtual stage, else None."""
    M = len(inputs)
    if 2 * M * self.virtual > _MAX_TAG + 1:
        raise ValueError(f"{M} microbatches x {self.virtual} virtual stages need "
                         f"{2 * M * self.virtual} tensor tags; the transport has "
                         f"{_MAX_TAG + 1}")
    ops = schedule(self.schedule_name, self.stage, self.stages, M, len(self.chunks),
                   self.active)
    last = self.virtual - 1
    acts_in = {}    # (chunk, mb) -> forward input from the previous virtual stage
    grads_in = {}   # (chunk, mb) -> gradient of the output from the next one
    outbox = {}     # (kind, chunk, mb) -> tensor the schedule sends later
    saved = {}      # (chunk, mb) -> (input, output) for the backward
    in_flight = []  # the step's sends, waited for at its end
    losses = [None] * M

    def forward(c, m):
        g = self._vstage(c)
        x = inputs[m] if g == 0 else acts_in.pop((c, m)).requires_grad_()
        with smp.timeline("forward", m, c):
            if g == last:
                out = self.chunks[c](x, targets[m])
                losses[m] = out.detach().item()
            else:
                out = self.chunks[c](x)
        if g != last:
            y = out.detach().contiguous()
            if self.stages == 1:
                acts_in[(c + 1, m)] = y
            else:
                outbox[(SEND_ACTIVATION, c, m)] = y
        saved[(c, m)] = (x, out)

    def backward(c, m):
        g = self._vstage(c)
        x, out = saved.pop((c, m))
        with smp.timeline("backward", m, c):
            if g == last:
                # Each microbatch's loss is a mean over its tokens; the
                # step's loss is the mean over microbatches.
                torch.autograd.backward(out / M)
            else:
                torch.autograd.backward(out, grads_in.pop((c, m)))
        if g > 0:
            gx = x.grad.contiguous()
            if self.stages == 1:
                grads_in[(c - 1, m)] = gx
            else:
                outbox[(SEND_GRADIENT, c, m)] = gx

    def exchange(batch):
        sends, recvs, dests = [], [], []
        for kind, m, c, peer, _ in batch:
            g = self._vstage(c)
            if kind == SEND_ACTIVATION:
                sends.append((outbox.pop((kind, c, m)), peer, _tag(self, False, g + 1, m, M)))
            elif kind == SEND_GRADIENT:
                sends.append((outbox.pop((kind, c, m)), peer, _tag(self, True, g - 1, m, M)))
            else:
                backward_dir = kind == RECV_GRADIENT
                buf = (None if self.act_shape is None
                       else torch.empty(self.act_shape, dtype=self.dtype, device=self.device))
                recvs.append((buf, peer, _tag(self, backward_dir, g, m, M)))
                dests.append((grads_in if backward_dir else acts_in, (c, m)))
        got, sent = smp.exchange_tensors(sends, recvs, self.group, defer_sends=True)
        in_flight.append(sent)
        for (box, key), t in zip(dests, got):
            box[key] = t if t.device == self.device else t.to(self.device)

    i = 0
    while i < len(ops):
        kind, m, c, _, b = ops[i]
        if kind == FORWARD:
            forward(c, m)
            i += 1
        elif kind == BACKWARD:
            backward(c, m)
            i += 1
        else:
            j = i
            while j < len(ops) and ops[j][0] not in (FORWARD, BACKWARD) and ops[j][4] == b:
                j += 1
            exchange(ops[i:j])
            i = j
    for sent in in_flight:
        sent.wait()
    assert not saved and not acts_in and not grads_in and not outbox, \
        "schedule left work undone"
    return losses if self.holds_last() else None


if __name__ == "__main__":
    pipeline.PipelineRunner.run = run
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                           "train_gpt_hand_split.py")
    sys.argv = [example] + sys.argv[1:]
    runpy.run_path(example, run_name="__main__")
