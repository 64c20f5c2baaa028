/* error.c — error names and messages (one table in taskscope.h generates both). */
#include "internal.h"

#include <stdlib.h>

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
    return err < 0 ? uv_strerror(err) : "unknown error";
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
    return err < 0 ? uv_err_name(err) : "UNKNOWN";
  }
}

void tsk__task_set_message(tsk__task *t, const char *msg) {
  free(t->message);
  t->message = msg ? strdup(msg) : NULL;
}
