#!/usr/bin/env bash
# The main job: installs what is missing, builds everything, and shows taskscope at work on the
# `demo` sample, a service-like program with a deep task tree that leaks now and then:
#   1. demo runs for a few seconds (DEMO_SECONDS, default 6);
#   2. while it runs, the `taskscope` CLI (when built) attaches to it: ps, tree, where;
#   3. demo stops and prints its leak report (text on stderr), and the JSON report is shown.
# Extra arguments are passed to demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

seconds=${DEMO_SECONDS:-6}
report=$(mktemp /tmp/taskscope-demo-report.XXXXXX.json)
trap 'rm -f "$report"' EXIT

echo
echo "== build/bin/demo --duration $seconds (leak report on stderr at the end)"
TASKSCOPE_OPTIONS="report=$report" build/bin/demo --duration "$seconds" --quiet "$@" &
pid=$!

if [ -x build/bin/taskscope ]; then
  sleep 2
  if kill -0 "$pid" 2>/dev/null; then
    echo
    echo "== taskscope ps $pid"
    build/bin/taskscope ps "$pid" || true
    echo
    echo "== taskscope tree $pid"
    build/bin/taskscope tree "$pid" || true
    task=$(build/bin/taskscope ps "$pid" --json 2>/dev/null |
           python3 -c 'import json,sys; t=[x for x in json.load(sys.stdin)["tasks"] if x.get("name")=="lease_keeper"]; print(t[0]["id"] if t else "")' 2>/dev/null || true)
    if [ -n "$task" ]; then
      echo
      echo "== taskscope where $pid $task"
      build/bin/taskscope where "$pid" "$task" || true
    fi
  fi
fi

status=0
wait "$pid" || status=$? # (set -e would end the script here, before the report is shown)
echo
echo "== the JSON report ($report), summary:"
if command -v python3 >/dev/null; then
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d["summary"]))' "$report"
else
  head -c 400 "$report"; echo
fi
exit "$status"
