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

#include "train/tvec_simd.h"
