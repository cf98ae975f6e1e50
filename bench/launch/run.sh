#!/usr/bin/env bash
# Launch overhead as recorded in BENCHMARKS.md ("Launch overhead"): smprun
# -np 4 true against plain mpirun -np 4 true, interleaved, medians.
# Usage: bench/launch/run.sh [BUILD_DIR]  (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
/usr/bin/python3 bench/launch/bench_launch.py --smprun "$build/launcher/smprun" --np 4 --reps "${REPS:-31}"
