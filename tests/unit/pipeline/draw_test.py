#!/usr/bin/env python3
"""scripts/draw_schedule.py draws the interleaved (1F1B) schedule for pp=4,
m=8, Megatron's virtual one, and ZB-H1 above 1F1B (F, B, W in three colours): the SVG must hold, per stage, one box per
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
# ZB-H1 with 1F1B below it on one axis (the README's figure): F, B and W
# boxes in three colours at smp-schedule's times, 1F1B's own boxes after.
out = outdir + "/draw_zb.svg"
r = run("--kind", "zb-h1", "--also", "interleaved", "--pp", "4", "--microbatches", "8",
        "--backward-input", "1", "--backward-weight", "1", "-o", out)
if r.returncode != 0:
    sys.exit("draw failed: " + r.stderr)
svg = open(out).read()
boxes = re.findall(r'<rect x="[\d.]+" y="(\d+)" width="[\d.]+" height="\d+" fill="([^"]+)"[^>]*><title>(forward|backward|backward_input|backward_weight) mb (\d+) chunk (\d+) \[([\d.e+-]+), ([\d.e+-]+)\]', svg)
want = []
for kind in ("zb-h1", "interleaved"):
    doc = json.loads(subprocess.run([tool, "--kind", kind, "--pp", "4", "--microbatches", "8", "--backward-input", "1",
                                     "--backward-weight", "1"], capture_output=True, text=True, check=True).stdout)
    want += [(o["op"], o["mb"], o["chunk"], o["start"], o["end"]) for ops in doc["stages"] for o in ops
             if o["op"] in ("forward", "backward", "backward_input", "backward_weight")]
got = [(k, int(m), int(c), float(s), float(e)) for _, _, k, m, c, s, e in boxes]
if sorted(got) != sorted(want) or len(got) != 4 * 8 * 3 + 4 * 8 * 2:
    sys.exit("zb-h1 + interleaved: %d boxes, expected %d matching smp-schedule's times" % (len(got), len(want)))
colors = {k: {f for _, f, kk, *_ in boxes if kk == k} for k in ("forward", "backward_input", "backward_weight")}
if any(len(c) != 1 for c in colors.values()) or len(set.union(*colors.values())) != 3:
    sys.exit("zb-h1: F, B and W are not drawn in three colours: %r" % colors)
if len({y for y, *_ in boxes}) != 8:
    sys.exit("zb-h1 + interleaved: expected 8 rows (two panels of 4)")
r = run("--kind", "interleaved", "-o", outdir + "/x.svg")
if r.returncode != 2 or "draw_schedule:" not in r.stderr:
    sys.exit("missing --pp: exit %d, stderr %r" % (r.returncode, r.stderr))
r = run("--kind", "virtual", "--pp", "4", "--microbatches", "6", "--chunks", "2", "-o", outdir + "/x.svg")
if r.returncode != 2 or "multiple of pp" not in r.stderr:
    sys.exit("bad schedule: exit %d, stderr %r" % (r.returncode, r.stderr))
print("draw_schedule.py: interleaved, virtual and zb-h1 (with 1F1B) pp=4 m=8 drawn with smp-schedule's times")
