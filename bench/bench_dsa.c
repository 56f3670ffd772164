/* bench_dsa.c — DeepSeek-V3.2 sparse attention at long context: decode
 * tok/s with DSA (each token attends to index_topk positions chosen by the
 * indexer) beside dense attention (the same model and cache with every
 * position chosen: index_topk raised to the context, i.e. what lemma did
 * before DSA), at several context lengths, interleaved in one run.
 *
 *   bench_dsa MODEL_DIR [--ctx 1024,4096,16384] [--gen 16] [--threads N] [--json FILE]
 *
 * For each context: one prefill of ctx random ids through DSA (cost grows
 * with ctx x index_topk, plus the indexer's ctx^2 / 2 small dot products);
 * then `gen` decode steps with DSA and, from a copy of the same cache,
 * `gen` dense steps; the better of two rounds of each, alternated. The
 * anchor is the dense run of the same round; the ratio is DSA / dense. Rates
 * are given per wall second and per CPU second of the process (on a shared
 * machine the second is the steadier). Also printed: the KV cache bytes per
 * token (index keys included) and the peak FMA rate of the machine, with the
 * attention + indexer GFLOP/s of a step (per CPU second). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/threadpool.h"
#include "fma_peak.h"
#include "model/model.h"

static double fma_peak_gflops(int threads) {
    (void)threads;
    long iters = 20000000;
    double t0 = lm_now_s(), sink = __builtin_cpu_supports("avx512f") ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
    double dt = lm_now_s() - t0;
    if (sink == 12345.0) printf(" "); /* keep the loop */
    int lanes = __builtin_cpu_supports("avx512f") ? 16 : 8;
    return (double)iters * 12 * lanes * 2 / dt / 1e9;
}

/* Seconds of CPU the process has used (all threads): on a shared machine
 * the wall clock also counts the time other programs held the cores. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* gen decode steps from s's cache (at pos): tokens per wall second, and per
 * CPU second in *per_cpu; the cache is truncated back to pos after. */
static double decode_tps(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t pos, int64_t gen, float *logits,
                         double *per_cpu) {
    lm_error err;
    double t0 = lm_now_s(), c0 = cpu_s();
    for (int64_t i = 0; i < gen; i++)
        if (lm_infer_forward(s, pool, ids + pos + i, 1, logits, LM_LOGITS_LAST, &err)) {
            fprintf(stderr, "bench_dsa: %s\n", err.msg);
            exit(1);
        }
    double dt = lm_now_s() - t0;
    *per_cpu = (double)gen / (cpu_s() - c0);
    lm_infer_truncate(s, pos);
    return (double)gen / dt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_dsa MODEL_DIR [--ctx 1024,4096,16384] [--gen 16] [--threads N] [--json FILE]\n");
        return 2;
    }
    const char *dir = argv[1], *ctxs = "1024,4096,16384", *json = NULL;
    int64_t gen = 16;
    int threads = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ctx")) ctxs = argv[i + 1];
        else if (!strcmp(argv[i], "--gen")) gen = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
        else {
            fprintf(stderr, "bench_dsa: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    lm_error err;
    lm_model *m;
    if (lm_model_load(dir, &m, &err)) {
        fprintf(stderr, "bench_dsa: %s\n", err.msg);
        return 1;
    }
    if (!lm_config_has_indexer(&m->cfg)) {
        fprintf(stderr, "bench_dsa: %s is not a DeepSeek-V3.2 model (no index_topk)\n", dir);
        return 1;
    }
    const lm_config *c = &m->cfg;
    int64_t K = c->index_topk, H = c->num_attention_heads, C = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    int64_t Hi = c->index_n_heads, di = c->index_head_dim, L = c->num_hidden_layers;
    lm_pool *pool = threads > 1 ? lm_pool_create(threads) : NULL;
    double peak = fma_peak_gflops(threads) * threads;
    FILE *jf = json ? fopen(json, "a") : NULL;
    printf("model %s: %lld layers, %lld heads, kv_lora %lld, index_topk %lld, indexer %lld x %lld, %d thread%s\n", dir,
           (long long)L, (long long)H, (long long)C, (long long)K, (long long)Hi, (long long)di, threads,
           threads > 1 ? "s" : "");
    printf("FMA peak (measured) %.1f GFLOP/s; %d decode steps per measurement, best of 2 rounds\n\n", peak, (int)gen);
    printf("%8s %10s %10s %9s | %12s %12s %9s | %9s %9s %9s\n", "context", "DSA tok/s", "dense", "DSA/dense",
           "DSA tok/cpu-s", "dense", "DSA/dense", "DSA GF/s", "dense", "KV B/tok");
    for (const char *p = ctxs; *p;) {
        int64_t ctx = atoll(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
        int64_t max_ctx = ctx + gen;
        int32_t *ids = malloc((size_t)max_ctx * sizeof *ids);
        float *logits = malloc((size_t)c->vocab_size * sizeof(float));
        uint32_t r = 7;
        for (int64_t i = 0; i < max_ctx; i++) ids[i] = (int32_t)((r = r * 1664525u + 1013904223u) >> 8) % (int32_t)c->vocab_size;
        lm_infer *dsa = lm_infer_create(m, LM_ATTN_LATENT, max_ctx, 512, threads, &err);
        if (!dsa) {
            fprintf(stderr, "bench_dsa: %s\n", err.msg);
            return 1;
        }
        double t0 = lm_now_s();
        if (lm_infer_forward(dsa, pool, ids, ctx, logits, LM_LOGITS_LAST, &err)) {
            fprintf(stderr, "bench_dsa: %s\n", err.msg);
            return 1;
        }
        double prefill_s = lm_now_s() - t0;
        /* Dense: the same weights and cache with every position chosen. */
        m->cfg.index_topk = m->dims.K = max_ctx;
        lm_infer *dense = lm_infer_create(m, LM_ATTN_LATENT, max_ctx, 1, threads, &err);
        m->cfg.index_topk = m->dims.K = K;
        if (!dense || lm_infer_copy_cache(dense, dsa, &err)) {
            fprintf(stderr, "bench_dsa: %s\n", err.msg);
            return 1;
        }
        double best_dsa = 0, best_dense = 0, cpu_dsa = 0, cpu_dense = 0, ca, cb;
        for (int round = 0; round < 2; round++) {
            double a = decode_tps(dsa, pool, ids, ctx, gen, logits, &ca);
            double b = decode_tps(dense, pool, ids, ctx, gen, logits, &cb);
            if (a > best_dsa) best_dsa = a;
            if (b > best_dense) best_dense = b;
            if (ca > cpu_dsa) cpu_dsa = ca;
            if (cb > cpu_dense) cpu_dense = cb;
        }
        /* Attention flops of one step, all layers: scores and weighted sum
         * over the attended positions (2 x H x (C+dr) + 2 x H x C per key),
         * plus the indexer's Hi x di per cached key for DSA. */
        int64_t sel = ctx < K ? ctx : K;
        double per_key = 2.0 * H * (double)(C + dr) + 2.0 * H * (double)C;
        double f_dsa = (double)L * (per_key * (double)sel + 2.0 * Hi * di * (double)ctx);
        double f_dense = (double)L * per_key * (double)ctx;
        int64_t kvb = lm_infer_kv_bytes_per_token(dsa);
        printf("%8lld %10.1f %10.1f %9.2f | %12.1f %12.1f %9.2f | %9.1f %9.1f %9lld\n", (long long)ctx, best_dsa,
               best_dense, best_dsa / best_dense, cpu_dsa, cpu_dense, cpu_dsa / cpu_dense, f_dsa * cpu_dsa / 1e9,
               f_dense * cpu_dense / 1e9, (long long)kvb);
        if (jf)
            fprintf(jf,
                    "{\"bench\":\"dsa_decode\",\"model\":\"%s\",\"threads\":%d,\"result\":{\"context\":%lld,"
                    "\"index_topk\":%lld,\"dsa_tok_s\":%.2f,\"dense_tok_s\":%.2f,\"ratio\":%.3f,\"dsa_tok_cpu_s\":%.2f,"
                    "\"dense_tok_cpu_s\":%.2f,\"prefill_s\":%.2f,"
                    "\"kv_bytes_per_token\":%lld,\"fma_peak_gflops\":%.1f}}\n",
                    dir, threads, (long long)ctx, (long long)K, best_dsa, best_dense, best_dsa / best_dense, cpu_dsa, cpu_dense, prefill_s,
                    (long long)kvb, peak);
        fflush(stdout);
        lm_infer_free(dense);
        lm_infer_free(dsa);
        free(ids);
        free(logits);
    }
    if (jf) fclose(jf);
    lm_pool_free(pool);
    lm_model_free(m);
    return 0;
}
