/* group.c — placeholder until the group implementation lands. */
#include "internal.h"
void tsk__group_task_finished(tsk__task *t) { (void)t; }
void tsk__group_runtime_close(tsk_runtime_t *rt) { (void)rt; }
