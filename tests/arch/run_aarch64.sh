#!/bin/sh
# Cross-compiles ctx_selftest for aarch64 and runs it under qemu-user: the aarch64 context
# switch is tested on an x86-64 machine. Exits 77 (ctest: skipped) when the cross compiler or
# qemu is missing (scripts/deps.sh installs them) — a failure when CI is set.
set -eu
src_dir=$1
out=${2:-/tmp}/ctx_selftest_aarch64
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  case "${CI:-}" in
  "" | 0 | false | no) ;;
  *) echo "FAIL: aarch64-linux-gnu-gcc or qemu-aarch64 not found, and CI is set"; exit 1 ;;
  esac
  echo "SKIP: aarch64-linux-gnu-gcc or qemu-aarch64 not installed (scripts/deps.sh installs them)"
  exit 77
fi
aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -static -I"$src_dir/runtime/src" \
  "$src_dir/tests/arch/ctx_selftest.c" "$src_dir/runtime/src/ctx.c" \
  "$src_dir/runtime/src/ctx_aarch64.S" -o "$out"
exec qemu-aarch64 "$out"
