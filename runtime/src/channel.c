/*
 * channel.c — a bounded FIFO of pointers between the tasks of one runtime.
 *
 * Invariants: receivers wait only while the buffer is empty; senders wait only while it is
 * full. A message handed to a waiting receiver is written to the receiver's slot before its
 * wait ends, so a receiver cancelled afterwards still has its message (nothing is lost).
 */
#include "internal.h"

#include <stdlib.h>

struct tsk_channel {
  tsk_runtime_t *rt;
  const char *owner_token; /* the owner thread's, for tsk_channel_free (see there) */
  uint64_t id;
  size_t cap, head, len;
  int closed;
  tsk__list senders;   /* waiting senders; w->data = the message */
  tsk__list receivers; /* waiting receivers; w->data = where to store the message */
  void *buf[];
};

int tsk_channel_new(tsk_runtime_t *rt, size_t capacity, tsk_channel_t **out) {
  if (!rt || !out || capacity == 0 || capacity > ((size_t)1 << 28)) return TSK_EINVAL;
  int rc = tsk__check_thread(rt);
  if (rc) return rc;
  tsk_channel_t *ch = calloc(1, sizeof *ch + capacity * sizeof(void *));
  if (!ch) return TSK_ENOMEM;
  ch->rt = rt;
  ch->owner_token = rt->owner_token;
  ch->id = tsk__next_object_id(rt);
  ch->cap = capacity;
  tsk__list_init(&ch->senders);
  tsk__list_init(&ch->receivers);
  *out = ch;
  return 0;
}

static void push(tsk_channel_t *ch, void *msg) {
  ch->buf[(ch->head + ch->len) % ch->cap] = msg;
  ch->len++;
}

static void *pop(tsk_channel_t *ch) {
  void *m = ch->buf[ch->head];
  ch->head = (ch->head + 1) % ch->cap;
  ch->len--;
  return m;
}

int tsk_channel_try_send(tsk_channel_t *ch, void *msg) {
  if (!ch) return TSK_EINVAL;
  int rc = tsk__check_thread(ch->rt);
  if (rc) return rc;
  if (ch->closed) return TSK_ECLOSED;
  tsk__wait *r = tsk__wait_first(&ch->receivers);
  if (r) {
    *(void **)r->data = msg;
    tsk__wait_end(r, 0);
    return 0;
  }
  if (ch->len == ch->cap) return TSK_EFULL;
  push(ch, msg);
  return 0;
}

int tsk_channel_send(tsk_channel_t *ch, void *msg, int64_t timeout_ms) {
  int rc = tsk_channel_try_send(ch, msg);
  if (rc != TSK_EFULL) return rc;
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_CHANNEL, ch->id);
  if (rc) return rc;
  w.data = msg;
  return tsk__wait_on_list(&w, &ch->senders, timeout_ms);
}

int tsk_channel_try_recv(tsk_channel_t *ch, void **msg) {
  if (!ch || !msg) return TSK_EINVAL;
  int rc = tsk__check_thread(ch->rt);
  if (rc) return rc;
  if (ch->len == 0) return ch->closed ? TSK_ECLOSED : TSK_EAGAIN;
  *msg = pop(ch);
  tsk__wait *s = tsk__wait_first(&ch->senders);
  if (s) { /* room now: move the first waiting sender's message in */
    push(ch, s->data);
    tsk__wait_end(s, 0);
  }
  return 0;
}

int tsk_channel_recv(tsk_channel_t *ch, void **msg, int64_t timeout_ms) {
  int rc = tsk_channel_try_recv(ch, msg);
  if (rc != TSK_EAGAIN) return rc;
  tsk__wait w;
  rc = tsk__wait_prepare(&w, TSK_WAIT_CHANNEL, ch->id);
  if (rc) return rc;
  w.data = msg;
  return tsk__wait_on_list(&w, &ch->receivers, timeout_ms);
}

int tsk_channel_close(tsk_channel_t *ch) {
  if (!ch) return TSK_EINVAL;
  int rc = tsk__check_thread(ch->rt);
  if (rc) return rc;
  if (ch->closed) return 0;
  ch->closed = 1;
  tsk__wait_end_all(&ch->senders, TSK_ECLOSED);
  tsk__wait_end_all(&ch->receivers, TSK_ECLOSED);
  return 0;
}

size_t tsk_channel_len(tsk_channel_t *ch) { return ch ? ch->len : 0; }

int tsk_channel_free(tsk_channel_t *ch) {
  if (!ch) return TSK_EINVAL;
  /* Not through ch->rt: the channel may be freed after its runtime was closed (as events). */
  if (ch->owner_token != &tsk__thread_token) return TSK_EWRONGTHREAD;
  if (!tsk__list_empty(&ch->senders) || !tsk__list_empty(&ch->receivers)) return TSK_EBUSY;
  free(ch);
  return 0;
}
