#!/usr/bin/env bash
# Builds taskscope and runs the whole test suite (ctest). Installs missing packages first.
#   scripts/test.sh                                       # build/ (RelWithDebInfo)
#   TASKSCOPE_SANITIZE=address,undefined scripts/test.sh  # build-asan/ with sanitizers
# Extra arguments go to ctest, e.g. scripts/test.sh -R test_spawn
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
echo "+ ${gate[*]}${gate[*]:+ }ctest --test-dir $build_dir --output-on-failure -j2 $*"
"${gate[@]}" ctest --test-dir "$build_dir" --output-on-failure -j2 "$@"
