#!/usr/bin/env bash
# Builds the project with AddressSanitizer and UndefinedBehaviorSanitizer
# into ${SMP_BUILD_DIR:-build-asan} and runs every test there. Python
# bindings are left out (a sanitized extension inside an unsanitized
# interpreter needs the runtimes preloaded into torch's process too, which
# torch does not survive cleanly); the ctypes optimizer test and the
# installed-library C test run with the runtimes preloaded (tests/meson.build,
# host_env). CUDA is left out: nothing of it runs here. Leak checking is
# off because Open MPI keeps its allocations until exit by design.
#   scripts/sanitize.sh [meson test arguments, e.g. --suite mpi]
set -euo pipefail
cd "$(dirname "$0")/.."
export SMP_BUILD_DIR=${SMP_BUILD_DIR:-build-asan}
if [ ! -f "$SMP_BUILD_DIR/build.ninja" ]; then
  scripts/build.sh -Db_sanitize=address,undefined -Db_lundef=false \
    -Dpython=disabled -Dcuda=disabled -Dnccl=disabled
else
  scripts/build.sh
fi
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Sanitized code runs a few times slower; 2 cores.
meson test -C "$SMP_BUILD_DIR" --print-errorlogs --num-processes 2 --timeout-multiplier 3 "$@"
