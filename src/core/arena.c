/* arena.c — the two-pass buffer planner (arena.h). */
#include "core/arena.h"

#include <sys/mman.h>

void *lm_arena_take(lm_arena *a, size_t bytes) {
    size_t off = (a->bytes + 63) & ~(size_t)63;
    a->bytes = off + bytes;
    return a->base ? a->base + off : NULL;
}

int lm_arena_map(lm_arena *a) {
    size_t bytes = a->bytes ? a->bytes : 64;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
#ifdef MADV_HUGEPAGE
    /* Fresh pages cost ~12 us each on first touch; huge pages cut that. */
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    a->base = p;
    a->mapped = bytes;
    a->bytes = 0;
    return 0;
}

void lm_arena_unmap(lm_arena *a) {
    if (a->base && a->mapped) munmap(a->base, a->mapped);
    a->base = NULL;
    a->mapped = 0;
}
