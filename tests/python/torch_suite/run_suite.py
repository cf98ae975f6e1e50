"""PyTorch's own distributed test suite (DistributedTest._DistTestBase from
Debian's torch, torch/testing/_internal/distributed/distributed_test.py)
run against a backend: "smp", or "gloo" as a check of this runner.

    mpirun -np N python3 run_suite.py smp|gloo [-k PATTERN]

How: PyTorch's TestDistBackend spawns its own processes and joins them
through a file:// store; smp's ranks come from mpirun. So the suite runs
here the way PyTorch once ran its MPI backend: one process per rank, every
test in-process, one init_process_group (env://, variables from smprun or
smp.distributed) for the whole run. Every rank runs the same tests in the
same order; after each test the ranks agree (through smp's own MPI
allgather, not the backend under test) on its outcome: passed only where
every rank passed, skipped only where every rank skipped.

Skips:
- the suite's own decorators (a GPU, NCCL, a named backend, a world size)
  keep their reason; a test that skips by exiting with one of TEST_SKIPS'
  codes (skip_if_lt_x_gpu, ...) is turned from SystemExit into a skip;
- SKIPS below lists, with the reason, each test this runner skips itself.
The report ends with one line per skip and its reason, and the counts.

To run DDP and subgroup tests the backend declares those features to the
suite (DistTestCases.backend_feature), as a plugin backend must: the suite
otherwise knows only gloo, nccl, ucc and mpi. No "gpu"/"cuda" feature is
declared: this backend runs CPU tensors.
"""
import os
import sys
import tempfile
import time
import traceback
import unittest

import numpy as np

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "smp"
PATTERN = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
os.environ["BACKEND"] = BACKEND
sys.argv[1:] = []  # torch's test utilities parse sys.argv when imported
os.environ.setdefault("INIT_METHOD", "env://")

import smp  # noqa: E402  (the runner's own bookkeeping goes over smp's MPI)

if not smp.is_initialized():
    smp.init()
if BACKEND == "smp":
    import smp.distributed  # noqa: E402,F401  registers "smp", fills RANK/MASTER_* if missing
else:
    # gloo: the same env:// variables, from smp (as smp.distributed does).
    import smp.distributed as _d  # noqa: E402
    _d._fill_rendezvous_env()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.testing._internal import common_distributed as cd  # noqa: E402
from torch.testing._internal.common_utils import TestCase as TorchTestCase  # noqa: E402

if BACKEND == "smp":
    for feature in ("ddp", "subgroup", "plugin"):
        cd.DistTestCases.backend_feature[feature].add("smp")

# distributed_test reads BACKEND, WORLD_SIZE and TEMP_DIR when imported
# and when its decorators run.
os.environ["WORLD_SIZE"] = str(smp.size())
_tmp = np.zeros(4096, dtype=np.uint8)
if smp.rank() == 0:
    name = tempfile.mkdtemp(prefix="smp-torch-suite-").encode()
    _tmp[:len(name)] = np.frombuffer(name, dtype=np.uint8)
    for sub in ("barrier", "test_dir", "init_dir"):
        os.mkdir(os.path.join(name.decode(), sub))
smp.broadcast(_tmp, 0)
os.environ["TEMP_DIR"] = bytes(_tmp).rstrip(b"\0").decode()

from torch.testing._internal.distributed import distributed_test as dt  # noqa: E402

# Tests this runner skips itself, with the reason. Everything else that the
# suite does not skip on its own must pass.
SKIPS = {
    # The suite's file-based Barrier polls the files of every process that
    # ever ran in TEMP_DIR; these create and destroy the default group.
    "test_barrier_timeout_global": "re-initializes the default group through file://",
    # These check ProcessGroupGloo/NCCL's own sequence numbers and debug
    # wrappers (TORCH_DISTRIBUTED_DEBUG), which a plugin has no part in.
    "test_get_backend": "asserts the backend name is gloo, nccl or mpi",
}
# Skips by the suite that name a backend for a capability smp has: the
# suite's gate dates from when only that backend had it on CPU. These tests
# run all the same (the reason is matched exactly).
RUN_ANYWAY = {
    "Only MPI supports CPU all_to_all_single",
    "Only MPI supports all_to_all",
}
# The same by name, where others with the same reason branch on the
# backend's name inside (the accumulate_gradients tests build no model for
# a backend they do not name).
RUN_ANYWAY_TESTS = {"test_get_future"}
# Prefixes of test names skipped the same way.
SKIP_PREFIXES = {
    # gloo only: they leave a rank out of a barrier on purpose, which breaks
    # gloo's connections for every later test of a process that lives on.
    "test_monitored_barrier": "leaves ranks out of a barrier on purpose; needs fresh processes per test",
}


class TestBackend(dt.DistributedTest._DistTestBase, TorchTestCase):
    rank = smp.rank()
    file_name = None

    @property
    def world_size(self):
        return os.environ["WORLD_SIZE"]

    @property
    def init_method(self):
        return "env://"

    def setUp(self):
        # The suite's file barrier starts afresh for every test (TestDistBackend
        # gives each test new processes and a new TEMP_DIR).
        super().setUp()
        smp.barrier()
        if smp.rank() == 0:
            dt.Barrier.init()
        dt.Barrier.barrier_id = 0
        smp.barrier()


SKIP_CODES = {s.exit_code: s.message for s in cd.TEST_SKIPS.values()}
OUTCOMES = ["pass", "skip", "fail"]


def run_one(name):
    """(outcome, reason) of one test on this rank."""
    test = TestBackend(name)
    if name in SKIPS:
        return "skip", "runner: " + SKIPS[name]
    for prefix, why in SKIP_PREFIXES.items():
        if name.startswith(prefix):
            return "skip", "runner: " + why
    method = getattr(test, name)
    if getattr(method, "__unittest_skip__", False) and not (
            BACKEND == "smp" and (method.__unittest_skip_why__ in RUN_ANYWAY
                                  or name in RUN_ANYWAY_TESTS)):
        return "skip", method.__unittest_skip_why__
    try:
        test.setUp()
        try:
            method()
        finally:
            test.tearDown()
        return "pass", ""
    except unittest.SkipTest as e:
        return "skip", str(e)
    except SystemExit as e:
        if e.code in SKIP_CODES:
            return "skip", SKIP_CODES[e.code]
        return "fail", f"SystemExit({e.code})"
    except Exception:  # noqa: BLE001 - a failed test, reported below
        return "fail", traceback.format_exc()


def agree(outcome):
    mine = np.array([OUTCOMES.index(outcome)], dtype=np.int64)
    every = np.zeros(smp.size(), dtype=np.int64)
    smp.allgather(mine, every)
    return [OUTCOMES[int(x)] for x in every]


def main():
    dist.init_process_group(BACKEND, timeout=__import__("datetime").timedelta(seconds=120))
    names = sorted(n for n in dir(TestBackend) if n.startswith("test_"))
    if PATTERN:
        names = [n for n in names if PATTERN in n]
    results = {}
    t0 = time.time()
    for name in names:
        start = time.time()
        outcome, why = run_one(name)
        every = agree(outcome)
        if all(o == "pass" for o in every):
            final = "pass"
        elif all(o == "skip" for o in every):
            final = "skip"
        else:
            final = "fail"
        results[name] = (final, why)
        if smp.rank() == 0 or outcome == "fail":
            detail = f" ({every})" if final == "fail" else ""
            print(f"[rank {smp.rank()}] {name}: {final}{detail} {time.time() - start:.1f}s",
                  flush=True)
            if outcome == "fail":
                print(why, flush=True)
    if smp.rank() == 0:
        counts = {o: sum(1 for f, _ in results.values() if f == o) for o in OUTCOMES}
        print("\nskipped:")
        for name, (final, why) in results.items():
            if final == "skip":
                print(f"  {name}: {why.strip().splitlines()[0] if why.strip() else '?'}")
        print(f"\n{BACKEND} on {smp.size()} ranks: {counts['pass']} passed, {counts['skip']} "
              f"skipped, {counts['fail']} failed, in {time.time() - t0:.0f} s")
    failed = any(f == "fail" for f, _ in results.values())
    dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    code = main()
    smp.finalize()
    sys.exit(code)
