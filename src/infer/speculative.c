/* speculative.c — MTP-drafted speculative decoding; see speculative.h. */
#include "infer/speculative.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/kvcache.h"

/* Rows per forward call: prompt chunks (the MTP mixes at most this many). */
enum { SPEC_CHUNK = LM_MTP_MAX_ROWS, SPEC_BLOCK = 64 };

struct lm_spec {
    const lm_model *m;
    lm_mtp *mtp;
    int64_t max_ctx, V, D;
    lm_fwd *f_main, *f_mtp;
    lm_kvcache *kc_main, *kc_mtp;
    lm_kvseq seq_main, seq_mtp;
    /* Main positions whose hidden state the MTP has not consumed yet:
     * mtp pos .. mtp pos + npend - 1 (at most 2), with the token that
     * follows each but the last. */
    float *pend;                 /* [2, D] residual rows */
    int32_t pend_next[2];
    int npend;
    float *x;                    /* [SPEC_CHUNK, D] MTP input rows */
    float *logits;               /* [2, V] verification logits */
    float *dlogits;              /* [V] draft logits */
    double *p, *q;               /* [V] dense distributions */
    int32_t *ids;                /* [V] candidates of lm_sample_distribution */
    double *probs;               /* [V] */
    lm_spec_stats stats;
};

lm_spec *lm_spec_create(const lm_model *m, lm_mtp *mtp, lm_attn_mode mode, int64_t max_ctx, int nthreads,
                        lm_error *err) {
    if (max_ctx < 2) {
        lm_fail(err, "speculative decoding needs a context of at least 2 positions (got %lld)", (long long)max_ctx);
        return NULL;
    }
    lm_spec *sp = calloc(1, sizeof *sp);
    if (!sp) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    sp->m = m;
    sp->mtp = mtp;
    sp->max_ctx = max_ctx;
    sp->V = m->cfg.vocab_size;
    sp->D = m->cfg.hidden_size;
    const lm_model *b = lm_mtp_model(mtp);
    int64_t nblocks = (max_ctx + SPEC_BLOCK - 1) / SPEC_BLOCK;
    int64_t chunk = max_ctx < SPEC_CHUNK ? max_ctx : SPEC_CHUNK;
    if (!(sp->f_main = lm_fwd_create(m, mode, chunk, max_ctx, nthreads, err)) ||
        !(sp->f_mtp = lm_fwd_create(b, mode, chunk, max_ctx, nthreads, err)) ||
        !(sp->kc_main = lm_kvcache_create(m, mode, SPEC_BLOCK, nblocks, err)) ||
        !(sp->kc_mtp = lm_kvcache_create(b, mode, SPEC_BLOCK, nblocks, err))) {
        lm_spec_free(sp);
        return NULL;
    }
    size_t V = (size_t)sp->V, D = (size_t)sp->D;
    sp->pend = malloc(2 * D * sizeof(float));
    sp->x = malloc((size_t)chunk * D * sizeof(float));
    sp->logits = malloc(2 * V * sizeof(float));
    sp->dlogits = malloc(V * sizeof(float));
    sp->p = malloc(V * sizeof(double));
    sp->q = malloc(V * sizeof(double));
    sp->ids = malloc(V * sizeof(int32_t));
    sp->probs = malloc(V * sizeof(double));
    if (!sp->pend || !sp->x || !sp->logits || !sp->dlogits || !sp->p || !sp->q || !sp->ids || !sp->probs) {
        lm_spec_free(sp);
        lm_fail(err, "out of memory");
        return NULL;
    }
    return sp;
}

void lm_spec_free(lm_spec *sp) {
    if (!sp) return;
    if (sp->kc_main) lm_kvseq_release(sp->kc_main, &sp->seq_main);
    if (sp->kc_mtp) lm_kvseq_release(sp->kc_mtp, &sp->seq_mtp);
    lm_kvcache_free(sp->kc_main);
    lm_kvcache_free(sp->kc_mtp);
    lm_fwd_free(sp->f_main);
    lm_fwd_free(sp->f_mtp);
    free(sp->pend);
    free(sp->x);
    free(sp->logits);
    free(sp->dlogits);
    free(sp->p);
    free(sp->q);
    free(sp->ids);
    free(sp->probs);
    free(sp);
}

int64_t lm_spec_pos(const lm_spec *sp) { return sp->seq_main.pos; }
lm_spec_stats lm_spec_get_stats(const lm_spec *sp) { return sp->stats; }

/* The MTP block over `n` main residual rows with the tokens that follow
 * them, at the next MTP positions; logits of the last row when wanted. */
static int run_mtp(lm_spec *sp, lm_pool *pool, const float *resid, const int32_t *next, int64_t n, float *logits,
                   lm_error *err) {
    if (lm_mtp_mix(sp->mtp, pool, resid, next, n, sp->x, err)) return -1;
    lm_batch_seg seg = {&sp->seq_mtp, NULL, n};
    return lm_batch_forward_rows(sp->f_mtp, pool, sp->kc_mtp, &seg, 1, sp->x, logits,
                                 logits ? LM_LOGITS_LAST : LM_LOGITS_NONE, err);
}

int lm_spec_prefill(lm_spec *sp, lm_pool *pool, const int32_t *ids, int64_t n, float *logits, lm_error *err) {
    lm_kvseq_truncate(sp->kc_main, &sp->seq_main, 0);
    lm_kvseq_truncate(sp->kc_mtp, &sp->seq_mtp, 0);
    sp->npend = 0;
    sp->stats = (lm_spec_stats){0};
    if (n < 1) return lm_fail(err, "empty prompt");
    int64_t chunk = lm_fwd_max_rows(sp->f_main);
    for (int64_t a = 0; a < n; a += chunk) {
        int64_t k = n - a < chunk ? n - a : chunk, last = a + k == n;
        lm_batch_seg seg = {&sp->seq_main, ids + a, k};
        if (lm_batch_forward(sp->f_main, pool, sp->kc_main, &seg, 1, logits, last ? LM_LOGITS_LAST : LM_LOGITS_NONE,
                             err))
            goto fail;
        const float *resid = lm_fwd_residual(sp->f_main);
        /* Row j pairs with token j+1: known for every prompt row but the last. */
        int64_t ready = last ? k - 1 : k;
        if (ready > 0 && run_mtp(sp, pool, resid, ids + a + 1, ready, NULL, err)) goto fail;
        if (last) {
            memcpy(sp->pend, resid + (k - 1) * sp->D, (size_t)sp->D * sizeof(float));
            sp->npend = 1;
        }
    }
    return 0;
fail:
    lm_kvseq_truncate(sp->kc_main, &sp->seq_main, 0);
    lm_kvseq_truncate(sp->kc_mtp, &sp->seq_mtp, 0);
    sp->npend = 0;
    return -1;
}

int lm_spec_draft(lm_spec *sp, lm_pool *pool, int32_t x, float *draft_logits, lm_error *err) {
    if (sp->npend < 1) return lm_fail(err, "speculative draft before a prefill");
    sp->pend_next[sp->npend - 1] = x;
    if (run_mtp(sp, pool, sp->pend, sp->pend_next, sp->npend, draft_logits, err)) return -1;
    sp->npend = 0;
    return 0;
}

int lm_spec_verify(lm_spec *sp, lm_pool *pool, int32_t x, int32_t d, float *logits, lm_error *err) {
    if (sp->npend != 0) return lm_fail(err, "speculative verify before the draft of its position");
    int32_t run[2] = {x, d};
    int64_t n = d >= 0 ? 2 : 1;
    lm_batch_seg seg = {&sp->seq_main, run, n};
    if (lm_batch_forward(sp->f_main, pool, sp->kc_main, &seg, 1, logits, LM_LOGITS_ALL, err)) return -1;
    memcpy(sp->pend, lm_fwd_residual(sp->f_main), (size_t)(n * sp->D) * sizeof(float));
    sp->pend_next[0] = d;
    sp->npend = (int)n;
    return 0;
}

void lm_spec_settle(lm_spec *sp, int accepted) {
    if (sp->npend != 2 || accepted) return;
    lm_kvseq_truncate(sp->kc_main, &sp->seq_main, sp->seq_main.pos - 1);
    sp->npend = 1;
}

int32_t lm_spec_resolve(const double *p, const double *q, int64_t V, int32_t d, double u_accept, double u_resample,
                        int *accepted) {
    /* u < p/q, written without the division (q[d] > 0: d was drawn from q) */
    *accepted = u_accept * q[d] < p[d];
    if (*accepted) return d;
    double z = 0;
    for (int64_t i = 0; i < V; i++) z += p[i] > q[i] ? p[i] - q[i] : 0.0;
    int use_p = !(z > 0);
    if (use_p) z = 1.0;
    double target = u_resample * z, cum = 0;
    int32_t last = -1;
    for (int64_t i = 0; i < V; i++) {
        double r = use_p ? p[i] : (p[i] > q[i] ? p[i] - q[i] : 0.0);
        if (r <= 0) continue;
        cum += r;
        last = (int32_t)i;
        if (target < cum) return (int32_t)i;
    }
    return last >= 0 ? last : d;
}

/* The filtered distribution of logits as a dense array over V ids. */
static void dense(lm_spec *sp, lm_sampler *smp, const float *logits, const lm_sampling *cfg, double *out) {
    memset(out, 0, (size_t)sp->V * sizeof(double));
    int64_t n = lm_sample_distribution(smp, logits, cfg, sp->ids, sp->probs);
    for (int64_t i = 0; i < n; i++) out[sp->ids[i]] = sp->probs[i];
}

int lm_spec_step(lm_spec *sp, lm_pool *pool, lm_sampler *smp, const lm_sampling *cfg, int32_t x, int32_t out[2],
                 int *nout, lm_error *err) {
    int64_t pos = sp->seq_main.pos, V = sp->V;
    uint64_t c = ((uint64_t)1 << 40) + 4 * (uint64_t)sp->stats.steps;
    if (pos >= sp->max_ctx) return lm_fail(err, "the context of %lld positions is full", (long long)sp->max_ctx);
    if (lm_spec_draft(sp, pool, x, sp->dlogits, err)) return -1;
    if (pos + 2 > sp->max_ctx) { /* room for x only: a plain step */
        if (lm_spec_verify(sp, pool, x, -1, sp->logits, err)) return -1;
        sp->stats.steps++;
        out[0] = lm_sample(smp, sp->logits, cfg, c + 3);
        *nout = 1;
        return 0;
    }
    int32_t d = lm_sample(smp, sp->dlogits, cfg, c);
    if (lm_spec_verify(sp, pool, x, d, sp->logits, err)) return -1;
    sp->stats.steps++;
    sp->stats.drafted++;
    int accepted;
    int32_t r;
    if (cfg->temperature <= 0) {
        r = lm_sample(smp, sp->logits, cfg, 0); /* argmax */
        accepted = r == d;
    } else {
        dense(sp, smp, sp->logits, cfg, sp->p);
        dense(sp, smp, sp->dlogits, cfg, sp->q);
        r = lm_spec_resolve(sp->p, sp->q, V, d, lm_rng_uniform(cfg->seed, LM_RNG_SAMPLING, c + 1),
                            lm_rng_uniform(cfg->seed, LM_RNG_SAMPLING, c + 2), &accepted);
    }
    lm_spec_settle(sp, accepted);
    if (!accepted) {
        out[0] = r;
        *nout = 1;
        return 0;
    }
    sp->stats.accepted++;
    out[0] = d;
    out[1] = lm_sample(smp, sp->logits + V, cfg, c + 3);
    *nout = 2;
    return 0;
}
