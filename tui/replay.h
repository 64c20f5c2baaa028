/*
 * replay.h — playing back a recording made by `taskscope record`.
 *
 * A recording is NDJSON: a header line
 *   {"format":"taskscope-recording","version":1,"protocol":1,"pid":N,"program":S,
 *    "started":"2025-01-31T12:00:00Z", ...}
 * then one line per message received, wrapped with its receive time in ms since the start:
 *   {"t_ms":12.5,"msg":{"type":"snapshot",...}}
 * A file of another format or version, or recorded with another protocol version, is refused.
 *
 * The whole file is read at open (lines kept as text, each parsed when applied). The position is
 * a time; playing advances it with the wall clock times the speed. Seeking back restarts from the
 * last snapshot at or before the target.
 */
#ifndef TASKSCOPE_TUI_REPLAY_H
#define TASKSCOPE_TUI_REPLAY_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define RP_FORMAT "taskscope-recording"
#define RP_VERSION 1

typedef struct rp_entry {
  double t_ms;
  size_t off, len; /* the line in rp_replay.text */
  int is_snapshot;
} rp_entry;

typedef struct rp_replay {
  char *text; /* the file; owned */
  size_t size;
  rp_entry *entries; /* owned */
  size_t n;
  size_t cursor; /* the next entry to apply */
  double pos_ms, duration_ms;
  double speed;
  int paused;
  double wall_ms; /* the wall clock at the last advance */
  int64_t pid;
  char program[64];
  char started[64];
} rp_replay;

/* Opens and checks a recording. 0, or -1 with a full sentence in err. */
int rp_open(rp_replay *r, const char *path, char *err, size_t errlen);
void rp_close(rp_replay *r);

/* Applies entries up to the current position after advancing it by the wall clock (unless
 * paused). Stops, paused, at the end. Returns 1 when something was applied or the position
 * moved. */
int rp_advance(rp_replay *r, tm_model *m, double now_ms);
/* Moves to time t (clamped). */
void rp_seek(rp_replay *r, tm_model *m, double t_ms);
/* Applies exactly the next message and pauses there. 0, or -1 at the end. */
int rp_step(rp_replay *r, tm_model *m);
/* Wall-clock ms until the next entry is due (-1: nothing due: paused or at the end). */
double rp_next_due(const rp_replay *r);
void rp_set_paused(rp_replay *r, int paused, double now_ms);
/* Speeds: 1/8 .. 64, doubled or halved. */
void rp_faster(rp_replay *r);
void rp_slower(rp_replay *r);

#endif
