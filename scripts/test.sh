#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, builds, and
# runs all suites (unit, mpi, launcher, python; gpu skips without a GPU).
# Arguments go to `meson test`, e.g. --suite unit; --long first also runs
# the whole of the large grids (suite 'long', e.g. every front-end family
# at every layout and schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
setup=()
if [ "${1:-}" = --long ]; then
  shift
  setup=(--setup long)
fi
meson test -C "${SMP_BUILD_DIR:-build}" --print-errorlogs "${setup[@]}" "$@"
