#!/usr/bin/env bash
# Builds taskscope and runs the whole test suite (ctest). Installs missing packages first.
#   scripts/test.sh                                       # build/ (RelWithDebInfo)
#   TASKSCOPE_SANITIZE=address,undefined scripts/test.sh  # build-asan/ with sanitizers
#   CC=clang TASKSCOPE_BUILD_DIR=build-clang scripts/test.sh  # another compiler, its own tree
# Extra arguments go to ctest, e.g. scripts/test.sh -R test_spawn
# With CI set (not 0/false/no), a skipped test (a missing tool) fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ -n "${TASKSCOPE_SANITIZE:-}" ]; then
  build_dir=build-asan
  # GCC's sanitizers cause false-positive warnings (it advises against -Werror with them); the
  # plain build already enforces -Werror.
  cmake_args+=("-DTASKSCOPE_SANITIZE=${TASKSCOPE_SANITIZE}" -DTASKSCOPE_WERROR=OFF)
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

# Another compiler (CC=clang) needs its own build directory: TASKSCOPE_BUILD_DIR=build-clang.
build_dir=${TASKSCOPE_BUILD_DIR:-$build_dir}

echo "+ cmake -S . -B $build_dir ${cmake_args[*]}"
cmake -S . -B "$build_dir" "${cmake_args[@]}"
echo "+ cmake --build $build_dir -j$(nproc)"
cmake --build "$build_dir" -j"$(nproc)"
# The suite runs under the leak gate (README, "Fail CI on leaked tasks"): a task leaked by any
# test process fails the run unless tests/taskscope.supp names it as deliberate. A subset of
# the suite (extra arguments) may contain no instrumented test at all: that is allowed then.
gate=()
if [ -x "$build_dir/bin/taskscope" ]; then
  gate=("$build_dir/bin/taskscope" check --suppressions tests/taskscope.supp
        --junit "$build_dir/taskscope-junit.xml")
  if [ $# -gt 0 ]; then gate+=(--allow-uninstrumented); fi
  gate+=(--)
fi
ctest_args=(--test-dir "$build_dir" --output-on-failure -j2)
# In CI (CI set, and not 0/false/no) every test must run: a test skipped for a missing tool
# (status 77) would hide whatever it checks. scripts/deps.sh installs those tools there; a skip
# fails the run.
in_ci=1
case "${CI:-}" in "" | 0 | false | no) in_ci=0 ;; esac
junit=$PWD/$build_dir/ctest-junit.xml
if [ "$in_ci" = 1 ]; then
  rm -f "$junit"
  ctest_args+=(--output-junit "$junit")
fi
echo "+ ${gate[*]}${gate[*]:+ }ctest ${ctest_args[*]} $*"
"${gate[@]}" ctest "${ctest_args[@]}" "$@"
if [ "$in_ci" = 1 ]; then
  skipped=$(sed -n 's/.*<testcase name="\([^"]*\)".*status="notrun".*/\1/p' "$junit")
  if [ -n "$skipped" ]; then
    echo "test.sh: FAILED: tests skipped in CI (a tool they need is missing):" $skipped >&2
    exit 1
  fi
fi
