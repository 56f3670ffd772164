/* bf16gemm.h — the product of mixed-precision training (--precision bf16):
 * bf16 operands, fp32 accumulation, computed as the AVX-512-BF16
 * instruction vdpbf16ps computes it, on every path.
 *
 * C[m, n] = the pair chain over k of A(m, k) B(n, k) (docs/arithmetic.md,
 * "The bf16 pair chain"): operands rounded to bf16 (nearest even) with
 * bf16 subnormals read as zero, K padded with one zero when odd, then for
 * each pair p = 0, 1, ...: acc = step(A(m,2p+1), B(n,2p+1), acc), then
 * acc = step(A(m,2p), B(n,2p), acc), from acc = +0, where step is one fma
 * whose result is flushed to a zero of its sign when it is tiny after
 * rounding (its magnitude, rounded to 24 bits with an unbounded exponent,
 * below 2^-126). The AVX-512-BF16 path runs vdpbf16ps; AVX2 and scalar
 * emulate it exactly; all give the same bits, at any thread count (each
 * output is one thread's chain). */
#ifndef LEMMA_CORE_BF16GEMM_H
#define LEMMA_CORE_BF16GEMM_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/threadpool.h"

/* The version of bf16 training's arithmetic, recorded where bf16 results
 * are (a run's run.json, a bf16 stage's key): 1 was fp32 fma chains on
 * bf16-rounded operands, 2 is this pair chain. fp32 results do not carry
 * it (their bits did not change). */
#define LM_BF16_ARITH_VERSION 2

/* An operand: element (i, k) at data[i*si + k*sk], F32 (rounded to bf16 as
 * it is read) or BF16. */
typedef struct lm_bf16_operand {
    const void *data;
    lm_dtype dtype;
    int64_t si, sk;
} lm_bf16_operand;

/* C[m*ldc + n] = sum over k < K of A(m, k) B(n, k) by the pair chain for
 * m < M, n < N; with accumulate, C += that sum (one fp32 add after the
 * chain). C must not overlap A or B. pool may be NULL. */
void lm_bf16_gemm(lm_pool *pool, float *C, int64_t ldc, int64_t M, int64_t N, int64_t K, const lm_bf16_operand *A,
                  const lm_bf16_operand *B, int accumulate);

/* One step of the chain on values that are bf16 (no subnormals) and an
 * accumulator that is normal or zero: fma(a, b, acc) with the flush above. */
float lm_bf16_step(float a, float b, float acc);

/* Which implementation lm_bf16_gemm uses now: "avx512bf16", "avx2" or
 * "scalar" (follows lm_kernel_isa; avx512bf16 needs the CPU feature). */
const char *lm_bf16_gemm_path(void);

/* ---- internals shared with bf16gemm_avx2.c / bf16gemm_avx512.c ---- */

/* Packed operands: for each pair p < Kp, 32-bit words, each the bf16 of
 * element 2p of a row in its low half and of element 2p+1 in its high
 * half. B: blocks of NR rows, [Kp][NR] each; A: one array [Kp][lda] (lda
 * = M rounded up to MR). Rows past the matrix are zero. A tile computes C
 * rows [0, mr) x columns [0, nr) from MR rows of A (a, stride lda) and one
 * B block (stores only those). */
typedef void (*lm_bf16_tile_fn)(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp,
                                int mr, int nr, int accumulate);
void lm_bf16_tile_avx2(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                       int nr, int accumulate);
void lm_bf16_tile_avx512(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                         int nr, int accumulate);
/* Packs rows [i0, i0 + rows) of X into dst[p*R + r], r < rows with AVX-512 loads and gathers; returns 0
 * when X's layout is one it leaves to the portable packing. */
int lm_bf16_pack_avx512(uint32_t *dst, const lm_bf16_operand *X, int64_t K, int R, int64_t i0, int rows);
enum { LM_BF16_MR_AVX512 = 6, LM_BF16_NR_AVX512 = 64, LM_BF16_MR_AVX2 = 4, LM_BF16_NR_AVX2 = 16,
       LM_BF16_MR_SCALAR = 2, LM_BF16_NR_SCALAR = 4 };

#endif
