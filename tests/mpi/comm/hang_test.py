#!/usr/bin/env python3
"""No rank is left hanging: runs hang_helper under mpirun in each failure
mode and checks the job ends (non-zero) within the timeout plus a few
seconds, with the message that says why.

Usage: hang_test.py MPIRUN HELPER MODE"""
import os
import re
import subprocess
import sys
import time

TIMEOUT = 2       # SMP_TIMEOUT given to the job
SLACK = 8         # mpirun start + abort propagation on 2 busy cores

CASES = {
    # mode: (SMP_TIMEOUT or None, ranks, regex the output must contain)
    "never-join": (TIMEOUT, 3, r"smp: rank [01]: allreduce on WORLD \(peer -, root -, tag -, count 1234\) "
                                r"has waited \d+\.\d s, longer than SMP_TIMEOUT=2 s; aborting the job"),
    "never-send": (TIMEOUT, 2, r"smp: rank 0: recv on WORLD \(peer 1, root -, tag 42, count 10\) has waited"),
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
        proc = subprocess.run([mpirun, "-np", str(ranks), helper, mode], env=env,
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
    if mode == "never-join" and len(re.findall(r"^smp: rank \d+: ", out, re.M)) > 2:
        print("FAIL: more timeout lines than waiting ranks")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
