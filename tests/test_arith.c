/* test_arith.c — the canonical arithmetic (docs/arithmetic.md): every
 * kernel gives the same bits on every path this CPU has (scalar always),
 * on both matmul paths (matvec and GEMM, forced), and equals the
 * definition written out here in plain C:
 *   matmul: acc = +0; acc = fmaf(w_exact, x, acc) for k in order;
 *   row kernels: 16 lanes (element i in lane i mod 16), a fixed tree;
 *   exp: lm_expf, lane for lane;
 *   conversions: all BF16/F16 codes and all FP8 codes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/mathfn.h"
#include "core/threadpool.h"
#include "test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_sym(float a) { return (float)((2 * ((double)(rng_u64() >> 11) * 0x1p-53) - 1) * a); }

static int isa_list(lm_isa *out) {
    int n = 0;
    for (int i = LM_ISA_SCALAR; i <= (int)lm_cpu_isa(); i++) out[n++] = (lm_isa)i;
    return n;
}

/* Same bits, or both NaN (NaN payloads are not part of the contract). */
static int64_t count_diff(const float *a, const float *b, int64_t n) {
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], 4) != 0 && !(isnan(a[i]) && isnan(b[i]));
    return d;
}

/* ---- matmul ---- */

typedef struct wmat {
    lm_mat m;
    uint8_t *data;
    float *scale;
    uint16_t *q8s; /* I8 (Q8): F16 scales [N, ceil(K/32)] */
} wmat;

static void make_w(wmat *w, lm_dtype dt, int64_t N, int64_t K) {
    size_t es = lm_dtype_size(dt), n = (size_t)(N * K);
    w->data = (uint8_t *)malloc(n * es + 1);
    w->scale = NULL;
    w->q8s = NULL;
    for (size_t i = 0; i < n; i++) {
        float v = rng_sym(1.0f);
        if (dt == LM_DTYPE_F32) memcpy(w->data + 4 * i, &v, 4);
        else if (dt == LM_DTYPE_BF16) {
            uint16_t h = lm_f32_to_bf16(v);
            memcpy(w->data + 2 * i, &h, 2);
        } else if (dt == LM_DTYPE_F16) {
            uint16_t h = lm_f32_to_f16(v);
            memcpy(w->data + 2 * i, &h, 2);
        } else if (dt == LM_DTYPE_I8) {
            w->data[i] = (uint8_t)(int8_t)((int)(rng_u64() % 255) - 127);
        } else {
            uint8_t b = (uint8_t)(rng_u64() & 0xff);
            if ((b & 0x7f) == 0x7f) b ^= 1;
            w->data[i] = b;
        }
    }
    if (dt == LM_DTYPE_F8_E4M3) {
        int64_t sr = (N + 127) / 128, sc = (K + 127) / 128;
        w->scale = (float *)malloc((size_t)(sr * sc) * sizeof(float));
        /* scales with full mantissas, so fp8 * scale really rounds */
        for (int64_t i = 0; i < sr * sc; i++) w->scale[i] = (float)(1e-3 * (1.0 + rng_sym(0.9f)));
    }
    if (dt == LM_DTYPE_I8) { /* F16 scales with full mantissas, some subnormal */
        int64_t ns = N * ((K + 31) / 32);
        w->q8s = (uint16_t *)malloc((size_t)ns * 2 + 2);
        for (int64_t i = 0; i < ns; i++)
            w->q8s[i] = lm_f32_to_f16(i % 7 == 3 ? rng_sym(3e-6f) : (float)(1e-2 * (1.0 + rng_sym(0.9f))));
    }
    w->m = (lm_mat){.dtype = dt, .rows = N, .cols = K, .data = w->data, .scale_inv = w->scale, .q8_scale = w->q8s};
}

/* The definition, in plain C. */
static void canonical_matmul(float *y, const float *x, int64_t T, const lm_mat *W) {
    int64_t N = W->rows, K = W->cols;
    float *row = (float *)malloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        lm_mat_row(W, n, row); /* FP8: fp8 * scale, rounded once */
        for (int64_t t = 0; t < T; t++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc = fmaf(row[k], x[t * K + k], acc);
            y[t * N + n] = acc;
        }
    }
    free(row);
}

typedef struct shape {
    int64_t T, K, N;
} shape;

/* T = 1 (decode), T between the paths' thresholds, T > every threshold; K
 * and N with tails of every size, one FP8 block and more. */
static const shape shapes[] = {
    {1, 1, 1},    {1, 15, 17},   {1, 129, 130}, {1, 1000, 77},  {2, 17, 33},   {3, 129, 65},  {4, 64, 64},
    {5, 200, 45}, {7, 31, 129},  {9, 33, 65},   {12, 130, 131}, {13, 77, 40},  {31, 17, 49},  {33, 520, 31},
    {40, 300, 70}, {65, 129, 100}, {129, 40, 70}, {200, 257, 67}, {1, 4100, 20}, {3, 4100, 20},
};

static const lm_dtype dts[] = {LM_DTYPE_F32, LM_DTYPE_BF16, LM_DTYPE_F16, LM_DTYPE_F8_E4M3, LM_DTYPE_I8};

TEST(matmul_every_path_is_canonical) {
    lm_pool *pool = lm_pool_create(3);
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    int combos = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int di = 0; di < 5; di++) {
            int64_t T = shapes[s].T, K = shapes[s].K, N = shapes[s].N;
            wmat w;
            make_w(&w, dts[di], N, K);
            float *x = (float *)malloc((size_t)(T * K) * sizeof(float));
            for (int64_t i = 0; i < T * K; i++) x[i] = rng_sym(2.0f);
            float *want = (float *)malloc((size_t)(T * N) * sizeof(float));
            float *y = (float *)malloc((size_t)(T * N) * sizeof(float));
            canonical_matmul(want, x, T, &w.m);
            for (int ii = 0; ii < nisa; ii++)
                for (int path = 0; path < 3; path++) { /* automatic, matvec, gemm */
                    lm_set_isa(isas[ii]);
                    lm_matmul_force_path(path);
                    lm_matmul(path == 2 ? pool : NULL, y, x, T, &w.m);
                    int64_t d = count_diff(y, want, T * N);
                    CHECKF(d == 0, "%s path %d %s T=%lld K=%lld N=%lld: %lld outputs differ from the definition",
                           lm_isa_name(isas[ii]), path, lm_dtype_name(dts[di]), (long long)T, (long long)K,
                           (long long)N, (long long)d);
                    combos++;
                }
            lm_matmul_force_path(0);
            free(x), free(want), free(y), free(w.data), free(w.scale), free(w.q8s);
        }
    lm_set_isa(saved);
    lm_pool_free(pool);
    printf("  %d (shape, dtype, path, forced path) combinations\n", combos);
}

/* The scalar path without FMA instructions (kernels_scalar.c, libm's fmaf)
 * is what a CPU without FMA runs; this CPU picks the -mfma build of the same
 * code, so call the plain one directly: same bits as the definition. */
/* A copy of row-major W in LM_LAYOUT_PANELS (freed by the caller). */
static lm_mat panel_copy(const lm_mat *W, void **buf) {
    *buf = malloc(lm_mat_panel_bytes(W));
    int64_t nan = lm_mat_pack_panels(W, *buf, 0, lm_panel_blocks(W));
    lm_mat P = *W;
    P.fp8_nan_free = W->dtype == LM_DTYPE_F8_E4M3 && nan == 0; /* make_w writes no NaN byte */
    P.data = *buf;
    P.layout = LM_LAYOUT_PANELS;
    return P;
}

/* Panels are a layout, not an arithmetic: every path, both matmul paths
 * forced, gives the bits of the row-major matrix (and of the definition).
 * N with every tail mod 16, rows past one FP8 block, K tails, T = 1 .. 70. */
TEST(panel_layout_gives_row_major_bits) {
    static const shape pshapes[] = {
        {1, 1, 1},     {1, 17, 15},   {1, 130, 129}, {1, 300, 300}, {1, 64, 257},  {2, 129, 33},  {3, 40, 250},
        {4, 128, 131}, {5, 77, 17},   {8, 256, 140}, {13, 33, 47},  {17, 130, 129}, {33, 65, 63}, {64, 129, 130},
        {65, 40, 31},  {70, 300, 270}, {1, 70, 500}, {6, 64, 500}, /* tiles of 48 rows cross blocks */
        {1, 700, 384}, {2, 520, 200}, {3, 1000, 136}, /* several column chunks, one whole-matrix tile at 1 thread */
    };
    lm_pool *pools[3] = {NULL, lm_pool_create(2), lm_pool_create(3)};
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    int combos = 0;
    for (size_t s = 0; s < sizeof pshapes / sizeof pshapes[0]; s++)
        for (int di = 0; di < 5; di++) {
            int64_t T = pshapes[s].T, K = pshapes[s].K, N = pshapes[s].N;
            wmat w;
            make_w(&w, dts[di], N, K);
            void *buf;
            lm_mat P = panel_copy(&w.m, &buf);
            float *x = (float *)malloc((size_t)(T * K) * sizeof(float));
            for (int64_t i = 0; i < T * K; i++) x[i] = rng_sym(2.0f);
            float *want = (float *)malloc((size_t)(T * N) * sizeof(float));
            float *y = (float *)malloc((size_t)(T * N) * sizeof(float));
            float *ra = (float *)malloc((size_t)K * sizeof(float)), *rb = (float *)malloc((size_t)K * sizeof(float));
            for (int64_t n = 0; n < N; n += 7) { /* lm_mat_row reads panels too */
                lm_mat_row(&w.m, n, ra);
                lm_mat_row(&P, n, rb);
                CHECKF(count_diff(ra, rb, K) == 0, "%s N=%lld K=%lld: panel row %lld differs", lm_dtype_name(dts[di]),
                       (long long)N, (long long)K, (long long)n);
            }
            canonical_matmul(want, x, T, &w.m);
            for (int ii = 0; ii < nisa; ii++)
                for (int path = 0; path < 3; path++)
                    for (int threads = 0; threads < 3; threads++) { /* 1, 2 and 3 threads */
                        lm_set_isa(isas[ii]);
                        lm_matmul_force_path(path);
                        memset(y, 0xff, (size_t)(T * N) * sizeof(float));
                        lm_matmul(pools[threads], y, x, T, &P);
                        int64_t d = count_diff(y, want, T * N);
                        CHECKF(d == 0, "%s path %d threads %d %s T=%lld K=%lld N=%lld: %lld panel outputs differ",
                               lm_isa_name(isas[ii]), path, threads, lm_dtype_name(dts[di]), (long long)T, (long long)K,
                               (long long)N, (long long)d);
                        combos++;
                    }
            lm_matmul_force_path(0);
            free(x), free(want), free(y), free(ra), free(rb), free(buf), free(w.data), free(w.scale), free(w.q8s);
        }
    /* FP8 NaN bytes: counted by the packing (so the fast conversion is never
     * used on them), and still NaN through the patched conversion */
    {
        wmat w;
        make_w(&w, LM_DTYPE_F8_E4M3, 40, 70);
        w.data[3 * 70 + 5] = 0x7f;
        w.data[37 * 70 + 69] = 0xff;
        void *buf;
        lm_mat P = panel_copy(&w.m, &buf);
        CHECK(!P.fp8_nan_free && lm_mat_pack_panels(&w.m, buf, 0, lm_panel_blocks(&w.m)) == 2);
        float x[70], y[40];
        for (int i = 0; i < 70; i++) x[i] = 1.0f;
        for (int ii = 0; ii < nisa; ii++) {
            lm_set_isa(isas[ii]);
            lm_matmul(NULL, y, x, 1, &P);
            CHECKF(isnan(y[3]) && isnan(y[37]) && !isnan(y[4]), "%s: FP8 NaN bytes in panels", lm_isa_name(isas[ii]));
        }
        free(buf), free(w.data), free(w.scale), free(w.q8s);
    }
    lm_set_isa(saved);
    lm_pool_free(pools[1]);
    lm_pool_free(pools[2]);
    printf("  %d (shape, dtype, path, forced path, threads) combinations\n", combos);
}

TEST(scalar_without_fma_instructions) {
    static const shape sh[] = {{1, 37, 19}, {3, 130, 17}, {9, 64, 40}};
    const lm_kernel_table *tabs[2] = {&lm_kernels_scalar, &lm_kernels_scalar_fma};
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++)
        for (int di = 0; di < 5; di++) {
            int64_t T = sh[s].T, K = sh[s].K, N = sh[s].N;
            wmat w;
            make_w(&w, dts[di], N, K);
            float *x = malloc((size_t)(T * K) * 4), *want = malloc((size_t)(T * N) * 4), *y = malloc((size_t)(T * N) * 4);
            for (int64_t i = 0; i < T * K; i++) x[i] = rng_sym(2.0f);
            canonical_matmul(want, x, T, &w.m);
            for (int ti = 0; ti < 2; ti++) {
                int64_t packed[2] = {-1, -1};
                tabs[ti]->gemm(y, x, T, &w.m, 0, T, 0, N, packed);
                CHECKF(count_diff(y, want, T * N) == 0, "table %d gemm %s T=%lld", ti, lm_dtype_name(dts[di]), (long long)T);
                tabs[ti]->matvec(y, x, T, &w.m, 0, N);
                CHECKF(count_diff(y, want, T * N) == 0, "table %d matvec %s T=%lld", ti, lm_dtype_name(dts[di]), (long long)T);
            }
            free(x), free(want), free(y), free(w.data), free(w.scale), free(w.q8s);
        }
    float g[100], u[100], a[100], b[100];
    for (int i = 0; i < 100; i++) g[i] = rng_sym(8.0f), u[i] = rng_sym(1.0f);
    lm_kernels_scalar.swiglu(a, g, u, 100);
    lm_kernels_scalar_fma.swiglu(b, g, u, 100);
    CHECK(count_diff(a, b, 100) == 0);
    lm_kernels_scalar.rmsnorm(a, g, u, 100, 1e-6f);
    lm_kernels_scalar_fma.rmsnorm(b, g, u, 100, 1e-6f);
    CHECK(count_diff(a, b, 100) == 0);
}

/* Every code of every weight dtype through every matmul path: K = 1 and x
 * = 1 make y = fma(w, 1, +0), the converted weight itself. */
TEST(conversions_every_code_every_path) {
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int di = 1; di < 4; di++) {
        lm_dtype dt = dts[di];
        int64_t N = dt == LM_DTYPE_F8_E4M3 ? 256 : 65536;
        uint8_t *data = (uint8_t *)malloc((size_t)N * 2);
        for (int64_t c = 0; c < N; c++) {
            if (dt == LM_DTYPE_F8_E4M3) data[c] = (uint8_t)c;
            else {
                uint16_t h = (uint16_t)c;
                memcpy(data + 2 * c, &h, 2);
            }
        }
        float one_scale[2] = {1.0f, 1.0f};
        lm_mat W = {.dtype = dt, .rows = N, .cols = 1, .data = data, .scale_inv = dt == LM_DTYPE_F8_E4M3 ? one_scale : NULL};
        float *want = (float *)malloc((size_t)N * sizeof(float)), *y = (float *)malloc((size_t)N * 4 * sizeof(float));
        float x[4] = {1, 1, 1, 1};
        lm_convert_to_f32(want, data, dt, (size_t)N);
        for (int64_t c = 0; c < N; c++) want[c] = want[c] + 0.0f; /* fma(w, 1, +0): -0 becomes +0 */
        for (int ii = 0; ii < nisa; ii++)
            for (int path = 1; path < 3; path++)
                for (int64_t T = 1; T <= 4; T += 3) {
                    lm_set_isa(isas[ii]);
                    lm_matmul_force_path(path);
                    lm_matmul(NULL, y, x, T, &W);
                    int64_t d = 0;
                    for (int64_t t = 0; t < T; t++) d += count_diff(y + t * N, want, N);
                    CHECKF(d == 0, "%s path %d %s T=%lld: %lld codes convert differently", lm_isa_name(isas[ii]),
                           path, lm_dtype_name(dt), (long long)T, (long long)d);
                }
        lm_matmul_force_path(0);
        free(data), free(want), free(y);
    }
    lm_set_isa(saved);
}

/* FP8 in panels without NaN bytes: the AVX-512 matvec widens the bytes to
 * value * 2^-120 and multiplies by scale * 2^120 where |scale| < 2^8, the
 * f16 conversion elsewhere. Every code, in 128-row blocks with scales that
 * make the products round, go subnormal, or sit at and past the 2^8 limit:
 * the same bits as fp8 * scale rounded once, on every path. */
TEST(fp8_panels_every_code_every_scale) {
    static const float scales[] = {1.0f, 0x1p-140f, 255.99f, 256.0f, 3e30f, 0x1p119f, -7.3e-3f, 1.2345e-3f, 0x1p-149f, 0.0f};
    enum { NB = sizeof scales / sizeof scales[0] };
    int64_t N = NB * 256; /* each scale on two blocks: every code (NaN codes -> 0) */
    uint8_t *data = (uint8_t *)malloc((size_t)N);
    for (int64_t r = 0; r < N; r++) data[r] = (r & 0x7f) == 0x7f ? (uint8_t)(r & 0x80) : (uint8_t)r;
    float sc[2 * NB];
    for (int b = 0; b < 2 * NB; b++) sc[b] = scales[b / 2];
    lm_mat W = {.dtype = LM_DTYPE_F8_E4M3, .rows = N, .cols = 1, .data = data, .scale_inv = sc};
    void *buf;
    lm_mat P = panel_copy(&W, &buf);
    CHECK(P.fp8_nan_free);
    float *want = (float *)malloc((size_t)N * sizeof(float)), *y = (float *)malloc((size_t)N * 3 * sizeof(float));
    for (int64_t r = 0; r < N; r++) want[r] = lm_fp8e4m3_to_f32(data[r]) * sc[r / 128] + 0.0f;
    float x[3] = {1, 1, 1};
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int ii = 0; ii < nisa; ii++)
        for (int64_t T = 1; T <= 3; T += 2) {
            lm_set_isa(isas[ii]);
            lm_matmul_force_path(1);
            lm_matmul(NULL, y, x, T, &P);
            int64_t d = 0;
            for (int64_t t = 0; t < T; t++) d += count_diff(y + t * N, want, N);
            CHECKF(d == 0, "%s T=%lld: %lld FP8 panel weights differ from fp8 * scale", lm_isa_name(isas[ii]),
                   (long long)T, (long long)d);
        }
    lm_matmul_force_path(0);
    lm_set_isa(saved);
    free(data), free(want), free(y), free(buf);
}

/* ---- row kernels ---- */

static float tree16(const float s[16]) {
    float a[8], b[4];
    for (int j = 0; j < 8; j++) a[j] = s[j] + s[j + 8];
    for (int j = 0; j < 4; j++) b[j] = a[j] + a[j + 4];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

static void canonical_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    float s[16] = {0};
    for (int64_t i = 0; i < n; i++) s[i % 16] = s[i % 16] + x[i] * x[i];
    float r = 1.0f / sqrtf(tree16(s) / (float)n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * r) * w[i];
}

static void canonical_softmax(float *x, int64_t n) {
    float m = -INFINITY, s[16] = {0};
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int64_t i = 0; i < n; i++) {
        x[i] = lm_expf(x[i] - m);
        s[i % 16] = s[i % 16] + x[i];
    }
    float inv = 1.0f / tree16(s);
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * inv;
}

TEST(row_kernels_every_path_are_canonical) {
    static const int64_t ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 129, 1000, 4097, 7168};
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        int64_t n = ns[ni];
        float *x = malloc((size_t)n * 4), *w = malloc((size_t)n * 4), *u = malloc((size_t)n * 4);
        float *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) x[i] = rng_sym(6.0f), w[i] = 1.0f + rng_sym(0.5f), u[i] = rng_sym(2.0f);
        if (n > 3) x[1] = -100.0f, x[2] = 95.0f, x[3] = -0.0f;
        for (int ii = 0; ii < nisa; ii++) {
            lm_set_isa(isas[ii]);
            canonical_rmsnorm(want, x, w, n, 1e-6f);
            lm_rmsnorm(got, x, w, n, 1e-6f);
            CHECKF(count_diff(got, want, n) == 0, "rmsnorm %s n=%lld", lm_isa_name(isas[ii]), (long long)n);
            for (int64_t i = 0; i < n; i++) want[i] = (x[i] / (1.0f + lm_expf(0.0f - x[i]))) * u[i];
            lm_swiglu(got, x, u, n);
            CHECKF(count_diff(got, want, n) == 0, "swiglu %s n=%lld", lm_isa_name(isas[ii]), (long long)n);
            memcpy(want, x, (size_t)n * 4);
            memcpy(got, x, (size_t)n * 4);
            canonical_softmax(want, n);
            lm_softmax(got, n);
            CHECKF(count_diff(got, want, n) == 0, "softmax %s n=%lld", lm_isa_name(isas[ii]), (long long)n);
            for (int64_t i = 0; i < n; i++) want[i] = lm_expf(x[i] - 1.5f);
            lm_exp_shifted(got, x, 1.5f, n);
            CHECKF(count_diff(got, want, n) == 0, "exp_shifted %s n=%lld", lm_isa_name(isas[ii]), (long long)n);
            for (int64_t i = 0; i < n; i++) want[i] = lm_sigmoidf(x[i]);
            memcpy(got, x, (size_t)n * 4);
            lm_sigmoid(got, got, n); /* in place */
            CHECKF(count_diff(got, want, n) == 0, "sigmoid %s n=%lld", lm_isa_name(isas[ii]), (long long)n);
        }
        free(x), free(w), free(u), free(want), free(got);
    }
    lm_set_isa(saved);
}

/* Inputs where the order of the 16-lane tree shows: lane sums 1, e, 0, e'
 * with e, e' about 2^-24 give 1 + (e + e') in the canonical order but
 * (1 + e) + e' in a pairwise one, and the two round differently. */
TEST(row_kernels_tree_order) {
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    int tried = 0, bad = 0;
    for (int v = 0; v < 400; v++) {
        float x[16], want[16], got[16], w[16];
        for (int i = 0; i < 16; i++) x[i] = -INFINITY, w[i] = 1.0f;
        x[0] = 0.0f;
        x[1] = -16.3f - 0.001f * (float)v;
        x[3] = -16.3f - 0.0013f * (float)(v % 37) - 0.0007f * (float)v;
        memcpy(want, x, sizeof x);
        canonical_softmax(want, 16);
        for (int ii = 0; ii < nisa; ii++) {
            lm_set_isa(isas[ii]);
            memcpy(got, x, sizeof x);
            lm_softmax(got, 16);
            bad += count_diff(got, want, 16) != 0;
            tried++;
        }
        /* rmsnorm: squares 1, e, 0, e' in lanes 0..3 */
        float xr[16] = {0}, wr[16], yr[16];
        xr[0] = 1.0f, xr[1] = 0x1p-12f * (1.0f + 0.003f * (float)v), xr[3] = 0x1p-12f * (1.0f + 0.0041f * (float)(v % 53));
        canonical_rmsnorm(wr, xr, w, 16, 0.0f);
        for (int ii = 0; ii < nisa; ii++) {
            lm_set_isa(isas[ii]);
            lm_rmsnorm(yr, xr, w, 16, 0.0f);
            bad += count_diff(yr, wr, 16) != 0;
        }
    }
    CHECKF(bad == 0, "%d of %d cases differ from the canonical tree", bad, tried);
    lm_set_isa(saved);
}

/* The vector exp against lm_expf on a sweep of floats (through swiglu with
 * up = 1: out = g / (1 + exp(-g)) needs every lane's exp bit-exact). */
TEST(vector_exp_equals_scalar_exp) {
    enum { n = 1 << 16 };
    float *g = malloc(n * 4), *one = malloc(n * 4), *got = malloc(n * 4), *want = malloc(n * 4);
    for (int i = 0; i < n; i++) {
        /* every 2^15th float of either sign: subnormal results, overflow, inf, NaN */
        uint32_t b = (uint32_t)i << 15 | (uint32_t)(rng_u64() & 0x7fff);
        g[i] = lm_f32_from_bits(b);
        one[i] = 1.0f;
    }
    lm_isa isas[3];
    int nisa = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    for (int i = 0; i < n; i++) want[i] = (g[i] / (1.0f + lm_expf(0.0f - g[i]))) * 1.0f;
    for (int ii = 0; ii < nisa; ii++) {
        lm_set_isa(isas[ii]);
        lm_swiglu(got, g, one, n);
        CHECKF(count_diff(got, want, n) == 0, "%s: %lld lanes differ", lm_isa_name(isas[ii]),
               (long long)count_diff(got, want, n));
    }
    /* softmax of two values: e^(a - max) for a wide range of differences */
    float pair[2], pw[2];
    int bad = 0;
    for (int i = 0; i < 4000; i++) {
        pair[0] = 0.0f, pair[1] = -0.05f * (float)i;
        for (int ii = 0; ii < nisa; ii++) {
            lm_set_isa(isas[ii]);
            memcpy(pw, pair, sizeof pw);
            lm_softmax(pw, 2);
            float e = lm_expf(pair[1]), inv = 1.0f / (1.0f + e);
            bad += pw[0] != 1.0f * inv || pw[1] != e * inv;
        }
    }
    CHECK(bad == 0);
    lm_set_isa(saved);
    free(g), free(one), free(got), free(want);
}

/* ---- nn: products against rows read in place (lm_matmul_nn) ---- */

/* The definition: y[t][n] = fma chain over k ascending from +0; `reverse`
 * runs k backwards (a wrong order the test must tell apart). */
static void canonical_nn(float *y, int64_t ldy, const float *a, int64_t lda, int64_t T, const float *b, int64_t ldb,
                         int64_t K, int64_t N, int reverse) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < K; i++) {
                int64_t k = reverse ? K - 1 - i : i;
                acc = fmaf(a[t * lda + k], b[k * ldb + n], acc);
            }
            y[t * ldy + n] = acc;
        }
}

/* Every path, the plain tables, 1-3 threads, ragged shapes and strides:
 * the definition's bits, lm_matmul's bits on b^T, and y's gaps untouched. */
TEST(nn_every_path_is_canonical) {
    static const shape sh[] = {{1, 1, 1},   {1, 37, 16},  {5, 300, 17}, {6, 64, 64},  {7, 129, 100},
                               {13, 9, 40}, {16, 200, 515}, {2, 513, 24}, {3, 50, 255}};
    lm_isa isas[3];
    int ni = isa_list(isas);
    lm_isa saved = lm_set_isa(LM_ISA_SCALAR);
    lm_pool *pools[3] = {NULL, lm_pool_create(2), lm_pool_create(3)};
    int64_t orders_told_apart = 0;
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int64_t T = sh[s].T, K = sh[s].K, N = sh[s].N, lda = K + 3, ldb = N + 5, ldy = N + 2;
        float *a = malloc((size_t)(T * lda) * 4), *b = malloc((size_t)(K * ldb) * 4);
        float *want = malloc((size_t)(T * ldy) * 4), *rev = malloc((size_t)(T * ldy) * 4);
        float *y = malloc((size_t)(T * ldy) * 4), *bt = malloc((size_t)(N * K) * 4), *ym = malloc((size_t)(T * N) * 4);
        /* magnitudes spread over 2^-12 .. 2^12 so that order shows in the bits */
        for (int64_t i = 0; i < T * lda; i++) a[i] = ldexpf(rng_sym(1.0f), (int)(rng_u64() % 25) - 12);
        for (int64_t i = 0; i < K * ldb; i++) b[i] = rng_sym(2.0f);
        for (int64_t i = 0; i < T * ldy; i++) want[i] = rev[i] = -7.0f;
        canonical_nn(want, ldy, a, lda, T, b, ldb, K, N, 0);
        canonical_nn(rev, ldy, a, lda, T, b, ldb, K, N, 1);
        orders_told_apart += count_diff(want, rev, T * ldy);
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) bt[n * K + k] = b[k * ldb + n];
        lm_mat W = {.dtype = LM_DTYPE_F32, .rows = N, .cols = K, .data = bt};
        for (int ii = 0; ii < ni; ii++)
            for (int pi = 0; pi < 3; pi++) {
                lm_set_isa(isas[ii]);
                for (int64_t i = 0; i < T * ldy; i++) y[i] = -7.0f;
                lm_matmul_nn(pools[pi], y, ldy, a, lda, T, b, ldb, K, N);
                int64_t d = count_diff(y, want, T * ldy);
                CHECKF(d == 0, "%s pool %d T=%lld K=%lld N=%lld: %lld outputs differ from the fma chain",
                       lm_isa_name(isas[ii]), pi, (long long)T, (long long)K, (long long)N, (long long)d);
                /* lm_matmul wants x rows of stride K: a's rows copied */
                float *ac = malloc((size_t)(T * K) * 4);
                for (int64_t t = 0; t < T; t++) memcpy(ac + t * K, a + t * lda, (size_t)K * 4);
                lm_matmul(pools[pi], ym, ac, T, &W);
                int64_t dm = 0;
                for (int64_t t = 0; t < T; t++) dm += count_diff(ym + t * N, want + t * ldy, N);
                CHECKF(dm == 0, "%s pool %d T=%lld K=%lld N=%lld: %lld outputs differ from lm_matmul on b^T",
                       lm_isa_name(isas[ii]), pi, (long long)T, (long long)K, (long long)N, (long long)dm);
                free(ac);
            }
        const lm_kernel_table *tabs[2] = {&lm_kernels_scalar, &lm_kernels_scalar_fma};
        for (int ti = 0; ti < 2; ti++) {
            for (int64_t i = 0; i < T * ldy; i++) y[i] = -7.0f;
            tabs[ti]->nn(y, ldy, a, lda, T, b, ldb, K, N);
            CHECKF(count_diff(y, want, T * ldy) == 0, "scalar table %d T=%lld K=%lld N=%lld", ti, (long long)T,
                   (long long)K, (long long)N);
        }
        free(a), free(b), free(want), free(rev), free(y), free(bt), free(ym);
    }
    /* the shapes above can fail a kernel that sums in another order */
    CHECKF(orders_told_apart > 1000, "only %lld outputs tell k ascending from k descending",
           (long long)orders_told_apart);
    lm_set_isa(saved);
    for (int pi = 1; pi < 3; pi++) lm_pool_free(pools[pi]);
}

int main(void) {
    RUN(matmul_every_path_is_canonical);
    RUN(panel_layout_gives_row_major_bits);
    RUN(conversions_every_code_every_path);
    RUN(fp8_panels_every_code_every_scale);
    RUN(scalar_without_fma_instructions);
    RUN(nn_every_path_is_canonical);
    RUN(row_kernels_every_path_are_canonical);
    RUN(row_kernels_tree_order);
    RUN(vector_exp_equals_scalar_exp);
    return test_report("test_arith");
}
