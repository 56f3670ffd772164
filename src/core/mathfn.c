/* mathfn.c — double-precision elementary functions; see mathfn.h and
 * docs/arithmetic.md. Argument reduction (Cody-Waite, constants split so the
 * products with the reduction integer are exact), then a Taylor polynomial
 * evaluated by Horner, then exact rescaling. Only +, -, *, / on doubles and
 * bit manipulation: the same bits on every CPU (no FMA contraction: the
 * Makefile passes -ffp-contract=off). */
#include "core/mathfn.h"

#include <math.h> /* NAN and INFINITY only: no libm function is called */

static inline uint64_t f64_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static inline double f64_from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* 2^e for -1022 <= e <= 1023 */
static inline double pow2i(int64_t e) { return f64_from_bits((uint64_t)(e + 1023) << 52); }

static const double SHIFTER = 6755399441055744.0; /* 1.5 * 2^52: x + it rounds x to an integer */
static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000: 32 significant bits */
static const double LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;

double lm_exp(double x) {
    if (x != x) return x + x;
    if (x > 709.8) return INFINITY;
    if (x < -745.2) return 0.0;
    double t = x * INV_LN2 + SHIFTER;
    double kd = t - SHIFTER;
    int64_t k = (int64_t)kd;
    double r = (x - kd * LN2_HI) - kd * LN2_LO; /* |r| <= ~0.347 */
    /* e^r = sum r^i / i!, i <= 13: the next term is below 2^-56 relative */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t a = k >> 1, b = k - a; /* p * 2^a is exact, the second product rounds once */
    return (p * pow2i(a)) * pow2i(b);
}

double lm_log(double x) {
    if (x != x) return x + x;
    if (x < 0) return NAN;
    if (x == 0) return -INFINITY;
    if (x == INFINITY) return x;
    int64_t e = 0;
    if (x < 2.2250738585072014e-308) { /* subnormal: scale into the normal range (exact) */
        x *= 18014398509481984.0;      /* 2^54 */
        e = -54;
    }
    uint64_t u = f64_bits(x);
    e += (int64_t)((u >> 52) & 0x7ff) - 1023;
    double m = f64_from_bits((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull); /* [1, 2) */
    if (m > 1.4142135623730951) {
        m *= 0.5; /* exact */
        e += 1;
    }
    /* log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716 */
    double f = m - 1.0; /* exact (Sterbenz) */
    double s = f / (2.0 + f), z = s * s;
    double R = 1.0 / 23;
    R = R * z + 1.0 / 21;
    R = R * z + 1.0 / 19;
    R = R * z + 1.0 / 17;
    R = R * z + 1.0 / 15;
    R = R * z + 1.0 / 13;
    R = R * z + 1.0 / 11;
    R = R * z + 1.0 / 9;
    R = R * z + 1.0 / 7;
    R = R * z + 1.0 / 5;
    R = R * z + 1.0 / 3;
    double logm = 2.0 * s + 2.0 * s * (z * R);
    double ed = (double)e;
    return ed * LN2_HI + (logm + ed * LN2_LO);
}

/* pi/2 in three 33-bit pieces: k * piece is exact for |k| < 2^20 */
static const double PIO2_1 = 1.57079632673412561417e+00;
static const double PIO2_2 = 6.07710050630396597660e-11;
static const double PIO2_3 = 2.02226624871116645580e-21;
static const double TWO_OVER_PI = 6.36619772367581382433e-01;

static double sin_poly(double r) { /* |r| <= pi/4 + a little: terms up to r^17 */
    double z = r * r;
    double p = 1.0 / 355687428096000.0;          /* 1/17! */
    p = p * z - 1.0 / 1307674368000.0;           /* 1/15! */
    p = p * z + 1.0 / 6227020800.0;              /* 1/13! */
    p = p * z - 1.0 / 39916800.0;                /* 1/11! */
    p = p * z + 1.0 / 362880.0;                  /* 1/9! */
    p = p * z - 1.0 / 5040.0;
    p = p * z + 1.0 / 120.0;
    p = p * z - 1.0 / 6.0;
    return r + r * (z * p);
}

static double cos_poly(double r) { /* terms up to r^18 */
    double z = r * r;
    double p = -1.0 / 6402373705728000.0;        /* 1/18! */
    p = p * z + 1.0 / 20922789888000.0;          /* 1/16! */
    p = p * z - 1.0 / 87178291200.0;             /* 1/14! */
    p = p * z + 1.0 / 479001600.0;               /* 1/12! */
    p = p * z - 1.0 / 3628800.0;                 /* 1/10! */
    p = p * z + 1.0 / 40320.0;
    p = p * z - 1.0 / 720.0;
    p = p * z + 1.0 / 24.0;
    return (1.0 - 0.5 * z) + z * (z * p);
}

/* x = k pi/2 + r; returns k mod 4, or -1 outside the supported range. */
static int reduce_pio2(double x, double *r) {
    if (!(x > -1048576.0 && x < 1048576.0)) return -1; /* NaN, inf, |x| >= 2^20 */
    double t = x * TWO_OVER_PI + SHIFTER;
    double kd = t - SHIFTER;
    *r = ((x - kd * PIO2_1) - kd * PIO2_2) - kd * PIO2_3;
    return (int)((int64_t)kd & 3);
}

double lm_sin(double x) {
    double r;
    switch (reduce_pio2(x, &r)) {
    case 0: return sin_poly(r);
    case 1: return cos_poly(r);
    case 2: return -sin_poly(r);
    case 3: return -cos_poly(r);
    }
    return NAN;
}

double lm_cos(double x) {
    double r;
    switch (reduce_pio2(x, &r)) {
    case 0: return cos_poly(r);
    case 1: return -sin_poly(r);
    case 2: return -cos_poly(r);
    case 3: return sin_poly(r);
    }
    return NAN;
}

double lm_pow(double x, double y) {
    if (x != x || y != y) return NAN;
    if (y == 0 || x == 1) return 1.0;
    if (x == 0) return y > 0 ? 0.0 : NAN;
    if (x < 0) return NAN;
    return lm_exp(y * lm_log(x));
}

double lm_powi(double x, int64_t n) {
    double r = 1.0;
    while (n > 0) {
        if (n & 1) r *= x;
        x *= x;
        n >>= 1;
    }
    return r;
}
