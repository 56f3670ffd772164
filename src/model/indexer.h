/* indexer.h — DeepSeek-V3.2's sparse attention (DSA): the "lightning
 * indexer" that picks, for every query, the index_topk earlier positions its
 * MLA heads attend to, and the FP8 rounding the released model applies to
 * the indexer's q/k and to the cached MLA latent. The forward (forward.c)
 * calls these per layer; docs/deepseek-conventions.md items 33-48 give every
 * rule with the reference code that decides it ("conv. N" below).
 *
 *   lm_indexer_project(pool, cfg, L, xn, qa_n, T, cos, sin, &out);  // q, weights, key slots of T rows
 *   lm_indexer_gather_keys(cfg, slot, stride, n, buf, kscale);      // cached key slots -> buf
 *   lm_mat k = lm_indexer_keys_view(cfg, buf, n, ones, NULL);       // ... as a matrix
 *   lm_indexer_scores(pool, cfg, q, w, nq, &k, kscale, dots, I, ldI); // I[t, s]
 *   lm_indexer_select(I, n, K, sel, scratch);                       // top-K positions, ascending
 *
 * A position's index key takes lm_indexer_key_floats(cfg) floats of a cache
 * row: with the FP8 emulation on, its di e4m3 codes (4 per float, by
 * memcpy) and its scale (132 bytes for V3.2's di = 128); off, di floats.
 *
 * Every result is a fixed sequence of fp32 operations (fma chains in k
 * order inside lm_matmul, docs/arithmetic.md): the same bits on every ISA
 * path, thread count and batch composition. */
#ifndef LEMMA_MODEL_INDEXER_H
#define LEMMA_MODEL_INDEXER_H

#include <stdint.h>

#include "core/threadpool.h"
#include "model/arch.h"
#include "model/config.h"

/* ---- FP8 (E4M3fn) activation quantisation, conv. 39 ---- */

/* Scale of a block whose largest |x| is amax: amax floored at 1e-4, divided
 * by 448 (times fl32(1/448)); with ue8m0 rounded up to a power of two. */
float lm_fp8_act_scale(float amax, int ue8m0);
/* act_quant of one block of n values: codes[i] = e4m3(clamp(x[i] / s, ±448))
 * rounded to nearest even; returns s. */
float lm_fp8_act_quant(const float *x, int64_t n, int ue8m0, uint8_t *codes);
/* x[i] = e4m3 value of codes * s for each block of 128 (n % 128 == 0): the
 * round trip the V3.2 code applies to the normalised latent (conv. 45). */
void lm_fp8_round_blocks(float *x, int64_t n, int ue8m0);

/* ---- the indexer's own transforms ---- */

/* y = H x * n^-0.5 in place (conv. 38): Sylvester order, n a power of two. */
void lm_hadamard(float *x, int64_t n);
/* Rotates pairs (x[i], x[i + half]) by (cos[i], sin[i]), i < half: the
 * non-interleaved rope of the indexer (conv. 37). */
void lm_rope_neox(float *x, const float *cos_t, const float *sin_t, int64_t half);
/* LayerNorm with weight and bias (conv. 36): y may alias x. */
void lm_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);
/* cos/sin [T, dr/2] of positions pos0.. with no attention factor (conv. 37). */
void lm_indexer_rope_tables(const lm_config *c, const double *inv_freq, int64_t pos0, int64_t T, float *cos_t,
                            float *sin_t);

/* ---- projection, scores, selection ---- */

/* Floats a position's index key takes in a cache row (0 without an indexer). */
int64_t lm_indexer_key_floats(const lm_config *c);

typedef struct lm_indexer_out {
    float *q;                    /* [T, Hi, di]: e4m3 values (unscaled) with FP8 on, else the rotated q */
    float *w;                    /* [T, Hi]: per-head weights with q's scale and the constants folded in */
    float *key;                  /* [T, key_floats]: each row's key slot, to be cached */
    float *k;                    /* [T, di] scratch */
} lm_indexer_out;

/* The indexer's queries, head weights and keys of T rows (conv. 35-39):
 * xn [T, D] the attention input, qa_n [T, Q] the normalised query latent,
 * cos/sin [T, dr/2] from lm_indexer_rope_tables. */
void lm_indexer_project(lm_pool *pool, const lm_config *c, const lm_layer *L, const float *xn, const float *qa_n,
                        int64_t T, const float *cos_t, const float *sin_t, const lm_indexer_out *out);

/* n key slots (row stride `stride` floats) into buf, one key after
 * another, and kscale [n] (the FP8 scales, or 1): FP8 on, the di e4m3 codes
 * of each (n * di bytes); off, its di floats. */
void lm_indexer_gather_keys(const lm_config *c, const float *slot, int64_t stride, int64_t n, void *buf,
                            float *kscale);
/* n gathered keys as an [n, di] matrix for lm_indexer_scores: FP8 on, an
 * F8_E4M3 view whose block scales are `ones` [ceil(n / 128)] (1.0f), so the
 * matmul reads the codes as cached and converts them exactly — or, when
 * f32 [n * di] is given, the codes converted into it and an F32 view (the
 * same values: for products with many rows, where converting once is
 * cheaper than in the matmul); off, F32. */
lm_mat lm_indexer_keys_view(const lm_config *c, const void *buf, int64_t n, const float *ones, float *f32);

/* I[t * ldI + s] = kscale[s] * sum_h w[t, h] * ReLU(q[t, h] . k[s]) for nq
 * query rows and the keys' rows (conv. 40); dots [nq * Hi, keys->rows]
 * scratch. Exact zeros are +0, so a key's sign of zero never decides a
 * choice. */
void lm_indexer_scores(lm_pool *pool, const lm_config *c, const float *q, const float *w, int64_t nq,
                       const lm_mat *keys, const float *kscale, float *dots, float *I, int64_t ldI);

/* The positions of the K largest of I[0 .. n-1] (all n when n <= K) in
 * ascending order; ties go to the smaller position, NaN ranks below every
 * number (conv. 41). scratch [n]. Returns the count, min(K, n). */
int64_t lm_indexer_select(const float *I, int64_t n, int64_t K, int32_t *sel, uint64_t *scratch);

#endif
