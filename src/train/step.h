/* step.h — one training step of a DeepSeek-V2/V3 model on a batch of token
 * sequences: forward, masked cross-entropy, backward, gradient clipping,
 * AdamW, and the DeepSeek-V3 MoE load balancing.
 *
 *   lm_params *p;  ... create, init or load (params.h) ...
 *   lm_train_opts o = lm_train_opts_default();
 *   o.batch = 8; o.seq = 256; o.micro_batch = 4;  o.clip = 1.0; ...
 *   lm_trainer *tr = lm_trainer_create(p, &o, nthreads, &err);
 *   for (step = 0; step < n; step++) {
 *       lm_train_stats st;
 *       lm_train_step(tr, pool, ids, targets, lm_schedule_lr(&sched, step), &st, &err);
 *       printf("%lld %.4f %.3g\n", st.step, st.loss, st.grad_norm);
 *   }
 *
 * ids and targets are [batch, seq] int32, row-major; every row is one
 * sequence at positions 0..seq-1 (causal attention within the row only).
 * targets[b, t] is the id that position t should predict (usually
 * ids[b, t+1]), or -1 to leave the position out of the loss (padding,
 * prompts in SFT). The loss is the mean over the positions with a target,
 * counted over the whole batch, so splitting the batch into micro-batches
 * (gradient accumulation) gives the same gradient up to fp32 rounding.
 *
 * A step, in order:
 *   1. g = 0; for each micro-batch: forward, loss, backward (g +=).
 *   2. grad_norm = ||g|| over trainable tensors; clip scale (adamw.h).
 *   3. AdamW update with the given lr.
 *   4. MoE balance (DeepSeek-V3, "auxiliary-loss-free"): for each MoE layer
 *      with a correction bias, load_e = tokens routed to expert e in this
 *      step, mean = sum(load) / E; bias_e += gamma * sign(mean - load_e)
 *      (under-loaded experts up, over-loaded down, exact ties unchanged).
 * Optionally (balance_alpha > 0) the loss also has the sequence-wise balance
 * term of DeepSeek-V3 (eq. 17-20), for every MoE layer and sequence:
 *   f_i = E / (K T) * #{t : expert i among the chosen top-K of token t}
 *   P_i = 1/T sum_t s'_{i,t},  s'_{i,t} = s_{i,t} / sum_j s_{j,t}
 *   L_bal = alpha * sum_i f_i P_i
 * (s = the unbiased sigmoid/softmax scores, f constant), summed over layers
 * and averaged over the batch's sequences; every position of a sequence
 * counts, masked or not. It is added to the reported balance_loss, not to
 * loss.
 *
 * Determinism: every result (loss, gradients, weights) is bit-identical for
 * any thread count: products split by output, reductions over tokens in a
 * fixed order (tkernels.h), gradient norm in fixed chunks (adamw.h).
 *
 * Accumulation contract: one pass (lm_train_accumulate) computes its whole
 * gradient from zero and adds it to p->g with exactly one add per element,
 * so after passes 1..M, g = ((g_1 + g_2) + ...) + g_M, a left fold of
 * per-pass gradients (loss sums and loads likewise). Data-parallel training
 * is therefore: rank r runs lm_train_begin + one lm_train_accumulate of its
 * sequences with the global denominators; the gradients (p->g), expert
 * loads (lm_train_expert_loads) and loss sums are summed in rank order (a
 * chain or ring that adds in order, not a tree); every rank runs
 * lm_train_apply. That is bit-identical to one process running the ranks'
 * sequences as micro-batches (tested).
 *
 * Memory: lm_trainer_create allocates everything once (activations kept for
 * backward for one micro-batch, scratch, optimiser chunk table); a step
 * allocates nothing. lm_train_act_floats_per_token says what the kept
 * activations cost; the header comment of tforward.c lists them. */
#ifndef LEMMA_TRAIN_STEP_H
#define LEMMA_TRAIN_STEP_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/adamw.h"
#include "train/params.h"

/* Mixed precision. With LM_PRECISION_BF16, every Linear product (forward,
 * and both backward products) runs on the bf16 pair chain of
 * core/bf16gemm.h (vdpbf16ps where the CPU has AVX512_BF16, an exact
 * emulation elsewhere): operands rounded to bf16 (nearest even) as they are
 * packed — the weights (from a bf16 copy of the fp32 master weights,
 * refreshed at every forward), the activations that enter it and, in the
 * backward, the output gradient — and fp32 accumulation, two products per
 * step as the instruction does them (docs/arithmetic.md, "The bf16 pair
 * chain"). The result is the same bits on every ISA and thread count, like
 * fp32 training. Everything else stays fp32: master weights, gradients,
 * AdamW state, norms, softmax, the attention core (QK^T, PV), the router's
 * choice and the loss. docs/train-benchmarks.md compares its loss curve
 * with fp32's. */
typedef enum lm_precision { LM_PRECISION_F32 = 0, LM_PRECISION_BF16 = 1 } lm_precision;

/* "f32" / "fp32" or "bf16" -> *out; -1 otherwise. */
int lm_precision_parse(const char *s, lm_precision *out);
const char *lm_precision_name(lm_precision p);

typedef struct lm_train_opts {
    int64_t batch;               /* sequences per step (B) */
    int64_t seq;                 /* positions per sequence (T) */
    int64_t micro_batch;         /* sequences per forward/backward; 0 = batch; must divide batch */
    lm_adamw_opts adamw;         /* betas, eps, weight decay */
    double clip;                 /* max global gradient norm; <= 0: no clipping */
    double bias_gamma;           /* MoE correction-bias step gamma; 0: off */
    double balance_alpha;        /* sequence-wise balance loss weight alpha; 0: off */
    /* MTP loss weight lambda (DeepSeek-V3 section 2.2; 0: off). With an MTP
     * layer in the parameters (num_nextn_predict_layers 1), the CE passes
     * (lm_train_accumulate, lm_train_step) add lambda times the MTP layer's
     * cross-entropy of token t+2 at each position t whose token t+1 is in
     * the sequence, normalised like the main loss (by the main target
     * count, as the report's 1/T). Other losses ignore it. The MTP
     * gradients of the shared embedding, head and model.norm join the
     * pass's own before its one add (the accumulation contract below
     * holds). With 0, an MTP layer in the parameters is left out of the
     * optimiser (kept as loaded). */
    double mtp_weight;
    lm_precision precision;      /* LM_PRECISION_F32 (default) or LM_PRECISION_BF16 */
} lm_train_opts;

/* batch 1, seq 0 (must be set), micro_batch 0, AdamW (0.9, 0.95, 1e-8,
 * wd 0.1), clip 1.0, gamma 0.001, alpha 0. */
lm_train_opts lm_train_opts_default(void);

typedef struct lm_train_stats {
    double loss;                 /* mean cross-entropy over positions with a target */
    double balance_loss;         /* the alpha-weighted sequence-wise balance term (0 when off) */
    double mtp_loss;             /* the MTP cross-entropy, unweighted, same normalisation as loss (0 when off) */
    double grad_norm;            /* global gradient norm before clipping */
    double clip_scale;           /* factor the gradient was multiplied by (1: not clipped) */
    double lr;
    int64_t tokens;              /* positions with a target */
    int64_t step;                /* optimiser steps done, this one included */
    const int64_t *expert_load;  /* [n_moe_layers, E] tokens routed per expert in this step */
    const int32_t *moe_layers;   /* [n_moe_layers] layer index of each row */
    int64_t n_moe_layers, n_experts;
} lm_train_stats;

typedef struct lm_trainer lm_trainer;

lm_trainer *lm_trainer_create(lm_params *p, const lm_train_opts *o, int nthreads, lm_error *err);
void lm_trainer_free(lm_trainer *tr);
/* The optimiser (for its step count and checkpointing m and v, which live in p). */
lm_adamw *lm_trainer_adamw(lm_trainer *tr);

/* One whole step (see above). ids, targets: [batch, seq]. Fails (changing
 * nothing) on an id or target out of range or a pool larger than nthreads. */
int lm_train_step(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, double lr,
                  lm_train_stats *st, lm_error *err);

/* ---- the pieces of a step, for data-parallel and custom loops ---- */

/* g = 0, loads and sums = 0. */
void lm_train_begin(lm_trainer *tr);
/* Forward + backward of nseq sequences (nseq <= micro_batch), adding to g,
 * loads and loss sums. The loss gradient is divided by denom_tokens (the
 * positions with a target in the whole global batch) and the balance term
 * by denom_seqs (its sequences). */
int lm_train_accumulate(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                        int64_t denom_tokens, int64_t denom_seqs, lm_error *err);
/* The expert loads accumulated since lm_train_begin, [n_moe_layers, E]
 * (writable: a data-parallel run replaces them by the sums over processes
 * before lm_train_apply); *n gets n_moe_layers * E. */
int64_t *lm_train_expert_loads(lm_trainer *tr, int64_t *n);
/* The loss sum, the balance-term sum and the positions with a target
 * accumulated since lm_train_begin; a data-parallel run replaces them by
 * the sums over processes (in rank order) before lm_train_apply. */
void lm_train_get_sums(const lm_trainer *tr, double *loss_sum, double *balance_sum, int64_t *tokens);
void lm_train_set_sums(lm_trainer *tr, double loss_sum, double balance_sum, int64_t tokens);
/* The loss and positions accumulated since lm_train_begin, as lm_train_apply
 * will report them in st->loss and st->tokens (to check them first). */
void lm_train_loss_so_far(const lm_trainer *tr, double *loss, int64_t *tokens);
/* Clip, AdamW, MoE bias update; fills st (loss = loss sum / denominator of
 * the accumulated calls). */
void lm_train_apply(lm_trainer *tr, lm_pool *pool, double lr, lm_train_stats *st);

/* ---- losses of the target's log-probability (policy gradient) ----
 *
 * A loss sum_n f_n(logp_n) over the positions n with a target, where
 * logp_n = log softmax(logits_n)[target_n] under the current weights and
 * f_n is any differentiable function the caller supplies per position (the
 * clipped GRPO objective and the KL penalty of train/rl.h are such terms:
 * their weights depend on logp itself). The backward is the trainer's own,
 * entered at the head with d loss / d logits_n = f_n'(logp_n) (onehot -
 * softmax): the cross-entropy row gradient scaled by -f_n'(logp_n).
 *
 * The hook gets the position's row in this pass (b*seq + t of the ids given
 * to the call) and logp_n (double, from the fp32 logits); it returns
 * f_n(logp_n) and sets *dloss_dlogp = f_n'(logp_n). It is called once per
 * position with a target, from pool threads and in no fixed order, so it
 * must be a pure function of (row, logp) and write only to row-indexed
 * slots of its context; the results are then the same bits at any thread
 * count, like the rest of the trainer. */
typedef double (*lm_token_loss_fn)(void *ctx, int64_t row, double logp, double *dloss_dlogp);

/* lm_train_accumulate with the loss above instead of the mean
 * cross-entropy: adds its gradient to g (the same accumulation contract),
 * sum_n f_n to the loss sum (lm_train_apply reports it unscaled as
 * st->loss) and the positions to st->tokens. The f_n carry their own
 * normalisation. A step uses one kind of accumulate: mixing it with
 * lm_train_accumulate after one lm_train_begin is refused. */
int lm_train_accumulate_token_loss(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                                   int64_t nseq, lm_token_loss_fn fn, void *ctx, int64_t denom_seqs, lm_error *err);

/* ---- losses of the whole logits row (distillation) ----
 *
 * A loss sum_n f_n(z_n) over the positions n with a target, where z_n is
 * the position's fp32 logits row [vocab] and f_n any differentiable
 * function (soft-target cross-entropy, KL to a teacher's distribution:
 * train/distill.h). The hook gets the row (b*seq + t of the ids given to
 * the call) and z_n in `logits`, returns f_n(z_n) and overwrites `logits`
 * with d f_n / d z_n; the trainer's backward takes it from the head down.
 * Same rules as lm_token_loss_fn: called once per position with a target,
 * from pool threads in no fixed order, so it must be a pure function of
 * (row, logits) writing only row-indexed slots of its context (then the
 * results are the same bits at any thread count). */
typedef double (*lm_row_loss_fn)(void *ctx, int64_t row, float *logits, int64_t vocab);

/* lm_train_accumulate with the row loss above: adds its gradient to g (the
 * same accumulation contract), sum_n f_n to the loss sum (reported
 * unscaled as st->loss, like the token loss: the f_n carry their own
 * normalisation) and the positions to st->tokens. Counts as the per-token
 * kind of loss for lm_train_begin's one-kind-per-step rule. */
int lm_train_accumulate_row_loss(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                                 int64_t nseq, lm_row_loss_fn fn, void *ctx, int64_t denom_seqs, lm_error *err);

/* Forward only: calls fn on the logits row of every position with a target
 * (its writes to `logits` are discarded; its return value is ignored):
 * how a teacher's distribution is read. Gradients, loads and the step's
 * sums do not change. */
int lm_train_row_forward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                         lm_row_loss_fn fn, void *ctx, lm_error *err);

/* Forward only: logp[n] = log softmax(logits_n)[targets[n]] for the nseq*seq
 * positions n with a target (0 where targets[n] < 0). Same bits as the
 * logp the hook above sees for the same weights and ids. */
int lm_train_logprobs(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                      float *logp, lm_error *err);

/* Forward only: sum of the cross-entropy over the positions with a target of
 * nseq <= micro_batch sequences, and their count (validation). */
int lm_train_eval(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                  double *loss_sum, int64_t *count, lm_error *err);

/* Floats of activations kept from the forward for the backward, per token
 * (all layers), and the bytes the trainer allocated in all. */
int64_t lm_train_act_floats_per_token(const lm_config *cfg);
int64_t lm_trainer_bytes(const lm_trainer *tr);

#endif
