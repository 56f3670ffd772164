/* mathfn.h — lemma's own elementary functions, so that no result depends on
 * the C library's libm (or on which ifunc variant of it a CPU gets).
 *
 * Every function here is built from IEEE-754 operations that are correctly
 * rounded (+, -, *, /, sqrt, and bit manipulation), in a fixed order, with
 * -ffp-contract=off (the Makefile): the same bits on every x86-64 and in
 * every kernel path. docs/arithmetic.md is the definition; accuracy figures
 * there are checked by tests/test_mathfn.c.
 *
 * lm_expf is also written lane-wise in the SIMD files (kernels_simd.h): the
 * same operations in the same order, so a vector lane and this scalar give
 * the same bits. */
#ifndef LEMMA_CORE_MATHFN_H
#define LEMMA_CORE_MATHFN_H

#include <stdint.h>
#include <string.h>

/* The version of lemma's arithmetic: bumped whenever any kernel's bits
 * change (a different reduction order, polynomial, rounding step). It is
 * part of every stage key in lemma.lock (src/build/lock.c). History:
 *   1  up to December 2026: per-ISA orders, libm exp/log/sin/cos
 *   2  one canonical arithmetic for all paths (docs/arithmetic.md) */
#define LM_ARITH_VERSION 2

/* ---- float exp: the constants and steps shared with the SIMD lanes ---- */

#define LM_EXPF_LO (-104.0f)                  /* e^-104 < 2^-150: rounds to 0 */
#define LM_EXPF_HI 89.0f                      /* e^89 > FLT_MAX: inf */
#define LM_EXPF_LOG2E 1.44269504088896341f
#define LM_EXPF_SHIFTER 12582912.0f           /* 1.5 * 2^23: x + it rounds x to an integer */
#define LM_EXPF_LN2_HI 0.693145751953125f     /* 16 significant bits: n * it is exact */
#define LM_EXPF_LN2_LO 1.428606765330187045e-06f
#define LM_EXPF_C7 (1.0f / 5040)
#define LM_EXPF_C6 (1.0f / 720)
#define LM_EXPF_C5 (1.0f / 120)
#define LM_EXPF_C4 (1.0f / 24)
#define LM_EXPF_C3 (1.0f / 6)
#define LM_EXPF_C2 0.5f

static inline uint32_t lm_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float lm_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* e^x, float. Steps (each one IEEE operation, rounded to float):
 *   x clamped to [-104, 89] (NaN passes);
 *   t = x * log2e + 1.5*2^23; n = t - 1.5*2^23 (round to nearest integer);
 *   r = (x - n*ln2_hi) - n*ln2_lo;
 *   p = degree-7 Taylor polynomial of e^r by Horner, multiply then add;
 *   result = (p * 2^a) * 2^b with a = floor(n/2), b = n - a: the first
 *   product is exact, so the result is p * 2^n rounded once, subnormals
 *   included.
 * Max error about 2 ulp (see docs/arithmetic.md). NaN in, NaN out (payload
 * not specified); -inf -> 0, +inf -> inf. */
static inline float lm_expf(float x) {
    x = x < LM_EXPF_LO ? LM_EXPF_LO : x;
    x = x > LM_EXPF_HI ? LM_EXPF_HI : x;
    float t = x * LM_EXPF_LOG2E + LM_EXPF_SHIFTER;
    float n = t - LM_EXPF_SHIFTER;
    int32_t ni = (int32_t)(lm_f32_bits(t) - lm_f32_bits(LM_EXPF_SHIFTER));
    float r = x - n * LM_EXPF_LN2_HI;
    r = r - n * LM_EXPF_LN2_LO;
    float p = LM_EXPF_C7;
    p = p * r + LM_EXPF_C6;
    p = p * r + LM_EXPF_C5;
    p = p * r + LM_EXPF_C4;
    p = p * r + LM_EXPF_C3;
    p = p * r + LM_EXPF_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t a = ni >> 1, b = ni - a;
    return (p * lm_f32_from_bits((uint32_t)(a + 127) << 23)) * lm_f32_from_bits((uint32_t)(b + 127) << 23);
}

/* 1 / (1 + e^-x): the router's sigmoid and SiLU's gate. */
static inline float lm_sigmoidf(float x) { return 1.0f / (1.0f + lm_expf(-x)); }

/* ---- double precision: tables (RoPE, YaRN), schedules, optimiser, init ----
 * Accuracy (tests/test_mathfn.c, against long double): lm_exp, lm_log,
 * lm_sin, lm_cos within a few ulp; lm_pow within about 1e-15 relative for
 * moderate |y log x|. Not correctly rounded, but the same on every CPU. */
double lm_exp(double x);
double lm_log(double x);              /* x <= 0: -inf (0) or NaN */
double lm_sin(double x);              /* |x| < 2^30 (beyond: NaN) */
double lm_cos(double x);
double lm_pow(double x, double y);    /* x > 0, or x == 0 with y > 0; else NaN */
double lm_powi(double x, int64_t n);  /* x^n by binary powering, n >= 0 */

/* log(x) for float x, via lm_log (one double rounding to float). */
static inline float lm_logf(float x) { return (float)lm_log((double)x); }

#endif
