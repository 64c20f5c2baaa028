/*
 * junit.c — `taskscope check --junit FILE`: the merged leak groups as JUnit XML.
 *
 *   <testsuites><testsuite name="taskscope" ...>
 *     <testcase classname="taskscope.KIND" name="KIND: TASK NAME" file=F line=N>
 *       <failure type="KIND" message="HEADLINE: task ... (N tasks like this ...)">
 *         the group's report, as printed by the human report</failure></testcase>
 *     ... one per leak group (kinds left out by --kinds: no <failure>, the report in
 *     <system-out>) ...
 *     <testcase classname="taskscope" name="check: CMD"> with a <failure> when CMD failed, was
 *       killed, or no instrumented process reported; its <system-out> has the verdict.
 *   </testsuite></testsuites>
 *
 * file/line are the group's first user frame (relative to the strip prefix).
 */
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* XML 1.0 text or attribute value: markup characters as entities; control characters XML
 * cannot carry as \xNN; in attributes, TAB/LF/CR as character references so they survive
 * attribute-value normalisation. */
static void xml(FILE *out, const char *s, int attr) {
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    unsigned char c = *p;
    switch (c) {
    case '&': fputs("&amp;", out); break;
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '"':
      if (attr)
        fputs("&quot;", out);
      else
        fputc(c, out);
      break;
    case '\n':
    case '\t':
    case '\r':
      if (attr)
        fprintf(out, "&#%d;", c);
      else
        fputc(c, out);
      break;
    default:
      if (c < 0x20)
        fprintf(out, "\\x%02x", c);
      else
        fputc(c, out);
    }
  }
}

static void testcase_open(FILE *out, const char *classname, const char *name, const char *file,
                          int line) {
  fputs("    <testcase classname=\"", out);
  xml(out, classname, 1);
  fputs("\" name=\"", out);
  xml(out, name, 1);
  fputs("\" time=\"0\"", out);
  if (file) {
    fputs(" file=\"", out);
    xml(out, file, 1);
    fputc('"', out);
    if (line > 0) fprintf(out, " line=\"%d\"", line);
  }
  fputs(">\n", out);
}

int ck_write_junit(const ck_run *r, const char *path) {
  FILE *out = fopen(path, "we");
  if (!out) {
    fflush(stdout);
    fprintf(stderr, "taskscope check: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  int cmd_failed = r->other_failure;
  size_t tests = r->ngroups + 1;
  size_t failures = r->counted_groups + (size_t)cmd_failed;

  char stamp[32] = "";
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm)) strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char host[256] = "localhost";
  if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';

  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
  fprintf(out, "<testsuites name=\"taskscope check\" tests=\"%zu\" failures=\"%zu\" errors=\"0\">\n",
          tests, failures);
  fprintf(out,
          "  <testsuite name=\"taskscope\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
          "skipped=\"0\" time=\"0\" timestamp=\"%s\" hostname=\"",
          tests, failures, stamp);
  xml(out, host, 1);
  fputs("\">\n", out);

  char *cmd = ck_command_string(r);
  fputs("    <properties>\n      <property name=\"command\" value=\"", out);
  xml(out, cmd, 1);
  fprintf(out, "\"/>\n      <property name=\"processes\" value=\"%zu\"/>\n", r->nprocs);
  fprintf(out, "      <property name=\"suppressed\" value=\"%zu\"/>\n", r->suppressed);
  fputs("    </properties>\n", out);

  for (size_t i = 0; i < r->ngroups; i++) {
    const ck_group *g = &r->groups[i];
    const ck_leak *l = &r->leaks[g->rep];
    char classname[64];
    snprintf(classname, sizeof classname, "taskscope.%s", ck_kind_name(l->kind));
    testcase_open(out, classname, g->title, g->where ? ck_path(r, g->where->file) : NULL,
                  g->where ? g->where->line : 0);
    char *text = ck_group_text(r, g);
    if (g->counted) {
      char *one = ck_group_oneline(r, g);
      fputs("      <failure type=\"", out);
      xml(out, ck_kind_name(l->kind), 1);
      fputs("\" message=\"", out);
      xml(out, ck_group_headline(r, g), 1);
      fputs(": ", out);
      xml(out, one, 1);
      fputs("\">", out);
      xml(out, text, 0);
      fputs("</failure>\n", out);
      free(one);
    } else {
      fputs("      <system-out>not counted (--kinds)\n", out);
      xml(out, text, 0);
      fputs("</system-out>\n", out);
    }
    free(text);
    fputs("    </testcase>\n", out);
  }

  char *name = NULL;
  if (asprintf(&name, "check: %s", cmd) < 0) name = NULL;
  testcase_open(out, "taskscope", name ? name : "check", NULL, 0);
  free(name);
  if (cmd_failed) {
    fputs("      <failure type=\"command\" message=\"", out);
    xml(out, r->verdict, 1);
    fputs("\">", out);
    xml(out, r->verdict, 0);
    fputs("</failure>\n", out);
  }
  fputs("      <system-out>", out);
  xml(out, r->verdict, 0);
  fprintf(out, "\n%zu instrumented process%s reported</system-out>\n", r->nprocs,
          r->nprocs == 1 ? "" : "es");
  fputs("    </testcase>\n", out);
  free(cmd);

  fputs("  </testsuite>\n</testsuites>\n", out);
  if (fclose(out) != 0) {
    fflush(stdout);
    fprintf(stderr, "taskscope check: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}
