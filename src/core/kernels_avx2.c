/* kernels_avx2.c — the AVX2 + FMA + F16C vector layer of the one kernel
 * driver (kernels_simd.h): 8 lanes, 16 ymm registers.
 *
 * GEMM: MR = 6 W rows broadcast against strips of 16 tokens (2 ymm): 12
 * accumulators. Matvec: token blocks of 2 over 4 blocks of 8 rows; on
 * panels, a whole 128-row block at T = 1 (16 accumulators: one may spill,
 * still faster than DRAM), 2 panels for token blocks of 2. The
 * canonical 16 lanes of the row kernels are two ymm (lanes 0-7, 8-15).
 * Tails of 16/8-bit weights are copied into a zeroed buffer (AVX2 has no
 * masked loads for them); f32 tails use vmaskmovps. FP8: see
 * kernels_avx512.c (byte -> f16 bits worth value * 2^-8). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "core/kernels.h"
#include "core/mathfn.h"

#define AI static inline __attribute__((always_inline))

#define VL 8
#define MR 6
#define MVT 2
#define MVP1 8 /* T = 1: a whole 128-row block, 16 accumulators (one may spill: DRAM is slower than that) */
#define TABLE_NAME lm_kernels_avx2
#define MATVEC_MAX_T {8, 32, 32, 8, 8} /* F32, BF16, F16, FP8, I8 */
typedef __m256 vf;
#define VPS(op) _mm256_##op##_ps /* the uniformly named operations: kernels_simd.h */

static inline __m256i lane_mask(int64_t n) { /* first n (0..8) lanes all-ones */
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - (n > 8 ? 8 : n)));
}

AI vf v_loadn(const float *p, int64_t n) { return _mm256_maskload_ps(p, lane_mask(n)); }
AI void v_storen(float *p, vf v, int64_t n) { _mm256_maskstore_ps(p, lane_mask(n), v); }
AI vf v_keepn(vf v, int64_t n) { return _mm256_and_ps(v, _mm256_castsi256_ps(lane_mask(n))); }

/* (p * 2^a) * 2^b with n = bits(t) - bits(shifter), a = n >> 1, b = n - a */
AI vf v_exp_scale(vf p, vf n_float, vf t) {
    (void)n_float;
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32((int)lm_f32_bits(LM_EXPF_SHIFTER)));
    __m256i a = _mm256_srai_epi32(n, 1), b = _mm256_sub_epi32(n, a);
    __m256i bias = _mm256_set1_epi32(127);
    vf pa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
    vf pb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, pa), pb);
}

/* ---- weights ---- */

AI vf bf16x8(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }

/* 8 FP8 bytes (low half of b) -> value * 2^-8 */
AI vf fp8x8(__m128i b, const int patch_nan) {
    __m128i w = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(b), 7), _mm_set1_epi16((short)0xbfff));
    if (patch_nan) {
        const __m128i m7f = _mm_set1_epi8(0x7f);
        __m128i nan = _mm_cmpeq_epi8(_mm_and_si128(b, m7f), m7f);
        if (__builtin_expect((_mm_movemask_epi8(nan) & 0xff) != 0, 0))
            w = _mm_blendv_epi8(w, _mm_set1_epi16(0x7e00), _mm_cvtepi8_epi16(nan));
    }
    return _mm256_cvtph_ps(w);
}

AI vf v_w(const int dt, const uint8_t *p, int64_t i) {
    switch (dt) {
    case LM_DTYPE_F32: return _mm256_loadu_ps((const float *)(p + 4 * i));
    case LM_DTYPE_BF16: return bf16x8(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
    case LM_DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
    case LM_DTYPE_I8: return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + i))));
    default: return fp8x8(_mm_loadl_epi64((const __m128i *)(p + i)), dt != LM_DT_FP8_NAN_FREE);
    }
}

AI vf v_wn(const int dt, const uint8_t *p, int64_t i, int64_t n) {
    if (dt == LM_DTYPE_F32) return _mm256_maskload_ps((const float *)(p + 4 * i), lane_mask(n));
    _Alignas(16) uint8_t buf[16] = {0};
    size_t es = dt == LM_DTYPE_F32 ? 4 : dt == LM_DTYPE_BF16 || dt == LM_DTYPE_F16 ? 2 : 1;
    memcpy(buf, p + es * (size_t)i, es * (size_t)n);
    return v_w(dt, buf, 0);
}

/* ---- shuffles and reductions ---- */

AI void v_transpose(vf r[8]) {
    vf t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    /* u[4g + e], 128-bit lane L: rows 4g..4g+3 of column 4L + e */
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
}

/* The canonical tree over lanes 0-7 (s[0]) and 8-15 (s[1]): lane j += lane
 * j + 8, then j + 4, j + 2, j + 1. */
AI float v_sum16(const vf *s) {
    __m256 a = _mm256_add_ps(s[0], s[1]);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

AI float v_max16(const vf *s) {
    __m256 a = _mm256_max_ps(s[1], s[0]);
    __m128 b = _mm_max_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    b = _mm_max_ps(_mm_movehl_ps(b, b), b);
    b = _mm_max_ss(_mm_movehdup_ps(b), b);
    return _mm_cvtss_f32(b);
}

#include "core/kernels_simd.h"
