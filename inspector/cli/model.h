/*
 * model.h — a `snapshot` answer, checked and indexed.
 *
 * ts_snapshot_parse checks the type of every documented field it uses (a missing optional field
 * gets a default; a field of the wrong type makes the whole answer malformed, with a message
 * naming the field, e.g. "tasks[3].parent: expected an integer or null, got a string"). Unknown
 * fields are ignored. Strings point into the JSON document, which the snapshot owns (or, for a
 * large answer, the tasks' strings into the answer's text: ts_snapshot_parse_split).
 */
#ifndef TASKSCOPE_CLI_MODEL_H
#define TASKSCOPE_CLI_MODEL_H

#include <jansson.h>
#include <stddef.h>

typedef struct ts_task {
  long long id;
  long long parent; /* valid when has_parent */
  int has_parent;
  long long runtime;
  const char *name;
  const char *state;
  const char *await_kind; /* NULL when not awaiting */
  long long await_id;     /* valid when await_has_id */
  int await_has_id;
  double created_ms; /* NAN when unknown */
  long long switches;
  int has_runtime; /* runtime was given (an integer, not null) */
} ts_task;

typedef struct ts_finished {
  long long id;
  long long parent;
  int has_parent;
  const char *name;
  const char *state;
  const char *error_name; /* NULL when none */
  double finished_ms;     /* NAN when unknown */
} ts_finished;

typedef struct ts_runtime {
  long long id;
  double lag_ms, stalled_ms; /* NAN when unknown */
  long long dropped_events;
  json_t *stalled_stack; /* FRAME array or NULL (borrowed) */
} ts_runtime;

typedef struct ts_snapshot {
  json_t *root; /* the answer; owned */
  char *text;   /* the raw text the tasks' strings point into (the fast path), or NULL; owned */
  size_t text_size;
  long long pid;
  const char *program;
  double time_ms;
  ts_task *tasks; /* sorted by id; owned */
  size_t ntasks;
  ts_finished *finished; /* in the server's order (newest last); owned */
  size_t nfinished;
  ts_runtime *runtimes; /* owned */
  size_t nruntimes;
  json_t *warnings; /* array (borrowed; checked: objects with string kind/message) */
  json_t *leaks;    /* array (borrowed) */
  /* stats, -1 when absent */
  long long spawned, finished_total, dropped_events;
  long long leaks_pending, leaks_destroyed_pending, leaks_unretrieved_error;
} ts_snapshot;

/* Takes ownership of `root` (also on failure). On failure writes the reason to err and
 * returns -1. */
int ts_snapshot_parse(json_t *root, ts_snapshot *s, char *err, size_t errlen);
/* The same for an answer read with its "tasks" array split off (ts_conn_request_split): root
 * holds an empty "tasks" array, raw the real one (NULL: nothing was split off). Takes ownership
 * of both (also on failure). */
struct ts_conn_raw;
int ts_snapshot_parse_split(json_t *root, struct ts_conn_raw *raw, ts_snapshot *s, char *err,
                            size_t errlen);
void ts_snapshot_free(ts_snapshot *s);

/* The live task with that id, or NULL (binary search). */
const ts_task *ts_snapshot_task(const ts_snapshot *s, long long id);
/* The most recent finished task with that id, or NULL. */
const ts_finished *ts_snapshot_finished(const ts_snapshot *s, long long id);

/* Checked access to JSON fields, shared with the commands. A validator keeps the first error.
 * `where` names the object in messages ("tasks[3]"). */
typedef struct ts_jv {
  char *err;
  size_t errlen;
  int failed;
  char where[64];
} ts_jv;

enum { TS_JV_REQUIRED = 1, TS_JV_NULLABLE = 2 };

void ts_jv_at(ts_jv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The failures behind the checks (jv.c; shared with the fast path, fastjson.c): each records
 * only the first failure of a validator and returns 0. `got` names the type found ("a string").
 *   missing:  "<where>.<key>: missing (expected <want>)"
 *   wrong:    "<where>.<key>: expected <want>[ or null], got <got>" */
int ts_jv_missing(ts_jv *v, const char *key, const char *want);
int ts_jv_wrong(ts_jv *v, const char *key, const char *want, unsigned flags, const char *got);
int ts_jv_failf(ts_jv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Each returns 1 when a value was stored in *out, 0 when the field is absent (or null where
 * TS_JV_NULLABLE allows it) or when its type is wrong (then v->failed is set). */
int ts_jv_int(ts_jv *v, json_t *o, const char *key, unsigned flags, long long *out);
int ts_jv_num(ts_jv *v, json_t *o, const char *key, unsigned flags, double *out);
int ts_jv_str(ts_jv *v, json_t *o, const char *key, unsigned flags, const char **out);
/* An object or array field: returns it, or NULL when absent/null/wrong (v->failed then). */
json_t *ts_jv_obj(ts_jv *v, json_t *o, const char *key, unsigned flags);
json_t *ts_jv_arr(ts_jv *v, json_t *o, const char *key, unsigned flags);
/* Checks a TASK object (inspector/PROTOCOL.md) into *t (strings borrowed from o). */
void ts_jv_task(ts_jv *v, json_t *o, ts_task *t);
/* Checks a FRAME array: objects with a string "ip", and "function"/"file" strings or null,
 * "line" an integer or null. NULL and JSON null are accepted. */
int ts_jv_frames(ts_jv *v, json_t *frames, const char *what);

#endif
