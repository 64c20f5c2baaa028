/*
 * sock.c — where the inspector socket lives and who may connect (DESIGN.md, "Socket";
 * PROTOCOL.md, "Transport").
 *
 *   socket=auto  $XDG_RUNTIME_DIR/taskscope/<pid>.sock, or /tmp/taskscope-<uid>/<pid>.sock when
 *                XDG_RUNTIME_DIR is unset or empty. The directory is created mode 0700 and then
 *                verified with lstat: a directory (not a symlink), owned by our effective uid,
 *                mode exactly 0700. Anything else (e.g. another user made /tmp/taskscope-<uid>
 *                first) disables the inspector with a one-line message on stderr; the
 *                application runs on.
 *   socket=PATH  exactly PATH; its directory is the user's business.
 * The socket file is made mode 0600 before bind (fchmod on the unbound socket, which Linux
 * applies at bind, so there is no window with a looser mode and the process umask is never
 * touched), checked after bind, and removed at exit. A stale socket at our own path (a previous
 * process with our pid, or a dead one at PATH) is removed; a live one at PATH, or a file that is
 * not a socket, is left alone and disables the inspector. In the private directory, sockets of
 * processes that are gone (no such pid, and nothing accepts a connection) are removed too, so
 * that processes killed without running their exit handlers do not pile up. Peers are checked
 * with SO_PEERCRED.
 */
#include "srv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void disabled(const char *what, const char *path, const char *why) {
  fprintf(stderr, "taskscope: inspector disabled: %s %s: %s\n", what, path, why);
}

/* Creates (if needed) and verifies the per-user directory. */
static int private_dir(const char *dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    disabled("cannot create directory", dir, strerror(errno));
    return -1;
  }
  struct stat st;
  if (lstat(dir, &st) != 0) {
    disabled("cannot check directory", dir, strerror(errno));
    return -1;
  }
  char why[160];
  if (S_ISLNK(st.st_mode)) {
    disabled("directory", dir, "is a symbolic link (expected a private directory)");
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    disabled("directory", dir, "is not a directory");
    return -1;
  }
  if (st.st_uid != geteuid()) {
    snprintf(why, sizeof why, "is owned by uid %u, not by us (uid %u)", (unsigned)st.st_uid,
             (unsigned)geteuid());
    disabled("directory", dir, why);
    return -1;
  }
  if ((st.st_mode & 0777) != 0700) {
    snprintf(why, sizeof why, "has mode %04o, expected 0700", (unsigned)(st.st_mode & 0777));
    disabled("directory", dir, why);
    return -1;
  }
  return 0;
}

/* Whether something accepts connections at path. */
static int socket_alive(const struct sockaddr_un *addr) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int alive = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
  close(fd);
  return alive;
}

/* Removes <pid>.sock files of processes that are gone from our private directory. A pid that
 * exists is left alone without connecting to it; one that does not (in our pid namespace) is
 * removed only if nothing accepts a connection there (it may live in another namespace). */
static void remove_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  int seen = 0;
  while ((e = readdir(d)) != NULL && seen++ < 10000) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (pid <= 0 || strcmp(end, ".sock") != 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s", dir, e->d_name);
    if (n < 0 || (size_t)n >= sizeof addr.sun_path) continue;
    struct stat st;
    if (lstat(addr.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (!socket_alive(&addr)) unlink(addr.sun_path);
  }
  closedir(d);
}

int tsk__srv_listen(const tsk__options *o, char *path, size_t size) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  int n;
  if (o->socket == TSK__SOCKET_PATH) {
    /* A relative PATH is made absolute now, so that the exit handler removes the right file
     * even if the process changed directory meanwhile (when the result still fits). */
    char cwd[TSK__OPTIONS_SOCKET_MAX];
    if (o->socket_path[0] != '/' && getcwd(cwd, sizeof cwd) &&
        strlen(cwd) + 1 + strlen(o->socket_path) < sizeof addr.sun_path)
      n = snprintf(path, size, "%s/%s", cwd, o->socket_path);
    else
      n = snprintf(path, size, "%s", o->socket_path);
  } else {
    char dir[TSK__OPTIONS_PATH_MAX];
    const char *xdg = secure_getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg)
      n = snprintf(dir, sizeof dir, "%s/taskscope", xdg);
    else
      n = snprintf(dir, sizeof dir, "/tmp/taskscope-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= sizeof dir) {
      disabled("directory", dir, "path too long");
      return -1;
    }
    if (private_dir(dir) != 0) return -1;
    remove_stale(dir);
    n = snprintf(path, size, "%s/%d.sock", dir, (int)getpid());
  }
  if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof addr.sun_path) {
    path[size ? size - 1 : 0] = 0;
    disabled("socket", path, "path longer than the 107 bytes a Unix socket address holds");
    return -1;
  }
  memcpy(addr.sun_path, path, (size_t)n + 1);

  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      disabled("socket", path, "exists and is not a socket (left alone)");
      return -1;
    }
    if (o->socket == TSK__SOCKET_PATH && socket_alive(&addr)) {
      disabled("socket", path, "is in use by another process");
      return -1;
    }
    unlink(path); /* stale */
  }

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    disabled("socket", path, strerror(errno));
    return -1;
  }
  (void)fchmod(fd, 0600); /* Linux: the mode the socket file gets at bind (less the umask) */
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    disabled("cannot bind socket", path, strerror(errno));
    close(fd);
    return -1;
  }
  if (lstat(path, &st) != 0 || (st.st_mode & 0777) != 0600) {
    if (chmod(path, 0600) != 0) {
      disabled("cannot make socket mode 0600:", path, strerror(errno));
      unlink(path);
      close(fd);
      return -1;
    }
  }
  if (listen(fd, 64) != 0) {
    disabled("cannot listen on socket", path, strerror(errno));
    unlink(path);
    close(fd);
    return -1;
  }
  return fd;
}

int tsk__srv_peer_allowed(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return 0;
  return cred.uid == geteuid() || cred.uid == 0;
}
