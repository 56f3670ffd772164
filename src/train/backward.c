/* backward.c — gradients of every parameter from the gradient of the last
 * layer's output (tr->dx, set by tr_head), layer by layer in reverse, down
 * to the embedding rows.
 *
 * Each Linear y = x W^T contributes dW += dy^T x and dx (+)= dy W
 * (tkernels.h); each RMSNorm y = x r w contributes dw += sum dy x r and
 * dx = r (dy w) - x r^3 mean(dy w x); the residual stream adds.
 * Gradients are accumulated (+=) into p->g, so micro-batches add up.
 *
 * MoE: the routed experts get the gradient of their output scaled by the
 * combine weight; the combine weights get dw = dout . y_expert, which flows
 * back through norm_topk_prob and routed_scaling_factor to the chosen
 * scores, then through sigmoid or softmax to the router logits and
 * mlp.gate.weight. The choice itself (top-k, groups, correction bias) is
 * piecewise constant and has no gradient; the bias is not a parameter.
 *
 * Order: every accumulation is in a fixed order — experts 0..E-1 and their
 * tokens in order into dxn, heads 0..H-1 into the shared rope key, tokens
 * in order into the embedding rows — so the result does not depend on the
 * thread count. */
#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "train/tkernels.h"
#include "train/trainer.h"

/* ---- attention ---- */

typedef struct attn_job {
    lm_trainer *tr;
    const tr_acts *A;
    int64_t nseq;
} attn_job;

static void attn_bwd_task(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    lm_trainer *tr = j->tr;
    const lm_dims *d = &tr->p->dims;
    int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, T = tr->T, dk = d->dk;
    float scale = (float)lm_config_softmax_scale(&tr->p->cfg);
    float *Q = tr->thr + ith * tr->thr_floats, *K = Q + T * dk, *V = K + T * dk, *O = V + T * dv, *dO = O + T * dv,
          *dQ = dO + T * dv, *dK = dQ + T * dk, *dV = dK + T * dk, *S = dV + T * dv;
    int64_t p0, p1;
    lm_split(j->nseq * H, ith, nth, 1, &p0, &p1);
    for (int64_t pr = p0; pr < p1; pr++) {
        int64_t b = pr / H, h = pr % H;
        tr_attn_gather(tr, j->A, b, h, Q, K, V);
        for (int64_t t = 0; t < T; t++) {
            int64_t n = b * T + t;
            memcpy(O + t * dv, j->A->att + n * H * dv + h * dv, (size_t)dv * sizeof(float));
            memcpy(dO + t * dv, tr->datt + n * H * dv + h * dv, (size_t)dv * sizeof(float));
        }
        lm_tk_attn_bwd(Q, K, V, O, dO, j->A->lse + (b * H + h) * T, T, dk, dv, scale, dQ, dK, dV, S);
        for (int64_t t = 0; t < T; t++) {
            int64_t n = b * T + t;
            memcpy(tr->dq + n * H * dk + h * dk, dQ + t * dk, (size_t)dk * sizeof(float));
            float *kv = tr->dkvb + n * H * (dn + dv) + h * (dn + dv);
            memcpy(kv, dK + t * dk, (size_t)dn * sizeof(float));
            memcpy(kv + dn, dV + t * dv, (size_t)dv * sizeof(float));
            memcpy(tr->dkpe_h + (n * H + h) * dr, dK + t * dk + dn, (size_t)dr * sizeof(float));
        }
    }
}

/* dout = tr->dx (gradient of the attention output) -> tr->dxn (gradient of
 * the normalised input), and the attention weights' gradients. */
static void attn_bwd(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq) {
    lm_params *p = tr->p;
    const lm_dims *d = &p->dims;
    const lm_layer *W = &p->W.layers[l];
    lm_layer *G = &p->G.layers[l];
    const tr_acts *A = &tr->acts[l];
    int64_t N = nseq * tr->T, T = tr->T, D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, Q = d->Q,
            half = d->half, dk = d->dk;
    const float *dout = tr->dx;
    lm_tk_linear_dw(pool, lm_mat_data(&G->wo), dout, A->att, N, D, H * dv, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, tr->datt, dout, N, lm_mat_data(&W->wo), D, H * dv, 0, tr->ws, tr->bf16);
    attn_job job = {tr, A, nseq};
    lm_pool_run(pool, attn_bwd_task, &job);
    /* Rope transposed; the shared key's gradient is the sum over heads. */
    float *dkva = tr->kva; /* [N, C+dr] */
    for (int64_t n = 0; n < N; n++) {
        const float *cs = tr->cos_t + (n % T) * half, *sn = tr->sin_t + (n % T) * half;
        float *dkpe = dkva + n * (C + dr) + C;
        const float *src = tr->dkpe_h + n * H * dr;
        for (int64_t i = 0; i < dr; i++) dkpe[i] = src[i];
        for (int64_t h = 1; h < H; h++)
            for (int64_t i = 0; i < dr; i++) dkpe[i] += src[h * dr + i];
        lm_tk_rope_bwd(dkpe, cs, sn, dr);
        for (int64_t h = 0; h < H; h++) lm_tk_rope_bwd(tr->dq + n * H * dk + h * dk + dn, cs, sn, dr);
    }
    /* kv_b_proj and kv_a_layernorm. */
    tr_renorm_rows(pool, tr->cn, A->rkv, A->ckv, W->kv_norm, N, C);
    lm_tk_linear_dw(pool, lm_mat_data(&G->wkv_b), tr->dkvb, tr->cn, N, H * (dn + dv), C, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, tr->cn, tr->dkvb, N, lm_mat_data(&W->wkv_b), H * (dn + dv), C, 0, tr->ws, tr->bf16); /* cn := d(cn) */
    for (int64_t n = 0; n < N; n++) /* rows of stride C+dr: not the row helper */
        lm_tk_rmsnorm_bwd(dkva + n * (C + dr), tr->cn + n * C, A->ckv + n * C, W->kv_norm, A->rkv[n], C, 0);
    lm_tk_rmsnorm_dw(pool, G->kv_norm, tr->cn, A->ckv, A->rkv, N, C);
    /* kv_a_proj_with_mqa, from the recomputed normalised input. */
    tr_renorm_rows(pool, tr->xn, A->r1, A->x_in, W->attn_norm, N, D);
    lm_tk_linear_dw(pool, lm_mat_data(&G->wkv_a), dkva, tr->xn, N, C + dr, D, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, tr->dxn, dkva, N, lm_mat_data(&W->wkv_a), C + dr, D, 0, tr->ws, tr->bf16);
    /* Query. */
    if (Q) {
        tr_renorm_rows(pool, tr->qan, A->rq, A->qa, W->q_norm, N, Q);
        lm_tk_linear_dw(pool, lm_mat_data(&G->wq_b), tr->dq, tr->qan, N, H * dk, Q, tr->ws, tr->bf16);
        lm_tk_linear_dx(pool, tr->qan, tr->dq, N, lm_mat_data(&W->wq_b), H * dk, Q, 0, tr->ws, tr->bf16); /* qan := d(qan) */
        tr_norm_bwd_rows(pool, tr->dqa, tr->qan, A->qa, W->q_norm, A->rq, N, Q, 0);
        lm_tk_rmsnorm_dw(pool, G->q_norm, tr->qan, A->qa, A->rq, N, Q);
        lm_tk_linear_dw(pool, lm_mat_data(&G->wq_a), tr->dqa, tr->xn, N, Q, D, tr->ws, tr->bf16);
        lm_tk_linear_dx(pool, tr->dxn, tr->dqa, N, lm_mat_data(&W->wq_a), Q, D, 1, tr->ws, tr->bf16);
    } else {
        lm_tk_linear_dw(pool, lm_mat_data(&G->wq), tr->dq, tr->xn, N, H * dk, D, tr->ws, tr->bf16);
        lm_tk_linear_dx(pool, tr->dxn, tr->dq, N, lm_mat_data(&W->wq), H * dk, D, 1, tr->ws, tr->bf16);
    }
}

/* ---- feed-forward ---- */

/* SwiGLU MLP backward: from dout [N, D] with the kept h1, h3 [N, I] and the
 * input x; dx = or += (accumulate) the input gradient. */
static void mlp_bwd(lm_trainer *tr, lm_pool *pool, const float *x, const float *h1, const float *h3,
                    const float *dout, int64_t N, const lm_mat *W1, const lm_mat *W3, const lm_mat *W2,
                    const lm_mat *G1, const lm_mat *G3, const lm_mat *G2, float *dx, int accumulate) {
    int64_t D = tr->p->dims.D, I = W1->rows;
    const float *w1 = lm_mat_data(W1), *w3 = lm_mat_data(W3), *w2 = lm_mat_data(W2);
    float *g1 = lm_mat_data(G1), *g3 = lm_mat_data(G3), *g2 = lm_mat_data(G2);
    if (N <= 0) return;
    tr_swiglu_rows(pool, tr->act, h1, h3, N, I);
    lm_tk_linear_dw(pool, g2, dout, tr->act, N, D, I, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, tr->dact, dout, N, w2, D, I, 0, tr->ws, tr->bf16);
    tr_swiglu_bwd_rows(pool, tr->dh1, tr->dh3, tr->dact, h1, h3, N, I);
    lm_tk_linear_dw(pool, g1, tr->dh1, x, N, I, D, tr->ws, tr->bf16);
    lm_tk_linear_dw(pool, g3, tr->dh3, x, N, I, D, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, dx, tr->dh1, N, w1, I, D, accumulate, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, dx, tr->dh3, N, w3, I, D, 1, tr->ws, tr->bf16);
}

/* dout = tr->dx -> tr->dxn; tr->xn holds the normalised input. */
static void moe_bwd(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs) {
    lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    const lm_layer *W = &p->W.layers[l];
    lm_layer *G = &p->G.layers[l];
    const tr_acts *A = &tr->acts[l];
    int64_t N = nseq * tr->T, T = tr->T, D = p->dims.D, E = p->dims.E, k = p->dims.k, Im = p->dims.Im;
    const float *dout = tr->dx;
    if (W->has_shared)
        mlp_bwd(tr, pool, tr->xn, A->h1, A->h3, dout, N, &W->sw1, &W->sw3, &W->sw2, &G->sw1, &G->sw3, &G->sw2, tr->dxn, 0);
    else
        memset(tr->dxn, 0, (size_t)(N * D) * sizeof(float));
    /* Combine weights: dw = dout . y. */
    for (int64_t s = 0; s < N * k; s++) {
        const float *d = dout + (s / k) * D, *y = A->ey + s * D;
        float acc = 0;
        for (int64_t i = 0; i < D; i++) acc += d[i] * y[i];
        tr->dw[s] = acc;
    }
    /* Routed experts, in order. */
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = A->eoff[e], n = A->eoff[e + 1] - r0;
        if (!n) continue;
        for (int64_t i = 0; i < n; i++) {
            int64_t s = A->erow[r0 + i], t = s / k;
            const float w = A->rw[s], *d = dout + t * D;
            float *dy = tr->ye + i * D;
            for (int64_t j = 0; j < D; j++) dy[j] = w * d[j];
            memcpy(tr->xe + i * D, tr->xn + t * D, (size_t)D * sizeof(float));
        }
        mlp_bwd(tr, pool, tr->xe, A->eh1 + r0 * Im, A->eh3 + r0 * Im, tr->ye, n, &W->ew1[e], &W->ew3[e], &W->ew2[e],
                &G->ew1[e], &G->ew3[e], &G->ew2[e], tr->dxe, 0);
        for (int64_t i = 0; i < n; i++) {
            float *dst = tr->dxn + (A->erow[r0 + i] / k) * D;
            const float *src = tr->dxe + i * D;
            for (int64_t j = 0; j < D; j++) dst[j] += src[j];
        }
    }
    /* Combine weights -> chosen scores (conv. 23, 24). */
    float rsf = (float)c->routed_scaling_factor;
    memset(tr->ds, 0, (size_t)(N * E) * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        const int32_t *idx = A->ridx + n * k;
        const float *s = A->probs + n * E, *dw = tr->dw + n * k;
        float *ds = tr->ds + n * E;
        if (c->norm_topk_prob && k > 1) {
            /* w_j = rsf * s_j / S, S = sum of the chosen s. */
            double S = 0, dot = 0;
            for (int64_t j = 0; j < k; j++) S += s[idx[j]];
            for (int64_t j = 0; j < k; j++) dot += (double)dw[j] * s[idx[j]];
            for (int64_t j = 0; j < k; j++) ds[idx[j]] += (float)(rsf * (dw[j] / S - dot / (S * S)));
        } else {
            for (int64_t j = 0; j < k; j++) ds[idx[j]] += rsf * dw[j];
        }
    }
    /* Sequence-wise balance term: d/ds' = alpha f_i / (T denom_seqs). */
    if (tr->o.balance_alpha > 0) {
        double f[E];
        for (int64_t b = 0; b < nseq; b++) {
            tr_balance_f(tr, A, b, f);
            for (int64_t e = 0; e < E; e++) f[e] *= tr->o.balance_alpha / ((double)T * (double)denom_seqs);
            for (int64_t t = 0; t < T; t++) {
                int64_t n = b * T + t;
                const float *s = A->probs + n * E;
                float *ds = tr->ds + n * E;
                double z = 0, dot = 0;
                for (int64_t e = 0; e < E; e++) z += s[e];
                for (int64_t e = 0; e < E; e++) dot += f[e] * s[e] / z;
                for (int64_t e = 0; e < E; e++) ds[e] += (float)((f[e] - dot) / z);
            }
        }
    }
    /* Scores -> router logits (conv. 19). */
    for (int64_t n = 0; n < N; n++) {
        const float *s = A->probs + n * E, *ds = tr->ds + n * E;
        float *dl = tr->glog + n * E;
        if (c->scoring_func == LM_SCORING_SOFTMAX) {
            double dot = 0;
            for (int64_t e = 0; e < E; e++) dot += (double)ds[e] * s[e];
            for (int64_t e = 0; e < E; e++) dl[e] = s[e] * (ds[e] - (float)dot);
        } else {
            for (int64_t e = 0; e < E; e++) dl[e] = ds[e] * s[e] * (1.0f - s[e]);
        }
    }
    lm_tk_linear_dw(pool, lm_mat_data(&G->gate), tr->glog, tr->xn, N, E, D, tr->ws, tr->bf16);
    lm_tk_linear_dx(pool, tr->dxn, tr->glog, N, lm_mat_data(&W->gate), E, D, 1, tr->ws, tr->bf16);
}

/* ---- the backward ---- */

/* In-place heapsort (no allocation; keys are distinct). */
static void sort_u64(uint64_t *a, int64_t n) {
    for (int64_t start = n / 2 - 1, end = n;; ) {
        int64_t root;
        if (start >= 0) {
            root = start--;
        } else {
            if (--end <= 0) return;
            uint64_t t = a[0];
            a[0] = a[end];
            a[end] = t;
            root = 0;
        }
        for (;;) { /* sift down within [0, end) */
            int64_t child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && a[child + 1] > a[child]) child++;
            if (a[root] >= a[child]) break;
            uint64_t t = a[root];
            a[root] = a[child];
            a[child] = t;
            root = child;
        }
    }
}

void tr_layer_backward(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs) {
    lm_params *p = tr->p;
    int64_t N = nseq * tr->T, D = p->cfg.hidden_size;
    const lm_layer *W = &p->W.layers[l];
    lm_layer *G = &p->G.layers[l];
    const tr_acts *A = &tr->acts[l];
    /* Feed-forward block: dx is the gradient of its output and, through
     * the residual, of x_mid. */
    tr_renorm_rows(pool, tr->xn, A->r2, A->x_mid, W->ffn_norm, N, D);
    if (W->is_moe)
        moe_bwd(tr, pool, l, nseq, denom_seqs);
    else
        mlp_bwd(tr, pool, tr->xn, A->h1, A->h3, tr->dx, N, &W->w1, &W->w3, &W->w2, &G->w1, &G->w3, &G->w2, tr->dxn, 0);
    tr_norm_bwd_rows(pool, tr->dx, tr->dxn, A->x_mid, W->ffn_norm, A->r2, N, D, 1);
    lm_tk_rmsnorm_dw(pool, G->ffn_norm, tr->dxn, A->x_mid, A->r2, N, D);
    /* Attention block. */
    attn_bwd(tr, pool, l, nseq);
    tr_norm_bwd_rows(pool, tr->dx, tr->dxn, A->x_in, W->attn_norm, A->r1, N, D, 1);
    lm_tk_rmsnorm_dw(pool, G->attn_norm, tr->dxn, A->x_in, A->r1, N, D);
}

/* The gradient row of embedding key k: row n < N of the main input, or
 * row n - N of the MTP layer's (tr_mtp_pass). */
static const float *emb_grad_row(const lm_trainer *tr, uint64_t k, int64_t N, int64_t D) {
    int64_t n = (int64_t)(uint32_t)k;
    return n < N ? tr->dx + n * D : tr->dcat + (n - N) * D;
}

void tr_backward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, int64_t nseq, int64_t denom_seqs) {
    lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    int64_t N = nseq * tr->T, D = c->hidden_size;
    for (int64_t l = c->num_hidden_layers - 1; l >= 0; l--) tr_layer_backward(tr, pool, l, nseq, denom_seqs);
    /* Embedding rows. Tied: they join this pass's head gradient, which then
     * goes to G in one add. Untied: the rows of each id are summed first
     * (tokens in order), then added to G once. Either way G receives one
     * add per element and pass (see step.h: per-pass gradients fold). */
    /* With the MTP loss, the MTP layer's embedding rows (mids, gradients in
     * dcat) join them: row n + N of the keys. */
    int mtp = tr->mtp_pending;
    tr->mtp_pending = 0;
    int64_t nrows = mtp ? 2 * N : N;
    if (c->tie_word_embeddings) {
        for (int64_t n = 0; n < nrows; n++) {
            float *dst = tr->hacc + (int64_t)(n < N ? ids[n] : tr->mids[n - N]) * D;
            const float *src = n < N ? tr->dx + n * D : tr->dcat + (n - N) * D;
            for (int64_t i = 0; i < D; i++) dst[i] += src[i];
        }
        lm_tk_add(pool, lm_mat_data(&p->G.embed), tr->hacc, c->vocab_size * D);
        return;
    }
    uint64_t *key = tr->ekey;
    for (int64_t n = 0; n < nrows; n++)
        key[n] = (uint64_t)(uint32_t)(n < N ? ids[n] : tr->mids[n - N]) << 32 | (uint64_t)n;
    sort_u64(key, nrows);
    float *row = tr->xc; /* [D] scratch: the head is done */
    for (int64_t i = 0; i < nrows;) {
        int64_t id = (int64_t)(key[i] >> 32);
        memcpy(row, emb_grad_row(tr, key[i], N, D), (size_t)D * sizeof(float));
        for (i++; i < nrows && (int64_t)(key[i] >> 32) == id; i++) {
            const float *src = emb_grad_row(tr, key[i], N, D);
            for (int64_t j = 0; j < D; j++) row[j] += src[j];
        }
        float *dst = lm_mat_data(&p->G.embed) + id * D;
        for (int64_t j = 0; j < D; j++) dst[j] += row[j];
    }
}
