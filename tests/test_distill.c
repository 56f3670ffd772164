/* test_distill.c — logit distillation (train/distill.h) and the trainer's
 * row-loss hook (step.h, lm_train_accumulate_row_loss):
 *
 *  - against the PyTorch reference (tests/golden_distill/rows.json, written
 *    by tests/ref/make_distill_golden.py in float64): loss and d loss / d z
 *    of random rows, full vocabulary and top-k with the rest bucket, at
 *    several temperatures;
 *  - central differences of the row loss (full and top-k), and of the whole
 *    model's distillation loss through the trainer (forward, head hook,
 *    backward) on the largest gradient entries of every tensor;
 *  - a teacher equal to the student: loss and gradient zero;
 *  - purity: a step is the same bits at 1 and 2 threads and from a copy of
 *    the same state; micro-batches change only fp32 rounding;
 *  - bad input: a teacher of another vocabulary, a NaN teacher, bad options,
 *    a batch without targets: a clear error and unchanged weights. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "model/config.h"
#include "model/model.h"
#include "test.h"
#include "train/distill.h"
#include "train/params.h"
#include "train/step.h"

static const char *const STUDENT = "tests/golden/v3_noqlora_f32";

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

/* A teacher of the same shape: the student's weights with deterministic noise. */
static lm_params *noisy_copy(const char *checkpoint, double amount) {
    lm_params *p = params_from(checkpoint);
    if (!p) return NULL;
    uint64_t s = 12345;
    for (int64_t i = 0; i < p->n_floats; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p->w[i] += (float)(amount * ((double)(s >> 11) / 9007199254740992.0 - 0.5));
    }
    return p;
}

static double jnum(const json_value *v) {
    double d = NAN;
    json_as_double(v, &d);
    return d;
}

/* ---- the PyTorch reference ---- */

TEST(golden_rows) {
    char *text;
    size_t len;
    lm_error err;
    CHECKF(lm_read_file("tests/golden_distill/rows.json", 1 << 22, &text, &len, &err) == 0, "%s", err.msg);
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    CHECK(doc != NULL);
    if (!doc) return;
    const json_value *cases = json_get(json_root(doc), "cases");
    int ncases = 0;
    for (const json_value *c = cases ? cases->child : NULL; c; c = c->next, ncases++) {
        double tau = jnum(json_get(c, "tau")), w = jnum(json_get(c, "weight"));
        int64_t k = (int64_t)jnum(json_get(c, "top_k")), V = (int64_t)jnum(json_get(c, "vocab")),
                R = (int64_t)jnum(json_get(c, "rows"));
        float t[64], z[64], p[64], g[64];
        int32_t idx[64];
        double loss = 0, gmax = 0, gerr = 0;
        for (int64_t r = 0; r < R; r++) {
            for (int64_t j = 0; j < V; j++) {
                t[j] = (float)jnum(json_at(json_at(json_get(c, "teacher"), (size_t)r), (size_t)j));
                z[j] = (float)jnum(json_at(json_at(json_get(c, "student"), (size_t)r), (size_t)j));
            }
            double rest;
            CHECK(lm_distill_target(t, V, tau, k, idx, p, &rest) == 0);
            loss += lm_distill_row_loss(z, V, p, rest, tau, w, g);
            for (int64_t j = 0; j < V; j++) {
                double ref = jnum(json_at(json_at(json_get(c, "grad"), (size_t)r), (size_t)j));
                gmax = fmax(gmax, fabs(ref));
                gerr = fmax(gerr, fabs(g[j] - ref));
            }
        }
        double lref = jnum(json_get(c, "loss"));
        printf("  %-12s loss %.6f (torch %.6f)  max|g - torch|/max|g| %.2e\n", json_get(c, "name")->str, loss, lref,
               gerr / gmax);
        CHECK_NEAR(loss, lref, 1e-9, 1e-5);
        CHECK(gerr <= 1e-5 * gmax);
    }
    CHECK(ncases == 5);
    json_free(doc);
}

/* ---- finite differences ---- */

static double row_loss_at(const float *z, int64_t V, const float *p, double rest, double tau) {
    float g[64];
    return lm_distill_row_loss(z, V, p, rest, tau, 1.0, g);
}

TEST(row_finite_differences) {
    const int64_t V = 23;
    int64_t ks[] = {0, 4, 22};
    double taus[] = {1.0, 2.0, 0.7};
    for (int c = 0; c < 3; c++) {
        float t[23], z[23], p[23], g[23];
        int32_t idx[23];
        for (int64_t j = 0; j < V; j++) {
            t[j] = (float)(sin(1.3 * j + c) * 3);
            z[j] = (float)(cos(0.7 * j * j + c) * 2);
        }
        double rest;
        CHECK(lm_distill_target(t, V, taus[c], ks[c], idx, p, &rest) == 0);
        lm_distill_row_loss(z, V, p, rest, taus[c], 1.0, g);
        double gmax = 0, emax = 0, gsum = 0;
        for (int64_t j = 0; j < V; j++) {
            float save = z[j];
            const float h = 1.0f / 256; /* exact in fp32: z ± h is what the row sees */
            z[j] = save + h;
            double lp = row_loss_at(z, V, p, rest, taus[c]);
            z[j] = save - h;
            double lm = row_loss_at(z, V, p, rest, taus[c]);
            z[j] = save;
            gmax = fmax(gmax, fabs(g[j]));
            emax = fmax(emax, fabs(g[j] - (lp - lm) / (2 * h)));
            gsum += g[j];
        }
        printf("  top_k %2lld tau %.1f: max|g| %.3e, max|g - fd|/max|g| %.2e, rest %.4f\n", (long long)ks[c], taus[c],
               gmax, emax / gmax, rest);
        CHECK(emax <= 1e-4 * gmax);
        CHECK(fabs(gsum) <= 1e-5); /* softmax - target sums to zero */
        CHECK(ks[c] == 0 ? rest == 0 : rest > 0);
    }
}

typedef struct batch {
    int64_t B, T;
    int32_t *ids, *tgt;
} batch;

static batch make_batch(int64_t B, int64_t T, int64_t V) {
    batch b = {B, T, malloc((size_t)(B * T) * sizeof(int32_t)), malloc((size_t)(B * T) * sizeof(int32_t))};
    for (int64_t i = 0; i < B * T; i++) {
        b.ids[i] = (int32_t)((i * 37 + 11) % V);
        b.tgt[i] = (i % 5 == 3) ? -1 : (int32_t)((i * 53 + 7) % V); /* some positions not distilled */
    }
    return b;
}

static void free_batch(batch *b) {
    free(b->ids);
    free(b->tgt);
}

static lm_distiller *distiller(lm_params *s, lm_params *t, int64_t B, int64_t micro, int64_t T, double tau,
                               int64_t k, int threads) {
    lm_train_opts to = lm_train_opts_default();
    to.batch = B;
    to.micro_batch = micro;
    to.seq = T;
    to.bias_gamma = 0;
    lm_distill_opts o = {.temperature = tau, .top_k = k};
    lm_error err;
    lm_distiller *d = lm_distiller_create(&o, s, t, &to, threads, &err);
    if (!d) printf("  %s\n", err.msg);
    return d;
}

/* Dense models (routing would make the loss piecewise): the student, and a
 * wider teacher of the same vocabulary. */
#define DENSE_CFG(D)                                                                                                   \
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":37,\"hidden_size\":" #D ","                      \
    "\"intermediate_size\":20,\"moe_intermediate_size\":8,\"num_hidden_layers\":2,\"first_k_dense_replace\":2,"     \
    "\"num_attention_heads\":2,\"kv_lora_rank\":10,\"q_lora_rank\":12,\"qk_nope_head_dim\":6,"                     \
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"n_routed_experts\":6,\"n_shared_experts\":1,"                       \
    "\"num_experts_per_tok\":2,\"n_group\":3,\"topk_group\":2,\"topk_method\":\"noaux_tc\","                     \
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,\"rms_norm_eps\":1e-6,"   \
    "\"rope_theta\":10000,\"max_position_embeddings\":256,\"rope_scaling\":null,\"tie_word_embeddings\":false}"

static lm_params *dense_model(const char *json, uint64_t seed) {
    lm_config cfg;
    lm_error err;
    lm_params *p = NULL;
    if (lm_config_parse(json, strlen(json), "dense", &cfg, &err) || lm_params_create(&cfg, &p, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    lm_params_init_random(p, seed, 0.3);
    return p;
}

/* The whole model: d L / d w from the trainer against (L(w+h) - L(w-h)) / 2h
 * on the 4 largest |g| of each trainable tensor. */
static void model_fd(int64_t k, double tau) {
    lm_params *s = dense_model(DENSE_CFG(16), 1), *t = dense_model(DENSE_CFG(24), 2);
    CHECK(s && t);
    if (!s || !t) goto done;
    batch b = make_batch(3, 6, s->cfg.vocab_size);
    lm_distiller *d = distiller(s, t, 3, 3, 6, tau, k, 1);
    CHECK(d != NULL);
    lm_distill_stats st;
    lm_error err;
    CHECKF(lm_distill_accumulate(d, NULL, b.ids, b.tgt, &st, &err) == 0, "%s", err.msg);
    float *g = malloc((size_t)s->n_floats * sizeof(float));
    memcpy(g, s->g, (size_t)s->n_floats * sizeof(float));
    double worst = 0, gall = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int64_t i = 0; i < s->n_floats; i++) gall = fmax(gall, fabs(g[i]));
    for (int64_t ti = 0; ti < s->n_tensors; ti++) {
        const lm_ptensor *pt = &s->t[ti];
        if (!pt->trainable) continue;
        double tmax = 0, emax = 0;
        for (int pick = 0; pick < 4; pick++) {
            int64_t best = -1;
            for (int64_t j = 0; j < pt->numel; j++)
                if (best < 0 || fabsf(g[pt->offset + j]) > fabsf(g[pt->offset + best])) best = j;
            if (best < 0 || g[pt->offset + best] == 0) break;
            int64_t at = pt->offset + best;
            float save = s->w[at];
            const float h = 1.0f / 128;
            lm_distill_stats sp, sm;
            s->w[at] = save + h;
            lm_distill_accumulate(d, NULL, b.ids, b.tgt, &sp, &err);
            s->w[at] = save - h;
            lm_distill_accumulate(d, NULL, b.ids, b.tgt, &sm, &err);
            s->w[at] = save;
            double fd = (sp.loss - sm.loss) / (2 * h);
            tmax = fmax(tmax, fabs(g[at]));
            emax = fmax(emax, fabs(g[at] - fd));
            g[at] = 0; /* next pick: the next largest */
            checked++;
        }
        if (getenv("DISTILL_FD_VERBOSE")) printf("    %-48s max|g| %.3e  err %.3e\n", pt->name, tmax, emax);
        /* relative to the tensor's largest entry, or 1% of the model's for a
         * tensor whose gradient is nearly zero (fp32 differences are ~1e-5) */
        double rel = emax / fmax(tmax, 0.01 * gall);
        if (rel > worst) worst = rel, worst_name = pt->name;
    }
    printf("  top_k %lld tau %.1f: loss %.5f, %d entries, worst max|g - fd|/max|g| %.2e (%s)\n", (long long)k, tau,
           st.loss, checked, worst, worst_name);
    CHECK(checked > 40);
    CHECK(st.loss > 0.01);
    CHECK(worst <= 2e-3); /* fp32 forward, h = 1/128 */
    free(g);
    lm_distiller_free(d);
    free_batch(&b);
done:
    lm_params_free(s);
    lm_params_free(t);
}

TEST(model_finite_differences_full) { model_fd(0, 2.0); }
TEST(model_finite_differences_topk) { model_fd(5, 1.5); }

TEST(teacher_equal_to_student) {
    lm_params *s = params_from(STUDENT), *t = params_from(STUDENT);
    CHECK(s && t);
    if (!s || !t) goto done;
    batch b = make_batch(2, 5, s->cfg.vocab_size);
    lm_distiller *d = distiller(s, t, 2, 1, 5, 2.0, 0, 1);
    lm_distill_stats st;
    lm_error err;
    CHECKF(d && lm_distill_accumulate(d, NULL, b.ids, b.tgt, &st, &err) == 0, "%s", err.msg);
    double gmax = 0;
    for (int64_t i = 0; i < s->n_floats; i++) gmax = fmax(gmax, fabs(s->g[i]));
    printf("  loss %.3e, max|g| %.3e over %lld positions\n", st.loss, gmax, (long long)st.tokens);
    CHECK(fabs(st.loss) < 1e-6 && gmax < 1e-5);
    CHECK(st.tokens == 8); /* 10 positions, those with i % 5 == 3 have no target */
    lm_distiller_free(d);
    free_batch(&b);
done:
    lm_params_free(s);
    lm_params_free(t);
}

/* ---- purity ---- */

static int same_floats(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

TEST(step_is_pure) {
    lm_params *s1 = params_from(STUDENT), *s2 = params_from(STUDENT), *s3 = params_from(STUDENT),
              *t = noisy_copy(STUDENT, 0.3);
    CHECK(s1 && s2 && s3 && t);
    if (!s1 || !s2 || !s3 || !t) goto done;
    batch b = make_batch(4, 7, s1->cfg.vocab_size);
    lm_pool *pool2 = lm_pool_create(2);
    lm_distiller *d1 = distiller(s1, t, 4, 2, 7, 2.0, 6, 1), *d2 = distiller(s2, t, 4, 2, 7, 2.0, 6, 2),
                 *d3 = distiller(s3, t, 4, 4, 7, 2.0, 6, 2);
    CHECK(d1 && d2 && d3);
    lm_distill_stats a, c, e;
    lm_error err;
    for (int k = 0; k < 3; k++) {
        CHECKF(lm_distill_step(d1, NULL, b.ids, b.tgt, 1e-3, &a, &err) == 0, "%s", err.msg);
        CHECK(lm_distill_step(d2, pool2, b.ids, b.tgt, 1e-3, &c, &err) == 0);
        CHECK(lm_distill_step(d3, pool2, b.ids, b.tgt, 1e-3, &e, &err) == 0);
    }
    int64_t nf = s1->n_floats;
    CHECK(same_floats(s1->w, s2->w, nf) && same_floats(s1->m, s2->m, nf) && same_floats(s1->v, s2->v, nf));
    CHECK(memcmp(&a.loss, &c.loss, sizeof a.loss) == 0);
    CHECK(memcmp(&a.train.grad_norm, &c.train.grad_norm, sizeof(double)) == 0);
    /* micro-batches of 4 instead of 2: the same up to fp32 rounding */
    CHECK_NEAR(e.loss, a.loss, 1e-7, 1e-5);
    lm_params *s0 = params_from(STUDENT);
    CHECK(s0 && !same_floats(s0->w, s1->w, nf));
    printf("  three steps, top-6, tau 2: loss %.5f, grad norm %.4f; 1 and 2 threads bit-identical\n", a.loss,
           a.train.grad_norm);
    lm_params_free(s0);
    lm_distiller_free(d1);
    lm_distiller_free(d2);
    lm_distiller_free(d3);
    lm_pool_free(pool2);
    free_batch(&b);
done:
    lm_params_free(s1);
    lm_params_free(s2);
    lm_params_free(s3);
    lm_params_free(t);
}

/* ---- bad input ---- */

TEST(bad_input) {
    lm_params *s = params_from(STUDENT), *other = params_from("tests/golden/v3_f32"), *t = noisy_copy(STUDENT, 0.1);
    CHECK(s && other && t);
    if (!s || !other || !t) goto done;
    lm_train_opts to = lm_train_opts_default();
    to.batch = 2;
    to.seq = 5;
    lm_distill_opts o = lm_distill_opts_default();
    lm_error err;
    /* a teacher of another vocabulary */
    CHECK(lm_distiller_create(&o, s, other, &to, 1, &err) == NULL);
    printf("  %s\n", err.msg);
    CHECK(strstr(err.msg, "vocabulary has 256 tokens, the student's 128") != NULL);
    /* options */
    o.temperature = 0;
    CHECK(lm_distiller_create(&o, s, t, &to, 1, &err) == NULL && strstr(err.msg, "temperature"));
    o.temperature = NAN;
    CHECK(lm_distiller_create(&o, s, t, &to, 1, &err) == NULL && strstr(err.msg, "temperature"));
    o = lm_distill_opts_default();
    o.top_k = -1;
    CHECK(lm_distiller_create(&o, s, t, &to, 1, &err) == NULL && strstr(err.msg, "top_k"));
    o = lm_distill_opts_default();
    batch b = make_batch(2, 5, s->cfg.vocab_size);
    float *w0 = malloc((size_t)s->n_floats * sizeof(float));
    memcpy(w0, s->w, (size_t)s->n_floats * sizeof(float));
    lm_distiller *d = lm_distiller_create(&o, s, t, &to, 1, &err);
    CHECK(d != NULL);
    lm_distill_stats st;
    /* a NaN in the teacher: its logits are NaN everywhere downstream */
    const lm_ptensor *fn = lm_params_find(t, "model.norm.weight");
    CHECK(fn != NULL);
    if (d && fn) {
        float save = t->w[fn->offset];
        t->w[fn->offset] = NAN;
        CHECK(lm_distill_step(d, NULL, b.ids, b.tgt, 1e-3, &st, &err) == -1);
        printf("  %s\n", err.msg);
        CHECK(strstr(err.msg, "teacher's logits are not finite at sequence 0, position 0") != NULL);
        CHECK(same_floats(w0, s->w, s->n_floats));
        t->w[fn->offset] = save;
        /* a batch without targets */
        for (int64_t i = 0; i < 10; i++) b.tgt[i] = -1;
        CHECK(lm_distill_step(d, NULL, b.ids, b.tgt, 1e-3, &st, &err) == -1 && strstr(err.msg, "no position"));
        CHECK(same_floats(w0, s->w, s->n_floats));
        /* a NaN student: the loss is not finite, nothing is updated */
        b = (free_batch(&b), make_batch(2, 5, s->cfg.vocab_size));
        const lm_ptensor *sn = lm_params_find(s, "model.norm.weight");
        s->w[sn->offset] = NAN;
        memcpy(w0, s->w, (size_t)s->n_floats * sizeof(float));
        CHECK(lm_distill_step(d, NULL, b.ids, b.tgt, 1e-3, &st, &err) == -1 && strstr(err.msg, "not finite"));
        printf("  %s\n", err.msg);
        CHECK(memcmp(w0, s->w, (size_t)s->n_floats * sizeof(float)) == 0);
    }
    free(w0);
    lm_distiller_free(d);
    free_batch(&b);
done:
    lm_params_free(s);
    lm_params_free(other);
    lm_params_free(t);
}

int main(void) {
    RUN(golden_rows);
    RUN(row_finite_differences);
    RUN(model_finite_differences_full);
    RUN(model_finite_differences_topk);
    RUN(teacher_equal_to_student);
    RUN(step_is_pure);
    RUN(bad_input);
    return test_report("test_distill");
}
