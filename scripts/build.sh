#!/usr/bin/env bash
# Configures (once) and builds the project into ${SMP_BUILD_DIR:-build}.
# Extra arguments go to `meson setup`, e.g. -Db_sanitize=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMP_BUILD_DIR:-build}
# Debian's python3-torch and python3-numpy install for /usr/bin/python3; make
# sure meson and the tests find that interpreter before any other.
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"  # nvcc for the CUDA kernels
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$@"
elif [ $# -gt 0 ]; then
  meson configure "$build" "$@"
fi
meson compile -C "$build"
