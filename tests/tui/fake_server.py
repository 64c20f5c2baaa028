#!/usr/bin/env python3
"""A stand-in inspector server (inspector/PROTOCOL.md, version 1) that looks like build/bin/demo.

For developing and testing taskscope-top while the real server (inside libtaskscope) is not
there. It serves one process's worth of tasks shaped like the demo's tree (supervisor,
http_server, worker_pool, pool_worker, session_manager, cache_refresher, metrics_reporter,
lease_keeper, ...), changes them every interval, and now and then makes a leak record or a
warning. Requests: hello, subscribe, unsubscribe, snapshot, where, cancel, leaks, ping.

  fake_server.py [--socket PATH] [--version N] [--extra N] [--duration S]

Without --socket it listens where a real process would: $XDG_RUNTIME_DIR/taskscope/<pid>.sock,
or /tmp/taskscope-<uid>/<pid>.sock. --version announces another protocol version (to test the
mismatch message). --extra N adds N idle tasks under the worker pool (a scale test).
"""
import argparse
import json
import os
import random
import select
import signal
import socket
import sys
import time

T0 = time.monotonic()


def now_ms():
    return round((time.monotonic() - T0) * 1000 + 1000, 3)


def frame(fn, line, file="/work/main/samples/demo.c"):
    return {"ip": "0x55d0c0a1%04x" % (abs(hash(fn)) % 0xFFFF), "function": fn, "file": file,
            "line": line}


# The functions of each task's stack (innermost first) and where it was created.
STACKS = {
    "main": ["main_task"],
    "supervisor": ["supervisor"],
    "http_server": ["accept_loop", "http_server"],
    "http_connection": ["rd_line", "http_connection"],
    "render_page": ["render_page"],
    "lease_keeper": ["lease_keeper"],
    "load_generator": ["load_generator"],
    "load_client": ["load_client"],
    "worker_pool": ["worker_pool"],
    "job_feeder": ["job_feeder"],
    "pool_worker": ["pool_worker"],
    "send_receipt": ["send_receipt"],
    "session_manager": ["session_manager"],
    "session": ["session"],
    "authenticate": ["auth_cache_miss", "authenticate"],
    "cache_refresher": ["cache_refresher"],
    "metrics_reporter": ["metrics_reporter"],
}
CREATORS = {"supervisor": "main_task", "render_page": "http_connection",
            "lease_keeper": "grant_lease_and_forget", "send_receipt": "send_receipt_fire_and_forget",
            "session": "session_manager", "authenticate": "session", "main": "main"}
AWAITS = {"supervisor": ("group", 1), "http_server": ("io", 3), "http_connection": ("io", 4),
          "render_page": ("offload", 9), "lease_keeper": ("event", 2),
          "load_generator": ("group", 2), "load_client": ("sleep", None),
          "worker_pool": ("group", 3), "job_feeder": ("sleep", None),
          "pool_worker": ("channel", 1), "send_receipt": ("sleep", None),
          "session_manager": ("sleep", None), "session": ("future", 5),
          "authenticate": ("sleep", None), "cache_refresher": ("offload", 7),
          "metrics_reporter": ("sleep", None), "main": ("event", 1)}


class Model:
    def __init__(self, extra):
        self.next_id = 1
        self.tasks = {}
        self.finished = []
        self.leaks = []
        self.warnings = []
        self.spawned = 0
        self.nfinished = 0
        self.changed = set()
        self.new = []
        self.done = []
        self.new_leaks = []
        self.new_warnings = []
        self.tick = 0
        main = self.spawn("main", None)
        sup = self.spawn("supervisor", main)
        http = self.spawn("http_server", sup)
        for _ in range(3):
            conn = self.spawn("http_connection", http)
            self.spawn("render_page", conn)
        lg = self.spawn("load_generator", sup)
        for _ in range(4):
            self.spawn("load_client", lg)
        self.pool = self.spawn("worker_pool", sup)
        self.spawn("job_feeder", self.pool)
        for _ in range(4):
            self.spawn("pool_worker", self.pool)
        for _ in range(extra):
            self.spawn("pool_worker", self.pool)
        self.sm = self.spawn("session_manager", sup)
        self.spawn("cache_refresher", sup)
        self.spawn("metrics_reporter", sup)
        self.spawn("lease_keeper", None)
        self.http = http
        self.reset_delta()

    def reset_delta(self):
        self.changed = set()
        self.new = []
        self.done = []
        self.new_leaks = []
        self.new_warnings = []

    def spawn(self, name, parent):
        tid = self.next_id
        self.next_id += 1
        kind, aid = AWAITS.get(name, ("sleep", None))
        t = {"id": tid, "parent": parent, "runtime": 1, "name": name, "state": "waiting",
             "awaiting": {"kind": kind, "id": aid}, "created_ms": now_ms(),
             "first_run_ms": now_ms(), "switches": 1, "group": None}
        self.tasks[tid] = t
        self.spawned += 1
        self.new.append(tid)
        return tid

    def finish(self, tid, state="done", error=None):
        t = self.tasks.pop(tid)
        f = {"id": tid, "parent": t["parent"], "runtime": 1, "name": t["name"], "state": state,
             "error": error, "error_name": "TSK_EFAILED" if error else None,
             "created_ms": t["created_ms"], "finished_ms": now_ms()}
        self.finished.append(f)
        self.finished = self.finished[-100:]
        self.nfinished += 1
        if tid in self.new:
            self.new.remove(tid)
        self.changed.discard(tid)
        self.done.append(f)
        return t

    def leak(self, kind, t, reason, error=None):
        name = t["name"]
        rec = {"kind": kind, "suppressed": False, "reason": reason, "age_ms": 12,
               "task": {"id": t["id"], "name": name, "parent": t["parent"], "state": t["state"],
                        "awaiting": t["awaiting"]},
               "chain": [{"id": t["parent"], "name": "session_manager"}] if t["parent"] else [],
               "error": error, "created_at": [frame(CREATORS.get(name, "supervisor"), 400)],
               "suspended_at": [frame(f, 160 + i) for i, f in enumerate(STACKS.get(name, [name]))],
               "raised_at": [frame("send_receipt", 355)] if error else [],
               "dropped_at": [frame("auth_cache_miss", 440), frame("authenticate", 452)]
               if kind == "destroyed_pending" else []}
        self.leaks.append(rec)
        self.new_leaks.append(rec)

    def step(self):
        """One interval of activity."""
        self.tick += 1
        live = list(self.tasks.values())
        for t in random.sample(live, min(8, len(live))):
            t["switches"] += random.randint(1, 5)
            self.changed.add(t["id"])
        # a request comes and goes
        conns = [t["id"] for t in live if t["name"] == "http_connection"]
        pages = [t["id"] for t in live if t["name"] == "render_page"]
        if pages and random.random() < 0.5:
            self.finish(random.choice(pages))
        if conns and len(pages) < 6:
            self.spawn("render_page", random.choice(conns))
        # a login every other tick; every 4th strands its session
        if self.tick % 2 == 1:
            s = self.spawn("session", self.sm)
            self.spawn("authenticate", s)
        sessions = [t for t in live if t["name"] == "session"]
        if len(sessions) > 2:
            victim = sessions[0]
            for c in [t for t in live if t["parent"] == victim["id"] and t["id"] in self.tasks]:
                self.finish(c["id"])
            if self.tick % 4 == 1:
                self.leak("destroyed_pending", victim,
                          "stranded: the last completer of future 5 was released")
            self.finish(victim["id"])
        # a receipt fails unheard now and then
        if self.tick % 3 == 0:
            r = self.spawn("send_receipt", self.pool)
            t = self.finish(r, "failed", -30013)
            self.leak("unretrieved_error", t, "its handle was released without a join",
                      {"code": -30013, "name": "TSK_EFAILED", "message": "SMTP 451",
                       "description": "task failed"})
        if self.tick % 5 == 0:
            self.spawn("lease_keeper", None)
        if self.tick % 7 == 0:
            w = {"time_ms": now_ms(), "kind": "loop_stalled", "runtime": 1,
                 "message": "loop stalled for 250 ms",
                 "stack": [frame("compress_report", 512), frame("render_page", 230)]}
            self.warnings.append(w)
            self.new_warnings.append(w)

    def counts(self):
        c = {"ready": 0, "running": 0, "waiting": 0}
        for t in self.tasks.values():
            if t["state"] in c:
                c[t["state"]] += 1
        return c

    def runtimes(self):
        c = self.counts()
        c["finished"] = self.nfinished
        return [{"id": 1, "thread": os.getpid(), "tasks": c,
                 "loop": {"iterations": self.tick * 100, "lag_ms": 0.4 + (self.tick % 3) / 10,
                          "stalled_ms": 0, "stalled_stack": None}, "dropped_events": 0}]

    def stats(self):
        return {"tasks": self.counts(), "spawned": self.spawned, "finished": self.nfinished,
                "leaks": {"pending": 0,
                          "destroyed_pending": sum(1 for l in self.leaks
                                                   if l["kind"] == "destroyed_pending"),
                          "unretrieved_error": sum(1 for l in self.leaks
                                                   if l["kind"] == "unretrieved_error")},
                "dropped_events": 0}

    def snapshot(self, rid):
        return {"type": "snapshot", "id": rid, "time_ms": now_ms(), "pid": os.getpid(),
                "program": "demo", "runtimes": self.runtimes(),
                "tasks": sorted(self.tasks.values(), key=lambda t: t["id"]),
                "finished": self.finished, "leaks": self.leaks, "warnings": self.warnings[-20:],
                "stats": self.stats()}

    def delta(self, seq):
        return {"type": "delta", "seq": seq, "time_ms": now_ms(),
                "spawned": [self.tasks[i] for i in self.new if i in self.tasks],
                "changed": [self.tasks[i] for i in self.changed
                            if i in self.tasks and i not in self.new],
                "finished": self.done, "leaks": self.new_leaks, "warnings": self.new_warnings,
                "runtimes": self.runtimes(), "stats": self.stats(), "dropped_events": 0}


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.rbuf = b""
        self.wbuf = b""
        self.hello = False
        self.sub = None  # (interval_s, next_due)
        self.seq = 0

    def send(self, msg):
        self.wbuf += (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--extra", type=int, default=0)
    ap.add_argument("--duration", type=float, default=0)
    args = ap.parse_args()
    path = args.socket
    if not path:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        d = os.path.join(xdg, "taskscope") if xdg else "/tmp/taskscope-%d" % os.getuid()
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, "%d.sock" % os.getpid())
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(16)
    srv.setblocking(False)
    print(path, flush=True)
    # SIGTERM ends the loop like Ctrl-C, so the socket file is removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    model = Model(args.extra)
    clients = []
    last_step = time.monotonic()
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while end is None or time.monotonic() < end:
            rl = [srv] + [c.sock for c in clients]
            wl = [c.sock for c in clients if c.wbuf]
            r, w, _ = select.select(rl, wl, [], 0.05)
            if srv in r:
                s, _ = srv.accept()
                s.setblocking(False)
                c = Client(s)
                c.send({"type": "hello", "protocol": "taskscope", "version": args.version,
                        "pid": os.getpid(), "program": "demo", "server": "fake_server.py",
                        "runtimes": 1, "time_ms": now_ms()})
                clients.append(c)
            for c in list(clients):
                if c.sock in w and c.wbuf:
                    try:
                        n = c.sock.send(c.wbuf)
                        c.wbuf = c.wbuf[n:]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        clients.remove(c)
                        continue
                if c.sock not in r:
                    continue
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    clients.remove(c)
                    c.sock.close()
                    continue
                c.rbuf += data
                while b"\n" in c.rbuf:
                    line, c.rbuf = c.rbuf.split(b"\n", 1)
                    try:
                        m = json.loads(line)
                    except ValueError:
                        c.send({"type": "error", "code": "bad_json", "message": "not JSON"})
                        continue
                    handle(model, c, m)
            # activity and deltas
            t = time.monotonic()
            if t - last_step >= 0.5:
                last_step = t
                model.step()
                for c in clients:
                    if c.sub:
                        c.seq += 1
                        c.send(model.delta(c.seq))
                model.reset_delta()
            for c in clients:
                if c.wbuf:
                    try:
                        n = c.sock.send(c.wbuf)
                        c.wbuf = c.wbuf[n:]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pass
    except KeyboardInterrupt:
        pass
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def handle(model, c, m):
    typ = m.get("type")
    rid = m.get("id")
    if typ == "hello":
        if m.get("version") != 1:
            c.send({"type": "error", "code": "version_mismatch",
                    "message": "server speaks protocol 1, client %s" % m.get("version")})
        c.hello = True
        return
    if not c.hello:
        c.send({"type": "error", "id": rid, "code": "no_hello", "message": "send hello first"})
        return
    if typ == "subscribe":
        c.sub = True
        c.seq = 0
        c.send(model.snapshot(rid))
    elif typ == "unsubscribe":
        c.sub = None
    elif typ == "snapshot":
        c.send(model.snapshot(rid))
    elif typ == "ping":
        c.send({"type": "pong", "id": rid, "time_ms": now_ms()})
    elif typ == "where":
        t = model.tasks.get(m.get("task"))
        if not t:
            c.send({"type": "error", "id": rid, "code": "no_such_task",
                    "message": "no live task %s" % m.get("task")})
            return
        fns = STACKS.get(t["name"], [t["name"]])
        c.send({"type": "where", "id": rid, "task": t,
                "suspended_at": [frame(f, 100 + 7 * i) for i, f in enumerate(fns)],
                "created_at": [frame(CREATORS.get(t["name"], "supervisor"), 560)],
                "method": "loop"})
    elif typ == "cancel":
        t = model.tasks.get(m.get("task"))
        if not t:
            c.send({"type": "error", "id": rid, "code": "no_such_task",
                    "message": "no live task %s" % m.get("task")})
            return
        c.send({"type": "ok", "id": rid})
        model.finish(t["id"], "cancelled")
    elif typ == "leaks":
        c.send({"type": "leaks", "id": rid,
                "report": {"format": "taskscope-report", "version": 1, "leaks": model.leaks}})
    else:
        c.send({"type": "error", "id": rid, "code": "unknown_type", "message": str(typ)})


if __name__ == "__main__":
    sys.exit(main())
