#!/usr/bin/env python3
"""A fake taskscope inspector server (inspector/PROTOCOL.md, version 1), for testing clients.

It speaks the protocol from canned data, checks what the client sends (hello first, JSON objects,
an integer "id" on requests), and can misbehave on purpose (scenarios). Python 3 standard library
only.

As a module (what tests/cli/run_tests.py does):

    srv = FakeServer("/tmp/x/123.sock", scenario="normal").start()
    ...
    srv.stop(); assert not srv.violations

Stand-alone, to try a client or socat by hand:

    python3 fake_server.py PATH [--scenario NAME] [--pid N] [--program NAME]

Scenarios: normal, v2 (hello says version 2), mismatch (hello 1, then the server refuses the
client's hello with version_mismatch), silent (never sends), close (closes at once), busy,
garbage (answers are not JSON), notobject, notype, badhello (first message not a hello),
badtypes (a snapshot field has the wrong type), partial (half a message, then close),
big (a snapshot of `size` tasks), deep (a chain of `size` nested tasks), cycle (parent loop),
empty (no tasks, no leaks), raw (the snapshot answer is the bytes in `snapshot_text`, set by the
test and changeable between requests, with @ID@ replaced by the request's id).
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

NOW_MS = 100000


def frame(ip, function, file, line, module="/usr/bin/fakeapp"):
    return {"ip": ip, "function": function, "file": file, "line": line, "module": module}


def task(id, parent, name, state, awaiting=None, created=NOW_MS - 1500, switches=7, runtime=1):
    return {"id": id, "parent": parent, "runtime": runtime, "name": name, "state": state,
            "awaiting": awaiting, "created_ms": created,
            "first_run_ms": created + 1 if created is not None else None,
            "switches": switches, "group": None}


def aw(kind, id=None):
    return {"kind": kind, "id": id}


def normal_data(pid, program):
    """The canned process: a small tree, orphans, a stalled loop, leaks."""
    tasks = [
        task(1, None, "main", "waiting", aw("event", 3), created=NOW_MS - 65000, switches=2),
        task(2, 1, "supervisor", "waiting", aw("group", 1), created=NOW_MS - 64000),
        task(5, 2, "http_server", "waiting", aw("io", 4), created=NOW_MS - 60000, switches=120),
        task(9, 5, "http_connection", "waiting", aw("task", 12), created=NOW_MS - 2500),
        task(12, 9, "render_page", "running", None, created=NOW_MS - 250, switches=3),
        task(13, 2, "fetch_page", "waiting", aw("future", 12), created=NOW_MS - 1200),
        task(14, 2, "fetch_page", "ready", None, created=NOW_MS - 800, switches=0),
        task(20, 17, "worker", "waiting", aw("channel", 2), created=NOW_MS - 30000),
        task(21, 17, "worker", "waiting", aw("sleep"), created=NOW_MS - 29000),
        task(22, 21, "watch", "waiting", aw("task", 43), created=NOW_MS - 100),
        task(30, 40, "na\u00efve \x1b[31mred\nline", "waiting", aw("yield"), created=NOW_MS - 10),
    ]
    finished = [
        {"id": 43, "parent": 2, "runtime": 1, "name": "parse", "state": "done", "error": 0,
         "error_name": None, "created_ms": NOW_MS - 5000, "finished_ms": NOW_MS - 4000},
        {"id": 17, "parent": 1, "runtime": 1, "name": "crawler", "state": "failed",
         "error": -30013, "error_name": "TSK_EFAILED", "created_ms": NOW_MS - 40000,
         "finished_ms": NOW_MS - 2000},
    ]
    stalled_stack = [frame("0x401a2b", "compress_report", "/src/fakeapp.c", 211),
                     frame("0x401c00", "uv__run_timers", None, None, "/usr/lib/libuv.so.1")]
    created = [frame("0x401000", "spawn_session", "/src/fakeapp.c", 88),
               frame("0x401100", "session_manager", "/src/fakeapp.c", 120)]
    leaks = [
        {"kind": "destroyed_pending", "suppressed": False,
         "reason": "stranded: every completer of future 7 is gone", "age_ms": 420,
         "task": {"id": 50, "name": "session", "parent": 2, "state": "destroyed",
                  "awaiting": {"kind": "future", "id": 7}},
         "chain": [{"id": 2, "name": "supervisor"}, {"id": 1, "name": "main"}],
         "error": None, "created_at": created,
         "suspended_at": [frame("0x402000", "authenticate_wait", "/src/fakeapp.c", 140)],
         "raised_at": [],
         "dropped_at": [frame("0x403000", "auth_cache_miss", "/src/fakeapp.c", 160)]},
        {"kind": "unretrieved_error", "suppressed": False,
         "reason": "it failed and its handle was released without join", "age_ms": 5,
         "task": {"id": 60, "name": "send_receipt", "parent": 2, "state": "failed",
                  "awaiting": None},
         "chain": [{"id": 2, "name": "supervisor"}],
         "error": {"code": -30013, "name": "TSK_EFAILED", "message": "SMTP 451",
                   "description": "task failed"},
         "created_at": [frame("0x404000", "send_receipt_fire_and_forget", "/src/fakeapp.c", 300)],
         "suspended_at": [],
         "raised_at": [frame("0x405000", "smtp_send", "/src/fakeapp.c", 310)],
         "dropped_at": []},
        {"kind": "destroyed_pending", "suppressed": False,
         "reason": "stranded: every completer of future 9 is gone", "age_ms": 10,
         "task": {"id": 51, "name": "session", "parent": 2, "state": "destroyed",
                  "awaiting": {"kind": "future", "id": 9}},
         "chain": [{"id": 2, "name": "supervisor"}, {"id": 1, "name": "main"}],
         "error": None, "created_at": created,
         "suspended_at": [], "raised_at": [], "dropped_at": []},
    ]
    warnings = [{"time_ms": NOW_MS - 50, "kind": "loop_stalled", "runtime": 1,
                 "message": "loop stalled for 250 ms", "stack": stalled_stack}]
    return {
        "pid": pid, "program": program, "time_ms": NOW_MS,
        "runtimes": [{"id": 1, "thread": pid,
                      "tasks": {"ready": 1, "running": 1, "waiting": 9, "finished": 50},
                      "loop": {"iterations": 5120, "lag_ms": 0.4, "stalled_ms": 250,
                               "stalled_stack": stalled_stack},
                      "dropped_events": 3}],
        "tasks": tasks, "finished": finished, "leaks": leaks, "warnings": warnings,
        "stats": {"tasks": {"ready": 1, "running": 1, "waiting": 9}, "spawned": 61,
                  "finished": 50,
                  "leaks": {"pending": 0, "destroyed_pending": 2, "unretrieved_error": 1},
                  "dropped_events": 3},
    }


def empty_data(pid, program):
    return {"pid": pid, "program": program, "time_ms": NOW_MS,
            "runtimes": [{"id": 1, "thread": pid,
                          "tasks": {"ready": 0, "running": 0, "waiting": 0, "finished": 0},
                          "loop": {"iterations": 1, "lag_ms": 0.0, "stalled_ms": 0,
                                   "stalled_stack": None}, "dropped_events": 0}],
            "tasks": [], "finished": [], "leaks": [], "warnings": [],
            "stats": {"tasks": {"ready": 0, "running": 0, "waiting": 0}, "spawned": 0,
                      "finished": 0,
                      "leaks": {"pending": 0, "destroyed_pending": 0, "unretrieved_error": 0},
                      "dropped_events": 0}}


def big_data(pid, program, n):
    d = empty_data(pid, program)
    d["tasks"] = [task(1, None, "main", "waiting", aw("group", 1))] + [
        task(i, 1, "worker_%d" % i, "waiting", aw("future", i)) for i in range(2, n + 1)]
    return d


def deep_data(pid, program, n):
    d = empty_data(pid, program)
    d["tasks"] = [task(i, i - 1 if i > 1 else None, "level", "waiting", aw("task", i + 1))
                  for i in range(1, n + 1)]
    return d


def cycle_data(pid, program):
    d = empty_data(pid, program)
    d["tasks"] = [task(1, None, "main", "waiting"), task(2, 3, "a", "waiting"),
                  task(3, 2, "b", "waiting"), task(4, 3, "c", "ready"),
                  task(5, 5, "self", "waiting")]
    return d


class FakeServer:
    def __init__(self, path, scenario="normal", pid=None, program="fakeapp", size=100000):
        self.path = path
        self.scenario = scenario
        self.pid = os.getpid() if pid is None else pid
        self.program = program
        self.size = size
        self.received = []    # every message a client sent (parsed)
        self.violations = []  # protocol violations by a client
        self.connections = 0
        self._sock = None
        self._stop = threading.Event()
        self._threads = []
        self._data = None
        self._lock = threading.Lock()
        self.snapshot_text = b""  # scenario raw

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def data(self):
        with self._lock:
            if self._data is None:
                s = self.scenario
                if s == "big":
                    self._data = big_data(self.pid, self.program, self.size)
                elif s == "deep":
                    self._data = deep_data(self.pid, self.program, self.size)
                elif s == "cycle":
                    self._data = cycle_data(self.pid, self.program)
                elif s == "empty":
                    self._data = empty_data(self.pid, self.program)
                else:
                    self._data = normal_data(self.pid, self.program)
            return self._data

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    # -- one client ------------------------------------------------------------------------
    def _send(self, conn, obj):
        if isinstance(obj, (bytes, bytearray)):
            data = bytes(obj)
        else:
            data = (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        # The connection polls with a 0.1 s timeout for reading (_lines); a big answer to a slow
        # reader (a sanitizer build parsing as it reads) needs far longer to go out.
        conn.settimeout(60)
        try:
            conn.sendall(data)
        finally:
            conn.settimeout(0.1)

    def _violation(self, what):
        self.violations.append(what)

    def _lines(self, conn):
        buf = b""
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line

    def _serve(self, conn):
        try:
            self._serve_inner(conn)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            conn.close()

    def _hello(self, version=1):
        return {"type": "hello", "protocol": "taskscope", "version": version, "pid": self.pid,
                "program": self.program, "server": "fake_server.py", "runtimes": 1,
                "time_ms": NOW_MS}

    def _serve_inner(self, conn):
        s = self.scenario
        if s == "close":
            return
        if s == "silent":
            self._stop.wait(30)
            return
        if s == "busy":
            self._send(conn, {"type": "error", "code": "busy",
                              "message": "too many clients (16)"})
            return
        if s == "badhello":
            self._send(conn, {"type": "pong", "time_ms": 1})
            self._stop.wait(2)
            return
        if s == "partial":
            self._send(conn, b'{"type":"hello","protocol":"taskscope","vers')
            return
        self._send(conn, self._hello(2 if s == "v2" else 1))
        said_hello = False
        for line in self._lines(conn):
            try:
                msg = json.loads(line)
            except ValueError:
                self._violation("not JSON: %r" % line[:80])
                self._send(conn, {"type": "error", "code": "bad_json", "message": "not JSON"})
                return
            if not isinstance(msg, dict):
                self._violation("not an object: %r" % line[:80])
                return
            self.received.append(msg)
            mtype = msg.get("type")
            rid = msg.get("id")
            if mtype == "hello":
                if said_hello:
                    self._violation("second hello")
                said_hello = True
                v = msg.get("version")
                if not isinstance(v, int) or isinstance(v, bool):
                    self._violation("hello.version is not an integer")
                if not isinstance(msg.get("client"), str):
                    self._violation("hello.client is not a string")
                if s == "v2" and v != 2:
                    self._send(conn, {"type": "error", "code": "version_mismatch",
                                      "message": "server speaks protocol 2, client %s" % v})
                    return
                if s == "mismatch":
                    self._send(conn, {"type": "error", "code": "version_mismatch",
                                      "message": "server speaks protocol 1, client 7"})
                    return
                continue
            if not said_hello:
                self._violation("request before hello: %r" % mtype)
                self._send(conn, {"type": "error", "id": rid, "code": "no_hello",
                                  "message": "say hello first"})
                continue
            if not isinstance(rid, int) or isinstance(rid, bool):
                self._violation("request without an integer id: %r" % mtype)
            self._answer(conn, msg, mtype, rid)

    def _answer(self, conn, msg, mtype, rid):
        s = self.scenario
        if s == "garbage":
            self._send(conn, b"this is not json\n")
            return
        if s == "notobject":
            self._send(conn, b"[1,2,3]\n")
            return
        if s == "notype":
            self._send(conn, {"id": rid, "tasks": []})
            return
        if mtype == "snapshot" and s == "raw":
            self._send(conn, self.snapshot_text.replace(b"@ID@", str(rid).encode()))
        elif mtype == "snapshot":
            d = dict(self.data())
            if s == "badtypes":
                d = json.loads(json.dumps(d))
                d["tasks"][1]["parent"] = "one"
            # Something unsolicited first, which a client must skip.
            self._send(conn, {"type": "delta", "seq": 1, "time_ms": NOW_MS, "spawned": [],
                              "changed": [], "finished": [], "leaks": [], "warnings": [],
                              "runtimes": [], "stats": {}, "dropped_events": 0})
            out = {"type": "snapshot", "id": rid}
            out.update(d)
            out["extra_future_field"] = {"ignored": True}
            self._send(conn, out)
        elif mtype == "where":
            tid = msg.get("task")
            tmo = msg.get("timeout_ms")
            if tmo is not None and (not isinstance(tmo, int) or tmo <= 0):
                self._violation("where.timeout_ms is not a positive integer")
            live = {t["id"]: t for t in self.data()["tasks"]}
            if not isinstance(tid, int) or isinstance(tid, bool):
                self._send(conn, {"type": "error", "id": rid, "code": "bad_field",
                                  "message": "task: expected an integer"})
                return
            if tid not in live:
                self._send(conn, {"type": "error", "id": rid, "code": "no_such_task",
                                  "message": "no live task %d" % tid})
                return
            t = live[tid]
            running = t["state"] == "running"
            ans = {"type": "where", "id": rid, "task": t,
                   "suspended_at": None if running else [
                       frame("0x55d0c0a1b2c3", t["name"], "/src/fakeapp.c", 42),
                       frame("0x55d0c0a1b400", None, None, None, "/usr/lib/libfoo.so"),
                       frame("0x55d0c0a1b500", "supervisor_loop", "/src/fakeapp.c", 77)],
                   "created_at": [frame("0x55d0c0a1c000", "spawn_" + t["name"],
                                        "/src/fakeapp.c", 99)],
                   "method": "loop"}
            if running:
                ans["running"] = True
            self._send(conn, ans)
        elif mtype == "leaks":
            d = self.data()
            leaks = list(d["leaks"])
            summ = {"pending": 0, "destroyed_pending": 0, "unretrieved_error": 0, "suppressed": 0}
            if msg.get("pending") is True:
                for t in d["tasks"][:2]:
                    leaks.append({"kind": "pending", "suppressed": False,
                                  "reason": "still running at the query", "age_ms": 1000,
                                  "task": {k: t[k] for k in ("id", "name", "parent", "state",
                                                             "awaiting")},
                                  "chain": [], "error": None,
                                  "created_at": [frame("0x406000", "spawn_" + t["name"],
                                                       "/src/fakeapp.c", 10)],
                                  "suspended_at": [], "raised_at": [], "dropped_at": []})
            for l in leaks:
                summ[l["kind"]] += 1
            report = {"format": "taskscope-report", "version": 1, "pid": d["pid"],
                      "program": d["program"], "when": "inspector query", "summary": summ,
                      "suppressions": [], "leaks": leaks}
            self._send(conn, {"type": "leaks", "id": rid, "report": report})
        elif mtype == "ping":
            self._send(conn, {"type": "pong", "id": rid, "time_ms": NOW_MS})
        else:
            self._send(conn, {"type": "error", "id": rid, "code": "unknown_type",
                              "message": "unknown type %r" % mtype})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--scenario", default="normal")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--program", default="fakeapp")
    ap.add_argument("--size", type=int, default=100000)
    a = ap.parse_args()
    srv = FakeServer(a.path, a.scenario, a.pid, a.program, a.size).start()
    print("fake_server: listening on %s (scenario %s)" % (a.path, a.scenario), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        for v in srv.violations:
            print("fake_server: client violation: %s" % v, file=sys.stderr)


if __name__ == "__main__":
    main()
