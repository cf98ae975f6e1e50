#!/usr/bin/env bash
# The GPU check, for a machine with a GPU (the lent H100/H200: Ubuntu 24.04,
# CUDA 13, NCCL 2.28, Open MPI 4.1, meson 1.12): configures a fresh build
# with -Dcuda=enabled -Dnccl=enabled, builds what the check needs, runs the
# CUDA unit tests and the GPU suite (collectives on CUDA buffers with 1, 3
# and 4 ranks, staged and through CUDA IPC, the tensor transport with 3 and
# 4 ranks on one GPU, kernels vs CPU, the sharded optimizer on CUDA memory
# vs the host one with 1 and 2 ranks, CUDA torch tensors through the Python
# bindings, the GPT trained on the GPU by 4 ranks vs one process, smprun's
# GPU discovery and device choice), the GPU
# benchmarks (fused AdamW vs torch fused vs the copy bound; staged and CUDA
# IPC vs host collectives; the latency of a kernel, copy or event step with
# 2 ranks on one GPU, together and alone; the staged path's settings swept;
# the same without and with an MPS daemon),
# and prints a short table last. Logs go to $OUT
# when set (else <build>/gpu-check): eight files at most, as the device
# tool brings back (gpu-check.log, build.log, unit-cuda.log, gpu-tests.log,
# testlog.txt, bench.jsonl, bench.log, summary.md).
# Budget: under 5 minutes (about 80 s on the lent H200 before the GPT
# tests, the step latency bench, the settings sweep and the MPS comparison:
# 20 s to build, 35 s of GPU tests, 25 s of benchmarks; those add 60 s, 5 s,
# 30 s and 50 s: about 230 s in all on the H200).
# Without a GPU it goes as far as it can (configure, build, the skip path)
# and ends with "no GPU", exit status 77.
#   scripts/gpu-check.sh [BUILD_DIR]   (default build-gpucheck)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpucheck}
out=${OUT:-$build/gpu-check}
mkdir -p "$out"
t0=$(date +%s)
say() { echo "[gpu-check +$(( $(date +%s) - t0 ))s] $*" | tee -a "$out/gpu-check.log"; }
die() { say "FAILED: $*"; exit 1; }
export PATH="/usr/local/cuda/bin:$PATH"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# NCCL says why it declines or fails (the tests' logs keep it).
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# gVisor (uname -r 4.4.0) may refuse the cross-memory-attach system calls
# Open MPI's shared-memory transport copies with; its copy-in/copy-out
# mode needs none. Firecracker machines run a real kernel and keep CMA.
if [ "$(uname -r)" = "4.4.0" ]; then
  export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
fi
jobs=$(nproc 2>/dev/null || echo 2)

# The GPU, or its absence, first: every later step says what it skipped.
gpu=""
if command -v nvidia-smi >/dev/null 2>&1 && gpu=$(nvidia-smi -L 2>&1 | head -1) && [[ $gpu == GPU* ]]; then
  nvidia-smi >>"$out/gpu-check.log" 2>&1
else
  gpu=""
fi
say "GPU: ${gpu:-none}; $(nvcc --version 2>/dev/null | grep -o "release [0-9.]*"); meson $(meson --version)"
say "host: $(uname -r), $jobs cores; $(c++ --version 2>/dev/null | head -1); $(mpirun --version 2>/dev/null | head -1);" \
  "NCCL $(grep -hoE '^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+' /usr/local/cuda/include/nccl.h /usr/include/nccl.h 2>/dev/null |
  awk '{printf "%s%s", (NR>1?".":""), $3}'); vader single copy: ${OMPI_MCA_btl_vader_single_copy_mechanism:-default}"

# 1. Configure (fresh) and build the check's targets.
# -Dwerror=false: the GPU machine's compiler (GCC 13) is newer than the one
# the tree is kept warning-free with (GCC 12); a warning new to it must not
# cost the one GPU run. Warnings are counted and reported after the build.
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dcuda=enabled -Dnccl=enabled -Dpython=auto -Dtests=enabled -Dwerror=false \
    >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; die "meson setup (log: $out/build.log)"; }
fi
say "configured $build"
# What this build defines (read once; grepping a variable cannot kill
# ninja with SIGPIPE, which pipefail would take for a missing target).
all_targets=$(ninja -C "$build" -t targets all 2>/dev/null)
# Every program the cuda and gpu suites run and every target they depend
# on (meson's test list: a test added later is built too), as the ninja
# targets this build defines.
mapfile -t targets < <(python3 -c '
import json, os, subprocess, sys
build, defined = os.path.abspath(sys.argv[1]), {l.split(":")[0] for l in sys.argv[2].splitlines()}
def introspect(what):
    return json.loads(subprocess.run(["meson", "introspect", build, what], check=True,
                                     capture_output=True, text=True).stdout)
files = {t["id"]: t["filename"] for t in introspect("--targets")}
want = set()
for t in introspect("--tests"):
    if {"cuda", "gpu"} & {s.split(":")[-1] for s in t["suite"]}:
        paths = t["cmd"] + [f for d in t.get("depends", []) for f in files.get(d, [])]
        for c in paths:
            rel = os.path.relpath(c, build) if os.path.isabs(c) else c
            if rel in defined:
                want.add(rel)
print("\n".join(sorted(want)))' "$build" "$all_targets")
[ ${#targets[@]} -gt 0 ] || die "no cuda or gpu tests in $build (meson introspect --tests)"
# The benchmarks exist when bench/meson.build walks bench/gpu.
have_bench=0
if grep -q "^bench/gpu/gpu_adamw_bench:" <<<"$all_targets"; then
  have_bench=1
  targets+=(bench/gpu/gpu_adamw_bench bench/gpu/gpu_staged_bench bench/gpu/gpu_sharded_step_bench)
else
  say "bench/gpu is not in this build (bench/meson.build does not list 'gpu'): benchmarks skipped"
fi
# The Python bindings (built where Python and pybind11 are found: on the
# GPU machine, pip's; the Python GPU tests depend on them, so they are in
# the targets above).
if grep -qE "^bindings/python/smp/[^/]*\.so:" <<<"$all_targets"; then
  say "Python bindings: built for $(grep -m1 -o "Program python3 found: YES ([^)]*)" "$out/build.log" 2>/dev/null || echo python3)"
else
  say "Python bindings: not configured (no Python or pybind11 found): gpu_python tests absent"
fi
# 16 cores build it in about a minute; SMP_GPU_CHECK_BUILD_TIMEOUT for slower machines.
build_timeout=${SMP_GPU_CHECK_BUILD_TIMEOUT:-240}
timeout "$build_timeout" ninja -C "$build" -j"$jobs" "${targets[@]}" >>"$out/build.log" 2>&1
rc=$?
[ $rc -eq 124 ] && die "build did not finish within ${build_timeout} s (SMP_GPU_CHECK_BUILD_TIMEOUT; log: $out/build.log)"
[ $rc -eq 0 ] || { grep -E "error|FAILED" "$out/build.log" | head -30; die "build (log: $out/build.log)"; }
# The step latency probe is the one program nvcc links (its own kernels):
# built apart, so that a failure there costs only its own table.
[ $have_bench -eq 1 ] && { timeout 120 ninja -C "$build" bench/gpu/gpu_launch_bench >>"$out/build.log" 2>&1 ||
  say "bench/gpu/gpu_launch_bench did not build (log: $out/build.log): its table is skipped"; }
warnings=$(grep -c "warning:" "$out/build.log")
say "built ($warnings compiler warnings$([ "$warnings" -gt 0 ] && echo ", see $out/build.log"))"

# 2. Tests: the CUDA unit tests (no GPU needed), then the GPU suite.
timeout 60 meson test -C "$build" --no-rebuild --suite cuda --print-errorlogs >"$out/unit-cuda.log" 2>&1
unit_rc=$?
say "unit tests (cuda): $(grep -E '^(Ok|Fail|Skipped|Timeout):' "$out/unit-cuda.log" | tr -s ' \n' ' ')"
timeout 260 meson test -C "$build" --no-rebuild --suite gpu --print-errorlogs >"$out/gpu-tests.log" 2>&1
gpu_rc=$?
cp "$build/meson-logs/testlog.txt" "$out/testlog.txt" 2>/dev/null
say "gpu suite: $(grep -E '^(Ok|Fail|Skipped|Timeout):' "$out/gpu-tests.log" | tr -s ' \n' ' ')"
grep -E "^ *[0-9]+/[0-9]+ " "$out/gpu-tests.log" | tee -a "$out/gpu-check.log"

if [ -z "$gpu" ]; then
  say "no GPU: configure, build and the CUDA unit tests ran; the GPU suite skipped; benchmarks not run"
  [ $unit_rc -eq 0 ] || die "CUDA unit tests (log: $out/unit-cuda.log)"
  exit 77
fi

# 3. Benchmarks, each against its baseline in the same run.
bench="$out/bench.jsonl"
: >"$bench"
rm -f "$build/sweep.md" "$build/sweep.jsonl"
if [ $have_bench -eq 1 ]; then
  timeout 60 "$build/bench/gpu/gpu_adamw_bench" --elements 250000000 --reps 20 >>"$bench" 2>>"$out/bench.log" ||
    say "gpu_adamw_bench failed (see $out/bench.log)"
  timeout 90 python3 bench/gpu/adamw_torch.py --elements 250000000 --reps 20 >>"$bench" 2>>"$out/bench.log" ||
    say "adamw_torch.py failed or torch is missing (see $out/bench.log)"
  SMP_CUDA_IPC=0 timeout 90 mpirun -np 2 "$build/bench/gpu/gpu_staged_bench" --reps 30 >>"$bench" 2>>"$out/bench.log" ||
    say "gpu_staged_bench failed (see $out/bench.log)"
  SMP_CUDA_IPC=require timeout 60 mpirun -np 2 "$build/bench/gpu/gpu_staged_bench" --reps 30 >>"$bench" \
    2>>"$out/bench.log" || say "gpu_staged_bench with SMP_CUDA_IPC=require failed (see $out/bench.log)"
  # One step (kernel, copy, event) + sync, 2 ranks on one GPU, together and
  # alone: whether kernels of two processes pay a time slice copies do not.
  timeout 30 mpirun -np 2 "$build/bench/gpu/gpu_launch_bench" >>"$bench" 2>>"$out/bench.log" ||
    say "gpu_launch_bench failed (see $out/bench.log)"
  for dt in f32 bf16; do
    timeout 60 mpirun -np 1 "$build/bench/gpu/gpu_sharded_step_bench" --elements 100000000 --dtype $dt --reps 10 \
      >>"$bench" 2>>"$out/bench.log" || say "gpu_sharded_step_bench --dtype $dt failed (see $out/bench.log)"
  done
  # The staged collectives under other settings too, so one run says which
  # would meet the target where the default misses: the default, the
  # reduce-scatter always reducing on the device, always on the host, and
  # the old fixed 2 MiB chunk.
  SMP_CUDA_IPC=0 timeout 120 bench/gpu/staged_chunk_sweep.sh "$build" "$build/sweep.jsonl" auto \
    SMP_STAGED_RS_DEVICE_MIN_BYTES=0 SMP_STAGED_RS_DEVICE_MIN_BYTES=1099511627776 SMP_STAGED_CHUNK_BYTES=2097152 \
    >"$build/sweep.md" 2>>"$out/bench.log" || say "staged_chunk_sweep.sh failed (see $out/bench.log)"
  # Without and with an MPS daemon (started and stopped by the script):
  # whether the group's measured choice of CUDA IPC holds in both.
  timeout 150 bench/gpu/mps_compare.sh "$build" "$build/mps.jsonl" >>"$out/bench.log" 2>&1 ||
    say "mps_compare.sh failed (see $out/bench.log)"
  say "benchmarks done"
fi

echo
python3 bench/gpu/gpu_table.py "$bench" "$build/mps.jsonl" | tee "$out/summary.md"
if [ -s "$build/sweep.md" ]; then
  echo | tee -a "$out/summary.md"
  echo "Settings sweep (SMP_STAGED_*; auto: the defaults), staged path:" | tee -a "$out/summary.md"
  tee -a "$out/summary.md" <"$build/sweep.md"
fi
echo
[ $unit_rc -eq 0 ] && [ $gpu_rc -eq 0 ] || die "tests failed (logs: $out/unit-cuda.log, $out/gpu-tests.log)"
say "all GPU checks passed on: $gpu"
