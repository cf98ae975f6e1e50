"""Gradient averaging of a DistributedModel stage over its data-parallel
replicas, in buckets that start during the backward pass.

Buckets hold this stage's parameters in reverse definition order (the
order their gradients become final, roughly) up to bucket_bytes each, the
same on every replica. When the server starts this rank's last backward of
the step (begin_final: the parameters that backward can reach), every
other parameter's gradient is final, and a hook after each reachable
parameter's gradient accumulation marks it final as the pass reaches it;
a bucket whose parameters are all final starts its non-blocking allreduce
at once, buckets strictly in order, so every replica posts the same
collectives in the same order. After the step, the rest start (a parameter
this replica did not use counts as zero), one small allreduce agrees on
which parameters any replica used and which buckets started too early (a
gradient that grew after its bucket started, e.g. a stage visited twice by
one microbatch): those are averaged again from the final gradients.
Parameters no replica used keep no gradient, as in one process.
"""

import torch

import smp


class GradSync:
    def __init__(self, params, group, bucket_bytes, overlap=True, check_final=None):
        """params: this stage's trainable parameters averaged over `group`;
        overlap=False starts every bucket after the backward pass;
        check_final(): called as gradients land, so the server can call
        begin_final when the running pass has become the last."""
        self.check_final = check_final or (lambda: None)
        self.group = group
        self.n = smp.size(group)
        self.params = list(params)
        self.buckets = []
        size = 0
        for p in reversed(self.params):
            if not self.buckets or size >= bucket_bytes or p.dtype != self.buckets[-1][0].dtype:
                self.buckets.append([])
                size = 0
            self.buckets[-1].append(p)
            size += p.numel() * p.element_size()
        self.bucket_of = {id(p): b for b, ps in enumerate(self.buckets) for p in ps}
        self._accumulators = []
        self.overlap = overlap
        self.early = 0   # buckets started during a backward pass, in all
        self.redone = 0  # buckets averaged again (started too early), in all
        self.reset()
        if self.n > 1:
            for p in self.params:
                # The AccumulateGrad node of p (Horovod's way to hook after
                # accumulation); kept, or autograd would make a new one.
                # (Grad mode on: the first step may run under no_grad.)
                with torch.enable_grad():
                    acc = p.expand_as(p).grad_fn.next_functions[0][0]
                acc.register_hook(self._hook(p))
                self._accumulators.append(acc)

    def reset(self):
        self.in_final = False
        self.fired = set()  # parameters whose gradient landed in the running pass
        self.ready = set()
        self.started = []  # (bucket, flat tensor, request)
        self.dirty = set()

    def _hook(self, p):
        def hook(*_):
            b = self.bucket_of[id(p)]
            self.fired.add(id(p))
            if b < len(self.started):
                self.dirty.add(b)
            elif self.in_final:
                self.ready.add(id(p))
                self._advance()
            elif self.overlap:
                self.check_final()
        return hook

    def begin_pass(self):
        self.fired = set()

    def begin_final(self, reachable):
        """The running backward pass is this rank's last of the step; it
        can reach the parameters whose ids are in `reachable`: the others,
        and those it has reached already, are final."""
        if not self.overlap or self.n == 1 or self.in_final:
            return
        self.in_final = True
        self.ready.update(id(p) for p in self.params
                          if id(p) not in reachable or id(p) in self.fired)
        self._advance()

    def _advance(self):
        while (len(self.started) < len(self.buckets)
               and all(id(q) in self.ready for q in self.buckets[len(self.started)])):
            self._start(len(self.started))

    def _start(self, b):
        flat = _flat_grads(self.buckets[b])
        self.started.append((b, flat, smp.iallreduce(flat, smp.AVG, self.group)))

    def finish(self):
        """After the step's backward (collective over the group)."""
        if self.n == 1 or not self.params:
            self.reset()
            return
        used = [p.grad is not None for p in self.params]
        self.early += len(self.started)
        for b in range(len(self.started), len(self.buckets)):
            self._start(b)
        flags = torch.tensor(used + [b in self.dirty for b in range(len(self.buckets))],
                             dtype=torch.int32)
        smp.allreduce(flags, smp.MAX, self.group)
        flags = flags.tolist()
        used, dirty = flags[:len(self.params)], flags[len(self.params):]
        for b, flat, req in self.started:
            req.wait()
            ps = self.buckets[b]
            if dirty[b]:
                self.redone += 1
                flat = _flat_grads(ps)
                smp.allreduce(flat, smp.AVG, self.group)
            off = 0
            for p in ps:
                k = p.numel()
                if p.grad is None:
                    p.grad = torch.empty_like(p)
                p.grad.copy_(flat[off:off + k].view_as(p))
                off += k
        for p, u in zip(self.params, used):
            if not u:
                p.grad = None
        self.reset()


def _flat_grads(params):
    """The parameters' gradients in one flat tensor (zero where none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])
