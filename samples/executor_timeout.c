/*
 * executor_timeout — a timeout around thread-pool work: the wait gives up, the work does not.
 *
 * An upload service checksums every uploaded file on the thread pool (the checksum reads the
 * file in 30 chunks of 10 ms each: 300 ms of blocking work). The request handler,
 * `verify_upload`, must answer quickly, so it waits for the checksum with a 50 ms timeout:
 *   tsk_offload(blocking_checksum, job, checksum_done, 50, &sum)
 * The wait gives up with TSK_ETIMEDOUT — but a thread-pool job cannot be interrupted: it keeps
 * running, unobserved, and the runtime counts it as abandoned (tsk_offload_abandoned). Its
 * completion callback, checksum_done, arrives 250 ms later with abandoned=1.
 * Meanwhile the background task "store_manifest" (`store_manifest`) waits on a future for the
 * checksum, to write the upload's manifest. The job owns that future's only promise, and the
 * buggy checksum_done, seeing abandoned=1, just throws the job (and the promise) away. And
 * main does not wait for the abandoned work at all: it returns, and the runtime is closed with
 * store_manifest still waiting for a checksum that nobody will deliver (the close has to wait
 * for the pool thread anyway: the work cannot be stopped).
 * Report: a destroyed_pending record ("the runtime was closed while it was pending") for the
 * task "store_manifest", awaiting a future, created in main_task, suspended in store_manifest.
 * stdout shows the abandoned count (running 1, total 1) and checksum_done arriving during the
 * close, 250 ms after the timeout, with abandoned=1.
 *
 * --fixed: the work itself checks a cancellation flag (an atomic int in the job) between
 * chunks; verify_upload sets it when its wait times out, then waits for checksum_done before
 * it returns. checksum_done completes the future either way (rejected with TSK_ETIMEDOUT when
 * the work stopped early), so store_manifest learns the outcome, and main joins both tasks.
 * The abandoned total is still 1 (the wait did give up), but nothing is left running: no leak.
 *
 *   executor_timeout [--fixed] [--work-ms N] [--timeout-ms N]
 *
 * Exits 0 in both modes: the leak report is the runtime's job.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, and what uv.h needs, in strict C11 */
#include "taskscope.h"
#include "common/sample.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
#define CHUNK_MS 10

typedef struct app {
  tsk_runtime_t *rt;
  int fixed;
  int work_ms;
  int timeout_ms;
  tsk_future_t *checksum;   /* waiter side, borrowed by store_manifest; owned by main() */
  tsk_event_t *work_done;   /* fixed mode: set by checksum_done; owned by main() */
  double t0;
} app;

/* One checksum job. Allocated by verify_upload, handed to the pool, freed by checksum_done
 * (which libuv always calls, abandoned or not). */
typedef struct checksum_job {
  app *a;
  int chunks;
  atomic_int cancel;        /* set by the owner thread; read by the pool thread */
  int chunks_read;          /* written by the pool thread; read in checksum_done */
  tsk_promise_t *promise;   /* the only completer of app.checksum */
} checksum_job;

/* Runs on a pool thread: "reads" the file chunk by chunk (10 ms of blocking I/O each) and
 * hashes it. Checks job->cancel between chunks and returns TSK_ECANCELED when it is set. */
static NOINLINE intptr_t blocking_checksum(void *arg) {
  checksum_job *job = arg;
  uint32_t h = 2166136261u; /* FNV-1a */
  unsigned char chunk[4096];
  for (int i = 0; i < job->chunks; i++) {
    if (atomic_load_explicit(&job->cancel, memory_order_relaxed)) return TSK_ECANCELED;
    struct timespec io = {0, CHUNK_MS * 1000000L};
    nanosleep(&io, NULL); /* the blocking read */
    for (size_t j = 0; j < sizeof chunk; j++) chunk[j] = (unsigned char)(i * 131 + j);
    for (size_t j = 0; j < sizeof chunk; j++) h = (h ^ chunk[j]) * 16777619u;
    job->chunks_read = i + 1;
  }
  return (intptr_t)(h & 0x7fffffff);
}

/* Called on the loop thread when blocking_checksum returns (or was withdrawn before it
 * started), whether or not verify_upload still waited: abandoned says which. */
static NOINLINE void checksum_done(void *arg, intptr_t result, int abandoned) {
  checksum_job *job = arg;
  app *a = job->a;
  printf("  checksum_done: +%.0f ms: abandoned=%d, %d/%d chunks read, result=%s\n",
         now_ms() - a->t0, abandoned, job->chunks_read, job->chunks,
         result < 0 ? tsk_err_name((int)result) : "a checksum");
  if (a->fixed) {
    /* Complete the future either way, so that its waiter learns the outcome. */
    if (result >= 0)
      tsk_promise_resolve(job->promise, (void *)result);
    else
      tsk_promise_reject(job->promise, TSK_ETIMEDOUT);
    tsk_event_set(a->work_done);
  } else if (abandoned) {
    /* THE BUG: "the request timed out, nobody wants this any more" — the checksum is thrown
     * away with the job, and the manifest writer is never told. */
    printf("  checksum_done: the request gave up on it: checksum discarded\n");
  } else {
    tsk_promise_resolve(job->promise, (void *)result);
  }
  tsk_promise_release(job->promise);
  free(job);
}

/* The request handler: checksums the upload with a deadline. */
static NOINLINE int verify_upload(void *arg) {
  checksum_job *job = arg;
  app *a = job->a;
  intptr_t sum = 0;
  int rc = tsk_offload(blocking_checksum, job, checksum_done, a->timeout_ms, &sum);
  size_t running, total;
  tsk_offload_abandoned(a->rt, &running, &total);
  printf("  verify_upload: +%.0f ms: offload(%d ms of work, timeout %d ms) -> %s; "
         "abandoned work: %zu running, %zu in total\n",
         now_ms() - a->t0, a->work_ms, a->timeout_ms, tsk_err_name(rc), running, total);
  if (rc == 0) return 0; /* checksum_done delivers the checksum to the manifest writer */
  if (rc != TSK_ETIMEDOUT) {
    if (rc != TSK_ECANCELED) { /* never queued: checksum_done will not run, clean up here */
      tsk_promise_reject(job->promise, rc);
      tsk_promise_release(job->promise);
      free(job);
    }
    return tsk_error(rc, "checksum of upload.bin: %s", tsk_strerror(rc));
  }
  if (a->fixed) {
    /* The fix: tell the work to stop, and wait until it has (job belongs to it until then). */
    atomic_store(&job->cancel, 1);
    int wrc = tsk_event_wait(a->work_done, 5000);
    tsk_offload_abandoned(a->rt, &running, &total);
    printf("  verify_upload: +%.0f ms: cancelled the work and waited for it (%s); "
           "abandoned work: %zu running, %zu in total\n",
           now_ms() - a->t0, tsk_err_name(wrc), running, total);
  }
  return tsk_error(rc, "checksum of upload.bin: no result within %d ms: answered 503",
                   a->timeout_ms);
}

/* The background writer: waits for the checksum and records it in the manifest. */
static NOINLINE int store_manifest(void *arg) {
  app *a = arg;
  void *value = NULL;
  int rc = tsk_future_wait(a->checksum, TSK_FOREVER, &value);
  if (rc) {
    printf("  store_manifest: no checksum (%s): upload marked for re-verification\n",
           tsk_err_name(rc));
    return tsk_error(rc, "manifest of upload.bin not written: %s", tsk_strerror(rc));
  }
  printf("  store_manifest: upload.bin checksum %08lx recorded\n", (unsigned long)(intptr_t)value);
  return 0;
}

static NOINLINE int main_task(void *arg) {
  app *a = arg;
  tsk_promise_t *promise;
  int rc = tsk_future_new(a->rt, &a->checksum, &promise);
  if (rc) return rc;
  checksum_job *job = calloc(1, sizeof *job);
  if (!job) {
    tsk_promise_release(promise);
    return TSK_ENOMEM;
  }
  job->a = a;
  job->chunks = (a->work_ms + CHUNK_MS - 1) / CHUNK_MS;
  job->promise = promise;

  tsk_task_t writer, handler;
  if ((rc = tsk_spawn(a->rt, &writer, "store_manifest", store_manifest, a)) != 0) return rc;
  if (!a->fixed) tsk_detach(writer); /* "it finishes when the checksum arrives" */
  a->t0 = now_ms();
  if ((rc = tsk_spawn(a->rt, &handler, "verify_upload", verify_upload, job)) != 0) return rc;

  tsk_result_t res = {0};
  rc = tsk_join(handler, TSK_FOREVER, &res);
  printf("  main: verify_upload -> %s%s%s\n", tsk_err_name(rc), res.message[0] ? ": " : "",
         res.message);
  if (a->fixed) {
    rc = tsk_join(writer, 1000, &res);
    printf("  main: store_manifest -> %s%s%s\n", tsk_err_name(rc), res.message[0] ? ": " : "",
           res.message);
  }
  size_t running, total;
  tsk_offload_abandoned(a->rt, &running, &total);
  printf("  main: +%.0f ms: returning; abandoned work: %zu running, %zu in total\n",
         now_ms() - a->t0, running, total);
  return 0;
}

static void usage(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--fixed] [--work-ms N] [--timeout-ms N]\n"
          "  A wait with a timeout around thread-pool work: `verify_upload` gives up on\n"
          "  `blocking_checksum` after the timeout, the work runs on (abandoned), and\n"
          "  `store_manifest` is left waiting for a checksum nobody delivers.\n"
          "  --fixed         the work checks a cancellation flag; the handler sets it and\n"
          "                  waits for checksum_done, which always completes the future\n"
          "  --work-ms N     length of the checksum work (default 300)\n"
          "  --timeout-ms N  the handler's timeout (default 50)\n",
          prog);
}

int main(int argc, char **argv) {
  app a = {.work_ms = 300, .timeout_ms = 50};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--fixed") == 0) {
      a.fixed = 1;
    } else if (strcmp(argv[i], "--work-ms") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 0, 60000, &a.work_ms) != 0) goto bad;
    } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      if (parse_int(argv[++i], 0, 60000, &a.timeout_ms) != 0) goto bad;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }
  int rc = tsk_runtime_new(&a.rt);
  if (rc == 0) rc = tsk_event_new(a.rt, &a.work_done);
  if (rc) {
    fprintf(stderr, "executor_timeout: cannot create runtime: %s\n", tsk_strerror(rc));
    return 1;
  }
  printf("executor_timeout (%s)\n", a.fixed ? "fixed" : "buggy");
  tsk_result_t res = {0};
  rc = tsk_run_main(a.rt, "main", main_task, &a, &res);
  if (rc) printf("  main failed: %s %s\n", tsk_err_name(rc), res.message);
  tsk_stats_t st;
  tsk_runtime_stats(a.rt, &st);
  double t = now_ms();
  printf("  closing the runtime with %llu unfinished task(s)\n", (unsigned long long)st.live);
  tsk_runtime_close(a.rt);
  printf("  runtime closed (the close took %.0f ms)\n", now_ms() - t);
  tsk_future_release(a.checksum); /* allowed after close */
  tsk_event_free(a.work_done);
  printf("executor_timeout: done\n");
  return 0;
bad:
  fprintf(stderr, "executor_timeout: --work-ms and --timeout-ms want 0 to 60000\n");
  return 2;
}
