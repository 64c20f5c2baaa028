/*
 * registry.c — the task registry's bookkeeping beyond the task structs themselves: the bounded
 * history of finished tasks, the leak records (made as they happen or when a report is taken),
 * the reports at runtime close and at process exit, and the check API for tests.
 *
 * Records: destroyed_pending (runtime close, tsk_task_destroy, stranded waiters) and
 * unretrieved_error (a failed task whose handle was released without reading its outcome) are
 * made when they happen and kept in rt->leaks (at most TSK__MAX_RECORDS per runtime; more are
 * counted, not kept). pending records are made when a report is taken: at process exit for
 * runtimes still open, and by tsk_leak_check. A task gets at most one record of each event.
 *
 * Reports: at runtime close, the runtime's records are printed (text, stderr) and added to the
 * process's list; the JSON report (report=PATH) is rewritten whole with every record of the
 * process at each close and at exit. At exit, runtimes still open contribute their unfinished
 * tasks as pending. exitcode=N then turns a successful exit status into N if any record was
 * not suppressed (a failing status is left as it is).
 */
#include "internal.h"
#include "backtrace.h"
#include "events.h"
#include "leak.h"
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define TSK__MAX_RECORDS 10000
#define TSK__CHAIN_SCAN 100000 /* tasks looked at per ancestor lookup, at most */

/* The process's view: open runtimes, records of closed ones, suppressions. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static tsk__list g_runtimes = {&g_runtimes, &g_runtimes};
static tsk__leak *g_records, **g_records_tail = &g_records;
static size_t g_unsuppressed;
static tsk__suppressions *g_supp;
static int g_supp_loaded, g_exit_registered;

static void at_exit(int status, void *arg);

/* ---- setup ---- */

static void load_suppressions_locked(const tsk__options *o) {
  if (g_supp_loaded) return;
  g_supp_loaded = 1;
  if (!o->suppressions[0]) return;
  char err[512];
  if (tsk__suppressions_load(o->suppressions, &g_supp, err, sizeof err) != 0) {
    fprintf(stderr, "taskscope: suppressions: %s (continuing without suppressions)\n", err);
    g_supp = NULL;
  }
}

int tsk__registry_init(tsk_runtime_t *rt) {
  rt->opts = malloc(sizeof *rt->opts);
  if (!rt->opts) return TSK_ENOMEM;
  tsk__config_snapshot(rt->opts);
  rt->bt_frames = rt->opts->backtrace == TSK__BACKTRACE_SPAWN ? (int)rt->opts->frames : 0;
  if (rt->bt_frames > TSK__CREATED_MAX) rt->bt_frames = TSK__CREATED_MAX;
  rt->busy_time = rt->opts->busy_time;
  size_t cap = rt->opts->history;
  rt->history = calloc(1, sizeof *rt->history + cap * sizeof(tsk__history_entry));
  if (!rt->history) {
    free(rt->opts);
    rt->opts = NULL;
    return TSK_ENOMEM;
  }
  rt->history->cap = cap;
  rt->leaks = NULL;
  rt->leaks_tail = &rt->leaks;
  pthread_mutex_lock(&g_lock);
  tsk__list_push(&g_runtimes, &rt->all_link);
  load_suppressions_locked(rt->opts);
  if (!g_exit_registered) {
    g_exit_registered = 1;
    on_exit(at_exit, NULL);
  }
  pthread_mutex_unlock(&g_lock);
  return 0;
}

void tsk__registry_free(tsk_runtime_t *rt) {
  if (!rt->opts) return; /* never initialised */
  pthread_mutex_lock(&g_lock);
  if (rt->all_link.next) tsk__list_remove(&rt->all_link);
  pthread_mutex_unlock(&g_lock);
  tsk__leak_free_list(rt->leaks);
  rt->leaks = NULL;
  free(rt->history);
  rt->history = NULL;
  free(rt->opts);
  rt->opts = NULL;
}

/* ---- looking tasks up (for names and parent chains) ---- */

/* A task's name: its own (name), or its entry function's symbol. */
static void name_of(const char *name, tsk_fn fn, char *buf, size_t size) {
  if (name[0])
    snprintf(buf, size, "%s", name);
  else
    tsk__bt_entry_name((uintptr_t)fn, buf, size);
}

static void task_name(const tsk__task *t, char *buf, size_t size) {
  name_of(t->name, t->fn, buf, size);
}

static const tsk__task *find_in(const tsk__list *l, uint64_t id, size_t *budget) {
  for (const tsk__list *n = l->next; n != l && *budget; n = n->next, (*budget)--) {
    const tsk__task *t = TSK__CONTAINER(n, tsk__task, live_link);
    if (t->id == id) return t;
  }
  return NULL;
}

/* Name and parent of task `id`, from the live and finished tasks or the history. */
static int lookup(tsk_runtime_t *rt, uint64_t id, char *name, size_t size, uint64_t *parent) {
  size_t budget = TSK__CHAIN_SCAN;
  const tsk__task *t = find_in(&rt->live, id, &budget);
  if (!t) t = find_in(&rt->finished, id, &budget);
  if (t) {
    task_name(t, name, size);
    *parent = t->parent_id;
    return 1;
  }
  struct tsk__history *h = rt->history;
  for (size_t i = 0; i < h->count; i++) {
    const tsk__history_entry *e = &h->e[i];
    if (e->id == id) {
      name_of(e->name, e->fn, name, size);
      *parent = e->parent_id;
      return 1;
    }
  }
  return 0;
}

/* ---- history ---- */

void tsk__registry_task_failed(tsk__task *t) {
  /* Its stack (and the creation backtrace at its top) goes away now; a record may still need
   * the backtrace, so keep a copy. Failures are rare: this costs nothing on the common path. */
  tsk__stack_hdr *hdr = tsk__hdr(t->stack);
  if (hdr->ncreated && (t->created_copy = malloc(hdr->ncreated * sizeof(uintptr_t)))) {
    memcpy(t->created_copy, hdr->created, hdr->ncreated * sizeof(uintptr_t));
    t->ncreated_copy = hdr->ncreated;
  }
  if (!t->handle_held && !t->owned_by_group) tsk__registry_released(t);
}

/* ---- records ---- */

static void add_record(tsk_runtime_t *rt, tsk__leak *l) {
  tsk__ev_leak(rt, l); /* the inspector server gets a copy */
  if (rt->opts->verbosity >= 1) /* verbosity=1: each record as it is made, not only at close */
    fprintf(stderr, "taskscope: %s: task %llu \"%s\": %s\n", tsk__leak_kind_name(l->kind),
            (unsigned long long)l->task.id, l->task.name, l->reason);
  if (rt->nleaks >= TSK__MAX_RECORDS) {
    rt->leaks_dropped++;
    tsk__leak_free(l);
    return;
  }
  *rt->leaks_tail = l;
  rt->leaks_tail = &l->next;
  rt->nleaks++;
}

/* Builds a record of task t (live or finished). chain_budget limits ancestor lookups. */
static tsk__leak *record_of(tsk_runtime_t *rt, tsk__task *t, tsk__leak_kind kind,
                            const char *reason, int with_chain) {
  tsk__leak *l = tsk__leak_new(kind);
  if (!l) return NULL;
  snprintf(l->reason, sizeof l->reason, "%s", reason);
  l->task.id = t->id;
  task_name(t, l->task.name, sizeof l->task.name);
  l->parent_id = t->parent_id;
  uint64_t id = t->parent_id;
  while (with_chain && id && l->chain_len < TSK__LEAK_CHAIN) {
    tsk__leak_task *c = &l->chain[l->chain_len];
    uint64_t parent = 0;
    c->id = id;
    if (!lookup(rt, id, c->name, sizeof c->name, &parent)) snprintf(c->name, sizeof c->name, "?");
    l->chain_len++;
    id = parent;
  }
  l->state = t->state;
  if (t->wait) {
    l->awaiting = t->wait->kind;
    l->awaiting_id = t->wait->object_id;
  }
  if (t->state == TSK_TASK_FAILED) {
    l->error = t->error;
    if (t->message) l->message = strdup(t->message);
  }
  uint64_t now = uv_now(rt->loop);
  l->age_ms = now > t->created_ms ? now - t->created_ms : 0;
  if (t->stack) {
    tsk__stack_hdr *hdr = tsk__hdr(t->stack);
    tsk__bt_set(&l->created_at, hdr->created, hdr->ncreated);
    /* The live stack of a suspended task that has run (a task that never ran has no frames). */
    if (t != tsk__current && t->first_run_ms && t->state != TSK_TASK_RUNNING &&
        rt->zombie != t) {
      uintptr_t ips[TSK__BT_MAX_FRAMES];
      int n = tsk__bt_unwind_suspended_fp(&t->ctx, ips, TSK__BT_MAX_FRAMES,
                                          (uintptr_t)t->stack->base,
                                          (uintptr_t)tsk__hdr(t->stack));
      if (n > 0) tsk__bt_set(&l->suspended_at, ips, n);
    }
  } else if (t->created_copy) {
    tsk__bt_set(&l->created_at, t->created_copy, t->ncreated_copy);
  }
  if (t->raised) tsk__bt_set(&l->raised_at, t->raised, t->nraised);
  return l;
}

void tsk__registry_released(tsk__task *t) {
  if (t->retrieved || t->recorded || t->state != TSK_TASK_FAILED) return;
  t->recorded = 1;
  tsk__leak *l = record_of(t->rt, t, TSK__LEAK_UNRETRIEVED_ERROR,
                           "it failed and its handle was released without join", 1);
  if (l) add_record(t->rt, l);
}

tsk__leak *tsk__registry_group_failure(tsk__task *t, uint64_t group_id) {
  char reason[128];
  snprintf(reason, sizeof reason,
           "it failed in group %llu and the group's outcome was never read",
           (unsigned long long)group_id);
  return record_of(t->rt, t, TSK__LEAK_UNRETRIEVED_ERROR, reason, 1);
}

void tsk__registry_add(tsk_runtime_t *rt, struct tsk__leak *l) { add_record(rt, l); }

void tsk__registry_destroyed(tsk__task *t, const char *reason) {
  if (t->recorded) return;
  t->recorded = 1;
  tsk__leak *l = record_of(t->rt, t, TSK__LEAK_DESTROYED_PENDING, reason, 1);
  if (l) add_record(t->rt, l);
}

void tsk__registry_stranded(tsk_runtime_t *rt, tsk__list *waiters, uint64_t future_id) {
  uintptr_t dropped[TSK__BT_MAX_FRAMES];
  int ndropped = rt->bt_frames ? tsk__bt_capture(dropped, rt->bt_frames, 1) : 0;
  char reason[96];
  snprintf(reason, sizeof reason, "stranded: the last completer of future %llu was released",
           (unsigned long long)future_id);
  for (tsk__list *n = waiters->next; n != waiters; n = n->next) {
    tsk__wait *w = TSK__CONTAINER(n, tsk__wait, link);
    tsk__task *t = w->task;
    if (t->recorded) continue;
    t->recorded = 1;
    tsk__leak *l = record_of(rt, t, TSK__LEAK_DESTROYED_PENDING, reason, 1);
    if (!l) continue;
    tsk__bt_set(&l->dropped_at, dropped, ndropped);
    add_record(rt, l);
  }
}

/* ---- reports ---- */

static void report_info(tsk__report_info *info, const char *when) {
  memset(info, 0, sizeof *info);
  info->pid = (int)getpid();
  info->program = program_invocation_short_name;
  info->when = when;
}

/* Appends list to the process's records, rewrites the JSON report, prints the text report.
 * Takes ownership of list. Called with g_lock held. */
static void report_locked(tsk__leak *list, const tsk__options *o, const char *when,
                          int write_if_empty) {
  if (!list && !write_if_empty) return;
  tsk__report_info info;
  report_info(&info, when);
  tsk__report_counts counts;
  tsk__report_classify(list, g_supp, &counts);
  g_unsuppressed += counts.pending + counts.destroyed_pending + counts.unretrieved_error;
  if (o->report_text && list) {
    fflush(stdout);
    tsk__report_text(stderr, list, g_supp, &info);
  }
  *g_records_tail = list;
  while (*g_records_tail) g_records_tail = &(*g_records_tail)->next;
  if (o->report[0]) {
    char path[TSK__OPTIONS_PATH_MAX + 32];
    if (tsk__options_report_path(o, path, sizeof path) > 0) {
      int rc = tsk__report_json_write(path, g_records, g_supp, &info);
      if (rc)
        fprintf(stderr, "taskscope: cannot write the report to %s: %s\n", path,
                tsk_strerror(rc));
    }
  }
}

static tsk__leak *take_records(tsk_runtime_t *rt) {
  tsk__leak *l = rt->leaks;
  rt->leaks = NULL;
  rt->leaks_tail = &rt->leaks;
  rt->nleaks = 0;
  if (rt->leaks_dropped) {
    fprintf(stderr, "taskscope: %zu further leak records were not kept (limit %d per runtime)\n",
            rt->leaks_dropped, TSK__MAX_RECORDS);
    rt->leaks_dropped = 0;
  }
  return l;
}

void tsk__registry_close(tsk_runtime_t *rt) {
  /* Groups whose first failure nobody read. */
  tsk__group_unread_failures(rt);
  /* Unfinished tasks are about to be destroyed: the loop closed under them. */
  for (tsk__list *n = rt->live.next; n != &rt->live; n = n->next) {
    tsk__task *t = TSK__CONTAINER(n, tsk__task, live_link);
    if (t->recorded) continue;
    t->recorded = 1;
    /* Parent chains are looked up for the first records only: each lookup scans the tasks. */
    tsk__leak *l = record_of(rt, t, TSK__LEAK_DESTROYED_PENDING,
                             "the runtime was closed while it was pending", rt->nleaks < 1000);
    if (l) add_record(rt, l);
  }
  /* Failed tasks whose handle is still held and was never joined. */
  for (tsk__list *n = rt->finished.next; n != &rt->finished; n = n->next) {
    tsk__task *t = TSK__CONTAINER(n, tsk__task, live_link);
    if (t->state != TSK_TASK_FAILED || t->retrieved || t->recorded || t->owned_by_group) continue;
    t->recorded = 1;
    tsk__leak *l = record_of(rt, t, TSK__LEAK_UNRETRIEVED_ERROR,
                             "it failed and was never joined before the runtime closed", 1);
    if (l) add_record(rt, l);
  }
  pthread_mutex_lock(&g_lock);
  report_locked(take_records(rt), rt->opts, "runtime close", 0);
  pthread_mutex_unlock(&g_lock);
}

static void at_exit(int status, void *arg) {
  (void)arg;
  tsk__options o;
  tsk__config_snapshot(&o);
  pthread_mutex_lock(&g_lock);
  tsk__leak *list = NULL, **tail = &list;
  for (tsk__list *n = g_runtimes.next; n != &g_runtimes; n = n->next) {
    tsk_runtime_t *rt = TSK__CONTAINER(n, tsk_runtime_t, all_link);
    for (tsk__list *m = rt->live.next; m != &rt->live; m = m->next) {
      tsk__task *t = TSK__CONTAINER(m, tsk__task, live_link);
      if (rt->main_task_id && t->id == rt->main_task_id && rt->main_done) continue;
      tsk__leak *l = record_of(rt, t, TSK__LEAK_PENDING, "still pending at process exit",
                               rt->nleaks < 1000);
      if (l) add_record(rt, l);
    }
    tsk__group_unread_failures(rt);
    *tail = take_records(rt);
    while (*tail) tail = &(*tail)->next;
  }
  /* At exit the JSON report is written even when it is empty: a file saying "no leaks" tells a
   * CI gate that this process was instrumented and clean. */
  report_locked(list, &o, "process exit", 1);
  size_t unsuppressed = g_unsuppressed;
  pthread_mutex_unlock(&g_lock);
  if (unsuppressed && o.exitcode && status == 0) {
    fflush(NULL);
    _exit((int)o.exitcode);
  }
}

/* ---- for the inspector server ---- */

/* Pending records (no parent chains: each lookup scans the tasks) of the oldest live tasks, at
 * most max; *omitted counts the others. Runs on the loop thread; the caller owns the list. */
tsk__leak *tsk__registry_pending_records(tsk_runtime_t *rt, size_t max, size_t *omitted) {
  tsk__leak *list = NULL, **tail = &list;
  size_t n = 0;
  for (tsk__list *m = rt->live.next; m != &rt->live && n < max; m = m->next) {
    tsk__task *t = TSK__CONTAINER(m, tsk__task, live_link);
    tsk__leak *l = record_of(rt, t, TSK__LEAK_PENDING, "still pending (inspector)", 0);
    if (!l) continue;
    *tail = l;
    tail = &l->next;
    n++;
  }
  *omitted = tsk__live_count(rt) > n ? (size_t)(tsk__live_count(rt) - n) : 0;
  return list;
}

/* ---- the check API ---- */

uint64_t tsk__peek_next_task_id(void);

uint64_t tsk_leak_mark(tsk_runtime_t *rt) {
  (void)rt;
  return tsk__peek_next_task_id();
}

static int in_scope(const tsk__task *t, const tsk_check_opts_t *o) {
  if (t == tsk__current) return 0;
  if (t->id < o->since) return 0;
  if (o->group && t->group != o->group) return 0;
  return 1;
}

static size_t unfinished_in_scope(tsk_runtime_t *rt, const tsk_check_opts_t *o) {
  size_t n = 0;
  for (tsk__list *l = rt->live.next; l != &rt->live; l = l->next)
    n += in_scope(TSK__CONTAINER(l, tsk__task, live_link), o);
  return n;
}

/* Gives unfinished tasks in scope up to settle_ms to finish. */
static void settle(tsk_runtime_t *rt, const tsk_check_opts_t *o, int64_t settle_ms) {
  uv_update_time(rt->loop);
  uint64_t deadline = uv_now(rt->loop) + (uint64_t)settle_ms;
  while (unfinished_in_scope(rt, o) && uv_now(rt->loop) < deadline) {
    if (tsk__current) {
      tsk_sleep(1);
    } else if (!rt->running) {
      uv_run(rt->loop, UV_RUN_NOWAIT);
      tsk__events_running(rt, 0); /* not inside the loop between these turns */
      if (unfinished_in_scope(rt, o)) usleep(1000);
    } else {
      break; /* inside a loop callback: the loop cannot be run from here */
    }
    uv_update_time(rt->loop);
  }
}

int tsk_leak_check(tsk_runtime_t *rt, const tsk_check_opts_t *opts, tsk_leak_counts_t *counts) {
  if (!rt) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  tsk_check_opts_t o = {0};
  if (opts) o = *opts;
  int64_t settle_ms = o.settle_ms >= 0 ? o.settle_ms : (int64_t)rt->opts->settle_ms;
  settle(rt, &o, settle_ms);

  tsk__leak *list = NULL, **tail = &list;
  /* Records made since the mark move to the report (they are reported here, not again). */
  tsk__leak **pp = &rt->leaks;
  while (*pp) {
    tsk__leak *l = *pp;
    if (l->task.id >= o.since) {
      *pp = l->next;
      l->next = NULL;
      *tail = l;
      tail = &l->next;
      rt->nleaks--;
    } else {
      pp = &l->next;
    }
  }
  rt->leaks_tail = &rt->leaks;
  while (*rt->leaks_tail) rt->leaks_tail = &(*rt->leaks_tail)->next;
  /* Records already moved are kept for the process's JSON report; pending ones are only a view
   * (the tasks still exist and are recorded again if they never finish). */
  tsk__leak *pending = NULL, **ptail = &pending;
  for (tsk__list *n = rt->live.next; n != &rt->live; n = n->next) {
    tsk__task *t = TSK__CONTAINER(n, tsk__task, live_link);
    if (!in_scope(t, &o)) continue;
    tsk__leak *l = record_of(rt, t, TSK__LEAK_PENDING, "still pending at the check", 1);
    if (!l) continue;
    *ptail = l;
    ptail = &l->next;
  }
  *tail = pending; /* the report shows both; pending ones are split off again below */

  pthread_mutex_lock(&g_lock);
  tsk__report_counts c;
  tsk__report_classify(list, g_supp, &c);
  if (!o.quiet && list) {
    tsk__report_info info;
    report_info(&info, "check");
    fflush(stdout);
    tsk__report_text(stderr, list, g_supp, &info);
  }
  /* Keep the event records (not the pending views) for the process's report. */
  *tail = NULL;
  size_t events = c.destroyed_pending + c.unretrieved_error;
  g_unsuppressed += events;
  *g_records_tail = list;
  while (*g_records_tail) g_records_tail = &(*g_records_tail)->next;
  pthread_mutex_unlock(&g_lock);
  tsk__leak_free_list(pending);

  if (counts) {
    counts->pending = c.pending;
    counts->destroyed_pending = c.destroyed_pending;
    counts->unretrieved_error = c.unretrieved_error;
    counts->suppressed = c.suppressed;
  }
  size_t total = c.pending + c.destroyed_pending + c.unretrieved_error;
  return total > INT32_MAX ? INT32_MAX : (int)total;
}
