/*
 * config.c — the process's run-time options: read once from TASKSCOPE_OPTIONS when the first
 * runtime is created, changeable through tsk_options_set. A runtime takes a copy of the options
 * when it is created; later changes apply to runtimes created afterwards.
 *
 * Policy for a bad TASKSCOPE_OPTIONS (see docs/OPTIONS.md): its one-line error is printed on
 * stderr and the process continues with every option at its default — instrumentation must never
 * stop a service — unless the value contains strict=1, which makes the error fatal (exit 2).
 */
#include "internal.h"
#include "options.h"

#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static int config_loaded;
static tsk__options config;

static void load_locked(void) {
  if (config_loaded) return;
  config_loaded = 1;
  char err[TSK__OPTIONS_ERRLEN];
  if (tsk__options_from_env(&config, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    if (config.strict) {
      fprintf(stderr, "TASKSCOPE_OPTIONS: strict=1: stopping\n");
      _exit(2);
    }
    /* config holds the defaults already (options.h: a failed parse keeps none of the spec). */
    fprintf(stderr, "TASKSCOPE_OPTIONS: continuing with the defaults\n");
  }
  if (config.verbosity >= 1) { /* a note: the options in effect */
    char text[TSK__OPTIONS_FORMAT_MAX];
    if (tsk__options_format(&config, text, sizeof text) > 0)
      fprintf(stderr, "taskscope: options: %s\n", text);
  }
}

void tsk__config_snapshot(tsk__options *out) {
  pthread_mutex_lock(&config_lock);
  load_locked();
  *out = config;
  pthread_mutex_unlock(&config_lock);
}

int tsk_options_set(const char *key, const char *value, char *err, size_t errlen) {
  pthread_mutex_lock(&config_lock);
  load_locked();
  int rc = tsk__options_set(&config, key, value, err, errlen);
  pthread_mutex_unlock(&config_lock);
  return rc;
}

int tsk_options_get(char *buf, size_t size) {
  pthread_mutex_lock(&config_lock);
  load_locked();
  int rc = tsk__options_format(&config, buf, size);
  pthread_mutex_unlock(&config_lock);
  return rc;
}
