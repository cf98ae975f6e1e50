"""The zero-bubble schedules' split backward (zb-h1, zb-v), shared by the
runtime's executor (smp.pipeline.PipelineRunner) and the front end's stage
server (smp.server): B, the gradients of a stage's inputs alone (what the
previous stage waits for), and W, later, the gradients of its parameters
from the same graph (what can fill the pipeline's bubbles).

B keeps the autograd graph for W. W runs torch.autograd.backward with
`inputs` = the parameters, so their gradients accumulate into .grad through
their AccumulateGrad nodes exactly as an unsplit backward would (hooks on
those nodes, e.g. the data-parallel gradient buckets, fire as usual).

WeightOrder says when W may run on a stage that does not choose the order
of its forwards and backwards (the front end's stages serve requests): at
the place the runtime's schedule (smp_pipeline_schedule) gives it in the
stage's operation list, i.e. once every forward and backward listed before
it has happened here.
"""

import torch


def backward_input(roots, grads, inputs):
    """B: the gradients of `inputs` (None where the roots do not reach one)
    of roots . grads; the graph is kept for backward_weight."""
    if not inputs:
        return []
    return list(torch.autograd.grad(roots, inputs, grads, retain_graph=True, allow_unused=True))


def backward_weight(roots, grads, params, retain_graph=False):
    """W: the gradients of `params` of roots . grads, accumulated into
    their .grad (parameters the roots do not reach keep theirs)."""
    params = [p for p in params if p.requires_grad]
    if params:
        torch.autograd.backward(roots, grads, retain_graph=retain_graph, inputs=params)


class WeightOrder:
    """Stage `stage`'s forwards (F), backwards (B) and weight passes (W) in
    the order of the runtime's `schedule` over `microbatches` and `chunks`
    chunks per stage, as (kind, microbatch, chunk). done(kind, mb, chunk)
    records an F or B that happened here; due() returns, in list order and
    once each, the (microbatch, chunk) whose W has every F and B listed
    before it done; forward_allowed(mb): every B listed before F(mb, 0)
    is done (where the stage chooses its forwards)."""

    def __init__(self, schedule, stage, stages, microbatches, chunks=1):
        from . import pipeline  # it imports this module
        ops = pipeline.schedule(schedule, stage, stages, microbatches, chunks)
        names = {pipeline.FORWARD: "F", pipeline.BACKWARD: "B", pipeline.BACKWARD_INPUT: "B",
                 pipeline.BACKWARD_WEIGHT: "W"}
        self.chunks = chunks
        self.ops = [(names[k], m, c) for k, m, c, _, _ in ops if k in names]
        self.happened = set()
        self.released = set()

    def done(self, kind, mb, chunk):
        self.happened.add((kind, mb, chunk))

    def due(self):
        out = []
        for kind, mb, c in self.ops:
            if kind == "W":
                if (mb, c) not in self.released:
                    self.released.add((mb, c))
                    out.append((mb, c))
            elif (kind, mb, c) not in self.happened:
                break
        return out

    def forward_allowed(self, mb):
        for op in self.ops:
            if op == ("F", mb, 0):
                return True
            if op[0] == "B" and op not in self.happened:
                return False
        return True
