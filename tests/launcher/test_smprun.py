#!/usr/bin/env python3
"""smprun end to end: test_smprun.py SMPRUN PROBE CASE.

Every expectation is computed here, independently of the launcher's C++:
coordinates by digit decomposition of the rank in placement order, group
ranks by enumerating group members, cores and NUMA nodes from sysfs. The
probe (probe.cc) runs under smprun and prints what each rank got.
"""
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SMPRUN, PROBE, CASE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
ENTRY = os.path.join(os.path.dirname(SMPRUN), "smprun-rank")
TMP = tempfile.mkdtemp(prefix="smprun-test-")
# A copy of the probe with a name no other process has, so pgrep -f can tell
# whether anything of ours outlived a test.
UNIQUE = os.path.join(TMP, "smpprobe-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000))
shutil.copy(PROBE, UNIQUE)

# GPUs hidden so every host gives the same answers (SMP_DEVICE -1, bind auto
# = none); no SMP_* or Open MPI settings from outside; mpirun on PATH.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SMP_", "OMPI_", "PMIX_", "SLURM_"))}
ENV["CUDA_VISIBLE_DEVICES"] = ""
ENV["PATH"] = "/usr/bin:/bin:" + ENV.get("PATH", "")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def smprun(args, timeout=120, env=None):
    return subprocess.run([SMPRUN] + args, capture_output=True, text=True, timeout=timeout, env=env or ENV)


# ------------------------------------------------------------ reference

def coords(rank, size, pp, tp, letters):
    """(pp, tp, rdp) of a rank: digits of the rank, the last letter least significant."""
    ext = {"P": pp, "T": tp, "D": size // (pp * tp)}
    digit = {}
    for axis in reversed(letters):
        digit[axis] = rank % ext[axis]
        rank //= ext[axis]
    return digit["P"], digit["T"], digit["D"]


FIXED = {"PP": (1, 2), "TP": (0, 2), "RDP": (0, 1), "DP": (0,), "MP": (2,)}


def group(rank, size, pp, tp, letters, name):
    me = coords(rank, size, pp, tp, letters)
    members = sorted(r for r in range(size)
                     if all(coords(r, size, pp, tp, letters)[i] == me[i] for i in FIXED[name]))
    return members.index(rank), len(members)


def letters_of(placement):
    return {"cluster": "DPT", "spread": "TPD"}.get(placement, placement.upper())


def expected_env(rank, size, pp, tp, placement, flags):
    letters = letters_of(placement)
    e = {"SMP_RANK": rank, "SMP_SIZE": size, "SMP_LOCAL_RANK": rank, "SMP_LOCAL_SIZE": size,
         "SMP_PLACEMENT": letters, "SMP_DEVICE": -1,
         "RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": size}
    for name in FIXED:
        r, s = group(rank, size, pp, tp, letters, name)
        e["SMP_%s_RANK" % name], e["SMP_%s_SIZE" % name] = r, s
    for flag, var in (("--timeout", "SMP_TIMEOUT"), ("--timeline", "SMP_TIMELINE")):
        if flag in flags:
            e[var] = flags[flags.index(flag) + 1]
    if "--check" in flags:
        e["SMP_CHECK"] = 1
    for i, f in enumerate(flags):
        if f == "-x" and "=" in flags[i + 1]:
            k, v = flags[i + 1].split("=", 1)
            e[k] = v
    return {k: str(v) for k, v in e.items()}


def sysfs_cores():
    """The cores we may use, as sorted cpu lists, in (package, first cpu) order."""
    by_core = {}
    for cpu in sorted(os.sched_getaffinity(0)):
        base = "/sys/devices/system/cpu/cpu%d/topology/" % cpu
        key = tuple(int(open(base + f).read()) for f in ("physical_package_id", "core_id"))
        by_core.setdefault(key, []).append(cpu)
    return sorted(by_core.values(), key=lambda cpus: (cpus[0],))


def parse_cpulist(text):
    out = []
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def sysfs_numa_nodes():
    allowed = os.sched_getaffinity(0)
    nodes = []
    root = "/sys/devices/system/node"
    ids = sorted(int(n[4:]) for n in os.listdir(root) if re.fullmatch(r"node\d+", n)) if os.path.isdir(root) else []
    for n in ids:
        cpus = sorted(set(parse_cpulist(open("%s/node%d/cpulist" % (root, n)).read())) & allowed)
        if cpus:
            nodes.append(cpus)
    return nodes or [sorted(allowed)]


def expected_cpus(bind, local, nlocal):
    if bind == "core":
        cores = sysfs_cores()
        c = len(cores)
        picked = range(local * c // nlocal, (local + 1) * c // nlocal) if nlocal <= c else [local % c]
        return sorted(cpu for i in picked for cpu in cores[i])
    if bind == "numa":
        nodes = sysfs_numa_nodes()
        return nodes[local % len(nodes)]
    return sorted(os.sched_getaffinity(0))  # none (auto without GPUs): unbound


def leftovers():
    r = subprocess.run(["pgrep", "-f", UNIQUE], capture_output=True, text=True)
    return r.stdout.split()


def wait_no_leftovers(limit_s=5.0):
    """SIGKILL and reaping are asynchronous: give them a moment, then insist."""
    t0 = time.time()
    while leftovers() and time.time() - t0 < limit_s:
        time.sleep(0.05)
    left = leftovers()
    check(not left, "processes left behind: %s" % subprocess.run(
        ["ps", "-o", "pid,ppid,stat,args", "-p", ",".join(left)], capture_output=True, text=True).stdout
        if left else "")
    return time.time() - t0


# ---------------------------------------------------------------- cases

def run_env_case(np, pp, tp, placement, flags):
    args = ["-np", str(np), "--pp", str(pp), "--tp", str(tp), "--placement", placement] + flags + [UNIQUE, "env"]
    r = smprun(args)
    check(r.returncode == 0, "smprun %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr))
    seen = {}
    for line in r.stdout.splitlines():
        tag = None
        m = re.match(r"^\[\d+,(\d+)\]<stdout>:(.*)$", line)
        if m:
            tag, line = int(m.group(1)), m.group(2)
        check("--tag-output" not in flags or tag is not None, "untagged line with --tag-output: " + line)
        got = json.loads(line)
        rank = int(got["env"]["SMP_RANK"])
        check(tag is None or tag == rank, "line tagged %s from rank %d" % (tag, rank))
        check(rank not in seen, "rank %d printed twice" % rank)
        seen[rank] = got
    check(sorted(seen) == list(range(np)), "ranks seen: %s" % sorted(seen))
    bind = flags[flags.index("--bind") + 1] if "--bind" in flags else "auto"
    # The hang report file smprun made for the watchdogs: one for all the
    # ranks, removed when the job ends.
    reports = {got["env"].pop("SMP_HANG_REPORT", None) for got in seen.values()}
    check(len(reports) == 1, "SMP_HANG_REPORT differs between ranks: %s" % reports)
    report = reports.pop()
    check(report is not None and re.match(r"^/.*/smprun-hang-\w{6}$", report), "SMP_HANG_REPORT=%s" % report)
    check(not os.path.exists(report), "smprun left its hang report %s behind" % report)
    # torch's rendezvous, as torchrun sets it: this host, one port for all.
    ports = {got["env"].get("MASTER_PORT") for got in seen.values()}
    check(len(ports) == 1 and next(iter(ports)).isdigit(), "MASTER_PORT differs between ranks: %s" % ports)
    for rank, got in seen.items():
        check(got["env"].get("MASTER_ADDR") == "127.0.0.1", "rank %d MASTER_ADDR=%r" % (
            rank, got["env"].get("MASTER_ADDR")))
        env = {k: v for k, v in got["env"].items() if k.startswith("SMP_") or k in
               ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE") or k.startswith("PROBE_")}
        want = expected_env(rank, np, pp, tp, placement, flags)
        check(env == want, "rank %d of %s:\n got  %s\n want %s" % (rank, args, sorted(env.items()),
                                                                   sorted(want.items())))
        check(got["env"]["OMPI_COMM_WORLD_RANK"] == str(rank), "SMP_RANK differs from MPI's rank")
        check("HWLOC_PLUGINS_BLACKLIST" not in got["env"], "hwloc settings leaked into the program")
        cpus = expected_cpus(bind, rank, np)
        check(got["cpus"] == cpus, "rank %d --bind %s: cpus %s, want %s" % (rank, bind, got["cpus"], cpus))
    print("ok  -np %d --pp %d --tp %d --placement %s %s" % (np, pp, tp, placement, " ".join(flags)))


def case_env():
    for np, pp, tp, placement, flags in [
            (1, 1, 1, "cluster", []),
            (2, 2, 1, "spread", ["--timeout", "30"]),
            (3, 1, 1, "cluster", ["--check"]),
            (4, 2, 2, "cluster", ["--timeline", os.path.join(TMP, "trace.json"), "-x", "PROBE_FOO=bar"]),
            (4, 1, 2, "TDP", ["--tag-output"]),
            (6, 3, 1, "PTD", []),
            (8, 2, 2, "spread", ["--timeout", "2.5", "--check", "--timeline", "t.json", "-x", "PROBE_FOO=a b"]),
            (8, 2, 1, "PDT", [])]:
        run_env_case(np, pp, tp, placement, flags)
    # A user's MASTER_ADDR / MASTER_PORT are kept.
    r = smprun(["-np", "2", UNIQUE, "env"], env=dict(ENV, MASTER_ADDR="10.1.2.3", MASTER_PORT="4242"))
    got = [json.loads(l)["env"] for l in r.stdout.splitlines()]
    check(r.returncode == 0 and [(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in got] == [("10.1.2.3", "4242")] * 2,
          "user's MASTER_ADDR/PORT: %r %r" % (r.stdout, r.stderr))
    # -np defaults to the GPUs CUDA shows (none here), else 1.
    r = smprun([UNIQUE, "env"])
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1, "default -np: %r %r" % (r.stdout, r.stderr))


def case_bind():
    for np, bind in [(2, "core"), (4, "core"), (3, "core"), (2, "numa"), (2, "none")]:
        run_env_case(np, 1, 1, "cluster", ["--bind", bind])


def case_dryrun():
    marker = os.path.join(TMP, "launched")
    r = smprun(["-np", "16", "--pp", "2", "--tp", "4", "--placement", "spread", "--dry-run", UNIQUE, "marker", marker])
    check(r.returncode == 0, "dry run: exit %d: %s" % (r.returncode, r.stderr))
    check(not os.path.exists(marker), "--dry-run launched the program")
    lines = r.stdout.splitlines()
    print("\n".join(lines))
    check(lines[0].startswith("smprun: 16 ranks = pp 2 x tp 4 x rdp 2, placement TPD"), lines[0])
    check(lines[1].split() == ["rank", "host", "local", "pp", "tp", "rdp", "dp", "mp", "device", "cpus"], lines[1])
    rows = [l.split() for l in lines[2:18]]
    host = socket.gethostname()
    for rank, row in enumerate(rows):
        pp, tp, rdp = coords(rank, 16, 2, 4, "TPD")
        want = [str(rank), host, "%d/16" % rank, str(pp), str(tp), str(rdp),
                str(group(rank, 16, 2, 4, "TPD", "DP")[0]), str(group(rank, 16, 2, 4, "TPD", "MP")[0]), "-1", "-"]
        check(row == want, "row %d: %s, want %s" % (rank, row, want))
    check(len(lines) == 19, "expected header, 16 rows and the command; got %d lines" % len(lines))
    cmd = [shutil.which("mpirun", path=ENV["PATH"])]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if 16 > len(sysfs_cores()):
        cmd.append("--oversubscribe")
    got = shlex.split(lines[18])
    # MASTER_PORT: a port free here, picked by smprun (torchrun's rendezvous).
    port = got[got.index("--master-port") + 1] if "--master-port" in got else "?"
    check(port.isdigit() and 0 < int(port) < 65536, "--master-port %r" % port)
    cmd += ["--bind-to", "none", "-np", "16", ENTRY, "--np", "16", "--pp", "2", "--tp", "4", "--placement", "TPD",
            "--bind", "auto", "--master-addr", "127.0.0.1", "--master-port", port, "--", UNIQUE, "marker", marker]
    check(got == cmd, "command:\n %s\nwant\n %s" % (lines[18], shlex.join(cmd)))
    # --print-topology: the same table, then the job runs.
    r = smprun(["-np", "2", "--print-topology", UNIQUE, "env"])
    out = r.stdout.splitlines()
    check(r.returncode == 0 and out[0].startswith("smprun: 2 ranks") and out[1].split()[0] == "rank", r.stdout)
    check(sorted(json.loads(l)["env"]["SMP_RANK"] for l in out[4:]) == ["0", "1"], "--print-topology: %r" % out)
    # DESIGN.md's worked example: 8 ranks, pp=2, spread -> PP groups [0,4] [1,5] [2,6] [3,7].
    r = smprun(["-np", "8", "--pp", "2", "--placement", "spread", "--dry-run", "true"])
    pp_col = [int(l.split()[3]) for l in r.stdout.splitlines()[2:10]]
    check(pp_col == [0, 0, 0, 0, 1, 1, 1, 1], "spread pp column %s" % pp_col)


def case_exit():
    t0 = time.time()
    r = smprun(["-np", "4", UNIQUE, "exit", "2", "3"])
    check(r.returncode == 3, "a rank exiting 3 made smprun exit %d\n%s" % (r.returncode, r.stderr))
    named = [l for l in r.stderr.splitlines() if re.search(r"\brank 2\b.*exited with status 3", l)]
    check(len(named) == 1, "no single line names rank 2:\n" + r.stderr)
    wait_no_leftovers()
    print("ok  rank 2 exits 3 -> smprun exits 3 in %.2f s: %s" % (time.time() - t0, named[0]))
    r = smprun(["-np", "3", UNIQUE, "kill", "1"])
    check(r.returncode == 128 + signal.SIGKILL, "a rank killed by SIGKILL: smprun exit %d" % r.returncode)
    named = [l for l in r.stderr.splitlines() if re.search(r"\brank 1\b.*killed by signal 9", l)]
    check(len(named) == 1, "no single line names rank 1:\n" + r.stderr)
    wait_no_leftovers()
    print("ok  rank 1 killed -> smprun exits 137: %s" % named[0])
    r = smprun(["-np", "2", os.path.join(TMP, "no-such-program")])
    check(r.returncode == 127 and "cannot run" in r.stderr, "missing program: %d %s" % (r.returncode, r.stderr))
    print("ok  missing program -> 127")
    r = smprun(["-np", "2", "true"])
    check(r.returncode == 0 and r.stderr == "", "true: %d %r" % (r.returncode, r.stderr))


def read_ready(proc, n, limit_s=60):
    got, buf, t0 = 0, "", time.time()
    while got < n:
        check(time.time() - t0 < limit_s, "only %d of %d ranks started" % (got, n))
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096).decode()
            if chunk == "":
                check(False, "smprun ended before the ranks started: %s" % proc.stderr.read().decode())
            buf += chunk
            got = buf.count("ready ")


def case_signals():
    for sig, mode, want in [(signal.SIGTERM, "sleep", 128 + signal.SIGTERM),
                            (signal.SIGINT, "stubborn", 128 + signal.SIGINT),
                            (signal.SIGKILL, "sleep", -signal.SIGKILL)]:
        p = subprocess.Popen([SMPRUN, "-np", "4", UNIQUE, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=ENV, start_new_session=True)
        try:
            read_ready(p, 4)
            check(len(leftovers()) >= 4, "the ranks are not running")
            t0 = time.time()
            os.kill(p.pid, sig)  # smprun's own process, not its group
            rc = p.wait(timeout=60)
            took = time.time() - t0
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        err = p.stderr.read().decode()
        check(rc == want, "%s to smprun (%s ranks): exit %d, want %d\n%s" % (sig.name, mode, rc, want, err))
        extra = wait_no_leftovers(10.0 if sig == signal.SIGKILL else 5.0)
        print("ok  %s to smprun with %s ranks: exit %d after %.2f s, nothing left %.2f s later"
              % (sig.name, mode, rc, took, extra))


def case_badinput():
    marker = os.path.join(TMP, "launched")
    prog = [UNIQUE, "marker", marker]
    cases = [
        (["-np", "3", "--pp", "2"] + prog, "cannot be split"),
        (["-np", "4", "--pp", "0"] + prog, "at least 1"),
        (["-np", "4", "--tp", "-1"] + prog, "at least 1"),
        (["-np", "0"] + prog, "at least 1"),
        (["-np", "abc"] + prog, "abc"),
        (["--placement", "DPX"] + prog, "placement"),
        (["--placement", "DDT"] + prog, "exactly once"),
        (["--placement", "DP"] + prog, "placement"),
        (["-np", "2"], "no program"),
        (["-np", "2", "--"], "no program"),
        (["--hostfile", os.path.join(TMP, "no-such-hostfile")] + prog, "hostfile"),
        (["-H", "a:2", "--hostfile", "/etc/hostname"] + prog, "one of them"),
        (["--mpirun", os.path.join(TMP, "no-such-mpirun")] + prog, "mpirun"),
        (["--bogus"] + prog, "--bogus"),
        (["--bind", "socket"] + prog, "binding"),
        (["--timeout", "0"] + prog, "--timeout"),
        (["-x", "1BAD=2"] + prog, "-x"),
        (["--mpi-args", "--mca 'btl"] + prog, "quote"),
        (["-np"], "-np"),
        # products and sizes that overflow or cannot be allocated (issue 18)
        (["-np", "4", "--pp", "65536", "--tp", "65536", "--dry-run"] + prog, "cannot be split"),
        (["--pp", "2147483647", "--tp", "2", "-np", "8"] + prog, "cannot be split"),
        (["-np", "2147483647", "--dry-run"] + prog, "ranks smprun launches"),
        (["-np", "99999999999"] + prog, "99999999999"),
        (["--hostfile", "/dev/zero"] + prog, "larger than"),
        # several hosts (issue 20): checked before any host is contacted
        (["-np", "3", "-H", "nodea:1,nodeb:1"] + prog, "3 ranks but the hosts have 2 slots (nodea:1,nodeb:1)"),
        (["--launcher", "pbs"] + prog, "--launcher"),
        (["--launcher", "srun"] + prog, "Slurm allocation"),
        (["--launcher", "srun", "-H", "a:2"] + prog, "drop -H"),
        (["--iface", "eth0 eth1"] + prog, "--iface"),
    ]
    no_mpirun = dict(ENV, PATH=TMP)
    for args, words in cases + [(["-np", "2"] + prog, "mpirun")]:
        r = smprun(args, env=no_mpirun if args == ["-np", "2"] + prog else None)
        lines = r.stderr.splitlines()
        check(r.returncode == 2, "%s: exit %d, want 2\n%s" % (args, r.returncode, r.stderr))
        check(len(lines) == 1 and lines[0].startswith("smprun: "), "%s: stderr not one line: %r" % (args, r.stderr))
        check(words in lines[0], "%s: %r does not mention %r" % (args, lines[0], words))
        check(r.stdout == "" and not os.path.exists(marker), "%s launched something" % args)
        print("ok  %-45s -> %s" % (shlex.join(args).replace(TMP, "$TMP")[:45], lines[0]))


CASES = {"env": case_env, "bind": case_bind, "dryrun": case_dryrun, "exit": case_exit,
         "signals": case_signals, "badinput": case_badinput}

if __name__ == "__main__":
    try:
        CASES[CASE]()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
    finally:
        for pid in leftovers():
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(TMP, ignore_errors=True)
