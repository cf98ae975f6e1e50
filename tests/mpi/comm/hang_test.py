#!/usr/bin/env python3
"""No rank is left hanging: runs hang_helper under mpirun in each failure
mode and checks the job ends (non-zero) within the timeout plus a few
seconds, with the message that says why.

A rank that never joins is named, by its rank number, in the line of every
rank waiting for it (odd and even sizes: never-join and never-join-np4).

Usage: hang_test.py MPIRUN HELPER MODE"""
import os
import re
import subprocess
import sys
import time

TIMEOUT = 2       # SMP_TIMEOUT given to the job
SLACK = 10        # mpirun start, the watchdog's query (<= 1 s) and grace
                  # (1.5 s), abort propagation, on 2 busy cores

CASES = {
    # mode: (SMP_TIMEOUT or None, ranks, regex the output must contain)
    "never-join": (TIMEOUT, 3, r"smp: rank [01]: allreduce on WORLD \(peer -, root -, tag -, count 1234\) "
                                r"has waited \d+\.\d s, longer than SMP_TIMEOUT=2 s; "
                                r"not arrived: rank 2 \(in no smp operation\); aborting the job"),
    "never-join-np4": (TIMEOUT, 4, r"not arrived: rank 3 \(in no smp operation\); aborting the job"),
    "never-send": (TIMEOUT, 2, r"smp: rank 0: recv on WORLD \(peer 1, root -, tag 42, count 10\) has waited "
                               r"\d+\.\d s, longer than SMP_TIMEOUT=2 s; peer is rank 1 \(in no smp operation\)"),
    # No SMP_TIMEOUT: Open MPI itself must end the job when a rank dies.
    "killed": (None, 3, r"exited on signal 9"),
    "exit-early": (None, 3, r"without calling .?finalize"),
}


def main():
    mpirun, helper, mode = sys.argv[1:4]
    timeout, ranks, pattern = CASES[mode]
    env = dict(os.environ)
    env.pop("SMP_TIMEOUT", None)
    if timeout is not None:
        env["SMP_TIMEOUT"] = str(timeout)
    limit = (timeout or 0) + SLACK
    start = time.monotonic()
    try:
        proc = subprocess.run([mpirun, "-np", str(ranks), helper, mode.split("-np")[0]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=limit + 30, text=True)
    except subprocess.TimeoutExpired:
        print(f"FAIL: {mode}: the job still ran after {limit + 30} s")
        return 1
    elapsed = time.monotonic() - start
    out = proc.stdout
    print(out)
    print(f"{mode}: exit status {proc.returncode} after {elapsed:.1f} s")
    ok = True
    if proc.returncode == 0:
        print(f"FAIL: {mode}: the job exited 0")
        ok = False
    if elapsed > limit:
        print(f"FAIL: {mode}: took {elapsed:.1f} s, more than {limit} s")
        ok = False
    if not re.search(pattern, out):
        print(f"FAIL: {mode}: output lacks /{pattern}/")
        ok = False
    if mode.startswith("never-join"):
        lines = re.findall(r"^smp: rank (\d+): .*$", out, re.M)
        if len(lines) > ranks - 1:
            print("FAIL: more timeout lines than waiting ranks")
            ok = False
        # Every waiting rank names the one that never joined.
        for r in range(ranks - 1):
            if not re.search(rf"^smp: rank {r}: allreduce on WORLD .*not arrived: rank {ranks - 1} ", out, re.M):
                print(f"FAIL: rank {r}'s line does not name rank {ranks - 1}")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
