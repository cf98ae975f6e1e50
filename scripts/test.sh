#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, builds, and
# runs all suites (unit, mpi, launcher, python; gpu skips without a GPU).
# Arguments go to `meson test`, e.g. --suite unit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
meson test -C "${SMP_BUILD_DIR:-build}" --print-errorlogs "$@"
