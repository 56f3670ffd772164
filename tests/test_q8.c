/* test_q8.c — Q8 weights (core/dtype.h, model/quantize.h): the quantizer's
 * rules, `lemma quantize` checkpoints loaded back, and their forward equal
 * bit for bit to the forward of the same weights dequantized to F32 (w = q
 * * scale is exact, so the arithmetic is the F32 one: docs/arithmetic.md),
 * on every kernel path, both layouts, 1 and 2 threads, full forward and
 * token-by-token latent decode. The kernels themselves are in test_arith.c
 * (matmul_every_path_is_canonical and panel_layout_gives_row_major_bits
 * run I8 too). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/quantize.h"
#include "test.h"

TEST(q8_quantize_row_rules) {
    float w[70];
    int8_t q[70];
    uint16_t d[3];
    for (int i = 0; i < 70; i++) w[i] = (float)sin(i * 0.7) * (i < 32 ? 0.01f : 3.0f);
    for (int i = 64; i < 70; i++) w[i] = 0; /* a tail block of zeros: scale 0, q 0 */
    w[5] = -0.02f;                           /* the block's amax, negative */
    CHECK(lm_q8_quantize_row(w, 70, q, d) == 0);
    for (int b = 0; b < 3; b++) {
        float amax = 0;
        for (int i = 32 * b; i < 32 * b + 32 && i < 70; i++) amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
        CHECKF(d[b] == lm_f32_to_f16(amax / 127.0f), "block %d: scale %04x, expected the F16 of amax/127", b, d[b]);
        float s = lm_f16_to_f32(d[b]);
        for (int i = 32 * b; i < 32 * b + 32 && i < 70; i++)
            CHECKF(fabsf(w[i] - (float)q[i] * s) <= 0.5f * s * 1.0001f && q[i] >= -127 && q[i] <= 127,
                   "w[%d] = %g quantized to %d * %g", i, w[i], q[i], s);
    }
    CHECK(q[5] == -127 || q[5] == -126); /* the amax maps to the end of the range (F16 rounding of the scale) */
    CHECK(d[2] == 0 && q[69] == 0);
    float bad[3] = {1, NAN, 2};
    CHECK(lm_q8_quantize_row(bad, 3, q, d) == -1);
    float big[2] = {1e7f, 0};
    CHECK(lm_q8_quantize_row(big, 2, q, d) == -1);
}

/* dir_f: the Q8 checkpoint in dir_q with every I8 tensor replaced by its
 * exact F32 value q * scale (scales dropped), config.json copied. */
static int write_dequantized(const char *dir_q, const char *dir_f, lm_error *err) {
    lm_tensor_set *set;
    if (lm_st_open_dir(dir_q, &set, err)) return -1;
    int64_t n = lm_st_count(set), no = 0;
    lm_tensor_out *outs = calloc((size_t)n, sizeof *outs);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    int rc = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor *t = lm_st_tensor(set, i);
        size_t len = strlen(t->name);
        if (len > 9 && !strcmp(t->name + len - 9, "_q8_scale")) continue;
        lm_tensor_out *o = &outs[no++];
        o->name = t->name, o->dtype = t->dtype, o->ndim = t->ndim, o->data = t->data;
        memcpy(o->shape, t->shape, sizeof o->shape);
        if (t->dtype != LM_DTYPE_I8) continue;
        char sname[300];
        snprintf(sname, sizeof sname, "%s_q8_scale", t->name);
        const lm_tensor *s = lm_st_find(set, sname);
        if (!s) {
            rc = lm_fail(err, "%s: no %s", dir_q, sname);
            break;
        }
        int64_t rows = t->shape[0], cols = t->shape[1], ks = s->shape[1];
        float *f = bufs[i] = malloc((size_t)(rows * cols) * sizeof(float));
        const int8_t *qv = t->data;
        const uint8_t *sv = s->data;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                uint16_t h;
                memcpy(&h, sv + 2 * (r * ks + c / 32), 2);
                f[r * cols + c] = (float)qv[r * cols + c] * lm_f16_to_f32(h);
            }
        o->dtype = LM_DTYPE_F32, o->data = f;
    }
    char path[1200], src[1200];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/model.safetensors", dir_f);
    snprintf(src, sizeof src, "%s/config.json", dir_q);
    if (!rc) rc = lm_mkdir_p(dir_f, err) || lm_st_write(path, outs, no, NULL, err) ? -1 : 0;
    snprintf(path, sizeof path, "%s/config.json", dir_f);
    if (!rc) rc = lm_read_file(src, 1 << 20, &text, &len, err) || lm_write_file_atomic(path, text, len, err) ? -1 : 0;
    free(text);
    for (int64_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs), free(outs);
    lm_st_close(set);
    return rc;
}

static int read_ids(const char *golden_dir, int32_t *ids, int64_t *T) {
    char path[1200];
    snprintf(path, sizeof path, "%s/golden.json", golden_dir);
    char *text;
    size_t len;
    lm_error err;
    if (lm_read_file(path, 1 << 20, &text, &len, &err)) return -1;
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    if (!doc) return -1;
    int64_t i = 0;
    for (const json_value *v = json_get(json_root(doc), "ids")->child; v && i < 64; v = v->next, i++) {
        int64_t x;
        json_as_int(v, &x);
        ids[i] = (int32_t)x;
    }
    json_free(doc);
    *T = i;
    return 0;
}

/* All T logits: run 0 one chunk (naive cache), run 1 token by token (latent). */
static int logits_run(lm_model *m, const int32_t *ids, int64_t T, lm_pool *pool, int run, float *out, lm_error *err) {
    int64_t V = m->cfg.vocab_size;
    lm_infer *s = lm_infer_create(m, run ? LM_ATTN_LATENT : LM_ATTN_NAIVE, T, run ? 1 : T, 2, err);
    if (!s) return -1;
    int rc = 0;
    if (run == 0) rc = lm_infer_forward(s, pool, ids, T, out, LM_LOGITS_ALL, err);
    else
        for (int64_t t = 0; t < T && !rc; t++) rc = lm_infer_forward(s, pool, ids + t, 1, out + t * V, LM_LOGITS_ALL, err);
    lm_infer_free(s);
    return rc;
}

static const char *cases[] = {"v3_f32", "v3_fp8", "v3_bf16", "v3_tied_f32", "v3_sharded_f32", "v2lite_yarn_f32"};

TEST(q8_checkpoint_equals_dequantized_f32) {
    char tmp[] = "/tmp/lemma_test_q8_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    lm_pool *pool = lm_pool_create(2);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    int done = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char gdir[300], qdir[300], fdir[300];
        snprintf(gdir, sizeof gdir, "tests/golden/%s", cases[ci]);
        snprintf(qdir, sizeof qdir, "%s/%s_q8", tmp, cases[ci]);
        snprintf(fdir, sizeof fdir, "%s/%s_deq", tmp, cases[ci]);
        int32_t ids[64];
        int64_t T;
        if (read_ids(gdir, ids, &T)) {
            printf("  skip %s (no golden case)\n", gdir);
            continue;
        }
        lm_error err;
        lm_quantize_stats st;
        if (lm_quantize_q8(gdir, qdir, &st, &err) || write_dequantized(qdir, fdir, &err)) {
            CHECKF(0, "%s: %s", gdir, err.msg);
            continue;
        }
        CHECK(st.matrices > 0);
        CHECKF(lm_quantize_q8(gdir, qdir, &st, &err) == -1 && strstr(err.msg, "already holds a checkpoint"),
               "quantize into an existing checkpoint: %s", err.msg);
        lm_model *mf = NULL, *mq[2] = {NULL, NULL};
        if (lm_model_load(fdir, &mf, &err) || lm_model_load_flags(qdir, 0, &mq[0], &err) ||
            lm_model_load_flags(qdir, LM_LOAD_ROWS, &mq[1], &err)) {
            CHECKF(0, "%s", err.msg);
            lm_model_free(mf), lm_model_free(mq[0]), lm_model_free(mq[1]);
            continue;
        }
        CHECK(mq[0]->w.layers[0].wo.dtype == LM_DTYPE_I8 && mq[0]->w.embed.dtype == LM_DTYPE_I8);
        int64_t V = mf->cfg.vocab_size;
        size_t nl = (size_t)(T * V);
        float *want = malloc(nl * sizeof(float)), *got = malloc(nl * sizeof(float));
        for (int run = 0; run < 2; run++) {
            lm_set_isa(LM_ISA_SCALAR);
            CHECK(logits_run(mf, ids, T, NULL, run, want, &err) == 0);
            for (int isa = LM_ISA_SCALAR; isa <= (int)lm_cpu_isa(); isa++)
                for (int layout = 0; layout < 2; layout++)
                    for (int threads = 0; threads < 2; threads++) {
                        lm_set_isa((lm_isa)isa);
                        CHECK(logits_run(mq[layout], ids, T, threads ? pool : NULL, run, got, &err) == 0);
                        CHECKF(!memcmp(want, got, nl * sizeof(float)),
                               "%s: Q8 %s (%s, %s, %d threads) differs from the dequantized F32 forward", gdir,
                               run ? "decode" : "forward", lm_isa_name((lm_isa)isa), layout ? "rows" : "panels",
                               threads ? 2 : 1);
                    }
        }
        /* and near the original weights' logits: a coarse bound (a routing
         * choice that flips in these tiny random MoE models moves logits by
         * tens of percent: v3_tied_f32 0.42), which a broken quantizer (zero
         * or misplaced weights: ~1) still fails; the exact check is above */
        lm_model *m0;
        if (lm_model_load(gdir, &m0, &err) == 0) {
            CHECK(logits_run(m0, ids, T, NULL, 0, got, &err) == 0);
            double num = 0, den = 0;
            for (size_t i = 0; i < nl; i++) num += (double)(want[i] - got[i]) * (want[i] - got[i]), den += (double)got[i] * got[i];
            printf("  %s: Q8 vs original logits, relative L2 %.2e\n", cases[ci], sqrt(num / den));
            CHECKF(sqrt(num / den) < 0.6, "%s: Q8 logits relative L2 %.3g from the original's", gdir, sqrt(num / den));
            lm_model_free(m0);
        }
        free(want), free(got);
        lm_model_free(mf), lm_model_free(mq[0]), lm_model_free(mq[1]);
        done++;
    }
    CHECKF(done >= 4, "only %d golden cases quantized", done);
    lm_set_isa(saved);
    lm_pool_free(pool);
    lm_error err;
    lm_remove_tree(tmp, &err);
}

/* A Q8 tensor without its scales, or with scales of the wrong dtype or
 * shape: one line naming the tensor and what was expected. */
TEST(q8_load_errors) {
    char tmp[] = "/tmp/lemma_test_q8e_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char qdir[300];
    snprintf(qdir, sizeof qdir, "%s/q", tmp);
    lm_error err;
    lm_quantize_stats st;
    if (lm_quantize_q8("tests/golden/v3_f32", qdir, &st, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    static const char *want[] = {"has no scale tensor 'model.layers.0.self_attn.o_proj.weight_q8_scale'",
                                 "scale tensor 'model.layers.0.self_attn.o_proj.weight_q8_scale' must be F16",
                                 "scale tensor 'model.layers.0.self_attn.o_proj.weight_q8_scale' must be F16"};
    for (int variant = 0; variant < 3; variant++) {
        lm_tensor_set *set;
        CHECK(lm_st_open_dir(qdir, &set, &err) == 0);
        int64_t n = lm_st_count(set), no = 0;
        lm_tensor_out *outs = calloc((size_t)n, sizeof *outs);
        for (int64_t i = 0; i < n; i++) {
            const lm_tensor *t = lm_st_tensor(set, i);
            int target = !strcmp(t->name, "model.layers.0.self_attn.o_proj.weight_q8_scale");
            if (target && variant == 0) continue;
            lm_tensor_out *o = &outs[no++];
            o->name = t->name, o->dtype = t->dtype, o->ndim = t->ndim, o->data = t->data;
            memcpy(o->shape, t->shape, sizeof o->shape);
            if (target && variant == 1) o->dtype = LM_DTYPE_BF16;              /* same bytes, wrong dtype */
            if (target && variant == 2) o->shape[0] /= 2, o->shape[1] *= 2; /* same bytes, wrong shape */
        }
        char bdir[300], path[400];
        snprintf(bdir, sizeof bdir, "%s/bad%d", tmp, variant);
        snprintf(path, sizeof path, "%s/model.safetensors", bdir);
        CHECK(lm_mkdir_p(bdir, &err) == 0 && lm_st_write(path, outs, no, NULL, &err) == 0);
        char src[400], *text;
        size_t len;
        snprintf(src, sizeof src, "%s/config.json", qdir);
        snprintf(path, sizeof path, "%s/config.json", bdir);
        CHECK(lm_read_file(src, 1 << 20, &text, &len, &err) == 0 && lm_write_file_atomic(path, text, len, &err) == 0);
        free(text);
        free(outs);
        lm_st_close(set);
        lm_model *m = NULL;
        CHECKF(lm_model_load(bdir, &m, &err) == -1 && strstr(err.msg, want[variant]) && !strchr(err.msg, '\n'),
               "variant %d: %s", variant, m ? "loaded" : err.msg);
        lm_model_free(m);
    }
    lm_remove_tree(tmp, &err);
}

int main(void) {
    RUN(q8_quantize_row_rules);
    RUN(q8_checkpoint_equals_dequantized_f32);
    RUN(q8_load_errors);
    return test_report("test_q8");
}
