#!/bin/sh
# Runs save and load jobs of different sizes and layouts against one
# scratch folder: reshard.sh MPIRUN BINARY SCENARIO
set -eu
mpirun=$1
bin=$2
scenario=$3
d=$(mktemp -d "${TMPDIR:-/tmp}/smp-ckpt-mpi-XXXXXX")
trap 'rm -rf "$d"' EXIT
run() { np=$1; shift; "$mpirun" -np "$np" "$bin" "$@"; }
case "$scenario" in
  from_pp2_tp2_rdp2)
    run 8 save:consolidated:$d/c:8:2:2:DPT save:sharded:$d/s:8:2:2:DPT save:consolidated-split:$d/x:8:2:2:DPT
    run 8 load:$d/c:8:1:4:DPT load:$d/c:8:4:1:DPT load:$d/s:8:1:4:TPD load:$d/s:8:4:1:DPT \
          load:$d/x:8:2:2:TPD load:$d/s:6:3:2:DPT load:$d/c:5:1:1:DPT
    run 3 load:$d/s:3:1:3:DPT load:$d/c:3:3:1:spread load:$d/x:2:1:2:DPT mismatch:$d/m
    run 1 load:$d/c:1:1:1:DPT load:$d/s:1:1:1:DPT load:$d/x:1:1:1:DPT
    run 3 corrupt:$d/s corrupt:$d/c
    ;;
  from_odd_sizes)
    run 3 save:sharded:$d/s:3:3:1:DPT save:consolidated-split:$d/c:3:1:3:DPT
    run 4 load:$d/s:4:2:2:DPT load:$d/c:4:1:2:PDT load:$d/s:4:1:1:DPT load:$d/c:4:4:1:spread
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
