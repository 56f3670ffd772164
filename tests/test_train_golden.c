/* test_train_golden.c — the training step against the PyTorch reference
 * (tests/golden_grad, written by tests/ref/make_grad_golden.py in float64):
 *
 *  - loss and every parameter's gradient of one batch: per tensor,
 *    max|g - g_ref| <= 1e-4 * max|g_ref| (fp32 against float64);
 *  - ten optimiser steps (schedule, clipping, AdamW, MoE bias update):
 *    each step's loss, gradient norm and expert loads;
 *  - determinism: the bytes of w, m, v and the biases after three steps at
 *    1 and at 2 threads are identical;
 *  - gradient accumulation: 4 micro-batches of 1 sequence give the gradient
 *    of one batch of 4 up to fp32 rounding;
 *  - data parallel (simulated): per-rank gradients summed in rank order
 *    equal one process's micro-batches bit for bit;
 *  - a saved checkpoint loads into the inference forward and gives the
 *    training forward's loss; block by block (model/blocks.h), the two
 *    forwards' ways of calling each shared block agree;
 *  - units: schedules (warmup + cosine, WSD with three decay shapes),
 *    AdamW against a double-precision reference (decay only on 2-D
 *    tensors, clipping scale), the MoE bias rule, random init equal to
 *    lm_model_init_random, save/read round trips. */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/blocks.h"
#include "model/init.h"
#include "model/model.h"
#include "model/route.h"
#include "test.h"
#include "train/adamw.h"
#include "train/params.h"
#include "train/schedule.h"
#include "train/step.h"
#include "train/tkernels.h"
#include "train/trainer.h"

typedef struct gcase {
    char name[64];
    json_doc *doc;
    const json_value *root;
    lm_model *model;
    int64_t B, T;
    int32_t *ids, *tgt;
    lm_train_opts opts;
    lm_schedule sched;
    int64_t steps;
} gcase;

static double jnum(const json_value *o, const char *key) {
    double d = NAN;
    json_as_double(json_get(o, key), &d);
    return d;
}

static int load_case(const char *name, gcase *gc) {
    memset(gc, 0, sizeof *gc);
    snprintf(gc->name, sizeof gc->name, "%s", name);
    char path[512];
    snprintf(path, sizeof path, "tests/golden_grad/%s/case.json", name);
    char *text;
    size_t len;
    lm_error err;
    if (lm_read_file(path, 1 << 24, &text, &len, &err)) {
        printf("  %s\n", err.msg);
        return -1;
    }
    gc->doc = json_parse(text, len, &err);
    free(text);
    if (!gc->doc) {
        printf("  %s: %s\n", path, err.msg);
        return -1;
    }
    gc->root = json_root(gc->doc);
    const json_value *ck = json_get(gc->root, "checkpoint");
    if (!ck || ck->type != JSON_STRING || lm_model_load(ck->str, &gc->model, &err)) {
        printf("  %s: %s\n", path, err.msg);
        return -1;
    }
    gc->B = (int64_t)jnum(gc->root, "B");
    gc->T = (int64_t)jnum(gc->root, "T");
    gc->ids = malloc((size_t)(gc->B * gc->T) * sizeof(int32_t));
    gc->tgt = malloc((size_t)(gc->B * gc->T) * sizeof(int32_t));
    for (int64_t b = 0; b < gc->B; b++)
        for (int64_t t = 0; t < gc->T; t++) {
            int64_t v;
            json_as_int(json_at(json_at(json_get(gc->root, "ids"), (size_t)b), (size_t)t), &v);
            gc->ids[b * gc->T + t] = (int32_t)v;
            json_as_int(json_at(json_at(json_get(gc->root, "targets"), (size_t)b), (size_t)t), &v);
            gc->tgt[b * gc->T + t] = (int32_t)v;
        }
    const json_value *tr = json_get(gc->root, "train");
    lm_train_opts o = lm_train_opts_default();
    o.batch = gc->B;
    o.seq = gc->T;
    o.micro_batch = gc->B;
    o.adamw.beta1 = jnum(tr, "beta1");
    o.adamw.beta2 = jnum(tr, "beta2");
    o.adamw.eps = jnum(tr, "eps");
    o.adamw.weight_decay = jnum(tr, "weight_decay");
    o.clip = jnum(tr, "clip");
    o.bias_gamma = jnum(tr, "bias_gamma");
    o.balance_alpha = jnum(tr, "balance_alpha");
    gc->opts = o;
    gc->steps = (int64_t)jnum(tr, "steps");
    gc->sched = (lm_schedule){LM_SCHED_COSINE, jnum(tr, "lr_max"), jnum(tr, "lr_min"), (int64_t)jnum(tr, "warmup"),
                              gc->steps, 0, LM_DECAY_LINEAR};
    return 0;
}

static void free_case(gcase *gc) {
    lm_model_free(gc->model);
    json_free(gc->doc);
    free(gc->ids);
    free(gc->tgt);
}

static lm_params *params_of(const gcase *gc) {
    lm_params *p;
    lm_error err;
    if (lm_params_create(&gc->model->cfg, &p, &err) || lm_params_load_model(p, gc->model, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    return p;
}

/* Worst per-tensor error of p's gradient against grads.safetensors. */
static double compare_grads(const gcase *gc, const lm_params *p, char *worst, size_t wlen) {
    char path[512];
    snprintf(path, sizeof path, "tests/golden_grad/%s/grads.safetensors", gc->name);
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
            printf("  %s: no F32 gradient '%s' of %lld elements\n", path, t->name, (long long)t->numel);
            max_rel = INFINITY;
            continue;
        }
        seen++;
        const float *ref = r->data, *g = p->g + t->offset;
        double mref = 0, mdiff = 0;
        for (int64_t j = 0; j < t->numel; j++) {
            float rv;
            memcpy(&rv, ref + j, sizeof rv);
            mref = fmax(mref, fabs(rv));
            mdiff = fmax(mdiff, fabs((double)g[j] - rv));
        }
        double rel = mref > 0 ? mdiff / mref : mdiff;
        if (rel > max_rel) {
            max_rel = rel;
            snprintf(worst, wlen, "%s (max|g| %.3g)", t->name, mref);
        }
    }
    if (seen != lm_st_count(set)) {
        printf("  %s has %lld tensors, the parameters %lld trainable ones\n", path, (long long)lm_st_count(set),
               (long long)seen);
        max_rel = INFINITY;
    }
    lm_st_close(set);
    return max_rel;
}

static void golden_case(const char *name) {
    gcase gc;
    if (load_case(name, &gc)) {
        CHECK(0);
        return;
    }
    lm_params *p = params_of(&gc);
    lm_error err;
    lm_pool *pool = lm_pool_create(2);
    lm_trainer *tr = p ? lm_trainer_create(p, &gc.opts, 2, &err) : NULL;
    CHECKF(tr != NULL, "%s", err.msg);
    if (!tr) goto done;
    /* Step 0 in pieces: gradient against the golden before the update. */
    int64_t denom = 0;
    for (int64_t i = 0; i < gc.B * gc.T; i++) denom += gc.tgt[i] >= 0;
    lm_train_begin(tr);
    CHECK(lm_train_accumulate(tr, pool, gc.ids, gc.tgt, gc.B, denom, gc.B, &err) == 0);
    char worst[256] = "";
    double gerr = compare_grads(&gc, p, worst, sizeof worst);
    printf("  %-8s gradient: worst tensor max|dg|/max|g| = %.2e  %s\n", name, gerr, worst);
    CHECK(gerr <= 1e-4);
    const json_value *steps = json_get(gc.root, "steps");
    double worst_loss = 0, worst_norm = 0;
    int load_mismatch = 0;
    for (int64_t s = 0; s < gc.steps; s++) {
        lm_train_stats st;
        double lr = lm_schedule_lr(&gc.sched, s);
        if (s == 0)
            lm_train_apply(tr, pool, lr, &st);
        else
            CHECK(lm_train_step(tr, pool, gc.ids, gc.tgt, lr, &st, &err) == 0);
        const json_value *js = json_at(steps, (size_t)s);
        double ref_loss = jnum(js, "loss"), ref_norm = jnum(js, "grad_norm"), ref_lr = jnum(js, "lr");
        double loss = st.loss + st.balance_loss;
        if (s == 0) {
            CHECK_NEAR(st.loss, jnum(gc.root, "ce_loss"), 0, 2e-6);
            CHECK_NEAR(st.balance_loss, jnum(gc.root, "balance_loss"), 1e-9, 2e-6);
        }
        CHECK_NEAR(lr, ref_lr, 0, 1e-12);
        worst_loss = fmax(worst_loss, fabs(loss - ref_loss) / ref_loss);
        worst_norm = fmax(worst_norm, fabs(st.grad_norm - ref_norm) / ref_norm);
        const json_value *loads = json_get(js, "loads");
        for (int64_t m = 0; m < st.n_moe_layers; m++)
            for (int64_t e = 0; e < st.n_experts; e++) {
                int64_t v = -1;
                json_as_int(json_at(json_at(loads, (size_t)m), (size_t)e), &v);
                load_mismatch += v != st.expert_load[m * st.n_experts + e];
            }
    }
    double ce_sum = 0;
    int64_t cnt = 0;
    CHECK(lm_train_eval(tr, pool, gc.ids, gc.tgt, gc.B, &ce_sum, &cnt, &err) == 0);
    double final_ce = ce_sum / (double)cnt, ref_final = jnum(gc.root, "ce_after_steps");
    worst_loss = fmax(worst_loss, fabs(final_ce - ref_final) / ref_final);
    printf("  %-8s %lld steps: loss %.6f -> %.6f (ref %.6f); worst rel. error: loss %.2e, grad norm %.2e; "
           "load mismatches %d\n",
           name, (long long)gc.steps, jnum(gc.root, "loss"), final_ce, ref_final, worst_loss, worst_norm,
           load_mismatch);
    CHECK(worst_loss <= 1e-4);
    CHECK(worst_norm <= 1e-4);
    CHECK(load_mismatch == 0);
done:
    lm_trainer_free(tr);
    lm_params_free(p);
    lm_pool_free(pool);
    free_case(&gc);
}

TEST(golden_v3) { golden_case("v3"); }
TEST(golden_v3_tied) { golden_case("v3_tied"); }
TEST(golden_v2) { golden_case("v2"); }
TEST(golden_v3_balance) { golden_case("v3_bal"); }

/* Three steps from the v3 checkpoint with `threads` threads and `micro`
 * sequences per pass; returns the params. */
static lm_params *run_steps(const gcase *gc, int threads, int64_t micro, int64_t nsteps, double *loss) {
    lm_params *p = params_of(gc);
    lm_error err;
    lm_train_opts o = gc->opts;
    o.micro_batch = micro;
    lm_pool *pool = threads > 1 ? lm_pool_create(threads) : NULL;
    lm_trainer *tr = lm_trainer_create(p, &o, threads, &err);
    if (!tr) {
        printf("  %s\n", err.msg);
        lm_params_free(p);
        return NULL;
    }
    for (int64_t s = 0; s < nsteps; s++) {
        lm_train_stats st;
        if (lm_train_step(tr, pool, gc->ids, gc->tgt, lm_schedule_lr(&gc->sched, s), &st, &err)) printf("  %s\n", err.msg);
        if (loss) loss[s] = st.loss + st.balance_loss;
    }
    lm_trainer_free(tr);
    lm_pool_free(pool);
    return p;
}

TEST(determinism_threads) {
    gcase gc;
    if (load_case("v3_bal", &gc)) {
        CHECK(0);
        return;
    }
    lm_params *a = run_steps(&gc, 1, gc.B, 3, NULL), *b = run_steps(&gc, 2, gc.B, 3, NULL);
    CHECK(a && b);
    if (a && b) {
        size_t bytes = (size_t)a->n_floats * sizeof(float);
        CHECK(memcmp(a->w, b->w, bytes) == 0);
        CHECK(memcmp(a->m, b->m, bytes) == 0);
        CHECK(memcmp(a->v, b->v, bytes) == 0);
        CHECK(memcmp(a->g, b->g, bytes) == 0);
    }
    lm_params_free(a);
    lm_params_free(b);
    free_case(&gc);
}

TEST(gradient_accumulation) {
    gcase gc;
    if (load_case("v3", &gc)) {
        CHECK(0);
        return;
    }
    double la[1], lb[1];
    /* One step, then compare the gradients (left in g) and the losses. */
    lm_params *a = run_steps(&gc, 2, gc.B, 1, la), *b = run_steps(&gc, 2, 1, 1, lb);
    CHECK(a && b);
    if (a && b) {
        double md = 0, mg = 0, mw = 0;
        for (int64_t i = 0; i < a->n_floats; i++) {
            md = fmax(md, fabs((double)a->g[i] - b->g[i]));
            mg = fmax(mg, fabs(a->g[i]));
            mw = fmax(mw, fabs((double)a->w[i] - b->w[i]));
        }
        printf("  batch 4 vs 4 micro-batches of 1: max|dg| %.2e of max|g| %.2e, max|dw| after the step %.2e, "
               "loss %.9f vs %.9f\n",
               md, mg, mw, la[0], lb[0]);
        CHECK(md <= 1e-5 * mg);
        CHECK_NEAR(la[0], lb[0], 0, 1e-6);
    }
    lm_params_free(a);
    lm_params_free(b);
    free_case(&gc);
}

/* The trained weights saved as a checkpoint give, through the inference
 * forward, the loss the training forward reports. */
TEST(save_load_inference) {
    gcase gc;
    if (load_case("v3_tied", &gc)) {
        CHECK(0);
        return;
    }
    lm_params *p = run_steps(&gc, 1, gc.B, 2, NULL);
    CHECK(p != NULL);
    if (!p) {
        free_case(&gc);
        return;
    }
    char dir[] = "/tmp/lemma_train_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[600], cfgsrc[4200], cfgdst[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    lm_error err;
    CHECKF(lm_params_save(p, p->w, path, NULL, &err) == 0, "%s", err.msg);
    snprintf(cfgsrc, sizeof cfgsrc, "%s/config.json", gc.model->dir);
    snprintf(cfgdst, sizeof cfgdst, "%s/config.json", dir);
    char *text;
    size_t len;
    CHECK(lm_read_file(cfgsrc, 1 << 20, &text, &len, &err) == 0);
    CHECK(lm_write_file_atomic(cfgdst, text, len, &err) == 0);
    free(text);
    lm_model *m = NULL;
    CHECKF(lm_model_load(dir, &m, &err) == 0, "%s", err.msg);
    /* Training-forward loss of the batch. */
    lm_train_opts o = gc.opts;
    lm_trainer *tr = lm_trainer_create(p, &o, 1, &err);
    double ce = 0;
    int64_t cnt = 0;
    CHECK(tr && lm_train_eval(tr, NULL, gc.ids, gc.tgt, gc.B, &ce, &cnt, &err) == 0);
    /* Inference forward of each sequence. */
    int64_t V = m ? m->cfg.vocab_size : 1;
    float *logits = malloc((size_t)(gc.T * V) * sizeof(float));
    double ce2 = 0;
    for (int64_t b = 0; m && b < gc.B; b++) {
        lm_infer *s = lm_infer_create(m, LM_ATTN_NAIVE, gc.T, gc.T, 1, &err);
        CHECK(s && lm_infer_forward(s, NULL, gc.ids + b * gc.T, gc.T, logits, LM_LOGITS_ALL, &err) == 0);
        for (int64_t t = 0; t < gc.T; t++) {
            int32_t y = gc.tgt[b * gc.T + t];
            if (y < 0) continue;
            const float *l = logits + t * V;
            double mx = l[0], sum = 0;
            for (int64_t i = 1; i < V; i++) mx = fmax(mx, l[i]);
            for (int64_t i = 0; i < V; i++) sum += exp(l[i] - mx);
            ce2 += mx + log(sum) - l[y];
        }
        lm_infer_free(s);
    }
    printf("  training forward loss %.7f, inference forward of the saved checkpoint %.7f\n", ce / cnt, ce2 / cnt);
    CHECK_NEAR(ce2 / cnt, ce / cnt, 0, 1e-5);
    free(logits);
    lm_trainer_free(tr);
    lm_model_free(m);
    remove(path);
    remove(cfgdst);
    rmdir(dir);
    lm_params_free(p);
    free_case(&gc);
}

/* Data parallel, simulated: four "ranks" each run lm_train_begin and one
 * sequence with the global denominators; their gradients and expert loads
 * are summed in rank order (a left fold), then lm_train_apply. The result
 * is bit-identical to one process running the four sequences as four
 * micro-batches. */
static void dp_case(const char *name) {
    gcase gc;
    if (load_case(name, &gc)) {
        CHECK(0);
        return;
    }
    lm_error err;
    lm_train_opts o = gc.opts;
    o.micro_batch = 1;
    lm_params *a = params_of(&gc), *b = params_of(&gc);
    lm_trainer *ta = lm_trainer_create(a, &o, 2, &err), *tb = lm_trainer_create(b, &o, 2, &err);
    lm_pool *pool = lm_pool_create(2);
    CHECK(a && b && ta && tb);
    if (!ta || !tb) goto done;
    int64_t denom = 0, T = gc.T, nl = 0, nl2 = 0;
    for (int64_t i = 0; i < gc.B * T; i++) denom += gc.tgt[i] >= 0;
    for (int step = 0; step < 2; step++) {
        double lr = lm_schedule_lr(&gc.sched, step);
        lm_train_stats sa, sb;
        CHECK(lm_train_step(ta, pool, gc.ids, gc.tgt, lr, &sa, &err) == 0);
        float *G = calloc((size_t)b->n_floats, sizeof(float));
        int64_t *loads = lm_train_expert_loads(tb, &nl), sum_loads[64] = {0};
        double loss = 0;
        for (int64_t r = 0; r < gc.B; r++) {
            lm_train_begin(tb);
            CHECK(lm_train_accumulate(tb, pool, gc.ids + r * T, gc.tgt + r * T, 1, denom, gc.B, &err) == 0);
            for (int64_t i = 0; i < b->n_floats; i++) G[i] += b->g[i];
            for (int64_t i = 0; i < nl && i < 64; i++) sum_loads[i] += loads[i];
            loss += tb->loss_sum;
        }
        memcpy(b->g, G, (size_t)b->n_floats * sizeof(float));
        memcpy(lm_train_expert_loads(tb, &nl2), sum_loads, (size_t)nl * sizeof(int64_t));
        tb->loss_sum = loss;
        tb->tok_count = denom;
        lm_train_apply(tb, pool, lr, &sb);
        CHECK(memcmp(a->g, b->g, (size_t)a->n_floats * sizeof(float)) == 0);
        CHECK(memcmp(a->w, b->w, (size_t)a->n_floats * sizeof(float)) == 0);
        CHECK(sa.loss == sb.loss && sa.grad_norm == sb.grad_norm);
        free(G);
    }
done:
    lm_trainer_free(ta);
    lm_trainer_free(tb);
    lm_params_free(a);
    lm_params_free(b);
    lm_pool_free(pool);
    free_case(&gc);
}

TEST(data_parallel_untied) { dp_case("v3"); }
TEST(data_parallel_tied) { dp_case("v3_tied"); }

/* ---- units ---- */

TEST(schedules) {
    lm_error err;
    lm_schedule c = {LM_SCHED_COSINE, 1e-3, 1e-4, 10, 110, 0, LM_DECAY_LINEAR};
    CHECK(lm_schedule_check(&c, &err) == 0);
    CHECK_NEAR(lm_schedule_lr(&c, 0), 1e-4, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&c, 9), 1e-3, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&c, 10), 1e-3, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&c, 59), 1e-4 + 0.9e-3 * 0.5 * (1 + cos(M_PI * 49 / 99.0)), 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&c, 109), 1e-4, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&c, 500), 1e-4, 0, 1e-12);
    lm_schedule w = {LM_SCHED_WSD, 2e-3, 0, 5, 100, 21, LM_DECAY_LINEAR};
    CHECK(lm_schedule_check(&w, &err) == 0);
    CHECK_NEAR(lm_schedule_lr(&w, 2), 2e-3 * 3 / 5, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&w, 78), 2e-3, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&w, 79), 2e-3, 0, 1e-12); /* decay starts here at p = 0 */
    CHECK_NEAR(lm_schedule_lr(&w, 89), 1e-3, 0, 1e-12);
    CHECK_NEAR(lm_schedule_lr(&w, 99), 0, 1e-15, 0);
    w.decay = LM_DECAY_COSINE;
    CHECK_NEAR(lm_schedule_lr(&w, 89), 1e-3, 0, 1e-12);
    w.decay = LM_DECAY_SQRT;
    CHECK_NEAR(lm_schedule_lr(&w, 89), 2e-3 * (1 - sqrt(0.5)), 0, 1e-12);
    lm_schedule k = {LM_SCHED_CONSTANT, 5e-4, 0, 0, 10, 0, LM_DECAY_LINEAR};
    CHECK_NEAR(lm_schedule_lr(&k, 7), 5e-4, 0, 0);
    lm_schedule bad = {LM_SCHED_WSD, 1e-3, 0, 50, 100, 60, LM_DECAY_LINEAR};
    CHECK(lm_schedule_check(&bad, &err) != 0);
    bad = (lm_schedule){LM_SCHED_COSINE, 1e-3, 2e-3, 0, 10, 0, LM_DECAY_LINEAR};
    CHECK(lm_schedule_check(&bad, &err) != 0);
    lm_sched_kind kind;
    lm_decay_shape shape;
    CHECK(lm_schedule_parse_kind("wsd", &kind) == 0 && kind == LM_SCHED_WSD);
    CHECK(lm_schedule_parse_decay("sqrt", &shape) == 0 && shape == LM_DECAY_SQRT);
    CHECK(lm_schedule_parse_kind("linear", &kind) != 0);
}

static const char TINY[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":32,\"hidden_size\":8,"
    "\"intermediate_size\":12,\"moe_intermediate_size\":4,\"num_hidden_layers\":2,\"first_k_dense_replace\":1,"
    "\"num_attention_heads\":2,\"kv_lora_rank\":4,\"q_lora_rank\":6,\"qk_nope_head_dim\":4,"
    "\"qk_rope_head_dim\":2,\"v_head_dim\":3,\"n_routed_experts\":4,\"n_shared_experts\":1,"
    "\"num_experts_per_tok\":2,\"n_group\":2,\"topk_group\":1,\"topk_method\":\"noaux_tc\","
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":64,\"tie_word_embeddings\":false}";

static lm_params *tiny_params(uint64_t seed) {
    lm_config cfg;
    lm_error err;
    lm_params *p = NULL;
    if (lm_config_parse(TINY, sizeof TINY - 1, "tiny", &cfg, &err) || lm_params_create(&cfg, &p, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    lm_params_init_random(p, seed, 0.3);
    return p;
}

TEST(adamw_reference) {
    lm_params *p = tiny_params(1);
    CHECK(p != NULL);
    if (!p) return;
    lm_adamw a;
    lm_error err;
    lm_adamw_opts o = {0.9, 0.95, 1e-8, 0.1};
    CHECK(lm_adamw_init(&a, p, &o, &err) == 0);
    /* double copies of w, m, v and a made-up gradient */
    int64_t n = p->n_floats;
    double *w = malloc(sizeof(double) * n), *m = calloc((size_t)n, sizeof(double)), *v = calloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++) w[i] = p->w[i];
    float *bias = p->W.layers[1].gate_bias;
    for (int64_t i = 0; i < 4; i++) bias[i] = w[bias - p->w + i] = 0.5f;
    double worst = 0;
    for (int step = 0; step < 3; step++) {
        for (int64_t i = 0; i < n; i++) p->g[i] = (float)(0.01 * sin(0.37 * i + step));
        double norm = lm_adamw_grad_norm(&a, NULL, p), ref = 0;
        for (int64_t ti = 0; ti < p->n_tensors; ti++)
            if (p->t[ti].trainable)
                for (int64_t j = 0; j < p->t[ti].numel; j++) ref += (double)p->g[p->t[ti].offset + j] * p->g[p->t[ti].offset + j];
        CHECK_NEAR(norm, sqrt(ref), 0, 1e-12);
        double lr = 1e-2 * (step + 1), clip = lm_adamw_clip_scale(norm, 0.5 * norm);
        CHECK_NEAR(clip, 0.5 * norm / (norm + 1e-6), 0, 1e-15);
        lm_adamw_update(&a, NULL, p, lr, clip);
        int t = step + 1;
        for (int64_t ti = 0; ti < p->n_tensors; ti++) {
            const lm_ptensor *pt = &p->t[ti];
            for (int64_t j = 0; j < pt->numel; j++) {
                int64_t i = pt->offset + j;
                if (!pt->trainable) continue;
                double g = p->g[i] * clip;
                if (pt->decay) w[i] *= 1 - lr * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.95 * v[i] + 0.05 * g * g;
                w[i] -= lr / (1 - pow(0.9, t)) * m[i] / (sqrt(v[i]) / sqrt(1 - pow(0.95, t)) + 1e-8);
                worst = fmax(worst, fabs(w[i] - p->w[i]));
            }
        }
    }
    printf("  AdamW, 3 steps: max |w - w_ref(double)| = %.2e\n", worst);
    CHECK(worst < 1e-6);
    CHECK(a.step == 3);
    for (int i = 0; i < 4; i++) CHECK(bias[i] == 0.5f); /* not a gradient parameter */
    /* decay flags: 2-D trainable only */
    for (int64_t ti = 0; ti < p->n_tensors; ti++)
        CHECK(p->t[ti].decay == (p->t[ti].ndim == 2 && p->t[ti].trainable));
    CHECK(lm_adamw_clip_scale(0.5, 1.0) == 1.0 && lm_adamw_clip_scale(5, 0) == 1.0);
    lm_adamw_free(&a);
    free(w), free(m), free(v);
    lm_params_free(p);
}

TEST(moe_bias_rule) {
    lm_params *p = tiny_params(2);
    CHECK(p != NULL);
    if (!p) return;
    lm_train_opts o = lm_train_opts_default();
    o.seq = 4;
    o.bias_gamma = 0.25;
    lm_error err;
    lm_trainer *tr = lm_trainer_create(p, &o, 1, &err);
    CHECK(tr != NULL);
    if (!tr) return;
    float *bias = p->W.layers[1].gate_bias;
    lm_train_begin(tr);
    /* loads 3, 1, 2, 2: mean 2 -> down, up, unchanged, unchanged */
    tr->loads[0] = 3, tr->loads[1] = 1, tr->loads[2] = 2, tr->loads[3] = 2;
    float before[4];
    memcpy(before, bias, sizeof before);
    lm_train_stats st;
    lm_train_apply(tr, NULL, 0.0, &st);
    CHECK(bias[0] == before[0] - 0.25f && bias[1] == before[1] + 0.25f);
    CHECK(bias[2] == before[2] && bias[3] == before[3]);
    CHECK(st.n_moe_layers == 1 && st.moe_layers[0] == 1 && st.n_experts == 4 && st.expert_load[0] == 3);
    /* a real step routes every token to k experts */
    int32_t ids[4] = {1, 2, 3, 4}, tgt[4] = {2, 3, 4, -1};
    CHECK(lm_train_step(tr, NULL, ids, tgt, 1e-3, &st, &err) == 0);
    int64_t sum = 0;
    for (int e = 0; e < 4; e++) sum += st.expert_load[e];
    CHECK(sum == 4 * 2);
    CHECK(st.tokens == 3);
    /* bad input is refused */
    ids[2] = 32;
    CHECK(lm_train_step(tr, NULL, ids, tgt, 1e-3, &st, &err) != 0);
    CHECK(strstr(err.msg, "out of range") != NULL);
    ids[2] = 3;
    tgt[1] = -2;
    CHECK(lm_train_step(tr, NULL, ids, tgt, 1e-3, &st, &err) != 0);
    lm_trainer_free(tr);
    lm_params_free(p);
}

/* A small V3 (q LoRA, YaRN, MoE with a shared expert, noaux_tc) written to
 * dir (a mkdtemp template) with random weights of this seed, loaded for
 * inference (*m) and for training (*p). Non-zero when that failed. */
static const char PARITY_CFG[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":50,\"hidden_size\":16,"
    "\"intermediate_size\":24,\"moe_intermediate_size\":8,\"num_hidden_layers\":2,\"first_k_dense_replace\":1,"
    "\"num_attention_heads\":2,\"kv_lora_rank\":8,\"q_lora_rank\":10,\"qk_nope_head_dim\":6,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"n_routed_experts\":4,\"n_shared_experts\":1,"
    "\"num_experts_per_tok\":2,\"n_group\":2,\"topk_group\":1,\"topk_method\":\"noaux_tc\","
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":1024,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,"
    "\"original_max_position_embeddings\":256,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,"
    "\"mscale_all_dim\":1.0},\"tie_word_embeddings\":false}";

static int parity_model(char *dir, uint64_t seed, lm_config *cfg, lm_model **m, lm_params **p) {
    lm_error err;
    int ok = 1;
    CHECK(ok = lm_config_parse(PARITY_CFG, sizeof PARITY_CFG - 1, "cfg", cfg, &err) == 0);
    if (ok) CHECK(ok = mkdtemp(dir) != NULL);
    lm_init_opts io = lm_init_opts_default();
    io.seed = seed;
    io.std = 0.3;
    if (ok) CHECKF(ok = lm_model_init_random(cfg, PARITY_CFG, sizeof PARITY_CFG - 1, dir, &io, NULL, &err) == 0, "%s", err.msg);
    if (ok) CHECKF(ok = lm_model_load(dir, m, &err) == 0, "%s", err.msg);
    if (ok) CHECK(ok = lm_params_create(cfg, p, &err) == 0);
    if (ok) CHECK(ok = lm_params_load_model(*p, *m, &err) == 0);
    return !ok;
}

static void remove_model_dir(const char *dir) {
    char f[600];
    snprintf(f, sizeof f, "%s/config.json", dir);
    remove(f);
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    remove(f);
    rmdir(dir);
}

TEST(init_and_roundtrip) {
    lm_config cfg;
    lm_error err;
    CHECK(lm_config_parse(TINY, sizeof TINY - 1, "tiny", &cfg, &err) == 0);
    char dir[] = "/tmp/lemma_tinit_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    lm_init_opts io = lm_init_opts_default();
    io.seed = 77;
    io.std = 0.05;
    CHECKF(lm_model_init_random(&cfg, TINY, sizeof TINY - 1, dir, &io, NULL, &err) == 0, "%s", err.msg);
    lm_model *m = NULL;
    CHECKF(lm_model_load(dir, &m, &err) == 0, "%s", err.msg);
    lm_params *a = NULL, *b = NULL;
    CHECK(lm_params_create(&cfg, &a, &err) == 0 && lm_params_create(&cfg, &b, &err) == 0);
    if (!m || !a || !b) goto done;
    lm_params_init_random(a, 77, 0.05);
    CHECK(lm_params_load_model(b, m, &err) == 0);
    CHECK(memcmp(a->w, b->w, (size_t)a->n_floats * sizeof(float)) == 0);
    /* m block: save, read into v, compare */
    for (int64_t i = 0; i < a->n_floats; i++) a->m[i] = (float)i * 0.5f;
    for (int64_t ti = 0; ti < a->n_tensors; ti++) /* alignment gaps are not saved */
        for (int64_t j = a->t[ti].numel; j < ((a->t[ti].numel + 15) & ~(int64_t)15); j++) a->m[a->t[ti].offset + j] = 0;
    char path[600];
    snprintf(path, sizeof path, "%s/adam_m.safetensors", dir);
    CHECKF(lm_params_save(a, a->m, path, NULL, &err) == 0, "%s", err.msg);
    CHECKF(lm_params_read(a, a->v, path, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a->m, a->v, (size_t)a->n_floats * sizeof(float)) == 0);
    CHECK(lm_params_find(a, "model.layers.1.mlp.gate.e_score_correction_bias") != NULL);
    CHECK(lm_params_find(a, "lm_head.weight") != NULL && lm_params_find(a, "nope") == NULL);
    /* a checkpoint of another shape is refused with the tensor's name */
    lm_config c2 = cfg;
    c2.hidden_size = 16;
    lm_params *c = NULL;
    CHECK(lm_params_create(&c2, &c, &err) == 0);
    CHECK(c && lm_params_read(c, c->w, path, &err) != 0 && strstr(err.msg, "model.") != NULL);
    lm_params_free(c);
    remove(path);
done:
    lm_model_free(m);
    lm_params_free(a);
    lm_params_free(b);
    remove_model_dir(dir);
}

/* A longer sequence (T = 130: several causal attention blocks) through the
 * training forward and through the inference forward of the saved
 * weights: same loss. */
TEST(long_sequence_parity) {
    enum { T = 130 };
    lm_config cfg;
    lm_error err;
    char dir[] = "/tmp/lemma_tlong_XXXXXX";
    lm_model *m = NULL;
    lm_params *p = NULL;
    if (parity_model(dir, 5, &cfg, &m, &p)) return;
    int32_t ids[T], tgt[T];
    for (int t = 0; t < T; t++) {
        ids[t] = (int32_t)((t * 7 + 3) % 50);
        tgt[t] = t % 5 == 0 ? -1 : (int32_t)((t * 11 + 1) % 50);
    }
    lm_train_opts o = lm_train_opts_default();
    o.seq = T;
    lm_pool *pool = lm_pool_create(2);
    lm_trainer *tr = lm_trainer_create(p, &o, 2, &err);
    double ce = 0, ce2 = 0;
    int64_t cnt = 0;
    CHECK(tr && lm_train_eval(tr, pool, ids, tgt, 1, &ce, &cnt, &err) == 0);
    float *logits = malloc(sizeof(float) * T * 50);
    lm_infer *s = lm_infer_create(m, LM_ATTN_LATENT, T, T, 1, &err);
    CHECK(s && lm_infer_forward(s, NULL, ids, T, logits, LM_LOGITS_ALL, &err) == 0);
    for (int t = 0; t < T; t++) {
        if (tgt[t] < 0) continue;
        const float *l = logits + t * 50;
        double mx = l[0], sum = 0;
        for (int i = 1; i < 50; i++) mx = fmax(mx, l[i]);
        for (int i = 0; i < 50; i++) sum += exp(l[i] - mx);
        ce2 += mx + log(sum) - l[tgt[t]];
    }
    printf("  T=%d: training forward loss %.7f, inference (latent MLA) %.7f\n", T, ce / cnt, ce2 / cnt);
    CHECK_NEAR(ce2 / cnt, ce / cnt, 0, 1e-5);
    /* and a step runs (all blocks through the backward) and lowers the loss */
    lm_train_stats st;
    for (int i = 0; i < 3; i++) CHECK(lm_train_step(tr, pool, ids, tgt, 1e-2, &st, &err) == 0);
    double ce3 = 0;
    cnt = 0;
    CHECK(lm_train_eval(tr, pool, ids, tgt, 1, &ce3, &cnt, &err) == 0);
    CHECK(ce3 < ce);
    lm_infer_free(s);
    free(logits);
    lm_trainer_free(tr);
    lm_pool_free(pool);
    lm_params_free(p);
    lm_model_free(m);
    remove_model_dir(dir);
}

/* The blocks both forwards call, called the way each calls them, on one
 * checkpoint bound for inference (lm_model) and for training (lm_params). */
TEST(block_parity) {
    enum { N = 24, POS0 = 40, TC = 8 };
    lm_config cfg;
    char dir[] = "/tmp/lemma_tblock_XXXXXX";
    lm_model *m = NULL;
    lm_params *p = NULL;
    if (parity_model(dir, 9, &cfg, &m, &p)) return;
    const lm_dims *d = &m->dims;
    CHECK(memcmp(d, &p->dims, offsetof(lm_dims, eps)) == 0 && d->eps == p->dims.eps); /* not the padding */

    /* Weight views: the table binds the same shapes and (F32 file) values. */
    for (int64_t l = 0; l < d->L; l++) {
        const lm_layer *a = &m->w.layers[l], *b = &p->W.layers[l];
        const lm_mat *ma[] = {&a->wq_a, &a->wq_b, &a->wkv_a, &a->wkv_b, &a->wo, &a->w1, &a->w2, &a->w3, &a->gate, &a->sw1};
        const lm_mat *mb[] = {&b->wq_a, &b->wq_b, &b->wkv_a, &b->wkv_b, &b->wo, &b->w1, &b->w2, &b->w3, &b->gate, &b->sw1};
        CHECK(a->is_moe == b->is_moe && a->has_shared == b->has_shared);
        for (size_t i = 0; i < sizeof ma / sizeof ma[0]; i++) {
            CHECK(ma[i]->rows == mb[i]->rows && ma[i]->cols == mb[i]->cols && (!ma[i]->data) == (!mb[i]->data));
            if (ma[i]->data && ma[i]->dtype == LM_DTYPE_F32) { /* inference's may be in panels: row by row */
                float *ra = malloc((size_t)ma[i]->cols * sizeof(float)), *rb = malloc((size_t)ma[i]->cols * sizeof(float));
                int64_t differ = 0;
                for (int64_t r = 0; r < ma[i]->rows; r++) {
                    lm_mat_row(ma[i], r, ra);
                    lm_mat_row(mb[i], r, rb);
                    differ += memcmp(ra, rb, (size_t)ma[i]->cols * sizeof(float)) != 0;
                }
                CHECK(differ == 0);
                free(ra);
                free(rb);
            }
        }
        CHECK(memcmp(a->kv_norm, b->kv_norm, (size_t)d->C * sizeof(float)) == 0);
    }

    /* RoPE tables: a chunk at POS0 (inference) is rows POS0.. of the
     * sequence tables (training), bit for bit. */
    int64_t half = d->half;
    double inv_freq[8];
    lm_config_rope_inv_freq(&cfg, inv_freq);
    float cs_seq[N * 2], sn_seq[N * 2], cs_chunk[TC * 2], sn_chunk[TC * 2];
    CHECK(half == 2);
    float cs_all[(POS0 + TC) * 2], sn_all[(POS0 + TC) * 2];
    lm_rope_tables(&cfg, inv_freq, 0, POS0 + TC, cs_all, sn_all);
    lm_rope_tables(&cfg, inv_freq, POS0, TC, cs_chunk, sn_chunk);
    CHECK(memcmp(cs_chunk, cs_all + POS0 * half, sizeof cs_chunk) == 0);
    CHECK(memcmp(sn_chunk, sn_all + POS0 * half, sizeof sn_chunk) == 0);
    lm_rope_tables(&cfg, inv_freq, 0, N, cs_seq, sn_seq);

    /* Attention projection: inference (kernel norm, in place in kva) and
     * training (double norm kept apart with 1/rms), same input. */
    float xn[N * 16], qa_i[N * 10], q_i[N * 20], kva_i[N * 12];
    float qa_t[N * 10], qan_t[N * 10], qr[N], q_t[N * 20], kva_t[N * 12], cn[N * 8], cr[N], kpe[N * 4];
    for (int i = 0; i < N * 16; i++) xn[i] = (float)sin(0.37 * i + 0.1);
    CHECK(d->qd == 20 && d->kva == 12 && d->C == 8 && d->Q == 10 && d->D == 16);
    for (int64_t l = 0; l < d->L; l++) {
        lm_attn_proj pi = {.norm = lm_norm_row_kernel, .cos_t = cs_seq, .sin_t = sn_seq, .rope_period = N,
                           .qa = qa_i, .qa_n = qa_i, .q = q_i, .kva = kva_i, .c_n = kva_i, .c_stride = 12,
                           .kpe = kva_i + 8, .kpe_stride = 12};
        lm_attn_proj pt = {.norm = lm_tk_rmsnorm_fwd, .cos_t = cs_seq, .sin_t = sn_seq, .rope_period = N,
                           .qa = qa_t, .qa_n = qan_t, .q_r = qr, .q = q_t, .kva = kva_t, .c_n = cn, .c_stride = 8,
                           .c_r = cr, .kpe = kpe, .kpe_stride = 4};
        CHECK(lm_attn_project(NULL, d, &m->w.layers[l], xn, N, &pi) == 0);
        CHECK(lm_attn_project(NULL, d, &p->W.layers[l], xn, N, &pt) == 0);
        double worst_q = 0, worst_c = 0, worst_k = 0;
        for (int i = 0; i < N * 20; i++) worst_q = fmax(worst_q, fabs(q_i[i] - q_t[i]) / (1 + fabs(q_t[i])));
        for (int n = 0; n < N; n++) {
            for (int i = 0; i < 8; i++) worst_c = fmax(worst_c, fabs(kva_i[n * 12 + i] - cn[n * 8 + i]) / (1 + fabs(cn[n * 8 + i])));
            for (int i = 0; i < 4; i++) worst_k = fmax(worst_k, fabs(kva_i[n * 12 + 8 + i] - kpe[n * 4 + i]));
            /* the kept 1/rms reproduces the normalised latent */
            for (int i = 0; i < 8; i++)
                CHECK_NEAR(kva_t[n * 12 + i] * cr[n] * p->W.layers[l].kv_norm[i], cn[n * 8 + i], 0, 1e-6);
        }
        printf("  layer %lld: inference vs training projection: q %.2e, latent %.2e (relative)\n", (long long)l, worst_q, worst_c);
        CHECK(worst_q < 1e-5 && worst_c < 1e-5);
        CHECK(worst_k == 0); /* the rope key is not normalised: same matmul, same rope */
    }

    /* Expert grouping: the one counting sort against the per-expert scan
     * the inference forward used to do (same slots, same order). */
    int64_t E = d->E, k = d->k;
    float scores[N * 4], rw[N * 2];
    int32_t ridx[N * 2], eoff[5], erow[N * 2], fill[4];
    const lm_layer *moe = &m->w.layers[1];
    CHECK(moe->is_moe);
    for (int n = 0; n < N; n++) {
        for (int e = 0; e < E; e++) scores[n * E + e] = (float)cos(1.3 * n + 0.7 * e * e);
        lm_route_token(&cfg, moe->gate_bias, scores + n * E, ridx + n * k, rw + n * k);
    }
    lm_group_experts(ridx, N * k, E, eoff, erow, fill);
    for (int64_t e = 0, seen = 0; e < E; e++) {
        int64_t r = eoff[e];
        for (int64_t t = 0; t < N; t++)
            for (int64_t j = 0; j < k; j++)
                if (ridx[t * k + j] == e) {
                    CHECK(r < eoff[e + 1] && erow[r] == t * k + j);
                    r++;
                    seen++;
                }
        CHECK(r == eoff[e + 1]);
        if (e == E - 1) CHECK(seen == N * k);
    }

    /* MoE combine: routed sum onto the shared output, against double. */
    float shared[N * 16], slots[N * 2 * 16];
    for (int i = 0; i < N * 16; i++) shared[i] = (float)cos(0.11 * i);
    for (int i = 0; i < N * 2 * 16; i++) slots[i] = (float)sin(0.05 * i + 1);
    float out[N * 16];
    memcpy(out, shared, sizeof out);
    lm_moe_combine(out, slots, rw, N, k, 16);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < 16; i++) {
            double ref = shared[n * 16 + i];
            for (int j = 0; j < k; j++) ref += (double)rw[n * k + j] * slots[(n * k + j) * 16 + i];
            CHECK_NEAR(out[n * 16 + i], ref, 0, 1e-5);
        }

    lm_params_free(p);
    lm_model_free(m);
    remove_model_dir(dir);
}

int main(void) {
    RUN(golden_v3);
    RUN(golden_v3_tied);
    RUN(golden_v2);
    RUN(golden_v3_balance);
    RUN(determinism_threads);
    RUN(gradient_accumulation);
    RUN(save_load_inference);
    RUN(data_parallel_untied);
    RUN(data_parallel_tied);
    RUN(schedules);
    RUN(adamw_reference);
    RUN(moe_bias_rule);
    RUN(init_and_roundtrip);
    RUN(long_sequence_parity);
    RUN(block_parity);
    return test_report("test_train_golden");
}
