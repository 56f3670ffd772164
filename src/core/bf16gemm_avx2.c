/* bf16gemm_avx2.c — the bf16 pair chain (bf16gemm.h) emulated on 8 lanes
 * with plain vfmadd under MXCSR's flush-to-zero and denormals-are-zero.
 *
 * x86 detects underflow on the result rounded with an unbounded exponent
 * (Intel SDM vol. 1, 4.9.1.5) and FTZ then returns a zero with the sign of
 * the true result: exactly the flush of vdpbf16ps (docs/arithmetic.md; a
 * probe found no difference in 40 M near-threshold cases, and
 * tests/test_bf16gemm.c compares this path with the definition in plain C).
 * So the step is one fma. The bits of MXCSR are set on this thread for the
 * chain only and restored before anything else (the accumulate add, which
 * must see subnormals) runs; the chain runs in a function of its own so no
 * other floating-point operation is moved inside. Tiles of 4 rows x 2
 * vectors. */
#include <immintrin.h>

#include "core/bf16gemm.h"

#define MR LM_BF16_MR_AVX2
#define NV (LM_BF16_NR_AVX2 / 8)

enum { MXCSR_FTZ_DAZ = 0x8040 };

static __attribute__((noinline)) void chain(float out[MR][LM_BF16_NR_AVX2], const uint32_t *a, int64_t lda,
                                            const uint32_t *b, int64_t Kp) {
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
    for (int64_t p = 0; p < Kp; p++) {
        __m256 bh[NV], bl[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(b + p * LM_BF16_NR_AVX2 + v * 8));
            bh[v] = _mm256_castsi256_ps(_mm256_and_si256(w, hi_mask));
            bl[v] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            /* the word broadcast from memory, then split in the vector unit */
            __m256i aw = _mm256_set1_epi32((int)a[p * lda + i]);
            __m256 ah = _mm256_castsi256_ps(_mm256_and_si256(aw, hi_mask));
            __m256 al = _mm256_castsi256_ps(_mm256_slli_epi32(aw, 16));
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(al, bl[v], _mm256_fmadd_ps(ah, bh[v], acc[i][v]));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(out[i] + v * 8, acc[i][v]);
}

void lm_bf16_tile_avx2(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                       int nr, int accumulate) {
    float out[MR][LM_BF16_NR_AVX2];
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | MXCSR_FTZ_DAZ);
    chain(out, a, lda, b, Kp);
    _mm_setcsr(csr);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *c = C + i * ldc + j;
            *c = accumulate ? *c + out[i][j] : out[i][j];
        }
}
