#!/usr/bin/env bash
# Hosts for multi-host tests, on this machine alone:
#   scripts/hosts.sh up N [SLOTS]   start N hosts, print an Open MPI hostfile
#   scripts/hosts.sh down           stop them all; nothing is left running
#   scripts/hosts.sh kill NAME      end one host: its sshd and every process
#                                   it started (a host that is lost)
#   scripts/hosts.sh check          exit 0 if hosts can be made here, else
#                                   print why on stderr and exit 77
#   scripts/hosts.sh exec NAME CMD  run CMD inside host NAME's namespaces
#                                   (its hostname, its mounts), not over ssh
#   scripts/hosts.sh slurm          (after up) a Slurm cluster of the hosts:
#                                   slurmctld here, one slurmd per host (its
#                                   CPUs = SLOTS); prints the SLURM_CONF line
#                                   to export for salloc/srun/sbatch
#
# Every host is its own UTS and mount namespace (its own hostname, smp-h1, smp-h2,
# ...) running Debian's sshd on its own loopback address (127.0.0.2, .3, ...)
# and a high port. The hosts share this machine's filesystem, as a cluster
# shares its home directories, and its network stack: traffic between them
# stays on loopback addresses of this machine. The ssh configuration that
# maps each name to its address, port and key goes to
# /etc/ssh/ssh_config.d/, so a plain `ssh smp-h1` (and so Open MPI and
# smprun) reaches a host with no further flags, and the names go to
# /etc/hosts (marked "# smp-hosts"); `down` removes both again.
#
# Every host has its own /tmp (a mount namespace with $SMP_HOSTS_DIR/NAME/tmp
# bound there), as cluster nodes have local scratch: files meant for every
# host go elsewhere (the build tree, /var/tmp).
#
# Needs root (namespaces, sshd). Settings: SMP_HOSTS_DIR (state, default
# /var/tmp/smp-hosts), SMP_HOSTS_PORT (default 22222), SMP_HOSTS_LEAN_LOGIN=1
# (ssh commands skip ~/.bashrc; see up).
set -euo pipefail

dir=${SMP_HOSTS_DIR:-/var/tmp/smp-hosts}
port=${SMP_HOSTS_PORT:-22222}
ssh_conf=/etc/ssh/ssh_config.d/smp-hosts.conf
prefix=smp-h
hosts_mark="# smp-hosts"

die() { echo "hosts.sh: $*" >&2; exit "${2:-1}"; }

# Why hosts cannot be made here ("" when they can).
why_not() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root (UTS namespaces, sshd)"; return; }
  command -v unshare >/dev/null || { echo "unshare (util-linux) is missing"; return; }
  [ -x /usr/sbin/sshd ] || { echo "sshd is missing (apt-get install openssh-server)"; return; }
  command -v ssh >/dev/null || { echo "ssh is missing (apt-get install openssh-client)"; return; }
  [ -d /etc/ssh/ssh_config.d ] || { echo "/etc/ssh/ssh_config.d is missing (ssh cannot be configured)"; return; }
  unshare --uts --fork true 2>/dev/null || { echo "cannot make a UTS namespace (unshare --uts)"; return; }
  unshare --mount --fork sh -c 'mount --bind /var/tmp /tmp' 2>/dev/null \
    || { echo "cannot make a mount namespace with its own /tmp (unshare --mount, mount --bind)"; return; }
}

# The pids of every process in host NAME's UTS namespace.
host_pids() {
  local ns p
  ns=$(cat "$dir/$1/uts" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/uts" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
  done
  return 0
}

kill_host() {
  local pids
  pids=$(host_pids "$1")
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  for _ in $(seq 50); do
    [ -z "$(host_pids "$1")" ] && return 0
    sleep 0.1
  done
  die "host $1: processes $(host_pids "$1" | tr '\n' ' ')still there after SIGKILL"
}

slurm_down() {
  local pid
  pid=$(cat "$dir/slurm/slurmctld.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir/slurm"
}

# Slurm (Debian's slurm-wlm) over the hosts that are up: slurmctld on this
# machine (127.0.0.1), slurmd inside every host (started over ssh, so in its
# namespace; `kill NAME` takes it down with the host). auth/none: the
# cluster is this machine's loopback alone.
slurm_up() {
  [ -f "$dir/hostfile" ] || die "slurm: no hosts are up (run hosts.sh up N first)" 2
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    || die "slurm: slurmctld/slurmd are missing (apt-get install slurm-wlm)" 77
  slurm_down
  local s=$dir/slurm name slots i=0 ctl
  ctl=$(hostname)
  mkdir -p "$s/state"
  {
    echo "ClusterName=smp"
    echo "SlurmctldHost=$ctl(127.0.0.1)"
    echo "SlurmctldPort=${SMP_SLURMCTLD_PORT:-26817}"
    echo "AuthType=auth/none"
    echo "CredType=cred/none"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "StateSaveLocation=$s/state"
    echo "SlurmdSpoolDir=$s/spool-%n"
    echo "SlurmctldPidFile=$s/slurmctld.pid"
    echo "SlurmdPidFile=$s/slurmd-%n.pid"
    echo "SlurmctldLogFile=$s/slurmctld.log"
    echo "SlurmdLogFile=$s/slurmd-%n.log"
    echo "ProctrackType=proctrack/pgid"
    echo "TaskPlugin=task/affinity"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    echo "SlurmdParameters=config_overrides"
    echo "MpiDefault=none"
    echo "ReturnToService=2"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "InactiveLimit=0"
    echo "KillWait=5"
    echo "SlurmctldTimeout=10"
    echo "SlurmdTimeout=10"
    while read -r name slots; do
      i=$((i + 1))
      echo "NodeName=$name NodeAddr=127.0.0.$((i + 1)) Port=$((${SMP_SLURMD_PORT:-26900} + i)) CPUs=${slots#slots=} State=UNKNOWN"
    done < "$dir/hostfile"
    echo "PartitionName=smp Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
  } > "$s/slurm.conf"
  slurmctld -f "$s/slurm.conf" || die "slurm: slurmctld did not start (see $s/slurmctld.log)"
  while read -r name slots; do
    mkdir -p "$s/spool-$name"
    ssh -n "$name" "SLURM_CONF=$s/slurm.conf slurmd -f $s/slurm.conf -N $name" \
      || die "slurm: slurmd did not start on $name (see $s/slurmd-$name.log)"
  done < "$dir/hostfile"
  local n
  n=$(wc -l < "$dir/hostfile")
  for _ in $(seq 100); do
    [ "$(SLURM_CONF=$s/slurm.conf sinfo -h -t idle -o %D 2>/dev/null | head -1)" = "$n" ] && break
    sleep 0.2
  done
  [ "$(SLURM_CONF=$s/slurm.conf sinfo -h -t idle -o %D 2>/dev/null | head -1)" = "$n" ] \
    || die "slurm: the $n nodes did not come up: $(SLURM_CONF=$s/slurm.conf sinfo -h 2>&1 | tr '\n' ' ')"
  echo "export SLURM_CONF=$s/slurm.conf"
}

down() {
  local h
  slurm_down
  for h in "$dir"/${prefix}*; do
    [ -d "$h" ] || continue
    kill_host "$(basename "$h")"
    rm -rf "$h"
  done
  rm -f "$ssh_conf" "$dir/hostfile"
  if grep -q "$hosts_mark" /etc/hosts 2>/dev/null; then
    # In place (not a rename): /etc/hosts may be a bind mount.
    grep -v "$hosts_mark" /etc/hosts > "$dir.etc-hosts" || true
    cat "$dir.etc-hosts" > /etc/hosts
    rm -f "$dir.etc-hosts"
  fi
}

up() {
  local n=$1 slots=${2:-4} i name addr h
  [[ $n =~ ^[1-9][0-9]?$ ]] && [ "$n" -le 200 ] || die "up N: N must be 1..200 (got '$n')" 2
  [[ $slots =~ ^[1-9][0-9]*$ ]] || die "up N SLOTS: SLOTS must be a positive integer (got '$slots')" 2
  local why
  why=$(why_not)
  [ -z "$why" ] || die "cannot make hosts here: $why" 77
  down
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  # One client key and one host key serve every host: they stand for a
  # cluster's shared home directory and its pre-distributed host keys.
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C smp-hosts -f "$dir/id_ed25519"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C smp-hosts-host -f "$dir/host_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  : > "$dir/known_hosts"
  {
    echo "# written by smp's scripts/hosts.sh up; removed by scripts/hosts.sh down"
    for ((i = 1; i <= n; i++)); do
      echo "Host $prefix$i"
      echo "  HostName 127.0.0.$((i + 1))"
      echo "  Port $port"
      echo "  User root"
      echo "  IdentityFile $dir/id_ed25519"
      echo "  IdentitiesOnly yes"
      echo "  UserKnownHostsFile $dir/known_hosts"
      echo "  StrictHostKeyChecking yes"
      echo "  HostKeyAlias smp-hosts"
      echo "  BatchMode yes"
      echo "  LogLevel ERROR"
    done
  } > "$ssh_conf.tmp"
  mv "$ssh_conf.tmp" "$ssh_conf"
  echo "smp-hosts $(cat "$dir/host_ed25519.pub" | cut -d' ' -f1,2)" > "$dir/known_hosts"
  # The names resolve too (MASTER_ADDR, torch's and NCCL's sockets), as a
  # cluster's DNS would make them.
  for ((i = 1; i <= n; i++)); do echo "127.0.0.$((i + 1)) $prefix$i $hosts_mark"; done >> /etc/hosts

  for ((i = 1; i <= n; i++)); do
    name=$prefix$i
    addr=127.0.0.$((i + 1))
    h=$dir/$name
    mkdir -p "$h"
    cat > "$h/sshd_config" <<EOF
ListenAddress $addr:$port
HostKey $dir/host_ed25519
PidFile $h/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserEnvironment no
AcceptEnv LANG LC_*
MaxStartups 200:30:400
MaxSessions 200
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
    # SMP_HOSTS_LEAN_LOGIN=1: commands run over ssh skip ~/.bashrc (bash
    # reads it for ssh commands only while SHLVL < 2): a login then costs
    # what a cluster node's lean shell costs, not this machine's rc files.
    [ "${SMP_HOSTS_LEAN_LOGIN:-0}" != 1 ] || echo "SetEnv SHLVL=1" >> "$h/sshd_config"
    # The namespace lives as long as a process in it: sshd (which
    # daemonizes) keeps it, and everything it starts is in it too.
    mkdir -p "$h/tmp"
    chmod 1777 "$h/tmp"
    unshare --uts --mount --fork sh -c "mount --make-rprivate / 2>/dev/null; mount --bind $h/tmp /tmp &&
      hostname $name && exec /usr/sbin/sshd -f $h/sshd_config -E $h/sshd.log" \
      || die "host $name: sshd did not start (see $h/sshd.log)"
    local pid
    for _ in $(seq 100); do
      pid=$(cat "$h/sshd.pid" 2>/dev/null || true)
      [ -n "$pid" ] && break
      sleep 0.05
    done
    [ -n "$pid" ] || die "host $name: sshd wrote no pid file (see $h/sshd.log)"
    readlink "/proc/$pid/ns/uts" > "$h/uts"
  done
  for ((i = 1; i <= n; i++)); do
    name=$prefix$i
    local got=""
    for _ in $(seq 100); do
      got=$(ssh "$name" hostname 2>/dev/null || true)
      [ "$got" = "$name" ] && break
      sleep 0.1
    done
    [ "$got" = "$name" ] || die "host $name: ssh $name hostname gave '$got' ($(ssh "$name" true 2>&1 | head -1))"
  done
  for ((i = 1; i <= n; i++)); do echo "$prefix$i slots=$slots"; done | tee "$dir/hostfile"
}

case "${1:-}" in
  up) shift; [ $# -ge 1 ] && [ $# -le 2 ] || die "usage: hosts.sh up N [SLOTS]" 2; up "$@" ;;
  down) down ;;
  kill) [ $# -eq 2 ] && [ -d "$dir/$2" ] || die "usage: hosts.sh kill NAME (a host that is up)" 2; kill_host "$2" ;;
  slurm) slurm_up ;;
  exec)
    [ $# -ge 3 ] && [ -f "$dir/${2:-}/sshd.pid" ] || die "usage: hosts.sh exec NAME CMD... (a host that is up)" 2
    pid=$(cat "$dir/$2/sshd.pid")
    shift 2
    exec nsenter -t "$pid" -u -m -- "$@" ;;
  check) why=$(why_not); [ -z "$why" ] || die "cannot make hosts here: $why" 77 ;;
  *) die "usage: hosts.sh up N [SLOTS] | down | kill NAME | slurm | check" 2 ;;
esac
