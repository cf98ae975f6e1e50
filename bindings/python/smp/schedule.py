"""Pipeline schedules as lists of actions, one list per stage.

An action is ("F" or "B", chunk, microbatch): run the forward (backward)
of model chunk `chunk` (0 .. chunks-1, local to the stage) on
`microbatch`. With `chunks` model chunks per stage (interleaved schedule)
chunk c of stage s is the virtual stage c * stages + s of the model.

Names as smp's runtime (smp_schedule_t) and SageMaker use them:
simple: GPipe: every forward, then every backward.
interleaved: 1F1B (PipeDream-flush): stage s runs stages-s-1 warm-up
forwards, then alternates one forward and one backward, then drains the
backwards.
virtual: Megatron-LM's interleaved 1F1B over `chunks` virtual stages per
rank (microbatches must be a multiple of stages).

Both keep at most O(stages) microbatches' activations alive per stage and
are deadlock-free when sends never block (the runner posts them as
non-blocking sends): every action waits only on actions that come earlier in
one global order.
"""


def gpipe(stage, stages, microbatches):
    return [("F", 0, m) for m in range(microbatches)] + \
           [("B", 0, m) for m in range(microbatches)]


def simple_1f1b(stage, stages, microbatches):
    warmup = min(stages - stage - 1, microbatches)
    acts = [("F", 0, m) for m in range(warmup)]
    for i in range(microbatches - warmup):
        acts.append(("F", 0, warmup + i))
        acts.append(("B", 0, i))
    acts += [("B", 0, m) for m in range(microbatches - warmup, microbatches)]
    return acts


def interleaved_1f1b(stage, stages, microbatches, chunks):
    if chunks == 1:
        return simple_1f1b(stage, stages, microbatches)
    if microbatches % stages:
        raise ValueError(f"interleaved schedule: microbatches ({microbatches}) must be a "
                         f"multiple of the pipeline stages ({stages})")
    total = microbatches * chunks

    def chunk_of(k, forward):
        c = (k // stages) % chunks
        return c if forward else chunks - 1 - c

    def mb_of(k):
        return (k // (stages * chunks)) * stages + k % stages

    warmup = min((stages - stage - 1) * 2 + (chunks - 1) * stages, total)
    acts = [("F", chunk_of(k, True), mb_of(k)) for k in range(warmup)]
    for i in range(total - warmup):
        k = warmup + i
        acts.append(("F", chunk_of(k, True), mb_of(k)))
        acts.append(("B", chunk_of(i, False), mb_of(i)))
    acts += [("B", chunk_of(k, False), mb_of(k)) for k in range(total - warmup, total)]
    return acts


def schedule(name, stage, stages, microbatches, chunks=1):
    if microbatches < 1 or stages < 1 or not 0 <= stage < stages:
        raise ValueError("schedule: need 0 <= stage < stages and microbatches >= 1")
    if name in ("simple", "interleaved") and chunks != 1:
        raise ValueError(f"the {name} schedule runs one chunk per stage; use virtual")
    if name == "simple":
        return gpipe(stage, stages, microbatches)
    if name == "interleaved":
        return simple_1f1b(stage, stages, microbatches)
    if name == "virtual":
        return interleaved_1f1b(stage, stages, microbatches, chunks)
    raise ValueError(f"unknown schedule '{name}' (simple, interleaved or virtual)")
