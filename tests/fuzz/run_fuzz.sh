#!/bin/sh
# run_fuzz.sh — builds the fuzz targets with clang + libFuzzer and runs each briefly over its
# seed corpus: fuzz_protocol (the server's message parser, tests/fuzz/corpus) and fuzz_cli_json
# (the CLI's fast JSON path against jansson, tests/fuzz/corpus_cli). Registered as the CTest
# test fuzz_protocol.
#
# usage: run_fuzz.sh [SOURCE_DIR] [OUT_DIR] [SECONDS]
#   SOURCE_DIR  the taskscope checkout (default: two levels above this script)
#   OUT_DIR     where the binary and the working corpus go (default: SOURCE_DIR/build/fuzz)
#   SECONDS     -max_total_time of each target (default: $FUZZ_TIME, else 20)
# env: CLANG (default clang), FUZZ_FLAGS (extra libFuzzer flags, e.g. -jobs=2).
# Exit status: 0 clean run, 77 skipped (no clang, no libFuzzer, no jansson), else the failure
# (a crash leaves its input in OUT_DIR as crash-*; replay it with OUT_DIR/<target> FILE).
# Debian: clang and libclang-rt-14-dev (which holds libFuzzer) — scripts/deps.sh, optional list.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$(cd "$here/../.." && pwd)}
out=${2:-$src/build/fuzz}
secs=${3:-${FUZZ_TIME:-20}}
cc=${CLANG:-clang}

skip() {
  echo "SKIP: $*"
  exit 77
}

command -v "$cc" >/dev/null 2>&1 || skip "$cc not found (Debian: clang)"
pkg-config --exists jansson 2>/dev/null || skip "jansson not found through pkg-config"
mkdir -p "$out"

# libFuzzer is a separate package on Debian: probe for it.
probe=$out/probe.c
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$cc" -fsanitize=fuzzer "$probe" -o "$out/probe" >/dev/null 2>&1; then
  skip "$cc cannot link libFuzzer (Debian: libclang-rt-14-dev)"
fi
rm -f "$probe" "$out/probe"

echo "== build $out/fuzz_protocol"
# shellcheck disable=SC2046
"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 -Wall -Wextra \
  -I"$src/runtime/src" -I"$src/runtime/include" -I"$src/inspector/server" \
  "$here/fuzz_protocol.c" "$src/inspector/server/proto.c" "$src/runtime/src/json.c" \
  $(pkg-config --cflags --libs jansson) -o "$out/fuzz_protocol"

# New inputs go to the working corpus; the seeds in the source tree are only read.
mkdir -p "$out/corpus"
echo "== run for ${secs}s"
# shellcheck disable=SC2086
"$out/fuzz_protocol" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=140000 -dict="$here/protocol.dict" -artifact_prefix="$out/" -print_final_stats=1 \
  ${FUZZ_FLAGS:-} "$out/corpus" "$here/corpus"

echo "== build $out/fuzz_cli_json"
# shellcheck disable=SC2046
"$cc" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 -Wall -Wextra \
  -I"$src/inspector/cli" -I"$src/inspector/common" \
  "$here/fuzz_cli_json.c" $(pkg-config --cflags --libs jansson) -lm -o "$out/fuzz_cli_json"
mkdir -p "$out/corpus_cli"
echo "== run for ${secs}s"
# shellcheck disable=SC2086
"$out/fuzz_cli_json" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -artifact_prefix="$out/" -print_final_stats=1 ${FUZZ_FLAGS:-} "$out/corpus_cli" \
  "$here/corpus_cli"
