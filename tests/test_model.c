/* test_model.c — the forward pass against the PyTorch golden data
 * (tests/golden, made by tests/ref/make_golden.py), and the two decode paths
 * against the full forward.
 *
 * Tolerances (issue 2): F32 checkpoints max |dlogit| <= 1e-4 and relative L2
 * <= 1e-5 against the float64 reference; BF16/FP8 checkpoints are compared
 * with the reference run on the same dequantised weights, so the same bound
 * applies. A wrong rms eps moves these logits by >= 7e-5, and every other
 * convention mistake by >= 0.1 (tests/ref/README.md), so the bound catches
 * all of them. */
#include <dirent.h>
#include <stdint.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "test.h"

#define MAX_ABS 1e-4
#define MAX_REL_L2 1e-5

typedef struct golden {
    char dir[1024];
    int32_t ids[256];
    int64_t T, V;
    float *logits; /* [T, V] */
} golden;

static int load_golden(const char *dir, golden *g) {
    lm_error err;
    char path[2048];
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    char *text;
    size_t len;
    if (lm_read_file(path, 1 << 20, &text, &len, &err)) return -1;
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    if (!doc) return -1;
    const json_value *root = json_root(doc), *ids = json_get(root, "ids");
    json_as_int(json_get(root, "T"), &g->T);
    json_as_int(json_get(root, "vocab"), &g->V);
    int64_t i = 0;
    for (const json_value *v = ids ? ids->child : NULL; v && i < 256; v = v->next, i++) {
        int64_t x;
        json_as_int(v, &x);
        g->ids[i] = (int32_t)x;
    }
    const json_value *lf = json_get(root, "logits");
    snprintf(path, sizeof path, "%s/%s", dir, lf && lf->type == JSON_STRING ? lf->str : "logits.f32");
    json_free(doc);
    char *raw;
    if (i != g->T || lm_read_file(path, 64u << 20, &raw, &len, &err)) return -1;
    if (len != (size_t)(g->T * g->V) * sizeof(float)) {
        free(raw);
        return -1;
    }
    g->logits = (float *)raw;
    return 0;
}

/* Compares rows [t0, t0+n) of got (n x V) with the golden rows. */
static void compare(const golden *g, const float *got, int64_t t0, int64_t n, const char *what) {
    double max_abs = 0, num = 0, den = 0;
    for (int64_t i = 0; i < n * g->V; i++) {
        double ref = g->logits[t0 * g->V + i], d = got[i] - ref;
        if (fabs(d) > max_abs || d != d) max_abs = d != d ? INFINITY : fabs(d);
        num += d * d;
        den += ref * ref;
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    CHECKF(max_abs <= MAX_ABS && rel <= MAX_REL_L2, "%s %s: max|d| %.3g (<= %g), rel L2 %.3g (<= %g)", g->dir, what,
           max_abs, MAX_ABS, rel, MAX_REL_L2);
}

static golden goldens[32];
static int ngoldens;

static void find_goldens(void) {
    DIR *d = opendir("tests/golden");
    if (!d) return;
    struct dirent *e;
    char names[32][300];
    int n = 0;
    while ((e = readdir(d)) && n < 32) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "tests/golden/%s/golden.json", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        fclose(f);
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        char p[1024];
        snprintf(p, sizeof p, "tests/golden/%.300s", names[i]);
        if (load_golden(p, &goldens[ngoldens]) == 0) ngoldens++;
        else printf("  cannot read golden case %s\n", p);
    }
}

/* Full forward (naive, one chunk) vs golden for every case, at 1 and 2
 * threads, the two results bit-identical. */
TEST(golden_full_forward) {
    CHECKF(ngoldens >= 8, "found %d golden cases in tests/golden", ngoldens);
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m;
        if (lm_model_load(g->dir, &m, &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        float *out[2];
        for (int nt = 1; nt <= 2; nt++) {
            lm_pool *pool = lm_pool_create(nt);
            lm_infer *s = lm_infer_create(m, LM_ATTN_NAIVE, g->T, g->T, nt, &err);
            out[nt - 1] = malloc((size_t)(g->T * g->V) * sizeof(float));
            CHECK(s && pool);
            int rc = lm_infer_forward(s, pool, g->ids, g->T, out[nt - 1], LM_LOGITS_ALL, &err);
            CHECKF(rc == 0, "%s", err.msg);
            compare(g, out[nt - 1], 0, g->T, nt == 1 ? "full forward, 1 thread" : "full forward, 2 threads");
            lm_infer_free(s);
            lm_pool_free(pool);
        }
        CHECKF(!memcmp(out[0], out[1], (size_t)(g->T * g->V) * sizeof(float)), "%s: 1 and 2 threads differ", g->dir);
        free(out[0]);
        free(out[1]);
        lm_model_free(m);
    }
}

/* Token-by-token decode in both cache modes, and chunked prefill (chunks
 * of 3 then decode), against the golden row of every position. */
TEST(decode_paths_match_full_forward) {
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m;
        if (lm_model_load(g->dir, &m, &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        lm_pool *pool = lm_pool_create(2);
        float *row = malloc((size_t)g->V * sizeof(float));
        for (int mode = 0; mode < 2; mode++) {
            const char *name = mode == LM_ATTN_LATENT ? "latent decode" : "naive decode";
            lm_infer *s = lm_infer_create(m, (lm_attn_mode)mode, g->T, 4, 2, &err);
            CHECK(s != NULL);
            for (int64_t t = 0; t < g->T; t++) {
                CHECK(lm_infer_forward(s, pool, &g->ids[t], 1, row, LM_LOGITS_LAST, &err) == 0);
                compare(g, row, t, 1, name);
            }
            CHECK(lm_infer_pos(s) == g->T);
            /* chunked prefill of 5 (chunks of 4 inside), then the rest */
            lm_infer_reset(s);
            float *all = malloc((size_t)(g->T * g->V) * sizeof(float));
            CHECK(lm_infer_forward(s, pool, g->ids, 5, all, LM_LOGITS_ALL, &err) == 0);
            CHECK(lm_infer_forward(s, pool, g->ids + 5, g->T - 5, all + 5 * g->V, LM_LOGITS_ALL, &err) == 0);
            compare(g, all, 0, g->T, mode == LM_ATTN_LATENT ? "latent chunked prefill" : "naive chunked prefill");
            /* fork: truncate to 6 and redo the tail; copy into a fresh state */
            lm_infer_truncate(s, 6);
            CHECK(lm_infer_forward(s, pool, g->ids + 6, 1, row, LM_LOGITS_LAST, &err) == 0);
            compare(g, row, 6, 1, "after truncate");
            lm_infer *s2 = lm_infer_create(m, (lm_attn_mode)mode, g->T, 4, 2, &err);
            CHECK(lm_infer_copy_cache(s2, s, &err) == 0);
            CHECK(lm_infer_forward(s2, pool, g->ids + 7, 1, row, LM_LOGITS_LAST, &err) == 0);
            compare(g, row, 7, 1, "after cache copy");
            lm_infer_free(s2);
            free(all);
            lm_infer_free(s);
        }
        free(row);
        lm_pool_free(pool);
        lm_model_free(m);
    }
}

/* Every thread count gives the same bits, in both modes (3 threads on a
 * model with 4 heads splits heads unevenly). */
TEST(thread_count_invariance) {
    if (!ngoldens) SKIP("no golden cases");
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m;
        if (lm_model_load(g->dir, &m, &err)) continue;
        for (int mode = 0; mode < 2; mode++) {
            float *ref = NULL;
            for (int nt = 1; nt <= 3; nt++) {
                lm_pool *pool = lm_pool_create(nt);
                lm_infer *s = lm_infer_create(m, (lm_attn_mode)mode, g->T, 8, nt, &err);
                float *out = malloc((size_t)(g->T * g->V) * sizeof(float));
                CHECK(lm_infer_forward(s, pool, g->ids, g->T, out, LM_LOGITS_ALL, &err) == 0);
                if (!ref) ref = out;
                else {
                    CHECKF(!memcmp(ref, out, (size_t)(g->T * g->V) * sizeof(float)), "%s mode %d: %d threads differ from 1",
                           g->dir, mode, nt);
                    free(out);
                }
                lm_infer_free(s);
                lm_pool_free(pool);
            }
            free(ref);
        }
        lm_model_free(m);
    }
}

TEST(forward_rejects_bad_requests) {
    if (!ngoldens) SKIP("no golden cases");
    lm_error err;
    lm_model *m;
    CHECK(lm_model_load(goldens[0].dir, &m, &err) == 0);
    lm_infer *s = lm_infer_create(m, LM_ATTN_LATENT, 4, 4, 1, &err);
    float *row = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    int32_t bad = (int32_t)m->cfg.vocab_size;
    CHECK(lm_infer_forward(s, NULL, &bad, 1, row, LM_LOGITS_LAST, &err) == -1);
    CHECK(strstr(err.msg, "out of range") != NULL);
    int32_t ids[5] = {0, 1, 2, 3, 4};
    CHECK(lm_infer_forward(s, NULL, ids, 5, row, LM_LOGITS_LAST, &err) == -1);
    CHECK(strstr(err.msg, "exceed the context") != NULL);
    CHECK(lm_infer_pos(s) == 0);
    CHECK(lm_infer_forward(s, NULL, ids, 0, row, LM_LOGITS_LAST, &err) == -1);
    free(row);
    lm_infer_free(s);
    lm_model_free(m);
}

/* All T logits of golden g in latent mode with prefill form pm, in pieces
 * of the given lengths (0-terminated; the last piece takes the rest), each
 * one lm_infer_forward with chunks of max_chunk. */
static int latent_logits(lm_model *m, const golden *g, lm_pool *pool, int nt, lm_prefill_mode pm, int64_t max_chunk,
                         const int64_t *pieces, float *out, lm_error *err) {
    lm_infer *s = lm_infer_create(m, LM_ATTN_LATENT, g->T, max_chunk, nt, err);
    int rc = s ? lm_infer_set_prefill(s, pm, err) : -1;
    for (int64_t t0 = 0, i = 0; !rc && t0 < g->T; i++) {
        int64_t n = pieces[i] && pieces[i] < g->T - t0 ? pieces[i] : g->T - t0;
        rc = lm_infer_forward(s, pool, g->ids + t0, n, out + t0 * g->V, LM_LOGITS_ALL, err);
        t0 += n;
    }
    lm_infer_free(s);
    return rc;
}

/* Latent mode's expanded prefill (model.h, lm_prefill_mode): decompressing
 * the cached latents through kv_b is the product the naive path applies as
 * it caches, so a prefill whose chunks all have two rows or more gives the
 * naive cache's bits exactly (whole or chunked), and the golden logits;
 * decode after it stays absorbed and within the golden tolerance; one row
 * never expands; 1 and 2 threads agree. */
TEST(expanded_prefill) {
    if (!ngoldens) SKIP("no golden cases");
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m;
        if (lm_model_load(g->dir, &m, &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        size_t bytes = (size_t)(g->T * g->V) * sizeof(float);
        float *naive = malloc(bytes), *got = malloc(bytes), *got2 = malloc(bytes), *row = malloc((size_t)g->V * 4);
        lm_pool *pool = lm_pool_create(2);
        lm_infer *s = lm_infer_create(m, LM_ATTN_NAIVE, g->T, g->T, 2, &err);
        CHECK(lm_infer_forward(s, pool, g->ids, g->T, naive, LM_LOGITS_ALL, &err) == 0);
        lm_infer_free(s);
        const int64_t whole[] = {0}, chunked[] = {5, 0}, threes[] = {3, 0};
        struct { const int64_t *pieces; int64_t max_chunk; const char *what; } runs[] = {
            {whole, g->T, "whole expanded prefill"},
            {chunked, g->T, "expanded prefill of 5 then the rest"},
            {threes, 3, "expanded prefill in chunks of 3"},
        };
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            /* chunks of 3 may leave a last chunk of one row: absorbed, so only the golden bound holds */
            int one_row_tail = runs[r].max_chunk == 3 && g->T % 3 == 1;
            CHECKF(latent_logits(m, g, pool, 2, LM_PREFILL_EXPANDED_ALWAYS, runs[r].max_chunk, runs[r].pieces, got,
                                 &err) == 0, "%s", err.msg);
            compare(g, got, 0, g->T, runs[r].what);
            if (!one_row_tail)
                CHECKF(!memcmp(got, naive, bytes), "%s %s: not the naive cache's bits", g->dir, runs[r].what);
        }
        /* 1 and 2 threads: the same bits within the mode (FLOP rule) */
        CHECK(latent_logits(m, g, NULL, 1, LM_PREFILL_EXPANDED, g->T, chunked, got, &err) == 0);
        CHECK(latent_logits(m, g, pool, 2, LM_PREFILL_EXPANDED, g->T, chunked, got2, &err) == 0);
        compare(g, got, 0, g->T, "expanded prefill (FLOP rule), 1 thread");
        CHECKF(!memcmp(got, got2, bytes), "%s: expanded prefill differs at 1 and 2 threads", g->dir);
        /* decode after an expanded prefill of T-3: absorbed, within the golden bound */
        s = lm_infer_create(m, LM_ATTN_LATENT, g->T, g->T, 2, &err);
        CHECK(lm_infer_set_prefill(s, LM_PREFILL_EXPANDED_ALWAYS, &err) == 0);
        CHECK(lm_infer_forward(s, pool, g->ids, g->T - 3, got, LM_LOGITS_ALL, &err) == 0);
        for (int64_t t = g->T - 3; t < g->T; t++) {
            CHECK(lm_infer_forward(s, pool, &g->ids[t], 1, row, LM_LOGITS_LAST, &err) == 0);
            compare(g, row, t, 1, "decode after expanded prefill");
        }
        lm_infer_free(s);
        /* token by token, the expanded mode is the absorbed one: same bits */
        const int64_t ones[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
        CHECK(g->T < 20);
        CHECK(latent_logits(m, g, pool, 2, LM_PREFILL_EXPANDED_ALWAYS, 1, ones, got, &err) == 0);
        CHECK(latent_logits(m, g, pool, 2, LM_PREFILL_ABSORBED, 1, ones, got2, &err) == 0);
        CHECKF(!memcmp(got, got2, bytes), "%s: one-row steps expanded", g->dir);
        free(naive);
        free(got);
        free(got2);
        free(row);
        lm_pool_free(pool);
        lm_model_free(m);
    }
    /* only with the latent cache */
    lm_error err;
    lm_model *m;
    CHECK(lm_model_load(goldens[0].dir, &m, &err) == 0);
    lm_infer *s = lm_infer_create(m, LM_ATTN_NAIVE, 8, 8, 1, &err);
    CHECK(lm_infer_set_prefill(s, LM_PREFILL_EXPANDED, &err) == -1);
    CHECKF(strstr(err.msg, "latent") && !strchr(err.msg, '\n'), "%s", err.msg);
    CHECK(lm_infer_set_prefill(s, LM_PREFILL_ABSORBED, &err) == 0);
    lm_infer_free(s);
    lm_model_free(m);
}

/* A batch mixing an expanded prefill segment with decode segments gives
 * each sequence the bits it gets alone (the absorbed rows around the
 * expanded segment are multiplied in runs). */
TEST(expanded_prefill_in_a_batch) {
    if (!ngoldens) SKIP("no golden cases");
    golden *g = &goldens[0];
    lm_error err;
    lm_model *m;
    CHECK(lm_model_load(g->dir, &m, &err) == 0);
    int64_t V = g->V, P = g->T - 2;
    lm_pool *pool = lm_pool_create(2);
    lm_kvcache *kc = lm_kvcache_create(m, LM_ATTN_LATENT, 4, 64, &err);
    lm_fwd *f = lm_fwd_create(m, LM_ATTN_LATENT, 64, g->T, 2, &err);
    CHECK(kc && f && lm_fwd_set_prefill(f, LM_PREFILL_EXPANDED_ALWAYS, &err) == 0);
    float *alone = malloc((size_t)(3 * V) * sizeof(float)), *mixed = malloc((size_t)(3 * V) * sizeof(float));
    for (int batched = 0; batched < 2; batched++) {
        lm_kvseq a = {0}, b = {0}, c = {0};
        /* a and c hold two tokens; then a and c decode one while b prefills P */
        lm_batch_seg warm[2] = {{&a, g->ids, 2}, {&c, g->ids + 1, 2}};
        CHECK(lm_batch_forward(f, pool, kc, warm, 2, mixed, LM_LOGITS_LAST, &err) == 0);
        lm_batch_seg segs[3] = {{&a, g->ids + 2, 1}, {&b, g->ids, P}, {&c, g->ids + 3, 1}};
        float *out = batched ? mixed : alone;
        if (batched) CHECKF(lm_batch_forward(f, pool, kc, segs, 3, out, LM_LOGITS_LAST, &err) == 0, "%s", err.msg);
        for (int k = 0; !batched && k < 3; k++)
            CHECK(lm_batch_forward(f, pool, kc, &segs[k], 1, out + k * V, LM_LOGITS_LAST, &err) == 0);
        compare(g, out + V, P - 1, 1, "expanded prefill segment in a batch");
        lm_kvseq_release(kc, &a);
        lm_kvseq_release(kc, &b);
        lm_kvseq_release(kc, &c);
    }
    CHECK(!memcmp(alone, mixed, (size_t)(3 * V) * sizeof(float)));
    free(alone);
    free(mixed);
    lm_fwd_free(f);
    lm_kvcache_free(kc);
    lm_pool_free(pool);
    lm_model_free(m);
}

TEST(param_counts) {
    /* v3_f32: check the count against the sum of the tensor sizes in the file. */
    lm_error err;
    lm_model *m;
    if (lm_model_load("tests/golden/v3_f32", &m, &err)) SKIP("tests/golden/v3_f32 missing");
    int64_t n = 0;
    for (int64_t i = 0; i < lm_st_count(m->tensors); i++) n += lm_st_tensor(m->tensors, i)->numel;
    lm_param_count p = lm_model_params(m);
    CHECKF(p.total == n, "counted %lld parameters, the file holds %lld", (long long)p.total, (long long)n);
    CHECK(p.active < p.total);
    lm_model_free(m);
}

/* The arch table names every tensor of every golden checkpoint (FP8 scales,
 * q LoRA or not, tied, sharded, V2 and V3) and no tensor twice: what
 * `lemma info` reports. A name the table lost shows as a missing tensor. */
TEST(arch_table_covers_checkpoints) {
    CHECKF(ngoldens >= 8, "found %d golden cases in tests/golden", ngoldens);
    for (int i = 0; i < ngoldens; i++) {
        lm_error err;
        lm_model *m;
        CHECKF(lm_model_load(goldens[i].dir, &m, &err) == 0, "%s", err.msg);
        lm_tensor_report r;
        lm_model_tensor_report(m, &r);
        int64_t by_dtype = 0;
        for (int d = 0; d < LM_DTYPE_COUNT; d++) by_dtype += r.count[d];
        CHECKF(r.known == r.total && r.missing == 0 && by_dtype == r.total,
               "%s: %lld tensors, %lld named by the table, %lld table tensors missing", goldens[i].dir,
               (long long)r.total, (long long)r.known, (long long)r.missing);
        lm_model_free(m);
    }
}

/* All T logits of golden g through model m: run 0 = one chunk with the
 * naive cache, run 1 = one token at a time with the latent cache. 0, or -1
 * with err. */
static int golden_logits_run(lm_model *m, const golden *g, lm_pool *pool, int run, float *out, lm_error *err) {
    lm_infer *s = lm_infer_create(m, run ? LM_ATTN_LATENT : LM_ATTN_NAIVE, g->T, run ? 1 : g->T, 2, err);
    if (!s) return -1;
    int rc = 0;
    if (run == 0) rc = lm_infer_forward(s, pool, g->ids, g->T, out, LM_LOGITS_ALL, err);
    else
        for (int64_t t = 0; t < g->T && !rc; t++)
            rc = lm_infer_forward(s, pool, g->ids + t, 1, out + t * g->V, LM_LOGITS_ALL, err);
    lm_infer_free(s);
    return rc;
}

/* The same bits on every kernel path (docs/arithmetic.md): for every golden
 * model, the full forward (GEMM-sized and matvec-sized chunks) and
 * token-by-token latent decode (T = 1) give identical logits with
 * LM_ISA scalar, avx2 and avx512 (those this CPU has). */
TEST(golden_logits_identical_across_paths) {
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m;
        if (lm_model_load(g->dir, &m, &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        lm_pool *pool = lm_pool_create(2);
        size_t nl = (size_t)(g->T * g->V);
        float *want[2] = {malloc(nl * sizeof(float)), malloc(nl * sizeof(float))}, *got = malloc(nl * sizeof(float));
        for (int isa = LM_ISA_SCALAR; isa <= (int)lm_cpu_isa(); isa++) {
            lm_set_isa((lm_isa)isa);
            for (int run = 0; run < 2; run++) { /* one chunk; then one token at a time (latent cache) */
                int rc = golden_logits_run(m, g, pool, run, got, &err);
                CHECKF(rc == 0, "%s", err.msg);
                if (rc) continue;
                if (isa == LM_ISA_SCALAR) memcpy(want[run], got, nl * sizeof(float));
                else
                    CHECKF(!memcmp(want[run], got, nl * sizeof(float)), "%s: %s, %s differs from scalar", g->dir,
                           run ? "decode" : "full forward", lm_isa_name((lm_isa)isa));
            }
        }
        free(want[0]);
        free(want[1]);
        free(got);
        lm_pool_free(pool);
        lm_model_free(m);
    }
    lm_set_isa(saved);
}

/* The panels are a layout, not an arithmetic: a model loaded with its
 * matrices repacked (the default) and one left row-major give the same
 * logits, bit for bit, full forward and token-by-token decode, on every path. */
TEST(panel_and_row_major_loads_identical) {
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int i = 0; i < ngoldens; i++) {
        golden *g = &goldens[i];
        lm_error err;
        lm_model *m[2] = {NULL, NULL};
        if (lm_model_load_flags(g->dir, 0, &m[0], &err) || lm_model_load_flags(g->dir, LM_LOAD_ROWS, &m[1], &err)) {
            CHECKF(0, "%s", err.msg);
            lm_model_free(m[0]);
            continue;
        }
        /* the default really packs (else this test compares rows with rows) */
        CHECK(m[0]->w.head.layout == LM_LAYOUT_PANELS && m[0]->w.layers[0].wkv_b.layout == LM_LAYOUT_PANELS);
        CHECK(m[0]->w.head.data != m[1]->w.head.data && m[0]->panels != NULL);
        CHECK(m[1]->w.head.layout == LM_LAYOUT_ROWS && m[1]->w.layers[0].wo.layout == LM_LAYOUT_ROWS);
        CHECK(m[0]->w.embed.layout == (m[0]->cfg.tie_word_embeddings ? LM_LAYOUT_PANELS : LM_LAYOUT_ROWS));
        /* an FP8 checkpoint without NaN bytes takes the matvec's fast FP8 conversion */
        if (m[0]->w.layers[0].wkv_a.dtype == LM_DTYPE_F8_E4M3) CHECK(m[0]->w.layers[0].wkv_a.fp8_nan_free);
        lm_pool *pool = lm_pool_create(2);
        size_t nl = (size_t)(g->T * g->V);
        float *got[2] = {malloc(nl * sizeof(float)), malloc(nl * sizeof(float))};
        for (int isa = LM_ISA_SCALAR; isa <= (int)lm_cpu_isa(); isa++) {
            lm_set_isa((lm_isa)isa);
            for (int run = 0; run < 2; run++) { /* one chunk (naive); one token at a time (latent) */
                for (int k = 0; k < 2; k++) {
                    int rc = golden_logits_run(m[k], g, pool, run, got[k], &err);
                    CHECKF(rc == 0, "%s", err.msg);
                }
                CHECKF(!memcmp(got[0], got[1], nl * sizeof(float)), "%s: %s, %s: panels differ from row-major",
                       g->dir, run ? "decode" : "full forward", lm_isa_name((lm_isa)isa));
            }
        }
        free(got[0]);
        free(got[1]);
        lm_pool_free(pool);
        lm_model_free(m[0]);
        lm_model_free(m[1]);
    }
    /* LEMMA_PANELS=0 makes lm_model_load keep the row-major views */
    if (ngoldens > 0) {
        lm_error err;
        lm_model *m = NULL;
        setenv("LEMMA_PANELS", "0", 1);
        int rc = lm_model_load(goldens[0].dir, &m, &err);
        unsetenv("LEMMA_PANELS");
        CHECKF(rc == 0, "%s", rc ? err.msg : "");
        if (!rc) CHECK(m->w.head.layout == LM_LAYOUT_ROWS && m->w.layers[0].wo.layout == LM_LAYOUT_ROWS && !m->panels);
        lm_model_free(m);
    }
    lm_set_isa(saved);
}

int main(void) {
    find_goldens();
    RUN(golden_full_forward);
    RUN(decode_paths_match_full_forward);
    RUN(thread_count_invariance);
    RUN(golden_logits_identical_across_paths);
    RUN(panel_and_row_major_loads_identical);
    RUN(forward_rejects_bad_requests);
    RUN(expanded_prefill);
    RUN(expanded_prefill_in_a_batch);
    RUN(param_counts);
    RUN(arch_table_covers_checkpoints);
    for (int i = 0; i < ngoldens; i++) free(goldens[i].logits);
    return test_report("test_model");
}
