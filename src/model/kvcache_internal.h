/* kvcache_internal.h — the block pool's layout, shared by kvcache.c (block
 * management) and forward.c (which reads and writes the rows). */
#ifndef LEMMA_MODEL_KVCACHE_INTERNAL_H
#define LEMMA_MODEL_KVCACHE_INTERNAL_H

#include <stddef.h>

#include "model/kvcache.h"

struct lm_kvcache {
    const lm_model *m;
    lm_attn_mode mode;
    int64_t bt;                  /* positions per block */
    int64_t nblocks;
    int64_t w;                   /* floats per position per layer */
    int64_t layer_floats;        /* nblocks * bt * w */
    float *data;                 /* [L][nblocks][bt][w], mapped lazily */
    size_t bytes;
    int32_t *ref;                /* [nblocks] references (0: free) */
    int32_t *free_ids;           /* [nblocks] stack of free ids, lowest on top when fresh */
    int64_t nfree;
};

/* Row 0 of block b in layer l ([bt][w] floats follow). */
static inline float *kvcache_rows(const lm_kvcache *kc, int64_t l, int32_t b) {
    return kc->data + l * kc->layer_floats + (int64_t)b * kc->bt * kc->w;
}

/* Makes room for n more positions of s: blocks taken from the pool and a
 * shared last block copied; s->pos is unchanged. Fails (nothing changed)
 * when the pool has too few free blocks. */
int kvseq_reserve(lm_kvcache *kc, lm_kvseq *s, int64_t n, lm_error *err);

#endif
