#!/usr/bin/env python3
"""The same GPT training as train_gpt.py, but with the pipeline cut by
hand: every rank builds the full model and keeps its own chunks
(gpt_model.build_chunks: an equal share of the blocks, tensor-parallel
slices), runs them on smp.pipeline.PipelineRunner (the runtime's schedule)
and averages gradients with smp.data_parallel; checkpoints through
smp.checkpoint directly. The lower-level API the front end replaces, kept
as its baseline (bench/train/bench_frontend.py).

    smprun -np 8 --pp 2 --tp 2 /usr/bin/python3 examples/train_gpt_hand_split.py --compare

Options, reference and output are train_gpt.py's; --layers must divide by
pp (x --chunks for the virtual schedule, x 2 for zb-v). The zero-bubble
schedules (--schedule zb-h1 / zb-v) run here: PipelineRunner splits each
backward into its input and weight halves.
"""

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import smp  # noqa: E402
from smp.data_parallel import allreduce_gradients, shard_batch  # noqa: E402
from smp.checkpoint import OPTIMIZER, REPLICATED, Checkpoint  # noqa: E402
from smp.optim import ShardedOptimizer  # noqa: E402
from smp.pipeline import PipelineRunner  # noqa: E402

import train_gpt  # noqa: E402
from train_gpt import device_of, make_optimizer  # noqa: E402
from gpt_model import GPT, build_chunks, make_batch  # noqa: E402


def check_topology(args, cfg):
    pp, tp, rdp = smp.pp_size(), smp.tp_size(), smp.rdp_size()
    chunks = args.chunks if args.schedule == "virtual" else 2 if args.schedule == "zb-v" else 1
    problems = []
    if cfg.layers % (pp * chunks):
        problems.append(f"--layers {cfg.layers} must divide by pp*chunks = {pp * chunks}")
    if cfg.heads % tp or cfg.vocab % tp:
        problems.append(f"--heads {cfg.heads} and --vocab {cfg.vocab} must divide by tp {tp}")
    if args.batch % (rdp * args.microbatches):
        problems.append(f"--batch {args.batch} must divide by rdp*microbatches = "
                        f"{rdp * args.microbatches}")
    if args.schedule == "virtual" and args.microbatches % pp:
        problems.append(f"--microbatches {args.microbatches} must be a multiple of pp {pp} "
                        "for the virtual schedule")
    if args.schedule in ("zb-h1", "zb-v") and (pp < 2 or args.microbatches < pp):
        problems.append(f"the {args.schedule} schedule needs pp >= 2 and --microbatches >= pp "
                        f"(pp {pp}, --microbatches {args.microbatches})")
    return chunks, problems


def make_checkpoint(chunks, opt):
    """Every parameter and its AdamW moments under the full model's names
    (`<name>.exp_avg`, `<name>.exp_avg_sq`), whichever optimizer holds them,
    so either kind loads the other's checkpoint; pieces other ranks hold
    too (data-parallel replicas, TP-replicated tensors) are flagged so they
    are written once."""
    ck = Checkpoint()
    rdp = smp.rdp_size()
    sharded = isinstance(opt, ShardedOptimizer)
    full_name = {}
    for ch in chunks:
        for local, p in ch.named_parameters():
            name = ch.full_names[local]
            full_name[id(p)] = name
            copies = rdp > 1 or not getattr(p, "tensor_parallel", False)
            flags = REPLICATED if copies else 0
            ck.add(name, p, flags=flags)
            if sharded:
                continue
            st = opt.state[p]
            if not st:  # AdamW's lazily made state, made now so load can fill it
                st["step"] = torch.tensor(0.0)
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            ck.add(name + ".exp_avg", st["exp_avg"], like=p, flags=flags | OPTIMIZER)
            ck.add(name + ".exp_avg_sq", st["exp_avg_sq"], like=p, flags=flags | OPTIMIZER)
    if sharded:
        # This rank's ZeRO-1 shard of the moments, as ranges of the same
        # tensors; the optimizer's own names ("v<stage>.<local>") map to
        # the full ones.
        ck.add_sharded_optimizer(opt, {n: full_name[id(p)] for n, p in opt.named})
    return ck


def train_parallel(args, cfg):
    """Returns (first step, losses per step, seconds per step, comm seconds
    per step)."""
    pp, rdp = smp.pp_size(), smp.rdp_size()
    chunks_per_stage, _ = check_topology(args, cfg)
    torch.manual_seed(args.seed)
    full = GPT(cfg)
    device = device_of(args)
    chunks = [c.to(device) for c in build_chunks(full, chunks_per_stage, args.schedule)]
    del full
    params = [p for c in chunks for p in c.parameters()]
    if args.sharded_optimizer:
        # Names key the state; the same on every rank of RDP_GROUP.
        s = smp.pp_rank()
        named = [(f"v{c * pp + s}.{n}", p) for c, ch in enumerate(chunks)
                 for n, p in ch.named_parameters()]
        opt = ShardedOptimizer(named, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01,
                               group=smp.RDP_GROUP)
    else:
        opt = make_optimizer(params, args)
    runner = PipelineRunner(chunks, schedule=args.schedule,
                            active_microbatches=args.active_microbatches)
    # The loss printed is the global batch's: the last stage's TP rank 0 of
    # every replica contributes its mean / rdp.
    reporter = runner.holds_last() and smp.tp_rank() == 0
    start_step = 0
    if args.load:
        ck = make_checkpoint(chunks, opt)
        try:
            path = ck.load(args.load)
        except smp.SmpError as e:
            # Collective: every rank fails with the same message (e.g. a
            # checkpoint without the optimizer state this run resumes).
            if smp.rank() == 0:
                print(f"train_gpt: cannot resume from {args.load}: {e}", file=sys.stderr,
                      flush=True)
            ck.close()
            if args.sharded_optimizer:
                opt.close()  # before finalize
            smp.finalize()
            sys.exit(1)
        start_step = ck.get_user("step")
        if args.sharded_optimizer:
            opt.set_step(start_step)  # the moments came back with the load
        else:
            for p in params:
                opt.state[p]["step"] = torch.tensor(float(start_step))
        ck.close()
        if smp.rank() == 0:
            print(f"train_gpt: resumed from {path} at step {start_step}", flush=True)
    losses, times, comms = [], [], []
    for step in range(start_step, args.steps):
        smp.timeline_begin("step")
        x, y = make_batch(cfg, args.batch, step, args.seed)
        x, y = shard_batch(x).to(device), shard_batch(y).to(device)
        smp.reset_comm_seconds()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        mb_losses = runner.run(x.chunk(args.microbatches), y.chunk(args.microbatches))
        if not args.sharded_optimizer:
            allreduce_gradients(params, smp.RDP_GROUP)
        opt.step()  # sharded: reduce-scatter, update the shard, allgather
        times.append(time.perf_counter() - t0)
        comms.append(smp.comm_seconds())
        total = torch.tensor([sum(mb_losses) / len(mb_losses) / rdp if reporter else 0.0],
                             dtype=torch.float64)
        smp.allreduce(total, smp.SUM, smp.WORLD)
        losses.append(total.item())
        if smp.rank() == 0 and not args.quiet:
            print(f"step {step:4d}  loss {losses[-1]:.6f}  "
                  f"{args.batch * cfg.seq / times[-1]:9.0f} tokens/s", flush=True)
        smp.timeline_end()  # the step mark (bench/train reads the runtime share from it)
    if args.save:
        ck = make_checkpoint(chunks, opt)
        ck.set_user("step", args.steps)
        path = ck.save(args.save)
        ck.close()
        if smp.rank() == 0:
            print(f"train_gpt: checkpoint written to {path}", flush=True)
    if args.sharded_optimizer:
        opt.close()
    return start_step, losses, times, comms


def check(args, cfg):
    return check_topology(args, cfg)[1]


if __name__ == "__main__":
    # train_gpt.py's script (options, reference, comparison, summary) over
    # this training loop.
    sys.exit(train_gpt.main(init_config=lambda args: None, check=check, train=train_parallel))
