/* distill.h — logit distillation: a student trained to match a teacher's
 * token distribution at temperature tau (Hinton, Vinyals, Dean 2015,
 * "Distilling the Knowledge in a Neural Network"). docs/post-training.md
 * gives the formulas.
 *
 *   lm_distill_opts o = lm_distill_opts_default();     // tau 2, full vocabulary
 *   lm_distiller *d = lm_distiller_create(&o, student, teacher, &train_opts, threads, &err);
 *   lm_distill_stats st;
 *   lm_distill_step(d, pool, ids, targets, lr, &st, &err);   // [batch, seq] as lm_train_step
 *
 * At every position n with a target (targets[n] >= 0: the value itself is
 * not used, only which positions are distilled), with z the student's and
 * t the teacher's logits on the same ids:
 *
 *   teacher   p = softmax(t / tau)      student   q = softmax(z / tau)
 *   full      L_n = tau^2 KL(p || q) = tau^2 sum_j p_j (log p_j - log q_j)
 *   top_k     the teacher's k most likely tokens (ties: lower id first)
 *             keep their own p_j; the other V - k tokens form one "rest"
 *             bucket with the teacher's remaining mass r = sum_rest p_j and
 *             the student's Q_r = sum_rest q_j; L_n = tau^2 KL over the k+1
 *             buckets = tau^2 (sum_topk p_j log(p_j/q_j) + r log(r/Q_r)).
 *             The rest mass is neither dropped nor renormalised away: the
 *             student is pushed to give the other tokens, together, what
 *             the teacher gives them, and how it spreads that mass among
 *             them is free. k >= V is the full loss.
 *   loss      L = (1/N) sum_n L_n, N the positions with a target in the
 *             whole batch.
 *
 * Gradient (u = z / tau): d L_n / d z_j = tau (q_j - p_j) for j kept
 * (all j in the full loss) and tau (q_j - r q_j / Q_r) for j in the rest
 * bucket (tau^2 from the loss, 1/tau from u): the soft-target
 * cross-entropy's softmax - target, entered into the trainer's backward at
 * the head (step.h, lm_train_accumulate_row_loss). So the step keeps the
 * trainer's contracts: bit-identical at any thread count, one add per
 * element and pass into p->g.
 *
 * The teacher runs the trainer's forward (lm_train_row_forward) on its own
 * weights, micro-batch by micro-batch, right before the student's pass on
 * the same rows; its distribution is held for one micro-batch only:
 * micro_batch * seq * vocab floats (+ k ints per position for top-k).
 *
 * Errors (nothing updated): the teacher's vocabulary differs from the
 * student's; options out of range; a teacher logit that is NaN or
 * infinite (the position is named); a loss that is not finite (found
 * after the passes, before the update; p->g then holds a partial sum). */
#ifndef LEMMA_TRAIN_DISTILL_H
#define LEMMA_TRAIN_DISTILL_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/params.h"
#include "train/step.h"

typedef struct lm_distill_opts {
    double temperature;          /* tau > 0 */
    int64_t top_k;               /* 0 (or >= vocab): the full distribution */
} lm_distill_opts;

/* tau 2, full vocabulary. */
lm_distill_opts lm_distill_opts_default(void);
int lm_distill_opts_check(const lm_distill_opts *o, lm_error *err);

/* ---- one row (what the trainer's hooks call; exposed for tests) ---- */

/* The teacher's target from its logits row t[V]: p[j] = softmax(t/tau)_j
 * for the kept tokens, -1 for the tokens of the rest bucket; *rest = r
 * (0 for the full distribution). idx: k ints of scratch (NULL when
 * top_k is 0). Returns -1 when a logit is not finite (p, rest undefined). */
int lm_distill_target(const float *t, int64_t V, double tau, int64_t top_k, int32_t *idx, float *p, double *rest);

/* weight * tau^2 * KL of the row above for student logits z[V]; grad[V]
 * (may be z itself) gets weight * d KL tau^2 / d z. */
double lm_distill_row_loss(const float *z, int64_t V, const float *p, double rest, double tau, double weight,
                           float *grad);

/* ---- the step ---- */

typedef struct lm_distill_stats {
    double loss;                 /* L above (mean tau^2 KL per position), before the update */
    int64_t tokens;              /* positions distilled */
    lm_train_stats train;        /* the student trainer's: grad norm, clip scale, lr, step, expert loads */
} lm_distill_stats;

typedef struct lm_distiller lm_distiller;

/* Trainers for the student (o: batch, micro_batch, seq, AdamW, clip, ...)
 * and the frozen teacher (forward only, same seq and micro-batch) and the
 * teacher's buffers. student and teacher stay the caller's and must
 * outlive the distiller; their configs may differ in everything but
 * vocab_size. */
lm_distiller *lm_distiller_create(const lm_distill_opts *o, lm_params *student, lm_params *teacher,
                                  const lm_train_opts *to, int nthreads, lm_error *err);
void lm_distiller_free(lm_distiller *d);
/* The student's trainer (its optimiser step count for checkpoints). */
lm_trainer *lm_distiller_student(lm_distiller *d);

/* lm_train_begin, then for each micro-batch the teacher's forward and the
 * student's forward and backward of L into p->g; fills st except
 * st->train. ids, targets: [batch, seq]. No update. */
int lm_distill_accumulate(lm_distiller *d, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                          lm_distill_stats *st, lm_error *err);
/* lm_distill_accumulate + lm_train_apply with lr: one optimiser step, a pure
 * function of (student weights and optimiser state, teacher weights, ids,
 * targets, options). */
int lm_distill_step(lm_distiller *d, lm_pool *pool, const int32_t *ids, const int32_t *targets, double lr,
                    lm_distill_stats *st, lm_error *err);

#endif
