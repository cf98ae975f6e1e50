"""smp.pipeline.PipelineRunner over the runtime's executor
(smp_pipeline_run_step), beyond test_transport.py's comparison of every
schedule with one process: chunks handed over in memory on a one-stage
group, a chunk that raises (on the last stage, at stage 0's very last
backward, an SmpError, a tuple where a tensor belongs): its rank re-raises
it, every other raises SmpError(PEER_FAILED) naming it, and the next step
is clean; act_shape rejecting other shapes on every rank; the GIL released
while the step waits; smp.comm_seconds() counting the step's runtime."""
import threading
import time

import numpy as np
import pytest
import torch

import smp
from smp import pipeline


class Block(torch.nn.Module):
    """Virtual stage g of a chain: tanh(W x + b); the last one returns the
    mean squared error against the targets. `raise_at` (microbatch, when)
    makes its forward ("forward") or backward ("backward") raise `error`
    for that microbatch; microbatches reach a chunk in order."""

    def __init__(self, g, width, last, raise_at=None, error=None, returns=None):
        super().__init__()
        torch.manual_seed(100 + g)
        self.lin = torch.nn.Linear(width, width)
        self.last = last
        self.raise_at = raise_at
        self.error = error
        self.returns = returns
        self.calls = 0

    def forward(self, x, y=None):
        m, self.calls = self.calls, self.calls + 1
        if self.raise_at == (m, "forward"):
            raise self.error
        h = torch.tanh(self.lin(x))
        if self.raise_at == (m, "backward"):
            def hook(_):
                raise self.error
            h.register_hook(hook)
        if self.returns is not None:
            return self.returns(h)
        return ((h - y) ** 2).mean() if self.last else h


WIDTH, ROWS = 16, 8


def data(M):
    gen = torch.Generator().manual_seed(7)
    inputs = [torch.randn(ROWS, WIDTH, generator=gen) for _ in range(M)]
    targets = [torch.randn(ROWS, WIDTH, generator=gen) for _ in range(M)]
    return inputs, targets


def check_against_one_process(runner, mine, stages, stage, inputs, targets):
    """Runs the step and compares losses and gradients with the chain run
    in this process."""
    M = len(inputs)
    chunks = len(mine)
    virtual = stages * chunks
    losses = runner.run(inputs, targets)
    ref = [Block(g, WIDTH, g == virtual - 1) for g in range(virtual)]
    ref_losses = []
    for x, y in zip(inputs, targets):
        for b in ref[:-1]:
            x = b(x)
        loss = ref[-1](x, y)
        (loss / M).backward()
        ref_losses.append(loss.item())
    assert (losses is not None) == (stage == (virtual - 1) % stages)
    if losses is not None:
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for c, block in enumerate(mine):
        for p, q in zip(block.parameters(), ref[c * stages + stage].parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def stage_blocks(stages, stage, chunks, on=None, **extra):
    """This stage's chunks; `extra` (Block's failure arguments) goes to
    the chunk `on` = (stage, chunk) names."""
    virtual = stages * chunks
    return [Block(c * stages + stage, WIDTH, c * stages + stage == virtual - 1,
                  **(extra if on == (stage, c) else {}))
            for c in range(chunks)]


@pytest.mark.parametrize("schedule,chunks", [("simple", 3), ("virtual", 2), ("interleaved", 1)])
def test_one_stage_hands_chunks_over_in_memory(world, schedule, chunks):
    if smp.size(smp.TP_GROUP) != 1:
        pytest.skip("needs a group of one rank (tp = 1)")
    mine = stage_blocks(1, 0, chunks)
    runner = pipeline.PipelineRunner(mine, schedule=schedule, group=smp.TP_GROUP)
    inputs, targets = data(4)
    check_against_one_process(runner, mine, 1, 0, inputs, targets)


def expect_failure(run, rank, failing_rank, error, words):
    """The failing rank raises `error` itself; the others SmpError
    (PEER_FAILED) whose message names the failing stage and has `words`."""
    if rank == failing_rank:
        with pytest.raises(type(error)) as got:
            run()
        assert got.value is error or str(error) in str(got.value)
    else:
        with pytest.raises(smp.SmpError) as got:
            run()
        assert got.value.status == smp.Status.PEER_FAILED, got.value
        assert got.value.message.startswith(f"pipeline stage {failing_rank}: "), got.value.message
        assert words in got.value.message, got.value.message


FAILURES = [  # name, stage ("last" or 0), chunk, (microbatch, when), error, words
    ("last stage forward", "last", 0, (1, "forward"), ValueError("boom 7"), "ValueError: boom 7"),
    ("stage 0's last backward", 0, 0, ("M-1", "backward"), RuntimeError("late"),
     "RuntimeError: late"),
    ("SmpError keeps its status", "last", 0, (0, "forward"),
     smp.SmpError(smp.Status.IO, "disk on fire"), "SmpError: disk on fire"),
]


@pytest.mark.parametrize("name,stage,chunk,at,error,words", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_raising_chunk_fails_every_stage(world, name, stage, chunk, at, error, words):
    rank, size = world
    M = 2 * size
    failing = size - 1 if stage == "last" else stage
    at = (M - 1 if at[0] == "M-1" else at[0], at[1])
    where = f"{at[1]} of microbatch {at[0]}, chunk {chunk}"
    mine = stage_blocks(size, rank, 1, on=(failing, chunk), raise_at=at, error=error)
    runner = pipeline.PipelineRunner(mine, group=smp.WORLD)
    inputs, targets = data(M)
    expect_failure(lambda: runner.run(inputs, targets), rank, failing, error, f"{where}: {words}")
    # The next step is clean: nothing of the failed one is left in flight.
    mine = stage_blocks(size, rank, 1)
    check_against_one_process(pipeline.PipelineRunner(mine, group=smp.WORLD), mine, size, rank,
                              inputs, targets)


def test_failure_message_names_the_operation(world):
    rank, size = world
    M = size
    err = KeyError("missing")
    mine = stage_blocks(size, rank, 1, on=(0, 0), raise_at=(1, "forward"), error=err)
    runner = pipeline.PipelineRunner(mine, schedule="simple", group=smp.WORLD)
    inputs, targets = data(M)
    if rank == 0:
        with pytest.raises(KeyError):
            runner.run(inputs, targets)
    else:
        with pytest.raises(smp.SmpError) as got:
            runner.run(inputs, targets)
        assert got.value.message == ("pipeline stage 0: forward of microbatch 1, chunk 0: "
                                     "KeyError: 'missing'"), got.value.message


def test_a_tuple_between_stages_is_a_clear_error(world):
    rank, size = world
    mine = stage_blocks(size, rank, 1, on=(0, 0), returns=lambda h: (h, h))
    runner = pipeline.PipelineRunner(mine, group=smp.WORLD)
    inputs, targets = data(size)
    expect_failure(lambda: runner.run(inputs, targets), rank, 0,
                   TypeError("chunk 0 (virtual stage 0) returned a tuple"),
                   "TypeError: PipelineRunner: chunk 0 (virtual stage 0) returned a tuple")


def test_act_shape_rejects_other_shapes_on_every_rank(world):
    rank, size = world
    mine = stage_blocks(size, rank, 1)
    runner = pipeline.PipelineRunner(mine, act_shape=(ROWS + 1, WIDTH), group=smp.WORLD)
    inputs, targets = data(size)
    with pytest.raises(smp.SmpError) as got:
        runner.run(inputs, targets)
    assert got.value.status == smp.Status.PEER_FAILED
    assert f"float32[{ROWS}, {WIDTH}], but float32[{ROWS + 1}, {WIDTH}] was expected" in \
        got.value.message, got.value.message
    with pytest.raises(ValueError, match="act_shape with dtype torch.bool"):
        pipeline.PipelineRunner(mine, act_shape=(ROWS, WIDTH), dtype=torch.bool)


class Slow(Block):
    def forward(self, x, y=None):
        time.sleep(0.5)
        return super().forward(x, y)


def test_the_step_releases_the_gil_while_it_waits(world):
    """The last stage waits half a second for stage 0's first activation:
    a Python thread runs meanwhile only if the step released the GIL."""
    rank, size = world
    virtual = size
    mine = [(Slow if rank == 0 else Block)(rank, WIDTH, rank == virtual - 1)]
    runner = pipeline.PipelineRunner(mine, group=smp.WORLD)
    inputs, targets = data(1)
    ticks, stop = [0], threading.Event()

    def tick():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    try:
        smp.reset_comm_seconds()
        t0 = time.perf_counter()
        runner.run(inputs, targets)
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        t.join()
    if rank == size - 1:
        assert ticks[0] >= 20, ticks[0]
        # The wait is the runtime's share, not the chunks'.
        assert 0.3 < smp.comm_seconds() <= wall, (smp.comm_seconds(), wall)
