/* bf16gemm_avx512.c — the bf16 pair chain (bf16gemm.h) on vdpbf16ps: each
 * instruction is two steps of the chain on 16 columns (the odd element of
 * each pair first, as the instruction defines). Tiles of 6 rows x 4
 * vectors: 24 accumulators, the A word broadcast from memory. Compiled for
 * avx512bf16 by attribute; called only when the CPU has it. */
#include <immintrin.h>

#include "core/bf16gemm.h"

#define MR LM_BF16_MR_AVX512
#define NV (LM_BF16_NR_AVX512 / 16)

__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) void
lm_bf16_tile_avx512(float *C, int64_t ldc, const uint32_t *a, const uint32_t *b, int64_t Kp, int mr, int nr,
                    int accumulate) {
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < Kp; p++) {
        __m512i bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512(b + p * LM_BF16_NR_AVX512 + v * 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[p * MR + i]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, (__m512bh)bv[v]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV && v * 16 < nr; v++) {
            int left = nr - v * 16;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            float *c = C + i * ldc + v * 16;
            __m512 r = acc[i][v];
            if (accumulate) r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), r);
            _mm512_mask_storeu_ps(c, m, r);
        }
}
