#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains a small GPT (stock
# torch modules built inside smp.tensor_parallelism() and unallocated inside
# smp.delay_param_initialization(), in smp.DistributedModel, partitioned
# automatically) on 8 ranks through smprun with pipeline x tensor x data
# parallelism at once (pp=2 x tp=2 x rdp=2). It ends by comparing every step's loss with the
# same model trained in one process, and says where the checkpoint and the
# timeline (Chrome trace: open in Perfetto) were written.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${SMP_BUILD_DIR:-build}
out="$PWD/$build/demo"
rm -rf "$out" && mkdir -p "$out"
export PYTHONPATH="$PWD/$build/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
exec "$build/launcher/smprun" -np 8 --pp 2 --tp 2 --print-topology \
  --timeline "$out/timeline.json" -x PYTHONPATH -- \
  /usr/bin/python3 examples/train_gpt.py --model stock --delayed-init \
  --steps "${SMP_DEMO_STEPS:-30}" --compare \
  --save "$out/checkpoints"
