#!/usr/bin/env python3
"""A hang inside a call the user made names that call: the last rank never
joins a checkpoint save or load, a tensor receive or a tensor exchange, and
every waiting rank's line names the C API call as the user made it (with
its arguments), the operation inside it, and the rank that never arrived.
Through smprun (mode smprun-*), the job's last line names the rank that
never arrived, not the first rank to abort, and the report file smprun
made is gone afterwards.

check-iallreduce-group: under SMP_CHECK=1 at 4 ranks (tp 2), the last rank
issues smp_iallreduce on TP_GROUP, the others on WORLD. The check does not
catch a non-blocking call on another group (src/comm/call_checker.h says
why); SMP_TIMEOUT ends the job, and each rank waiting on WORLD names rank 3
and the call it waits in.

Usage: call_hang_test.py MPIRUN SMPRUN HELPER MODE"""
import os
import re
import subprocess
import sys
import tempfile
import time

TIMEOUT = 2   # SMP_TIMEOUT given to the job
SLACK = 15    # mpirun start, the query (<= 1 s) and grace (1.5 s), abort, 2 busy cores
RANKS = 3
LAST = RANKS - 1


def expected(mode, d):
    """Regex every waiting rank's line must match ({r}: its rank)."""
    absent = rf"not arrived: rank {LAST} \(in no smp operation\); aborting the job$"
    peer = rf"peer is rank {LAST} \(in no smp operation\); aborting the job$"
    op = r"[a-z_]+( \(wait\))? on WORLD \(peer [-0-9]+, root [-0-9]+, tag [-0-9]+, count \d+\) has waited"
    q = re.escape(f'"{d}"')
    return {
        "ckpt-save": rf"^smp: rank {{r}}: smp_ckpt_save\({q}, sharded\): {op} .*; {absent}",
        "ckpt-load": rf"^smp: rank {{r}}: smp_ckpt_load\({q}\): {op} .*; {absent}",
        "recv-tensor": rf"^smp: rank {{r}}: smp_recv_tensor\(peer {LAST}, WORLD, tag 5\): {op} .*; {peer}",
        "exchange": rf"^smp: rank {{r}}: smp_exchange_tensors\(1 send \(peer {LAST}\); 1 receive \(peer {LAST}\); "
                    rf"WORLD\): {op} .*; {peer}",
        # A non-blocking collective inside the call, on the group's worker
        # thread, names it too.
        "optimizer-step": rf"^smp: rank {{r}}: smp_optimizer_step\(grad_scale 1, DP_GROUP\): "
                          rf"{op.replace('WORLD', 'DP_GROUP')} .*; {absent}",
        # The sends' smp_wait names the call that posted them.
        "exchange-deferred": rf"^smp: rank {{r}}: smp_wait\(request of smp_exchange_tensors_deferred\(1 send "
                             rf"\(peer {LAST}\); no receives; WORLD\)\): isend \(wait\) on WORLD .*; {peer}",
    }[mode]


def run(cmd, env, limit):
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=limit + 30, text=True)
    except subprocess.TimeoutExpired:
        print(f"FAIL: the job still ran after {limit + 30} s")
        return None, 0
    return proc, time.monotonic() - start


def main():
    mpirun, smprun, helper, mode = sys.argv[1:5]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "ckpt")
        env = dict(os.environ)
        env.pop("SMP_TIMEOUT", None)
        env.pop("SMP_HANG_REPORT", None)
        limit = TIMEOUT + SLACK
        if mode.startswith("smprun-"):
            inner = mode[len("smprun-"):]
            tmpdir = os.path.join(tmp, "t")
            os.mkdir(tmpdir)
            env["TMPDIR"] = tmpdir  # where smprun makes its report file
            cmd = [smprun, "-np", str(RANKS), "--timeout", str(TIMEOUT), helper, inner, d]
        elif mode == "check-iallreduce-group":
            inner, tmpdir = "iallreduce-group", None
            env.update(SMP_TIMEOUT=str(TIMEOUT), SMP_CHECK="1", SMP_TP_SIZE="2")
            cmd = [mpirun, "-np", "4", helper, inner]
        else:
            inner, tmpdir = mode, None
            env["SMP_TIMEOUT"] = str(TIMEOUT)
            cmd = [mpirun, "-np", str(RANKS), helper, inner, d]
        proc, elapsed = run(cmd, env, limit)
        if proc is None:
            return 1
        out = proc.stdout
        print(out)
        print(f"{mode}: exit status {proc.returncode} after {elapsed:.1f} s")
        if proc.returncode == 0:
            print(f"FAIL: {mode}: the job exited 0")
            ok = False
        if elapsed > limit:
            print(f"FAIL: {mode}: took {elapsed:.1f} s, more than {limit} s")
            ok = False
        if tmpdir is not None:
            lines = [l for l in out.splitlines() if l.strip()]
            last = lines[-1] if lines else ""
            what = {"never-join": r"allreduce on WORLD",
                    "ckpt-save": rf"smp_ckpt_save\({re.escape(chr(34) + d + chr(34))}, sharded\): [a-z_]+ on WORLD"}[inner]
            want = (rf"^smprun: hang: rank {LAST} \(in no smp operation\) never arrived; ranks 0, 1 waited for it "
                    rf"past SMP_TIMEOUT \(rank 0 in {what}\)$")
            if not re.search(want, last):
                print(f"FAIL: {mode}: the last line\n  {last}\nis not /{want}/")
                ok = False
            if os.listdir(tmpdir):
                print(f"FAIL: {mode}: smprun left {os.listdir(tmpdir)} in its TMPDIR")
                ok = False
        elif inner == "iallreduce-group":
            for r in range(3):
                want = (rf"^smp: rank {r}: iallreduce on WORLD \(peer -, root -, tag -, count 4\) has waited .*; "
                        r"not arrived: rank 3 \(waiting in iallreduce on TP_GROUP\); aborting the job$")
                if not re.search(want, out, re.M):
                    print(f"FAIL: {mode}: no line of rank {r} matches /{want}/")
                    ok = False
        else:
            pattern = expected(inner, d)
            for r in range(LAST):
                if not re.search(pattern.format(r=r), out, re.M):
                    print(f"FAIL: {mode}: no line of rank {r} matches /{pattern.format(r=r)}/")
                    ok = False
            if len(re.findall(r"^smp: rank \d+: ", out, re.M)) > LAST:
                print(f"FAIL: {mode}: more timeout lines than waiting ranks")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
