"""smp's Python enums against smp.h itself: the header's text is parsed here,
independently of the extension's table, so a value renumbered in smp.h
or mistyped in bindings/python/src/enums.cc fails."""
import os
import re

import smp
from smp import _smp

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "smp", "smp.h")


def c_enum(type_name):
    """{NAME: value} of the C enum `type_name`, implicit values counted as C does."""
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    body = re.search(r"typedef enum\s*\{([^}]*)\}\s*" + type_name + r"\s*;", text).group(1)
    values, nxt = {}, 0
    for item in filter(None, (x.strip() for x in body.split(","))):
        name, _, value = (p.strip() for p in item.partition("="))
        nxt = int(value) if value else nxt
        values[name] = nxt
        nxt += 1
    return values


def test_status_group_op_match_the_header():
    status = c_enum("smp_status_t")
    assert {m.name: int(m) for m in smp.Status} == {
        k.replace("SMP_ERR_", "").replace("SMP_", ""): v for k, v in status.items()}
    group = c_enum("smp_group_t")
    assert {m.name: int(m) for m in smp.Group} == {
        k.replace("SMP_", "").replace("_GROUP", ""): v for k, v in group.items()}
    op = c_enum("smp_op_t")
    assert {m.name: int(m) for m in smp.Op} == {k.replace("SMP_", ""): v for k, v in op.items()}
    assert smp.SUM == op["SMP_SUM"] and smp.RDP_GROUP == group["SMP_RDP_GROUP"]


def test_dtype_schedule_pipe_op_tables_match_the_header():
    dtypes = {k.replace("SMP_", "").lower(): v for k, v in c_enum("smp_dtype_t").items()}
    assert _smp.ENUMS["DType"] == dtypes
    schedules = {k.replace("SMP_SCHEDULE_", "").lower().replace("_", "-"): v
                 for k, v in c_enum("smp_schedule_t").items()}
    assert _smp.ENUMS["Schedule"] == schedules
    kinds = {k.replace("SMP_PIPE_", ""): v for k, v in c_enum("smp_pipe_op_kind_t").items()}
    assert _smp.ENUMS["PipeOp"] == kinds
