/*
 * app.h — the main loop of taskscope-top (the application state is in ui.h).
 */
#ifndef TASKSCOPE_TUI_APP_H
#define TASKSCOPE_TUI_APP_H

#include "ui.h"

/* Runs until q, a quit signal, or a fatal terminal error. The terminal is started by the
 * caller. Returns the exit status. */
int app_run(app *a);

/* Takes one message of the live session into the model (or the pause queue), or matches it to
 * a request. The ts_sess_io callback. */
void app_on_msg(void *ctx, json_t *msg);

#endif
