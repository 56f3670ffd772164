/* rl.c — GRPO-family policy-gradient loss on the trainer (rl.h). */
#include "train/rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mathfn.h"
#include "train/trainer.h"

lm_rl_opts lm_rl_opts_default(void) {
    lm_rl_opts o = {0};
    o.scale_std = 1;
    o.std_eps = 1e-4;
    o.agg = LM_RL_SEQ_MEAN;
    o.clip_low = 0.2;
    o.clip_high = 0.2;
    o.beta_kl = 0.04;
    return o;
}

int lm_rl_opts_check(const lm_rl_opts *o, lm_error *err) {
    if (o->scale_std != 0 && o->scale_std != 1) return lm_fail(err, "rl option scale_std must be 0 or 1");
    if (o->scale_std && !(o->std_eps > 0 && isfinite(o->std_eps)))
        return lm_fail(err, "rl option std_eps must be a finite number > 0 (got %g)", o->std_eps);
    if (o->agg != LM_RL_SEQ_MEAN && o->agg != LM_RL_TOKEN_MEAN && o->agg != LM_RL_SEQ_SUM)
        return lm_fail(err, "rl option agg must be seq_mean, token_mean or seq_sum (got %d)", (int)o->agg);
    if (o->agg == LM_RL_SEQ_SUM && !(o->norm_len > 0 && isfinite(o->norm_len)))
        return lm_fail(err, "rl option norm_len must be a finite number > 0 with seq_sum averaging (got %g)",
                       o->norm_len);
    if (!(o->clip_low >= 0 && o->clip_low < 1))
        return lm_fail(err, "rl option clip_low must be in [0, 1) (got %g)", o->clip_low);
    if (!(o->clip_high >= 0 && isfinite(o->clip_high)))
        return lm_fail(err, "rl option clip_high must be a finite number >= 0 (got %g)", o->clip_high);
    if (!(o->beta_kl >= 0 && isfinite(o->beta_kl)))
        return lm_fail(err, "rl option beta_kl must be a finite number >= 0 (got %g)", o->beta_kl);
    return 0;
}

/* Groups: ids in range, none empty, rewards finite. */
static int check_groups(const lm_rl_sample *s, int64_t n, int64_t n_groups, int64_t *count, lm_error *err) {
    if (n < 1) return lm_fail(err, "no samples in the RL batch");
    if (n_groups < 1 || n_groups > n)
        return lm_fail(err, "%lld groups for %lld samples: need 1..%lld", (long long)n_groups, (long long)n,
                       (long long)n);
    memset(count, 0, (size_t)n_groups * sizeof *count);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(s[i].reward))
            return lm_fail(err, "sample %lld: reward is %g; rewards must be finite numbers", (long long)i,
                           s[i].reward);
        if (s[i].group < 0 || s[i].group >= n_groups)
            return lm_fail(err, "sample %lld: group %lld is outside 0..%lld", (long long)i, (long long)s[i].group,
                           (long long)n_groups - 1);
        count[s[i].group]++;
    }
    for (int64_t g = 0; g < n_groups; g++)
        if (!count[g]) return lm_fail(err, "group %lld has no samples", (long long)g);
    return 0;
}

int lm_rl_advantages(const lm_rl_opts *o, const lm_rl_sample *s, int64_t n, int64_t n_groups, double *adv,
                     lm_error *err) {
    if (lm_rl_opts_check(o, err)) return -1;
    int64_t *count = malloc((size_t)(n_groups > 0 ? n_groups : 1) * sizeof *count);
    double *mean = calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof *mean);
    double *var = calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof *var);
    int rc = -1;
    if (!count || !mean || !var) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (check_groups(s, n, n_groups, count, err)) goto done;
    /* Sums in sample order: the same bits for the same batch. */
    for (int64_t i = 0; i < n; i++) mean[s[i].group] += s[i].reward;
    for (int64_t g = 0; g < n_groups; g++) mean[g] /= (double)count[g];
    for (int64_t i = 0; i < n; i++) {
        double d = s[i].reward - mean[s[i].group];
        var[s[i].group] += d * d;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t g = s[i].group;
        double d = s[i].reward - mean[g];
        adv[i] = o->scale_std ? d / (sqrt(var[g] / (double)count[g]) + o->std_eps) : d;
    }
    rc = 0;
done:
    free(count);
    free(mean);
    free(var);
    return rc;
}

double lm_rl_token_loss(const lm_rl_opts *o, double weight, double adv, double logp, double logp_old,
                        double logp_ref, double *dloss_dlogp, int *clipped, double *ratio, double *kl) {
    double rho = lm_exp(logp - logp_old);
    double lo = 1.0 - o->clip_low, hi = 1.0 + o->clip_high;
    double rho_c = rho < lo ? lo : rho > hi ? hi : rho;
    double unclipped = rho * adv, clipped_term = rho_c * adv;
    int use_clipped = clipped_term < unclipped;
    double surrogate = use_clipped ? clipped_term : unclipped;
    double dsur = use_clipped ? 0.0 : rho * adv;
    double k3 = 0, dk3 = 0;
    if (o->beta_kl > 0) {
        double e = lm_exp(logp_ref - logp);
        k3 = e - (logp_ref - logp) - 1.0;
        dk3 = 1.0 - e;
    }
    *dloss_dlogp = weight * (-dsur + o->beta_kl * dk3);
    if (clipped) *clipped = use_clipped;
    if (ratio) *ratio = rho;
    if (kl) *kl = k3;
    return weight * (-surrogate + o->beta_kl * k3);
}

static int64_t completion_tokens(const lm_rl_sample *s) {
    int64_t c = 0;
    for (int64_t t = 0; t < s->len; t++) c += s->train[t] != 0;
    return c;
}

void lm_rl_seq_weights(const lm_rl_opts *o, const lm_rl_sample *s, int64_t n, double *w) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += completion_tokens(&s[i]);
    for (int64_t i = 0; i < n; i++)
        w[i] = o->agg == LM_RL_SEQ_MEAN     ? 1.0 / ((double)n * (double)completion_tokens(&s[i]))
               : o->agg == LM_RL_TOKEN_MEAN ? 1.0 / (double)total
                                            : 1.0 / ((double)n * o->norm_len);
}

/* ---- the trainer hook ---- */

typedef struct rl_pass {
    const lm_rl_opts *o;
    int64_t T;
    const double *weight, *adv;  /* [rows of the pass / T]: per sequence */
    const float *old, *ref;      /* [Bm*T] per row */
    double *ratio, *kl;          /* [Bm*T] out */
    uint8_t *clipped;            /* [Bm*T] out */
} rl_pass;

static double rl_hook(void *ctx, int64_t row, double logp, double *dloss_dlogp) {
    const rl_pass *c = ctx;
    int64_t b = row / c->T;
    int clipped;
    double f = lm_rl_token_loss(c->o, c->weight[b], c->adv[b], logp, c->old[row], c->ref ? c->ref[row] : 0.0,
                                dloss_dlogp, &clipped, &c->ratio[row], &c->kl[row]);
    c->clipped[row] = (uint8_t)clipped;
    return f;
}

/* Per-sample checks against the trainer; *tokens gets |o_i|. */
static int check_sample(const lm_trainer *tr, const lm_rl_opts *o, const lm_rl_sample *s, int64_t i, int64_t *tokens,
                        lm_error *err) {
    int64_t V = tr->p->cfg.vocab_size;
    if (!s->ids || !s->train || !s->logp_old)
        return lm_fail(err, "sample %lld: ids, train mask and logp_old are required", (long long)i);
    if (o->beta_kl > 0 && !s->logp_ref)
        return lm_fail(err, "sample %lld: beta_kl is %g but there are no reference log-probabilities", (long long)i,
                       o->beta_kl);
    if (s->len < 2 || s->len > tr->T + 1)
        return lm_fail(err, "sample %lld has %lld tokens; the trainer (seq %lld) takes 2..%lld", (long long)i,
                       (long long)s->len, (long long)tr->T, (long long)tr->T + 1);
    if (s->train[0])
        return lm_fail(err, "sample %lld: token 0 is marked for training but no position predicts it", (long long)i);
    int64_t cnt = 0;
    for (int64_t t = 0; t < s->len; t++) {
        if (s->ids[t] < 0 || s->ids[t] >= V)
            return lm_fail(err, "sample %lld, token %lld: id %d is outside the vocabulary (0..%lld)", (long long)i,
                           (long long)t, s->ids[t], (long long)V - 1);
        if (!s->train[t]) continue;
        cnt++;
        if (!isfinite(s->logp_old[t]))
            return lm_fail(err, "sample %lld, token %lld: logp_old is %g; it must be finite", (long long)i,
                           (long long)t, s->logp_old[t]);
        if (o->beta_kl > 0 && !isfinite(s->logp_ref[t]))
            return lm_fail(err, "sample %lld, token %lld: logp_ref is %g; it must be finite", (long long)i,
                           (long long)t, s->logp_ref[t]);
    }
    if (!cnt) return lm_fail(err, "sample %lld has no completion token (train mask all 0)", (long long)i);
    *tokens = cnt;
    return 0;
}

int lm_rl_accumulate(lm_trainer *tr, lm_pool *pool, const lm_rl_opts *o, const lm_rl_sample *s, int64_t n,
                     int64_t n_groups, lm_rl_stats *st, lm_error *err) {
    if (lm_rl_opts_check(o, err)) return -1;
    if (n < 1) return lm_fail(err, "no samples in the RL batch");
    int64_t T = tr->T, Bm = tr->Bm, R = Bm * T;
    /* One block: per sample adv, weight; per row of a pass ids, targets,
     * old, ref, ratio, kl, clipped. */
    size_t bytes = (size_t)n * (2 * sizeof(double)) + (size_t)R * (2 * sizeof(int32_t) + 2 * sizeof(float) +
                                                                  2 * sizeof(double) + 1);
    char *block = malloc(bytes);
    if (!block) return lm_fail(err, "out of memory for an RL batch of %lld samples", (long long)n);
    double *adv = (double *)block, *weight = adv + n, *ratio = weight + n, *kl = ratio + R;
    int32_t *ids = (int32_t *)(kl + R), *tgt = ids + R;
    float *old = (float *)(tgt + R), *ref = old + R;
    uint8_t *clipped = (uint8_t *)(ref + R);
    int rc = -1;
    if (lm_rl_advantages(o, s, n, n_groups, adv, err)) goto done;
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = 0;
        if (check_sample(tr, o, &s[i], i, &c, err)) goto done;
        total += c;
    }
    lm_rl_seq_weights(o, s, n, weight);
    lm_rl_stats acc = {0};
    double rsum = 0, rvar = 0;
    for (int64_t i = 0; i < n; i++) rsum += s[i].reward;
    acc.reward_mean = rsum / (double)n;
    for (int64_t i = 0; i < n; i++) rvar += (s[i].reward - acc.reward_mean) * (s[i].reward - acc.reward_mean);
    acc.reward_std = sqrt(rvar / (double)n);
    acc.samples = n;
    acc.tokens = total;
    {
        double abs_sum = 0;
        for (int64_t i = 0; i < n; i++) abs_sum += fabs(adv[i]);
        acc.adv_abs_mean = abs_sum / (double)n;
        /* a group is mixed when some reward differs from its first sample's */
        int64_t *first = malloc((size_t)n_groups * sizeof *first);
        uint8_t *mixed = calloc((size_t)n_groups, 1);
        if (!first || !mixed) {
            free(first);
            free(mixed);
            lm_fail(err, "out of memory");
            goto done;
        }
        for (int64_t g = 0; g < n_groups; g++) first[g] = -1;
        for (int64_t i = 0; i < n; i++) {
            int64_t g = s[i].group;
            if (first[g] < 0) first[g] = i;
            else if (s[i].reward != s[first[g]].reward) mixed[g] = 1;
        }
        for (int64_t g = 0; g < n_groups; g++) acc.mixed_groups += mixed[g];
        free(first);
        free(mixed);
    }
    double ratio_sum = 0, kl_sum = 0;
    int64_t nclip = 0;
    lm_train_begin(tr);
    for (int64_t i0 = 0; i0 < n; i0 += Bm) {
        int64_t m = n - i0 < Bm ? n - i0 : Bm;
        for (int64_t b = 0; b < m; b++) {
            const lm_rl_sample *x = &s[i0 + b];
            for (int64_t t = 0; t < T; t++) {
                int64_t r = b * T + t;
                int has = t + 1 < x->len && x->train[t + 1];
                ids[r] = t < x->len ? x->ids[t] : 0;
                tgt[r] = has ? x->ids[t + 1] : -1;
                old[r] = has ? x->logp_old[t + 1] : 0.0f;
                ref[r] = has && x->logp_ref ? x->logp_ref[t + 1] : 0.0f;
            }
        }
        rl_pass pass = {o, T, weight + i0, adv + i0, old, o->beta_kl > 0 ? ref : NULL, ratio, kl, clipped};
        if (lm_train_accumulate_token_loss(tr, pool, ids, tgt, m, rl_hook, &pass, n, err)) goto done;
        for (int64_t r = 0; r < m * T; r++) /* rows in order: the same sums at any thread count */
            if (tgt[r] >= 0) {
                if (!(isfinite(ratio[r]) && isfinite(kl[r]))) {
                    /* exp overflowed: logp_old or logp_ref is hundreds of nats from the policy */
                    lm_fail(err, "sample %lld, token %lld: the ratio (%g) or the KL term (%g) is not finite; "
                            "logp_old or logp_ref is far from the current policy's log-probability",
                            (long long)(i0 + r / T), (long long)(r % T + 1), ratio[r], kl[r]);
                    goto done;
                }
                ratio_sum += ratio[r];
                if (fabs(ratio[r] - 1.0) > acc.ratio_dev_max) acc.ratio_dev_max = fabs(ratio[r] - 1.0);
                kl_sum += kl[r];
                nclip += clipped[r];
            }
    }
    if (!isfinite(tr->loss_sum)) {
        lm_fail(err, "the RL loss is not finite (%g): the weights or the sampled log-probabilities overflow",
                tr->loss_sum);
        goto done;
    }
    acc.loss = tr->loss_sum;
    acc.kl = kl_sum / (double)total;
    acc.ratio_mean = ratio_sum / (double)total;
    acc.clip_frac = (double)nclip / (double)total;
    if (st) *st = acc;
    rc = 0;
done:
    free(block);
    return rc;
}

int lm_rl_step(lm_trainer *tr, lm_pool *pool, const lm_rl_opts *o, const lm_rl_sample *s, int64_t n,
               int64_t n_groups, double lr, lm_rl_stats *st, lm_error *err) {
    lm_rl_stats acc;
    if (lm_rl_accumulate(tr, pool, o, s, n, n_groups, &acc, err)) return -1;
    lm_train_apply(tr, pool, lr, &acc.train);
    if (st) *st = acc;
    return 0;
}
