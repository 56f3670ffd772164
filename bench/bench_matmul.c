/* bench_matmul.c — lm_matmul throughput against the machine's own anchors.
 *
 * Measured in one run, on 1 and 2 threads (or --threads):
 *   anchors  peak FMA rate (register-only FMA loop, 12 independent
 *            accumulators, AVX-512 and AVX2; the higher counts) and memory
 *            read bandwidth (sum over a 512 MiB buffer, pre-faulted);
 *   prefill  GFLOP/s of lm_matmul at T=512 and T=64, K=N=2048, for F32,
 *            BF16, F16, FP8 and Q8 (I8; 2*T*K*N flops), and the ratio to peak;
 *   decode   GB/s of W read by lm_matmul at T=1: "cold" cycles through
 *            enough matrices (>= 512 MiB) that every call reads DRAM,
 *            "hot" repeats one L2/L3-resident matrix; ratio to bandwidth.
 * The weights are in the layout the model loads them into (panels of 16
 * rows, LM_LAYOUT_PANELS; --rows: row-major, as in the files).
 * Every figure is the best of several batches (the machine may be shared:
 * compare a ratio only with the anchors of the same run). 1-thread rows also
 * give the figure per CPU second ("cpu-time", JSON *_cpu), which time-sharing
 * with other processes does not distort, and its ratio to the anchor's.
 * One line per measurement, then one JSON line with everything.
 * LEMMA_ISA=scalar|avx2|avx512 caps the kernels (see kernels.h). */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/threadpool.h"

#include "fma_peak.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of this process: on 1 thread, the time the work really had a
 * core, whatever else the machine runs. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double last_cpu; /* CPU seconds of the last anchor run / best matmul batch */

/* ---- anchors ---- */

#define FMA_ITERS 20000000L


typedef struct anchor_arg {
    int kind; /* 0 fma avx512, 1 fma avx2, 2 read */
    const float *buf;
    size_t n;
    double sink;
    pthread_barrier_t *bar;
    double t0, t1;
} anchor_arg;

__attribute__((target("avx512f"))) static double sum_avx512(const float *p, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(p + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(p + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(p + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static void *anchor_thread(void *v) {
    anchor_arg *a = (anchor_arg *)v;
    pthread_barrier_wait(a->bar);
    a->t0 = now_s();
    if (a->kind == 0) a->sink = fma_loop_avx512(FMA_ITERS);
    else if (a->kind == 1) a->sink = fma_loop_avx2(FMA_ITERS);
    else a->sink = sum_avx512(a->buf, a->n);
    a->t1 = now_s();
    return NULL;
}

/* Runs `nth` threads of one anchor kind; returns the wall time of the slowest. */
static double run_anchor(int kind, int nth, const float *buf, size_t n) {
    pthread_t tid[64];
    anchor_arg arg[64];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nth);
    double c0 = cpu_s();
    for (int i = 0; i < nth; i++) {
        arg[i] = (anchor_arg){kind, buf ? buf + n / nth * i : NULL, n / nth, 0, &bar, 0, 0};
        pthread_create(&tid[i], NULL, anchor_thread, &arg[i]);
    }
    double t0 = 1e300, t1 = 0;
    for (int i = 0; i < nth; i++) {
        pthread_join(tid[i], NULL);
        if (arg[i].t0 < t0) t0 = arg[i].t0;
        if (arg[i].t1 > t1) t1 = arg[i].t1;
    }
    last_cpu = cpu_s() - c0;
    pthread_barrier_destroy(&bar);
    return t1 - t0;
}

/* ---- JSON accumulation ---- */

static char json[16384];
static size_t json_len;
static void json_add(const char *key, double v) {
    json_len += (size_t)snprintf(json + json_len, sizeof json - json_len, "%s\"%s\":%.4g",
                                 json_len ? "," : "", key, v);
}

/* One result line. cpu > 0 (1-thread rows): the same figure per CPU second,
 * and cpu_ratio its ratio to the anchor's per-CPU-second figure. */
static void row(const char *name, const char *what, double v, const char *unit, double ratio,
                const char *vs, double cpu, double cpu_ratio) {
    char extra[96] = "";
    if (cpu > 0 && cpu_ratio > 0) snprintf(extra, sizeof extra, "   cpu-time %.2f (%.1f%%)", cpu, 100 * cpu_ratio);
    else if (cpu > 0) snprintf(extra, sizeof extra, "   cpu-time %.2f", cpu);
    if (ratio > 0) printf("%-26s %-8s %8.2f %-7s %6.1f%% of %-8s%s\n", name, what, v, unit, 100 * ratio, vs, extra);
    else printf("%-26s %-8s %8.2f %-7s%s\n", name, what, v, unit, extra);
    char k[96];
    json_add(name, v);
    if (ratio > 0) {
        snprintf(k, sizeof k, "%s_ratio", name);
        json_add(k, ratio);
    }
    if (cpu > 0) {
        snprintf(k, sizeof k, "%s_cpu", name);
        json_add(k, cpu);
    }
    if (cpu_ratio > 0) {
        snprintf(k, sizeof k, "%s_cpu_ratio", name);
        json_add(k, cpu_ratio);
    }
}

/* ---- matrices ---- */

static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)rs;
}

static void *alloc_big(size_t bytes) {
    size_t al = 1u << 21;
    void *p = aligned_alloc(al, (bytes + al - 1) / al * al);
    if (!p) {
        fprintf(stderr, "bench_matmul: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    madvise(p, (bytes + al - 1) / al * al, MADV_HUGEPAGE);
    return p;
}

static int use_panels = 1; /* --rows: 0 */

static lm_mat make_mat(lm_dtype dt, int64_t N, int64_t K, float **scale_out) {
    size_t n = (size_t)(N * K), es = lm_dtype_size(dt);
    uint8_t *d = (uint8_t *)alloc_big(n * es);
    for (size_t i = 0; i < n; i++) {
        float v = ((float)(rnd() % 2001) - 1000.0f) * 1e-3f;
        if (dt == LM_DTYPE_F32) memcpy(d + 4 * i, &v, 4);
        else if (dt == LM_DTYPE_BF16) {
            uint16_t h = lm_f32_to_bf16(v);
            memcpy(d + 2 * i, &h, 2);
        } else if (dt == LM_DTYPE_F16) {
            uint16_t h = lm_f32_to_f16(v);
            memcpy(d + 2 * i, &h, 2);
        } else if (dt == LM_DTYPE_I8) d[i] = (uint8_t)(int8_t)((int)(rnd() % 255) - 127);
        else d[i] = lm_f32_to_fp8e4m3(v * 400);
    }
    float *s = NULL;
    uint16_t *q8 = NULL;
    if (dt == LM_DTYPE_I8) { /* Q8 scales: F16 [N, K/32]; freed through *scale_out */
        size_t ns = (size_t)(N * ((K + 31) / 32));
        q8 = (uint16_t *)malloc(ns * 2);
        for (size_t i = 0; i < ns; i++) q8[i] = lm_f32_to_f16(1.0f / 127);
        s = (float *)q8;
    }
    if (dt == LM_DTYPE_F8_E4M3) {
        size_t ns = (size_t)(((N + 127) / 128) * ((K + 127) / 128));
        s = (float *)malloc(ns * sizeof(float));
        for (size_t i = 0; i < ns; i++) s[i] = 1.0f / 400;
    }
    *scale_out = s;
    lm_mat W = {.dtype = dt, .rows = N, .cols = K, .data = d, .scale_inv = q8 ? NULL : s, .q8_scale = q8};
    if (!use_panels) return W;
    void *pd = alloc_big(lm_mat_panel_bytes(&W));
    W.fp8_nan_free = lm_mat_pack_panels(&W, pd, 0, lm_panel_blocks(&W)) == 0; /* as the model loads it */
    free(d);
    W.data = pd;
    W.layout = LM_LAYOUT_PANELS;
    return W;
}

static const lm_dtype dts[] = {LM_DTYPE_F32, LM_DTYPE_BF16, LM_DTYPE_F16, LM_DTYPE_F8_E4M3, LM_DTYPE_I8};
enum { NDT = sizeof dts / sizeof dts[0] };

static int batches = 7; /* best of: the machine may be shared */

/* Seconds per call: repeats until min_time, best of `batches` batches. */
static double time_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W,
                          int nW, double min_time) {
    lm_matmul(pool, y, x, T, &W[0]); /* warm scratch */
    double best = 1e300, best_cpu = 1e300;
    for (int rep = 0; rep < batches; rep++) {
        long calls = 0;
        double t0 = now_s(), c0 = cpu_s(), t;
        do {
            lm_matmul(pool, y, x, T, &W[calls % nW]);
            calls++;
            t = now_s() - t0;
        } while (t < min_time || calls < nW);
        double c = cpu_s() - c0;
        if (t / calls < best) best = t / calls;
        if (c / calls < best_cpu) best_cpu = c / calls;
    }
    last_cpu = best_cpu;
    return best;
}

static void usage(void) {
    printf("usage: bench_matmul [--threads N] [--size S] [--quick] [--rows] [--decode-only] [--dtypes LIST]\n"
           "  --threads N  measure at 1 and N threads (default 2)\n"
           "  --size S     K = N for the prefill GEMM (default 2048)\n"
           "  --quick      shorter timings, smaller bandwidth buffer (for smoke runs)\n"
           "  --rows       weights row-major (as in the files), not in the panels the model loads\n"
           "  --decode-only  the anchors and the matvec rows only (no prefill GEMM)\n"
           "  --dtypes LIST  only these weight dtypes, comma-separated: f32,bf16,f16,fp8,q8 (default all)\n"
           "Env LEMMA_ISA=scalar|avx2|avx512 caps the kernels.\n");
}

/* Is dts[di] in the comma-separated list (f32,bf16,f16,fp8,q8)? NULL: all. */
static int dtype_wanted(const char *list, int di) {
    static const char *names[] = {"f32", "bf16", "f16", "fp8", "q8"};
    if (!list) return 1;
    size_t n = strlen(names[di]);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, names[di], n)) return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

int main(int argc, char **argv) {
    int maxth = 2, quick = 0, decode_only = 0;
    const char *dtypes = NULL;
    int64_t S = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) maxth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) S = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--rows")) use_panels = 0;
        else if (!strcmp(argv[i], "--decode-only")) decode_only = 1;
        else if (!strcmp(argv[i], "--dtypes") && i + 1 < argc) dtypes = argv[++i];
        else {
            fprintf(stderr, "bench_matmul: unknown option %s\n", argv[i]);
            usage();
            return 2;
        }
    }
    if (maxth < 1) maxth = 1;
    if (maxth > 64) maxth = 64;
    int ths[2] = {1, maxth}, nths = maxth > 1 ? 2 : 1;
    double min_time = quick ? 0.05 : 0.15;
    if (quick) batches = 3;
    char also[32] = "";
    if (nths > 1) snprintf(also, sizeof also, " and %d", maxth);
    printf("bench_matmul: isa %s, threads 1%s, weights %s\n", lm_isa_name(lm_cpu_isa()), also,
           use_panels ? "in panels" : "row-major");
    json_len += (size_t)snprintf(json, sizeof json, "\"isa\":\"%s\",\"layout\":\"%s\"", lm_isa_name(lm_cpu_isa()),
                                 use_panels ? "panels" : "rows");

    /* anchors */
    double peak[2] = {0, 0}, bw[2] = {0, 0}, peak_cpu = 0, bw_cpu = 0;
    size_t bwn = (quick ? 128u : 512u) << 20 >> 2; /* floats */
    float *bwbuf = (float *)alloc_big(bwn * 4);
    for (size_t i = 0; i < bwn; i++) bwbuf[i] = 1.0f; /* fault every page in now */
    for (int ti = 0; ti < nths; ti++) {
        int nth = ths[ti];
        char name[64];
        double best = 0;
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0 && !__builtin_cpu_supports("avx512f")) continue;
            double t = 1e300, c = 1e300;
            for (int rep = 0; rep < (quick ? 1 : 3); rep++) {
                double r = run_anchor(kind, nth, NULL, 0);
                if (r < t) t = r;
                if (last_cpu < c) c = last_cpu;
            }
            double flops = (double)nth * FMA_ITERS * 12 * (kind == 0 ? 16 : 8) * 2;
            double gf = flops / t * 1e-9, gfc = nth == 1 ? flops / c * 1e-9 : 0;
            snprintf(name, sizeof name, "peak_fma_%s_%dt", kind == 0 ? "avx512" : "avx2", nth);
            row(name, "anchor", gf, "GFLOP/s", 0, "", gfc, 0);
            if (gf > best) best = gf;
            if (gfc > peak_cpu) peak_cpu = gfc;
        }
        peak[ti] = best;
        double t = 1e300, c = 1e300;
        for (int rep = 0; rep < batches; rep++) {
            double r = run_anchor(2, nth, bwbuf, bwn);
            if (r < t) t = r;
            if (last_cpu < c) c = last_cpu;
        }
        bw[ti] = (double)bwn * 4 / t * 1e-9;
        if (nth == 1) bw_cpu = (double)bwn * 4 / c * 1e-9;
        snprintf(name, sizeof name, "mem_read_%dt", nth);
        row(name, "anchor", bw[ti], "GB/s", 0, "", nth == 1 ? bw_cpu : 0, 0);
    }
    free(bwbuf);

    lm_pool *pools[2] = {NULL, nths > 1 ? lm_pool_create(maxth) : NULL};

    /* prefill */
    static const int64_t Ts[] = {512, 64};
    float *x = (float *)alloc_big((size_t)(512 * S) * 4), *y = (float *)alloc_big((size_t)(512 * S) * 4);
    for (int64_t i = 0; i < 512 * S; i++) x[i] = ((float)(rnd() % 2001) - 1000.0f) * 1e-3f;
    for (int di = 0; di < NDT; di++) {
        if (decode_only || !dtype_wanted(dtypes, di)) continue;
        float *sc;
        lm_mat W = make_mat(dts[di], S, S, &sc);
        for (int tt = 0; tt < 2; tt++)
            for (int ti = 0; ti < nths; ti++) {
                double t = time_matmul(pools[ti], y, x, Ts[tt], &W, 1, min_time);
                double gf = 2.0 * (double)Ts[tt] * (double)S * (double)S / t * 1e-9;
                char name[64], vs[64];
                snprintf(name, sizeof name, "gemm_%s_T%lld_%dt", lm_dtype_name(dts[di]), (long long)Ts[tt], ths[ti]);
                snprintf(vs, sizeof vs, "peak %dt", ths[ti]);
                double gfc = ths[ti] == 1 ? 2.0 * (double)Ts[tt] * (double)S * (double)S / last_cpu * 1e-9 : 0;
                row(name, "prefill", gf, "GFLOP/s", gf / peak[ti], vs, gfc, gfc / peak_cpu);
            }
        free((void *)W.data);
        free(sc);
    }

    /* decode: hot (one matrix, stays in cache) and cold (>= 512 MiB of matrices) */
    for (int di = 0; di < NDT; di++) {
        if (!dtype_wanted(dtypes, di)) continue;
        lm_dtype dt = dts[di];
        int64_t Kd = 2048, Nd = 2048;
        size_t wbytes = (size_t)(Kd * Nd) * lm_dtype_size(dt); /* stored bytes, Q8 with its scales */
        if (dt == LM_DTYPE_I8) wbytes += (size_t)(Nd * (Kd / 32)) * 2;
        int nW = (int)(((quick ? 256u : 512u) << 20) / wbytes);
        lm_mat *Ws = (lm_mat *)malloc(sizeof(lm_mat) * (size_t)nW);
        float **scs = (float **)malloc(sizeof(float *) * (size_t)nW);
        for (int i = 0; i < nW; i++) {
            if (i == 0) {
                Ws[i] = make_mat(dt, Nd, Kd, &scs[i]);
                continue;
            }
            size_t stored = use_panels ? lm_mat_panel_bytes(&Ws[0]) : wbytes;
            void *d = alloc_big(stored); /* copies of the first: same cost, faster to build */
            memcpy(d, Ws[0].data, stored);
            Ws[i] = Ws[0];
            Ws[i].data = d;
            scs[i] = NULL;
        }
        for (int ti = 0; ti < nths; ti++) {
            char name[64], vs[64];
            double t = time_matmul(pools[ti], y, x, 1, Ws, nW, min_time);
            double gb = (double)wbytes / t * 1e-9, gbc = ths[ti] == 1 ? (double)wbytes / last_cpu * 1e-9 : 0;
            snprintf(name, sizeof name, "matvec_%s_cold_%dt", lm_dtype_name(dt), ths[ti]);
            snprintf(vs, sizeof vs, "mem %dt", ths[ti]);
            row(name, "decode", gb, "GB/s", gb / bw[ti], vs, gbc, gbc / bw_cpu);
            t = time_matmul(pools[ti], y, x, 1, Ws, 1, min_time);
            gb = (double)wbytes / t * 1e-9, gbc = ths[ti] == 1 ? (double)wbytes / last_cpu * 1e-9 : 0;
            snprintf(name, sizeof name, "matvec_%s_hot_%dt", lm_dtype_name(dt), ths[ti]);
            row(name, "decode", gb, "GB/s", gb / bw[ti], vs, gbc, gbc / bw_cpu);
        }
        for (int i = 0; i < nW; i++) {
            free((void *)Ws[i].data);
            free(scs[i]);
        }
        free(Ws);
        free(scs);
    }
    printf("{%s}\n", json);
    free(x);
    free(y);
    lm_pool_free(pools[1]);
    return 0;
}
