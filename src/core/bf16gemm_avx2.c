/* bf16gemm_avx2.c — the bf16 pair chain (bf16gemm.h) emulated on 8 lanes:
 * each step an fma, then the flush of vdpbf16ps: results below 2^-126 in
 * magnitude become zeros of their sign; a result of exactly 2^-126 (rare)
 * goes to lm_bf16_step, which decides from the exact value. Tiles of 4 rows
 * x 2 vectors. */
#include <immintrin.h>

#include "core/bf16gemm.h"

#define MR LM_BF16_MR_AVX2
#define NV (LM_BF16_NR_AVX2 / 8)

static __attribute__((noinline)) __m256 edge_lanes(__m256 r, __m256 a, __m256 b, __m256 c) {
    float ra[8], aa[8], ba[8], ca[8];
    _mm256_storeu_ps(ra, r);
    _mm256_storeu_ps(aa, a);
    _mm256_storeu_ps(ba, b);
    _mm256_storeu_ps(ca, c);
    for (int i = 0; i < 8; i++) ra[i] = lm_bf16_step(aa[i], ba[i], ca[i]);
    return _mm256_loadu_ps(ra);
}

static inline __attribute__((always_inline)) __m256 step8(__m256 a, __m256 b, __m256 c) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 min_normal = _mm256_castsi256_ps(_mm256_set1_epi32(0x00800000));
    __m256 r = _mm256_fmadd_ps(a, b, c);
    __m256 mag = _mm256_and_ps(r, abs_mask);
    __m256 tiny = _mm256_cmp_ps(mag, min_normal, _CMP_LT_OQ);
    __m256 edge = _mm256_cmp_ps(mag, min_normal, _CMP_EQ_OQ);
    r = _mm256_andnot_ps(_mm256_and_ps(tiny, abs_mask), r);
    if (__builtin_expect(_mm256_movemask_ps(edge) != 0, 0)) r = edge_lanes(r, a, b, c);
    return r;
}

void lm_bf16_tile_avx2(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                       int nr, int accumulate) {
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
    for (int64_t p = 0; p < Kp; p++) {
        __m256 bh[NV], bl[NV];
        for (int v = 0; v < NV; v++) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(b + p * LM_BF16_NR_AVX2 + v * 8));
            bh[v] = _mm256_castsi256_ps(_mm256_and_si256(w, hi_mask));
            bl[v] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        }
        for (int i = 0; i < MR; i++) {
            uint32_t wa = a[p * lda + i], hi = wa & 0xffff0000u, lo = wa << 16;
            __m256 ah = _mm256_castsi256_ps(_mm256_set1_epi32((int)hi)), al = _mm256_castsi256_ps(_mm256_set1_epi32((int)lo));
            for (int v = 0; v < NV; v++) acc[i][v] = step8(al, bl[v], step8(ah, bh[v], acc[i][v]));
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) {
            float out[8];
            _mm256_storeu_ps(out, acc[i][v]);
            for (int l = 0; l < 8 && v * 8 + l < nr; l++) {
                float *c = C + i * ldc + v * 8 + l;
                *c = accumulate ? *c + out[l] : out[l];
            }
        }
}
