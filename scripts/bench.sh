#!/usr/bin/env bash
# Runs the benchmarks: installs what is missing, builds, then runs every
# topic's bench/<topic>/run.sh (or only the topics named), each given the
# build directory. A topic joins by adding its run.sh.
#   scripts/bench.sh [TOPIC...]      e.g. scripts/bench.sh launch
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${SMP_BUILD_DIR:-build}
topics=("$@")
if [ ${#topics[@]} -eq 0 ]; then
  for run in bench/*/run.sh; do topics+=("$(basename "$(dirname "$run")")"); done
fi
for topic in "${topics[@]}"; do
  [ -x "bench/$topic/run.sh" ] || { echo "bench.sh: no bench/$topic/run.sh" >&2; exit 2; }
  echo "=== $topic"
  "bench/$topic/run.sh" "$build"
done
