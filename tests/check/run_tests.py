#!/usr/bin/env python3
"""Tests of `taskscope check` (the CI gate), with the samples in build/bin.

    run_tests.py TASKSCOPE_BINARY BIN_DIR SOURCE_DIR WORK_DIR GROUP

GROUP is one of GROUPS below (each is one CTest test, check_<group>). Exit status: 0 passed,
1 a failure, 77 skipped (sarif_schema when no validator can be installed). With CI set in the
environment (CI=true, as GitHub Actions and GitLab set it) a skip is a failure: CI has npm.

The samples: unretrieved_error (1 unretrieved_error record), destroyed_pending (2
destroyed_pending records), and their --fixed variants (no record).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

SKIP = 77
TS = BIN = SRC = WORK = None


class Skip(Exception):
    pass


class Res:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return "%s -> rc %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.rc, self.out[-4000:], self.err[-6000:])


def check(cond, what, res=None):
    if not cond:
        raise AssertionError(what + ("\n%r" % res if res is not None else ""))


def run(args, cwd=None, env=None, timeout=60):
    """Runs `taskscope check ARGS...` (args start after 'check')."""
    full = [TS, "check"] + args
    e = dict(os.environ)
    e.pop("TASKSCOPE_OPTIONS", None)  # an outer gate's settings must not leak into these runs
    if env:
        e.update(env)
    p = subprocess.run(full, cwd=cwd or SRC, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return Res(full, p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace"))


def sample(name, *extra):
    return [os.path.join(BIN, name)] + list(extra)


def tmp(name):
    return os.path.join(WORK, name)


def summary_line(res):
    lines = [l for l in res.err.splitlines() if l.startswith("SUMMARY: taskscope check:")]
    check(len(lines) == 1, "exactly one gate SUMMARY line", res)
    check(res.err.rstrip().endswith(lines[0]), "the SUMMARY line comes last", res)
    return lines[0]


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------
# groups
# ------------------------------------------------------------------------------------------

def t_exit_codes():
    r = run(["--"] + sample("unretrieved_error"))
    check(r.rc == 1, "a leaky sample fails with 1", r)
    s = summary_line(r)
    check("0 pending, 0 destroyed_pending, 1 unretrieved_error (0 suppressed) in 1 process: FAILED"
          in s, "summary counts", r)
    check("taskscope: Task exception was never retrieved" in r.err, "headline", r)
    check(re.search(r"#0 0x[0-9a-f]+ in flush_metrics at samples/unretrieved_error\.c:\d+", r.err),
          "frame style '#0 0x... in fn at file:line' (repository-relative)", r)

    r = run(["--"] + sample("destroyed_pending"))
    check(r.rc == 1, "destroyed_pending fails with 1", r)
    check("Task was destroyed but it is pending!" in r.err, "headline", r)
    check("2 destroyed_pending" in summary_line(r), "two records", r)

    for name in ("unretrieved_error", "destroyed_pending"):
        r = run(["--"] + sample(name, "--fixed"))
        check(r.rc == 0, "%s --fixed passes" % name, r)
        check(summary_line(r).endswith("in 1 process: passed"), "passed summary", r)

    r = run(["--", "sh", "-c", "exit 5"])
    check(r.rc == 5, "CMD's own failure is passed through", r)
    check("sh exited with status 5" in r.err, "named", r)

    # A leaky CMD that also fails: CMD's status wins (never success, never hidden).
    r = run(["--", "sh", "-c", "%s >/dev/null; exit 7" % sample("unretrieved_error")[0]])
    check(r.rc == 7, "failing CMD with leaks exits with CMD's status", r)
    check("1 unretrieved_error" in summary_line(r), "leaks still reported", r)

    r = run(["--", "sh", "-c", "kill -SEGV $$"])
    check(r.rc == 128 + 11, "killed CMD: 128+11", r)
    check("sh killed by signal 11 (Segmentation fault)" in r.err, "signal named", r)

    r = run(["--", "true"])
    check(r.rc == 3, "uninstrumented CMD: exit 3", r)
    check("no instrumented process reported: is true linked with libtaskscope?" in r.err,
          "clear message", r)
    r = run(["--allow-uninstrumented", "--", "true"])
    check(r.rc == 0, "--allow-uninstrumented", r)

    r = run(["--", "/nonexistent/program"])
    check(r.rc == 127, "CMD that cannot start: 127", r)
    check("cannot run '/nonexistent/program'" in r.err, "named", r)

    # CMD without "--" works too.
    r = run(sample("unretrieved_error", "--fixed"))
    check(r.rc == 0, "CMD without --", r)


def t_usage():
    for args, what in (([], "no command"), (["--"], "empty command"),
                       (["--bogus", "--", "true"], "unknown option"),
                       (["--kinds", "leaky", "--", "true"], "bad kind"),
                       (["--json"], "missing value"),
                       (["--suppressions", "/nonexistent.supp", "--", "true"], "missing file")):
        r = run(args)
        check(r.rc == 2, "usage error (%s) exits 2" % what, r)
        check("taskscope check:" in r.err, "message", r)
    with open(tmp("bad.supp"), "w") as f:
        f.write("# comment\nleak:ok\nlaek:typo\n")
    r = run(["--suppressions", tmp("bad.supp"), "--", "true"])
    check(r.rc == 2 and "bad.supp:3: unknown type 'laek'" in r.err,
          "a bad suppressions file is rejected before CMD runs, with file:line", r)
    r = run(["--", "true"], env={"TASKSCOPE_OPTIONS": "frame=3"})
    check(r.rc == 2 and "unknown option 'frame'" in r.err,
          "an invalid TASKSCOPE_OPTIONS is rejected (processes would ignore all of it)", r)
    r = run(["--help"])
    check(r.rc == 0 and "exit status" in r.out and "--sarif FILE" in r.out, "--help", r)
    p = subprocess.run([TS, "help", "check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.returncode == 0 and b"--junit FILE" in p.stdout, "taskscope help check")


def t_json():
    script = tmp("two.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n%s >/dev/null\n%s >/dev/null\n%s --fixed >/dev/null\nexit 0\n" % (
            sample("unretrieved_error")[0], sample("destroyed_pending")[0],
            sample("unretrieved_error")[0]))
    os.chmod(script, 0o755)
    out = tmp("merged.json")
    r = run(["--json", out, "--", script])
    check(r.rc == 1, "leaks from children fail the gate", r)
    d = load_json(out)
    check(d["format"] == "taskscope-report" and d["version"] == 1, "same format", d)
    check(d["summary"] == {"pending": 0, "destroyed_pending": 2, "unretrieved_error": 1,
                           "suppressed": 0}, "merged counts add up: %r" % d["summary"])
    progs = sorted(p["program"] for p in d["processes"])
    check(progs == ["destroyed_pending", "unretrieved_error", "unretrieved_error"],
          "three instrumented processes: %r" % progs)
    pids = {p["pid"] for p in d["processes"]}
    check(len(pids) == 3, "distinct pids")
    for p in d["processes"]:
        check(p["exit"] == {"code": 0} if "exit" in p else True, "exit when known: %r" % p)
    check(len(d["leaks"]) == 3, "three records")
    for l in d["leaks"]:
        check(l["pid"] in pids and l["program"] in progs, "each record names its process")
        check(l["counted"] is True and l["suppressed"] is False, "counted")
        for fr in l["created_at"]:
            check(fr["file"] is None or not fr["file"].startswith(SRC + "/"),
                  "paths stripped in JSON: %r" % fr)
    check(d["command"]["argv"] == [script] and d["command"]["exit"] == {"code": 0}, "command")
    check(d["check"]["exit_code"] == 1 and d["check"]["groups"] == 3, "check: %r" % d["check"])
    s = summary_line(r)
    check("0 pending, 2 destroyed_pending, 1 unretrieved_error (0 suppressed) in 3 processes"
          in s, "text summary in 3 processes", r)
    # Identical leaks in two processes: one group, "2 tasks like this".
    r = run(["--json", out, "--quiet-processes", "--", "sh", "-c",
             "%s >/dev/null; %s >/dev/null" % (sample("unretrieved_error")[0],
                                                 sample("unretrieved_error")[0])])
    check(r.rc == 1, "two leaky runs", r)
    check('task 4 "send_metrics:latency" (2 tasks like this in 2 processes)' in r.err,
          "grouped across processes", r)
    check(r.err.count("Task exception was never retrieved") == 1,
          "--quiet-processes: only the gate's report", r)
    d = load_json(out)
    check(d["check"]["groups"] == 1 and len({l["group"] for l in d["leaks"]}) == 1, "one group")


def t_junit():
    out = tmp("leaks.xml")
    r = run(["--junit", out, "--", sample("unretrieved_error")[0]])
    check(r.rc == 1, "leaky", r)
    root = ET.parse(out).getroot()
    check(root.tag == "testsuites", "testsuites root")
    suites = root.findall("testsuite")
    check(len(suites) == 1 and suites[0].get("name") == "taskscope", "one testsuite 'taskscope'")
    s = suites[0]
    cases = s.findall("testcase")
    leak = [c for c in cases if c.get("classname") == "taskscope.unretrieved_error"]
    check(len(leak) == 1, "one test case per leak group")
    c = leak[0]
    check(c.get("name") == "unretrieved_error: send_metrics:latency", "named by kind and task")
    check(c.get("file") == "samples/unretrieved_error.c", "file = first user frame: %r" % c.attrib)
    check(int(c.get("line")) > 0, "line")
    fl = c.find("failure")
    check(fl is not None and fl.get("type") == "unretrieved_error", "a failure")
    check("Task exception was never retrieved" in fl.get("message"), "message")
    check("in flush_metrics at samples/unretrieved_error.c:" in fl.text, "the report as text")
    check(s.get("tests") == str(len(cases)) and s.get("failures") == "1", "counts: %r" % s.attrib)
    gate = [c for c in cases if c.get("classname") == "taskscope"]
    check(len(gate) == 1 and gate[0].find("failure") is None, "the gate's own case passes")

    r = run(["--junit", out, "--"] + sample("destroyed_pending", "--fixed"))
    check(r.rc == 0, "clean", r)
    s = ET.parse(out).getroot().find("testsuite")
    check(s.get("failures") == "0" and len(s.findall("testcase")) == 1, "clean: one passing case")

    r = run(["--junit", out, "--", "sh", "-c", "%s >/dev/null; exit 1" %
             sample("unretrieved_error")[0]])
    s = ET.parse(out).getroot().find("testsuite")
    gate = [c for c in s.findall("testcase") if c.get("classname") == "taskscope"][0]
    check(r.rc == 1 and s.get("failures") == "2" and gate.find("failure") is not None,
          "leaks and a failing CMD: both are failures (CMD exiting 1 is not 'leaks only')")

    r = run(["--junit", out, "--", "sh", "-c", "kill -SEGV $$"])
    s = ET.parse(out).getroot().find("testsuite")
    f = s.find("testcase/failure")
    check(f is not None and "killed by signal 11 (Segmentation fault)" in f.get("message"),
          "a crash is a failing case")


def sarif_structure(doc, counted=True):
    check(doc["version"] == "2.1.0" and "$schema" in doc, "version")
    check(len(doc["runs"]) == 1, "one run")
    run_ = doc["runs"][0]
    drv = run_["tool"]["driver"]
    check(drv["name"] == "taskscope", "tool name")
    ids = [r["id"] for r in drv["rules"]]
    check(ids == ["pending", "destroyed_pending", "unretrieved_error"], "one rule per kind")
    for rule in drv["rules"]:
        check(rule["name"] and rule["shortDescription"]["text"], "rule fields")
    check(run_["originalUriBaseIds"]["SRCROOT"]["uri"].startswith("file:///"), "SRCROOT")
    check(run_["originalUriBaseIds"]["SRCROOT"]["uri"].endswith("/"), "SRCROOT ends with /")
    for res in run_["results"]:
        check(res["ruleId"] in ids and ids[res["ruleIndex"]] == res["ruleId"], "rule")
        check(res["level"] == ("error" if counted else "note"), "level")
        check(res["message"]["text"], "message")
        loc = res["locations"][0]["physicalLocation"]
        uri = loc["artifactLocation"]["uri"]
        check(not uri.startswith("/") and loc["artifactLocation"]["uriBaseId"] == "SRCROOT",
              "repository-relative uri: %r" % uri)
        check(loc["region"]["startLine"] > 0, "startLine")
        fp = res["partialFingerprints"]["taskscopeStack/v1"]
        check(re.fullmatch(r"[0-9a-f]{16}", fp), "fingerprint")
        tfs = res["codeFlows"][0]["threadFlows"]
        check(tfs and all(tf["locations"] for tf in tfs), "threadFlows with locations")
    return run_


def t_sarif():
    out = tmp("leaks.sarif")
    r = run(["--sarif", out, "--", sample("unretrieved_error")[0]])
    check(r.rc == 1, "leaky", r)
    run_ = sarif_structure(load_json(out))
    res = run_["results"]
    check(len(res) == 1 and res[0]["ruleId"] == "unretrieved_error", "one result")
    loc = res[0]["locations"][0]["physicalLocation"]
    check(loc["artifactLocation"]["uri"] == "samples/unretrieved_error.c", "spawn site file")
    names = [l["location"]["logicalLocations"][0]["name"]
             for tf in res[0]["codeFlows"][0]["threadFlows"] for l in tf["locations"]]
    check("flush_metrics" in names and "push_family" in names, "whole stacks: %r" % names)
    fp1 = res[0]["partialFingerprints"]["taskscopeStack/v1"]
    # The fingerprint does not depend on addresses (ASLR changes them on every run).
    r = run(["--sarif", out, "--", sample("unretrieved_error")[0]])
    fp2 = load_json(out)["runs"][0]["results"][0]["partialFingerprints"]["taskscopeStack/v1"]
    check(fp1 == fp2, "stable fingerprint")
    # destroyed_pending: two results, different fingerprints.
    r = run(["--sarif", out, "--", sample("destroyed_pending")[0]])
    run_ = sarif_structure(load_json(out))
    fps = {x["partialFingerprints"]["taskscopeStack/v1"] for x in run_["results"]}
    check(len(run_["results"]) == 2 and len(fps) == 2, "two groups, two fingerprints")
    # Clean: a valid log with no results.
    r = run(["--sarif", out, "--", sample("unretrieved_error")[0], "--fixed"])
    d = load_json(out)
    check(r.rc == 0 and d["runs"][0]["results"] == [], "clean: no results", r)
    check(d["runs"][0]["invocations"][0]["executionSuccessful"] is True, "invocation")


VALIDATOR_JS = r"""
const fs = require('fs');
const Ajv = require('ajv-draft-04');
const addFormats = require('ajv-formats');
const schema = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
// The published schema has a pattern that is not a valid unicode-mode regular expression.
const ajv = new Ajv({allErrors: true, strict: false, unicodeRegExp: false});
addFormats(ajv);
const validate = ajv.compile(schema);
let bad = 0;
for (const file of process.argv.slice(3)) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (validate(doc)) { console.log('valid: ' + file); }
  else { bad++; console.log('INVALID: ' + file + '\n' + JSON.stringify(validate.errors, null, 1)); }
}
process.exit(bad ? 1 : 0);
"""

SCHEMA_PKG = "@microsoft/jest-sarif@1.0.0-beta.0"
SCHEMA_PATH = "package/lib/schemas/sarif-2.1.0-rtm.5.json"


def sarif_validator():
    """The SARIF 2.1.0 schema (from the npm package @microsoft/jest-sarif, which ships it) and
    ajv (JSON Schema draft-04), installed once into the build tree. Raises Skip when npm or the
    registry is not available."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise Skip("node/npm not found")
    cache = os.path.join(os.path.dirname(WORK), "sarif-validator")
    schema = os.path.join(cache, "sarif-schema-2.1.0.json")
    script = os.path.join(cache, "validate.js")
    if not os.path.exists(os.path.join(cache, "node_modules", "ajv-draft-04")) \
            or not os.path.exists(schema):
        os.makedirs(cache, exist_ok=True)
        try:
            for cmd in (
                    [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", cache,
                     "ajv@8.17.1", "ajv-draft-04@1.0.0", "ajv-formats@2.1.1"],
                    [npm, "pack", "--pack-destination", cache, SCHEMA_PKG]):
                p = subprocess.run(cmd, cwd=cache, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=180)
                if p.returncode != 0:
                    raise Skip("%s failed:\n%s" % (" ".join(cmd), p.stdout.decode()[-2000:]))
        except subprocess.TimeoutExpired:
            raise Skip("npm timed out")
        tgz = [f for f in os.listdir(cache) if f.startswith("microsoft-jest-sarif") and
               f.endswith(".tgz")]
        if not tgz:
            raise Skip("npm pack produced no tarball")
        with tarfile.open(os.path.join(cache, tgz[0])) as t:
            with t.extractfile(SCHEMA_PATH) as src, open(schema + ".tmp", "wb") as dst:
                dst.write(src.read())
        os.replace(schema + ".tmp", schema)
    with open(script, "w") as f:
        f.write(VALIDATOR_JS)
    return node, script, schema


def t_sarif_schema():
    node, script, schema = sarif_validator()
    files = []
    for name, rc, args in (
            ("unretrieved", 1, sample("unretrieved_error")),
            ("destroyed", 1, sample("destroyed_pending")),
            ("clean", 0, sample("unretrieved_error", "--fixed")),
            ("notes", 0, ["--kinds", "unretrieved_error", "--"] + sample("destroyed_pending")),
            ("absolute", 1, ["--strip-prefix", "", "--"] + sample("unretrieved_error"))):
        out = tmp("schema-%s.sarif" % name)
        if args[0].startswith("--"):
            r = run(["--sarif", out] + args)
        else:
            r = run(["--sarif", out, "--"] + args)
        check(r.rc == rc, "%s: exit %d" % (name, rc), r)
        files.append(out)
    p = subprocess.run([node, script, schema] + files, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode()
    check(p.returncode == 0, "SARIF valid against the 2.1.0 schema:\n" + out)
    # And the validator does catch a broken log.
    broken = load_json(files[0])
    del broken["runs"][0]["tool"]["driver"]["name"]
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with open(tmp("broken.sarif"), "w") as f:
        json.dump(broken, f)
    p = subprocess.run([node, script, schema, tmp("broken.sarif")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    check(p.returncode == 1, "the validator rejects a broken log:\n" + p.stdout.decode())


def t_suppressions():
    supp = tmp("leaky.supp")
    with open(supp, "w") as f:
        f.write("# the metrics push of the sample is fire-and-forget on purpose\n"
                "leak:flush_metrics\n"
                "task:never-matches-*   # stale entry: warned about\n")
    out = tmp("supp.json")
    r = run(["--suppressions", supp, "--json", out, "--"] + sample("unretrieved_error"))
    check(r.rc == 0, "a suppressions file makes the leaky sample pass", r)
    check("(1 suppressed) in 1 process: passed" in summary_line(r), "counted as suppressed", r)
    check(re.search(r"Suppressions used:\n  count  pattern\n +1  leak:flush_metrics", r.err),
          "suppressions used table", r)
    check("warning: suppression 'task:never-matches-*' (%s:3) matched nothing" % supp in r.err,
          "unused entry warned", r)
    d = load_json(out)
    check(d["summary"]["suppressed"] == 1 and d["summary"]["unretrieved_error"] == 0, "json")
    check(d["suppressions"][0]["hits"] == 1 and d["suppressions"][1]["hits"] == 0, "hits")
    check(d["leaks"][0]["suppressed"] is True and d["leaks"][0]["counted"] is False, "record")

    # Every entry type, on destroyed_pending (two records): file basename, task, kind.
    for text, rc in (("leak:destroyed_pending.c\n", 0),            # a frame's file (basename)
                     ("task:poller\n", 1),                          # one of the two
                     ("task:poller\ntask:await-*\n", 0),
                     ("kind:destroyed_pending\n", 0),
                     ("kind:unretrieved_error\n", 1),
                     ("leak:*/samples/destroyed_pending.c\n", 0),   # full path glob
                     ("leak:drop_request\n", 1)):                   # the stranded one's stack
        with open(supp, "w") as f:
            f.write(text)
        r = run(["--suppressions", supp, "--"] + sample("destroyed_pending"))
        check(r.rc == rc, "suppressions %r: exit %d" % (text, rc), r)


def t_children():
    # A CMD that starts instrumented processes in the background and exits first: the gate
    # (a subreaper) waits for them, so their reports count.
    script = tmp("bg.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n(sleep 0.3; %s >/dev/null) &\n%s --fixed >/dev/null\n" % (
            sample("unretrieved_error")[0], sample("destroyed_pending")[0]))
    os.chmod(script, 0o755)
    out = tmp("bg.json")
    r = run(["--json", out, "--", script])
    check(r.rc == 1, "the background child's leak counts", r)
    d = load_json(out)
    check(len(d["processes"]) == 2 and d["summary"]["unretrieved_error"] == 1, "both merged", r)
    # A process in a new session escapes the process group, not the subreaper.
    if shutil.which("setsid"):
        r = run(["--", "sh", "-c", "setsid %s >/dev/null & exit 0" % sample("unretrieved_error")[0]])
        check(r.rc == 1, "setsid child waited for", r)


def t_signals():
    r = run(["--", "sh", "-c", "kill -SEGV $$"])
    check(r.rc == 139 and "killed by signal 11 (Segmentation fault)" in r.err, "SEGV", r)
    r = run(["--", "sh", "-c", "kill -ABRT $$"])
    check(r.rc == 134 and "killed by signal 6 (Aborted)" in r.err, "ABRT", r)
    # SIGTERM to the gate is forwarded to CMD's process group (the sleeping grandchild too).
    e = dict(os.environ)
    e.pop("TASKSCOPE_OPTIONS", None)
    t0 = time.time()
    p = subprocess.Popen([TS, "check", "--", "sh", "-c", "sleep 30; exit 0"], cwd=SRC, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    err = err.decode()
    check(p.returncode == 128 + signal.SIGTERM, "SIGTERM forwarded: exit 143, got %s\n%s" % (
        p.returncode, err))
    check("killed by signal 15 (Terminated)" in err, "named:\n" + err)
    check(time.time() - t0 < 10, "promptly (sleep was killed too)")
    p = subprocess.Popen([TS, "check", "--allow-uninstrumented", "--", "sh", "-c",
                          "trap 'exit 9' INT; sleep 30 >/dev/null 2>&1 & wait"], cwd=SRC, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    check(p.returncode == 9, "SIGINT forwarded, CMD's own exit status kept: %s\n%s" % (
        p.returncode, err.decode()))


def t_kinds():
    out = tmp("kinds.sarif")
    r = run(["--kinds", "unretrieved_error", "--sarif", out, "--junit", tmp("kinds.xml"),
             "--"] + sample("destroyed_pending"))
    check(r.rc == 0, "kinds not listed do not fail", r)
    check("Not counted (only --kinds unretrieved_error fail the check):" in r.err, "noted", r)
    check("2 destroyed_pending (not counted)" in summary_line(r), "summary marks them", r)
    res = load_json(out)["runs"][0]["results"]
    check(len(res) == 2 and all(x["level"] == "note" for x in res), "SARIF level note")
    s = ET.parse(tmp("kinds.xml")).getroot().find("testsuite")
    check(s.get("failures") == "0", "JUnit: no failure for notes")
    r = run(["--kinds", "destroyed_pending,pending", "--"] + sample("destroyed_pending"))
    check(r.rc == 1, "listed kinds fail", r)
    r = run(["--kinds", "destroyed_pending", "--"] + sample("unretrieved_error"))
    check(r.rc == 0, "unretrieved_error not counted", r)


def t_github():
    r = run(["--github", "--"] + sample("unretrieved_error"))
    check(r.rc == 1, "leaky", r)
    lines = [l for l in r.out.splitlines() if l.startswith("::")]
    check(len(lines) == 1, "one annotation per leak group", r)
    m = re.match(r"::error file=samples/unretrieved_error\.c,line=(\d+),"
                 r"title=taskscope%3A Task exception was never retrieved::(.*)$", lines[0])
    check(m, "annotation format: %r" % lines[0])
    body = m.group(2)
    check("\n" not in body and "%0A" in body, "multi-line message escaped")
    check("send_metrics:latency" in body and "flush_metrics at samples/unretrieved_error.c:"
          in body, "message carries the task and the stack")
    r = run(["--github", "--"] + sample("destroyed_pending"))
    lines = [l for l in r.out.splitlines() if l.startswith("::error ")]
    check(len(lines) == 2, "two groups, two annotations", r)
    r = run(["--github", "--kinds", "unretrieved_error", "--"] + sample("destroyed_pending"))
    check(r.rc == 0 and r.out.count("::notice ") == 2 and "::error" not in r.out,
          "uncounted kinds are notices", r)
    r = run(["--github", "--", "sh", "-c", "kill -SEGV $$"])
    check("::error title=taskscope check::FAILED: sh killed by signal 11" in r.out,
          "a crash is annotated too", r)


def t_strip_prefix():
    out = tmp("strip.json")
    # Default: the current directory (here the source tree).
    r = run(["--json", out, "--"] + sample("unretrieved_error"))
    files = {f["file"] for l in load_json(out)["leaks"] for f in l["created_at"]}
    check("samples/unretrieved_error.c" in files, "default strips the cwd: %r" % files)
    check("at samples/unretrieved_error.c:" in r.err, "in the text too", r)
    # Explicit prefix.
    r = run(["--strip-prefix", os.path.join(SRC, "samples") + "/", "--json", out, "--"] +
            sample("unretrieved_error"))
    files = {f["file"] for l in load_json(out)["leaks"] for f in l["created_at"]}
    check("unretrieved_error.c" in files, "explicit prefix (trailing / ignored): %r" % files)
    check("at unretrieved_error.c:" in r.err, "text", r)
    # '' keeps absolute paths.
    r = run(["--strip-prefix", "", "--json", out, "--sarif", tmp("abs.sarif"), "--"] +
            sample("unretrieved_error"))
    files = {f["file"] for l in load_json(out)["leaks"] for f in l["created_at"]}
    check(os.path.join(SRC, "samples/unretrieved_error.c") in files, "absolute: %r" % files)
    uri = load_json(tmp("abs.sarif"))["runs"][0]["results"][0]["locations"][0][
        "physicalLocation"]["artifactLocation"]
    check(uri["uri"].startswith("file:///") and "uriBaseId" not in uri, "absolute URI: %r" % uri)
    # From another directory, the default prefix does not apply: absolute names.
    r = run(["--"] + sample("unretrieved_error"), cwd=WORK)
    check("at %s/samples/unretrieved_error.c:" % SRC in r.err, "absolute from elsewhere", r)


def t_keep_and_options():
    keep = tmp("kept")
    shutil.rmtree(keep, ignore_errors=True)
    r = run(["--keep", keep, "--"] + sample("unretrieved_error"))
    files = os.listdir(keep)
    check(len(files) == 1 and re.fullmatch(r"report-\d+\.json", files[0]), "kept: %r" % files, r)
    d = load_json(os.path.join(keep, files[0]))
    check(d["program"] == "unretrieved_error" and d["summary"]["unretrieved_error"] == 1, "report")
    # The user's TASKSCOPE_OPTIONS is kept (frames=1), report= and exitcode= are the gate's.
    out = tmp("opts.json")
    r = run(["--json", out, "--"] + sample("unretrieved_error"),
            env={"TASKSCOPE_OPTIONS": "frames=1:exitcode=23:report=/nonexistent/x.json"})
    check(r.rc == 1, "exitcode=23 of the user is overridden: the gate decides", r)
    d = load_json(out)
    check(len(d["processes"]) == 1, "report= redirected into the gate's directory", r)
    check(all(len(l["created_at"]) <= 1 for l in d["leaks"]), "frames=1 kept")
    # The process's own suppressions= still apply (and count as suppressed).
    supp = tmp("own.supp")
    with open(supp, "w") as f:
        f.write("task:send_metrics:*\n")
    r = run(["--"] + sample("unretrieved_error"), env={"TASKSCOPE_OPTIONS": "suppressions=" + supp})
    check(r.rc == 0 and "(1 suppressed)" in summary_line(r), "process suppressions honoured", r)


GROUPS = {
    "exit_codes": t_exit_codes,
    "usage": t_usage,
    "json": t_json,
    "junit": t_junit,
    "sarif": t_sarif,
    "sarif_schema": t_sarif_schema,
    "suppressions": t_suppressions,
    "children": t_children,
    "signals": t_signals,
    "kinds": t_kinds,
    "github": t_github,
    "strip_prefix": t_strip_prefix,
    "keep_and_options": t_keep_and_options,
}


def main():
    global TS, BIN, SRC, WORK
    if len(sys.argv) != 6 or sys.argv[5] not in GROUPS:
        print(__doc__ + "\ngroups: " + " ".join(GROUPS), file=sys.stderr)
        return 2
    TS, BIN, SRC, work_root, group = sys.argv[1:]
    TS, BIN, SRC = os.path.abspath(TS), os.path.abspath(BIN), os.path.realpath(SRC)
    os.makedirs(work_root, exist_ok=True)
    WORK = tempfile.mkdtemp(prefix="check-%s-" % group, dir=work_root)
    try:
        GROUPS[group]()
    except Skip as e:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            print("FAILED: check_%s cannot run, and CI is set (everything must run in CI): %s"
                  % (group, e))
            return 1
        print("SKIP: %s" % e)
        return SKIP
    except Exception:
        traceback.print_exc()
        print("FAILED: check_%s (work files kept in %s)" % (group, WORK))
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    print("PASSED: check_%s" % group)
    return 0


if __name__ == "__main__":
    sys.exit(main())
