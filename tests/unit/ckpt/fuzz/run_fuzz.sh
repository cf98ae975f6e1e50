#!/bin/sh
# run_fuzz.sh FUZZER SEED_DIR DICT SECONDS: fuzz for a bounded time from the
# seed corpus; new inputs go to a scratch folder, not the source tree, and
# so do the files a target makes (TMPDIR). Not exec: the trap must run.
set -eu
scratch=$(mktemp -d "${TMPDIR:-/tmp}/smp-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/corpus" "$scratch/tmp"
TMPDIR="$scratch/tmp" "$1" "$scratch/corpus" "$2" -dict="$3" -max_total_time="$4" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$scratch/"
