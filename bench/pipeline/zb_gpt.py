#!/usr/bin/env python3
"""The GPT on the hand-cut pipeline (examples/train_gpt_hand_split.py), or
with --front-end the stock GPT through smp.DistributedModel
(examples/train_gpt.py --model stock): tokens/s of zb-h1 (and zb-v)
against interleaved (1F1B), runs alternated, medians of the runs'
medians; then one timelined run of each schedule, with the mean time per
event of forward, backward (1F1B; the front end's first stage under zb-h1
too), backward_input (B) and backward_weight (W) as the timeline recorded
them, and W's share of all backward time (B + W + unsplit backwards). The
load average is printed before and after (the machine is shared).

    bench/pipeline/zb_gpt.py [--build build] [--pp 2,4] [--repeats 3] [--front-end] \
        [-- train args]
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
    example = ["train_gpt.py", "--model", "stock"] if a.front_end else ["train_gpt_hand_split.py"]
    cmd += ["/usr/bin/python3", os.path.join(ROOT, "examples", example[0])] + example[1:] + [
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
        # The front end names a forward after its module ("forward blocks.3").
        name = e.get("name", "").split(" ")[0]
        if e.get("ph") == "X" and name in ("forward", "backward", "backward_input",
                                           "backward_weight"):
            by.setdefault(name, []).append(e.get("dur", 0) / 1e3)
    total = {k: sum(v) for k, v in by.items()}
    bwd = sum(total.get(k, 0.0) for k in ("backward", "backward_input", "backward_weight"))
    out = {k: (statistics.mean(v), len(v)) for k, v in by.items()}
    out["W share"] = (100.0 * total.get("backward_weight", 0.0) / bwd if bwd else 0.0, 0)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--pp", default="2,4")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--schedules", default="interleaved,zb-h1,zb-v")
    p.add_argument("--front-end", action="store_true",
                   help="the stock GPT through smp.DistributedModel (examples/train_gpt.py)")
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    base = ["--steps", "8", "--microbatches", "8", "--layers", "8", "--batch", "16"] + a.extra
    print("| pp | schedule | tokens/s (median of runs) | runs | vs interleaved | "
          "forward ms | backward ms | B ms | W ms | W share of backward |")
    print("|---|---|---|---|---|---|---|---|---|---|")
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
                  f"{cell('backward_input')} | {cell('backward_weight')} | "
                  f"{means['W share'][0]:.0f}% |", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
