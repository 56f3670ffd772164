/* bench_invariance.c — what batch invariance costs lm_matmul.
 *
 * lm_matmul gives every output one fma chain in k order whatever the number
 * of rows T (docs/arithmetic.md), so a sequence's logits do not depend on
 * what else is in the batch. A kernel that may change its reduction order
 * with T can do what BLAS libraries do: pick its blocking by shape and add
 * partial sums of K blocks (each started from zero in registers) into y, and
 * split a decode matvec's chain in two (even and odd k) for more independent
 * accumulators. This file has such a kernel ("free", AVX-512, F32 and BF16
 * weights in lemma's panel layout; here only, lemma never uses it) and times
 * it against lm_matmul on bench-m's projection shapes at T = 1, 4, 16, 64:
 *
 *   free kernel  T = 1: 8 panels (128 rows) x 2 accumulator sets (even and
 *                odd k) = 16 chains, summed at the end;
 *                T > 1: register tiles of 6 tokens x 4 panels (24 zmm
 *                accumulators; lm_matmul's are 4 x 4), K in blocks of 128
 *                when T > 6 (the block of weights stays in L1 while every
 *                token tile runs over it), each block's sums started from
 *                zero and added to y: the order depends on T.
 *
 * Weights are read "cold" (the set of shapes is copied until it is 3x the
 * last-level cache, and calls cycle through the copies), as in decode of a
 * model bigger than the cache. Each figure: the best of --batches batches of
 * passes over all shapes (the machine may be shared). Before timing, both
 * kernels are checked against each other (max |diff| relative to max |y|,
 * and the share of outputs whose bits differ) and for batch invariance
 * (row 0 of a T = 16 product against the same row alone, T = 1).
 *
 *   bench_invariance [--threads N] [--quick] [--batches B]
 *
 * Prints a table (GFLOP/s of each kernel, free / lm_matmul) and one JSON
 * line. Without AVX-512 it says so and exits 0. */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/threadpool.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the free (order-changing) kernel ---- */

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define INL static inline __attribute__((always_inline)) TGT

/* 16 weights of one column of a panel, as f32 (BF16: a shift, exact). */
INL __m512 load_w(const int bf16, const uint8_t *p) {
    if (bf16)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    return _mm512_loadu_ps((const float *)p);
}

/* Panels g0 .. g0+GP of the block at `blk` (R rows), tokens t0 .. t0+TB,
 * columns k0 .. k1: SPLIT accumulator sets (set s takes k = k0 + s mod
 * SPLIT), started from zero, summed, then stored (first K block) or added to
 * y. Rows of the block start at global row `row_blk`. */
INL void free_micro(const int bf16, const int GP, const int TB, const int SPLIT, float *y, int64_t N,
                    const float *x, int64_t K, const uint8_t *blk, int64_t R, int64_t row_blk, int64_t g0,
                    int64_t t0, int64_t k0, int64_t k1) {
    size_t es = bf16 ? 2 : 4, stride = (size_t)R * es;
    __m512 acc[SPLIT][GP][TB];
#pragma GCC unroll 2
    for (int s = 0; s < SPLIT; s++)
#pragma GCC unroll 8
        for (int g = 0; g < GP; g++)
#pragma GCC unroll 6
            for (int t = 0; t < TB; t++) acc[s][g][t] = _mm512_setzero_ps();
    const uint8_t *col = blk + ((size_t)k0 * (size_t)R + (size_t)g0 * LM_PANEL) * es;
    const float *xr = x + t0 * K;
    for (int64_t k = k0; k < k1; k += SPLIT) {
#pragma GCC unroll 2
        for (int s = 0; s < SPLIT; s++, col += stride) {
#pragma GCC unroll 8
            for (int g = 0; g < GP; g++) {
                __m512 w = load_w(bf16, col + (size_t)g * LM_PANEL * es);
#pragma GCC unroll 6
                for (int t = 0; t < TB; t++)
                    acc[s][g][t] = _mm512_fmadd_ps(w, _mm512_set1_ps(xr[t * K + k + s]), acc[s][g][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int g = 0; g < GP; g++) {
        float *yr = y + t0 * N + row_blk + g0 * LM_PANEL + g * LM_PANEL;
#pragma GCC unroll 6
        for (int t = 0; t < TB; t++) {
            __m512 v = SPLIT == 2 ? _mm512_add_ps(acc[0][g][t], acc[SPLIT - 1][g][t]) : acc[0][g][t];
            if (k0 > 0) v = _mm512_add_ps(_mm512_loadu_ps(yr + t * N), v);
            _mm512_storeu_ps(yr + t * N, v);
        }
    }
}

typedef void (*free_fn)(float *y, int64_t N, const float *x, int64_t K, const uint8_t *blk, int64_t R,
                        int64_t row_blk, int64_t g0, int64_t t0, int64_t k0, int64_t k1);
/* One noinline function per shape of register tile, so each is unrolled. */
#define FREE_FN(BF, GP, TB, SP)                                                                          \
    static TGT __attribute__((noinline)) void free_##BF##_##GP##_##TB##_##SP(                             \
        float *y, int64_t N, const float *x, int64_t K, const uint8_t *blk, int64_t R, int64_t row_blk,   \
        int64_t g0, int64_t t0, int64_t k0, int64_t k1) {                                                 \
        free_micro(BF, GP, TB, SP, y, N, x, K, blk, R, row_blk, g0, t0, k0, k1);                          \
    }
#define FREE_TB(BF, GP) FREE_FN(BF, GP, 1, 1) FREE_FN(BF, GP, 2, 1) FREE_FN(BF, GP, 3, 1) \
    FREE_FN(BF, GP, 4, 1) FREE_FN(BF, GP, 5, 1) FREE_FN(BF, GP, 6, 1)
#define FREE_DT(BF) FREE_TB(BF, 1) FREE_TB(BF, 2) FREE_TB(BF, 4) \
    FREE_FN(BF, 1, 1, 2) FREE_FN(BF, 2, 1, 2) FREE_FN(BF, 4, 1, 2) FREE_FN(BF, 8, 1, 2)
FREE_DT(0)
FREE_DT(1)
#define ROW_TB(BF, GP) {free_##BF##_##GP##_1_1, free_##BF##_##GP##_2_1, free_##BF##_##GP##_3_1, \
    free_##BF##_##GP##_4_1, free_##BF##_##GP##_5_1, free_##BF##_##GP##_6_1}
/* [bf16][log2 GP: 1, 2, 4][TB - 1] for T > 1; [bf16][log2 GP: 1 .. 8] for T = 1 */
static const free_fn free_tiles[2][3][6] = {{ROW_TB(0, 1), ROW_TB(0, 2), ROW_TB(0, 4)},
                                            {ROW_TB(1, 1), ROW_TB(1, 2), ROW_TB(1, 4)}};
static const free_fn free_vec[2][4] = {{free_0_1_1_2, free_0_2_1_2, free_0_4_1_2, free_0_8_1_2},
                                       {free_1_1_1_2, free_1_2_1_2, free_1_4_1_2, free_1_8_1_2}};

enum { FREE_TB_MAX = 6, FREE_KC = 128 };

/* Panels p0 .. p1 (16 rows each) of W, all T tokens. */
static void free_panels(float *y, const float *x, int64_t T, const lm_mat *W, int64_t p0, int64_t p1) {
    int bf = W->dtype == LM_DTYPE_BF16;
    size_t es = bf ? 2 : 4;
    int64_t N = W->rows, K = W->cols, kc = T > FREE_TB_MAX ? FREE_KC : K;
    for (int64_t q = p0 * LM_PANEL / LM_PANEL_BLOCK; q * LM_PANEL_BLOCK < p1 * LM_PANEL; q++) {
        int64_t R = lm_panel_rows(W, q), row_blk = q * LM_PANEL_BLOCK;
        const uint8_t *blk = (const uint8_t *)W->data + (size_t)row_blk * (size_t)K * es;
        int64_t ga = p0 * LM_PANEL > row_blk ? (p0 * LM_PANEL - row_blk) / LM_PANEL : 0;
        int64_t gb = (p1 * LM_PANEL < row_blk + R ? p1 * LM_PANEL - row_blk : R) / LM_PANEL;
        for (int64_t g0 = ga; g0 < gb;) {
            int64_t left = gb - g0;
            if (T == 1) {
                int lg = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
                free_vec[bf][lg](y, N, x, K, blk, R, row_blk, g0, 0, 0, K);
                g0 += 1 << lg;
                continue;
            }
            int lg = left >= 4 ? 2 : left >= 2 ? 1 : 0;
            for (int64_t k0 = 0; k0 < K; k0 += kc) {
                int64_t k1 = k0 + kc < K ? k0 + kc : K;
                for (int64_t t0 = 0; t0 < T; t0 += FREE_TB_MAX) {
                    int64_t tb = T - t0 < FREE_TB_MAX ? T - t0 : FREE_TB_MAX;
                    free_tiles[bf][lg][tb - 1](y, N, x, K, blk, R, row_blk, g0, t0, k0, k1);
                }
            }
            g0 += 1 << lg;
        }
    }
}

/* Threads share units of 4 panels (64 rows; 8 = a block at T = 1 when
 * there are enough) through an atomic counter, as lm_matmul shares its
 * tiles (lm_pool_run_dynamic: a worker that wakes late costs nothing). */
typedef struct free_job {
    float *y;
    const float *x;
    int64_t T;
    const lm_mat *W;
    int64_t unit, nunits;
    _Atomic int64_t next;
} free_job;

static void free_task(void *ctx, int ith, int nth) {
    free_job *j = (free_job *)ctx;
    (void)ith, (void)nth;
    int64_t np = j->W->rows / LM_PANEL;
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->nunits) return;
        int64_t p0 = u * j->unit, p1 = p0 + j->unit < np ? p0 + j->unit : np;
        free_panels(j->y, j->x, j->T, j->W, p0, p1);
    }
}

static void free_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W) {
    int64_t np = W->rows / LM_PANEL; /* the shapes here are multiples of 16 rows */
    free_job j = {y, x, T, W, T == 1 && np >= 16 * lm_pool_size(pool) ? 8 : 4, 0, 0};
    j.nunits = (np + j.unit - 1) / j.unit;
    atomic_init(&j.next, 0);
    lm_pool_run_dynamic(j.nunits > 1 ? pool : NULL, free_task, &j);
}

/* ---- shapes, matrices ---- */

/* bench-m (shared/data/bench-presets/bench-m.json): hidden 512, q_lora 256,
 * kv_lora 128 + rope 32, 8 heads x (64 nope + 32 rope) for q, v 64, dense
 * intermediate 1536, experts 384, vocab 8192. */
typedef struct shape {
    const char *name;
    int64_t N, K;
} shape;
static const shape shapes[] = {
    {"q_a", 256, 512},        {"q_b", 768, 256},          {"kv_a", 160, 512},
    {"o_proj", 512, 512},     {"mlp_gate_up", 1536, 512}, {"mlp_down", 512, 1536},
    {"expert_up", 384, 512},  {"expert_down", 512, 384},  {"lm_head", 8192, 512},
};
enum { NSHAPE = sizeof shapes / sizeof shapes[0] };

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float rnd_val(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return ((float)(rs % 2001) - 1000.0f) * 1e-3f;
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_invariance: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* A random N x K matrix of dtype dt in panels (as lm_model_load packs it). */
static lm_mat make_panels(lm_dtype dt, int64_t N, int64_t K) {
    size_t es = lm_dtype_size(dt), n = (size_t)(N * K);
    uint8_t *rows = (uint8_t *)xalloc(n * es);
    for (size_t i = 0; i < n; i++) {
        float v = rnd_val();
        if (dt == LM_DTYPE_F32) memcpy(rows + 4 * i, &v, 4);
        else {
            uint16_t h = lm_f32_to_bf16(v);
            memcpy(rows + 2 * i, &h, 2);
        }
    }
    lm_mat W = {dt, N, K, rows, NULL, LM_LAYOUT_ROWS, 0};
    void *pd = xalloc(lm_mat_panel_bytes(&W));
    lm_mat_pack_panels(&W, pd, 0, lm_panel_blocks(&W));
    free(rows);
    W.data = pd;
    W.layout = LM_LAYOUT_PANELS;
    return W;
}

typedef void (*matmul_fn)(lm_pool *, float *, const float *, int64_t, const lm_mat *);

/* Seconds for one pass over all shapes (best of `batches`), cycling over
 * `ncopy` copies of the set so the weights come from DRAM; per_shape gets
 * each shape's seconds per call in the best batch. */
static double time_pass(matmul_fn fn, lm_pool *pool, float *y, const float *x, int64_t T, lm_mat *Ws, int ncopy,
                        int batches, double min_time, double per_shape[NSHAPE]) {
    for (int s = 0; s < NSHAPE; s++) fn(pool, y, x, T, &Ws[s]); /* warm */
    double best = 1e300;
    for (int b = 0; b < batches; b++) {
        double acc[NSHAPE] = {0}, t0 = now_s(), t;
        long passes = 0;
        do {
            lm_mat *set = Ws + (size_t)(passes % ncopy) * NSHAPE;
            for (int s = 0; s < NSHAPE; s++) {
                double c0 = now_s();
                fn(pool, y, x, T, &set[s]);
                acc[s] += now_s() - c0;
            }
            passes++;
            t = now_s() - t0;
        } while (t < min_time || passes < ncopy);
        if (t / passes < best) {
            best = t / passes;
            for (int s = 0; s < NSHAPE; s++) per_shape[s] = acc[s] / passes;
        }
    }
    return best;
}

/* Max |a - b| over max |b|, and how many of n floats differ in their bits. */
static double rel_diff(const float *a, const float *b, size_t n, size_t *ndiff) {
    double dmax = 0, ymax = 0;
    *ndiff = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > dmax) dmax = d;
        if (fabs((double)b[i]) > ymax) ymax = fabs((double)b[i]);
        if (memcmp(&a[i], &b[i], 4)) (*ndiff)++;
    }
    return ymax > 0 ? dmax / ymax : dmax;
}

static char json[16384];
static size_t json_len;
static void json_add(const char *key, double v) {
    json_len += (size_t)snprintf(json + json_len, sizeof json - json_len, ",\"%s\":%.5g", key, v);
}

int main(int argc, char **argv) {
    int maxth = 2, quick = 0, batches = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) maxth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: bench_invariance [--threads N] [--quick] [--batches B]\n");
            return 2;
        }
    }
    if (maxth < 1 || maxth > 64 || batches < 1 || batches > 1000) {
        fprintf(stderr, "bench_invariance: --threads in [1, 64], --batches in [1, 1000]\n");
        return 2;
    }
    if (quick) batches = batches < 3 ? batches : 3;
    double min_time = quick ? 0.03 : 0.1;
    if (lm_cpu_isa() != LM_ISA_AVX512) {
        printf("bench_invariance: skipped: the comparison kernel is written for AVX-512 (this CPU: %s)\n",
               lm_isa_name(lm_cpu_isa()));
        printf("{\"skipped\":\"no AVX-512\"}\n");
        return 0;
    }
    int ths[2] = {1, maxth}, nths = maxth > 1 ? 2 : 1;
    lm_pool *pools[2] = {NULL, nths > 1 ? lm_pool_create(maxth) : NULL};
    if (nths > 1 && !pools[1]) {
        fprintf(stderr, "bench_invariance: cannot start %d threads\n", maxth);
        return 1;
    }
    static const int64_t Ts[] = {1, 4, 16, 64};
    static const lm_dtype dts[] = {LM_DTYPE_F32, LM_DTYPE_BF16};
    int64_t maxN = 0, maxK = 0;
    double set_flops = 0; /* per token, one pass */
    for (int s = 0; s < NSHAPE; s++) {
        if (shapes[s].N > maxN) maxN = shapes[s].N;
        if (shapes[s].K > maxK) maxK = shapes[s].K;
        set_flops += 2.0 * (double)shapes[s].N * (double)shapes[s].K;
    }
    float *x = (float *)xalloc((size_t)(64 * maxK) * 4);
    float *y0 = (float *)xalloc((size_t)(64 * maxN) * 4), *y1 = (float *)xalloc((size_t)(64 * maxN) * 4);
    float *yr = (float *)xalloc((size_t)maxN * 4);
    for (int64_t i = 0; i < 64 * maxK; i++) x[i] = rnd_val();
    size_t llc = 32u << 20; /* bytes the copies must exceed 3x: the L3 of the bench machines */
    printf("bench_invariance: lm_matmul (one fma chain per output, any T) against a kernel free to\n"
           "reorder its sums by T (split chains at T=1; 6x4 tiles, K blocks of %d from zero at T>%d);\n"
           "bench-m projection shapes, one pass = each of the %d shapes once, weights cold; best of %d\n",
           FREE_KC, FREE_TB_MAX, NSHAPE, batches);
    json_len += (size_t)snprintf(json, sizeof json, "{\"bench\":\"invariance\",\"isa\":\"%s\"",
                                 lm_isa_name(lm_cpu_isa()));
    int wrong = 0;
    printf("\n| dtype | thr |  T | lm_matmul GFLOP/s | free GFLOP/s | free / lm_matmul | free vs lm: max rel diff, bits differ | T=16 row 0 == T=1 (lm / free) |\n");
    printf("|-------|-----|----|-------------------|--------------|------------------|---------------------------------------|-------------------------------|\n");
    for (int di = 0; di < 2; di++) {
        lm_dtype dt = dts[di];
        size_t set_bytes = 0;
        for (int s = 0; s < NSHAPE; s++) set_bytes += (size_t)(shapes[s].N * shapes[s].K) * lm_dtype_size(dt);
        int ncopy = (int)((3 * llc + set_bytes - 1) / set_bytes);
        if (quick && ncopy > 2) ncopy = (ncopy + 1) / 2;
        lm_mat *Ws = (lm_mat *)malloc(sizeof(lm_mat) * (size_t)(ncopy * NSHAPE));
        if (!Ws) return 1;
        for (int s = 0; s < NSHAPE; s++) Ws[s] = make_panels(dt, shapes[s].N, shapes[s].K);
        for (int c = 1; c < ncopy; c++)
            for (int s = 0; s < NSHAPE; s++) {
                lm_mat *W = &Ws[c * NSHAPE + s];
                *W = Ws[s];
                size_t b = lm_mat_panel_bytes(W);
                void *d = xalloc(b);
                memcpy(d, Ws[s].data, b);
                W->data = d;
            }
        /* correctness and invariance, T = 16 and its row 0 alone */
        double worst = 0;
        size_t nd_all = 0, n_all = 0, inv_lm = 0, inv_free = 0;
        for (int s = 0; s < NSHAPE; s++) {
            const lm_mat *W = &Ws[s];
            size_t nd, n = (size_t)(16 * W->rows);
            memset(y0, 0, n * 4);
            memset(y1, 0, n * 4);
            lm_matmul(NULL, y0, x, 16, W);
            free_matmul(NULL, y1, x, 16, W);
            double r = rel_diff(y1, y0, n, &nd);
            if (r > worst) worst = r;
            nd_all += nd, n_all += n;
            size_t d1;
            lm_matmul(NULL, yr, x, 1, W);
            rel_diff(yr, y0, (size_t)W->rows, &d1);
            inv_lm += d1;
            free_matmul(NULL, yr, x, 1, W);
            rel_diff(yr, y1, (size_t)W->rows, &d1);
            inv_free += d1;
        }
        if (worst > 1e-5) {
            printf("bench_invariance: the free kernel is WRONG for %s (max rel diff %.3g)\n", lm_dtype_name(dt),
                   worst);
            wrong = 1;
        }
        for (int ti = 0; ti < nths; ti++)
            for (int tt = 0; tt < 4; tt++) {
                int64_t T = Ts[tt];
                double ps_lm[NSHAPE], ps_free[NSHAPE];
                double t_lm = time_pass(lm_matmul, pools[ti], y0, x, T, Ws, ncopy, batches, min_time, ps_lm);
                double t_fr = time_pass(free_matmul, pools[ti], y1, x, T, Ws, ncopy, batches, min_time, ps_free);
                double g_lm = set_flops * (double)T / t_lm * 1e-9, g_fr = set_flops * (double)T / t_fr * 1e-9;
                char cmp[64] = "", inv[48] = "";
                if (ti == 0 && tt == 0) {
                    snprintf(cmp, sizeof cmp, "%.1e, %.0f%%", worst, 100.0 * (double)nd_all / (double)n_all);
                    snprintf(inv, sizeof inv, "%s / %s", inv_lm ? "NO" : "yes",
                             inv_free ? "no" : "yes");
                }
                printf("| %-5s | %3d | %2lld | %17.1f | %12.1f | %15.2fx | %-37s | %-29s |\n", lm_dtype_name(dt),
                       ths[ti], (long long)T, g_lm, g_fr, g_fr / g_lm, cmp, inv);
                char k[96];
                snprintf(k, sizeof k, "lm_%s_T%lld_%dt", lm_dtype_name(dt), (long long)T, ths[ti]);
                json_add(k, g_lm);
                snprintf(k, sizeof k, "free_%s_T%lld_%dt", lm_dtype_name(dt), (long long)T, ths[ti]);
                json_add(k, g_fr);
                if (ti == 0 && (T == 1 || T == 64)) /* where the time goes, for the notes */
                    for (int s = 0; s < NSHAPE; s++) {
                        snprintf(k, sizeof k, "shape_%s_%s_T%lld_ratio", shapes[s].name, lm_dtype_name(dt),
                                 (long long)T);
                        json_add(k, ps_lm[s] / ps_free[s]);
                    }
            }
        char k[64];
        snprintf(k, sizeof k, "maxreldiff_%s", lm_dtype_name(dt));
        json_add(k, worst);
        snprintf(k, sizeof k, "bits_differ_%s", lm_dtype_name(dt));
        json_add(k, (double)nd_all / (double)n_all);
        snprintf(k, sizeof k, "lm_invariant_%s", lm_dtype_name(dt));
        json_add(k, inv_lm == 0);
        snprintf(k, sizeof k, "free_invariant_%s", lm_dtype_name(dt));
        json_add(k, inv_free == 0);
        if (inv_lm) {
            printf("bench_invariance: lm_matmul's row 0 differs between T=16 and T=1 (%zu outputs): a bug\n",
                   inv_lm);
            wrong = 1;
        }
        for (int c = 0; c < ncopy * NSHAPE; c++) free((void *)Ws[c].data);
        free(Ws);
    }
    printf("\nGFLOP/s = 2 N K T per shape, summed over the pass, / the pass's time; free / lm_matmul > 1:\n"
           "the order-changing kernel is faster (what invariance costs), < 1: lm_matmul is faster.\n");
    printf("%s}\n", json);
    free(x);
    free(y0);
    free(y1);
    free(yr);
    lm_pool_free(pools[1]);
    return wrong;
}
