#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build and the tests need and
# this machine lacks. Quiet and quick when everything is there already.
set -euo pipefail

packages=(
  build-essential
  pkg-config
  meson
  ninja-build
  openmpi-bin
  libopenmpi-dev
  hwloc
  libhwloc-dev
  libcli11-dev
  libgtest-dev
  nlohmann-json3-dev
  libdlpack-dev
  pybind11-dev
  python3-dev
  python3-numpy
  python3-torch
  libtorch-dev
  python3-pytest
  clang-14
  libclang-rt-14-dev
  # tests/multihost (scripts/hosts.sh): an sshd per host, a Slurm of the hosts
  openssh-server
  openssh-client
  slurm-wlm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
