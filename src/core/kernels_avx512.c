/* kernels_avx512.c — the AVX-512 (F, BW, VL, DQ) vector layer of the one
 * kernel driver (kernels_simd.h): 16 lanes, 32 zmm registers.
 *
 * GEMM: MR = 12 W rows broadcast against strips of 32 tokens (2 zmm): 24
 * accumulators. Matvec: token blocks of 4 over 4 blocks of 16 rows; on
 * panels, 8 panels (a 128-row block) at T = 1, 4 for token blocks of 4.
 *
 * FP8 E4M3 -> f32 without tables: sign-extend the byte to 16 bits, shift
 * left 7 and clear bit 14: that is the f16 with the same bits, worth
 * value * 2^-8 (subnormals included); vcvtph2ps converts it exactly. The
 * 2^8 goes into the block scale (kernels_simd.h). NaN bytes (0x7f, 0xff) are
 * patched to the f16 NaN. */
#include <immintrin.h>
#include <stdint.h>

#include "core/kernels.h"
#include "core/mathfn.h"

#define AI static inline __attribute__((always_inline))

#define VL 16
#define MR 12
#define MVT 4
#define TABLE_NAME lm_kernels_avx512
#define MATVEC_MAX_T {64, 128, 128, 12, 12} /* F32, BF16, F16, FP8, I8 */
typedef __m512 vf;
#define VPS(op) _mm512_##op##_ps /* the uniformly named operations: kernels_simd.h */

static inline __mmask16 tail_mask(int64_t n) { /* n in 1..16 */
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

AI vf v_loadn(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
AI void v_storen(float *p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
AI vf v_keepn(vf v, int64_t n) { return _mm512_maskz_mov_ps(tail_mask(n), v); }
/* p * 2^n rounded once: vscalefps is exactly that (subnormal results
 * included), the same value the two-product form of lm_expf gives. */
AI vf v_exp_scale(vf p, vf n, vf t) { return (void)t, _mm512_scalef_ps(p, n); }

/* ---- weights ---- */

AI vf bf16x16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

/* 16 FP8 bytes -> value * 2^-8. */
AI vf fp8x16(__m128i b, const int patch_nan) {
    __m256i w = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), _mm256_set1_epi16((short)0xbfff));
    if (patch_nan) {
        const __m128i m7f = _mm_set1_epi8(0x7f);
        __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_and_si128(b, m7f), m7f);
        if (__builtin_expect(nan != 0, 0)) w = _mm256_mask_mov_epi16(w, nan, _mm256_set1_epi16(0x7e00));
    }
    return _mm512_cvtph_ps(w);
}

/* 16 FP8 bytes without NaN codes -> value * 2^-120: sign-extended to 32
 * bits and shifted left 20, the exponent and mantissa sit in f32 position
 * (subnormal bytes become f32 subnormals), bits 30..27 (copies of the sign)
 * cleared. Integer work only, no f16 step. */
#define FP8_WIDE 1
AI vf fp8x16_wide(__m128i b) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_slli_epi32(_mm512_cvtepi8_epi32(b), 20), _mm512_set1_epi32((int)0x87ffffff)));
}

AI vf v_w(const int dt, const uint8_t *p, int64_t i) {
    switch (dt) {
    case LM_DT_FP8_WIDE: return fp8x16_wide(_mm_loadu_si128((const __m128i *)(p + i)));
    case LM_DTYPE_I8: return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + i))));
    case LM_DTYPE_F32: return _mm512_loadu_ps(p + 4 * i);
    case LM_DTYPE_BF16: return bf16x16(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
    case LM_DTYPE_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
    default: return fp8x16(_mm_loadu_si128((const __m128i *)(p + i)), dt != LM_DT_FP8_NAN_FREE);
    }
}

AI vf v_wn(const int dt, const uint8_t *p, int64_t i, int64_t n) {
    __mmask16 m = tail_mask(n);
    switch (dt) {
    case LM_DTYPE_F32: return _mm512_maskz_loadu_ps(m, p + 4 * i);
    case LM_DTYPE_BF16: return bf16x16(_mm256_maskz_loadu_epi16(m, p + 2 * i));
    case LM_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + 2 * i));
    case LM_DT_FP8_WIDE: return fp8x16_wide(_mm_maskz_loadu_epi8(m, p + i));
    case LM_DTYPE_I8: return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p + i)));
    default: return fp8x16(_mm_maskz_loadu_epi8(m, p + i), dt != LM_DT_FP8_NAN_FREE);
    }
}

/* ---- shuffles and reductions ---- */

/* In-register transpose of a 16x16 block: r[i][j] -> r[j][i]. */
AI void v_transpose(vf r[16]) {
    vf t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    vf u[16];
#pragma GCC unroll 16
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* u[4g + e], 128-bit lane L: rows 4g..4g+3 of column 4L + e */
#pragma GCC unroll 16
    for (int e = 0; e < 4; e++) {
        vf v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        vf w0 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        vf v1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        vf w1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        r[e] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + e] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + e] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + e] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

/* The canonical tree: lane j += lane j + 8, then j + 4, j + 2, j + 1. */
AI float v_sum16(const vf *s) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(s[0]), _mm512_extractf32x8_ps(s[0], 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

AI float v_max16(const vf *s) {
    __m256 a = _mm256_max_ps(_mm512_extractf32x8_ps(s[0], 1), _mm512_castps512_ps256(s[0]));
    __m128 b = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    b = _mm_max_ps(_mm_movehl_ps(b, b), b);
    b = _mm_max_ss(_mm_movehdup_ps(b), b);
    return _mm_cvtss_f32(b);
}

#include "core/kernels_simd.h"
