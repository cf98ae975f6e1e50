#!/usr/bin/env python3
"""A local_shape whose element count does not fit in 64 bits is refused by
the checkpoint binding with one clear SmpError (INVALID_ARGUMENT), never
wrapped: 2^32 x 2^32 used to count as 0 elements, so an empty tensor was
taken for that box, and a 5-element one was told "expected 0"."""
import sys

import numpy as np

import smp


def expect_overflow(ck, tensor, local_shape):
    n = len(local_shape)
    try:
        ck.add("w", tensor, list(local_shape), [0] * n, list(local_shape), 0, 0, 0)
    except smp.SmpError as e:
        msg = str(e)
        assert e.status == smp.Status.INVALID_ARGUMENT, (e.status, msg)
        assert "local_shape" in msg and "more elements than" in msg and "'w'" in msg, msg
        assert "\n" not in msg, msg
        return msg
    raise AssertionError(f"local_shape {local_shape} with {tensor.size} elements was accepted")


def main():
    ck = smp._smp.Checkpoint()
    try:
        big = 2 ** 32
        print(expect_overflow(ck, np.zeros(0, np.float32), [big, big]))        # wraps to 0
        print(expect_overflow(ck, np.zeros(5, np.float32), [big, big]))        # was "expected 0"
        print(expect_overflow(ck, np.zeros(2, np.float32), [2 ** 63 + 1, 2]))  # wraps to 2
        print(expect_overflow(ck, np.zeros(1, np.float32), [2 ** 64 - 1, 2, 1]))
        # A zero extent makes the box empty however large the others are.
        try:
            ck.add("e", np.zeros(0, np.float32), [big, 0], [0, 0], [big, 0], 0, 0, 0)
        except smp.SmpError as e:
            assert "more elements than" not in str(e), e
        # A count that fits is no overflow (just the wrong size here).
        try:
            ck.add("m", np.zeros(3, np.float32), [2 ** 62, 2], [0, 0], [2 ** 62, 2], 0, 0, 0)
            raise AssertionError("a 3-element tensor was taken for 2^63 elements")
        except smp.SmpError as e:
            assert "expected %d" % 2 ** 63 in str(e), e
    finally:
        ck.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
