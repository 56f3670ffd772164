/* kvcache.h — a paged KV cache shared by many sequences, and the batched
 * forward that runs one step for all of them.
 *
 *   lm_kvcache *kc = lm_kvcache_create(m, LM_ATTN_LATENT, 16, 4096, &err);   // 4096 blocks of 16 tokens
 *   lm_fwd *f = lm_fwd_create(m, LM_ATTN_LATENT, 512, 8192, nthreads, &err); // 512 rows per call, seqs up to 8192
 *   lm_kvseq a = {0}, b = {0};
 *   lm_batch_seg seg[2] = {{&a, prompt, n}, {&b, &tok, 1}};
 *   lm_batch_forward(f, pool, kc, seg, 2, logits, LM_LOGITS_LAST, &err);    // logits [2, V]: each segment's last row
 *   lm_kvseq_fork(kc, &c, &a);            // c shares a's blocks (copy on write)
 *   lm_kvseq_release(kc, &a);
 *
 * Memory follows the tokens held: a sequence takes blocks of block_tokens
 * positions from the cache's pool as it grows and gives them back when
 * released. Blocks are reference-counted; a fork shares every block of its
 * source, and the first write into a shared block copies it (only the last,
 * partly filled block of a shared prompt is ever copied).
 *
 * Batch invariance: every output row of the batched forward is computed by
 * the same operations in the same order whatever else is in the batch (the
 * matmul gives every output element one fma chain in k order for any number
 * of rows, docs/arithmetic.md; attention runs per sequence over its own
 * cache; MoE experts compute each row alone). A sequence's logits are
 * bit-identical whether it runs alone (lm_infer_forward) or among others,
 * at any thread count. */
#ifndef LEMMA_MODEL_KVCACHE_H
#define LEMMA_MODEL_KVCACHE_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"

typedef struct lm_kvcache lm_kvcache;

/* nblocks blocks of block_tokens positions, every layer; mode picks what a
 * position holds (model.h: latent c + k_pe, or naive K and V). */
lm_kvcache *lm_kvcache_create(const lm_model *m, lm_attn_mode mode, int64_t block_tokens, int64_t nblocks,
                              lm_error *err);
void lm_kvcache_free(lm_kvcache *kc);
int64_t lm_kvcache_block_tokens(const lm_kvcache *kc);
int64_t lm_kvcache_blocks_total(const lm_kvcache *kc);
int64_t lm_kvcache_blocks_used(const lm_kvcache *kc);   /* blocks with a reference */
int64_t lm_kvcache_bytes_per_block(const lm_kvcache *kc);
lm_attn_mode lm_kvcache_mode(const lm_kvcache *kc);

/* One sequence's view of the cache: its positions 0..pos-1 live in
 * block[p / block_tokens]. Zero-initialise; the fields are read-only to
 * callers (the functions below keep them). */
typedef struct lm_kvseq {
    int32_t *block;
    int64_t nblock, cap;         /* blocks held, capacity of the array */
    int64_t pos;                 /* positions cached */
} lm_kvseq;

/* Blocks a sequence at pos needs to append n more positions (including the
 * copy of a shared last block): what a scheduler checks against
 * blocks_total - blocks_used before admitting work. */
int64_t lm_kvseq_blocks_needed(const lm_kvcache *kc, const lm_kvseq *s, int64_t n);
/* dst (empty or released) shares src's positions and blocks. */
int lm_kvseq_fork(lm_kvcache *kc, lm_kvseq *dst, const lm_kvseq *src, lm_error *err);
/* Forgets positions n.. (n <= pos); blocks past the new end are released. */
void lm_kvseq_truncate(lm_kvcache *kc, lm_kvseq *s, int64_t n);
/* Releases every block and the block array; s is empty again. */
void lm_kvseq_release(lm_kvcache *kc, lm_kvseq *s);

/* Work buffers for one batched forward of up to max_rows tokens in all,
 * attending to up to max_ctx positions per sequence, on up to nthreads
 * threads. Allocated once; the forward never allocates. mode must be that of
 * the caches it runs with. */
typedef struct lm_fwd lm_fwd;
lm_fwd *lm_fwd_create(const lm_model *m, lm_attn_mode mode, int64_t max_rows, int64_t max_ctx, int nthreads,
                      lm_error *err);
void lm_fwd_free(lm_fwd *f);
int64_t lm_fwd_max_rows(const lm_fwd *f);
int64_t lm_fwd_max_ctx(const lm_fwd *f);
/* V3.2 (a model with an indexer): every later forward writes the positions
 * each row's attention chose into buf [L][max_rows][K] (K = min(index_topk,
 * max_ctx); row r of a call = its r-th token in segment order), ascending,
 * padded with -1. NULL stops it. For tests and diagnosis. */
void lm_fwd_trace_index(lm_fwd *f, int32_t *buf);
/* The prefill form of a latent-mode forward (model.h, lm_prefill_mode);
 * the expanded form's buffers are allocated here on first use, not counted
 * by lm_fwd_buffer_bytes. Fails in naive mode. */
int lm_fwd_set_prefill(lm_fwd *f, lm_prefill_mode mode, lm_error *err);
/* Bytes lm_fwd_create would allocate for a model of this config (0 when out
 * of memory): the memory plan (memplan.h) counts them before loading. */
size_t lm_fwd_buffer_bytes(const lm_config *cfg, lm_attn_mode mode, int64_t max_rows, int64_t max_ctx, int nthreads);

/* A segment of a batch: n tokens appended to seq at positions seq->pos ..
 * seq->pos + n - 1. */
typedef struct lm_batch_seg {
    lm_kvseq *seq;
    const int32_t *ids;
    int64_t n;
} lm_batch_seg;

/* One forward over nseg segments (distinct sequences) of sum n <= max_rows
 * tokens. logits: LM_LOGITS_LAST gives [nseg, V] (each segment's last
 * token), LM_LOGITS_ALL [sum n, V] in segment order, LM_LOGITS_NONE nothing.
 * Fails without changing any sequence when an id is out of range, a
 * sequence would pass max_ctx, or the cache has too few free blocks; a
 * non-finite logits row fails naming the segment, its position and (after a
 * diagnostic re-run) the first tensor whose output went non-finite. */
int lm_batch_forward(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_batch_seg *segs, int nseg, float *logits,
                     lm_logits_mode mode, lm_error *err);
/* The same with the input rows x_in [sum n, D] given instead of the
 * embeddings of the ids (segs[g].ids may be NULL): the MTP block
 * (model/mtp.h) runs on rows it mixed from the main model's hidden states. */
int lm_batch_forward_rows(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_batch_seg *segs, int nseg,
                          const float *x_in, float *logits, lm_logits_mode mode, lm_error *err);
/* After a successful forward: the residual stream of its rows [sum n, D]
 * before the final norm (valid until the next forward with f). */
const float *lm_fwd_residual(const lm_fwd *f);

#endif
