#!/usr/bin/env bash
# Host collectives side by side: smp vs MPI (same run, interleaved reps)
# and torch gloo, 2 and 4 ranks, float32 sum, 8 B .. 64 MiB.
# Usage: bench/comm/run.sh [BUILD_DIR] (default build); writes
# bench/comm/results-np{2,4}.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for np in 2 4; do
  out=bench/comm/results-np$np.txt
  {
    echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# mpirun -np $np $build/bench/comm/smp-bench --op all --compare-mpi -b 8 -e 67108864 -f 2"
    mpirun -np $np "$build/bench/comm/smp-bench" --op all --compare-mpi -b 8 -e 67108864 -f 2
    echo "# mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 8 --max-bytes 67108864"
    mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 8 --max-bytes 67108864
  } | tee "$out"
done
