#!/usr/bin/env python3
"""The GPT on the hand-cut pipeline (examples/train_gpt_hand_split.py):
tokens/s of zb-h1 (and zb-v) against interleaved (1F1B), runs alternated,
medians of the runs' medians; then one timelined run of each schedule,
with the mean time per microbatch and chunk of forward, backward (1F1B),
backward_input (B) and backward_weight (W) as the timeline recorded them.

    bench/pipeline/zb_gpt.py [--build build] [--pp 2,4] [--repeats 3] [-- train args]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(a, pp, schedule, extra, timeline=None):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.path.join(ROOT, a.build, "bindings", "python"))
    cmd = ["mpirun", "-np", str(pp), "-x", f"SMP_PP_SIZE={pp}", "-x", "PYTHONPATH", "-x",
           "OMP_NUM_THREADS"]
    if timeline:
        cmd += ["-x", f"SMP_TIMELINE={timeline}"]
    cmd += ["/usr/bin/python3", os.path.join(ROOT, "examples", "train_gpt_hand_split.py"),
            "--schedule", schedule, "--quiet"] + extra
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    m = re.search(r"median (\d+) tokens/s", out.stdout)
    return float(m.group(1))


def op_means(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    by = {}
    for e in events:
        if e.get("ph") == "X" and e["name"] in ("forward", "backward", "backward_input",
                                                 "backward_weight"):
            by.setdefault(e["name"], []).append(e.get("dur", 0) / 1e3)
    return {k: (statistics.mean(v), len(v)) for k, v in by.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--pp", default="2,4")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--schedules", default="interleaved,zb-h1,zb-v")
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    base = ["--steps", "8", "--microbatches", "8", "--layers", "8", "--batch", "16"] + a.extra
    print("| pp | schedule | tokens/s (median of runs) | runs | vs interleaved | "
          "forward ms | backward ms | B ms | W ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pp in (int(x) for x in a.pp.split(",")):
        scheds = a.schedules.split(",")
        got = {s: [] for s in scheds}
        for _ in range(a.repeats):
            for s in scheds:
                got[s].append(run(a, pp, s, base))
        ref = statistics.median(got["interleaved"]) if "interleaved" in got else None
        for s in scheds:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "t.json")
                run(a, pp, s, base, timeline=path)
                means = op_means(path)
            med = statistics.median(got[s])
            cell = lambda k: "%.2f" % means[k][0] if k in means else "-"  # noqa: E731
            print(f"| {pp} | {s} | {med:.0f} | {', '.join('%.0f' % x for x in got[s])} | "
                  f"{med / ref:.2f}x | {cell('forward')} | {cell('backward')} | "
                  f"{cell('backward_input')} | {cell('backward_weight')} |", flush=True)


if __name__ == "__main__":
    main()
