#!/usr/bin/env bash
# smprun on a host with GPUs, which it finds through hwloc's PCI view (never
# through CUDA): each rank's SMP_DEVICE must be its local rank modulo the
# GPUs the driver lists (nvidia-smi, the independent count; or the
# CUDA_VISIBLE_DEVICES entries when set), with --bind auto (gpu on such a
# host) and --bind gpu; the rank table must show the devices. Exits 77
# without a GPU.
#   gpu_smprun_test.sh SMPRUN
set -u
smprun=$1
n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if [ "${n:-0}" -eq 0 ]; then
  echo "gpu_smprun_test: nvidia-smi lists no GPU: skipped"
  exit 77
fi
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  n=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .)
fi
fail=0
for bind in auto gpu; do
  out=$("$smprun" -np 3 --bind "$bind" --print-topology -- sh -c 'echo "rank=$SMP_RANK device=$SMP_DEVICE"' 2>&1)
  rc=$?
  echo "--- --bind $bind (exit $rc)"
  echo "$out"
  [ $rc -eq 0 ] || { echo "FAIL: smprun --bind $bind exited $rc"; fail=1; }
  for r in 0 1 2; do
    want="rank=$r device=$((r % n))"
    grep -qx "$want" <<<"$out" || { echo "FAIL: --bind $bind: no line '$want'"; fail=1; }
  done
done
[ $fail -eq 0 ] && echo "gpu_smprun_test: OK ($n GPU(s))"
exit $fail
