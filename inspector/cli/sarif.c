/*
 * sarif.c — `taskscope check --sarif FILE`: the merged leak groups as SARIF 2.1.0.
 *
 * One run, tool "taskscope" with one rule per kind (pending, destroyed_pending,
 * unretrieved_error). One result per leak group: level "error" for counted kinds, "note" for
 * kinds left out by --kinds; the message is the group's headline and one-line summary; the
 * location is the group's first user frame (a frame whose file is under the strip prefix,
 * preferring the creation stack: the spawn site), as a path relative to the strip prefix with
 * uriBaseId SRCROOT (absolute file: URIs for files outside it); every stack of the record is a
 * threadFlow of one codeFlow (outermost frame first, as threadFlows are in execution order) and
 * also a SARIF "stack" (innermost first); partialFingerprints carry a hash of the kind and the
 * stacks' function names (not addresses), stable across rebuilds.
 */
#include "check.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A malloc'ed formatted string, or NULL when memory runs out. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  if (vasprintf(&s, f, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

static const char *const rule_names[CK_KINDS] = {"PendingTask", "DestroyedPendingTask",
                                                 "UnretrievedTaskError"};
static const char *const rule_short[CK_KINDS] = {
    "Task is still pending",
    "Task was destroyed but it is pending",
    "Task exception was never retrieved",
};
static const char *const rule_full[CK_KINDS] = {
    "A task had not finished when its process exited (or at an explicit leak check): nothing "
    "joined, cancelled or waited for it.",
    "A task was destroyed before it finished (its runtime was closed under it, it was destroyed "
    "explicitly), or it is stranded: it waits on a future whose every completer was released, "
    "so nothing can ever wake it.",
    "A task failed and its handle was released (detached, or never joined) without anyone "
    "reading its error: the failure vanished.",
};

/* A URI reference for a path: unreserved characters and '/' kept, the rest percent-encoded. */
static char *uri_encode(const char *path, int absolute) {
  size_t n = strlen(path);
  char *out = malloc(n * 3 + 16);
  if (!out) return NULL;
  char *d = out;
  if (absolute) {
    memcpy(d, "file://", 7);
    d += 7;
  }
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    unsigned char c = *p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        strchr("-._~/", c))
      *d++ = (char)c;
    else
      d += sprintf(d, "%%%02X", c);
  }
  *d = '\0';
  return out;
}

/* {"uri":..., "uriBaseId":"SRCROOT"} for a file under the strip prefix (or relative), else an
 * absolute file: URI. */
static json_t *artifact_location(const ck_run *r, const char *file) {
  const char *p = ck_path(r, file);
  int relative = p[0] != '/';
  char *uri = uri_encode(p, !relative);
  if (!uri) return NULL;
  json_t *o = json_pack("{s:s}", "uri", uri);
  free(uri);
  if (relative && r->strip[0]) json_object_set_new(o, "uriBaseId", json_string("SRCROOT"));
  return o;
}

static json_t *frame_location(const ck_run *r, const ck_frame *f, int with_message) {
  json_t *loc = json_object();
  if (f->file) {
    json_t *phys = json_object();
    json_object_set_new(phys, "artifactLocation", artifact_location(r, f->file));
    if (f->line > 0) json_object_set_new(phys, "region", json_pack("{s:i}", "startLine", f->line));
    json_object_set_new(loc, "physicalLocation", phys);
  }
  if (f->function)
    json_object_set_new(loc, "logicalLocations",
                        json_pack("[{s:s,s:s}]", "name", f->function, "kind", "function"));
  if (with_message || (!f->file && !f->function)) {
    char *m;
    if (f->function && f->file && f->line > 0)
      m = fmt("%s at %s:%d", f->function, ck_path(r, f->file), f->line);
    else if (f->function && f->file)
      m = fmt("%s at %s", f->function, ck_path(r, f->file));
    else if (f->function)
      m = fmt("%s (%s)", f->function, f->module ? f->module : "?");
    else
      m = fmt("%s in %s", f->ip ? f->ip : "?", f->module ? f->module : "?");
    if (m) {
      json_object_set_new(loc, "message", json_pack("{s:s}", "text", m));
      free(m);
    }
  }
  return loc;
}

static json_t *code_flows(const ck_run *r, const ck_leak *l) {
  json_t *flows = json_array();
  for (int s = 0; s < CK_NSTACKS; s++) {
    const ck_stack *st = &l->st[s];
    if (!st->n) continue;
    json_t *locs = json_array();
    /* Execution order: the outermost frame first. */
    for (size_t i = st->n; i-- > 0;) {
      json_t *tfl = json_object();
      json_object_set_new(tfl, "location", frame_location(r, &st->f[i], 1));
      json_object_set_new(tfl, "nestingLevel", json_integer((json_int_t)(st->n - 1 - i)));
      json_object_set_new(tfl, "executionOrder", json_integer((json_int_t)(st->n - i)));
      json_array_append_new(locs, tfl);
    }
    json_array_append_new(flows, json_pack("{s:{s:s},s:o}", "message", "text", ck_stack_title[s],
                                           "locations", locs));
  }
  if (json_array_size(flows) == 0) {
    json_decref(flows);
    return NULL;
  }
  return json_pack("[{s:{s:s},s:o}]", "message", "text", "the task's stacks", "threadFlows",
                   flows);
}

static json_t *stacks(const ck_run *r, const ck_leak *l) {
  json_t *a = json_array();
  for (int s = 0; s < CK_NSTACKS; s++) {
    const ck_stack *st = &l->st[s];
    if (!st->n) continue;
    json_t *frames = json_array();
    for (size_t i = 0; i < st->n; i++) {
      json_t *fr = json_pack("{s:o}", "location", frame_location(r, &st->f[i], 0));
      if (st->f[i].module) json_object_set_new(fr, "module", json_string(st->f[i].module));
      json_array_append_new(frames, fr);
    }
    json_array_append_new(a, json_pack("{s:{s:s},s:o}", "message", "text", ck_stack_title[s],
                                       "frames", frames));
  }
  return a;
}

int ck_write_sarif(const ck_run *r, const char *path, const char *version) {
  json_t *rules = json_array();
  for (int k = 0; k < CK_KINDS; k++) {
    json_array_append_new(
        rules, json_pack("{s:s,s:s,s:{s:s},s:{s:s},s:{s:s},s:{s:[s]}}", "id", ck_kind_name(k),
                         "name", rule_names[k], "shortDescription", "text", rule_short[k],
                         "fullDescription", "text", rule_full[k], "defaultConfiguration", "level",
                         "error", "properties", "tags", "async-task-leak"));
  }
  json_t *driver = json_pack("{s:s,s:s,s:s,s:o}", "name", "taskscope", "version", version,
                             "semanticVersion", version, "rules", rules);

  json_t *results = json_array();
  for (size_t i = 0; i < r->ngroups; i++) {
    const ck_group *g = &r->groups[i];
    const ck_leak *l = &r->leaks[g->rep];
    char *one = ck_group_oneline(r, g);
    char *text;
    if (l->has_error)
      text = fmt("%s: %s; error %s: %s", ck_group_headline(r, g), one,
                 l->err_name ? l->err_name : "?",
                 l->err_message ? l->err_message
                                : (l->err_description ? l->err_description : "?"));
    else
      text = fmt("%s: %s", ck_group_headline(r, g), one);
    free(one);
    json_t *res = json_pack("{s:s,s:i,s:s,s:{s:s}}", "ruleId", ck_kind_name(l->kind), "ruleIndex",
                            l->kind, "level", g->counted ? "error" : "note", "message", "text",
                            text ? text : "leaked task");
    free(text);
    json_t *locs = json_array();
    if (g->where) json_array_append_new(locs, frame_location(r, g->where, 0));
    json_object_set_new(res, "locations", locs);
    json_t *cf = code_flows(r, l);
    if (cf) json_object_set_new(res, "codeFlows", cf);
    json_t *st = stacks(r, l);
    if (json_array_size(st))
      json_object_set_new(res, "stacks", st);
    else
      json_decref(st);
    json_object_set_new(res, "partialFingerprints",
                        json_pack("{s:s}", "taskscopeStack/v1", g->fingerprint));
    json_object_set_new(res, "occurrenceCount", json_integer((json_int_t)g->count));
    json_object_set_new(res, "properties",
                        json_pack("{s:s,s:I,s:I,s:b}", "task", l->task_name, "tasks",
                                  (json_int_t)g->count, "processes", (json_int_t)g->nprocs,
                                  "counted", g->counted));
    json_array_append_new(results, res);
  }

  json_t *run = json_pack("{s:{s:o},s:o}", "tool", "driver", driver, "results", results);
  if (r->strip[0]) {
    const char *root = r->strip[0];
    size_t len = r->strip_len[0];
    char *dir = malloc(len + 2);
    if (dir) {
      memcpy(dir, root, len);
      if (len == 1 && root[0] == '/')
        dir[1] = '\0';
      else {
        dir[len] = '/';
        dir[len + 1] = '\0';
      }
      char *uri = uri_encode(dir, 1);
      if (uri)
        json_object_set_new(run, "originalUriBaseIds",
                            json_pack("{s:{s:s}}", "SRCROOT", "uri", uri));
      free(uri);
      free(dir);
    }
  }
  /* The invocation: CMD, how it ended, and whether the gate passed. */
  char *cmdline = ck_command_string(r);
  json_t *inv = json_pack("{s:s,s:b}", "commandLine", cmdline, "executionSuccessful",
                          r->exit_code == 0);
  free(cmdline);
  json_object_set_new(inv, "exitCode", json_integer(r->exit_code));
  json_object_set_new(inv, "exitCodeDescription", json_string(r->verdict));
  json_object_set_new(run, "invocations", json_pack("[o]", inv));
  json_object_set_new(run, "columnKind", json_string("unicodeCodePoints"));

  json_t *doc = json_pack("{s:s,s:s,s:[o]}", "$schema", "https://json.schemastore.org/sarif-2.1.0.json",
                          "version", "2.1.0", "runs", run);
  int rc = 0;
  if (!doc || json_dump_file(doc, path, JSON_INDENT(1)) != 0) {
    fflush(stdout);
    fprintf(stderr, "taskscope check: cannot write %s: %s\n", path, strerror(errno ? errno : EIO));
    rc = -1;
  }
  json_decref(doc);
  return rc;
}
