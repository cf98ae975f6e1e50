#!/usr/bin/env python3
"""Runs timeline_capi_test under mpirun and checks what smp_finalize wrote.

On (SMP_TIMELINE set): one file, one track per rank, every runtime call as
a "runtime" event with its C API name, bytes (count x element size; the
whole buffer for reduce_scatter / allgather) and group; the iallreduce's
post and its wait as two events, the wait after the post; the framework
mark "step" (category "framework") containing every runtime event, which
follow one another without overlapping. Off: the program itself checks
that nothing is recorded, and no file appears. --mismatch (SMP_CHECK=1, a
peer failure): finalize returns and writes nothing. --write-early: the
explicitly written file is not overwritten by finalize.
Usage: check_timeline_capi.py MPIRUN NP TEST_EXE OUTDIR"""
import json
import os
import subprocess
import sys

mpirun, np, exe, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def fail(msg):
    sys.exit("timeline capi check (np %d): %s" % (np, msg))


def run(name, args=(), **env):
    path = os.path.join(outdir, "timeline_capi_%s_np%d.json" % (name, np))
    if os.path.exists(path):
        os.remove(path)
    e = dict(os.environ)
    e.pop("SMP_TIMELINE", None)
    e.pop("SMP_CHECK", None)
    e.update(env)
    if e.get("SMP_TIMELINE") == "":
        e["SMP_TIMELINE"] = path
    r = subprocess.run([mpirun, "-np", str(np), exe] + list(args), env=e, capture_output=True,
                       text=True, timeout=100)
    if r.returncode != 0:
        fail("%s run failed:\n%s%s" % (name, r.stdout, r.stderr))
    return path


def events_of(path):
    doc = json.load(open(path))
    evs = doc["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in evs if e.get("ph") == "M" and e["name"] == "process_name"}
    if names != {r: "rank %d" % r for r in range(np)}:
        fail("process names %r" % names)
    return [e for e in evs if e.get("ph") == "X"]


EPS = 0.01  # microseconds: the file's rounding

# On.
path = run("on", SMP_TIMELINE="")
if not os.path.exists(path):
    fail("smp_finalize did not write the timeline")
events = events_of(path)
for r in range(np):
    mine = [e for e in events if e["pid"] == r]
    expect = [("allreduce", 4 * 1000, "WORLD"),
              ("reduce_scatter", 4 * 100 * np, "RDP_GROUP"),
              ("allgather", 8 * 50 * np, "RDP_GROUP"),
              ("broadcast", 8 * 7, "WORLD"),
              ("barrier", 0, "WORLD"),
              ("iallreduce", 4 * 256, "WORLD"),
              ("wait", 4 * 256, "WORLD")]
    # Rank 0 polls a receive five times before the barrier and to completion
    # after it: only the completing poll is an event.
    if r == 0:
        expect += [("irecv", 4 * 16, "WORLD"), ("barrier", 0, "WORLD"), ("test", 4 * 16, "WORLD")]
    elif r == 1:
        expect += [("barrier", 0, "WORLD"), ("send", 4 * 16, "WORLD")]
    else:
        expect += [("barrier", 0, "WORLD")]
    if r < 2:
        expect.append(("send" if r == 0 else "recv", 4 * 10, "WORLD"))
    expect += [("optimizer_create", None, "RDP_GROUP"), ("optimizer_step", "bucket", "RDP_GROUP")]
    runtime = sorted((e for e in mine if e.get("cat") == "runtime"), key=lambda e: e["ts"])
    got = [e["name"] for e in runtime]
    if got != [x[0] for x in expect]:
        fail("rank %d runtime events %r, expected %r" % (r, got, [x[0] for x in expect]))
    for e, (name, nbytes, group) in zip(runtime, expect):
        a = e["args"]
        if a.get("group") != group:
            fail("rank %d %s: group %r, expected %r" % (r, name, a.get("group"), group))
        if nbytes == "bucket":  # the optimizer's bucket buffer: at least the 1000 floats
            if a.get("bytes", 0) < 4000:
                fail("rank %d optimizer_step bytes %r" % (r, a.get("bytes")))
        elif a.get("bytes") != nbytes:
            fail("rank %d %s: bytes %r, expected %r" % (r, name, a.get("bytes"), nbytes))
        if name in ("send", "recv") and a.get("peer") != 1 - r:
            fail("rank %d %s: peer %r" % (r, name, a.get("peer")))
    for a, b in zip(runtime, runtime[1:]):
        if a["ts"] + a["dur"] > b["ts"] + EPS:
            fail("rank %d: %s overlaps the next call %s" % (r, a["name"], b["name"]))
    steps = [e for e in mine if e["name"] == "step"]
    if len(steps) != 1 or steps[0].get("cat") != "framework":
        fail("rank %d step marks %r" % (r, steps))
    s = steps[0]
    for e in runtime:
        if not (s["ts"] - EPS <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + EPS):
            fail("rank %d: %s [%.3f, +%.3f] is not inside step [%.3f, +%.3f]"
                 % (r, e["name"], e["ts"], e["dur"], s["ts"], s["dur"]))
    if len(mine) != len(runtime) + 1:
        fail("rank %d: unexpected events %r" % (r, [e["name"] for e in mine]))

# Off: the program checks that nothing is recorded.
run("off")

# A peer failure: finalize must return and skip the write.
path = run("mismatch", ["--mismatch"], SMP_TIMELINE="", SMP_CHECK="1")
if os.path.exists(path):
    fail("smp_finalize wrote the timeline after a peer failure")

# Written explicitly: finalize leaves the file alone.
path = run("early", ["--write-early"], SMP_TIMELINE="")
names = {e["name"] for e in events_of(path)}
if "after_write" in names or "step" not in names:
    fail("--write-early file holds %r" % sorted(names))
print("timeline capi ok at %d ranks" % np)
