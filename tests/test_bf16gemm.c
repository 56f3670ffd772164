/* test_bf16gemm.c — the bf16 pair-chain product (src/core/bf16gemm.h):
 *  - the chain written out here in plain C, with its flush rule decided on
 *    the exact value in __float128 (an independent way from the library's
 *    TwoSum), against every path (AVX-512-BF16, AVX2, scalar) and 1, 2 and
 *    3 threads, bit for bit, over awkward shapes (1, odd K, tails of every
 *    tile), strided (transposed) operands, F32 and BF16 sources,
 *    accumulate, and operands with bf16 subnormals, values whose products
 *    and sums fall near and below 2^-126, exact zeros and both signs;
 *  - the definition against the vdpbf16ps instruction itself, on the CPUs
 *    that have it, over edge cases around the flush threshold. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/bf16gemm.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "test.h"

/* ---- the definition (docs/arithmetic.md, "The bf16 pair chain") ---- */

static float bf(uint16_t h) { return (h & 0x7f80) ? lm_bf16_to_f32(h) : ((h & 0x8000) ? -0.0f : 0.0f); }

/* fma(a, b, c) flushed to a zero of its sign when the exact value, rounded
 * to 24 bits with an unbounded exponent, is below 2^-126: when it lies
 * under 2^-126 - 2^-151 (the midpoint 2^-126 - 2^-151 rounds to the even
 * 2^-126). __float128 holds a*b exactly and a*b + c closely enough: a*b has
 * 16 significant bits, so near the threshold an exact value differs from it
 * by 0 or by far more than the 113-bit rounding. */
static float def_step(float a, float b, float c) {
    __float128 e = (__float128)a * (__float128)b + (__float128)c;
    __float128 mag = e < 0 ? -e : e;
    float r = fmaf(a, b, c);
    if (mag < (__float128)0x1p-126 - (__float128)0x1p-151) return copysignf(0.0f, r);
    return r;
}

static uint16_t to_bf(const void *data, lm_dtype dt, int64_t at) {
    return dt == LM_DTYPE_BF16 ? ((const uint16_t *)data)[at] : lm_f32_to_bf16(((const float *)data)[at]);
}

static float def_dot(const lm_bf16_operand *A, int64_t m, const lm_bf16_operand *B, int64_t n, int64_t K) {
    float acc = 0.0f;
    for (int64_t p = 0; 2 * p < K; p++) {
        int64_t k0 = 2 * p, k1 = 2 * p + 1;
        float a1 = k1 < K ? bf(to_bf(A->data, A->dtype, m * A->si + k1 * A->sk)) : 0.0f;
        float b1 = k1 < K ? bf(to_bf(B->data, B->dtype, n * B->si + k1 * B->sk)) : 0.0f;
        acc = def_step(a1, b1, acc);
        acc = def_step(bf(to_bf(A->data, A->dtype, m * A->si + k0 * A->sk)),
                       bf(to_bf(B->data, B->dtype, n * B->si + k0 * B->sk)), acc);
    }
    return acc;
}

/* ---- operands ---- */

static uint32_t rng_state;
static uint32_t rnd(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Values of every kind the definition cares about: ordinary, exact zeros
 * of both signs, bf16 subnormals (read as zero), and small magnitudes
 * whose products land near 2^-126 (scaled by 2^-63 so that two of them
 * meet there). */
static float value(int small) {
    uint32_t r = rnd();
    float u = ((float)(r & 0xffff) / 65536.0f) * 2.0f - 1.0f;
    switch (r >> 16 & 15) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return lm_bf16_to_f32((uint16_t)(rnd() & 0x807f)); /* bf16 subnormal (or zero) */
    case 3: case 4: case 5: case 6: return small ? u * 0x1p-63f * (1.0f + (float)(rnd() & 7)) : u;
    default: return small ? u * 0x1p-63f : u * 2.0f;
    }
}

static void fill(float *x, int64_t n, int small) {
    for (int64_t i = 0; i < n; i++) x[i] = value(small);
}

static int isa_list(lm_isa *out) {
    int n = 0;
    for (int i = LM_ISA_SCALAR; i <= (int)lm_cpu_isa(); i++) out[n++] = (lm_isa)i;
    return n;
}

static int same_bits(const float *a, const float *b, int64_t n, int64_t *where) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) {
            *where = i;
            return 0;
        }
    return 1;
}

/* One shape on every path and thread count: A [M, K] or its transpose, B
 * [N, K] or its transpose (the training products use all four), F32 or
 * BF16, C with a row stride wider than N, with and without accumulate. */
static void check_shape(int64_t M, int64_t N, int64_t K, int tA, int tB, lm_dtype bdt, int small, lm_pool **pools) {
    int64_t ldc = N + 3;
    float *a = malloc(sizeof(float) * (size_t)(M * K + 1)), *bsrc = malloc(sizeof(float) * (size_t)(N * K + 1));
    uint16_t *b16 = malloc(sizeof(uint16_t) * (size_t)(N * K + 1));
    float *ref = malloc(sizeof(float) * (size_t)(M * ldc)), *C = malloc(sizeof(float) * (size_t)(M * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
    fill(a, M * K, small);
    fill(bsrc, N * K, small);
    for (int64_t i = 0; i < N * K; i++) b16[i] = lm_f32_to_bf16(bsrc[i]);
    fill(C0, M * ldc, 0);
    lm_bf16_operand A = {a, LM_DTYPE_F32, tA ? 1 : K, tA ? M : 1};
    lm_bf16_operand B = {bdt == LM_DTYPE_BF16 ? (const void *)b16 : bsrc, bdt, tB ? 1 : K, tB ? N : 1};
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        memcpy(ref, C0, sizeof(float) * (size_t)(M * ldc));
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                float d = def_dot(&A, m, &B, n, K);
                ref[m * ldc + n] = accumulate ? ref[m * ldc + n] + d : d;
            }
        lm_isa isas[3];
        int ni = isa_list(isas);
        for (int ii = 0; ii < ni; ii++)
            for (int t = 0; t < 3; t++) {
                lm_isa old = lm_set_isa(isas[ii]);
                memcpy(C, C0, sizeof(float) * (size_t)(M * ldc));
                lm_bf16_gemm(pools[t], C, ldc, M, N, K, &A, &B, accumulate);
                const char *path = lm_bf16_gemm_path();
                lm_set_isa(old);
                int64_t at = 0;
                CHECKF(same_bits(C, ref, M * ldc, &at),
                       "%s, %d threads, M %lld N %lld K %lld tA %d tB %d %s small %d acc %d: C[%lld] %a, expected %a",
                       path, t + 1, (long long)M, (long long)N, (long long)K, tA, tB, lm_dtype_name(bdt), small,
                       accumulate, (long long)at, C[at], ref[at]);
            }
    }
    free(a), free(bsrc), free(b16), free(ref), free(C), free(C0);
}

TEST(every_path_and_thread_count_is_the_definition) {
    lm_pool *pools[3] = {NULL, lm_pool_create(2), lm_pool_create(3)};
    rng_state = 7;
    /* M, N, K: single elements, odd K, every tail of the 6x64, 4x16 and
     * 2x4 tiles, and shapes big enough to be threaded */
    static const int shapes[][3] = {{1, 1, 1},   {1, 1, 2},   {2, 3, 3},    {7, 17, 5},   {6, 64, 8},
                                    {5, 65, 31}, {13, 70, 33}, {4, 16, 1},  {25, 129, 64}, {37, 100, 127},
                                    {12, 48, 96}, {65, 80, 200}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int v = 0; v < 4; v++) {
            int tA = v & 1, tB = v >> 1 & 1;
            lm_dtype bdt = (s + v) % 2 ? LM_DTYPE_BF16 : LM_DTYPE_F32;
            check_shape(shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, bdt, (int)(s % 3 == 1), pools);
        }
    /* all small: most steps near the flush threshold */
    check_shape(19, 70, 41, 0, 1, LM_DTYPE_F32, 1, pools);
    lm_pool_free(pools[1]);
    lm_pool_free(pools[2]);
}

TEST(zero_sized_products_write_nothing) {
    float c[4] = {1, 2, 3, 4};
    float a[2] = {1, 2};
    lm_bf16_operand A = {a, LM_DTYPE_F32, 2, 1}, B = {a, LM_DTYPE_F32, 2, 1};
    lm_bf16_gemm(NULL, c, 2, 0, 2, 2, &A, &B, 0);
    lm_bf16_gemm(NULL, c, 2, 2, 0, 2, &A, &B, 0);
    CHECK(c[0] == 1 && c[3] == 4);
    /* K = 0: an empty chain is +0 */
    lm_bf16_gemm(NULL, c, 2, 1, 1, 0, &A, &B, 0);
    CHECK(c[0] == 0.0f && !signbit(c[0]) && c[1] == 2);
}

/* The library's step (TwoSum in double) against the definition's
 * (__float128) right at the threshold: products of -2^-151 times 1, 1 +
 * 2^-7 and 1 - 2^-8 against 2^-126 and its neighbours. */
TEST(step_at_the_flush_threshold) {
    const float accs[] = {0x1p-126f, -0x1p-126f, 0x1p-125f, 0x1.000002p-126f, 0.0f, -0.0f, 1.0f};
    const float as[] = {0x1p-25f, -0x1p-25f, 0x1.02p-25f, 0x1.fep-26f, 0x1p-100f, 0x1p-63f};
    const float bs[] = {0x1p-126f, -0x1p-126f, 0x1p-63f, -0x1.8p-64f, 0x1p-26f, 1.0f};
    int n = 0;
    for (size_t i = 0; i < sizeof accs / 4; i++)
        for (size_t j = 0; j < sizeof as / 4; j++)
            for (size_t k = 0; k < sizeof bs / 4; k++) {
                float r = lm_bf16_step(as[j], bs[k], accs[i]), d = def_step(as[j], bs[k], accs[i]);
                CHECKF(!memcmp(&r, &d, 4), "step(%a, %a, %a) = %a, expected %a", as[j], bs[k], accs[i], r, d);
                n++;
            }
    CHECK(n > 0);
}

#if defined(__x86_64__)
__attribute__((target("avx512bf16,avx512f"))) static float hw_pair(float acc, uint32_t a, uint32_t b) {
    __m512 r = _mm512_dpbf16_ps(_mm512_set1_ps(acc), (__m512bh)_mm512_set1_epi32((int)a), (__m512bh)_mm512_set1_epi32((int)b));
    return _mm512_cvtss_f32(r);
}
#endif

TEST(definition_is_the_instruction) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) SKIP("no avx512bf16 on this CPU");
    /* exponents from the whole range, biased to where products and sums
     * meet 2^-126; both signs; bf16 subnormals */
    rng_state = 11;
    int64_t bad = 0, n = 0;
    for (int it = 0; it < 400000; it++) {
        uint16_t h[4];
        for (int q = 0; q < 4; q++) {
            uint32_t r = rnd(), e = q < 2 ? r % 80 : 40 + r % 80;
            if (r % 17 == 0) e = (uint32_t)(rnd() % 255);
            if (r % 19 == 0) e = 0;
            h[q] = (uint16_t)(((rnd() & 1) << 15) | (e << 7) | (rnd() & 0x7f));
        }
        uint32_t c;
        switch (rnd() % 4) {
        case 0: c = 0x00800000u | (rnd() & 3); break;
        case 1: c = 0; break;
        case 2: c = rnd() & 0x03ffffffu; break;
        default: c = (uint32_t)(rnd() % 255) << 23 | (rnd() & 0x7fffff); break;
        }
        c |= (rnd() & 1u) << 31;
        float acc;
        memcpy(&acc, &c, 4);
        if (!(c & 0x7f800000u)) acc = copysignf(0.0f, acc); /* the chain's accumulator is never subnormal */
        uint32_t wa = h[0] | (uint32_t)h[1] << 16, wb = h[2] | (uint32_t)h[3] << 16;
        float d = def_step(bf(h[0]), bf(h[2]), def_step(bf(h[1]), bf(h[3]), acc));
        float hw = hw_pair(acc, wa, wb);
        float lib = lm_bf16_step(bf(h[0]), bf(h[2]), lm_bf16_step(bf(h[1]), bf(h[3]), acc));
        if (memcmp(&d, &hw, 4) || memcmp(&lib, &hw, 4)) {
            if (bad < 3) CHECKF(0, "acc %a a %04x,%04x b %04x,%04x: instruction %a, definition %a, step %a", acc, h[0],
                                h[1], h[2], h[3], hw, d, lib);
            bad++;
        }
        n++;
    }
    CHECKF(bad == 0, "%lld of %lld differ", (long long)bad, (long long)n);
#else
    SKIP("not x86-64");
#endif
}

int main(void) {
    RUN(every_path_and_thread_count_is_the_definition);
    RUN(zero_sized_products_write_nothing);
    RUN(step_at_the_flush_threshold);
    RUN(definition_is_the_instruction);
    return test_report("test_bf16gemm");
}
