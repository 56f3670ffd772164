/* test_mtp.c — the MTP layer (model/mtp.h) against the PyTorch golden
 * (tests/golden_mtp, made by tests/ref/make_mtp_golden.py), and speculative
 * decoding (infer/speculative.h): greedy output identical to plain greedy
 * decoding token for token, the logits of every verified position
 * bit-identical to plain decoding's whether the draft was kept or not, the
 * acceptance rule's output distribution equal to the target's, and sampled
 * runs that do not depend on the thread count. */
#include <stdint.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "formats/json.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "model/mtp.h"
#include "test.h"
#include "train/params.h"
#include "train/step.h"
#include "train/trainer.h"

#define CKPT "tests/golden/v3_sharded_f32"
#define MAX_ABS 1e-4
#define MAX_REL_L2 1e-5

typedef struct mtp_golden {
    int32_t ids[64];
    int64_t T, rows, V;
    float *logits;               /* [rows, V] */
} mtp_golden;

static int load_mtp_golden(mtp_golden *g) {
    lm_error err;
    char *text, *raw;
    size_t len;
    if (lm_read_file("tests/golden_mtp/v3_sharded_f32.json", 1 << 20, &text, &len, &err)) return -1;
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    if (!doc) return -1;
    const json_value *root = json_root(doc);
    json_as_int(json_get(root, "rows"), &g->rows);
    json_as_int(json_get(root, "vocab"), &g->V);
    g->T = 0;
    for (const json_value *v = json_get(root, "ids")->child; v && g->T < 64; v = v->next) {
        int64_t x;
        json_as_int(v, &x);
        g->ids[g->T++] = (int32_t)x;
    }
    json_free(doc);
    if (lm_read_file("tests/golden_mtp/v3_sharded_f32.f32", 1 << 20, &raw, &len, &err)) return -1;
    if (g->rows != g->T - 1 || len != (size_t)(g->rows * g->V) * sizeof(float)) {
        free(raw);
        return -1;
    }
    g->logits = (float *)raw;
    return 0;
}

static void compare(const mtp_golden *g, const float *got, const char *what) {
    double max_abs = 0, num = 0, den = 0;
    for (int64_t i = 0; i < g->rows * g->V; i++) {
        double ref = g->logits[i], d = got[i] - ref;
        if (fabs(d) > max_abs || d != d) max_abs = d != d ? INFINITY : fabs(d);
        num += d * d;
        den += ref * ref;
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    CHECKF(max_abs <= MAX_ABS && rel <= MAX_REL_L2, "MTP logits %s: max|d| %.3g (<= %g), rel L2 %.3g (<= %g)", what,
           max_abs, MAX_ABS, rel, MAX_REL_L2);
}

/* MTP logits of every golden row: the main forward over the ids, then the
 * MTP block over (h_i, id_{i+1}) in `split` calls. */
static int mtp_logits(const lm_model *m, lm_mtp *mtp, lm_attn_mode mode, int nthreads, const int32_t *ids, int64_t T,
                      int64_t split, float *out) {
    lm_error err;
    int rc = -1;
    lm_pool *pool = nthreads > 1 ? lm_pool_create(nthreads) : NULL;
    const lm_model *b = lm_mtp_model(mtp);
    lm_fwd *fm = lm_fwd_create(m, mode, 64, 64, nthreads, &err), *fb = lm_fwd_create(b, mode, 64, 64, nthreads, &err);
    lm_kvcache *km = lm_kvcache_create(m, mode, 4, 32, &err), *kb = lm_kvcache_create(b, mode, 4, 32, &err);
    lm_kvseq sm = {0}, sb = {0};
    int64_t D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    float *resid = malloc((size_t)(T * D) * sizeof(float)), *x = malloc((size_t)(T * D) * sizeof(float));
    lm_batch_seg seg = {&sm, ids, T};
    if (!fm || !fb || !km || !kb || lm_batch_forward(fm, pool, km, &seg, 1, NULL, LM_LOGITS_NONE, &err)) goto done;
    memcpy(resid, lm_fwd_residual(fm), (size_t)(T * D) * sizeof(float));
    for (int64_t a = 0; a < T - 1; a += split) {
        int64_t n = T - 1 - a < split ? T - 1 - a : split;
        lm_batch_seg s2 = {&sb, NULL, n};
        if (lm_mtp_mix(mtp, pool, resid + a * D, ids + a + 1, n, x, &err) ||
            lm_batch_forward_rows(fb, pool, kb, &s2, 1, x, out + a * V, LM_LOGITS_ALL, &err))
            goto done;
    }
    rc = 0;
done:
    if (rc) printf("  %s\n", err.msg);
    if (km) lm_kvseq_release(km, &sm);
    if (kb) lm_kvseq_release(kb, &sb);
    lm_kvcache_free(km);
    lm_kvcache_free(kb);
    lm_fwd_free(fm);
    lm_fwd_free(fb);
    lm_pool_free(pool);
    free(resid);
    free(x);
    return rc;
}

TEST(mtp_golden_logits) {
    mtp_golden g;
    if (load_mtp_golden(&g)) {
        CHECKF(0, "cannot read tests/golden_mtp/v3_sharded_f32.*");
        return;
    }
    for (int packed = 0; packed < 2; packed++) {
        lm_error err;
        lm_model *m;
        lm_mtp *mtp;
        if (lm_model_load_flags(CKPT, packed ? 0 : LM_LOAD_ROWS, &m, &err) || lm_mtp_load(m, &mtp, &err)) {
            CHECKF(0, "%s", err.msg);
            break;
        }
        CHECK(!lm_mtp_shares_head(mtp) && !lm_mtp_shares_embedding(mtp)); /* the golden's copies are random */
        float *got = malloc((size_t)(g.rows * g.V) * sizeof(float)), *again = malloc((size_t)(g.rows * g.V) * 4);
        for (int mode = 0; mode < 2; mode++) {
            char what[64];
            snprintf(what, sizeof what, "%s, %s", packed ? "panels" : "rows", mode ? "latent" : "naive");
            CHECK(mtp_logits(m, mtp, (lm_attn_mode)mode, 1, g.ids, g.T, 64, got) == 0);
            compare(&g, got, what);
            /* chunked MTP prefill and 2 threads: the same bits */
            CHECK(mtp_logits(m, mtp, (lm_attn_mode)mode, 2, g.ids, g.T, 5, again) == 0);
            CHECK(!memcmp(got, again, (size_t)(g.rows * g.V) * sizeof(float)));
        }
        free(got);
        free(again);
        lm_mtp_free(mtp);
        lm_model_free(m);
    }
    free(g.logits);
}

TEST(mtp_load_refuses_without_layer) {
    lm_error err;
    lm_model *m;
    lm_mtp *mtp = NULL;
    if (lm_model_load("tests/golden/v3_f32", &m, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    CHECK(lm_mtp_load(m, &mtp, &err) == -1 && !mtp);
    CHECKF(strstr(err.msg, "num_nextn_predict_layers") && !strchr(err.msg, '\n'), "%s", err.msg);
    lm_model_free(m);
}

/* Plain greedy decoding: n tokens after the prompt, and the logits that
 * chose each. */
static int plain_greedy(const lm_model *m, lm_attn_mode mode, const int32_t *prompt, int64_t np, int64_t n,
                        int32_t *out, float *logits /* [n, V] */) {
    lm_error err;
    lm_infer *s = lm_infer_create(m, mode, 128, 64, 1, &err);
    lm_sampler *smp = lm_sampler_create(m->cfg.vocab_size);
    lm_sampling cfg = lm_sampling_default();
    int64_t V = m->cfg.vocab_size;
    int rc = lm_infer_forward(s, NULL, prompt, np, logits, LM_LOGITS_LAST, &err);
    for (int64_t i = 0; !rc && i < n; i++) {
        out[i] = lm_sample(smp, logits + i * V, &cfg, 0);
        if (i + 1 < n) rc = lm_infer_forward(s, NULL, &out[i], 1, logits + (i + 1) * V, LM_LOGITS_LAST, &err);
    }
    lm_sampler_free(smp);
    lm_infer_free(s);
    return rc;
}

static const int32_t PROMPT[] = {5, 17, 3, 99, 42, 8, 150, 77, 1, 64, 23};
enum { NPROMPT = sizeof PROMPT / sizeof PROMPT[0], NGEN = 48 };

/* Drafts chosen by hand (the plain model's own next token on even steps,
 * a wrong one on odd steps) go through verify/settle: every verified
 * position's logits equal plain decoding's bit for bit. */
TEST(spec_verify_matches_plain_bits) {
    lm_error err;
    lm_model *m;
    lm_mtp *mtp;
    if (lm_model_load(CKPT, &m, &err) || lm_mtp_load(m, &mtp, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int64_t V = m->cfg.vocab_size;
    int32_t ref[NGEN];
    float *ref_logits = malloc((size_t)(NGEN * V) * sizeof(float)), *lg = malloc((size_t)(2 * V) * sizeof(float)),
          *dl = malloc((size_t)V * sizeof(float)), *first = malloc((size_t)V * sizeof(float));
    for (int mode = 0; mode < 2; mode++) {
        CHECK(plain_greedy(m, (lm_attn_mode)mode, PROMPT, NPROMPT, NGEN, ref, ref_logits) == 0);
        lm_spec *sp = lm_spec_create(m, mtp, (lm_attn_mode)mode, 128, 1, &err);
        CHECK(sp && lm_spec_prefill(sp, NULL, PROMPT, NPROMPT, first, &err) == 0);
        CHECK(!memcmp(first, ref_logits, (size_t)V * sizeof(float)));
        int64_t i = 0, steps = 0, kept = 0, bad = 0;
        while (i + 2 < NGEN) {
            int32_t x = ref[i], good = ref[i + 1], d = steps % 2 ? (good + 1) % (int32_t)V : good;
            if (lm_spec_draft(sp, NULL, x, dl, &err) || lm_spec_verify(sp, NULL, x, d, lg, &err)) {
                CHECKF(0, "%s", err.msg);
                break;
            }
            bad += memcmp(lg, ref_logits + (i + 1) * V, (size_t)V * sizeof(float)) != 0;
            int accepted = d == good;
            if (accepted) bad += memcmp(lg + V, ref_logits + (i + 2) * V, (size_t)V * sizeof(float)) != 0;
            lm_spec_settle(sp, accepted);
            i += accepted ? 2 : 1;
            kept += accepted;
            steps++;
            CHECK(lm_spec_pos(sp) == NPROMPT + i);
        }
        CHECKF(bad == 0, "%lld verified rows differ from plain decoding", (long long)bad);
        CHECK(kept > 5 && steps - kept > 5);
        lm_spec_free(sp);
    }
    free(ref_logits);
    free(lg);
    free(dl);
    free(first);
    lm_mtp_free(mtp);
    lm_model_free(m);
}

/* The whole loop through lm_generate: greedy output with --speculative
 * equals plain greedy output, in both attention modes, at 1 and 2 threads,
 * up to the end of the context. */
TEST(spec_greedy_identical_to_plain) {
    lm_error err;
    lm_model *m;
    lm_mtp *mtp;
    if (lm_model_load(CKPT, &m, &err) || lm_mtp_load(m, &mtp, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    for (int mode = 0; mode < 2; mode++)
        for (int nt = 1; nt <= 2; nt++)
            for (int64_t ctx = 40; ctx <= 41; ctx++) { /* the last step has room for one or two */
                lm_pool *pool = nt > 1 ? lm_pool_create(nt) : NULL;
                lm_generator *plain = lm_generator_create(m, NULL, pool, ctx, (lm_attn_mode)mode, &err);
                lm_generator *spec = lm_generator_create(m, NULL, pool, ctx, (lm_attn_mode)mode, &err);
                CHECK(plain && spec && lm_generator_set_mtp(spec, mtp, &err) == 0);
                lm_gen_params p = lm_gen_params_default();
                p.max_tokens = 100;
                p.stop_at_eos = 0;
                lm_gen_result a = {0}, b = {0};
                CHECK(lm_generate(plain, PROMPT, NPROMPT, &p, NULL, NULL, &a, &err) == 0);
                CHECK(lm_generate(spec, PROMPT, NPROMPT, &p, NULL, NULL, &b, &err) == 0);
                CHECKF(a.ids.n == b.ids.n && !memcmp(a.ids.ids, b.ids.ids, a.ids.n * sizeof(int32_t)),
                       "mode %d, %d threads, ctx %lld: %zu vs %zu tokens", mode, nt, (long long)ctx, a.ids.n, b.ids.n);
                CHECK(a.finish == LM_FINISH_CONTEXT && b.finish == LM_FINISH_CONTEXT);
                lm_spec_stats st = lm_generator_spec_stats(spec);
                CHECK(st.drafted > 0 && st.accepted <= st.drafted);
                /* a shorter max_tokens cuts a two-token step */
                p.max_tokens = 7;
                lm_gen_result c = {0};
                CHECK(lm_generate(spec, PROMPT, NPROMPT, &p, NULL, NULL, &c, &err) == 0);
                CHECK(c.ids.n == 7 && !memcmp(c.ids.ids, a.ids.ids, 7 * sizeof(int32_t)));
                lm_gen_result_free(&a);
                lm_gen_result_free(&b);
                lm_gen_result_free(&c);
                lm_generator_free(plain);
                lm_generator_free(spec);
                lm_pool_free(pool);
            }
    lm_mtp_free(mtp);
    lm_model_free(m);
}

/* Sampled speculative decoding: a pure function of the seed (same ids at 1
 * and 2 threads, twice), different seeds give different runs. */
TEST(spec_sampled_deterministic) {
    lm_error err;
    lm_model *m;
    lm_mtp *mtp;
    if (lm_model_load(CKPT, &m, &err) || lm_mtp_load(m, &mtp, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    lm_gen_result r[4];
    memset(r, 0, sizeof r);
    for (int k = 0; k < 4; k++) {
        lm_pool *pool = k % 2 ? lm_pool_create(2) : NULL;
        lm_generator *g = lm_generator_create(m, NULL, pool, 128, LM_ATTN_LATENT, &err);
        CHECK(g && lm_generator_set_mtp(g, mtp, &err) == 0);
        lm_gen_params p = lm_gen_params_default();
        p.max_tokens = 40;
        p.stop_at_eos = 0;
        p.sampling.temperature = 0.8f;
        p.sampling.top_p = 0.95f;
        p.sampling.seed = k < 3 ? 11 : 12;
        CHECK(lm_generate(g, PROMPT, NPROMPT, &p, NULL, NULL, &r[k], &err) == 0);
        lm_generator_free(g);
        lm_pool_free(pool);
    }
    for (int k = 1; k < 3; k++) CHECK(r[k].ids.n == 40 && !memcmp(r[k].ids.ids, r[0].ids.ids, 40 * sizeof(int32_t)));
    CHECK(memcmp(r[3].ids.ids, r[0].ids.ids, 40 * sizeof(int32_t)) != 0);
    for (int k = 0; k < 4; k++) lm_gen_result_free(&r[k]);
    lm_mtp_free(mtp);
    lm_model_free(m);
}

/* The acceptance rule on a 5-token vocabulary: d ~ q, then resolve against
 * p; over 200000 fixed-seed trials the output frequencies match p (chi-square,
 * 4 degrees of freedom, below 25: p-value 5e-5 for a correct rule; a rule
 * that keeps d always gives q, about 1e4 here) and the acceptance rate is
 * sum min(p, q). */
static double chi2_of_rule(const double *p, const double *q, int64_t V, int64_t N, double *acc_rate,
                           int resample_from_p) {
    int64_t count[8] = {0}, acc = 0;
    for (int64_t i = 0; i < N; i++) {
        double u = lm_rng_uniform(7, LM_RNG_SAMPLING, 3 * (uint64_t)i), cum = 0;
        int32_t d = (int32_t)V - 1;
        for (int64_t j = 0; j < V; j++)
            if (u < (cum += q[j])) {
                d = (int32_t)j;
                break;
            }
        int accepted;
        int32_t r = lm_spec_resolve(p, resample_from_p ? p : q, V, d,
                                    lm_rng_uniform(7, LM_RNG_SAMPLING, 3 * (uint64_t)i + 1),
                                    lm_rng_uniform(7, LM_RNG_SAMPLING, 3 * (uint64_t)i + 2), &accepted);
        count[r]++;
        acc += accepted;
    }
    double chi2 = 0;
    for (int64_t j = 0; j < V; j++) {
        double e = (double)N * p[j];
        if (e > 0) chi2 += (count[j] - e) * (count[j] - e) / e;
        else if (count[j]) chi2 = INFINITY;
    }
    *acc_rate = (double)acc / (double)N;
    return chi2;
}

TEST(spec_rule_distribution) {
    const double p[5] = {0.40, 0.25, 0.20, 0.15, 0.00}, q[5] = {0.10, 0.50, 0.05, 0.15, 0.20};
    const int64_t N = 200000;
    double acc, min_sum = 0;
    for (int j = 0; j < 5; j++) min_sum += p[j] < q[j] ? p[j] : q[j];
    double chi2 = chi2_of_rule(p, q, 5, N, &acc, 0);
    CHECKF(chi2 < 25, "chi2 %.2f", chi2);
    CHECK_NEAR(acc, min_sum, 4 * sqrt(min_sum * (1 - min_sum) / (double)N), 0);
    /* q = p: every draft is kept */
    chi2 = chi2_of_rule(p, p, 5, N, &acc, 0);
    CHECK(chi2 < 25 && acc == 1.0);
    /* disjoint supports: never kept, the output is p */
    const double p2[5] = {0.5, 0.5, 0, 0, 0}, q2[5] = {0, 0, 0.2, 0.3, 0.5};
    chi2 = chi2_of_rule(p2, q2, 5, N, &acc, 0);
    CHECK(chi2 < 25 && acc == 0.0);
    /* the check can fail: a rule that keeps every draft gives q, not p */
    chi2 = chi2_of_rule(p, q, 5, N, &acc, 1);
    CHECKF(chi2 > 1000, "a wrong rule gave chi2 %.2f", chi2);
}

/* The trainer's MTP loss (train/mtp_loss.c) and the inference MTP path
 * (model/mtp.c) compute the same thing: random weights saved by the
 * trainer's parameter block, the MTP cross-entropy of every position both
 * ways, to fp32 tolerance. */
TEST(mtp_train_and_inference_agree) {
    static const char cfg_json[] =
        "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":53,\"hidden_size\":24,"
        "\"intermediate_size\":40,\"moe_intermediate_size\":12,\"num_hidden_layers\":2,\"first_k_dense_replace\":1,"
        "\"num_attention_heads\":2,\"kv_lora_rank\":10,\"q_lora_rank\":12,\"qk_nope_head_dim\":8,"
        "\"qk_rope_head_dim\":4,\"v_head_dim\":6,\"n_routed_experts\":4,\"n_shared_experts\":1,"
        "\"num_experts_per_tok\":2,\"n_group\":1,\"topk_group\":1,\"topk_method\":\"noaux_tc\","
        "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.0,\"rms_norm_eps\":1e-6,"
        "\"rope_theta\":10000,\"max_position_embeddings\":64,\"rope_scaling\":null,\"tie_word_embeddings\":false,"
        "\"num_nextn_predict_layers\":1}";
    lm_error err;
    lm_config cfg;
    lm_params *p = NULL;
    char dir[] = "/tmp/lemma-test-mtp-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    if (lm_config_parse(cfg_json, strlen(cfg_json), "cfg", &cfg, &err) || lm_params_create(&cfg, &p, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    lm_params_init_random(p, 3, 0.3);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(lm_write_file_atomic(path, cfg_json, strlen(cfg_json), &err) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(lm_params_save(p, p->w, path, NULL, &err) == 0);
    enum { T = 12 };
    int64_t V = cfg.vocab_size;
    int32_t ids[T], tgt[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((t * 17 + 5) % V);
    for (int t = 0; t < T; t++) tgt[t] = t + 1 < T ? ids[t + 1] : -1;
    lm_train_opts o = lm_train_opts_default();
    o.seq = T;
    o.mtp_weight = 1.0;
    lm_trainer *tr = lm_trainer_create(p, &o, 1, &err);
    CHECKF(tr != NULL, "%s", err.msg);
    lm_train_begin(tr);
    CHECK(lm_train_accumulate(tr, NULL, ids, tgt, 1, T - 1, 1, &err) == 0);
    double train_sum = tr->mtp_loss_sum;
    lm_model *m;
    lm_mtp *mtp;
    if (lm_model_load(dir, &m, &err) || lm_mtp_load(m, &mtp, &err)) {
        CHECKF(0, "%s", err.msg);
    } else {
        CHECK(lm_mtp_shares_head(mtp) && lm_mtp_shares_embedding(mtp));
        float *lg = malloc((size_t)(T * V) * sizeof(float));
        CHECK(mtp_logits(m, mtp, LM_ATTN_LATENT, 1, ids, T, 64, lg) == 0);
        double sum = 0;
        for (int t = 0; t + 2 < T; t++) { /* row t predicts ids[t + 2] */
            const float *row = lg + t * V;
            double mx = row[0], z = 0;
            for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
            for (int64_t v = 0; v < V; v++) z += exp(row[v] - mx);
            sum += mx + log(z) - row[ids[t + 2]];
        }
        printf("  MTP cross-entropy summed over %d positions: trainer %.7f, inference %.7f\n", T - 2, train_sum, sum);
        CHECK_NEAR(train_sum, sum, 0, 1e-5);
        free(lg);
        lm_mtp_free(mtp);
        lm_model_free(m);
    }
    lm_trainer_free(tr);
    lm_params_free(p);
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    rmdir(dir);
}

int main(void) {
    RUN(mtp_golden_logits);
    RUN(mtp_load_refuses_without_layer);
    RUN(spec_verify_matches_plain_bits);
    RUN(spec_greedy_identical_to_plain);
    RUN(spec_sampled_deterministic);
    RUN(spec_rule_distribution);
    RUN(mtp_train_and_inference_agree);
    return test_report("test_mtp");
}
