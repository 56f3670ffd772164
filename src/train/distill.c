/* distill.c — logit distillation through the trainer's row hooks; see
 * distill.h. Every row is computed in doubles in a fixed order, so a row's
 * result is a function of its logits alone (the hooks' purity rule). */
#include "train/distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lm_distill_opts lm_distill_opts_default(void) { return (lm_distill_opts){.temperature = 2.0, .top_k = 0}; }

int lm_distill_opts_check(const lm_distill_opts *o, lm_error *err) {
    if (!(o->temperature > 0) || !isfinite(o->temperature))
        return lm_fail(err, "distillation temperature %g: expected a finite number > 0", o->temperature);
    if (o->top_k < 0) return lm_fail(err, "distillation top_k %lld: expected >= 0", (long long)o->top_k);
    return 0;
}

/* a ranks before b: larger logit, then lower id (a > b in id here never ties
 * in the caller's favour: it scans ids upwards). */
static int ranks_before(const float *t, int32_t a, int32_t b) { return t[a] > t[b] || (t[a] == t[b] && a < b); }

int lm_distill_target(const float *t, int64_t V, double tau, int64_t top_k, int32_t *idx, float *p, double *rest) {
    double m = -INFINITY;
    for (int64_t j = 0; j < V; j++) {
        if (!isfinite(t[j])) return -1;
        if (t[j] / tau > m) m = t[j] / tau;
    }
    double s = 0;
    for (int64_t j = 0; j < V; j++) s += exp(t[j] / tau - m);
    double inv = 1.0 / s;
    *rest = 0;
    if (top_k <= 0 || top_k >= V) {
        for (int64_t j = 0; j < V; j++) p[j] = (float)(exp(t[j] / tau - m) * inv);
        return 0;
    }
    /* the k best by insertion into a sorted list: most rows insert rarely */
    int64_t n = 0;
    for (int64_t j = 0; j < V; j++) {
        if (n == top_k && !ranks_before(t, (int32_t)j, idx[n - 1])) continue;
        int64_t at = n < top_k ? n++ : n - 1;
        while (at > 0 && ranks_before(t, (int32_t)j, idx[at - 1])) {
            idx[at] = idx[at - 1];
            at--;
        }
        idx[at] = (int32_t)j;
    }
    for (int64_t j = 0; j < V; j++) p[j] = -1;
    for (int64_t i = 0; i < top_k; i++) p[idx[i]] = (float)(exp(t[idx[i]] / tau - m) * inv);
    double r = 0;
    for (int64_t j = 0; j < V; j++)
        if (p[j] < 0) r += exp(t[j] / tau - m);
    *rest = r * inv;
    return 0;
}

double lm_distill_row_loss(const float *z, int64_t V, const float *p, double rest, double tau, double weight,
                           float *grad) {
    /* log Z over all tokens and log Q_r over the rest bucket, max-shifted */
    double m = -INFINITY, mr = -INFINITY;
    for (int64_t j = 0; j < V; j++) {
        double u = z[j] / tau;
        if (u > m) m = u;
        if (p[j] < 0 && u > mr) mr = u;
    }
    double s = 0, sr = 0;
    for (int64_t j = 0; j < V; j++) {
        double u = z[j] / tau;
        s += exp(u - m);
        if (p[j] < 0) sr += exp(u - mr);
    }
    double logz = m + log(s), logqr = sr > 0 ? mr + log(sr) : -INFINITY;
    double kl = 0;
    for (int64_t j = 0; j < V; j++)
        if (p[j] > 0) kl += p[j] * (log((double)p[j]) - (z[j] / tau - logz));
    if (rest > 0) kl += rest * (log(rest) - (logqr - logz));
    for (int64_t j = 0; j < V; j++) {
        double u = z[j] / tau, q = exp(u - logz), g;
        if (p[j] >= 0) g = q - p[j];
        else g = rest > 0 ? q - rest * exp(u - logqr) : q;
        grad[j] = (float)(weight * tau * g);
    }
    return weight * tau * tau * kl;
}

/* ---- the step ---- */

struct lm_distiller {
    lm_distill_opts o;
    lm_trainer *student, *teacher;
    int64_t batch, micro, T, V, k;
    float *p;                    /* [micro*T, V] the teacher's target of this micro-batch */
    double *rest;                /* [micro*T] */
    int32_t *idx;                /* [micro*T, k] top-k scratch */
    double weight;               /* 1 / positions of the whole batch */
};

lm_distiller *lm_distiller_create(const lm_distill_opts *o, lm_params *student, lm_params *teacher,
                                  const lm_train_opts *to, int nthreads, lm_error *err) {
    if (lm_distill_opts_check(o, err)) return NULL;
    if (student->cfg.vocab_size != teacher->cfg.vocab_size) {
        lm_fail(err, "the teacher's vocabulary has %lld tokens, the student's %lld: distillation needs the same "
                     "tokenizer",
                (long long)teacher->cfg.vocab_size, (long long)student->cfg.vocab_size);
        return NULL;
    }
    lm_distiller *d = calloc(1, sizeof *d);
    if (!d) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    d->o = *o;
    d->batch = to->batch;
    d->micro = to->micro_batch ? to->micro_batch : to->batch;
    d->T = to->seq;
    d->V = student->cfg.vocab_size;
    d->k = o->top_k > 0 && o->top_k < d->V ? o->top_k : 0;
    lm_train_opts tt = *to;
    tt.batch = tt.micro_batch = d->micro;
    if (!(d->student = lm_trainer_create(student, to, nthreads, err)) ||
        !(d->teacher = lm_trainer_create(teacher, &tt, nthreads, err)))
        goto fail;
    int64_t rows = d->micro * d->T;
    d->p = malloc((size_t)(rows * d->V) * sizeof(float));
    d->rest = malloc((size_t)rows * sizeof(double));
    d->idx = d->k ? malloc((size_t)(rows * d->k) * sizeof(int32_t)) : NULL;
    if (!d->p || !d->rest || (d->k && !d->idx)) {
        lm_fail(err, "cannot allocate %.1f MiB for the teacher's distributions", rows * d->V * 4.0 / 1048576.0);
        goto fail;
    }
    return d;
fail:
    lm_distiller_free(d);
    return NULL;
}

void lm_distiller_free(lm_distiller *d) {
    if (!d) return;
    lm_trainer_free(d->student);
    lm_trainer_free(d->teacher);
    free(d->p);
    free(d->rest);
    free(d->idx);
    free(d);
}

lm_trainer *lm_distiller_student(lm_distiller *d) { return d->student; }

static double teacher_row(void *ctx, int64_t row, float *logits, int64_t V) {
    lm_distiller *d = ctx;
    if (lm_distill_target(logits, V, d->o.temperature, d->k, d->idx ? d->idx + row * d->k : NULL, d->p + row * V,
                          &d->rest[row]))
        d->rest[row] = NAN;
    return 0;
}

static double student_row(void *ctx, int64_t row, float *logits, int64_t V) {
    const lm_distiller *d = ctx;
    return lm_distill_row_loss(logits, V, d->p + row * V, d->rest[row], d->o.temperature, d->weight, logits);
}

int lm_distill_accumulate(lm_distiller *d, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                          lm_distill_stats *st, lm_error *err) {
    int64_t B = d->batch, T = d->T, n = 0;
    for (int64_t i = 0; i < B * T; i++) n += targets[i] >= 0;
    if (!n) return lm_fail(err, "no position of the batch has a target: nothing to distill");
    d->weight = 1.0 / (double)n;
    memset(st, 0, sizeof *st);
    lm_train_begin(d->student);
    for (int64_t b = 0; b < B; b += d->micro) {
        const int32_t *bi = ids + b * T, *bt = targets + b * T;
        if (lm_train_row_forward(d->teacher, pool, bi, bt, d->micro, teacher_row, d, err)) return -1;
        for (int64_t r = 0; r < d->micro * T; r++)
            if (bt[r] >= 0 && isnan(d->rest[r]))
                return lm_fail(err, "the teacher's logits are not finite at sequence %lld, position %lld",
                               (long long)(b + r / T), (long long)(r % T));
        if (lm_train_accumulate_row_loss(d->student, pool, bi, bt, d->micro, student_row, d, B, err)) return -1;
    }
    lm_train_loss_so_far(d->student, &st->loss, &st->tokens);
    return 0;
}

int lm_distill_step(lm_distiller *d, lm_pool *pool, const int32_t *ids, const int32_t *targets, double lr,
                    lm_distill_stats *st, lm_error *err) {
    if (lm_distill_accumulate(d, pool, ids, targets, st, err)) return -1;
    if (!isfinite(st->loss))
        return lm_fail(err, "the distillation loss is not finite (%g); nothing updated", st->loss);
    lm_train_apply(d->student, pool, lr, &st->train);
    return 0;
}
