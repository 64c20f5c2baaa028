/*
 * demo — a long-running, service-like program for the inspector and the leak report.
 *
 * It runs a small service until SIGINT/SIGTERM (or --duration SECONDS) with a deep task tree and
 * a few dozen live tasks at any time:
 *
 *   main
 *   └─ supervisor
 *      ├─ http_server            accept loop on 127.0.0.1 (port 0), group "connections"
 *      │  └─ http_connection     one per keep-alive connection
 *      │     └─ render_page      one per request, joined (/report renders on the thread pool)
 *      │        └─ lease_keeper  (/lease; detached, see below)
 *      ├─ load_generator         group "load_clients"
 *      │  └─ load_client         persistent connections sending requests every 100-300 ms
 *      ├─ worker_pool            group "workers" (bounded), channel "jobs"
 *      │  ├─ job_feeder          a job every 100 ms
 *      │  └─ pool_worker x4
 *      │     └─ send_receipt     (detached, see below)
 *      ├─ session_manager        a login every 400 ms
 *      │  └─ session
 *      │     └─ authenticate
 *      ├─ cache_refresher        refreshes through tsk_offload every 500 ms
 *      └─ metrics_reporter       prints the runtime's counters every second (not with --quiet)
 *
 * Deliberate leaks, continuously and at a slow rate (the first of each within ~0.3 s):
 *   - stranded (destroyed_pending): every 4th login (the first included) misses the user cache,
 *     and authenticate drops its promise without completing it (auth_cache_miss): the waiting
 *     "session" task is stranded. Its TSK_EBROKEN is then joined by the session manager.
 *   - unretrieved_error: every 8th job sends a receipt with a detached "send_receipt" task
 *     (send_receipt_fire_and_forget); every other receipt fails ("SMTP 451") and nobody looks.
 *   - pending until exit (destroyed_pending at close): every ~2 s a /lease request starts a
 *     detached "lease_keeper" (grant_lease_and_forget) that waits for a release event nobody
 *     ever sets.
 * On SIGINT/SIGTERM (handled by uv_signal_t on the runtime's loop) a handler sets an event the
 * main task waits on; main cancels the supervisor, which cancels and joins the whole tree in
 * order; the deliberate leaks stay; tsk_runtime_close then prints the leak report.
 *
 *   demo [--duration SECONDS] [--quiet] [--help]
 */
#include "taskscope.h"
#include "common/sample.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define IO_TIMEOUT_MS 5000
#define LOAD_CLIENTS 10
#define WORKERS 4
#define MAX_SESSIONS 64

typedef struct app {
  tsk_runtime_t *rt;
  int duration_s;             /* 0: until a signal */
  int quiet;
  tsk_event_t *stop;          /* set by the signal handler */
  int stop_signal;
  uv_signal_t sigint, sigterm;
  tsk_event_t *lease_released;/* never set: what lease keepers wait for (freed after close) */
  tsk_tcp_t *listener;
  struct sockaddr_in addr;
  tsk_channel_t *jobs;        /* freed after close */
  double t0;
  double next_lease_ms;       /* when the next /lease request is due */
  /* counters */
  long requests, jobs_done, refreshes, logins;
  long leases_leaked, stranded, receipts_failed;
  char cache_value[64];
} app;

/* A small per-task pseudo-random sequence (xorshift). */
static unsigned next_rand(unsigned *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* ============================================================================================
 * Buffered reading over a connection
 * ========================================================================================== */
#include "common/line_reader.h"

static int read_head(reader *r, char *first, size_t cap, long *clen) {
  char line[512];
  int rc = rd_line(r, first, cap);
  *clen = 0;
  while (rc == 0 && (rc = rd_line(r, line, sizeof line)) == 0 && line[0])
    if (strncasecmp(line, "Content-Length:", 15) == 0) *clen = strtol(line + 15, NULL, 10);
  return rc;
}

/* ============================================================================================
 * http_server: connections, pages, and the leaked lease keepers
 * ========================================================================================== */

/* Waits for a lease release that no code path performs any more. */
static int lease_keeper(void *arg) {
  app *a = arg;
  return tsk_event_wait(a->lease_released, TSK_FOREVER);
}

/* THE BUG (pending until exit): the lease is "kept alive" by a detached task waiting for its
 * release; the release was removed in a refactoring, so every lease keeper waits forever. */
static NOINLINE void grant_lease_and_forget(app *a) {
  tsk_task_t t;
  if (tsk_spawn(a->rt, &t, "lease_keeper", lease_keeper, a) == 0) {
    tsk_detach(t);
    a->leases_leaked++;
  }
}

/* A CPU-bound report (FNV-1a over a generated text), run on the thread pool. */
static intptr_t render_report_blocking(void *arg) {
  (void)arg;
  unsigned h = 2166136261u;
  for (unsigned i = 0; i < 200000; i++) h = (h ^ (i & 0xff)) * 16777619u;
  return (intptr_t)(h & 0xffff);
}

typedef struct page {
  app *a;
  char path[128];
  char body[256];
  int status;
} page;

static int render_page(void *arg) {
  page *p = arg;
  app *a = p->a;
  int rc = tsk_sleep(2); /* "templates" */
  if (rc) return rc;
  p->status = 200;
  if (strcmp(p->path, "/lease") == 0) {
    grant_lease_and_forget(a);
    snprintf(p->body, sizeof p->body, "lease granted\n");
  } else if (strcmp(p->path, "/report") == 0) {
    intptr_t sum = 0;
    rc = tsk_offload(render_report_blocking, NULL, NULL, 2000, &sum);
    if (rc) return rc;
    snprintf(p->body, sizeof p->body, "report checksum %04lx\n", (long)sum);
  } else if (strcmp(p->path, "/") == 0 || strcmp(p->path, "/items") == 0) {
    snprintf(p->body, sizeof p->body, "%s: %ld requests so far; cache=%s\n", p->path,
             a->requests, a->cache_value);
  } else {
    p->status = 404;
    snprintf(p->body, sizeof p->body, "not found\n");
  }
  return 0;
}

/* A connection handed to its task, which owns (and frees) it. */
typedef struct conn {
  app *a;
  tsk_tcp_t *tcp;
} conn;

/* Serves one keep-alive connection until the client closes it or the server is cancelled.
 * Only a cancellation is reported as an outcome: a broken connection is the client's business
 * (and a failure would cancel every other connection of the group). */
static int http_connection(void *arg) {
  conn c = *(conn *)arg;
  free(arg);
  app *a = c.a;
  tsk_tcp_t *tcp = c.tcp;
  reader *r = calloc(1, sizeof *r);
  int rc = r ? 0 : TSK_ENOMEM;
  if (r) rd_init(r, tcp, TSK_FOREVER);
  while (rc == 0) {
    char first[256];
    long clen;
    if ((rc = read_head(r, first, sizeof first, &clen)) != 0) break;
    if ((rc = rd_skip(r, (size_t)(clen > 0 ? clen : 0))) != 0) break;
    a->requests++;
    page p = {.a = a, .status = 500};
    if (sscanf(first, "%*s %127s", p.path) != 1) snprintf(p.path, sizeof p.path, "/");
    tsk_task_t t;
    if ((rc = tsk_spawn(a->rt, &t, "render_page", render_page, &p)) != 0) break;
    rc = tsk_join(t, TSK_FOREVER, NULL);
    if (rc == TSK_ECANCELED && tsk_cancel_requested()) {
      /* we are being stopped: stop the page too, and wait for it (it points into our frame) */
      tsk_cancel(t);
      tsk_join(t, TSK_FOREVER, NULL);
      break;
    }
    if (rc) p.status = 500; /* the page failed: say so, keep the connection */
    rc = 0;
    char resp[512];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n\r\n%s",
                     p.status, p.status == 200 ? "OK" : "Error", strlen(p.body), p.body);
    if ((rc = tsk_tcp_write(tcp, resp, (size_t)n, IO_TIMEOUT_MS)) != 0) break;
  }
  free(r);
  tsk_tcp_close(tcp);
  return rc == TSK_ECANCELED ? TSK_ECANCELED : 0;
}

static int http_server(void *arg) {
  app *a = arg;
  tsk_group_t *conns;
  tsk_group_opts_t opts = {.name = "connections"};
  int rc = tsk_group_new(a->rt, &opts, &conns);
  if (rc) return rc;
  for (;;) {
    tsk_tcp_t *tcp;
    if ((rc = tsk_tcp_accept(a->listener, TSK_FOREVER, &tcp)) != 0) break;
    conn *c = malloc(sizeof *c);
    if (c) *c = (conn){a, tcp};
    /* the group has no concurrency limit: the task starts at once and owns c */
    if (!c || tsk_group_spawn(conns, "http_connection", http_connection, c) != 0) {
      free(c);
      tsk_tcp_close(tcp);
    }
  }
  tsk_group_cancel(conns);
  tsk_group_close(conns, TSK_FOREVER);
  return rc;
}

/* ============================================================================================
 * load_generator: clients on persistent connections
 * ========================================================================================== */
/* Sends requests over one connection until an error; returns it. */
static int client_session(app *a, tsk_tcp_t *tcp, reader *r, unsigned *seed) {
  static const char *paths[] = {"/", "/items", "/items", "/report", "/missing"};
  int rc = 0;
  rd_init(r, tcp, TSK_FOREVER);
  while (rc == 0) {
    if ((rc = tsk_sleep(100 + next_rand(seed) % 200)) != 0) break;
    const char *path = paths[next_rand(seed) % 5];
    double t = now_ms() - a->t0;
    if (t >= a->next_lease_ms) {
      a->next_lease_ms = t + 2000;
      path = "/lease";
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if ((rc = tsk_tcp_write(tcp, req, (size_t)n, IO_TIMEOUT_MS)) != 0) break;
    char first[256];
    long clen;
    if ((rc = read_head(r, first, sizeof first, &clen)) != 0) break;
    if ((rc = rd_skip(r, (size_t)clen)) != 0) break;
  }
  return rc;
}

/* One persistent client: reconnects after a pause when its connection breaks; stops only when
 * cancelled. */
static int load_client(void *arg) {
  app *a = arg;
  unsigned seed = (unsigned)tsk_self_id() * 2654435761u | 1u;
  reader *r = calloc(1, sizeof *r);
  if (!r) return TSK_ENOMEM;
  int rc = 0;
  while (rc != TSK_ECANCELED) {
    tsk_tcp_t *tcp;
    rc = tsk_tcp_connect((const struct sockaddr *)&a->addr, IO_TIMEOUT_MS, &tcp);
    if (rc == 0) {
      rc = client_session(a, tcp, r, &seed);
      tsk_tcp_close(tcp);
    }
    if (rc != TSK_ECANCELED) rc = tsk_sleep(200);
  }
  free(r);
  return rc;
}

static int load_generator(void *arg) {
  app *a = arg;
  tsk_group_t *clients;
  tsk_group_opts_t opts = {.name = "load_clients"};
  int rc = tsk_group_new(a->rt, &opts, &clients);
  if (rc) return rc;
  for (int i = 0; i < LOAD_CLIENTS && rc == 0; i++) {
    rc = tsk_group_spawn(clients, "load_client", load_client, a);
    if (rc == 0) rc = tsk_sleep(20); /* ramp up */
  }
  if (rc == 0) rc = tsk_group_wait(clients, TSK_FOREVER, NULL);
  tsk_group_cancel(clients);
  tsk_group_close(clients, TSK_FOREVER);
  return rc;
}

/* ============================================================================================
 * worker_pool: jobs through a channel, receipts fire-and-forget
 * ========================================================================================== */
static int send_receipt(void *arg) {
  long job = (long)(intptr_t)arg;
  int rc = tsk_sleep(5); /* talking to the mail server */
  if (rc) return rc;
  if ((job / 8) % 2 == 0)
    return tsk_error(TSK_EFAILED, "receipt for job %ld: SMTP 451 mailbox busy, try later", job);
  return 0;
}

/* THE BUG (unretrieved error): the receipt is sent by a detached task; when it fails, nobody
 * ever sees its error. */
static NOINLINE void send_receipt_fire_and_forget(app *a, long job) {
  tsk_task_t t;
  if (tsk_spawn(a->rt, &t, "send_receipt", send_receipt, (void *)(intptr_t)job) == 0) {
    tsk_detach(t);
    if ((job / 8) % 2 == 0) a->receipts_failed++;
  }
}

static int pool_worker(void *arg) {
  app *a = arg;
  unsigned seed = (unsigned)tsk_self_id() * 2246822519u | 1u;
  for (;;) {
    void *msg;
    int rc = tsk_channel_recv(a->jobs, &msg, TSK_FOREVER);
    if (rc) return rc == TSK_ECLOSED ? 0 : rc; /* closed and drained: done */
    long job = (long)(intptr_t)msg;
    if ((rc = tsk_sleep(20 + next_rand(&seed) % 40)) != 0) return rc; /* the work */
    a->jobs_done++;
    if (job % 8 == 1) send_receipt_fire_and_forget(a, job);
  }
}

static int job_feeder(void *arg) {
  app *a = arg;
  int rc = 0;
  for (long job = 1; rc == 0; job++) {
    rc = tsk_channel_send(a->jobs, (void *)(intptr_t)job, TSK_FOREVER);
    if (rc == 0) rc = tsk_sleep(100);
  }
  tsk_channel_close(a->jobs); /* no more jobs: the workers drain the queue and stop */
  return rc;
}

static int worker_pool(void *arg) {
  app *a = arg;
  tsk_group_t *workers;
  tsk_group_opts_t opts = {.name = "workers", .max_concurrency = WORKERS};
  int rc = tsk_group_new(a->rt, &opts, &workers);
  if (rc) return rc;
  tsk_task_t feeder;
  if ((rc = tsk_spawn(a->rt, &feeder, "job_feeder", job_feeder, a)) != 0) {
    tsk_group_close(workers, 0);
    return rc;
  }
  for (int i = 0; i < WORKERS; i++) tsk_group_spawn(workers, "pool_worker", pool_worker, a);
  rc = tsk_group_wait(workers, TSK_FOREVER, NULL); /* until cancelled (or a worker fails) */
  /* Orderly stop: no more jobs, let the workers finish what is queued. */
  tsk_cancel(feeder);
  tsk_join(feeder, TSK_FOREVER, NULL);
  tsk_group_close(workers, 2000);
  return rc;
}

/* ============================================================================================
 * session_manager: logins, and the stranded sessions
 * ========================================================================================== */
typedef struct login {
  app *a;
  long n;
  tsk_promise_t *promise; /* owned by authenticate */
} login;

/* THE BUG (stranded): on a user-cache miss the lookup is "retried later" by simply dropping the
 * completer: the session waiting for the login can never be woken with a result. */
static NOINLINE void auth_cache_miss(login *l) {
  tsk_promise_release(l->promise);
  l->promise = NULL;
}

static int authenticate(void *arg) {
  login *l = arg;
  if (l->n % 4 == 1) { /* the first login, then every 4th */
    auth_cache_miss(l);
    l->a->stranded++;
    return 0;
  }
  int rc = tsk_sleep(15); /* the user database */
  if (rc == 0) tsk_promise_resolve(l->promise, (void *)"user-token");
  tsk_promise_release(l->promise);
  l->promise = NULL;
  return rc;
}

static int session(void *arg) {
  app *a = arg;
  login l = {.a = a, .n = ++a->logins};
  tsk_future_t *f;
  int rc = tsk_future_new(a->rt, &f, &l.promise);
  if (rc) return rc;
  tsk_task_t auth;
  if ((rc = tsk_spawn(a->rt, &auth, "authenticate", authenticate, &l)) != 0) {
    tsk_promise_release(l.promise);
    tsk_future_release(f);
    return rc;
  }
  void *token = NULL;
  rc = tsk_future_wait(f, TSK_FOREVER, &token);
  if (rc) tsk_cancel(auth); /* cancelled ourselves, or stranded */
  tsk_join(auth, TSK_FOREVER, NULL); /* l lives in our frame: always wait for it */
  tsk_future_release(f);
  if (rc) return tsk_error(rc, "login %ld: %s", l.n, tsk_strerror(rc));
  return tsk_sleep(200 + (unsigned)(l.n * 97) % 600); /* the session is in use */
}

static void reap_sessions(app *a, tsk_task_t *s, int *n, int force) {
  for (int i = 0; i < *n;) {
    tsk_task_state_t st;
    if (force) tsk_cancel(s[i]);
    if (!force && tsk_task_state(s[i], &st) == 0 && st != TSK_TASK_DONE &&
        st != TSK_TASK_FAILED && st != TSK_TASK_CANCELLED) {
      i++;
      continue;
    }
    tsk_result_t res;
    int rc = tsk_join(s[i], TSK_FOREVER, &res);
    if (rc && rc != TSK_ECANCELED && !a->quiet) printf("  session_manager: %s\n", res.message);
    s[i] = s[--*n];
  }
}

static int session_manager(void *arg) {
  app *a = arg;
  tsk_task_t sessions[MAX_SESSIONS];
  int n = 0, rc = 0;
  while (rc == 0) {
    reap_sessions(a, sessions, &n, 0);
    if (n < MAX_SESSIONS && tsk_spawn(a->rt, &sessions[n], "session", session, a) == 0) n++;
    rc = tsk_sleep(400);
  }
  reap_sessions(a, sessions, &n, 1);
  return rc;
}

/* ============================================================================================
 * cache_refresher, metrics_reporter, supervisor
 * ========================================================================================== */
static intptr_t fetch_cache_blocking(void *arg) {
  (void)arg;
  struct timespec ts = {0, 30 * 1000 * 1000}; /* a slow backend */
  nanosleep(&ts, NULL);
  return (intptr_t)(time(NULL) % 100000);
}

static int cache_refresher(void *arg) {
  app *a = arg;
  int rc;
  while ((rc = tsk_sleep(500)) == 0) {
    intptr_t v = 0;
    rc = tsk_offload(fetch_cache_blocking, NULL, NULL, 2000, &v);
    if (rc == TSK_ECANCELED) break;
    if (rc) continue; /* slow backend: keep the old value, try again later */
    snprintf(a->cache_value, sizeof a->cache_value, "v%ld", (long)v);
    a->refreshes++;
  }
  return rc;
}

static void print_metrics(app *a, const char *prefix) {
  tsk_stats_t st;
  tsk_runtime_stats(a->rt, &st);
  printf("%s%llu live tasks (%llu waiting), %llu spawned; %ld requests, %ld jobs, %ld logins, "
         "%ld refreshes; left behind: %ld lease keepers, %ld stranded sessions, %ld failed "
         "receipts\n",
         prefix, (unsigned long long)st.live, (unsigned long long)st.waiting,
         (unsigned long long)st.spawned, a->requests, a->jobs_done, a->logins, a->refreshes,
         a->leases_leaked, a->stranded, a->receipts_failed);
}

static int metrics_reporter(void *arg) {
  app *a = arg;
  int rc;
  while ((rc = tsk_sleep(1000)) == 0)
    if (!a->quiet) print_metrics(a, "  metrics: ");
  return rc;
}

typedef struct child {
  const char *name;
  tsk_fn fn;
  tsk_task_t h;
} child;

/* Starts the service's components, then watches them until cancelled; on cancellation stops
 * them all (cancel, then join each) — an orderly shutdown of the whole tree. */
static int supervisor(void *arg) {
  app *a = arg;
  child kids[] = {{"http_server", http_server, {0}},   {"load_generator", load_generator, {0}},
                  {"worker_pool", worker_pool, {0}},   {"session_manager", session_manager, {0}},
                  {"cache_refresher", cache_refresher, {0}},
                  {"metrics_reporter", metrics_reporter, {0}}};
  int nkids = (int)(sizeof kids / sizeof kids[0]);
  int rc = 0;
  for (int i = 0; i < nkids && rc == 0; i++)
    rc = tsk_spawn(a->rt, &kids[i].h, kids[i].name, kids[i].fn, a);
  while (rc == 0) {
    if ((rc = tsk_sleep(250)) != 0) break;
    for (int i = 0; i < nkids; i++) {
      tsk_task_state_t st;
      if (kids[i].h.id && tsk_task_state(kids[i].h, &st) == 0 && st == TSK_TASK_FAILED) {
        tsk_result_t res;
        tsk_join(kids[i].h, 0, &res);
        kids[i].h.id = 0;
        printf("  supervisor: %s failed: %s\n", kids[i].name,
               res.message[0] ? res.message : tsk_strerror(res.error));
      }
    }
  }
  /* Stop in order: clients first, then the server, then the rest. */
  for (int i = 0; i < nkids; i++) {
    int k = i == 0 ? 1 : i == 1 ? 0 : i; /* load_generator before http_server */
    if (!kids[k].h.id) continue;
    tsk_cancel(kids[k].h);
    tsk_result_t res;
    int jrc = tsk_join(kids[k].h, TSK_FOREVER, &res);
    if (jrc && jrc != TSK_ECANCELED)
      printf("  supervisor: %s ended with %s\n", kids[k].name,
             res.message[0] ? res.message : tsk_strerror(jrc));
  }
  return rc;
}

/* ============================================================================================
 * main
 * ========================================================================================== */
static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  if (a->stop_signal) {
    fprintf(stderr, "demo: already stopping\n");
    return;
  }
  a->stop_signal = signum;
  tsk_event_set(a->stop);
}

static int main_task(void *arg) {
  app *a = arg;
  int rc;
  uv_ip4_addr("127.0.0.1", 0, &a->addr);
  if ((rc = tsk_tcp_listen((const struct sockaddr *)&a->addr, 128, &a->listener)) != 0)
    return tsk_error(rc, "listen: %s", tsk_strerror(rc));
  struct sockaddr_storage bound;
  tsk_tcp_sockname(a->listener, &bound);
  a->addr = *(struct sockaddr_in *)&bound;
  if ((rc = tsk_channel_new(a->rt, 16, &a->jobs)) != 0) return rc;
  printf("demo: http_server on 127.0.0.1:%d, %d load clients, %d pool workers, sessions, cache "
         "refresher, metrics\n",
         ntohs(a->addr.sin_port), LOAD_CLIENTS, WORKERS);
  if (a->duration_s > 0)
    printf("demo: running for %d s (or until Ctrl-C)\n", a->duration_s);
  else
    printf("demo: press Ctrl-C to stop\n");

  tsk_task_t sup;
  if ((rc = tsk_spawn(a->rt, &sup, "supervisor", supervisor, a)) != 0) return rc;
  rc = tsk_event_wait(a->stop, a->duration_s > 0 ? (int64_t)a->duration_s * 1000 : TSK_FOREVER);
  printf("demo: stopping (%s)\n", rc == 0 ? (a->stop_signal == SIGTERM ? "SIGTERM" : "SIGINT")
                                          : "duration elapsed");
  tsk_cancel(sup);
  tsk_join(sup, TSK_FOREVER, NULL);
  tsk_tcp_close(a->listener);
  print_metrics(a, "demo: ");
  return 0;
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--duration SECONDS] [--quiet] [--help]\n"
          "  A service-like program for the inspector: an HTTP server with load, a worker pool,\n"
          "  sessions, a cache refresher and metrics, a few dozen tasks in a deep tree. It leaves\n"
          "  behind, slowly and on purpose, stranded sessions, unretrieved receipt errors and\n"
          "  lease keepers pending until exit. Stops on SIGINT/SIGTERM or after --duration.\n",
          prog);
}

int main(int argc, char **argv) {
  app a = {.next_lease_ms = 100};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      a.quiet = 1;
    } else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 0, 1000000, &a.duration_s) != 0) goto bad;
    } else {
      goto bad;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  a.t0 = now_ms();
  snprintf(a.cache_value, sizeof a.cache_value, "cold");
  int rc = tsk_runtime_new(&a.rt);
  if (rc) {
    fprintf(stderr, "demo: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  if ((rc = tsk_event_new(a.rt, &a.stop)) != 0 ||
      (rc = tsk_event_new(a.rt, &a.lease_released)) != 0) {
    fprintf(stderr, "demo: %s\n", tsk_strerror(rc));
    return 1;
  }
  uv_loop_t *loop = tsk_runtime_loop(a.rt);
  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  printf("demo: pid %ld — a small service on the taskscope runtime\n", (long)getpid());

  tsk_result_t res;
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  uv_close((uv_handle_t *)&a.sigint, NULL);
  uv_close((uv_handle_t *)&a.sigterm, NULL);
  tsk_runtime_close(a.rt); /* the leak report is printed here */
  tsk_event_free(a.stop);
  tsk_event_free(a.lease_released);
  if (a.jobs) tsk_channel_free(a.jobs);
  if (rc) {
    printf("demo: failed: %s\n", res.message[0] ? res.message : tsk_strerror(rc));
    return 1;
  }
  printf("demo: stopped\n");
  return 0;
bad:
  usage(stderr, argv[0]);
  return 2;
}
