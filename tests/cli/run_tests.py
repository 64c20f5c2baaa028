#!/usr/bin/env python3
"""Tests of the `taskscope` CLI, against tests/cli/fake_server.py and (e2e_demo) the real demo.

    run_tests.py TASKSCOPE_BINARY GROUP [BIN_DIR]

GROUP is one of the groups below (each is one CTest test, cli_<group>). Exit status: 0 all
passed, 1 a failure, 77 skipped (e2e_demo when the demo is not built). With CI set in the
environment (CI=true, as GitHub Actions and GitLab set it) a skip is a failure.
"""
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fake_server import FakeServer  # noqa: E402

CLI = None
SKIP = 77


class Skip(Exception):
    pass


def in_ci():
    """CI=true (GitHub Actions, GitLab): skipping is not allowed there."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


class Result:
    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.out, self.err, self.elapsed = args, rc, out, err, elapsed

    def __repr__(self):
        return "taskscope %s -> rc %s (%.2fs)\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.rc, self.elapsed, self.out[:3000], self.err[:3000])

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise AssertionError("stdout is not JSON (%s): %r" % (e, self))


def check(cond, what, res=None):
    if not cond:
        raise AssertionError(what + ("\n%r" % res if res is not None else ""))


def expect_rc(res, rc):
    check(res.rc == rc, "expected exit %d" % rc, res)
    check(res.rc >= 0, "killed by a signal", res)


class Env:
    """A private XDG_RUNTIME_DIR and the servers and processes of one test."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tscli.")
        self.xdg = os.path.join(self.tmp, "xdg")
        self.sockdir = os.path.join(self.xdg, "taskscope")
        os.makedirs(self.sockdir, mode=0o700)
        os.chmod(self.xdg, 0o755)
        self.servers = []
        self.procs = []
        self.env = dict(os.environ)
        for k in ("NO_COLOR", "TASKSCOPE_OPTIONS", "LANGUAGE"):
            self.env.pop(k, None)
        self.env.update({"XDG_RUNTIME_DIR": self.xdg, "LC_ALL": "C.UTF-8", "TERM": "xterm"})

    def server(self, scenario="normal", path=None, pid=None, **kw):
        pid = os.getpid() if pid is None else pid
        path = path or os.path.join(self.sockdir, "%d.sock" % pid)
        s = FakeServer(path, scenario, pid=pid, **kw).start()
        self.servers.append(s)
        return s

    def sleeper(self):
        p = subprocess.Popen(["sleep", "120"])
        self.procs.append(p)
        return p.pid

    def stale_socket(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()  # the file stays; nothing listens

    def run(self, *args, env=None, timeout=60, preexec=None):
        e = dict(self.env)
        if env:
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        t0 = time.monotonic()
        p = subprocess.run([CLI] + list(args), env=e, capture_output=True, timeout=timeout,
                           preexec_fn=preexec)
        el = time.monotonic() - t0
        return Result(list(args), p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"), el)

    def run_pty(self, *args, env=None, timeout=30):
        """Runs with stdout on a terminal; returns the bytes written there."""
        e = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        master, slave = pty.openpty()
        p = subprocess.Popen([CLI] + list(args), env=e, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                # drain what is left
                try:
                    while select.select([master], [], [], 0.1)[0]:
                        chunk = os.read(master, 65536)
                        if not chunk:
                            break
                        out += chunk
                except OSError:
                    pass
                break
        os.close(master)
        p.wait(10)
        return p.returncode, out

    def close(self):
        for s in self.servers:
            s.stop()
        for p in self.procs:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", self.tmp])

    def violations(self):
        v = []
        for s in self.servers:
            v += s.violations
        return v


def dead_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + 1


# ------------------------------------------------------------------------------------------
# usage
# ------------------------------------------------------------------------------------------

def test_usage_errors(env):
    cases = [
        ([], "no command"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["ps"], "'ps' needs PID"),
        (["where", "123"], "'where' needs PID TASK"),
        (["ps", "1", "2"], "too many arguments"),
        (["list", "extra"], "too many arguments"),
        (["ps", "abc"], "neither a process id nor a socket path"),
        (["ps", "0"], "neither a process id"),
        (["ps", "--bogus", "1"], "unknown option '--bogus'"),
        (["ps", "-5"], "unknown option '-5'"),
        (["ps", "--ascii", "1"], "option --ascii does not apply to 'ps'"),
        (["list", "--pending"], "option --pending does not apply to 'list'"),
        (["ps", "--color=sometimes", "1"], "--color takes auto, always or never"),
        (["ps", "--timeout=abc", "1"], "--timeout takes seconds"),
        (["ps", "--timeout=0", "1"], "--timeout takes seconds"),
        (["ps", "1", "--timeout"], "--timeout needs a value"),
        (["help", "nosuch"], "unknown command 'nosuch'"),
    ]
    for args, msg in cases:
        r = env.run(*args)
        expect_rc(r, 2)
        check(msg in r.err, "stderr should say %r" % msg, r)
        check(re.search(r"^usage: taskscope", r.err, re.M), "a usage line", r)
        check(r.out == "", "nothing on stdout", r)
    r = env.run("where", "1")
    check("usage: taskscope where [--json] [--color=WHEN] [--timeout=SECONDS] PID TASK" in r.err,
          "the command's usage line", r)


def test_help_version(env):
    r = env.run("--help")
    expect_rc(r, 0)
    for word in ("list", "ps PID", "tree PID", "where PID TASK", "leaks PID", "exit status",
                 "--json", "--color", "--timeout", "NO_COLOR", "XDG_RUNTIME_DIR"):
        check(word in r.out, "global help mentions %r" % word, r)
    for args in (["ps", "--help"], ["help", "ps"], ["--help", "ps"], ["ps", "-h"]):
        r = env.run(*args)
        expect_rc(r, 0)
        check(r.out.startswith("usage: taskscope ps"), "ps help", r)
        check('"format":"taskscope-ps"' in r.out.replace("\\", ""), "ps help documents JSON", r)
    for cmd in ("list", "tree", "where", "leaks"):
        r = env.run(cmd, "--help")
        expect_rc(r, 0)
        check(r.out.startswith("usage: taskscope " + cmd), "%s help" % cmd, r)
    r = env.run("leaks", "--help")
    check("exit status is 0" in r.out, "leaks help says it exits 0", r)
    r = env.run("--version")
    expect_rc(r, 0)
    check(re.fullmatch(r"taskscope \d+\.\d+\.\d+ \(inspector protocol 1\)\n", r.out),
          "version line", r)


# ------------------------------------------------------------------------------------------
# list
# ------------------------------------------------------------------------------------------

def columns_aligned(lines, header):
    """Each header word's start column is where the cells of left-aligned columns start."""
    return [m.start() for m in re.finditer(r"\S+", header)]


def others_sockets():
    """Sockets of other programs in /tmp/taskscope-<uid>/, which `list` also scans."""
    d = "/tmp/taskscope-%d" % os.getuid()
    try:
        return [f for f in os.listdir(d) if f.endswith(".sock")]
    except OSError:
        return []


def ours(env, lines):
    """The rows of `list` output about this test's socket directory (and the header)."""
    return [l for l in lines if l.lstrip().startswith("PID") or env.sockdir + "/" in l]


def test_list_empty(env):
    r = env.run("list")
    expect_rc(r, 0)
    # Other tests running in parallel may have processes in /tmp/taskscope-<uid>/ at any moment
    # (a check before or after the run would race them): the output must either say "none" or
    # list only processes of that shared directory, never one of this test's empty directory.
    if "no taskscope processes found" in r.out:
        check(env.sockdir in r.out, "empty list names the directories scanned", r)
    else:
        shared = "/tmp/taskscope-%d/" % os.getuid()
        rows = [l for l in r.out.splitlines()[1:] if l.strip()]
        check(rows and all(shared in l for l in rows), "only other programs' processes", r)
    r = env.run("list", "--json")
    expect_rc(r, 0)
    j = r.json()
    check(not [p for p in j["processes"] if p["socket"].startswith(env.sockdir)] and
          env.sockdir in j["socket_dirs"] and
          "/tmp/taskscope-%d" % os.getuid() in j["socket_dirs"], "empty JSON list", r)


def test_list(env):
    srv = env.server("normal")
    sleeper = env.sleeper()
    env.server("v2", pid=sleeper)
    dead = dead_pid()
    env.stale_socket(os.path.join(env.sockdir, "%d.sock" % dead))
    open(os.path.join(env.sockdir, "77.sock"), "w").close()  # not a socket: ignored
    open(os.path.join(env.sockdir, "notes.txt"), "w").close()
    r = env.run("list", env={"LC_ALL": "C"})
    expect_rc(r, 0)
    lines = ours(env, r.out.splitlines())
    check(len(lines) == 4, "a header and three processes", r)
    check(re.fullmatch(r"\s*PID  PROGRAM\s+TASKS  WAITING  LEAKS  SOCKET", lines[0]), "header", r)
    sock_col = lines[0].index("SOCKET")
    rows = {int(l.split()[0]): l for l in lines[1:]}
    me = rows[os.getpid()]
    check(re.search(r"\bfakeapp\s+11\s+9\s+3\s+", me), "the live process's counts", r)
    check(me[sock_col:] == srv.path, "SOCKET column aligned", r)
    check("(stale: process gone)" in rows[dead], "stale socket marked", r)
    check("(speaks protocol 2)" in rows[sleeper], "version mismatch marked", r)
    for l in lines[1:]:
        check(l[sock_col - 2:sock_col] == "  " and l[sock_col] == "/", "aligned: %r" % l, r)
    # PID column right-aligned: all rows end the PID at the same column.
    ends = {len(l) - len(l.lstrip()) + len(l.split()[0]) for l in r.out.splitlines()}
    check(len(ends) == 1, "PID column right-aligned", r)

    r = env.run("list", "--json")
    expect_rc(r, 0)
    procs = {p["pid"]: p for p in r.json()["processes"]}
    p = procs[os.getpid()]
    check(p["status"] == "ok" and p["program"] == "fakeapp" and p["tasks"] == 11 and
          p["waiting"] == 9 and p["leaks"] == 3 and p["socket"] == srv.path and
          p["error"] is None, "ok entry", r)
    check(procs[dead]["status"] == "stale" and procs[dead]["tasks"] is None, "stale entry", r)
    check(procs[sleeper]["status"] == "error" and "protocol 2" in procs[sleeper]["error"],
          "version entry", r)
    check(not env.violations(), "protocol violations: %s" % env.violations())


# ------------------------------------------------------------------------------------------
# ps
# ------------------------------------------------------------------------------------------

def test_ps(env):
    srv = env.server("normal")
    pid = os.getpid()
    r = env.run("ps", str(pid))
    expect_rc(r, 0)
    head = r.out.splitlines()[0]
    check(head == "fakeapp (pid %d): 11 live tasks (1 ready, 1 running, 9 waiting), 50 finished, "
          "loop lag 0.4 ms, 3 dropped events" % pid, "header line", r)
    for s in ("leaks so far: 0 pending, 2 destroyed_pending, 1 unretrieved_error",
              "WARNING: the loop of runtime 1 is stalled: it has not turned for 250 ms",
              "    #0 0x401a2b in compress_report at /src/fakeapp.c:211",
              "    #1 0x401c00 in uv__run_timers (/usr/lib/libuv.so.1)",
              "warning (50ms ago): loop stalled for 250 ms"):
        check(s in r.out, "ps shows %r" % s, r)
    lines = r.out.splitlines()
    hi = [i for i, l in enumerate(lines) if l.startswith("ID  PARENT")]
    check(len(hi) == 1, "one table header", r)
    table = lines[hi[0]:]
    check(re.fullmatch(r"ID  PARENT  STATE\s+AGE  SWITCHES  AWAITING\s+NAME", table[0]),
          "table header", r)
    name_col = table[0].index("NAME")
    await_col = table[0].index("AWAITING")
    state_col = table[0].index("STATE")
    rows = table[1:]
    check(len(rows) == 11, "11 rows", r)
    ids = [int(l.split()[0]) for l in rows]
    check(ids == sorted(ids), "sorted by id", r)
    for l in rows:
        check(l[name_col - 2:name_col] == "  " and l[name_col] != " ", "NAME aligned: %r" % l, r)
        check(l[await_col - 2:await_col] == "  " and l[await_col] != " ", "AWAITING aligned", r)
        check(l[state_col] != " ", "STATE aligned: %r" % l, r)
    byid = {int(l.split()[0]): l for l in rows}
    check(byid[9][await_col:].startswith("task 12 ") and byid[9].endswith("http_connection"),
          "awaiting a task", r)
    check(byid[13][await_col:].startswith("future 12"), "awaiting a future", r)
    check(byid[12][await_col:].startswith("- "), "running: awaits nothing", r)
    check(re.match(r"\s*1\s+-\s+waiting\s+1m05s\s+2\s+event 3\s+main$", byid[1]), "row 1", r)
    check(re.match(r"\s*21\s+17\s+waiting\s+29\.0s\s+7\s+sleep\s+worker$", byid[21]), "row 21", r)
    check(byid[30].endswith("na\u00efve \\x1b[31mred\\nline"), "a name is escaped", r)
    check("\x1b" not in r.out, "no escape sequence reaches the terminal", r)

    # By socket path, and options before the command.
    r2 = env.run("--color=never", "ps", srv.path)
    expect_rc(r2, 0)
    check(r2.out == r.out, "same output by socket path", r2)

    r = env.run("ps", str(pid), "--json")
    expect_rc(r, 0)
    j = r.json()
    check(j["format"] == "taskscope-ps" and j["version"] == 1 and j["pid"] == pid and
          j["program"] == "fakeapp" and j["time_ms"] == 100000, "ps JSON head", r)
    check(j["counts"] == {"live": 11, "ready": 1, "running": 1, "waiting": 9, "finished": 50,
                          "spawned": 61}, "ps JSON counts", r)
    check(j["dropped_events"] == 3 and j["leaks"]["destroyed_pending"] == 2 and
          j["runtimes"][0]["lag_ms"] == 0.4 and j["runtimes"][0]["stalled_ms"] == 250,
          "ps JSON runtimes", r)
    check(len(j["warnings"]) == 1 and j["warnings"][0]["kind"] == "loop_stalled", "warnings", r)
    t = {x["id"]: x for x in j["tasks"]}
    check([x["id"] for x in j["tasks"]] == sorted(t), "JSON tasks by id", r)
    check(t[1] == {"id": 1, "parent": None, "runtime": 1, "name": "main", "state": "waiting",
                   "age_ms": 65000, "switches": 2, "awaiting": {"kind": "event", "id": 3}},
          "task 1 JSON", r)
    check(t[21]["awaiting"] == {"kind": "sleep", "id": None}, "awaiting without id", r)
    check(t[12]["awaiting"] is None and t[12]["state"] == "running", "running task", r)
    check(t[30]["name"] == "na\u00efve \x1b[31mred\nline", "JSON keeps the name exactly", r)

    hello = [m for m in srv.received if m.get("type") == "hello"]
    check(hello and hello[0]["version"] == 1 and hello[0]["client"].startswith("taskscope "),
          "the client's hello: %r" % hello)
    reqs = [m for m in srv.received if m.get("type") == "snapshot"]
    check(reqs and all(isinstance(m.get("id"), int) for m in reqs), "requests carry ids")
    check(not env.violations(), "protocol violations: %s" % env.violations())


def test_ps_empty(env):
    env.server("empty")
    r = env.run("ps", str(os.getpid()))
    expect_rc(r, 0)
    check("0 live tasks (0 ready, 0 running, 0 waiting)" in r.out, "empty header", r)
    check(r.out.splitlines()[-1].startswith("ID  PARENT"), "an empty table", r)
    check("WARNING" not in r.out and "leaks so far" not in r.out, "no warnings", r)
    r = env.run("ps", str(os.getpid()), "--json")
    check(r.json()["tasks"] == [], "empty JSON", r)


# Large answers: a snapshot line of 64 KiB or more has its task array read by the CLI's fast
# path (inspector/cli/fastjson.c), smaller ones by jansson alone. The same snapshot, padded past
# that size with an unknown field at its end (after everything that is read, so error columns do
# not move), must give byte for byte the same output, exit status and messages, valid or not.

RAW_HEAD = ('{"type":"snapshot","id":@ID@,"time_ms":100000,"pid":%d,"program":"fakeapp",'
            '"runtimes":[{"id":1,"thread":1,"tasks":{"ready":0,"running":0,"waiting":0,'
            '"finished":0},"loop":{"iterations":1,"lag_ms":0.5,"stalled_ms":0,'
            '"stalled_stack":null},"dropped_events":0}],')
RAW_TAIL = ('"finished":[{"id":90,"parent":1,"runtime":1,"name":"gone","state":"done","error":0,'
            '"error_name":null,"created_ms":1,"finished_ms":2}],"leaks":[],"warnings":[],'
            '"stats":{"spawned":5,"finished":1,"dropped_events":0,"leaks":{"pending":0,'
            '"destroyed_pending":0,"unretrieved_error":0}}')


def raw_task(id, extra="", name='"t"', state='"waiting"', awaiting='{"kind":"future","id":7}'):
    return ('{"id":%s,"parent":1,"runtime":1,"name":%s,"state":%s,"awaiting":%s,'
            '"created_ms":98500,"first_run_ms":98501,"switches":3,"busy_ms":null,"group":null%s}'
            % (id, name, state, awaiting, extra))


def raw_tasks(*items):
    return '"tasks":[' + ",".join(items) + "]"


# (what, the "tasks" member and what is around it). Strings with every kind of escape (invalid
# UTF-8 bytes are written as surrogate escapes: see large_answer_doc), keys written with
# escapes, duplicate keys, unknown nested fields, reals, extreme integers; then wrong types, and
# JSON that jansson refuses (the fast path must step aside for it).
LARGE_ANSWER_CASES = [
    ("plain", raw_tasks(raw_task(1, awaiting="null"), raw_task(3), raw_task(2))),
    ("empty", raw_tasks()),
    ("whitespace", '"tasks" :\t[ \r' + raw_task(1).replace(",", " ,\t").replace(":", " : ") +
     " , " + raw_task(2) + " ] "),
    ("escapes", raw_tasks(
        raw_task(1, name=r'"a\"b\\c\/d\b\f\n\r\te"'),
        raw_task(2, name=r'"\u00e9\u20ac\ud83d\ude00 \u001b[31m \u007f"'),
        raw_task(3, name=r'"caf\u00e9 na\u00efve \u0000 after the NUL"'),
        raw_task(4, name='"raw UTF-8: \\u00e9 \u00e9 \u20ac \U0001f600 \x7f"'),
        raw_task(5, state=r'"w\u0061iting"', awaiting=r'{"kind":"\u0066uture","id":null}'))),
    ("escaped keys", raw_tasks(
        r'{"\u0069d":1,"n\u0061me":"k","st\u0061te":"ready","aw\u0061iting":null,'
        r'"\"quoted\"":1,"switches":2}')),
    ("duplicate keys", raw_tasks(raw_task(
        1, extra=',"id":11,"name":"second","state":"ready","awaiting":null,"switches":9,'
                 '"parent":null,"runtime":null'))),
    ("nested unknown fields", raw_tasks(raw_task(
        1, extra=r',"x":{"a":[1,2,{"b":"}]{[\\\""}],"c":[[],{}]},"y":[true,false,null,-1.5e3]'))),
    ("numbers", raw_tasks(
        raw_task(1, extra=',"created_ms":98000.25'),
        raw_task(2, extra=',"created_ms":-0,"switches":9223372036854775807'),
        raw_task(-9223372036854775808, extra=',"created_ms":1e2,"parent":-5'),
        raw_task(4, extra=',"created_ms":0.000001,"runtime":0'),
        raw_task(5, extra=',"created_ms":1.5E+3,"x":1e-400'),
        raw_task(6, extra=',"created_ms":null,"switches":null,"parent":null'))),
    ("deep unknown field", raw_tasks(raw_task(1, extra=',"deep":' + "[" * 300 + "]" * 300))),
    # a server's order: by last change (mostly by id, the changed ones last), and any order
    ("mostly sorted", raw_tasks(*[raw_task(i) for i in range(5, 250)],
                                *[raw_task(i) for i in (3, 150, 1, 251, 2)])),
    ("shuffled", raw_tasks(*[raw_task((i * 7919) % 250 + 1) for i in range(250)])),
    ("duplicate top-level tasks", '"tasks":5,' + raw_tasks(raw_task(1))),
    ("last tasks not an array", raw_tasks(raw_task(1)) + ',"tasks":"no"'),
    ("escaped top-level key", r'"t\u0061sks":[' + raw_task(1) + "]"),
    # the checks
    ("not an object", raw_tasks(raw_task(1), '"two"')),
    ("an array element", raw_tasks(raw_task(1), raw_task(2), "[1]")),
    ("null element", raw_tasks("null")),
    ("missing id", raw_tasks(raw_task(1), '{"state":"ready"}')),
    ("real id", raw_tasks(raw_task("1.0"))),
    ("string parent", raw_tasks(raw_task(1, extra=',"parent":"one"'))),
    ("bool runtime", raw_tasks(raw_task(1, extra=',"runtime":true'))),
    ("null state", raw_tasks(raw_task(1, state="null"))),
    ("missing state", raw_tasks('{"id":1}')),
    ("object name", raw_tasks(raw_task(1, name='{"a":1}'))),
    ("array created", raw_tasks(raw_task(1, extra=',"created_ms":[1]'))),
    ("string switches", raw_tasks(raw_task(1, extra=',"switches":"7"'))),
    ("awaiting not an object", raw_tasks(raw_task(1, awaiting='"future"'))),
    ("awaiting without kind", raw_tasks(raw_task(1, awaiting='{"id":1}'))),
    ("awaiting real id", raw_tasks(raw_task(1, awaiting='{"kind":"task","id":1.5}'))),
    ("duplicate ids", raw_tasks(raw_task(4), raw_task(2), raw_task(4))),
    ("tasks not an array", '"tasks":{"id":1}'),
    ("no tasks", '"tusks":[]'),
    # JSON that jansson refuses
    ("lone high surrogate", raw_tasks(raw_task(1, name=r'"\ud800x"'))),
    ("lone low surrogate", raw_tasks(raw_task(1, name=r'"\udc00"'))),
    ("bad second surrogate", raw_tasks(raw_task(1, name=r'"\ud800\u0041"'))),
    ("bad escape", raw_tasks(raw_task(1, name=r'"\x41"'))),
    ("short unicode escape", raw_tasks(raw_task(1, name=r'"\u12g4"'))),
    ("NUL in a key", raw_tasks(raw_task(1, extra=r',"a\u0000b":1'))),
    ("raw control character", raw_tasks(raw_task(1, name='"a\tb"'))),
    ("invalid UTF-8", raw_tasks(raw_task(1, name='"\udcc3("'))),
    ("overlong UTF-8", raw_tasks(raw_task(1, name='"\udcc0\udcaf"'))),
    ("UTF-8 surrogate", raw_tasks(raw_task(1, name='"\udced\udca0\udc80"'))),
    ("past U+10FFFF", raw_tasks(raw_task(1, name='"\udcf4\udc90\udc80\udc80"'))),
    ("truncated UTF-8", raw_tasks(raw_task(1, name='"\udce2\udc82"'))),
    ("integer overflow", raw_tasks(raw_task(9223372036854775808))),
    ("negative overflow", raw_tasks(raw_task(-9223372036854775809))),
    ("real overflow", raw_tasks(raw_task(1, extra=',"x":1e400'))),
    ("long real overflow", raw_tasks(raw_task(1, extra=',"x":' + "9" * 320 + ".5"))),
    ("leading zero", raw_tasks(raw_task("01"))),
    ("bare minus", raw_tasks(raw_task(1, extra=',"x":-'))),
    ("dot without digits", raw_tasks(raw_task(1, extra=',"x":1.'))),
    ("trailing comma", raw_tasks(raw_task(1))[:-1] + ",]"),
    ("trailing comma in a task", '"tasks":[' + raw_task(1)[:-1] + ",}]"),
    ("bad literal", raw_tasks(raw_task(1, extra=',"x":nul'))),
    ("literal with letters", raw_tasks(raw_task(1, extra=',"x":trueish'))),
    ("missing colon", raw_tasks('{"id" 1,"state":"ready"}')),
    ("unclosed array", '"tasks":[' + raw_task(1)),
]


def large_answer_doc(pid, middle, big):
    doc = RAW_HEAD % pid + middle + "," + RAW_TAIL
    if big:
        doc += ',"zz_padding":"' + "x" * 70000 + '"'
    return (doc + "}\n").encode("utf-8", "surrogateescape")


def test_large_answers(env):
    srv = env.server("raw")
    pid = str(os.getpid())
    valid = 0
    for what, middle in LARGE_ANSWER_CASES:
        for cmd in (["ps", pid, "--json"], ["ps", pid], ["tree", pid], ["tree", pid, "--json"],
                    ["where", pid, "t"]):
            res = []
            for big in (False, True):
                srv.snapshot_text = large_answer_doc(os.getpid(), middle, big)
                check((len(srv.snapshot_text) >= 65536) == big,
                      "%s: only the padded answer is large" % what)
                res.append(env.run(*cmd))
            small, large = res
            check(small.rc == large.rc and small.out == large.out and small.err == large.err,
                  "%s: `%s` differs between a small and a large answer:\nsmall %r\nlarge %r"
                  % (what, " ".join(cmd), small, large))
            check(small.rc >= 0, "%s: killed by a signal" % what, small)
            valid += cmd[0] == "ps" and small.rc == 0
    check(valid > 20, "most cases are valid snapshots (%d)" % valid)
    # Some outputs checked for themselves (the comparison above only proves sameness).
    cases = dict(LARGE_ANSWER_CASES)
    srv.snapshot_text = large_answer_doc(os.getpid(), cases["escapes"], True)
    r = env.run("ps", pid, "--json")
    expect_rc(r, 0)
    j = r.json()
    names = [t["name"] for t in j["tasks"]]
    check(names[:4] == ['a"b\\c/d\b\f\n\r\te', "\u00e9\u20ac\U0001f600 \x1b[31m \x7f",
                        "caf\u00e9 na\u00efve ",
                        "raw UTF-8: \u00e9 \u00e9 \u20ac \U0001f600 \x7f"], "decoded names", r)
    check(j["tasks"][4]["state"] == "waiting" and
          j["tasks"][4]["awaiting"] == {"kind": "future", "id": None}, "escaped values", r)
    check('"name":"\u00e9\u20ac' in r.out and "\\u001B[31m" in r.out, "jansson's escapes", r)
    srv.snapshot_text = large_answer_doc(os.getpid(), cases["numbers"], True)
    r = env.run("ps", pid, "--json")
    expect_rc(r, 0)
    t = {x["id"]: x for x in r.json()["tasks"]}
    check(t[1]["age_ms"] == 1999.75 and t[2]["switches"] == 9223372036854775807 and
          t[-9223372036854775808]["age_ms"] == 99900 and t[6]["age_ms"] is None and
          '"age_ms":99999.999999,' in r.out, "numbers", r)
    srv.snapshot_text = large_answer_doc(os.getpid(), cases["string parent"], True)
    r = env.run("ps", pid)
    expect_rc(r, 3)
    check("tasks[0].parent: expected an integer or null, got a string" in r.err, "message", r)
    check(not env.violations(), "protocol violations: %s" % env.violations())


# ------------------------------------------------------------------------------------------
# tree
# ------------------------------------------------------------------------------------------

TREE_UTF8 = """\
fakeapp (pid {pid}): 11 live tasks
1 main [waiting] \u2192 awaits event 3
\u2514\u2500 2 supervisor [waiting] \u2192 awaits group 1
   \u251c\u2500 5 http_server [waiting] \u2192 awaits io 4
   \u2502  \u2514\u2500 9 http_connection [waiting] \u2192 awaits task 12 (render_page)
   \u2502     \u2514\u2500 12 render_page [running]
   \u251c\u2500 13 fetch_page [waiting] \u2192 awaits future 12
   \u2514\u2500 14 fetch_page [ready]
(parent 17 finished: crawler [failed])
\u251c\u2500 20 worker [waiting] \u2192 awaits channel 2
\u2514\u2500 21 worker [waiting] \u2192 awaits sleep
   \u2514\u2500 22 watch [waiting] \u2192 awaits task 43 (parse, finished)
(parent 40 finished)
\u2514\u2500 30 na\u00efve \\x1b[31mred\\nline [waiting] \u2192 awaits yield
"""

TREE_ASCII = """\
fakeapp (pid {pid}): 11 live tasks
1 main [waiting] -> awaits event 3
\\- 2 supervisor [waiting] -> awaits group 1
   |- 5 http_server [waiting] -> awaits io 4
   |  \\- 9 http_connection [waiting] -> awaits task 12 (render_page)
   |     \\- 12 render_page [running]
   |- 13 fetch_page [waiting] -> awaits future 12
   \\- 14 fetch_page [ready]
(parent 17 finished: crawler [failed])
|- 20 worker [waiting] -> awaits channel 2
\\- 21 worker [waiting] -> awaits sleep
   \\- 22 watch [waiting] -> awaits task 43 (parse, finished)
(parent 40 finished)
\\- 30 {name} [waiting] -> awaits yield
"""


def test_tree(env):
    env.server("normal")
    pid = os.getpid()
    r = env.run("tree", str(pid), env={"LC_ALL": "C.UTF-8"})
    expect_rc(r, 0)
    check(r.out == TREE_UTF8.format(pid=pid), "UTF-8 tree", r)
    r = env.run("tree", str(pid), env={"LC_ALL": "C"})
    expect_rc(r, 0)
    check(r.out == TREE_ASCII.format(pid=pid, name="na\\xc3\\xafve \\x1b[31mred\\nline"),
          "ASCII tree in the C locale", r)
    r = env.run("tree", "--ascii", str(pid), env={"LC_ALL": "C.UTF-8"})
    expect_rc(r, 0)
    check(r.out == TREE_ASCII.format(pid=pid, name="na\u00efve \\x1b[31mred\\nline"),
          "ASCII tree with --ascii", r)

    r = env.run("tree", str(pid), "--json")
    expect_rc(r, 0)
    j = r.json()
    check(j["format"] == "taskscope-tree" and j["pid"] == pid and j["program"] == "fakeapp",
          "tree JSON head", r)
    roots = j["roots"]
    check(len(roots) == 3, "three roots", r)
    main = roots[0]
    check(main["id"] == 1 and main["awaiting"] == {"kind": "event", "id": 3}, "root", r)
    sup = main["children"][0]
    check([c["id"] for c in sup["children"]] == [5, 13, 14], "supervisor's children", r)
    conn = sup["children"][0]["children"][0]
    check(conn["awaiting"] == {"kind": "task", "id": 12, "name": "render_page"},
          "awaited task named", r)
    check(conn["children"][0]["children"] == [], "a leaf", r)
    o = roots[1]
    check(o["finished_parent"] == 17 and o["name"] == "crawler" and o["state"] == "failed" and
          [c["id"] for c in o["children"]] == [20, 21] and
          o["children"][1]["children"][0]["id"] == 22, "orphans of 17", r)
    check(roots[2]["finished_parent"] == 40 and roots[2]["name"] is None and
          roots[2]["children"][0]["name"] == "na\u00efve \x1b[31mred\nline", "orphans of 40", r)


def test_tree_cycle_and_deep(env):
    env.server("cycle")
    pid = os.getpid()
    r = env.run("tree", str(pid), "--ascii")
    expect_rc(r, 0)
    for tid in (1, 2, 3, 4, 5):
        n = len(re.findall(r"(^|[ -]) ?%d [a-z]+ \[" % tid, r.out, re.M))
        check(n == 1, "task %d shown once" % tid, r)
    check("(tasks whose parents form a loop)" in r.out, "loop group", r)
    r = env.run("tree", str(pid), "--json")
    expect_rc(r, 0)
    j = r.json()
    check(j["roots"][-1].get("cycle") is True, "JSON loop group", r)
    for s in env.servers:
        s.stop()
    env.servers = []

    env.server("deep", size=2000)
    r = env.run("tree", str(pid), "--ascii")
    expect_rc(r, 0)
    lines = r.out.splitlines()
    check(len(lines) == 2001, "2000 nested tasks", r)
    check(lines[-1] == "   " * 1998 + "\\- 2000 level [waiting] -> awaits task 2001", "deepest", r)
    for s in env.servers:
        s.stop()
    env.servers = []

    env.server("deep", size=100000)
    r = env.run("tree", str(pid), "--json", timeout=120)
    expect_rc(r, 0)
    check(r.out.count('"id":') == 200000 - 1 + 1 and r.out.endswith("]}]}\n"),
          "100k nested tasks in JSON", Result(r.args, r.rc, r.out[:300], r.err, r.elapsed))
    depth = maxdepth = 0
    for ch in r.out:  # balanced brackets, outside strings (names here have none)
        if ch in "[{":
            depth += 1
            maxdepth = max(maxdepth, depth)
        elif ch in "]}":
            depth -= 1
            check(depth >= 0, "balanced")
    check(depth == 0 and maxdepth > 200000, "nested 100k deep")


# ------------------------------------------------------------------------------------------
# where
# ------------------------------------------------------------------------------------------

def test_where(env):
    srv = env.server("normal")
    pid = str(os.getpid())
    r = env.run("where", pid, "13")
    expect_rc(r, 0)
    check(r.out == (
        'task 13 "fetch_page" [waiting], awaiting future 12, parent 2, 7 switches\n'
        "suspended at:\n"
        "  #0 0x55d0c0a1b2c3 in fetch_page at /src/fakeapp.c:42\n"
        "  #1 0x55d0c0a1b400 in ?? (/usr/lib/libfoo.so)\n"
        "  #2 0x55d0c0a1b500 in supervisor_loop at /src/fakeapp.c:77\n"
        "created at:\n"
        "  #0 0x55d0c0a1c000 in spawn_fetch_page at /src/fakeapp.c:99\n"), "where 13", r)
    r = env.run("where", pid, "http_server")
    expect_rc(r, 0)
    check(r.out.startswith('task 5 "http_server"'), "by unique name", r)
    r = env.run("where", pid, "12")
    expect_rc(r, 0)
    check("suspended at: (running now: it has no suspended stack)" in r.out, "running", r)
    check("spawn_render_page" in r.out, "running task's creation stack", r)

    for args, msg in ((["fetch_page"], "'fetch_page' is ambiguous: 2 live tasks have that name "
                                       "(ids 13, 14)"),
                      (["nosuch"], "no live task named 'nosuch'"),
                      (["crawler"], "no live task named 'crawler' (1 recently finished)"),
                      (["999"], "no live task 999"),
                      (["17"], 'task 17 "crawler" is not live: it finished 2.0s ago (failed, '
                               'TSK_EFAILED)')):
        r = env.run("where", pid, *args)
        expect_rc(r, 2)
        check(msg in r.err, "where %s: %r" % (args, msg), r)

    r = env.run("where", pid, "13", "--json")
    expect_rc(r, 0)
    j = r.json()
    check(j["format"] == "taskscope-where" and j["task"]["id"] == 13 and
          j["running"] is False and j["method"] == "loop" and len(j["suspended_at"]) == 3 and
          j["suspended_at"][1]["function"] is None and
          j["created_at"][0]["function"] == "spawn_fetch_page", "where JSON", r)
    r = env.run("where", pid, "render_page", "--json")
    j = r.json()
    check(j["running"] is True and j["suspended_at"] is None, "running JSON", r)
    w = [m for m in srv.received if m.get("type") == "where"]
    check(w and all(isinstance(m["task"], int) and 0 < m["timeout_ms"] <= 2500 for m in w),
          "where requests: %r" % w)
    check(not env.violations(), "protocol violations: %s" % env.violations())


# ------------------------------------------------------------------------------------------
# leaks
# ------------------------------------------------------------------------------------------

LEAKS_TEXT = """\
taskscope: Task is stranded: nothing can ever complete what it awaits (destroyed_pending)
  task 50 "session" (2 tasks like this; ids 50, 51)
  spawned by 2 "supervisor" <- 1 "main"
  state: destroyed, waiting on future 7 (age 420 ms)
  reason: stranded: every completer of future 7 is gone
  created at:
    #0 0x401000 in spawn_session at /src/fakeapp.c:88
    #1 0x401100 in session_manager at /src/fakeapp.c:120
  suspended at:
    #0 0x402000 in authenticate_wait at /src/fakeapp.c:140
  last completer dropped at:
    #0 0x403000 in auth_cache_miss at /src/fakeapp.c:160

taskscope: Task exception was never retrieved
  task 60 "send_receipt"
  spawned by 2 "supervisor"
  state: failed (age 5 ms)
  reason: it failed and its handle was released without join
  error: TSK_EFAILED (task failed): SMTP 451
  created at:
    #0 0x404000 in send_receipt_fire_and_forget at /src/fakeapp.c:300
  raised at:
    #0 0x405000 in smtp_send at /src/fakeapp.c:310

SUMMARY: taskscope: 0 pending, 2 destroyed_pending, 1 unretrieved_error (0 suppressed)
"""


def test_leaks(env):
    srv = env.server("normal")
    pid = str(os.getpid())
    r = env.run("leaks", pid)
    expect_rc(r, 0)
    check(r.out == LEAKS_TEXT, "leaks text", r)
    r = env.run("leaks", pid, "--json")
    expect_rc(r, 0)
    j = r.json()
    check(j["format"] == "taskscope-report" and j["version"] == 1 and len(j["leaks"]) == 3 and
          j["summary"]["destroyed_pending"] == 2, "leaks JSON", r)
    r = env.run("leaks", "--pending", pid)
    expect_rc(r, 0)
    check(r.out.count("taskscope: Task is still pending at inspector query") == 2,
          "pending records", r)
    check("SUMMARY: taskscope: 2 pending, 2 destroyed_pending, 1 unretrieved_error" in r.out,
          "pending summary", r)
    lk = [m for m in srv.received if m.get("type") == "leaks"]
    check(len(lk) == 3 and lk[2].get("pending") is True and "pending" not in lk[0],
          "leaks requests: %r" % lk)
    check(not env.violations(), "protocol violations: %s" % env.violations())


def test_leaks_empty(env):
    env.server("empty")
    r = env.run("leaks", str(os.getpid()))
    expect_rc(r, 0)
    check(r.out == "SUMMARY: taskscope: 0 pending, 0 destroyed_pending, 0 unretrieved_error "
          "(0 suppressed)\n", "no leaks", r)


# ------------------------------------------------------------------------------------------
# cannot attach
# ------------------------------------------------------------------------------------------

def test_attach_no_process(env):
    dead = dead_pid()
    for cmd in (["ps"], ["tree"], ["leaks"], ["where"]):
        args = cmd + [str(dead)] + (["1"] if cmd == ["where"] else [])
        r = env.run(*args)
        expect_rc(r, 3)
        check("no such process: %d" % dead in r.err, "no such process", r)
    env.stale_socket(os.path.join(env.sockdir, "%d.sock" % dead))
    r = env.run("ps", str(dead))
    expect_rc(r, 3)
    check("no such process: %d (its socket %s/%d.sock is stale)" % (dead, env.sockdir, dead)
          in r.err, "stale socket of a gone process", r)


def test_attach_not_instrumented(env):
    pid = env.sleeper()
    r = env.run("ps", str(pid))
    expect_rc(r, 3)
    check("process %d (sleep) has no taskscope inspector socket" % pid in r.err and
          env.sockdir in r.err and "TASKSCOPE_OPTIONS=socket=" in r.err, "not instrumented", r)
    r = env.run("ps", str(pid), env={"XDG_RUNTIME_DIR": None})
    expect_rc(r, 3)
    check("/tmp/taskscope-%d/" % os.getuid() in r.err, "the /tmp directory without XDG", r)
    # A stale socket for a live process that does not serve it.
    env.stale_socket(os.path.join(env.sockdir, "%d.sock" % pid))
    r = env.run("tree", str(pid))
    expect_rc(r, 3)
    check("stale socket" in r.err and "is not serving it" in r.err, "stale, process alive", r)


def test_attach_paths(env):
    r = env.run("ps", os.path.join(env.tmp, "nope.sock"))
    expect_rc(r, 3)
    check("no socket at" in r.err, "missing path", r)
    f = os.path.join(env.tmp, "file.sock")
    open(f, "w").close()
    r = env.run("ps", f)
    expect_rc(r, 3)
    check("is not a socket" in r.err, "not a socket", r)
    st = os.path.join(env.tmp, "stale.sock")
    env.stale_socket(st)
    r = env.run("leaks", st)
    expect_rc(r, 3)
    check("stale socket %s: nothing is listening on it" % st in r.err, "stale path", r)


def test_attach_version(env):
    v2 = env.server("v2", path=os.path.join(env.tmp, "v2.sock"))
    for cmd in ("ps", "tree", "leaks"):
        r = env.run(cmd, v2.path)
        expect_rc(r, 3)
        check("version mismatch" in r.err and "protocol 2" in r.err and "protocol 1" in r.err,
              "client-side version mismatch", r)
    pid = env.sleeper()
    env.server("v2", pid=pid)
    r = env.run("ps", str(pid))
    expect_rc(r, 3)
    check("speaks inspector protocol 2" in r.err, "version mismatch by pid", r)
    mm = env.server("mismatch", path=os.path.join(env.tmp, "mm.sock"))
    r = env.run("ps", mm.path)
    expect_rc(r, 3)
    check("version mismatch" in r.err and "server speaks protocol 1, client 7" in r.err and
          "protocol 1" in r.err, "server-side version mismatch", r)


def test_attach_permission(env):
    d = os.path.join(env.tmp, "pub")
    os.makedirs(d)
    os.chmod(env.tmp, 0o755)
    os.chmod(d, 0o755)
    srv = env.server("normal", path=os.path.join(d, "app.sock"))
    os.chmod(srv.path, 0o600)
    if os.getuid() == 0:
        def drop():
            os.setgid(65534)
            os.setuid(65534)
        r = env.run("ps", srv.path, preexec=drop)
    else:
        os.chmod(srv.path, 0o000)
        r = env.run("ps", srv.path)
    expect_rc(r, 3)
    check("permission denied" in r.err, "permission denied", r)


def test_attach_busy_and_custom_path(env):
    busy = env.server("busy", path=os.path.join(env.tmp, "busy.sock"))
    r = env.run("ps", busy.path)
    expect_rc(r, 3)
    check("busy" in r.err, "busy", r)
    busy.stop()
    env.servers.remove(busy)
    # TASKSCOPE_OPTIONS=socket=PATH: found through the sockets the process listens on.
    custom = env.server("normal", path=os.path.join(env.tmp, "custom-place.sock"))
    r = env.run("ps", str(os.getpid()))
    expect_rc(r, 0)
    check(r.out.startswith("fakeapp (pid %d)" % os.getpid()), "socket found elsewhere", r)
    custom.stop()


# ------------------------------------------------------------------------------------------
# robustness
# ------------------------------------------------------------------------------------------

def test_bad_servers(env):
    cases = [
        ("garbage", "not JSON"),
        ("notobject", "not a JSON object"),
        ("notype", 'without a "type"'),
        ("badhello", "not a taskscope hello"),
        ("badtypes", "tasks[1].parent: expected an integer or null, got a string"),
        ("partial", "closed the connection"),
        ("close", "closed the connection before its hello"),
    ]
    for scenario, msg in cases:
        s = env.server(scenario, path=os.path.join(env.tmp, scenario + ".sock"))
        for cmd in (["ps"], ["tree"], ["leaks"], ["where", "1"], ["ps", "--json"]):
            r = env.run(cmd[0], s.path, *cmd[1:])
            if scenario == "badtypes" and cmd[0] in ("leaks", "where"):
                expect_rc(r, 0)  # neither takes a snapshot: the bad field is never read
                continue
            expect_rc(r, 3)
            check(msg in r.err, "%s: %r" % (scenario, msg), r)
            check("malformed" in r.err or scenario in ("partial", "close"),
                  "%s: says the answer is malformed" % scenario, r)
            check(r.out == "", "no partial output", r)


def test_timeout(env):
    s = env.server("silent", path=os.path.join(env.tmp, "silent.sock"))
    r = env.run("ps", s.path, "--timeout", "0.5")
    expect_rc(r, 3)
    check("timed out" in r.err and r.elapsed < 3, "0.5 s timeout", r)
    r = env.run("--timeout=1", "tree", s.path)
    expect_rc(r, 3)
    check("timed out" in r.err and 0.9 < r.elapsed < 4, "1 s timeout", r)
    r = env.run("ps", s.path, "--timeout=300ms")
    expect_rc(r, 3)
    check(r.elapsed < 3, "300ms", r)
    # list gives each process at most 1 s
    env.server("silent", pid=env.sleeper())
    r = env.run("list")
    expect_rc(r, 0)
    check("(no answer)" in "\n".join(ours(env, r.out.splitlines())) and
          r.elapsed < 4 + len(others_sockets()), "list with a silent process", r)


def test_big_snapshot(env):
    env.server("big", size=100000)
    pid = str(os.getpid())
    r = env.run("ps", pid, timeout=120)
    expect_rc(r, 0)
    lines = r.out.splitlines()
    check("100000 live tasks" in lines[0], "100k header", Result(r.args, r.rc, lines[0], r.err,
                                                                  r.elapsed))
    check(len(lines) == 100000 + 2 and lines[-1].endswith("worker_100000"), "100k rows",
          Result(r.args, r.rc, "\n".join(lines[-3:]), r.err, r.elapsed))
    r = env.run("ps", pid, "--json", timeout=120)
    expect_rc(r, 0)
    check(len(r.json()["tasks"]) == 100000, "100k JSON tasks")
    r = env.run("tree", pid, timeout=120)
    expect_rc(r, 0)
    check(len(r.out.splitlines()) == 100001, "100k tree lines")
    r = env.run("list", "--json", "--timeout=30", timeout=120)
    expect_rc(r, 0)


# ------------------------------------------------------------------------------------------
# colour
# ------------------------------------------------------------------------------------------

def test_color(env):
    env.server("normal")
    pid = str(os.getpid())
    esc = b"\x1b["
    rc, out = env.run_pty("ps", pid)
    check(rc == 0 and esc in out, "colour on a terminal: %r" % out[:200])
    check(b"\x1b[33mwaiting" in out and b"\x1b[1;32mrunning" in out, "state colours")
    rc, out = env.run_pty("ps", pid, env={"NO_COLOR": "1"})
    check(rc == 0 and esc not in out and b"waiting" in out, "NO_COLOR on a terminal: %r" % out)
    rc, out = env.run_pty("tree", pid, env={"NO_COLOR": ""})
    check(rc == 0 and esc in out, "an empty NO_COLOR does not disable colour")
    rc, out = env.run_pty("ps", pid, env={"TERM": "dumb"})
    check(rc == 0 and esc not in out, "TERM=dumb")
    rc, out = env.run_pty("ps", pid, "--color=never")
    check(rc == 0 and esc not in out, "--color=never on a terminal")
    rc, out = env.run_pty("ps", pid, "--no-color")
    check(rc == 0 and esc not in out, "--no-color on a terminal")
    r = env.run("ps", pid)
    check("\x1b" not in r.out, "no colour into a pipe", r)
    r = env.run("ps", pid, "--color=always", env={"NO_COLOR": "1"})
    check("\x1b[33mwaiting\x1b[0m" in r.out, "--color=always wins", r)
    for cmd in (["tree", pid], ["where", pid, "13"], ["leaks", pid], ["list"]):
        r = env.run(*cmd, "--color=always")
        expect_rc(r, 0)
        check("\x1b[" in r.out, "%s colours" % cmd, r)
        r = env.run(*cmd, "--color=always", "--json") if cmd[0] != "list" else \
            env.run("list", "--json", "--color=always")
        check("\x1b" not in r.out, "JSON is never coloured", r)
    # Alignment is unchanged by colour.
    plain = env.run("ps", pid).out
    col = env.run("ps", pid, "--color=always").out
    check(re.sub(r"\x1b\[[0-9;]*m", "", col) == plain, "colour does not move columns")
    rc, out = env.run_pty("tree", pid, "--ascii")
    check(rc == 0 and b"\xe2" not in out.replace("\u00ef".encode(), b"") and b"|- " in out,
          "ASCII tree on a terminal")


# ------------------------------------------------------------------------------------------
# end to end with the real demo
# ------------------------------------------------------------------------------------------

def test_e2e_demo(env, bindir):
    demo = os.path.join(bindir, "demo")
    if not os.access(demo, os.X_OK):
        raise Skip("no %s (samples/demo.c not built)" % demo)
    e = dict(env.env)
    e.pop("TASKSCOPE_OPTIONS", None)
    log = open(os.path.join(env.tmp, "demo.log"), "w")
    p = subprocess.Popen([demo, "--duration", "10", "--quiet"], env=e, stdout=log, stderr=log)
    env.procs.append(p)
    sock = os.path.join(env.sockdir, "%d.sock" % p.pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not os.path.exists(sock) and p.poll() is None:
        time.sleep(0.05)
    # The inspector server is part of libtaskscope: a demo without a socket is a failure.
    check(os.path.exists(sock), "demo (pid %d) exposes no inspector socket at %s within 5 s "
          "(exit status %s)" % (p.pid, sock, p.poll()))
    time.sleep(1.0)  # let the service and its first deliberate leaks start
    pid = str(p.pid)
    r = env.run("list")
    expect_rc(r, 0)
    check(re.search(r"^\s*%s\s+demo\s+\d+\s+\d+\s+\d+\s+%s$" % (pid, re.escape(sock)), r.out,
                    re.M), "demo listed", r)
    r = env.run("list", "--json")
    procs = {x["pid"]: x for x in r.json()["processes"]}
    check(procs[p.pid]["status"] == "ok" and procs[p.pid]["tasks"] > 5, "demo in list JSON", r)
    r = env.run("ps", pid)
    expect_rc(r, 0)
    check(r.out.startswith("demo (pid %s): " % pid) and "supervisor" in r.out and
          "ID  PARENT  STATE" in r.out, "demo ps", r)
    r = env.run("ps", pid, "--json")
    expect_rc(r, 0)
    j = r.json()
    names = {t["name"] for t in j["tasks"]}
    check(j["program"] == "demo" and {"main", "supervisor", "worker_pool"} <= names,
          "demo ps JSON", r)
    r = env.run("tree", pid)
    expect_rc(r, 0)
    check(re.search(r"^\d+ main \[", r.out, re.M) and
          re.search(r"^(\u2514|\u251c)\u2500 \d+ supervisor \[", r.out, re.M), "demo tree", r)
    r = env.run("tree", pid, "--json")
    expect_rc(r, 0)
    check(any(n.get("name") == "main" for n in r.json()["roots"]), "demo tree JSON", r)
    r = env.run("where", pid, "supervisor")
    expect_rc(r, 0)
    check('"supervisor"' in r.out and "created at:" in r.out and
          re.search(r"#0 0x[0-9a-f]+ in \S+", r.out), "demo where", r)
    r = env.run("where", pid, "supervisor", "--json")
    expect_rc(r, 0)
    check(r.json()["task"]["name"] == "supervisor", "demo where JSON", r)
    r = env.run("leaks", pid)
    expect_rc(r, 0)
    check(re.search(r"^SUMMARY: taskscope: \d+ pending, \d+ destroyed_pending, \d+ "
                    r"unretrieved_error", r.out, re.M), "demo leaks", r)
    r = env.run("leaks", pid, "--json")
    expect_rc(r, 0)
    check(r.json()["format"] == "taskscope-report", "demo leaks JSON", r)
    p.send_signal(signal.SIGTERM)
    p.wait(30)


GROUPS = {
    "usage": [test_usage_errors, test_help_version],
    "list": [test_list_empty, test_list],
    "ps": [test_ps, test_ps_empty, test_large_answers],
    "tree": [test_tree, test_tree_cycle_and_deep],
    "where": [test_where],
    "leaks": [test_leaks, test_leaks_empty],
    "attach": [test_attach_no_process, test_attach_not_instrumented, test_attach_paths,
               test_attach_version, test_attach_permission, test_attach_busy_and_custom_path],
    "robustness": [test_bad_servers, test_timeout, test_big_snapshot],
    "color": [test_color],
    "e2e_demo": [test_e2e_demo],
}


def main():
    global CLI
    if len(sys.argv) < 3 or sys.argv[2] not in GROUPS:
        print("usage: run_tests.py TASKSCOPE GROUP [BIN_DIR]; groups: %s" % " ".join(GROUPS),
              file=sys.stderr)
        return 2
    CLI = os.path.abspath(sys.argv[1])
    bindir = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(CLI)
    failed = skipped = 0
    for t in GROUPS[sys.argv[2]]:
        env = Env()
        try:
            if t is test_e2e_demo:
                t(env, bindir)
            else:
                t(env)
            print("PASS %s" % t.__name__)
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (t.__name__, e))
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc(file=sys.stdout)
        finally:
            env.close()
    sys.stdout.flush()
    if failed:
        return 1
    if skipped and in_ci():
        print("FAIL: %d test(s) skipped, and CI is set: everything must run in CI" % skipped)
        return 1
    if skipped and skipped == len(GROUPS[sys.argv[2]]):
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
