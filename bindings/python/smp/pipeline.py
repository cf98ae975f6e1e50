"""Pipeline stage runner: executes the runtime's schedule
(smp_pipeline_schedule, via smp._smp.pipeline_schedule) over this stage's
model chunks, moving activations forward and gradients backward between the
stages of PP_GROUP.

The schedule is a list of operations (kind, microbatch, chunk, peer, batch).
Consecutive sends/receives with one `batch` form one smp.exchange_tensors
call (the runtime's tensor transport): every send and receive is posted at
once, then all of them are waited for, sends included. Tensors carry their
dtype and shape, so receives need no preallocated buffers.

The schedule lets a stage leave its sends in flight until the end of the
step (smp.h); smp_exchange_tensors waits for them. With several chunks per
stage and microbatches >= 2 * stages that deadlocks once messages are too
large for MPI to buffer (a send then completes only when its receive is
posted): both neighbours send while neither has reached its receive. So
plan_exchanges() simulates every stage's exchanges with such sends and,
where they would stall, moves the receive a stalled send waits for into
the receiver's current exchange (earlier than the schedule lists it, which
costs only holding that tensor a little longer, the memory MPI would have
used to buffer it). Schedules that never stall run as listed.
tests/python/bindings/test_transport.py checks every schedule's plan
against an independent model of that rendezvous.
Chunk c of stage s is virtual stage g = c * stages + s; its input comes from
virtual stage g - 1 and its output goes to g + 1. With one stage the runtime
lists no transfers: chunk c hands its output to chunk c + 1 in memory.
"""

import torch

import smp

SCHEDULES = {"simple": 0, "interleaved": 1, "virtual": 2}  # smp_schedule_t
FORWARD, BACKWARD, SEND_ACTIVATION, RECV_ACTIVATION, SEND_GRADIENT, RECV_GRADIENT = range(6)
_SENDS = (SEND_ACTIVATION, SEND_GRADIENT)
_MAX_TAG = 16383  # smp.h: tensor tags are 0..16383


def schedule(name, stage, stages, microbatches, chunks=1, active_microbatches=0):
    """The runtime's operations for `stage` in one step: a list of
    (kind, microbatch, chunk, peer, batch) with the kinds above. Bad
    arguments raise smp.SmpError (INVALID_ARGUMENT); needs no smp.init."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}' (simple, interleaved or virtual)")
    return smp._smp.pipeline_schedule(SCHEDULES[name], int(stages), int(stage),
                                      int(microbatches), int(chunks), int(active_microbatches))


def _transfers(ops, stage, stages):
    """The schedule's exchanges, in order: lists of (is_send, key, op) with
    op = (kind, microbatch, chunk, peer) and key = (direction, receiving
    virtual stage, microbatch), the same on both sides of a transfer."""
    out, prev = [], None
    for kind, m, c, peer, batch in ops:
        if kind in (FORWARD, BACKWARD):
            prev = None
            continue
        if batch != prev:
            out.append([])
            prev = batch
        g = c * stages + stage
        if kind == SEND_ACTIVATION:
            key = (0, g + 1, m)
        elif kind == SEND_GRADIENT:
            key = (1, g - 1, m)
        else:
            key = (1 if kind == RECV_GRADIENT else 0, g, m)
        out[-1].append((kind in _SENDS, key, (kind, m, c, peer)))
    return out


def plan_exchanges(name, stages, microbatches, chunks=1, active_microbatches=0):
    """Every stage's exchanges for one step (a list per stage of lists of
    (kind, microbatch, chunk, peer)), as the schedule lists them except
    for receives moved earlier where blocking sends would deadlock. The
    k-th list of a stage is its k-th batch of transfers in the schedule
    (it may end up empty). Pure: every rank computes the same plan."""
    ex = [_transfers(schedule(name, s, stages, microbatches, chunks, active_microbatches),
                     s, stages) for s in range(stages)]
    # Each move takes a receive strictly earlier, so this ends.
    while True:
        stuck = _simulate(ex)
        if stuck is None:
            return [[[op for _, _, op in e] for e in st] for st in ex]
        if not _pull_one_receive(ex, *stuck):
            raise RuntimeError(f"schedule {name} (stages {stages}, microbatches {microbatches}, "
                               f"chunks {chunks}) stalls with blocking exchanges")


def _simulate(ex):
    """Runs the exchanges as smp_exchange_tensors does (every transfer
    posted; headers awaited in order, each payload receive posted once its
    header and all earlier ones arrived; a send done once its payload
    receive is posted). None when every stage finishes, else the stuck
    state (pos, payload_posted) for _pull_one_receive. Progress only
    enables more progress, so the order of the sweep does not matter."""
    n = len(ex)
    pos = [0] * n                      # the exchange each stage is in
    posted = [set() for _ in range(n)]   # keys each stage has sent
    received = [set() for _ in range(n)]

    def enter(st):
        if pos[st] < len(ex[st]):
            posted[st].update(k for is_send, k, _ in ex[st][pos[st]] if is_send)

    def payload_posted(r, key):
        if key in received[r]:
            return True
        if pos[r] == len(ex[r]):
            return False
        for is_send, k, op in ex[r][pos[r]]:
            if is_send:
                continue
            if k not in posted[op[3]]:
                return False
            if k == key:
                return True
        return False

    def done(st):
        return all(payload_posted(op[3], k) if is_send else k in posted[op[3]]
                   for is_send, k, op in ex[st][pos[st]])

    for st in range(n):
        enter(st)
    progress = True
    while progress:
        progress = False
        for st in range(n):
            while pos[st] < len(ex[st]) and done(st):
                received[st].update(k for is_send, k, _ in ex[st][pos[st]] if not is_send)
                pos[st] += 1
                enter(st)
                progress = True
    if all(pos[st] == len(ex[st]) for st in range(n)):
        return None
    return pos, payload_posted


def _pull_one_receive(ex, pos, payload_posted):
    """Moves the receive of one stalled send from a later exchange of the
    receiver to the end of its current one (the end: it must not hold up
    the headers already there). False when no send can be helped."""
    for st, exchanges in enumerate(ex):
        if pos[st] == len(exchanges):
            continue
        for is_send, k, op in exchanges[pos[st]]:
            r = op[3]
            if not is_send or payload_posted(r, k) or pos[r] == len(ex[r]):
                continue
            for j in range(pos[r] + 1, len(ex[r])):
                for i, (r_send, rk, _) in enumerate(ex[r][j]):
                    if not r_send and rk == k:
                        ex[r][pos[r]].append(ex[r][j].pop(i))
                        return True
    return False


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
        self._plans = {}  # microbatches -> this stage's exchanges (plan_exchanges)

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
        if M not in self._plans:
            self._plans[M] = plan_exchanges(self.schedule_name, self.stages, M,
                                            len(self.chunks), self.active)[self.stage]
        plan = self._plans[M]
        last = self.virtual - 1
        acts_in = {}    # (chunk, mb) -> forward input from the previous virtual stage
        grads_in = {}   # (chunk, mb) -> gradient of the output from the next one
        outbox = {}     # (kind, chunk, mb) -> tensor the schedule sends later
        saved = {}      # (chunk, mb) -> (input, output) for the backward
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
            if not batch:
                return  # every receive of it was moved earlier
            for kind, m, c, peer in batch:
                g = self._vstage(c)
                if kind == SEND_ACTIVATION:
                    sends.append((outbox.pop((kind, c, m)), peer, self._tag(False, g + 1, m, M)))
                elif kind == SEND_GRADIENT:
                    sends.append((outbox.pop((kind, c, m)), peer, self._tag(True, g - 1, m, M)))
                else:
                    backward_dir = kind == RECV_GRADIENT
                    buf = (None if self.act_shape is None
                           else torch.empty(self.act_shape, dtype=self.dtype))
                    recvs.append((buf, peer, self._tag(backward_dir, g, m, M)))
                    dests.append((grads_in if backward_dir else acts_in, (c, m)))
            got = smp.exchange_tensors(sends, recvs, self.group)
            for (box, key), t in zip(dests, got):
                box[key] = t

        i = k = 0
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
                exchange(plan[k])  # ops[i:j], receives possibly moved
                i, k = j, k + 1
        assert not saved and not acts_in and not grads_in and not outbox, \
            "schedule left work undone"
        return losses if self.holds_last() else None
