/*
 * stack.c — task stacks carved from large reserved regions and pooled.
 *
 * Why regions: one mmap per stack costs one kernel mapping (two with a guard page), and the
 * stock vm.max_map_count of 65530 then stops a process at ~32k tasks. A region reserves
 * TSK__REGION_STACKS stacks in one mapping (MAP_NORESERVE: only touched pages take memory), so a
 * million tasks need a few thousand mappings at most, and a task that touches one page of its
 * stack costs one page.
 *
 * Overflow policy: stacks in a region are adjacent with no guard page between them (a guard page
 * would split the mapping and bring back the limit above). Instead the runtime checks the stack
 * pointer against the stack's lower bound at every suspension and when the task ends, and
 * aborts with a message naming the task if it is out of bounds: an overflow that is still deep
 * at a suspension point is caught there, one that returned before suspending may go unnoticed.
 * Give deep-recursing tasks a larger stack (tsk_spawn_ex, stack_size). Stacks of a size other
 * than the pool's default get their own mapping with a PROT_NONE guard page below them.
 *
 * Layout of a stack, top down: its tsk__stack descriptor, the per-task header (tsk__stack_hdr),
 * then the frames. The descriptor lives in the stack's own top page (touched by every task that
 * runs on it anyway) rather than on the heap: a pending task costs that much less.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TSK__STACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSK__STACK_ASAN 1
#endif
#endif
#ifdef TSK__STACK_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define TSK__REGION_STACKS 256

typedef struct region {
  tsk__list link;
  char *base;
  size_t len;
} region;

static size_t page_size(void) {
  static size_t ps;
  if (!ps) ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

void tsk__stack_pool_init(tsk__stack_pool *p, size_t stack_size) {
  memset(p, 0, sizeof *p);
  p->stack_size = round_up(stack_size, page_size());
  tsk__list_init(&p->regions_list);
}

static int new_region(tsk__stack_pool *p) {
  size_t len = p->stack_size * TSK__REGION_STACKS;
  char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return -1;
  region *r = malloc(sizeof *r);
  if (!r) {
    munmap(base, len);
    return -1;
  }
  r->base = base;
  r->len = len;
  tsk__list_push(&p->regions_list, &r->link);
  p->region_cur = base;
  p->region_end = base + len;
  p->regions++;
  return 0;
}

/* The descriptor of the stack [base, base + size), placed at its top. */
static tsk__stack *descriptor_at(char *base, size_t size) {
  tsk__stack *s = (tsk__stack *)(void *)(base + size - sizeof(tsk__stack));
  s->base = base;
  s->size = size;
  s->next_free = NULL;
  return s;
}

/* A stack of a non-default size: its own mapping with a guard page. */
static tsk__stack *get_custom(size_t size) {
  size_t ps = page_size();
  size = round_up(size, ps);
  char *m = mmap(NULL, size + ps, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return NULL;
  if (mprotect(m, ps, PROT_NONE) != 0) {
    munmap(m, size + ps);
    return NULL;
  }
  return descriptor_at(m + ps, size);
}

tsk__stack *tsk__stack_get_slow(tsk__stack_pool *p, size_t size) {
  if (size && round_up(size, page_size()) != p->stack_size) return get_custom(size);
  tsk__stack *s = p->free_list;
  if (TSK__LIKELY(s != NULL)) {
    p->free_list = s->next_free;
    p->free_count--;
    return s;
  }
  if (p->region_cur == p->region_end && new_region(p) != 0) return NULL;
  s = descriptor_at(p->region_cur, p->stack_size);
  p->region_cur += p->stack_size;
  p->carved++;
  return s;
}

void tsk__stack_unpoison(tsk__stack *s, const void *sp) {
#ifdef TSK__STACK_ASAN
  /* Frames that never returned on this stack (a finished task's last switch, the whole call
   * chain of a task destroyed while suspended) leave their AddressSanitizer redzones poisoned.
   * The next task on this stack, or on a stack mapped later at the same address, would trip over
   * them as false stack-buffer-overflows. Clear the shadow of the part that was in use: from a
   * little below the saved stack pointer to the top (deeper frames returned and cleaned up). */
  char *lo = s->base, *top = s->base + s->size;
  if (sp && (const char *)sp - 256 > lo && (const char *)sp < top) lo = (char *)sp - 256;
  ASAN_UNPOISON_MEMORY_REGION(lo, (size_t)(top - lo));
#else
  (void)s, (void)sp;
#endif
}

void tsk__stack_unmap(tsk__stack *s) {
  size_t ps = page_size();
  munmap(s->base - ps, s->size + ps); /* the guard page, and the descriptor with the stack */
}

void tsk__stack_pool_close(tsk__stack_pool *p) {
  p->free_list = NULL; /* the descriptors live in the regions */
  while (!tsk__list_empty(&p->regions_list)) {
    region *r = TSK__CONTAINER(p->regions_list.next, region, link);
    tsk__list_remove(&r->link);
    munmap(r->base, r->len);
    free(r);
  }
}
