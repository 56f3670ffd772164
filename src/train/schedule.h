/* schedule.h — learning-rate schedules, a pure function of the step.
 *
 *   lm_schedule s = {LM_SCHED_COSINE, 3e-4, 3e-5, 100, 10000, 0, LM_DECAY_LINEAR};
 *   double lr = lm_schedule_lr(&s, step);      // step = 0, 1, ...
 *
 * Warmup (both kinds): lr = lr_max * (step + 1) / warmup for step < warmup
 * (so the first step does not run at 0).
 *
 * LM_SCHED_COSINE: after warmup, cosine from lr_max down to lr_min at
 * step = total - 1 (and lr_min after):
 *   p = (step - warmup) / max(1, total - 1 - warmup),
 *   lr = lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2.
 *
 * LM_SCHED_WSD (warmup-stable-decay): lr_max until total - decay_steps, then
 * over the last decay_steps steps from lr_max down to lr_min at total - 1 with
 * the chosen shape (p = 0 .. 1):
 *   linear  lr = lr_max - (lr_max - lr_min) * p
 *   cosine  lr = lr_min + (lr_max - lr_min) * (1 + cos(pi p)) / 2
 *   sqrt    lr = lr_min + (lr_max - lr_min) * (1 - sqrt(p))   ("1 - sqrt")
 *
 * LM_SCHED_CONSTANT: lr_max after warmup. */
#ifndef LEMMA_TRAIN_SCHEDULE_H
#define LEMMA_TRAIN_SCHEDULE_H

#include <stdint.h>

#include "core/error.h"

typedef enum lm_sched_kind { LM_SCHED_CONSTANT = 0, LM_SCHED_COSINE = 1, LM_SCHED_WSD = 2 } lm_sched_kind;
typedef enum lm_decay_shape { LM_DECAY_LINEAR = 0, LM_DECAY_COSINE = 1, LM_DECAY_SQRT = 2 } lm_decay_shape;

typedef struct lm_schedule {
    lm_sched_kind kind;
    double lr_max, lr_min;
    int64_t warmup;              /* steps of linear warmup (0: none) */
    int64_t total;               /* planned steps */
    int64_t decay_steps;         /* WSD: length of the final decay */
    lm_decay_shape decay;        /* WSD: shape of the final decay */
} lm_schedule;

/* Checks ranges (lr_max > 0, 0 <= lr_min <= lr_max, 0 <= warmup, decay <= total, ...). */
int lm_schedule_check(const lm_schedule *s, lm_error *err);
double lm_schedule_lr(const lm_schedule *s, int64_t step);
/* "constant" | "cosine" | "wsd" -> kind; -1 when unknown. */
int lm_schedule_parse_kind(const char *name, lm_sched_kind *out);
/* "linear" | "cosine" | "sqrt" -> shape; -1 when unknown. */
int lm_schedule_parse_decay(const char *name, lm_decay_shape *out);

#endif
