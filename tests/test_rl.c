/* test_rl.c — the policy-gradient loss (train/rl.h) and its trainer hook:
 *
 *  - against the PyTorch reference (tests/golden_rl, written by
 *    tests/ref/make_rl_golden.py in float64): "logits" cases rebuild the
 *    loss, d loss/d logp and d loss/d logits of random logits rows with the
 *    trainer's row kernels and lm_rl_token_loss (GRPO, DAPO, Dr. GRPO);
 *    "model" cases run lm_rl_accumulate on a golden checkpoint (3 passes
 *    of micro-batches) and compare the loss (1e-5 relative) and every
 *    parameter's gradient (2e-5 of max|g| per tensor);
 *  - units: advantages (GRPO, Dr. GRPO, a group of one), the four clip
 *    branches, the k3 estimator, the token term's derivative by finite
 *    differences, the three averagings;
 *  - the hook itself: with f(logp) = -logp/denom it gives
 *    lm_train_accumulate's gradient bit for bit;
 *  - purity: an RL step is a function of (weights, samples, rewards) only:
 *    the same bits at 1 and 2 threads, from two copies of the same state,
 *    and when the gradient is accumulated twice;
 *  - bad input: NaN/inf rewards, empty and out-of-range groups, sequences
 *    longer than the trainer's seq + 1, no completion tokens, missing
 *    reference log-probabilities, bad options, mixing loss kinds: a clear
 *    error and unchanged weights.
 * (Finite differences of the whole model's RL loss are in test_grad_ops.c.) */
#include <stdint.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "test.h"
#include "train/params.h"
#include "train/rl.h"
#include "train/step.h"
#include "train/tkernels.h"

/* ---- golden cases ---- */

typedef struct rcase {
    char name[64];
    json_doc *doc;
    const json_value *root;
    lm_rl_opts opts;
    int64_t n, n_groups, T, V;
    lm_rl_sample *s;
    void *store;                 /* the samples' arrays */
} rcase;

static double jnum(const json_value *o, const char *key) {
    double d = NAN;
    json_as_double(json_get(o, key), &d);
    return d;
}

static double jat(const json_value *arr, size_t i) {
    double d = NAN;
    json_as_double(json_at(arr, i), &d);
    return d;
}

static int load_rcase(const char *name, rcase *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    char path[512];
    snprintf(path, sizeof path, "tests/golden_rl/%s/case.json", name);
    char *text;
    size_t len;
    lm_error err;
    if (lm_read_file(path, 1 << 24, &text, &len, &err)) {
        printf("  %s\n", err.msg);
        return -1;
    }
    c->doc = json_parse(text, len, &err);
    free(text);
    if (!c->doc) {
        printf("  %s: %s\n", path, err.msg);
        return -1;
    }
    c->root = json_root(c->doc);
    const json_value *o = json_get(c->root, "opts"), *agg = json_get(o, "agg");
    c->opts.scale_std = (int)jnum(o, "scale_std");
    c->opts.std_eps = jnum(o, "std_eps");
    c->opts.agg = !strcmp(agg->str, "seq_mean") ? LM_RL_SEQ_MEAN : !strcmp(agg->str, "token_mean") ? LM_RL_TOKEN_MEAN
                                                                                                  : LM_RL_SEQ_SUM;
    c->opts.norm_len = jnum(o, "norm_len");
    c->opts.clip_low = jnum(o, "clip_low");
    c->opts.clip_high = jnum(o, "clip_high");
    c->opts.beta_kl = jnum(o, "beta_kl");
    c->T = (int64_t)jnum(c->root, "T");
    c->V = (int64_t)jnum(c->root, "V");
    c->n_groups = (int64_t)jnum(c->root, "n_groups");
    const json_value *ss = json_get(c->root, "samples");
    c->n = (int64_t)ss->len;
    c->s = calloc((size_t)c->n, sizeof *c->s);
    /* each sample: ids, train, old, ref of at most T + 1 tokens */
    size_t per = ((size_t)(c->T + 1) * (sizeof(int32_t) + 1 + 2 * sizeof(float)) + 7) & ~(size_t)7;
    c->store = calloc((size_t)c->n, per);
    for (int64_t i = 0; i < c->n; i++) {
        const json_value *x = json_at(ss, (size_t)i);
        lm_rl_sample *s = &c->s[i];
        char *base = (char *)c->store + (size_t)i * per;
        int32_t *ids = (int32_t *)base;
        float *old = (float *)(ids + c->T + 1), *ref = old + c->T + 1;
        uint8_t *train = (uint8_t *)(ref + c->T + 1);
        const json_value *jid = json_get(x, "ids");
        s->len = (int64_t)jid->len;
        for (int64_t t = 0; t < s->len; t++) {
            ids[t] = (int32_t)jat(jid, (size_t)t);
            train[t] = (uint8_t)jat(json_get(x, "train"), (size_t)t);
            old[t] = (float)jat(json_get(x, "logp_old"), (size_t)t);
            ref[t] = (float)jat(json_get(x, "logp_ref"), (size_t)t);
        }
        s->ids = ids;
        s->train = train;
        s->logp_old = old;
        s->logp_ref = ref;
        s->reward = jnum(x, "reward");
        s->group = (int64_t)jnum(x, "group");
    }
    return 0;
}

static void free_rcase(rcase *c) {
    json_free(c->doc);
    free(c->s);
    free(c->store);
}

/* max|a - b| / max|b| over the completion tokens of every sample. */
typedef struct relerr {
    double max_ref, max_diff;
} relerr;
static void rel_add(relerr *e, double a, double b) {
    e->max_ref = fmax(e->max_ref, fabs(b));
    e->max_diff = fmax(e->max_diff, fabs(a - b));
}
static double rel_of(const relerr *e) { return e->max_ref > 0 ? e->max_diff / e->max_ref : e->max_diff; }

static void golden_logits(const char *name) {
    rcase c;
    if (load_rcase(name, &c)) {
        CHECK(0);
        return;
    }
    lm_error err;
    double adv[64], w[64];
    CHECKF(lm_rl_advantages(&c.opts, c.s, c.n, c.n_groups, adv, &err) == 0, "%s", err.msg);
    relerr ea = {0}, elogp = {0}, edlogp = {0}, edlog = {0};
    for (int64_t i = 0; i < c.n; i++) rel_add(&ea, adv[i], jat(json_get(c.root, "adv"), (size_t)i));
    lm_rl_seq_weights(&c.opts, c.s, c.n, w);
    double loss = 0;
    float *row = malloc((size_t)c.V * sizeof(float));
    for (int64_t i = 0; i < c.n; i++) {
        const lm_rl_sample *s = &c.s[i];
        for (int64_t t = 0; t < s->len; t++) {
            if (!s->train[t]) continue;
            const json_value *lr = json_at(json_at(json_get(c.root, "logits"), (size_t)i), (size_t)t),
                             *dr = json_at(json_at(json_get(c.root, "dlogits"), (size_t)i), (size_t)t);
            for (int64_t v = 0; v < c.V; v++) row[v] = (float)jat(lr, (size_t)v);
            /* exactly the trainer's head row (tforward.c, ROW_XENT with a hook) */
            float inv;
            double logp = -lm_tk_xent_exp(row, c.V, s->ids[t], row, &inv), dl;
            loss += lm_rl_token_loss(&c.opts, w[i], adv[i], logp, s->logp_old[t], s->logp_ref[t], &dl, NULL, NULL,
                                     NULL);
            lm_tk_xent_grad(row, c.V, s->ids[t], inv, (float)-dl);
            rel_add(&elogp, logp, jat(json_at(json_get(c.root, "logp"), (size_t)i), (size_t)t));
            rel_add(&edlogp, dl, jat(json_at(json_get(c.root, "dlogp"), (size_t)i), (size_t)t));
            for (int64_t v = 0; v < c.V; v++) rel_add(&edlog, row[v], jat(dr, (size_t)v));
        }
    }
    free(row);
    double ref_loss = jnum(c.root, "loss");
    printf("  %-14s loss %+.8f (ref %+.8f); rel. errors: adv %.1e, logp %.1e, dloss/dlogp %.1e, dloss/dlogits %.1e\n",
           name, loss, ref_loss, rel_of(&ea), rel_of(&elogp), rel_of(&edlogp), rel_of(&edlog));
    CHECK(rel_of(&ea) <= 1e-12);
    CHECK(rel_of(&elogp) <= 1e-6);
    CHECK_NEAR(loss, ref_loss, 1e-7, 1e-5);
    CHECK(rel_of(&edlogp) <= 1e-5);
    CHECK(rel_of(&edlog) <= 1e-5);
    free_rcase(&c);
}

TEST(golden_grpo_logits) { golden_logits("grpo_logits"); }
TEST(golden_dapo_logits) { golden_logits("dapo_logits"); }
TEST(golden_drgrpo_logits) { golden_logits("drgrpo_logits"); }

static lm_params *params_from(const char *checkpoint) {
    lm_model *m;
    lm_params *p = NULL;
    lm_error err;
    if (lm_model_load(checkpoint, &m, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    if (lm_params_create(&m->cfg, &p, &err) || lm_params_load_model(p, m, &err)) {
        printf("  %s\n", err.msg);
        lm_params_free(p);
        p = NULL;
    }
    lm_model_free(m);
    return p;
}

/* Worst per-tensor max|g - ref| / max|ref| against a grads.safetensors. */
static double compare_grads(const char *path, const lm_params *p, char *worst, size_t wlen) {
    lm_tensor_set *set;
    lm_error err;
    if (lm_st_open_file(path, &set, &err)) {
        printf("  %s\n", err.msg);
        return INFINITY;
    }
    double max_rel = 0;
    int64_t seen = 0;
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        if (!t->trainable) continue;
        const lm_tensor *r = lm_st_find(set, t->name);
        if (!r || r->dtype != LM_DTYPE_F32 || r->numel != t->numel) {
            printf("  %s: no F32 gradient '%s'\n", path, t->name);
            max_rel = INFINITY;
            continue;
        }
        seen++;
        relerr e = {0};
        for (int64_t j = 0; j < t->numel; j++) {
            float rv;
            memcpy(&rv, (const float *)r->data + j, sizeof rv);
            rel_add(&e, p->g[t->offset + j], rv);
        }
        if (rel_of(&e) > max_rel) {
            max_rel = rel_of(&e);
            snprintf(worst, wlen, "%s (max|g| %.3g)", t->name, e.max_ref);
        }
    }
    if (seen != lm_st_count(set)) max_rel = INFINITY;
    lm_st_close(set);
    return max_rel;
}

static lm_trainer *trainer_for(lm_params *p, int64_t T, int64_t micro, int threads) {
    lm_train_opts o = lm_train_opts_default();
    o.batch = micro;
    o.seq = T;
    o.micro_batch = micro;
    lm_error err;
    lm_trainer *tr = lm_trainer_create(p, &o, threads, &err);
    if (!tr) printf("  %s\n", err.msg);
    return tr;
}

static void golden_model(const char *name) {
    rcase c;
    if (load_rcase(name, &c)) {
        CHECK(0);
        return;
    }
    const json_value *ck = json_get(c.root, "checkpoint");
    lm_params *p = params_from(ck->str);
    lm_pool *pool = lm_pool_create(2);
    /* micro-batches of 3: passes of 3, 3 and 2 samples */
    lm_trainer *tr = p ? trainer_for(p, c.T, 3, 2) : NULL;
    CHECK(tr != NULL);
    if (tr) {
        lm_error err;
        lm_rl_stats st;
        CHECKF(lm_rl_accumulate(tr, pool, &c.opts, c.s, c.n, c.n_groups, &st, &err) == 0, "%s", err.msg);
        char path[512], worst[256] = "";
        snprintf(path, sizeof path, "tests/golden_rl/%s/grads.safetensors", name);
        double gerr = compare_grads(path, p, worst, sizeof worst);
        double ref_loss = jnum(c.root, "loss");
        printf("  %-14s loss %+.8f (ref %+.8f), %lld tokens, clipped %.2f, kl %.4f; gradient: worst tensor "
               "max|dg|/max|g| = %.2e %s\n",
               name, st.loss, ref_loss, (long long)st.tokens, st.clip_frac, st.kl, gerr, worst);
        CHECK_NEAR(st.loss, ref_loss, 1e-7, 1e-5);
        CHECK(gerr <= 2e-5);
        CHECK(st.clip_frac > 0 && st.clip_frac < 1);
        /* the step's log: the groups with a reward spread (the group of one has none) and the mean |A| */
        int64_t mixed = 0;
        double abs_sum = 0, *adv = malloc((size_t)c.n * sizeof *adv);
        for (int64_t g = 0; g < c.n_groups; g++) {
            int64_t first = -1, m = 0;
            for (int64_t i = 0; i < c.n; i++)
                if (c.s[i].group == g) {
                    if (first < 0) first = i;
                    else m |= c.s[i].reward != c.s[first].reward;
                }
            mixed += m;
        }
        CHECK(adv && lm_rl_advantages(&c.opts, c.s, c.n, c.n_groups, adv, &err) == 0);
        for (int64_t i = 0; adv && i < c.n; i++) abs_sum += fabs(adv[i]);
        free(adv);
        CHECK(st.mixed_groups == mixed && mixed >= 1 && mixed < c.n_groups);
        CHECK(st.adv_abs_mean == abs_sum / (double)c.n && st.adv_abs_mean > 0);
        CHECK(st.ratio_dev_max > 0.2); /* some token is clipped: its ratio is outside [0.8, 1.2] */
    }
    lm_trainer_free(tr);
    lm_params_free(p);
    lm_pool_free(pool);
    free_rcase(&c);
}

TEST(golden_grpo_model) { golden_model("grpo_model"); }
TEST(golden_drgrpo_model) { golden_model("drgrpo_model"); }

/* ---- units ---- */

static lm_rl_sample mk(double reward, int64_t group) {
    lm_rl_sample s = {0};
    s.reward = reward;
    s.group = group;
    return s;
}

TEST(advantages) {
    lm_rl_opts o = lm_rl_opts_default();
    lm_rl_sample s[6] = {mk(1, 0), mk(0, 0), mk(0.5, 0), mk(2, 1), mk(2, 1), mk(0.25, 2)};
    double a[6];
    lm_error err;
    CHECK(lm_rl_advantages(&o, s, 6, 3, a, &err) == 0);
    double sd = sqrt(1.0 / 6); /* population std of {1, 0, 0.5} */
    CHECK_NEAR(a[0], 0.5 / (sd + 1e-4), 0, 1e-15);
    CHECK_NEAR(a[1], -0.5 / (sd + 1e-4), 0, 1e-15);
    CHECK(a[2] == 0);
    CHECK(a[3] == 0 && a[4] == 0); /* equal rewards: no signal */
    CHECK(a[5] == 0);              /* a group of one: A = 0, defined, not NaN */
    o.scale_std = 0;               /* Dr. GRPO: r - mean */
    CHECK(lm_rl_advantages(&o, s, 6, 3, a, &err) == 0);
    CHECK(a[0] == 0.5 && a[1] == -0.5 && a[2] == 0 && a[5] == 0);
}

TEST(token_loss_branches) {
    lm_rl_opts o = lm_rl_opts_default();
    o.beta_kl = 0;
    o.clip_low = 0.2;
    o.clip_high = 0.28;
    struct {
        double adv, logratio;
        int clipped;
    } cases[] = {
        {+1.0, log(1.5), 1},  /* A > 0, ratio above 1 + eps_high: clipped, no gradient */
        {+1.0, log(0.5), 0},  /* A > 0, ratio below 1 - eps_low: unclipped */
        {-1.0, log(0.5), 1},  /* A < 0, ratio below: clipped */
        {-1.0, log(1.5), 0},  /* A < 0, ratio above: unclipped (the surrogate is unbounded) */
        {+1.0, log(1.1), 0},  /* inside */
        {-2.0, log(0.9), 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double dl, rho, kl;
        int clipped;
        double logp = -1.3, old = logp - cases[i].logratio;
        double f = lm_rl_token_loss(&o, 0.5, cases[i].adv, logp, old, 0, &dl, &clipped, &rho, &kl);
        double r = exp(cases[i].logratio), rc = fmin(fmax(r, 0.8), 1.28);
        CHECK(clipped == cases[i].clipped);
        CHECK_NEAR(rho, r, 0, 1e-14);
        CHECK_NEAR(f, -0.5 * fmin(r * cases[i].adv, rc * cases[i].adv), 0, 1e-14);
        CHECK_NEAR(dl, clipped ? 0.0 : -0.5 * r * cases[i].adv, 0, 1e-14);
        CHECK(kl == 0);
    }
    /* k3: >= 0, 0 at ref = logp, derivative 1 - exp(ref - logp). */
    o.beta_kl = 0.5;
    double dl, kl;
    double f = lm_rl_token_loss(&o, 1.0, 0.0, -2.0, -2.0, -2.0, &dl, NULL, NULL, &kl);
    CHECK(f == 0 && dl == 0 && kl == 0);
    lm_rl_token_loss(&o, 1.0, 0.0, -2.0, -2.0, -1.0, &dl, NULL, NULL, &kl);
    CHECK_NEAR(kl, exp(1.0) - 1.0 - 1.0, 0, 1e-14);
    CHECK_NEAR(dl, 0.5 * (1 - exp(1.0)), 0, 1e-14);
    /* the whole term's derivative by central differences, away from the clip bounds */
    o.clip_high = 0.2;
    double logps[] = {-0.7, -1.0, -1.05, -1.6}, advs[] = {0.8, -1.3};
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 4; k++) {
            double h = 1e-6, d0, dd;
            lm_rl_token_loss(&o, 0.3, advs[a], logps[k], -1.0, -1.2, &d0, NULL, NULL, NULL);
            double fp = lm_rl_token_loss(&o, 0.3, advs[a], logps[k] + h, -1.0, -1.2, &dd, NULL, NULL, NULL);
            double fm = lm_rl_token_loss(&o, 0.3, advs[a], logps[k] - h, -1.0, -1.2, &dd, NULL, NULL, NULL);
            CHECK_NEAR(d0, (fp - fm) / (2 * h), 1e-8, 1e-6);
        }
}

TEST(averaging) {
    int32_t ids[6] = {1, 2, 3, 4, 5, 6};
    uint8_t t2[6] = {0, 0, 0, 0, 1, 1}, t4[6] = {0, 0, 1, 1, 1, 1};
    float z[6] = {0};
    lm_rl_sample s[2] = {{ids, 6, t2, z, z, 1, 0}, {ids, 6, t4, z, z, 0, 0}};
    double w[2];
    lm_rl_opts o = lm_rl_opts_default();
    lm_rl_seq_weights(&o, s, 2, w); /* GRPO: 1/(n |o_i|) */
    CHECK(w[0] == 1.0 / 4 && w[1] == 1.0 / 8);
    o.agg = LM_RL_TOKEN_MEAN; /* DAPO: 1 / sum |o| */
    lm_rl_seq_weights(&o, s, 2, w);
    CHECK(w[0] == 1.0 / 6 && w[1] == 1.0 / 6);
    o.agg = LM_RL_SEQ_SUM; /* Dr. GRPO: 1 / (n L) */
    o.norm_len = 16;
    lm_rl_seq_weights(&o, s, 2, w);
    CHECK(w[0] == 1.0 / 32 && w[1] == 1.0 / 32);
}

/* ---- purity: a function of (weights, samples, rewards) ---- */

static int same_floats(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

TEST(step_is_pure) {
    rcase c;
    if (load_rcase("grpo_model", &c)) {
        CHECK(0);
        return;
    }
    const char *ck = json_get(c.root, "checkpoint")->str;
    lm_params *p1 = params_from(ck), *p2 = params_from(ck), *p3 = params_from(ck);
    CHECK(p1 && p2 && p3);
    if (!p1 || !p2 || !p3) goto done;
    lm_pool *pool2 = lm_pool_create(2);
    lm_trainer *t1 = trainer_for(p1, c.T, 3, 1), *t2 = trainer_for(p2, c.T, 3, 2), *t3 = trainer_for(p3, c.T, 3, 2);
    lm_error err;
    lm_rl_stats s1, s2, s3;
    /* two steps each: 1 thread vs 2 threads vs 2 threads again */
    for (int k = 0; k < 2; k++) {
        CHECK(lm_rl_step(t1, NULL, &c.opts, c.s, c.n, c.n_groups, 1e-3, &s1, &err) == 0);
        CHECK(lm_rl_step(t2, pool2, &c.opts, c.s, c.n, c.n_groups, 1e-3, &s2, &err) == 0);
        CHECK(lm_rl_step(t3, pool2, &c.opts, c.s, c.n, c.n_groups, 1e-3, &s3, &err) == 0);
    }
    int64_t nf = p1->n_floats;
    CHECK(same_floats(p1->w, p2->w, nf) && same_floats(p1->m, p2->m, nf) && same_floats(p1->v, p2->v, nf));
    CHECK(same_floats(p2->w, p3->w, nf) && same_floats(p2->v, p3->v, nf));
    CHECK(memcmp(&s1.loss, &s2.loss, sizeof(double)) == 0 && memcmp(&s1.kl, &s2.kl, sizeof(double)) == 0);
    CHECK(memcmp(&s1.train.grad_norm, &s2.train.grad_norm, sizeof(double)) == 0);
    /* the step moved the weights and the loss changed */
    lm_params *p0 = params_from(ck);
    CHECK(p0 && !same_floats(p0->w, p1->w, nf));
    printf("  two steps: loss %+.6f, grad norm %.4f, clipped %.2f, ratio %.4f; 1 and 2 threads bit-identical\n",
           s1.loss, s1.train.grad_norm, s1.clip_frac, s1.ratio_mean);
    /* the gradient twice from the same state: the same bits */
    CHECK(lm_rl_accumulate(t1, NULL, &c.opts, c.s, c.n, c.n_groups, &s1, &err) == 0);
    float *g = malloc((size_t)nf * sizeof(float));
    memcpy(g, p1->g, (size_t)nf * sizeof(float));
    CHECK(lm_rl_accumulate(t1, NULL, &c.opts, c.s, c.n, c.n_groups, &s2, &err) == 0);
    CHECK(same_floats(g, p1->g, nf));
    CHECK(memcmp(&s1.loss, &s2.loss, sizeof(double)) == 0);
    /* micro-batches of 3 and of 8: the same gradient up to fp32 rounding */
    lm_trainer *t8 = trainer_for(p1, c.T, 8, 1);
    CHECK(t8 && lm_rl_accumulate(t8, NULL, &c.opts, c.s, c.n, c.n_groups, &s3, &err) == 0);
    double gmax = 0, dmax = 0;
    for (int64_t i = 0; i < nf; i++) gmax = fmax(gmax, fabs(g[i])), dmax = fmax(dmax, fabs(g[i] - p1->g[i]));
    CHECK(dmax <= 1e-5 * gmax);
    CHECK_NEAR(s3.loss, s1.loss, 1e-9, 1e-6);
    free(g);
    lm_trainer_free(t8);
    lm_trainer_free(t1);
    lm_trainer_free(t2);
    lm_trainer_free(t3);
    lm_params_free(p0);
    lm_pool_free(pool2);
done:
    lm_params_free(p1);
    lm_params_free(p2);
    lm_params_free(p3);
    free_rcase(&c);
}

/* lm_train_logprobs: the logp the hook sees; ratio 1 when logp_old is it. */
TEST(logprobs_and_ratio_one) {
    rcase c;
    if (load_rcase("grpo_model", &c)) {
        CHECK(0);
        return;
    }
    lm_params *p = params_from(json_get(c.root, "checkpoint")->str);
    lm_trainer *tr = p ? trainer_for(p, c.T, (int64_t)c.n, 1) : NULL;
    CHECK(tr != NULL);
    if (tr) {
        int64_t T = c.T, N = c.n * T;
        int32_t *ids = calloc((size_t)N, sizeof(int32_t)), *tgt = calloc((size_t)N, sizeof(int32_t));
        float *logp = calloc((size_t)N, sizeof(float)), *old = calloc((size_t)(c.n * (T + 1)), sizeof(float));
        for (int64_t i = 0; i < c.n; i++)
            for (int64_t t = 0; t < T; t++) {
                const lm_rl_sample *s = &c.s[i];
                ids[i * T + t] = t < s->len ? s->ids[t] : 0;
                tgt[i * T + t] = t + 1 < s->len && s->train[t + 1] ? s->ids[t + 1] : -1;
            }
        lm_error err;
        CHECK(lm_train_logprobs(tr, NULL, ids, tgt, c.n, logp, &err) == 0);
        relerr e = {0};
        for (int64_t i = 0; i < c.n; i++) {
            for (int64_t t = 1; t < c.s[i].len; t++) {
                if (!c.s[i].train[t]) continue;
                rel_add(&e, logp[i * T + t - 1], jat(json_at(json_get(c.root, "logp"), (size_t)i), (size_t)t));
                old[i * (T + 1) + t] = logp[i * T + t - 1];
            }
            c.s[i].logp_old = old + i * (T + 1);
        }
        printf("  logprobs vs the float64 reference: max rel. error %.1e\n", rel_of(&e));
        CHECK(rel_of(&e) <= 1e-5);
        lm_rl_stats st;
        CHECK(lm_rl_accumulate(tr, NULL, &c.opts, c.s, c.n, c.n_groups, &st, &err) == 0);
        /* logp_old holds the float rounding of the double logp: ratio 1 up to that */
        CHECK_NEAR(st.ratio_mean, 1.0, 1e-6, 0);
        CHECK(st.ratio_dev_max < 1e-5);
        printf("  on-policy ratio: max |rho - 1| = %.1e\n", st.ratio_dev_max);
        CHECK(st.clip_frac == 0);
        free(ids), free(tgt), free(logp), free(old);
    }
    lm_trainer_free(tr);
    lm_params_free(p);
    free_rcase(&c);
}

/* The hook with f(logp) = -logp / denom is the mean cross-entropy: the same
 * gradient bits as lm_train_accumulate (both scale the row by (float)(1/denom)). */
static double xent_hook(void *ctx, int64_t row, double logp, double *dloss_dlogp) {
    double denom = *(const double *)ctx;
    *dloss_dlogp = -1.0 / denom;
    return -logp / denom;
}

TEST(hook_reproduces_cross_entropy) {
    lm_params *p = params_from("tests/golden/v3_noqlora_f32");
    lm_pool *pool = lm_pool_create(2);
    lm_trainer *tr = p ? trainer_for(p, 9, 2, 2) : NULL;
    CHECK(tr != NULL);
    if (tr) {
        int32_t ids[4 * 9], tgt[4 * 9];
        int64_t denom = 0;
        for (int i = 0; i < 4 * 9; i++) {
            ids[i] = (i * 37 + 11) % 128;
            tgt[i] = i % 4 == 1 ? -1 : (i * 53 + 7) % 128;
            denom += tgt[i] >= 0;
        }
        lm_error err;
        lm_train_stats a, b;
        lm_train_begin(tr);
        for (int k = 0; k < 2; k++) CHECK(lm_train_accumulate(tr, pool, ids + 18 * k, tgt + 18 * k, 2, denom, 4, &err) == 0);
        size_t bytes = (size_t)p->n_floats * sizeof(float);
        float *g = malloc(bytes), *w = malloc(bytes);
        memcpy(g, p->g, bytes);
        memcpy(w, p->w, bytes);
        lm_train_apply(tr, NULL, 0.0, &a);
        memcpy(p->w, w, bytes); /* undo the MoE bias update */
        double d = (double)denom;
        lm_train_begin(tr);
        for (int k = 0; k < 2; k++)
            CHECK(lm_train_accumulate_token_loss(tr, pool, ids + 18 * k, tgt + 18 * k, 2, xent_hook, &d, 4, &err) == 0);
        CHECK(same_floats(g, p->g, p->n_floats));
        lm_train_apply(tr, NULL, 0.0, &b);
        CHECK_NEAR(b.loss, a.loss, 0, 1e-9); /* sum of nll/denom vs sum of nll, /denom */
        CHECK(a.tokens == b.tokens && a.tokens == denom);
        printf("  cross-entropy through the hook: gradient bit-identical, loss %.9f vs %.9f\n", b.loss, a.loss);
        free(g), free(w);
    }
    lm_trainer_free(tr);
    lm_params_free(p);
    lm_pool_free(pool);
}

/* ---- bad input ---- */

static void expect_fail(lm_trainer *tr, const lm_params *p, const float *w0, const lm_rl_opts *o, lm_rl_sample *s,
                        int64_t n, int64_t n_groups, const char *want) {
    lm_error err = {0};
    lm_rl_stats st;
    int rc = lm_rl_step(tr, NULL, o, s, n, n_groups, 1e-2, &st, &err);
    CHECKF(rc == -1 && strstr(err.msg, want) != NULL, "want '%s', got rc %d '%s'", want, rc, err.msg);
    CHECK(same_floats(w0, p->w, p->n_floats));
    CHECK(strchr(err.msg, '\n') == NULL);
}

TEST(bad_input) {
    rcase c;
    if (load_rcase("grpo_model", &c)) {
        CHECK(0);
        return;
    }
    lm_params *p = params_from(json_get(c.root, "checkpoint")->str);
    lm_trainer *tr = p ? trainer_for(p, c.T, 3, 1) : NULL;
    CHECK(tr != NULL);
    if (!tr) goto done;
    float *w0 = malloc((size_t)p->n_floats * sizeof(float));
    memcpy(w0, p->w, (size_t)p->n_floats * sizeof(float));
    lm_rl_opts o = c.opts;
    lm_rl_sample s[8];
    memcpy(s, c.s, sizeof s);
    s[2].reward = NAN;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 2: reward is nan");
    s[2].reward = INFINITY;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 2: reward is inf");
    memcpy(s, c.s, sizeof s);
    expect_fail(tr, p, w0, &o, s, 8, 4, "group 3 has no samples");
    s[7].group = 3;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7: group 3 is outside 0..2");
    s[7].group = -1;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7: group -1 is outside");
    memcpy(s, c.s, sizeof s);
    expect_fail(tr, p, w0, &o, s, 0, 1, "no samples");
    /* lengths: up to seq + 1 tokens */
    int32_t ids[64] = {0};
    uint8_t train[64] = {0};
    float z[64] = {0};
    for (int i = 0; i < 64; i++) ids[i] = 5, train[i] = i >= 2;
    lm_rl_sample longs = {ids, c.T + 2, train, z, z, 0.5, 2};
    s[7] = longs;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7 has 12 tokens; the trainer (seq 10) takes 2..11");
    s[7].len = c.T + 1; /* accepted */
    lm_error err;
    CHECKF(lm_rl_accumulate(tr, NULL, &o, s, 8, 3, NULL, &err) == 0, "%s", err.msg);
    s[7].len = 4;
    train[0] = 1;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7: token 0 is marked for training");
    memset(train, 0, sizeof train);
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7 has no completion token");
    train[3] = 1;
    z[3] = NAN;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7, token 3: logp_old is nan");
    z[3] = 0;
    ids[1] = 100000;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7, token 1: id 100000 is outside the vocabulary");
    ids[1] = 5;
    s[7].logp_ref = NULL;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7: beta_kl is 0.04 but there are no reference log-probabilities");
    o.beta_kl = 0; /* no KL: no reference needed */
    CHECKF(lm_rl_accumulate(tr, NULL, &o, s, 8, 3, NULL, &err) == 0, "%s", err.msg);
    /* an old log-probability 800 nats below the policy's: the ratio overflows */
    z[3] = -800;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7, token 3: the ratio (inf) or the KL term (0) is not finite");
    z[3] = 0;
    /* a reference 800 nats above: exp(ref - logp) overflows in k3 */
    o.beta_kl = 0.04;
    s[7].logp_ref = z;
    float zr[64] = {0};
    zr[3] = 800;
    s[7].logp_ref = zr;
    expect_fail(tr, p, w0, &o, s, 8, 3, "sample 7, token 3: the ratio");
    o.beta_kl = 0;
    /* options */
    memcpy(s, c.s, sizeof s);
    lm_rl_opts bad = c.opts;
    bad.clip_low = 1;
    expect_fail(tr, p, w0, &bad, s, 8, 3, "clip_low must be in [0, 1)");
    bad = c.opts, bad.std_eps = 0;
    expect_fail(tr, p, w0, &bad, s, 8, 3, "std_eps must be a finite number > 0");
    bad = c.opts, bad.agg = LM_RL_SEQ_SUM, bad.norm_len = 0;
    expect_fail(tr, p, w0, &bad, s, 8, 3, "norm_len must be a finite number > 0");
    bad = c.opts, bad.beta_kl = NAN;
    expect_fail(tr, p, w0, &bad, s, 8, 3, "beta_kl must be a finite number >= 0");
    bad = c.opts, bad.agg = (lm_rl_agg)7;
    expect_fail(tr, p, w0, &bad, s, 8, 3, "agg must be");
    /* one kind of loss per step */
    int32_t tid[30] = {0}, ttg[30];
    for (int i = 0; i < 30; i++) ttg[i] = i % 3 ? 4 : -1;
    CHECK(lm_rl_accumulate(tr, NULL, &o, s, 8, 3, NULL, &err) == 0);
    CHECK(lm_train_accumulate(tr, NULL, tid, ttg, 3, 20, 3, &err) == -1 && strstr(err.msg, "per-token loss"));
    free(w0);
done:
    lm_trainer_free(tr);
    lm_params_free(p);
    free_rcase(&c);
}

int main(void) {
    RUN(golden_grpo_logits);
    RUN(golden_dapo_logits);
    RUN(golden_drgrpo_logits);
    RUN(golden_grpo_model);
    RUN(golden_drgrpo_model);
    RUN(advantages);
    RUN(token_loss_branches);
    RUN(averaging);
    RUN(step_is_pure);
    RUN(logprobs_and_ratio_one);
    RUN(hook_reproduces_cross_entropy);
    RUN(bad_input);
    return test_report("test_rl");
}
