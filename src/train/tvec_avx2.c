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

#include "train/tvec_simd.h"
