"""Bad input through backend "smp" never hangs:

    python3 bad_input.py            drives both cases below under mpirun
    (mpirun ... bad_input.py mismatch | absent: one case, on every rank)

Open MPI's root / oversubscribe variables come from the environment (meson's
python_env, built from tests/meson.build's mpi_env_vars).

- mismatch: with SMP_CHECK=1, an all_reduce whose size differs across ranks
  raises on every rank, naming what differs; the group works afterwards.
- absent: the last rank never joins an all_reduce; init_process_group's
  timeout (3 s) ends the job, and the line names that rank.
"""
import datetime
import os
import subprocess
import sys
import time

TIMEOUT_S = 3


def mismatch():
    import torch
    import torch.distributed as dist
    import smp.distributed  # noqa: F401
    dist.init_process_group("smp")
    r, n = dist.get_rank(), dist.get_world_size()
    try:
        dist.all_reduce(torch.ones(4 + r))
        print(f"rank {r}: a mismatched all_reduce passed", flush=True)
        return 1
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        named = "smp backend: allreduce" in msg and "count" in msg
    t = torch.ones(3)
    dist.all_reduce(t)  # the group still works
    ok = named and t.tolist() == [float(n)] * 3
    print(f"rank {r}: {'OK' if ok else 'FAIL'}: {msg}", flush=True)
    return 0 if ok else 1


def absent():
    import torch
    import torch.distributed as dist
    import smp.distributed  # noqa: F401
    dist.init_process_group("smp", timeout=datetime.timedelta(seconds=TIMEOUT_S))
    r, n = dist.get_rank(), dist.get_world_size()
    if r == n - 1:
        time.sleep(60)  # never joins; the job ends before this does
        return 0
    dist.all_reduce(torch.ones(8))
    print(f"rank {r}: the all_reduce completed without rank {n - 1}", flush=True)
    return 1


def drive(np_):
    mpirun = ["mpirun", "-np", str(np_), "-x", "PYTHONPATH"]
    me = [sys.executable, os.path.abspath(__file__)]
    fails = 0

    p = subprocess.run(mpirun + ["-x", "SMP_CHECK=1"] + me + ["mismatch"],
                       capture_output=True, text=True, timeout=120)
    oks = p.stdout.count(": OK:")
    print(p.stdout.strip())
    if p.returncode != 0 or oks != np_:
        print(f"mismatch: FAIL (exit {p.returncode}, {oks}/{np_} ranks named it)\n{p.stderr[-3000:]}")
        fails += 1

    t0 = time.time()
    p = subprocess.run(mpirun + me + ["absent"], capture_output=True, text=True,
                       timeout=120)
    took = time.time() - t0
    out = p.stdout + p.stderr
    line = next((l for l in out.splitlines() if "not arrived" in l), "")
    print(f"absent: exit {p.returncode} after {took:.1f} s: {line}")
    if p.returncode == 0 or f"not arrived: rank {np_ - 1}" not in line or took > TIMEOUT_S + 25:
        print(f"absent: FAIL\n{out[-3000:]}")
        fails += 1
    return 1 if fails else 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit({"mismatch": mismatch, "absent": absent}[sys.argv[1]]())
    sys.exit(drive(int(os.environ.get("NP", "3"))))
