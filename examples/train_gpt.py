#!/usr/bin/env python3
"""Train a small GPT with pipeline, tensor and data parallelism at once,
through smp's front end: a plain GPT module wrapped in
smp.DistributedModel, one @smp.step function, smp.DistributedOptimizer.
--model stock (what the demo runs) is stock_gpt.StockGPT, stock torch
modules built inside smp.tensor_parallelism(), so DistributedModel swaps
in smp.nn's tensor-parallel twins; --delayed-init builds it inside
smp.delay_param_initialization(). --model hand (the default) is
gpt_model.GPT with its blocks split by hand.

    smprun -np 8 --pp 2 --tp 2 /usr/bin/python3 examples/train_gpt.py --compare

The topology comes from the launcher (smprun, or SMP_PP_SIZE / SMP_TP_SIZE
under plain mpirun); rdp = ranks / (pp * tp). The first step traces the
model and partitions it over the pipeline stages automatically. With
tp > 1 the blocks' attention and MLP are split over the TP group
(gpt_model.tensor_parallel, smp.tensor_parallel's Megatron-style modules).
Every step's global batch is the same on every rank, split by rdp_rank and
then (by @smp.step) into microbatches. --compare also trains the same model
in this one process (on rank 0) and exits non-zero when any step's loss
differs by more than --tolerance (relative). --device cuda trains on the
GPUs: each rank on smp.device().
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import smp  # noqa: E402

from gpt_model import GPT, GPTConfig, make_batch, tensor_parallel  # noqa: E402
from stock_gpt import StockGPT  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16, help="global batch (sequences per step)")
    p.add_argument("--microbatches", type=int, default=2, help="per replica, per step")
    p.add_argument("--schedule", choices=["simple", "interleaved", "virtual", "zb-h1", "zb-v"],
                   default="interleaved",
                   help="simple = GPipe, interleaved = 1F1B (default), virtual = --chunks "
                        "model chunks per stage, interleaved; zb-h1 / zb-v (zero bubble, "
                        "split backward; the first stage's backward stays whole)")
    p.add_argument("--chunks", type=int, default=2,
                   help="model chunks per stage for the virtual schedule")
    p.add_argument("--active-microbatches", type=int, default=0, metavar="N",
                   help="the interleaved schedule's cap on microbatches in flight "
                        "(0 = smp's default, pp + 2)")
    p.add_argument("--model", choices=["hand", "stock"], default="hand",
                   help="hand: gpt_model.GPT, its blocks split by hand with "
                        "smp.tensor_parallel's modules; stock: stock_gpt.StockGPT, stock "
                        "torch modules built inside smp.tensor_parallelism() (smp.nn's "
                        "twins swapped in by DistributedModel)")
    p.add_argument("--delayed-init", action="store_true",
                   help="build the model inside smp.delay_param_initialization(): each "
                        "rank allocates only its own stage's (and TP shard's) parameters")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--sharded-optimizer", action="store_true",
                   help="shard AdamW's state over the data-parallel replicas "
                        "(shard_optimizer_state)")
    p.add_argument("--save", metavar="DIR", help="write a checkpoint at the end")
    p.add_argument("--load", metavar="DIR", help="resume from a checkpoint")
    p.add_argument("--compare", action="store_true",
                   help="also train in one process and compare the losses")
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--losses-out", metavar="FILE", help="rank 0 writes the losses as JSON")
    p.add_argument("--quiet", action="store_true", help="only the summary lines")
    p.add_argument("--no-overlap", action="store_true",
                   help="average gradients after the backward pass, not during it")
    p.add_argument("--bucket-mb", type=float, default=25,
                   help="gradient bucket size (DistributedModel's bucket_cap_mb)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the model trains (cuda: smp.device(), the rank's GPU)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.exit(2, "train_gpt: --device cuda: this torch sees no CUDA device "
                  "(torch.cuda.is_available() is False)\n")
    n = args.active_microbatches
    if n < 0 or (n and args.schedule != "interleaved"):
        p.exit(2, f"train_gpt: --active-microbatches {n}: needs "
                  "--schedule interleaved and N >= 0 (0 = smp's default)\n")
    return args


def smp_config(args):
    cfg = {"microbatches": args.microbatches, "pipeline": args.schedule, "ddp": True}
    if args.schedule == "virtual":
        cfg["chunks"] = args.chunks
    if args.active_microbatches:
        cfg["active_microbatches"] = args.active_microbatches
    if args.sharded_optimizer:
        cfg["shard_optimizer_state"] = True
    return cfg


def device_of(args):
    if args.device == "cpu":
        return torch.device("cpu")
    if smp.is_initialized() and smp.device() >= 0:
        return torch.device("cuda", smp.device())
    return torch.device("cuda", torch.cuda.current_device())


def make_optimizer(params, args):
    return torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)


def check_topology(args, cfg):
    problems = []
    tp, rdp = smp.tp_size(), smp.rdp_size()
    if cfg.heads % tp or cfg.vocab % tp or cfg.hidden % tp:
        problems.append(f"--heads {cfg.heads}, --vocab {cfg.vocab} and --hidden {cfg.hidden} "
                        f"must divide by tp {tp}")
    if args.batch % (rdp * args.microbatches):
        problems.append(f"--batch {args.batch} must divide by rdp*microbatches = "
                        f"{rdp * args.microbatches}")
    return problems


def build(args, cfg):
    """The plain model (what the one-process reference trains)."""
    if args.model == "stock":
        return StockGPT(vocab=cfg.vocab, seq=cfg.seq, d=cfg.hidden, heads=cfg.heads,
                        layers=cfg.layers)
    return GPT(cfg)


def loss_of(args, model, x, y):
    if args.model == "stock":
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return model(x, y)


def train_parallel(args, cfg):
    """Returns (first step, losses per step, seconds per step, comm seconds
    per step)."""
    torch.manual_seed(args.seed)
    with contextlib.ExitStack() as building:
        if args.model == "stock":
            building.enter_context(smp.tensor_parallelism())
        if args.delayed_init:
            building.enter_context(smp.delay_param_initialization())
        module = build(args, cfg)
    if args.model == "hand":
        module = tensor_parallel(module)
    if not args.delayed_init:  # delayed: DistributedModel allocates on smp.device()
        module = module.to(device_of(args))
    model = smp.DistributedModel(module, overlapping_allreduce=not args.no_overlap,
                                 bucket_cap_mb=args.bucket_mb)
    opt = smp.DistributedOptimizer(make_optimizer(model.parameters(), args))

    @smp.step
    def train_step(model, x, y):
        loss = loss_of(args, model, x, y)
        model.backward(loss)
        return loss

    start_step = 0
    if args.load:
        try:
            user = smp.resume_from_checkpoint(args.load)
        except smp.SmpError as e:
            if smp.rank() == 0:
                print(f"train_gpt: cannot resume from {args.load}: {e}", file=sys.stderr,
                      flush=True)
            smp.finalize()
            sys.exit(1)
        start_step = user["step"]
        if smp.rank() == 0:
            print(f"train_gpt: resumed from {args.load} at step {start_step}", flush=True)
    device = device_of(args)
    k, r = args.batch // smp.rdp_size(), smp.rdp_rank()
    losses, times, comms = [], [], []
    for step in range(start_step, args.steps):
        smp.timeline_begin("step")
        x, y = make_batch(cfg, args.batch, step, args.seed)
        x, y = x[r * k:(r + 1) * k].to(device), y[r * k:(r + 1) * k].to(device)
        smp.reset_comm_seconds()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = train_step(model, x, y).reduce_mean()
        opt.step()
        times.append(time.perf_counter() - t0)
        comms.append(smp.comm_seconds())
        # The global batch's loss: the mean of the replicas' means.
        total = loss.detach().to("cpu", torch.float64).reshape(1) / smp.rdp_size()
        smp.allreduce(total, smp.SUM, smp.RDP_GROUP)
        losses.append(total.item())
        if smp.rank() == 0 and not args.quiet:
            print(f"step {step:4d}  loss {losses[-1]:.6f}  "
                  f"{args.batch * cfg.seq / times[-1]:9.0f} tokens/s", flush=True)
        smp.timeline_end()
    if args.save:
        path = smp.save_checkpoint(args.save, f"step{args.steps}", partial=True, model=model,
                                   optimizer=opt, user_content={"step": args.steps})
        if smp.rank() == 0:
            print(f"train_gpt: checkpoint written to {path}", flush=True)
    if smp.rank() == 0 and not args.quiet:
        print(f"train_gpt: partition {stage_summary(model.partition_map())}", flush=True)
    return start_step, losses, times, comms


def stage_summary(pmap):
    """'stage 0: wte wpe blocks.0 ...' from the partition map (top modules)."""
    top = {}
    for name, stage in pmap.items():
        if name and "." not in name or name.count(".") == 1 and name.startswith("blocks."):
            top.setdefault(stage, []).append(name)
    return "; ".join(f"stage {s}: {' '.join(n for n in names if n != 'blocks')}"
                     for s, names in sorted(top.items()))


def train_reference(args, cfg, steps):
    """The same model and data, one process, plain PyTorch."""
    torch.manual_seed(args.seed)
    device = device_of(args)
    model = build(args, cfg).to(device)
    opt = make_optimizer(model.parameters(), args)
    losses = []
    for step in range(steps):
        x, y = (t.to(device) for t in make_batch(cfg, args.batch, step, args.seed))
        opt.zero_grad(set_to_none=True)
        loss = loss_of(args, model, x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main(argv=None, init_config=smp_config, check=check_topology, train=None):
    """The script; train_gpt_hand_split.py runs it with its own smp.init
    configuration, topology check and training loop."""
    args = parse_args(argv)
    cfg = GPTConfig(vocab=args.vocab, seq=args.seq, hidden=args.hidden, heads=args.heads,
                    layers=args.layers)
    torch.set_num_threads(1)  # ranks share the cores; one thread each
    smp.init(init_config(args))  # with torch imported: torch's current GPU is smp.device()
    rank = smp.rank()
    problems = check(args, cfg)
    if problems:
        if rank == 0:
            print("train_gpt: " + "; ".join(problems), file=sys.stderr)
        smp.finalize()
        return 2
    if rank == 0:
        print(f"train_gpt: {smp.size()} ranks = pp {smp.pp_size()} x tp {smp.tp_size()} x "
              f"rdp {smp.rdp_size()}, schedule {args.schedule}, {args.microbatches} "
              f"microbatches, {sum(p.numel() for p in build(args, cfg).parameters())} "
              f"parameters ({args.model} model{', delayed init' if args.delayed_init else ''}), "
              f"on {args.device}", flush=True)
    start, losses, times, comms = (train or train_parallel)(args, cfg)

    status = 0
    if rank == 0:
        steady = times[1:] or times
        tok_s = args.batch * cfg.seq / statistics.median(steady)
        share = sum(comms[1:] or comms) / sum(steady)
        print(f"train_gpt: {len(losses)} steps, median {tok_s:.0f} tokens/s, first step "
              f"{times[0]:.3f} s (the front end traces and partitions the model in it), "
              f"time in smp calls {100 * share:.1f}% of the step (rank 0)", flush=True)
        result = {"first_step": start, "losses": losses, "tokens_per_s": tok_s,
                  "comm_share": share, "first_step_s": times[0],
                  "median_step_s": statistics.median(steady)}
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
