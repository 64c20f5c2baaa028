/*
 * test_io.c — awaitable TCP, getaddrinfo and the generic uv request waiter (runtime/src/io.c).
 *
 * Loopback only (127.0.0.1, port 0 + tsk_tcp_sockname). Each test makes its own runtime, runs a
 * main task with tsk_run_main and closes the runtime, so ASan's leak check covers every
 * connection and request. No assertion depends on timing: waits that must not end are far
 * longer than anything meant to interrupt them, and "is it blocked yet?" is decided by looking
 * at the task's state, not by a clock. Tests that need a request to stay queued in libuv's thread
 * pool fill the pool first (its size is fixed to 4 in main).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/tt_core.h"
#include "taskscope.h"

#define LONG_MS 60000 /* never reached unless something is broken */
#define POOL_SIZE 4

/* ---- helpers ---- */

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int port_of(tsk_tcp_t *t) {
  struct sockaddr_storage ss;
  if (!TT_RC(0, tsk_tcp_sockname(t, &ss))) return -1;
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A listener and one connection to it: a = the connecting side, b = the accepted side. */
typedef struct pair {
  tsk_tcp_t *server, *a, *b;
} pair;

static int pair_open(pair *p) {
  memset(p, 0, sizeof *p);
  struct sockaddr_in addr = loopback(0);
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &p->server))) return -1;
  addr = loopback(port_of(p->server));
  /* On loopback the kernel completes the handshake before anyone accepts. */
  if (!TT_RC(0, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &p->a))) return -1;
  if (!TT_RC(0, tsk_tcp_accept(p->server, LONG_MS, &p->b))) return -1;
  return 0;
}

static void pair_close(pair *p) {
  if (p->a) tsk_tcp_close(p->a);
  if (p->b) tsk_tcp_close(p->b);
  if (p->server) tsk_tcp_close(p->server);
  memset(p, 0, sizeof *p);
}

/* Yields until the task is suspended in a wait (bounded, so a broken wait fails the test
 * instead of hanging it). */
static int wait_blocked(tsk_task_t t) {
  for (int i = 0; i < 10000; i++) {
    tsk_task_state_t st;
    if (tsk_task_state(t, &st) != 0) return 0;
    if (st == TSK_TASK_WAITING) return 1;
    if (st != TSK_TASK_READY && st != TSK_TASK_RUNNING) return 0;
    if (i < 100)
      tsk_yield();
    else
      tsk_sleep(1);
  }
  return 0;
}

/* Cancels t and joins it: it must end CANCELLED with TSK_ECANCELED. */
static void cancel_and_join(tsk_task_t t) {
  TT_RC(0, tsk_cancel(t));
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(t, LONG_MS, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
}

/* Reads exactly len bytes. */
static int read_full(tsk_tcp_t *t, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = tsk_tcp_read(t, (char *)buf + got, len - got, LONG_MS);
    if (n <= 0) return (int)(n == 0 ? TSK_EFAILED : n);
    got += (size_t)n;
  }
  return 0;
}

/* Occupies every thread of libuv's pool with work that waits for the gate, so that the next
 * request stays queued (and uv_cancel can withdraw it). */
static atomic_int gate_open, blockers_started;
static tsk_task_t blockers[POOL_SIZE];

static intptr_t blocker_work(void *arg) {
  (void)arg;
  atomic_fetch_add(&blockers_started, 1);
  while (!atomic_load(&gate_open)) usleep(1000);
  return 0;
}

static int blocker_task(void *arg) {
  (void)arg;
  return tsk_offload(blocker_work, NULL, NULL, TSK_FOREVER, NULL);
}

static int pool_block(void) {
  atomic_store(&gate_open, 0);
  atomic_store(&blockers_started, 0);
  for (int i = 0; i < POOL_SIZE; i++)
    if (!TT_RC(0, tsk_spawn(tsk_runtime_current(), &blockers[i], "blocker", blocker_task, NULL)))
      return -1;
  for (int i = 0; i < 10000 && atomic_load(&blockers_started) < POOL_SIZE; i++) tsk_sleep(1);
  return TT_RC(POOL_SIZE, atomic_load(&blockers_started)) ? 0 : -1;
}

static void pool_unblock(void) {
  atomic_store(&gate_open, 1);
  for (int i = 0; i < POOL_SIZE; i++) TT_RC(0, tsk_join(blockers[i], LONG_MS, NULL));
}

/* ---- echo ---- */

static int echo_server(void *arg) {
  tsk_tcp_t *server = arg, *c;
  if (!TT_RC(0, tsk_tcp_accept(server, LONG_MS, &c))) return TSK_EFAILED;
  char buf[256];
  ssize_t n;
  while ((n = tsk_tcp_read(c, buf, sizeof buf, LONG_MS)) > 0)
    if (!TT_RC(0, tsk_tcp_write(c, buf, (size_t)n, LONG_MS))) break;
  TT_RC(0, n);
  TT_RC(0, tsk_tcp_shutdown(c));
  tsk_tcp_close(c);
  return 0;
}

static int echo_client(void *arg) {
  int port = *(int *)arg;
  struct sockaddr_in addr = loopback(port);
  tsk_tcp_t *c;
  if (!TT_RC(0, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &c))) return TSK_EFAILED;
  const char *msgs[] = {"hello", "taskscope", "x"};
  for (int i = 0; i < 3; i++) {
    size_t len = strlen(msgs[i]);
    char buf[32] = {0};
    TT_RC(0, tsk_tcp_write(c, msgs[i], len, LONG_MS));
    TT_RC(0, read_full(c, buf, len));
    TT_CHECK(memcmp(buf, msgs[i], len) == 0);
  }
  TT_RC(0, tsk_tcp_shutdown(c));
  char b;
  TT_RC(0, tsk_tcp_read(c, &b, 1, LONG_MS)); /* the server closes after our EOF */
  TT_RC(0, tsk_tcp_read(c, &b, 1, LONG_MS)); /* and end of stream stays end of stream */
  tsk_tcp_close(c);
  return 0;
}

static int main_echo(void *arg) {
  (void)arg;
  struct sockaddr_in addr = loopback(0);
  tsk_tcp_t *server;
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &server))) return TSK_EFAILED;
  int port = port_of(server);
  TT_CHECK(port > 0);
  tsk_task_t s, c;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &s, "echo-server", echo_server, server));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &c, "echo-client", echo_client, &port));
  TT_RC(0, tsk_join(c, LONG_MS, NULL));
  TT_RC(0, tsk_join(s, LONG_MS, NULL));
  tsk_tcp_close(server);
  return 0;
}

static void test_echo(void **state) {
  (void)state;
  TT_RUN_OK(main_echo, NULL);
}

/* ---- a large write, read back intact ---- */

#define BIG (8u << 20)

static unsigned char pattern(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

static int big_writer(void *arg) {
  tsk_tcp_t *t = arg;
  unsigned char *buf = malloc(BIG);
  if (!TT_CHECK(buf)) return TSK_ENOMEM;
  for (size_t i = 0; i < BIG; i++) buf[i] = pattern(i);
  TT_RC(0, tsk_tcp_write(t, buf, BIG, LONG_MS));
  free(buf);
  TT_RC(0, tsk_tcp_shutdown(t));
  return 0;
}

static int main_large_write(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t w;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &w, "writer", big_writer, p.a));
  unsigned char *got = malloc(BIG + 1);
  if (!TT_CHECK(got)) return TSK_ENOMEM;
  size_t total = 0;
  ssize_t n;
  /* Odd-sized reads, so that reads and writes never line up. */
  while ((n = tsk_tcp_read(p.b, got + total, total + 7777 <= BIG + 1 ? 7777 : BIG + 1 - total,
                           LONG_MS)) > 0)
    total += (size_t)n;
  TT_RC(0, n);
  TT_RC(BIG, total);
  size_t bad = 0;
  for (size_t i = 0; i < total && i < BIG; i++) bad += got[i] != pattern(i);
  TT_RC(0, bad);
  free(got);
  TT_RC(0, tsk_join(w, LONG_MS, NULL));
  pair_close(&p);
  return 0;
}

static void test_large_write(void **state) {
  (void)state;
  TT_RUN_OK(main_large_write, NULL);
}

/* ---- timeouts ---- */

static int main_read_timeout(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  char buf[16];
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_read(p.b, buf, sizeof buf, 50));
  TT_CHECK(tt_now() - t0 >= 50);
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_read(p.b, buf, sizeof buf, 0)); /* a poll */
  /* Deadline scopes apply to reads too. */
  TT_RC(0, tsk_timeout_push(30));
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_read(p.b, buf, sizeof buf, TSK_FOREVER));
  TT_RC(0, tsk_timeout_pop());
  /* The connection is still fine after timeouts, both ways. */
  TT_RC(0, tsk_tcp_write(p.a, "ab", 2, LONG_MS));
  TT_RC(0, read_full(p.b, buf, 2));
  TT_CHECK(memcmp(buf, "ab", 2) == 0);
  /* A poll returns data already there. */
  TT_RC(0, tsk_tcp_write(p.b, "cd", 2, LONG_MS));
  ssize_t n = TSK_ETIMEDOUT;
  for (int i = 0; i < 5000 && n == TSK_ETIMEDOUT; i++) {
    n = tsk_tcp_read(p.a, buf, sizeof buf, 0);
    if (n == TSK_ETIMEDOUT) tsk_sleep(1);
  }
  TT_RC(2, n);
  TT_CHECK(memcmp(buf, "cd", 2) == 0);
  pair_close(&p);
  return 0;
}

static void test_read_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_read_timeout, NULL);
}

static int main_accept_timeout(void *arg) {
  (void)arg;
  struct sockaddr_in addr = loopback(0);
  tsk_tcp_t *server, *a, *b;
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &server))) return TSK_EFAILED;
  uint64_t t0 = tt_now();
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_accept(server, 50, &b));
  TT_CHECK(tt_now() - t0 >= 50);
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_accept(server, 0, &b));
  /* After timeouts, accepting still works. */
  addr = loopback(port_of(server));
  TT_RC(0, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &a));
  TT_RC(0, tsk_tcp_accept(server, LONG_MS, &b));
  tsk_tcp_close(a);
  tsk_tcp_close(b);
  tsk_tcp_close(server);
  return 0;
}

static void test_accept_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_accept_timeout, NULL);
}

/* ---- cancellation of blocked operations ---- */

static int reader_task(void *arg) {
  char buf[16];
  ssize_t n = tsk_tcp_read(arg, buf, sizeof buf, LONG_MS);
  TT_RC(TSK_ECANCELED, n);
  return (int)n;
}

static int main_cancel_read(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t r;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &r, "reader", reader_task, p.b));
  TT_CHECK(wait_blocked(r));
  cancel_and_join(r);
  /* The connection survives the cancelled read. */
  char buf[4];
  TT_RC(0, tsk_tcp_write(p.a, "xyz", 3, LONG_MS));
  TT_RC(0, read_full(p.b, buf, 3));
  TT_CHECK(memcmp(buf, "xyz", 3) == 0);
  pair_close(&p);
  return 0;
}

static void test_cancel_read(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_read, NULL);
}

static int accepter_task(void *arg) {
  tsk_tcp_t *c;
  int rc = tsk_tcp_accept(arg, LONG_MS, &c);
  TT_RC(TSK_ECANCELED, rc);
  return rc;
}

static int main_cancel_accept(void *arg) {
  (void)arg;
  struct sockaddr_in addr = loopback(0);
  tsk_tcp_t *server, *a, *b;
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &server))) return TSK_EFAILED;
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "accepter", accepter_task, server));
  TT_CHECK(wait_blocked(t));
  cancel_and_join(t);
  /* The listener still works. */
  addr = loopback(port_of(server));
  TT_RC(0, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &a));
  TT_RC(0, tsk_tcp_accept(server, LONG_MS, &b));
  tsk_tcp_close(a);
  tsk_tcp_close(b);
  tsk_tcp_close(server);
  return 0;
}

static void test_cancel_accept(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_accept, NULL);
}

/* A connect that stays in progress: a plain socket listening with a backlog of 0 and never
 * accepting. Once its accept queue is full the kernel drops further SYNs, so a connect hangs
 * (retrying) until it is withdrawn. */
static int connecter_task(void *arg) {
  tsk_tcp_t *c = NULL;
  int rc = tsk_tcp_connect(arg, LONG_MS, &c);
  TT_RC(TSK_ECANCELED, rc);
  TT_CHECK(c == NULL);
  return rc;
}

static int main_cancel_connect(void *arg) {
  int *skipped = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (!TT_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
                listen(fd, 0) == 0 && getsockname(fd, (struct sockaddr *)&addr, &len) == 0))
    return TSK_EFAILED;
  /* Fill the accept queue: connect until one times out (this also tests connect timeouts). */
  tsk_tcp_t *conns[8];
  int nconns = 0, timed_out = 0;
  while (nconns < 8 && !timed_out) {
    int rc = tsk_tcp_connect((struct sockaddr *)&addr, 300, &conns[nconns]);
    if (rc == TSK_ETIMEDOUT)
      timed_out = 1;
    else if (TT_RC(0, rc))
      nconns++;
    else
      break;
  }
  if (timed_out) {
    tsk_task_t t;
    TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "connecter", connecter_task, &addr));
    TT_CHECK(wait_blocked(t));
    tsk_sleep(20); /* the SYN is out: the connect is really in progress */
    cancel_and_join(t);
  } else {
    *skipped = 1; /* this kernel never let a loopback connect hang */
  }
  for (int i = 0; i < nconns; i++) tsk_tcp_close(conns[i]);
  close(fd);
  return 0;
}

static void test_cancel_connect(void **state) {
  (void)state;
  int skipped = 0;
  TT_RUN_OK(main_cancel_connect, &skipped);
  if (skipped) skip();
}

/* ---- getaddrinfo ---- */

static int has_127_0_0_1(struct addrinfo *ai) {
  for (; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET &&
        ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
      return 1;
  return 0;
}

static int main_getaddrinfo(void *arg) {
  (void)arg;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  const char *names[] = {"localhost", "127.0.0.1"};
  for (int i = 0; i < 2; i++) {
    res = NULL;
    if (TT_RC(0, tsk_getaddrinfo(names[i], "80", &hints, LONG_MS, &res))) {
      TT_CHECK(has_127_0_0_1(res));
      TT_RC(80, ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port));
      uv_freeaddrinfo(res);
    }
  }
  /* Errors pass through as libuv's UV_EAI_* codes (no DNS involved: numeric only). */
  hints.ai_flags = AI_NUMERICHOST;
  res = NULL;
  TT_RC(UV_EAI_NONAME, tsk_getaddrinfo("not-an-address", NULL, &hints, LONG_MS, &res));
  TT_CHECK(res == NULL);
  /* Resolve then connect, the usual way. */
  tsk_tcp_t *server, *a, *b;
  struct sockaddr_in addr = loopback(0);
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &server))) return TSK_EFAILED;
  char port[16];
  snprintf(port, sizeof port, "%d", port_of(server));
  hints.ai_flags = 0;
  if (TT_RC(0, tsk_getaddrinfo("127.0.0.1", port, &hints, LONG_MS, &res))) {
    TT_RC(0, tsk_tcp_connect(res->ai_addr, LONG_MS, &a));
    uv_freeaddrinfo(res);
    TT_RC(0, tsk_tcp_accept(server, LONG_MS, &b));
    tsk_tcp_close(a);
    tsk_tcp_close(b);
  }
  tsk_tcp_close(server);
  return 0;
}

static void test_getaddrinfo(void **state) {
  (void)state;
  TT_RUN_OK(main_getaddrinfo, NULL);
}

static int resolver_task(void *arg) {
  (void)arg;
  struct addrinfo *res = NULL;
  int rc = tsk_getaddrinfo("localhost", NULL, NULL, LONG_MS, &res);
  TT_RC(TSK_ECANCELED, rc);
  TT_CHECK(res == NULL);
  return rc;
}

static int main_cancel_getaddrinfo(void *arg) {
  (void)arg;
  if (pool_block()) return TSK_EFAILED;
  /* The lookup stays queued behind the blockers: cancelled for sure while in progress. */
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "resolver", resolver_task, NULL));
  TT_CHECK(wait_blocked(t));
  cancel_and_join(t);
  /* A timed-out lookup is withdrawn too; its request is freed by its callback (ASan checks). */
  struct addrinfo *res = NULL;
  TT_RC(TSK_ETIMEDOUT, tsk_getaddrinfo("localhost", NULL, NULL, 20, &res));
  pool_unblock();
  return 0;
}

static void test_cancel_getaddrinfo(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_getaddrinfo, NULL);
}

/* ---- connect errors ---- */

static int main_connect_refused(void *arg) {
  (void)arg;
  /* A port nobody listens on: bind one, learn it, close it. */
  struct sockaddr_in addr = loopback(0);
  tsk_tcp_t *server, *c = NULL;
  if (!TT_RC(0, tsk_tcp_listen((struct sockaddr *)&addr, 16, &server))) return TSK_EFAILED;
  addr = loopback(port_of(server));
  tsk_tcp_close(server);
  TT_RC(UV_ECONNREFUSED, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &c));
  TT_CHECK(c == NULL);
  return 0;
}

static void test_connect_refused(void **state) {
  (void)state;
  TT_RUN_OK(main_connect_refused, NULL);
}

/* ---- closing a connection others wait on; write timeouts close the connection ---- */

static int reader_closed_task(void *arg) {
  char buf[16];
  TT_RC(TSK_ECLOSED, tsk_tcp_read(arg, buf, sizeof buf, LONG_MS));
  return 0;
}

static int accepter_closed_task(void *arg) {
  tsk_tcp_t *c;
  TT_RC(TSK_ECLOSED, tsk_tcp_accept(arg, LONG_MS, &c));
  return 0;
}

static int main_close_wakes_waiters(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t r, a;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &r, "reader", reader_closed_task, p.b));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &a, "accepter", accepter_closed_task, p.server));
  TT_CHECK(wait_blocked(r));
  TT_CHECK(wait_blocked(a));
  tsk_tcp_close(p.b);
  tsk_tcp_close(p.server);
  p.b = p.server = NULL;
  TT_RC(0, tsk_join(r, LONG_MS, NULL));
  TT_RC(0, tsk_join(a, LONG_MS, NULL));
  /* The peer sees end of stream. */
  char c;
  TT_RC(0, tsk_tcp_read(p.a, &c, 1, LONG_MS));
  pair_close(&p);
  return 0;
}

static void test_close_wakes_waiters(void **state) {
  (void)state;
  TT_RUN_OK(main_close_wakes_waiters, NULL);
}

/* Far more than loopback socket buffers hold, with nobody reading. */
#define HUGE (64u << 20)

static int main_write_timeout(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  char *buf = calloc(1, HUGE);
  if (!TT_CHECK(buf)) return TSK_ENOMEM;
  TT_RC(TSK_ETIMEDOUT, tsk_tcp_write(p.a, buf, HUGE, 50));
  free(buf); /* libuv must not read it any more: the connection was closed */
  char c;
  TT_RC(TSK_ECLOSED, tsk_tcp_write(p.a, "x", 1, LONG_MS));
  TT_RC(TSK_ECLOSED, tsk_tcp_read(p.a, &c, 1, LONG_MS));
  /* The peer gets some data, then end of stream (or a reset): never a hang. */
  char sink[65536];
  ssize_t n;
  while ((n = tsk_tcp_read(p.b, sink, sizeof sink, LONG_MS)) > 0) {
  }
  TT_CHECK(n == 0 || n == UV_ECONNRESET);
  pair_close(&p);
  return 0;
}

static void test_write_timeout(void **state) {
  (void)state;
  TT_RUN_OK(main_write_timeout, NULL);
}

static int writer_task(void *arg) {
  char *buf = calloc(1, HUGE);
  if (!TT_CHECK(buf)) return TSK_ENOMEM;
  int rc = tsk_tcp_write(arg, buf, HUGE, LONG_MS);
  TT_RC(TSK_ECANCELED, rc);
  free(buf);
  return rc;
}

static int main_cancel_write(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t w;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &w, "writer", writer_task, p.a));
  TT_CHECK(wait_blocked(w));
  cancel_and_join(w);
  TT_RC(TSK_ECLOSED, tsk_tcp_write(p.a, "x", 1, LONG_MS));
  pair_close(&p);
  return 0;
}

static void test_cancel_write(void **state) {
  (void)state;
  TT_RUN_OK(main_cancel_write, NULL);
}

/* ---- a cancellation already pending when an operation starts ----
 * It is delivered before anything goes out: no byte of the write, no connection attempt, no
 * lookup queued. Each delivery consumes the request; the next operation works normally. */
static int pending_cancel_task(void *arg) {
  pair *p = arg;
  TT_RC(0, tsk_cancel(tsk_self()));
  TT_RC(TSK_ECANCELED, tsk_tcp_write(p->a, "x", 1, LONG_MS));
  TT_RC(0, tsk_tcp_write(p->a, "y", 1, LONG_MS));
  char c = 0;
  TT_RC(0, read_full(p->b, &c, 1));
  TT_CHECK(c == 'y'); /* the cancelled write sent nothing */

  struct sockaddr_in addr = loopback(port_of(p->server));
  tsk_tcp_t *conn = NULL;
  TT_RC(0, tsk_cancel(tsk_self()));
  TT_RC(TSK_ECANCELED, tsk_tcp_connect((struct sockaddr *)&addr, LONG_MS, &conn));
  TT_CHECK(conn == NULL);

  struct addrinfo *ai = NULL;
  TT_RC(0, tsk_cancel(tsk_self()));
  TT_RC(TSK_ECANCELED, tsk_getaddrinfo("localhost", NULL, NULL, LONG_MS, &ai));
  TT_CHECK(ai == NULL);
  return 0;
}

static int main_pending_cancel(void *arg) {
  (void)arg;
  pair p;
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "pending-cancel", pending_cancel_task, &p));
  TT_RC(0, tsk_join(t, LONG_MS, NULL));
  pair_close(&p);
  return 0;
}

static void test_pending_cancel(void **state) {
  (void)state;
  TT_RUN_OK(main_pending_cancel, NULL);
}

/* ---- the generic waiter ---- */

static void on_stat(uv_fs_t *req) { tsk_uv_waiter_done(req->data, (int)req->result); }

static int stat_path(const char *path, int64_t timeout_ms, uv_stat_t *st, int *status) {
  uv_fs_t req;
  tsk_uv_waiter_t w;
  int rc = tsk_uv_waiter_init(&w, (uv_req_t *)&req);
  if (rc) return rc;
  rc = uv_fs_stat(tsk_runtime_loop(tsk_runtime_current()), &req, path, on_stat);
  if (rc == 0) rc = tsk_uv_waiter_wait(&w, timeout_ms);
  if (rc == 0 && st) *st = req.statbuf;
  if (status) *status = w.status;
  uv_fs_req_cleanup(&req);
  return rc;
}

static int main_uv_waiter(void *arg) {
  const char *self = arg;
  uv_stat_t st;
  TT_RC(0, stat_path(self, LONG_MS, &st, NULL));
  TT_CHECK(st.st_size > 0);
  TT_RC(UV_ENOENT, stat_path("/nonexistent/taskscope/test", LONG_MS, NULL, NULL));
  /* A request stuck behind a full pool: the timeout withdraws it (uv_cancel works), the
   * callback still comes, with UV_ECANCELED. */
  if (pool_block()) return TSK_EFAILED;
  int status = 0;
  TT_RC(TSK_ETIMEDOUT, stat_path(self, 20, NULL, &status));
  TT_RC(UV_ECANCELED, status);
  pool_unblock();
  return 0;
}

static void test_uv_waiter(void **state) {
  (void)state;
  char path[64];
  strcpy(path, "/tmp/taskscope-io-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "data", 4), 4);
  close(fd);
  TT_RUN_OK(main_uv_waiter, path);
  unlink(path);
}

/* A request that cannot be withdrawn (running in the pool): a cancelled waiter keeps waiting,
 * uncancellably, for its callback, since the request lives in its frame. */
static atomic_int work_gate, work_started;

static void gated_work(uv_work_t *req) {
  (void)req;
  atomic_store(&work_started, 1);
  while (!atomic_load(&work_gate)) usleep(1000);
}

static void after_gated_work(uv_work_t *req, int status) { tsk_uv_waiter_done(req->data, status); }

static int uncancellable_task(void *arg) {
  int *returned = arg;
  uv_work_t req;
  tsk_uv_waiter_t w;
  TT_RC(0, tsk_uv_waiter_init(&w, (uv_req_t *)&req));
  TT_RC(0, uv_queue_work(tsk_runtime_loop(tsk_runtime_current()), &req, gated_work,
                         after_gated_work));
  int rc = tsk_uv_waiter_wait(&w, LONG_MS);
  TT_RC(TSK_ECANCELED, rc);
  TT_CHECK(atomic_load(&work_gate));
  TT_RC(0, w.status); /* the work ran to completion */
  *returned = 1;
  return rc;
}

static int main_uv_waiter_uncancellable(void *arg) {
  (void)arg;
  atomic_store(&work_gate, 0);
  atomic_store(&work_started, 0);
  int returned = 0;
  tsk_task_t t;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &t, "waiter", uncancellable_task, &returned));
  for (int i = 0; i < 10000 && !atomic_load(&work_started); i++) tsk_sleep(1);
  TT_CHECK(atomic_load(&work_started));
  TT_RC(0, tsk_cancel(t));
  tsk_sleep(30);
  tsk_task_state_t st;
  TT_RC(0, tsk_task_state(t, &st));
  TT_RC(TSK_TASK_WAITING, st); /* still waiting for the callback */
  TT_CHECK(!returned);
  atomic_store(&work_gate, 1);
  tsk_result_t res;
  TT_RC(TSK_ECANCELED, tsk_join(t, LONG_MS, &res));
  TT_RC(TSK_TASK_CANCELLED, res.state);
  TT_CHECK(returned);
  return 0;
}

static void test_uv_waiter_uncancellable(void **state) {
  (void)state;
  TT_RUN_OK(main_uv_waiter_uncancellable, NULL);
}

/* ---- runtime close with tasks blocked in I/O and in offload ---- */

static atomic_int close_done_calls, close_done_abandoned, slow_started;

static intptr_t slow_work(void *arg) {
  (void)arg;
  atomic_store(&slow_started, 1);
  usleep(100 * 1000);
  return 42;
}

static void slow_done(void *arg, intptr_t result, int abandoned) {
  (void)arg;
  TT_RC(42, result);
  atomic_fetch_add(&close_done_calls, 1);
  if (abandoned) atomic_fetch_add(&close_done_abandoned, 1);
}

static int offload_forever_task(void *arg) {
  (void)arg;
  tsk_offload(slow_work, NULL, slow_done, LONG_MS, NULL);
  TT_CHECK(0); /* destroyed before the work finishes */
  return 0;
}

static int read_forever_task(void *arg) {
  char buf[16];
  tsk_tcp_read(arg, buf, sizeof buf, LONG_MS);
  TT_CHECK(0); /* destroyed while reading */
  return 0;
}

static int write_forever_task(void *arg) {
  static char buf[HUGE]; /* static: a stack this large would not fit */
  tsk_tcp_write(arg, buf, sizeof buf, LONG_MS);
  TT_CHECK(0); /* destroyed while writing */
  return 0;
}

static int main_close_blocked(void *arg) {
  (void)arg;
  static pair p; /* outlives this task: the runtime closes it */
  /* The reader and the writer share p.b (one direction each); nobody reads p.a. */
  if (pair_open(&p)) return TSK_EFAILED;
  tsk_task_t r, o, w, a;
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &r, "reader", read_forever_task, p.b));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &o, "offloader", offload_forever_task, NULL));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &w, "writer", write_forever_task, p.b));
  TT_RC(0, tsk_spawn(tsk_runtime_current(), &a, "accepter", accepter_task, p.server));
  TT_CHECK(wait_blocked(r));
  TT_CHECK(wait_blocked(o));
  /* Running, not just queued (queued work would be withdrawn at close, not abandoned). */
  for (int i = 0; i < 10000 && !atomic_load(&slow_started); i++) tsk_sleep(1);
  TT_CHECK(atomic_load(&slow_started));
  TT_CHECK(wait_blocked(w));
  TT_CHECK(wait_blocked(a));
  TT_RC(0, tsk_detach(r));
  TT_RC(0, tsk_detach(o));
  TT_RC(0, tsk_detach(w));
  TT_RC(0, tsk_detach(a));
  return 0; /* leaves all four blocked; runtime close destroys them */
}

static void test_runtime_close_blocked(void **state) {
  (void)state;
  atomic_store(&close_done_calls, 0);
  atomic_store(&close_done_abandoned, 0);
  atomic_store(&slow_started, 0);
  TT_RUN_OK(main_close_blocked, NULL);
  /* Close ran the loop until the abandoned work finished and reported it. */
  assert_int_equal(atomic_load(&close_done_calls), 1);
  assert_int_equal(atomic_load(&close_done_abandoned), 1);
}

/* ---- misuse ---- */

typedef struct misuse_ctx {
  pair p;
  tsk_runtime_t *rt;
} misuse_ctx;

static int main_make_pair(void *arg) {
  misuse_ctx *m = arg;
  return pair_open(&m->p) ? TSK_EFAILED : 0;
}

static void *foreign_thread(void *arg) {
  misuse_ctx *m = arg;
  char buf[4];
  struct sockaddr_storage ss;
  tsk_tcp_t *c;
  tsk_task_t t;
  TT_RC(TSK_EWRONGTHREAD, tsk_tcp_sockname(m->p.server, &ss));
  TT_RC(TSK_EWRONGTHREAD, tsk_tcp_read(m->p.a, buf, sizeof buf, 0));
  TT_RC(TSK_EWRONGTHREAD, tsk_tcp_write(m->p.a, "x", 1, 0));
  TT_RC(TSK_EWRONGTHREAD, tsk_tcp_accept(m->p.server, 0, &c));
  TT_RC(TSK_EWRONGTHREAD, tsk_tcp_shutdown(m->p.a));
  TT_RC(TSK_EWRONGTHREAD, tsk_spawn(m->rt, &t, "x", main_make_pair, NULL));
  tsk_tcp_close(m->p.a); /* ignored: not the owner thread */
  size_t running = 99, total = 99;
  tsk_offload_abandoned(m->rt, &running, &total);
  TT_RC(0, running);
  TT_RC(0, total);
  return NULL;
}

static void test_misuse(void **state) {
  (void)state;
  /* Outside any task: functions that need a task say so. */
  struct sockaddr_in addr = loopback(1);
  tsk_tcp_t *t = NULL;
  struct addrinfo *res = NULL;
  TT_ASSERT_RC(TSK_ENOTASK, tsk_tcp_listen((struct sockaddr *)&addr, 1, &t));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_tcp_connect((struct sockaddr *)&addr, 0, &t));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_getaddrinfo("localhost", NULL, NULL, 0, &res));
  uv_fs_t req;
  tsk_uv_waiter_t w;
  TT_ASSERT_RC(0, tsk_uv_waiter_init(&w, (uv_req_t *)&req));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_uv_waiter_wait(&w, 0));
  /* Bad arguments. */
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_listen(NULL, 1, &t));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_connect(NULL, 0, &t));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_read(NULL, &addr, 1, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_write(NULL, "x", 1, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_accept(NULL, 0, &t));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_sockname(NULL, NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_shutdown(NULL));
  TT_ASSERT_RC(TSK_EINVAL, tsk_getaddrinfo(NULL, NULL, NULL, 0, &res));
  TT_ASSERT_RC(TSK_EINVAL, tsk_uv_waiter_init(NULL, NULL));
  tsk_tcp_close(NULL);

  misuse_ctx m;
  memset(&m, 0, sizeof m);
  assert_int_equal(tsk_runtime_new(&m.rt), 0);
  TT_ASSERT_RC(0, tsk_run_main(m.rt, "main", main_make_pair, &m, NULL));
  /* Connections outside a task: waiting is refused, the rest works. */
  char buf[4];
  tsk_tcp_t *c;
  struct sockaddr_storage ss;
  TT_ASSERT_RC(TSK_ENOTASK, tsk_tcp_read(m.p.a, buf, sizeof buf, 0));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_tcp_write(m.p.a, "x", 1, 0));
  TT_ASSERT_RC(TSK_ENOTASK, tsk_tcp_accept(m.p.server, 0, &c));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_read(m.p.a, NULL, 1, 0));
  TT_ASSERT_RC(TSK_EINVAL, tsk_tcp_read(m.p.a, buf, 0, 0));
  TT_ASSERT_RC(0, tsk_tcp_sockname(m.p.server, &ss));
  /* From another thread: refused, nothing touched. */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, foreign_thread, &m), 0);
  pthread_join(th, NULL);
  TT_ASSERT_RC(0, tsk_tcp_sockname(m.p.a, &ss)); /* the foreign close was ignored */
  /* Shutdown and close outside a task complete in the background; runtime close frees the
   * rest (m.p.b and the listener). */
  TT_ASSERT_RC(0, tsk_tcp_shutdown(m.p.a));
  tsk_tcp_close(m.p.a);
  assert_int_equal(tsk_runtime_close(m.rt), 0);
}

int main(void) {
  /* The pool-filling tests rely on libuv's pool having exactly this many threads; it reads
   * the variable once, when the pool first starts. */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  const struct CMUnitTest tests[] = {
      TT_TEST(test_echo),
      TT_TEST(test_large_write),
      TT_TEST(test_read_timeout),
      TT_TEST(test_accept_timeout),
      TT_TEST(test_cancel_read),
      TT_TEST(test_cancel_accept),
      TT_TEST(test_cancel_connect),
      TT_TEST(test_getaddrinfo),
      TT_TEST(test_cancel_getaddrinfo),
      TT_TEST(test_connect_refused),
      TT_TEST(test_close_wakes_waiters),
      TT_TEST(test_write_timeout),
      TT_TEST(test_cancel_write),
      TT_TEST(test_pending_cancel),
      TT_TEST(test_uv_waiter),
      TT_TEST(test_uv_waiter_uncancellable),
      TT_TEST(test_runtime_close_blocked),
      TT_TEST(test_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
