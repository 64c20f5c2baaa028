/*
 * symbolize.c — return addresses to function, file:line and module, lazily and cached; and the
 * classification of frames as the runtime's, libuv's or the user's.
 *
 * Sources, best first: DWARF through libdw (elfutils) for the innermost function at the call
 * site and its file:line (also from separate debug files found on this machine, never
 * downloaded: see find_debuginfo_local), the ELF symbol table through libdw for the containing
 * symbol, and dladdr() when libdw knows nothing (dynamic symbols only).
 *
 * State, all behind one mutex (libdw sessions are not thread-safe, and the inspector thread
 * symbolizes too): the libdw session for this process, an ip -> result cache, and a table of
 * interned strings that every result points into. The strings outlive cache evictions and
 * sessions, so a result stays valid until tsk__bt_symbolize_cleanup(); their number is bounded
 * by the distinct names in the process, not by the number of lookups.
 */
#include "backtrace.h"

#include "internal.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <limits.h>
#include <libelf.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- interned strings (owned here; freed only by tsk__bt_symbolize_cleanup) ---- */

typedef struct intern_table {
  char **slots;
  size_t cap; /* power of two, or 0 */
  size_t len;
} intern_table;

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int intern_grow(intern_table *t) {
  size_t cap = t->cap ? t->cap * 2 : 256;
  char **slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slots[i]) continue;
    size_t j = str_hash(t->slots[i]) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = t->slots[i];
  }
  free(t->slots);
  t->slots = slots;
  t->cap = cap;
  return 0;
}

/* The interned copy of s (NULL for NULL, or when out of memory). */
static const char *intern(intern_table *t, const char *s) {
  if (!s) return NULL;
  if (t->len * 2 >= t->cap && intern_grow(t) != 0) return NULL;
  size_t j = str_hash(s) & (t->cap - 1);
  while (t->slots[j]) {
    if (strcmp(t->slots[j], s) == 0) return t->slots[j];
    j = (j + 1) & (t->cap - 1);
  }
  char *copy = strdup(s);
  if (!copy) return NULL;
  t->slots[j] = copy;
  t->len++;
  return copy;
}

static void intern_free(intern_table *t) {
  for (size_t i = 0; i < t->cap; i++) free(t->slots[i]);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

/* ---- the ip -> result cache (open addressing; ip 0 is never cached) ---- */

#define CACHE_MAX_ENTRIES 65536 /* at most half full, so at most 131072 slots */

typedef struct cache_entry {
  tsk__frame_info fi;
  int found; /* tsk__bt_symbolize's return value */
} cache_entry;

typedef struct ip_cache {
  cache_entry *slots; /* slots[i].fi.ip == 0: empty */
  size_t cap;         /* power of two, or 0 */
  size_t len;
} ip_cache;

static size_t ip_hash(uintptr_t ip) {
  uint64_t h = (uint64_t)ip * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17);
}

static cache_entry *cache_find(ip_cache *c, uintptr_t ip) {
  if (!c->cap || !ip) return NULL;
  for (size_t j = ip_hash(ip) & (c->cap - 1);; j = (j + 1) & (c->cap - 1)) {
    if (c->slots[j].fi.ip == ip) return &c->slots[j];
    if (c->slots[j].fi.ip == 0) return NULL;
  }
}

static void cache_clear(ip_cache *c) {
  free(c->slots);
  memset(c, 0, sizeof *c);
}

static int cache_grow(ip_cache *c) {
  size_t cap = c->cap ? c->cap * 2 : 1024;
  cache_entry *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->slots[i].fi.ip) continue;
    size_t j = ip_hash(c->slots[i].fi.ip) & (cap - 1);
    while (slots[j].fi.ip) j = (j + 1) & (cap - 1);
    slots[j] = c->slots[i];
  }
  free(c->slots);
  c->slots = slots;
  c->cap = cap;
  return 0;
}

/* Simple eviction: a full cache is emptied (results handed out stay valid: their strings are
 * interned, not owned by entries). */
static void cache_put(ip_cache *c, const tsk__frame_info *fi, int found) {
  if (!fi->ip) return;
  if (c->len >= CACHE_MAX_ENTRIES) cache_clear(c);
  if (c->len * 2 >= c->cap && cache_grow(c) != 0) return;
  size_t j = ip_hash(fi->ip) & (c->cap - 1);
  while (c->slots[j].fi.ip && c->slots[j].fi.ip != fi->ip) j = (j + 1) & (c->cap - 1);
  if (!c->slots[j].fi.ip) c->len++;
  c->slots[j].fi = *fi;
  c->slots[j].found = found;
}

/* ---- the symbolizer's state ---- */

static pthread_mutex_t sym_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *sym_dwfl;             /* NULL until first needed, or after a reset */
static int sym_dwfl_failed;        /* building the session failed: use dladdr only */
static unsigned long long sym_objects_gen; /* loaded-object adds+subs when the session was built */
static char *sym_debuginfo_path;   /* NULL: libdw's default (used by the build-ID lookup) */
static ip_cache sym_cache;
static intern_table sym_strings;

/* Whether the ELF file open on fd carries the build ID want (or want is empty). */
static int build_id_matches(int fd, const unsigned char *want, int want_len) {
  if (want_len <= 0) return 1;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  if (!elf) return 0;
  const void *id = NULL;
  ssize_t len = dwelf_elf_gnu_build_id(elf, &id);
  int ok = len == want_len && memcmp(id, want, (size_t)len) == 0;
  elf_end(elf);
  return ok;
}

/* Finds a module's separate debug file on this machine only: by build ID under
 * /usr/lib/debug/.build-id (how distributions install debug packages), then by .gnu_debuglink
 * next to the file, in .debug/ beside it and under /usr/lib/debug (GDB's places; the file must
 * carry the module's build ID). dwfl_standard_find_debuginfo is not used because, with
 * DEBUGINFOD_URLS set (Debian sets it for login shells), it would download debug files from the
 * network, each query with a 90 s timeout: not something a leak report at exit may do. */
static int find_debuginfo_local(Dwfl_Module *mod, void **userdata, const char *modname,
                                Dwarf_Addr base, const char *file_name,
                                const char *debuglink_file, GElf_Word debuglink_crc,
                                char **debuginfo_file_name) {
  int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
  if (fd >= 0 || !debuglink_file || !file_name || file_name[0] != '/') return fd;
  const unsigned char *id = NULL;
  GElf_Addr id_vaddr;
  int id_len = dwfl_module_build_id(mod, &id, &id_vaddr);
  const char *slash = strrchr(file_name, '/');
  int dir_len = (int)(slash - file_name);
  static const char *const formats[] = {"%.*s/%s", "%.*s/.debug/%s", "/usr/lib/debug%.*s/%s"};
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, formats[i], dir_len, file_name, debuglink_file);
    if (n < 0 || (size_t)n >= sizeof path || strcmp(path, file_name) == 0) continue;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (build_id_matches(fd, id, id_len)) {
      *debuginfo_file_name = strdup(path);
      return fd;
    }
    close(fd);
  }
  return -1;
}

static const Dwfl_Callbacks sym_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_debuginfo_local,
    .debuginfo_path = &sym_debuginfo_path,
};

/* glibc counts objects loaded and unloaded since start (dlpi_adds, dlpi_subs): a change means
 * the session's module list is stale. */
static int objects_gen_cb(struct dl_phdr_info *info, size_t size, void *data) {
  unsigned long long *gen = data;
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
    *gen = info->dlpi_adds + info->dlpi_subs;
  return 1; /* the first object is enough: the counters are global */
}

static unsigned long long objects_gen(void) {
  unsigned long long gen = 0;
  dl_iterate_phdr(objects_gen_cb, &gen);
  return gen;
}

static void session_drop(void) {
  if (sym_dwfl) dwfl_end(sym_dwfl);
  sym_dwfl = NULL;
  sym_dwfl_failed = 0;
  cache_clear(&sym_cache);
}

/* The libdw session, (re)built when missing or stale. NULL when libdw cannot be used. Called
 * with sym_lock held. */
static Dwfl *session_get(void) {
  unsigned long long gen = objects_gen();
  if ((sym_dwfl || sym_dwfl_failed) && gen != sym_objects_gen) session_drop();
  if (sym_dwfl || sym_dwfl_failed) return sym_dwfl;
  sym_objects_gen = gen;
  Dwfl *d = dwfl_begin(&sym_callbacks);
  if (d) {
    dwfl_report_begin(d);
    if (dwfl_linux_proc_report(d, getpid()) != 0 || dwfl_report_end(d, NULL, NULL) != 0) {
      dwfl_end(d);
      d = NULL;
    }
  }
  sym_dwfl = d;
  sym_dwfl_failed = d == NULL;
  return d;
}

/* Whether pc lies in a loaded segment of some object (dladdr alone is not to be trusted with
 * addresses outside every object: glibc may still name one). */
static int mapped_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  uintptr_t pc = *(const uintptr_t *)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && pc >= lo && pc - lo < ph->p_memsz) return 1;
  }
  return 0;
}

static int in_loaded_object(uintptr_t pc) { return dl_iterate_phdr(mapped_cb, &pc) != 0; }

/* The compilation unit holding pc. libdwfl finds it through .debug_aranges, which clang does
 * not emit by default (and libdw before 0.191 does not build them from the units' own ranges);
 * with some units covered and others not (gcc's and clang's objects in one program) it answers
 * with the nearest covered unit instead. So its answer is checked, and else each unit's
 * address ranges are looked at in turn. NULL if none holds pc. */
static Dwarf_Die *cu_of(Dwfl_Module *mod, Dwarf_Addr pc, Dwarf_Addr *bias) {
  Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, bias);
  if (cu && dwarf_haspc(cu, pc - *bias) == 1) return cu;
  cu = NULL;
  while ((cu = dwfl_module_nextcu(mod, cu, bias)) != NULL)
    if (dwarf_haspc(cu, pc - *bias) == 1) return cu;
  return NULL;
}

/* For an address whose row says line 0 (code the compiler could not attribute to one line:
 * clang emits such rows, e.g. for a call shared by two branches): the line of the closest row
 * before it in the same sequence that has one, as objdump -l shows. 0 if there is none. */
static int line_before(Dwarf_Die *cu, Dwarf_Addr addr, const char **file) {
  Dwarf_Lines *lines;
  size_t n;
  if (dwarf_getsrclines(cu, &lines, &n) != 0) return 0;
  int best_line = 0;
  const char *best_file = NULL;
  for (size_t i = 0; i < n; i++) { /* libdw sorts the rows by address */
    Dwarf_Line *l = dwarf_onesrcline(lines, i);
    Dwarf_Addr a;
    int line;
    bool end;
    if (!l || dwarf_lineaddr(l, &a) != 0 || dwarf_lineno(l, &line) != 0) continue;
    if (a > addr) break;
    if (dwarf_lineendsequence(l, &end) == 0 && end) { /* rows before it are another sequence's */
      best_line = 0;
      continue;
    }
    if (line > 0) {
      best_line = line;
      best_file = dwarf_linesrc(l, NULL, NULL);
    }
  }
  if (best_line && best_file) *file = best_file;
  return best_file ? best_line : 0;
}

/* The innermost function (inlined or not) whose code holds pc, per DWARF; NULL if unknown. */
static const char *dwarf_function(Dwarf_Die *cu, Dwarf_Addr bias, Dwarf_Addr pc) {
  if (!cu) return NULL;
  Dwarf_Die *scopes = NULL;
  int n = dwarf_getscopes(cu, pc - bias, &scopes);
  const char *name = NULL;
  for (int i = 0; i < n && !name; i++) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine)
      name = dwarf_diename(&scopes[i]);
    if (tag == DW_TAG_subprogram) break; /* the outermost function: stop even if unnamed */
  }
  free(scopes);
  return name;
}

/* Fills *fi (strings interned) for the return address ip. Called with sym_lock held. */
static int resolve(uintptr_t ip, tsk__frame_info *fi) {
  memset(fi, 0, sizeof *fi);
  fi->ip = ip;
  fi->function = "??";
  if (ip <= 1) return UV_ENOENT; /* no call site precedes address 0 */
  uintptr_t pc = ip - 1;
  const char *function = NULL, *symbol = NULL, *file = NULL, *module = NULL;
  Dwfl *d = session_get();
  Dwfl_Module *mod = d ? dwfl_addrmodule(d, pc) : NULL;
  Dwarf_Addr start = 0, end = 0;
  /* libdwfl answers with the last module for addresses past every module: check the range. */
  if (mod) module = dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
  if (mod && (pc < start || pc >= end)) mod = NULL, module = NULL;
  if (mod) {
    if (module) fi->module_offset = ip - (uintptr_t)start;
    GElf_Off off = 0;
    GElf_Sym sym;
    symbol = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
    if (symbol) fi->sym_offset = (uintptr_t)off + 1;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = cu_of(mod, pc, &bias);
    function = dwarf_function(cu, bias, pc);
    /* The line from that unit's own line table (not dwfl_module_getsrc: see cu_of). */
    Dwarf_Line *l = cu ? dwarf_getsrc_die(cu, pc - bias) : NULL;
    if (l && (file = dwarf_linesrc(l, NULL, NULL)) != NULL) dwarf_lineno(l, &fi->line);
    if (file && fi->line == 0) fi->line = line_before(cu, pc - bias, &file);
    if (!file) fi->line = 0;
  }
  if ((!symbol || !module) && in_loaded_object(pc)) {
    Dl_info dl;
    if (dladdr((void *)pc, &dl) != 0) {
      if (!module && dl.dli_fname && dl.dli_fname[0]) {
        module = dl.dli_fname;
        fi->module_offset = ip - (uintptr_t)dl.dli_fbase;
      }
      if (!symbol && dl.dli_sname) {
        symbol = dl.dli_sname;
        fi->sym_offset = ip - (uintptr_t)dl.dli_saddr;
      }
    }
  }
  fi->symbol = intern(&sym_strings, symbol);
  fi->function = intern(&sym_strings, function ? function : symbol);
  fi->file = intern(&sym_strings, file);
  fi->module = intern(&sym_strings, module);
  int found = fi->function || fi->module ? 0 : UV_ENOENT;
  if (!fi->function) fi->function = "??";
  if (!fi->file) fi->line = 0;
  return found;
}

/* fork() while another thread (the inspector server) holds sym_lock would leave the child with
 * a lock nobody will ever release: take it around fork, release it on both sides. */
static void atfork_prepare(void) { pthread_mutex_lock(&sym_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&sym_lock); }
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_register(void) {
  pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

int tsk__bt_symbolize(uintptr_t ip, tsk__frame_info *out) {
  if (!out) return TSK_EINVAL;
  pthread_once(&atfork_once, atfork_register);
  pthread_mutex_lock(&sym_lock);
  int rc;
  cache_entry *e = cache_find(&sym_cache, ip);
  if (e) {
    *out = e->fi;
    rc = e->found;
  } else {
    rc = resolve(ip, out);
    cache_put(&sym_cache, out, rc);
  }
  pthread_mutex_unlock(&sym_lock);
  return rc;
}

void tsk__bt_symbolize_reset(void) {
  pthread_mutex_lock(&sym_lock);
  session_drop();
  pthread_mutex_unlock(&sym_lock);
}

void tsk__bt_symbolize_cleanup(void) {
  pthread_mutex_lock(&sym_lock);
  session_drop();
  intern_free(&sym_strings);
  pthread_mutex_unlock(&sym_lock);
}

void tsk__bt_entry_name(uintptr_t fn, char *buf, size_t size) {
  tsk__frame_info fi;
  /* +1: symbolization looks up ip - 1, which must stay inside the function. */
  if (fn && tsk__bt_symbolize(fn + 1, &fi) == 0 && strcmp(fi.function, "??") != 0)
    snprintf(buf, size, "%s", fi.function);
  else
    snprintf(buf, size, "task");
}

/* ---- classification ---- */

#define MAX_RANGES 8

typedef struct object_ranges {
  uintptr_t lo[MAX_RANGES], hi[MAX_RANGES]; /* executable segments */
  int n;
  int is_main; /* the main executable (static linking): ranges say nothing about the code */
} object_ranges;

static struct {
  object_ranges self; /* the object holding libtaskscope */
  object_ranges uv;   /* the object holding libuv */
  char src_dir[PATH_MAX]; /* directory of the runtime's sources per DWARF; "" if unknown */
} layout;

static pthread_once_t layout_once = PTHREAD_ONCE_INIT;

static int in_ranges(const object_ranges *r, uintptr_t a) {
  for (int i = 0; i < r->n; i++)
    if (a >= r->lo[i] && a < r->hi[i]) return 1;
  return 0;
}

typedef struct layout_scan {
  uintptr_t self_addr, uv_addr;
  int index;
} layout_scan;

static void scan_object(struct dl_phdr_info *info, int index, uintptr_t addr, object_ranges *r) {
  object_ranges tmp = {.n = 0, .is_main = index == 0};
  int holds = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (addr >= lo && addr < hi) holds = 1;
    if (tmp.n < MAX_RANGES) {
      tmp.lo[tmp.n] = lo;
      tmp.hi[tmp.n] = hi;
      tmp.n++;
    }
  }
  if (holds) *r = tmp;
}

static int layout_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  layout_scan *s = data;
  scan_object(info, s->index, s->self_addr, &layout.self);
  scan_object(info, s->index, s->uv_addr, &layout.uv);
  s->index++;
  return 0;
}

static void layout_init(void) {
  layout_scan s = {.self_addr = (uintptr_t)&tsk__bt_is_runtime_frame,
                   .uv_addr = (uintptr_t)&uv_run, .index = 0};
  dl_iterate_phdr(layout_cb, &s);
  /* The runtime's source directory: where DWARF says this very function is (+1: symbolize
   * takes return addresses and looks one byte back). */
  tsk__frame_info fi;
  layout.src_dir[0] = 0;
  if (tsk__bt_symbolize((uintptr_t)&tsk__bt_is_runtime_frame + 1, &fi) == 0 && fi.file) {
    const char *slash = strrchr(fi.file, '/');
    size_t n = slash ? (size_t)(slash - fi.file + 1) : 0;
    if (n > 0 && n < sizeof layout.src_dir) {
      memcpy(layout.src_dir, fi.file, n);
      layout.src_dir[n] = 0;
    }
  }
}

static int has_prefix(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

int tsk__bt_is_runtime_frame(uintptr_t ip) {
  pthread_once(&layout_once, layout_init);
  uintptr_t pc = ip ? ip - 1 : 0;
  if (!layout.self.is_main && in_ranges(&layout.self, pc)) return TSK__BT_FRAME_RUNTIME;
  if (!layout.uv.is_main && in_ranges(&layout.uv, pc)) return TSK__BT_FRAME_LOOP;
  int self_static = layout.self.is_main && in_ranges(&layout.self, pc);
  int uv_static = layout.uv.is_main && in_ranges(&layout.uv, pc);
  if (!self_static && !uv_static) return TSK__BT_FRAME_USER;
  tsk__frame_info fi;
  if (tsk__bt_symbolize(ip, &fi) != 0) return TSK__BT_FRAME_USER;
  if (self_static) {
    if (has_prefix(fi.symbol, "tsk_") || has_prefix(fi.function, "tsk_"))
      return TSK__BT_FRAME_RUNTIME;
    if (layout.src_dir[0] && has_prefix(fi.file, layout.src_dir)) return TSK__BT_FRAME_RUNTIME;
  }
  if (uv_static && (has_prefix(fi.symbol, "uv_") || has_prefix(fi.function, "uv_")))
    return TSK__BT_FRAME_LOOP;
  return TSK__BT_FRAME_USER;
}

int tsk__bt_trim(const uintptr_t *ips, int n, int *first) {
  int lo = 0, hi = n;
  while (lo < hi && tsk__bt_is_runtime_frame(ips[lo]) != TSK__BT_FRAME_USER) lo++;
  while (hi > lo && tsk__bt_is_runtime_frame(ips[hi - 1]) != TSK__BT_FRAME_USER) hi--;
  if (lo == hi) {
    *first = 0;
    return n;
  }
  *first = lo;
  return hi - lo;
}
