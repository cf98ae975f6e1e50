#!/usr/bin/env python3
"""Train a small GPT with pipeline, tensor and data parallelism at once.

    smprun -np 8 --pp 2 --tp 2 /usr/bin/python3 examples/train_gpt.py --compare

The topology comes from the launcher (smprun, or SMP_PP_SIZE / SMP_TP_SIZE
under plain mpirun); rdp = ranks / (pp * tp). Every rank builds the full
model from --seed and keeps its shards; the data of each step is the same
global batch everywhere, split by rdp_rank and then into microbatches.
--compare also trains the same model in this one process (on rank 0) and
exits non-zero when any step's loss differs by more than --tolerance
(relative). --device cuda trains on the GPUs: each rank on smp.device()
(SMP_DEVICE, smprun's choice, else its local rank's GPU; ranks may share
one).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import smp  # noqa: E402
from smp.data_parallel import allreduce_gradients, shard_batch  # noqa: E402
from smp.checkpoint import OPTIMIZER, REPLICATED, Checkpoint  # noqa: E402
from smp.optim import ShardedOptimizer  # noqa: E402
from smp.pipeline import PipelineRunner  # noqa: E402

from gpt_model import GPT, GPTConfig, build_chunks, make_batch  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16, help="global batch (sequences per step)")
    p.add_argument("--microbatches", type=int, default=2, help="per pipeline, per step")
    p.add_argument("--schedule", choices=["simple", "interleaved", "virtual"],
                   default="interleaved",
                   help="simple = GPipe, interleaved = 1F1B (default), virtual = Megatron's "
                        "interleaved 1F1B over --chunks model chunks per stage")
    p.add_argument("--chunks", type=int, default=2,
                   help="model chunks per stage for the virtual schedule")
    p.add_argument("--active-microbatches", type=int, default=0, metavar="N",
                   help="the interleaved schedule's cap on microbatches in flight per stage "
                        "(0 = the runtime's default, pp + 2)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--sharded-optimizer", action="store_true",
                   help="shard AdamW's state over RDP_GROUP (smp's sharded optimizer)")
    p.add_argument("--save", metavar="DIR", help="write a checkpoint at the end")
    p.add_argument("--load", metavar="DIR", help="resume from a checkpoint")
    p.add_argument("--compare", action="store_true",
                   help="also train in one process and compare the losses")
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--losses-out", metavar="FILE", help="rank 0 writes the losses as JSON")
    p.add_argument("--quiet", action="store_true", help="only the summary lines")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the model trains (cuda: smp.device(), the rank's GPU)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.exit(2, "train_gpt: --device cuda: this torch sees no CUDA device "
                  "(torch.cuda.is_available() is False)\n")
    n = args.active_microbatches
    if n < 0 or (n and args.schedule != "interleaved"):
        p.exit(2, f"train_gpt: --active-microbatches {n}: needs "
                  "--schedule interleaved and N >= 0 (0 = the runtime's default)\n")
    return args


def device_of(args):
    """This rank's torch device: smp.device() (SMP_DEVICE, else the local
    rank's GPU, so ranks may share one) once smp runs, else torch's
    current GPU (the single-process reference)."""
    if args.device == "cpu":
        return torch.device("cpu")
    if smp.is_initialized() and smp.device() >= 0:
        return torch.device("cuda", smp.device())
    return torch.device("cuda", torch.cuda.current_device())


def make_optimizer(params, args):
    return torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)


def check_topology(args, cfg):
    pp, tp, rdp = smp.pp_size(), smp.tp_size(), smp.rdp_size()
    chunks = args.chunks if args.schedule == "virtual" else 1
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
    chunks = [c.to(device) for c in build_chunks(full, chunks_per_stage)]
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


def train_reference(args, cfg, steps):
    """The same model and data, one process, plain PyTorch."""
    torch.manual_seed(args.seed)
    device = device_of(args)
    model = GPT(cfg).to(device)
    opt = make_optimizer(model.parameters(), args)
    losses = []
    for step in range(steps):
        x, y = (t.to(device) for t in make_batch(cfg, args.batch, step, args.seed))
        opt.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv=None):
    args = parse_args(argv)
    cfg = GPTConfig(vocab=args.vocab, seq=args.seq, hidden=args.hidden, heads=args.heads,
                    layers=args.layers)
    torch.set_num_threads(1)  # ranks share the cores; one thread each
    smp.init()  # with torch imported: torch's current GPU is smp.device()
    rank = smp.rank()
    _, problems = check_topology(args, cfg)
    if problems:
        if rank == 0:
            print("train_gpt: " + "; ".join(problems), file=sys.stderr)
        smp.finalize()
        return 2
    if rank == 0:
        print(f"train_gpt: {smp.size()} ranks = pp {smp.pp_size()} x tp {smp.tp_size()} x "
              f"rdp {smp.rdp_size()}, schedule {args.schedule}, {args.microbatches} "
              f"microbatches, {sum(p.numel() for p in GPT(cfg).parameters())} parameters, "
              f"on {args.device}", flush=True)
    start, losses, times, comms = train_parallel(args, cfg)

    status = 0
    if rank == 0:
        steady = times[1:] or times
        tok_s = args.batch * cfg.seq / statistics.median(steady)
        share = sum(comms[1:] or comms) / sum(steady)
        print(f"train_gpt: {len(losses)} steps, median {tok_s:.0f} tokens/s, "
              f"time in smp calls {100 * share:.1f}% of the step (rank 0)", flush=True)
        result = {"first_step": start, "losses": losses, "tokens_per_s": tok_s,
                  "comm_share": share}
        if args.compare:
            ref = train_reference(args, cfg, args.steps)[start:]
            worst = max(abs(a - b) / abs(b) for a, b in zip(losses, ref))
            result.update(reference=ref, max_rel_diff=worst)
            print("train_gpt: step  parallel    single-process  rel.diff")
            for i, (a, b) in enumerate(zip(losses, ref)):
                print(f"train_gpt: {start + i:4d}  {a:.6f}  {b:.6f}        "
                      f"{abs(a - b) / abs(b):.1e}")
            ok = worst <= args.tolerance
            print(f"train_gpt: largest relative loss difference {worst:.2e} "
                  f"({'within' if ok else 'ABOVE'} tolerance {args.tolerance:g})", flush=True)
            status = 0 if ok else 1
        if args.losses_out:
            with open(args.losses_out, "w") as f:
                json.dump(result, f)
    verdict = torch.tensor([status], dtype=torch.int32)
    smp.broadcast(verdict, 0, smp.WORLD)
    smp.timeline_write()  # no-op unless SMP_TIMELINE / smprun --timeline
    if rank == 0 and os.environ.get("SMP_TIMELINE"):
        print(f"train_gpt: timeline written to {os.environ['SMP_TIMELINE']}", flush=True)
    smp.finalize()
    return int(verdict.item())


if __name__ == "__main__":
    sys.exit(main())
