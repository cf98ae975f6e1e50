#!/usr/bin/env bash
# Host collectives side by side: smp vs MPI (same run, interleaved reps)
# and torch gloo, 2 and 4 ranks, float32 sum, 16 B .. 64 MiB in steps of
# 4x, plus 8 B with more repetitions (the latency row).
# Usage: bench/comm/run.sh [BUILD_DIR] (default build); writes
# bench/comm/results-np{2,4}.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
bench="$build/bench/comm/smp-bench"
# The machine is shared: run at a higher priority than the compilers
# around us so that smp and MPI are both measured, not the scheduler.
nice="nice -n -10"
for np in 2 4; do
  out=bench/comm/results-np$np.txt
  {
    echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# mpirun -np $np $bench --op all --compare-mpi -b 8 -e 8 -r 21"
    $nice mpirun -np $np "$bench" --op all --compare-mpi -b 8 -e 8 -r 21
    echo "# mpirun -np $np $bench --op all --compare-mpi -b 16 -e 67108864 -f 4 -r 11 --rep-seconds 0.01"
    $nice mpirun -np $np "$bench" --op all --compare-mpi -b 16 -e 67108864 -f 4 -r 11 --rep-seconds 0.01
    echo "# mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 8 --max-bytes 67108864 --factor 8 --reps 5"
    $nice mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 8 --max-bytes 67108864 --factor 8 --reps 5
    # 1 MiB and 64 MiB, which the 8x steps above skip.
    echo "# mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 1048576 --max-bytes 67108864 --factor 64 --reps 5"
    $nice mpirun -np $np /usr/bin/python3 bench/comm/gloo_bench.py --min-bytes 1048576 --max-bytes 67108864 --factor 64 --reps 5
    echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  } 2>&1 | tee "$out"
done
