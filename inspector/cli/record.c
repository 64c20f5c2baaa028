/*
 * record.c — `taskscope record PID -o FILE [--duration S]`: saves a process's task stream (a
 * subscription's snapshot, then its deltas) for `taskscope-top --replay FILE`.
 *
 * The file is NDJSON: a header line
 *   {"format":"taskscope-recording","version":1,"protocol":1,"pid":N,"program":S,
 *    "started":"2025-01-31T12:00:00Z","started_unix_ms":N,"interval_ms":N,"recorder":S}
 * then one line per message received, wrapped with its receive time in milliseconds since the
 * recording started:
 *   {"t_ms":12.500,"msg":{...the message exactly as the process sent it...}}
 * Every line is flushed as it is written, so a recording cut short (the process died, the
 * recorder was killed) is still a valid file up to its last line.
 *
 * Recording stops after --duration seconds, on SIGINT/SIGTERM, or when the process closes the
 * connection (it exited); each of these is a success (exit 0).
 */
#include "cli.h"
#include "conn.h"
#include "target.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECORDING_FORMAT "taskscope-recording"
#define RECORDING_VERSION 1

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *out) {
  fputs("usage: taskscope record PID -o FILE [--duration SECONDS] [--interval MS] "
        "[--timeout SECONDS]\n"
        "\n"
        "Records the task stream of a process (a snapshot, then a delta every interval) to FILE,\n"
        "for `taskscope-top --replay FILE`. PID may also be an inspector socket path. FILE '-'\n"
        "is standard output.\n"
        "\n"
        "  -o, --output FILE     where to write the recording (required)\n"
        "  --duration SECONDS    stop after this long (default: until Ctrl-C or the process "
        "exits)\n"
        "  --interval MS         the update interval asked of the process (50..60000; default "
        "1000)\n"
        "  --timeout SECONDS     give up attaching after this long (default 5)\n"
        "\n"
        "The file is NDJSON: a header {\"format\":\"taskscope-recording\",\"version\":1,\n"
        "\"protocol\":1,\"pid\":N,\"program\":S,\"started\":S,...}, then one line per message,\n"
        "{\"t_ms\":T,\"msg\":MESSAGE}, T the receive time in ms since the start.\n"
        "exit status: 0 recorded; 2 usage error; 3 cannot attach or write.\n",
        out);
}

static int usage_error(const char *fmt, const char *arg) {
  fputs("taskscope: record: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nusage: taskscope record PID -o FILE [--duration SECONDS] [--interval MS] "
        "[--timeout SECONDS]\n"
        "Run 'taskscope record --help' for more.\n",
        stderr);
  return TS_EXIT_USAGE;
}

/* Takes the value of an option given as "--opt VALUE", "--opt=VALUE" or "-o VALUE". */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) == 0 && a[n] == '=') return a + n + 1;
  if (*i + 1 < argc) return argv[++*i];
  return NULL;
}

static int write_line(FILE *out, const char *path, double t_ms, const char *msg, size_t len) {
  if (fprintf(out, "{\"t_ms\":%.3f,\"msg\":", t_ms) < 0 || fwrite(msg, 1, len, out) != len ||
      fputs("}\n", out) == EOF || fflush(out) != 0)
    return ts_fail(TS_EXIT_ATTACH, "record: writing %s: %s", path, strerror(errno));
  return 0;
}

/* Reads what the socket has into c's buffer (the connection's own buffer, so bytes it already
 * read past the snapshot are kept). 1: read some, 0: nothing now, -1: closed or failed. */
static int fill(ts_conn *c) {
  if (c->start > 0) {
    memmove(c->buf, c->buf + c->start, c->len - c->start);
    c->len -= c->start;
    c->start = 0;
  }
  if (c->cap - c->len < 65536) {
    size_t ncap = c->cap ? c->cap * 2 : 262144;
    char *nb = realloc(c->buf, ncap);
    if (!nb) return -1;
    c->buf = nb;
    c->cap = ncap;
  }
  ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
  if (n > 0) {
    c->len += (size_t)n;
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1;
}

int taskscope_cmd_record(int argc, char **argv) {
  const char *target = NULL, *path = NULL;
  double duration_ms = 0;
  long interval = 1000;
  int timeout_ms = TS_DEFAULT_TIMEOUT_MS;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return TS_EXIT_OK;
    } else if (strcmp(a, "-o") == 0 || strncmp(a, "--output", 8) == 0) {
      if (a[1] == '-' && a[8] != '\0' && a[8] != '=') return usage_error("unknown option '%s'", a);
      if (!(path = opt_value(argc, argv, &i, "--output")))
        return usage_error("%s needs a FILE", a);
    } else if (strncmp(a, "--duration", 10) == 0 && (a[10] == '\0' || a[10] == '=')) {
      if (!(v = opt_value(argc, argv, &i, "--duration")) ||
          (duration_ms = ts_parse_seconds(v)) < 0)
        return usage_error("--duration takes seconds (e.g. 3, 0.5, 500ms), not '%s'",
                           v ? v : "");
    } else if (strncmp(a, "--interval", 10) == 0 && (a[10] == '\0' || a[10] == '=')) {
      char *end;
      if (!(v = opt_value(argc, argv, &i, "--interval")) ||
          ((interval = strtol(v, &end, 10)), *end) || interval < 50 || interval > 60000)
        return usage_error("--interval takes 50..60000 (milliseconds), not '%s'", v ? v : "");
    } else if (strncmp(a, "--timeout", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
      double ms;
      if (!(v = opt_value(argc, argv, &i, "--timeout")) || (ms = ts_parse_seconds(v)) < 1 ||
          ms > TS_MAX_TIMEOUT_MS)
        return usage_error("--timeout takes seconds (e.g. 5, 0.5, 500ms), not '%s'", v ? v : "");
      timeout_ms = (int)ms;
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown option '%s'", a);
    } else if (!target) {
      target = a;
    } else {
      return usage_error("too many arguments: '%s'", a);
    }
  }
  if (!target) return usage_error("%s", "a PID (or socket path) is required");
  if (!path) return usage_error("%s", "-o FILE is required");

  ts_ctx ctx = {.timeout_ms = timeout_ms, .color_mode = TS_COLOR_NEVER};
  ts_conn c;
  int rc = ts_attach(&ctx, target, &c);
  if (rc) return rc;

  FILE *out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
  if (!out) {
    ts_conn_close(&c);
    return ts_fail(TS_EXIT_ATTACH, "record: cannot write %s: %s", path, strerror(errno));
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  double t0 = mono_ms();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  char started[64];
  struct tm tmv;
  gmtime_r(&wall.tv_sec, &tmv);
  strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  json_t *hdr = json_pack("{s:s, s:i, s:i, s:I, s:s, s:s, s:I, s:i, s:s}", "format",
                          RECORDING_FORMAT, "version", RECORDING_VERSION, "protocol",
                          TS_PROTOCOL_VERSION, "pid", (json_int_t)c.pid, "program",
                          c.program ? c.program : "?", "started", started, "started_unix_ms",
                          (json_int_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000, "interval_ms",
                          (int)interval, "recorder", "taskscope " TASKSCOPE_VERSION);
  char *hs = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
  json_decref(hdr);
  if (!hs || fprintf(out, "%s\n", hs) < 0 || fflush(out) != 0) {
    free(hs);
    ts_conn_close(&c);
    if (out != stdout) fclose(out);
    return ts_fail(TS_EXIT_ATTACH, "record: writing %s: %s", path, strerror(errno));
  }
  free(hs);

  /* The subscription's snapshot, through the connection's request matching. */
  json_t *snap = NULL;
  json_t *req = json_pack("{s:s, s:i}", "type", "subscribe", "interval_ms", (int)interval);
  ts_conn_status st = ts_conn_request(&c, req, "snapshot", &snap);
  if (st) {
    rc = ts_fail(ts_conn_exit_code(st), "record: %s", c.err);
    ts_conn_close(&c);
    if (out != stdout) fclose(out);
    return rc;
  }
  char *ss = json_dumps(snap, JSON_COMPACT);
  json_decref(snap);
  rc = ss ? write_line(out, path, mono_ms() - t0, ss, strlen(ss))
          : ts_fail(TS_EXIT_ATTACH, "record: out of memory");
  free(ss);
  long messages = 1;
  const char *why = "the duration elapsed";

  /* Then every message as it arrives, written as received. */
  while (!rc) {
    if (stop_requested) {
      why = "interrupted";
      break;
    }
    double now = mono_ms();
    if (duration_ms > 0 && now - t0 >= duration_ms) break;
    char *nl;
    while (!rc && (nl = memchr(c.buf + c.start, '\n', c.len - c.start))) {
      char *line = c.buf + c.start;
      size_t len = (size_t)(nl - line);
      c.start = (size_t)(nl - c.buf) + 1;
      while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
      if (len == 0) continue;
      json_t *m = json_loadb(line, len, 0, NULL);
      int ok = json_is_object(m);
      json_decref(m);
      if (!ok) continue; /* not a message: nothing to replay */
      rc = write_line(out, path, mono_ms() - t0, line, len);
      messages++;
    }
    if (rc) break;
    c.scanned = c.start; /* consumed up to here */
    int wait = duration_ms > 0 ? (int)(duration_ms - (mono_ms() - t0)) + 1 : 1000;
    if (wait > 1000) wait = 1000;
    if (wait < 0) wait = 0;
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    int r = poll(&p, 1, wait);
    if (r < 0 && errno != EINTR) {
      why = strerror(errno);
      break;
    }
    if (r > 0 && fill(&c) < 0) {
      why = "the process closed the connection";
      break;
    }
  }
  double secs = (mono_ms() - t0) / 1000;
  ts_conn_close(&c);
  if (out != stdout && fclose(out) != 0 && !rc)
    rc = ts_fail(TS_EXIT_ATTACH, "record: writing %s: %s", path, strerror(errno));
  if (!rc)
    fprintf(stderr, "taskscope: recorded %ld messages over %.1f s to %s (%s)\n", messages, secs,
            path, why);
  return rc;
}
