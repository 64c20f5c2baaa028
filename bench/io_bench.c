/*
 * io_bench.c — io_overhead_pct (see io_bench.h).
 */
#define _GNU_SOURCE
#include "io_bench.h"

#include "taskscope.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define IO_CLIENTS 32
#define IO_MSG 64

typedef struct io_ctx {
  int rounds;          /* round trips per client */
  tsk_tcp_t *server;
  struct sockaddr_in addr;
  int failures;        /* operations that failed (any makes the run fail) */
  char first_error[160];
} io_ctx;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void failed(io_ctx *c, const char *what, int rc) {
  if (c->failures++ == 0)
    snprintf(c->first_error, sizeof c->first_error, "%s: %s", what, tsk_strerror(rc));
}

/* Reads exactly len bytes; 0 or an error (TSK_EFAILED at end of stream). */
static int read_full(tsk_tcp_t *t, char *buf, size_t len) {
  for (size_t got = 0; got < len;) {
    ssize_t n = tsk_tcp_read(t, buf + got, len - got, TSK_FOREVER);
    if (n <= 0) return n == 0 ? TSK_EFAILED : (int)n;
    got += (size_t)n;
  }
  return 0;
}

/* One accepted connection: echoes until the client closes. */
static int echo_task(void *arg) {
  tsk_tcp_t *conn = arg;
  char buf[IO_MSG];
  for (;;) {
    ssize_t n = tsk_tcp_read(conn, buf, sizeof buf, TSK_FOREVER);
    if (n <= 0) break;
    if (tsk_tcp_write(conn, buf, (size_t)n, TSK_FOREVER) != 0) break;
  }
  tsk_tcp_close(conn);
  return 0;
}

/* Accepts IO_CLIENTS connections, one echo task each, and joins them all. */
static int acceptor_task(void *arg) {
  io_ctx *c = arg;
  tsk_task_t echo[IO_CLIENTS];
  int n = 0;
  for (; n < IO_CLIENTS; n++) {
    tsk_tcp_t *conn;
    int rc = tsk_tcp_accept(c->server, TSK_FOREVER, &conn);
    if (rc == 0) rc = tsk_spawn(tsk_runtime_current(), &echo[n], "echo", echo_task, conn);
    if (rc != 0) {
      failed(c, "accept/spawn", rc);
      break;
    }
  }
  for (int i = 0; i < n; i++) tsk_join(echo[i], TSK_FOREVER, NULL);
  return 0;
}

static int client_task(void *arg) {
  io_ctx *c = arg;
  tsk_tcp_t *conn;
  int rc = tsk_tcp_connect((struct sockaddr *)&c->addr, TSK_FOREVER, &conn);
  if (rc != 0) {
    failed(c, "connect", rc);
    return rc;
  }
  char out[IO_MSG], in[IO_MSG];
  memset(out, 'x', sizeof out);
  for (int r = 0; r < c->rounds && rc == 0; r++) {
    rc = tsk_tcp_write(conn, out, sizeof out, TSK_FOREVER);
    if (rc == 0) rc = read_full(conn, in, sizeof in);
  }
  if (rc != 0) failed(c, "round trip", rc);
  tsk_tcp_close(conn);
  return rc;
}

static int io_main(void *arg) {
  io_ctx *c = arg;
  tsk_runtime_t *rt = tsk_runtime_current();
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int rc = tsk_tcp_listen((struct sockaddr *)&any, 128, &c->server);
  if (rc != 0) {
    failed(c, "listen", rc);
    return rc;
  }
  struct sockaddr_storage ss;
  tsk_tcp_sockname(c->server, &ss);
  memcpy(&c->addr, &ss, sizeof c->addr);
  tsk_task_t acceptor, clients[IO_CLIENTS];
  rc = tsk_spawn(rt, &acceptor, "acceptor", acceptor_task, c);
  int n = 0;
  for (; rc == 0 && n < IO_CLIENTS; n++) rc = tsk_spawn(rt, &clients[n], "client", client_task, c);
  if (rc != 0) failed(c, "spawn", rc);
  for (int i = 0; i < n; i++) tsk_join(clients[i], TSK_FOREVER, NULL);
  tsk_join(acceptor, TSK_FOREVER, NULL);
  tsk_tcp_close(c->server);
  return 0;
}

int io_bench_child(int quick) {
  io_ctx c;
  memset(&c, 0, sizeof c);
  c.rounds = quick ? 300 : 1500;
  tsk_runtime_t *rt;
  if (tsk_runtime_new(&rt) != 0) return 1;
  uint64_t t0 = now_ns();
  int rc = tsk_run_main(rt, "io-bench", io_main, &c, NULL);
  uint64_t t1 = now_ns();
  tsk_runtime_close(rt);
  if (rc != 0 || c.failures) {
    fprintf(stderr, "io bench: %s\n", c.failures ? c.first_error : tsk_strerror(rc));
    return 1;
  }
  printf("io_echo_ms: %.1f ms (%d clients x %d round trips of %d bytes)\n",
         (double)(t1 - t0) / 1e6, IO_CLIENTS, c.rounds, IO_MSG);
  return 0;
}

/* The environment with TASKSCOPE_OPTIONS replaced by options (malloc'd array and strings). */
static char **env_with(const char *options) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "TASKSCOPE_OPTIONS=", 18) != 0) env[k++] = strdup(environ[i]);
  if (asprintf(&env[k], "TASKSCOPE_OPTIONS=%s", options) < 0) env[k] = NULL;
  return env;
}

static void env_free(char **env) {
  for (size_t i = 0; env && env[i]; i++) free(env[i]);
  free(env);
}

/* One child run under options; its io_echo_ms in *ms. 0 or -1 (printed). */
static int run_child(const char *options, int quick, double *ms) {
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return -1;
  exe[len] = '\0';
  char *argv[] = {exe, "--io-child", quick ? "--quick" : NULL, NULL};
  char **env = env_with(options);
  char *out = NULL, why[160];
  int status = 0;
  int rc = env ? bench_run_capture(argv, env, NULL, 300, &out, &status, why, sizeof why) : -1;
  env_free(env);
  const char *line = out ? strstr(out, "io_echo_ms: ") : NULL;
  if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !line ||
      sscanf(line, "io_echo_ms: %lf", ms) != 1) {
    printf("io_overhead_pct: error (the child with TASKSCOPE_OPTIONS=%s failed: %s)\n", options,
           rc != 0 ? why : "no figure (its stderr is above)");
    free(out);
    return -1;
  }
  free(out);
  return 0;
}

int io_bench_overhead(int quick) {
  static const char *const options[2] = {"backtrace=off:socket=off", /* plain */
                                         "backtrace=spawn:socket=auto"}; /* instrumented */
  double best[2] = {-1, -1};
  for (int round = 0; round < (quick ? 2 : 4); round++) {
    for (int on = 0; on < 2; on++) {
      double ms;
      if (run_child(options[on], quick, &ms) != 0) return 1;
      if (best[on] < 0 || ms < best[on]) best[on] = ms;
    }
  }
  double pct = (best[1] / best[0] - 1.0) * 100.0;
  printf("io_echo_plain_ms: %.1f ms (%s)\n", best[0], options[0]);
  printf("io_echo_instrumented_ms: %.1f ms (%s)\n", best[1], options[1]);
  printf("io_overhead_pct: %.1f %% (instrumented / plain - 1, best of %d each; target <= 3: %s)\n",
         pct, quick ? 2 : 4, pct <= 3.0 ? "met" : "not met");
  fflush(stdout);
  return 0;
}
