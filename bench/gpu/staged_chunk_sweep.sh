#!/usr/bin/env bash
# The staged collectives under several configurations, 2 ranks on one GPU,
# each run side by side with the host collective: prints the staged/host
# busbw ratio per (collective, MiB) and configuration, and keeps the JSON
# lines in OUT_FILE, each tagged with "config" (the argument).
#   bench/gpu/staged_chunk_sweep.sh BUILD_DIR OUT_FILE [CONFIG...]
# A CONFIG is "auto" (the defaults), VAR=VALUE settings joined by commas
# (SMP_STAGED_RS_DEVICE_MIN_BYTES=0,SMP_STAGED_CHUNK_BYTES=262144), or a
# bare number, SMP_STAGED_CHUNK_BYTES=number (the old chunk sweep). Each
# run sees its own settings only: every variable some CONFIG names is unset
# first, so "auto" is the defaults even where the caller set one.
# SMP_CUDA_IPC and the rest of the environment stay as the caller set them.
set -uo pipefail
build=$1 out=$2
shift 2
configs=("$@")
[ $# -eq 0 ] && read -r -a configs <<<"auto 1048576 524288 262144 131072"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Each CONFIG as its VAR=VALUE list.
settings() {
  if [ "$1" = auto ]; then
    return 0
  elif [[ $1 =~ ^[0-9]+$ ]]; then
    echo "SMP_STAGED_CHUNK_BYTES=$1"
  else
    tr , '\n' <<<"$1"
  fi
}
swept=()
for c in "${configs[@]}"; do
  while IFS= read -r v; do
    [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "config '$c': '$v' is not VAR=VALUE" >&2; exit 2; }
    swept+=("${v%%=*}")
  done < <(settings "$c")
done
: >"$out"
for c in "${configs[@]}"; do
  (
    for v in ${swept[@]+"${swept[@]}"}; do unset "$v"; done
    # shellcheck disable=SC2163 # v is VAR=VALUE: exports VAR
    while IFS= read -r v; do export "$v"; done < <(settings "$c")
    timeout 60 mpirun -np 2 "$build/bench/gpu/gpu_staged_bench" --reps 30 2>/dev/null
  ) | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
for r in rows:
    print(json.dumps({"config": sys.argv[1], **r}))
sys.exit(0 if rows else 1)' "$c" >>"$out" || echo "config $c: gpu_staged_bench failed" >&2
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
configs = list(dict.fromkeys(r["config"] for r in rows))
cell = {(r["config"], r["collective"], r["MiB"], r["memory"]): r for r in rows}
# Headers: the arguments, less the variables' SMP_STAGED_ prefix.
heads = [",".join(s[len("SMP_STAGED_"):] if s.startswith("SMP_STAGED_") else s for s in c.split(","))
         for c in configs]
print("staged/host busbw (copies: ms of the unoverlapped staging copies / host ms)")
print("| collective | MiB | " + " | ".join(heads) + " | copies/host |")
print("|---|---|" + "---|" * (len(configs) + 1))
for coll in ("allreduce", "reduce_scatter"):
    for mib in sorted({r["MiB"] for r in rows}):
        out = []
        for c in configs:
            h, d = cell.get((c, coll, mib, "host")), cell.get((c, coll, mib, "cuda"))
            out.append(f"{d['busbw_GBps'] / h['busbw_GBps']:.2f}x" if h and d else "-")
        # The copies do not depend on the configuration: the first run's.
        cp = h = None
        for c in configs:
            cp, h = cell.get((c, coll, mib, "copies")), cell.get((c, coll, mib, "host"))
            if cp and h:
                break
        out.append(f"{cp['ms'] / h['ms']:.2f}" if cp and h else "-")
        print(f"| {coll} | {mib} | " + " | ".join(out) + " |")
PY
