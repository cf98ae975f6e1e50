"""Bad arguments raise smp.SmpError with a status and a message, before
anything is communicated (so the ranks stay in step)."""
import numpy as np
import pytest
import torch

import smp


def raises(status, fn, match=None):
    with pytest.raises(smp.SmpError) as e:
        fn()
    assert e.value.status == status
    if match:
        assert match in str(e.value)
    return e.value


def test_non_contiguous(world):
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce(torch.zeros(4, 4).t()),
           "not contiguous")
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce(np.zeros((4, 4))[:, 1]),
           "not C-contiguous")


def test_unsupported_dtype_and_object(world):
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce(torch.zeros(3, dtype=torch.complex64)),
           "unsupported dtype")
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce(np.zeros(3, np.complex64)),
           "unsupported buffer format")
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce([1.0, 2.0]), "expected a tensor")


def test_read_only_output(world):
    a = np.zeros(3, np.float32)
    a.flags.writeable = False
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.broadcast(a), "read-only")
    # ... but a read-only input is fine.
    rank, size = world
    out = np.zeros(3 * size, np.float32)
    smp.allgather(a, out)


def test_size_and_dtype_mismatch(world):
    rank, size = world
    raises(smp.Status.INVALID_ARGUMENT,
           lambda: smp.allgather(torch.zeros(3), torch.zeros(3 * size + 1)), "expected group size")
    raises(smp.Status.INVALID_ARGUMENT,
           lambda: smp.reduce_scatter(torch.zeros(2 * size + 1), torch.zeros(2)), "elements")
    raises(smp.Status.INVALID_ARGUMENT,
           lambda: smp.allgather(torch.zeros(3), torch.zeros(3 * size, dtype=torch.float64)),
           "float32 but output is float64")


def test_bad_root_peer_group_op(world):
    rank, size = world
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.broadcast(torch.zeros(2), root=size))
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.send(torch.zeros(2), size + 3))
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.barrier(group=42))
    raises(smp.Status.INVALID_ARGUMENT, lambda: smp.allreduce(torch.zeros(2), op=17))
    e = raises(smp.Status.INVALID_ARGUMENT, lambda: smp.send(torch.zeros(2), 0, tag=-1))
    assert e.message  # the C library's smp_last_error(), in words


def test_zero_copy(world):
    t = torch.arange(6, dtype=torch.float32)[2:]
    ptr, count, dtype, cuda, dev = smp._smp.view_info(t, True, None)
    assert (ptr, count, dtype, cuda, dev) == (t.data_ptr(), 4, 0, False, -1)
    a = np.arange(6, dtype=np.int64)[1:]
    ptr, count, dtype, cuda, _ = smp._smp.view_info(a, False, None)
    assert (ptr, count, dtype, cuda) == (a.ctypes.data, 5, 7, False)
    b = torch.zeros(2, dtype=torch.bfloat16)
    assert smp._smp.view_info(b, True, None)[2] == 3
