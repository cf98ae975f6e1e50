#!/usr/bin/env bash
# The main job, for now a topology demo: installs what is missing, builds,
# and launches 8 ranks through smprun (pp=2 x tp=2 x rdp=2), each printing
# the coordinates smprun gave it. A later issue replaces it with training.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build=${SMP_BUILD_DIR:-build}
exec "$build/launcher/smprun" -np 8 --pp 2 --tp 2 --placement cluster --print-topology \
  sh -c 'echo "rank $SMP_RANK/$SMP_SIZE on $(hostname): pp $SMP_PP_RANK/$SMP_PP_SIZE," \
    "tp $SMP_TP_RANK/$SMP_TP_SIZE, rdp $SMP_RDP_RANK/$SMP_RDP_SIZE, dp $SMP_DP_RANK/$SMP_DP_SIZE," \
    "mp $SMP_MP_RANK/$SMP_MP_SIZE, device $SMP_DEVICE"'
