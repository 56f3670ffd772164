/* kernels_scalar_layer.h — the 1-lane vector layer of the one kernel driver
 * (kernels_simd.h): a "vector" is a float, fma is fmaf. Included by
 * kernels_scalar.c (baseline x86-64: fmaf is the C library's, correctly
 * rounded in software or hardware) and kernels_scalar_fma.c (compiled with
 * -mfma: fmaf is one instruction). Both give the bits of the SIMD paths. */
#ifndef LEMMA_CORE_KERNELS_SCALAR_LAYER_H
#define LEMMA_CORE_KERNELS_SCALAR_LAYER_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/mathfn.h"

#define AI static inline __attribute__((always_inline))

#define VL 1
#define MR 4
#define MVT 4
#define MATVEC_MAX_T {4, 4, 4, 4, 4} /* F32, BF16, F16, FP8, I8 */
typedef float vf;

AI vf v_zero(void) { return 0.0f; }
AI vf v_set1(float f) { return f; }
AI vf v_load(const float *p) { return *p; }
AI vf v_load_a(const float *p) { return *p; }
AI vf v_loadn(const float *p, int64_t n) { return (void)n, *p; }
AI void v_store(float *p, vf v) { *p = v; }
AI void v_store_a(float *p, vf v) { *p = v; }
AI void v_storen(float *p, vf v, int64_t n) { (void)n, *p = v; }
AI vf v_add(vf a, vf b) { return a + b; }
AI vf v_sub(vf a, vf b) { return a - b; }
AI vf v_mul(vf a, vf b) { return a * b; }
AI vf v_div(vf a, vf b) { return a / b; }
AI vf v_fma(vf a, vf b, vf c) { return fmaf(a, b, c); }
AI vf v_keepn(vf v, int64_t n) { return (void)n, v; }
AI vf v_max(vf x, vf m) { return x > m ? x : m; }
AI vf v_clamp(vf x, vf lo, vf hi) {
    x = lo > x ? lo : x;
    return hi < x ? hi : x;
}

AI vf v_exp_scale(vf p, vf n_float, vf t) {
    (void)n_float;
    int32_t n = (int32_t)(lm_f32_bits(t) - lm_f32_bits(LM_EXPF_SHIFTER)), a = n >> 1, b = n - a;
    return (p * lm_f32_from_bits((uint32_t)(a + 127) << 23)) * lm_f32_from_bits((uint32_t)(b + 127) << 23);
}

/* One weight as exact f32 (FP8: value * 2^-8, exact). */
AI vf v_w(const int dt, const uint8_t *p, int64_t i) {
    uint16_t h;
    switch (dt) {
    case LM_DTYPE_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case LM_DTYPE_BF16: memcpy(&h, p + 2 * i, 2); return lm_bf16_to_f32(h);
    case LM_DTYPE_F16: memcpy(&h, p + 2 * i, 2); return lm_f16_to_f32(h);
    case LM_DTYPE_I8: return (float)(int8_t)p[i];
    default: return lm_fp8e4m3_to_f32(p[i]) * 0x1p-8f;
    }
}

AI vf v_wn(const int dt, const uint8_t *p, int64_t i, int64_t n) { return (void)n, v_w(dt, p, i); }

AI void v_transpose(vf r[1]) { (void)r; }

/* The canonical tree over 16 lanes: lane j += lane j + 8, then j + 4, j + 2, j + 1. */
AI float v_sum16(const vf *s) {
    float a[8], b[4], c[2];
    for (int j = 0; j < 8; j++) a[j] = s[j] + s[j + 8];
    for (int j = 0; j < 4; j++) b[j] = a[j] + a[j + 4];
    for (int j = 0; j < 2; j++) c[j] = b[j] + b[j + 2];
    return c[0] + c[1];
}

AI float v_max16(const vf *s) {
    float m = s[0];
    for (int j = 1; j < 16; j++) m = s[j] > m ? s[j] : m;
    return m;
}

#include "core/kernels_simd.h"

#endif
