#!/bin/sh
# install_consumer: installs the current build into a temporary prefix, then builds and runs a
# small consumer against it, through find_package(taskscope) (shared and static targets) and
# through pkg-config. Any failing step fails the test.
#
# usage: consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR
# env:   CMAKE_COMMAND (default cmake), CC (default cc), TASKSCOPE_SANITIZE (e.g.
#        address,undefined: the consumer is built with the same sanitizers as the library),
#        TASKSCOPE_BUILD_TYPE (default RelWithDebInfo)
set -eu

build_dir=${1:?usage: consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR}
consumer_src=${2:?usage: consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR}
cmake=${CMAKE_COMMAND:-cmake}
cc=${CC:-cc}
build_type=${TASKSCOPE_BUILD_TYPE:-RelWithDebInfo}
san_flags=
if [ -n "${TASKSCOPE_SANITIZE:-}" ]; then
  san_flags="-fsanitize=${TASKSCOPE_SANITIZE} -fno-omit-frame-pointer"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/taskscope-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

run() {
  echo "+ $*"
  "$@"
}

echo "== install $build_dir into $prefix"
run "$cmake" --install "$build_dir" --prefix "$prefix"

pc_file=$(find "$prefix" -name taskscope.pc -print | head -n 1)
if [ -z "$pc_file" ]; then
  echo "FAIL: taskscope.pc was not installed" >&2
  exit 1
fi
pc_dir=$(dirname "$pc_file")
lib_dir=$(dirname "$pc_dir")
for f in "$prefix/include/taskscope.h" "$prefix/include/taskscope/test.h" \
         "$prefix/bin/taskscope" "$lib_dir/libtaskscope.so" "$lib_dir/libtaskscope.a" \
         "$lib_dir/cmake/taskscope/taskscopeConfig.cmake" \
         "$lib_dir/cmake/taskscope/taskscopeConfigVersion.cmake" \
         "$lib_dir/cmake/taskscope/taskscopeTargets.cmake"; do
  if [ ! -e "$f" ]; then
    echo "FAIL: not installed: $f" >&2
    exit 1
  fi
done

echo "== the installed CLI runs"
run "$prefix/bin/taskscope" --version

echo "== consumer through find_package(taskscope)"
run "$cmake" -S "$consumer_src" -B "$tmp/cmake-build" \
  -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$san_flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$san_flags" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
run "$cmake" --build "$tmp/cmake-build"
LD_LIBRARY_PATH=$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
run "$tmp/cmake-build/consumer"
run "$tmp/cmake-build/consumer_static"

echo "== consumer through pkg-config"
flags=$(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs taskscope)
echo "pkg-config --cflags --libs taskscope: $flags"
# shellcheck disable=SC2086 # flags are meant to be split
run "$cc" $san_flags -o "$tmp/consumer-pc" "$consumer_src/main.c" $flags
run "$tmp/consumer-pc"

echo "install_consumer: OK"
