/*
 * session.c — a live inspector session with reconnection.
 */
#include "session.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 1000.0
#define HELLO_TIMEOUT_MS 5000.0

double ts_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void ts_sess_init(ts_sess *s, const char *path, int by_pid, int interval_ms) {
  memset(s, 0, sizeof *s);
  tp_init(&s->peer);
  snprintf(s->path, sizeof s->path, "%s", path);
  s->by_pid = by_pid;
  s->interval_ms = interval_ms;
  s->next_id = 1;
  s->state = TS_SESS_DOWN;
}

void ts_sess_close(ts_sess *s) {
  tp_close(&s->peer);
  s->state = TS_SESS_DOWN;
}

static void set_state(ts_sess *s, ts_sess_state st, double now) {
  s->state = st;
  s->since_ms = now;
}

static void go_down(ts_sess *s, double now, const char *fmt, const char *arg) {
  tp_close(&s->peer);
  snprintf(s->err, sizeof s->err, fmt, arg);
  set_state(s, TS_SESS_DOWN, now);
  s->next_retry_ms = now + RETRY_MS;
}

/* A restarted program has a new pid, hence a new socket: when ours is gone, take the only
 * socket of a process with the same program name. */
static void follow_program(ts_sess *s) {
  if (!s->by_pid || !*s->program) return;
  ta_proc procs[64];
  size_t n = ta_scan(procs, 64), found = 0, which = 0;
  for (size_t i = 0; i < n && i < 64; i++)
    if (strncmp(procs[i].program, s->program, 15) == 0) found++, which = i;
  if (found == 1) snprintf(s->path, sizeof s->path, "%s", procs[which].path);
}

void ts_sess_connect(ts_sess *s, double now) {
  tp_status st = tp_connect(&s->peer, s->path);
  if (st == TP_NOENT || st == TP_REFUSED) {
    follow_program(s);
    st = tp_connect(&s->peer, s->path);
  }
  if (st != TP_OK) {
    char err[sizeof s->peer.err];
    memcpy(err, s->peer.err, sizeof err);
    go_down(s, now, "%s", err);
    return;
  }
  set_state(s, TS_SESS_HELLO, now);
}

short ts_sess_events(const ts_sess *s) {
  if (s->peer.fd < 0) return 0;
  return (short)(POLLIN | (tp_want_write(&s->peer) ? POLLOUT : 0));
}

static void send_subscribe(ts_sess *s) {
  s->subscribe_id = s->next_id++;
  json_t *m = json_pack("{s:s, s:I, s:i}", "type", "subscribe", "id", (json_int_t)s->subscribe_id,
                        "interval_ms", s->interval_ms);
  tp_send(&s->peer, m);
  json_decref(m);
}

/* The server's hello: protocol and version checked, our hello and the subscription sent. */
static int on_hello(ts_sess *s, json_t *m, double now) {
  tsc_hello h;
  char buf[256];
  switch (tsc_hello_parse(m, &h)) {
  case TSC_HELLO_OK: break;
  case TSC_HELLO_REFUSED:
    snprintf(buf, sizeof buf, "%s", h.message);
    if (strcmp(h.code, "busy") == 0)
      go_down(s, now, "the process is busy (too many inspectors attached): %s", buf);
    else if (strcmp(h.code, "version_mismatch") == 0)
      go_down(s, now, "version mismatch: %s (taskscope-top " TASKSCOPE_VERSION " speaks protocol 1)",
              buf);
    else
      go_down(s, now, "the process refused the connection: %s", buf);
    return -1;
  case TSC_HELLO_FOREIGN:
    go_down(s, now,
            "%s is not a taskscope inspector socket (its first message is not a taskscope hello)",
            s->path);
    return -1;
  case TSC_HELLO_VERSION:
    snprintf(buf, sizeof buf,
             "version mismatch: the process speaks inspector protocol %lld, taskscope-top "
             TASKSCOPE_VERSION " speaks protocol %d",
             h.version, TS_PROTOCOL_VERSION);
    go_down(s, now, "%s", buf);
    return -1;
  case TSC_HELLO_BAD_VERSION:
  case TSC_HELLO_BAD_PID:
    go_down(s, now, "%s sent a malformed hello (its version or pid is not an integer)", s->path);
    return -1;
  }
  s->pid = h.pid;
  snprintf(s->program, sizeof s->program, "%s", *h.program ? h.program : "?");
  for (char *p = s->program; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
  json_t *reply = tsc_hello_reply("taskscope-top " TASKSCOPE_VERSION);
  tp_send(&s->peer, reply);
  json_decref(reply);
  send_subscribe(s);
  set_state(s, TS_SESS_SUBSCRIBING, now);
  return 0;
}

int ts_sess_io(ts_sess *s, short revents, double now, size_t budget,
               void (*on_msg)(void *ctx, json_t *msg), void *ctx) {
  ts_sess_state before = s->state;
  if (s->state == TS_SESS_DOWN) {
    if (now >= s->next_retry_ms) ts_sess_connect(s, now);
    if (s->state == TS_SESS_DOWN) return s->state != before;
  }
  if ((revents & POLLOUT) || tp_want_write(&s->peer)) {
    if (tp_flush(&s->peer) < 0) {
      char err[sizeof s->peer.err];
      memcpy(err, s->peer.err, sizeof err);
      go_down(s, now, "%s", err);
      return 1;
    }
  }
  long r = 0;
  if (revents & (POLLIN | POLLHUP | POLLERR)) r = tp_read(&s->peer, budget);
  for (;;) {
    json_t *m = NULL;
    int k = tp_next(&s->peer, &m);
    if (k == 0) break;
    if (k < 0) {
      char err[sizeof s->peer.err];
      memcpy(err, s->peer.err, sizeof err);
      go_down(s, now, "%s", err);
      return 1;
    }
    if (s->state == TS_SESS_HELLO) {
      int rc = on_hello(s, m, now);
      json_decref(m);
      if (rc < 0) return 1;
      continue;
    }
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *jid = json_object_get(m, "id");
    int64_t id = json_is_integer(jid) ? (int64_t)json_integer_value(jid) : -1;
    if (type && strcmp(type, "snapshot") == 0 && id == s->subscribe_id) {
      if (s->state != TS_SESS_LIVE) s->connects++;
      set_state(s, TS_SESS_LIVE, now);
    } else if (type && strcmp(type, "delta") == 0 && s->state != TS_SESS_LIVE) {
      json_decref(m); /* a delta of a dropped subscription */
      continue;
    } else if (type && strcmp(type, "error") == 0 && id < 0) {
      const char *code = json_string_value(json_object_get(m, "code"));
      const char *msg = json_string_value(json_object_get(m, "message"));
      char buf[300];
      snprintf(buf, sizeof buf, "%s: %s", code ? code : "error", msg ? msg : "");
      json_decref(m);
      go_down(s, now, "the process reported %s", buf);
      return 1;
    } else if (type && strcmp(type, "error") == 0 && id == s->subscribe_id) {
      const char *msg = json_string_value(json_object_get(m, "message"));
      char buf[300];
      snprintf(buf, sizeof buf, "%s", msg ? msg : "?");
      json_decref(m);
      go_down(s, now, "the subscription was refused: %s", buf);
      return 1;
    }
    on_msg(ctx, m);
    json_decref(m);
  }
  if (r < 0 || s->peer.eof) {
    char err[sizeof s->peer.err];
    memcpy(err, s->peer.err, sizeof err);
    go_down(s, now, "%s", err);
    return 1;
  }
  if (s->state == TS_SESS_HELLO && now - s->since_ms > HELLO_TIMEOUT_MS) {
    go_down(s, now, "%s sent no hello within 5 s (is it a taskscope socket?)",
            s->path);
    return 1;
  }
  return s->state != before;
}

int64_t ts_sess_request(ts_sess *s, json_t *msg) {
  if (s->state != TS_SESS_LIVE) return -1;
  int64_t id = s->next_id++;
  json_object_set_new(msg, "id", json_integer(id));
  if (tp_send(&s->peer, msg) != 0) return -1;
  tp_flush(&s->peer);
  return id;
}

void ts_sess_resubscribe(ts_sess *s) {
  if (s->state != TS_SESS_LIVE) return;
  json_t *m = json_pack("{s:s}", "type", "unsubscribe");
  tp_send(&s->peer, m);
  json_decref(m);
  send_subscribe(s);
  tp_flush(&s->peer);
  s->state = TS_SESS_SUBSCRIBING;
}
