/* tvec_scalar.c — the training vector kernels (tvec_simd.h) on 1 lane, for
 * CPUs without AVX2: fmaf and sqrtf from the C library (correctly rounded),
 * so the bits are the SIMD paths'. */
#include <math.h>

#include "core/dtype.h"

#define VL 1
#define TV_MR 4
#define TV_NV 1
#define TV_TABLE tv_scalar
typedef float vf;
#define TLI static inline __attribute__((always_inline))
TLI vf t_zero(void) { return 0.0f; }
TLI vf t_set1(float f) { return f; }
TLI vf t_load(const float *p) { return *p; }
TLI void t_store(float *p, vf v) { *p = v; }
TLI vf t_add(vf a, vf b) { return a + b; }
TLI vf t_sub(vf a, vf b) { return a - b; }
TLI vf t_mul(vf a, vf b) { return a * b; }
TLI vf t_div(vf a, vf b) { return a / b; }
TLI vf t_sqrt(vf a) { return sqrtf(a); }
TLI vf t_fma(vf a, vf b, vf c) { return fmaf(a, b, c); }
TLI vf t_round_bf16(vf x) { return lm_bf16_to_f32(lm_f32_to_bf16(x)); }

#include "train/tvec_simd.h"
