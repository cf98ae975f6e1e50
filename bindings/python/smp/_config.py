"""smp.init's configuration: SageMaker model parallelism's keys (plus smp's
own), checked before the runtime starts, so a bad key fails on every rank
alike with an SmpError that names it.

The layout belongs to the launcher: smprun's --pp / --tp / --placement (the
SMP_PP_SIZE, SMP_TP_SIZE, SMP_PLACEMENT variables) win, and a key that
contradicts them is an error. Without them (plain mpirun, one process) the
keys set the layout.
"""

import os
from dataclasses import dataclass
from typing import Optional

from ._errors import SmpError

_INVALID = -1  # smp.Status.INVALID_ARGUMENT
_UNSUPPORTED = -3

SCHEDULES = ("simple", "interleaved", "virtual", "zb-h1", "zb-v")
# zb-v's two chunks per stage are automatic partitioning's segments placed
# in a V; pinned modules (auto_partition False) have a stage, not a chunk.
_ZB_V_PINNED = ("needs automatic partitioning: zb-v places two segments per stage in a V "
                "(chunk 1 of stage s is virtual stage 2 * pp - 1 - s), and modules pinned "
                "with default_partition / smp.partition have a stage but no chunk")


@dataclass
class Config:
    pipeline_parallel_degree: Optional[int] = None
    tensor_parallel_degree: Optional[int] = None
    placement_strategy: Optional[str] = None
    microbatches: int = 1
    pipeline: str = "interleaved"
    chunks: int = 1
    auto_partition: bool = True
    default_partition: Optional[int] = None
    memory_weight: float = 0.8  # SageMaker 1.12's code default
    memory_limit_bytes: Optional[float] = None
    active_microbatches: Optional[int] = None
    ddp: bool = False
    shard_optimizer_state: bool = False
    optimize: str = "speed"
    prescaled_batch: bool = False
    skip_tracing: bool = False
    activation_loading_horizon: int = 4
    fp16: bool = False
    bf16: bool = False
    offload_activations: bool = False
    delayed_parameter_initialization: bool = False


def _fail(key, why, status=_INVALID):
    raise SmpError(status, f"smp.init: config key '{key}': {why}")


def _bool(key, v):
    if not isinstance(v, bool):
        _fail(key, f"must be True or False, not {v!r}")
    return v


def _int(key, v, lo=1):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        _fail(key, f"must be an integer >= {lo}, not {v!r}")
    return v


def _not_built(key, v, off):
    if v != off or type(v) is not type(off):
        _fail(key, f"{v!r} is not supported yet (this smp does not build that feature)",
              _UNSUPPORTED)


def _placement(key, v):
    names = {"cluster": "DPT", "spread": "TPD"}
    s = names.get(v, v) if isinstance(v, str) else None
    if s is None or sorted(s.upper()) != ["D", "P", "T"]:
        _fail(key, f"must be 'cluster', 'spread' or a permutation of D, P, T, not {v!r}")
    return s.upper()


def parse(config):
    """A Config from a dict of SageMaker keys (None = all defaults)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise SmpError(_INVALID, f"smp.init: config must be a dict, not {type(config).__name__}")
    c = Config()
    for key, v in config.items():
        if key in ("pipeline_parallel_degree", "partitions"):
            c.pipeline_parallel_degree = _int(key, v)
        elif key == "tensor_parallel_degree":
            c.tensor_parallel_degree = _int(key, v)
        elif key == "placement_strategy":
            c.placement_strategy = _placement(key, v)
        elif key == "microbatches":
            c.microbatches = _int(key, v)
        elif key == "pipeline":
            if v not in SCHEDULES:
                _fail(key, f"must be one of {', '.join(SCHEDULES)}, not {v!r}")
            c.pipeline = v
        elif key == "chunks":
            c.chunks = _int(key, v)
        elif key == "auto_partition":
            c.auto_partition = _bool(key, v)
        elif key == "default_partition":
            c.default_partition = None if v is None else _int(key, v, lo=0)
        elif key == "memory_weight":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                _fail(key, f"must be a number in [0, 1], not {v!r}")
            c.memory_weight = float(v)
        elif key == "memory_limit_bytes":
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not v > 0):
                _fail(key, f"must be a number of bytes > 0 (or None), not {v!r}")
            c.memory_limit_bytes = None if v is None else float(v)
        elif key == "active_microbatches":
            c.active_microbatches = _int(key, v)
        elif key in ("ddp", "prescaled_batch", "skip_tracing"):
            setattr(c, key, _bool(key, v))
        elif key == "shard_optimizer_state":
            c.shard_optimizer_state = _bool(key, v)
        elif key == "optimize":
            if v not in ("speed", "memory"):
                _fail(key, f"must be 'speed' or 'memory', not {v!r}")
            c.optimize = v
        elif key == "ddp_dist_backend":
            if not isinstance(v, str):
                _fail(key, f"must be a string, not {v!r}")
        elif key == "activation_loading_horizon":
            c.activation_loading_horizon = _int(key, v)
        elif key in ("fp16", "bf16", "offload_activations", "delayed_parameter_initialization"):
            setattr(c, key, _bool(key, v))
        elif key == "horovod":
            _not_built(key, _bool(key, v), False)
        elif key == "sharded_data_parallel_degree":
            _not_built(key, _int(key, v), 1)
        else:
            raise SmpError(_INVALID, f"smp.init: unknown config key '{key}'")
    if c.pipeline == "zb-v":
        if "chunks" in config and c.chunks != 2:
            _fail("chunks", f"pipeline 'zb-v' runs 2 chunks per stage, not {c.chunks}")
        c.chunks = 2
        if not c.auto_partition:
            _fail("auto_partition", f"False with pipeline 'zb-v': zb-v {_ZB_V_PINNED}",
                  _UNSUPPORTED)
    elif c.chunks > 1 and c.pipeline != "virtual":
        _fail("chunks", f"{c.chunks} chunks per stage need pipeline 'virtual', not "
                        f"'{c.pipeline}'")
    if c.pipeline == "virtual" and "chunks" not in config:
        c.chunks = 2
    if c.active_microbatches is not None:
        if c.pipeline != "interleaved":
            _fail("active_microbatches", f"applies to pipeline 'interleaved', not "
                                         f"'{c.pipeline}'")
        if c.active_microbatches > c.microbatches:
            _fail("active_microbatches", f"{c.active_microbatches} is more than the "
                                         f"{c.microbatches} microbatches")
    if c.fp16 and c.bf16:
        _fail("bf16", "fp16 and bf16 are both set; choose one")
    if not c.auto_partition and c.default_partition is None:
        _fail("default_partition", "is required when auto_partition is False")
    return c


def layout(c):
    """(pp, tp, placement) for the runtime: the launcher's where set (a key
    that contradicts it is an error), else the config's (0/None = the
    runtime's default)."""
    out = []
    for key, var, want in (("pipeline_parallel_degree", "SMP_PP_SIZE", c.pipeline_parallel_degree),
                           ("tensor_parallel_degree", "SMP_TP_SIZE", c.tensor_parallel_degree),
                           ("placement_strategy", "SMP_PLACEMENT", c.placement_strategy)):
        env = os.environ.get(var)
        if env is not None and want is not None:
            have = env.upper() if var == "SMP_PLACEMENT" else _env_int(var, env)
            if have != want:
                _fail(key, f"{want} contradicts the launcher's layout ({var}={env}); the "
                           "launcher's flags (smprun --pp/--tp/--placement) set the layout")
        out.append(want if env is None else None)
    pp, tp, placement = out
    return pp or 0, tp or 0, placement


def _env_int(var, s):
    try:
        return int(s)
    except ValueError:
        raise SmpError(_INVALID, f"smp.init: {var}={s!r} is not an integer") from None


def check_layout(c, pp, tp):
    """After the runtime started: checks that need the layout."""
    if c.default_partition is not None and c.default_partition >= pp:
        _fail("default_partition", f"{c.default_partition} is not a pipeline stage (pp = {pp})")
    if c.pipeline in ("zb-h1", "zb-v") and pp > 1 and c.microbatches < pp:
        _fail("microbatches", f"{c.microbatches} microbatches are too few for pipeline "
                              f"'{c.pipeline}' over {pp} stages (it needs microbatches >= pp)")
