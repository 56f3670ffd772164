/* speculative.h — speculative decoding with the checkpoint's MTP layer as
 * the draft (model/mtp.h) and the main model as the verifier.
 *
 * One step, with x the token just chosen (not yet run):
 *   1. the MTP layer drafts d ~ q from the main model's last hidden state
 *      and x;
 *   2. the main model runs x and d at positions n, n+1 in one forward:
 *      p1 (for n+1) and p2 (for n+2);
 *   3. d is accepted with probability min(1, p1(d) / q(d)); then the step
 *      gives d and y ~ p2. Rejected, it gives r ~ (p1 - q)+ normalised, and
 *      position n+1 is dropped from the cache (a truncation: the latent
 *      cache is append-only per position).
 * p and q are the distributions after the sampling filters (sample.h), so
 * every token follows the plain sampler's distribution exactly
 * (Leviathan et al. 2023, Chen et al. 2023). At temperature 0 both are
 * one-hot: d is kept iff it is the main model's argmax, and the output is
 * the plain greedy output token for token — the logits of a position do
 * not depend on how many rows its forward ran (docs/arithmetic.md).
 *
 * Draws are lm_rng_uniform(seed, LM_RNG_SAMPLING, counter) with counters
 * of their own (from 2^40 + 4 * step), so a run is a pure function of
 * (model, prompt, settings, seed) at any thread count. */
#ifndef LEMMA_INFER_SPECULATIVE_H
#define LEMMA_INFER_SPECULATIVE_H

#include <stdint.h>

#include "core/threadpool.h"
#include "infer/sample.h"
#include "model/model.h"
#include "model/mtp.h"

typedef struct lm_spec lm_spec;

typedef struct lm_spec_stats {
    int64_t steps;               /* verification forwards */
    int64_t drafted;             /* drafts verified */
    int64_t accepted;            /* drafts kept */
} lm_spec_stats;

/* Caches of max_ctx positions for the main model and the MTP block, and
 * their buffers; m and mtp must outlive it. */
lm_spec *lm_spec_create(const lm_model *m, lm_mtp *mtp, lm_attn_mode mode, int64_t max_ctx, int nthreads,
                        lm_error *err);
void lm_spec_free(lm_spec *sp);
int64_t lm_spec_pos(const lm_spec *sp);  /* positions in the main cache */
lm_spec_stats lm_spec_get_stats(const lm_spec *sp);

/* Empties both caches and runs the prompt (n >= 1) through the main model
 * and the MTP block; logits[V] gets the main logits after the prompt. */
int lm_spec_prefill(lm_spec *sp, lm_pool *pool, const int32_t *ids, int64_t n, float *logits, lm_error *err);

/* One step from x, the token chosen for position pos (see above): out
 * gets 1 or 2 tokens. With a single free position left it runs x alone and
 * samples from its logits. Fails when the cache is full. */
int lm_spec_step(lm_spec *sp, lm_pool *pool, lm_sampler *smp, const lm_sampling *cfg, int32_t x, int32_t out[2],
                 int *nout, lm_error *err);

/* The parts of a step, for tests: the MTP logits for position pos+1 given
 * x at pos; the main forward of x and d (d < 0: x alone), logits [2 or 1, V];
 * then whether d is kept (rejected: position pos+1 is dropped). */
int lm_spec_draft(lm_spec *sp, lm_pool *pool, int32_t x, float *draft_logits, lm_error *err);
int lm_spec_verify(lm_spec *sp, lm_pool *pool, int32_t x, int32_t d, float *logits, lm_error *err);
void lm_spec_settle(lm_spec *sp, int accepted);

/* The acceptance rule for a draft d ~ q against the target p (dense
 * distributions over V ids): *accepted = u_accept < p[d] / q[d]; the
 * result is d when accepted, else the draw at u_resample from
 * max(p - q, 0) normalised (p itself if that is all zero). */
int32_t lm_spec_resolve(const double *p, const double *q, int64_t V, int32_t d, double u_accept, double u_resample,
                        int *accepted);

#endif
