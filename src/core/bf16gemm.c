/* bf16gemm.c — the bf16 pair-chain product (bf16gemm.h): packing, the
 * scalar tile, dispatch and threading. The per-ISA tiles are in
 * bf16gemm_avx2.c and bf16gemm_avx512.c. */
#include "core/bf16gemm.h"

#include <math.h>
#include <string.h>

#include "core/kernels.h"

float lm_bf16_step(float a, float b, float acc) {
    float r = fmaf(a, b, acc);
    float mag = fabsf(r);
    if (mag < 0x1p-126f) return copysignf(0.0f, r);
    if (mag == 0x1p-126f) {
        /* r may be the IEEE rounding up of an exact value that rounds, at
         * 24 bits with an unbounded exponent, below 2^-126: one under
         * 2^-126 - 2^-151 (the tie goes to the even 2^-126). a*b is exact
         * in double (two 8-bit significands); TwoSum gives the exact
         * a*b + acc as s + err, and s - r is exact (s is within a factor 2
         * of r). */
        double p = (double)a * (double)b, c = acc, s = c + p, bb = s - c;
        double err = (c - (s - bb)) + (p - bb), d = s - (double)r;
        if (r < 0) d = -d, err = -err;
        if (d < -0x1p-151 || (d == -0x1p-151 && err < 0)) return copysignf(0.0f, r);
    }
    return r;
}

/* ---- packing ---- */

/* Element (i, k) of an operand as bf16 bits, subnormals as zeros of their
 * sign. */
static inline uint32_t elem_bf16(const lm_bf16_operand *X, int64_t i, int64_t k) {
    int64_t at = i * X->si + k * X->sk;
    uint16_t h = X->dtype == LM_DTYPE_BF16 ? ((const uint16_t *)X->data)[at] : lm_f32_to_bf16(((const float *)X->data)[at]);
    if (!(h & 0x7f80)) h &= 0x8000;
    return h;
}

/* Block b of R rows of X (rows i in [b*R, b*R + R), n rows in all) into
 * dst[Kp][R]. */
static void pack_block(uint32_t *dst, const lm_bf16_operand *X, int64_t n, int64_t K, int R, int64_t b) {
    int64_t Kp = (K + 1) / 2, i0 = b * R;
    int rows = n - i0 < R ? (int)(n - i0) : R;
    if (rows < R)
        for (int64_t p = 0; p < Kp; p++) memset(dst + p * R + rows, 0, sizeof(uint32_t) * (size_t)(R - rows));
    for (int r = 0; r < rows; r++) {
        int64_t i = i0 + r, p = 0;
        for (; 2 * p + 1 < K; p++) dst[p * R + r] = elem_bf16(X, i, 2 * p) | elem_bf16(X, i, 2 * p + 1) << 16;
        if (p < Kp) dst[p * R + r] = elem_bf16(X, i, 2 * p);
    }
}

/* ---- the scalar tile: the chain written out ---- */

static inline float lo_f(uint32_t w) { return lm_bf16_to_f32((uint16_t)w); }
static inline float hi_f(uint32_t w) { return lm_bf16_to_f32((uint16_t)(w >> 16)); }

static void tile_scalar(float *C, int64_t ldc, const uint32_t *a, const uint32_t *b, int64_t Kp, int mr, int nr,
                        int accumulate) {
    enum { MR = LM_BF16_MR_SCALAR, NR = LM_BF16_NR_SCALAR };
    float acc[MR][NR] = {{0}};
    for (int64_t p = 0; p < Kp; p++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) {
                uint32_t wa = a[p * MR + i], wb = b[p * NR + j];
                acc[i][j] = lm_bf16_step(lo_f(wa), lo_f(wb), lm_bf16_step(hi_f(wa), hi_f(wb), acc[i][j]));
            }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

/* ---- dispatch ---- */

typedef struct bf16_path {
    const char *name;
    lm_bf16_tile_fn tile;
    int mr, nr;
} bf16_path;

static int cpu_has_avx512bf16(void) {
#if defined(__x86_64__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

static bf16_path pick_path(void) {
    lm_isa isa = lm_kernel_isa();
    if (isa == LM_ISA_AVX512 && cpu_has_avx512bf16())
        return (bf16_path){"avx512bf16", lm_bf16_tile_avx512, LM_BF16_MR_AVX512, LM_BF16_NR_AVX512};
    if (isa >= LM_ISA_AVX2) return (bf16_path){"avx2", lm_bf16_tile_avx2, LM_BF16_MR_AVX2, LM_BF16_NR_AVX2};
    return (bf16_path){"scalar", tile_scalar, LM_BF16_MR_SCALAR, LM_BF16_NR_SCALAR};
}

const char *lm_bf16_gemm_path(void) { return pick_path().name; }

/* ---- the product ---- */

typedef struct gemm_job {
    bf16_path path;
    float *C;
    int64_t ldc, M, N, K, Kp, mblocks, nblocks;
    const lm_bf16_operand *A, *B;
    uint32_t *ap, *bp; /* packed: mblocks x [Kp][MR], nblocks x [Kp][NR] */
    int accumulate;
} gemm_job;

static void pack_task(void *ctx, int ith, int nth) {
    const gemm_job *j = ctx;
    int64_t b0, b1;
    lm_split(j->mblocks + j->nblocks, ith, nth, 1, &b0, &b1);
    for (int64_t b = b0; b < b1; b++)
        if (b < j->mblocks)
            pack_block(j->ap + b * j->Kp * j->path.mr, j->A, j->M, j->K, j->path.mr, b);
        else
            pack_block(j->bp + (b - j->mblocks) * j->Kp * j->path.nr, j->B, j->N, j->K, j->path.nr, b - j->mblocks);
}

/* Tiles in column-block-major order, so a thread's contiguous share reuses
 * each packed B block across the row blocks. */
static void gemm_task(void *ctx, int ith, int nth) {
    const gemm_job *j = ctx;
    int64_t t0, t1;
    lm_split(j->mblocks * j->nblocks, ith, nth, 1, &t0, &t1);
    int MR = j->path.mr, NR = j->path.nr;
    for (int64_t t = t0; t < t1; t++) {
        int64_t nb = t / j->mblocks, mb = t % j->mblocks, m0 = mb * MR, n0 = nb * NR;
        int mr = j->M - m0 < MR ? (int)(j->M - m0) : MR, nr = j->N - n0 < NR ? (int)(j->N - n0) : NR;
        j->path.tile(j->C + m0 * j->ldc + n0, j->ldc, j->ap + mb * j->Kp * MR, j->bp + nb * j->Kp * NR, j->Kp, mr,
                     nr, j->accumulate);
    }
}

void lm_bf16_gemm(lm_pool *pool, float *C, int64_t ldc, int64_t M, int64_t N, int64_t K, const lm_bf16_operand *A,
                  const lm_bf16_operand *B, int accumulate) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {.path = pick_path(), .C = C, .ldc = ldc, .M = M, .N = N, .K = K, .Kp = (K + 1) / 2, .A = A,
                  .B = B, .accumulate = accumulate};
    j.mblocks = (M + j.path.mr - 1) / j.path.mr;
    j.nblocks = (N + j.path.nr - 1) / j.path.nr;
    /* The caller's scratch: the workers only read it while this call waits. */
    j.ap = lm_scratch(0, sizeof(uint32_t) * (size_t)((j.Kp ? j.Kp : 1) * j.mblocks * j.path.mr));
    j.bp = lm_scratch(1, sizeof(uint32_t) * (size_t)((j.Kp ? j.Kp : 1) * j.nblocks * j.path.nr));
    int64_t work = M * N * (K > 0 ? K : 1);
    lm_pool *p = work < 65536 ? NULL : pool;
    lm_pool_run(p, pack_task, &j);
    lm_pool_run(p, gemm_task, &j);
}
