#!/usr/bin/env bash
# Installs the Debian packages taskscope needs, if any are missing.
# Checks with dpkg-query first; runs apt-get (update once, then install) only when needed.
set -euo pipefail

# Needed to build and test taskscope.
required=(build-essential cmake pkg-config libuv1-dev libunwind-dev libdw-dev libjansson-dev
          libcmocka-dev libncurses-dev tmux)
# Tools some tests need; without them those tests are skipped (ctest status 77): python3 (the
# CLI and `taskscope check` tests), nodejs and npm (the SARIF schema check), the aarch64 cross
# compiler and qemu-user (the aarch64 context switch), clang with libFuzzer (the fuzz test;
# CI also builds and tests everything with clang).
# Optional for a developer; required in CI (CI set, and not 0/false/no), where scripts/test.sh
# fails on a skip.
test_tools=(python3 nodejs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang
            libclang-rt-dev)
# Debian's npm, unless an npm is there already (NodeSource's nodejs bundles one, and conflicts
# with Debian's npm package).
command -v npm >/dev/null 2>&1 || test_tools+=(npm)
# Only for the benchmark peers (asyncio: python3, Node: nodejs, Go).
optional=(golang-go)
case "${CI:-}" in
"" | 0 | false | no) optional+=("${test_tools[@]}") ;;
*) required+=("${test_tools[@]}") ;;
esac

log() { echo "deps.sh: $*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "not a Debian-like system (no dpkg-query/apt-get); install these yourself:"
  log "  ${required[*]} ${optional[*]}"
  exit 0
fi

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing_required=()
missing_optional=()
for p in "${required[@]}"; do is_installed "$p" || missing_required+=("$p"); done
for p in "${optional[@]}"; do is_installed "$p" || missing_optional+=("$p"); done

if [ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    log "missing packages (${missing_required[*]} ${missing_optional[*]}), not root and no sudo"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@" </dev/null
}

log "missing: ${missing_required[*]} ${missing_optional[*]}"
log "running apt-get update"
if ! "${sudo[@]}" apt-get update </dev/null; then
  log "warning: apt-get update failed; trying to install from the current package lists"
fi

if [ ${#missing_required[@]} -gt 0 ]; then
  log "installing: ${missing_required[*]}"
  if ! apt_install "${missing_required[@]}"; then
    log "error: could not install required packages: ${missing_required[*]}"
    exit 1
  fi
fi

if [ ${#missing_optional[@]} -gt 0 ]; then
  log "installing (optional: test tools, bench peers): ${missing_optional[*]}"
  if ! apt_install "${missing_optional[@]}"; then
    # One by one, so one unavailable package does not keep the others out.
    for p in "${missing_optional[@]}"; do
      apt_install "$p" ||
        log "warning: could not install $p; the tests or benchmark peers that need it are skipped"
    done
  fi
fi
