#!/bin/sh
# bench/ckpt/scale.sh BUILD: issue 18's growth benchmarks (BENCHMARKS.md,
# "Hardening: costs that grow gently"): smp-ckpt verify / consolidate and
# the Python load at 1k, 10k and 100k tensors; the safetensors reader on
# 6 MB and 100 MB headers; smprun --dry-run at 64k, 256k and 1M ranks.
set -eu
b=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$b/bindings/python" OMP_NUM_THREADS=1
for n in 1000 10000 100000; do
  /usr/bin/python3 "$src/tests/python/ckpt/scale_test.py" "$b/src/ckpt/smp-ckpt" \
    "$b/tests/python/ckpt/ckpt_many_tensors" "$n" python
done
for bytes in 6000000 99999000; do "$b/bench/ckpt/ckpt-header-bench" "$bytes"; done
for np in 65536 262144 1048576; do
  t0=$(date +%s.%N)
  "$b/launcher/smprun" -np "$np" --pp 16 --tp 8 --dry-run true > /dev/null
  t1=$(date +%s.%N)
  echo "smprun --dry-run -np $np: $(echo "$t1 - $t0" | bc) s"
done
