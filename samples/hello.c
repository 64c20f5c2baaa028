/*
 * hello — the runtime at work, in one small real program.
 *
 * A TCP echo server on loopback serves clients that run in a bounded task group (at most 8 at
 * once, 32 queued); each client connects, sends lines, reads the echo back and checks it. Meanwhile
 * a resolver task looks up "localhost", an offload task runs a blocking computation on libuv's
 * thread pool, and a watchdog shows a timed-out wait cancelling what it waited for. It prints what
 * happened and the runtime's counters, and exits 0 only if every check passed.
 *
 *   hello [--clients N] [--help]
 */
#include "taskscope.h"
#include "common/sample.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct app {
  tsk_runtime_t *rt;
  tsk_tcp_t *server;
  struct sockaddr_in addr;
  int clients;
  int echoed;
  int failures;
} app;

/* Echoes one connection until the peer half-closes. */
static int serve_connection(void *arg) {
  tsk_tcp_t *conn = arg;
  char buf[4096];
  for (;;) {
    ssize_t n = tsk_tcp_read(conn, buf, sizeof buf, 5000);
    if (n <= 0) break;
    if (tsk_tcp_write(conn, buf, (size_t)n, 5000) != 0) break;
  }
  tsk_tcp_close(conn);
  return 0;
}

static int accept_loop(void *arg) {
  app *a = arg;
  tsk_group_t *conns;
  tsk_group_opts_t opts = {.name = "connections"};
  int rc = tsk_group_new(a->rt, &opts, &conns);
  if (rc) return rc;
  for (;;) {
    tsk_tcp_t *conn;
    rc = tsk_tcp_accept(a->server, TSK_FOREVER, &conn);
    if (rc) break; /* cancelled at shutdown */
    tsk_group_spawn(conns, "serve_connection", serve_connection, conn);
  }
  tsk_group_close(conns, 1000);
  return rc == TSK_ECANCELED ? TSK_ECANCELED : 0;
}

/* One client: three lines out, three echoes back. */
static int client(void *arg) {
  app *a = arg;
  tsk_tcp_t *c;
  int rc = tsk_tcp_connect((const struct sockaddr *)&a->addr, 5000, &c);
  if (rc) return tsk_error(rc, "connect: %s", tsk_strerror(rc));
  for (int i = 0; i < 3; i++) {
    char line[64], back[64];
    int len = snprintf(line, sizeof line, "hello %llu #%d\n", (unsigned long long)tsk_self_id(), i);
    if ((rc = tsk_tcp_write(c, line, (size_t)len, 5000)) != 0) break;
    size_t got = 0;
    while (got < (size_t)len) {
      ssize_t n = tsk_tcp_read(c, back + got, (size_t)len - got, 5000);
      if (n <= 0) {
        rc = n ? (int)n : TSK_ECLOSED;
        break;
      }
      got += (size_t)n;
    }
    if (rc) break;
    if (memcmp(line, back, (size_t)len) != 0) {
      rc = tsk_error(TSK_EFAILED, "echo mismatch");
      break;
    }
    a->echoed++;
  }
  tsk_tcp_shutdown(c);
  tsk_tcp_close(c);
  return rc;
}

static intptr_t slow_sum(void *arg) {
  long n = (long)(intptr_t)arg, s = 0;
  for (long i = 0; i < n; i++) s += i % 7;
  return (intptr_t)s;
}

static int resolver(void *arg) {
  (void)arg;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
  int rc = tsk_getaddrinfo("localhost", "80", &hints, 5000, &res);
  if (rc) return tsk_error(rc, "getaddrinfo(localhost): %s", tsk_strerror(rc));
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
  printf("  resolver: localhost is %s\n", ip);
  uv_freeaddrinfo(res);
  return 0;
}

static int sleeper(void *arg) {
  (void)arg;
  int rc = tsk_sleep(60000);
  printf("  sleeper: woke with %s (its waiter gave up)\n", tsk_err_name(rc));
  return rc;
}

static int main_task(void *arg) {
  app *a = arg;
  int rc;
  uv_ip4_addr("127.0.0.1", 0, &a->addr);
  if ((rc = tsk_tcp_listen((const struct sockaddr *)&a->addr, 128, &a->server)) != 0)
    return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  struct sockaddr_storage bound;
  tsk_tcp_sockname(a->server, &bound);
  a->addr = *(struct sockaddr_in *)&bound;
  printf("  echo server on 127.0.0.1:%d\n", ntohs(a->addr.sin_port));

  tsk_task_t acceptor, res_task, sleepy;
  tsk_spawn(a->rt, &acceptor, "accept_loop", accept_loop, a);
  tsk_spawn(a->rt, &res_task, "resolver", resolver, NULL);
  tsk_spawn(a->rt, &sleepy, "sleeper", sleeper, NULL);

  /* The async-bomb fix: a bounded group instead of one unbounded spawn per client. */
  tsk_group_t *clients;
  tsk_group_opts_t gopts = {.name = "clients", .max_concurrency = 8, .max_pending = 32,
                            .spawn_waits = 1};
  if ((rc = tsk_group_new(a->rt, &gopts, &clients)) != 0) return rc;
  double t0 = now_ms();
  for (int i = 0; i < a->clients; i++) tsk_group_spawn(clients, "client", client, a);
  tsk_result_t gres;
  rc = tsk_group_wait(clients, 30000, &gres);
  printf("  %d clients, %d echoes checked in %.1f ms (group: %s%s%s)\n", a->clients, a->echoed,
         now_ms() - t0, tsk_err_name(rc), gres.message[0] ? ": " : "", gres.message);
  if (rc) a->failures++;
  tsk_group_close(clients, 1000);

  intptr_t sum = 0;
  rc = tsk_offload(slow_sum, (void *)(intptr_t)2000000, NULL, 10000, &sum);
  printf("  offload: sum computed on the thread pool = %ld (%s)\n", (long)sum, tsk_err_name(rc));
  if (rc) a->failures++;

  /* wait_for: joining with a timeout cancels the task it waited for. */
  rc = tsk_join(sleepy, 50, NULL);
  printf("  join(sleeper, 50 ms) -> %s\n", tsk_err_name(rc));
  if (rc != TSK_ETIMEDOUT) a->failures++;

  if (tsk_join(res_task, 10000, NULL) != 0) a->failures++;
  tsk_cancel(acceptor);
  tsk_join(acceptor, TSK_FOREVER, NULL);
  tsk_tcp_close(a->server);
  return a->failures ? TSK_EFAILED : 0;
}

int main(int argc, char **argv) {
  app a = {.clients = 100};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s [--clients N]   (N echo clients, 1-100000, default 100)\n", argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--clients") != 0 || i + 1 == argc ||
               parse_int(argv[++i], 1, 100000, &a.clients) != 0) {
      fprintf(stderr, "usage: %s [--clients N]\n", argv[0]);
      return 2;
    }
  }
  int rc = tsk_runtime_new(&a.rt);
  if (rc) {
    fprintf(stderr, "hello: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("hello: the taskscope runtime at work\n");
  tsk_result_t res;
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  tsk_stats_t st;
  tsk_runtime_stats(a.rt, &st);
  printf("  runtime: %llu tasks spawned, %llu finished, %llu switches, %llu stacks carved\n",
         (unsigned long long)st.spawned, (unsigned long long)st.finished,
         (unsigned long long)st.switches, (unsigned long long)st.stacks_mapped);
  tsk_runtime_close(a.rt);
  printf("hello: %s\n", rc == 0 ? "all checks passed" : res.message[0] ? res.message : "FAILED");
  return rc == 0 ? 0 : 1;
}
