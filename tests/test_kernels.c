/* test_kernels.c — every kernel on every ISA this CPU has, against the
 * scalar double-precision references.
 *
 * Matmul tolerance. For y = sum_k w_k x_k computed in float (any order, FMA
 * or not), the rounding error is a sum of at most K+1 terms each bounded by
 * u * (a partial sum or a product) <= u * S, S = sum_k |w_k x_k|, u = 2^-24.
 * The rigorous bound (K+1) u S is too loose to catch a dropped term for large
 * K, so we use 8 (sqrt(K) + 1) u S (+ u |y| for the final rounding): exact
 * for K <= 64, and for larger K a random-walk bound with a wide margin
 * (random data; the observed error is ~u S). Dropping one of K terms moves y
 * by ~S/K, well above this for every K tested. FP8 adds one rounding per
 * weight (byte value times block scale): another u S.
 *
 * Determinism: lm_matmul must give identical bits at 1, 2, 3 and 8 threads
 * (compared with memcmp), for every ISA, dtype and shape. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "test.h"

static const double U = 0x1p-24;

/* ---- deterministic random numbers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) * 0x1p-53; }
static float rng_sym(float a) { return (float)((2 * rng_unif() - 1) * a); }

/* ---- ISA loop ---- */

static int isa_list(lm_isa *out) {
    int n = 0;
    for (int i = LM_ISA_SCALAR; i <= (int)lm_cpu_isa(); i++) out[n++] = (lm_isa)i;
    return n;
}

TEST(isa_selection) {
    lm_isa best = lm_cpu_isa();
    printf("  cpu isa: %s\n", lm_isa_name(best));
    lm_isa old = lm_set_isa(LM_ISA_SCALAR);
    CHECK(lm_set_isa(LM_ISA_AVX512) == LM_ISA_SCALAR);
    CHECK(lm_set_isa(old) == best); /* requests above the CPU are capped */
    CHECK(strcmp(lm_isa_name(LM_ISA_AVX2), "avx2") == 0);
    CHECK(strcmp(lm_isa_name(LM_ISA_SCALAR), "scalar") == 0);
    CHECK(strcmp(lm_isa_name(LM_ISA_AVX512), "avx512") == 0);
}

/* ---- weight matrices in every dtype ---- */

typedef struct test_mat {
    lm_mat m;
    void *alloc;   /* data lives at alloc + 1 byte: deliberately misaligned */
    float *scale;  /* FP8 block scales */
} test_mat;

static void make_mat(test_mat *tm, lm_dtype dt, int64_t N, int64_t K) {
    size_t es = lm_dtype_size(dt), n = (size_t)(N * K);
    tm->alloc = malloc(n * es + 2);
    uint8_t *d = (uint8_t *)tm->alloc + 1;
    tm->scale = NULL;
    for (size_t i = 0; i < n; i++) {
        float v = rng_sym(1.0f);
        if (dt == LM_DTYPE_F32) memcpy(d + 4 * i, &v, 4);
        else if (dt == LM_DTYPE_BF16) {
            uint16_t h = lm_f32_to_bf16(v);
            memcpy(d + 2 * i, &h, 2);
        } else if (dt == LM_DTYPE_F16) {
            uint16_t h = lm_f32_to_f16(v);
            memcpy(d + 2 * i, &h, 2);
        } else { /* FP8: spread over the whole range, subnormals included */
            uint8_t b = (uint8_t)(rng_u64() & 0xff);
            if ((b & 0x7f) == 0x7f) b ^= 1; /* no NaN */
            d[i] = b;
        }
    }
    if (dt == LM_DTYPE_F8_E4M3) {
        int64_t sr = (N + 127) / 128, sc = (K + 127) / 128;
        tm->scale = (float *)malloc((size_t)(sr * sc) * sizeof(float));
        /* distinct scale per block, so a wrong block index shows */
        for (int64_t i = 0; i < sr * sc; i++) tm->scale[i] = (float)(1e-3 * (1 + i % 7) * (1 + 0.1 * (double)(i / 7)));
    }
    tm->m = (lm_mat){.dtype = dt, .rows = N, .cols = K, .data = d, .scale_inv = tm->scale};
}

static void free_mat(test_mat *tm) {
    free(tm->alloc);
    free(tm->scale);
}

static const lm_dtype all_dtypes[] = {LM_DTYPE_F32, LM_DTYPE_BF16, LM_DTYPE_F16, LM_DTYPE_F8_E4M3};

TEST(mat_row_exact) {
    for (int di = 0; di < 4; di++) {
        test_mat tm;
        make_mat(&tm, all_dtypes[di], 130, 129);
        float row[129];
        int bad = 0;
        for (int64_t r = 0; r < 130; r++) {
            lm_mat_row(&tm.m, r, row);
            float want[129];
            lm_convert_to_f32(want, (const uint8_t *)tm.m.data + (size_t)(r * 129) * lm_dtype_size(tm.m.dtype),
                              tm.m.dtype, 129);
            for (int64_t c = 0; c < 129; c++) {
                if (tm.scale) want[c] *= tm.scale[(r / 128) * 2 + c / 128];
                bad += memcmp(&row[c], &want[c], 4) != 0;
            }
        }
        CHECKF(bad == 0, "%s: %d elements wrong", lm_dtype_name(all_dtypes[di]), bad);
        free_mat(&tm);
    }
}

/* sum_k |w_k x_k| for the tolerance, in double */
static void abs_products(double *S, const float *x, int64_t T, const lm_mat *W) {
    int64_t N = W->rows, K = W->cols;
    float *row = (float *)malloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        lm_mat_row(W, n, row);
        for (int64_t t = 0; t < T; t++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += fabs((double)row[k] * x[t * K + k]);
            S[t * N + n] = s;
        }
    }
    free(row);
}

typedef struct shape {
    int64_t T, K, N;
} shape;

static const shape shapes[] = {
    {1, 1, 1},     {1, 127, 130},  {3, 129, 1},    {17, 129, 130}, {64, 256, 257}, {1, 1024, 64},
    {2, 300, 70},  {4, 64, 33},    {5, 200, 45},   {8, 129, 20},   {9, 33, 65},    {16, 128, 128},
    {31, 17, 49},  {33, 520, 31},  {64, 1, 33},    {3, 1, 300},    {65, 300, 100}, {130, 257, 67},
    {1, 2048, 40}, {12, 130, 131},
};

/* Runs one shape/dtype on every ISA and thread count. */
static void check_matmul(lm_pool **pools, int npools, const shape *sh, lm_dtype dt) {
    int64_t T = sh->T, K = sh->K, N = sh->N;
    test_mat tm;
    make_mat(&tm, dt, N, K);
    /* x and y one float past a 64-byte boundary; y has guard words around it */
    float *xa = (float *)aligned_alloc(64, (size_t)(T * K + 16 + 15) / 16 * 64);
    float *x = xa + 1;
    for (int64_t i = 0; i < T * K; i++) x[i] = rng_sym(2.0f);
    if (K > 3 && T > 1) x[K + 2] = 0.0f; /* a few exact zeros and a big value */
    if (T * K > 5) x[5] = 50.0f;
    size_t ny = (size_t)(T * N);
    float *ref = (float *)malloc(ny * sizeof(float));
    double *S = (double *)malloc(ny * sizeof(double));
    float *ya = (float *)aligned_alloc(64, (ny + 32 + 15) / 16 * 64);
    float *y = ya + 3;
    float *first = (float *)malloc(ny * sizeof(float));
    lm_matmul_ref(ref, x, T, &tm.m);
    abs_products(S, x, T, &tm.m);
    double extra = dt == LM_DTYPE_F8_E4M3 ? 1.0 : 0.0;
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int cfg = 0; cfg < 3 * nisa; cfg++) {
        int ii = cfg / 3, path = cfg % 3; /* automatic, matvec, gemm */
        if (isas[ii] == LM_ISA_SCALAR && path) continue;
        lm_set_isa(isas[ii]);
        lm_matmul_force_path(path);
        for (int pi = 0; pi < npools; pi++) {
            for (size_t i = 0; i < ny + 32; i++) ya[i] = -12345.0f;
            lm_matmul(pools[pi], y, x, T, &tm.m);
            int guard_bad = 0;
            for (int i = 0; i < 3; i++) guard_bad += ya[i] != -12345.0f;
            for (size_t i = ny + 3; i < ny + 32; i++) guard_bad += ya[i] != -12345.0f;
            CHECKF(guard_bad == 0, "wrote outside y: T=%lld K=%lld N=%lld", (long long)T, (long long)K, (long long)N);
            if (pi == 0) {
                double worst = 0;
                int64_t bad = 0, wi = 0;
                for (size_t i = 0; i < ny; i++) {
                    double tol = (8 * (sqrt((double)K) + 1) + extra) * U * S[i] + U * fabs(ref[i]) + 1e-30;
                    double err = fabs((double)y[i] - ref[i]);
                    if (!(err <= tol)) bad++;
                    if (err / tol > worst || isnan(err)) worst = err / tol, wi = (int64_t)i;
                }
                CHECKF(bad == 0, "%s path %d %s T=%lld K=%lld N=%lld: %lld wrong, worst err/tol %.3g at %lld (y %.9g ref %.9g)",
                       lm_isa_name(isas[ii]), path, lm_dtype_name(dt), (long long)T, (long long)K, (long long)N,
                       (long long)bad, worst, (long long)wi, y[wi], ref[wi]);
                memcpy(first, y, ny * sizeof(float));
            } else {
                CHECKF(memcmp(first, y, ny * sizeof(float)) == 0,
                       "%s path %d %s T=%lld K=%lld N=%lld: %d threads differ from 1 thread",
                       lm_isa_name(isas[ii]), path, lm_dtype_name(dt), (long long)T, (long long)K, (long long)N,
                       lm_pool_size(pools[pi]));
            }
        }
    }
    lm_matmul_force_path(0);
    lm_set_isa(saved);
    free(first);
    free(ya);
    free(S);
    free(ref);
    free(xa);
    free_mat(&tm);
}

static lm_pool *pools[4];
static int npools;

static void make_pools(void) {
    if (npools) return;
    pools[npools++] = NULL; /* 1 thread */
    static const int sizes[] = {2, 3, 8};
    for (int i = 0; i < 3; i++) pools[npools++] = lm_pool_create(sizes[i]);
}

TEST(matmul_f32) {
    make_pools();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_matmul(pools, npools, &shapes[s], LM_DTYPE_F32);
}
TEST(matmul_bf16) {
    make_pools();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_matmul(pools, npools, &shapes[s], LM_DTYPE_BF16);
}
TEST(matmul_f16) {
    make_pools();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_matmul(pools, npools, &shapes[s], LM_DTYPE_F16);
}
TEST(matmul_fp8) {
    make_pools();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_matmul(pools, npools, &shapes[s], LM_DTYPE_F8_E4M3);
}

/* Larger shapes, typical of the model: one dtype each, fewer repeats. */
TEST(matmul_model_shapes) {
    make_pools();
    static const shape big[] = {{1, 2048, 512}, {64, 1024, 256}, {200, 512, 384}, {300, 100, 400}, {530, 40, 70},
                                {40, 4100, 200}}; /* K > 4096: x packed per K block */
    for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
        for (int di = 0; di < 4; di++) check_matmul(pools, npools, &big[s], all_dtypes[di]);
}

/* NaN and inf in x propagate as in the reference (no masking tricks that
 * would turn NaN * 0 into 0 on the padded lanes, or lose an inf). */
TEST(matmul_nonfinite_x) {
    make_pools();
    test_mat tm;
    make_mat(&tm, LM_DTYPE_BF16, 40, 37);
    float x[3 * 37], y[3 * 40];
    for (int i = 0; i < 3 * 37; i++) x[i] = rng_sym(1.0f);
    x[5] = NAN;          /* row 0: all NaN */
    x[37 + 36] = INFINITY; /* row 1: +-inf or NaN (inf * 0 weights) */
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int cfg = 0; cfg < 3 * nisa; cfg++) {
        int ii = cfg / 3;
        lm_set_isa(isas[ii]);
        lm_matmul_force_path(cfg % 3);
        for (int64_t T = 1; T <= 3; T++) {
            lm_matmul(pools[1], y, x, T, &tm.m);
            int bad = 0;
            for (int n = 0; n < 40; n++) {
                bad += !isnan(y[n]);
                if (T > 1) bad += isfinite(y[40 + n]);
                if (T > 2) bad += !isfinite(y[80 + n]);
            }
            CHECKF(bad == 0, "%s path %d T=%lld: %d wrong", lm_isa_name(isas[ii]), cfg % 3, (long long)T, bad);
        }
    }
    lm_matmul_force_path(0);
    lm_set_isa(saved);
    free_mat(&tm);
}

/* Weights in a non-weight dtype (F64 here) still work, through the scalar
 * path: lm_mat_row converts any dtype. */
TEST(matmul_other_dtype) {
    const double w[6] = {1, 2, 3, -1, 0.5, 0.25};
    const float x[3] = {1, 2, 4};
    lm_mat W = {.dtype = LM_DTYPE_F64, .rows = 2, .cols = 3, .data = w};
    float y[2] = {0, 0};
    lm_matmul(NULL, y, x, 1, &W);
    CHECK(y[0] == 17 && y[1] == 1);
}

TEST(matmul_ref_small_exact) {
    /* 2x3 F32 weights, values exact in float: y must be exact */
    const float w[6] = {1, 2, 3, -1, 0.5f, 0.25f};
    const float x[6] = {1, 1, 1, 2, 4, 8};
    lm_mat W = {.dtype = LM_DTYPE_F32, .rows = 2, .cols = 3, .data = w};
    float y[4];
    lm_matmul_ref(y, x, 2, &W);
    CHECK(y[0] == 6 && y[1] == -0.25f && y[2] == 34 && y[3] == 2);
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int ii = 0; ii < nisa; ii++) {
        lm_set_isa(isas[ii]);
        memset(y, 0, sizeof y);
        lm_matmul(NULL, y, x, 2, &W);
        CHECK(y[0] == 6 && y[1] == -0.25f && y[2] == 34 && y[3] == 2);
    }
    lm_set_isa(saved);
}

/* ---- row kernels ---- */

TEST(rmsnorm_vs_double) {
    static const int64_t ns[] = {1, 7, 16, 17, 100, 1024, 7168};
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int ii = 0; ii < nisa; ii++) {
        lm_set_isa(isas[ii]);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int64_t n = ns[ni];
            float *x = (float *)malloc((size_t)(n + 1) * 4), *w = (float *)malloc((size_t)n * 4),
                  *y = (float *)malloc((size_t)(n + 1) * 4);
            for (int64_t i = 0; i < n; i++) x[i + 1] = rng_sym(3.0f), w[i] = 1.0f + rng_sym(0.5f);
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)x[i + 1] * x[i + 1];
            double r = 1.0 / sqrt(ss / n + 1e-6);
            lm_rmsnorm(y + 1, x + 1, w, n, 1e-6f); /* unaligned */
            /* float sum of squares: relative error <= ~sqrt(n) u (random walk,
             * positive terms); rsqrt and two products: a few u. */
            int bad = 0;
            for (int64_t i = 0; i < n; i++) {
                double want = x[i + 1] * r * w[i];
                bad += !(fabs(y[i + 1] - want) <= (6 + 2 * sqrt((double)n)) * U * fabs(want) + 1e-37);
            }
            lm_rmsnorm(x + 1, x + 1, w, n, 1e-6f); /* in place */
            bad += memcmp(x + 1, y + 1, (size_t)n * 4) != 0;
            CHECKF(bad == 0, "%s n=%lld: %d wrong", lm_isa_name(isas[ii]), (long long)n, bad);
            free(x), free(w), free(y);
        }
        /* eps matters for tiny inputs */
        float x0[4] = {0, 0, 0, 1e-4f}, w0[4] = {1, 1, 1, 1}, y0[4];
        lm_rmsnorm(y0, x0, w0, 4, 1e-6f);
        CHECK_NEAR(y0[3], 1e-4 / sqrt(1e-8 / 4 + 1e-6), 0, 1e-6);
    }
    lm_set_isa(saved);
}

TEST(swiglu_vs_double) {
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    enum { n = 1000 };
    float g[n + 1], u[n + 1], o[n + 1];
    for (int i = 0; i < n; i++) g[i + 1] = rng_sym(12.0f), u[i + 1] = rng_sym(2.0f);
    g[1] = -100.0f, g[2] = 100.0f, g[3] = 0.0f, g[4] = -88.5f, g[5] = 89.0f, g[6] = -1e-30f;
    for (int ii = 0; ii < nisa; ii++) {
        lm_set_isa(isas[ii]);
        lm_swiglu(o + 1, g + 1, u + 1, n);
        int bad = 0;
        for (int i = 1; i <= n; i++) {
            double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            /* expf (<= 2 ulp in the SIMD versions), 1 + e, divide, multiply */
            bad += !(fabs(o[i] - want) <= 8 * U * fabs(want) + 1e-37);
        }
        CHECKF(bad == 0, "%s: %d wrong", lm_isa_name(isas[ii]), bad);
        float g2[n], o2[n]; /* out aliasing gate */
        memcpy(g2, g + 1, sizeof g2);
        lm_swiglu(g2, g2, u + 1, n);
        memcpy(o2, o + 1, sizeof o2);
        CHECK(memcmp(g2, o2, sizeof g2) == 0);
    }
    lm_set_isa(saved);
}

TEST(softmax_vs_double) {
    static const int64_t ns[] = {1, 2, 15, 16, 33, 1000, 4097};
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int ii = 0; ii < nisa; ii++) {
        lm_set_isa(isas[ii]);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            for (int mode = 0; mode < 3; mode++) {
                int64_t n = ns[ni];
                float *x = (float *)malloc((size_t)(n + 1) * 4);
                double *want = (double *)malloc((size_t)n * 8);
                for (int64_t i = 0; i < n; i++) {
                    if (mode == 0) x[i + 1] = rng_sym(5.0f);
                    else if (mode == 1) x[i + 1] = 1e4f + rng_sym(30.0f); /* large: needs the max shift */
                    else x[i + 1] = (i % 3 == 1) ? -INFINITY : rng_sym(80.0f); /* masked entries */
                }
                if (mode == 2) x[1] = 0.0f; /* at least one finite */
                double m = -INFINITY, sum = 0;
                float *xs = (float *)malloc((size_t)n * 4);
                memcpy(xs, x + 1, (size_t)n * 4);
                for (int64_t i = 0; i < n; i++) m = fmax(m, x[i + 1]);
                for (int64_t i = 0; i < n; i++) sum += want[i] = exp((double)x[i + 1] - m);
                lm_softmax(x + 1, n);
                int bad = 0;
                double total = 0;
                for (int64_t i = 0; i < n; i++) {
                    double w = want[i] / sum, xi = xs[i];
                    /* x - max rounds (|x| u), expf (<= 2 ulp), float sum
                     * (~sqrt(n) u), one scale. |x-max| u is absolute error
                     * in the exponent: relative error in the result. */
                    double tol = (8 + 2 * sqrt((double)n) + (isinf(xi) ? 0 : fabs(xi - m))) * U * w + 0x1p-125; /* subnormal results lose relative precision */
                    bad += !(fabs(x[i + 1] - w) <= tol);
                    total += x[i + 1];
                }
                CHECKF(bad == 0, "%s n=%lld mode %d: %d wrong", lm_isa_name(isas[ii]), (long long)n, mode, bad);
                CHECK_NEAR(total, 1.0, 1e-5, 0);
                free(x), free(want), free(xs);
            }
        }
    }
    lm_set_isa(saved);
}

/* reference top-k: sort indices by (value desc, NaN last, index asc) */
static const float *topk_vals;
static int topk_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float x = topk_vals[i], y = topk_vals[j];
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (!isnan(x) && x != y) return x > y ? -1 : 1;
    return i - j;
}

TEST(topk_ties_and_nan) {
    float x[10] = {1, 3, 3, 2, 3, NAN, -INFINITY, 5, 5, 0};
    int idx[10];
    lm_topk(x, 10, 4, idx);
    CHECK(idx[0] == 7 && idx[1] == 8 && idx[2] == 1 && idx[3] == 2);
    lm_topk(x, 10, 10, idx);
    int want[10] = {7, 8, 1, 2, 4, 3, 0, 9, 6, 5};
    CHECK(memcmp(idx, want, sizeof want) == 0);
    lm_topk(x, 10, 1, idx);
    CHECK(idx[0] == 7);
    float z[3] = {0.0f, -0.0f, 0.0f}; /* -0 == +0: a tie */
    lm_topk(z, 3, 2, idx);
    CHECK(idx[0] == 0 && idx[1] == 1);
    /* random, many ties (few distinct values), against a full sort */
    int bad = 0;
    for (int rep = 0; rep < 300; rep++) {
        int n = 1 + (int)(rng_u64() % 300), k = 1 + (int)(rng_u64() % (uint64_t)n);
        float *v = (float *)malloc((size_t)n * 4);
        int *ord = (int *)malloc((size_t)n * sizeof(int)), *got = (int *)malloc((size_t)k * sizeof(int));
        for (int i = 0; i < n; i++) {
            v[i] = (float)(rng_u64() % 17) - 8;
            if (rng_u64() % 50 == 0) v[i] = NAN;
            ord[i] = i;
        }
        topk_vals = v;
        qsort(ord, (size_t)n, sizeof(int), topk_cmp);
        lm_topk(v, n, k, got);
        bad += memcmp(ord, got, (size_t)k * sizeof(int)) != 0;
        free(v), free(ord), free(got);
    }
    CHECKF(bad == 0, "%d random cases wrong", bad);
}

TEST(rope_vs_formula) {
    enum { d = 64 };
    float x[d], x0[d], c[d / 2], s[d / 2];
    for (int i = 0; i < d; i++) x[i] = x0[i] = rng_sym(4.0f);
    for (int i = 0; i < d / 2; i++) {
        double th = 37.0 * pow(10000.0, -2.0 * i / d);
        c[i] = (float)cos(th), s[i] = (float)sin(th);
    }
    lm_rope_interleaved(x, c, s, d);
    int bad = 0;
    for (int i = 0; i < d / 2; i++) {
        double a = x0[2 * i], b = x0[2 * i + 1];
        double r0 = a * c[i] - b * s[i], r1 = a * s[i] + b * c[i];
        double m0 = fabs(a * c[i]) + fabs(b * s[i]), m1 = fabs(a * s[i]) + fabs(b * c[i]);
        bad += !(fabs(x[2 * i] - r0) <= 2 * U * m0 + 1e-37);
        bad += !(fabs(x[2 * i + 1] - r1) <= 2 * U * m1 + 1e-37);
    }
    CHECKF(bad == 0, "%d wrong", bad);
    /* odd d: the last element is left alone */
    float y[3] = {1, 2, 7}, cc[1] = {0}, ss[1] = {1};
    lm_rope_interleaved(y, cc, ss, 3);
    CHECK(y[0] == -2 && y[1] == 1 && y[2] == 7);
}

int main(void) {
    RUN(isa_selection);
    RUN(mat_row_exact);
    RUN(matmul_ref_small_exact);
    RUN(matmul_other_dtype);
    RUN(matmul_f32);
    RUN(matmul_bf16);
    RUN(matmul_f16);
    RUN(matmul_fp8);
    RUN(matmul_model_shapes);
    RUN(matmul_nonfinite_x);
    RUN(rmsnorm_vs_double);
    RUN(swiglu_vs_double);
    RUN(softmax_vs_double);
    RUN(topk_ties_and_nan);
    RUN(rope_vs_formula);
    for (int i = 1; i < npools; i++) lm_pool_free(pools[i]);
    return test_report("test_kernels");
}
