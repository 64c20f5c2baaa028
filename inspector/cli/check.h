/*
 * check.h — `taskscope check [options] -- CMD [ARGS...]`: the CI gate.
 *
 * Runs CMD (and whatever it starts) with TASKSCOPE_OPTIONS pointing every instrumented process's
 * JSON report into a private directory, merges the reports, applies suppressions, groups
 * identical records across processes, prints a human report, writes the optional JSON / JUnit /
 * SARIF / GitHub outputs, and exits 0 (clean), 1 (leaks), 2 (usage), 3 (nothing instrumented
 * reported, or a report could not be read), CMD's own status when CMD failed, or 128+N when CMD
 * was killed by signal N.
 *
 * The model below (ck_run and friends) is shared by check.c (running, merging, text, JSON,
 * GitHub annotations) and sarif.c and junit.c. Strings in ck_leak / ck_frame are borrowed
 * from the parsed reports (jansson values kept alive by ck_proc.doc) and live as long as the run.
 */
#ifndef TASKSCOPE_CHECK_H
#define TASKSCOPE_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Entry point: argv[0] is the command name ("check"); the rest are its arguments. Returns the
 * process exit code. */
int taskscope_cmd_check(int argc, char **argv);

/* ---- the merged model (internal to the check command) ---- */

enum { CK_PENDING = 0, CK_DESTROYED_PENDING, CK_UNRETRIEVED_ERROR, CK_KINDS };
/* "pending", "destroyed_pending", "unretrieved_error"; NULL out of range. */
const char *ck_kind_name(int kind);

enum { CK_CREATED = 0, CK_SUSPENDED, CK_RAISED, CK_DROPPED, CK_NSTACKS };
extern const char *const ck_stack_key[CK_NSTACKS];   /* "created_at", ... (JSON keys) */
extern const char *const ck_stack_title[CK_NSTACKS]; /* "created at", ... (text titles) */

typedef struct ck_frame {
  const char *ip;       /* "0x..." as in the report, or NULL */
  const char *function; /* NULL when unknown */
  const char *file;     /* as recorded (absolute), NULL when unknown */
  const char *module;   /* NULL when unknown */
  int line;             /* 0 when unknown */
} ck_frame;

typedef struct ck_stack {
  ck_frame *f;
  size_t n;
} ck_stack;

typedef struct ck_leak {
  void *json;          /* json_t *: the record as read */
  size_t proc;         /* index in ck_run.procs */
  int kind;            /* CK_* */
  int suppressed;      /* 0; 1: by the process's own suppressions; 2: by --suppressions */
  int duplicate;       /* a copy inherited through fork() of a record of another process */
  const char *reason;
  const char *task_name;
  const char *state;
  uint64_t task_id, parent_id, age_ms;
  const char *await_kind; /* NULL: awaiting nothing */
  uint64_t await_id;      /* 0: no id */
  void *chain;            /* json_t * array of {id,name}, may be NULL */
  int has_error;
  long long err_code;
  const char *err_name, *err_message, *err_description;
  ck_stack st[CK_NSTACKS];
} ck_leak;

typedef struct ck_group {
  size_t rep;        /* index of the first record (shown) */
  size_t *members;   /* record indices, in order */
  size_t count;
  size_t nprocs;     /* distinct processes */
  int counted;       /* its kind fails the check (--kinds) */
  char fingerprint[17]; /* hex FNV-1a 64 of kind + function names of every stack */
  /* The first user frame (see ck_user_frame): the group's location, or NULL. */
  const ck_frame *where;
  const char *title; /* unique test-case style name: "unretrieved_error: send_metrics:latency" */
} ck_group;

typedef struct ck_proc {
  int pid;
  const char *program;
  const char *when;
  char *path;       /* the report file */
  void *doc;        /* json_t * document */
  size_t nleaks;    /* records read (all) */
  int exit_known;   /* exit status known (CMD itself, or a descendant reaped as subreaper) */
  int exit_code;    /* when exited */
  int exit_signal;  /* when killed (0: exited) */
} ck_proc;

typedef struct ck_run {
  char **cmd;
  int cmd_argc;
  int cmd_pid;
  int cmd_exited;   /* 1: exited with cmd_code; 0: killed by cmd_signal */
  int cmd_code, cmd_signal;
  int cmd_spawn_errno; /* CMD could not be started */

  ck_proc *procs;
  size_t nprocs;
  ck_leak *leaks;
  size_t nleaks;
  ck_group *groups;
  size_t ngroups;

  size_t unsuppressed[CK_KINDS]; /* records not suppressed, per kind (duplicates excluded) */
  size_t suppressed;
  size_t duplicates;
  size_t counted;        /* unsuppressed records of counted kinds */
  size_t counted_groups;
  size_t unreadable;     /* report files that could not be parsed */
  unsigned kinds_mask;   /* bit k: kind k counts */

  const char *strip[2];  /* path prefixes removed from file names (as given, and resolved) */
  size_t strip_len[2];

  void *supp;            /* tsk__suppressions * or NULL */
  const char *supp_path;

  int exit_code;         /* the verdict */
  int other_failure;     /* failed for a reason other than leaks alone (CMD failed or crashed,
                            nothing instrumented reported, a report was unreadable) */
  const char *verdict;   /* one line: why exit_code */
} ck_run;

/* A file name for output: the strip prefix removed when the file is under it. */
const char *ck_path(const ck_run *r, const char *file);
/* 1 when file is under a strip prefix (i.e. a repository file). */
int ck_is_user_file(const ck_run *r, const char *file);
/* The group's whole text block (as printed by the human report), in a malloc'ed string. */
char *ck_group_text(const ck_run *r, const ck_group *g);
/* The group's headline ("Task exception was never retrieved", ...). */
const char *ck_group_headline(const ck_run *r, const ck_group *g);
/* One line: `task 4 "name" (N tasks like this in M processes)`, malloc'ed. */
char *ck_group_oneline(const ck_run *r, const ck_group *g);
/* The command line as one string, shell-quoted where needed, malloc'ed. */
char *ck_command_string(const ck_run *r);
/* "Segmentation fault" etc. and "SIGSEGV" */
const char *ck_signal_desc(int sig);
const char *ck_signal_name(int sig);

/* Writers (sarif.c, junit.c). Return 0, or -1 with a message already printed. */
int ck_write_sarif(const ck_run *r, const char *path, const char *version);
int ck_write_junit(const ck_run *r, const char *path);

#endif
