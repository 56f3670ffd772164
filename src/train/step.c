/* step.c — the trainer: one allocation planned from the config and the
 * micro-batch shape, and the step (step.h). */
#include "train/step.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/blocks.h"
#include "core/mathfn.h"
#include "train/tkernels.h"
#include "train/trainer.h"

int lm_precision_parse(const char *s, lm_precision *out) {
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) *out = LM_PRECISION_F32;
    else if (!strcmp(s, "bf16")) *out = LM_PRECISION_BF16;
    else return -1;
    return 0;
}

const char *lm_precision_name(lm_precision p) { return p == LM_PRECISION_BF16 ? "bf16" : "f32"; }

lm_train_opts lm_train_opts_default(void) {
    lm_train_opts o = {0};
    o.batch = 1;
    o.adamw = (lm_adamw_opts){0.9, 0.95, 1e-8, 0.1};
    o.clip = 1.0;
    o.bias_gamma = 0.001;
    return o;
}

/* ---- memory plan ---- */

#define PLAN_F(pl, n) ((float *)lm_arena_take((pl), (size_t)(n) * sizeof(float)))
#define PLAN_I(pl, n) ((int32_t *)lm_arena_take((pl), (size_t)(n) * sizeof(int32_t)))

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

int64_t lm_train_act_floats_per_token(const lm_config *c) {
    int64_t D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim,
            dv = c->v_head_dim, C = c->kv_lora_rank, Q = c->q_lora_rank, k = c->num_experts_per_tok,
            E = c->n_routed_experts, Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts;
    int64_t attn = (D + 1) + (Q ? Q + 1 : 0) + H * (dn + dr) + (C + 1) + dr + H * (dn + dv) + H + H * dv + (D + 1);
    int64_t total = D + 1;
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        total += attn;
        if (lm_config_layer_is_moe(c, l))
            total += 2 * Is + E + 3 * k + 2 * k * Im + k * D;
        else
            total += 2 * c->intermediate_size;
    }
    return total;
}

static void layout(lm_trainer *tr, lm_arena *pl) {
    const lm_config *c = &tr->p->cfg;
    const lm_dims *d = &tr->p->dims;
    int64_t N = tr->N, T = tr->T, D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, Q = d->Q,
            k = d->k, E = d->E, Im = d->Im, Is = d->Is, I = d->I, L = d->L, V = d->V, dk = d->dk;
    tr->cos_t = PLAN_F(pl, T * (dr / 2));
    tr->sin_t = PLAN_F(pl, T * (dr / 2));
    int64_t La = L + tr->mtp; /* acts[L]: the MTP layer's */
    tr->acts = lm_arena_take(pl, (size_t)La * sizeof(tr_acts));
    for (int64_t l = 0; l < La; l++) {
        tr_acts a = {0};
        int moe = lm_config_layer_is_moe(c, l);
        a.x_in = PLAN_F(pl, N * D);
        a.r1 = PLAN_F(pl, N);
        if (Q) {
            a.qa = PLAN_F(pl, N * Q);
            a.rq = PLAN_F(pl, N);
        }
        a.q = PLAN_F(pl, N * H * dk);
        a.ckv = PLAN_F(pl, N * C);
        a.rkv = PLAN_F(pl, N);
        a.kpe = PLAN_F(pl, N * dr);
        a.kvb = PLAN_F(pl, N * H * (dn + dv));
        a.lse = PLAN_F(pl, N * H);
        a.att = PLAN_F(pl, N * H * dv);
        a.x_mid = PLAN_F(pl, N * D);
        a.r2 = PLAN_F(pl, N);
        if (!moe) {
            a.h1 = PLAN_F(pl, N * I);
            a.h3 = PLAN_F(pl, N * I);
        } else {
            if (Is) {
                a.h1 = PLAN_F(pl, N * Is);
                a.h3 = PLAN_F(pl, N * Is);
            }
            a.probs = PLAN_F(pl, N * E);
            a.ridx = PLAN_I(pl, N * k);
            a.rw = PLAN_F(pl, N * k);
            a.eoff = PLAN_I(pl, E + 1);
            a.erow = PLAN_I(pl, N * k);
            a.eh1 = PLAN_F(pl, N * k * Im);
            a.eh3 = PLAN_F(pl, N * k * Im);
            a.ey = PLAN_F(pl, N * k * D);
        }
        if (pl->base) tr->acts[l] = a;
    }
    tr->x_fin = PLAN_F(pl, N * D);
    tr->r_fin = PLAN_F(pl, N);
    tr->xn = PLAN_F(pl, N * D);
    tr->dx = PLAN_F(pl, N * D);
    tr->dxn = PLAN_F(pl, N * D);
    tr->tmp = PLAN_F(pl, N * D);
    tr->qan = PLAN_F(pl, N * (Q ? Q : 1));
    tr->kva = PLAN_F(pl, N * (C + dr));
    tr->cn = PLAN_F(pl, N * C);
    tr->dq = PLAN_F(pl, N * H * dk);
    tr->dqa = PLAN_F(pl, N * (Q ? Q : 1));
    tr->dkvb = PLAN_F(pl, N * H * (dn + dv));
    tr->dkpe_h = PLAN_F(pl, N * H * dr);
    tr->datt = PLAN_F(pl, N * H * dv);
    tr->act = PLAN_F(pl, N * tr->Imax);
    tr->dact = PLAN_F(pl, N * tr->Imax);
    tr->dh1 = PLAN_F(pl, N * tr->Imax);
    tr->dh3 = PLAN_F(pl, N * tr->Imax);
    if (E) {
        tr->glog = PLAN_F(pl, N * E);
        tr->ds = PLAN_F(pl, N * E);
        tr->dw = PLAN_F(pl, N * k);
        tr->xe = PLAN_F(pl, N * D);
        tr->ye = PLAN_F(pl, N * D);
        tr->dxe = PLAN_F(pl, N * D);
        tr->efill = PLAN_I(pl, E);
        tr->loads = lm_arena_take(pl, (size_t)(tr->nmoe * E) * sizeof(int64_t));
        tr->moe_layer = PLAN_I(pl, tr->nmoe);
    }
    tr->moe_slot = PLAN_I(pl, La);
    if (tr->mtp) {
        tr->hn = PLAN_F(pl, N * D);
        tr->mcat = PLAN_F(pl, N * 2 * D);
        tr->dcat = PLAN_F(pl, N * 2 * D);
        tr->r_e = PLAN_F(pl, N);
        tr->r_h = PLAN_F(pl, N);
        tr->x_mfin = PLAN_F(pl, N * D);
        tr->r_mfin = PLAN_F(pl, N);
        tr->dfin = PLAN_F(pl, N * D);
        tr->mids = PLAN_I(pl, N);
        tr->mtgt = PLAN_I(pl, N);
    }
    tr->xc = PLAN_F(pl, tr->head_chunk * D);
    tr->dxc = PLAN_F(pl, tr->head_chunk * D);
    tr->logits = PLAN_F(pl, tr->head_chunk * V);
    tr->hrows = PLAN_I(pl, tr->head_chunk);
    tr->hloss = lm_arena_take(pl, (size_t)tr->head_chunk * sizeof(double));
    tr->headT = PLAN_F(pl, V * D);
    tr->hacc = PLAN_F(pl, V * D);
    tr->ekey = lm_arena_take(pl, (size_t)(N * (1 + tr->mtp)) * sizeof(uint64_t));
    /* Per thread: Q, K, dQ, dK [T, dk]; V, O, dO, dV [T, dv]; scores. */
    tr->thr_floats = (4 * T * dk + 4 * T * dv + lm_tk_attn_scratch_floats(T, dk, dv) + 15) & ~(int64_t)15;
    tr->thr = PLAN_F(pl, tr->nthreads * tr->thr_floats);
    /* The Linear products' workspace: the largest of them. */
    int64_t shapes[][2] = {{Q, D},      {H * dk, Q}, {H * dk, D}, {C + dr, D}, {H * (dn + dv), C},
                           {D, H * dv}, {I, D},      {D, I},      {E, D},      {Im, D},
                           {D, Im},     {Is, D},     {D, Is},     {D, 2 * D}};
    int64_t ws = lm_tk_ws_floats(tr->head_chunk, V, D);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        ws = max64(ws, lm_tk_ws_floats(N, shapes[i][0], shapes[i][1]));
    tr->ws = PLAN_F(pl, ws);
    if (tr->bf16) tr->w16 = lm_arena_take(pl, (size_t)tr->p->n_floats * sizeof(uint16_t));
}

lm_trainer *lm_trainer_create(lm_params *p, const lm_train_opts *o, int nthreads, lm_error *err) {
    const lm_config *c = &p->cfg;
    if (o->seq < 1 || o->batch < 1) {
        lm_fail(err, "training batch (%lld) and sequence length (%lld) must be positive", (long long)o->batch,
                (long long)o->seq);
        return NULL;
    }
    int64_t mb = o->micro_batch ? o->micro_batch : o->batch;
    if (mb < 1 || mb > o->batch || o->batch % mb) {
        lm_fail(err, "micro-batch %lld must divide the batch %lld", (long long)mb, (long long)o->batch);
        return NULL;
    }
    if (o->seq > c->max_position_embeddings) {
        lm_fail(err, "sequence length %lld exceeds max_position_embeddings %lld", (long long)o->seq,
                (long long)c->max_position_embeddings);
        return NULL;
    }
    if (!(o->clip >= 0 || o->clip < 0) || !(o->bias_gamma >= 0) || !(o->balance_alpha >= 0) || !(o->mtp_weight >= 0)) {
        lm_fail(err, "clip, bias_gamma, balance_alpha and mtp_weight must be numbers >= 0");
        return NULL;
    }
    if (o->mtp_weight > 0 && p->mtp_layers < 1) {
        lm_fail(err, "an MTP loss weight needs an MTP layer: the config has num_nextn_predict_layers 0, expected 1");
        return NULL;
    }
    if (o->precision != LM_PRECISION_F32 && o->precision != LM_PRECISION_BF16) {
        lm_fail(err, "precision must be f32 or bf16 (got %d)", (int)o->precision);
        return NULL;
    }
    if (o->precision == LM_PRECISION_BF16 && o->mtp_weight > 0) {
        lm_fail(err, "precision bf16 does not train an MTP layer yet (its bf16 weight views cover the main layers): "
                     "use precision f32 with an MTP weight");
        return NULL;
    }
    lm_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    tr->p = p;
    tr->bf16 = o->precision == LM_PRECISION_BF16;
    tr->Wf = &p->W;
    tr->o = *o;
    tr->o.micro_batch = mb;
    tr->nthreads = nthreads < 1 ? 1 : nthreads;
    tr->Bm = mb;
    tr->T = o->seq;
    tr->N = mb * o->seq;
    tr->mtp = o->mtp_weight > 0;
    int64_t Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts, I = 0;
    for (int64_t l = 0; l < c->num_hidden_layers + tr->mtp; l++) {
        if (lm_config_layer_is_moe(c, l))
            tr->nmoe++;
        else
            I = c->intermediate_size;
    }
    tr->Imax = max64(I, max64(Is, tr->nmoe ? Im : 0));
    if (tr->Imax < 1) tr->Imax = 1;
    /* Logits of up to 8M floats (32 MB) at once, at least 64 rows. */
    int64_t hc = ((int64_t)1 << 23) / c->vocab_size;
    tr->head_chunk = hc < 64 ? 64 : hc;
    if (tr->head_chunk > tr->N) tr->head_chunk = tr->N;
    /* Without the MTP loss, an MTP layer in the parameters (a released
     * checkpoint fine-tuned) stays as it is: left out of the optimiser (no
     * weight decay on it; its gradient is never computed). */
    int frozen = 0;
    for (int64_t i = 0; !tr->mtp && i < p->n_tensors; i++)
        if (p->t[i].mtp && p->t[i].trainable) p->t[i].trainable = 0, frozen = 1;
    int arc = lm_adamw_init(&tr->opt, p, &o->adamw, err);
    for (int64_t i = 0; frozen && i < p->n_tensors; i++) /* the flags as params.c set them */
        if (p->t[i].mtp && !p->t[i].alias && p->t[i].kind != LM_PARAM_BIAS) p->t[i].trainable = 1;
    if (arc) {
        free(tr);
        return NULL;
    }
    layout(tr, &tr->arena);
    if (lm_arena_map(&tr->arena)) {
        lm_fail(err, "cannot allocate %.1f MiB of training buffers", tr->arena.bytes / 1048576.0);
        lm_adamw_free(&tr->opt);
        free(tr);
        return NULL;
    }
    layout(tr, &tr->arena);
    if (tr->bf16) {
        if (lm_params_bf16_views(p, tr->w16, &tr->Wb, &tr->wb_ptrs, err)) {
            lm_trainer_free(tr);
            return NULL;
        }
        tr->Wf = &tr->Wb;
    }
    /* Rope tables for positions 0..T-1 of every sequence. */
    int64_t half = c->qk_rope_head_dim / 2;
    double inv_freq[half > 0 ? half : 1];
    lm_config_rope_inv_freq(c, inv_freq);
    lm_rope_tables(c, inv_freq, 0, tr->T, tr->cos_t, tr->sin_t);
    int64_t m = 0;
    for (int64_t l = 0; l < c->num_hidden_layers + tr->mtp; l++) {
        tr->moe_slot[l] = lm_config_layer_is_moe(c, l) ? (int32_t)m : -1;
        if (tr->moe_slot[l] >= 0) tr->moe_layer[m++] = (int32_t)l;
    }
    return tr;
}

void lm_trainer_free(lm_trainer *tr) {
    if (!tr) return;
    lm_arena_unmap(&tr->arena);
    lm_adamw_free(&tr->opt);
    free(tr->wb_ptrs);
    free(tr);
}

lm_adamw *lm_trainer_adamw(lm_trainer *tr) { return &tr->opt; }

int64_t lm_trainer_bytes(const lm_trainer *tr) { return (int64_t)tr->arena.bytes; } /* the second layout pass re-planned it */

/* ---- the step ---- */

static int check_batch(const lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t n,
                       lm_error *err) {
    int64_t V = tr->p->cfg.vocab_size;
    if (pool && lm_pool_size(pool) > tr->nthreads)
        return lm_fail(err, "pool has %d threads but the trainer was sized for %d", lm_pool_size(pool), tr->nthreads);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return lm_fail(err, "token id %d at batch position %lld is out of range (vocab_size %lld)", ids[i],
                           (long long)i, (long long)V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return lm_fail(err, "target %d at batch position %lld is out of range (-1 or 0..%lld)", targets[i],
                           (long long)i, (long long)V - 1);
    }
    return 0;
}

void lm_train_begin(lm_trainer *tr) {
    lm_params_zero_grad(tr->p);
    if (tr->nmoe) memset(tr->loads, 0, (size_t)(tr->nmoe * tr->p->cfg.n_routed_experts) * sizeof(int64_t));
    tr->loss_sum = 0;
    tr->mtp_loss_sum = 0;
    tr->bal_sum = 0;
    tr->tok_count = 0;
    tr->denom_tokens = 0;
    tr->loss_kind = 0;
}

/* One kind of loss per step (lm_train_apply scales the sum by kind). */
static int claim_loss_kind(lm_trainer *tr, int kind, lm_error *err) {
    if (tr->loss_kind && tr->loss_kind != kind)
        return lm_fail(err, "this step already accumulated a %s loss; start a new step (lm_train_begin) first",
                       tr->loss_kind == 1 ? "cross-entropy" : "per-token");
    tr->loss_kind = kind;
    return 0;
}

int lm_train_accumulate(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                        int64_t denom_tokens, int64_t denom_seqs, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (denom_seqs < 1) return lm_fail(err, "the sequence denominator must be positive");
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err) || claim_loss_kind(tr, 1, err)) return -1;
    tr->denom_tokens = denom_tokens;
    tr_forward(tr, pool, ids, nseq, denom_seqs, 1);
    double denom = denom_tokens > 0 ? (double)denom_tokens : 1.0;
    if (tr->mtp) tr_mtp_pass(tr, pool, ids, targets, nseq, denom, denom_seqs);
    int64_t cnt = 0;
    tr_head(tr, pool, targets, nseq, denom, 1, NULL, NULL, &tr->loss_sum, &cnt);
    tr->tok_count += cnt;
    tr_backward(tr, pool, ids, nseq, denom_seqs);
    return 0;
}

int lm_train_accumulate_token_loss(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                                   int64_t nseq, lm_token_loss_fn fn, void *ctx, int64_t denom_seqs, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (denom_seqs < 1) return lm_fail(err, "the sequence denominator must be positive");
    if (!fn) return lm_fail(err, "no per-token loss function given");
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err) || claim_loss_kind(tr, 2, err)) return -1;
    tr->denom_tokens = 1; /* the f_n are normalised by the caller */
    tr_forward(tr, pool, ids, nseq, denom_seqs, 1);
    int64_t cnt = 0;
    tr_head(tr, pool, targets, nseq, 1.0, 1, fn, ctx, &tr->loss_sum, &cnt);
    tr->tok_count += cnt;
    tr_backward(tr, pool, ids, nseq, denom_seqs);
    return 0;
}

int lm_train_accumulate_row_loss(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets,
                                 int64_t nseq, lm_row_loss_fn fn, void *ctx, int64_t denom_seqs, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (denom_seqs < 1) return lm_fail(err, "the sequence denominator must be positive");
    if (!fn) return lm_fail(err, "no row loss function given");
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err) || claim_loss_kind(tr, 2, err)) return -1;
    tr->denom_tokens = 1; /* the f_n are normalised by the caller */
    tr_forward(tr, pool, ids, nseq, denom_seqs, 1);
    int64_t cnt = 0;
    tr->row_fn = fn;
    tr->row_ctx = ctx;
    tr_head(tr, pool, targets, nseq, 1.0, 1, NULL, NULL, &tr->loss_sum, &cnt);
    tr->row_fn = NULL;
    tr->row_ctx = NULL;
    tr->tok_count += cnt;
    tr_backward(tr, pool, ids, nseq, denom_seqs);
    return 0;
}

int lm_train_row_forward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                         lm_row_loss_fn fn, void *ctx, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (!fn) return lm_fail(err, "no row function given");
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err)) return -1;
    double bal = tr->bal_sum, sum = 0;
    int64_t cnt = 0;
    tr_forward(tr, pool, ids, nseq, 1, 0);
    tr->bal_sum = bal;
    tr->row_fn = fn;
    tr->row_ctx = ctx;
    tr_head(tr, pool, targets, nseq, 1.0, 0, NULL, NULL, &sum, &cnt);
    tr->row_fn = NULL;
    tr->row_ctx = NULL;
    return 0;
}

/* The hook of lm_train_logprobs: records logp, no loss. */
static double record_logp(void *ctx, int64_t row, double logp, double *dloss_dlogp) {
    ((float *)ctx)[row] = (float)logp;
    *dloss_dlogp = 0;
    return 0;
}

int lm_train_logprobs(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                      float *logp, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err)) return -1;
    memset(logp, 0, (size_t)(nseq * tr->T) * sizeof(float));
    double bal = tr->bal_sum, sum = 0;
    int64_t cnt = 0;
    tr_forward(tr, pool, ids, nseq, 1, 0);
    tr->bal_sum = bal;
    tr_head(tr, pool, targets, nseq, 1.0, 0, record_logp, logp, &sum, &cnt);
    return 0;
}

int64_t *lm_train_expert_loads(lm_trainer *tr, int64_t *n) {
    *n = tr->nmoe * tr->p->cfg.n_routed_experts;
    return tr->loads;
}

void lm_train_get_sums(const lm_trainer *tr, double *loss_sum, double *balance_sum, int64_t *tokens) {
    *loss_sum = tr->loss_sum;
    *balance_sum = tr->bal_sum;
    *tokens = tr->tok_count;
}

void lm_train_set_sums(lm_trainer *tr, double loss_sum, double balance_sum, int64_t tokens) {
    tr->loss_sum = loss_sum;
    tr->bal_sum = balance_sum;
    tr->tok_count = tokens;
}

void lm_train_loss_so_far(const lm_trainer *tr, double *loss, int64_t *tokens) {
    double denom = tr->denom_tokens > 0 ? (double)tr->denom_tokens : 1.0;
    *loss = tr->tok_count ? tr->loss_sum / denom : 0.0;
    *tokens = tr->tok_count;
}

void lm_train_apply(lm_trainer *tr, lm_pool *pool, double lr, lm_train_stats *st) {
    lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    double norm = lm_adamw_grad_norm(&tr->opt, pool, p);
    double scale = lm_adamw_clip_scale(norm, tr->o.clip);
    lm_adamw_update(&tr->opt, pool, p, lr, scale);
    /* MoE balance: bias_e += gamma * sign(mean load - load_e). */
    int64_t E = c->n_routed_experts;
    if (tr->o.bias_gamma > 0)
        for (int64_t m = 0; m < tr->nmoe; m++) {
            float *bias = p->W.layers[tr->moe_layer[m]].gate_bias;
            if (!bias) continue;
            const int64_t *load = tr->loads + m * E;
            int64_t sum = 0;
            for (int64_t e = 0; e < E; e++) sum += load[e];
            for (int64_t e = 0; e < E; e++) {
                /* load_e < sum/E  <=>  E*load_e < sum (exact in integers) */
                int64_t d = sum - E * load[e];
                if (d > 0) bias[e] += (float)tr->o.bias_gamma;
                else if (d < 0) bias[e] -= (float)tr->o.bias_gamma;
            }
        }
    if (!st) return;
    memset(st, 0, sizeof *st);
    double denom = tr->denom_tokens > 0 ? (double)tr->denom_tokens : 1.0;
    st->loss = tr->tok_count ? tr->loss_sum / denom : 0.0;
    st->mtp_loss = tr->tok_count ? tr->mtp_loss_sum / denom : 0.0;
    st->balance_loss = tr->bal_sum;
    st->grad_norm = norm;
    st->clip_scale = scale;
    st->lr = lr;
    st->tokens = tr->tok_count;
    st->step = tr->opt.step;
    st->expert_load = tr->loads;
    st->moe_layers = tr->moe_layer;
    st->n_moe_layers = tr->nmoe;
    st->n_experts = E;
}

int lm_train_step(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, double lr,
                  lm_train_stats *st, lm_error *err) {
    int64_t B = tr->o.batch, T = tr->T;
    if (check_batch(tr, pool, ids, targets, B * T, err)) return -1;
    int64_t denom = 0;
    for (int64_t i = 0; i < B * T; i++) denom += targets[i] >= 0;
    lm_train_begin(tr);
    for (int64_t b = 0; b < B; b += tr->Bm)
        if (lm_train_accumulate(tr, pool, ids + b * T, targets + b * T, tr->Bm, denom, B, err)) return -1;
    lm_train_apply(tr, pool, lr, st);
    return 0;
}

int lm_train_eval(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq,
                  double *loss_sum, int64_t *count, lm_error *err) {
    if (nseq < 1 || nseq > tr->Bm)
        return lm_fail(err, "%lld sequences in a pass, the trainer holds 1..%lld", (long long)nseq, (long long)tr->Bm);
    if (check_batch(tr, pool, ids, targets, nseq * tr->T, err)) return -1;
    double bal = tr->bal_sum;
    tr_forward(tr, pool, ids, nseq, 1, 0);
    tr->bal_sum = bal;
    tr_head(tr, pool, targets, nseq, 1.0, 0, NULL, NULL, loss_sum, count);
    return 0;
}
