/*
 * model.h — what taskscope-top knows about one process: its live tasks (an id hash plus a
 * display list), recently finished tasks, leak records and warnings (the events), runtime and
 * loop figures, and a short history of the task count.
 *
 * The model is fed protocol messages (inspector/PROTOCOL.md, version 1): a snapshot replaces
 * everything, a delta applies what changed. It knows nothing of curses: the views read it. The
 * display list is rebuilt at most once per loop pass (tm_rebuild), and only when something it
 * depends on changed (tasks added or removed, a sort key changed, the sort, filter, view mode or
 * a collapse changed). A rebuild is O(n log n) in the live tasks (one sort, one linking pass, one
 * walk), about 30 ms for 100,000 tasks; a delta that touches k tasks costs O(k) to apply.
 *
 * Ownership: the model owns every task, string and event; JSON values it keeps (event records,
 * fetched stacks) hold their own references.
 */
#ifndef TASKSCOPE_TUI_MODEL_H
#define TASKSCOPE_TUI_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tm_state {
  TM_READY,
  TM_RUNNING,
  TM_WAITING,
  TM_DONE,
  TM_FAILED,
  TM_CANCELLED,
  TM_DESTROYED,
  TM_UNKNOWN,
  TM__NSTATES
} tm_state;

/* The sortable columns, in the order `s` cycles through them. */
typedef enum tm_col {
  TM_COL_ID,
  TM_COL_NAME,
  TM_COL_STATE,
  TM_COL_AGE,
  TM_COL_BUSY,
  TM_COL_SWITCHES,
  TM_COL_AWAIT,
  TM__NCOLS
} tm_col;

typedef struct tm_task tm_task;
struct tm_task {
  int64_t id;
  int64_t parent; /* 0: spawned outside any task */
  int64_t runtime;
  char *name;     /* owned; control characters replaced */
  tm_state state;
  char await_kind[16]; /* "" when not awaiting */
  int64_t await_id;    /* 0 when the awaited object has no id */
  double created_ms, first_run_ms, busy_ms, finished_ms; /* NAN when unknown */
  int64_t switches;
  int64_t error;   /* finished tasks: the error code, 0 when none */
  char *error_name; /* owned, NULL when none */
  char *functions; /* owned: "\n"-separated function names of stacks fetched for it, or NULL */
  int live;        /* 1: in the live table; 0: in the finished history */

  /* Tree and display (live tasks; valid after tm_rebuild). */
  tm_task *tparent, *first_child, *last_child, *next_sib;
  uint32_t ndesc;   /* live descendants */
  int32_t row;      /* index in the display list, -1 when not shown */
  uint32_t slot;    /* index in the model's dense array of live tasks */
  unsigned collapsed : 1, match : 1, shown : 1, visited : 1;
};

/* One row of the display list. In tree mode `lines` has bit d set when the ancestor at depth d
 * (0 = root) has a later shown sibling, i.e. a vertical line continues in that column; `last`
 * says whether the row itself is the last shown child of its parent. */
typedef struct tm_row {
  tm_task *task;
  uint32_t depth;
  uint64_t lines;
  unsigned last : 1;
} tm_row;

typedef enum tm_event_kind {
  TM_EV_LEAK,
  TM_EV_WARNING,
} tm_event_kind;

typedef struct tm_event {
  tm_event_kind kind;
  double time_ms;   /* NAN when unknown (records already made when the snapshot was taken) */
  char *what;       /* owned: "destroyed_pending", "unretrieved_error", "loop_stalled", ... */
  int64_t task_id;  /* 0 when about no task */
  char *task_name;  /* owned or NULL */
  char *summary;    /* owned: one line */
  json_t *json;     /* the record (a reference is held) */
  uint64_t seq;     /* increases by one per event ever added */
} tm_event;

typedef struct tm_runtime {
  int64_t id;
  double lag_ms, stalled_ms; /* NAN when unknown */
  int64_t dropped_events;
  json_t *stalled_stack; /* reference or NULL */
} tm_runtime;

#define TM_SPARK_SAMPLES 120
#define TM_EVENTS_MAX 5000
#define TM_HISTORY_MAX 2000

typedef struct tm_model {
  /* live tasks: an open-addressing hash id -> task, and a dense array (the sort order after a
   * rebuild) */
  tm_task **hash;
  size_t hash_cap, nlive;
  tm_task **live;
  size_t live_cap;
  size_t nstate[TM__NSTATES];

  /* finished tasks, a ring of the most recent TM_HISTORY_MAX (newest at (hist_head-1)) */
  tm_task *hist[TM_HISTORY_MAX];
  size_t hist_head, nhist;

  /* events, a ring of the most recent TM_EVENTS_MAX */
  tm_event events[TM_EVENTS_MAX];
  size_t ev_head, nevents;
  uint64_t ev_seq;

  tm_runtime *runtimes;
  size_t nruntimes;

  /* from the latest message */
  int64_t pid;
  char *program;
  double time_ms;
  int64_t spawned, finished_total, dropped_events; /* -1 when unknown */
  int64_t leaks_pending, leaks_destroyed, leaks_unretrieved;
  int64_t delta_seq;    /* the last delta's seq, -1 before any */
  int64_t seq_gaps;     /* deltas that skipped a seq number */
  int have_busy;        /* some task carried "busy_ms" */
  int have_data;        /* a snapshot was loaded */

  /* task count over time (one sample per second of the server's clock) */
  int spark[TM_SPARK_SAMPLES];
  size_t spark_n;
  double spark_t;

  /* display settings */
  int tree;        /* 1: tree view, 0: flat list */
  tm_col sort_col;
  int sort_desc;
  char filter[256]; /* "" = none; case-insensitive substring of name or functions */

  /* display list */
  tm_row *rows;
  size_t nrows, rows_cap;
  unsigned dirty; /* TM_DIRTY_* */
  uint64_t generation; /* increases at every rebuild */
} tm_model;

enum {
  TM_DIRTY_LINKS = 1u << 0, /* the set of live tasks or a parent changed */
  TM_DIRTY_SORT = 1u << 1,  /* a sort key may have changed */
  TM_DIRTY_ROWS = 1u << 2,  /* filter, collapse or mode changed */
};

void tm_init(tm_model *m);
void tm_free(tm_model *m);
/* Forgets every task and event (a new process, or a seek in a replay). Settings are kept. */
void tm_clear(tm_model *m);

/* Applies one protocol message: "snapshot" (replaces the view) or "delta"; other types are
 * ignored. Returns 1 when the model changed, 0 when not, -1 when the message is malformed (err
 * says why; what could be applied was). */
int tm_apply(tm_model *m, json_t *msg, char *err, size_t errlen);

/* Rebuilds the display list when needed. Returns 1 when it did. */
int tm_rebuild(tm_model *m);

/* Settings; each marks what must be rebuilt. */
void tm_set_tree(tm_model *m, int tree);
void tm_set_sort(tm_model *m, tm_col col, int desc);
void tm_set_filter(tm_model *m, const char *filter);
/* Collapses (1), expands (0) or toggles (-1) a task's subtree. Returns 1 if it changed. */
int tm_set_collapsed(tm_model *m, tm_task *t, int collapsed);

/* The live task with that id, or NULL. */
tm_task *tm_find(const tm_model *m, int64_t id);
/* The live task, else the most recently finished one with that id, or NULL. */
tm_task *tm_lookup(const tm_model *m, int64_t id);
/* The i-th most recent event (0 = newest), or NULL. */
tm_event *tm_event_at(const tm_model *m, size_t i);
/* Records the function names of a stack fetched for a task (FRAME array), for the filter. */
void tm_note_functions(tm_model *m, int64_t id, json_t *frames);
/* Tasks whose awaiting is task `id` (awaiting kind "task"), up to max; returns the count found
 * (which may exceed max). O(live tasks). */
size_t tm_awaited_by(const tm_model *m, int64_t id, tm_task **out, size_t max);
/* The live task count samples, oldest first; returns how many (at most max). */
size_t tm_spark(const tm_model *m, int *out, size_t max);
/* The largest loop lag and stall over the runtimes (NAN when unknown). */
double tm_lag_ms(const tm_model *m);
double tm_stalled_ms(const tm_model *m);

const char *tm_state_name(tm_state s);
tm_state tm_state_parse(const char *s);
const char *tm_col_name(tm_col c);

#endif
