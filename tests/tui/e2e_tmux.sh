#!/usr/bin/env bash
# End-to-end test of taskscope-top in a real terminal (tmux), against build/bin/demo.
#
#   e2e_tmux.sh BUILD_DIR
#
# Starts the demo, runs `taskscope-top PID` in a 160x48 tmux pane, drives it with send-keys and
# reads the screen with capture-pane, asserting what a person would see: the task tree with the
# demo's task names, a task's detail with its stack, a filter narrowing the rows, the help screen,
# the events, and a clean exit (the shell prompt back, the terminal in its normal modes). Then
# records the demo with `taskscope record` and replays it, and checks that a recording of
# another version is refused with a message naming both versions. Last, attaches by PID to a
# demo whose socket is elsewhere (socket=PATH) and, as root, to another user's demo.
#
# Exit 77 (skipped) when tmux is missing (a failure when CI is set: CI has tmux). A demo that
# exposes no inspector socket is a failure. TUI_E2E_SERVER=fake runs against
# tests/tui/fake_server.py instead (for developing the TUI without the real server).
set -u

BUILD=${1:?usage: e2e_tmux.sh BUILD_DIR}
BIN=$BUILD/bin
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$BIN/taskscope-top

if ! command -v tmux >/dev/null 2>&1; then
  case "${CI:-}" in
  "" | 0 | false | no) ;;
  *) echo "FAIL: tmux not found, and CI is set: this test must run in CI"; exit 1 ;;
  esac
  echo "SKIP: tmux not found (scripts/deps.sh installs it)"
  exit 77
fi
for b in "$TOP" "$BIN/demo" "$BIN/taskscope"; do
  [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done

WORK=$(mktemp -d /tmp/tui-e2e.XXXXXX)
TMUX_SOCK=tui-e2e-$$ # a private tmux server: other tmux sessions are left alone
T() { tmux -L "$TMUX_SOCK" "$@"; }
SERVER_PID=
cleanup() {
  T kill-server >/dev/null 2>&1
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" >/dev/null 2>&1 && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
pass() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*"
  echo "---- screen ----"
  T capture-pane -p -t e2e 2>/dev/null | sed 's/^/| /'
  echo "----------------"
  failures=$((failures + 1))
}
screen() { T capture-pane -p -t e2e; }
# wait_for REGEX [SECONDS]: until the screen matches (grep -E), at most SECONDS (default 10).
wait_for() {
  local re=$1 limit=${2:-10} i
  for ((i = 0; i < limit * 10; i++)); do
    screen | grep -Eq -- "$re" && return 0
    sleep 0.1
  done
  return 1
}
# wait_gone REGEX [SECONDS]: until the screen no longer matches.
wait_gone() {
  local re=$1 limit=${2:-10} i
  for ((i = 0; i < limit * 10; i++)); do
    screen | grep -Eq -- "$re" || return 0
    sleep 0.1
  done
  return 1
}
keys() { T send-keys -t e2e "$@"; }

# ---- the process to attach to ------------------------------------------------------------------
SOCK_DIR=${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/taskscope}
SOCK_DIR=${SOCK_DIR:-/tmp/taskscope-$(id -u)}
if [ "${TUI_E2E_SERVER:-demo}" = fake ]; then
  python3 "$HERE/fake_server.py" --duration 100 >"$WORK/server.out" 2>&1 &
else
  "$BIN/demo" --duration 60 --quiet >"$WORK/server.out" 2>&1 &
fi
SERVER_PID=$!
for ((i = 0; i < 50; i++)); do
  [ -S "$SOCK_DIR/$SERVER_PID.sock" ] && break
  sleep 0.1
done
if [ ! -S "$SOCK_DIR/$SERVER_PID.sock" ]; then
  echo "FAIL: the server (pid $SERVER_PID) exposes no inspector socket in $SOCK_DIR/ within 5 s"
  echo "      (TASKSCOPE_OPTIONS=${TASKSCOPE_OPTIONS:-}); its output:"
  sed 's/^/| /' "$WORK/server.out"
  exit 1
fi
sleep 1 # let the demo build its tree and make its first leak records

# ---- a shell in a real terminal ----------------------------------------------------------------
T new-session -d -s e2e -x 160 -y 48 \
  "env -u NO_COLOR LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color PS1='E2E-PROMPT\$ ' bash --norc --noprofile"
T set-option -t e2e status off >/dev/null
wait_for 'E2E-PROMPT' 5 || { fail "the shell did not start"; exit 1; }

keys "$TOP $SERVER_PID" Enter

# 1. the tree, with the demo's task names and tree lines
if wait_for 'supervisor' 10 && wait_for 'metrics_reporter' 5; then
  s=$(screen)
  missing=
  for name in supervisor http_server worker_pool pool_worker session_manager cache_refresher \
              metrics_reporter; do
    grep -q -- "$name" <<<"$s" || missing="$missing $name"
  done
  if [ -z "$missing" ] && grep -Eq '(├─|└─) +(supervisor|http_server|worker_pool)' <<<"$s" &&
     grep -q 'connected' <<<"$s" && grep -q 'NAME (tree)' <<<"$s"; then
    pass "tree view: the demo's tasks under their parents, connected"
  else
    fail "tree view: missing names:$missing (or no tree lines / connection state)"
  fi
else
  fail "tree view: no 'supervisor' row within 10 s"
  exit 1 # nothing else can be checked
fi
screen >"$WORK/tree.txt"

# 2. a filter narrows the rows (flat list: only matching tasks)
keys t
wait_for 'NAME *$|NAME[^ (]' 3 || wait_gone 'NAME \(tree\)' 3
before=$(screen | grep -cE '^ +[0-9]+ (ready|running|waiting)')
keys /
wait_for 'Filter: ' 3 || fail "filter: no prompt after /"
keys -l lease_keeper
keys Enter
if wait_for 'Filter: lease_keeper' 3 && wait_gone 'supervisor' 3; then
  rows=$(screen | grep -E '^ +[0-9]+ (ready|running|waiting)')
  n=$(grep -c . <<<"$rows")
  if [ "$n" -ge 1 ] && [ "$n" -lt "$before" ] && ! grep -qv 'lease_keeper' <<<"$rows"; then
    pass "filter: $before rows narrowed to $n, all lease_keeper"
  else
    fail "filter: $before rows -> $n rows, or rows other than lease_keeper"
  fi
else
  fail "filter: rows not narrowed to lease_keeper"
fi

# 3. the detail view of the selected lease_keeper: its stack, with the demo's functions
keys Enter
if wait_for 'Current stack' 5 && wait_for '#0 0x[0-9a-f]+ in lease_keeper' 5; then
  if screen | grep -q 'Created at' && screen | grep -Eq 'in (grant_lease_and_forget|render_page)'; then
    pass "detail view: current stack in lease_keeper, created by grant_lease_and_forget"
  else
    fail "detail view: no creation backtrace with the demo's functions"
  fi
else
  fail "detail view: no current stack in lease_keeper"
fi
screen >"$WORK/detail.txt"

# back (Esc), clear the filter (Esc): the other tasks are back
keys Escape
sleep 0.3
keys Escape
if wait_for 'supervisor' 3; then pass "Esc: back to the list, filter cleared"; else fail "Esc"; fi

# 4. events: the demo's leak records as they happen (rows of the events table: the header line
# of every view also names the kinds, so the table's own heading and rows are what is looked for)
keys e
if wait_for 'WHAT \(newest first\)' 5 &&
   wait_for '^ *[^ ]+ +(destroyed_pending|unretrieved_error) +[0-9]+ ' 5; then
  pass "events view: leak records"
else
  fail "events view: no events table, or no leak record in it"
fi
keys Escape

# 5. help
keys '?'
if wait_for 'Everywhere' 3 && screen | grep -q 'filter by name or function'; then
  pass "help screen"
else
  fail "help screen"
fi
keys Escape
wait_for 'NAME' 3 || fail "Esc from help: not back to the main view"

# 6. quit: the shell prompt back and the terminal in its normal modes
keys q
if wait_for 'E2E-PROMPT\$ *$' 5 && wait_gone 'taskscope-top +demo' 3; then
  # The four modes, sorted, on a line of their own: "-echo" (or a missing mode) cannot match.
  keys "echo EXIT=\$?; echo MODES=\$(stty -a | tr -s '; ' '\n\n' | grep -Ex -- '-?(echo|icanon|icrnl|opost)' | LC_ALL=C sort | tr '\n' ' ')" Enter
  if wait_for 'EXIT=0' 3 && wait_for '^MODES=echo icanon icrnl opost *$' 3; then
    pass "quit: exit status 0, prompt back, terminal restored (echo, icanon, icrnl, opost)"
  else
    fail "quit: exit status or terminal modes wrong"
  fi
else
  fail "quit: the prompt did not come back"
fi

# 7. record 3 s and replay
REC=$WORK/demo.rec
if "$BIN/taskscope" record "$SERVER_PID" -o "$REC" --duration 3 2>"$WORK/record.err"; then
  if head -1 "$REC" | grep -q '"format":"taskscope-recording","version":1' &&
     [ "$(wc -l <"$REC")" -ge 3 ]; then
    pass "record: $(($(wc -l <"$REC") - 1)) messages in $REC"
  else
    fail "record: bad file: $(head -c 200 "$REC")"
  fi
else
  fail "record: exit status $?: $(cat "$WORK/record.err")"
fi
keys clear Enter
keys "$TOP --replay $REC" Enter
if wait_for 'REPLAY [0-9:]+ / [0-9:]+ x' 5 && wait_for 'supervisor' 5 &&
   screen | grep -q 'pool_worker'; then
  pass "replay: the recorded tasks, with the replay clock"
else
  fail "replay: no REPLAY header or no recorded tasks"
fi
keys p
wait_for 'PAUSED|END' 3 && pass "replay: p pauses" || fail "replay: p does not pause"
screen >"$WORK/replay.txt"
keys q
wait_for 'E2E-PROMPT\$ *$' 5 || fail "replay: q did not quit"

# 8. a recording of another version is refused, naming both versions
sed '1s/"version":1/"version":99/' "$REC" >"$WORK/v99.rec"
out=$("$TOP" --replay "$WORK/v99.rec" 2>&1)
rc=$?
if [ $rc -eq 3 ] && grep -q 'version 99' <<<"$out" && grep -q 'version 1' <<<"$out"; then
  pass "wrong version refused: $out"
else
  fail "wrong version: exit $rc: $out"
fi

# 9. attaching by PID to a process whose socket is not in the caller's socket directory: one
# started with TASKSCOPE_OPTIONS=socket=PATH (found among the sockets it listens on), and, as
# root, one run by another user (found in that user's socket directory).
# attach_by_pid WHAT PID: taskscope-top PID shows the demo's tree, then quits.
attach_by_pid() {
  local what=$1 pid=$2
  keys clear Enter
  keys "$TOP $pid" Enter
  if wait_for 'supervisor' 10 && screen | grep -q "pid $pid"; then
    pass "attach by pid: $what"
  else
    fail "attach by pid: $what (pid $pid)"
  fi
  keys q
  wait_for 'E2E-PROMPT\$ *$' 5 || fail "attach by pid ($what): q did not quit"
}
# wait_socket PATH: until PATH is a socket (5 s at most).
wait_socket() {
  local i
  for ((i = 0; i < 50; i++)); do [ -S "$1" ] && return 0; sleep 0.1; done
  return 1
}
if [ "${TUI_E2E_SERVER:-demo}" != fake ]; then
  TASKSCOPE_OPTIONS=socket=$WORK/elsewhere.sock "$BIN/demo" --duration 30 --quiet \
    >"$WORK/elsewhere.out" 2>&1 &
  ELSEWHERE_PID=$!
  if wait_socket "$WORK/elsewhere.sock"; then
    sleep 0.5
    attach_by_pid "socket=PATH" "$ELSEWHERE_PID"
  else
    fail "socket=PATH: the demo made no socket at $WORK/elsewhere.sock"
  fi
  kill "$ELSEWHERE_PID" 2>/dev/null
  wait "$ELSEWHERE_PID" 2>/dev/null
  if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    chmod 0755 "$WORK" # the other user runs the demo from here
    env -u XDG_RUNTIME_DIR setpriv --reuid=65534 --regid=65534 --clear-groups \
      "$BIN/demo" --duration 30 --quiet >"$WORK/nobody.out" 2>&1 &
    NOBODY_PID=$!
    if wait_socket "/tmp/taskscope-65534/$NOBODY_PID.sock"; then
      sleep 0.5
      attach_by_pid "root attaching to another user's process" "$NOBODY_PID"
      if "$BIN/taskscope" ps "$NOBODY_PID" 2>&1 | grep -q supervisor; then
        pass "taskscope ps: root attaching to another user's process"
      else
        fail "taskscope ps $NOBODY_PID (another user's process) as root"
      fi
    else
      fail "another user's demo made no socket in /tmp/taskscope-65534/: $(cat "$WORK/nobody.out")"
    fi
    kill "$NOBODY_PID" 2>/dev/null
    wait "$NOBODY_PID" 2>/dev/null
  else
    echo "note: not root (or no setpriv): attaching to another user's process not checked"
  fi
fi

if [ -n "${TUI_E2E_KEEP:-}" ]; then
  cp "$WORK"/tree.txt "$WORK"/detail.txt "$WORK"/replay.txt "$TUI_E2E_KEEP"/ 2>/dev/null
fi
if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all taskscope-top end-to-end checks passed"
