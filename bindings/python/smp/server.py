"""The execution server: how a model partitioned over pipeline stages runs
(SageMaker v1's design, smp's own code).

Every rank of PP_GROUP runs one. A module owned by another stage is called
through a request: its inputs (any nesting of tuples, lists, dicts, None,
numbers and tensors, gradient-carrying or not) travel to the owner, which
runs the module's own forward and replies with its outputs. The call is an
autograd Function on the caller's side, so the backward pass retraces the
same hops: the caller sends the output gradients, the owner runs the
backward of what it saved and replies with the input gradients. A call
whose output structure the caller has learnt need not wait at all: it
returns remote tensors (smp/remote.py) that stay on the owner, go to later
calls there by reference and are fetched (FETCH) where used, so the owner
keeps every call it served (an _Entry) until the backward passes through
it are done. Any Python
in a forward (data-dependent branches, a module called twice, skip
connections, parameters used in a parent's own forward) runs where that
module lives, unchanged.

Concurrency is cooperative: every microbatch on the first stage (the step
leader) and every request on any stage is a task in its own thread, and
exactly one thread of a rank runs at a time (a baton passes between the
server loop and the tasks). A task waiting for a reply parks; the server
then runs whatever is ready, in SageMaker's priority order: a task in its
backward pass, then new requests, then a forward, and on the leader a new
microbatch when the schedule allows one (`simple`: every forward before any
backward; `interleaved`: at most active_microbatches in flight). So stages
overlap across microbatches, and MPI is never called by two threads at once.

zb-h1 and zb-v (zero bubble): the leader starts a microbatch where the
runtime's list for stage 0 puts its forward (after the backwards listed
before it). Every other stage answers a backward request with B alone,
the gradients of the tensors it was sent (split_backward.backward_input),
and keeps the graph; the parameters' gradients (W) of that pass become a
task once every forward and backward that its stage's list puts before W
of that microbatch and chunk has happened here (split_backward.WeightOrder;
zb-v's chunk of a module is its segment's, chunk_of, from the partition),
and run after any backward, before new requests. The leader's own
backward stays whole: the loss is there and every stage waits for it. A
pass that reaches a call this stage made to another runs whole too (its
W would repeat that call's backward).

Messages: a fixed header (int64[8]) on a raw tag above the tensor
transport's, polled on every peer, then its payload (a pickled description
and the tensors) through the tensor transport, sent without waiting
(exchange_tensors with defer_sends), so two stages sending to each other
never block. A step ends with FIN from every rank to every other (the
leader's FIN says the step's work is over), so no receive stays posted.
"""

import contextlib
import os
import pickle
import threading
import time

import torch

import smp
from ._errors import SmpError
from .pytree import _Leaf, flatten, unflatten
from .remote import Caller, resolve
from .split_backward import WeightOrder, backward_input, backward_weight

SPLIT_BACKWARD = ("zb-h1", "zb-v")  # schedules the server runs with B and W apart

CTRL_TAG = 40000  # raw point-to-point; the tensor transport uses MPI tags 0..32767
DATA_TAG = 16383  # tensor transport tag of every payload
FWD_REQ, FWD_REP, BWD_REQ, BWD_REP, ERR_REP, FIN, FETCH = range(7)
# Decisions tp rank 0 of a stage sends the other ranks of its TP group
# (int64[4]: what, then its key), so they run tasks in its order.
RUN, START, ABORT, END = range(1, 5)
_INVALID, _TIMEOUT, _PEER_FAILED, _INTERNAL = -1, -5, -6, -9
# Waiting for a message: polls, then sleeps growing by a step to a cap.
_SPINS = int(os.environ.get("SMP_SERVER_SPINS", "64"))
_SLEEP_STEP = float(os.environ.get("SMP_SERVER_SLEEP_STEP", "2e-6"))
_MAX_SLEEP = float(os.environ.get("SMP_SERVER_MAX_SLEEP", "1e-3"))
_YIELD = os.environ.get("SMP_SERVER_YIELD", "1") != "0"


class _Abort(Exception):
    """Unwinds a parked task when its step is abandoned."""


class Task:
    """A thread that runs only while it holds the rank's baton."""

    def __init__(self, server, fn, name, mb=-1, ident=None):
        self.server, self.fn, self.name, self.mb = server, fn, name, mb
        # Two ints naming the task alike on every rank of a TP group.
        self.ident = ident if ident is not None else (-1, mb)
        self.unanswered = 0         # calls it made that did not wait, unanswered yet
        self.settling = False       # parked until they are (Caller.settle)
        self.call_error = None      # the first of them to fail: (status, message)
        self.wake = threading.Event()
        self.value = None
        self.result = None
        self.error = None
        self.done = False
        self.started = False
        self.in_backward = False
        self.weight = False         # a deferred weight pass (W)
        self.backward_called = False
        self.thread = threading.Thread(target=self._main, name=f"smp-{name}", daemon=True)

    def _main(self):
        self.wake.wait()
        self.wake.clear()
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: B902 - reported by the server loop
            self.error = e
        self.done = True
        self.server._main_wake.set()

    def park(self):
        """Give the baton back until the server resumes this task; returns
        what it was resumed with."""
        s = self.server
        s._main_wake.set()
        self.wake.wait()
        self.wake.clear()
        v, self.value = self.value, None
        if isinstance(v, _Abort):
            raise v
        return v


def _priority(task):
    """SageMaker's order (a backward, then a new request, then a forward),
    older microbatches first within each; a weight pass (W, zero-bubble)
    that the schedule has made due goes after backwards, before requests."""
    if task.weight:
        return (0.5, task.mb)
    return (0 if task.in_backward else (1 if not task.started else 2), task.mb)


class _Entry:
    """A call this stage served (owner side): the tensors it got as data
    (`leaves`), its outputs, kept in this rank's autograd graph for later
    calls that pass them by reference and for its backward, and the
    entries whose outputs it took (`parents`). `pending`: backward passes
    still to come through it (one per answered call or fetch of it or of a
    call after it in its chain); at zero it is dropped."""

    __slots__ = ("leaves", "outs", "spec", "parents", "pending", "done", "error", "waiters",
                 "chunk")

    def __init__(self):
        self.leaves, self.outs, self.spec, self.parents = [], [], None, []
        self.chunk = 0  # zb-v: which of this stage's two chunks the module is in
        self.pending = 0
        self.done = False
        self.error = None
        self.waiters = []


class Server:
    FWD_REQ, BWD_REQ, FETCH = FWD_REQ, BWD_REQ, FETCH

    def __init__(self, forwards, device):
        self.group = smp.PP_GROUP
        self.me, self.n = smp.pp_rank(), smp.pp_size()
        self.peers = [p for p in range(self.n) if p != self.me]
        # Tensor parallelism: the stage's modules make TP collectives, so the
        # ranks of a TP group must run the same tasks in the same order. Its
        # rank 0 chooses; the others follow its decisions (SageMaker's
        # deterministic server queue), whatever order their messages came in.
        self.tp_n, self.tp_me = smp.tp_size(), smp.tp_rank()
        self.forwards = forwards    # name -> its own (unpatched) forward
        self.device = device
        self.anchor = torch.zeros((), requires_grad=True)
        self.timeout = float(os.environ.get("SMP_TIMEOUT", "0") or 0)
        self._main_wake = threading.Event()
        self.current = None         # the task holding the baton
        self.caller = Caller(self)  # the calls this rank makes
        self.tasks = []
        self.n_mb = 1               # this step's microbatches, and its schedule
        self.schedule = "interleaved"
        self.params = []            # this stage's trainable parameters (W's inputs)
        self.chunk_of = {}          # zb-v: module name -> its chunk on its stage (0 or 1)
        self.final_listeners = []   # fn(ids of reachable parameters), see check_final
        self.pass_listeners = []    # fn() at every backward pass's start
        self._reset()

    def _reset(self):
        self.ready = []             # (task, value, key) to resume or start
        self.decisions = []         # follower: keys decided by tp rank 0, in order
        self.decision_req = None
        self.ended = self.tp_n == 1 or self.tp_me == 0
        self.waiting = {}           # (peer, cid) -> task awaiting that reply
        self.entries = {}           # (peer, cid) -> _Entry: the calls served this step
        self.sends = []             # payloads in flight: (requests, tensors)
        self.gated = []             # leader, simple: tasks held at their backward
        self.backward_busy = False  # GPU: a backward pass is running (_one_backward)
        self.backward_queue = []
        self.releases = 0
        self.seen = set()           # microbatches that reached this stage
        self.final_announced = False
        self.yields = 0
        self.live = set()
        self.cid = 0
        self.waits = 0              # replies a task of this rank parked for (a cost measure)
        self.fins = 0
        self.aborted = None         # the first error of the step, in words
        self.aborted_status = None  # and its status, where it was an SmpError
        self.unwinding = False
        self.did_backward = False
        self.fin_sent = False       # this rank's FIN went out
        self.end_sent = False       # TP rank 0: END went to the followers
        self.fwd_done = 0           # leader: microbatches past their forward
        self.unstarted = []         # leader: microbatches not started yet
        # Zero-bubble (zb-h1): where W may run (the runtime's schedule), the
        # W passes waiting for it per microbatch (roots, their gradients),
        # how many each microbatch had, and what ran here, in order.
        self.order = None
        self.deferred = {}
        self.weights = {}
        self.op_log = []
        self.caller.reset()

    # ---- messages ----
    def _send(self, peer, kind, cid, meta, tensors, mb=-1):
        # The transport carries no bool (DLPack has none): as uint8, flagged.
        bools = [i for i, t in enumerate(tensors) if t.dtype == torch.bool]
        blob = torch.frombuffer(bytearray(pickle.dumps((meta, bools))), dtype=torch.uint8)
        payload = [blob] + [(t.to(torch.uint8) if t.dtype == torch.bool else t.detach())
                            .contiguous() for t in tensors]
        _, req = smp.exchange_tensors([(t, peer, DATA_TAG) for t in payload], [], self.group,
                                      defer_sends=True)
        hdr = torch.tensor([kind, cid, len(tensors), mb, 0, 0, 0, 0], dtype=torch.int64)
        self.sends.append(([req, smp.isend(hdr, peer, self.group, CTRL_TAG)], (payload, hdr)))

    def _post(self):
        self.hdr = {p: torch.zeros(8, dtype=torch.int64) for p in self.peers}
        self.hdr_req = {p: smp.irecv(self.hdr[p], p, self.group, CTRL_TAG) for p in self.peers}
        if not self.ended:
            self.decision_buf = torch.zeros(4, dtype=torch.int64)
            self.decision_req = smp.irecv(self.decision_buf, 0, smp.TP_GROUP, CTRL_TAG)

    def _decide(self, what, key=(0, 0, 0)):
        """tp rank 0: tell the rest of the TP group."""
        if self.tp_n == 1 or self.tp_me != 0:
            return
        for r in range(1, self.tp_n):
            d = torch.tensor([what, *key], dtype=torch.int64)
            self.sends.append(([smp.isend(d, r, smp.TP_GROUP, CTRL_TAG)], d))

    def _reap(self):
        keep = []
        for reqs, keepalive in self.sends:
            reqs = [r for r in reqs if not r.test()]
            if reqs:
                keep.append((reqs, keepalive))
        self.sends = keep

    def _poll(self):
        """Waits for one message and handles it."""
        t0 = time.monotonic()
        spins = 0
        while not self._poll_once():
            self._reap()
            spins += 1
            if spins > _SPINS:
                # Ranks may outnumber cores: give them the CPU while waiting.
                time.sleep(min(_MAX_SLEEP, _SLEEP_STEP * (spins - _SPINS)))
            if self.timeout and time.monotonic() - t0 > self.timeout:
                raise SmpError(_TIMEOUT, f"pipeline stage {self.me}: no message from the other "
                                         f"stages for {self.timeout:g} s (SMP_TIMEOUT); "
                                         f"{len(self.waiting)} calls awaiting replies")

    def _poll_once(self):
        """Handles one message that has arrived, if any; True if it did."""
        if self.decision_req is not None and self.decision_req.test():
            d = self.decision_buf.tolist()
            self.decision_req = None
            if d[0] == END:
                self.ended = True
            else:
                self.decision_req = smp.irecv(self.decision_buf, 0, smp.TP_GROUP, CTRL_TAG)
                if d[0] == ABORT:
                    self._finish(abort="the step was abandoned (tensor-parallel rank 0 of "
                                       "this stage failed)")
                else:
                    self.decisions.append((d[0], tuple(d[1:])))
            return True
        for p in self.peers:
            req = self.hdr_req.get(p)
            if req is not None and req.test():
                hdr = self.hdr[p].tolist()
                self.hdr_req[p] = None
                if hdr[0] != FIN:
                    self.hdr_req[p] = smp.irecv(self.hdr[p], p, self.group, CTRL_TAG)
                self._handle(p, *hdr[:5])
                return True
        return False

    def maybe_yield(self):
        """From a running task, at a module call: takes in what has arrived
        and gives the rank to a task that outranks this one (a backward, a
        new request), so a stage waiting on this one for an activation to
        relay is not held up by a whole forward here. Not with tensor
        parallelism (the TP group's ranks would have to agree on every
        such point) nor while unwinding."""
        task = self.current
        if (not _YIELD or task is None or self.tp_n > 1 or not self.peers or self.unwinding
                or self.aborted is not None):
            return
        while self._poll_once():
            pass
        mine = _priority(task)
        if any(_priority(t) < mine for t, _, _ in self.ready):
            self.yields += 1
            self.ready.append((task, None, (-3, task.mb, self.yields)))
            task.park()

    def _recv_payload(self, peer, n):
        got = [smp.recv_tensor(peer, self.group, DATA_TAG) for _ in range(n + 1)]
        meta, bools = pickle.loads(got[0].numpy().tobytes())
        tensors = [t if t.device == self.device else t.to(self.device) for t in got[1:]]
        for i in bools:
            tensors[i] = tensors[i].to(torch.bool)
        return meta, tensors

    def _handle(self, peer, kind, cid, n, mb, flag):
        if kind == FIN:
            self.fins += 1
            if peer == 0 and self.me != 0:
                self._finish(abort="the step was abandoned (another stage failed)" if flag
                             else None)
            return
        meta, tensors = self._recv_payload(peer, n)
        if self.aborted is not None:
            return  # the step is over: late requests and replies are dropped
        key = (peer, cid, kind)
        ident = (peer * 16 + kind, cid)
        if kind == FWD_REQ:
            self.seen.add(mb)
            self.entries[(peer, cid)] = _Entry()
            self._spawn(lambda: self._serve_forward(peer, cid, meta, tensors), "forward", mb,
                        key, ident)
        elif kind == FETCH:
            self._spawn(lambda: self._serve_fetch(peer, cid, meta), "fetch", mb, key, ident)
        elif kind == BWD_REQ:
            t = self._spawn(lambda: self._serve_backward(peer, cid, meta, tensors), "backward",
                            mb, key, ident)
            t.in_backward = True
        elif (peer, cid) in self.caller.unanswered:
            error = (meta["status"], meta["message"]) if kind == ERR_REP else None
            task = self.caller.answered(peer, cid, error)
            if task is not None:
                self.ready.append((task, None, (-5,) + task.ident))
        else:
            task = self.waiting.pop((peer, cid), None)
            if task is not None:
                self.ready.append((task, (kind, meta, tensors), key))

    # ---- tasks ----
    def _spawn(self, fn, name, mb, key, ident):
        t = Task(self, fn, name, mb, ident)
        self.live.add(t)
        self.ready.append((t, None, key))
        return t

    def _resume(self, task, value):
        self.current = task
        task.value = value
        if not task.started:
            task.started = True
            task.thread.start()
        task.wake.set()
        self._main_wake.wait()
        self._main_wake.clear()
        self.current = None
        if task.done:
            self.live.discard(task)
            task.thread.join()

    def _next_ready(self):
        """The next (task, value) to run, or None, by _priority; a TP
        follower takes its rank 0's next decision once it is ready here."""
        if self.tp_n > 1 and self.tp_me != 0:
            if not self.decisions or self.decisions[0][0] != RUN:
                return None
            want = self.decisions[0][1]
            for i, (task, value, key) in enumerate(self.ready):
                if key == want:
                    self.decisions.pop(0)
                    del self.ready[i]
                    return task, value
            return None

        if not self.ready:
            return None
        best = min(range(len(self.ready)), key=lambda i: (_priority(self.ready[i][0]), i))
        task, value, key = self.ready.pop(best)
        self._decide(RUN, key)
        return task, value

    def _may_start(self):
        """Leader: may a new microbatch start now (a follower: was it decided)?"""
        if self.tp_n > 1 and self.tp_me != 0:
            if self.decisions and self.decisions[0][0] == START:
                self.decisions.pop(0)
                return True
            return False
        # Zero-bubble: the leader's next forward waits for the backwards the
        # schedule lists before it (a microbatch's backward is over when
        # its task is).
        return self.order is None or self.order.forward_allowed(len(self.tasks))

    def next_cid(self):
        self.cid += 1
        return self.cid

    def send_call(self, peer, cid, meta, tensors):
        """A forward request whose reply the calling task does not wait for."""
        self._send(peer, FWD_REQ, cid, meta, tensors, self.current.mb)

    def call(self, peer, kind, meta, tensors, cid):
        """From a task: request `kind` of `peer` and park until it replies;
        returns (cid, reply meta, reply tensors)."""
        task = self.current
        if task is None:
            raise SmpError(_INVALID, "a module of another pipeline stage was called outside "
                                     "an smp.step")
        if self.unwinding or self.aborted is not None:
            raise _Abort()
        if task.call_error is not None:
            raise SmpError(*task.call_error)
        self._send(peer, kind, cid, meta, tensors, task.mb)
        self.waiting[(peer, cid)] = task
        self.waits += 1
        rkind, rmeta, rtensors = task.park()
        if rkind == ERR_REP:
            raise SmpError(rmeta["status"], rmeta["message"])
        return cid, rmeta, rtensors

    def _reply(self, peer, cid, fn):
        try:
            kind, meta, tensors = fn()
        except _Abort:
            return
        except Exception as e:  # the caller raises it; the leader then ends the step
            status = getattr(e, "status", _PEER_FAILED)
            msg = e.message if isinstance(e, SmpError) else f"{type(e).__name__}: {e}"
            if not msg.startswith("pipeline stage"):
                msg = f"pipeline stage {self.me}: {msg}"
            kind, meta, tensors = ERR_REP, {"status": status, "message": msg}, []
        self._send(peer, kind, cid, meta, tensors, self.current.mb)

    def _entry(self, peer, cid):
        """From a task: the entry of call (peer, cid) once it has run."""
        ent = self.entries.get((peer, cid))
        if ent is None:
            raise SmpError(_INTERNAL, f"pipeline stage {self.me}: stage {peer} referred to a "
                                      f"call this stage did not serve (cid {cid})")
        while not ent.done:
            ent.waiters.append(self.current)
            self.current.park()
        if ent.error is not None:
            raise SmpError(*ent.error)
        return ent

    def _closure(self, peer, cid):
        """Keys of entry (peer, cid) and of every entry behind it."""
        out, stack = set(), [(peer, cid)]
        while stack:
            k = stack.pop()
            if k not in out and k in self.entries:
                out.add(k)
                stack.extend(self.entries[k].parents)
        return out

    def _root(self, peer, cid):
        """A backward pass will start at entry (peer, cid)'s outputs."""
        if any(o.requires_grad for o in self.entries[(peer, cid)].outs):
            for k in self._closure(peer, cid):
                self.entries[k].pending += 1

    def _serve_forward(self, peer, cid, meta, tensors):
        ent = self.entries[(peer, cid)]

        def forward():
            leaves = [t.requires_grad_() if w else t for t, w in zip(tensors, meta["grad"])]
            ent.leaves = leaves
            flat = []
            for where in meta["where"]:
                if where[0] == "d":
                    flat.append(leaves[where[1]])
                else:  # an output of an earlier call, kept here
                    flat.append(self._entry(peer, where[1]).outs[where[2]])
                    ent.parents.append((peer, where[1]))
            args, kwargs = unflatten(meta["spec"], flat)
            with torch.set_grad_enabled(meta["grad_enabled"]), \
                    smp.timeline("forward " + meta["name"], self.current.mb):
                out = resolve(self.forwards[meta["name"]](*args, **kwargs))
            ent.spec = flatten(out, ent.outs)
            expect = meta.get("expect")
            if expect is not None and pickle.dumps(ent.spec) != expect:
                raise SmpError(_INVALID, f"module '{meta['name']}' returned "
                                         f"{_describe_spec(ent.spec)} where its earlier calls "
                                         f"returned {_describe_spec(pickle.loads(expect))}; "
                                         "smp hands out such a call's outputs before they "
                                         "exist (SMP_SERVER_ASYNC=0 makes every call wait)")
            self.caller.settle(self.current)

        def run():
            try:
                forward()
            except BaseException as e:
                ent.error = ((e.status, e.message) if isinstance(e, SmpError)
                             else (_PEER_FAILED, f"{type(e).__name__}: {e}"))
                raise
            finally:
                ent.done = True
                for w in ent.waiters:
                    self.ready.append((w, None, (-4,) + w.ident))
                ent.waiters = []
            ent.chunk = self.chunk_of.get(meta["name"], 0)
            self._op("F", self.current.mb, {ent.chunk})
            if "expect" in meta:
                return FWD_REP, {}, []  # the caller holds remote tensors
            self._root(peer, cid)
            return FWD_REP, {"spec": ent.spec, "grad": [o.requires_grad for o in ent.outs]}, \
                ent.outs
        self._reply(peer, cid, run)

    def _serve_fetch(self, peer, cid, meta):
        def run():
            ent = self._entry(peer, meta["ref"])
            self._root(peer, meta["ref"])
            return FWD_REP, {"spec": ent.spec, "grad": [o.requires_grad for o in ent.outs]}, \
                ent.outs
        self._reply(peer, cid, run)

    def _serve_backward(self, peer, cid, meta, tensors):
        def run():
            ent = self.entries[(peer, meta["root"])]
            chain = self._closure(peer, meta["root"])
            for k in chain:
                self.entries[k].pending -= 1
            # Another backward pass will come through part of this chain.
            retain = any(self.entries[k].pending > 0 for k in chain)
            grads = iter(tensors)
            pairs = [(o, next(grads)) for o, has in zip(ent.outs, meta["mask"]) if has]
            pairs = [(o, g) for o, g in pairs if o.requires_grad]
            leaves = [self.entries[(peer, c)].leaves[i] for c, i in meta["leaves"]]
            chunks = {self.entries[k].chunk for k in chain}
            if pairs and self._splits([o for o, _ in pairs]):
                return self._backward_input(pairs, leaves, chain, chunks)
            if pairs:
                with self._one_backward(), smp.timeline("backward", self.current.mb):
                    self._backward_pass([o for o, _ in pairs])
                    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs],
                                            retain_graph=retain)
            gin = []
            for c, i in meta["leaves"]:
                leaf = self.entries[(peer, c)].leaves[i]
                gin.append(leaf.grad)
                leaf.grad = None  # another pass through it reports its own
            for k in chain:
                if self.entries[k].pending <= 0:
                    del self.entries[k]
            if pairs:
                self._op("B", self.current.mb, chunks, "BW")  # B and W at once
            return BWD_REP, {"has": [g is not None for g in gin]}, [g for g in gin if g is not None]
        self.did_backward = True
        self._reply(peer, cid, run)

    def _splits(self, roots):
        """Whether this backward pass runs as B now and W later: under a
        zero-bubble schedule, on a stage other than the leader (whose
        backward is what every other stage waits for, and which chooses
        its own order), unless the pass reaches a call this stage made to
        another (W would repeat that call's backward there)."""
        if self.order is None or self.me == 0:
            return False
        seen, frontier = set(), [r.grad_fn for r in roots]
        while frontier:
            fn = frontier.pop()
            if fn is None or id(fn) in seen:
                continue
            seen.add(id(fn))
            if type(fn).__name__ == "RemoteCallBackward":
                return False
            frontier.extend(f for f, _ in fn.next_functions)
        return True

    def _backward_input(self, pairs, leaves, chain, chunks):
        """B: the gradients of the chain's leaves, replied at once; W (the
        parameters' gradients from the graph B kept) waits for its place
        in the schedule (_release)."""
        mb = self.current.mb
        roots, grads = [o for o, _ in pairs], [g for _, g in pairs]
        want = [leaf for leaf in leaves if leaf.requires_grad]
        with self._one_backward(), smp.timeline("backward_input", mb):
            got = iter(backward_input(roots, grads, want))
        gin = [next(got) if leaf.requires_grad else None for leaf in leaves]
        for k in chain:
            if self.entries[k].pending <= 0:
                del self.entries[k]
        self.deferred.setdefault(mb, []).append((roots, grads, chunks))
        self._op("B", mb, chunks)
        return BWD_REP, {"has": [g is not None for g in gin]}, [g for g in gin if g is not None]

    def _op(self, kind, mb, chunks, logged=None):
        """An F or B of microbatch mb in `chunks` happened here (logged as
        `logged`, "BW" for a backward not split): W passes it made due
        become tasks."""
        if self.order is None:
            return
        for c in sorted(chunks):
            self.op_log.append((logged or kind, mb, c))
            self.order.done(kind, mb, c)
        self._release()

    def _release(self, everything=False):
        """Deferred W passes whose every chunk's W the schedule has made due
        (all of them: the step's work is over) become tasks, in order."""
        self.order.due()
        for mb in sorted(self.deferred):
            passes = self.deferred[mb]
            due = [everything or all((mb, c) in self.order.released for c in p[2])
                   for p in passes]
            ready = [p for p, d in zip(passes, due) if d]
            self.deferred[mb] = [p for p, d in zip(passes, due) if not d]
            if not self.deferred[mb]:
                del self.deferred[mb]
            for roots, grads, chunks in ready:
                j = self.weights.get(mb, 0)
                self.weights[mb] = j + 1
                key = (-6, mb, j)
                t = self._spawn(lambda r=roots, g=grads, m=mb, c=chunks:
                                self._weight_pass(r, g, m, c),
                                "weight", mb, key, (-6, mb * 4096 + j))
                t.weight = True

    def _weight_pass(self, roots, grads, mb, chunks):
        """W: this stage's parameter gradients of one B pass."""
        self.op_log += [("W", mb, c) for c in sorted(chunks)]
        self.current.in_backward = True
        with self._one_backward(), smp.timeline("backward_weight", mb):
            self._backward_pass(roots)
            backward_weight(roots, grads, self.params, retain_graph=True)

    def final_backward(self):
        """Whether the running backward is this rank's last of the step, so
        the gradients it accumulates are final: every other microbatch's
        work here is done (on other stages: every microbatch reached this
        one and no saved forward awaits its backward). A hint only:
        grad_sync averages again any bucket whose gradients grow after it
        started."""
        task = self.current
        if task is None or not task.in_backward:
            return False
        if any(t is not task and not t.done for t in self.live):
            return False
        if self.me == 0:
            return not self.unstarted
        return (len(self.seen) == self.n_mb and not self.deferred
                and not any(e.pending > 0 for e in self.entries.values()))

    def _backward_pass(self, roots):
        """A backward pass of the running task starts from `roots`."""
        self.current.roots = roots
        for listener in self.pass_listeners:
            listener()
        self.check_final()

    def check_final(self):
        """Once per step, when the running backward pass has become this
        rank's last (at its start, or as a gradient lands during it): tells
        the listeners (the model's gradient buckets) the parameters it can
        still reach (the leaves of its graph)."""
        task = self.current
        roots = getattr(task, "roots", None)
        if (self.final_announced or not self.final_listeners or roots is None
                or not self.final_backward()):
            return
        self.final_announced = True
        reachable, seen = set(), set()
        frontier = [r.grad_fn for r in roots if r.grad_fn is not None]
        while frontier:
            fn = frontier.pop()
            if fn is None or id(fn) in seen:
                continue
            seen.add(id(fn))
            var = getattr(fn, "variable", None)  # an AccumulateGrad node's leaf
            if var is not None:
                reachable.add(id(var))
            frontier.extend(f for f, _ in fn.next_functions)
        for listener in self.final_listeners:
            listener(reachable)

    @contextlib.contextmanager
    def _one_backward(self):
        """On a GPU, one backward pass at a time on this rank: autograd runs
        CUDA work on one thread per device, so a backward parked there
        (waiting for another stage) would stall every other backward of
        this rank. (A microbatch whose backward comes back to this rank
        while it is parked cannot then run: such partitions are for CPU.)
        On the CPU each backward runs on its own task's thread."""
        if self.device.type != "cuda":
            yield
            return
        task = self.current
        while self.backward_busy:
            self.backward_queue.append(task)
            task.park()
        self.backward_busy = True
        try:
            yield
        finally:
            self.backward_busy = False
            if self.backward_queue:
                t = self.backward_queue.pop(0)
                self.releases += 1  # the same count on every rank of a TP group
                self.ready.append((t, None, (-2, t.mb, self.releases)))

    def require_model_backward(self):
        task = self.current
        if task is None or not task.in_backward:
            raise SmpError(_INVALID, "loss.backward() was called inside an smp.step: call "
                                     "model.backward(loss) instead (it runs the backward "
                                     "pass across the pipeline stages)")

    def remote_forward(self, owner, name, args, kwargs):
        return self.caller.call(owner, name, args, kwargs)

    def fetch(self, record):
        return self.caller.fetch(record)

    # ---- the step ----
    def run(self, n_microbatches, microbatches=(), schedule="interleaved", active=None):
        """One step of n_microbatches. On the leader (stage 0),
        `microbatches` are callables, one per microbatch, each returning its
        outputs; other stages serve requests until the leader's FIN.
        Returns (outputs per microbatch on the leader, else None; the step's
        first error in words, or None)."""
        self._reset()
        self.n_mb = n_microbatches
        self.schedule = schedule
        if schedule in SPLIT_BACKWARD and self.n > 1:
            self.order = WeightOrder(schedule, self.me, self.n, n_microbatches,
                                     2 if schedule == "zb-v" else 1)
        self._post()
        leader = self.me == 0
        unstarted = self.unstarted = list(microbatches)
        tasks = self.tasks = []
        cap = (n_microbatches if schedule == "simple" or not active or self.order is not None
               else active)
        try:
            while True:
                item = self._next_ready()
                if item is not None:
                    task, value = item
                    self._resume(task, value)
                    self._after(task, tasks)
                    continue
                in_flight = sum(1 for t in tasks if not t.done)
                if (leader and unstarted and in_flight < cap and self.aborted is None
                        and self._may_start()):
                    self._decide(START, (len(tasks), 0, 0))
                    t = Task(self, self._settled(unstarted.pop(0)), "microbatch", len(tasks))
                    self.live.add(t)
                    tasks.append(t)
                    self._resume(t, None)
                    self._after(t, tasks)
                    continue
                if (leader and not self.fin_sent and all(t.done for t in tasks)
                        and not unstarted):
                    self._finish(abort=None)
                if (self.fin_sent and self.fins == len(self.peers) and not self.live
                        and self._ended()):
                    break
                if self.aborted is not None and not self.peers:
                    break
                self._poll()
        except SmpError as e:
            if self.aborted is None:
                self.aborted = self._describe(e)
            self._unwind()
        while self.sends:
            self._reap()
            if self.sends:
                time.sleep(1e-4)
        self.entries.clear()
        outs = [t.result for t in tasks] if leader else None
        if any(t.error is not None for t in tasks) and self.aborted is None:
            self.aborted = self._describe(next(t.error for t in tasks if t.error is not None))
        return outs, self.aborted

    def _settled(self, fn):
        """A microbatch: its function, then every call it made answered."""
        def run():
            result = fn()
            self.caller.settle(self.current)
            return result
        return run

    def _after(self, task, tasks):
        if task.done and task in tasks and task.error is not None:
            self._finish(abort=self._describe(task.error))
        if task.done and task in tasks and not task.backward_called:
            self._forward_done()
        if task.done and task in tasks and self.order is not None:
            for c in range(self.order.chunks):
                self.order.done("B", task.mb, c)
        if self.aborted is not None and not self.unwinding:
            self._unwind()  # the step was abandoned while a task ran

    def _ended(self):
        """TP rank 0 ends its followers' decision stream with END; a
        follower waits for it (its last posted receive)."""
        if self.tp_n > 1 and self.tp_me == 0 and not self.end_sent:
            self.end_sent = True
            self._decide(END)
        return self.ended

    def _describe(self, e):
        if isinstance(e, SmpError):
            self.aborted_status = self.aborted_status or e.status
            return e.message
        return f"{type(e).__name__}: {e}"

    def _finish(self, abort):
        if abort is not None and self.aborted is None:
            self.aborted = abort
        if abort is not None:
            self._decide(ABORT)
            if self.current is None:  # a task that learns it (maybe_yield) runs on
                self._unwind()
        if abort is None and self.aborted is None and self.deferred:
            # The leader's FIN: every backward of the step is over, so
            # every W is due (the schedule lists them all by then).
            self._release(everything=True)
        if not self.fin_sent:
            self.fin_sent = True
            flag = 0 if self.aborted is None else 1
            for p in self.peers:
                hdr = torch.tensor([FIN, 0, 0, -1, flag, 0, 0, 0], dtype=torch.int64)
                self.sends.append(([smp.isend(hdr, p, self.group, CTRL_TAG)], hdr))

    def _unwind(self):
        """Resumes every parked task with _Abort until none is left (calls
        made while unwinding raise it too); drops tasks never started."""
        self.unwinding = True
        self.ready = []
        self.waiting.clear()
        self.gated = []
        while True:
            parked = [t for t in self.live if t.started and not t.done]
            for t in [t for t in self.live if not t.started]:
                self.live.discard(t)
            if not parked:
                break
            self._resume(parked[0], _Abort())

    # ---- the leader's schedule ----
    def _forward_done(self):
        self.fwd_done += 1
        if self.schedule == "simple" and self.fwd_done >= self.n_mb:
            for t in self.gated:
                self.ready.append((t, None, (-1, t.mb, -1)))
            self.gated = []

    def backward(self, loss, scale):
        """model.backward(loss) inside a microbatch task."""
        task = self.current
        if task is None or task.mb < 0:
            raise SmpError(_INVALID, "model.backward(loss) was called outside an smp.step "
                                     "function")
        if task.backward_called:
            raise SmpError(_INVALID, "model.backward was called twice for one microbatch")
        task.backward_called = True
        if self.schedule == "simple":
            self._forward_done()
            if self.fwd_done < self.n_mb:
                self.gated.append(task)  # GPipe: every forward before any backward
                task.park()
        task.in_backward = True
        self.did_backward = True
        try:
            with self._one_backward(), smp.timeline("backward", task.mb):
                root = loss * scale if scale != 1 else loss
                self._backward_pass([root])
                torch.autograd.backward(root)
        finally:
            task.in_backward = False


def _describe_spec(spec):
    """An output structure in words: "a tensor", "tuple(a tensor, None)"."""
    if spec is None:
        return "None"
    if isinstance(spec, (list, tuple)):
        return f"{type(spec).__name__}({', '.join(_describe_spec(s) for s in spec)})"
    if isinstance(spec, dict):
        return "dict(" + ", ".join(f"{k}: {_describe_spec(v)}" for k, v in spec.items()) + ")"
    return "a tensor" if isinstance(spec, _Leaf) else repr(spec)
