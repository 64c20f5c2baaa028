/*
 * mirror.c — the server's mirror of every runtime's registry, fed by the event rings, and the
 * JSON answers built from it (snapshot, delta, TASK, RUNTIME, the leak report).
 *
 * Bounds: live tasks are mirrored as long as they live (one srv_task, ~150 bytes, each);
 * finished tasks keep a history of the `history` option's size; leak records the newest
 * TSK__SRV_LEAKS_MAX; warnings the newest TSK__SRV_WARNINGS_MAX.
 *
 * Deltas: every change gets the next mirror sequence number (s->seq). A live task carries the
 * number of its spawn and of its latest change and sits in s->changes ordered by the latter, so a
 * client's delta (everything after the number it saw last) is the tail of that list plus the
 * newest history, leak and warning entries: its cost follows what changed, not the task count.
 */
#include "srv.h"

#include "backtrace.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the id map ---- */

static size_t slot_of(uint64_t id, size_t cap) {
  uint64_t h = id * 0x9E3779B97F4A7C15ULL;
  return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static srv_task *map_find(srv_map *m, uint64_t id) {
  if (!m->cap) return NULL;
  for (size_t j = slot_of(id, m->cap);; j = (j + 1) & (m->cap - 1)) {
    srv_task *t = m->slot[j];
    if (!t) return NULL;
    if (t->id == id) return t;
  }
}

static int map_insert(srv_map *m, srv_task *t) {
  if ((m->n + 1) * 10 > m->cap * 7) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    srv_task **ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
      srv_task *o = m->slot[i];
      if (!o) continue;
      size_t j = slot_of(o->id, cap);
      while (ns[j]) j = (j + 1) & (cap - 1);
      ns[j] = o;
    }
    free(m->slot);
    m->slot = ns;
    m->cap = cap;
  }
  size_t j = slot_of(t->id, m->cap);
  while (m->slot[j]) j = (j + 1) & (m->cap - 1);
  m->slot[j] = t;
  m->n++;
  return 0;
}

/* Linear probing deletion by backward shift (no tombstones). */
static void map_remove(srv_map *m, uint64_t id) {
  if (!m->cap) return;
  size_t mask = m->cap - 1, i = slot_of(id, m->cap);
  while (m->slot[i] && m->slot[i]->id != id) i = (i + 1) & mask;
  if (!m->slot[i]) return;
  m->slot[i] = NULL;
  m->n--;
  for (size_t j = (i + 1) & mask; m->slot[j]; j = (j + 1) & mask) {
    size_t home = slot_of(m->slot[j]->id, m->cap);
    /* Move slot j into the hole at i if its home does not lie cyclically in (i, j]. */
    int move = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (move) {
      m->slot[i] = m->slot[j];
      m->slot[j] = NULL;
      i = j;
    }
  }
}

/* ---- names of unnamed tasks (entry function -> symbol), cached ---- */

typedef struct srv_fn_name {
  uintptr_t fn;
  char name[TSK__NAME_INLINE];
} srv_fn_name;

#define FN_CACHE_MAX 4096

static void fn_name(tsk__srv *s, uintptr_t fn, char *out) {
  if (s->fn_cap) {
    for (size_t j = slot_of(fn, s->fn_cap);; j = (j + 1) & (s->fn_cap - 1)) {
      if (!s->fn_names[j].fn) break;
      if (s->fn_names[j].fn == fn) {
        memcpy(out, s->fn_names[j].name, TSK__NAME_INLINE);
        return;
      }
    }
  }
  tsk__bt_entry_name(fn, out, TSK__NAME_INLINE);
  if (!fn || s->fn_n >= FN_CACHE_MAX) return;
  if ((s->fn_n + 1) * 2 > s->fn_cap) {
    size_t cap = s->fn_cap ? s->fn_cap * 2 : 64;
    srv_fn_name *nt = calloc(cap, sizeof *nt);
    if (!nt) return;
    for (size_t i = 0; i < s->fn_cap; i++) {
      if (!s->fn_names[i].fn) continue;
      size_t j = slot_of(s->fn_names[i].fn, cap);
      while (nt[j].fn) j = (j + 1) & (cap - 1);
      nt[j] = s->fn_names[i];
    }
    free(s->fn_names);
    s->fn_names = nt;
    s->fn_cap = cap;
  }
  size_t j = slot_of(fn, s->fn_cap);
  while (s->fn_names[j].fn) j = (j + 1) & (s->fn_cap - 1);
  s->fn_names[j].fn = fn;
  memcpy(s->fn_names[j].name, out, TSK__NAME_INLINE);
  s->fn_n++;
}

/* ---- set up ---- */

int tsk__mirror_init(tsk__srv *s, unsigned history) {
  tsk__list_init(&s->changes);
  tsk__list_init(&s->rts);
  s->hist_cap = history;
  if (history && !(s->hist = calloc(history, sizeof *s->hist))) return -1;
  if (!(s->warn = calloc(TSK__SRV_WARNINGS_MAX, sizeof *s->warn))) return -1;
  return 0;
}

static void free_rt(tsk__srv *s, srv_rt *r);

void tsk__mirror_free(tsk__srv *s) {
  while (!tsk__list_empty(&s->changes)) {
    srv_task *t = TSK__CONTAINER(s->changes.next, srv_task, link);
    tsk__list_remove(&t->link);
    free(t);
  }
  free(s->map.slot);
  s->map.slot = NULL;
  s->map.cap = s->map.n = 0;
  for (size_t i = 0; i < TSK__SRV_LEAKS_MAX; i++) {
    tsk__leak_free(s->leaks[i].l);
    s->leaks[i].l = NULL;
  }
  /* Runtimes still open keep their shared state (they detach later and free it then). */
  while (!tsk__list_empty(&s->rts)) {
    srv_rt *r = TSK__CONTAINER(s->rts.next, srv_rt, link);
    tsk__list_remove(&r->link);
    free(r);
  }
  free(s->hist);
  s->hist = NULL;
  free(s->warn);
  s->warn = NULL;
  free(s->fn_names);
  s->fn_names = NULL;
}

srv_rt *tsk__mirror_add_rt(tsk__srv *s, tsk__insp_rt *in) {
  srv_rt *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->in = in;
  r->id = in->id;
  r->tid = in->tid;
  r->nstack = -1;
  tsk__list_push(&s->rts, &r->link);
  s->nrts++;
  return r;
}

srv_task *tsk__mirror_find(tsk__srv *s, uint64_t id) { return map_find(&s->map, id); }

/* ---- changes ---- */

static void touch(tsk__srv *s, srv_task *t) {
  t->change_seq = ++s->seq;
  tsk__list_remove(&t->link);
  tsk__list_push(&s->changes, &t->link);
}

static void count_state(srv_rt *r, uint8_t state, int delta) {
  if (state == TSK_TASK_WAITING)
    r->nwaiting += (size_t)delta;
  else
    r->nready += (size_t)delta; /* ready and running alike; see render_runtime */
}

static void set_state(srv_task *t, uint8_t state) {
  count_state(t->rt, t->state, -1);
  t->state = state;
  count_state(t->rt, state, +1);
}

static void resync_all_clients(tsk__srv *s) {
  for (tsk__list *n = s->clients.next; n != &s->clients; n = n->next) {
    srv_client *c = TSK__CONTAINER(n, srv_client, link);
    if (c->subscribed) c->need_resync = 1;
  }
}

static void remove_task(tsk__srv *s, srv_task *t) {
  count_state(t->rt, t->state, -1);
  t->rt->nlive--;
  map_remove(&s->map, t->id);
  tsk__list_remove(&t->link);
  free(t);
}

static void add_history(tsk__srv *s, srv_rt *r, const srv_task *t, uint64_t id, uint8_t state,
                        int error, uint64_t finished_ms) {
  if (!s->hist_cap) return;
  srv_fin *f = &s->hist[s->hist_next];
  memset(f, 0, sizeof *f);
  f->id = id;
  f->rt_id = r->id;
  f->state = state;
  f->error = error;
  f->finished_ms = finished_ms;
  f->seq = ++s->seq;
  if (t) {
    f->parent = t->parent;
    f->created_ms = t->created_ms;
    memcpy(f->name, t->name, sizeof f->name);
  }
  s->hist_next = (s->hist_next + 1) % s->hist_cap;
  if (s->hist_n < s->hist_cap) s->hist_n++;
}

/* ---- events ---- */

static void on_spawn(tsk__srv *s, srv_rt *r, const tsk__ev *e) {
  int resync = e->flags & TSK__EVF_RESYNC;
  srv_task *t = map_find(&s->map, e->id);
  int fresh = t == NULL;
  if (fresh) {
    t = calloc(1, sizeof *t);
    if (!t) return;
    t->busy_ns = UINT64_MAX;
    t->id = e->id;
    if (map_insert(&s->map, t)) {
      free(t);
      return;
    }
    t->rt = r;
    t->state = TSK_TASK_READY;
    count_state(r, t->state, +1);
    r->nlive++;
    tsk__list_init(&t->link);
    t->spawn_seq = s->seq + 1;
  } else if (t->rt != r) {
    return; /* ids are unique in the process: cannot happen */
  }
  uint8_t state = resync ? e->state : TSK_TASK_READY;
  if (state > TSK_TASK_WAITING) state = TSK_TASK_READY;
  int changed = fresh || t->state != state || t->parent != e->a;
  t->parent = e->a;
  t->created_ms = e->b;
  t->group = e->c;
  t->ptr = (uintptr_t)e->d;
  t->gen = r->gen;
  if (fresh) {
    if (e->u.name[0]) {
      memcpy(t->name, e->u.name, sizeof t->name);
      t->name[sizeof t->name - 1] = 0;
    } else {
      fn_name(s, e->u.unnamed.fn, t->name);
    }
  }
  if (t->state != state) set_state(t, state);
  if (state != TSK_TASK_WAITING) {
    t->wait_kind = 0;
    t->object = 0;
  }
  if (!resync) r->spawned++;
  if (changed) touch(s, t);
}

static void on_event(tsk__srv *s, srv_rt *r, const tsk__ev *e) {
  srv_task *t;
  switch (e->type) {
  case TSK__EV_SPAWN: on_spawn(s, r, e); break;
  case TSK__EV_WAIT:
    if (!(t = map_find(&s->map, e->id))) break;
    set_state(t, TSK_TASK_WAITING);
    t->wait_kind = e->wait_kind;
    t->object = e->a;
    t->first_run_ms = e->b;
    t->switches = (uint32_t)e->c;
    t->busy_ns = e->d;
    touch(s, t);
    if (e->wait_kind == TSK_WAIT_TASK) { /* its wake may come as the joined task's FINISH */
      srv_task *target = map_find(&s->map, e->a);
      if (target) target->joiner = t->id;
    }
    break;
  case TSK__EV_WAKE:
    if (!(t = map_find(&s->map, e->id))) break;
    set_state(t, TSK_TASK_READY);
    t->wait_kind = 0;
    t->object = 0;
    touch(s, t);
    break;
  case TSK__EV_FINISH:
    t = map_find(&s->map, e->id);
    add_history(s, r, t, e->id, e->state, e->error, e->b);
    if (t && t->joiner) { /* the join ended with it (no WAKE event for that) */
      srv_task *j = map_find(&s->map, t->joiner);
      if (j && j->state == TSK_TASK_WAITING && j->wait_kind == TSK_WAIT_TASK &&
          j->object == t->id) {
        set_state(j, TSK_TASK_READY);
        j->wait_kind = 0;
        j->object = 0;
        touch(s, j);
      }
    }
    if (t) remove_task(s, t);
    r->finished++;
    break;
  case TSK__EV_DESTROY:
    t = map_find(&s->map, e->id);
    add_history(s, r, t, e->id, TSK_TASK_DESTROYED, 0, tsk__srv_now_ns() / 1000000);
    if (t) remove_task(s, t);
    break;
  case TSK__EV_LEAK: {
    tsk__leak *l = (tsk__leak *)(uintptr_t)e->d;
    /* (Not tsk__report_classify: that resets every entry's hits and the frame cache, for each
     * record. The report rendered from these records classifies them all again anyway.) */
    l->suppressed = s->supp && tsk__suppressions_match(s->supp, l) >= 0;
    srv_leak *slot = &s->leaks[s->leaks_next];
    tsk__leak_free(slot->l);
    slot->l = l;
    slot->seq = ++s->seq;
    s->leaks_next = (s->leaks_next + 1) % TSK__SRV_LEAKS_MAX;
    if (s->leaks_n < TSK__SRV_LEAKS_MAX) s->leaks_n++;
    if (!l->suppressed && l->kind < TSK__LEAK_KINDS) s->leak_counts[l->kind]++;
    break;
  }
  case TSK__EV_TICK:
    r->lag_ns = e->b;
    r->spawned = e->c;
    r->finished = e->d;
    break;
  case TSK__EV_RESYNC_BEGIN:
    r->gen++;
    r->drops_at_begin = e->a;
    break;
  case TSK__EV_RESYNC_END: {
    /* Tasks the resync did not confirm ended while their events were lost. */
    size_t removed = 0;
    for (size_t i = 0; i < s->map.cap;) {
      srv_task *x = s->map.slot[i];
      if (x && x->rt == r && x->gen != r->gen) {
        remove_task(s, x); /* the backward shift may refill slot i: look at it again */
        removed++;
        continue;
      }
      i++;
    }
    if (removed) resync_all_clients(s);
    r->resync_requested = 0;
    if (e->a != r->drops_at_begin) { /* more drops meanwhile: once more */
      r->resync_requested = 1;
      atomic_store_explicit(&r->in->resync_wanted, 1, memory_order_release);
      atomic_fetch_add(&tsk__srv_count.resync_requests, 1);
    }
    break;
  }
  default: break;
  }
}

static uint64_t drain_rt(tsk__srv *s, srv_rt *r) {
  tsk__ev_ring *ring = r->in->ring;
  uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
  uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  if (head == tail) return 0;
  for (uint64_t i = tail; i != head; i++) {
    on_event(s, r, &ring->slot[i & (TSK__EV_RING - 1)]);
    /* A full ring (a resync, a burst of spawns) is ~2 ms of work: let a loop thread that woke up
     * on this CPU in every ~0.5 ms rather than at the scheduler's next tick. */
    if (((i - tail) & 2047) == 2047) sched_yield();
  }
  atomic_fetch_add_explicit(&tsk__srv_count.events, head - tail, memory_order_relaxed);
  atomic_store_explicit(&ring->tail, head, memory_order_release);
  return head - tail;
}

static void free_rt(tsk__srv *s, srv_rt *r) {
  tsk__insp_rt *in = r->in;
  /* Its tasks were destroyed with it (DESTROY events); those whose events were lost go now. */
  size_t removed = 0;
  for (size_t i = 0; i < s->map.cap && r->nlive;) {
    srv_task *x = s->map.slot[i];
    if (x && x->rt == r) {
      remove_task(s, x);
      removed++;
      continue;
    }
    i++;
  }
  if (removed) resync_all_clients(s);
  s->closed_drops += atomic_load(&in->ring->drops);
  s->closed_spawned += r->spawned;
  s->closed_finished += r->finished;
  for (tsk__list *n = s->pendings.next; n != &s->pendings; n = n->next) {
    srv_pending *p = TSK__CONTAINER(n, srv_pending, link);
    for (size_t i = 0; i < p->nreq; i++)
      if (p->rt[i] == r) p->rt[i] = NULL;
  }
  tsk__list_remove(&r->link);
  s->nrts--;
  if (r->sample_lost) in->keep = 1;
  tsk__srv_free_insp(in);
  free(r);
}

uint64_t tsk__mirror_drain(tsk__srv *s) {
  uint64_t most = 0;
  for (tsk__list *n = s->rts.next; n != &s->rts;) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    n = n->next;
    /* Read closed first: events pushed before it are then all visible in the ring. */
    int closed = atomic_load_explicit(&r->in->closed, memory_order_acquire);
    uint64_t k = drain_rt(s, r);
    if (k > most) most = k;
    if (closed && !r->sampling) free_rt(s, r);
  }
  return most;
}

void tsk__mirror_warn(tsk__srv *s, srv_rt *r, const char *kind, const char *message,
                      const uintptr_t *ips, int n) {
  srv_warning *w = &s->warn[s->warn_next];
  w->seq = ++s->seq;
  w->time_ms = tsk__srv_now_ns() / 1000000;
  w->rt_id = r ? r->id : 0;
  w->kind = kind;
  snprintf(w->message, sizeof w->message, "%s", message);
  if (n > TSK__SRV_STACK_MAX) n = TSK__SRV_STACK_MAX;
  w->n = ips ? n : -1;
  if (ips && n > 0) memcpy(w->ips, ips, (size_t)n * sizeof *ips);
  s->warn_next = (s->warn_next + 1) % TSK__SRV_WARNINGS_MAX;
  if (s->warn_n < TSK__SRV_WARNINGS_MAX) s->warn_n++;
}

tsk__leak *tsk__mirror_pending(tsk__srv *s, srv_rt *r, size_t max, size_t *omitted) {
  tsk__leak *list = NULL, **tail = &list;
  size_t n = 0;
  uint64_t now = tsk__srv_now_ns() / 1000000;
  for (tsk__list *x = s->changes.next; x != &s->changes; x = x->next) {
    srv_task *t = TSK__CONTAINER(x, srv_task, link);
    if (t->rt != r) continue;
    if (n >= max) continue;
    tsk__leak *l = tsk__leak_new(TSK__LEAK_PENDING);
    if (!l) break;
    tsk__leak_set_reason(l, "still pending (inspector; the loop did not answer: no stacks)");
    tsk__leak_task_set(&l->task, t->id, t->name);
    l->parent_id = t->parent;
    l->state = t->state;
    l->awaiting = t->state == TSK_TASK_WAITING ? t->wait_kind : TSK_WAIT_NONE;
    l->awaiting_id = t->object;
    l->age_ms = now > t->created_ms ? now - t->created_ms : 0;
    *tail = l;
    tail = &l->next;
    n++;
  }
  *omitted = r->nlive > n ? r->nlive - n : 0;
  return list;
}

/* ---- rendering ---- */

/* 1 when r's loop is stalled in a task the mirror holds as ready (it shows as running). */
static int stall_running(tsk__srv *s, const srv_rt *r) {
  if (!r->stalled_ms || !r->running_id) return 0;
  const srv_task *t = map_find(&s->map, r->running_id);
  return t && t->rt == r && t->state == TSK_TASK_READY;
}

static uint8_t shown_state(const srv_task *t) {
  if (t->rt->stalled_ms && t->rt->running_id == t->id && t->state == TSK_TASK_READY)
    return TSK_TASK_RUNNING;
  return t->state;
}

/* The fields TASK and FINISHED open with: {"id","parent","runtime","name","state" (left open). */
static void render_task_head(tsk__jbuf *b, uint64_t id, uint64_t parent, uint32_t rt_id,
                             const char *name, uint8_t state) {
  tsk__jbuf_puts(b, "{\"id\":");
  tsk__jbuf_u64(b, id);
  tsk__jbuf_puts(b, ",\"parent\":");
  tsk__jbuf_opt_u64(b, parent);
  tsk__jbuf_puts(b, ",\"runtime\":");
  tsk__jbuf_u64(b, rt_id);
  tsk__jbuf_puts(b, ",\"name\":");
  tsk__jbuf_str(b, name);
  tsk__jbuf_puts(b, ",\"state\":");
  tsk__jbuf_str(b, tsk__task_state_name(state));
}

void tsk__mirror_rec(const srv_task *t, srv_rec *r) {
  r->id = t->id;
  r->parent = t->parent;
  r->group = t->group;
  r->object = t->state == TSK_TASK_WAITING ? t->object : 0;
  r->created_ms = t->created_ms;
  r->first_run_ms = t->first_run_ms;
  r->busy_ns = t->busy_ns;
  r->rt_id = t->rt->id;
  r->switches = t->switches;
  r->state = shown_state(t);
  r->wait_kind = t->state == TSK_TASK_WAITING ? t->wait_kind : TSK_WAIT_NONE;
  memcpy(r->name, t->name, sizeof r->name);
}

void tsk__render_rec(tsk__jbuf *b, const srv_rec *r) {
  render_task_head(b, r->id, r->parent, r->rt_id, r->name, r->state);
  tsk__jbuf_puts(b, ",\"awaiting\":");
  tsk__report_json_awaiting(b, r->wait_kind, r->object);
  tsk__jbuf_puts(b, ",\"created_ms\":");
  tsk__jbuf_u64(b, r->created_ms);
  tsk__jbuf_puts(b, ",\"first_run_ms\":");
  tsk__jbuf_opt_u64(b, r->first_run_ms);
  tsk__jbuf_puts(b, ",\"switches\":");
  tsk__jbuf_u64(b, r->switches);
  /* Busy time as of the task's last suspension; null unless the app runs with busy_time=on. */
  tsk__jbuf_puts(b, ",\"busy_ms\":");
  if (r->busy_ns == UINT64_MAX)
    tsk__jbuf_puts(b, "null");
  else
    tsk__jbuf_fixed(b, r->busy_ns / 1000, 3);
  tsk__jbuf_puts(b, ",\"group\":");
  tsk__jbuf_opt_u64(b, r->group);
  tsk__jbuf_putc(b, '}');
}

void tsk__render_task(tsk__srv *s, tsk__jbuf *b, const srv_task *t) {
  (void)s;
  srv_rec r;
  tsk__mirror_rec(t, &r);
  tsk__render_rec(b, &r);
}

size_t tsk__mirror_recs(tsk__srv *s, srv_rec *out, size_t max) {
  size_t n = 0;
  for (tsk__list *x = s->changes.next; x != &s->changes && n < max; x = x->next) {
    tsk__mirror_rec(TSK__CONTAINER(x, srv_task, link), &out[n++]);
    /* ~25 ns a task: 100 000 take ~2.5 ms. A loop thread waiting for this CPU would wait that
     * long (to the scheduler's next tick): let it in every ~0.2 ms. (The mirror cannot change
     * meanwhile: only this thread changes it.) */
    if ((n & 8191) == 0) sched_yield();
  }
  return n;
}

static void render_fin(tsk__jbuf *b, const srv_fin *f) {
  render_task_head(b, f->id, f->parent, f->rt_id, f->name[0] ? f->name : NULL, f->state);
  tsk__jbuf_puts(b, ",\"error\":");
  tsk__jbuf_i64(b, f->error);
  tsk__jbuf_puts(b, ",\"error_name\":");
  tsk__jbuf_str(b, f->error ? tsk_err_name(f->error) : NULL);
  tsk__jbuf_puts(b, ",\"created_ms\":");
  tsk__jbuf_u64(b, f->created_ms);
  tsk__jbuf_puts(b, ",\"finished_ms\":");
  tsk__jbuf_u64(b, f->finished_ms);
  tsk__jbuf_putc(b, '}');
}

static void render_warning(tsk__jbuf *b, const srv_warning *w) {
  tsk__jbuf_puts(b, "{\"time_ms\":");
  tsk__jbuf_u64(b, w->time_ms);
  tsk__jbuf_puts(b, ",\"kind\":");
  tsk__jbuf_str(b, w->kind);
  tsk__jbuf_puts(b, ",\"runtime\":");
  tsk__jbuf_opt_u64(b, w->rt_id);
  tsk__jbuf_puts(b, ",\"message\":");
  tsk__jbuf_str(b, w->message);
  tsk__jbuf_puts(b, ",\"stack\":");
  if (w->n >= 0)
    tsk__report_json_frames(b, w->ips, w->n);
  else
    tsk__jbuf_puts(b, "null");
  tsk__jbuf_putc(b, '}');
}

static uint64_t rt_drops(const srv_rt *r) { return atomic_load(&r->in->ring->drops); }

void tsk__render_runtime(tsk__srv *s, tsk__jbuf *b, srv_rt *r) {
  (void)s;
  tsk__insp_rt *in = r->in;
  int running = stall_running(s, r);
  tsk__jbuf_puts(b, "{\"id\":");
  tsk__jbuf_u64(b, r->id);
  tsk__jbuf_puts(b, ",\"thread\":");
  tsk__jbuf_i64(b, r->tid);
  tsk__jbuf_puts(b, ",\"tasks\":{\"ready\":");
  tsk__jbuf_u64(b, r->nready - (size_t)running);
  tsk__jbuf_puts(b, ",\"running\":");
  tsk__jbuf_u64(b, (uint64_t)running);
  tsk__jbuf_puts(b, ",\"waiting\":");
  tsk__jbuf_u64(b, r->nwaiting);
  tsk__jbuf_puts(b, ",\"finished\":");
  tsk__jbuf_u64(b, r->finished);
  tsk__jbuf_puts(b, "},\"loop\":{\"iterations\":");
  tsk__jbuf_u64(b, atomic_load_explicit(&in->iterations, memory_order_relaxed));
  uint64_t lag = r->lag_ns;
  uint64_t last = atomic_load_explicit(&in->lag_ns, memory_order_relaxed);
  if (last > lag) lag = last;
  tsk__jbuf_puts(b, ",\"lag_ms\":");
  tsk__jbuf_fixed(b, lag / 1000, 3);
  tsk__jbuf_puts(b, ",\"stalled_ms\":");
  tsk__jbuf_u64(b, r->stalled_ms);
  tsk__jbuf_puts(b, ",\"stalled_stack\":");
  if (r->stalled_ms && r->nstack >= 0)
    tsk__report_json_frames(b, r->stack, r->nstack);
  else
    tsk__jbuf_puts(b, "null");
  tsk__jbuf_puts(b, "},\"dropped_events\":");
  tsk__jbuf_u64(b, rt_drops(r));
  tsk__jbuf_putc(b, '}');
}

static void render_runtimes(tsk__srv *s, tsk__jbuf *b) {
  tsk__jbuf_puts(b, "\"runtimes\":[");
  int first = 1;
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    if (atomic_load(&r->in->closed)) continue;
    if (!first) tsk__jbuf_putc(b, ',');
    first = 0;
    tsk__render_runtime(s, b, r);
  }
  tsk__jbuf_putc(b, ']');
}

static uint64_t total_drops(tsk__srv *s) {
  uint64_t d = s->closed_drops;
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next)
    d += rt_drops(TSK__CONTAINER(n, srv_rt, link));
  return d;
}

static void render_stats(tsk__srv *s, tsk__jbuf *b) {
  uint64_t ready = 0, running = 0, waiting = 0, spawned = s->closed_spawned,
           finished = s->closed_finished;
  for (tsk__list *n = s->rts.next; n != &s->rts; n = n->next) {
    srv_rt *r = TSK__CONTAINER(n, srv_rt, link);
    int run = stall_running(s, r);
    ready += r->nready - (size_t)run;
    running += (uint64_t)run;
    waiting += r->nwaiting;
    spawned += r->spawned;
    finished += r->finished;
  }
  tsk__jbuf_puts(b, "\"stats\":{\"tasks\":{\"ready\":");
  tsk__jbuf_u64(b, ready);
  tsk__jbuf_puts(b, ",\"running\":");
  tsk__jbuf_u64(b, running);
  tsk__jbuf_puts(b, ",\"waiting\":");
  tsk__jbuf_u64(b, waiting);
  tsk__jbuf_puts(b, "},\"spawned\":");
  tsk__jbuf_u64(b, spawned);
  tsk__jbuf_puts(b, ",\"finished\":");
  tsk__jbuf_u64(b, finished);
  tsk__jbuf_puts(b, ",\"leaks\":{\"pending\":");
  tsk__jbuf_u64(b, s->leak_counts[TSK__LEAK_PENDING]);
  tsk__jbuf_puts(b, ",\"destroyed_pending\":");
  tsk__jbuf_u64(b, s->leak_counts[TSK__LEAK_DESTROYED_PENDING]);
  tsk__jbuf_puts(b, ",\"unretrieved_error\":");
  tsk__jbuf_u64(b, s->leak_counts[TSK__LEAK_UNRETRIEVED_ERROR]);
  tsk__jbuf_puts(b, "},\"dropped_events\":");
  tsk__jbuf_u64(b, total_drops(s));
  tsk__jbuf_putc(b, '}');
}

/* Index (0 = oldest) of the first entry of a ring of n entries ending before `next` whose seq
 * is above since; n when none. */
#define RING_FIRST_AFTER(arr, cap, next, n, since, out)                                            \
  do {                                                                                             \
    size_t k_ = 0;                                                                                 \
    while (k_ < (n) && (arr)[((next) + (cap) - 1 - k_) % (cap)].seq > (since)) k_++;               \
    (out) = (n) - k_;                                                                              \
  } while (0)
#define RING_AT(arr, cap, next, n, i) (&(arr)[((next) + (cap) - (n) + (i)) % (cap)])

static void render_fins(tsk__srv *s, tsk__jbuf *b, uint64_t since) {
  tsk__jbuf_puts(b, "\"finished\":[");
  if (s->hist_cap) {
    size_t first;
    RING_FIRST_AFTER(s->hist, s->hist_cap, s->hist_next, s->hist_n, since, first);
    for (size_t i = first; i < s->hist_n; i++) {
      if (i > first) tsk__jbuf_putc(b, ',');
      render_fin(b, RING_AT(s->hist, s->hist_cap, s->hist_next, s->hist_n, i));
    }
  }
  tsk__jbuf_putc(b, ']');
}

static void render_leaks(tsk__srv *s, tsk__jbuf *b, uint64_t since) {
  tsk__jbuf_puts(b, "\"leaks\":[");
  size_t first;
  RING_FIRST_AFTER(s->leaks, TSK__SRV_LEAKS_MAX, s->leaks_next, s->leaks_n, since, first);
  for (size_t i = first; i < s->leaks_n; i++) {
    if (i > first) tsk__jbuf_putc(b, ',');
    tsk__report_json_leak(b, RING_AT(s->leaks, TSK__SRV_LEAKS_MAX, s->leaks_next, s->leaks_n, i)->l);
  }
  tsk__jbuf_putc(b, ']');
}

static void render_warnings(tsk__srv *s, tsk__jbuf *b, uint64_t since) {
  tsk__jbuf_puts(b, "\"warnings\":[");
  size_t first;
  RING_FIRST_AFTER(s->warn, TSK__SRV_WARNINGS_MAX, s->warn_next, s->warn_n, since, first);
  for (size_t i = first; i < s->warn_n; i++) {
    if (i > first) tsk__jbuf_putc(b, ',');
    render_warning(b, RING_AT(s->warn, TSK__SRV_WARNINGS_MAX, s->warn_next, s->warn_n, i));
  }
  tsk__jbuf_putc(b, ']');
}

void tsk__render_head(tsk__jbuf *b, const char *type, const tsk__msg *req) {
  tsk__jbuf_puts(b, "{\"type\":\"");
  tsk__jbuf_puts(b, type);
  tsk__jbuf_putc(b, '"');
  if (req && req->has_id) {
    tsk__jbuf_puts(b, ",\"id\":");
    tsk__jbuf_i64(b, req->id);
  }
}

void tsk__render_snapshot_head(tsk__srv *s, tsk__jbuf *b, const tsk__msg *req, int resync) {
  tsk__render_head(b, "snapshot", req);
  if (resync) tsk__jbuf_puts(b, ",\"resync\":true");
  tsk__jbuf_puts(b, ",\"time_ms\":");
  tsk__jbuf_u64(b, tsk__srv_now_ns() / 1000000);
  tsk__jbuf_puts(b, ",\"pid\":");
  tsk__jbuf_i64(b, s->pid);
  tsk__jbuf_puts(b, ",\"program\":");
  tsk__jbuf_str(b, program_invocation_short_name);
  tsk__jbuf_putc(b, ',');
  render_runtimes(s, b);
  tsk__jbuf_puts(b, ",\"tasks\":[");
}

void tsk__render_snapshot_tail(tsk__srv *s, tsk__jbuf *b) {
  tsk__jbuf_puts(b, "],");
  render_fins(s, b, 0);
  tsk__jbuf_putc(b, ',');
  render_leaks(s, b, 0);
  tsk__jbuf_putc(b, ',');
  render_warnings(s, b, 0);
  tsk__jbuf_putc(b, ',');
  render_stats(s, b);
  tsk__jbuf_puts(b, "}\n");
}

void tsk__render_snapshot(tsk__srv *s, tsk__jbuf *b, const tsk__msg *req, int resync) {
  /* About 200 bytes a task: reserve once instead of doubling through a large snapshot. */
  tsk__jbuf_reserve(b, 4096 + s->map.n * 256);
  tsk__render_snapshot_head(s, b, req, resync);
  int first = 1;
  for (tsk__list *n = s->changes.next; n != &s->changes; n = n->next) {
    if (!first) tsk__jbuf_putc(b, ',');
    first = 0;
    tsk__render_task(s, b, TSK__CONTAINER(n, srv_task, link));
  }
  tsk__render_snapshot_tail(s, b);
}

void tsk__render_delta(tsk__srv *s, tsk__jbuf *b, srv_client *c) {
  uint64_t since = c->last_seq;
  tsk__render_head(b, "delta", NULL);
  tsk__jbuf_puts(b, ",\"seq\":");
  tsk__jbuf_u64(b, c->delta_seq + 1);
  tsk__jbuf_puts(b, ",\"time_ms\":");
  tsk__jbuf_u64(b, tsk__srv_now_ns() / 1000000);
  /* The tasks changed since: the tail of the change list. */
  tsk__list *from = &s->changes;
  while (from->prev != &s->changes &&
         TSK__CONTAINER(from->prev, srv_task, link)->change_seq > since)
    from = from->prev;
  for (int pass = 0; pass < 2; pass++) {
    tsk__jbuf_puts(b, pass == 0 ? ",\"spawned\":[" : "],\"changed\":[");
    int first = 1;
    for (tsk__list *n = from; n != &s->changes; n = n->next) {
      srv_task *t = TSK__CONTAINER(n, srv_task, link);
      if ((t->spawn_seq > since) != (pass == 0)) continue;
      if (!first) tsk__jbuf_putc(b, ',');
      first = 0;
      tsk__render_task(s, b, t);
    }
  }
  tsk__jbuf_puts(b, "],");
  render_fins(s, b, since);
  tsk__jbuf_putc(b, ',');
  render_leaks(s, b, since);
  tsk__jbuf_putc(b, ',');
  render_warnings(s, b, since);
  tsk__jbuf_putc(b, ',');
  render_runtimes(s, b);
  tsk__jbuf_putc(b, ',');
  render_stats(s, b);
  tsk__jbuf_puts(b, ",\"dropped_events\":");
  tsk__jbuf_u64(b, total_drops(s));
  tsk__jbuf_puts(b, "}\n");
}

void tsk__render_report(tsk__srv *s, tsk__jbuf *b, tsk__leak *pending) {
  /* Chain the records kept (oldest first), then the pending ones, for the report writer. */
  tsk__leak *head = NULL, *last = NULL;
  for (size_t i = 0; i < s->leaks_n; i++) {
    tsk__leak *l = RING_AT(s->leaks, TSK__SRV_LEAKS_MAX, s->leaks_next, s->leaks_n, i)->l;
    if (last)
      last->next = l;
    else
      head = l;
    last = l;
  }
  if (last)
    last->next = pending;
  else
    head = pending;
  tsk__report_info info = {0};
  info.pid = s->pid;
  info.program = program_invocation_short_name;
  info.when = "inspector";
  tsk__report_json_doc(b, head, s->supp, &info, 1);
  for (size_t i = 0; i < s->leaks_n; i++)
    RING_AT(s->leaks, TSK__SRV_LEAKS_MAX, s->leaks_next, s->leaks_n, i)->l->next = NULL;
}
