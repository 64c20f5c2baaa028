#!/usr/bin/env bash
# Builds everything (installing missing packages first) and runs a sample app.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

for prog in build/bin/demo build/bin/hello; do
  if [ -x "$prog" ]; then
    echo "+ $prog $*"
    exec "$prog" "$@"
  fi
done
echo "demo.sh: no demo program built yet (expected build/bin/demo or build/bin/hello)" >&2
exit 1
