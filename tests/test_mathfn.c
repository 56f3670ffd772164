/* test_mathfn.c — lemma's own exp/log/sin/cos/pow against long double
 * references: the accuracy docs/arithmetic.md states, edge cases, and a few
 * bit patterns pinned so a change of the arithmetic cannot go unnoticed. */
#include "test.h"

#include <float.h>
#include <stdint.h>

#include "core/mathfn.h"

/* distance in ulps of float f from the exact value e */
static double ulp_err_f(float f, long double e) {
    if (isinf(e) || e > FLT_MAX) return isinf(f) && f > 0 ? 0 : 1e9;
    long double ae = fabsl(e);
    int ex;
    frexpl(ae < FLT_MIN ? FLT_MIN : ae, &ex);
    long double ulp = ldexpl(1.0L, ex - 24);
    return (double)(fabsl((long double)f - e) / ulp);
}

static double ulp_err_d(double d, long double e) {
    long double ae = fabsl(e);
    int ex;
    frexpl(ae < DBL_MIN ? DBL_MIN : ae, &ex);
    long double ulp = ldexpl(1.0L, ex - 53);
    return (double)(fabsl((long double)d - e) / ulp);
}

TEST(expf_sweep_within_2_ulp) {
    double worst = 0;
    float worst_x = 0;
    /* every 997th float of [-104, 89], both signs, subnormal results included */
    for (uint32_t u = 0; u < 0x42d00000u; u += 997) {
        for (int sign = 0; sign < 2; sign++) {
            float x = lm_f32_from_bits(u | (sign ? 0x80000000u : 0));
            if (x > 89.0f || x < -104.0f) continue;
            double e = ulp_err_f(lm_expf(x), expl((long double)x));
            if (e > worst) worst = e, worst_x = x;
        }
    }
    CHECKF(worst <= 2.0, "max error %.3f ulp at x = %a", worst, worst_x);
    printf("  lm_expf: max %.3f ulp over the sweep\n", worst);
}

TEST(expf_edges) {
    CHECK(lm_expf(0.0f) == 1.0f);
    CHECK(lm_expf(-0.0f) == 1.0f);
    CHECK(lm_expf(-INFINITY) == 0.0f);
    CHECK(isinf(lm_expf(INFINITY)) && lm_expf(INFINITY) > 0);
    CHECK(isnan(lm_expf(NAN)));
    CHECK(isinf(lm_expf(88.73f)));           /* just above ln(FLT_MAX) */
    CHECK(isfinite(lm_expf(88.72f)));
    CHECK(lm_expf(-104.0f) == 0.0f);         /* below half the smallest subnormal */
    CHECK(lm_expf(-103.9f) == 0x1p-149f);    /* just above it: the smallest subnormal */
    float tiny = lm_expf(-103.0f);          /* 2^-148.6: a subnormal, rounded once */
    CHECK(tiny > 0 && tiny < FLT_MIN);
    CHECK(ulp_err_f(tiny, expl(-103.0L)) <= 0.5 + 1e-3 || fabsl(tiny - expl(-103.0L)) <= 0x1p-150L);
    CHECK(lm_expf(-87.5f) < FLT_MIN && ulp_err_f(lm_expf(-87.5f), expl(-87.5L)) <= 1.0);
    CHECK(lm_sigmoidf(0.0f) == 0.5f);
    CHECK(lm_sigmoidf(-INFINITY) == 0.0f && lm_sigmoidf(INFINITY) == 1.0f);
}

/* A pinned value: the bits the canonical polynomial gives (arithmetic
 * version 2). If this changes, LM_ARITH_VERSION must change with it. */
TEST(expf_pinned_bits) {
    uint32_t h = 0;
    for (int i = -2000; i <= 2000; i++) h = h * 31u + lm_f32_bits(lm_expf((float)i * 0.0437f));
    printf("  pinned hash %08x (arith version %d)\n", h, LM_ARITH_VERSION);
    CHECKF(h == 0x48bfb3c9u, "hash %08x", h);
}

TEST(double_functions_accuracy) {
    double we = 0, wl = 0, ws = 0, wc = 0, wp = 0;
    for (int i = 0; i < 200000; i++) {
        double x = -700.0 + 1409.0 * i / 200000.0;
        double e = ulp_err_d(lm_exp(x), expl((long double)x));
        if (e > we) we = e;
        double lx = ldexp(1.0 + (i % 1000) / 1000.0, i / 1000 - 100);
        e = ulp_err_d(lm_log(lx), logl((long double)lx));
        if (lx != 1.0 && e > wl) wl = e;
        double a = -20000.0 + 40000.0 * i / 200000.0 + 1e-3;
        /* sin/cos: absolute error in ulps of 1 (values near 0 have no relative bound) */
        long double es = sinl((long double)a), ec = cosl((long double)a);
        e = (double)(fabsl(lm_sin(a) - es) / 0x1p-53L);
        if (e > ws) ws = e;
        e = (double)(fabsl(lm_cos(a) - ec) / 0x1p-53L);
        if (e > wc) wc = e;
        double base = 10000.0, y = -(double)(i % 64) / 64.0;
        e = ulp_err_d(lm_pow(base, y), powl(10000.0L, (long double)y));
        if (e > wp) wp = e;
    }
    printf("  max error: exp %.2f ulp, log %.2f ulp, sin %.2f, cos %.2f (ulps of 1), pow %.2f ulp\n", we, wl,
           ws, wc, wp);
    CHECK(we <= 2.0);
    CHECK(wl <= 2.0);
    CHECK(ws <= 2.0);
    CHECK(wc <= 2.0);
    CHECK(wp <= 32.0);
}

TEST(double_edges) {
    CHECK(lm_exp(0.0) == 1.0);
    CHECK(lm_exp(-800.0) == 0.0 && isinf(lm_exp(710.0)));
    CHECK(isnan(lm_exp(NAN)));
    CHECK(lm_exp(-740.0) > 0 && lm_exp(-740.0) < DBL_MIN); /* subnormal result */
    CHECK(lm_log(1.0) == 0.0);
    CHECK(isinf(lm_log(0.0)) && lm_log(0.0) < 0);
    CHECK(isnan(lm_log(-1.0)) && isnan(lm_log(NAN)));
    CHECK(isinf(lm_log(INFINITY)));
    CHECK(ulp_err_d(lm_log(4.9406564584124654e-324), logl(4.9406564584124654e-324L)) <= 2.0);
    CHECK(lm_sin(0.0) == 0.0 && lm_cos(0.0) == 1.0);
    CHECK(isnan(lm_sin(INFINITY)) && isnan(lm_cos(NAN)) && isnan(lm_sin(1e7)));
    CHECK(fabs(lm_sin(100000.0) - sin(100000.0)) < 1e-15);
    CHECK(lm_pow(2.0, 10.0) == 1024.0 || fabs(lm_pow(2.0, 10.0) - 1024.0) < 1e-12);
    CHECK(lm_pow(0.0, 2.0) == 0.0 && isnan(lm_pow(-2.0, 0.5)) && lm_pow(5.0, 0.0) == 1.0);
    CHECK(lm_powi(0.9, 0) == 1.0 && lm_powi(0.5, 10) == 1.0 / 1024);
    CHECK(fabs(lm_powi(0.999, 1000) - pow(0.999, 1000)) < 1e-14);
    CHECK(lm_logf(1.0f) == 0.0f && fabsf(lm_logf(2.0f) - 0.69314718f) < 1e-7f);
}

int main(void) {
    RUN(expf_sweep_within_2_ulp);
    RUN(expf_edges);
    RUN(expf_pinned_bits);
    RUN(double_functions_accuracy);
    RUN(double_edges);
    return test_report("test_mathfn");
}
