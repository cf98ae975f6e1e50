#!/usr/bin/env bash
# Ranks sharing one GPU, without and with NVIDIA's Multi-Process Service
# (MPS): the kernels of separate processes take turns on a GPU (~0.3 ms a
# turn on an H200, gpu_launch_bench), which is what keeps the staged path's
# device reduction and CUDA IPC slow for small messages; MPS runs the
# processes' work in one shared context. Runs gpu_launch_bench and
# gpu_staged_bench (the staged path alone, its reduce-scatter reducing on
# the device at every size, CUDA IPC at every size, and the default: CUDA
# IPC from the size the group measured on setup, ipc_backend.h) with 2
# ranks, first without MPS, then under an MPS daemon started
# here and stopped at the end (where nvidia-cuda-mps-control exists; the
# GPU's settings are left alone). JSON lines tagged "mps": "no" / "yes" go
# to OUT_FILE, what the programs print to stderr to OUT_FILE.log.
#   bench/gpu/mps_compare.sh BUILD_DIR OUT_FILE
set -uo pipefail
build=$1 out=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
: >"$out"
: >"$out.log"
run_all() {
  local mps=$1 cfg tag
  echo "== mps: $mps" >>"$out.log"
  timeout 30 mpirun -np 2 "$build/bench/gpu/gpu_launch_bench" 2>>"$out.log" |
    sed -n "s/^{/{\"mps\": \"$mps\", \"config\": \"launch\", /p" >>"$out"
  for cfg in "staged SMP_CUDA_IPC=0" "staged_device_reduce SMP_CUDA_IPC=0 SMP_STAGED_RS_DEVICE_MIN_BYTES=0" \
             "ipc_everywhere SMP_CUDA_IPC=1 SMP_IPC_MIN_BYTES=0" "default SMP_CUDA_IPC=1"; do
    read -r tag vars <<<"$cfg"
    # shellcheck disable=SC2086  # vars: VAR=VALUE words for env
    env $vars timeout 60 mpirun -np 2 "$build/bench/gpu/gpu_staged_bench" --reps 30 2>>"$out.log" |
      sed -n "s/^{/{\"mps\": \"$mps\", \"config\": \"$tag\", /p" >>"$out"
  done
}
run_all no
if command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  CUDA_MPS_PIPE_DIRECTORY=$(mktemp -d) CUDA_MPS_LOG_DIRECTORY=$(mktemp -d)
  export CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d; then
    run_all yes
    echo quit | nvidia-cuda-mps-control
    sleep 1
    tail -5 "$CUDA_MPS_LOG_DIRECTORY"/control.log 2>/dev/null
  else
    echo "mps_compare: nvidia-cuda-mps-control -d failed" >&2
  fi
else
  echo "mps_compare: no nvidia-cuda-mps-control here" >&2
fi
wc -l <"$out"
