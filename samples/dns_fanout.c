/*
 * dns_fanout — slow sequential I/O that should be concurrent (and a progress task nobody stops).
 *
 * The story: a crawler resolves every host name of its input before it starts. The resolver was
 * written as a plain loop — one tsk_getaddrinfo after another, each followed by the round trip
 * to the upstream resolver — so the whole run costs N x latency. A real service spent 12 hours
 * resolving what took 8 minutes once the lookups ran concurrently with a bound. The same
 * resolver starts a "progress_reporter" task that prints how far it got, and forgets it when it
 * is done: the reporter waits forever on a stop event nobody will ever set.
 *
 * The lookups resolve offline: localhost, numeric IPv4/IPv6 hosts and the machine's own name
 * (when it resolves). Each lookup is followed by a simulated per-lookup latency (--delay MS,
 * tsk_sleep, default 20 ms) standing in for the network, so the difference shows offline:
 * sequential = N x delay, concurrent ~= N x delay / limit.
 *
 * Default (buggy) mode: resolve_sequentially() resolves the list one name after another, and
 * returns without stopping its progress_reporter task. The leak report at tsk_runtime_close
 * shows one destroyed_pending record: task "progress_reporter" (created in
 * resolve_sequentially, suspended in progress_reporter awaiting an event).
 *
 * --fixed: resolve_concurrently() spawns one "resolve_host" task per lookup into a bounded
 * group (max_concurrency = --limit), and every reporter is cancelled and joined. For comparison
 * it also times the sequential loop (reporter stopped properly) and prints the speedup. The
 * report is empty.
 *
 *   dns_fanout [--fixed] [--count N] [--delay MS] [--limit N] [--help]
 */
#include "taskscope.h"
#include "common/sample.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define MAX_NAMES 8
#define LOOKUP_TIMEOUT_MS 2000

typedef struct app app;

/* One lookup: its name and outcome. Owned by app.lookups. */
typedef struct lookup {
  app *a;
  const char *name;
  int rc;
  int naddrs;
  char first[INET6_ADDRSTRLEN];
} lookup;

struct app {
  tsk_runtime_t *rt;
  int fixed;
  int count;      /* lookups per run */
  int delay_ms;   /* simulated latency after each lookup */
  int limit;      /* concurrent lookups in --fixed mode */
  char hostname[256];
  const char *names[MAX_NAMES];
  int nnames;
  lookup *lookups;        /* count entries */
  int resolved;           /* lookups finished in the current run (read by the reporter) */
  tsk_event_t *stop;      /* the reporter's stop event; freed after tsk_runtime_close (in buggy
                             mode a destroyed reporter was still waiting on it) */
};

/* Prints the progress of the current run every 200 ms until its stop event is set or it is
 * cancelled. */
static int progress_reporter(void *arg) {
  app *a = arg;
  int last = -1;
  for (;;) {
    int rc = tsk_event_wait(a->stop, 200);
    if (rc != TSK_ETIMEDOUT) return rc; /* 0: stopped, or TSK_ECANCELED */
    if (a->resolved != last) {
      printf("  progress: %d/%d resolved\n", a->resolved, a->count);
      last = a->resolved;
    }
  }
}

/* Resolves one name, then waits out the simulated upstream latency. */
static int resolve_one(lookup *l) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  l->rc = tsk_getaddrinfo(l->name, NULL, &hints, LOOKUP_TIMEOUT_MS, &res);
  l->naddrs = 0;
  l->first[0] = 0;
  if (l->rc == 0) {
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      if (l->naddrs++ > 0) continue;
      const void *src = ai->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
      inet_ntop(ai->ai_family, src, l->first, sizeof l->first);
    }
    uv_freeaddrinfo(res);
  }
  int rc = l->a->delay_ms > 0 ? tsk_sleep((uint64_t)l->a->delay_ms) : 0;
  l->a->resolved++;
  return rc;
}

static void reset_run(app *a) {
  a->resolved = 0;
  tsk_event_clear(a->stop);
  for (int i = 0; i < a->count; i++) {
    a->lookups[i].a = a;
    a->lookups[i].name = a->names[i % a->nnames];
    a->lookups[i].rc = 0;
  }
}

/* THE BUG (twice): the lookups run one after another, and the progress reporter started here
 * is forgotten on return in the default mode — it waits on a.stop, which nobody sets any more,
 * until the runtime closes and destroys it. --fixed stops it: cancel, then join. */
static NOINLINE int resolve_sequentially(app *a) {
  reset_run(a);
  tsk_task_t reporter;
  int rc = tsk_spawn(a->rt, &reporter, "progress_reporter", progress_reporter, a);
  if (rc) return rc;
  for (int i = 0; i < a->count; i++) {
    rc = resolve_one(&a->lookups[i]);
    if (rc) break; /* cancelled */
  }
  if (a->fixed) {
    tsk_cancel(reporter);
    tsk_join(reporter, TSK_FOREVER, NULL);
  }
  /* default mode: `reporter` simply goes out of scope, still waiting */
  return rc;
}

static int resolve_host(void *arg) { return resolve_one(arg); }

/* The fix: one task per lookup in a bounded group, at most a->limit at once; the group joins
 * them all (and would hand over the first failure). */
static NOINLINE int resolve_concurrently(app *a) {
  reset_run(a);
  tsk_task_t reporter;
  int rc = tsk_spawn(a->rt, &reporter, "progress_reporter", progress_reporter, a);
  if (rc) return rc;
  tsk_group_t *g = NULL;
  tsk_group_opts_t opts = {.name = "resolvers",
                           .max_concurrency = (size_t)a->limit,
                           .max_pending = (size_t)a->limit * 2,
                           .spawn_waits = 1};
  rc = tsk_group_new(a->rt, &opts, &g);
  for (int i = 0; rc == 0 && i < a->count; i++)
    rc = tsk_group_spawn(g, "resolve_host", resolve_host, &a->lookups[i]);
  if (g) {
    int crc = tsk_group_close(g, 30000);
    if (rc == 0) rc = crc;
  }
  tsk_cancel(reporter);
  tsk_join(reporter, TSK_FOREVER, NULL);
  return rc;
}

static int count_failed(app *a) {
  int failed = 0;
  for (int i = 0; i < a->count; i++)
    if (a->lookups[i].rc) failed++;
  return failed;
}

/* One line per distinct name, from the first lookup of it; returns the failed lookups. */
static int print_results(app *a) {
  int failed = count_failed(a);
  for (int i = 0; i < a->nnames && i < a->count; i++) {
    lookup *l = &a->lookups[i];
    if (l->rc)
      printf("    %-20s -> error: %s\n", l->name, tsk_strerror(l->rc));
    else
      printf("    %-20s -> %s (%d address%s)\n", l->name, l->first, l->naddrs,
             l->naddrs == 1 ? "" : "es");
  }
  return failed;
}

/* The machine's own name joins the list only if it resolves (quickly) offline. */
static void add_own_hostname(app *a) {
  if (gethostname(a->hostname, sizeof a->hostname - 1) != 0 || !a->hostname[0]) return;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = tsk_getaddrinfo(a->hostname, NULL, &hints, 1000, &res);
  if (rc == 0) {
    uv_freeaddrinfo(res);
    a->names[a->nnames++] = a->hostname;
  } else {
    printf("  (own host name \"%s\" does not resolve offline: %s; left out)\n", a->hostname,
           tsk_err_name(rc));
  }
}

static int main_task(void *arg) {
  app *a = arg;
  static const char *fixed_names[] = {"localhost", "127.0.0.1", "::1", "127.0.0.2",
                                      "::ffff:127.0.0.1", "0.0.0.0", "::"};
  for (size_t i = 0; i < sizeof fixed_names / sizeof fixed_names[0]; i++)
    a->names[a->nnames++] = fixed_names[i];
  add_own_hostname(a);
  int rc;
  if ((rc = tsk_event_new(a->rt, &a->stop)) != 0) return rc;

  printf("  %d lookups cycling over %d names, %d ms simulated latency each\n", a->count,
         a->nnames, a->delay_ms);
  double t0 = now_ms();
  rc = resolve_sequentially(a);
  double seq_ms = now_ms() - t0;
  int failed = a->fixed ? count_failed(a) : print_results(a);
  printf("  sequential%s: %d lookups in %.0f ms (%.1f ms per lookup), %d failed\n",
         a->fixed ? " (baseline)" : "", a->count, seq_ms, seq_ms / a->count, failed);
  if (rc) return tsk_error(rc, "sequential run: %s", tsk_strerror(rc));

  if (!a->fixed) {
    printf("  (with --fixed: concurrently, at most %d at once: ~%d ms)\n", a->limit,
           (a->count + a->limit - 1) / a->limit * a->delay_ms);
    return 0;
  }
  t0 = now_ms();
  rc = resolve_concurrently(a);
  double con_ms = now_ms() - t0;
  failed = print_results(a);
  printf("  concurrent: %d lookups in %.0f ms (limit %d), %d failed\n", a->count, con_ms,
         a->limit, failed);
  printf("  speedup: x%.1f\n", con_ms > 0 ? seq_ms / con_ms : 0.0);
  if (rc) return tsk_error(rc, "concurrent run: %s", tsk_strerror(rc));
  return 0;
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--fixed] [--count N] [--delay MS] [--limit N] [--help]\n"
          "  Resolves N offline names (localhost, numeric hosts, this host) with tsk_getaddrinfo.\n"
          "  default   one after another, and a progress_reporter task is left behind\n"
          "            (destroyed_pending in the leak report)\n"
          "  --fixed   concurrently in a bounded group; every task joined; no leak\n"
          "  --count N lookups (default 40)   --delay MS simulated latency per lookup (20)\n"
          "  --limit N concurrent lookups in --fixed mode (default 8)\n",
          prog);
}

int main(int argc, char **argv) {
  app a = {.count = 40, .delay_ms = 20, .limit = 8};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else if (strcmp(o, "--fixed") == 0) {
      a.fixed = 1;
    } else if (strcmp(o, "--count") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 1000000, &a.count)) goto bad;
    } else if (strcmp(o, "--delay") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 0, 1000000, &a.delay_ms)) goto bad;
    } else if (strcmp(o, "--limit") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 1000000, &a.limit)) goto bad;
    } else {
      goto bad;
    }
  }
  a.lookups = calloc((size_t)a.count, sizeof *a.lookups);
  if (!a.lookups) return 1;
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up as they happen */
  int rc = tsk_runtime_new(&a.rt);
  if (rc) {
    fprintf(stderr, "dns_fanout: cannot create runtime: %s\n", tsk_strerror(rc));
    free(a.lookups);
    return 1;
  }
  printf("dns_fanout: %s\n", a.fixed ? "concurrent lookups in a bounded group (--fixed)"
                                     : "sequential lookups (the slow way; leaks its reporter)");
  tsk_result_t res;
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  tsk_runtime_close(a.rt); /* the leak report, if any, is printed here */
  if (a.stop) tsk_event_free(a.stop);
  free(a.lookups);
  if (rc) {
    printf("dns_fanout: failed: %s\n", res.message[0] ? res.message : tsk_strerror(rc));
    return 1;
  }
  printf("dns_fanout: done\n");
  return 0;
bad:
  usage(stderr, argv[0]);
  return 2;
}
