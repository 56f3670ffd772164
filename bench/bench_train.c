/* bench_train.c — training throughput of lemma on a model config (the bench
 * presets), with random token ids: no tokenizer, no data, no checkpoint.
 *
 *   build/release/bench/bench_train PRESET.json [--threads N] [--steps S]
 *       [--warmup W] [--batch B] [--seq T] [--micro M] [--seed S] [--peak G] [--name NAME]
 *       [--precision f32|bf16]
 *
 * What it does, for one thread count (one process per measurement, so that
 * the peak RSS is that measurement's own):
 *   - parses the HF config (lm_config_parse); batch and seq default to its
 *     "bench" field ({"batch_size", "seq_len"});
 *   - lm_params_create + lm_params_init_random(seed, 0.02) (= `lemma init`);
 *   - lm_trainer_create with the default options of `lemma train` (AdamW
 *     0.9/0.95/1e-8, wd 0.1, clip 1.0, MoE bias gamma 0.001), micro-batch =
 *     batch unless --micro;
 *   - ids: lm_rng_u64(seed, LM_RNG_BENCH, i) % vocab over B*(T+1) tokens,
 *     row b is tokens b*(T+1) .. b*(T+1)+T, targets = ids shifted by one
 *     (every position has a target);
 *   - W untimed warm-up steps (default 1), then S timed steps (default 5;
 *     3 when T >= 512), each timed alone (clock_gettime MONOTONIC) with the
 *     process CPU time beside it;
 *   - prints one JSON line: median / best step time, tokens/s (B*T / step
 *     time), tokens per CPU-second, FLOP counts, GFLOP/s and the fraction of
 *     the peak, peak RSS (getrusage ru_maxrss), the first and last loss.
 *
 * Profiling: with BENCH_PERF_CTL_FD / BENCH_PERF_ACK_FD set (perf record
 * -D -1 --control fd:CTL,ACK), perf counts the timed steps only
 * (bench/train_bench.sh --profile does this).
 *
 * FLOPs counted (model FLOPs, what the step must do, not what it does):
 *   6 * N_active per token for the weight matmuls (2 forward + 4 backward),
 *     N_active = the parameters one token multiplies with: every attention
 *     and dense-FFN weight, the shared experts, top-k of the E routed
 *     experts, the router, the head; not the embedding (a lookup). The norm
 *     weights are in N_active as in lm_model_params()'s "active" (< 0.1%);
 *   attention core, causal: per layer and token, the scores q.k over
 *     (T+1)/2 keys on average with dn+dr dims and P.V with dv dims, 2 flops a
 *     multiply-add, x3 for forward + backward: 3 * H * (dn+dr+dv) * (T+1)
 *     per layer and token. The backward's recomputation of P (flash style)
 *     is not counted, nor the softmax, norms, SwiGLU, rope, AdamW.
 * "peak_frac" follows the issue: 6 * N_active only; "peak_frac_attn" adds
 * the attention core.
 *
 * Peak: the 1-thread FMA anchor of bench/bench_matmul (the same register-only
 * loop of 12 independent AVX-512 / AVX2 FMA chains), timed here on the
 * thread's CPU clock so that a busy machine does not depress it, best of
 * several; the peak at N threads is N times that (a 2-thread anchor on a
 * shared 2-core machine measures the neighbours, not the machine). --peak G
 * overrides it (GFLOP/s per thread). "peak_frac_nominal" is against the
 * issue's nominal 200 GFLOP/s per thread.
 *
 * Noise: "cpu_util" = process CPU time / (wall time * threads) over the
 * timed steps; well below 1 means the threads waited for a core (or for
 * each other). "tokens_per_cpu_s" = tokens per second of process CPU time:
 * at 1 thread, what tokens/s would be on an idle core; "peak_frac_cpu" is
 * the fraction of one core's peak per CPU-second. From each thread's
 * /proc/self/task/TID/schedstat: "busiest_thread_cpu_s" = the CPU time of
 * the busiest thread per step and "tokens_per_s_idle_est" = B*T over it, an
 * estimate of tokens/s on an idle machine at this thread count (a thread
 * that is never preempted finishes its share in its CPU time; the serial
 * parts run on the caller, which is the busiest thread, so they count in
 * full); "runqueue_wait_frac" = time the threads spent runnable but waiting
 * for a CPU / (wall * threads), the direct measure of the neighbours' load.
 * The step is bit-identical at any thread count, so only time differs
 * between runs. */
#include <dirent.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "core/threadpool.h"
#include "formats/json.h"
#include "model/config.h"
#include "train/params.h"
#include "train/step.h"

#include "fma_peak.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the FMA anchor (bench_matmul.c's loop, shorter, on the thread clock) ---- */

#define FMA_ITERS 2000000L
static volatile double fma_sink;

/* GFLOP/s of one thread, best of reps, on the thread's CPU clock. */
static double fma_anchor_1t(int reps) {
    double best = 0;
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0 && !__builtin_cpu_supports("avx512f")) continue;
        if (kind == 1 && !__builtin_cpu_supports("avx2")) continue;
        for (int r = 0; r < reps; r++) {
            double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            fma_sink = kind == 0 ? fma_loop_avx512(FMA_ITERS) : fma_loop_avx2(FMA_ITERS);
            double t = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
            double gf = (double)FMA_ITERS * 12 * (kind == 0 ? 16 : 8) * 2 / t * 1e-9;
            if (gf > best) best = gf;
        }
    }
    return best;
}

/* ---- counting ---- */

/* Parameters one token multiplies with (lm_model_params()'s "active"). */
static double active_params(const lm_config *c) {
    double D = (double)c->hidden_size, H = (double)c->num_attention_heads, dn = (double)c->qk_nope_head_dim,
           dr = (double)c->qk_rope_head_dim, dv = (double)c->v_head_dim, C = (double)c->kv_lora_rank,
           Q = (double)c->q_lora_rank, V = (double)c->vocab_size;
    double attn = (Q > 0 ? Q * D + Q + H * (dn + dr) * Q : H * (dn + dr) * D) + (C + dr) * D + C + H * (dn + dv) * C +
                  D * H * dv + 2 * D;
    double expert = 3.0 * (double)c->moe_intermediate_size * D;
    double n = V * D + D; /* head (a full matmul per token, tied or not) + final norm */
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        n += attn;
        if (!lm_config_layer_is_moe(c, l)) n += 3.0 * (double)c->intermediate_size * D;
        else
            n += (double)c->num_experts_per_tok * expert + (double)c->n_shared_experts * expert +
                 (double)c->n_routed_experts * D;
    }
    return n;
}

/* ---- per-thread CPU and run-queue time (/proc/self/task/<tid>/schedstat:
 * ns on a CPU, ns runnable but waiting for one, slices) ---- */

enum { MAX_TASKS = 256 };
typedef struct task_snap {
    int n;
    long tid[MAX_TASKS];
    double run[MAX_TASKS], wait[MAX_TASKS];
} task_snap;

static void task_snapshot(task_snap *s) {
    s->n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && s->n < MAX_TASKS) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        unsigned long long run, wait;
        if (fscanf(f, "%llu %llu", &run, &wait) == 2) {
            s->tid[s->n] = atol(e->d_name);
            s->run[s->n] = (double)run * 1e-9;
            s->wait[s->n] = (double)wait * 1e-9;
            s->n++;
        }
        fclose(f);
    }
    closedir(d);
}

/* Over the threads of b: the largest CPU time since a, and the summed
 * run-queue wait. Returns 0 when schedstat is unavailable. */
static int task_delta(const task_snap *a, const task_snap *b, double *busiest, double *wait) {
    *busiest = 0, *wait = 0;
    if (!b->n) return 0;
    for (int i = 0; i < b->n; i++) {
        double r0 = 0, w0 = 0;
        for (int k = 0; k < a->n; k++)
            if (a->tid[k] == b->tid[i]) r0 = a->run[k], w0 = a->wait[k];
        if (b->run[i] - r0 > *busiest) *busiest = b->run[i] - r0;
        *wait += b->wait[i] - w0;
    }
    return 1;
}

/* perf's control descriptors (perf record -D -1 --control fd:CTL,ACK): the
 * timed steps alone are profiled. BENCH_PERF_CTL_FD / BENCH_PERF_ACK_FD. */
static void perf_ctl(const char *cmd) {
    const char *c = getenv("BENCH_PERF_CTL_FD"), *a = getenv("BENCH_PERF_ACK_FD");
    if (!c || !*c) return;
    int cfd = atoi(c);
    if (write(cfd, cmd, strlen(cmd)) < 0) return;
    if (a && *a) {
        char buf[16];
        if (read(atoi(a), buf, sizeof buf) < 0) return;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    printf("usage: bench_train PRESET.json [--threads N] [--steps S] [--warmup W] [--batch B] [--seq T]\n"
           "                   [--micro M] [--seed S] [--peak GFLOPS_PER_THREAD] [--name NAME] [--precision f32|bf16]\n"
           "  PRESET.json   an HF config.json; batch/seq default to its \"bench\" field\n"
           "  --threads N   threads (default 1)\n"
           "  --steps S     timed steps (default 5, 3 when seq >= 512)\n"
           "  --warmup W    untimed steps first (default 1)\n"
           "  --micro M     sequences per forward/backward (default: the whole batch)\n"
           "  --peak G      peak GFLOP/s per thread (default: measured FMA anchor)\n"
           "Prints one JSON line (see the header of bench/bench_train.c).\n");
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL, *name = NULL;
    int threads = 1, steps = 0, warmup = 1;
    lm_precision precision = LM_PRECISION_F32;
    int64_t batch = 0, seq = 0, micro = 0;
    uint64_t seed = 1;
    double peak_arg = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && more) warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) batch = atoll(argv[++i]);
        else if (!strcmp(a, "--seq") && more) seq = atoll(argv[++i]);
        else if (!strcmp(a, "--micro") && more) micro = atoll(argv[++i]);
        else if (!strcmp(a, "--seed") && more) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--peak") && more) peak_arg = atof(argv[++i]);
        else if (!strcmp(a, "--name") && more) name = argv[++i];
        else if (!strcmp(a, "--precision") && more) {
            if (lm_precision_parse(argv[++i], &precision)) {
                fprintf(stderr, "bench_train: --precision must be f32 or bf16 (got %s)\n", argv[i]);
                return 2;
            }
        }
        else if (a[0] != '-' && !cfg_path) cfg_path = a;
        else {
            fprintf(stderr, "bench_train: unknown or incomplete option %s\n", a);
            usage();
            return 2;
        }
    }
    if (!cfg_path) {
        usage();
        return 2;
    }
    if (threads < 1) threads = 1;
    if (warmup < 0) warmup = 0;

    lm_error err;
    char *text;
    size_t len;
    if (lm_read_file(cfg_path, 16u << 20, &text, &len, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    lm_config cfg;
    if (lm_config_parse(text, len, cfg_path, &cfg, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        free(text);
        return 1;
    }
    json_doc *doc = json_parse(text, len, &err);
    free(text);
    if (doc) {
        const json_value *b = json_get(json_root(doc), "bench");
        int64_t v;
        if (b && !batch && json_as_int(json_get(b, "batch_size"), &v)) batch = v;
        if (b && !seq && json_as_int(json_get(b, "seq_len"), &v)) seq = v;
        json_free(doc);
    }
    if (batch <= 0 || seq <= 0) {
        fprintf(stderr, "bench_train: %s has no \"bench\" field: give --batch and --seq\n", cfg_path);
        return 1;
    }
    if (!steps) steps = seq >= 512 ? 3 : 5;
    if (!name) {
        const char *s = strrchr(cfg_path, '/');
        name = s ? s + 1 : cfg_path;
    }
    char pname[256];
    snprintf(pname, sizeof pname, "%s", name);
    char *dot = strstr(pname, ".json");
    if (dot) *dot = 0;

    lm_params *p;
    if (lm_params_create(&cfg, &p, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    lm_params_init_random(p, seed, 0.02);
    lm_train_opts o = lm_train_opts_default();
    o.batch = batch;
    o.seq = seq;
    o.micro_batch = micro;
    o.precision = precision;
    lm_pool *pool = lm_pool_create(threads);
    if (!pool) {
        fprintf(stderr, "bench_train: cannot start %d threads\n", threads);
        return 1;
    }
    lm_trainer *tr = lm_trainer_create(p, &o, threads, &err);
    if (!tr) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }

    int64_t B = batch, T = seq, V = cfg.vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T)), *tgt = malloc(sizeof(int32_t) * (size_t)(B * T));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            uint64_t i = (uint64_t)(b * (T + 1) + t);
            ids[b * T + t] = (int32_t)(lm_rng_u64(seed, LM_RNG_BENCH, i) % (uint64_t)V);
            tgt[b * T + t] = (int32_t)(lm_rng_u64(seed, LM_RNG_BENCH, i + 1) % (uint64_t)V);
        }

    const double lr = 1e-3;
    lm_train_stats st;
    double loss0 = NAN;
    for (int s = 0; s < warmup; s++) {
        if (lm_train_step(tr, pool, ids, tgt, lr, &st, &err)) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
        if (s == 0) loss0 = st.loss;
    }
    double *wall = malloc(sizeof(double) * (size_t)steps), cpu_total = 0, wall_total = 0;
    static task_snap ts0, ts1;
    task_snapshot(&ts0);
    perf_ctl("enable\n");
    for (int s = 0; s < steps; s++) {
        double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_s(CLOCK_MONOTONIC);
        if (lm_train_step(tr, pool, ids, tgt, lr, &st, &err)) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
        wall[s] = clock_s(CLOCK_MONOTONIC) - t0;
        cpu_total += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        wall_total += wall[s];
        if (s == 0 && warmup == 0) loss0 = st.loss;
        fprintf(stderr, "bench_train %s %dt: step %d %.3f s (%.0f tokens/s) loss %.4f\n", pname, threads, s + 1,
                wall[s], (double)(B * T) / wall[s], st.loss);
    }
    perf_ctl("disable\n");
    task_snapshot(&ts1);
    double busiest = 0, rq_wait = 0;
    int have_sched = task_delta(&ts0, &ts1, &busiest, &rq_wait);
    double loss_last = st.loss;
    qsort(wall, (size_t)steps, sizeof(double), cmp_double);
    double med = steps % 2 ? wall[steps / 2] : 0.5 * (wall[steps / 2 - 1] + wall[steps / 2]);
    double best = wall[0], worst = wall[steps - 1];

    /* the trained weights' digest: a kernel change that keeps the bits keeps it */
    uint8_t digest[32];
    char wsha[65];
    lm_sha256_buf(p->w, sizeof(float) * (size_t)p->n_floats, digest);
    lm_sha256_hex(digest, wsha);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = (double)ru.ru_maxrss / 1024.0;

    double n_active = active_params(&cfg);
    double attn_tok = 3.0 * (double)cfg.num_attention_heads *
                      (double)(cfg.qk_nope_head_dim + cfg.qk_rope_head_dim + cfg.v_head_dim) * (double)(T + 1) *
                      (double)cfg.num_hidden_layers;
    double f6n = 6.0 * n_active, ftok = f6n + attn_tok;
    double tps = (double)(B * T) / med, tps_best = (double)(B * T) / best;
    double anchor = peak_arg > 0 ? peak_arg : fma_anchor_1t(15);
    double peak = anchor * threads, nominal = 200.0 * threads;
    double gf = tps * f6n * 1e-9, gf_attn = tps * ftok * 1e-9;

    printf("{\"bench\":\"lemma_train\",\"preset\":\"%s\",\"threads\":%d,\"batch\":%lld,\"seq\":%lld,"
           "\"micro_batch\":%lld,\"warmup\":%d,\"steps\":%d,"
           "\"step_s_median\":%.4f,\"step_s_best\":%.4f,\"step_s_worst\":%.4f,"
           "\"tokens_per_s\":%.1f,\"tokens_per_s_best\":%.1f,\"cpu_util\":%.3f,\"tokens_per_cpu_s\":%.1f,"
           "\"busiest_thread_cpu_s\":%.4f,\"tokens_per_s_idle_est\":%.1f,\"runqueue_wait_frac\":%.3f,"
           "\"n_active\":%.0f,\"flops_per_token_6n\":%.0f,\"flops_per_token_attn\":%.0f,"
           "\"gflop_s\":%.2f,\"gflop_s_attn\":%.2f,\"peak_gflop_s\":%.1f,\"peak_source\":\"%s\","
           "\"peak_frac\":%.4f,\"peak_frac_attn\":%.4f,\"peak_frac_nominal\":%.4f,\"peak_frac_cpu\":%.4f,"
           "\"peak_rss_mib\":%.1f,\"params_bytes\":%zu,\"trainer_bytes\":%lld,"
           "\"loss_first\":%.5f,\"loss_last\":%.5f,\"precision\":\"%s\",\"isa\":\"%s\",\"weights_sha256\":\"%s\"}\n",
           pname, threads, (long long)B, (long long)T, (long long)(micro ? micro : B), warmup, steps, med, best, worst,
           tps, tps_best, cpu_total / (wall_total * threads), (double)(B * T) * steps / cpu_total,
           have_sched ? busiest / steps : NAN, have_sched && busiest > 0 ? (double)(B * T) * steps / busiest : NAN,
           have_sched ? rq_wait / (wall_total * threads) : NAN, n_active, f6n, attn_tok, gf, gf_attn, peak,
           peak_arg > 0 ? "--peak" : "fma_anchor_1t_x_threads", gf / peak, gf_attn / peak, gf / nominal,
           (double)(B * T) * steps / cpu_total * f6n * 1e-9 / anchor, rss_mib,
           p->block.bytes, (long long)lm_trainer_bytes(tr), loss0, loss_last, lm_precision_name(precision), lm_isa_name(lm_cpu_isa()), wsha);

    free(wall);
    free(ids);
    free(tgt);
    lm_trainer_free(tr);
    lm_pool_free(pool);
    lm_params_free(p);
    return 0;
}
