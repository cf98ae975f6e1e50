#!/usr/bin/env bash
# `meson install` into a temporary root, then: libsmp exports only smp_*
# (and every function smp.h declares); smp.pc describes the install; a
# plain C99 program builds against the installed header and library alone
# (cc -std=c99 -Wall -Wextra -Wpedantic -Werror) and runs as a world of one.
# Usage: install_test.sh BUILD_DIR C99_PROGRAM
set -euo pipefail
build=$1
program=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

meson install -C "$build" --destdir "$root" --no-rebuild --quiet >/dev/null

header=$(find "$root" -path '*/include/smp/smp.h' | head -1)
lib=$(find "$root" -name 'libsmp.so' | head -1)
pc=$(find "$root" -name 'smp.pc' | head -1)
for f in "$header" "$lib" "$pc"; do
  [ -n "$f" ] || { echo "FAIL: install lacks smp.h, libsmp.so or smp.pc"; exit 1; }
done
echo "installed: ${header#$root} ${lib#$root} ${pc#$root}"

# Exports: smp_* only, and each function the header declares.
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
stray=$(echo "$exported" | grep -v '^smp_' || true)
[ -z "$stray" ] || { echo "FAIL: libsmp exports non-smp symbols:"; echo "$stray" | head; exit 1; }
declared=$(grep -oE 'SMP_API [a-z_ *]+\b(smp_[a-z0-9_]+)\(' "$header" | grep -oE 'smp_[a-z0-9_]+\(' | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[ -z "$missing" ] || { echo "FAIL: declared in smp.h but not exported:"; echo "$missing"; exit 1; }
echo "exports: $(echo "$exported" | wc -l) symbols, all smp_*; all $(echo "$declared" | wc -l) declared functions present"

# Build with pkg-config against the installed tree only (the sysroot maps
# the pc file's prefix into the temporary root).
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root
cflags=$(pkg-config --cflags smp)
libs=$(pkg-config --libs smp)
cc -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags "$program" $libs -o "$root/c99_program"
out=$(LD_LIBRARY_PATH=$(dirname "$lib") "$root/c99_program")
echo "$out"
[[ "$out" == "smp 0.1.0 rank 0 of 1: root error named" ]] || { echo "FAIL: unexpected output"; exit 1; }
echo PASS
