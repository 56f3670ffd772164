/* blocks.c — the blocks both forwards run (blocks.h). */
#include "model/blocks.h"

#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "core/mathfn.h"

void lm_rope_tables(const lm_config *c, const double *inv_freq, int64_t pos0, int64_t T, float *cos_t, float *sin_t) {
    int64_t half = c->qk_rope_head_dim / 2;
    double af = lm_config_rope_attention_factor(c);
    /* Angles in double (conv. 18), then cast. */
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            double a = (double)(pos0 + t) * inv_freq[i];
            cos_t[t * half + i] = (float)(lm_cos(a) * af);
            sin_t[t * half + i] = (float)(lm_sin(a) * af);
        }
}

float lm_norm_row_kernel(float *y, const float *x, const float *w, int64_t n, float eps) {
    lm_rmsnorm(y, x, w, n, eps);
    return 0;
}

typedef struct norm_job {
    lm_norm_row_fn norm;
    float *y, *r;
    const float *x, *w;
    int64_t N, n;
    float eps;
} norm_job;

static void norm_task(void *ctx, int ith, int nth) {
    const norm_job *j = ctx;
    int64_t r0, r1;
    lm_split(j->N, ith, nth, 1, &r0, &r1);
    for (int64_t i = r0; i < r1; i++) {
        float r = j->norm(j->y + i * j->n, j->x + i * j->n, j->w, j->n, j->eps);
        if (j->r) j->r[i] = r;
    }
}

int lm_attn_project(lm_pool *pool, const lm_dims *d, const lm_layer *L, const float *xn, int64_t T,
                    const lm_attn_proj *p) {
    int64_t C = d->C, dr = d->dr, half = d->half;
    int rc;
#define CHECK(stage, buf, width) \
    if (p->check && (rc = p->check(p->check_ctx, (stage), (buf), T, (width)))) return rc
    /* Query (conv. 6). */
    if (d->Q) {
        lm_matmul(pool, p->qa, xn, T, &L->wq_a);
        CHECK(LM_PROJ_Q_A, p->qa, d->Q);
        /* Rows are independent: any split gives the same bits. */
        norm_job nj = {p->norm, p->qa_n, p->q_r, p->qa, L->q_norm, T, d->Q, d->eps};
        lm_pool_run(T * d->Q < 16384 ? NULL : pool, norm_task, &nj);
        CHECK(LM_PROJ_Q_NORM, p->qa_n, d->Q);
        lm_matmul(pool, p->q, p->qa_n, T, &L->wq_b);
    } else {
        lm_matmul(pool, p->q, xn, T, &L->wq);
    }
    CHECK(LM_PROJ_Q, p->q, d->qd);
    /* Latent and shared rope key (conv. 7); interleaved rope (conv. 13). */
    lm_matmul(pool, p->kva, xn, T, &L->wkv_a);
    CHECK(LM_PROJ_KV_A, p->kva, d->kva);
    for (int64_t n = 0; n < T; n++) {
        const float *row = p->kva + n * d->kva;
        const float *cs = p->cos_t + (n % p->rope_period) * half, *sn = p->sin_t + (n % p->rope_period) * half;
        float r = p->norm(p->c_n + n * p->c_stride, row, L->kv_norm, C, d->eps);
        if (p->c_r) p->c_r[n] = r;
        float *kpe = p->kpe + n * p->kpe_stride;
        if (kpe != row + C) memcpy(kpe, row + C, (size_t)dr * sizeof(float));
        lm_rope_interleaved(kpe, cs, sn, dr);
        for (int64_t h = 0; h < d->H; h++) lm_rope_interleaved(p->q + n * d->qd + h * d->dk + d->dn, cs, sn, dr);
    }
    CHECK(LM_PROJ_KV_NORM, p->kva, d->kva);
#undef CHECK
    return 0;
}

void lm_group_experts(const int32_t *ridx, int64_t nslots, int64_t E, int32_t *eoff, int32_t *erow, int32_t *fill) {
    for (int64_t e = 0; e <= E; e++) eoff[e] = 0;
    for (int64_t s = 0; s < nslots; s++) eoff[ridx[s] + 1]++;
    for (int64_t e = 0; e < E; e++) eoff[e + 1] += eoff[e];
    for (int64_t e = 0; e < E; e++) fill[e] = eoff[e];
    for (int64_t s = 0; s < nslots; s++) erow[fill[ridx[s]]++] = (int32_t)s;
}

void lm_gather_expert_rows(float *xe, const float *x, const int32_t *erow, int64_t n, int64_t k, int64_t D) {
    for (int64_t i = 0; i < n; i++) memcpy(xe + i * D, x + (erow[i] / k) * D, (size_t)D * sizeof(float));
}

void lm_scatter_expert_rows(float *slot_out, const float *ye, const int32_t *erow, int64_t n, int64_t D) {
    for (int64_t i = 0; i < n; i++) memcpy(slot_out + (int64_t)erow[i] * D, ye + i * D, (size_t)D * sizeof(float));
}

void lm_moe_combine(float *out, const float *slot_out, const float *w, int64_t T, int64_t k, int64_t D) {
    for (int64_t t = 0; t < T; t++) {
        float *o = out + t * D;
        for (int64_t j = 0; j < k; j++) {
            const float wj = w[t * k + j], *y = slot_out + (t * k + j) * D;
            for (int64_t i = 0; i < D; i++) o[i] += wj * y[i];
        }
    }
}
