#!/usr/bin/env python3
"""Draws a pipeline schedule, or a recorded Chrome-trace timeline, as a Gantt
chart: one row per stage (rank), a box per forward / backward (labelled with
its microbatch, shaded by chunk), thin bars for transfers. Split-backward
schedules (zb-h1, zb-v) draw F, B (backward_input) and W (backward_weight)
in three colours, as the zero-bubble paper's figures do.

  scripts/draw_schedule.py --kind interleaved --pp 4 --microbatches 8 -o 1f1b.svg
  scripts/draw_schedule.py --kind zb-h1 --pp 4 --microbatches 8 --backward-input 1 \
      --backward-weight 1 -o zb-h1.svg
  scripts/draw_schedule.py --json schedule.json -o s.svg   # smp-schedule's output
  scripts/draw_schedule.py --trace timeline.json -o t.svg  # SMP_TIMELINE's output

Schedules come from smp-schedule (built into BUILD/tools/; --tool
names it, else the first build*/ folder that has one). Writes SVG directly;
a name ending in .png needs matplotlib. Usage errors exit 2.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FWD = ["#4C78A8", "#72B7B2", "#9D755D", "#B279A2"]  # by chunk
BWD = ["#54A24B", "#EECA3B", "#F58518", "#E45756"]
BIN = ["#54A24B", "#8CD17D", "#2E7D32", "#A5D6A7"]  # B (backward_input): greens by chunk
WGT = ["#B07AA1", "#D4A6C8", "#7B4173", "#E7BCDE"]  # W (backward_weight): purples by chunk
COLORS = {"forward": FWD, "backward": BWD, "backward_input": BIN, "backward_weight": WGT}


def usage(msg):
    print("draw_schedule: " + msg, file=sys.stderr)
    sys.exit(2)


def find_tool(explicit):
    if explicit:
        return explicit
    for path in sorted(glob.glob(os.path.join(ROOT, "build*", "tools", "smp-schedule"))):
        if os.access(path, os.X_OK):
            return path
    usage("smp-schedule not found; build the project or pass --tool PATH")


def from_schedule(doc):
    """Rows of (start, end, kind, microbatch, chunk) from smp-schedule JSON."""
    rows = []
    for ops in doc["stages"]:
        row = []
        for o in ops:
            kind = o["op"]
            if kind in COLORS or (kind.startswith("recv") and o["end"] > o["start"]):
                row.append((o["start"], o["end"], kind, o["mb"], o["chunk"]))
        rows.append(row)
    split = any(o["op"] == "backward_weight" for ops in doc["stages"] for o in ops)
    backward = ("B %g, W %g" % (doc.get("backward_input", 0), doc.get("backward_weight", 0)) if split
                else "backward %g" % doc["backward"])
    title = "%s  pp=%d  microbatches=%d  chunks=%d   bubble %.1f%%  (simulated: forward %g, %s, transfer %g)" % (
        doc["kind"], doc["pp"], doc["microbatches"], doc["chunks"], 100 * doc["bubble_fraction"],
        doc["forward"], backward, doc["transfer"])
    return rows, title, "time (units of the given costs)"


def from_trace(doc):
    """Rows from a Chrome trace: complete events ("ph": "X"), one row per pid."""
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    by_pid = {}
    for e in events:
        if e.get("ph") != "X":
            continue
        args = e.get("args", {})
        by_pid.setdefault(e.get("pid", 0), []).append(
            (e["ts"], e["ts"] + e.get("dur", 0), e["name"], args.get("microbatch", -1), args.get("chunk", 0)))
    if not by_pid:
        usage("the trace has no complete (\"ph\": \"X\") events")
    t0 = min(s for row in by_pid.values() for s, *_ in row)
    rows = [[(s - t0, e - t0, k, m, c) for s, e, k, m, c in sorted(by_pid[p])] for p in sorted(by_pid)]
    return rows, "recorded timeline (%d ranks)" % len(rows), "time (us)"


def svg(rows, title, xlabel, more=()):
    """One panel per (rows, title): the first, then `more`, on one time
    axis (so schedules compare by length)."""
    panels = [(rows, title)] + list(more)
    end = max([e for rows_, _ in panels for row in rows_ for _, e, *_ in row] + [1e-9])
    left, top, row_h, width, gap = 70, 40, 34, 1100, 36
    scale = (width - left - 20) / end
    height = top + sum(row_h * len(r) for r, _ in panels) + gap * (len(panels) - 1) + 50
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    y0 = top
    for p, (rows_, title_) in enumerate(panels):
        out.append('<text x="%d" y="%d" font-size="13">%s</text>' % (left, y0 - 20 + 2, escape(title_)))
        for r, row in enumerate(rows_):
            y = y0 + r * row_h
            out.append('<text x="8" y="%d">stage %d</text>' % (y + row_h / 2 + 4, r))
            out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>' % (left, y + row_h - 2, width - 20, y + row_h - 2))
            for s, e, kind, mb, chunk in row:
                x, w = left + s * scale, max((e - s) * scale, 0.5)
                if kind in COLORS:
                    color = COLORS[kind][chunk % 4]
                    out.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" stroke="white" stroke-width="0.5"><title>%s mb %d chunk %d [%g, %g]</title></rect>'
                               % (x, y + 2, w, row_h - 8, color, kind, mb, chunk, s, e))
                    if w > 12 and mb >= 0:
                        out.append('<text x="%.2f" y="%d" text-anchor="middle" fill="white">%d</text>' % (x + w / 2, y + row_h / 2 + 2, mb))
                else:  # a transfer or any other recorded op: a thin bar under the row
                    out.append('<rect x="%.2f" y="%d" width="%.2f" height="4" fill="#999"><title>%s mb %s [%g, %g]</title></rect>'
                               % (x, y + row_h - 7, w, escape(str(kind)), mb, s, e))
        y0 += row_h * len(rows_) + gap
    axis_y = y0 - gap + 12
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (left, axis_y, width - 20, axis_y))
    for i in range(11):
        t = end * i / 10
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%.3g</text>' % (left + t * scale, axis_y + 14, t))
    kinds = {k for rows_, _ in panels for row in rows_ for _, _, k, _, _ in row}
    legend = ("F forward: blue/teal, B backward_input: green, W backward_weight: purple, "
              "whole backward: green/yellow (shades by chunk)"
              if "backward_weight" in kinds else
              "forward: blue/teal by chunk, backward: green/yellow by chunk")
    out.append('<text x="%d" y="%d">%s   (%s)</text>' % (left, axis_y + 32, escape(xlabel), legend))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(rows, title, xlabel, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        usage("writing PNG needs matplotlib (python3-matplotlib); write .svg instead")
    fig, ax = plt.subplots(figsize=(14, 0.5 * len(rows) + 1.5))
    for r, row in enumerate(rows):
        for s, e, kind, mb, chunk in row:
            if kind in COLORS:
                ax.barh(r, e - s, left=s, color=COLORS[kind][chunk % 4], edgecolor="white")
    ax.set_yticks(range(len(rows)), ["stage %d" % r for r in range(len(rows))])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="interleaved", help="simple | interleaved | virtual | zb-h1 | zb-v")
    ap.add_argument("--pp", type=int)
    ap.add_argument("--microbatches", "-m", type=int)
    ap.add_argument("--chunks", type=int, default=None, help="default 1 (zb-v: 2)")
    ap.add_argument("--active", type=int, default=0)
    ap.add_argument("--forward", type=float, default=1.0)
    ap.add_argument("--backward", type=float, default=2.0)
    ap.add_argument("--backward-input", type=float, help="B's time (split schedules; default backward / 2)")
    ap.add_argument("--backward-weight", type=float, help="W's time (default backward / 2)")
    ap.add_argument("--transfer", type=float, default=0.0)
    ap.add_argument("--also", metavar="KIND", action="append", default=[],
                    help="draw this schedule too (same pp, microbatches and costs), below, on the "
                         "same time axis (repeatable)")
    ap.add_argument("--json", help="smp-schedule output to draw")
    ap.add_argument("--trace", help="Chrome-trace JSON (SMP_TIMELINE) to draw")
    ap.add_argument("--tool", help="path of smp-schedule")
    ap.add_argument("-o", "--output", required=True, help="file.svg or file.png")
    try:
        a = ap.parse_args()
    except SystemExit as e:
        sys.exit(2 if e.code else 0)
    more = []
    if a.trace:
        with open(a.trace) as f:
            rows, title, xlabel = from_trace(json.load(f))
    elif a.json:
        with open(a.json) as f:
            rows, title, xlabel = from_schedule(json.load(f))
    else:
        if a.pp is None or a.microbatches is None:
            usage("give --pp and --microbatches (or --json / --trace)")
        def run(kind, chunks):
            cmd = [find_tool(a.tool), "--kind", kind, "--pp", str(a.pp), "--microbatches", str(a.microbatches),
                   "--active", str(a.active), "--forward", str(a.forward),
                   "--backward", str(a.backward), "--transfer", str(a.transfer)]
            if chunks is not None:
                cmd += ["--chunks", str(chunks)]
            if a.backward_input is not None:
                cmd += ["--backward-input", str(a.backward_input)]
            if a.backward_weight is not None:
                cmd += ["--backward-weight", str(a.backward_weight)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr.strip(), file=sys.stderr)
                sys.exit(r.returncode)
            return from_schedule(json.loads(r.stdout))

        rows, title, xlabel = run(a.kind, a.chunks)
        more = [run(k, 2 if k in ("virtual", "zb-v") else None)[:2] for k in a.also]
    if a.output.endswith(".png"):
        png(rows, title, xlabel, a.output)
    else:
        with open(a.output, "w") as f:
            f.write(svg(rows, title, xlabel, more))
    print("wrote " + a.output)


if __name__ == "__main__":
    main()
