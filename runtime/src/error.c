/* error.c — error names and messages (one table in taskscope.h generates both). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* libuv describes the codes it knows with static strings, but allocates a new string for every
 * other code (and nobody frees it). Only known codes go to libuv; others are formatted here, into
 * a per-thread buffer (valid until the thread's next such call). */
static int uv_knows(int err) {
  switch (err) {
#define TSK__UV_KNOWN(code, _) case UV_##code:
    UV_ERRNO_MAP(TSK__UV_KNOWN)
#undef TSK__UV_KNOWN
    return 1;
  default:
    return 0;
  }
}

static const char *unknown_code(const char *what, int err) {
  static __thread char buf[2][48];
  char *b = buf[what[0] == 'U'];
  snprintf(b, sizeof buf[0], "%s %d", what, err);
  return b;
}

const char *tsk_strerror(int err) {
  switch (err) {
#define TSK__ERR_TEXT(name, value, text) \
  case value:                             \
    return text;
    TSK_ERRNO_MAP(TSK__ERR_TEXT)
#undef TSK__ERR_TEXT
  case 0:
    return "success";
  default:
    if (err > 0) return "unknown error";
    return uv_knows(err) ? uv_strerror(err) : unknown_code("unknown system error", err);
  }
}

const char *tsk_err_name(int err) {
  switch (err) {
#define TSK__ERR_NAME(name, value, text) \
  case value:                             \
    return "TSK_" #name;
    TSK_ERRNO_MAP(TSK__ERR_NAME)
#undef TSK__ERR_NAME
  case 0:
    return "OK";
  default:
    if (err > 0) return "UNKNOWN";
    return uv_knows(err) ? uv_err_name(err) : unknown_code("UNKNOWN", err);
  }
}

void tsk__task_set_message(tsk__task *t, const char *msg) {
  free(t->message);
  t->message = msg ? strdup(msg) : NULL;
}
