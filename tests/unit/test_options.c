/* test_options.c — TASKSCOPE_OPTIONS parsing, validation, formatting and the env policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "options.h"

#define DEFAULTS_TEXT                                                                              \
  "backtrace=spawn:frames=16:report=:exitcode=0:suppressions=:socket=auto:stack_size=256k:"      \
  "history=1024:verbosity=0:settle_ms=100:report_text=on:busy_time=off:strict=off"

/* Parses spec, which must succeed, and returns the result. */
static tsk__options parse_ok(const char *spec) {
  tsk__options o;
  char err[TSK__OPTIONS_ERRLEN] = "";
  int rc = tsk__options_parse(spec, &o, err, sizeof err);
  if (rc != 0) fail_msg("parse('%s') failed: %s", spec ? spec : "(null)", err);
  assert_string_equal(err, "");
  return o;
}

/* Parses spec, which must fail with exactly the error text want; the result is the defaults. */
static void parse_bad(const char *spec, const char *want) {
  tsk__options o, def;
  char err[TSK__OPTIONS_ERRLEN];
  memset(err, 'X', sizeof err);
  tsk__options_defaults(&def);
  int rc = tsk__options_parse(spec, &o, err, sizeof err);
  if (rc != TSK_EOPTION) fail_msg("parse('%s') returned %d, expected TSK_EOPTION", spec, rc);
  if (strcmp(err, want) != 0) fail_msg("parse('%s'):\n  got  %s\n  want %s", spec, err, want);
  def.strict = o.strict; /* the only setting kept after an error */
  assert_true(tsk__options_equal(&o, &def));
}

static void assert_round_trip(const tsk__options *o) {
  char text[TSK__OPTIONS_FORMAT_MAX];
  int n = tsk__options_format(o, text, sizeof text);
  assert_true(n > 0);
  assert_int_equal((size_t)n, strlen(text));
  tsk__options back = parse_ok(text);
  if (!tsk__options_equal(o, &back)) fail_msg("round trip changed the options: %s", text);
  char again[TSK__OPTIONS_FORMAT_MAX];
  assert_int_equal(tsk__options_format(&back, again, sizeof again), n);
  assert_string_equal(text, again);
}

/* ---- defaults ---------------------------------------------------------------------------- */

static void test_defaults(void **state) {
  (void)state;
  tsk__options o;
  tsk__options_defaults(&o);
  assert_int_equal(o.backtrace, TSK__BACKTRACE_SPAWN);
  assert_int_equal(o.frames, 16);
  assert_string_equal(o.report, "");
  assert_int_equal(o.exitcode, 0);
  assert_string_equal(o.suppressions, "");
  assert_int_equal(o.socket, TSK__SOCKET_AUTO);
  assert_string_equal(o.socket_path, "");
  assert_int_equal(o.stack_size, 256 * 1024);
  assert_int_equal(o.history, 1024);
  assert_int_equal(o.verbosity, 0);
  assert_int_equal(o.settle_ms, 100);
  assert_true(o.report_text);
  assert_false(o.busy_time);
  assert_false(o.strict);

  char text[TSK__OPTIONS_FORMAT_MAX];
  assert_int_equal(tsk__options_format(&o, text, sizeof text), strlen(DEFAULTS_TEXT));
  assert_string_equal(text, DEFAULTS_TEXT);

  /* parse of nothing is the defaults */
  tsk__options p = parse_ok(NULL);
  assert_true(tsk__options_equal(&o, &p));
  p = parse_ok("");
  assert_true(tsk__options_equal(&o, &p));
}

/* ---- valid values of every key ---------------------------------------------------------- */

static void test_valid_values(void **state) {
  (void)state;
  tsk__options o;

  o = parse_ok("backtrace=off");
  assert_int_equal(o.backtrace, TSK__BACKTRACE_OFF);
  o = parse_ok("backtrace=spawn");
  assert_int_equal(o.backtrace, TSK__BACKTRACE_SPAWN);

  o = parse_ok("frames=1");
  assert_int_equal(o.frames, 1);
  o = parse_ok("frames=64");
  assert_int_equal(o.frames, 64);
  o = parse_ok("frames=032"); /* leading zeros are still decimal */
  assert_int_equal(o.frames, 32);

  o = parse_ok("report=/tmp/taskscope-%p.json");
  assert_string_equal(o.report, "/tmp/taskscope-%p.json");
  o = parse_ok("report=relative/r%%%p.json");
  assert_string_equal(o.report, "relative/r%%%p.json");
  o = parse_ok("report=/tmp/my dir/a=b.json"); /* inner spaces and '=' are part of the path */
  assert_string_equal(o.report, "/tmp/my dir/a=b.json");
  o = parse_ok("report=x:report="); /* empty: no report */
  assert_string_equal(o.report, "");

  o = parse_ok("exitcode=0");
  assert_int_equal(o.exitcode, 0);
  o = parse_ok("exitcode=23");
  assert_int_equal(o.exitcode, 23);
  o = parse_ok("exitcode=255");
  assert_int_equal(o.exitcode, 255);

  o = parse_ok("suppressions=/etc/taskscope.supp");
  assert_string_equal(o.suppressions, "/etc/taskscope.supp");
  o = parse_ok("suppressions=");
  assert_string_equal(o.suppressions, "");

  o = parse_ok("socket=off");
  assert_int_equal(o.socket, TSK__SOCKET_OFF);
  o = parse_ok("socket=/run/user/1000/app.sock");
  assert_int_equal(o.socket, TSK__SOCKET_PATH);
  assert_string_equal(o.socket_path, "/run/user/1000/app.sock");
  o = parse_ok("socket=./auto"); /* a file named auto */
  assert_int_equal(o.socket, TSK__SOCKET_PATH);
  assert_string_equal(o.socket_path, "./auto");
  o = parse_ok("socket=/x.sock:socket=auto");
  assert_int_equal(o.socket, TSK__SOCKET_AUTO);
  assert_string_equal(o.socket_path, "");

  o = parse_ok("stack_size=16384");
  assert_int_equal(o.stack_size, 16384);
  o = parse_ok("stack_size=16k");
  assert_int_equal(o.stack_size, 16384);
  o = parse_ok("stack_size=64K");
  assert_int_equal(o.stack_size, 65536);
  o = parse_ok("stack_size=2m");
  assert_int_equal(o.stack_size, 2 * 1024 * 1024);
  o = parse_ok("stack_size=8M");
  assert_int_equal(o.stack_size, 8 * 1024 * 1024);
  o = parse_ok("stack_size=1G");
  assert_int_equal(o.stack_size, 1024 * 1024 * 1024);
  o = parse_ok("stack_size=1024m");
  assert_int_equal(o.stack_size, 1024 * 1024 * 1024);
  o = parse_ok("stack_size=100000"); /* not a page multiple: the runtime rounds up */
  assert_int_equal(o.stack_size, 100000);

  o = parse_ok("history=0");
  assert_int_equal(o.history, 0);
  o = parse_ok("history=1000000");
  assert_int_equal(o.history, 1000000);

  for (unsigned v = 0; v <= 2; v++) {
    char spec[32];
    snprintf(spec, sizeof spec, "verbosity=%u", v);
    o = parse_ok(spec);
    assert_int_equal(o.verbosity, v);
  }

  o = parse_ok("settle_ms=0");
  assert_int_equal(o.settle_ms, 0);
  o = parse_ok("settle_ms=60000");
  assert_int_equal(o.settle_ms, 60000);

  o = parse_ok("report_text=off");
  assert_false(o.report_text);
  o = parse_ok("report_text=0");
  assert_false(o.report_text);
  o = parse_ok("report_text=0:report_text=on");
  assert_true(o.report_text);
  o = parse_ok("report_text=off:report_text=1");
  assert_true(o.report_text);

  o = parse_ok("strict=1");
  assert_true(o.strict);
  o = parse_ok("strict=on:strict=off");
  assert_false(o.strict);
}

/* A key given twice: the later value wins. */
static void test_duplicate_later_wins(void **state) {
  (void)state;
  tsk__options o = parse_ok("frames=8:backtrace=off:frames=32");
  assert_int_equal(o.frames, 32);
  assert_int_equal(o.backtrace, TSK__BACKTRACE_OFF);
}

static void test_many_keys_at_once(void **state) {
  (void)state;
  tsk__options o = parse_ok("backtrace=off:frames=8:report=r-%p.json:exitcode=3:"
                            "suppressions=s.supp:socket=off:stack_size=1m:history=5:"
                            "verbosity=2:settle_ms=7:report_text=off");
  assert_int_equal(o.backtrace, TSK__BACKTRACE_OFF);
  assert_int_equal(o.frames, 8);
  assert_string_equal(o.report, "r-%p.json");
  assert_int_equal(o.exitcode, 3);
  assert_string_equal(o.suppressions, "s.supp");
  assert_int_equal(o.socket, TSK__SOCKET_OFF);
  assert_int_equal(o.stack_size, 1024 * 1024);
  assert_int_equal(o.history, 5);
  assert_int_equal(o.verbosity, 2);
  assert_int_equal(o.settle_ms, 7);
  assert_false(o.report_text);
}

/* ---- invalid values of every key, with the exact message ---------------------------------- */

#define P "TASKSCOPE_OPTIONS: "

static void test_invalid_values(void **state) {
  (void)state;
  parse_bad("backtrace=on", P "bad value 'on' for 'backtrace': expected off|spawn");
  parse_bad("backtrace=SPAWN", P "bad value 'SPAWN' for 'backtrace': expected off|spawn");
  parse_bad("backtrace=", P "'backtrace' needs a value (backtrace=off|spawn)");
  parse_bad("backtrace", P "'backtrace' needs a value (backtrace=off|spawn)");

  parse_bad("frames=lots", P "bad value 'lots' for 'frames': expected a number from 1 to 64");
  parse_bad("frames=0", P "bad value '0' for 'frames': expected a number from 1 to 64");
  parse_bad("frames=65", P "bad value '65' for 'frames': expected a number from 1 to 64");
  parse_bad("frames", P "'frames' needs a value (frames=1..64)");

  parse_bad("report", P "'report' needs a value (report=PATH)");
  parse_bad("report=r-%x.json",
            P "bad value 'r-%x.json' for 'report': unknown escape '%x' (use %p for the pid, %% "
              "for a literal '%')");
  parse_bad("report=r-100%",
            P "bad value 'r-100%' for 'report': a lone '%' at the end (use %% for a literal '%')");
  parse_bad("report=a\tb", P "bad value 'a\\x09b' for 'report': control characters are not "
                             "allowed in a path");

  parse_bad("exitcode=256", P "bad value '256' for 'exitcode': expected a number from 0 to 255");
  parse_bad("exitcode=yes", P "bad value 'yes' for 'exitcode': expected a number from 0 to 255");
  parse_bad("exitcode=", P "'exitcode' needs a value (exitcode=0..255)");

  parse_bad("suppressions", P "'suppressions' needs a value (suppressions=PATH)");
  parse_bad("suppressions=\x1b[31m", P "bad value '\\x1b[31m' for 'suppressions': control "
                                       "characters are not allowed in a path");

  parse_bad("socket=", P "'socket' needs a value (socket=auto|off|PATH)");
  parse_bad("socket=of", P "bad value 'of' for 'socket': expected auto, off or a path containing "
                           "'/' (e.g. ./app.sock)");
  parse_bad("socket=Auto", P "bad value 'Auto' for 'socket': expected auto, off or a path "
                             "containing '/' (e.g. ./app.sock)");

  parse_bad("stack_size=big", P "bad value 'big' for 'stack_size': expected a size from 16k to 1g "
                                "(bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=15k", P "bad value '15k' for 'stack_size': expected a size from 16k to 1g "
                                "(bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=16383", P "bad value '16383' for 'stack_size': expected a size from 16k to "
                                  "1g (bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=2g", P "bad value '2g' for 'stack_size': expected a size from 16k to 1g "
                               "(bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=1025m", P "bad value '1025m' for 'stack_size': expected a size from 16k "
                                  "to 1g (bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=64kb", P "bad value '64kb' for 'stack_size': expected a size from 16k to "
                                 "1g (bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=k", P "bad value 'k' for 'stack_size': expected a size from 16k to 1g "
                              "(bytes, or a number with a k, m or g suffix)");
  parse_bad("stack_size=", P "'stack_size' needs a value (stack_size=16k..1g)");

  parse_bad("history=1000001",
            P "bad value '1000001' for 'history': expected a number from 0 to 1000000");
  parse_bad("history=many",
            P "bad value 'many' for 'history': expected a number from 0 to 1000000");

  parse_bad("verbosity=3", P "bad value '3' for 'verbosity': expected a number from 0 to 2");
  parse_bad("verbosity=high", P "bad value 'high' for 'verbosity': expected a number from 0 to 2");

  parse_bad("settle_ms=60001",
            P "bad value '60001' for 'settle_ms': expected a number from 0 to 60000");
  parse_bad("settle_ms=1s", P "bad value '1s' for 'settle_ms': expected a number from 0 to 60000");

  parse_bad("report_text=yes", P "bad value 'yes' for 'report_text': expected on|off (or 1|0)");
  parse_bad("report_text=2", P "bad value '2' for 'report_text': expected on|off (or 1|0)");
  parse_bad("report_text", P "'report_text' needs a value (report_text=on|off)");

  parse_bad("strict=2", P "bad value '2' for 'strict': expected on|off (or 1|0)");
  parse_bad("strict=", P "'strict' needs a value (strict=on|off)");

  parse_bad("=5", P "missing option name in '=5'");
  parse_bad("=", P "missing option name in '='");
}

/* The first error is reported, and everything, before and after, is dropped. */
static void test_first_error_wins(void **state) {
  (void)state;
  parse_bad("frames=8:frames=0:verbosity=9",
            P "bad value '0' for 'frames': expected a number from 1 to 64");
  parse_bad("backtrace=off:bogus=1:frames=0", P "unknown option 'bogus' (known options: "
                                              "backtrace, frames, report, exitcode, suppressions, "
                                              "socket, stack_size, history, verbosity, "
                                              "settle_ms, report_text, busy_time, strict)");
}

static void test_whitespace_is_not_trimmed(void **state) {
  (void)state;
  parse_bad("frames= 16", P "bad value ' 16' for 'frames': whitespace around a value is not "
                          "trimmed (expected 1..64)");
  parse_bad("frames=16 ", P "bad value '16 ' for 'frames': whitespace around a value is not "
                          "trimmed (expected 1..64)");
  parse_bad("report= /tmp/r.json", P "bad value ' /tmp/r.json' for 'report': whitespace around a "
                                   "value is not trimmed (expected PATH)");
  parse_bad(" frames=16",
            P "unknown option ' frames' (did you mean 'frames'? whitespace is not trimmed)");
  parse_bad("frames =16",
            P "unknown option 'frames ' (did you mean 'frames'? whitespace is not trimmed)");
  parse_bad("frames=8: verbosity=1",
            P "unknown option ' verbosity' (did you mean 'verbosity'? whitespace is not trimmed)");
}

/* ---- unknown keys ------------------------------------------------------------------------ */

static void test_unknown_with_suggestion(void **state) {
  (void)state;
  parse_bad("frame=8", P "unknown option 'frame' (did you mean 'frames'?)");
  parse_bad("backtrce=off", P "unknown option 'backtrce' (did you mean 'backtrace'?)");
  parse_bad("bakctrace=off", P "unknown option 'bakctrace' (did you mean 'backtrace'?)");
  parse_bad("stack-size=1m", P "unknown option 'stack-size' (did you mean 'stack_size'?)");
  parse_bad("stacksize=1m", P "unknown option 'stacksize' (did you mean 'stack_size'?)");
  parse_bad("FRAMES=8", P "unknown option 'FRAMES' (did you mean 'frames'?)");
  parse_bad("exit_code=1", P "unknown option 'exit_code' (did you mean 'exitcode'?)");
  parse_bad("suppression=x", P "unknown option 'suppression' (did you mean 'suppressions'?)");
  /* distance 3: too far for a suggestion */
  parse_bad("verbose=1", P "unknown option 'verbose' (known options: backtrace, frames, report, "
                           "exitcode, suppressions, socket, stack_size, history, verbosity, "
                           "settle_ms, report_text, busy_time, strict)");
  parse_bad("frames", P "'frames' needs a value (frames=1..64)"); /* known key, no '=' */
  parse_bad("xyz", P "unknown option 'xyz' (known options: backtrace, frames, report, exitcode, "
                     "suppressions, socket, stack_size, history, verbosity, settle_ms, "
                     "report_text, busy_time, strict)");
}

static void test_long_and_binary_keys_are_quoted(void **state) {
  (void)state;
  char spec[300], want[TSK__OPTIONS_ERRLEN];
  memset(spec, 'a', 200);
  strcpy(spec + 200, "=1");
  snprintf(want, sizeof want, P "unknown option '%.64s...' (known options: backtrace, frames, "
                              "report, exitcode, suppressions, socket, stack_size, history, "
                              "verbosity, settle_ms, report_text, busy_time, strict)", spec);
  parse_bad(spec, want);
  parse_bad("fr\x01mes=1", P "unknown option 'fr\\x01mes' (did you mean 'frames'?)");
  parse_bad("frames=1'2", P "bad value '1\\x272' for 'frames': expected a number from 1 to 64");

  /* every message fits TSK__OPTIONS_ERRLEN, and the line has no newline */
  char big[5000];
  memset(big, '\n', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "report=", 7);
  tsk__options o;
  char err[TSK__OPTIONS_ERRLEN];
  assert_int_equal(tsk__options_parse(big, &o, err, sizeof err), TSK_EOPTION);
  assert_null(strchr(err, '\n'));
  assert_true(strlen(err) < TSK__OPTIONS_ERRLEN - 1); /* not cut */
  const char *tail = "whitespace around a value is not trimmed (expected PATH)";
  assert_string_equal(err + strlen(err) - strlen(tail), tail);

  /* the longest possible messages (a 64-byte quote of escaped bytes, the longest name and
   * reason) still fit */
  memset(big, 0x01, 100);
  strcpy(big + 100, "=1");
  assert_int_equal(tsk__options_parse(big, &o, err, sizeof err), TSK_EOPTION);
  assert_true(strlen(err) < TSK__OPTIONS_ERRLEN - 1);
  assert_non_null(strstr(err, "report_text, busy_time, strict)"));
  strcpy(big, "stack_size=");
  memset(big + 11, 0x01, 100);
  big[111] = '\0';
  assert_int_equal(tsk__options_parse(big, &o, err, sizeof err), TSK_EOPTION);
  assert_true(strlen(err) < TSK__OPTIONS_ERRLEN - 1);
  assert_non_null(strstr(err, "g suffix)"));
}

/* ---- empty segments ---------------------------------------------------------------------- */

static void test_empty_segments(void **state) {
  (void)state;
  tsk__options def, o;
  tsk__options_defaults(&def);
  const char *empties[] = {":", "::", ":::::"};
  for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
    o = parse_ok(empties[i]);
    assert_true(tsk__options_equal(&o, &def));
  }
  o = parse_ok("frames=8::verbosity=2");
  assert_int_equal(o.frames, 8);
  assert_int_equal(o.verbosity, 2);
  o = parse_ok(":frames=8:");
  assert_int_equal(o.frames, 8);
  o = parse_ok("::frames=9::::");
  assert_int_equal(o.frames, 9);
}

/* ---- %p expansion ------------------------------------------------------------------------ */

static void test_expand_path(void **state) {
  (void)state;
  char buf[64];
  assert_int_equal(tsk__options_expand_path("r-%p.json", 1234, buf, sizeof buf), 11);
  assert_string_equal(buf, "r-1234.json");
  assert_int_equal(tsk__options_expand_path("%p/%p", 7, buf, sizeof buf), 3);
  assert_string_equal(buf, "7/7");
  assert_int_equal(tsk__options_expand_path("100%%", 7, buf, sizeof buf), 4);
  assert_string_equal(buf, "100%");
  assert_int_equal(tsk__options_expand_path("%%p", 7, buf, sizeof buf), 2);
  assert_string_equal(buf, "%p");
  assert_int_equal(tsk__options_expand_path("a%%%p", 42, buf, sizeof buf), 4);
  assert_string_equal(buf, "a%42");
  assert_int_equal(tsk__options_expand_path("", 42, buf, sizeof buf), 0);
  assert_string_equal(buf, "");

  /* malformed patterns */
  strcpy(buf, "junk");
  assert_int_equal(tsk__options_expand_path("r-%x", 1, buf, sizeof buf), TSK_EINVAL);
  assert_string_equal(buf, "");
  strcpy(buf, "junk");
  assert_int_equal(tsk__options_expand_path("r-%", 1, buf, sizeof buf), TSK_EINVAL);
  assert_string_equal(buf, "");

  /* exact fit, one byte short, and the pid as the piece that overflows */
  assert_int_equal(tsk__options_expand_path("abc", 1, buf, 4), 3);
  assert_string_equal(buf, "abc");
  assert_int_equal(tsk__options_expand_path("abc", 1, buf, 3), TSK_EINVAL);
  assert_string_equal(buf, "");
  assert_int_equal(tsk__options_expand_path("x%p", 123456, buf, 7), TSK_EINVAL);
  assert_string_equal(buf, "");
  assert_int_equal(tsk__options_expand_path("x%p", 123456, buf, 8), 7);
  assert_int_equal(tsk__options_expand_path("x", 1, buf, 0), TSK_EINVAL);
  assert_int_equal(tsk__options_expand_path(NULL, 1, buf, sizeof buf), TSK_EINVAL);
}

static void test_report_path(void **state) {
  (void)state;
  char buf[TSK__OPTIONS_PATH_MAX + 32], want[64];
  tsk__options o = parse_ok("report=/tmp/ts-%p-%%.json");
  snprintf(want, sizeof want, "/tmp/ts-%ld-%%.json", (long)getpid());
  assert_int_equal(tsk__options_report_path(&o, buf, sizeof buf), (int)strlen(want));
  assert_string_equal(buf, want);

  o = parse_ok("");
  strcpy(buf, "junk");
  assert_int_equal(tsk__options_report_path(&o, buf, sizeof buf), 0);
  assert_string_equal(buf, "");

  /* the longest accepted pattern full of %p does not fit a PATH_MAX buffer: refused, not cut */
  char spec[TSK__OPTIONS_PATH_MAX + 16];
  strcpy(spec, "report=");
  for (size_t i = 0; i < (TSK__OPTIONS_PATH_MAX - 1) / 2; i++) strcat(spec, "%p");
  o = parse_ok(spec);
  assert_int_equal(tsk__options_report_path(&o, buf, TSK__OPTIONS_PATH_MAX), TSK_EINVAL);
  assert_string_equal(buf, "");
}

static void test_report_path_too_long(void **state) {
  (void)state;
  char spec[TSK__OPTIONS_PATH_MAX + 32];
  strcpy(spec, "report=/");
  memset(spec + 8, 'r', TSK__OPTIONS_PATH_MAX - 2); /* path of PATH_MAX - 1 bytes: fits */
  spec[8 + TSK__OPTIONS_PATH_MAX - 2] = '\0';
  tsk__options o = parse_ok(spec);
  assert_int_equal(strlen(o.report), TSK__OPTIONS_PATH_MAX - 1);

  strcat(spec, "r"); /* one more byte */
  char err[TSK__OPTIONS_ERRLEN], want[TSK__OPTIONS_ERRLEN];
  assert_int_equal(tsk__options_parse(spec, &o, err, sizeof err), TSK_EOPTION);
  snprintf(want, sizeof want,
           P "bad value '/%.63s...' for 'report': path too long (4096 bytes; at most 4095)",
           spec + 8);
  assert_string_equal(err, want);
}

/* ---- numbers ----------------------------------------------------------------------------- */

static void test_numbers_strict(void **state) {
  (void)state;
  const char *bad[] = {"16x", "x16", "-1", "+16", "0x10", "1e1", "16.0", "1 6",
                       "18446744073709551616", "99999999999999999999999999",
                       "4294967312" /* 2^32 + 16: must not wrap to 16 */};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char spec[64], want[TSK__OPTIONS_ERRLEN];
    snprintf(spec, sizeof spec, "frames=%s", bad[i]);
    snprintf(want, sizeof want,
             P "bad value '%s' for 'frames': expected a number from 1 to 64", bad[i]);
    parse_bad(spec, want);
  }
  parse_bad("exitcode=-0", P "bad value '-0' for 'exitcode': expected a number from 0 to 255");
  parse_bad("history=4294967296",
            P "bad value '4294967296' for 'history': expected a number from 0 to 1000000");
  const char *bad_sizes[] = {"-16k", "16kk", "k16", "18014398509481984k" /* 2^54 k overflows */,
                             "17179869184g", "1.5m", "16 k", "0"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
    char spec[64], want[TSK__OPTIONS_ERRLEN];
    snprintf(spec, sizeof spec, "stack_size=%s", bad_sizes[i]);
    snprintf(want, sizeof want,
             P "bad value '%s' for 'stack_size': expected a size from 16k to 1g (bytes, or a "
               "number with a k, m or g suffix)",
             bad_sizes[i]);
    parse_bad(spec, want);
  }
}

/* ---- socket ------------------------------------------------------------------------------ */

static void test_socket_path_length(void **state) {
  (void)state;
  char spec[256], path[200];
  memset(path, 's', sizeof path);
  path[0] = '/';
  path[107] = '\0'; /* 107 bytes: the most sun_path holds with its NUL */
  snprintf(spec, sizeof spec, "socket=%s", path);
  tsk__options o = parse_ok(spec);
  assert_int_equal(o.socket, TSK__SOCKET_PATH);
  assert_int_equal(strlen(o.socket_path), 107);

  path[107] = 's';
  path[108] = '\0';
  snprintf(spec, sizeof spec, "socket=%s", path);
  char err[TSK__OPTIONS_ERRLEN], want[TSK__OPTIONS_ERRLEN];
  assert_int_equal(tsk__options_parse(spec, &o, err, sizeof err), TSK_EOPTION);
  snprintf(want, sizeof want,
           P "bad value '%.64s...' for 'socket': socket path too long (108 bytes; a Unix socket "
             "path holds at most 107)",
           path);
  assert_string_equal(err, want);
  assert_int_equal(o.socket, TSK__SOCKET_AUTO);
}

/* ---- tsk__options_set (the C API's path) ------------------------------------------------- */

static void test_set(void **state) {
  (void)state;
  tsk__options o, before;
  char err[TSK__OPTIONS_ERRLEN];
  tsk__options_defaults(&o);

  assert_int_equal(tsk__options_set(&o, "frames", "32", err, sizeof err), 0);
  assert_string_equal(err, "");
  assert_int_equal(o.frames, 32);
  assert_int_equal(tsk__options_set(&o, "report", "a-%p.json", err, sizeof err), 0);
  assert_string_equal(o.report, "a-%p.json");
  assert_int_equal(tsk__options_set(&o, "report", "", err, sizeof err), 0);
  assert_string_equal(o.report, "");
  assert_int_equal(tsk__options_set(&o, "socket", "/tmp/x.sock", err, sizeof err), 0);
  assert_int_equal(o.socket, TSK__SOCKET_PATH);

  before = o;
  assert_int_equal(tsk__options_set(&o, "frames", "0", err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, "tsk_options_set: bad value '0' for 'frames': expected a number from "
                           "1 to 64");
  assert_true(tsk__options_equal(&o, &before));
  assert_int_equal(tsk__options_set(&o, "frame", "8", err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, "tsk_options_set: unknown option 'frame' (did you mean 'frames'?)");
  assert_int_equal(tsk__options_set(&o, "report", "/a:b", err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, "tsk_options_set: bad value '/a:b' for 'report': a path cannot "
                           "contain ':' (it separates options)");
  assert_int_equal(tsk__options_set(&o, "socket", "/a:b", err, sizeof err), TSK_EOPTION);
  assert_int_equal(tsk__options_set(&o, "frames", "", err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, "tsk_options_set: 'frames' needs a value (frames=1..64)");
  assert_int_equal(tsk__options_set(&o, "frames=8", "8", err, sizeof err), TSK_EOPTION);
  assert_int_equal(tsk__options_set(&o, "", "8", err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, "tsk_options_set: missing option name (value '8')");
  assert_true(tsk__options_equal(&o, &before));

  assert_int_equal(tsk__options_set(NULL, "frames", "8", err, sizeof err), TSK_EINVAL);
  assert_int_equal(tsk__options_set(&o, NULL, "8", err, sizeof err), TSK_EINVAL);
  assert_int_equal(tsk__options_set(&o, "frames", NULL, err, sizeof err), TSK_EINVAL);
  assert_true(tsk__options_equal(&o, &before));
}

/* err may be NULL, or too small: the message is cut, never overflows. */
static void test_err_buffer(void **state) {
  (void)state;
  tsk__options o;
  assert_int_equal(tsk__options_parse("frames=0", &o, NULL, 0), TSK_EOPTION);
  assert_int_equal(tsk__options_parse("frames=0", &o, NULL, 100), TSK_EOPTION);
  char small[12];
  memset(small, 'X', sizeof small);
  assert_int_equal(tsk__options_parse("frames=0", &o, small, 5), TSK_EOPTION);
  assert_string_equal(small, "TASK");
  assert_int_equal(small[5], 'X');
  assert_int_equal(tsk__options_parse("frames=0", &o, small, sizeof small), TSK_EOPTION);
  assert_string_equal(small, "TASKSCOPE_O");
  assert_int_equal(tsk__options_parse("frames=8", NULL, small, sizeof small), TSK_EINVAL);
}

/* ---- environment and strict -------------------------------------------------------------- */

static void test_from_env(void **state) {
  (void)state;
  tsk__options o, def;
  char err[TSK__OPTIONS_ERRLEN];
  tsk__options_defaults(&def);

  unsetenv("TASKSCOPE_OPTIONS");
  assert_int_equal(tsk__options_from_env(&o, err, sizeof err), 0);
  assert_true(tsk__options_equal(&o, &def));

  setenv("TASKSCOPE_OPTIONS", "", 1);
  assert_int_equal(tsk__options_from_env(&o, err, sizeof err), 0);
  assert_true(tsk__options_equal(&o, &def));

  setenv("TASKSCOPE_OPTIONS", "backtrace=off:frames=4:report=/tmp/r-%p.json:exitcode=9", 1);
  assert_int_equal(tsk__options_from_env(&o, err, sizeof err), 0);
  assert_int_equal(o.backtrace, TSK__BACKTRACE_OFF);
  assert_int_equal(o.frames, 4);
  assert_string_equal(o.report, "/tmp/r-%p.json");
  assert_int_equal(o.exitcode, 9);

  /* a bad spec: error naming the key, all defaults (also the good settings before it) */
  setenv("TASKSCOPE_OPTIONS", "backtrace=off:frame=4", 1);
  assert_int_equal(tsk__options_from_env(&o, err, sizeof err), TSK_EOPTION);
  assert_string_equal(err, P "unknown option 'frame' (did you mean 'frames'?)");
  assert_true(tsk__options_equal(&o, &def));
  assert_false(o.strict);

  setenv("TASKSCOPE_OPTIONS", "frame=4:strict=1", 1);
  assert_int_equal(tsk__options_from_env(&o, err, sizeof err), TSK_EOPTION);
  assert_true(o.strict);
  unsetenv("TASKSCOPE_OPTIONS");
}

static void test_strict(void **state) {
  (void)state;
  tsk__options o;
  char err[TSK__OPTIONS_ERRLEN];

  /* without strict: non-fatal */
  assert_int_equal(tsk__options_parse("frames=0", &o, err, sizeof err), TSK_EOPTION);
  assert_false(o.strict);
  /* strict before or after the error makes it fatal; only strict survives the failed parse */
  assert_int_equal(tsk__options_parse("strict=1:backtrace=off:frames=0", &o, err, sizeof err),
                   TSK_EOPTION);
  assert_true(o.strict);
  assert_int_equal(o.backtrace, TSK__BACKTRACE_SPAWN);
  assert_string_equal(err, P "bad value '0' for 'frames': expected a number from 1 to 64");
  assert_int_equal(tsk__options_parse("frames=0:strict=on", &o, err, sizeof err), TSK_EOPTION);
  assert_true(o.strict);
  assert_int_equal(tsk__options_parse("bogus:strict=1", &o, err, sizeof err), TSK_EOPTION);
  assert_true(o.strict);
  /* the last valid strict= wins; an invalid one counts for nothing */
  assert_int_equal(tsk__options_parse("strict=1:frames=0:strict=0", &o, err, sizeof err),
                   TSK_EOPTION);
  assert_false(o.strict);
  assert_int_equal(tsk__options_parse("strict=1:strict=maybe", &o, err, sizeof err),
                   TSK_EOPTION);
  assert_true(o.strict);
  assert_int_equal(tsk__options_parse("strict=maybe", &o, err, sizeof err), TSK_EOPTION);
  assert_false(o.strict);
  /* lookalikes are not strict */
  assert_int_equal(tsk__options_parse("frames=0:strict= 1:xstrict=1", &o, err, sizeof err),
                   TSK_EOPTION);
  assert_false(o.strict);
  /* strict with a good spec changes nothing else */
  o = parse_ok("strict=1:frames=8");
  assert_true(o.strict);
  assert_int_equal(o.frames, 8);
}

/* The policy end to end, as the runtime applies it: a child process exits 2 only under strict. */
static int run_policy(const char *spec) {
  pid_t pid = fork();
  if (pid == 0) {
    tsk__options o;
    char err[TSK__OPTIONS_ERRLEN];
    setenv("TASKSCOPE_OPTIONS", spec, 1);
    if (tsk__options_from_env(&o, err, sizeof err) != 0 && o.strict) _exit(2);
    _exit(o.frames == 16 ? 0 : 1);
  }
  int status = 0;
  assert_true(pid > 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void test_strict_policy_exit_code(void **state) {
  (void)state;
  assert_int_equal(run_policy("frames=lots"), 0); /* continues with defaults */
  assert_int_equal(run_policy("frames=lots:strict=1"), 2);
  assert_int_equal(run_policy("strict=1:frames=8"), 1); /* good spec: frames=8 applies */
}

/* ---- format ------------------------------------------------------------------------------ */

static void test_format_round_trip(void **state) {
  (void)state;
  tsk__options o;
  tsk__options_defaults(&o);
  assert_round_trip(&o);

  const char *specs[] = {
    "backtrace=off:frames=1:report=/tmp/r-%p-%%.json:exitcode=255:suppressions=/etc/s.supp:"
    "socket=/run/app.sock:stack_size=100000:history=0:verbosity=2:settle_ms=0:report_text=off:"
    "strict=on",
    "socket=off:stack_size=16k:frames=64",
    "stack_size=1g:history=1000000:settle_ms=60000",
    "stack_size=3m",
    "stack_size=1025k",
    "report=/tmp/my dir/a=b.json",
  };
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
    o = parse_ok(specs[i]);
    assert_round_trip(&o);
  }

  /* through the C API too */
  tsk__options_defaults(&o);
  assert_int_equal(tsk__options_set(&o, "stack_size", "1048577", NULL, 0), 0);
  assert_int_equal(tsk__options_set(&o, "verbosity", "1", NULL, 0), 0);
  assert_round_trip(&o);

  /* canonical spelling of sizes and booleans */
  char text[TSK__OPTIONS_FORMAT_MAX];
  o = parse_ok("stack_size=1048576:report_text=0:strict=1:socket=./s");
  assert_true(tsk__options_format(&o, text, sizeof text) > 0);
  assert_non_null(strstr(text, ":stack_size=1m:"));
  assert_non_null(strstr(text, ":report_text=off:busy_time=off:strict=on"));
  assert_non_null(strstr(text, ":socket=./s:"));

  /* the largest possible options fit TSK__OPTIONS_FORMAT_MAX */
  static char spec[3 * TSK__OPTIONS_PATH_MAX];
  int n = snprintf(spec, sizeof spec, "report=%0*d:suppressions=%0*d:socket=/%0*d",
                   TSK__OPTIONS_PATH_MAX - 1, 0, TSK__OPTIONS_PATH_MAX - 1, 0,
                   TSK__OPTIONS_SOCKET_MAX - 2, 0);
  assert_true(n > 0 && (size_t)n < sizeof spec);
  o = parse_ok(spec);
  assert_round_trip(&o);
}

static void test_format_small_buffer(void **state) {
  (void)state;
  tsk__options o;
  tsk__options_defaults(&o);
  char buf[sizeof DEFAULTS_TEXT];
  assert_int_equal(tsk__options_format(&o, buf, sizeof buf), (int)strlen(DEFAULTS_TEXT));
  assert_string_equal(buf, DEFAULTS_TEXT);
  assert_int_equal(tsk__options_format(&o, buf, sizeof buf - 1), TSK_EINVAL);
  assert_string_equal(buf, "");
  assert_int_equal(tsk__options_format(&o, buf, 0), TSK_EINVAL);
  assert_int_equal(tsk__options_format(NULL, buf, sizeof buf), TSK_EINVAL);
}

static void test_equal(void **state) {
  (void)state;
  tsk__options a, b;
  tsk__options_defaults(&a);
  tsk__options_defaults(&b);
  /* bytes after the string's NUL do not matter */
  strcpy(a.report, "/tmp/long-name.json");
  strcpy(a.report, "/x");
  strcpy(b.report, "/x");
  assert_true(tsk__options_equal(&a, &b));
  b.frames = 17;
  assert_false(tsk__options_equal(&a, &b));
  b = a;
  b.report_text = false;
  assert_false(tsk__options_equal(&a, &b));
  b = a;
  b.socket = TSK__SOCKET_OFF;
  assert_false(tsk__options_equal(&a, &b));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_valid_values),
    cmocka_unit_test(test_duplicate_later_wins),
    cmocka_unit_test(test_many_keys_at_once),
    cmocka_unit_test(test_invalid_values),
    cmocka_unit_test(test_first_error_wins),
    cmocka_unit_test(test_whitespace_is_not_trimmed),
    cmocka_unit_test(test_unknown_with_suggestion),
    cmocka_unit_test(test_long_and_binary_keys_are_quoted),
    cmocka_unit_test(test_empty_segments),
    cmocka_unit_test(test_expand_path),
    cmocka_unit_test(test_report_path),
    cmocka_unit_test(test_report_path_too_long),
    cmocka_unit_test(test_numbers_strict),
    cmocka_unit_test(test_socket_path_length),
    cmocka_unit_test(test_set),
    cmocka_unit_test(test_err_buffer),
    cmocka_unit_test(test_from_env),
    cmocka_unit_test(test_strict),
    cmocka_unit_test(test_strict_policy_exit_code),
    cmocka_unit_test(test_format_round_trip),
    cmocka_unit_test(test_format_small_buffer),
    cmocka_unit_test(test_equal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
