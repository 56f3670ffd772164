/* rl_common.h — what the RL recipe stages share: the prompts' problem
 * draws and the held-out set they skip, sampling groups on the trainer's
 * weights through the engine, trainer log-probabilities of sampled rows,
 * and the option keys they have in common (checkpoints, metrics and the
 * export: stage_common.h).
 *
 * Used by the `grpo` and `verifier_rl` stages.
 *
 *   lm_qset ex = {0};  lm_qset_add_file(&ex, "heldout.jsonl", &err);
 *   uint64_t k = lm_rls_step_key(seed, step, LM_RLS_KEY_PROBLEM, j);
 *   lm_rls_sample s[P * G];
 *   lm_rls_sample_groups(params, tok, pool, "grpo", ctx, prompts, P, G, seeds, &gp, s, &err);
 */
#ifndef LEMMA_RECIPE_RL_COMMON_H
#define LEMMA_RECIPE_RL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "infer/engine.h"
#include "prove/templates.h"
#include "recipe/stages.h"
#include "tasks/tasks.h"
#include "tokenizer/tokenizer.h"
#include "train/params.h"
#include "train/rl.h"
#include "train/step.h"

/* ---- options ---- */

/* The options every RL stage reads (docs/post-training.md has their meaning). */
typedef struct lm_rls_opts {
    int64_t steps, prompts, group, max_tokens, seq, micro_batch, num_iterations, save_every, log_every;
    int64_t warmup;              /* steps of linear lr warmup (0: the constant lr from the first step) */
    int drop_uniform;            /* train only the groups whose rewards differ (lm_rls_keep_mixed) */
    double temperature, top_p, lr;
    lm_adamw_opts adamw;
    double clip, bias_gamma;
    lm_rl_opts rl;
    uint64_t seed;
    int dmin, dmax;
    const char *domains, *templates;
} lm_rls_opts;

/* Refuses a key of the stage that is neither a shared RL key nor in
 * own_keys (NULL-terminated), then reads the shared keys and checks them
 * (micro_batch divides prompts x group, max_tokens < seq, the RL options).
 * kind names the stage kind in the unknown-key error. */
int lm_rls_read_opts(const lm_stage *st, const char *kind, const char *const *own_keys, lm_rls_opts *o,
                     lm_error *err);

/* The learning rate of step (0-based): lr * (step + 1) / warmup during the
 * warmup, lr after. A restarted AdamW's first updates move every weight by
 * about lr whatever its gradient's size (m / sqrt(v) is ±1 at step 1), so a
 * short warmup keeps a noisy first policy gradient from a full-size step. */
double lm_rls_lr(const lm_rls_opts *o, int64_t step);

/* The policy trainer's options: a step is prompts x group rows. */
lm_train_opts lm_rls_train_opts(const lm_rls_opts *o);

/* ---- excluded questions (the held-out set) ---- */

typedef struct lm_qset {
    char **q;                    /* sorted */
    size_t n, cap;
} lm_qset;

/* Adds the "question" of every line of a JSONL problem set. */
int lm_qset_add_file(lm_qset *s, const char *path, lm_error *err);
int lm_qset_has(const lm_qset *s, const char *q);
/* Adds the questions of the stage's "input" inputs (the held-out sets). */
int lm_rls_heldout(const lm_stage *st, lm_qset *ex, lm_error *err);

/* The stage's prompt templates: file (beside the recipe) or, NULL, the built-in ones. */
int lm_rls_templates(const lm_stage *st, const char *file, lm_prompt_templates *tp, lm_error *err);
void lm_qset_free(lm_qset *s);

/* ---- draws ---- */

/* Streams under LM_RNG_RL keyed by the step: what each draw of a step is for. */
enum { LM_RLS_KEY_PROBLEM = 1, LM_RLS_KEY_SAMPLE = 2, LM_RLS_KEY_VERIFY = 3, LM_RLS_KEY_META = 6 };
uint64_t lm_rls_step_key(uint64_t seed, int64_t step, uint64_t what, uint64_t index);

/* "all" or a comma-separated list of domain names; up to 64. */
int lm_rls_pick_domains(const char *spec, const lm_task_domain **ds, int *nd, const lm_stage *st, lm_error *err);

/* Reads "difficulty": d or [lo, hi] with 1 <= lo <= hi <= 5 (default 1). */
int lm_rls_difficulty(const lm_stage *st, int *dmin, int *dmax, lm_error *err);

/* Question and reference answer of a problem drawn for (seed, step, j):
 * domain ds[(step * per_step + j) mod nd], difficulty and generator seed
 * from lm_rls_step_key(seed, step, PROBLEM, j << 16 | attempt), redrawn
 * while the question is in ex. *pseed is the accepted draw's seed. */
int lm_rls_draw_problem(uint64_t seed, int64_t step, int64_t j, int64_t per_step, const lm_task_domain *const *ds,
                        int nd, int dmin, int dmax, const lm_qset *ex, lm_text *question, lm_text *answer,
                        uint64_t *pseed, lm_error *err);

/* A one-turn chat prompt of user text, with the generation prompt. */
int lm_rls_chat_prompt(const char *user, lm_text *out, lm_error *err);

/* ---- sampling ---- */

/* What an RL stage's checkpoints say of its sampling (lm_stage_ckpt.sampling). */
#define LM_RLS_SAMPLING_NOTE "a function of (weights, seed, step)"

typedef struct lm_rls_sample {
    lm_ids completion;           /* sampled ids (an ending EOS included) */
    float *engine_logp;          /* [completion.n] the engine's log-probability of each sampled id (for
                                    the log only: training recomputes them with the trainer's kernels) */
    size_t engine_logp_cap;
    lm_text text;                /* decoded, NUL-terminated once sampling ends (may be empty) */
    lm_finish finish;
} lm_rls_sample;

typedef struct lm_rls_gen {
    int64_t max_tokens, max_ctx;
    double temperature, top_p;
} lm_rls_gen;

/* Samples g[j] choices (choice k seeded seeds[off_j + k], off_j the sum of
 * g before j) for each of n_prompts prompts on the weights p (viewed as an
 * inference model: no copy), into out[off_j + k]. A prompt with g[j] = 0
 * is skipped. A prompt longer than max_ctx - 1 is an error. */
int lm_rls_sample_groups(const lm_params *p, lm_tokenizer *tok, lm_pool *pool, const char *name,
                         const lm_ids *prompts, int64_t n_prompts, const int64_t *g, const uint64_t *seeds,
                         const lm_rls_gen *gen, lm_rls_sample *out, lm_error *err);
void lm_rls_sample_free(lm_rls_sample *s, int64_t n);

/* The engine's log-probabilities of the sampled completions against the
 * trainer's: batch[i]'s trained tokens, in order, are the completion of
 * sm[index[i]] (index NULL: sm[i]) and batch[i].logp_old holds the
 * trainer's log-probabilities. The largest and the mean absolute difference
 * over all those tokens: sampling is on-policy when both are at rounding
 * level. */
void lm_rls_engine_logp_gap(const lm_rls_sample *sm, const lm_rl_sample *batch, const int64_t *index, int64_t n,
                            double *max_abs, double *mean_abs);

/* ---- training rows ---- */

/* The samples of s[0..n) (groups 0..n_groups-1) whose group's rewards are
 * not all equal, in sample order, into out[0..*kept) with their groups
 * renumbered 0..*kept_groups-1 by first appearance; logp_old and logp_ref
 * arrays travel with them (lref and out_ref may be NULL); out_index[k] is the index in
 * s of out[k]. A group whose rewards are all
 * equal has advantage 0 for every sample: no policy gradient, only the KL
 * term (DAPO's dynamic sampling drops such groups). -1 out of memory. */
int lm_rls_keep_mixed(const lm_rl_sample *s, int64_t n, int64_t n_groups, float *const *lold, float *const *lref,
                      lm_rl_sample *out, float **out_old, float **out_ref, int64_t *out_index, int64_t *kept,
                      int64_t *kept_groups, lm_error *err);

/* What lm_rls_train did: the first (on-policy) iteration's statistics, its
 * .train the last iteration's (gradient norm, lr); the last iteration's in
 * full; the trained samples (batch, index as lm_rls_keep_mixed gives them:
 * index NULL when every sample was trained). */
typedef struct lm_rls_trained {
    lm_rl_stats first, last;
    const lm_rl_sample *batch;
    const int64_t *index;
    int64_t samples;
} lm_rls_trained;

/* One RL step of the stages (step 5 of grpo, 4 of verifier_rl): the samples
 * rs[0..n) in n_groups groups, or with o->drop_uniform those of the groups
 * whose rewards differ (into rs[n..2n), lold[n..2n), lref[n..2n) and index:
 * the arrays must have that room; lref may be NULL when beta_kl is 0);
 * logp_old of the trained samples from tr (the sampling weights), logp_ref
 * from ref_tr when beta_kl > 0, then num_iterations lm_rl_step calls at
 * lm_rls_lr(o, step). No sample to train: no update, out->samples 0. The
 * buffers are [micro_batch * seq]. Errors name the step and iteration. */
int lm_rls_train(lm_trainer *tr, lm_trainer *ref_tr, lm_pool *pool, const lm_rls_opts *o, int64_t step,
                 lm_rl_sample *rs, float **lold, float **lref, int64_t *index, int64_t n, int64_t n_groups,
                 int32_t *buf_ids, int32_t *buf_tgt, float *buf_lp, lm_rls_trained *out, lm_error *err);

/* Appends what a step learned from to a metrics line: ratio_dev_max,
 * mixed_groups, trained_samples, adv_abs_mean, and with more than one
 * iteration the last one's ratio_mean_last and clip_frac_last. */
void lm_rls_put_learning(lm_text *line, const lm_rls_opts *o, const lm_rl_stats *first, const lm_rl_stats *last,
                         int64_t trained);

/* logp[i][t] = log pi(x_t | x_<t) under tr for the trained tokens of every
 * sample (0 elsewhere), micro rows at a time; ids, tgt, out: [micro * T]. */
int lm_rls_logprobs(lm_trainer *tr, lm_pool *pool, const lm_rl_sample *s, int64_t n, int64_t micro, int64_t T,
                    float **logp, int32_t *ids, int32_t *tgt, float *out, lm_error *err);

#endif
