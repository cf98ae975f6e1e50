#!/usr/bin/env python3
"""Training throughput of examples/train_gpt.py: (pp, tp, rdp) = (1,1,1) in
one process (no launcher) versus (1,1,2), (2,1,1), (1,2,1) under mpirun,
side by side in one run, configurations interleaved over --reps rounds.
Per run: the median step time over the steps after the first; per
configuration: the median over rounds.

Every run records the timeline (SMP_TIMELINE=<temporary file>), and the
runtime's share of step time comes from it: per rank, the union of the
intervals of the runtime's events (category "runtime": collectives,
sends / receives, posts and waits, tensor exchanges, the sharded
optimizer's step; nested or overlapping ones counted once) clipped to the
framework marks "step" that train_gpt.py sets around each training step,
over the steps after the first, divided by those steps' wall time. The
model's forward / backward marks are compute. Shown for rank 0 and as the
mean over ranks, next to the Python-side counter smp.comm_seconds() (rank
0; it times the calls made through the Python module, without the loss
allreduce at the end of a step) for comparison.

The timeline's own cost: --overhead-config runs a second time per round
with the timeline off, and its tokens/s on and off are compared.

--executor measures something else: the hand-split GPT
(examples/train_gpt_hand_split.py, whose PipelineRunner runs on the
runtime's executor through smp_pipeline_run_step) against the same script
with the Python op-list walker PipelineRunner had before
(bench/train/legacy_walker.py), at EXECUTOR_CONFIGS, both interleaved in
every round, the timeline off; tokens/s medians over rounds and their
ratio. Then, per configuration, one job of bench/train/executor_steps.py,
which alternates the two step by step on the same model (the pipeline
step alone, no optimizer): less exposed to the machine's drift between
jobs.

    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_train.py
    PYTHONPATH=build/bindings/python /usr/bin/python3 bench/train/bench_train.py --executor
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "train_gpt.py")
CONFIGS = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1)]
HAND_SPLIT = os.path.join(HERE, "..", "..", "examples", "train_gpt_hand_split.py")
LEGACY = os.path.join(HERE, "legacy_walker.py")
STEPS = os.path.join(HERE, "executor_steps.py")
# --executor: (name, (pp, tp, rdp), train_gpt_hand_split.py arguments)
EXECUTOR_CONFIGS = [
    ("1F1B", (2, 1, 1), ["--schedule", "interleaved"]),
    ("virtual x2", (2, 1, 1), ["--schedule", "virtual", "--chunks", "2"]),
    ("GPipe", (2, 1, 1), ["--schedule", "simple"]),
    ("1F1B, rdp 2", (2, 1, 2), ["--schedule", "interleaved"]),
    ("one stage, virtual x2", (1, 1, 1), ["--schedule", "virtual", "--chunks", "2"]),
]


def run(cfg, steps, extra, tmp, timeline, script=EXAMPLE):
    """One training run: the script's result (rank 0) and, with the
    timeline on, the trace's events."""
    pp, tp, rdp = cfg
    out = os.path.join(tmp, "r.json")
    trace = os.path.join(tmp, "timeline.json")
    for f in (out, trace):
        if os.path.exists(f):
            os.remove(f)
    base = [sys.executable, script, "--steps", str(steps), "--quiet", "--losses-out", out] + extra
    env = dict(os.environ)
    env.pop("SMP_TIMELINE", None)
    if timeline:
        env["SMP_TIMELINE"] = trace
    if cfg == (1, 1, 1):
        cmd = base  # one process, no launcher: smp is a world of one
    else:
        env_args = ["-x", f"SMP_PP_SIZE={pp}", "-x", f"SMP_TP_SIZE={tp}"]
        if timeline:
            env_args += ["-x", "SMP_TIMELINE"]
        cmd = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe",
               "-np", str(pp * tp * rdp)] + env_args + base
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    with open(out) as f:
        result = json.load(f)
    if timeline:
        with open(trace) as f:
            result["events"] = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    return result


def union_length(intervals):
    """Total length covered by [start, end) intervals (overlaps once)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def runtime_shares(events):
    """{rank: share of step time inside runtime events} over the "step"
    marks after each rank's first."""
    shares = {}
    for r in sorted({e["pid"] for e in events}):
        mine = [e for e in events if e["pid"] == r]
        steps = sorted((e["ts"], e["ts"] + e["dur"]) for e in mine if e["name"] == "step"
                       and e.get("cat") == "framework")
        if len(steps) < 2:
            raise SystemExit(f"bench_train: rank {r} has {len(steps)} step marks; "
                             "need train_gpt.py's step marks and --steps >= 2")
        steps = steps[1:]
        runtime = [(e["ts"], e["ts"] + e["dur"]) for e in mine if e.get("cat") == "runtime"]
        inside = 0.0
        for s0, s1 in steps:
            clipped = [(max(a, s0), min(b, s1)) for a, b in runtime if b > s0 and a < s1]
            inside += union_length(clipped)
        shares[r] = inside / sum(s1 - s0 for s0, s1 in steps)
    return shares


def executor(a):
    """The hand-split GPT on the runtime's executor against the Python walker."""
    tok = {(name, v): [] for name, _, _ in EXECUTOR_CONFIGS for v in ("executor", "walker")}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for name, cfg, args in EXECUTOR_CONFIGS:
                for v, script in (("executor", HAND_SPLIT), ("walker", LEGACY)):
                    r = run(cfg, a.steps, args + a.extra, tmp, timeline=False, script=script)
                    tok[(name, v)].append(r["tokens_per_s"])
            print(f"round {rep + 1}/{a.reps} done", file=sys.stderr, flush=True)
    med = statistics.median
    # The two runs of a round are back to back: their ratio is paired, so
    # it drifts less with the machine's load than the medians' ratio.
    print("| schedule | (pp,tp,rdp) | executor tokens/s | Python walker tokens/s "
          "| ratio of medians | median of per-round ratios (min-max) |")
    print("|---|---|---|---|---|---|")
    for name, cfg, _ in EXECUTOR_CONFIGS:
        es, ws = tok[(name, "executor")], tok[(name, "walker")]
        e, w = med(es), med(ws)
        paired = [x / y for x, y in zip(es, ws)]
        print(f"| {name} | ({cfg[0]},{cfg[1]},{cfg[2]}) | {e:.0f} | {w:.0f} | {e / w:.3f}x "
              f"| {med(paired):.3f}x ({min(paired):.2f}-{max(paired):.2f}) |")
    print()
    print(f"Alternating in one job ({a.pairs} pairs of pipeline steps):\n")
    print("| schedule | (pp,tp,rdp) | executor ms/step | walker ms/step "
          "| executor / walker throughput (median of paired steps) |")
    print("|---|---|---|---|---|")
    for name, cfg, args in EXECUTOR_CONFIGS:
        pp, tp, rdp = cfg
        hand = dict(zip(args[::2], args[1::2]))
        cmd = [sys.executable, STEPS, "--pairs", str(a.pairs), "--schedule", hand["--schedule"],
               "--chunks", hand.get("--chunks", "1")] + a.extra
        if cfg != (1, 1, 1):
            cmd = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe",
                   "-np", str(pp * tp * rdp), "-x", f"SMP_PP_SIZE={pp}",
                   "-x", f"SMP_TP_SIZE={tp}"] + cmd
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {name} | ({pp},{tp},{rdp}) | {1e3 * r['executor_s']:.1f} "
              f"| {1e3 * r['walker_s']:.1f} | {1 / r['paired_time_ratio']:.3f}x |", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--overhead-config", default="1,1,2",
                   help="pp,tp,rdp run also with the timeline off (its cost)")
    p.add_argument("--executor", action="store_true",
                   help="the hand-split GPT on the runtime's executor vs the Python walker")
    p.add_argument("--pairs", type=int, default=40,
                   help="--executor: step pairs of the one-job comparison")
    p.add_argument("extra", nargs="*", help="more train_gpt.py arguments")
    a = p.parse_args()
    if a.executor:
        executor(a)
        return
    over = tuple(int(x) for x in a.overhead_config.split(","))
    if over not in CONFIGS:
        p.error(f"--overhead-config {a.overhead_config} is not one of {CONFIGS}")
    results = {c: [] for c in CONFIGS}
    off = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.reps):
            for c in CONFIGS:
                r = run(c, a.steps, a.extra, tmp, timeline=True)
                shares = runtime_shares(r.pop("events"))
                r["tl_rank0"] = shares[0]
                r["tl_mean"] = statistics.mean(shares.values())
                results[c].append(r)
                if c == over:
                    off.append(run(c, a.steps, a.extra, tmp, timeline=False))
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    base = med(results[(1, 1, 1)], "tokens_per_s")
    print("| config (pp,tp,rdp) | ranks | tokens/s | vs (1,1,1) | runtime share (timeline, rank 0) "
          "| runtime share (timeline, mean over ranks) | smp calls (Python counter, rank 0) |")
    print("|---|---|---|---|---|---|---|")
    for c in CONFIGS:
        rs = results[c]
        tok = med(rs, "tokens_per_s")
        print(f"| ({c[0]},{c[1]},{c[2]}) | {c[0] * c[1] * c[2]} | {tok:.0f} | {tok / base:.2f}x "
              f"| {100 * med(rs, 'tl_rank0'):.1f}% | {100 * med(rs, 'tl_mean'):.1f}% "
              f"| {100 * med(rs, 'comm_share'):.1f}% |")
    on_tok, off_tok = med(results[over], "tokens_per_s"), med(off, "tokens_per_s")
    print()
    print(f"timeline overhead, ({over[0]},{over[1]},{over[2]}): {on_tok:.0f} tokens/s on, "
          f"{off_tok:.0f} off ({on_tok / off_tok:.3f}x)")


if __name__ == "__main__":
    main()
