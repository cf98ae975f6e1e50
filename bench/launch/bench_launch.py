#!/usr/bin/python3
"""Launch overhead: `smprun -np N true` against plain `mpirun -np N true`.

Both run interleaved in one process (A B A B ...), so load on the machine hits
them alike; reported are medians over the repetitions and their ratio. The
baseline gets the flags smprun itself adds on this machine (--allow-run-as-root
when root, --oversubscribe when N exceeds the cores) so the two do the same job.
Target (issue 2): smprun adds at most max(10% of mpirun, 50 ms).
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def cpu_of_children():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def timed(argv, cpu):
    """Wall time of one launch; its CPU time (every process of the job, as
    each parent waits for its children) is appended to `cpu`."""
    c0, t0 = cpu_of_children(), time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    cpu.append(cpu_of_children() - c0)
    if r.returncode != 0:
        sys.exit(f"bench_launch: {' '.join(argv)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smprun", required=True)
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    mpirun = shutil.which("mpirun")
    base = [mpirun]
    if os.geteuid() == 0:
        base.append("--allow-run-as-root")
    if args.np > len(os.sched_getaffinity(0)):
        base.append("--oversubscribe")
    base += ["-np", str(args.np), "true"]
    smp = [args.smprun, "-np", str(args.np), "true"]

    load0 = os.getloadavg()
    cb, cs = [], []
    for _ in range(args.warmup):
        timed(base, [])
        timed(smp, [])
    tb, ts = [], []
    for i in range(args.reps):
        # Alternate which goes first so neither always runs right after the other.
        if i % 2 == 0:
            tb.append(timed(base, cb)); ts.append(timed(smp, cs))
        else:
            ts.append(timed(smp, cs)); tb.append(timed(base, cb))
    mb, ms = statistics.median(tb), statistics.median(ts)
    load = load0
    limit = max(0.10 * mb, 0.050)
    print(f"command: {' '.join(sys.argv)}")
    print(f"mpirun: {' '.join(base)}")
    print(f"smprun: {' '.join(smp)}")
    print(f"load average before: {' '.join('%.1f' % x for x in load)}; after: "
          f"{' '.join('%.1f' % x for x in os.getloadavg())} ({len(os.sched_getaffinity(0))} cpus)")
    print(f"| launcher | wall median (ms) | wall min (ms) | wall max (ms) | CPU median (ms) | reps |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for name, t, c in (("mpirun -np %d true" % args.np, tb, cb), ("smprun -np %d true" % args.np, ts, cs)):
        print(f"| {name} | {1e3 * statistics.median(t):.1f} | {1e3 * min(t):.1f} | {1e3 * max(t):.1f} "
              f"| {1e3 * statistics.median(c):.1f} | {len(t)} |")
    print(f"CPU added by smprun (median): {1e3 * (statistics.median(cs) - statistics.median(cb)):.1f} ms")
    print(f"ratio smprun/mpirun: {ms / mb:.3f}; added {1e3 * (ms - mb):.1f} ms; "
          f"target: added <= {1e3 * limit:.1f} ms -> {'met' if ms - mb <= limit else 'NOT met'}")


if __name__ == "__main__":
    main()
