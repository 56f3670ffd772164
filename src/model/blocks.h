/* blocks.h — the pieces of a DeepSeek layer that both forwards run: the
 * inference forward (forward.c: chunks of one sequence, a KV cache) and the
 * training forward (train/tforward.c: [B, T] batches, activations kept for
 * the backward). They keep their own state and buffers and call the same
 * blocks, so they cannot drift apart; routing is shared the same way
 * (route.h). Conventions: docs of forward.c ("conv. N").
 *
 * Where the two differ on purpose, the block takes the difference as an
 * argument: the RMSNorm of a row (inference: lm_rmsnorm in place; training:
 * a double-accumulated norm that keeps 1/rms for the backward), and where
 * the normalised latent and the roped key go (in place, or kept apart). */
#ifndef LEMMA_MODEL_BLOCKS_H
#define LEMMA_MODEL_BLOCKS_H

#include <stdint.h>

#include "core/threadpool.h"
#include "model/arch.h"
#include "model/config.h"

/* cos_t, sin_t [T, dr/2] for positions pos0 .. pos0+T-1: angles in double
 * (conv. 18), times YaRN's attention factor, then cast. inv_freq [dr/2] from
 * lm_config_rope_inv_freq. */
void lm_rope_tables(const lm_config *c, const double *inv_freq, int64_t pos0, int64_t T, float *cos_t, float *sin_t);

/* y = rmsnorm(x) * w of one row of n; returns 1/rms or 0 when the norm does
 * not give it. y may alias x. */
typedef float (*lm_norm_row_fn)(float *y, const float *x, const float *w, int64_t n, float eps);
/* lm_rmsnorm (kernels.h), returning 0: the inference norm. */
float lm_norm_row_kernel(float *y, const float *x, const float *w, int64_t n, float eps);

/* The outputs a stage of the projection has just written, for a caller
 * that checks them (inference's diagnostic forward). */
typedef enum lm_proj_stage {
    LM_PROJ_Q_A,                 /* qa: q_a_proj output */
    LM_PROJ_Q_NORM,              /* qa_n: after q_a_layernorm */
    LM_PROJ_Q,                   /* q: q_b_proj / q_proj output, before rope */
    LM_PROJ_KV_A,                /* kva: kv_a_proj_with_mqa output */
    LM_PROJ_KV_NORM,             /* c_n and kpe written (kv_a_layernorm, rope) */
} lm_proj_stage;

/* Where the attention projection of T rows writes (row n's rope angles are
 * row n % rope_period of the tables: a chunk, or each sequence of a batch). */
typedef struct lm_attn_proj {
    lm_norm_row_fn norm;
    const float *cos_t, *sin_t;  /* [rope_period, dr/2] */
    int64_t rope_period;
    float *qa;                   /* [T, Q] q_a_proj output (Q > 0) */
    float *qa_n;                 /* [T, Q] after q_a_layernorm (may be qa) */
    float *q_r;                  /* [T] 1/rms of the qa rows, or NULL */
    float *q;                    /* [T, H*(dn+dr)] query, its rope parts roped */
    float *kva;                  /* [T, C+dr] kv_a_proj_with_mqa output */
    float *c_n;                  /* normalised latent rows, stride c_stride (may be kva) */
    int64_t c_stride;
    float *c_r;                  /* [T] 1/rms of the latent rows, or NULL */
    float *kpe;                  /* roped shared key rows, stride kpe_stride (may be kva + C) */
    int64_t kpe_stride;
    /* Called after each stage when set; a non-zero return stops the block
     * and is returned. */
    int (*check)(void *ctx, lm_proj_stage stage, const float *buf, int64_t rows, int64_t width);
    void *check_ctx;
} lm_attn_proj;

/* Query (conv. 6: q LoRA or not) and the latent with its shared rope key
 * (conv. 7; interleaved rope, conv. 13) from the normalised input xn [T, D].
 * Returns 0, or the check's non-zero. */
int lm_attn_project(lm_pool *pool, const lm_dims *d, const lm_layer *L, const float *xn, int64_t T,
                    const lm_attn_proj *p);

/* Groups the nslots = T*k routing slots (slot s = token s/k, choice s%k) by
 * expert: expert e's slots are erow[eoff[e] .. eoff[e+1]), in slot order.
 * eoff [E+1], erow [nslots], fill [E] scratch. */
void lm_group_experts(const int32_t *ridx, int64_t nslots, int64_t E, int32_t *eoff, int32_t *erow, int32_t *fill);
/* xe[i] = x[token of slot erow[i]], i < n; rows of D. */
void lm_gather_expert_rows(float *xe, const float *x, const int32_t *erow, int64_t n, int64_t k, int64_t D);
/* slot_out[erow[i]] = ye[i], i < n; rows of D. */
void lm_scatter_expert_rows(float *slot_out, const float *ye, const int32_t *erow, int64_t n, int64_t D);

/* conv. 25: out[t] += sum_j w[t, j] * slot_out[t, j] (out holds the shared
 * experts' unscaled output, or zeros). out [T, D], slot_out [T, k, D]. */
void lm_moe_combine(float *out, const float *slot_out, const float *w, int64_t T, int64_t k, int64_t D);

#endif
