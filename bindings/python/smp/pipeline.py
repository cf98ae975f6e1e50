"""Pipeline stage runner: executes a schedule (smp.schedule) over this
stage's model chunks, moving activations forward and gradients backward
between the stages of PP_GROUP.

Sends are non-blocking (the schedule's order then cannot deadlock);
receives block until the tensor is there. Chunk c of stage s is virtual
stage g = c * stages + s; its input comes from virtual stage g - 1 on stage
(s - 1) mod stages and its output goes to g + 1 on stage (s + 1) mod stages.
"""

import torch

import smp
from . import schedule as _schedule


class PipelineRunner:
    """chunks: this stage's modules, in local chunk order. Virtual stage 0's
    module is called as chunk(inputs[m]); the last one's as
    chunk(x, targets[m]) and returns the microbatch's mean loss; all others
    as chunk(x). Activations between virtual stages have shape `act_shape`
    and dtype `dtype` (fixed: the GPT's (microbatch, seq, hidden))."""

    def __init__(self, chunks, act_shape, dtype=torch.float32, schedule="interleaved",
                 group=smp.PP_GROUP):
        self.chunks = list(chunks)
        self.act_shape = tuple(act_shape)
        self.dtype = dtype
        self.schedule_name = schedule
        self.group = group
        self.stages = smp.size(group)
        self.stage = smp.rank(group)
        self.virtual = self.stages * len(self.chunks)
        if schedule != "virtual" and len(self.chunks) != 1:
            raise ValueError(f"the {schedule} schedule runs one chunk per stage; use virtual")

    def _vstage(self, chunk):
        return chunk * self.stages + self.stage

    def _tag(self, backward, vstage, mb, microbatches):
        return ((1 if backward else 0) * microbatches + mb) * self.virtual + vstage

    def holds_last(self):
        return self._vstage(len(self.chunks) - 1) == self.virtual - 1

    def run(self, inputs, targets):
        """One training step's forward and backward over every microbatch
        (gradients accumulate in the chunks' parameters). Returns the
        per-microbatch losses (floats) where this stage holds the last
        virtual stage, else None."""
        M = len(inputs)
        acts = _schedule.schedule(self.schedule_name, self.stage, self.stages, M, len(self.chunks))
        prev = (self.stage - 1) % self.stages
        nxt = (self.stage + 1) % self.stages
        saved = {}      # (chunk, mb) -> (input, output)
        local = {}      # messages to this same stage (pp = 1, interleaved)
        pending = []    # non-blocking sends, finished at the end of the step
        losses = [None] * M

        def send(t, peer, tag):
            if peer == self.stage:
                local[tag] = t
            else:
                pending.append(smp.isend(t, peer, self.group, tag))

        def recv(peer, tag):
            if peer == self.stage:
                return local.pop(tag)
            buf = torch.empty(self.act_shape, dtype=self.dtype)
            smp.recv_into(buf, peer, self.group, tag)
            return buf

        for kind, c, m in acts:
            g = self._vstage(c)
            if kind == "F":
                if g == 0:
                    x = inputs[m]
                else:
                    x = recv(prev, self._tag(False, g, m, M)).requires_grad_()
                with smp.timeline("forward", m, c):
                    if g == self.virtual - 1:
                        out = self.chunks[c](x, targets[m])
                        losses[m] = out.detach().item()
                    else:
                        out = self.chunks[c](x)
                if g != self.virtual - 1:
                    send(out.detach().contiguous(), nxt, self._tag(False, g + 1, m, M))
                saved[(c, m)] = (x, out)
            else:
                x, out = saved.pop((c, m))
                if g == self.virtual - 1:
                    # Each microbatch's loss is a mean over its tokens; the
                    # step's loss is the mean over microbatches.
                    with smp.timeline("backward", m, c):
                        torch.autograd.backward(out / M)
                else:
                    grad = recv(nxt, self._tag(True, g, m, M))
                    with smp.timeline("backward", m, c):
                        torch.autograd.backward(out, grad)
                if g > 0:
                    send(x.grad.contiguous(), prev, self._tag(True, g - 1, m, M))
        for r in pending:
            r.wait()
        assert not saved and not local, "schedule left work undone"
        return losses if self.holds_last() else None
