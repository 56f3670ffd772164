/* test_dtype.c — dtype names, sizes and exact conversions.
 *
 * Every conversion is checked against an independent formula written with
 * ldexp() on doubles (not with bit tricks), exhaustively where the domain is
 * small (all 256 FP8 bytes, all 65536 F16 halves) and on a dense sweep of
 * float bit patterns otherwise. */
#include <math.h>
#include <stdint.h>

#include "core/dtype.h"
#include "test.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

TEST(names_sizes_parse) {
    static const struct {
        const char *name;
        lm_dtype t;
        size_t size;
    } tab[] = {{"F64", LM_DTYPE_F64, 8}, {"F32", LM_DTYPE_F32, 4},     {"F16", LM_DTYPE_F16, 2},
               {"BF16", LM_DTYPE_BF16, 2}, {"F8_E4M3", LM_DTYPE_F8_E4M3, 1}, {"I64", LM_DTYPE_I64, 8},
               {"I32", LM_DTYPE_I32, 4}, {"I8", LM_DTYPE_I8, 1},       {"U8", LM_DTYPE_U8, 1},
               {"BOOL", LM_DTYPE_BOOL, 1}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        lm_dtype t = LM_DTYPE_COUNT;
        CHECK(lm_dtype_parse(tab[i].name, strlen(tab[i].name), &t) == 0);
        CHECK(t == tab[i].t);
        CHECK(lm_dtype_size(tab[i].t) == tab[i].size);
        CHECK(strcmp(lm_dtype_name(tab[i].t), tab[i].name) == 0);
    }
    lm_dtype t;
    CHECK(lm_dtype_parse("F3", 2, &t) == -1);
    CHECK(lm_dtype_parse("F32X", 4, &t) == -1);
    CHECK(lm_dtype_parse("f32", 3, &t) == -1);
    CHECK(lm_dtype_parse("", 0, &t) == -1);
    CHECK(lm_dtype_parse("F8_E5M2", 7, &t) == -1);
    /* not NUL-terminated: only len bytes count */
    CHECK(lm_dtype_parse("BF16\"", 4, &t) == 0 && t == LM_DTYPE_BF16);
    CHECK(lm_dtype_parse("I8xx", 2, &t) == 0 && t == LM_DTYPE_I8);
    CHECK(lm_dtype_size(LM_DTYPE_COUNT) == 0);
}

/* ---- F16 ---- */

static double f16_formula(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

TEST(f16_decode_exhaustive) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = f16_formula((uint16_t)h);
        float got = lm_f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) : ((double)got != want || !signbit(got) != !signbit(want)))
            bad++;
    }
    CHECKF(bad == 0, "%d halves decode wrong", bad);
}

/* Nearest f16 by search over the positive finite values, ties to even. */
static uint16_t f16_nearest(double a) { /* a >= 0, finite */
    if (a >= 65520.0) return 0x7c00;
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) { /* largest code with value <= a */
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (f16_formula(mid) <= a) lo = mid;
        else hi = (uint16_t)(mid - 1);
    }
    if (lo == 0x7bff) return lo; /* (65504, 65520) */
    double d0 = a - f16_formula(lo), d1 = f16_formula((uint16_t)(lo + 1)) - a;
    if (d0 < d1) return lo;
    if (d1 < d0) return (uint16_t)(lo + 1);
    return (lo & 1) ? (uint16_t)(lo + 1) : lo;
}

TEST(f16_encode) {
    int bad = 0;
    /* every half round-trips (NaN stays NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lm_f16_to_f32((uint16_t)h);
        uint16_t back = lm_f32_to_f16(f);
        if (isnan(f) ? !isnan(lm_f16_to_f32(back)) : back != h) bad++;
    }
    CHECKF(bad == 0, "%d halves do not round-trip", bad);
    /* midpoints between neighbours are ties: to even */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double mid = (f16_formula((uint16_t)h) + f16_formula((uint16_t)(h + 1))) / 2;
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (lm_f32_to_f16((float)mid) != want) bad++;           /* mid is exact in float */
        if (lm_f32_to_f16((float)-mid) != (want | 0x8000)) bad++;
    }
    CHECKF(bad == 0, "%d ties rounded wrong", bad);
    /* dense sweep of float bit patterns against the search */
    bad = 0;
    for (uint64_t u = 0; u < 0x7f800000u; u += 331) {
        float f = from_bits((uint32_t)u);
        if (lm_f32_to_f16(f) != f16_nearest(f)) bad++;
        if (lm_f32_to_f16(-f) != (f16_nearest(f) | 0x8000)) bad++;
    }
    CHECKF(bad == 0, "%d floats encode wrong", bad);
    CHECK(lm_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(lm_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(lm_f32_to_f16(65519.99f) == 0x7bff);
    CHECK(lm_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(isnan(lm_f16_to_f32(lm_f32_to_f16(NAN))));
    CHECK(lm_f32_to_f16(from_bits(0x00000001)) == 0); /* float subnormal */
    CHECK(lm_f32_to_f16(-0.0f) == 0x8000);
}

/* ---- BF16 (inline in dtype.h) ---- */

TEST(bf16_rounding) {
    /* ulp of bf16 at 1 is 2^-7 */
    CHECK(lm_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);         /* tie, down to even */
    CHECK(lm_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);     /* tie, up to even */
    CHECK(lm_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);
    CHECK(lm_f32_to_bf16(-(1.0f + 0x1p-8f)) == 0xbf80);
    CHECK(lm_f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80);  /* FLT_MAX rounds to inf */
    CHECK(lm_f32_to_bf16(INFINITY) == 0x7f80);
    uint16_t n = lm_f32_to_bf16(from_bits(0x7f800001));      /* signalling NaN stays NaN */
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f));
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lm_bf16_to_f32((uint16_t)h);
        if (to_bits(f) != h << 16) bad++;
        if (!isnan(f) && lm_f32_to_bf16(f) != h) bad++;
    }
    CHECKF(bad == 0, "%d bf16 values wrong", bad);
}

/* ---- FP8 E4M3fn ---- */

static double fp8_formula(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    double v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
    return s ? -v : v;
}

static uint8_t fp8_nearest(double a) { /* a >= 0 */
    if (a >= 448) return 0x7e;
    uint8_t best = 0;
    double bd = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
        double d = fabs(fp8_formula((uint8_t)c) - a);
        if (d < bd || (d == bd && !(c & 1))) best = (uint8_t)c, bd = d;
    }
    return best;
}

TEST(fp8_decode_exhaustive) {
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        double want = fp8_formula((uint8_t)b);
        float got = lm_fp8e4m3_to_f32((uint8_t)b);
        if (isnan(want) ? !isnan(got) : ((double)got != want || !signbit(got) != !signbit(want)))
            bad++;
    }
    CHECKF(bad == 0, "%d bytes decode wrong", bad);
    CHECK(lm_fp8e4m3_to_f32(0x7e) == 448.0f);
    CHECK(lm_fp8e4m3_to_f32(0x01) == 0x1p-9f);
    CHECK(isnan(lm_fp8e4m3_to_f32(0xff)));
}

TEST(fp8_encode) {
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f) continue;
        if (lm_f32_to_fp8e4m3(lm_fp8e4m3_to_f32((uint8_t)b)) != b) bad++;
    }
    CHECKF(bad == 0, "%d bytes do not round-trip", bad);
    bad = 0;
    for (int b = 0; b < 0x7e; b++) { /* ties between neighbours go to the even code */
        double mid = (fp8_formula((uint8_t)b) + fp8_formula((uint8_t)(b + 1))) / 2;
        uint8_t want = (b & 1) ? (uint8_t)(b + 1) : (uint8_t)b;
        if (lm_f32_to_fp8e4m3((float)mid) != want) bad++;
        if (lm_f32_to_fp8e4m3((float)-mid) != (want | 0x80)) bad++;
    }
    CHECKF(bad == 0, "%d ties rounded wrong", bad);
    bad = 0;
    for (uint64_t u = 0; u < 0x44000000u; u += 4099) { /* 0 .. 512, dense */
        float f = from_bits((uint32_t)u);
        uint8_t want = fp8_nearest(f);
        if (lm_f32_to_fp8e4m3(f) != want) bad++;
        if (lm_f32_to_fp8e4m3(-f) != (want | 0x80)) bad++;
    }
    CHECKF(bad == 0, "%d floats encode wrong", bad);
    CHECK(lm_f32_to_fp8e4m3(448.0f) == 0x7e);
    CHECK(lm_f32_to_fp8e4m3(470.0f) == 0x7e);
    CHECK(lm_f32_to_fp8e4m3(1e30f) == 0x7e);
    CHECK(lm_f32_to_fp8e4m3(INFINITY) == 0x7e);
    CHECK(lm_f32_to_fp8e4m3(-INFINITY) == 0xfe);
    CHECK(lm_f32_to_fp8e4m3(NAN) == 0x7f);
    CHECK(lm_f32_to_fp8e4m3(0x1p-10f) == 0x00);              /* tie to zero */
    CHECK(lm_f32_to_fp8e4m3(0x1p-10f + 0x1p-30f) == 0x01);
    CHECK(lm_f32_to_fp8e4m3(-0.0f) == 0x80);
}

TEST(convert_to_f32_all_dtypes) {
    /* source buffers deliberately misaligned by one byte */
    uint8_t buf[1 + 8 * 5];
    float out[5];
    const double f64v[5] = {1.5, -2.25, 1e300, 0.0, 3.0};
    memcpy(buf + 1, f64v, sizeof f64v);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_F64, 5);
    CHECK(out[0] == 1.5f && out[1] == -2.25f && isinf(out[2]) && out[4] == 3.0f);
    const float f32v[5] = {1.5f, -2.0f, 3.25f, 0.0f, -0.5f};
    memcpy(buf + 1, f32v, sizeof f32v);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_F32, 5);
    CHECK(memcmp(out, f32v, sizeof f32v) == 0);
    const uint16_t bf[5] = {0x3f80, 0xc000, 0x7f80, 0x0000, 0x3fc0};
    memcpy(buf + 1, bf, sizeof bf);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_BF16, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[4] == 1.5f);
    const uint16_t hf[5] = {0x3c00, 0xc000, 0x7c00, 0x0001, 0x3e00};
    memcpy(buf + 1, hf, sizeof hf);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_F16, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[3] == 0x1p-24f &&
          out[4] == 1.5f);
    const uint8_t f8[5] = {0x38, 0xc0, 0x7e, 0x01, 0x7f};
    memcpy(buf + 1, f8, sizeof f8);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_F8_E4M3, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 448.0f && out[3] == 0x1p-9f &&
          isnan(out[4]));
    const int64_t i64[5] = {1, -2, 1LL << 40, 0, 7};
    memcpy(buf + 1, i64, sizeof i64);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_I64, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p40f && out[4] == 7.0f);
    const int32_t i32[5] = {1, -2, 1 << 30, 0, 7};
    memcpy(buf + 1, i32, sizeof i32);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_I32, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p30f && out[4] == 7.0f);
    const uint8_t u8[5] = {1, 0xfe, 255, 0, 7};
    memcpy(buf + 1, u8, sizeof u8);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_I8, 5);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == -1.0f && out[4] == 7.0f);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_U8, 5);
    CHECK(out[0] == 1.0f && out[1] == 254.0f && out[2] == 255.0f && out[4] == 7.0f);
    lm_convert_to_f32(out, buf + 1, LM_DTYPE_BOOL, 5);
    CHECK(out[0] == 1.0f && out[1] == 1.0f && out[3] == 0.0f);
}

int main(void) {
    RUN(names_sizes_parse);
    RUN(f16_decode_exhaustive);
    RUN(f16_encode);
    RUN(bf16_rounding);
    RUN(fp8_decode_exhaustive);
    RUN(fp8_encode);
    RUN(convert_to_f32_all_dtypes);
    return test_report("test_dtype");
}
