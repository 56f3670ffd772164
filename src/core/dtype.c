/* dtype.c — dtype names and sizes, exact f16 / FP8-E4M3fn conversions.
 *
 * All conversions are bit-exact and need no particular rounding mode: they
 * work on the IEEE bit patterns with integer arithmetic. FP8 decoding is a
 * 256-entry table (the values are small dyadic rationals, written exactly). */
#include "core/dtype.h"

#include <math.h>

/* ---- names and sizes ---- */

static const struct {
    const char *name;
    size_t size;
} dtype_info[LM_DTYPE_COUNT] = {
    [LM_DTYPE_F32] = {"F32", 4},     [LM_DTYPE_BF16] = {"BF16", 2}, [LM_DTYPE_F16] = {"F16", 2},
    [LM_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [LM_DTYPE_F64] = {"F64", 8}, [LM_DTYPE_I64] = {"I64", 8},
    [LM_DTYPE_I32] = {"I32", 4},     [LM_DTYPE_I8] = {"I8", 1},     [LM_DTYPE_U8] = {"U8", 1},
    [LM_DTYPE_BOOL] = {"BOOL", 1},
};

size_t lm_dtype_size(lm_dtype t) {
    return (unsigned)t < LM_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *lm_dtype_name(lm_dtype t) {
    return (unsigned)t < LM_DTYPE_COUNT ? dtype_info[t].name : "?";
}

int lm_dtype_parse(const char *name, size_t len, lm_dtype *out) {
    for (int t = 0; t < LM_DTYPE_COUNT; t++) {
        const char *n = dtype_info[t].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *out = (lm_dtype)t;
            return 0;
        }
    }
    return -1;
}

/* ---- f16 ---- */

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float lm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13)); /* inf, NaN (payload kept) */
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        /* subnormal m * 2^-24: normalise so the leading 1 lands on bit 10 */
        int shift = 0;
        while (!(m & 0x400u)) m <<= 1, shift++;
        m &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(113 - shift) << 23) | (m << 13));
    }
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* Rounds m >> shift to nearest, ties to even (1 <= shift <= 31). */
static inline uint32_t shr_rne(uint32_t m, int shift) {
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1u)));
}

uint16_t lm_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((a >> 13) & 0x1ffu); /* quiet NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to inf */
    if (a >= 0x38800000u)                         /* >= 2^-14: normal */
        return sign | (uint16_t)shr_rne(a - 0x38000000u, 13); /* carry may bump exponent */
    if (a <= 0x33000000u) return sign; /* <= 2^-25 rounds to zero (2^-25 is a tie to 0) */
    /* subnormal result: value = m * 2^(e-150), in units of 2^-24: m >> (126 - e) */
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)shr_rne(m, (int)(126 - e)); /* 0x400 = smallest normal, correct */
}

/* ---- FP8 E4M3fn ---- */

static const float fp8e4m3_table[256] = {
    0.0f, 0.001953125f, 0.00390625f, 0.005859375f, 0.0078125f, 0.009765625f, 0.01171875f, 0.013671875f,
    0.015625f, 0.017578125f, 0.01953125f, 0.021484375f, 0.0234375f, 0.025390625f, 0.02734375f, 0.029296875f,
    0.03125f, 0.03515625f, 0.0390625f, 0.04296875f, 0.046875f, 0.05078125f, 0.0546875f, 0.05859375f,
    0.0625f, 0.0703125f, 0.078125f, 0.0859375f, 0.09375f, 0.1015625f, 0.109375f, 0.1171875f,
    0.125f, 0.140625f, 0.15625f, 0.171875f, 0.1875f, 0.203125f, 0.21875f, 0.234375f,
    0.25f, 0.28125f, 0.3125f, 0.34375f, 0.375f, 0.40625f, 0.4375f, 0.46875f,
    0.5f, 0.5625f, 0.625f, 0.6875f, 0.75f, 0.8125f, 0.875f, 0.9375f,
    1.0f, 1.125f, 1.25f, 1.375f, 1.5f, 1.625f, 1.75f, 1.875f,
    2.0f, 2.25f, 2.5f, 2.75f, 3.0f, 3.25f, 3.5f, 3.75f,
    4.0f, 4.5f, 5.0f, 5.5f, 6.0f, 6.5f, 7.0f, 7.5f,
    8.0f, 9.0f, 10.0f, 11.0f, 12.0f, 13.0f, 14.0f, 15.0f,
    16.0f, 18.0f, 20.0f, 22.0f, 24.0f, 26.0f, 28.0f, 30.0f,
    32.0f, 36.0f, 40.0f, 44.0f, 48.0f, 52.0f, 56.0f, 60.0f,
    64.0f, 72.0f, 80.0f, 88.0f, 96.0f, 104.0f, 112.0f, 120.0f,
    128.0f, 144.0f, 160.0f, 176.0f, 192.0f, 208.0f, 224.0f, 240.0f,
    256.0f, 288.0f, 320.0f, 352.0f, 384.0f, 416.0f, 448.0f, NAN,
    -0.0f, -0.001953125f, -0.00390625f, -0.005859375f, -0.0078125f, -0.009765625f, -0.01171875f, -0.013671875f,
    -0.015625f, -0.017578125f, -0.01953125f, -0.021484375f, -0.0234375f, -0.025390625f, -0.02734375f, -0.029296875f,
    -0.03125f, -0.03515625f, -0.0390625f, -0.04296875f, -0.046875f, -0.05078125f, -0.0546875f, -0.05859375f,
    -0.0625f, -0.0703125f, -0.078125f, -0.0859375f, -0.09375f, -0.1015625f, -0.109375f, -0.1171875f,
    -0.125f, -0.140625f, -0.15625f, -0.171875f, -0.1875f, -0.203125f, -0.21875f, -0.234375f,
    -0.25f, -0.28125f, -0.3125f, -0.34375f, -0.375f, -0.40625f, -0.4375f, -0.46875f,
    -0.5f, -0.5625f, -0.625f, -0.6875f, -0.75f, -0.8125f, -0.875f, -0.9375f,
    -1.0f, -1.125f, -1.25f, -1.375f, -1.5f, -1.625f, -1.75f, -1.875f,
    -2.0f, -2.25f, -2.5f, -2.75f, -3.0f, -3.25f, -3.5f, -3.75f,
    -4.0f, -4.5f, -5.0f, -5.5f, -6.0f, -6.5f, -7.0f, -7.5f,
    -8.0f, -9.0f, -10.0f, -11.0f, -12.0f, -13.0f, -14.0f, -15.0f,
    -16.0f, -18.0f, -20.0f, -22.0f, -24.0f, -26.0f, -28.0f, -30.0f,
    -32.0f, -36.0f, -40.0f, -44.0f, -48.0f, -52.0f, -56.0f, -60.0f,
    -64.0f, -72.0f, -80.0f, -88.0f, -96.0f, -104.0f, -112.0f, -120.0f,
    -128.0f, -144.0f, -160.0f, -176.0f, -192.0f, -208.0f, -224.0f, -240.0f,
    -256.0f, -288.0f, -320.0f, -352.0f, -384.0f, -416.0f, -448.0f, NAN,
};

float lm_fp8e4m3_to_f32(uint8_t b) { return fp8e4m3_table[b]; }

uint8_t lm_f32_to_fp8e4m3(float f) {
    uint32_t u = f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7f;            /* NaN */
    if (a >= 0x43e00000u) return sign | 0x7e;    /* >= 448 (and inf) saturates */
    if (a < 0x3c800000u) {                       /* < 2^-6: subnormal step 2^-9 */
        if (a <= 0x3a800000u) return sign;       /* <= 2^-10 (half a step) -> 0 */
        /* units of 2^-9: m * 2^(e-150+9) = m >> (141 - e); 8 = smallest normal */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        return sign | (uint8_t)shr_rne(m, (int)(141 - e));
    }
    /* normal: rebias the exponent 127 -> 7 and keep 3 mantissa bits */
    uint32_t r = shr_rne(a - (120u << 23), 20);
    if (r > 0x7e) r = 0x7e; /* (448, 464) rounds to 448 already; 464.. would hit NaN */
    return sign | (uint8_t)r;
}

/* ---- bulk conversion ---- */

void lm_convert_to_f32(float *dst, const void *src, lm_dtype t, size_t n) {
    const uint8_t *s = (const uint8_t *)src;
    switch (t) {
    case LM_DTYPE_F32: memmove(dst, src, n * 4); break;
    case LM_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lm_bf16_to_f32(h);
        }
        break;
    case LM_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = lm_f16_to_f32(h);
        }
        break;
    case LM_DTYPE_F8_E4M3:
        for (size_t i = 0; i < n; i++) dst[i] = fp8e4m3_table[s[i]];
        break;
    case LM_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case LM_DTYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case LM_DTYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case LM_DTYPE_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)s[i];
        break;
    case LM_DTYPE_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    case LM_DTYPE_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = s[i] ? 1.0f : 0.0f;
        break;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
        break;
    }
}

/* Non-finite test on the raw bits: all exponent bits set (F32, F64, BF16,
 * F16), or the one NaN code of E4M3fn (S.1111.111; it has no infinities). */
#define NONFINITE_SCAN(type, load, bad)                                                        \
    do {                                                                                       \
        const unsigned char *b = (const unsigned char *)src;                                   \
        for (int64_t i0 = 0; i0 < n; i0 += 1024) {                                             \
            int64_t i1 = n - i0 < 1024 ? n : i0 + 1024;                                        \
            unsigned any = 0;                                                                  \
            for (int64_t i = i0; i < i1; i++) {                                                \
                type v = load(b + (size_t)i * sizeof(type));                                   \
                any |= (unsigned)(bad);                                                        \
            }                                                                                  \
            if (!any) continue;                                                                \
            for (int64_t i = i0; i < i1; i++) {                                                \
                type v = load(b + (size_t)i * sizeof(type));                                   \
                if (bad) return i;                                                             \
            }                                                                                  \
        }                                                                                      \
        return -1;                                                                             \
    } while (0)

static inline uint64_t load64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t load32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t load16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint8_t load8(const unsigned char *p) { return *p; }

int64_t lm_first_nonfinite(const void *src, lm_dtype t, int64_t n) {
    switch (t) {
    case LM_DTYPE_F32: NONFINITE_SCAN(uint32_t, load32, (v & 0x7f800000u) == 0x7f800000u);
    case LM_DTYPE_BF16: NONFINITE_SCAN(uint16_t, load16, (v & 0x7f80u) == 0x7f80u);
    case LM_DTYPE_F16: NONFINITE_SCAN(uint16_t, load16, (v & 0x7c00u) == 0x7c00u);
    case LM_DTYPE_F8_E4M3: NONFINITE_SCAN(uint8_t, load8, (v & 0x7fu) == 0x7fu);
    case LM_DTYPE_F64: NONFINITE_SCAN(uint64_t, load64, (v & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
    default: return -1;
    }
}

const char *lm_nonfinite_name(const void *src, lm_dtype t, int64_t i) {
    const unsigned char *b = (const unsigned char *)src + (size_t)i * lm_dtype_size(t);
    int nan, neg;
    switch (t) {
    case LM_DTYPE_F32: { uint32_t v = load32(b); if ((v & 0x7f800000u) != 0x7f800000u) return "finite";
                         nan = (v & 0x7fffffu) != 0; neg = v >> 31; break; }
    case LM_DTYPE_BF16: { uint16_t v = load16(b); if ((v & 0x7f80u) != 0x7f80u) return "finite";
                          nan = (v & 0x7fu) != 0; neg = v >> 15; break; }
    case LM_DTYPE_F16: { uint16_t v = load16(b); if ((v & 0x7c00u) != 0x7c00u) return "finite";
                         nan = (v & 0x3ffu) != 0; neg = v >> 15; break; }
    case LM_DTYPE_F8_E4M3: return (*b & 0x7fu) == 0x7fu ? "NaN" : "finite";
    case LM_DTYPE_F64: { uint64_t v = load64(b); if ((v & 0x7ff0000000000000ull) != 0x7ff0000000000000ull) return "finite";
                         nan = (v & 0xfffffffffffffull) != 0; neg = (int)(v >> 63); break; }
    default: return "finite";
    }
    return nan ? "NaN" : neg ? "-inf" : "inf";
}

int lm_q8_quantize_row(const float *w, int64_t K, int8_t *q, uint16_t *scales) {
    for (int64_t b = 0; b * LM_Q8_BLOCK < K; b++) {
        int64_t k0 = b * LM_Q8_BLOCK, k1 = k0 + LM_Q8_BLOCK < K ? k0 + LM_Q8_BLOCK : K;
        float amax = 0.0f;
        for (int64_t k = k0; k < k1; k++) {
            if (!isfinite(w[k])) return -1;
            float a = fabsf(w[k]);
            amax = a > amax ? a : amax;
        }
        uint16_t h = lm_f32_to_f16(amax / 127.0f);
        float d = lm_f16_to_f32(h);
        if (!isfinite(d)) return -1;
        scales[b] = h;
        for (int64_t k = k0; k < k1; k++) {
            float v = d == 0.0f ? 0.0f : nearbyintf(w[k] / d); /* the default rounding: to nearest even */
            q[k] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
        }
    }
    return 0;
}
