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
echo "+ ctest --test-dir $build_dir --output-on-failure -j2 $*"
ctest --test-dir "$build_dir" --output-on-failure -j2 "$@"
