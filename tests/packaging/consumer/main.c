/* Consumer of an installed taskscope: spawn a task that sets a value, join it, check it. */
#include <stdio.h>
#include <taskscope.h>

static int set_value(void *arg) {
  int *value = arg;
  *value = 42;
  tsk_set_result(value);
  return 0;
}

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "consumer: check failed: %s (line %d)\n", #cond, __LINE__);                \
      return 1;                                                                                  \
    }                                                                                            \
  } while (0)

int main(void) {
  tsk_runtime_t *rt = NULL;
  tsk_task_t task;
  tsk_result_t res;
  int value = 0;
  int rc;

  rc = tsk_runtime_new(&rt);
  if (rc != 0) {
    fprintf(stderr, "consumer: tsk_runtime_new: %s\n", tsk_strerror(rc));
    return 1;
  }
  rc = tsk_spawn(rt, &task, "set_value", set_value, &value);
  CHECK(rc == 0);
  rc = tsk_run(rt);
  CHECK(rc == 0);
  rc = tsk_join(task, TSK_FOREVER, &res); /* the task has finished: join does not wait */
  if (rc != 0) {
    fprintf(stderr, "consumer: tsk_join: %s\n", tsk_strerror(rc));
    return 1;
  }
  CHECK(res.state == TSK_TASK_DONE);
  CHECK(res.error == 0);
  CHECK(res.value == &value);
  CHECK(value == 42);
  rc = tsk_runtime_close(rt);
  CHECK(rc == 0);
  printf("consumer: ok (taskscope %s)\n", TSK_VERSION_STRING);
  return 0;
}
