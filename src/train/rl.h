/* rl.h — the policy-gradient step of GRPO and its variants on a fixed batch
 * of sampled sequences: group-normalised advantages, the clipped surrogate,
 * the k3 KL penalty to a frozen reference, and the three ways of averaging
 * over tokens. docs/post-training.md gives the formulas with their papers.
 *
 *   lm_rl_opts o = lm_rl_opts_default();           // GRPO as DeepSeekMath
 *   lm_rl_sample s[n] = {...};                     // ids, mask, logp_old, logp_ref, reward, group
 *   lm_rl_stats st;
 *   lm_rl_step(tr, pool, &o, s, n, n_groups, lr, &st, &err);
 *
 * Sample i is a token sequence x_0 .. x_{len-1} (prompt + completion); the
 * tokens with train[t] = 1 are the completion o_i (what the policy chose
 * and is trained on; train[0] must be 0: nothing predicts x_0), |o_i| their
 * count. logp_old[t] is log pi_old(x_t | x_<t) at sampling time, logp_ref[t]
 * the frozen reference model's; both are read only where train[t] = 1.
 * With logp_t the current policy's (the trainer's forward):
 *
 *   advantage    A_i = (r_i - mean_g) / (std_g + std_eps)   scale_std = 1 (GRPO)
 *                A_i =  r_i - mean_g                        scale_std = 0 (Dr. GRPO)
 *                over the samples of i's group g; std is the population
 *                standard deviation (divisor |g|), so a group of one has
 *                A = 0 in both modes (only its KL term trains).
 *   ratio        rho_t = exp(logp_t - logp_old_t)
 *   surrogate    s_t = min(rho_t A_i, clip(rho_t, 1 - clip_low, 1 + clip_high) A_i)
 *   k3 KL        k_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1
 *   token term   l_t = -s_t + beta_kl k_t
 *   loss         L = sum_i w_i sum_{t in o_i} l_t, with (n samples)
 *                  LM_RL_SEQ_MEAN    w_i = 1 / (n |o_i|)        GRPO
 *                  LM_RL_TOKEN_MEAN  w_i = 1 / sum_j |o_j|      DAPO
 *                  LM_RL_SEQ_SUM     w_i = 1 / (n norm_len)     Dr. GRPO
 *
 * Gradient: d s_t / d logp_t = rho_t A_i where the unclipped term is the
 * minimum (ties included: inside the clip range both terms are equal and
 * so are their slopes), 0 where the clipped term is strictly smaller;
 * d k_t / d logp_t = 1 - exp(ref_t - logp_t). A_i, w_i, logp_old and ref
 * are constants. The gradient enters the model through the trainer
 * (step.h, lm_train_accumulate_token_loss), so it has the trainer's
 * contracts: bit-identical at any thread count, one add per element and
 * pass into p->g.
 *
 * Layout in the trainer: sample i becomes one row of seq positions, input
 * x_0 .. x_{len-2} and targets x_1 .. x_{len-1} (-1 where train = 0), so
 * len may be up to seq + 1; the rest of the row is padding (id 0, no
 * target; causal attention keeps it out of the sample's positions, though
 * MoE expert loads and the balance term count it, as in SFT). Micro-batches
 * of the trainer's micro_batch rows, in sample order.
 *
 * Errors (the weights and optimiser state do not change): no samples; a
 * reward, logp_old or logp_ref (where read) that is NaN or infinite; a
 * group id outside 0..n_groups-1 or a group without samples; a sample with
 * no completion token, with train[0] set, longer than seq + 1, or with an
 * id outside the vocabulary; beta_kl > 0 without logp_ref; options out of
 * range; a ratio or KL term that overflows (logp_old or logp_ref hundreds
 * of nats from the policy) or a loss that is not finite, found after the
 * forward and before any update (p->g then holds a partial gradient). */
#ifndef LEMMA_TRAIN_RL_H
#define LEMMA_TRAIN_RL_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/step.h"

typedef enum lm_rl_agg {
    LM_RL_SEQ_MEAN = 0,          /* GRPO (DeepSeekMath eq. 3): mean over samples of each one's token mean */
    LM_RL_TOKEN_MEAN = 1,        /* DAPO (section 3.3): every token of the batch weighs the same */
    LM_RL_SEQ_SUM = 2,           /* Dr. GRPO: token sums over samples, divided by n * norm_len */
} lm_rl_agg;

typedef struct lm_rl_opts {
    int scale_std;               /* 1: divide advantages by the group's std + std_eps (GRPO); 0: Dr. GRPO */
    double std_eps;              /* > 0 */
    lm_rl_agg agg;
    double norm_len;             /* Dr. GRPO's constant (e.g. the generation budget); > 0 for LM_RL_SEQ_SUM */
    double clip_low, clip_high;  /* ratio clipped to [1 - clip_low, 1 + clip_high]; 0 <= clip_low < 1, clip_high >= 0 */
    double beta_kl;              /* weight of the k3 KL to the reference; 0: off (logp_ref may be NULL) */
} lm_rl_opts;

/* GRPO: scale_std 1, std_eps 1e-4, LM_RL_SEQ_MEAN, clip 0.2 / 0.2,
 * beta_kl 0.04 (DeepSeekMath's), norm_len 0. */
lm_rl_opts lm_rl_opts_default(void);
/* Validates o; -1 with the offending field named. */
int lm_rl_opts_check(const lm_rl_opts *o, lm_error *err);

typedef struct lm_rl_sample {
    const int32_t *ids;          /* [len] prompt + completion */
    int64_t len;
    const uint8_t *train;        /* [len] 1: completion token, trained */
    const float *logp_old;       /* [len] sampling-time log-probability of ids[t] */
    const float *logp_ref;       /* [len] reference model's, or NULL when beta_kl = 0 */
    double reward;
    int64_t group;               /* 0 .. n_groups-1 */
} lm_rl_sample;

typedef struct lm_rl_stats {
    double loss;                 /* L above, before the update */
    double kl;                   /* mean k3 over the completion tokens */
    double clip_frac;            /* share of completion tokens where the clipped term was strictly smaller */
    double ratio_mean;           /* mean rho */
    double ratio_dev_max;        /* max |rho - 1|: 0 up to fp32 rounding when logp_old is the policy's own */
    double adv_abs_mean;         /* mean |A_i| over the samples */
    int64_t mixed_groups;        /* groups whose rewards are not all equal: the ones with a policy gradient */
    double reward_mean, reward_std; /* over the samples (population std) */
    int64_t samples, tokens;     /* samples, completion tokens */
    lm_train_stats train;        /* the trainer's: grad norm, clip scale, lr, step, expert loads */
} lm_rl_stats;

/* adv[i] = A_i of the samples (only reward and group are read). */
int lm_rl_advantages(const lm_rl_opts *o, const lm_rl_sample *s, int64_t n, int64_t n_groups, double *adv,
                     lm_error *err);

/* w[i] = w_i of the averaging above (reads train masks and lengths; the
 * samples must be valid: lm_rl_accumulate checks them first). */
void lm_rl_seq_weights(const lm_rl_opts *o, const lm_rl_sample *s, int64_t n, double *w);

/* One token's term w l_t and *dloss_dlogp = w dl_t/dlogp_t, from doubles;
 * *clipped = 1 where the clipped surrogate was strictly smaller, *ratio =
 * rho_t, *kl = k_t (any of the three may be NULL). The trainer's hook
 * calls exactly this. */
double lm_rl_token_loss(const lm_rl_opts *o, double weight, double adv, double logp, double logp_old,
                        double logp_ref, double *dloss_dlogp, int *clipped, double *ratio, double *kl);

/* lm_train_begin, then the gradient of L over all samples into p->g (the
 * micro-batches accumulate); fills st except st->train. Does not update
 * the weights: a data-parallel or custom loop calls lm_train_apply. */
int lm_rl_accumulate(lm_trainer *tr, lm_pool *pool, const lm_rl_opts *o, const lm_rl_sample *s, int64_t n,
                     int64_t n_groups, lm_rl_stats *st, lm_error *err);

/* lm_rl_accumulate + lm_train_apply (clip, AdamW, MoE bias) with lr: one
 * optimiser step, a pure function of (weights and optimiser state,
 * samples, rewards, options). */
int lm_rl_step(lm_trainer *tr, lm_pool *pool, const lm_rl_opts *o, const lm_rl_sample *s, int64_t n,
               int64_t n_groups, double lr, lm_rl_stats *st, lm_error *err);

#endif
