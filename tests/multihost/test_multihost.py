#!/usr/bin/env python3
"""smprun across hosts, on real separate hosts made on this machine by
scripts/hosts.sh (a UTS + mount namespace and an sshd per host):

    test_multihost.py --smprun S --probe P --hosts-sh H [--example E] CASE

Cases: layout (3 hosts x 2: coordinates, local ranks and hosts under
placement spread and cluster; forwarding; --oversubscribe), badinput (an
unreachable host, a host without smprun-rank, more ranks than slots, a
malformed hostfile line, a program missing on the hosts), lost (a host
ends mid-run), gpt (the GPT at pp 2 x tp 2 x rdp 2 on 2 hosts x 4 against
one process; its checkpoint resumed on 1 host x 4), slurm (the GPT inside
salloc -n 4 on a Slurm of 2 hosts, through smprun's mpirun and srun).

Every expectation is computed here: coordinates by digit decomposition of
the rank in placement order, hosts from the hostfile's slots in order, the
losses by training the same model in this one process. Exits 77 (skipped)
where hosts cannot be made, naming why.
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

A = None
TMP = None
ENV = None
UNIQUE = None

# The GPT of tests/python/train/run_equivalence.py: tiny, so that 8 ranks on
# 2 cores take seconds.
TINY = ["--vocab", "32", "--seq", "8", "--hidden", "32", "--heads", "4", "--layers", "4",
        "--batch", "8", "--microbatches", "2", "--quiet"]


class Skip(Exception):
    """This machine cannot run the case (exit 77)."""


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def hosts(*args, check_rc=True):
    r = subprocess.run([A.hosts_sh] + list(args), capture_output=True, text=True, timeout=300)
    if check_rc and r.returncode != 0:
        raise AssertionError("hosts.sh %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr))
    return r


def hosts_up(n, slots):
    text = hosts("up", str(n), str(slots)).stdout
    lines = text.splitlines()
    want = ["smp-h%d slots=%d" % (i + 1, slots) for i in range(n)]
    check(lines == want, "hosts.sh up printed %r, want %r" % (lines, want))
    path = os.path.join(TMP, "hostfile-%dx%d" % (n, slots))
    with open(path, "w") as f:
        f.write(text)
    return path


def smprun(args, timeout=300, env=None):
    return subprocess.run([A.smprun] + args, capture_output=True, text=True, timeout=timeout, env=env or ENV)


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


def split_tp(hosts_of, np, pp, tp, letters):
    where = {}
    for r, h in enumerate(hosts_of):
        p_, _, d_ = coords(r, np, pp, tp, letters)
        where.setdefault((p_, d_), set()).add(h)
    return sum(len(h) > 1 for h in where.values())


def host_table(slots, np, pp=1, tp=1, letters="DPT"):
    """Ranks to hosts: each host's slots in turn (Open MPI's by-slot
    mapping), or round-robin (by node) where that keeps more TP groups
    inside a host and every host has the same slots and as many ranks."""
    out = []
    for name, n in slots:
        out += [name] * n
    out = out[:np]
    n = len(slots)
    if n > 1 and np % n == 0 and len({s for _, s in slots}) == 1 and np // n <= slots[0][1]:
        rr = [slots[r % n][0] for r in range(np)]
        if split_tp(rr, np, pp, tp, letters) < split_tp(out, np, pp, tp, letters):
            return rr
    return out


def leftovers():
    r = subprocess.run(["pgrep", "-f", TMP], capture_output=True, text=True)
    return r.stdout.split()


def probe_dir():
    """A fresh directory every host sees, for the probe's env-to mode."""
    return tempfile.mkdtemp(prefix="probe-", dir=TMP)


def parse_probe(where, np):
    seen = {}
    for name in sorted(os.listdir(where)):
        with open(os.path.join(where, name)) as f:
            got = json.loads(f.read())
        rank = int(got["env"]["SMP_RANK"])
        check(rank not in seen, "rank %d printed twice" % rank)
        seen[rank] = got
    check(sorted(seen) == list(range(np)), "ranks seen: %s" % sorted(seen))
    return seen


def table_rows(stdout, np):
    lines = stdout.splitlines()
    check(lines[1].split()[:3] == ["rank", "host", "local"], "no rank table: %r" % lines[:2])
    return [l.split() for l in lines[2:2 + np]], lines[2 + np:]


# ---------------------------------------------------------------- cases

def case_layout():
    hf = hosts_up(3, 2)
    slots = [("smp-h%d" % (i + 1), 2) for i in range(3)]
    env = dict(ENV, SMP_FORWARD_PROBE="yes", PYTHONPATH="/var/tmp/probe-pythonpath",
               LD_LIBRARY_PATH="/var/tmp/probe-libpath")
    cpus = sorted(os.sched_getaffinity(0))
    for placement, np, pp, tp, where in [("spread", 6, 3, 2, ["--hostfile", hf]),
                                         ("cluster", 6, 3, 2, ["--hostfile", hf]),
                                         ("spread", 6, 1, 2, ["-H", "smp-h1:2,smp-h2:2,smp-h3:2"]),
                                         ("cluster", 4, 2, 1, ["--hostfile", hf])]:
        letters = letters_of(placement)
        args = ["-np", str(np), "--pp", str(pp), "--tp", str(tp), "--placement", placement, "--iface", "lo",
                "-x", "CUDA_VISIBLE_DEVICES"] + where
        # The plan (dry run) and what every rank finds on its host.
        d = smprun(args + ["--dry-run", UNIQUE, "env"], env=env)
        check(d.returncode == 0, "dry run %s: %d %s" % (args, d.returncode, d.stderr))
        rows, rest = table_rows(d.stdout, np)
        out = probe_dir()
        r = smprun(args + [UNIQUE, "env-to", out], env=env)
        check(r.returncode == 0, "smprun %s: exit %d\n%s" % (args, r.returncode, r.stderr))
        seen = parse_probe(out, np)
        want_host = host_table(slots, np, pp, tp, letters)
        master_port = seen[0]["env"].get("MASTER_PORT")
        for rank, got in seen.items():
            e = got["env"]
            host = want_host[rank]
            local = want_host[:rank].count(host)
            nlocal = want_host.count(host)
            want = {"SMP_RANK": rank, "SMP_SIZE": np, "SMP_LOCAL_RANK": local, "SMP_LOCAL_SIZE": nlocal,
                    "SMP_PLACEMENT": letters, "SMP_DEVICE": -1, "RANK": rank, "WORLD_SIZE": np,
                    "LOCAL_RANK": local, "LOCAL_WORLD_SIZE": nlocal, "SMP_FORWARD_PROBE": "yes",
                    "MASTER_ADDR": "smp-h1", "MASTER_PORT": master_port,
                    "PYTHONPATH": env["PYTHONPATH"], "LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"],
                    "PATH": env["PATH"], "NCCL_SOCKET_IFNAME": "lo", "GLOO_SOCKET_IFNAME": "lo",
                    "SMP_TIMEOUT": env["SMP_TIMEOUT"]}
            for name in FIXED:
                want["SMP_%s_RANK" % name], want["SMP_%s_SIZE" % name] = group(rank, np, pp, tp, letters, name)
            want = {k: str(v) for k, v in want.items()}
            have = {k: v for k, v in e.items() if k in want or k.startswith("SMP_") and k != "SMP_HANG_REPORT"}
            # Open MPI's daemon puts its own bin/ and lib/ first on the path
            # it hands on (mpirun --prefix): ours must follow whole.
            for k in ("PATH", "LD_LIBRARY_PATH"):
                if have.get(k, "").endswith(":" + want[k]):
                    have[k] = want[k]
            check(have == want, "rank %d of %s:\n got  %s\n want %s" % (rank, args, sorted(have.items()),
                                                                       sorted(want.items())))
            check(got["host"] == host, "rank %d ran on %s, want %s" % (rank, got["host"], host))
            check(got["cpus"] == cpus, "rank %d bound to %s without GPUs (want unbound)" % (rank, got["cpus"]))
            pp_, tp_, rdp_ = coords(rank, np, pp, tp, letters)
            row = rows[rank]
            check(row[:6] == [str(rank), host, "%d/%d" % (local, nlocal), str(pp_), str(tp_), str(rdp_)],
                  "table row %d: %s" % (rank, row))
        check(master_port and 0 < int(master_port) < 65536, "MASTER_PORT=%r" % master_port)
        # TP groups: inside a host unless the placement spreads them.
        tp_hosts = {}
        for rank in range(np):
            pp_, _, rdp_ = coords(rank, np, pp, tp, letters)
            tp_hosts.setdefault((pp_, rdp_), set()).add(seen[rank]["host"])
        split = sum(len(h) > 1 for h in tp_hosts.values())
        # Every layout here can keep its TP groups inside hosts: cluster
        # by slots, spread round-robin.
        check(split == 0, "%s: TP groups across hosts: %s" % (placement, tp_hosts))
        note = [l for l in rest if "TP group(s) span hosts" in l]
        check(bool(note) == (split > 0) and (not note or note[0].startswith("(%d TP group" % split)),
              "%d TP groups span hosts; the table says %r" % (split, note))
        print("ok  %s: %s" % (" ".join(args[:8]), " ".join("%d@%s" % (r, seen[r]["host"]) for r in range(np))))
    # --oversubscribe: 8 ranks on 6 slots, spread as the table says.
    args = ["-np", "8", "--hostfile", hf, "--iface", "lo", "--oversubscribe", "-x", "CUDA_VISIBLE_DEVICES"]
    d = smprun(args + ["--dry-run", UNIQUE, "env"])
    rows, _ = table_rows(d.stdout, 8)
    out = probe_dir()
    r = smprun(args + [UNIQUE, "env-to", out])
    check(r.returncode == 0, "--oversubscribe: exit %d %s" % (r.returncode, r.stderr))
    seen = parse_probe(out, 8)
    for rank in range(8):
        e = seen[rank]["env"]
        check([seen[rank]["host"], "%s/%s" % (e["SMP_LOCAL_RANK"], e["SMP_LOCAL_SIZE"])] == rows[rank][1:3],
              "--oversubscribe rank %d: %s %s/%s, table %s" % (rank, seen[rank]["host"], e["SMP_LOCAL_RANK"],
                                                               e["SMP_LOCAL_SIZE"], rows[rank]))
    check(sorted(seen[r]["host"] for r in range(8)).count("smp-h1") == 3, "8 on 2+2+2 slots: not 3,3,2")
    print("ok  -np 8 on 3 x 2 slots --oversubscribe: %s" % " ".join(seen[r]["host"] for r in range(8)))


def case_badinput():
    hf = hosts_up(3, 2)
    marker = os.path.join(TMP, "launched")
    prog = [UNIQUE, "marker", marker]
    hosts("kill", "smp-h3")
    bad_hf = os.path.join(TMP, "bad-hostfile")
    with open(bad_hf, "w") as f:
        f.write("smp-h1 slots=2\nsmp-h2 slots=two\n")
    entry = os.path.join(os.path.dirname(A.smprun), "smprun-rank")
    # smp-h2 without smprun-rank: an empty directory over the launcher's,
    # in smp-h2's mounts alone.
    hosts("exec", "smp-h2", "mount", "-t", "tmpfs", "none", os.path.dirname(entry))
    cases = [
        (["-np", "4", "-H", "smp-h1:2,smp-h3:2"] + prog, ["smp-h3", "unreachable"]),
        (["-np", "4", "-H", "smp-h1:2,smp-h2:2"] + prog, ["smp-h2", "no smprun-rank"]),
        (["-np", "7", "--hostfile", hf] + prog, ["7 ranks", "6 slots", "smp-h1:2", "--oversubscribe"]),
        (["-np", "2", "--hostfile", bad_hf] + prog, ["line 2", "smp-h2", "slots=two"]),
        (["-np", "2", "-H", "smp-h1:1,no-such-host.invalid:1"] + prog, ["no-such-host.invalid", "unreachable"]),
        (["-np", "1", "-H", "smp-h1:1", os.path.join(TMP, "no-such-program")], ["smp-h1", "no program"]),
        (["-np", "1", "-H", "smp-h1:1", "./no-such-program"], ["smp-h1", "no program './no-such-program'"]),
    ]
    for args, words in cases:
        t0 = time.time()
        r = smprun(args)
        took = time.time() - t0
        lines = r.stderr.splitlines()
        check(r.returncode == 2, "%s: exit %d, want 2\n%s" % (args, r.returncode, r.stderr))
        check(len(lines) == 1 and lines[0].startswith("smprun: "), "%s: stderr not one line: %r" % (args, r.stderr))
        for w in words:
            check(w in lines[0], "%s: %r does not mention %r" % (args, lines[0], w))
        check(r.stdout == "" and not os.path.exists(marker), "%s launched something" % args)
        check(not leftovers(), "%s left processes" % args)
        print("ok  %-50s -> %s (%.1f s)" % (" ".join(args).replace(TMP, "$TMP")[:50], lines[0], took))
    hosts("exec", "smp-h2", "umount", os.path.dirname(entry))
    # A program named relative to this directory is found there on the
    # hosts too (Open MPI starts remote ranks in mpirun's directory).
    out = probe_dir()
    r = subprocess.run([A.smprun, "-np", "2", "-H", "smp-h1:1,smp-h2:1", "--iface", "lo", "./" + os.path.basename(UNIQUE),
                        "env-to", out], capture_output=True, text=True, timeout=120, env=ENV, cwd=TMP)
    check(r.returncode == 0, "relative program: exit %d %s" % (r.returncode, r.stderr))
    check(len(parse_probe(out, 2)) == 2, "relative program: not every rank ran")
    # The hosts are checked in parallel: two hosts that never answer cost
    # one wait, not two (ssh's ConnectTimeout=10 to a blackholed address
    # would show it; here a refused port answers at once, so time a host
    # that accepts and stays silent instead: a listener that never speaks).
    print("ok  bad input")


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


LOOP = """
import sys, time, numpy, smp
smp.init()
t = numpy.ones(1024, dtype=numpy.float32)
smp.allreduce(t)
print("ready", smp.rank(), flush=True)
while True:  # every rank in an allreduce with the others, all the time
    smp.allreduce(t)
    time.sleep(0.01)
"""


def case_lost():
    hf = hosts_up(2, 2)
    timeout = 5
    prog = os.path.join(TMP, "smpprobe-loop-%d.py" % os.getpid())  # pgrep -f finds it by TMP
    with open(prog, "w") as f:
        f.write(LOOP)
    p = subprocess.Popen([A.smprun, "-np", "4", "--hostfile", hf, "--iface", "lo", "--timeout", str(timeout),
                          A.python, prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                         start_new_session=True)
    try:
        read_ready(p, 4)
        t0 = time.time()
        hosts("kill", "smp-h2")
        rc = p.wait(timeout=60)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    err = p.stderr.read().decode()
    check(rc != 0, "smprun exited 0 after losing a host")
    check(took <= timeout + 5, "the job ended %.1f s after the host was lost (SMP_TIMEOUT %d + 5)" % (took, timeout))
    named = [l for l in err.splitlines() if l.startswith("smprun: lost host smp-h2 (ranks 2-3)")]
    check(len(named) == 1, "no single line names the lost host and its ranks:\n" + err)
    t1 = time.time()
    while leftovers() and time.time() - t1 < 5:
        time.sleep(0.1)
    check(not leftovers(), "ranks left on smp-h1: %s" % leftovers())
    print("ok  smp-h2 lost: smprun exit %d after %.2f s: %s" % (rc, took, named[0]))


def reference_losses(steps):
    sys.path.insert(0, os.path.dirname(os.path.abspath(A.example)))
    if A.pythonpath:
        sys.path.insert(0, A.pythonpath)
    import torch
    import train_gpt
    from gpt_model import GPTConfig, make_batch
    torch.set_num_threads(1)
    args = train_gpt.parse_args(TINY + ["--steps", str(steps)])
    cfg = GPTConfig(vocab=args.vocab, seq=args.seq, hidden=args.hidden, heads=args.heads, layers=args.layers)
    ref = train_gpt.train_reference(args, cfg, steps)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        untrained = train_gpt.loss_of(args, train_gpt.build(args, cfg),
                                      *make_batch(cfg, args.batch, steps - 1, args.seed)).item()
    check(abs(untrained - ref[-1]) > 1e-4 * abs(untrained), "training did not change the loss")
    return ref


def compare(name, got, ref, tol=1e-5):
    check(len(got) == len(ref), "%s: %d losses, want %d" % (name, len(got), len(ref)))
    worst = max(abs(x - y) / abs(y) for x, y in zip(got, ref))
    for i, (x, y) in enumerate(zip(got, ref)):
        print("  %s step %d  %.7f  one process %.7f" % (name, i, x, y))
    check(worst <= tol, "%s: losses differ from one process by %.2e > %g" % (name, worst, tol))
    print("ok  %s: %d steps within %.1e of one process" % (name, len(got), worst))


def gpt_cmd(steps, out, extra):
    return ["-x", "CUDA_VISIBLE_DEVICES", "-x", "OMP_NUM_THREADS=1", "--", A.python, A.example] + TINY + ["--steps", str(steps),
                                                                              "--losses-out", out] + extra


def losses(path):
    with open(path) as f:
        r = json.load(f)
    return r["first_step"], r["losses"]


def case_gpt():
    hf = hosts_up(2, 4)
    ref = reference_losses(5)
    layout = ["-np", "8", "--pp", "2", "--tp", "2", "--hostfile", hf, "--iface", "lo"]
    # Where the ranks really run: TP groups inside a host.
    out = probe_dir()
    r = smprun(layout + ["-x", "CUDA_VISIBLE_DEVICES", UNIQUE, "env-to", out])
    check(r.returncode == 0, "probe: %d %s" % (r.returncode, r.stderr))
    seen = parse_probe(out, 8)
    groups = {}
    for rank in range(8):
        pp, _, rdp = coords(rank, 8, 2, 2, "DPT")
        groups.setdefault((pp, rdp), set()).add(seen[rank]["host"])
    check(all(len(h) == 1 for h in groups.values()), "TP groups across hosts: %s" % groups)
    check({seen[r]["host"] for r in range(8)} == {"smp-h1", "smp-h2"}, "not on both hosts")
    print("ok  pp2 tp2 rdp2 on 2 hosts x 4: TP groups %s" % sorted((k, sorted(v)) for k, v in groups.items()))
    ck = os.path.join(TMP, "ckpt")
    out0, out1 = os.path.join(TMP, "l0.json"), os.path.join(TMP, "l1.json")
    t0 = time.time()
    r = smprun(layout + gpt_cmd(3, out0, ["--save", ck]), timeout=600)
    t_save = time.time() - t0
    check(r.returncode == 0, "2 hosts x 4: exit %d\n%s\n%s" % (r.returncode, r.stdout[-2000:], r.stderr[-3000:]))
    first, saved = losses(out0)
    check(first == 0, "first step %d" % first)
    compare("2 hosts x 4 ranks (2,2,2)", saved, ref[:3])
    one = os.path.join(TMP, "hostfile-1x4")
    with open(one, "w") as f:
        f.write("smp-h1 slots=4\n")
    t0 = time.time()
    r = smprun(["-np", "4", "--pp", "2", "--tp", "2", "--hostfile", one, "--iface", "lo"]
               + gpt_cmd(5, out1, ["--load", ck]), timeout=600)
    t_load = time.time() - t0
    check(r.returncode == 0, "1 host x 4: exit %d\n%s\n%s" % (r.returncode, r.stdout[-2000:], r.stderr[-3000:]))
    first, resumed = losses(out1)
    check(first == 3, "resumed at step %d, want 3" % first)
    compare("resumed on 1 host x 4 ranks (2,2,1)", resumed, ref[3:])
    print("ok  saved on 2 hosts x 4 in %.1f s, resumed on 1 host x 4 in %.1f s" % (t_save, t_load))


def case_slurm():
    hosts_up(2, 2)
    r = hosts("slurm", check_rc=False)
    if r.returncode == 77:
        raise Skip(r.stderr.strip())
    check(r.returncode == 0, "hosts.sh slurm: exit %d\n%s" % (r.returncode, r.stderr))
    m = re.search(r"^export SLURM_CONF=(\S+)$", r.stdout, re.M)
    check(m, "hosts.sh slurm printed %r" % r.stdout)
    env = dict(ENV, SLURM_CONF=m.group(1))
    ref = reference_losses(5)
    for launcher in ["mpirun", "srun"]:
        # spread (TPD) at tp 2: dealt round-robin over the 2 nodes (mpirun
        # --map-by node, srun --distribution=cyclic), TP groups {0,2} {1,3}
        # each on one node.
        out = probe_dir()
        p = subprocess.run(["salloc", "-n", "4", A.smprun, "--tp", "2", "--placement", "spread", "--launcher",
                            launcher, "--iface", "lo", "-x", "CUDA_VISIBLE_DEVICES", UNIQUE, "env-to", out],
                           capture_output=True, text=True, timeout=300, env=env)
        check(p.returncode == 0, "salloc smprun --placement spread --launcher %s: %d %s" % (
            launcher, p.returncode, p.stderr))
        seen = parse_probe(out, 4)
        want = host_table([("smp-h1", 2), ("smp-h2", 2)], 4, 1, 2, "TPD")
        check(want == ["smp-h1", "smp-h2", "smp-h1", "smp-h2"], "reference mapping %s" % want)
        for rank in range(4):
            e = seen[rank]["env"]
            _, tp_, rdp_ = coords(rank, 4, 1, 2, "TPD")
            have = [seen[rank]["host"], e["SMP_LOCAL_RANK"], e["SMP_TP_RANK"], e["SMP_RDP_RANK"]]
            check(have == [want[rank], str(rank // 2), str(tp_), str(rdp_)],
                  "salloc, spread, %s, rank %d: %s" % (launcher, rank, have))
        print("ok  salloc -n 4 --tp 2 --placement spread --launcher %s: %s" % (
            launcher, " ".join("%d@%s" % (r, seen[r]["host"]) for r in range(4))))
        flags = ["--pp", "2", "--tp", "2", "--launcher", launcher] + (["--iface", "lo"])
        # Hosts and slots come from the allocation: -np from salloc -n 4.
        out = probe_dir()
        p = subprocess.run(["salloc", "-n", "4", A.smprun] + flags + ["-x", "CUDA_VISIBLE_DEVICES", UNIQUE, "env-to",
                                                                       out],
                           capture_output=True, text=True, timeout=300, env=env)
        check(p.returncode == 0, "salloc smprun --launcher %s probe: %d %s" % (launcher, p.returncode, p.stderr))
        seen = parse_probe(out, 4)
        for rank in range(4):
            e, host = seen[rank]["env"], "smp-h%d" % (rank // 2 + 1)
            pp, tp, rdp = coords(rank, 4, 2, 2, "DPT")
            want = [host, str(rank % 2), "2", str(pp), str(tp), str(rdp), "smp-h1"]
            have = [seen[rank]["host"], e["SMP_LOCAL_RANK"], e["SMP_LOCAL_SIZE"], e["SMP_PP_RANK"],
                    e["SMP_TP_RANK"], e["SMP_RDP_RANK"], e["MASTER_ADDR"]]
            check(have == want, "salloc, %s, rank %d: %s, want %s" % (launcher, rank, have, want))
        out = os.path.join(TMP, "slurm-%s.json" % launcher)
        t0 = time.time()
        p = subprocess.run(["salloc", "-n", "4", A.smprun] + flags + gpt_cmd(5, out, []),
                           capture_output=True, text=True, timeout=600, env=env)
        check(p.returncode == 0, "salloc -n 4 smprun --launcher %s: %d\n%s\n%s" % (
            launcher, p.returncode, p.stdout[-2000:], p.stderr[-3000:]))
        compare("salloc -n 4, --launcher %s (2,2,1) on 2 Slurm nodes" % launcher, losses(out)[1], ref)
        print("ok  --launcher %s in %.1f s" % (launcher, time.time() - t0))


CASES = {"layout": case_layout, "badinput": case_badinput, "lost": case_lost, "gpt": case_gpt,
         "slurm": case_slurm}


def main():
    global A, TMP, ENV, UNIQUE
    p = argparse.ArgumentParser()
    p.add_argument("--smprun", required=True)
    p.add_argument("--probe", required=True)
    p.add_argument("--hosts-sh", required=True)
    p.add_argument("--example", default="")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--pythonpath", default="")
    p.add_argument("case", choices=sorted(CASES))
    A = p.parse_args()
    A.smprun = os.path.abspath(A.smprun)
    # meson's timeout sends SIGTERM: unwind, so that `finally` takes the hosts down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    why = subprocess.run([A.hosts_sh, "check"], capture_output=True, text=True)
    if why.returncode != 0:
        print("skipped: %s" % why.stderr.strip())
        return 77
    if A.case == "slurm" and not (shutil.which("salloc") and shutil.which("slurmctld")):
        print("skipped: Slurm (slurm-wlm) is not installed")
        return 77
    # Shared by every host (their /tmp is their own): /var/tmp.
    TMP = tempfile.mkdtemp(prefix="smp-multihost-", dir="/var/tmp")
    UNIQUE = os.path.join(TMP, "smpprobe-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000))
    shutil.copy(A.probe, UNIQUE)
    ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SMP_", "OMPI_", "PMIX_", "SLURM_",
                                                                      "MASTER_"))}
    ENV["CUDA_VISIBLE_DEVICES"] = ""
    ENV["PATH"] = "/usr/bin:/bin:" + ENV.get("PATH", "")
    if A.pythonpath:
        ENV["PYTHONPATH"] = A.pythonpath
    ENV["SMP_TIMEOUT"] = "120"  # forwarded to every host, as every SMP_* is
    try:
        CASES[A.case]()
        return 0
    except Skip as e:
        print("skipped: %s" % e)
        return 77
    except AssertionError as e:
        print("FAIL:", e)
        return 1
    finally:
        down = hosts("down", check_rc=False)
        for pid in leftovers():
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(TMP, ignore_errors=True)
        if down.returncode != 0:
            print("FAIL: hosts.sh down: %s" % down.stderr)
            sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
