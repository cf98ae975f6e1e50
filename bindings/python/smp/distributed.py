"""torch.distributed's backend "smp".

    import smp.distributed                      # registers the backend
    torch.distributed.init_process_group("smp")  # under smprun: no arguments

Every process group of this backend runs on an smp group: the default
group on smp's WORLD, `new_group(ranks)` on a group made by
`smp_group_create` over exactly those ranks, and smp's own groups are
handed out as process groups (`smp.get_tp_process_group()` and the rest),
over the same communicators as smp's C API, with no second rendezvous.
CPU tensors of every dtype move (reductions: smp's dtypes, bool with
MIN/MAX, complex with SUM/AVG); every ReduceOp but the bitwise ones.

Rendezvous: torch's env:// needs RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT. smprun exports them; under a plain mpirun, importing this
module fills in those missing, from smp itself (it starts smp for that,
and a later smp.init(config) carries on with the same world).

Timeouts: the `timeout` of init_process_group / new_group becomes smp's
hang timeout for that group's operations (smp_group_set_timeout), unless
SMP_TIMEOUT asks for a shorter one: a hung operation then ends the job
with SMP_TIMEOUT's line naming the ranks that have not arrived.
"""
import datetime as _datetime
import os as _os
import socket as _socket

import numpy as _np
import torch.distributed as _dist
from torch.distributed import distributed_c10d as _c10d

import smp as _smp

try:
    from . import _torch
except ImportError as _e:  # built without torch (meson -Dtorch)
    raise ImportError(
        "smp.distributed: this smp was built without the torch backend "
        f"(smp._torch: {_e}); rebuild with torch 1.x importable by meson's python") from _e

__all__ = [
    "get_world_process_group", "get_pp_process_group", "get_tp_process_group",
    "get_dp_process_group", "get_rdp_process_group", "get_mp_process_group",
]

BACKEND = "smp"


def _start_smp():
    if not _smp.is_initialized():
        _smp.init()
        _smp._state["implicit_init"] = True  # smp.init(config) may follow


def _smp_timeout():
    try:
        return float(_os.environ.get("SMP_TIMEOUT", "0") or 0)
    except ValueError:
        return 0.0  # smp.init has already refused it


def _set_timeout(group, timeout):
    seconds = timeout.total_seconds() if isinstance(timeout, _datetime.timedelta) else float(timeout)
    env = _smp_timeout()
    if env > 0 and (seconds <= 0 or env < seconds):
        seconds = env
    _torch.group_set_timeout(int(group), seconds)


def _create(options, pg_options):
    """torch's creator for backend "smp" (extended API): runs on the
    members of the new group only."""
    if pg_options is not None:
        raise RuntimeError("smp backend: init_process_group/new_group: pg_options are not supported")
    _start_smp()
    ranks = list(options.global_ranks_in_group)
    if not ranks:  # the default group: smp's world
        if options.group_size != _smp.size() or options.group_rank != _smp.rank():
            raise RuntimeError(
                f"smp backend: init_process_group: rank {options.group_rank} of "
                f"{options.group_size} is not smp's (rank {_smp.rank()} of {_smp.size()}): "
                "start the job with smprun or mpirun, and leave rank and world_size unset")
        group, owned = int(_smp.WORLD), False
    else:
        group, owned = _torch.group_create([int(r) for r in ranks]), True
    _set_timeout(group, options.timeout)
    return _torch.process_group(group, owned)


def _fill_rendezvous_env():
    """The env:// rendezvous' variables smprun sets, for a job started
    another way (mpirun, or no launcher: a world of one)."""
    env = _os.environ
    need = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in env]
    if not need:
        return
    _start_smp()
    env.setdefault("RANK", str(_smp.rank()))
    env.setdefault("WORLD_SIZE", str(_smp.size()))
    if "MASTER_ADDR" in env and "MASTER_PORT" in env:
        return
    # Rank 0 picks a free port on its host; everyone learns it and the host.
    msg = _np.zeros(258, dtype=_np.uint8)
    if _smp.rank() == 0:
        with _socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        host = "127.0.0.1" if _smp.local_size() == _smp.size() else _socket.gethostname()
        msg[0], msg[1] = port >> 8, port & 0xFF
        raw = host.encode()[:256]
        msg[2:2 + len(raw)] = _np.frombuffer(raw, dtype=_np.uint8)
    _smp.broadcast(msg, 0)
    env.setdefault("MASTER_PORT", str(int(msg[0]) << 8 | int(msg[1])))
    env.setdefault("MASTER_ADDR", bytes(msg[2:]).rstrip(b"\0").decode())


# ---- smp's groups as process groups ------------------------------------

_layout_groups = {}  # smp group -> ProcessGroup


def _members_by_group():
    """For every layout group: this rank's group's world ranks, in group
    rank order. One allgather over WORLD of every rank's coordinates."""
    mine = _np.array([_smp.rank(int(g)) for g in _smp.Group], dtype=_np.int64)
    every = _np.zeros(len(mine) * _smp.size(), dtype=_np.int64)
    _smp.allgather(mine, every)
    every = every.reshape(_smp.size(), len(mine))
    keys = {  # the coordinates a group's members share (DESIGN.md's layout)
        _smp.WORLD: (), _smp.PP_GROUP: ("tp", "rdp"), _smp.TP_GROUP: ("pp", "rdp"),
        _smp.DP_GROUP: ("pp",), _smp.RDP_GROUP: ("pp", "tp"), _smp.MP_GROUP: ("rdp",),
    }
    coord = {"pp": int(_smp.PP_GROUP), "tp": int(_smp.TP_GROUP), "rdp": int(_smp.RDP_GROUP)}
    # A rank's pp coordinate is its rank in its PP group, and so on.
    me = _smp.rank()
    out = {}
    for g, shared in keys.items():
        ranks = [r for r in range(_smp.size())
                 if all(every[r, coord[k]] == every[me, coord[k]] for k in shared)]
        out[g] = sorted(ranks, key=lambda r: every[r, int(g)])
    return out


def _layout_group(group):
    _start_smp()
    if not _dist.is_initialized():
        _dist.init_process_group(BACKEND)
    if group in _layout_groups:
        return _layout_groups[group]
    default = _c10d._get_default_group()
    if group == _smp.WORLD and _dist.get_backend(default) == BACKEND:
        _layout_groups[group] = default
        return default
    members = _members_by_group()  # collective over WORLD: every rank gets here together
    for g, ranks in members.items():
        if g in _layout_groups:
            continue
        pg = _torch.process_group(int(g), False)
        _set_timeout(g, _c10d.default_pg_timeout)
        _c10d._pg_map[pg] = (BACKEND, None)
        _c10d._pg_names[pg] = f"smp_{g.name}"
        _c10d._pg_group_ranks[pg] = {w: i for i, w in enumerate(ranks)}
        _layout_groups[g] = pg
    return _layout_groups[group]


def get_world_process_group():
    """smp's WORLD as a torch.distributed ProcessGroup (the default group
    when it runs on backend "smp"). Initializes torch.distributed with
    backend "smp" if nothing has. The first call of any get_*_process_group
    is collective over the world."""
    return _layout_group(_smp.WORLD)


def get_pp_process_group():
    return _layout_group(_smp.PP_GROUP)


def get_tp_process_group():
    return _layout_group(_smp.TP_GROUP)


def get_dp_process_group():
    return _layout_group(_smp.DP_GROUP)


def get_rdp_process_group():
    return _layout_group(_smp.RDP_GROUP)


def get_mp_process_group():
    return _layout_group(_smp.MP_GROUP)


if BACKEND.upper() not in _dist.Backend._plugins:
    _dist.Backend.register_backend(BACKEND, _create, extended_api=True)
_fill_rendezvous_env()
