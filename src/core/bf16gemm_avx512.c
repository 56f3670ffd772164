/* bf16gemm_avx512.c — the bf16 pair chain (bf16gemm.h) on vdpbf16ps: each
 * instruction is two steps of the chain on 16 columns (the odd element of
 * each pair first, as the instruction defines). Tiles of 6 rows x 4
 * vectors: 24 accumulators, the A word broadcast from memory. Compiled for
 * avx512bf16 by attribute; called only when the CPU has it. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "core/bf16gemm.h"

#define MR LM_BF16_MR_AVX512
#define NV (LM_BF16_NR_AVX512 / 16)

__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) void
lm_bf16_tile_avx512(float *C, int64_t ldc, const uint32_t *a, int64_t lda, const uint32_t *b, int64_t Kp, int mr,
                    int nr, int accumulate) {
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
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[p * lda + i]);
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

/* ---- packing (bf16gemm.h: a block of R rows as [Kp][R] pair words) ---- */

#define PACK_TARGET __attribute__((target("avx512f,avx512bw")))

/* bf16 bits in the low 16 of each lane (high 16 zero): a subnormal becomes
 * a zero of its sign. The same for both halves of pair words. */
PACK_TARGET static inline __m512i daz_lo(__m512i h) {
    __mmask16 sub = _mm512_testn_epi32_mask(h, _mm512_set1_epi32(0x7f80));
    return _mm512_mask_and_epi32(h, sub, h, _mm512_set1_epi32(0x8000));
}
PACK_TARGET static inline __m512i daz_pair(__m512i w) {
    __m512i lo = daz_lo(_mm512_and_si512(w, _mm512_set1_epi32(0xffff)));
    __m512i hi = daz_lo(_mm512_srli_epi32(w, 16));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* f32 bits -> bf16 bits in the low halves (lm_f32_to_bf16: nearest even,
 * a NaN keeps its high half with the quiet bit set), then daz_lo. */
PACK_TARGET static inline __m512i cvt16(__m512i u) {
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return daz_lo(_mm512_and_si512(r, _mm512_set1_epi32(0xffff)));
}

/* v[r][c] -> v[c][r] for a 16 x 16 block of 32-bit words: for each bit b
 * of the index, rows i and i + 2^b (bit b clear in i) swap the columns
 * with bit b set in one against those with it clear in the other (two
 * vpermt2d per pair of rows); the four stages exchange all four bits. */
PACK_TARGET static void transpose16(__m512i v[16]) {
    for (int g = 1; g < 16; g <<= 1) {
        int lo_idx[16], hi_idx[16];
        for (int c = 0; c < 16; c++) {
            lo_idx[c] = (c & g) ? 16 + c - g : c;
            hi_idx[c] = (c & g) ? 16 + c : c + g;
        }
        __m512i il = _mm512_loadu_si512(lo_idx), ih = _mm512_loadu_si512(hi_idx);
        for (int i = 0; i < 16; i++) {
            if (i & g) continue;
            __m512i a = v[i], b = v[i + g];
            v[i] = _mm512_permutex2var_epi32(a, il, b);
            v[i + g] = _mm512_permutex2var_epi32(a, ih, b);
        }
    }
}

/* 16 pair words of one row from pairs [p0, p0 + np) (np <= 16) of a
 * row whose pair elements are adjacent (sk == 1). */
PACK_TARGET static inline __m512i row_words(const lm_bf16_operand *X, int64_t row, int64_t p0, int np) {
    if (X->dtype == LM_DTYPE_BF16) {
        const uint16_t *e = (const uint16_t *)X->data + row * X->si + 2 * p0;
        return daz_pair(_mm512_maskz_loadu_epi32((__mmask16)((1u << np) - 1), e));
    }
    const float *e = (const float *)X->data + row * X->si + 2 * p0;
    int n0 = 2 * np < 16 ? 2 * np : 16, n1 = 2 * np - n0;
    __m512i a = cvt16(_mm512_maskz_loadu_epi32((__mmask16)((1u << n0) - 1), e));
    __m512i b = cvt16(_mm512_maskz_loadu_epi32((__mmask16)((1u << n1) - 1), e + 16));
    /* the low halves of the 32 lanes, in order, are the 16 words */
    __m256i wa = _mm512_cvtepi32_epi16(a), wb = _mm512_cvtepi32_epi16(b);
    return _mm512_inserti64x4(_mm512_castsi256_si512(wa), wb, 1);
}

/* F32 or BF16 rows with adjacent pair elements: 16 rows x 16 pairs loaded
 * row-wise, converted, transposed in registers, stored pair-wise. */
PACK_TARGET static void pack_rows_contiguous(uint32_t *dst, const lm_bf16_operand *X, int64_t K, int R, int64_t i0,
                                             int rows) {
    int64_t full = K / 2;
    for (int r0 = 0; r0 < rows; r0 += 16) {
        int n = rows - r0 < 16 ? rows - r0 : 16;
        __mmask16 m = (__mmask16)((1u << n) - 1);
        for (int64_t p0 = 0; p0 < full; p0 += 16) {
            int np = full - p0 < 16 ? (int)(full - p0) : 16;
            __m512i v[16];
            for (int r = 0; r < 16; r++) v[r] = r < n ? row_words(X, i0 + r0 + r, p0, np) : _mm512_setzero_si512();
            transpose16(v);
            for (int j = 0; j < np; j++) _mm512_mask_storeu_epi32(dst + (p0 + j) * R + r0, m, v[j]);
        }
        if (K & 1) /* the last element alone, its pair's other half zero */
            for (int r = 0; r < n; r++) {
                int64_t at = (i0 + r0 + r) * X->si + K - 1;
                uint32_t h;
                if (X->dtype == LM_DTYPE_BF16) {
                    h = ((const uint16_t *)X->data)[at];
                } else {
                    uint32_t u;
                    memcpy(&u, (const float *)X->data + at, 4);
                    h = (uint32_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(cvt16(_mm512_set1_epi32((int)u))));
                }
                dst[full * R + r0 + r] = (h & 0x7f80u) ? h : (h & 0x8000u);
            }
    }
}

/* Rows [i0, i0 + rows) of X, 16 at a time: F32 with adjacent rows (si == 1)
 * by plain loads, F32 otherwise by two gathers per pair, BF16 with adjacent
 * pair elements (sk == 1) by one 32-bit gather per pair (the last element
 * of an odd K alone, so nothing past the row is read). Returns 0 for what
 * it does not handle (the caller's scalar packing then runs). */
PACK_TARGET int lm_bf16_pack_avx512(uint32_t *dst, const lm_bf16_operand *X, int64_t K, int R, int64_t i0,
                                    int rows) {
    int64_t Kp = (K + 1) / 2, full = K / 2;
    int f32 = X->dtype == LM_DTYPE_F32;
    if (X->sk == 1 && X->si >= 0 && (f32 || X->dtype == LM_DTYPE_BF16)) {
        pack_rows_contiguous(dst, X, K, R, i0, rows);
        return 1;
    }
    if (!f32) return 0;
    if (!(f32 && X->si == 1) && ((int64_t)R * X->si > INT32_MAX / 2 || X->si < 0)) return 0;
    for (int r0 = 0; r0 < rows; r0 += 16) {
        int n = rows - r0 < 16 ? rows - r0 : 16;
        __mmask16 m = (__mmask16)((1u << n) - 1);
        __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)X->si));
        for (int64_t p = 0; p < Kp; p++) {
            int two = p < full;
            __m512i w;
            if (f32) {
                const float *e = (const float *)X->data + (i0 + r0) * X->si + 2 * p * X->sk;
                __m512i ue, uo = _mm512_setzero_si512();
                if (X->si == 1) {
                    ue = _mm512_maskz_loadu_epi32(m, e);
                    if (two) uo = _mm512_maskz_loadu_epi32(m, e + X->sk);
                } else {
                    ue = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, e, 4);
                    if (two) uo = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, e + X->sk, 4);
                }
                w = cvt16(ue);
                if (two) w = _mm512_or_si512(w, _mm512_slli_epi32(cvt16(uo), 16));
            } else {
                const uint16_t *e = (const uint16_t *)X->data + (i0 + r0) * X->si + 2 * p;
                if (two) {
                    w = daz_pair(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, e, 2));
                } else {
                    uint32_t last[16] = {0};
                    for (int r = 0; r < n; r++) last[r] = e[r * X->si];
                    w = daz_lo(_mm512_loadu_si512(last));
                }
            }
            _mm512_mask_storeu_epi32(dst + p * R + r0, m, w);
        }
    }
    return 1;
}
