/*
 * hello.c — the hello exchange (see hello.h).
 */
#include "hello.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *str_or_empty(json_t *m, const char *key) {
  const char *s = json_string_value(json_object_get(m, key));
  return s ? s : "";
}

tsc_hello_status tsc_hello_parse(json_t *m, tsc_hello *h) {
  memset(h, 0, sizeof *h);
  h->program = str_or_empty(m, "program");
  h->server = str_or_empty(m, "server");
  h->code = str_or_empty(m, "code");
  h->message = str_or_empty(m, "message");
  const char *type = str_or_empty(m, "type");
  if (strcmp(type, "error") == 0) return TSC_HELLO_REFUSED;
  if (strcmp(type, "hello") != 0 || strcmp(str_or_empty(m, "protocol"), "taskscope") != 0)
    return TSC_HELLO_FOREIGN;
  json_t *ver = json_object_get(m, "version"), *pid = json_object_get(m, "pid");
  if (!json_is_integer(ver)) return TSC_HELLO_BAD_VERSION;
  h->version = json_integer_value(ver);
  if (h->version != TS_PROTOCOL_VERSION) return TSC_HELLO_VERSION;
  if (!json_is_integer(pid)) return TSC_HELLO_BAD_PID;
  h->pid = json_integer_value(pid);
  return TSC_HELLO_OK;
}

json_t *tsc_hello_reply(const char *client) {
  return json_pack("{s:s, s:i, s:s}", "type", "hello", "version", TS_PROTOCOL_VERSION, "client",
                   client);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tsc_probe_hello(const char *path, int timeout_ms) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa.sun_path) return 0;
  memcpy(sa.sun_path, path, strlen(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return 0;
  char buf[4096];
  size_t got = 0;
  int ok = 0;
  long long deadline = now_ms() + timeout_ms;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EAGAIN &&
      errno != EINPROGRESS)
    goto out;
  while (got < sizeof buf - 1) {
    long long left = deadline - now_ms();
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) goto out;
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) goto out;
    got += (size_t)n;
    char *nl = memchr(buf, '\n', got);
    if (!nl) continue;
    json_t *m = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
    tsc_hello h;
    tsc_hello_status st = m ? tsc_hello_parse(m, &h) : TSC_HELLO_FOREIGN;
    ok = st == TSC_HELLO_OK || st == TSC_HELLO_VERSION || st == TSC_HELLO_REFUSED;
    json_decref(m);
    break;
  }
out:
  close(fd);
  return ok;
}
