#!/usr/bin/env python3
"""A created group's own timeout ends the job: group_hang_helper at 4 ranks,
SMP_TIMEOUT unset, world ranks 0, 2, 3 in a group with
smp_group_set_timeout(group, 2), rank 3 never joining its allreduce. Every
waiting member's line names the group (handle and world ranks) and rank 3;
the job ends, non-zero, within the timeout plus slack.

Usage: group_hang_test.py MPIRUN HELPER"""
import os
import re
import subprocess
import sys
import time

TIMEOUT = 2
SLACK = 10  # mpirun start, the query (<= 1 s), grace (1.5 s), abort, busy cores


def main():
    mpirun, helper = sys.argv[1:3]
    env = dict(os.environ)
    env.pop("SMP_TIMEOUT", None)
    env.pop("SMP_CHECK", None)
    limit = TIMEOUT + SLACK
    start = time.monotonic()
    try:
        proc = subprocess.run([mpirun, "-np", "4", helper], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=limit + 30, text=True)
    except subprocess.TimeoutExpired:
        print(f"FAIL: the job still ran after {limit + 30} s")
        return 1
    elapsed = time.monotonic() - start
    out = proc.stdout
    print(out)
    print(f"exit status {proc.returncode} after {elapsed:.1f} s")
    ok = True
    if proc.returncode == 0:
        print("FAIL: the job exited 0")
        ok = False
    if elapsed > limit:
        print(f"FAIL: took {elapsed:.1f} s, more than {limit} s")
        ok = False
    for r in (0, 2):
        pattern = (rf"^smp: rank {r}: allreduce on group 64 \(world ranks 0,2,3\) \(peer -, root -, tag -, "
                   r"count 1234\) has waited \d+\.\d s, longer than its group's timeout of 2 s "
                   r"\(smp_group_set_timeout\); not arrived: rank 3 \(in no smp operation\); aborting the job$")
        if not re.search(pattern, out, re.M):
            print(f"FAIL: no line of rank {r} matching /{pattern}/")
            ok = False
    if re.search(r"^smp: rank [13]:", out, re.M):
        print("FAIL: a rank that waits in nothing printed a timeout line")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
