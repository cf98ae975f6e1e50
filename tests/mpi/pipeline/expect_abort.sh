#!/usr/bin/env bash
# Runs a command that must fail (not hang, not succeed) and print a line
# matching a pattern: expect_abort.sh PATTERN COMMAND... The meson timeout
# catches a hang.
set -u
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "expected a failure, got exit 0"; echo "$out"; exit 1
fi
if ! grep -qE "$pattern" <<<"$out"; then
  echo "exit $rc but no line matches: $pattern"; echo "$out"; exit 1
fi
grep -E "$pattern" <<<"$out" | head -3
exit 0
