"""Runs under mpirun: every rank runs the same tests in the same order, so
the collectives match up. The `world` fixture starts smp once per process."""
import numpy as np
import pytest

import smp


@pytest.fixture(scope="session")
def world():
    smp.init()
    yield smp.rank(), smp.size()
    smp.barrier()
    smp.finalize()


def rank_data(rank, n, dtype, low=-5, high=6, salt=0):
    """Rank r's input, computable by every rank (the independent reference
    needs all ranks' inputs)."""
    rng = np.random.default_rng(1000 + 31 * rank + salt)
    return rng.integers(low, high, n).astype(dtype)
