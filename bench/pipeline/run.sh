#!/usr/bin/env bash
# The pipeline benchmarks as recorded in BENCHMARKS.md ("Pipeline transport
# and schedule"). Usage: bench/pipeline/run.sh [BUILD_DIR]  (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
bench=$build/bench/pipeline/pipeline_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "## transport (np 2)"
mpirun -np 2 "$bench" transport
for pp in 4 8; do
  echo
  echo "## schedule (np $pp)"
  mpirun -np "$pp" "$bench" schedule --forward-ms 10 --backward-ms 20 --act-mib 1 --steps 5 --microbatches 8,16
done
echo
echo "## schedule, large activations (np 4)"
mpirun -np 4 "$bench" schedule --forward-ms 10 --backward-ms 20 --act-mib 16 --steps 5 --microbatches 8
echo
echo "## zero-bubble schedules against 1F1B and virtual, F = B = W = 10 ms (np 4)"
for act in 0.01 1; do
  mpirun -np 4 "$bench" schedule --forward-ms 10 --backward-input-ms 10 --backward-weight-ms 10 \
    --act-mib "$act" --steps 5 --microbatches 8,16 --kinds interleaved,virtual,zb-h1,zb-v
done
