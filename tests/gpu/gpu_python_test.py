"""CUDA torch tensors through the Python bindings, under mpirun with ranks
sharing one GPU (the staged backend): every collective, point-to-point and
the tensor transport, each equal to the same call on CPU tensors. Data are
small integers in every dtype (exact in all of them, so equality is bit for
bit whatever the order of terms), drawn fresh each run (the seed is
printed); CUDA outputs are poisoned first. Work is enqueued on a side
stream of PyTorch's, with the inputs written by kernels on that stream just
before the call and no synchronization in between, so the bindings must
pass PyTorch's current stream through. Exits 77 without a GPU (also when
the interpreter has no torch and no NVIDIA device node exists; with one,
a missing torch fails).

    mpirun -np N python3 gpu_python_test.py
"""
import faulthandler
import os
import sys

try:
    import torch
except ImportError:
    if os.path.exists("/dev/nvidia0"):
        raise
    print(f"gpu_python_test: {sys.executable} has no torch and there is no GPU: skipped")
    sys.exit(77)

if not torch.cuda.is_available():
    print("gpu_python_test: no GPU visible: skipped")
    sys.exit(77)

import smp  # noqa: E402

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16,
          torch.int32, torch.int64, torch.int8, torch.uint8]
OPS = {"sum": smp.SUM, "avg": smp.AVG, "max": smp.MAX, "min": smp.MIN, "prod": smp.PROD}
failures = []


TRACE = os.environ.get("GPU_PYTHON_TEST_TRACE") == "1"


def step(name):
    if TRACE:
        print(f"rank {smp.rank()}: {name}", file=sys.stderr, flush=True)


def check(name, got, want):
    got = got.cpu()
    if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
        bad = (got != want).nonzero()
        failures.append(f"{name}: {bad.numel()} elements differ, first at {bad[0].tolist() if bad.numel() else '-'}")


def data(gen, n, dtype, positive=False):
    low, high = (1, 3) if positive or dtype == torch.uint8 else (-3, 4)
    return torch.randint(low, high, (n,), generator=gen, dtype=torch.int64).to(dtype)


def poisoned(shape, dtype):
    """A CUDA tensor of all-ones bytes (NaN for floats, -1 or the maximum
    for integers), on the current stream."""
    t = torch.empty(shape, dtype=dtype, device="cuda")
    t.view(torch.uint8).fill_(0xff)
    return t


def on_side_stream(cpu, stream):
    """cpu's values on the GPU, written over poison by kernels on `stream`
    (enqueued, not waited for)."""
    with torch.cuda.stream(stream):
        t = poisoned(cpu.shape, cpu.dtype)
        t.copy_(cpu.to("cuda"))
        t.mul_(1)
    return t


def main():
    # A hang shows where it is (every thread's Python stack) before the
    # harness kills the job.
    faulthandler.dump_traceback_later(int(os.environ.get("GPU_PYTHON_TEST_DUMP_AFTER", "150")), exit=True)
    smp.init()
    rank, size = smp.rank(), smp.size()
    torch.cuda.set_device(0)
    seed = torch.randint(0, 2**62, (1,), dtype=torch.int64)
    smp.broadcast(seed, root=0)
    gen = torch.Generator().manual_seed(int(seed) + rank)
    side = torch.cuda.Stream()
    nxt, prev = (rank + 1) % size, (rank - 1) % size
    for dtype in DTYPES:
        for n in (1, 1000, 70001):
            tag = f"{dtype} n={n}"
            for name, op in OPS.items():
                step(f"allreduce {name} {tag}")
                x = data(gen, n, dtype, positive=name == "prod")
                want = smp.allreduce(x.clone(), op=op)
                with torch.cuda.stream(side):
                    got = smp.allreduce(on_side_stream(x, side), op=op)
                side.synchronize()
                check(f"allreduce {name} {tag}", got, want)

            step(f"reduce_scatter {tag}")
            x = data(gen, n * size, dtype)
            want = smp.reduce_scatter(x, torch.empty(n, dtype=dtype))
            with torch.cuda.stream(side):
                out = poisoned((n,), dtype)
                got = smp.reduce_scatter(on_side_stream(x, side), out)
            side.synchronize()
            check(f"reduce_scatter {tag}", got, want)

            step(f"allgather {tag}")
            x = data(gen, n, dtype)
            want = smp.allgather(x, torch.empty(n * size, dtype=dtype))
            with torch.cuda.stream(side):
                out = poisoned((n * size,), dtype)
                got = smp.allgather(on_side_stream(x, side), out)
            side.synchronize()
            check(f"allgather {tag}", got, want)

            step(f"broadcast {tag}")
            x = data(gen, n, dtype)
            want = smp.broadcast(x.clone(), root=size - 1)
            with torch.cuda.stream(side):
                got = smp.broadcast(on_side_stream(x, side), root=size - 1)
            side.synchronize()
            check(f"broadcast {tag}", got, want)

            # A ring, CUDA to CUDA: non-blocking send, blocking receive.
            step(f"ring {tag}")
            x = data(gen, n, dtype)
            want = torch.empty(n, dtype=dtype)
            req = smp.isend(x, nxt, tag=5)
            smp.recv_into(want, prev, tag=5)
            req.wait()
            with torch.cuda.stream(side):
                xd = on_side_stream(x, side)
                got = poisoned((n,), dtype)
                req = smp.isend(xd, nxt, tag=6)
                smp.recv_into(got, prev, tag=6)
                req.wait()
            side.synchronize()
            check(f"isend/recv_into ring {tag}", got, want)

            # The tensor transport: shape and dtype travel with the data;
            # a CUDA tensor goes out, and arrives into a CUDA buffer and as
            # a new (host) tensor.
            step(f"exchange_tensors {tag}")
            x = data(gen, n, dtype).reshape(1, n)
            xd = x.cuda()
            torch.cuda.synchronize()
            buf = poisoned((1, n), dtype)
            got_into = smp.exchange_tensors([(xd, nxt, 7)], [(buf, prev, 7)], smp.WORLD)[0]
            got_new = smp.exchange_tensors([(xd, nxt, 8)], [(None, prev, 8)], smp.WORLD)[0]
            want = smp.exchange_tensors([(x, nxt, 9)], [(None, prev, 9)], smp.WORLD)[0]
            torch.cuda.synchronize()
            check(f"exchange_tensors into CUDA {tag}", got_into, want)
            check(f"exchange_tensors new tensor {tag}", got_new, want)

    bad = torch.tensor([len(failures)], dtype=torch.int64)
    smp.allreduce(bad, op=smp.SUM)
    for f in failures[:20]:
        print(f"rank {rank}: FAIL {f} (seed {int(seed)})", file=sys.stderr)
    if rank == 0:
        print(f"gpu_python_test: {size} ranks, {int(bad)} failures (seed {int(seed)})")
    smp.finalize()
    return 0 if int(bad) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
