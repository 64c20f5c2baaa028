/* event.c — a flag tasks wait for: set wakes every waiter and stays set until cleared. */
#include "internal.h"

#include <stdlib.h>

struct tsk_event {
  tsk_runtime_t *rt;
  const char *owner_token; /* the owner thread's, for tsk_event_free (see there) */
  uint64_t id;
  int set;
  tsk__list waiters;
};

int tsk_event_new(tsk_runtime_t *rt, tsk_event_t **out) {
  if (!rt || !out) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  tsk_event_t *e = calloc(1, sizeof *e);
  if (!e) return TSK_ENOMEM;
  e->rt = rt;
  e->owner_token = rt->owner_token;
  e->id = tsk__next_object_id(rt);
  tsk__list_init(&e->waiters);
  *out = e;
  return 0;
}

int tsk_event_set(tsk_event_t *e) {
  if (!e) return TSK_EINVAL;
  int rc = tsk__check_thread(e->rt);
  if (rc) return rc;
  e->set = 1;
  tsk__wait_end_all(&e->waiters, 0);
  return 0;
}

int tsk_event_clear(tsk_event_t *e) {
  if (!e) return TSK_EINVAL;
  int rc = tsk__check_thread(e->rt);
  if (rc) return rc;
  e->set = 0;
  return 0;
}

int tsk_event_is_set(tsk_event_t *e) { return e && e->set; }

int tsk_event_wait(tsk_event_t *e, int64_t timeout_ms) {
  if (!e) return TSK_EINVAL;
  int rc = tsk__check_thread(e->rt);
  if (rc) return rc;
  if (e->set) return 0;
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_EVENT, e->id);
  if (rc) return rc;
  return tsk__wait_on_list(&w, &e->waiters, timeout_ms);
}

int tsk_event_free(tsk_event_t *e) {
  if (!e) return TSK_EINVAL;
  /* The owner check does not go through e->rt: the event may be freed after its runtime was
   * closed (a task destroyed by the close may have been waiting on it, so it could not be freed
   * before: TSK_EBUSY). The close unlinked those waits. */
  if (e->owner_token != &tsk__thread_token) return TSK_EWRONGTHREAD;
  if (!tsk__list_empty(&e->waiters)) return TSK_EBUSY;
  free(e);
  return 0;
}
