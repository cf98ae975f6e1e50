#!/usr/bin/env bash
# smprun across hosts (BENCHMARKS.md, "Several hosts"), on 2 hosts made here
# by scripts/hosts.sh (UTS + mount namespace and sshd per host, loopback):
#  1. launch time of `smprun -np 8 -H smp-h1:4,smp-h2:4 true`, host checks
#     included, against the plain `mpirun -np 8 -H smp-h1:4,smp-h2:4 true`,
#     interleaved, medians of REPS (default 15); with the hosts' login shell
#     as this machine has it (root's ~/.bashrc runs for every ssh command)
#     and lean (SMP_HOSTS_LEAN_LOGIN=1: it does not);
#  2. allreduce busbw (smp-bench, float32 sum, 1 and 16 MiB, smp and MPI in
#     the same run) of 2 ranks on 2 hosts (TCP over lo) against 2 ranks on
#     one host (shared memory).
# Usage: bench/launch/multihost.sh [BUILD_DIR]  (default: build). Root.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
smprun=$PWD/$build/launcher/smprun
reps=${REPS:-15}
export PATH=/usr/bin:$PATH
trap 'scripts/hosts.sh down' EXIT
nice="nice -n -10"

launch() {
  local label=$1
  scripts/hosts.sh up 2 4 > /dev/null
  $nice /usr/bin/python3 - "$smprun" "$reps" "$label" <<'PY'
import statistics, subprocess, sys, time
smprun, reps, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hosts = ["-np", "8", "-H", "smp-h1:4,smp-h2:4"]
cmds = {"mpirun": ["mpirun", "--allow-run-as-root"] + hosts + ["true"], "smprun": [smprun] + hosts + ["true"]}
t = {k: [] for k in cmds}
for name, cmd in cmds.items():  # warm up (page cache, first ssh)
    subprocess.run(cmd, check=True)
for _ in range(reps):
    for name, cmd in cmds.items():
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        t[name].append(time.perf_counter() - t0)
        time.sleep(2.5)  # smprun's shared ssh connections close 2 s after the job
m = {k: statistics.median(v) for k, v in t.items()}
print("%-28s mpirun %.3f s  smprun %.3f s  ratio %.2fx  (medians of %d; smprun min %.3f max %.3f)"
      % (label, m["mpirun"], m["smprun"], m["smprun"] / m["mpirun"], reps, min(t["smprun"]), max(t["smprun"])))
PY
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# launch: smprun -np 8 -H smp-h1:4,smp-h2:4 true vs mpirun --allow-run-as-root -np 8 -H smp-h1:4,smp-h2:4 true"
launch "login shell as is:"
SMP_HOSTS_LEAN_LOGIN=1 launch "lean login shell:"

scripts/hosts.sh up 2 4 > /dev/null
bench=$PWD/$build/bench/comm/smp-bench
for where in "-H smp-h1:2" "-H smp-h1:1,smp-h2:1"; do
  echo "# $smprun -np 2 $where --iface lo $bench --op allreduce -b 1048576 -e 16777216 -f 16 -r 11 --compare-mpi"
  # shellcheck disable=SC2086
  $nice "$smprun" -np 2 $where --iface lo "$bench" --op allreduce -b 1048576 -e 16777216 -f 16 -r 11 --compare-mpi
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
