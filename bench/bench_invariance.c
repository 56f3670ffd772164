/* bench_invariance.c — what batch invariance costs lm_matmul.
 *
 * lm_matmul gives every output one fma chain in k order whatever the number
 * of rows T (docs/arithmetic.md), so a sequence's logits do not depend on
 * what else is in the batch. A kernel that may change its reduction order
 * with T can do what BLAS libraries do: pick its blocking by shape and add
 * partial sums of K blocks (each started from zero in registers) into y, and
 * split a decode matvec's chain in two (even and odd k) for more independent
 * accumulators. This file has such a kernel ("free", AVX-512, F32 and BF16
 * weights in lemma's panel layout; here only, lemma never uses it), the same
 * kernel held to lemma's order ("same-order": its tiles, lm_matmul's bits),
 * and times both against lm_matmul on bench-m's projection shapes at
 * T = 1, 4, 16, 64:
 *
 *   tiles        T = 1: 8 panels (128 rows); T > 1: 6 tokens x 4 panels (24
 *                zmm accumulators; lm_matmul's are 4 x 4), K in blocks of 128
 *                when T > 6 (the block of weights stays in L1 while every
 *                token tile runs over it);
 *   free         T = 1: two accumulator sets per output (even and odd k),
 *                summed at the end; T > 6: each K block's sums start from
 *                zero and are added to y. The order depends on T.
 *   same-order   T = 1: one chain; K blocks continue from y's partial sums.
 *
 * free / same-order is the cost of invariance (the same code but for the
 * order); same-order / lm_matmul is what lm_matmul's tiling leaves, which
 * needs no change of order to take.
 *
 * Weights are read "cold" (the set of shapes is copied until it is 3x the
 * last-level cache, and calls cycle through the copies), as in decode of a
 * model bigger than the cache. Each figure: the best of --batches batches of
 * passes over all shapes, the three kernels' batches alternating; at 1
 * thread per CPU second of the process (what another process on a shared
 * machine does not distort), at N threads per wall second. Before timing
 * (T = 1, 4, 16, 64, every shape): same-order must give lm_matmul's bits,
 * free must be within 1e-5 of max |y|, and lm_matmul's row 0 of a T = 16
 * product must equal the same row alone (T = 1); exit 1 otherwise.
 *
 *   bench_invariance [--threads N] [--quick] [--batches B]
 *
 * Prints a table (GFLOP/s of each kernel and the two ratios), the checks,
 * and one JSON line. Without AVX-512 it says so and exits 0. */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/threadpool.h"

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
 * y. Rows of the block start at global row `row_blk`. CANON (SPLIT 1): the
 * same tiles in lemma's order instead: the accumulators start from y's
 * partial sums after the first K block, so every output is one fma chain in
 * k order (docs/arithmetic.md), the bits of lm_matmul. */
INL void free_micro(const int CANON, const int bf16, const int GP, const int TB, const int SPLIT, float *y, int64_t N,
                    const float *x, int64_t K, const uint8_t *blk, int64_t R, int64_t row_blk, int64_t g0,
                    int64_t t0, int64_t k0, int64_t k1) {
    size_t es = bf16 ? 2 : 4, stride = (size_t)R * es;
    __m512 acc[SPLIT][GP][TB];
#pragma GCC unroll 2
    for (int s = 0; s < SPLIT; s++)
#pragma GCC unroll 8
        for (int g = 0; g < GP; g++)
#pragma GCC unroll 6
            for (int t = 0; t < TB; t++)
                acc[s][g][t] = CANON && k0 > 0 ? _mm512_loadu_ps(y + (t0 + t) * N + row_blk + (g0 + g) * LM_PANEL)
                                               : _mm512_setzero_ps();
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
            if (!CANON && k0 > 0) v = _mm512_add_ps(_mm512_loadu_ps(yr + t * N), v);
            _mm512_storeu_ps(yr + t * N, v);
        }
    }
}

typedef void (*free_fn)(float *y, int64_t N, const float *x, int64_t K, const uint8_t *blk, int64_t R,
                        int64_t row_blk, int64_t g0, int64_t t0, int64_t k0, int64_t k1);
/* One noinline function per register tile, so each is unrolled. */
#define FREE_FN(CN, BF, GP, TB, SP)                                                                      \
    static TGT __attribute__((noinline)) void free_##CN##_##BF##_##GP##_##TB##_##SP(                      \
        float *y, int64_t N, const float *x, int64_t K, const uint8_t *blk, int64_t R, int64_t row_blk,   \
        int64_t g0, int64_t t0, int64_t k0, int64_t k1) {                                                 \
        free_micro(CN, BF, GP, TB, SP, y, N, x, K, blk, R, row_blk, g0, t0, k0, k1);                      \
    }
#define FREE_TB(CN, BF, GP) FREE_FN(CN, BF, GP, 1, 1) FREE_FN(CN, BF, GP, 2, 1) FREE_FN(CN, BF, GP, 3, 1) \
    FREE_FN(CN, BF, GP, 4, 1) FREE_FN(CN, BF, GP, 5, 1) FREE_FN(CN, BF, GP, 6, 1)
#define FREE_DT(CN, BF, SP) FREE_TB(CN, BF, 1) FREE_TB(CN, BF, 2) FREE_TB(CN, BF, 4) \
    FREE_FN(CN, BF, 1, 1, SP) FREE_FN(CN, BF, 2, 1, SP) FREE_FN(CN, BF, 4, 1, SP) \
    FREE_FN(CN, BF, 8, 1, SP)
FREE_DT(0, 0, 2)
FREE_DT(0, 1, 2)
FREE_TB(1, 0, 1) FREE_TB(1, 0, 2) FREE_TB(1, 0, 4) FREE_FN(1, 0, 8, 1, 1)
FREE_TB(1, 1, 1) FREE_TB(1, 1, 2) FREE_TB(1, 1, 4) FREE_FN(1, 1, 8, 1, 1)
#define ROW_TB(CN, BF, GP) {free_##CN##_##BF##_##GP##_1_1, free_##CN##_##BF##_##GP##_2_1, \
    free_##CN##_##BF##_##GP##_3_1, free_##CN##_##BF##_##GP##_4_1, free_##CN##_##BF##_##GP##_5_1, \
    free_##CN##_##BF##_##GP##_6_1}
#define ROW_DT(CN, BF) {ROW_TB(CN, BF, 1), ROW_TB(CN, BF, 2), ROW_TB(CN, BF, 4)}
/* [canonical][bf16][log2 GP: 1, 2, 4][TB - 1] for T > 1 */
static const free_fn free_tiles[2][2][3][6] = {{ROW_DT(0, 0), ROW_DT(0, 1)}, {ROW_DT(1, 0), ROW_DT(1, 1)}};
/* [canonical][bf16][log2 GP: 1 .. 8] for T = 1: two chains per output (even and odd k) or one */
static const free_fn free_vec[2][2][4] = {
    {{free_0_0_1_1_2, free_0_0_2_1_2, free_0_0_4_1_2, free_0_0_8_1_2},
     {free_0_1_1_1_2, free_0_1_2_1_2, free_0_1_4_1_2, free_0_1_8_1_2}},
    {{free_1_0_1_1_1, free_1_0_2_1_1, free_1_0_4_1_1, free_1_0_8_1_1},
     {free_1_1_1_1_1, free_1_1_2_1_1, free_1_1_4_1_1, free_1_1_8_1_1}}};

enum { FREE_TB_MAX = 6, FREE_KC = 128 };

/* Panels p0 .. p1 (16 rows each) of W, all T tokens. */
static void free_panels(int canon, float *y, const float *x, int64_t T, const lm_mat *W, int64_t p0, int64_t p1) {
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
                free_vec[canon][bf][lg](y, N, x, K, blk, R, row_blk, g0, 0, 0, K);
                g0 += 1 << lg;
                continue;
            }
            int lg = left >= 4 ? 2 : left >= 2 ? 1 : 0;
            for (int64_t k0 = 0; k0 < K; k0 += kc) {
                int64_t k1 = k0 + kc < K ? k0 + kc : K;
                for (int64_t t0 = 0; t0 < T; t0 += FREE_TB_MAX) {
                    int64_t tb = T - t0 < FREE_TB_MAX ? T - t0 : FREE_TB_MAX;
                    free_tiles[canon][bf][lg][tb - 1](y, N, x, K, blk, R, row_blk, g0, t0, k0, k1);
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
    int canon;
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
        free_panels(j->canon, j->y, j->x, j->T, j->W, p0, p1);
    }
}

static void tiles_matmul(int canon, lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W) {
    int64_t np = W->rows / LM_PANEL; /* the shapes here are multiples of 16 rows */
    free_job j = {y, x, T, W, canon, T == 1 && np >= 16 * lm_pool_size(pool) ? 8 : 4, 0, 0};
    j.nunits = (np + j.unit - 1) / j.unit;
    atomic_init(&j.next, 0);
    lm_pool_run_dynamic(j.nunits > 1 ? pool : NULL, free_task, &j);
}
/* The free kernel: its reduction order depends on T. */
static void free_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W) {
    tiles_matmul(0, pool, y, x, T, W);
}
/* The same tiles in the canonical order: invariant, lm_matmul's bits. */
static void canon_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W) {
    tiles_matmul(1, pool, y, x, T, W);
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
    lm_mat W = {.dtype = dt, .rows = N, .cols = K, .data = rows};
    void *pd = xalloc(lm_mat_panel_bytes(&W));
    lm_mat_pack_panels(&W, pd, 0, lm_panel_blocks(&W));
    free(rows);
    W.data = pd;
    W.layout = LM_LAYOUT_PANELS;
    return W;
}

typedef void (*matmul_fn)(lm_pool *, float *, const float *, int64_t, const lm_mat *);

/* CPU seconds of this process: with one thread, the time the work really had
 * a core, which other processes on a shared machine do not inflate. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One batch: passes over all shapes for at least min_time, cycling over
 * `ncopy` copies of the set so the weights come from DRAM. Returns seconds
 * per pass (CPU seconds when `cpu`); per_shape gets each shape's share. */
static double one_batch(matmul_fn fn, lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *Ws,
                        int ncopy, double min_time, int cpu, double per_shape[NSHAPE]) {
    double acc[NSHAPE] = {0}, t0 = lm_now_s(), c0 = cpu_s(), t;
    long passes = 0;
    do {
        const lm_mat *set = Ws + (size_t)(passes % ncopy) * NSHAPE;
        for (int s = 0; s < NSHAPE; s++) {
            double s0 = lm_now_s();
            fn(pool, y, x, T, &set[s]);
            acc[s] += lm_now_s() - s0;
        }
        passes++;
        t = lm_now_s() - t0;
    } while (t < min_time || passes < ncopy);
    double total = cpu ? cpu_s() - c0 : t, wall = 0;
    for (int s = 0; s < NSHAPE; s++) wall += acc[s];
    for (int s = 0; s < NSHAPE; s++) per_shape[s] = acc[s] / wall * total / passes;
    return total / passes;
}

enum { NKERN = 3 };
static const matmul_fn kernels[NKERN] = {lm_matmul, canon_matmul, free_matmul};

/* The kernels, batches alternating (so a busy spell on a shared machine
 * hits all alike); the best batch of each. */
static void time_all(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *Ws, int ncopy, int batches,
                     double min_time, int cpu, double best[NKERN], double per_shape[NKERN][NSHAPE]) {
    for (int k = 0; k < NKERN; k++) {
        best[k] = 1e300;
        for (int s = 0; s < NSHAPE; s++) kernels[k](pool, y, x, T, &Ws[s]); /* warm */
    }
    for (int b = 0; b < batches; b++)
        for (int k = 0; k < NKERN; k++) {
            double ps[NSHAPE];
            double t = one_batch(kernels[k], pool, y, x, T, Ws, ncopy, min_time, cpu, ps);
            if (t < best[k]) {
                best[k] = t;
                memcpy(per_shape[k], ps, sizeof ps);
            }
        }
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
    printf("bench_invariance: what batch invariance costs. Three kernels on bench-m's %d projection shapes\n"
           "(one pass = each once), weights cold, best of %d batches:\n"
           "  lm_matmul  lemma's kernel: one fma chain per output in k order, any T;\n"
           "  same-order the free kernel's register tiles (6 tokens x 4 panels; T=1: 8 panels) in that\n"
           "             same order: lm_matmul's bits, batch-invariant;\n"
           "  free       the same tiles free to reorder by T: T=1 two chains per output (even/odd k),\n"
           "             T>%d K blocks of %d summed from zero: not batch-invariant.\n"
           "The cost of invariance is free / same-order; same-order / lm_matmul is tuning lm_matmul\n"
           "could still take without giving up a bit.\n",
           NSHAPE, batches, FREE_TB_MAX, FREE_KC);
    json_len += (size_t)snprintf(json, sizeof json, "{\"bench\":\"invariance\",\"isa\":\"%s\"",
                                 lm_isa_name(lm_cpu_isa()));
    int wrong = 0;
    printf("\n| dtype | thr |  T | lm_matmul GFLOP/s | same-order GFLOP/s | free GFLOP/s | same-order / lm | free / same-order (cost) |\n");
    printf("|-------|-----|----|-------------------|--------------------|--------------|-----------------|--------------------------|\n");
    char checks[2][256];
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
        /* Checks at T = 1, 4, 16, 64: same-order has lm_matmul's bits; free
         * is close; and row 0 of T = 16 against the same row alone. */
        double worst = 0;
        size_t nd_free = 0, n_all = 0, nd_canon = 0, inv_lm = 0, inv_free = 0;
        for (int s = 0; s < NSHAPE; s++) {
            const lm_mat *W = &Ws[s];
            for (int tt = 0; tt < 4; tt++) {
                size_t nd, n = (size_t)(Ts[tt] * W->rows);
                lm_matmul(NULL, y0, x, Ts[tt], W);
                canon_matmul(NULL, y1, x, Ts[tt], W);
                rel_diff(y1, y0, n, &nd);
                nd_canon += nd;
                free_matmul(NULL, y1, x, Ts[tt], W);
                double r = rel_diff(y1, y0, n, &nd);
                if (r > worst) worst = r;
                nd_free += nd, n_all += n;
            }
            size_t d1;
            lm_matmul(NULL, y0, x, 16, W);
            free_matmul(NULL, y1, x, 16, W);
            lm_matmul(NULL, yr, x, 1, W);
            rel_diff(yr, y0, (size_t)W->rows, &d1);
            inv_lm += d1;
            free_matmul(NULL, yr, x, 1, W);
            rel_diff(yr, y1, (size_t)W->rows, &d1);
            inv_free += d1;
        }
        snprintf(checks[di], sizeof checks[di],
                 "%s: same-order vs lm_matmul %zu of %zu outputs differ in their bits (T = 1, 4, 16, 64); free: "
                 "%.0f%% differ, max |diff| %.1e of max |y|; row 0 of T=16 == T=1 alone: lm_matmul %s, free %s",
                 lm_dtype_name(dt), nd_canon, n_all, 100.0 * (double)nd_free / (double)n_all, worst,
                 inv_lm ? "NO" : "yes", inv_free ? "no" : "yes");
        if (worst > 1e-5 || nd_canon || inv_lm) {
            printf("bench_invariance: WRONG: %s\n", checks[di]);
            wrong = 1;
        }
        for (int ti = 0; ti < nths; ti++)
            for (int tt = 0; tt < 4; tt++) {
                int64_t T = Ts[tt];
                double best[NKERN], ps[NKERN][NSHAPE], g[NKERN];
                time_all(pools[ti], y0, x, T, Ws, ncopy, batches, min_time, ths[ti] == 1, best, ps);
                for (int k = 0; k < NKERN; k++) g[k] = set_flops * (double)T / best[k] * 1e-9;
                printf("| %-5s | %3d | %2lld | %17.1f | %18.1f | %12.1f | %14.2fx | %23.2fx |\n", lm_dtype_name(dt),
                       ths[ti], (long long)T, g[0], g[1], g[2], g[1] / g[0], g[2] / g[1]);
                static const char *kn[NKERN] = {"lm", "same_order", "free"};
                char k[96];
                for (int kk = 0; kk < NKERN; kk++) {
                    snprintf(k, sizeof k, "%s_%s_T%lld_%dt", kn[kk], lm_dtype_name(dt), (long long)T, ths[ti]);
                    json_add(k, g[kk]);
                }
                if (ti == 0 && (T == 1 || T == 64)) /* where the time goes, for the notes */
                    for (int s = 0; s < NSHAPE; s++) {
                        snprintf(k, sizeof k, "shape_%s_%s_T%lld_free_over_same", shapes[s].name,
                                 lm_dtype_name(dt), (long long)T);
                        json_add(k, ps[1][s] / ps[2][s]);
                    }
            }
        char k[64];
        snprintf(k, sizeof k, "maxreldiff_free_%s", lm_dtype_name(dt));
        json_add(k, worst);
        snprintf(k, sizeof k, "bits_differ_free_%s", lm_dtype_name(dt));
        json_add(k, (double)nd_free / (double)n_all);
        snprintf(k, sizeof k, "bits_differ_same_order_%s", lm_dtype_name(dt));
        json_add(k, (double)nd_canon);
        snprintf(k, sizeof k, "free_invariant_%s", lm_dtype_name(dt));
        json_add(k, inv_free == 0);
        for (int c = 0; c < ncopy * NSHAPE; c++) free((void *)Ws[c].data);
        free(Ws);
    }
    printf("\n%s\n%s\n", checks[0], checks[1]);
    printf("GFLOP/s = 2 N K T per shape, summed over the pass, / the pass's time (1 thread: CPU time%s).\n"
           "free / same-order > 1: what invariance costs at that T.\n", nths > 1 ? "; more: wall time" : "");
    printf("%s}\n", json);
    free(x);
    free(y0);
    free(y1);
    free(yr);
    lm_pool_free(pools[1]);
    return wrong;
}
