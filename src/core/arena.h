/* arena.h — one allocation for many buffers, planned in two passes over the
 * same list: the first pass sizes (base NULL, every piece NULL), the second
 * hands out 64-byte aligned pieces of the block.
 *
 *   lm_arena a = {0};
 *   layout(&a);                        // sizes: a.bytes
 *   if (lm_arena_map(&a)) fail;        // one zeroed mapping
 *   layout(&a);                        // the same calls now return pieces
 *   ...
 *   lm_arena_unmap(&a);
 *
 * The layout function must make the same calls in both passes. */
#ifndef LEMMA_CORE_ARENA_H
#define LEMMA_CORE_ARENA_H

#include <stddef.h>

typedef struct lm_arena {
    size_t bytes;                /* planned so far */
    unsigned char *base;         /* NULL in the sizing pass */
    size_t mapped;               /* bytes of the mapping (0 before lm_arena_map) */
} lm_arena;

/* The next piece of `bytes` bytes (64-byte aligned), or NULL when sizing. */
void *lm_arena_take(lm_arena *a, size_t bytes);

/* Maps a->bytes zeroed bytes (huge pages advised) and rewinds for the
 * placing pass. -1 when the memory is not there (errno set). */
int lm_arena_map(lm_arena *a);
/* Releases the mapping (nothing when none). */
void lm_arena_unmap(lm_arena *a);

#endif
