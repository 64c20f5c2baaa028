/*
 * async_bomb — one task per incoming document, unbounded; and the batch tail nobody waits for.
 *
 * A document ingester receives a batch of N documents (default 20000) and, in the obvious way,
 * spawns one `process_document` task per document, all at once: every document is "parsed"
 * (a sleep of 1-5 ms standing for the backend round trip, then a little CPU work on a 1 KiB
 * buffer). With nothing bounding the spawns, all N tasks are alive at the same time: their
 * stacks, records and buffers are all resident at once — with real documents, this is where
 * memory runs out or the backend falls over. The program prints the peak of live tasks
 * (tsk_runtime_stats().live) and the peak resident memory (from /proc/self/statm).
 *
 * The batch also holds a few scanned PDFs (every 2500th document, and the last one) that need
 * OCR: 800 ms each. The buggy ingester waits for its batch with a 500 ms deadline
 * (`wait_for_batch`, the C version of asyncio's `done, pending = await wait(tasks, timeout=…)`),
 * then joins the tasks that finished and simply forgets the rest — they are still running when
 * it returns. main prints its figures and, like many batch jobs, just exits, without closing
 * the runtime: those documents are silently never indexed.
 * Report (at process exit): pending records for the forgotten "process_document" tasks (8 with
 * the default batch: one group "8 tasks like this"), created in ingest_batch (called from
 * main_task), suspended in process_document (a sleep: the OCR). With --close the buggy program
 * closes the runtime instead, and the same tasks are destroyed_pending ("the runtime was closed
 * while it was pending").
 *
 * --fixed: a bounded group (max_concurrency 64, max_pending 256, spawn_waits = 1: the ingester
 * waits for room instead of spawning more), closed with a generous timeout that lets every
 * document finish (had one hung, the close timeout would cancel it and say so). Same figures,
 * far lower: at most 64 tasks alive, a fraction of the memory. Every document is processed and
 * its task joined by the group: no leak.
 *
 *   async_bomb [--fixed] [--docs N] [--close]
 *
 * Exits 0 in both modes: the leak report is the runtime's job.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, and what uv.h needs, in strict C11 */
#include "taskscope.h"
#include "common/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

#define SCAN_EVERY 2500      /* one scanned PDF every 2500 documents */
#define OCR_MS 800           /* processing time of a scanned PDF */
#define BATCH_DEADLINE_MS 500
#define MAX_CONCURRENCY 64
#define MAX_PENDING 256
#define CLOSE_TIMEOUT_MS 4000

typedef struct doc {
  int id;
  int scanned;
  uint32_t digest;
  struct app *a;
} doc;

typedef struct app {
  tsk_runtime_t *rt;
  int fixed;
  int close_runtime;    /* buggy mode: close the runtime at the end (always in fixed mode) */
  int ndocs;
  doc *docs;            /* ndocs documents; owned by main(), freed after close */
  tsk_task_t *handles;  /* buggy mode: one handle per document; owned by main() */
  tsk_event_t *batch_done; /* set when the last document finishes; owned by main() */
  int processed;
  uint64_t peak_live;
  size_t peak_rss;
  size_t base_rss;
  double t0;
} app;

/* Resident memory of the process in bytes (0 when /proc is not available). */
static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static void sample_usage(app *a) {
  tsk_stats_t st;
  tsk_runtime_stats(a->rt, &st);
  if (st.live > a->peak_live) a->peak_live = st.live;
  size_t rss = rss_bytes();
  if (rss > a->peak_rss) a->peak_rss = rss;
}

/* Samples the figures every 5 ms until cancelled. */
static NOINLINE int usage_monitor(void *arg) {
  app *a = arg;
  for (;;) {
    sample_usage(a);
    int rc = tsk_sleep(5);
    if (rc) return rc;
  }
}

/* The "parsing": a little CPU work on a buffer on the task's own stack. */
static NOINLINE uint32_t parse_document(const doc *d) {
  unsigned char text[1024];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (unsigned char)(d->id * 31 + i * 7);
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < sizeof text; i++) h = (h ^ text[i]) * 16777619u;
  return h;
}

/* One document: the backend round trip (or the OCR of a scanned PDF), then the parsing. */
static NOINLINE int process_document(void *arg) {
  doc *d = arg;
  app *a = d->a;
  int rc = tsk_sleep(d->scanned ? OCR_MS : 1 + (uint64_t)(d->id % 5));
  if (rc) return rc; /* cancelled */
  d->digest = parse_document(d);
  if (++a->processed == a->ndocs && a->batch_done) tsk_event_set(a->batch_done);
  return 0;
}

/* Waits for the whole batch, at most deadline_ms. Like asyncio.wait(tasks, timeout=...), it
 * neither cancels nor joins anything: it only reports whether the batch finished in time. */
static NOINLINE int wait_for_batch(app *a, int64_t deadline_ms) {
  return tsk_event_wait(a->batch_done, deadline_ms);
}

/* THE BUGS: one task per document with no bound, and after the deadline the unfinished tasks
 * are forgotten: their handles dropped without a join or a cancel. */
static NOINLINE int ingest_batch(app *a) {
  for (int i = 0; i < a->ndocs; i++) {
    int rc = tsk_spawn(a->rt, &a->handles[i], "process_document", process_document, &a->docs[i]);
    if (rc) return tsk_error(rc, "spawn for document %d: %s", i, tsk_strerror(rc));
  }
  sample_usage(a);
  printf("  ingest_batch: %d tasks spawned at once (%.0f ms)\n", a->ndocs, now_ms() - a->t0);
  int rc = wait_for_batch(a, BATCH_DEADLINE_MS);
  printf("  ingest_batch: wait_for_batch(%d ms) -> %s after %.0f ms\n", BATCH_DEADLINE_MS,
         tsk_err_name(rc), now_ms() - a->t0);
  int joined = 0, forgotten = 0;
  for (int i = 0; i < a->ndocs; i++) {
    tsk_task_state_t st;
    if (tsk_task_state(a->handles[i], &st) != 0) continue;
    if (st == TSK_TASK_DONE || st == TSK_TASK_FAILED || st == TSK_TASK_CANCELLED) {
      tsk_join(a->handles[i], 0, NULL);
      joined++;
    } else {
      forgotten++; /* still running: "not our problem any more" */
    }
  }
  printf("  ingest_batch: joined %d finished tasks, moved on with %d still in flight\n", joined,
         forgotten);
  return 0;
}

/* The fix: a bounded group. The ingester waits for room (spawn_waits) instead of spawning
 * everything; the close timeout bounds how long the batch may take. */
static NOINLINE int ingest_batch_bounded(app *a) {
  tsk_group_t *g;
  tsk_group_opts_t opts = {.name = "ingest",
                           .max_concurrency = MAX_CONCURRENCY,
                           .max_pending = MAX_PENDING,
                           .spawn_waits = 1};
  int rc = tsk_group_new(a->rt, &opts, &g);
  if (rc) return rc;
  for (int i = 0; i < a->ndocs; i++) {
    rc = tsk_group_spawn(g, "process_document", process_document, &a->docs[i]);
    if (rc) {
      printf("  ingest_batch_bounded: spawn for document %d: %s\n", i, tsk_err_name(rc));
      break;
    }
  }
  sample_usage(a);
  printf("  ingest_batch_bounded: %d documents handed to the group (%.0f ms)\n", a->ndocs,
         now_ms() - a->t0);
  rc = tsk_group_close(g, CLOSE_TIMEOUT_MS);
  printf("  ingest_batch_bounded: group closed -> %s after %.0f ms%s\n", tsk_err_name(rc),
         now_ms() - a->t0, rc == TSK_ETIMEDOUT ? " (the stragglers were cancelled)" : "");
  return 0;
}

static NOINLINE int main_task(void *arg) {
  app *a = arg;
  tsk_task_t monitor;
  int rc = tsk_spawn(a->rt, &monitor, "usage_monitor", usage_monitor, a);
  if (rc) return rc;
  a->t0 = now_ms();
  rc = a->fixed ? ingest_batch_bounded(a) : ingest_batch(a);
  sample_usage(a);
  tsk_cancel(monitor);
  tsk_join(monitor, 1000, NULL);
  return rc;
}

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--fixed] [--docs N] [--close]\n"
          "  An async bomb: one `process_document` task per document, unbounded (peak live\n"
          "  tasks and memory are printed), and a batch deadline after which `ingest_batch`\n"
          "  forgets the unfinished tasks; the program exits with them still pending.\n"
          "  --fixed   a bounded group (concurrency %d, pending %d, spawn waits) with a close\n"
          "            timeout; every task finishes, the runtime is closed\n"
          "  --docs N  documents in the batch (default 20000)\n"
          "  --close   buggy mode: close the runtime before exiting (the forgotten tasks are\n"
          "            then destroyed_pending at close instead of pending at exit)\n",
          prog, MAX_CONCURRENCY, MAX_PENDING);
}

int main(int argc, char **argv) {
  app a = {.ndocs = 20000};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--fixed") == 0) {
      a.fixed = 1;
    } else if (strcmp(argv[i], "--close") == 0) {
      a.close_runtime = 1;
    } else if (strcmp(argv[i], "--docs") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 1, 10000000, &a.ndocs) != 0) {
        fprintf(stderr, "async_bomb: --docs wants a number from 1 to 10000000\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }
  a.docs = calloc((size_t)a.ndocs, sizeof *a.docs);
  a.handles = calloc((size_t)a.ndocs, sizeof *a.handles);
  if (!a.docs || !a.handles) {
    fprintf(stderr, "async_bomb: out of memory\n");
    return 1;
  }
  int scanned = 0;
  for (int i = 0; i < a.ndocs; i++) {
    a.docs[i].id = i;
    a.docs[i].scanned = i % SCAN_EVERY == SCAN_EVERY - 1 || i == a.ndocs - 1;
    a.docs[i].a = &a;
    scanned += a.docs[i].scanned;
  }
  int rc = tsk_runtime_new(&a.rt);
  if (rc == 0) rc = tsk_event_new(a.rt, &a.batch_done);
  if (rc) {
    fprintf(stderr, "async_bomb: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  a.base_rss = a.peak_rss = rss_bytes();
  printf("async_bomb (%s): %d documents, %d of them scanned PDFs (%d ms of OCR each)\n",
         a.fixed ? "fixed: bounded group" : "buggy: one task per document", a.ndocs, scanned,
         OCR_MS);
  tsk_result_t res = {0};
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  if (rc) printf("  main failed: %s %s\n", tsk_err_name(rc), res.message);
  tsk_stats_t st;
  tsk_runtime_stats(a.rt, &st);
  printf("  documents processed: %d of %d\n", a.processed, a.ndocs);
  printf("  peak live tasks: %llu\n", (unsigned long long)a.peak_live);
  printf("  peak RSS: %.1f MiB (+%.1f MiB over the %.1f MiB at start); stacks carved: %llu\n",
         a.peak_rss / 1048576.0, (a.peak_rss - a.base_rss) / 1048576.0, a.base_rss / 1048576.0,
         (unsigned long long)st.stacks_mapped);
  tsk_event_free(a.batch_done);
  if (a.fixed || a.close_runtime) {
    printf("  closing the runtime with %llu unfinished task(s)\n", (unsigned long long)st.live);
    tsk_runtime_close(a.rt);
  } else {
    /* THE BUG, continued: the job is "done", the process exits with work in flight. (The
     * forgotten tasks never run again, so the documents can be freed.) */
    printf("  exiting with %llu unfinished task(s), without closing the runtime\n",
           (unsigned long long)st.live);
  }
  free(a.handles);
  free(a.docs);
  printf("async_bomb: done\n");
  return 0;
}
