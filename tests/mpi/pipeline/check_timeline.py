#!/usr/bin/env python3
"""Runs timeline_test under mpirun with SMP_TIMELINE and checks the file:
valid JSON (Chrome trace object form), one named track per rank, every
rank's forwards and backwards of the 1F1B step (2*pp microbatches), in its
schedule's order and not overlapping, the exchanges with group and bytes,
the nested framework marks, a mark whose name needs escaping, the tensor
send/receive with peer and bytes; then draws it with scripts/draw_schedule.py --trace.
Usage: check_timeline.py MPIRUN NP TEST_EXE DRAW_SCRIPT OUTDIR"""
import json
import os
import subprocess
import sys

mpirun, np, exe, draw, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
path = os.path.join(outdir, "timeline_np%d.json" % np)
if os.path.exists(path):
    os.remove(path)
env = dict(os.environ, SMP_TIMELINE=path)
run = subprocess.run([mpirun, "-np", str(np), exe], env=env, capture_output=True, text=True, timeout=100)
if run.returncode != 0:
    sys.exit("timeline_test failed:\n" + run.stdout + run.stderr)


def fail(msg):
    sys.exit("timeline check: " + msg)


doc = json.load(open(path))
events = doc["traceEvents"]
names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
if names != {r: "rank %d" % r for r in range(np)}:
    fail("process names %r" % names)
m = 2 * np
for r in range(np):
    mine = [e for e in events if e.get("ph") == "X" and e["pid"] == r]
    for e in mine:
        if e["ts"] < 0 or e["dur"] < 0:
            fail("negative time in %r" % e)
    compute = sorted((e for e in mine if e["name"] in ("forward", "backward")), key=lambda e: e["ts"])
    order = [(e["name"][0].upper(), e["args"]["microbatch"]) for e in compute]
    warmup = min(m, np - r) - 1
    expect = [("F", i) for i in range(warmup)]
    for i in range(m - warmup):
        expect += [("F", warmup + i), ("B", i)]
    expect += [("B", i) for i in range(m - warmup, m)]
    if order != expect:
        fail("rank %d ran %r, expected 1F1B %r" % (r, order, expect))
    for a, b in zip(compute, compute[1:]):
        if a["ts"] + a["dur"] > b["ts"] + 0.01:
            fail("rank %d: %r overlaps %r" % (r, a, b))
    ex = [e for e in mine if e["name"] == "exchange_tensors"]
    if np > 1 and (not ex or any(e["args"].get("group") != "PP_GROUP" or e["args"].get("bytes", 0) <= 0 for e in ex)):
        fail("rank %d exchanges %r" % (r, ex[:2]))
    opt = [e for e in mine if e["name"] == "optimizer_step"]
    inner = [e for e in mine if e["name"] == "allreduce_grads"]
    if len(opt) != 1 or len(inner) != 1 or not (opt[0]["ts"] <= inner[0]["ts"] and
                                                inner[0]["ts"] + inner[0]["dur"] <= opt[0]["ts"] + opt[0]["dur"] + 0.01):
        fail("rank %d marks %r %r" % (r, opt, inner))
    odd = [e for e in mine if e["name"] == 'say "hi"\n\ufffd']
    if len(odd) != 1 or odd[0]["cat"] != "framework":
        fail("rank %d: the mark named with quotes, a newline and a non-UTF-8 byte: %r" %
             (r, [e["name"] for e in mine if e["name"].startswith("say")]))
    if r < 2 and np >= 2:
        want = "send_tensor" if r == 0 else "recv_tensor"
        t = [e for e in mine if e["name"] == want]
        if len(t) != 1 or t[0]["args"].get("peer") != 1 - r or t[0]["args"].get("bytes") != 4 * 4 * 256:
            fail("rank %d %s %r" % (r, want, t))
svg = os.path.join(outdir, "timeline_np%d.svg" % np)
d = subprocess.run([sys.executable, draw, "--trace", path, "-o", svg], capture_output=True, text=True)
if d.returncode != 0 or "<svg" not in open(svg).read():
    fail("draw_schedule.py --trace failed: " + d.stderr)
print("timeline ok: %d events from %d ranks, drawn to %s" % (len(events), np, svg))
