"""smp.loss_scaler's scalers and argument checks on their own (no MPI,
smp not initialized): hysteresis both ways, min_scale, scale_factor and
a state_dict round trip, against sequences worked out by hand from apex /
DeepSpeed's DynamicLossScaler."""
import pytest

import smp
from smp.loss_scaler import DynamicLossScaler, LossScaler, make_scaler


def run(scaler, overflows):
    out = []
    for o in overflows:
        scaler.update(o)
        out.append(scaler.loss_scale)
    return out


PATTERN = [True, False, True, True, False, False, False, False]


def test_hysteresis_restored_by_growth_only():
    s = DynamicLossScaler(init_scale=64.0, scale_window=4, delayed_shift=2)
    # 1st overflow spends the hysteresis; it is not restored by good steps,
    # so the next two overflows halve; growth 4 steps after the last one.
    assert run(s, PATTERN) == [64, 64, 32, 16, 16, 16, 16, 32]


def test_consecutive_hysteresis():
    s = DynamicLossScaler(init_scale=64.0, scale_window=4, delayed_shift=2,
                          consecutive_hysteresis=True)
    # A good step restores the hysteresis: only the second of two
    # consecutive overflows halves.
    assert run(s, PATTERN) == [64, 64, 64, 32, 32, 32, 32, 64]


def test_min_scale_and_factor():
    s = DynamicLossScaler(init_scale=64.0, scale_factor=4.0, min_scale=2.0, scale_window=2)
    assert run(s, [True, True, True, False, False]) == [16, 4, 2, 2, 8]


def test_growth_after_window_and_state_dict():
    s = make_scaler(None, True, {"init_scale": 8.0, "scale_window": 3})
    assert run(s, [False] * 7) == [8, 8, 16, 16, 16, 32, 32]
    t = make_scaler(1.0, True, None)
    t.load_state_dict(s.state_dict())
    assert (t.loss_scale, t.cur_iter, t.scale_window) == (32.0, 7, 3)
    assert run(t, [False, False]) == run(s, [False, False])
    with pytest.raises(smp.SmpError, match="static"):
        LossScaler(4.0).load_state_dict(s.state_dict())


def test_static():
    s = make_scaler(128, False, None)
    assert run(s, [True, False, True]) == [128, 128, 128]
    assert make_scaler(None, False, None).loss_scale == 1.0


@pytest.mark.parametrize("args,needle", [
    ((-1.0, False, None), "static_loss_scale"),
    ((0, False, None), "static_loss_scale"),
    ((float("inf"), False, None), "static_loss_scale"),
    ((True, False, None), "static_loss_scale"),
    ((1.0, "yes", None), "dynamic_loss_scale"),
    ((1.0, True, {"window": 3}), "'window'"),
    ((1.0, True, [("scale_window", 3)]), "must be a dict"),
    ((1.0, True, {"scale_factor": 1.0}), "scale_factor"),
    ((1.0, True, {"delayed_shift": 1.5}), "delayed_shift"),
    ((1.0, True, {"consecutive_hysteresis": 1}), "consecutive_hysteresis"),
    ((1.0, True, {"init_scale": -2.0}), "init_scale"),
])
def test_bad_arguments(args, needle):
    with pytest.raises(smp.SmpError) as e:
        make_scaler(*args)
    assert needle in str(e.value) and "\n" not in str(e.value)
