"""Pipeline stage runner: one training step of this rank's stage through the
runtime's pipeline executor (smp_pipeline_run_step, via
smp._smp.pipeline_run_step), over this stage's model chunks.

The executor walks the stage's schedule (the same one smp_pipeline_schedule
lists and the simulator checks), calls the runner's forward and backward
for each (microbatch, chunk), and moves activations forward and gradients
backward between the stages of the group with the runtime's tensor
transport: each schedule batch's sends and receives at once, the sends left
in flight until the step's end. Tensors cross zero-copy as DLPack; they
carry their dtype and shape, so receives need no buffers (with `act_shape`
the executor checks what arrives). Where the chunks' parameters live on a
GPU, activations and gradients are sent from CUDA memory (smp stages CUDA
point-to-point through host memory) and what arrives (host memory) is
moved to that GPU.

Chunk c of stage s is virtual stage g = c * stages + s (zb-v: a V, see
virtual_stage); its input comes from virtual stage g - 1 and its output
goes to g + 1. Where both live on one stage (one stage; zb-v's turn) the
executor hands the tensor over in memory.

A chunk that raises fails the step on every stage without leaving any
waiting: this rank re-raises the exception, the others raise SmpError
(PEER_FAILED) naming it.
"""

import time

import torch
import torch.utils.dlpack

import smp
from . import split_backward as _split

SCHEDULES = {"simple": 0, "interleaved": 1, "virtual": 2, "zb-h1": 3, "zb-v": 4}  # smp_schedule_t
SPLIT_BACKWARD = ("zb-h1", "zb-v")  # schedules whose backward is B (input) + W (weights)
(FORWARD, BACKWARD, SEND_ACTIVATION, RECV_ACTIVATION, SEND_GRADIENT, RECV_GRADIENT,
 BACKWARD_INPUT, BACKWARD_WEIGHT) = range(8)
_DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3,
           torch.int8: 4, torch.uint8: 5, torch.int32: 6, torch.int64: 7}  # smp_dtype_t


def schedule(name, stage, stages, microbatches, chunks=1, active_microbatches=0):
    """The runtime's operations for `stage` in one step: a list of
    (kind, microbatch, chunk, peer, batch) with the kinds above. Bad
    arguments raise smp.SmpError (INVALID_ARGUMENT); needs no smp.init."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}' ({', '.join(SCHEDULES)})")
    return smp._smp.pipeline_schedule(SCHEDULES[name], int(stages), int(stage),
                                      int(microbatches), int(chunks), int(active_microbatches))


def virtual_stage(name, stage, stages, chunk):
    """Where chunk `chunk` of `stage` sits in the model: chunk * stages +
    stage, except zb-v's V (chunk 1 of stage s is 2 * stages - 1 - s)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}' ({', '.join(SCHEDULES)})")
    return smp._smp.pipeline_virtual_stage(SCHEDULES[name], int(stages), int(stage), int(chunk))


def _hand_over(t):
    """t as the executor takes it: a DLPack capsule (torch's own C
    conversion for host memory, cheaper than the __dlpack__ protocol; CUDA
    memory through __dlpack__(stream=1), which orders the current stream's
    work before the legacy default stream the transport copies on)."""
    return t.__dlpack__(stream=1) if t.is_cuda else torch.utils.dlpack.to_dlpack(t)


def _what(value):
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


class PipelineRunner:
    """chunks: this stage's modules, in local chunk order. Virtual stage 0's
    module is called as chunk(inputs[m]); the last one's as
    chunk(x, targets[m]) and returns the microbatch's mean loss; all others
    as chunk(x). Activations and gradients between virtual stages take the
    sender's dtype and shape (they may change from microbatch to
    microbatch); with `act_shape` (and `dtype`) given, the runtime rejects
    a tensor of another shape or dtype. active_microbatches: the interleaved
    schedule's in-flight cap (0 = the runtime's default; other schedules
    take only 0).

    zb-h1 and zb-v split each backward: B (the executor's backward) takes
    the gradient of the chunk's input alone, with torch.autograd.grad
    keeping the graph; W (backward_weight), later, computes the
    parameters' gradients of the same microbatch from the kept graph and
    adds them to .grad. zb-v holds two chunks per stage, laid out in a V
    (virtual_stage)."""

    def __init__(self, chunks, act_shape=None, dtype=torch.float32, schedule="interleaved",
                 group=smp.PP_GROUP, active_microbatches=0):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{schedule}' ({', '.join(SCHEDULES)})")
        if act_shape is not None and dtype not in _DTYPES:
            raise ValueError(f"act_shape with dtype {dtype}: the runtime checks only "
                             f"{', '.join(str(d) for d in _DTYPES)}")
        self.chunks = list(chunks)
        self.act_shape = None if act_shape is None else tuple(act_shape)
        self.dtype = dtype
        self.schedule_name = schedule
        self.active = active_microbatches
        self.group = group
        self.stages = smp.size(group)
        self.stage = smp.rank(group)
        self.virtual = self.stages * len(self.chunks)
        if schedule == "zb-v" and len(self.chunks) != 2:
            raise ValueError(f"the zb-v schedule runs two chunks per stage, got {len(self.chunks)}")
        self._vstages = [virtual_stage(schedule, self.stage, self.stages, c)
                         for c in range(len(self.chunks))]
        # Where received tensors must be: the chunks' device (what arrives
        # is host memory).
        self.device = next((p.device for ch in self.chunks for p in ch.parameters()),
                           torch.device("cpu"))

    def _vstage(self, chunk):
        return self._vstages[chunk]

    def holds_last(self):
        return any(self._vstage(c) == self.virtual - 1 for c in range(len(self.chunks)))

    def _tensor(self, capsule):
        t = torch.utils.dlpack.from_dlpack(capsule)
        return t if t.device == self.device else t.to(self.device)

    def run(self, inputs, targets):
        """One training step's forward and backward over every microbatch
        (gradients accumulate in the chunks' parameters). Returns the
        per-microbatch losses (floats) where this stage holds the last
        virtual stage, else None."""
        M = len(inputs)
        last = self.virtual - 1
        saved = {}  # (chunk, mb) -> (input, output) for the backward
        losses = [None] * M
        compute = [0.0]  # seconds in the chunks, not the runtime

        def forward(m, c, received):
            t0 = time.perf_counter()
            g = self._vstage(c)
            x = inputs[m] if g == 0 else self._tensor(received).requires_grad_()
            if g == last:
                out = self.chunks[c](x, targets[m])
                if not isinstance(out, torch.Tensor) or out.numel() != 1:
                    raise TypeError(f"PipelineRunner: chunk {c} (the last virtual stage) returned "
                                    f"{_what(out)}; it must return the microbatch's loss, a "
                                    "one-element tensor")
                losses[m] = out.detach().item()
                y = None
            else:
                out = self.chunks[c](x)
                if not isinstance(out, torch.Tensor):
                    raise TypeError(f"PipelineRunner: chunk {c} (virtual stage {g}) returned "
                                    f"{_what(out)}; a chunk passes one tensor to the next")
                y = out.detach().contiguous()
            saved[(c, m)] = (x, out)
            compute[0] += time.perf_counter() - t0
            return None if y is None else _hand_over(y)

        def backward(m, c, received):
            t0 = time.perf_counter()
            g = self._vstage(c)
            x, out = saved.pop((c, m))
            if g == last:
                # Each microbatch's loss is a mean over its tokens; the
                # step's loss is the mean over microbatches.
                torch.autograd.backward(out / M)
            else:
                torch.autograd.backward(out, self._tensor(received))
            gx = _hand_over(x.grad.contiguous()) if g > 0 else None
            compute[0] += time.perf_counter() - t0
            return gx

        weights = {}  # (chunk, mb) -> (outputs, their gradients): what W needs

        def backward_input(m, c, received):
            """B: the input gradient only; the graph stays for W."""
            t0 = time.perf_counter()
            g = self._vstage(c)
            x, out = saved.pop((c, m))
            root, grad = (out / M, None) if g == last else (out, self._tensor(received))
            gx = None
            if g > 0:
                (gx,) = _split.backward_input([root], [grad], [x])
                gx = _hand_over(gx.contiguous())
            weights[(c, m)] = (root, grad)
            compute[0] += time.perf_counter() - t0
            return gx

        def backward_weight(m, c):
            """W: the chunk's parameter gradients, accumulated into .grad
            (the graph is freed)."""
            t0 = time.perf_counter()
            root, grad = weights.pop((c, m))
            _split.backward_weight([root], [grad], self.chunks[c].parameters())
            compute[0] += time.perf_counter() - t0

        split = self.schedule_name in SPLIT_BACKWARD
        t0 = time.perf_counter()
        try:
            smp._smp.pipeline_run_step(
                SCHEDULES[self.schedule_name], M, len(self.chunks), int(self.active),
                int(self.group), forward, backward_input if split else backward,
                self.act_shape, _DTYPES.get(self.dtype, 0),
                backward_weight if split else None)
        finally:
            # smp.comm_seconds(): the step's time outside the chunks.
            smp._comm[0] += time.perf_counter() - t0 - compute[0]
        assert not saved and not weights, "schedule left work undone"
        return losses if self.holds_last() else None
