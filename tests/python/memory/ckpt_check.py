#!/usr/bin/env python3
"""Activation checkpointing and offloading through the front end, under
mpirun with pp = SMP_PP_SIZE (1, 2 or 3) and the rest data parallel.

    mpirun -np 2 -x SMP_PP_SIZE=2 python3 ckpt_check.py equal
    mpirun -np 3 -x SMP_PP_SIZE=3 python3 ckpt_check.py bad

equal: with dropout on, two training steps (SGD) give bit-identical
  losses and gradients (torch.equal, on every rank) without checkpointing
  and with each strategy ('each', 'contiguous', 'group_2', a single
  module), under both schedules; with offload_activations too, whose log
  must follow the loading horizon. At pp = 1 the activation bytes held for
  the backward pass after every forward (smp.activations.SavedMemory) are
  exactly what each strategy keeps; with stages, the first stage's drop.
  Microbatch tasks give the rank to one another at module calls
  (SMP_SERVER_YIELD), which can reorder two microbatches' dropout draws
  on a stage from one run to the next, with or without checkpointing;
  this check turns it off to compare bits.
tp: tensor parallelism (SMP_TP_SIZE): smp.nn's layers checkpointed, the
  same bits as without.
verify: yielding on, dropout on, SMP_CHECKPOINT_VERIFY=1: every
  recomputation matches its forward (the regions never yield).
bad: a checkpointed module spanning two stages (or a run of them), one
  calling a module of another stage, offloading without checkpointing or
  with one microbatch, marking after the first step: one SmpError naming
  the reason on every rank, and the job goes on.
"""
import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "equal"
if MODE != "verify":
    os.environ["SMP_SERVER_YIELD"] = "0"
else:
    os.environ["SMP_CHECKPOINT_VERIFY"] = "1"

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import smp  # noqa: E402
from smp import activations as A  # noqa: E402
from smp import model as smp_model  # noqa: E402

H, M, B = 8, 4, 16  # width, microbatches, batch (per replica)
BM = B // M
K = 4  # blocks: 2 per stage (set in main)


def block():
    return nn.Sequential(nn.Linear(H, 4 * H), nn.GELU(), nn.Dropout(0.25), nn.Linear(4 * H, H),
                         nn.Dropout(0.1))


class Net(nn.Module):
    """stem, K blocks (an nn.Sequential of nn.Sequentials), head; block i
    pinned to stage i * pp // K, the stem to 0, the head to the last."""

    def __init__(self, spread=True):
        super().__init__()
        pp = smp.pp_size()
        with smp.partition(0):
            self.stem = nn.Linear(H, H)
        blocks = []
        for i in range(K):
            with smp.partition(i * pp // K if spread else 0):
                blocks.append(block())
        self.blocks = nn.Sequential(*blocks)
        with smp.partition(pp - 1 if spread else 0):
            self.head = nn.Linear(H, 5)

    def forward(self, x):
        return self.head(self.blocks(torch.tanh(self.stem(x))))


def fresh(module):
    smp_model._active["model"] = None
    return smp.DistributedModel(module)


def run(strategy, schedule, offload=False, horizon=2, steps=2, meter=None):
    """Losses, this rank's gradients per step, the live bytes seen before
    each backward, and the offloader's last log."""
    cfg = smp.config()
    cfg.pipeline, cfg.offload_activations, cfg.activation_loading_horizon = (schedule, offload,
                                                                            horizon)
    torch.manual_seed(0)
    net = Net()
    if strategy == "single":
        A.set_activation_checkpointing(net.blocks[1])
    elif strategy is not None:
        A.set_activation_checkpointing(net.blocks, strategy=strategy)
    model = fresh(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    if meter is not None:  # parameters are not activations
        meter.skip |= {p.storage().data_ptr() for p in net.parameters()}

    @smp.step
    def train(model, x, y):
        if meter is None:
            loss = nn.functional.cross_entropy(model(x), y)
            model.backward(loss)
            return loss
        with meter.hooks():
            loss = nn.functional.cross_entropy(model(x), y)
            seen.append(meter.live)
            model.backward(loss)
        return loss

    @smp.step
    def evaluate(model, x):
        return model(x)

    g = torch.Generator().manual_seed(100 + smp.rdp_rank())
    # A call to another stage waits until the caller has learnt the module's
    # output structure, and a microbatch waiting there lets the next one in
    # ahead of it: a stage would then draw the microbatches' dropout masks
    # in another order in a run that makes other calls (a checkpointed run
    # of modules is one call). An evaluation step teaches every structure
    # first (with gradients enabled, no backward: a first step under
    # torch.no_grad() cannot set up the gradient buckets when rdp > 1).
    evaluate(model, torch.randn(B, H, generator=g))
    losses, grads = [], []
    before = dict(A.counts)
    for s in range(steps):
        x, y = torch.randn(B, H, generator=g), torch.randint(0, 5, (B,), generator=g)
        torch.manual_seed(1000 + s)  # dropout: the same draws in every run
        opt.zero_grad()
        out = train(model, x, y)
        losses.append(torch.stack(out.outputs))
        grads.append([(n, p.grad.clone()) for n, p in model.named_parameters()
                      if p.grad is not None])
        opt.step()
    log = list(A.offloader().log) if offload and A.offloader() is not None else []
    cfg.offload_activations = False
    return losses, grads, seen, log, regions_ran(before, strategy is not None)


def regions_ran(before, expected):
    """Why the step's checkpointing did not happen as expected (None if it
    did): every region run in training recomputed once, and some ran
    (somewhere in the world) iff checkpointing is on."""
    ran = A.counts["regions"] - before["regions"]
    redone = A.counts["recomputed"] - before["recomputed"]
    total = torch.tensor([ran], dtype=torch.int64)
    smp.allreduce(total, smp.SUM, smp.WORLD)
    if ran != redone:
        return f"{ran} regions ran, {redone} were recomputed"
    if (total.item() > 0) != expected:
        return f"{total.item()} regions ran in the world"
    return None


def same(a, b):
    if len(b) > 4 and b[4]:
        return b[4]
    la, ga = a[0], a[1]
    lb, gb = b[0], b[1]
    if not all(torch.equal(x, y) for x, y in zip(la, lb)):
        return "losses differ"
    for sa, sb in zip(ga, gb):
        if [n for n, _ in sa] != [n for n, _ in sb]:
            return "gradients of other parameters"
        for (n, x), (_, y) in zip(sa, sb):
            if not torch.equal(x, y):
                return f"gradient of {n} differs (max {float((x - y).abs().max()):.3g})"
    return None


def check_log(log, horizon):
    """Offload log invariants: a microbatch is offloaded only outside the
    window (the microbatch in its backward pass and the next `horizon` in
    the log's backward order), prefetched only inside it, and each
    offloaded region is prefetched before it is loaded."""
    order = log[0][1]
    pos = {mb: i for i, mb in enumerate(order)}
    cursor, state, ran = -1, {}, []
    for e in log[1:]:
        window = order[max(cursor, 0):max(cursor, 0) + horizon + 1]
        if e[0] == "backward":
            cursor = max(cursor, pos[e[1]])
            ran.append(e[1])
        elif e[0] == "offload":
            if e[1] in window:
                return f"offloaded microbatch {e[1]} inside the window {window}: {e}"
            state[e[1:3]] = "host"
        elif e[0] == "prefetch":
            if e[1] not in window or state.get(e[1:3]) != "host":
                return f"prefetch out of the horizon or of nothing: {e} (window {window})"
            state[e[1:3]] = "device"
        elif e[0] == "load":
            if e[3] == "late" and ran == order[:len(ran)]:
                # (Late is right where the backward passes ran in another
                # order than the engine expected.)
                return f"a region was not prefetched in time: {e}"
            if e[3] == "late":
                state[e[1:3]] = "device"
            if (e[3] == "prefetched") != (state.get(e[1:3]) == "device"):
                return f"load of a region in the wrong state: {e}"
            state.pop(e[1:3], None)
    if state:
        return f"offloaded regions never loaded: {sorted(state)}"
    return None


def mode_equal():
    failures = []
    pp = smp.pp_size()
    for schedule in ("simple", "interleaved"):
        base = run(None, schedule)
        for strategy in ("each", "contiguous", "group_2", "single"):
            why = same(base, run(strategy, schedule))
            if why:
                failures.append(f"{schedule} {strategy}: {why}")
        for horizon in (1, 2):
            res = run("each", schedule, offload=True, horizon=horizon)
            why = same(base, res) or check_log(res[3], horizon)
            # Something was offloaded somewhere (the last stage may run
            # each backward right after its forward; at pp = 1,
            # 'interleaved' does: nothing is worth offloading there).
            n = torch.tensor([sum(e[0] == "offload" for e in res[3])], dtype=torch.int64)
            smp.allreduce(n, smp.SUM, smp.WORLD)
            if not why and n.item() == 0 and (pp > 1 or schedule == "simple"):
                why = "nothing was offloaded on any rank"
            if why:
                failures.append(f"{schedule} offload horizon {horizon}: {why}")
            if smp.rank() == 0:
                print(f"offload log ({schedule}, horizon {horizon}, rank 0): {res[3]}", flush=True)
    # Bytes held for backward once every forward of the step is done
    # ('simple': the last microbatch's, before its backward): exact at
    # pp = 1; with stages, the first stage's (its microbatch threads: the
    # meter's hooks do not reach the server's threads) must drop.
    act = BM * H * 4  # one block input (float32)
    live = {}
    for name, strategy, offload in (("none", None, False), ("each", "each", False),
                                    ("contiguous", "contiguous", False),
                                    ("group_2", "group_2", False),
                                    ("each+offload", "each", True)):
        with A.SavedMemory() as meter:
            res = run(strategy, "simple", offload=offload, horizon=1, steps=1, meter=meter)
        live[name] = max(res[2]) if res[2] else 0
        if smp.rank() == 0:
            print(f"activation bytes held after the forward passes, {name}: {live[name]} "
                  f"(peak {meter.peak})", flush=True)
    if pp > 1 and smp.pp_rank() == 0:
        if not live["each+offload"] < live["each"] < live["none"] / 2:
            failures.append(f"memory, stage 0: held {live}")
        if not live["contiguous"] < live["each"]:
            failures.append(f"memory, stage 0: held {live}")
    if pp == 1:
        expect = {"contiguous": live["each"] - M * (K - 1) * act,
                  "group_2": live["each"] - M * (K // 2) * act,
                  # the first block's input is also the stem's tanh output
                  "each+offload": live["each"] - (M - 2) * (K - 1) * act}
        for k, v in expect.items():
            if live[k] != v:
                failures.append(f"memory: {k} holds {live[k]} bytes, expected {v}")
        if not live["each"] < live["none"] / 2:
            failures.append(f"memory: each holds {live['each']}, none {live['none']}")
    return failures


def mode_tp():
    """Tensor parallelism (SMP_TP_SIZE > 1): the stock GPT's layers swapped
    for smp.nn's twins and checkpointed after wrapping ('each' over its
    nn.ModuleList, and one layer alone), dropout on: bit-identical to no
    checkpointing (the recomputation repeats the layers' TP collectives)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "..", "examples"))
    from stock_gpt import StockGPT
    failures = []
    vocab, seq = 32, 8

    def gpt_run(which):
        torch.manual_seed(0)
        with smp.tensor_parallelism():
            module = StockGPT(vocab=vocab, seq=seq, d=16, heads=4, layers=2 * smp.pp_size(),
                              dropout=0.2)
        model = fresh(module)
        if which == "each":
            A.set_activation_checkpointing(model.module.blocks)
        elif which == "one":
            A.set_activation_checkpointing(model.module.blocks[0])
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        @smp.step
        def train(model, ids):
            logits = model(ids[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
            model.backward(loss)
            return loss

        @smp.step
        def evaluate(model, ids):
            return model(ids[:, :-1])

        g = torch.Generator().manual_seed(7 + smp.rdp_rank())
        evaluate(model, torch.randint(0, vocab, (B, seq + 1), generator=g))
        losses, grads = [], []
        before = dict(A.counts)
        for s in range(2):
            ids = torch.randint(0, vocab, (B, seq + 1), generator=g)
            torch.manual_seed(500 + s)
            opt.zero_grad()
            losses.append(torch.stack(train(model, ids).outputs))
            grads.append([(n, p.grad.clone()) for n, p in model.named_parameters()
                          if p.grad is not None])
            opt.step()
        return losses, grads, None, None, regions_ran(before, which is not None)

    base = gpt_run(None)
    for which in ("each", "one"):
        why = same(base, gpt_run(which))
        if why:
            failures.append(f"tp {which}: {why}")
    return failures


def mode_verify():
    failures = []
    for schedule in ("simple", "interleaved"):
        for strategy in ("each", "contiguous"):
            try:
                run(strategy, schedule, offload=strategy == "each")
            except smp.SmpError as e:
                failures.append(f"{schedule} {strategy}: {e}")
    return failures


def mode_bad():
    failures = []
    pp = smp.pp_size()
    X, Y = torch.randn(B, H), torch.randint(0, 5, (B,))

    @smp.step
    def train(model, x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        model.backward(loss)
        return loss

    def spanning():
        net = Net()
        A.set_activation_checkpointing(net)  # the whole model: every stage
        train(fresh(net), X, Y)

    def spanning_group():
        net = Net()
        A.set_activation_checkpointing(net.blocks, strategy="group_4")
        train(fresh(net), X, Y)

    def offload_without():
        smp.config().offload_activations = True
        train(fresh(Net()), X, Y)

    def offload_one_mb():
        cfg = smp.config()
        cfg.offload_activations, cfg.microbatches = True, 1
        net = Net()
        A.set_activation_checkpointing(net.blocks)
        train(fresh(net), X, Y)

    def calls_other_stage():
        class Calls(nn.Module):
            """Calls a module it does not own (the head, on the last stage)."""

            def __init__(self, peer):
                super().__init__()
                self.lin = nn.Linear(H, H)
                self.__dict__["peer"] = peer  # not a submodule

            def forward(self, x):
                return self.lin(x) + self.peer(x).sum() * 0

        class Net2(nn.Module):
            def __init__(self):
                super().__init__()
                with smp.partition(smp.pp_size() - 1):
                    self.head = nn.Linear(H, 5)
                with smp.partition(0):
                    self.stem = nn.Linear(H, H)
                    self.calls = Calls(self.head)

            def forward(self, x):
                return self.head(self.calls(self.stem(x)))

        net = Net2()
        A.set_activation_checkpointing(net.calls)
        train(fresh(net), X, Y)

    def late():
        model = fresh(Net())
        train(model, X, Y)
        A.set_activation_checkpointing(model.module.blocks)

    cases = [(offload_without, "no module of the model is checkpointed"),
             (offload_one_mb, "offload_activations needs microbatches > 1"),
             (late, "call it before the first smp.step")]
    if pp > 1:
        cases = [(spanning, "the model's root module (Net) spans pipeline stages"),
                 (spanning_group, "'blocks.0'..'blocks.3' (one group_4 checkpoint of module "
                                  "'blocks') span pipeline stages"),
                 (calls_other_stage, "checkpointed module 'calls' calls module 'head', which "
                                     "lives on pipeline stage")] + cases
    for fn, expect in cases:
        try:
            fn()
            ok, what = False, "no error"
        except smp.SmpError as e:
            ok, what = expect in str(e) and e.status == -1, f"{e} (status {e.status})"
        cfg = smp.config()
        cfg.offload_activations, cfg.microbatches = False, M
        flag = torch.tensor([0 if ok else 1], dtype=torch.int32)
        smp.allreduce(flag, smp.MAX, smp.WORLD)
        loss = train(fresh(Net()), X, Y).reduce_mean()  # the job goes on
        good = flag.item() == 0 and bool(torch.isfinite(loss))
        print(f"rank {smp.rank()}: {fn.__name__}: {'ok' if good else 'FAIL'}: {what}",
              flush=True)
        if not good:
            failures.append(fn.__name__)
    return failures


def main():
    global K
    torch.set_num_threads(1)
    smp.init({"microbatches": M})
    K = 2 * max(smp.pp_size(), 2)
    failures = {"equal": mode_equal, "verify": mode_verify, "bad": mode_bad,
                "tp": mode_tp}[MODE]()
    for f in failures:
        print(f"rank {smp.rank()}: FAIL {f}", flush=True)
    verdict = torch.tensor([len(failures)], dtype=torch.int32)
    smp.allreduce(verdict, smp.MAX, smp.WORLD)
    if smp.rank() == 0:
        print(f"{MODE}: {'FAIL' if verdict.item() else 'ok'} (pp {smp.pp_size()}, "
              f"tp {smp.tp_size()}, {smp.size()} ranks)", flush=True)
    smp.finalize()
    return 1 if verdict.item() else 0


if __name__ == "__main__":
    sys.exit(main())
