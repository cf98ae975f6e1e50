"""Before smp.init (one process, no launcher): calls fail with
NOT_INITIALIZED; init then works and makes a world of one."""
import pytest
import torch

import smp


def test_before_init_and_world_of_one():
    assert not smp.is_initialized()
    with pytest.raises(smp.SmpError) as e:
        smp.allreduce(torch.zeros(2))
    assert e.value.status == smp.Status.NOT_INITIALIZED
    for call in (smp.rank, smp.local_rank, smp.local_size, smp.device):
        with pytest.raises(smp.SmpError) as e:
            call()
        assert e.value.status == smp.Status.NOT_INITIALIZED, call
    smp.init()
    try:
        assert smp.is_initialized() and smp.size() == 1 and smp.rank() == 0
        assert smp.local_rank() == 0 and smp.local_size() == 1
        with pytest.raises(smp.SmpError):
            smp.init()  # twice is an error
        t = torch.arange(3.0)
        smp.allreduce(t, op=smp.AVG)
        assert t.tolist() == [0.0, 1.0, 2.0]
        assert smp.version()[:2] == (0, 1)
    finally:
        smp.finalize()
    assert not smp.is_initialized()
