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

/* f32 bits -> bf16 bits (lm_f32_to_bf16: nearest even, NaN stays NaN),
 * then a bf16 subnormal read as a zero of its sign; branch-free so the
 * packing loops vectorise. */
static inline uint32_t f32_bits_to_bf16_daz(uint32_t u) {
    uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    uint32_t r = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) & 0xffffu;
    r = nan ? ((u >> 16) | 0x40u) & 0xffffu : r;
    return (r & 0x7f80u) ? r : (r & 0x8000u);
}
static inline uint32_t f32_bits(const float *x) {
    uint32_t u;
    memcpy(&u, x, 4);
    return u;
}

static inline uint32_t bf16_daz(uint32_t h) { return (h & 0x7f80u) ? h : (h & 0x8000u); }

static inline uint32_t elem_bf16(const lm_bf16_operand *X, int64_t at) {
    if (X->dtype == LM_DTYPE_BF16) return bf16_daz(((const uint16_t *)X->data)[at]);
    return f32_bits_to_bf16_daz(f32_bits((const float *)X->data + at));
}

/* Rows [i0, i0 + rows) of a F32 operand with si == 1 (the rows lie side by
 * side: a transposed matrix), pairs [0, Kp): two source rows per pair, read
 * contiguously. */
static void pack_f32_rows_adjacent(uint32_t *dst, const float *x, int64_t sk, int64_t K, int R, int64_t i0, int rows) {
    int64_t Kp = (K + 1) / 2;
    for (int64_t p = 0; p < Kp; p++) {
        const float *e = x + 2 * p * sk + i0;
        uint32_t *d = dst + p * R;
        if (2 * p + 1 < K) {
            const float *o = e + sk;
            for (int r = 0; r < rows; r++)
                d[r] = f32_bits_to_bf16_daz(f32_bits(e + r)) | f32_bits_to_bf16_daz(f32_bits(o + r)) << 16;
        } else {
            for (int r = 0; r < rows; r++) d[r] = f32_bits_to_bf16_daz(f32_bits(e + r));
        }
    }
}

/* Rows [i0, i0 + rows) of X into dst[p*ld + r], r < rows, p < Kp. */
static void pack_rows(uint32_t *dst, int64_t ld, const lm_bf16_operand *X, int64_t K, int64_t i0, int rows, int simd) {
    int64_t Kp = (K + 1) / 2;
    if (simd && lm_bf16_pack_avx512(dst, X, K, (int)ld, i0, rows)) return;
    if (X->dtype == LM_DTYPE_F32 && X->si == 1) {
        pack_f32_rows_adjacent(dst, X->data, X->sk, K, (int)ld, i0, rows);
        return;
    }
    for (int r = 0; r < rows; r++) {
        int64_t base = (i0 + r) * X->si, p = 0;
        for (; 2 * p + 1 < K; p++)
            dst[p * ld + r] = elem_bf16(X, base + 2 * p * X->sk) | elem_bf16(X, base + (2 * p + 1) * X->sk) << 16;
        if (p < Kp) dst[p * ld + r] = elem_bf16(X, base + 2 * p * X->sk);
    }
}

/* Zero columns [c0, c1) of dst[Kp][ld] (the padding rows of a block). */
static void zero_cols(uint32_t *dst, int64_t ld, int64_t Kp, int64_t c0, int64_t c1) {
    if (c1 > c0)
        for (int64_t p = 0; p < Kp; p++) memset(dst + p * ld + c0, 0, sizeof(uint32_t) * (size_t)(c1 - c0));
}

/* ---- the scalar tile: the chain written out ---- */

static inline float lo_f(uint32_t w) { return lm_bf16_to_f32((uint16_t)w); }
static inline float hi_f(uint32_t w) { return lm_bf16_to_f32((uint16_t)(w >> 16)); }

static void tile_scalar(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                        int nr, int accumulate) {
    enum { MR = LM_BF16_MR_SCALAR, NR = LM_BF16_NR_SCALAR };
    float acc[MR][NR] = {{0}};
    for (int64_t p = 0; p < Kp; p++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) {
                uint32_t wa = a[p * lda + i], wb = b[p * NR + j];
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
    int simd_pack; /* lm_bf16_pack_avx512 (same words as pack_block's loops) */
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
        return (bf16_path){"avx512bf16", lm_bf16_tile_avx512, LM_BF16_MR_AVX512, LM_BF16_NR_AVX512, 1};
    if (isa >= LM_ISA_AVX2) return (bf16_path){"avx2", lm_bf16_tile_avx2, LM_BF16_MR_AVX2, LM_BF16_NR_AVX2, 0};
    return (bf16_path){"scalar", tile_scalar, LM_BF16_MR_SCALAR, LM_BF16_NR_SCALAR, 0};
}

const char *lm_bf16_gemm_path(void) { return pick_path().name; }

/* ---- the product ---- */

typedef struct gemm_job {
    bf16_path path;
    float *C;
    int64_t ldc, M, N, K, Kp, lda, achunks, mblocks, nblocks;
    const lm_bf16_operand *A, *B;
    uint32_t *ap, *bp; /* packed: A as one [Kp][lda] (lda: M rounded up to MR), B as nblocks x [Kp][NR] */
    int accumulate;
} gemm_job;

/* A is packed in chunks of PACK_A_ROWS rows into one wide array, so the
 * packing loops run on full vectors whatever MR is; the tiles read their
 * MR rows of it with the row stride lda. */
enum { PACK_A_ROWS = 64 };

static void pack_task(void *ctx, int ith, int nth) {
    const gemm_job *j = ctx;
    int64_t b0, b1;
    lm_split(j->achunks + j->nblocks, ith, nth, 1, &b0, &b1);
    for (int64_t b = b0; b < b1; b++)
        if (b < j->achunks) {
            int64_t i0 = b * PACK_A_ROWS, rows = j->M - i0 < PACK_A_ROWS ? j->M - i0 : PACK_A_ROWS;
            pack_rows(j->ap + i0, j->lda, j->A, j->K, i0, (int)rows, j->path.simd_pack);
            if (b == j->achunks - 1) zero_cols(j->ap, j->lda, j->Kp, j->M, j->lda);
        } else {
            int64_t nb = b - j->achunks, i0 = nb * j->path.nr, NR = j->path.nr;
            int rows = j->N - i0 < NR ? (int)(j->N - i0) : (int)NR;
            uint32_t *dst = j->bp + nb * j->Kp * NR;
            pack_rows(dst, NR, j->B, j->K, i0, rows, j->path.simd_pack);
            zero_cols(dst, NR, j->Kp, rows, NR);
        }
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
        j->path.tile(j->C + m0 * j->ldc + n0, j->ldc, j->ap + m0, j->lda, j->bp + nb * j->Kp * NR, j->Kp, mr, nr,
                     j->accumulate);
    }
}

void lm_bf16_gemm(lm_pool *pool, float *C, int64_t ldc, int64_t M, int64_t N, int64_t K, const lm_bf16_operand *A,
                  const lm_bf16_operand *B, int accumulate) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {.path = pick_path(), .C = C, .ldc = ldc, .M = M, .N = N, .K = K, .Kp = (K + 1) / 2, .A = A,
                  .B = B, .accumulate = accumulate};
    j.mblocks = (M + j.path.mr - 1) / j.path.mr;
    j.nblocks = (N + j.path.nr - 1) / j.path.nr;
    j.lda = j.mblocks * j.path.mr;
    j.achunks = (M + PACK_A_ROWS - 1) / PACK_A_ROWS;
    /* The caller's scratch: the workers only read it while this call waits. */
    j.ap = lm_scratch(0, sizeof(uint32_t) * (size_t)((j.Kp ? j.Kp : 1) * j.lda));
    j.bp = lm_scratch(1, sizeof(uint32_t) * (size_t)((j.Kp ? j.Kp : 1) * j.nblocks * j.path.nr));
    int64_t work = M * N * (K > 0 ? K : 1);
    lm_pool *p = work < 65536 ? NULL : pool;
    lm_pool_run(p, pack_task, &j);
    lm_pool_run(p, gemm_task, &j);
}
