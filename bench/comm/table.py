#!/usr/bin/python3
"""Markdown tables for BENCHMARKS.md from run.sh's results-np*.txt:
smp vs MPI (same run) vs gloo, busbw in GB/s, at the sizes that carry the
targets. Usage: table.py results-np2.txt results-np4.txt"""
import re
import sys

SIZES = [8, 65536, 1048576, 16777216, 67108864]


def parse(path):
    smp, gloo = {}, {}
    kind = op = None
    for line in open(path):
        m = re.match(r"# smp-bench (\w+) ", line)
        g = re.match(r"# gloo (\w+) ", line)
        if m:
            kind, op = "smp", m.group(1)
            continue
        if g:
            kind, op = "gloo", g.group(1)
            continue
        if line.startswith("#") or not line.strip() or kind is None:
            continue
        f = line.split()
        size = int(f[0])
        if kind == "smp":
            smp[(op, size)] = (float(f[2]), float(f[4]), float(f[5]) if len(f) > 5 else None,
                               float(f[6]) if len(f) > 6 else None)
        else:
            gloo.setdefault((op, size), (float(f[2]), float(f[4])))
    return smp, gloo


def main():
    for path in sys.argv[1:]:
        smp, gloo = parse(path)
        ranks = re.search(r"np(\d+)", path).group(1)
        print(f"\n{ranks} ranks, float32 sum (`{path.split('/')[-1]}`):\n")
        print("| op | size | smp time (us) | smp busbw | MPI time (us) | MPI busbw | smp/MPI busbw | gloo busbw |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for op in ["allreduce", "reduce_scatter", "allgather", "broadcast", "sendrecv"]:
            for s in SIZES:
                if (op, s) not in smp:
                    continue
                t, bw, mt, mbw = smp[(op, s)]
                gl = gloo.get((op, s))
                ratio = mt / t if mt else None
                label = f"{s} B" if s < 1024 else f"{s // 1024} KiB" if s < 1 << 20 else f"{s >> 20} MiB"
                gtxt = "n/a (gloo has none)" if op == "reduce_scatter" else (f"{gl[1]:.3f}" if gl else "-")
                if s == 8 and gl:
                    gtxt += f" ({gl[0]:.0f} us)"
                print(f"| {op} | {label} | {t:.2f} | {bw:.3f} | {mt:.2f} | {mbw:.3f} | {ratio:.2f} | {gtxt} |")


if __name__ == "__main__":
    main()
