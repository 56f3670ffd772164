/* tvec_avx2.c — the training vector kernels (tvec_simd.h) on 8 lanes: nn
 * tiles of 4 rows x 2 vectors (8 accumulators of 16 registers). */
#include <immintrin.h>

#define VL 8
#define TV_MR 4
#define TV_NV 2
#define TV_TABLE tv_avx2
typedef __m256 vf;
#define TLI static inline __attribute__((always_inline))
TLI vf t_zero(void) { return _mm256_setzero_ps(); }
TLI vf t_set1(float f) { return _mm256_set1_ps(f); }
TLI vf t_load(const float *p) { return _mm256_loadu_ps(p); }
TLI void t_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
TLI vf t_add(vf a, vf b) { return _mm256_add_ps(a, b); }
TLI vf t_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
TLI vf t_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
TLI vf t_div(vf a, vf b) { return _mm256_div_ps(a, b); }
TLI vf t_sqrt(vf a) { return _mm256_sqrt_ps(a); }
TLI vf t_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
/* As the AVX-512 layer's; the NaN test as a signed compare (the masked
 * value is non-negative). */
TLI vf t_round_bf16(vf x) {
    __m256i u = _mm256_castps_si256(x), hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), hi);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    __m256i q = _mm256_or_si256(_mm256_and_si256(u, hi), _mm256_set1_epi32(0x00400000));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(r, q, nan));
}

#include "train/tvec_simd.h"
