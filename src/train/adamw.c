/* adamw.c — see adamw.h. */
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>

#include "core/mathfn.h"
#include "train/tvec.h"

enum { CHUNK = 16384 };

lm_adamw_opts lm_adamw_opts_default(void) {
    lm_adamw_opts o = {0.9, 0.999, 1e-8, 0.0};
    return o;
}

int lm_adamw_init(lm_adamw *a, const lm_params *p, const lm_adamw_opts *o, lm_error *err) {
    *a = (lm_adamw){0};
    a->o = *o;
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) ||
        !(o->weight_decay >= 0))
        return lm_fail(err, "AdamW: need 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0 (got %g, %g, %g, %g)",
                       o->beta1, o->beta2, o->eps, o->weight_decay);
    int64_t n = 0;
    for (int64_t i = 0; i < p->n_tensors; i++)
        if (p->t[i].trainable) n += (p->t[i].numel + CHUNK - 1) / CHUNK;
    a->chunk_off = malloc((size_t)(n ? n : 1) * sizeof *a->chunk_off);
    a->chunk_len = malloc((size_t)(n ? n : 1) * sizeof *a->chunk_len);
    a->chunk_decay = malloc((size_t)(n ? n : 1));
    a->partial = malloc((size_t)(n ? n : 1) * sizeof *a->partial);
    if (!a->chunk_off || !a->chunk_len || !a->chunk_decay || !a->partial) {
        lm_adamw_free(a);
        return lm_fail(err, "out of memory");
    }
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        if (!t->trainable) continue;
        for (int64_t j = 0; j < t->numel; j += CHUNK) {
            a->chunk_off[a->n_chunks] = t->offset + j;
            a->chunk_len[a->n_chunks] = (int32_t)(t->numel - j < CHUNK ? t->numel - j : CHUNK);
            a->chunk_decay[a->n_chunks] = (uint8_t)t->decay;
            a->n_chunks++;
        }
    }
    return 0;
}

void lm_adamw_free(lm_adamw *a) {
    free(a->chunk_off);
    free(a->chunk_len);
    free(a->chunk_decay);
    free(a->partial);
    a->chunk_off = NULL;
    a->chunk_len = NULL;
    a->chunk_decay = NULL;
    a->partial = NULL;
    a->n_chunks = 0;
}

typedef struct norm_job {
    lm_adamw *a;
    const float *g;
} norm_job;

static void norm_task(void *ctx, int ith, int nth) {
    norm_job *j = ctx;
    int64_t c0, c1;
    lm_split(j->a->n_chunks, ith, nth, 1, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        const float *g = j->g + j->a->chunk_off[c];
        double s = 0;
        for (int32_t i = 0; i < j->a->chunk_len[c]; i++) s += (double)g[i] * g[i];
        j->a->partial[c] = s;
    }
}

double lm_adamw_grad_norm(lm_adamw *a, lm_pool *pool, const lm_params *p) {
    norm_job j = {a, p->g};
    lm_pool_run(pool, norm_task, &j);
    double s = 0;
    for (int64_t c = 0; c < a->n_chunks; c++) s += a->partial[c];
    return sqrt(s);
}

double lm_adamw_clip_scale(double norm, double clip) {
    if (clip <= 0) return 1.0;
    double coef = clip / (norm + 1e-6);
    return coef < 1.0 ? coef : 1.0;
}

typedef struct upd_job {
    lm_adamw *a;
    lm_params *p;
    tv_adamw_k k;
} upd_job;

static void update_task(void *ctx, int ith, int nth) {
    const upd_job *j = ctx;
    const tv_table *tv = tv_kernels();
    int64_t c0, c1;
    lm_split(j->a->n_chunks, ith, nth, 1, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        int64_t off = j->a->chunk_off[c];
        tv->adamw(j->p->w + off, j->p->g + off, j->p->m + off, j->p->v + off, j->a->chunk_len[c], &j->k,
                  j->a->chunk_decay[c]);
    }
}

void lm_adamw_update(lm_adamw *a, lm_pool *pool, lm_params *p, double lr, double grad_scale) {
    int64_t t = (int64_t)a->step + 1; /* bias corrections by exact-order powering (docs/arithmetic.md) */
    double bc1 = 1.0 - lm_powi(a->o.beta1, t), bc2 = 1.0 - lm_powi(a->o.beta2, t);
    upd_job j = {a,
                 p,
                 {(float)(1.0 - lr * a->o.weight_decay),
                 (float)a->o.beta1,
                 (float)a->o.beta2,
                 (float)(1.0 - a->o.beta1),
                 (float)(1.0 - a->o.beta2),
                 (float)(lr / bc1),
                 (float)(1.0 / sqrt(bc2)),
                 (float)a->o.eps,
                 (float)grad_scale}};
    lm_pool_run(pool, update_task, &j);
    a->step++;
}
