/* bench_distill.c — logit-distillation throughput of lemma (train/distill.h)
 * on bench presets, with random token ids: no tokenizer, no data.
 *
 *   build/release/bench/bench_distill STUDENT.json [--teacher TEACHER.json]
 *       [--threads N] [--steps S] [--warmup W] [--batch B] [--seq T]
 *       [--temperature TAU] [--top-k K] [--seed S]
 *
 * The step measured is lm_distill_step: the teacher's forward (frozen) and
 * the student's forward, backward and AdamW on tau^2 KL(teacher || student)
 * at every position, with the defaults of `lemma train` (AdamW 0.9/0.95/1e-8,
 * wd 0.1, clip 1.0, MoE bias gamma 0.001). The teacher defaults to the
 * student's preset; both are lm_params_init_random (seeds 1 and 2, std 0.02:
 * `lemma init`), the ids are bench_train's (lm_rng_u64(seed, LM_RNG_BENCH, i)
 * % vocab), batch and seq the student preset's "bench" field. W untimed
 * warm-up steps (default 1), S timed steps (default 5; 3 when T >= 512),
 * median step time. The anchor is bench/torch_train.py --distill-teacher
 * on the same presets and ids (bench/distill_bench.sh runs both).
 *
 * Prints one JSON line: tokens_per_s (B*T / median step), step times,
 * tokens per CPU-second, the first and last loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "formats/json.h"
#include "model/config.h"
#include "train/distill.h"
#include "train/params.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The preset's config, and its "bench" batch and seq where given. */
static int load_preset(const char *path, lm_config *cfg, int64_t *batch, int64_t *seq) {
    lm_error err;
    char *text;
    size_t len;
    if (lm_read_file(path, 16u << 20, &text, &len, &err) || lm_config_parse(text, len, path, cfg, &err)) {
        fprintf(stderr, "bench_distill: %s\n", err.msg);
        return -1;
    }
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    if (doc && batch) {
        const json_value *b = json_get(json_root(doc), "bench");
        int64_t v;
        if (b && !*batch && json_as_int(json_get(b, "batch_size"), &v)) *batch = v;
        if (b && !*seq && json_as_int(json_get(b, "seq_len"), &v)) *seq = v;
    }
    json_free(doc);
    return 0;
}

static const char *base_name(const char *path, char *buf, size_t n) {
    const char *s = strrchr(path, '/');
    snprintf(buf, n, "%s", s ? s + 1 : path);
    char *dot = strstr(buf, ".json");
    if (dot) *dot = 0;
    return buf;
}

int main(int argc, char **argv) {
    const char *student_path = NULL, *teacher_path = NULL;
    int threads = 1, steps = 0, warmup = 1;
    int64_t batch = 0, seq = 0, top_k = 0;
    double tau = 2.0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--teacher") && more) teacher_path = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && more) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) batch = atoll(argv[++i]);
        else if (!strcmp(a, "--seq") && more) seq = atoll(argv[++i]);
        else if (!strcmp(a, "--temperature") && more) tau = atof(argv[++i]);
        else if (!strcmp(a, "--top-k") && more) top_k = atoll(argv[++i]);
        else if (!strcmp(a, "--seed") && more) seed = strtoull(argv[++i], NULL, 10);
        else if (a[0] != '-' && !student_path) student_path = a;
        else {
            fprintf(stderr, "usage: bench_distill STUDENT.json [--teacher T.json] [--threads N] [--steps S] "
                            "[--warmup W] [--batch B] [--seq T] [--temperature TAU] [--top-k K] [--seed S]\n");
            return 2;
        }
    }
    if (!student_path) {
        fprintf(stderr, "usage: bench_distill STUDENT.json [--teacher T.json] ...\n");
        return 2;
    }
    if (!teacher_path) teacher_path = student_path;
    if (threads < 1) threads = 1;
    lm_config scfg, tcfg;
    if (load_preset(student_path, &scfg, &batch, &seq) || load_preset(teacher_path, &tcfg, NULL, NULL)) return 1;
    if (batch <= 0 || seq <= 0) {
        fprintf(stderr, "bench_distill: %s has no \"bench\" field: give --batch and --seq\n", student_path);
        return 1;
    }
    if (!steps) steps = seq >= 512 ? 3 : 5;
    lm_error err;
    lm_params *s, *t;
    if (lm_params_create(&scfg, &s, &err) || lm_params_create(&tcfg, &t, &err)) {
        fprintf(stderr, "bench_distill: %s\n", err.msg);
        return 1;
    }
    lm_params_init_random(s, 1, 0.02);
    lm_params_init_random(t, 2, 0.02);
    lm_train_opts o = lm_train_opts_default();
    o.batch = batch;
    o.seq = seq;
    lm_distill_opts dopt = {.temperature = tau, .top_k = top_k};
    lm_pool *pool = lm_pool_create(threads);
    lm_distiller *d = pool ? lm_distiller_create(&dopt, s, t, &o, threads, &err) : NULL;
    if (!d) {
        fprintf(stderr, "bench_distill: %s\n", pool ? err.msg : "cannot start the threads");
        return 1;
    }
    int64_t B = batch, T = seq, V = scfg.vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T)), *tgt = malloc(sizeof(int32_t) * (size_t)(B * T));
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < T; p++) {
            uint64_t i = (uint64_t)(b * (T + 1) + p);
            ids[b * T + p] = (int32_t)(lm_rng_u64(seed, LM_RNG_BENCH, i) % (uint64_t)V);
            tgt[b * T + p] = (int32_t)(lm_rng_u64(seed, LM_RNG_BENCH, i + 1) % (uint64_t)V);
        }
    lm_distill_stats st;
    double loss0 = NAN;
    for (int k = 0; k < warmup; k++) {
        if (lm_distill_step(d, pool, ids, tgt, 1e-3, &st, &err)) {
            fprintf(stderr, "bench_distill: %s\n", err.msg);
            return 1;
        }
        if (k == 0) loss0 = st.loss;
    }
    double *wall = malloc(sizeof(double) * (size_t)steps), cpu = 0;
    for (int k = 0; k < steps; k++) {
        double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_s(CLOCK_MONOTONIC);
        if (lm_distill_step(d, pool, ids, tgt, 1e-3, &st, &err)) {
            fprintf(stderr, "bench_distill: %s\n", err.msg);
            return 1;
        }
        wall[k] = clock_s(CLOCK_MONOTONIC) - t0;
        cpu += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (isnan(loss0)) loss0 = st.loss;
        fprintf(stderr, "bench_distill %dt: step %d %.3f s (%.0f tokens/s) loss %.5f\n", threads, k + 1, wall[k],
                (double)(B * T) / wall[k], st.loss);
    }
    double total = 0;
    for (int k = 0; k < steps; k++) total += wall[k];
    qsort(wall, (size_t)steps, sizeof *wall, cmp_double);
    double med = steps % 2 ? wall[steps / 2] : (wall[steps / 2 - 1] + wall[steps / 2]) / 2;
    char sn[128], tn[128];
    printf("{\"bench\":\"lemma_distill\",\"student\":\"%s\",\"teacher\":\"%s\",\"threads\":%d,\"batch\":%lld,"
           "\"seq\":%lld,\"temperature\":%g,\"top_k\":%lld,\"steps\":%d,\"step_s_median\":%.4f,\"step_s_best\":%.4f,"
           "\"tokens_per_s\":%.1f,\"cpu_util\":%.3f,\"tokens_per_cpu_s\":%.1f,\"loss_first\":%.6f,\"loss_last\":%.6f}\n",
           base_name(student_path, sn, sizeof sn), base_name(teacher_path, tn, sizeof tn), threads, (long long)B,
           (long long)T, tau, (long long)top_k, steps, med, wall[0], (double)(B * T) / med, cpu / (total * threads),
           (double)(B * T) * steps / cpu, loss0, st.loss);
    free(wall);
    free(ids);
    free(tgt);
    lm_distiller_free(d);
    lm_pool_free(pool);
    lm_params_free(s);
    lm_params_free(t);
    return 0;
}
