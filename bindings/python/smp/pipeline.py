"""Pipeline stage runner: executes the runtime's schedule
(smp_pipeline_schedule, via smp._smp.pipeline_schedule) over this stage's
model chunks, moving activations forward and gradients backward between the
stages of PP_GROUP.

The schedule is a list of operations (kind, microbatch, chunk, peer, batch).
Consecutive sends/receives with one `batch` form one exchange through the
runtime's tensor transport (smp.exchange_tensors with defer_sends, i.e.
smp_exchange_tensors_deferred): every send and receive is posted at once,
the receives are waited for, and the sends stay in flight until the end of
the step, as the schedule is built to run (smp.h). Waiting for the sends
inside each exchange would stall schedules with several chunks per stage
once tensors are too large for MPI to buffer: both neighbours would wait in
a send whose receive the other posts only in a later exchange. Tensors
carry their dtype and shape, so receives need no preallocated buffers.
Where the chunks' parameters live on a GPU, activations and gradients are
sent from CUDA memory (smp stages CUDA point-to-point through host memory)
and what arrives is handed to the chunks on that GPU.

Chunk c of stage s is virtual stage g = c * stages + s; its input comes from
virtual stage g - 1 and its output goes to g + 1. With one stage the runtime
lists no transfers: chunk c hands its output to chunk c + 1 in memory.
"""

import torch

import smp

SCHEDULES = {"simple": 0, "interleaved": 1, "virtual": 2}  # smp_schedule_t
FORWARD, BACKWARD, SEND_ACTIVATION, RECV_ACTIVATION, SEND_GRADIENT, RECV_GRADIENT = range(6)
_MAX_TAG = 16383  # smp.h: tensor tags are 0..16383


def schedule(name, stage, stages, microbatches, chunks=1, active_microbatches=0):
    """The runtime's operations for `stage` in one step: a list of
    (kind, microbatch, chunk, peer, batch) with the kinds above. Bad
    arguments raise smp.SmpError (INVALID_ARGUMENT); needs no smp.init."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}' (simple, interleaved or virtual)")
    return smp._smp.pipeline_schedule(SCHEDULES[name], int(stages), int(stage),
                                      int(microbatches), int(chunks), int(active_microbatches))


class PipelineRunner:
    """chunks: this stage's modules, in local chunk order. Virtual stage 0's
    module is called as chunk(inputs[m]); the last one's as
    chunk(x, targets[m]) and returns the microbatch's mean loss; all others
    as chunk(x). Activations and gradients between virtual stages take the
    sender's dtype and shape (they may change from microbatch to
    microbatch); with `act_shape` (and `dtype`) given, they are received
    into buffers of that shape instead, and the runtime rejects a tensor of
    another shape or dtype. active_microbatches: the interleaved schedule's
    in-flight cap (0 = the runtime's default; other schedules take only 0)."""

    def __init__(self, chunks, act_shape=None, dtype=torch.float32, schedule="interleaved",
                 group=smp.PP_GROUP, active_microbatches=0):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{schedule}' (simple, interleaved or virtual)")
        self.chunks = list(chunks)
        self.act_shape = None if act_shape is None else tuple(act_shape)
        self.dtype = dtype
        self.schedule_name = schedule
        self.active = active_microbatches
        self.group = group
        self.stages = smp.size(group)
        self.stage = smp.rank(group)
        self.virtual = self.stages * len(self.chunks)
        # Where received tensors must be: the chunks' device. A receive
        # without a buffer yields a host tensor, moved there.
        self.device = next((p.device for ch in self.chunks for p in ch.parameters()),
                           torch.device("cpu"))

    def _vstage(self, chunk):
        return chunk * self.stages + self.stage

    def _tag(self, backward, vstage, mb, microbatches):
        # Unique per (direction, receiving virtual stage, microbatch), so no
        # transfer depends on the order of others (run() checks the range).
        return ((1 if backward else 0) * microbatches + mb) * self.virtual + vstage

    def holds_last(self):
        return self._vstage(len(self.chunks) - 1) == self.virtual - 1

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
                    sends.append((outbox.pop((kind, c, m)), peer, self._tag(False, g + 1, m, M)))
                elif kind == SEND_GRADIENT:
                    sends.append((outbox.pop((kind, c, m)), peer, self._tag(True, g - 1, m, M)))
                else:
                    backward_dir = kind == RECV_GRADIENT
                    buf = (None if self.act_shape is None
                           else torch.empty(self.act_shape, dtype=self.dtype, device=self.device))
                    recvs.append((buf, peer, self._tag(backward_dir, g, m, M)))
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
