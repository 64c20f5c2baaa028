/*
 * group.c — task groups and the bounded scheduler.
 *
 * A group is the handle holder of every task spawned into it: it records each task's outcome in
 * tsk__group_task_finished and then releases the handle, so the scheduler frees the struct.
 * With max_concurrency, spawns beyond the limit wait as "pending spawns" (fn, arg, name), which
 * are not tasks yet: they cost one small allocation, no stack, and never start when the group is
 * cancelled. With max_pending too, a spawn into a full queue either fails (TSK_EFULL) or, with
 * spawn_waits, suspends the spawner until the group hands its spawn over into the queue.
 *
 * A failure nobody reads: the first failure is the group's outcome, read by tsk_group_wait or
 * tsk_group_close. A group that fails and is never waited for or closed (left to runtime close or
 * process exit) reports it as unretrieved_error: the record is made when the failure happens
 * (the task is about to be freed) and kept by the group until its outcome is read.
 *
 * Waiters never read the group after they are woken: the group writes their outcome into their
 * own frame first (group_waiter), so a closer may free the group before the others resume.
 *
 * Invariants (outside the functions of this file):
 *   - a pending spawn exists only while the running limit is reached (or the group is starting
 *     the next one): whenever a slot frees, pump() starts pending spawns first;
 *   - a spawner waits only while the pending queue is full: whenever it gets room, pump() moves
 *     the oldest waiting spawner's spawn into it (FIFO, no barging);
 *   - once cancelled (tsk_group_cancel or a first failure) a group has no pending spawn and no
 *     waiting spawner, and accepts no more spawns.
 */
#include "internal.h"
#include "leak.h"

#include <stdio.h>
#include <stdlib.h>

/* A spawn not started yet. Owner: the group's pending queue, or, while its spawner waits for
 * room, the spawner's wait record (tsk__wait.data; freed by spawn_unlink if never handed over). */
typedef struct pending_spawn {
  tsk__list link;
  tsk_fn fn;
  void *arg;
  uint64_t parent_id;
  int has_name;
  char name[TSK__NAME_INLINE];
} pending_spawn;

/* What a task in tsk_group_wait / tsk_group_close receives when the group completes; lives in
 * the waiter's frame (tsk__wait.data). */
typedef struct group_waiter {
  int completed;
  int error;
  tsk_result_t *res;
} group_waiter;

struct tsk_group {
  tsk_runtime_t *rt;
  uint64_t id;          /* object id, reported by waits on this group */
  size_t max_concurrency;
  size_t max_pending;
  int spawn_waits;
  tsk__list rt_link;    /* in rt->groups until freed */
  tsk__list running;    /* tsk__task.group_link: started, unfinished */
  tsk__list pending;    /* pending_spawn.link, FIFO */
  tsk__list waiters;    /* tsk__wait.link of tasks in tsk_group_wait / tsk_group_close */
  tsk__list spawners;   /* tsk__wait.link of tasks in tsk_group_spawn waiting for room */
  size_t nrunning, npending, nfinished;
  int error;            /* the first failure's code (never 0), 0 when none */
  char message[sizeof(((tsk_result_t *)0)->message)];
  tsk__leak *unread;    /* the record of the first failure until its outcome is read */
  unsigned closed : 1;    /* tsk_group_close began: no more spawns */
  unsigned cancelled : 1; /* tsk_group_cancel or a failure: no more spawns, pending dropped */
};

static int running_room(const tsk_group_t *g) {
  return g->max_concurrency == 0 || g->nrunning < g->max_concurrency;
}

static int pending_room(const tsk_group_t *g) {
  return g->max_pending == 0 || g->npending < g->max_pending;
}

static int complete(const tsk_group_t *g) { return g->nrunning == 0 && g->npending == 0; }

/* Hands the outcome to a caller of tsk_group_wait / tsk_group_close. */
static void fill_result(const tsk_group_t *g, tsk_result_t *res) {
  if (!res) return;
  res->error = g->error;
  res->value = NULL;
  if (g->error) {
    res->state = TSK_TASK_FAILED;
    memcpy(res->message, g->message, sizeof res->message);
  } else {
    res->state = g->cancelled ? TSK_TASK_CANCELLED : TSK_TASK_DONE;
    res->message[0] = 0;
  }
}

static void record_failure(tsk_group_t *g, int error, const char *message) {
  g->error = error;
  snprintf(g->message, sizeof g->message, "%s", message ? message : "");
}

/* The group's outcome was handed to someone: its failure, if any, is retrieved. */
static void outcome_read(tsk_group_t *g) {
  if (g->unread) {
    tsk__leak_free(g->unread);
    g->unread = NULL;
  }
}

void tsk__group_unread_failures(tsk_runtime_t *rt) {
  for (tsk__list *n = rt->groups.next; n != &rt->groups; n = n->next) {
    tsk_group_t *g = TSK__CONTAINER(n, tsk_group_t, rt_link);
    if (!g->unread) continue;
    tsk__registry_add(rt, g->unread);
    g->unread = NULL;
  }
}

/* ---- waking ---- */

/* A spawner's wait ended without its spawn being handed over: the spawn is dropped. */
static void spawn_unlink(tsk__wait *w) {
  tsk__list_remove(&w->link);
  free(w->data);
  w->data = NULL;
}

/* Wakes every waiting spawner with err; their spawns are dropped (spawn_unlink). */
static void reject_spawners(tsk_group_t *g, int err) { tsk__wait_end_all(&g->spawners, err); }

/* When nothing runs and nothing is pending, hands the outcome to every waiter and wakes it. */
static void check_complete(tsk_group_t *g) {
  if (!complete(g)) return;
  tsk__wait *w;
  while ((w = tsk__wait_first(&g->waiters))) {
    group_waiter *gw = w->data;
    gw->completed = 1;
    gw->error = g->error;
    fill_result(g, gw->res);
    outcome_read(g);
    tsk__wait_end(w, 0);
  }
}

/* ---- starting tasks ---- */

static int start_task(tsk_group_t *g, const char *name, tsk_fn fn, void *arg, tsk__task **out) {
  tsk_task_t h;
  int rc = tsk__spawn(g->rt, &h, name, fn, arg, 0, 1, g);
  if (rc) return rc;
  tsk__list_push(&g->running, &h.ptr->group_link);
  g->nrunning++;
  if (out) *out = h.ptr;
  return 0;
}

static void cancel_all(tsk_group_t *g);

/* Starts pending spawns while there is room, then moves waiting spawners' spawns into the
 * queue while it has room. A pending spawn that cannot start (out of memory) is the group's
 * failure. */
static void pump(tsk_group_t *g) {
  while (!g->cancelled) {
    if (g->npending > 0 && running_room(g)) {
      pending_spawn *p = TSK__CONTAINER(g->pending.next, pending_spawn, link);
      tsk__list_remove(&p->link);
      g->npending--;
      tsk__task *t;
      int rc = start_task(g, p->has_name ? p->name : NULL, p->fn, p->arg, &t);
      if (rc == 0) {
        t->parent_id = p->parent_id; /* the spawner, not the task whose end made room */
      } else { /* not failed before: a failure cancels the group, which ends this loop */
        char msg[96];
        snprintf(msg, sizeof msg, "group could not start a pending task: %s", tsk_strerror(rc));
        record_failure(g, rc, msg);
        cancel_all(g);
      }
      free(p);
      continue;
    }
    tsk__wait *w = tsk__wait_first(&g->spawners);
    if (w && pending_room(g)) {
      pending_spawn *p = w->data;
      w->data = NULL; /* handed over: the queue owns it now */
      tsk__list_push(&g->pending, &p->link);
      g->npending++;
      tsk__wait_end(w, 0);
      continue;
    }
    break;
  }
}

/* Cancels every running task, drops every pending spawn and rejects waiting spawners. Does not
 * check completion (callers do, once their own bookkeeping is done). */
static void cancel_all(tsk_group_t *g) {
  g->cancelled = 1;
  for (tsk__list *n = g->running.next; n != &g->running; n = n->next)
    tsk__cancel_task(TSK__CONTAINER(n, tsk__task, group_link));
  while (!tsk__list_empty(&g->pending)) {
    pending_spawn *p = TSK__CONTAINER(g->pending.next, pending_spawn, link);
    tsk__list_remove(&p->link);
    free(p);
    g->npending--;
  }
  reject_spawners(g, TSK_ECANCELED);
}

/* ---- hooks called by task.c / runtime.c ---- */

void tsk__group_task_finished(tsk__task *t) {
  tsk_group_t *g = t->group;
  tsk__list_remove(&t->group_link);
  t->group = NULL;
  g->nrunning--;
  if (t->state == TSK_TASK_DESTROYED) return; /* runtime close: nothing runs or wakes any more */
  g->nfinished++;
  if (t->state == TSK_TASK_FAILED && !g->error) {
    record_failure(g, t->error, t->message);
    g->unread = tsk__registry_group_failure(t, g->id);
    cancel_all(g);
  }
  t->handle_held = 0; /* the group was the holder: the scheduler frees the struct after its
                         last switch */
  pump(g);
  check_complete(g);
}

static void group_free(tsk_group_t *g) {
  outcome_read(g); /* closed: tsk_group_close returned it; runtime close: reported already */
  tsk__list_remove(&g->rt_link);
  while (!tsk__list_empty(&g->pending)) {
    pending_spawn *p = TSK__CONTAINER(g->pending.next, pending_spawn, link);
    tsk__list_remove(&p->link);
    free(p);
  }
  free(g);
}

void tsk__group_runtime_close(tsk_runtime_t *rt) {
  /* Every task is destroyed by now: destroying a waiter unlinked its record (a waiting spawner's
   * spawn was freed with it), and destroying a running task removed it from its group. */
  while (!tsk__list_empty(&rt->groups))
    group_free(TSK__CONTAINER(rt->groups.next, tsk_group_t, rt_link));
}

/* ---- API ---- */

int tsk_group_new(tsk_runtime_t *rt, const tsk_group_opts_t *opts, tsk_group_t **out) {
  if (!rt || !out) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  if (rt->closing) return TSK_ECLOSED;
  tsk_group_t *g = calloc(1, sizeof *g);
  if (!g) return TSK_ENOMEM;
  g->rt = rt;
  g->id = tsk__next_object_id(rt);
  if (opts) {
    g->max_concurrency = opts->max_concurrency;
    g->max_pending = opts->max_concurrency ? opts->max_pending : 0;
    g->spawn_waits = opts->spawn_waits ? 1 : 0;
  }
  tsk__list_init(&g->running);
  tsk__list_init(&g->pending);
  tsk__list_init(&g->waiters);
  tsk__list_init(&g->spawners);
  tsk__list_push(&rt->groups, &g->rt_link);
  *out = g;
  return 0;
}

static pending_spawn *pending_new(const char *name, tsk_fn fn, void *arg) {
  pending_spawn *p = malloc(sizeof *p);
  if (!p) return NULL;
  tsk__list_init(&p->link);
  p->fn = fn;
  p->arg = arg;
  p->parent_id = tsk__current ? tsk__current->id : 0;
  p->has_name = name != NULL;
  snprintf(p->name, sizeof p->name, "%s", name ? name : "");
  return p;
}

int tsk_group_spawn(tsk_group_t *g, const char *name, tsk_fn fn, void *arg) {
  if (!g || !fn) return TSK_EINVAL;
  int rc = tsk__check_thread(g->rt);
  if (rc) return rc;
  if (g->closed || g->rt->closing) return TSK_ECLOSED;
  if (g->cancelled) return TSK_ECANCELED;
  if (g->npending == 0 && running_room(g)) return start_task(g, name, fn, arg, NULL);
  if (pending_room(g) && tsk__list_empty(&g->spawners)) {
    pending_spawn *p = pending_new(name, fn, arg);
    if (!p) return TSK_ENOMEM;
    tsk__list_push(&g->pending, &p->link);
    g->npending++;
    return 0;
  }
  if (!g->spawn_waits || !tsk__task_on(g->rt)) return TSK_EFULL;
  pending_spawn *p = pending_new(name, fn, arg);
  if (!p) return TSK_ENOMEM;
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_SPAWN, g->id);
  if (rc) {
    free(p);
    return rc;
  }
  w.data = p;
  w.unlink = spawn_unlink;
  tsk__list_push(&g->spawners, &w.link);
  /* 0: the spawn was handed over into the queue; otherwise it was dropped (spawn_unlink). */
  return tsk__wait_suspend(&w, TSK_FOREVER);
}

/* Suspends the calling task until g completes, timeout_ms passes or (if cancellable) it is
 * cancelled. gw->completed tells completion apart from a task failure that is itself coded
 * TSK_ETIMEDOUT or TSK_ECANCELED. */
static int wait_complete(tsk_group_t *g, group_waiter *gw, int64_t timeout_ms, int cancellable) {
  tsk__wait w;
  int rc = tsk__wait_prepare(&w, TSK_WAIT_GROUP, g->id);
  if (rc) return rc;
  w.cancellable = cancellable;
  w.data = gw;
  return tsk__wait_on_list(&w, &g->waiters, timeout_ms);
}

int tsk_group_wait(tsk_group_t *g, int64_t timeout_ms, tsk_result_t *res) {
  if (!g) return TSK_EINVAL;
  int rc = tsk__check_thread(g->rt);
  if (rc) return rc;
  tsk__task *self = tsk__task_on(g->rt);
  if (self && self->group == g) return TSK_EDEADLK;
  if (complete(g)) {
    fill_result(g, res);
    outcome_read(g);
    return g->error;
  }
  if (!self) return TSK_ENOTASK;
  group_waiter gw = {0, 0, res};
  rc = wait_complete(g, &gw, timeout_ms, 1);
  /* The group may be freed by now (a closer ran first): use only gw. */
  return gw.completed ? gw.error : rc;
}

int tsk_group_cancel(tsk_group_t *g) {
  if (!g) return TSK_EINVAL;
  int rc = tsk__check_thread(g->rt);
  if (rc) return rc;
  cancel_all(g);
  check_complete(g);
  return 0;
}

int tsk_group_close(tsk_group_t *g, int64_t timeout_ms) {
  if (!g) return TSK_EINVAL;
  int rc = tsk__check_thread(g->rt);
  if (rc) return rc;
  if (g->closed) return TSK_ECLOSED; /* another task is closing it */
  tsk__task *self = tsk__task_on(g->rt);
  if (!complete(g)) {
    if (!self) return TSK_EBUSY;
    if (self->group == g) return TSK_EDEADLK;
  }
  g->closed = 1;
  reject_spawners(g, TSK_ECLOSED);
  if (complete(g)) {
    fill_result(g, NULL);
    rc = g->error;
    group_free(g);
    return rc;
  }
  group_waiter gw = {0, 0, NULL};
  rc = wait_complete(g, &gw, timeout_ms, 1);
  if (gw.completed) {
    rc = gw.error;
  } else {
    /* Timed out (or the closer was cancelled): cancel what is left and wait for it to end,
     * uncancellably, since the group must not be freed under running tasks. */
    rc = rc == TSK_ECANCELED ? TSK_ECANCELED : TSK_ETIMEDOUT;
    cancel_all(g);
    check_complete(g);
    if (!complete(g)) wait_complete(g, &gw, TSK_FOREVER, 0);
  }
  group_free(g);
  return rc;
}

void tsk_group_counts(tsk_group_t *g, size_t *running, size_t *pending, size_t *finished) {
  int ok = g && tsk__check_thread(g->rt) == 0;
  if (running) *running = ok ? g->nrunning : 0;
  if (pending) *pending = ok ? g->npending : 0;
  if (finished) *finished = ok ? g->nfinished : 0;
}

uint64_t tsk__group_id(const struct tsk_group *g) { return g->id; }
