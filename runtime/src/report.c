/*
 * report.c — the leak report: classification against suppressions, the text report (stderr)
 * and the JSON report (file, written atomically).
 *
 * Text: one block per group of identical records (same kind, task name and creation backtrace
 * after trimming), symbolized, the runtime's frames trimmed; capped; then the suppressions
 * table and the SUMMARY line. JSON: every record (suppressed ones included, flagged), with the
 * same trimmed frames as the text, per the contract in DESIGN.md.
 *
 * Grouping scales to a million records: records are first keyed by their raw creation backtrace
 * (so tsk__bt_trim runs once per distinct backtrace, not per record), then by the trimmed one.
 */
#include "leak.h"

#include "backtrace.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDS_SHOWN 8
#define DEFAULT_MAX_GROUPS 20

static const char *info_when(const tsk__report_info *info) {
  return info && info->when && *info->when ? info->when : "report";
}

/* ------------------------------------------------------------------------------------------ */
/* classification                                                                              */
/* ------------------------------------------------------------------------------------------ */

void tsk__report_classify(tsk__leak *leaks, tsk__suppressions *supp, tsk__report_counts *counts) {
  tsk__report_counts c = {0, 0, 0, 0};
  tsk__suppressions_reset_hits(supp);
  for (tsk__leak *l = leaks; l; l = l->next) {
    l->suppressed = supp && tsk__suppressions_match(supp, l) >= 0;
    if (l->suppressed) {
      c.suppressed++;
      continue;
    }
    switch (l->kind) {
    case TSK__LEAK_PENDING: c.pending++; break;
    case TSK__LEAK_DESTROYED_PENDING: c.destroyed_pending++; break;
    case TSK__LEAK_UNRETRIEVED_ERROR: c.unretrieved_error++; break;
    default: break;
    }
  }
  if (counts) *counts = c;
}

/* ------------------------------------------------------------------------------------------ */
/* grouping                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct group {
  const tsk__leak *rep; /* the first record of the group: its details are shown */
  int first, n;         /* rep->created_at.ips[first .. first + n): the trimmed creation stack */
  size_t count;
  uint64_t ids[IDS_SHOWN];
} group;

/* (kind, name, ips[first .. first+n)) -> group index, open addressing. */
typedef struct key_slot {
  uint64_t hash;
  const tsk__leak *rep;
  int first, n;
  size_t val; /* group index + 1; 0: empty slot */
} key_slot;

typedef struct key_map {
  key_slot *slots;
  size_t cap, n;
} key_map;

typedef struct grouping {
  group *g;
  size_t n, cap;
} grouping;

static uint64_t key_hash(const tsk__leak *l, int first, int n) {
  uint64_t h = 1469598103934665603ULL;
#define MIX(byte)                                                                                  \
  do {                                                                                             \
    h ^= (unsigned char)(byte);                                                                    \
    h *= 1099511628211ULL;                                                                         \
  } while (0)
  MIX(l->kind);
  for (const char *p = l->task.name; *p; p++) MIX(*p);
  MIX(0);
  for (int i = 0; i < n; i++) {
    uint64_t ip = (uint64_t)l->created_at.ips[first + i];
    for (int b = 0; b < 8; b++) MIX(ip >> (8 * b));
  }
#undef MIX
  return h ? h : 1;
}

static int key_eq(const key_slot *s, uint64_t h, const tsk__leak *l, int first, int n) {
  return s->hash == h && s->n == n && s->rep->kind == l->kind &&
         strcmp(s->rep->task.name, l->task.name) == 0 &&
         (n == 0 || memcmp(s->rep->created_at.ips + s->first, l->created_at.ips + first,
                           (size_t)n * sizeof(uintptr_t)) == 0);
}

static key_slot *key_find(key_map *m, uint64_t h, const tsk__leak *l, int first, int n) {
  if (!m->cap) return NULL;
  size_t j = (size_t)h & (m->cap - 1);
  while (m->slots[j].val) {
    if (key_eq(&m->slots[j], h, l, first, n)) return &m->slots[j];
    j = (j + 1) & (m->cap - 1);
  }
  return NULL;
}

static int key_insert(key_map *m, uint64_t h, const tsk__leak *l, int first, int n, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    key_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return TSK_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].val) continue;
      size_t j = (size_t)m->slots[i].hash & (cap - 1);
      while (ns[j].val) j = (j + 1) & (cap - 1);
      ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = cap;
  }
  size_t j = (size_t)h & (m->cap - 1);
  while (m->slots[j].val) j = (j + 1) & (m->cap - 1);
  m->slots[j] = (key_slot){.hash = h, .rep = l, .first = first, .n = n, .val = val};
  m->n++;
  return 0;
}

static void group_add(group *g, const tsk__leak *l) {
  if (g->count < IDS_SHOWN) g->ids[g->count] = l->task.id;
  g->count++;
}

/* Groups the records that are not suppressed, in order of first appearance. When memory runs
 * out, records are no longer merged (each gets a group of its own) and, once no group can be
 * added, the rest are left out of the groups (the counts still include them). */
static int group_records(const tsk__leak *leaks, grouping *out) {
  key_map raw = {0}, trimmed = {0};
  int rc = 0;
  out->g = NULL;
  out->n = out->cap = 0;
  for (const tsk__leak *l = leaks; l; l = l->next) {
    if (l->suppressed) continue;
    size_t gi = (size_t)-1;
    uint64_t hr = key_hash(l, 0, l->created_at.n);
    key_slot *s = rc ? NULL : key_find(&raw, hr, l, 0, l->created_at.n);
    int first = 0, n = l->created_at.n;
    if (s) {
      gi = s->val - 1;
    } else {
      if (n > 0) n = tsk__bt_trim(l->created_at.ips, l->created_at.n, &first);
      uint64_t ht = key_hash(l, first, n);
      key_slot *t = rc ? NULL : key_find(&trimmed, ht, l, first, n);
      if (t) gi = t->val - 1;
      if (gi == (size_t)-1) {
        if (out->n == out->cap) {
          size_t cap = out->cap ? out->cap * 2 : 16;
          group *ng = realloc(out->g, cap * sizeof *ng);
          if (!ng) {
            rc = TSK_ENOMEM;
            break;
          }
          out->g = ng;
          out->cap = cap;
        }
        gi = out->n++;
        out->g[gi] = (group){.rep = l, .first = first, .n = n};
        if (!rc && key_insert(&trimmed, ht, l, first, n, gi + 1)) rc = TSK_ENOMEM;
      }
      if (!rc && key_insert(&raw, hr, l, 0, l->created_at.n, gi + 1)) rc = TSK_ENOMEM;
    }
    group_add(&out->g[gi], l);
  }
  free(raw.slots);
  free(trimmed.slots);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* text                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Prints s with control characters escaped (and '"' and '\' when quoted), so a name or message
 * can never break the report's layout. */
void tsk__report_put_text(FILE *out, const char *s, int quoted) {
  if (!s) s = "";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c == '\n')
      fputs("\\n", out);
    else if (c == '\t')
      fputs("\\t", out);
    else if (c == '\r')
      fputs("\\r", out);
    else if (c < 0x20 || c == 0x7f)
      fprintf(out, "\\x%02x", c);
    else if (quoted && (c == '"' || c == '\\'))
      fprintf(out, "\\%c", c);
    else
      fputc(c, out);
  }
}

static void put_task(FILE *out, uint64_t id, const char *name) {
  fprintf(out, "%llu", (unsigned long long)id);
  if (name && *name) {
    fputs(" \"", out);
    tsk__report_put_text(out, name, 1);
    fputc('"', out);
  }
}

void tsk__report_put_frame(FILE *out, int index, uintptr_t ip) {
  tsk__frame_info fi;
  tsk__bt_symbolize(ip, &fi);
  const char *fn = fi.function ? fi.function : "??";
  fprintf(out, "    #%d 0x%llx in ", index, (unsigned long long)ip);
  tsk__report_put_text(out, fn, 0);
  if (fi.file) {
    fputs(" at ", out);
    tsk__report_put_text(out, fi.file, 0);
    if (fi.line > 0) fprintf(out, ":%d", fi.line);
  } else if (fi.module) {
    fputs(" (", out);
    tsk__report_put_text(out, fi.module, 0);
    fprintf(out, "+0x%llx)", (unsigned long long)fi.module_offset);
  }
  fputc('\n', out);
}

static void put_stack_text(FILE *out, const char *title, const uintptr_t *ips, int n) {
  fprintf(out, "  %s:\n", title);
  for (int i = 0; i < n; i++) tsk__report_put_frame(out, i, ips[i]);
}

static void put_bt_text(FILE *out, const char *title, const tsk__bt *bt, int always) {
  if (bt->n <= 0) {
    if (always) fprintf(out, "  %s: (not recorded)\n", title);
    return;
  }
  int first = 0;
  int n = tsk__bt_trim(bt->ips, bt->n, &first);
  put_stack_text(out, title, bt->ips + first, n);
}

static const char *headline(const tsk__leak *l) {
  switch (l->kind) {
  case TSK__LEAK_DESTROYED_PENDING:
    /* A stranded task is not destroyed (it is woken with TSK_EBROKEN), but it can never get
     * what it waited for: the same kind, a truthful headline. */
    if (strncmp(l->reason, "stranded", 8) == 0)
      return "Task is stranded: nothing can ever complete what it awaits (destroyed_pending)";
    return "Task was destroyed but it is pending!";
  case TSK__LEAK_UNRETRIEVED_ERROR: return "Task exception was never retrieved";
  default: return NULL;
  }
}

static void put_group_text(FILE *out, const group *g, const tsk__report_info *info) {
  const tsk__leak *l = g->rep;
  const char *h = headline(l);
  if (h)
    fprintf(out, "taskscope: %s\n", h);
  else
    fprintf(out, "taskscope: Task is still pending at %s\n", info_when(info));

  fputs("  task ", out);
  put_task(out, l->task.id, l->task.name);
  if (g->count > 1) {
    fprintf(out, " (%zu tasks like this; ids ", g->count);
    size_t shown = g->count < IDS_SHOWN ? g->count : IDS_SHOWN;
    for (size_t i = 0; i < shown; i++)
      fprintf(out, "%s%llu", i ? ", " : "", (unsigned long long)g->ids[i]);
    fputs(g->count > IDS_SHOWN ? ", ...)" : ")", out);
  }
  fputc('\n', out);

  if (l->chain_len > 0 || l->parent_id) {
    fputs("  spawned by ", out);
    if (l->chain_len > 0) {
      int n = l->chain_len < TSK__LEAK_CHAIN ? l->chain_len : TSK__LEAK_CHAIN;
      for (int i = 0; i < n; i++) {
        if (i) fputs(" <- ", out);
        put_task(out, l->chain[i].id, l->chain[i].name);
      }
    } else {
      put_task(out, l->parent_id, NULL);
    }
    fputc('\n', out);
  }

  fprintf(out, "  state: %s", tsk__task_state_name(l->state));
  if (l->awaiting != TSK_WAIT_NONE) {
    fprintf(out, ", waiting on %s", tsk__wait_kind_name(l->awaiting));
    if (l->awaiting_id) fprintf(out, " %llu", (unsigned long long)l->awaiting_id);
  }
  fprintf(out, " (age %llu ms)\n", (unsigned long long)l->age_ms);

  if (l->reason[0]) {
    fputs("  reason: ", out);
    tsk__report_put_text(out, l->reason, 0);
    fputc('\n', out);
  }
  if (l->kind == TSK__LEAK_UNRETRIEVED_ERROR) {
    fprintf(out, "  error: %s (%s)", tsk_err_name(l->error), tsk_strerror(l->error));
    if (l->message && *l->message) {
      fputs(": ", out);
      tsk__report_put_text(out, l->message, 0);
    }
    fputc('\n', out);
  }

  /* The creation stack was trimmed when grouping. */
  if (l->created_at.n > 0)
    put_stack_text(out, "created at", l->created_at.ips + g->first, g->n);
  else
    fputs("  created at: (not recorded)\n", out);
  put_bt_text(out, "suspended at", &l->suspended_at, 0);
  put_bt_text(out, "raised at", &l->raised_at, 0);
  put_bt_text(out, "last completer dropped at", &l->dropped_at, 0);
  fputc('\n', out);
}

static void put_suppressions_text(FILE *out, const tsk__suppressions *supp) {
  size_t n = tsk__suppressions_count(supp), used = 0;
  for (size_t i = 0; i < n; i++) used += tsk__suppressions_entry(supp, i)->hits > 0;
  if (used) {
    fputs("Suppressions used:\n  count  pattern\n", out);
    for (size_t i = 0; i < n; i++) {
      const tsk__suppression *e = tsk__suppressions_entry(supp, i);
      if (!e->hits) continue;
      fprintf(out, "  %5zu  ", e->hits);
      tsk__report_put_text(out, e->text, 0);
      fputc('\n', out);
    }
  }
  for (size_t i = 0; i < n; i++) {
    const tsk__suppression *e = tsk__suppressions_entry(supp, i);
    if (e->hits) continue;
    fputs("warning: suppression '", out);
    tsk__report_put_text(out, e->text, 0);
    fputs("' (", out);
    tsk__report_put_text(out, e->file, 0);
    fprintf(out, ":%d) matched nothing\n", e->line);
  }
  if (n) fputc('\n', out);
}

void tsk__report_text(FILE *out, tsk__leak *leaks, tsk__suppressions *supp,
                      const tsk__report_info *info) {
  if (!out || !leaks) return;
  tsk__report_counts c;
  tsk__report_classify(leaks, supp, &c);

  grouping gr;
  group_records(leaks, &gr); /* on ENOMEM the groups made so far are still shown */
  size_t max = info && info->max_groups_text ? info->max_groups_text : DEFAULT_MAX_GROUPS;
  size_t shown = gr.n < max ? gr.n : max;
  for (size_t i = 0; i < shown; i++) put_group_text(out, &gr.g[i], info);
  if (gr.n > shown) {
    size_t records = 0;
    for (size_t i = shown; i < gr.n; i++) records += gr.g[i].count;
    fprintf(out, "... and %zu more groups (%zu records) not shown\n\n", gr.n - shown, records);
  }
  free(gr.g);

  put_suppressions_text(out, supp);
  fprintf(out, "SUMMARY: taskscope: %zu pending, %zu destroyed_pending, %zu unretrieved_error (%zu "
               "suppressed)\n",
          c.pending, c.destroyed_pending, c.unretrieved_error, c.suppressed);
  fflush(out);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void json_str(tsk__jbuf *b, const char *s) { tsk__jbuf_str(b, s); }

void tsk__report_json_frames(tsk__jbuf *b, const uintptr_t *ips, int count) {
  tsk__jbuf_putc(b, '[');
  if (ips && count > 0) {
    int first = 0;
    int n = tsk__bt_trim(ips, count, &first);
    for (int i = 0; i < n; i++) {
      uintptr_t ip = ips[first + i];
      tsk__frame_info fi;
      tsk__bt_symbolize(ip, &fi);
      const char *fn = fi.function && strcmp(fi.function, "??") != 0 ? fi.function : NULL;
      tsk__jbuf_puts(b, i ? ",{\"ip\":" : "{\"ip\":");
      tsk__jbuf_hex_str(b, (uint64_t)ip);
      tsk__jbuf_puts(b, ",\"function\":");
      json_str(b, fn);
      tsk__jbuf_puts(b, ",\"file\":");
      json_str(b, fi.file);
      tsk__jbuf_puts(b, ",\"line\":");
      if (fi.line > 0)
        tsk__jbuf_i64(b, fi.line);
      else
        tsk__jbuf_puts(b, "null");
      tsk__jbuf_puts(b, ",\"module\":");
      json_str(b, fi.module);
      tsk__jbuf_putc(b, '}');
    }
  }
  tsk__jbuf_putc(b, ']');
}

static void json_frames(tsk__jbuf *b, const tsk__bt *bt) {
  tsk__report_json_frames(b, bt->ips, bt->n);
}

void tsk__report_json_awaiting(tsk__jbuf *b, tsk_wait_kind_t kind, uint64_t id) {
  if (kind == TSK_WAIT_NONE) {
    tsk__jbuf_puts(b, "null");
    return;
  }
  tsk__jbuf_puts(b, "{\"kind\":");
  json_str(b, tsk__wait_kind_name(kind));
  tsk__jbuf_puts(b, ",\"id\":");
  tsk__jbuf_opt_u64(b, id);
  tsk__jbuf_putc(b, '}');
}

static void json_task_ref(tsk__jbuf *b, uint64_t id, const char *name) {
  tsk__jbuf_puts(b, "{\"id\":");
  tsk__jbuf_u64(b, id);
  tsk__jbuf_puts(b, ",\"name\":");
  json_str(b, name);
  tsk__jbuf_putc(b, '}');
}

void tsk__report_json_leak(tsk__jbuf *b, const tsk__leak *l) {
  tsk__jbuf_puts(b, "{\"kind\":");
  json_str(b, tsk__leak_kind_name(l->kind));
  tsk__jbuf_puts(b, l->suppressed ? ",\"suppressed\":true,\"reason\":"
                                  : ",\"suppressed\":false,\"reason\":");
  json_str(b, l->reason);
  tsk__jbuf_puts(b, ",\"age_ms\":");
  tsk__jbuf_u64(b, l->age_ms);

  tsk__jbuf_puts(b, ",\"task\":{\"id\":");
  tsk__jbuf_u64(b, l->task.id);
  tsk__jbuf_puts(b, ",\"name\":");
  json_str(b, l->task.name);
  tsk__jbuf_puts(b, ",\"parent\":");
  tsk__jbuf_opt_u64(b, l->parent_id);
  tsk__jbuf_puts(b, ",\"state\":");
  json_str(b, tsk__task_state_name(l->state));
  tsk__jbuf_puts(b, ",\"awaiting\":");
  tsk__report_json_awaiting(b, l->awaiting, l->awaiting_id);
  tsk__jbuf_putc(b, '}');

  tsk__jbuf_puts(b, ",\"chain\":[");
  int n = l->chain_len < TSK__LEAK_CHAIN ? l->chain_len : TSK__LEAK_CHAIN;
  for (int i = 0; i < n; i++) {
    if (i) tsk__jbuf_putc(b, ',');
    json_task_ref(b, l->chain[i].id, l->chain[i].name);
  }
  tsk__jbuf_putc(b, ']');

  tsk__jbuf_puts(b, ",\"error\":");
  if (l->kind == TSK__LEAK_UNRETRIEVED_ERROR) {
    tsk__jbuf_puts(b, "{\"code\":");
    tsk__jbuf_i64(b, l->error);
    tsk__jbuf_puts(b, ",\"name\":");
    json_str(b, tsk_err_name(l->error));
    tsk__jbuf_puts(b, ",\"message\":");
    json_str(b, l->message && *l->message ? l->message : tsk_strerror(l->error));
    tsk__jbuf_puts(b, ",\"description\":");
    json_str(b, tsk_strerror(l->error));
    tsk__jbuf_putc(b, '}');
  } else {
    tsk__jbuf_puts(b, "null");
  }

  tsk__jbuf_puts(b, ",\"created_at\":");
  json_frames(b, &l->created_at);
  tsk__jbuf_puts(b, ",\"suspended_at\":");
  json_frames(b, &l->suspended_at);
  tsk__jbuf_puts(b, ",\"raised_at\":");
  json_frames(b, &l->raised_at);
  tsk__jbuf_puts(b, ",\"dropped_at\":");
  json_frames(b, &l->dropped_at);
  tsk__jbuf_putc(b, '}');
}

/* The document's opening, up to and including "leaks":[ (the records are classified first).
 * compact: no line breaks (one line, for the inspector protocol). */
static void json_head(tsk__jbuf *b, tsk__leak *leaks, tsk__suppressions *supp,
                      const tsk__report_info *info, int compact) {
  const char *nl = compact ? "" : "\n";
  tsk__report_counts c;
  tsk__report_classify(leaks, supp, &c);
  tsk__jbuf_puts(b, "{\"format\":\"taskscope-report\",\"version\":1,\"pid\":");
  tsk__jbuf_i64(b, info && info->pid ? info->pid : (int)getpid());
  tsk__jbuf_puts(b, ",\"program\":");
  json_str(b, info ? info->program : NULL);
  tsk__jbuf_puts(b, ",\"when\":");
  json_str(b, info_when(info));
  tsk__jbuf_puts(b, ",");
  tsk__jbuf_puts(b, nl);
  tsk__jbuf_puts(b, "\"summary\":{\"pending\":");
  tsk__jbuf_u64(b, c.pending);
  tsk__jbuf_puts(b, ",\"destroyed_pending\":");
  tsk__jbuf_u64(b, c.destroyed_pending);
  tsk__jbuf_puts(b, ",\"unretrieved_error\":");
  tsk__jbuf_u64(b, c.unretrieved_error);
  tsk__jbuf_puts(b, ",\"suppressed\":");
  tsk__jbuf_u64(b, c.suppressed);
  tsk__jbuf_puts(b, "},");
  tsk__jbuf_puts(b, nl);
  tsk__jbuf_puts(b, "\"suppressions\":[");
  size_t ns = tsk__suppressions_count(supp);
  for (size_t i = 0; i < ns; i++) {
    const tsk__suppression *e = tsk__suppressions_entry(supp, i);
    tsk__jbuf_puts(b, i ? "," : "");
    tsk__jbuf_puts(b, compact ? "{\"pattern\":" : "\n {\"pattern\":");
    json_str(b, e->text);
    tsk__jbuf_puts(b, ",\"file\":");
    json_str(b, e->file);
    tsk__jbuf_puts(b, ",\"line\":");
    tsk__jbuf_i64(b, e->line);
    tsk__jbuf_puts(b, ",\"hits\":");
    tsk__jbuf_u64(b, e->hits);
    tsk__jbuf_putc(b, '}');
  }
  tsk__jbuf_puts(b, "],");
  tsk__jbuf_puts(b, nl);
  tsk__jbuf_puts(b, "\"leaks\":[");
}

int tsk__report_json_doc(tsk__jbuf *b, tsk__leak *leaks, tsk__suppressions *supp,
                         const tsk__report_info *info, int compact) {
  json_head(b, leaks, supp, info, compact);
  for (const tsk__leak *l = leaks; l; l = l->next) {
    if (compact)
      tsk__jbuf_puts(b, l == leaks ? "" : ",");
    else
      tsk__jbuf_puts(b, l == leaks ? "\n " : ",\n ");
    tsk__report_json_leak(b, l);
  }
  tsk__jbuf_puts(b, compact ? "]}" : "]}\n");
  return b->oom ? TSK_ENOMEM : 0;
}

/* Writes the buffer out and empties it; 0 or -1 (oom or a write error). */
static int flush_buf(FILE *out, tsk__jbuf *b) {
  if (b->oom) return -1;
  if (b->len && fwrite(b->p, 1, b->len, out) != b->len) return -1;
  b->len = 0;
  return 0;
}

int tsk__report_json_fprint(FILE *out, tsk__leak *leaks, tsk__suppressions *supp,
                            const tsk__report_info *info) {
  if (!out) return TSK_EINVAL;
  /* One record at a time, so memory stays bounded whatever the number of records. */
  tsk__jbuf b;
  tsk__jbuf_init(&b);
  int oom = 0;
  json_head(&b, leaks, supp, info, 0);
  if (flush_buf(out, &b)) oom = b.oom;
  for (const tsk__leak *l = leaks; l && !oom; l = l->next) {
    tsk__jbuf_puts(&b, l == leaks ? "\n " : ",\n ");
    tsk__report_json_leak(&b, l);
    if (flush_buf(out, &b)) oom = b.oom;
  }
  tsk__jbuf_puts(&b, "]}\n");
  if (flush_buf(out, &b)) oom = oom || b.oom;
  tsk__jbuf_free(&b);
  if (oom) return TSK_ENOMEM;
  errno = 0;
  if (fflush(out) != 0 || ferror(out)) return errno > 0 ? -errno : -EIO;
  return 0;
}

/* Best effort: makes the rename durable. */
static void fsync_dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(copy);
}

int tsk__report_json_write(const char *path, tsk__leak *leaks, tsk__suppressions *supp,
                           const tsk__report_info *info) {
  if (!path || !*path) return TSK_EINVAL;
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  if (!tmp) return TSK_ENOMEM;
  snprintf(tmp, len, "%s.tmp.%d", path, (int)getpid());

  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) {
    rc = -errno;
    free(tmp);
    return rc;
  }
  FILE *f = fdopen(fd, "w");
  if (!f) {
    rc = -errno;
    close(fd);
    goto fail;
  }
  rc = tsk__report_json_fprint(f, leaks, supp, info);
  if (rc == 0 && fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS) rc = -errno;
  errno = 0;
  if (fclose(f) != 0 && rc == 0) rc = errno > 0 ? -errno : -EIO;
  if (rc) goto fail;
  if (rename(tmp, path) != 0) {
    rc = -errno;
    goto fail;
  }
  fsync_dir_of(path);
  free(tmp);
  return 0;

fail:
  unlink(tmp);
  free(tmp);
  return rc;
}
