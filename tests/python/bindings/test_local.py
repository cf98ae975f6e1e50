"""Ranks on this host and the GPU each should use, against independent
references: Open MPI's own OMPI_COMM_WORLD_LOCAL_RANK / _LOCAL_SIZE (every
rank of these tests runs on this host), smprun's SMP_DEVICE when set, else
the local rank modulo torch's GPU count (-1 without a GPU); and smp.init()
made that GPU torch's current device."""
import os

import torch

import smp


def test_local_rank_size_and_device(world):
    rank, size = world
    assert smp.local_rank() == int(os.environ["OMPI_COMM_WORLD_LOCAL_RANK"])
    assert smp.local_size() == int(os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"])
    assert (smp.local_rank(), smp.local_size()) == (rank, size)  # one host
    if "SMP_LOCAL_RANK" in os.environ:  # smprun's table agrees with MPI
        assert smp.local_rank() == int(os.environ["SMP_LOCAL_RANK"])
        assert smp.local_size() == int(os.environ["SMP_LOCAL_SIZE"])
    n = torch.cuda.device_count()
    if "SMP_DEVICE" in os.environ:
        want = int(os.environ["SMP_DEVICE"])
    else:
        want = smp.local_rank() % n if n else -1
    assert smp.device() == want
    if want >= 0 and torch.cuda.is_available():
        assert torch.cuda.current_device() == want
