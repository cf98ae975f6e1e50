#!/usr/bin/env python3
"""scripts/draw_schedule.py draws the interleaved (1F1B) schedule for pp=4,
m=8 and Megatron's virtual one: the SVG must hold, per stage, one box per
forward and backward, at the times smp-schedule computed; a bad argument
must exit 2. Usage: draw_test.py DRAW_SCRIPT SMP_SCHEDULE OUTDIR"""
import json
import re
import subprocess
import sys

draw, tool, outdir = sys.argv[1:4]


def run(*args):
    return subprocess.run([sys.executable, draw, "--tool", tool] + list(args), capture_output=True, text=True)


for kind, chunks in (("interleaved", 1), ("virtual", 2)):
    out = "%s/draw_%s.svg" % (outdir, kind)
    r = run("--kind", kind, "--pp", "4", "--microbatches", "8", "--chunks", str(chunks), "-o", out)
    if r.returncode != 0:
        sys.exit("draw failed: " + r.stderr)
    svg = open(out).read()
    boxes = re.findall(r'<rect x="([\d.]+)" y="(\d+)" width="([\d.]+)"[^>]*><title>(forward|backward) mb (\d+) chunk (\d+) \[([\d.e+-]+), ([\d.e+-]+)\]', svg)
    doc = json.loads(subprocess.run([tool, "--kind", kind, "--pp", "4", "--microbatches", "8", "--chunks", str(chunks)],
                                    capture_output=True, text=True, check=True).stdout)
    expect = sorted((o["op"], o["mb"], o["chunk"], o["start"], o["end"]) for ops in doc["stages"] for o in ops
                    if o["op"] in ("forward", "backward"))
    got = sorted((k, int(m), int(c), float(s), float(e)) for _, _, _, k, m, c, s, e in boxes)
    if len(got) != 4 * 8 * 2 * chunks or got != expect:
        sys.exit("%s: %d boxes, expected %d matching smp-schedule's times" % (kind, len(got), len(expect)))
    rows = {y for _, y, *_ in boxes}
    if len(rows) != 4:
        sys.exit("%s: boxes on %d rows, expected 4" % (kind, len(rows)))
r = run("--kind", "interleaved", "-o", outdir + "/x.svg")
if r.returncode != 2 or "draw_schedule:" not in r.stderr:
    sys.exit("missing --pp: exit %d, stderr %r" % (r.returncode, r.stderr))
r = run("--kind", "virtual", "--pp", "4", "--microbatches", "6", "--chunks", "2", "-o", outdir + "/x.svg")
if r.returncode != 2 or "multiple of pp" not in r.stderr:
    sys.exit("bad schedule: exit %d, stderr %r" % (r.returncode, r.stderr))
print("draw_schedule.py: interleaved and virtual pp=4 m=8 drawn with smp-schedule's times")
