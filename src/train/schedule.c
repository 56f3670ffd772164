/* schedule.c — see schedule.h. */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

#include "core/mathfn.h"

int lm_schedule_check(const lm_schedule *s, lm_error *err) {
    if (!(s->lr_max > 0) || !(s->lr_min >= 0) || s->lr_min > s->lr_max)
        return lm_fail(err, "schedule: need lr_max > 0 and 0 <= lr_min <= lr_max (got %g, %g)", s->lr_max, s->lr_min);
    if (s->warmup < 0 || s->total < 1)
        return lm_fail(err, "schedule: need warmup >= 0 and total >= 1 (got %lld, %lld)", (long long)s->warmup,
                       (long long)s->total);
    if (s->kind == LM_SCHED_WSD && (s->decay_steps < 0 || s->decay_steps + s->warmup > s->total))
        return lm_fail(err, "schedule: WSD needs 0 <= decay_steps <= total - warmup (got %lld of %lld, warmup %lld)",
                       (long long)s->decay_steps, (long long)s->total, (long long)s->warmup);
    if (s->kind != LM_SCHED_CONSTANT && s->kind != LM_SCHED_COSINE && s->kind != LM_SCHED_WSD)
        return lm_fail(err, "schedule: unknown kind %d", (int)s->kind);
    return 0;
}

static double clamp01(double p) { return p < 0 ? 0 : p > 1 ? 1 : p; }

double lm_schedule_lr(const lm_schedule *s, int64_t step) {
    if (step < s->warmup) return s->lr_max * (double)(step + 1) / (double)s->warmup;
    double span = s->lr_max - s->lr_min;
    switch (s->kind) {
    case LM_SCHED_COSINE: {
        int64_t len = s->total - 1 - s->warmup;
        double p = clamp01((double)(step - s->warmup) / (double)(len > 1 ? len : 1));
        return s->lr_min + span * 0.5 * (1.0 + lm_cos(M_PI * p));
    }
    case LM_SCHED_WSD: {
        int64_t start = s->total - s->decay_steps;
        if (step < start || s->decay_steps <= 0) return s->lr_max;
        int64_t len = s->decay_steps - 1;
        double p = clamp01((double)(step - start) / (double)(len > 1 ? len : 1));
        if (s->decay_steps == 1) p = 1;
        switch (s->decay) {
        case LM_DECAY_COSINE: return s->lr_min + span * 0.5 * (1.0 + lm_cos(M_PI * p));
        case LM_DECAY_SQRT: return s->lr_min + span * (1.0 - sqrt(p));
        default: return s->lr_max - span * p;
        }
    }
    default: return s->lr_max;
    }
}

int lm_schedule_parse_kind(const char *name, lm_sched_kind *out) {
    if (!strcmp(name, "constant")) *out = LM_SCHED_CONSTANT;
    else if (!strcmp(name, "cosine")) *out = LM_SCHED_COSINE;
    else if (!strcmp(name, "wsd")) *out = LM_SCHED_WSD;
    else return -1;
    return 0;
}

int lm_schedule_parse_decay(const char *name, lm_decay_shape *out) {
    if (!strcmp(name, "linear")) *out = LM_DECAY_LINEAR;
    else if (!strcmp(name, "cosine")) *out = LM_DECAY_COSINE;
    else if (!strcmp(name, "sqrt")) *out = LM_DECAY_SQRT;
    else return -1;
    return 0;
}
