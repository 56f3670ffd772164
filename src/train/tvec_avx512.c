/* tvec_avx512.c — the training vector kernels (tvec_simd.h) on 16 lanes:
 * nn tiles of 6 rows x 4 vectors (24 accumulators of 32 registers). */
#include <immintrin.h>

#define VL 16
#define TV_MR 6
#define TV_NV 4
#define TV_TABLE tv_avx512
typedef __m512 vf;
#define TLI static inline __attribute__((always_inline))
TLI vf t_zero(void) { return _mm512_setzero_ps(); }
TLI vf t_set1(float f) { return _mm512_set1_ps(f); }
TLI vf t_load(const float *p) { return _mm512_loadu_ps(p); }
TLI void t_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
TLI vf t_add(vf a, vf b) { return _mm512_add_ps(a, b); }
TLI vf t_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
TLI vf t_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
TLI vf t_div(vf a, vf b) { return _mm512_div_ps(a, b); }
TLI vf t_sqrt(vf a) { return _mm512_sqrt_ps(a); }
TLI vf t_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* u + 0x7fff + (bit 16 of u), high half kept; NaN: the high half with the
 * quiet bit set (lm_f32_to_bf16). */
TLI vf t_round_bf16(vf x) {
    __m512i u = _mm512_castps_si512(x), hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), hi);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i q = _mm512_or_si512(_mm512_and_si512(u, hi), _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(_mm512_mask_mov_epi32(r, nan, q));
}
#define TV_STORE_BF16(p, v) \
    _mm256_storeu_si256((__m256i *)(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)))

#include "train/tvec_simd.h"
