"""smp.init's configuration keys (smp._config), without starting smp:
SageMaker's keys parse, and every bad key, value, contradiction with the
launcher's layout or unbuilt feature is an SmpError naming the key."""
import pytest

import smp
from smp import _config


def test_sagemaker_keys():
    c = _config.parse({"pipeline_parallel_degree": 2, "tensor_parallel_degree": 1,
                       "microbatches": 4, "pipeline": "simple", "placement_strategy": "spread",
                       "auto_partition": True, "default_partition": 0, "memory_weight": 0.2,
                       "ddp": True, "shard_optimizer_state": False, "optimize": "memory",
                       "prescaled_batch": True, "fp16": False, "bf16": False,
                       "offload_activations": False, "activation_loading_horizon": 4,
                       "delayed_parameter_initialization": False, "memory_limit_bytes": 1e9})
    assert (c.pipeline_parallel_degree, c.microbatches, c.pipeline) == (2, 4, "simple")
    assert c.placement_strategy == "TPD" and c.memory_weight == 0.2
    assert _config.parse({"placement_strategy": "pdt"}).placement_strategy == "PDT"
    assert _config.parse({"partitions": 3}).pipeline_parallel_degree == 3  # the old name
    v = _config.parse({"pipeline": "virtual"})
    assert v.chunks == 2
    assert _config.parse({"pipeline": "virtual", "chunks": 3}).chunks == 3
    assert _config.parse(None).pipeline == "interleaved"


@pytest.mark.parametrize("config, key", [
    ({"micro_batches": 2}, "micro_batches"),
    ({"microbatches": 0}, "microbatches"),
    ({"microbatches": 2.5}, "microbatches"),
    ({"pipeline": "1f1b"}, "pipeline"),
    ({"placement_strategy": "DPX"}, "placement_strategy"),
    ({"memory_weight": 1.5}, "memory_weight"),
    ({"memory_limit_bytes": -1}, "memory_limit_bytes"),
    ({"auto_partition": "yes"}, "auto_partition"),
    ({"auto_partition": False}, "default_partition"),
    ({"chunks": 2}, "chunks"),
    ({"microbatches": 2, "active_microbatches": 3}, "active_microbatches"),
    ({"pipeline": "simple", "active_microbatches": 1}, "active_microbatches"),
    ({"fp16": True, "bf16": True}, "bf16"),
    ({"fp16": 1}, "fp16"),
])
def test_bad_values(config, key):
    with pytest.raises(smp.SmpError, match=f"'{key}'") as e:
        _config.parse(config)
    assert e.value.status == smp.Status.INVALID_ARGUMENT


@pytest.mark.parametrize("config, key", [
    ({"horovod": True}, "horovod"),
    ({"sharded_data_parallel_degree": 2}, "sharded_data_parallel_degree"),
])
def test_not_built_yet(config, key):
    with pytest.raises(smp.SmpError, match=f"'{key}'.*not") as e:
        _config.parse(config)
    assert e.value.status == smp.Status.UNSUPPORTED


def test_zb_v_with_pinned_modules_is_refused_naming_why():
    with pytest.raises(smp.SmpError, match="'auto_partition'.*V.*pinned.*no chunk") as e:
        _config.parse({"pipeline": "zb-v", "auto_partition": False, "default_partition": 0})
    assert e.value.status == smp.Status.UNSUPPORTED


def test_zb_v_runs_two_chunks_through_the_front_end():
    assert _config.parse({"pipeline": "zb-v"}).chunks == 2
    assert _config.parse({"pipeline": "zb-v", "chunks": 2}).chunks == 2
    with pytest.raises(smp.SmpError, match="'chunks'.*2 chunks"):
        _config.parse({"pipeline": "zb-v", "chunks": 3})
    with pytest.raises(smp.SmpError, match="'microbatches'.*zb-v"):
        _config.check_layout(_config.parse({"pipeline": "zb-v", "microbatches": 1}), 2, 1)


def test_zb_h1_runs_through_the_front_end():
    c = _config.parse({"pipeline": "zb-h1", "microbatches": 4})
    assert (c.pipeline, c.microbatches, c.chunks) == ("zb-h1", 4, 1)
    _config.check_layout(c, 4, 1)
    with pytest.raises(smp.SmpError, match="'microbatches': 3 .* microbatches >= pp") as e:
        _config.check_layout(_config.parse({"pipeline": "zb-h1", "microbatches": 3}), 4, 1)
    assert e.value.status == smp.Status.INVALID_ARGUMENT
    _config.check_layout(_config.parse({"pipeline": "zb-h1", "microbatches": 1}), 1, 2)


def test_launcher_layout_wins(monkeypatch):
    monkeypatch.setenv("SMP_PP_SIZE", "2")
    monkeypatch.setenv("SMP_PLACEMENT", "DPT")
    assert _config.layout(_config.parse({"pipeline_parallel_degree": 2})) == (0, 0, None)
    with pytest.raises(smp.SmpError, match="'pipeline_parallel_degree': 4 contradicts"):
        _config.layout(_config.parse({"pipeline_parallel_degree": 4}))
    with pytest.raises(smp.SmpError, match="'placement_strategy'"):
        _config.layout(_config.parse({"placement_strategy": "spread"}))
    monkeypatch.delenv("SMP_PP_SIZE")
    monkeypatch.delenv("SMP_PLACEMENT")
    # Without a launcher's layout the keys set it.
    assert _config.layout(_config.parse({"pipeline_parallel_degree": 4,
                                         "placement_strategy": "spread"})) == (4, 0, "TPD")


def test_init_rejects_before_starting():
    with pytest.raises(smp.SmpError, match="unknown config key 'bogus'"):
        smp.init({"bogus": 1})
    assert not smp.is_initialized()
