/* io.c — placeholder until the I/O implementation lands. */
#include "internal.h"
void tsk__io_runtime_close(tsk_runtime_t *rt) { (void)rt; }
