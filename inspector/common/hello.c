/*
 * hello.c — the hello exchange (see hello.h).
 */
#include "hello.h"

#include <string.h>

static const char *str_or_empty(json_t *m, const char *key) {
  const char *s = json_string_value(json_object_get(m, key));
  return s ? s : "";
}

tsc_hello_status tsc_hello_parse(json_t *m, tsc_hello *h) {
  memset(h, 0, sizeof *h);
  h->program = str_or_empty(m, "program");
  h->server = str_or_empty(m, "server");
  h->code = str_or_empty(m, "code");
  h->message = str_or_empty(m, "message");
  const char *type = str_or_empty(m, "type");
  if (strcmp(type, "error") == 0) return TSC_HELLO_REFUSED;
  if (strcmp(type, "hello") != 0 || strcmp(str_or_empty(m, "protocol"), "taskscope") != 0)
    return TSC_HELLO_FOREIGN;
  json_t *ver = json_object_get(m, "version"), *pid = json_object_get(m, "pid");
  if (!json_is_integer(ver)) return TSC_HELLO_BAD_VERSION;
  h->version = json_integer_value(ver);
  if (h->version != TS_PROTOCOL_VERSION) return TSC_HELLO_VERSION;
  if (!json_is_integer(pid)) return TSC_HELLO_BAD_PID;
  h->pid = json_integer_value(pid);
  return TSC_HELLO_OK;
}

json_t *tsc_hello_reply(const char *client) {
  return json_pack("{s:s, s:i, s:s}", "type", "hello", "version", TS_PROTOCOL_VERSION, "client",
                   client);
}
