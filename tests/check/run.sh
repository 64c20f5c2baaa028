#!/bin/sh
# Runs one group of the `taskscope check` tests (tests/check/run_tests.py); exits 77 (skipped)
# without python3.
#   run.sh TASKSCOPE_BINARY BIN_DIR SOURCE_DIR WORK_DIR GROUP
if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 not found (scripts/deps.sh installs it)"
  exit 77
fi
exec python3 "$(dirname "$0")/run_tests.py" "$@"
