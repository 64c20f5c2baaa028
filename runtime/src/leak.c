/* leak.c — leak records (allocation, copying helpers) and the names used by the reports. */
#include "leak.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[TSK__LEAK_KINDS] = {
    [TSK__LEAK_PENDING] = "pending",
    [TSK__LEAK_DESTROYED_PENDING] = "destroyed_pending",
    [TSK__LEAK_UNRETRIEVED_ERROR] = "unretrieved_error",
};

const char *tsk__leak_kind_name(tsk__leak_kind k) {
  if ((int)k < 0 || k >= TSK__LEAK_KINDS) return "unknown";
  return kind_names[k];
}

int tsk__leak_kind_from_name(const char *name) {
  if (!name) return -1;
  for (int k = 0; k < TSK__LEAK_KINDS; k++)
    if (strcmp(name, kind_names[k]) == 0) return k;
  return -1;
}

const char *tsk__task_state_name(tsk_task_state_t s) {
  switch (s) {
  case TSK_TASK_READY: return "ready";
  case TSK_TASK_RUNNING: return "running";
  case TSK_TASK_WAITING: return "waiting";
  case TSK_TASK_DONE: return "done";
  case TSK_TASK_FAILED: return "failed";
  case TSK_TASK_CANCELLED: return "cancelled";
  case TSK_TASK_DESTROYED: return "destroyed";
  }
  return "unknown";
}

const char *tsk__wait_kind_name(tsk_wait_kind_t k) {
  switch (k) {
  case TSK_WAIT_NONE: return "none";
  case TSK_WAIT_YIELD: return "yield";
  case TSK_WAIT_SLEEP: return "sleep";
  case TSK_WAIT_TASK: return "task";
  case TSK_WAIT_FUTURE: return "future";
  case TSK_WAIT_EVENT: return "event";
  case TSK_WAIT_CHANNEL: return "channel";
  case TSK_WAIT_GROUP: return "group";
  case TSK_WAIT_IO: return "io";
  case TSK_WAIT_OFFLOAD: return "offload";
  case TSK_WAIT_SPAWN: return "spawn";
  }
  return "unknown";
}

tsk__leak *tsk__leak_new(tsk__leak_kind kind) {
  tsk__leak *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->kind = kind;
  l->state = TSK_TASK_READY;
  l->awaiting = TSK_WAIT_NONE;
  return l;
}

static void bt_clear(tsk__bt *bt) {
  free(bt->ips);
  bt->ips = NULL;
  bt->n = 0;
}

void tsk__leak_free(tsk__leak *l) {
  if (!l) return;
  bt_clear(&l->created_at);
  bt_clear(&l->suspended_at);
  bt_clear(&l->raised_at);
  bt_clear(&l->dropped_at);
  free(l->message);
  free(l);
}

void tsk__leak_free_list(tsk__leak *head) {
  while (head) {
    tsk__leak *next = head->next;
    tsk__leak_free(head);
    head = next;
  }
}

tsk__leak *tsk__leak_clone(const tsk__leak *l) {
  tsk__leak *c = malloc(sizeof *c);
  if (!c) return NULL;
  *c = *l;
  c->next = NULL;
  c->message = NULL;
  c->created_at = c->suspended_at = c->raised_at = c->dropped_at = (tsk__bt){0, NULL};
  if ((l->message && !(c->message = strdup(l->message))) ||
      tsk__bt_set(&c->created_at, l->created_at.ips, l->created_at.n) ||
      tsk__bt_set(&c->suspended_at, l->suspended_at.ips, l->suspended_at.n) ||
      tsk__bt_set(&c->raised_at, l->raised_at.ips, l->raised_at.n) ||
      tsk__bt_set(&c->dropped_at, l->dropped_at.ips, l->dropped_at.n)) {
    tsk__leak_free(c);
    return NULL;
  }
  return c;
}

int tsk__bt_set(tsk__bt *bt, const uintptr_t *ips, int n) {
  uintptr_t *copy = NULL;
  if (n < 0 || (n > 0 && !ips)) n = 0;
  if (n > 0) {
    copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return TSK_ENOMEM;
    memcpy(copy, ips, (size_t)n * sizeof *copy);
  }
  free(bt->ips);
  bt->ips = copy;
  bt->n = n;
  return 0;
}

/* Copies at most size - 1 bytes of src into dst, never cutting a UTF-8 sequence in two. */
static void copy_utf8(char *dst, size_t size, const char *src) {
  if (size == 0) return;
  if (!src) src = "";
  size_t len = strlen(src);
  if (len >= size) {
    len = size - 1;
    /* Back off over continuation bytes, then drop the lead byte they belong to if the whole
     * sequence does not fit. */
    size_t cut = len;
    while (cut > 0 && ((unsigned char)src[cut] & 0xC0) == 0x80) cut--;
    len = cut;
  }
  memcpy(dst, src, len);
  dst[len] = '\0';
}

void tsk__leak_task_set(tsk__leak_task *t, uint64_t id, const char *name) {
  t->id = id;
  copy_utf8(t->name, sizeof t->name, name);
}

void tsk__leak_set_reason(tsk__leak *l, const char *reason) {
  copy_utf8(l->reason, sizeof l->reason, reason);
}

int tsk__leak_set_message(tsk__leak *l, const char *msg) {
  char *copy = NULL;
  if (msg && *msg) {
    copy = strdup(msg);
    if (!copy) return TSK_ENOMEM;
  }
  free(l->message);
  l->message = copy;
  return 0;
}

void tsk__leak_list_append(tsk__leak **head, tsk__leak **tail, tsk__leak *l) {
  l->next = NULL;
  if (*tail)
    (*tail)->next = l;
  else
    *head = l;
  *tail = l;
}
