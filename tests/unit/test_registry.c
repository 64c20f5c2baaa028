/* test_registry — what the registry records of a task: tsk_task_info, timings, busy time. */
#include "common/tt_core.h"

#include <time.h>

static tsk_event_t *ev;

static int waiter(void *arg) {
  (void)arg;
  return tsk_event_wait(ev, TSK_FOREVER);
}

static int spinner(void *arg) {
  (void)arg;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do { /* 30 ms on the CPU without yielding */
    clock_gettime(CLOCK_MONOTONIC, &b);
  } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 30000000L);
  tsk_yield();
  return 0;
}

static int info_main(void *arg) {
  tsk_runtime_t *rt = arg;
  TT_RC(0, tsk_event_new(rt, &ev));
  tsk_task_t w;
  TT_RC(0, tsk_spawn(rt, &w, "waiter", waiter, NULL));
  tsk_task_info_t in;
  TT_RC(0, tsk_task_info(w, &in));
  TT_CHECK(in.first_run_ms == 0); /* not run yet */
  TT_CHECK(in.state == TSK_TASK_READY);
  tsk_yield();
  TT_RC(0, tsk_task_info(w, &in));
  TT_CHECK(in.id == w.id);
  TT_CHECK(in.parent_id == tsk_self_id());
  TT_CHECK(strcmp(in.name, "waiter") == 0);
  TT_CHECK(in.state == TSK_TASK_WAITING);
  TT_CHECK(in.awaiting == TSK_WAIT_EVENT);
  TT_CHECK(in.awaiting_id != 0);
  TT_CHECK(in.switches == 1);
  TT_CHECK(in.first_run_ms >= in.created_ms);
  tsk_event_set(ev);
  TT_RC(0, tsk_join(w, TSK_FOREVER, NULL));
  TT_RC(TSK_ESTALE, tsk_task_info(w, &in));
  tsk_event_free(ev);
  return 0;
}

static void test_task_info(void **state) {
  (void)state;
  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  assert_int_equal(tsk_run_main(rt, "main", info_main, rt, NULL), 0);
  assert_int_equal(tsk_runtime_close(rt), 0);
  assert_int_equal(tt_failures, 0);
}

static uint64_t spinner_busy;

static int busy_main(void *arg) {
  tsk_runtime_t *rt = arg;
  tsk_task_t s;
  TT_RC(0, tsk_spawn(rt, &s, "spinner", spinner, NULL));
  tsk_yield(); /* the spinner runs its 30 ms, then yields back */
  tsk_task_info_t in;
  TT_RC(0, tsk_task_info(s, &in));
  spinner_busy = in.busy_ns;
  TT_RC(0, tsk_join(s, TSK_FOREVER, NULL));
  return 0;
}

static void test_busy_time(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(tsk_options_set("busy_time", "on", err, sizeof err), 0);
  tsk_runtime_t *rt;
  assert_int_equal(tsk_runtime_new(&rt), 0);
  assert_int_equal(tsk_run_main(rt, "main", busy_main, rt, NULL), 0);
  assert_int_equal(tsk_runtime_close(rt), 0);
  assert_int_equal(tsk_options_set("busy_time", "off", err, sizeof err), 0);
  assert_int_equal(tt_failures, 0);
  /* At least the 30 ms it spun (never an upper bound: machines are noisy). */
  assert_true(spinner_busy >= 30000000u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_task_info),
      cmocka_unit_test(test_busy_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
