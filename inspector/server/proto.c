/* proto.c — parsing and validating client messages, framing, error replies (see proto.h). */
#include "proto.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const codes[] = {
    [TSK__PE_OK] = "ok",
    [TSK__PE_BAD_JSON] = "bad_json",
    [TSK__PE_TOO_LONG] = "too_long",
    [TSK__PE_NO_HELLO] = "no_hello",
    [TSK__PE_VERSION_MISMATCH] = "version_mismatch",
    [TSK__PE_UNKNOWN_TYPE] = "unknown_type",
    [TSK__PE_MISSING_FIELD] = "missing_field",
    [TSK__PE_BAD_FIELD] = "bad_field",
    [TSK__PE_NO_SUCH_TASK] = "no_such_task",
    [TSK__PE_TIMEOUT] = "timeout",
    [TSK__PE_BUSY] = "busy",
    [TSK__PE_INTERNAL] = "internal",
    [TSK__PE_FORBIDDEN] = "forbidden",
};

const char *tsk__perr_code(tsk__perr e) {
  if ((int)e < 0 || (size_t)e >= sizeof codes / sizeof codes[0] || !codes[e]) return "internal";
  return codes[e];
}

int tsk__perr_closes(tsk__perr e) {
  return e == TSK__PE_BAD_JSON || e == TSK__PE_TOO_LONG || e == TSK__PE_VERSION_MISMATCH ||
         e == TSK__PE_BUSY || e == TSK__PE_FORBIDDEN;
}

static const struct {
  const char *name;
  tsk__msg_type type;
} types[] = {
    {"hello", TSK__MSG_HELLO},   {"snapshot", TSK__MSG_SNAPSHOT},
    {"subscribe", TSK__MSG_SUBSCRIBE}, {"unsubscribe", TSK__MSG_UNSUBSCRIBE},
    {"where", TSK__MSG_WHERE},   {"cancel", TSK__MSG_CANCEL},
    {"leaks", TSK__MSG_LEAKS},   {"ping", TSK__MSG_PING},
};

/* An optional integer field in [lo, hi]: absent keeps *out. */
static tsk__perr int_field(json_t *o, const char *key, int required, int64_t lo, int64_t hi,
                           int64_t *out, char *err, size_t errlen) {
  json_t *v = json_object_get(o, key);
  if (!v) {
    if (!required) return TSK__PE_OK;
    snprintf(err, errlen, "missing field '%s'", key);
    return TSK__PE_MISSING_FIELD;
  }
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    snprintf(err, errlen, "field '%s' must be an integer from %lld to %lld", key, (long long)lo,
             (long long)hi);
    return TSK__PE_BAD_FIELD;
  }
  *out = json_integer_value(v);
  return TSK__PE_OK;
}

static tsk__perr parse_object(json_t *o, tsk__msg *m, char *err, size_t errlen) {
  json_t *id = json_object_get(o, "id");
  if (id) {
    if (!json_is_integer(id)) {
      snprintf(err, errlen, "field 'id' must be an integer");
      return TSK__PE_BAD_FIELD;
    }
    m->has_id = 1;
    m->id = json_integer_value(id);
  }
  json_t *type = json_object_get(o, "type");
  if (!type) {
    snprintf(err, errlen, "missing field 'type'");
    return TSK__PE_MISSING_FIELD;
  }
  if (!json_is_string(type)) {
    snprintf(err, errlen, "field 'type' must be a string");
    return TSK__PE_BAD_FIELD;
  }
  const char *name = json_string_value(type);
  size_t name_len = json_string_length(type);
  m->type = 0;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strlen(types[i].name) == name_len && memcmp(types[i].name, name, name_len) == 0)
      m->type = types[i].type;
  if (!m->type) {
    /* Quote at most 32 bytes of the unknown type; the reply's writer escapes it. */
    snprintf(err, errlen, "unknown message type '%.32s'", name);
    return TSK__PE_UNKNOWN_TYPE;
  }

  tsk__perr rc = TSK__PE_OK;
  int64_t task = 0;
  switch (m->type) {
  case TSK__MSG_HELLO: {
    rc = int_field(o, "version", 1, INT64_MIN, INT64_MAX, &m->version, err, errlen);
    if (rc) return rc;
    json_t *client = json_object_get(o, "client");
    if (client && !json_is_string(client)) {
      snprintf(err, errlen, "field 'client' must be a string");
      return TSK__PE_BAD_FIELD;
    }
    break;
  }
  case TSK__MSG_SUBSCRIBE:
    rc = int_field(o, "interval_ms", 0, TSK__PROTO_INTERVAL_MIN, TSK__PROTO_INTERVAL_MAX,
                   &m->interval_ms, err, errlen);
    break;
  case TSK__MSG_WHERE:
  case TSK__MSG_CANCEL:
    rc = int_field(o, "task", 1, 1, INT64_MAX, &task, err, errlen);
    if (rc) return rc;
    m->task = (uint64_t)task;
    rc = int_field(o, "timeout_ms", 0, 0, TSK__PROTO_TIMEOUT_MAX, &m->timeout_ms, err, errlen);
    break;
  case TSK__MSG_LEAKS: {
    json_t *p = json_object_get(o, "pending");
    if (p) {
      if (!json_is_boolean(p)) {
        snprintf(err, errlen, "field 'pending' must be true or false");
        return TSK__PE_BAD_FIELD;
      }
      m->pending = json_is_true(p);
    }
    rc = int_field(o, "timeout_ms", 0, 0, TSK__PROTO_TIMEOUT_MAX, &m->timeout_ms, err, errlen);
    break;
  }
  default:
    break;
  }
  return rc;
}

tsk__perr tsk__proto_parse(const char *line, size_t len, tsk__msg *m, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  m->interval_ms = TSK__PROTO_INTERVAL_DEFAULT;
  m->timeout_ms = TSK__PROTO_TIMEOUT_DEFAULT;
  if (errlen) err[0] = 0;
  if (len > TSK__PROTO_LINE_MAX) {
    snprintf(err, errlen, "message longer than %d bytes", TSK__PROTO_LINE_MAX);
    return TSK__PE_TOO_LONG;
  }
  json_error_t jerr;
  json_t *o = json_loadb(line, len, 0, &jerr);
  if (!o) {
    snprintf(err, errlen, "not JSON: %s (column %d)", jerr.text, jerr.column);
    return TSK__PE_BAD_JSON;
  }
  tsk__perr rc;
  if (!json_is_object(o)) {
    snprintf(err, errlen, "not a JSON object");
    rc = TSK__PE_BAD_JSON;
  } else {
    rc = parse_object(o, m, err, errlen);
  }
  json_decref(o);
  return rc;
}

tsk__perr tsk__proto_session_check(tsk__proto_session *s, const tsk__msg *m, char *err,
                                   size_t errlen) {
  if (m->type == TSK__MSG_HELLO) {
    if (m->version != TSK__PROTO_VERSION) {
      snprintf(err, errlen, "server speaks protocol %d, client %lld", TSK__PROTO_VERSION,
               (long long)m->version);
      return TSK__PE_VERSION_MISMATCH;
    }
    s->hello_done = 1;
    return TSK__PE_OK;
  }
  if (!s->hello_done) {
    snprintf(err, errlen, "send hello first");
    return TSK__PE_NO_HELLO;
  }
  return TSK__PE_OK;
}

void tsk__proto_error(tsk__jbuf *b, const tsk__msg *m, tsk__perr e, const char *message) {
  tsk__jbuf_puts(b, "{\"type\":\"error\"");
  if (m && m->has_id) {
    tsk__jbuf_puts(b, ",\"id\":");
    tsk__jbuf_i64(b, m->id);
  }
  tsk__jbuf_puts(b, ",\"code\":");
  tsk__jbuf_str(b, tsk__perr_code(e));
  tsk__jbuf_puts(b, ",\"message\":");
  tsk__jbuf_str(b, message ? message : "");
  tsk__jbuf_puts(b, "}\n");
}

/* ---- framing ---- */

#define FRAMER_CAP (2 * (TSK__PROTO_LINE_MAX + 1))

int tsk__framer_init(tsk__framer *f) {
  f->start = f->len = 0;
  f->cap = FRAMER_CAP;
  f->buf = malloc(f->cap);
  return f->buf ? 0 : -1;
}

void tsk__framer_free(tsk__framer *f) {
  free(f->buf);
  f->buf = NULL;
  f->start = f->len = f->cap = 0;
}

char *tsk__framer_space(tsk__framer *f, size_t *room) {
  if (f->start > 0) {
    memmove(f->buf, f->buf + f->start, f->len - f->start);
    f->len -= f->start;
    f->start = 0;
  }
  *room = f->cap - f->len;
  return f->buf + f->len;
}

void tsk__framer_wrote(tsk__framer *f, size_t n) {
  if (n > f->cap - f->len) n = f->cap - f->len;
  f->len += n;
}

int tsk__framer_next(tsk__framer *f, const char **line, size_t *len) {
  size_t avail = f->len - f->start;
  const char *p = f->buf + f->start;
  const char *nl = avail ? memchr(p, '\n', avail) : NULL;
  if (!nl) return avail > TSK__PROTO_LINE_MAX ? -1 : 0;
  size_t n = (size_t)(nl - p);
  if (n > TSK__PROTO_LINE_MAX) return -1;
  *line = p;
  *len = n;
  f->start += n + 1;
  return 1;
}

size_t tsk__framer_feed(tsk__framer *f, const char *data, size_t n) {
  size_t room;
  char *dst = tsk__framer_space(f, &room);
  if (n > room) n = room;
  memcpy(dst, data, n);
  tsk__framer_wrote(f, n);
  return n;
}
