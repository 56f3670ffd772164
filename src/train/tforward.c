/* tforward.c — the training forward over a micro-batch [B, T], keeping what
 * the backward needs, and the head with the masked cross-entropy.
 *
 * It computes what model/forward.c computes (same conventions, numbered as
 * in docs/deepseek-conventions.md) with the same blocks
 * (model/blocks.h: rope tables, attention projection, expert grouping, MoE
 * combine; routing from model/route.h), for B independent sequences at
 * positions 0..T-1, without a KV cache.
 *
 * Kept per layer and token (floats), everything else is recomputed:
 *   x_in D, 1/rms 1                 residual input; its norm is recomputed
 *   qa Q, 1/rms 1 (Q > 0)           q latent before q_a_layernorm
 *   q H(dn+dr)                      roped query
 *   ckv C, 1/rms 1, kpe dr          latent before kv_a_layernorm, roped k_pe
 *   kvb H(dn+dv)                    expanded k_nope | v (kv_b_proj output)
 *   lse H                           per head and query: the softmax's
 *                                   log-sum-exp; P is recomputed from q, k
 *                                   (flash-attention style: nothing T^2
 *                                   is kept between forward and backward)
 *   att H dv                        attention output (o_proj input)
 *   x_mid D, 1/rms 1                residual after attention
 *   dense: h1 I, h3 I               gate/up pre-activations (SwiGLU output
 *                                   recomputed)
 *   MoE: probs E, ridx k, rw k,     router scores and choice, combine weights,
 *        erow k, eh1 k Im,          expert pre-activations and outputs per slot,
 *        eh3 k Im, ey k D,          (the expert outputs give the combine-weight
 *        shared h1 Is, h3 Is        gradient without recomputing them)
 * plus x_fin D and its 1/rms once. Recomputed in the backward: the three
 * RMSNorm outputs of each layer (x * r * w), SwiGLU outputs, attention
 * probabilities (one Q K^T per head), the ffn-norm input of MoE gathers.
 * lm_train_act_floats_per_token() sums this: bench-s (D 256, 4 layers,
 * 3 MoE, k 2) keeps 13,195 floats = 51.5 KB per token (105 MB for its
 * 8 x 256 batch), bench-m (D 512, 8 layers) 57,083 floats = 223 KB per
 * token. The MoE slots dominate (2 k Im + k D per token and layer). The
 * trainer's scratch adds [N, max width] buffers, two [V, D] head buffers,
 * the Linear workspace and, per thread, attention scratch of
 * 2 T^2 + 64 T + T max(dk, dv) floats (one head's P and dS; 128 MB per
 * thread at T = 4096). All together lm_trainer_bytes(): 233 MB for
 * bench-s (8 x 256), 670 MB for bench-m (4 x 512), plus the parameter
 * block (16 bytes per parameter).
 *
 * Threading: Linears through lm_matmul; attention gives each thread whole
 * (sequence, head) pairs; row operations are cheap and run on the caller.
 * Nothing depends on the number of threads. */
#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "model/blocks.h"
#include "model/route.h"
#include "train/tkernels.h"
#include "train/trainer.h"

/* ---- row helpers, threaded over rows (each row is independent, so any
 * split gives the same bits) ---- */

enum { ROW_NORM, ROW_RENORM, ROW_NORM_BWD, ROW_SWIGLU, ROW_SWIGLU_BWD, ROW_ADD, ROW_XENT };

typedef struct rows_job {
    int op, acc;
    int64_t N, d;
    float eps, scale;
    float *o1, *o2, *r;
    const float *i1, *i2, *i3, *w, *rc;
    const int32_t *tgt, *rows;
    double *loss;
    lm_token_loss_fn fn;         /* ROW_XENT: per-token loss of the log-probability, or NULL */
    void *fn_ctx;
    lm_row_loss_fn row_fn;       /* ROW_XENT: loss of the whole logits row (step.h), or NULL */
    void *row_ctx;
} rows_job;

static void rows_task(void *ctx, int ith, int nth) {
    const rows_job *j = ctx;
    int64_t n0, n1, d = j->d;
    lm_split(j->N, ith, nth, 1, &n0, &n1);
    switch (j->op) {
    case ROW_NORM:
        for (int64_t n = n0; n < n1; n++) j->r[n] = lm_tk_rmsnorm_fwd(j->o1 + n * d, j->i1 + n * d, j->w, d, j->eps);
        break;
    case ROW_RENORM:
        for (int64_t n = n0; n < n1; n++) {
            const float *x = j->i1 + n * d, rn = j->rc[n];
            float *y = j->o1 + n * d;
            for (int64_t i = 0; i < d; i++) y[i] = x[i] * rn * j->w[i];
        }
        break;
    case ROW_NORM_BWD:
        for (int64_t n = n0; n < n1; n++)
            lm_tk_rmsnorm_bwd(j->o1 + n * d, j->i1 + n * d, j->i2 + n * d, j->w, j->rc[n], d, j->acc);
        break;
    case ROW_SWIGLU:
        lm_tk_swiglu_fwd(j->o1 + n0 * d, j->i1 + n0 * d, j->i2 + n0 * d, (n1 - n0) * d);
        break;
    case ROW_SWIGLU_BWD:
        lm_tk_swiglu_bwd(j->o1 + n0 * d, j->o2 + n0 * d, j->i1 + n0 * d, j->i2 + n0 * d, j->i3 + n0 * d,
                         (n1 - n0) * d);
        break;
    case ROW_ADD:
        for (int64_t i = n0 * d; i < n1 * d; i++) j->o1[i] = j->i1[i] + j->i2[i];
        break;
    case ROW_XENT:
        for (int64_t n = n0; n < n1; n++) {
            float *row = j->o1 + n * d, inv;
            int32_t tgt = j->tgt[j->rows[n]];
            if (j->row_fn) {
                j->loss[n] = j->row_fn(j->row_ctx, j->rows[n], row, d);
                continue;
            }
            if (!j->fn) {
                j->loss[n] = lm_tk_xent(row, d, tgt, j->scale, row);
                continue;
            }
            /* loss f(logp): dloss/dlogits = f'(logp) (onehot - softmax),
             * i.e. the cross-entropy gradient scaled by -f'(logp). */
            double nll = lm_tk_xent_exp(row, d, tgt, row, &inv), dlogp = 0;
            j->loss[n] = j->fn(j->fn_ctx, j->rows[n], -nll, &dlogp);
            lm_tk_xent_grad(row, d, tgt, inv, (float)-dlogp);
        }
        break;
    }
}

static void run_rows(lm_pool *pool, rows_job *j) {
    lm_pool_run(j->N * j->d < 16384 ? NULL : pool, rows_task, j);
}

void tr_norm_rows(lm_pool *pool, float *xn, float *r, const float *x, const float *w, int64_t N, int64_t d, float eps) {
    rows_job j = {.op = ROW_NORM, .N = N, .d = d, .eps = eps, .o1 = xn, .r = r, .i1 = x, .w = w};
    run_rows(pool, &j);
}

void tr_renorm_rows(lm_pool *pool, float *xn, const float *r, const float *x, const float *w, int64_t N, int64_t d) {
    rows_job j = {.op = ROW_RENORM, .N = N, .d = d, .o1 = xn, .rc = r, .i1 = x, .w = w};
    run_rows(pool, &j);
}

void tr_norm_bwd_rows(lm_pool *pool, float *dx, const float *dy, const float *x, const float *w, const float *r,
                      int64_t N, int64_t d, int accumulate) {
    rows_job j = {.op = ROW_NORM_BWD, .acc = accumulate, .N = N, .d = d, .o1 = dx, .i1 = dy, .i2 = x, .w = w, .rc = r};
    run_rows(pool, &j);
}

void tr_swiglu_rows(lm_pool *pool, float *a, const float *h1, const float *h3, int64_t N, int64_t I) {
    rows_job j = {.op = ROW_SWIGLU, .N = N, .d = I, .o1 = a, .i1 = h1, .i2 = h3};
    run_rows(pool, &j);
}

void tr_swiglu_bwd_rows(lm_pool *pool, float *dh1, float *dh3, const float *da, const float *h1, const float *h3,
                        int64_t N, int64_t I) {
    rows_job j = {.op = ROW_SWIGLU_BWD, .N = N, .d = I, .o1 = dh1, .o2 = dh3, .i1 = da, .i2 = h1, .i3 = h3};
    run_rows(pool, &j);
}

/* out = a + b, [N, d]. */
static void add_rows(lm_pool *pool, float *out, const float *a, const float *b, int64_t N, int64_t d) {
    rows_job j = {.op = ROW_ADD, .N = N, .d = d, .o1 = out, .i1 = a, .i2 = b};
    run_rows(pool, &j);
}

/* ---- attention ---- */

typedef struct attn_job {
    lm_trainer *tr;
    tr_acts *A;
    int64_t nseq;
} attn_job;

void tr_attn_gather(const lm_trainer *tr, const tr_acts *A, int64_t b, int64_t h, float *Q, float *K, float *V) {
    const lm_dims *d = &tr->p->dims;
    int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, T = tr->T, dk = d->dk;
    for (int64_t t = 0; t < T; t++) {
        int64_t n = b * T + t;
        memcpy(Q + t * dk, A->q + n * H * dk + h * dk, (size_t)dk * sizeof(float));
        const float *kv = A->kvb + n * H * (dn + dv) + h * (dn + dv); /* conv. 8 */
        memcpy(K + t * dk, kv, (size_t)dn * sizeof(float));
        memcpy(K + t * dk + dn, A->kpe + n * dr, (size_t)dr * sizeof(float));
        memcpy(V + t * dv, kv + dn, (size_t)dv * sizeof(float));
    }
}

static void attn_fwd_task(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    lm_trainer *tr = j->tr;
    const lm_dims *d = &tr->p->dims;
    int64_t H = d->H, dv = d->dv, T = tr->T, dk = d->dk;
    float scale = (float)lm_config_softmax_scale(&tr->p->cfg); /* conv. 10 */
    float *Q = tr->thr + ith * tr->thr_floats, *K = Q + T * dk, *V = K + T * dk, *O = V + T * dv, *S = O + T * dv;
    int64_t p0, p1;
    lm_split(j->nseq * H, ith, nth, 1, &p0, &p1);
    for (int64_t pr = p0; pr < p1; pr++) {
        int64_t b = pr / H, h = pr % H;
        tr_attn_gather(tr, j->A, b, h, Q, K, V);
        lm_tk_attn_fwd(Q, K, V, T, dk, dv, scale, O, j->A->lse + (b * H + h) * T, S);
        for (int64_t t = 0; t < T; t++)
            memcpy(j->A->att + (b * T + t) * H * dv + h * dv, O + t * dv, (size_t)dv * sizeof(float));
    }
}

/* The latents' RMSNorm inside lm_attn_project under bf16: its output only
 * enters products, so it is rounded there. */
static float rmsnorm_fwd_bf16(float *y, const float *x, const float *w, int64_t n, float eps) {
    float r = lm_tk_rmsnorm_fwd(y, x, w, n, eps);
    lm_tk_round_bf16(NULL, y, n);
    return r;
}

/* out[N, D] = attention(rmsnorm(x_in)) of layer l. */
static void attn_fwd(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, float *out) {
    const lm_dims *d = &tr->p->dims;
    const lm_layer *W = &tr->Wf->layers[l];
    tr_acts *A = &tr->acts[l];
    int64_t N = nseq * tr->T, C = d->C;
    tr_norm_rows(pool, tr->xn, A->r1, A->x_in, W->attn_norm, N, d->D, d->eps);
    if (tr->bf16) lm_tk_round_bf16(pool, tr->xn, N * d->D);
    /* Kept for the backward: q latent and latent before their norms (with
     * 1/rms), the roped key apart from the latent. */
    lm_attn_proj proj = {.norm = tr->bf16 ? rmsnorm_fwd_bf16 : lm_tk_rmsnorm_fwd, .cos_t = tr->cos_t, .sin_t = tr->sin_t, .rope_period = tr->T,
                         .qa = A->qa, .qa_n = tr->qan, .q_r = A->rq, .q = A->q, .kva = tr->kva, .c_n = tr->cn,
                         .c_stride = C, .c_r = A->rkv, .kpe = A->kpe, .kpe_stride = d->dr};
    lm_attn_project(pool, d, W, tr->xn, N, &proj);
    for (int64_t n = 0; n < N; n++) memcpy(A->ckv + n * C, tr->kva + n * d->kva, (size_t)C * sizeof(float));
    lm_matmul(pool, A->kvb, tr->cn, N, &W->wkv_b);
    attn_job job = {tr, A, nseq};
    lm_pool_run(pool, attn_fwd_task, &job);
    const float *att = A->att; /* kept in fp32 for the backward's D = dO . O */
    if (tr->bf16) {
        memcpy(tr->datt, att, sizeof(float) * (size_t)(N * d->od));
        lm_tk_round_bf16(pool, tr->datt, N * d->od);
        att = tr->datt;
    }
    lm_matmul(pool, out, att, N, &W->wo);
}

/* ---- feed-forward ---- */

/* out = down(silu(x W1^T) * (x W3^T)), keeping h1, h3 [N, I]. */
static void mlp_fwd(lm_trainer *tr, lm_pool *pool, const float *x, int64_t N, const lm_mat *w1, const lm_mat *w3,
                    const lm_mat *w2, float *h1, float *h3, float *out) {
    lm_matmul(pool, h1, x, N, w1);
    lm_matmul(pool, h3, x, N, w3);
    tr_swiglu_rows(pool, tr->act, h1, h3, N, w1->rows);
    if (tr->bf16) lm_tk_round_bf16(pool, tr->act, N * w1->rows);
    lm_matmul(pool, out, tr->act, N, w2);
}

void tr_balance_f(const lm_trainer *tr, const tr_acts *A, int64_t b, double *f) {
    const lm_config *c = &tr->p->cfg;
    int64_t E = c->n_routed_experts, k = c->num_experts_per_tok, T = tr->T;
    for (int64_t e = 0; e < E; e++) f[e] = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < k; j++) f[A->ridx[(b * T + t) * k + j]] += 1;
    for (int64_t e = 0; e < E; e++) f[e] *= (double)E / (double)(k * T);
}

/* out[N, D] = MoE(xn) of layer l (conv. 25: routed sum + unscaled shared). */
static double moe_fwd(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs, int count_loads,
                      float *out) {
    const lm_config *c = &tr->p->cfg;
    const lm_dims *d = &tr->p->dims;
    const lm_layer *W = &tr->Wf->layers[l];
    tr_acts *A = &tr->acts[l];
    int64_t N = nseq * tr->T, D = d->D, E = d->E, k = d->k, Im = d->Im;
    lm_matmul(pool, A->probs, tr->xn, N, &W->gate);
    for (int64_t n = 0; n < N; n++) lm_route_token(c, W->gate_bias, A->probs + n * E, A->ridx + n * k, A->rw + n * k);
    /* Slots grouped by expert, tokens in order within each. */
    lm_group_experts(A->ridx, N * k, E, A->eoff, A->erow, tr->efill);
    if (count_loads) {
        int64_t *load = tr->loads + tr->moe_slot[l] * E;
        for (int64_t e = 0; e < E; e++) load[e] += A->eoff[e + 1] - A->eoff[e];
    }
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = A->eoff[e], n = A->eoff[e + 1] - r0;
        if (!n) continue;
        lm_gather_expert_rows(tr->xe, tr->xn, A->erow + r0, n, k, D);
        mlp_fwd(tr, pool, tr->xe, n, &W->ew1[e], &W->ew3[e], &W->ew2[e], A->eh1 + r0 * Im, A->eh3 + r0 * Im, tr->ye);
        lm_scatter_expert_rows(A->ey, tr->ye, A->erow + r0, n, D);
    }
    if (W->has_shared)
        mlp_fwd(tr, pool, tr->xn, N, &W->sw1, &W->sw3, &W->sw2, A->h1, A->h3, out);
    else
        memset(out, 0, (size_t)(N * D) * sizeof(float));
    lm_moe_combine(out, A->ey, A->rw, N, k, D);
    /* Sequence-wise balance term (step.h). */
    double bal = 0;
    if (tr->o.balance_alpha > 0) {
        double f[E], P[E];
        for (int64_t b = 0; b < nseq; b++) {
            tr_balance_f(tr, A, b, f);
            for (int64_t e = 0; e < E; e++) P[e] = 0;
            for (int64_t t = 0; t < tr->T; t++) {
                const float *s = A->probs + (b * tr->T + t) * E;
                double z = 0;
                for (int64_t e = 0; e < E; e++) z += s[e];
                for (int64_t e = 0; e < E; e++) P[e] += s[e] / z;
            }
            double lb = 0;
            for (int64_t e = 0; e < E; e++) lb += f[e] * P[e] / (double)tr->T;
            bal += tr->o.balance_alpha * lb / (double)denom_seqs;
        }
    }
    return bal;
}

/* ---- the forward ---- */

void tr_forward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, int64_t nseq, int64_t denom_seqs, int count_loads) {
    const lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    int64_t N = nseq * tr->T, D = c->hidden_size, L = c->num_hidden_layers;
    for (int64_t n = 0; n < N; n++)
        memcpy(tr->acts[0].x_in + n * D, lm_mat_data(&p->W.embed) + (int64_t)ids[n] * D, (size_t)D * sizeof(float));
    if (tr->bf16) lm_params_to_bf16(p, tr->w16, pool); /* the weights may have changed since the last forward */
    double bal = 0;
    for (int64_t l = 0; l < L; l++)
        bal += tr_layer_forward(tr, pool, l, nseq, denom_seqs, count_loads, l + 1 < L ? tr->acts[l + 1].x_in : tr->x_fin);
    tr->bal_sum += bal;
}

double tr_layer_forward(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs, int count_loads,
                        float *next) {
    const lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    int64_t N = nseq * tr->T, D = c->hidden_size;
    float eps = (float)c->rms_norm_eps;
    tr_acts *A = &tr->acts[l];
    const lm_layer *W = &tr->Wf->layers[l];
    double bal = 0;
    attn_fwd(tr, pool, l, nseq, tr->tmp);
    add_rows(pool, A->x_mid, A->x_in, tr->tmp, N, D);
    tr_norm_rows(pool, tr->xn, A->r2, A->x_mid, W->ffn_norm, N, D, eps);
    if (tr->bf16) lm_tk_round_bf16(pool, tr->xn, N * D);
    if (W->is_moe)
        bal += moe_fwd(tr, pool, l, nseq, denom_seqs, count_loads, tr->tmp);
    else
        mlp_fwd(tr, pool, tr->xn, N, &W->w1, &W->w3, &W->w2, A->h1, A->h3, tr->tmp);
    add_rows(pool, next, A->x_mid, tr->tmp, N, D);
    return bal;
}

/* ---- head and loss ---- */

void tr_head(lm_trainer *tr, lm_pool *pool, const int32_t *targets, int64_t nseq, double denom, int grad,
             lm_token_loss_fn fn, void *fn_ctx, double *loss_sum, int64_t *count) {
    int mtp = grad && tr->mtp_pending;
    tr_head_rows(tr, pool, tr->x_fin, tr->r_fin, tr->p->W.final_norm, tr->p->G.final_norm, targets, nseq, denom, grad,
                 fn, fn_ctx, loss_sum, count, mtp, !tr->p->cfg.tie_word_embeddings, mtp ? tr->dfin : NULL);
}

void tr_head_rows(lm_trainer *tr, lm_pool *pool, const float *x, float *r, const float *norm_w, float *norm_g,
                  const int32_t *targets, int64_t nseq, double denom, int grad, lm_token_loss_fn fn, void *fn_ctx,
                  double *loss_sum, int64_t *count, int keep_hacc, int fold_head, const float *extra_dxn) {
    const lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    int64_t N = nseq * tr->T, D = c->hidden_size, V = c->vocab_size, HC = tr->head_chunk;
    float scale = (float)(1.0 / denom);
    tr_norm_rows(pool, tr->xn, r, x, norm_w, N, D, (float)c->rms_norm_eps);
    if (tr->bf16) lm_tk_round_bf16(pool, tr->xn, N * D);
    if (grad) {
        memset(tr->dxn, 0, (size_t)(N * D) * sizeof(float));
        if (!keep_hacc) memset(tr->hacc, 0, (size_t)(V * D) * sizeof(float));
        if (!tr->bf16) lm_tk_transpose(pool, tr->headT, lm_mat_data(&p->W.head), V, D);
    }
    lm_mat headT = lm_f32_mat(tr->headT, D, V);
    double loss = 0;
    int64_t cnt = 0;
    for (int64_t n0 = 0; n0 < N;) {
        /* The next HC rows that have a target. */
        int64_t m = 0;
        for (; n0 < N && m < HC; n0++)
            if (targets[n0] >= 0) {
                tr->hrows[m] = (int32_t)n0;
                memcpy(tr->xc + m * D, tr->xn + n0 * D, (size_t)D * sizeof(float));
                m++;
            }
        if (!m) break;
        lm_matmul(pool, tr->logits, tr->xc, m, &tr->Wf->head);
        rows_job xj = {.op = ROW_XENT, .N = m, .d = V, .scale = scale, .o1 = tr->logits, .tgt = targets,
                       .rows = tr->hrows, .loss = tr->hloss, .fn = fn, .fn_ctx = fn_ctx,
                       .row_fn = tr->row_fn, .row_ctx = tr->row_ctx};
        run_rows(pool, &xj);
        for (int64_t i = 0; i < m; i++) loss += tr->hloss[i];
        cnt += m;
        if (!grad) continue;
        lm_tk_linear_dw(pool, tr->hacc, tr->logits, tr->xc, m, V, D, tr->ws, tr->bf16);
        if (tr->bf16) /* dx = dlogits W, the head read in place */
            lm_tk_linear_dx(pool, tr->dxc, tr->logits, m, lm_mat_data(&p->W.head), V, D, 0, NULL, 1);
        else
            lm_matmul(pool, tr->dxc, tr->logits, m, &headT); /* dx = dlogits W */
        for (int64_t i = 0; i < m; i++)
            memcpy(tr->dxn + (int64_t)tr->hrows[i] * D, tr->dxc + i * D, (size_t)D * sizeof(float));
    }
    *loss_sum += loss;
    *count += cnt;
    if (!grad) return;
    /* This pass's head gradient goes to G in one add (tied: after the
     * embedding rows join it, in tr_backward). */
    if (fold_head) lm_tk_add(pool, lm_mat_data(&p->G.head), tr->hacc, V * D);
    if (extra_dxn) lm_tk_add(pool, tr->dxn, extra_dxn, N * D);
    tr_norm_bwd_rows(pool, tr->dx, tr->dxn, x, norm_w, r, N, D, 0);
    lm_tk_rmsnorm_dw(pool, norm_g, tr->dxn, x, r, N, D);
}
