/* test_init.c — random checkpoints (model/init.h): determinism at any thread
 * count, the directory loads and runs, weight statistics, BF16/FP8 are the
 * F32 draw rounded, config.json handling.
 *
 * The tiny config has dims that are not multiples of 128 (160, 136, 200) so
 * FP8 partial blocks are exercised, and an MTP layer. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/init.h"
#include "model/model.h"
#include "test.h"

static const char CFG[] =
    "{\n"
    "  \"architectures\": [\"DeepseekV3ForCausalLM\"],\n"
    "  \"model_type\": \"deepseek_v3\",\n"
    "  \"vocab_size\": 300, \"hidden_size\": 160, \"intermediate_size\": 200,\n"
    "  \"moe_intermediate_size\": 136, \"num_hidden_layers\": 2, \"first_k_dense_replace\": 1,\n"
    "  \"num_attention_heads\": 4, \"n_routed_experts\": 8, \"n_shared_experts\": 1,\n"
    "  \"num_experts_per_tok\": 2, \"n_group\": 4, \"topk_group\": 2, \"topk_method\": \"noaux_tc\",\n"
    "  \"scoring_func\": \"sigmoid\", \"norm_topk_prob\": true, \"routed_scaling_factor\": 2.5,\n"
    "  \"q_lora_rank\": 136, \"kv_lora_rank\": 144, \"qk_nope_head_dim\": 32, \"qk_rope_head_dim\": 16,\n"
    "  \"v_head_dim\": 40, \"rope_theta\": 10000, \"rms_norm_eps\": 1e-6,\n"
    "  \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 64,\n"
    "                   \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\": 1.0},\n"
    "  \"num_nextn_predict_layers\": 1, \"initializer_range\": 0.05,\n"
    "  \"tie_word_embeddings\": false, \"bos_token_id\": 0, \"eos_token_id\": 1\n"
    "}\n";

static char tmp_root[256];

static const char *dir_for(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", tmp_root, name);
    return b;
}

static int make(const char *name, lm_init_dtype dt, uint64_t seed, int threads) {
    lm_config cfg;
    lm_error err;
    if (lm_config_parse(CFG, sizeof CFG - 1, "CFG", &cfg, &err)) {
        printf("  config: %s\n", err.msg);
        return -1;
    }
    lm_init_opts o = lm_init_opts_default();
    o.dtype = dt;
    o.seed = seed;
    lm_pool *pool = threads > 1 ? lm_pool_create(threads) : NULL;
    int rc = lm_model_init_random(&cfg, CFG, sizeof CFG - 1, dir_for(name), &o, pool, &err);
    lm_pool_free(pool);
    if (rc) printf("  init %s: %s\n", name, err.msg);
    return rc;
}

static char *slurp(const char *dir, const char *file, size_t *len) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    char *t = NULL;
    lm_error err;
    if (lm_read_file(p, 1u << 30, &t, len, &err)) return NULL;
    return t;
}

static int same_file(const char *a, const char *b, const char *file) {
    size_t la, lb;
    char *x = slurp(a, file, &la), *y = slurp(b, file, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

TEST(fill_split_invariant) {
    enum { N = 1001 };
    float whole[N], parts[N];
    lm_init_fill("w", LM_INIT_NORMAL, 7, 0.5, 0, N, whole);
    /* odd starts and lengths */
    int64_t cuts[] = {0, 1, 4, 7, 500, 501, 998, N};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
        lm_init_fill("w", LM_INIT_NORMAL, 7, 0.5, cuts[i], cuts[i + 1] - cuts[i], parts + cuts[i]);
    CHECK(!memcmp(whole, parts, sizeof whole));
    /* a different name, seed: different values */
    float other[N];
    lm_init_fill("w2", LM_INIT_NORMAL, 7, 0.5, 0, N, other);
    CHECK(memcmp(whole, other, sizeof whole));
    lm_init_fill("w", LM_INIT_NORMAL, 8, 0.5, 0, N, other);
    CHECK(memcmp(whole, other, sizeof whole));
    lm_init_fill("w", LM_INIT_ONES, 7, 0.5, 0, N, other);
    CHECK(other[0] == 1.0f && other[N - 1] == 1.0f);
    lm_init_fill("w", LM_INIT_ZEROS, 7, 0.5, 3, 5, other);
    CHECK(other[0] == 0.0f && other[4] == 0.0f);
}

TEST(normal_moments) {
    /* 2^20 draws of one stream: mean 0, var 1, 4th moment 3, no value > 6.5 */
    const int64_t n = 1 << 20;
    uint64_t key = lm_init_name_key("moments");
    double s1 = 0, s2 = 0, s4 = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = lm_init_normal(3, key, (uint64_t)i);
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
        if (fabs(z) > mx) mx = fabs(z);
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    CHECK_NEAR(mean, 0, 5.0 / sqrt((double)n), 0);
    CHECK_NEAR(var, 1, 5.0 * sqrt(2.0 / n), 0);
    CHECK_NEAR(s4 / n, 3, 5.0 * sqrt(96.0 / n), 0);
    CHECK(mx < 6.5 && mx > 4);
}

TEST(deterministic_any_threads) {
    CHECK(make("f32_a", LM_INIT_F32, 11, 1) == 0);
    CHECK(make("f32_b", LM_INIT_F32, 11, 2) == 0);
    CHECK(make("f32_c", LM_INIT_F32, 12, 2) == 0);
    CHECK(same_file(dir_for("f32_a"), dir_for("f32_b"), "model.safetensors"));
    CHECK(same_file(dir_for("f32_a"), dir_for("f32_b"), "config.json"));
    CHECK(!same_file(dir_for("f32_a"), dir_for("f32_c"), "model.safetensors"));
    CHECK(make("fp8_a", LM_INIT_FP8, 11, 1) == 0);
    CHECK(make("fp8_b", LM_INIT_FP8, 11, 3) == 0);
    CHECK(same_file(dir_for("fp8_a"), dir_for("fp8_b"), "model.safetensors"));
    CHECK(make("bf16_a", LM_INIT_BF16, 11, 2) == 0);
    /* config.json verbatim for f32/bf16 */
    size_t len;
    char *t = slurp(dir_for("bf16_a"), "config.json", &len);
    CHECK(t && len == sizeof CFG - 1 && !memcmp(t, CFG, len));
    free(t);
}

/* Loads, runs a short forward, checks logits are finite and not all equal. */
static void check_runs(const char *dir) {
    lm_model *m = NULL;
    lm_error err;
    if (lm_model_load(dir, &m, &err)) {
        CHECKF(0, "load %s: %s", dir, err.msg);
        return;
    }
    lm_infer *s = lm_infer_create(m, LM_ATTN_LATENT, 16, 16, 1, &err);
    CHECKF(s != NULL, "%s", err.msg);
    if (s) {
        int32_t ids[5] = {0, 5, 299, 17, 1};
        float logits[300];
        CHECK(lm_infer_forward(s, NULL, ids, 5, logits, LM_LOGITS_LAST, &err) == 0);
        int finite = 1, varied = 0;
        for (int i = 0; i < 300; i++) {
            finite &= isfinite(logits[i]) != 0;
            varied |= logits[i] != logits[0];
        }
        CHECK(finite && varied);
        lm_infer_free(s);
    }
    lm_model_free(m);
}

TEST(loads_and_runs) {
    check_runs(dir_for("f32_a"));
    check_runs(dir_for("bf16_a"));
    check_runs(dir_for("fp8_a"));
    lm_config c;
    lm_error err;
    CHECK(lm_config_load(dir_for("fp8_a"), &c, &err) == 0 && c.fp8_block_quant == 1);
}

/* What init wrote (MTP layer and FP8 scales included) is exactly what the
 * arch table names for the config. */
TEST(arch_table_names_every_tensor) {
    const char *dirs[] = {dir_for("f32_a"), dir_for("fp8_a")};
    for (int i = 0; i < 2; i++) {
        lm_model *m;
        lm_error err;
        CHECKF(lm_model_load(dirs[i], &m, &err) == 0, "%s", err.msg);
        lm_tensor_report r;
        lm_model_tensor_report(m, &r);
        CHECKF(r.known == r.total && r.missing == 0, "%s: %lld tensors, %lld named by the table, %lld missing",
               dirs[i], (long long)r.total, (long long)r.known, (long long)r.missing);
        CHECK(m->cfg.num_nextn_predict_layers == 1);
        lm_model_free(m);
    }
}

static const lm_tensor *find(lm_tensor_set *s, const char *name) {
    const lm_tensor *t = lm_st_find(s, name);
    CHECKF(t != NULL, "missing %s", name);
    return t;
}

TEST(weight_stats_and_kinds) {
    lm_tensor_set *s = NULL;
    lm_error err;
    if (lm_st_open_dir(dir_for("f32_a"), &s, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    /* every tensor the plan lists is in the file, F32 */
    lm_config cfg;
    lm_config_parse(CFG, sizeof CFG - 1, "CFG", &cfg, &err);
    lm_init_tensor *plan;
    int64_t n;
    CHECK(lm_init_plan(&cfg, LM_INIT_F32, &plan, &n, &err) == 0);
    CHECK(lm_st_count(s) == n);
    double s1 = 0, s2 = 0, cnt = 0;
    int ok_kinds = 1;
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor *t = find(s, plan[i].name);
        if (!t) continue;
        CHECK(t->dtype == LM_DTYPE_F32 && t->numel == plan[i].numel);
        const float *f = t->data;
        if (plan[i].kind == LM_INIT_NORMAL) {
            for (int64_t k = 0; k < t->numel; k++) s1 += f[k], s2 += (double)f[k] * f[k];
            cnt += (double)t->numel;
        } else {
            float want = plan[i].kind == LM_INIT_ONES ? 1.0f : 0.0f;
            for (int64_t k = 0; k < t->numel; k++) ok_kinds &= f[k] == want;
        }
    }
    CHECK(ok_kinds);
    double mean = s1 / cnt, sd = sqrt(s2 / cnt - mean * mean);
    /* std is the config's initializer_range 0.05 */
    CHECK_NEAR(mean, 0, 5 * 0.05 / sqrt(cnt), 0);
    CHECK_NEAR(sd, 0.05, 0, 0.01);
    /* the tensors the released V3 has, with their kinds */
    const lm_tensor *b = find(s, "model.layers.1.mlp.gate.e_score_correction_bias");
    CHECK(b && b->ndim == 1 && b->shape[0] == 8);
    CHECK(find(s, "model.layers.2.eh_proj.weight") != NULL);             /* MTP */
    CHECK(find(s, "model.layers.2.shared_head.head.weight") != NULL);
    CHECK(find(s, "model.layers.1.mlp.shared_experts.down_proj.weight") != NULL);
    /* one big tensor alone: mean and std */
    const lm_tensor *e = find(s, "model.layers.1.mlp.experts.3.up_proj.weight");
    if (e) {
        const float *f = e->data;
        double a = 0, q = 0;
        for (int64_t k = 0; k < e->numel; k++) a += f[k], q += (double)f[k] * f[k];
        a /= (double)e->numel;
        CHECK_NEAR(a, 0, 5 * 0.05 / sqrt((double)e->numel), 0);
        CHECK_NEAR(sqrt(q / (double)e->numel - a * a), 0.05, 0, 0.03);
    }
    free(plan);
    lm_st_close(s);
}

/* BF16 = F32 draw rounded; FP8 dequantised within E4M3 precision of it;
 * embedding/head/norms/gate BF16 and bias F32 in the FP8 file. */
TEST(low_precision_is_the_f32_draw) {
    lm_tensor_set *f = NULL, *h = NULL, *q = NULL;
    lm_error err;
    if (lm_st_open_dir(dir_for("f32_a"), &f, &err) || lm_st_open_dir(dir_for("bf16_a"), &h, &err) ||
        lm_st_open_dir(dir_for("fp8_a"), &q, &err)) {
        CHECKF(0, "%s", err.msg);
        goto done;
    }
    int bf_exact = 1, n_fp8 = 0, fp8_ok = 1;
    double worst = 0;
    for (int64_t i = 0; i < lm_st_count(f); i++) {
        const lm_tensor *t = lm_st_tensor(f, i);
        const float *w = t->data;
        const lm_tensor *tb = lm_st_find(h, t->name), *tq = lm_st_find(q, t->name);
        if (!tb || !tq) {
            CHECKF(0, "missing %s", t->name);
            continue;
        }
        int is_bias = strstr(t->name, "e_score_correction_bias") != NULL;
        CHECK(tb->dtype == (is_bias ? LM_DTYPE_F32 : LM_DTYPE_BF16));
        for (int64_t k = 0; k < t->numel && tb->dtype == LM_DTYPE_BF16; k++) {
            uint16_t u;
            memcpy(&u, (const char *)tb->data + 2 * k, 2);
            bf_exact &= u == lm_f32_to_bf16(w[k]);
        }
        if (tq->dtype != LM_DTYPE_F8_E4M3) {
            int want_bf16 = !is_bias;
            CHECKF(tq->dtype == (want_bf16 ? LM_DTYPE_BF16 : LM_DTYPE_F32), "%s is %s", t->name,
                   lm_dtype_name(tq->dtype));
            CHECKF(!strstr(t->name, "self_attn.") || strstr(t->name, "layernorm"), "%s should be FP8", t->name);
            continue;
        }
        n_fp8++;
        char sn[256];
        snprintf(sn, sizeof sn, "%s_scale_inv", t->name);
        const lm_tensor *ts = lm_st_find(q, sn);
        int64_t R = t->shape[0], C = t->shape[1], bc = (C + 127) / 128;
        if (!ts || ts->dtype != LM_DTYPE_F32 || ts->shape[0] != (R + 127) / 128 || ts->shape[1] != bc) {
            CHECKF(0, "bad scale for %s", t->name);
            continue;
        }
        const float *sc = ts->data;
        const uint8_t *code = tq->data;
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) {
                float s = sc[(r / 128) * bc + c / 128];
                double deq = (double)lm_fp8e4m3_to_f32(code[r * C + c]) * s;
                double x = w[r * C + c], d = fabs(deq - x);
                /* half an E4M3 ulp: 2^-4 relative (normal), 2^-10 * s absolute (subnormal) */
                double tol = fabs(x) * 0x1p-4 + s * 0x1p-10 + 1e-12;
                if (d > tol) fp8_ok = 0;
                if (d / (fabs(x) + s * 0x1p-6) > worst) worst = d / (fabs(x) + s * 0x1p-6);
            }
        /* the block max hits 448 exactly */
        int hit = 0;
        for (int64_t k = 0; k < t->numel; k++) hit |= (code[k] & 0x7f) == 0x7e;
        CHECK(hit);
    }
    CHECK(bf_exact);
    CHECK(n_fp8 > 20);
    CHECKF(fp8_ok, "worst relative error %g", worst);
done:
    lm_st_close(f);
    lm_st_close(h);
    lm_st_close(q);
}

TEST(quantize_blocks) {
    /* 130 x 260: 2 x 3 blocks, one all-zero block gets scale 1 */
    enum { R = 130, C = 260 };
    static float w[R * C];
    static uint8_t codes[R * C];
    float sc[2 * 3];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) w[r * C + c] = (r < 128 && c >= 256) ? 0.0f : (float)((r * 7 + c * 3) % 17 - 8) * (1 + r / 128);
    lm_init_quantize_fp8(w, R, C, codes, sc);
    CHECK_NEAR(sc[0], 8.0 / 448.0, 0, 1e-7);
    CHECK(sc[2] == 1.0f);                /* rows 0..127, cols 256..259: zero */
    CHECK_NEAR(sc[3], 16.0 / 448.0, 0, 1e-7);
    CHECK(codes[2 * C + 256] == 0);
    for (int k = 0; k < R * C; k++) {
        float s = sc[(k / C / 128) * 3 + (k % C) / 128];
        double deq = lm_fp8e4m3_to_f32(codes[k]) * (double)s;
        if (fabs(deq - w[k]) > fabs(w[k]) * 0x1p-4 + s * 0x1p-10) {
            CHECKF(0, "element %d: %g vs %g", k, deq, w[k]);
            break;
        }
    }
}

TEST(config_text) {
    char *t = NULL;
    size_t n = 0;
    lm_error err;
    CHECK(lm_init_config_text(CFG, sizeof CFG - 1, LM_INIT_FP8, &t, &n, &err) == 0);
    lm_config c;
    CHECK(t && lm_config_parse(t, n, "fp8", &c, &err) == 0 && c.fp8_block_quant == 1 && c.hidden_size == 160);
    /* fp8 again on the rewritten text: verbatim */
    char *t2 = NULL;
    size_t n2 = 0;
    CHECK(lm_init_config_text(t, n, LM_INIT_FP8, &t2, &n2, &err) == 0 && n2 == n && !memcmp(t, t2, n));
    /* a quantization_config contradicting f32 is refused, by name */
    CHECK(lm_init_config_text(t, n, LM_INIT_F32, &t2, &n2, &err) == -1 || (free(t2), 0));
    CHECK(strstr(err.msg, "quantization_config") != NULL);
    free(t);
    free(t2);
    /* std: explicit, from the config, default */
    lm_init_opts o = lm_init_opts_default();
    double sd = 0;
    CHECK(lm_init_std(&o, CFG, sizeof CFG - 1, &sd, &err) == 0 && sd == 0.05);
    CHECK(lm_init_std(&o, "{}", 2, &sd, &err) == 0 && sd == 0.02);
    const char *bad = "{\"initializer_range\": -1}";
    CHECK(lm_init_std(&o, bad, strlen(bad), &sd, &err) == -1);
    CHECK(strstr(err.msg, "initializer_range") != NULL);
    o.std = 0.5;
    CHECK(lm_init_std(&o, CFG, sizeof CFG - 1, &sd, &err) == 0 && sd == 0.5);
    lm_init_dtype d;
    CHECK(lm_init_dtype_parse("bf16", &d) == 0 && d == LM_INIT_BF16);
    CHECK(lm_init_dtype_parse("f16", &d) == -1);
}

static void rm_tree(const char *root) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) printf("  could not remove %s\n", root);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "%s/lemma_test_init_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    RUN(fill_split_invariant);
    RUN(normal_moments);
    RUN(quantize_blocks);
    RUN(config_text);
    RUN(deterministic_any_threads);
    RUN(loads_and_runs);
    RUN(arch_table_names_every_tensor);
    RUN(weight_stats_and_kinds);
    RUN(low_precision_is_the_f32_draw);
    rm_tree(tmp_root);
    return test_report("test_init");
}
