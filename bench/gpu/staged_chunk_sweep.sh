#!/usr/bin/env bash
# The staged collectives at several chunk sizes (SMP_STAGED_CHUNK_BYTES;
# "auto": unset, the 2 MiB default), 2 ranks on one GPU, each run side by
# side with the host collective: prints the staged/host busbw ratio per
# (collective, MiB) and chunk, and keeps the JSON lines in OUT_FILE.
#   bench/gpu/staged_chunk_sweep.sh BUILD_DIR OUT_FILE [CHUNK_BYTES...]
set -uo pipefail
build=$1 out=$2
shift 2
chunks=("$@")
[ $# -eq 0 ] && read -r -a chunks <<<"auto 1048576 524288 262144 131072"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
: >"$out"
for c in "${chunks[@]}"; do
  if [ "$c" = auto ]; then unset SMP_STAGED_CHUNK_BYTES; else export SMP_STAGED_CHUNK_BYTES=$c; fi
  timeout 60 mpirun -np 2 "$build/bench/gpu/gpu_staged_bench" --reps 10 2>/dev/null | grep '^{' >>"$out" ||
    echo "chunk $c: gpu_staged_bench failed" >&2
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
chunks = list(dict.fromkeys(r["chunk"] for r in rows))
cell = {(r["chunk"], r["collective"], r["MiB"], r["memory"]): r for r in rows}
print("staged/host busbw (copies: ms of the unoverlapped staging copies / host ms)")
print("| collective | MiB | " + " | ".join(chunks) + " | copies/host |")
print("|---|---|" + "---|" * (len(chunks) + 1))
for coll in ("allreduce", "reduce_scatter"):
    for mib in sorted({r["MiB"] for r in rows}):
        out = []
        for c in chunks:
            h, d = cell.get((c, coll, mib, "host")), cell.get((c, coll, mib, "cuda"))
            out.append(f"{d['busbw_GBps'] / h['busbw_GBps']:.2f}x" if h and d else "-")
        cp, h = cell.get((chunks[0], coll, mib, "copies")), cell.get((chunks[0], coll, mib, "host"))
        out.append(f"{cp['ms'] / h['ms']:.2f}" if cp and h else "-")
        print(f"| {coll} | {mib} | " + " | ".join(out) + " |")
PY
