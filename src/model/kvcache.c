/* kvcache.c — the block pool behind every KV cache; see kvcache.h.
 *
 * Storage is one mapping [L][nblocks][block_tokens][w] floats (w = floats a
 * position holds in one layer, lm_kv_floats_per_token), so that the
 * positions of a block are contiguous within a layer and a sequence whose
 * blocks have consecutive ids sees one contiguous [pos][w] array per layer
 * (the forward then reads it in place; see kv_rows in forward.c). Pages are
 * touched only when a block is first written: the pool hands out the lowest
 * free ids first, so resident memory follows the most positions ever held at
 * once, not the pool's size. */
#include "model/kvcache_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

lm_kvcache *lm_kvcache_create(const lm_model *m, lm_attn_mode mode, int64_t block_tokens, int64_t nblocks,
                              lm_error *err) {
    if (block_tokens < 1 || nblocks < 1 || nblocks > INT32_MAX) {
        lm_fail(err, "KV cache: %lld blocks of %lld positions (both must be positive, blocks < 2^31)",
                (long long)nblocks, (long long)block_tokens);
        return NULL;
    }
    int64_t w = lm_kv_floats_per_token(&m->cfg, mode), L = m->cfg.num_hidden_layers;
    double bytes = (double)L * (double)nblocks * (double)block_tokens * (double)w * sizeof(float);
    if (bytes > (double)((size_t)1 << 42)) {
        lm_fail(err, "KV cache of %lld blocks x %lld positions would need %.1f GiB: too large", (long long)nblocks,
                (long long)block_tokens, bytes / 1073741824.0);
        return NULL;
    }
    lm_kvcache *kc = calloc(1, sizeof *kc);
    if (!kc) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    kc->m = m;
    kc->mode = mode;
    kc->bt = block_tokens;
    kc->nblocks = nblocks;
    kc->w = w;
    kc->layer_floats = nblocks * block_tokens * w;
    kc->bytes = (size_t)bytes;
    kc->ref = calloc((size_t)nblocks, sizeof *kc->ref);
    kc->free_ids = malloc((size_t)nblocks * sizeof *kc->free_ids);
    void *p = kc->bytes ? mmap(NULL, kc->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                        : MAP_FAILED;
    if (!kc->ref || !kc->free_ids || p == MAP_FAILED) {
        lm_fail(err, "cannot allocate a KV cache of %.1f MiB", bytes / 1048576.0);
        if (p != MAP_FAILED) munmap(p, kc->bytes);
        free(kc->ref);
        free(kc->free_ids);
        free(kc);
        return NULL;
    }
    kc->data = p;
    /* A stack: the lowest id on top. */
    for (int64_t i = 0; i < nblocks; i++) kc->free_ids[i] = (int32_t)(nblocks - 1 - i);
    kc->nfree = nblocks;
    return kc;
}

void lm_kvcache_free(lm_kvcache *kc) {
    if (!kc) return;
    munmap(kc->data, kc->bytes);
    free(kc->ref);
    free(kc->free_ids);
    free(kc);
}

int64_t lm_kvcache_block_tokens(const lm_kvcache *kc) { return kc->bt; }
int64_t lm_kvcache_blocks_total(const lm_kvcache *kc) { return kc->nblocks; }
int64_t lm_kvcache_blocks_used(const lm_kvcache *kc) { return kc->nblocks - kc->nfree; }
int64_t lm_kvcache_bytes_per_block(const lm_kvcache *kc) {
    return kc->m->cfg.num_hidden_layers * kc->bt * kc->w * (int64_t)sizeof(float);
}
lm_attn_mode lm_kvcache_mode(const lm_kvcache *kc) { return kc->mode; }

static int32_t take_block(lm_kvcache *kc) {
    int32_t b = kc->free_ids[--kc->nfree];
    kc->ref[b] = 1;
    return b;
}

static void drop_block(lm_kvcache *kc, int32_t b) {
    if (--kc->ref[b] == 0) kc->free_ids[kc->nfree++] = b;
}

static int grow_table(lm_kvseq *s, int64_t need) {
    if (need <= s->cap) return 0;
    int64_t cap = s->cap ? s->cap : 8;
    while (cap < need) cap *= 2;
    int32_t *b = realloc(s->block, (size_t)cap * sizeof *b);
    if (!b) return -1;
    s->block = b;
    s->cap = cap;
    return 0;
}

/* The last block is partly filled and shared: appending must copy it. */
static int shared_tail(const lm_kvcache *kc, const lm_kvseq *s) {
    return s->pos % kc->bt && kc->ref[s->block[s->pos / kc->bt]] > 1;
}

int64_t lm_kvseq_blocks_needed(const lm_kvcache *kc, const lm_kvseq *s, int64_t n) {
    int64_t have = s->nblock, want = (s->pos + n + kc->bt - 1) / kc->bt;
    return (want > have ? want - have : 0) + (n > 0 && shared_tail(kc, s));
}

int kvseq_reserve(lm_kvcache *kc, lm_kvseq *s, int64_t n, lm_error *err) {
    int64_t need = lm_kvseq_blocks_needed(kc, s, n);
    if (need > kc->nfree)
        return lm_fail(err, "KV cache full: %lld more blocks needed, %lld free of %lld", (long long)need,
                       (long long)kc->nfree, (long long)kc->nblocks);
    int64_t want = (s->pos + n + kc->bt - 1) / kc->bt;
    if (grow_table(s, want)) return lm_fail(err, "out of memory");
    if (n > 0 && shared_tail(kc, s)) {
        int64_t i = s->pos / kc->bt;
        int32_t old = s->block[i], nb = take_block(kc);
        size_t rows = (size_t)(s->pos % kc->bt);
        for (int64_t l = 0; l < kc->m->cfg.num_hidden_layers; l++)
            memcpy(kvcache_rows(kc, l, nb), kvcache_rows(kc, l, old), rows * (size_t)kc->w * sizeof(float));
        drop_block(kc, old);
        s->block[i] = nb;
    }
    while (s->nblock < want) s->block[s->nblock++] = take_block(kc);
    return 0;
}

int lm_kvseq_fork(lm_kvcache *kc, lm_kvseq *dst, const lm_kvseq *src, lm_error *err) {
    if (dst == src) return 0;
    lm_kvseq_release(kc, dst);
    if (grow_table(dst, src->nblock)) return lm_fail(err, "out of memory");
    for (int64_t i = 0; i < src->nblock; i++) {
        dst->block[i] = src->block[i];
        kc->ref[src->block[i]]++;
    }
    dst->nblock = src->nblock;
    dst->pos = src->pos;
    return 0;
}

void lm_kvseq_truncate(lm_kvcache *kc, lm_kvseq *s, int64_t n) {
    if (n < 0 || n >= s->pos) return;
    int64_t keep = (n + kc->bt - 1) / kc->bt;
    /* Last block first, so the pool hands them out again in ascending order
     * (a regrowing sequence gets its consecutive ids back). */
    while (s->nblock > keep) drop_block(kc, s->block[--s->nblock]);
    s->pos = n;
}

void lm_kvseq_release(lm_kvcache *kc, lm_kvseq *s) {
    while (s->nblock > 0) drop_block(kc, s->block[--s->nblock]);
    free(s->block);
    memset(s, 0, sizeof *s);
}
