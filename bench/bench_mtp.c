/* bench_mtp.c — speculative decoding with the MTP draft against plain
 * greedy decoding of the same model, prompt and length, in one run.
 *
 *   bench_mtp MODEL_DIR [--prompt P | --ids 1,5,9] [--gen G] [--reps R] [--threads N]
 *
 * The prompt is P pseudo-random ids (random-weight models), or the given
 * ids (a trained model on a prompt of its domain).
 * The anchor is lemma's own plain greedy decode (lm_generate without the
 * draft), timed in the same run, rounds alternating plain / speculative;
 * each figure is the median over R rounds. Both must give the same ids
 * (exit 1 otherwise). Reported: tok/s of both and the speed-up, the
 * acceptance rate, tokens per verification forward, and the costs that
 * decide the speed-up, measured at the prompt's context: one main forward
 * of 1 row (decode), of 2 rows (verify) and one MTP draft (mix + block +
 * head), so that the speed-up a draft with acceptance a would give is
 * (1 + a) / ((verify + draft) / decode) — printed for a = 0.85, the
 * second-token acceptance DeepSeek-V3's report gives (85-90%, section 5.4.3),
 * labelled as a projection. Prints a table and one JSON line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "model/mtp.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what, const lm_error *err) {
    fprintf(stderr, "bench_mtp: %s: %s\n", what, err->msg);
    exit(1);
}

/* Median seconds of `reps` forwards of n rows at context ctx (the rows are
 * dropped again after each). */
static double time_main_forward(const lm_model *m, lm_pool *pool, int nt, const int32_t *prompt, int64_t ctx, int64_t n,
                                int reps) {
    lm_error err;
    lm_fwd *f = lm_fwd_create(m, LM_ATTN_LATENT, ctx > 256 ? 256 : ctx, ctx + 2, nt, &err);
    lm_kvcache *kc = f ? lm_kvcache_create(m, LM_ATTN_LATENT, 64, (ctx + 2 + 63) / 64 + 1, &err) : NULL;
    if (!kc) die("main forward buffers", &err);
    lm_kvseq s = {0};
    float *logits = malloc((size_t)(2 * m->cfg.vocab_size) * sizeof(float));
    for (int64_t a = 0; a < ctx; a += 256) {
        lm_batch_seg seg = {&s, prompt + a, ctx - a < 256 ? ctx - a : 256};
        if (lm_batch_forward(f, pool, kc, &seg, 1, NULL, LM_LOGITS_NONE, &err)) die("prefill", &err);
    }
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        lm_batch_seg seg = {&s, prompt, n};
        double t0 = lm_now_s();
        if (lm_batch_forward(f, pool, kc, &seg, 1, logits, LM_LOGITS_ALL, &err)) die("forward", &err);
        t[r] = lm_now_s() - t0;
        lm_kvseq_truncate(kc, &s, ctx);
    }
    double med = median(t, reps);
    lm_kvseq_release(kc, &s);
    lm_kvcache_free(kc);
    lm_fwd_free(f);
    free(logits);
    free(t);
    return med;
}

/* Median seconds of one MTP draft (mix of one row, the block, the head) at
 * context ctx of the MTP cache. */
static double time_draft(const lm_model *m, lm_mtp *mtp, lm_pool *pool, int nt, const int32_t *prompt, int64_t ctx,
                         int reps) {
    lm_error err;
    const lm_model *b = lm_mtp_model(mtp);
    int64_t D = m->cfg.hidden_size;
    lm_fwd *f = lm_fwd_create(b, LM_ATTN_LATENT, ctx > 256 ? 256 : ctx, ctx + 1, nt, &err);
    lm_kvcache *kc = f ? lm_kvcache_create(b, LM_ATTN_LATENT, 64, (ctx + 1 + 63) / 64 + 1, &err) : NULL;
    if (!kc) die("MTP buffers", &err);
    lm_kvseq s = {0};
    float *resid = calloc((size_t)(256 * D), sizeof(float)), *x = malloc((size_t)(256 * D) * sizeof(float));
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    for (int64_t i = 0; i < 256 * D; i++) resid[i] = (float)(lm_rng_uniform(1, LM_RNG_BENCH, (uint64_t)i) - 0.5);
    for (int64_t a = 0; a < ctx; a += 256) {
        int64_t n = ctx - a < 256 ? ctx - a : 256;
        lm_batch_seg seg = {&s, NULL, n};
        if (lm_mtp_mix(mtp, pool, resid, prompt + a, n, x, &err) ||
            lm_batch_forward_rows(f, pool, kc, &seg, 1, x, NULL, LM_LOGITS_NONE, &err))
            die("MTP prefill", &err);
    }
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        lm_batch_seg seg = {&s, NULL, 1};
        double t0 = lm_now_s();
        if (lm_mtp_mix(mtp, pool, resid, prompt, 1, x, &err) ||
            lm_batch_forward_rows(f, pool, kc, &seg, 1, x, logits, LM_LOGITS_LAST, &err))
            die("MTP draft", &err);
        t[r] = lm_now_s() - t0;
        lm_kvseq_truncate(kc, &s, ctx);
    }
    double med = median(t, reps);
    lm_kvseq_release(kc, &s);
    lm_kvcache_free(kc);
    lm_fwd_free(f);
    free(resid);
    free(x);
    free(logits);
    free(t);
    return med;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *idlist = NULL;
    int64_t P = 256, G = 128;
    int reps = 3, nt = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prompt") && i + 1 < argc) P = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc) G = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) idlist = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nt = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_mtp MODEL_DIR [--prompt P | --ids 1,5,9] [--gen G] [--reps R] [--threads N]\n");
            return 2;
        }
    }
    if (idlist) {
        P = 1;
        for (const char *c = idlist; *c; c++) P += *c == ',';
    }
    if (!dir || P < 1 || G < 2 || reps < 1 || nt < 1) {
        fprintf(stderr, "usage: bench_mtp MODEL_DIR [--prompt P] [--gen G] [--reps R] [--threads N]\n");
        return 2;
    }
    lm_error err;
    lm_model *m;
    lm_mtp *mtp;
    if (lm_model_load(dir, &m, &err)) die("load", &err);
    if (lm_mtp_load(m, &mtp, &err)) die("MTP layer", &err);
    lm_pool *pool = nt > 1 ? lm_pool_create(nt) : NULL;
    int64_t V = m->cfg.vocab_size, ctx = P + G + 1;
    int32_t *prompt = malloc((size_t)P * sizeof *prompt);
    for (int64_t i = 0; i < P; i++) prompt[i] = (int32_t)(lm_rng_u64(7, LM_RNG_BENCH, (uint64_t)i) % (uint64_t)V);
    for (int64_t i = 0; idlist && i < P; i++) {
        char *end;
        long v = strtol(idlist, &end, 10);
        if (end == idlist || v < 0 || v >= V || (*end && *end != ',')) {
            fprintf(stderr, "bench_mtp: --ids: bad id at position %lld (vocab %lld)\n", (long long)i, (long long)V);
            return 2;
        }
        prompt[i] = (int32_t)v;
        idlist = *end ? end + 1 : end;
    }
    lm_generator *plain = lm_generator_create(m, NULL, pool, ctx, LM_ATTN_LATENT, &err);
    lm_generator *spec = plain ? lm_generator_create(m, NULL, pool, ctx, LM_ATTN_LATENT, &err) : NULL;
    if (!spec || lm_generator_set_mtp(spec, mtp, &err)) die("generators", &err);
    lm_gen_params p = lm_gen_params_default();
    p.max_tokens = G;
    p.stop_at_eos = 0;
    double *tp = malloc((size_t)reps * sizeof *tp), *ts = malloc((size_t)reps * sizeof *ts);
    lm_spec_stats st = {0};
    int same = 1;
    for (int r = 0; r < reps; r++) {
        lm_gen_result a = {0}, b = {0};
        if (lm_generate(plain, prompt, P, &p, NULL, NULL, &a, &err)) die("plain decode", &err);
        if (lm_generate(spec, prompt, P, &p, NULL, NULL, &b, &err)) die("speculative decode", &err);
        tp[r] = a.decode_s;
        ts[r] = b.decode_s;
        same &= a.ids.n == b.ids.n && !memcmp(a.ids.ids, b.ids.ids, a.ids.n * sizeof(int32_t));
        st = lm_generator_spec_stats(spec);
        lm_gen_result_free(&a);
        lm_gen_result_free(&b);
    }
    double t_plain = median(tp, reps), t_spec = median(ts, reps);
    int creps = reps * 5 > 9 ? reps * 5 : 9;
    double t1 = time_main_forward(m, pool, nt, prompt, P, 1, creps);
    double t2 = time_main_forward(m, pool, nt, prompt, P, 2, creps);
    double td = time_draft(m, mtp, pool, nt, prompt, P, creps);
    double acc = st.drafted ? (double)st.accepted / (double)st.drafted : 0;
    double cost = (t2 + td) / t1, proj = 1.85 / cost;
    printf("bench_mtp %s: prompt %lld, %lld generated tokens, %d threads, median of %d rounds\n", dir, (long long)P,
           (long long)G, nt, reps);
    printf("  plain greedy        %8.1f tok/s\n", (double)G / t_plain);
    printf("  speculative (MTP)   %8.1f tok/s   speed-up %.2fx   output %s\n", (double)G / t_spec, t_plain / t_spec,
           same ? "identical" : "DIFFERENT");
    printf("  acceptance          %5.1f%% of %lld drafts; %.2f tokens per verify forward\n", 100 * acc,
           (long long)st.drafted, st.steps ? (double)(G - 1) / (double)st.steps : 0.0);
    printf("  costs at ctx %lld: decode (1 row) %.3f ms, verify (2 rows) %.3f ms (%.2fx), draft %.3f ms (%.2fx)\n",
           (long long)P, 1e3 * t1, 1e3 * t2, t2 / t1, 1e3 * td, td / t1);
    printf("  break-even acceptance %.0f%%; projected speed-up at 85%% acceptance (DeepSeek-V3 report) %.2fx\n",
           100 * (cost - 1 > 0 ? cost - 1 : 0), proj);
    printf("{\"bench\":\"mtp\",\"model\":\"%s\",\"prompt\":%lld,\"gen\":%lld,\"threads\":%d,\"plain_tok_s\":%.2f,"
           "\"spec_tok_s\":%.2f,\"speedup\":%.3f,\"acceptance\":%.4f,\"drafts\":%lld,\"identical\":%s,"
           "\"decode_ms\":%.4f,\"verify2_ms\":%.4f,\"draft_ms\":%.4f,\"projected_speedup_at_0.85\":%.3f}\n",
           dir, (long long)P, (long long)G, nt, (double)G / t_plain, (double)G / t_spec, t_plain / t_spec, acc,
           (long long)st.drafted, same ? "true" : "false", 1e3 * t1, 1e3 * t2, 1e3 * td, proj);
    lm_generator_free(plain);
    lm_generator_free(spec);
    lm_mtp_free(mtp);
    lm_pool_free(pool);
    lm_model_free(m);
    free(prompt);
    free(tp);
    free(ts);
    return same ? 0 : 1;
}
