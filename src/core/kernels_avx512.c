/* kernels_avx512.c — AVX-512 (F, BW, VL, DQ) kernels.
 *
 * Matmul y[T, N] = x[T, K] W^T, W stored [N, K] in F32 / BF16 / F16 / FP8.
 *
 * Small T ("matvec", T <= matvec_max_t: 64 F32, 128 BF16/F16, 12 FP8 —
 * measured crossovers on Zen 4): a dot-product kernel. Blocks of 4 W rows x
 * 4 tokens, one 16-lane accumulator per (row, token) over k (lane j sums
 * k = j mod 16 in k order), then a fixed horizontal reduction. W rows are
 * converted in registers straight from their stored dtype, and the 4 rows
 * stay in L1 while the token blocks go by. T = 1 (decode, memory-bound):
 * one row at a time with four accumulators over k, see mv_row1.
 *
 * Larger T: a register-blocked GEMM that broadcasts W.
 *   - x is packed transposed per (T chunk of TC rows, K block of KC):
 *     xT[strip][k][32] — 32 tokens per strip, zero-padded.
 *   - a panel of MR = 12 W rows x KC is converted to f32 in scratch (row
 *     stride KC: every broadcast address is a constant offset).
 *   - the micro-kernel keeps 12 x 32 outputs in 24 zmm accumulators: per k
 *     it loads 2 vectors of x and broadcasts 12 weights, 24 FMAs.
 *   - partial sums stay in a per-tile scratch between K blocks (exact:
 *     stored floats) and reach y once, through 16x16 transposes.
 *   Every y element is therefore acc = 0; for k in 0..K-1: acc = fma(w_k,
 *   x_k, acc) in k order: the same sequence whatever tile it falls in, which
 *   makes results independent of the thread split.
 *
 * FP8 E4M3 -> f32 without tables: sign-extend the byte to 16 bits, shift
 * left 7 and clear bit 14: that is the f16 with the same bits, worth
 * value * 2^-8 (subnormals included); vcvtph2ps converts it exactly. The
 * 2^8 goes into the block scale. NaN bytes (0x7f, 0xff) are patched to the
 * f16 NaN. In the matvec the scale is folded into a per-row-block copy of x
 * (x[k] * scale[rb][k/128] * 256); in the GEMM into the packed panel. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "core/kernels.h"

#define AI static inline __attribute__((always_inline))

enum { MR = 12, NT = 32, KC = 512, TC = 256, XT_FULL_K = 4096 };

/* ---- conversions ---- */

AI __m512 bf16x16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* 16 FP8 bytes -> value * 2^-8. */
AI __m512 fp8x16(__m128i b) {
    const __m128i m7f = _mm_set1_epi8(0x7f);
    __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_and_si128(b, m7f), m7f);
    __m256i w = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7),
                                 _mm256_set1_epi16((short)0xbfff));
    if (__builtin_expect(nan != 0, 0)) w = _mm256_mask_mov_epi16(w, nan, _mm256_set1_epi16(0x7e00));
    return _mm512_cvtph_ps(w);
}

/* The same for bytes known not to be NaN. */
AI __m512 fp8x16_finite(__m128i b) {
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7),
                                            _mm256_set1_epi16((short)0xbfff)));
}

/* 16 elements of dtype dt at element index i of p, lanes outside mask = 0.
 * FP8 comes out times 2^-8. */
AI __m512 load16(const int dt, const uint8_t *p, int64_t i, __mmask16 m) {
    switch (dt) {
    case LM_DTYPE_F32: return _mm512_maskz_loadu_ps(m, p + 4 * i);
    case LM_DTYPE_BF16: return bf16x16(_mm256_maskz_loadu_epi16(m, p + 2 * i));
    case LM_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + 2 * i));
    default: return fp8x16(_mm_maskz_loadu_epi8(m, p + i));
    }
}

AI __m512 load16_full(const int dt, const uint8_t *p, int64_t i) {
    switch (dt) {
    case LM_DTYPE_F32: return _mm512_loadu_ps(p + 4 * i);
    case LM_DTYPE_BF16: return bf16x16(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
    case LM_DTYPE_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
    default: return fp8x16(_mm_loadu_si128((const __m128i *)(p + i)));
    }
}

static inline __mmask16 tail_mask(int64_t n) { /* n in 1..16 */
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

static inline size_t dt_size(int dt) { return lm_dtype_size((lm_dtype)dt); }

/* ---- matvec (decode) ---- */

/* acc[i][j] += W row i (FP8, 64 bytes at k) * x row j, in 16-element steps. */
AI void mv_fp8_64(const int RG, const int TT, const int has_nan, __m512 acc[4][4], const uint8_t *const wr[4],
                  const float *const xr[4], int64_t k) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512 wv[4];
#pragma GCC unroll 16
        for (int i = 0; i < RG; i++) {
            __m128i b = _mm_loadu_si128((const __m128i *)(wr[i] + k + 16 * q));
            wv[i] = has_nan ? fp8x16(b) : fp8x16_finite(b);
        }
#pragma GCC unroll 16
        for (int j = 0; j < TT; j++) {
            __m512 xv = _mm512_loadu_ps(xr[j] + k + 16 * q);
#pragma GCC unroll 16
            for (int i = 0; i < RG; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
}

/* y[t0 + j][r + i] for i < RG rows of W, j < TT tokens. xs: x rows (FP8:
 * prescaled), stride K. */
AI void mv_block(const int dt, const int RG, const int TT, float *y, int64_t N, const float *xs,
                 int64_t K, const uint8_t *w, size_t row_bytes, int64_t r, int64_t t0) {
    __m512 acc[4][4];
    #pragma GCC unroll 16
    for (int i = 0; i < RG; i++)
        #pragma GCC unroll 16
        for (int j = 0; j < TT; j++) acc[i][j] = _mm512_setzero_ps();
    const uint8_t *wr[4];
    #pragma GCC unroll 16
    for (int i = 0; i < RG; i++) wr[i] = w + (size_t)i * row_bytes;
    const float *xr[4];
    #pragma GCC unroll 16
    for (int j = 0; j < TT; j++) xr[j] = xs + (t0 + j) * K;
    int64_t k = 0;
    if (dt == LM_DTYPE_F8_E4M3) {
        /* 64 bytes per row at a time: one NaN test for the block, then the
         * cheap conversion (no per-vector patching) unless a NaN is there. */
        const __m512i m7f = _mm512_set1_epi8(0x7f);
        for (; k + 64 <= K; k += 64) {
            __mmask64 bad = 0;
#pragma GCC unroll 16
            for (int i = 0; i < RG; i++)
                bad |= _mm512_cmpeq_epi8_mask(_mm512_and_si512(_mm512_loadu_si512(wr[i] + k), m7f), m7f);
            if (__builtin_expect(bad == 0, 1)) mv_fp8_64(RG, TT, 0, acc, wr, xr, k);
            else mv_fp8_64(RG, TT, 1, acc, wr, xr, k);
        }
    }
    {
        for (; k + 16 <= K; k += 16) {
            __m512 wv[4];
            #pragma GCC unroll 16
            for (int i = 0; i < RG; i++) wv[i] = load16_full(dt, wr[i], k);
            #pragma GCC unroll 16
            for (int j = 0; j < TT; j++) {
                __m512 xv = _mm512_loadu_ps(xr[j] + k);
                #pragma GCC unroll 16
                for (int i = 0; i < RG; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
            }
        }
    }
    for (; k < K; k += 16) {
        __mmask16 m = tail_mask(K - k);
        __m512 wv[4];
        #pragma GCC unroll 16
        for (int i = 0; i < RG; i++) wv[i] = load16(dt, wr[i], k, m);
        #pragma GCC unroll 16
        for (int j = 0; j < TT; j++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, xr[j] + k);
            #pragma GCC unroll 16
            for (int i = 0; i < RG; i++) acc[i][j] = _mm512_mask3_fmadd_ps(wv[i], xv, acc[i][j], m);
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < RG; i++)
        #pragma GCC unroll 16
        for (int j = 0; j < TT; j++) y[(t0 + j) * N + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

/* T = 1: one W row at a time (a single DRAM stream reads faster here than
 * several interleaved rows), four accumulators over k: chunk c of 16
 * elements goes to accumulator c mod 4; y = sum((a0 + a1) + (a2 + a3)). */
AI float mv_row1(const int dt, const float *xs, int64_t K, const uint8_t *w) {
    __m512 a[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) a[q] = _mm512_setzero_ps();
    int64_t k = 0;
    if (dt == LM_DTYPE_F8_E4M3) {
        const __m512i m7f = _mm512_set1_epi8(0x7f);
        for (; k + 64 <= K; k += 64) {
            __mmask64 bad = _mm512_cmpeq_epi8_mask(_mm512_and_si512(_mm512_loadu_si512(w + k), m7f), m7f);
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                __m128i b = _mm_loadu_si128((const __m128i *)(w + k + 16 * q));
                __m512 wv = __builtin_expect(bad != 0, 0) ? fp8x16(b) : fp8x16_finite(b);
                a[q] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs + k + 16 * q), a[q]);
            }
        }
    } else {
        for (; k + 64 <= K; k += 64) {
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                a[q] = _mm512_fmadd_ps(load16_full(dt, w, k + 16 * q), _mm512_loadu_ps(xs + k + 16 * q), a[q]);
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* k is a multiple of 64: the rest is chunks 0..3 */
        int64_t kq = k + 16 * q;
        if (kq < K) {
            __mmask16 m = tail_mask(K - kq);
            a[q] = _mm512_mask3_fmadd_ps(load16(dt, w, kq, m), _mm512_maskz_loadu_ps(m, xs + kq), a[q], m);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
}

AI void mv_rows(const int dt, const int RG, float *y, int64_t T, int64_t N, const float *xs,
                int64_t K, const uint8_t *w, size_t row_bytes, int64_t r) {
    for (int64_t t = 0; t < T; t += 4) {
        switch (T - t >= 4 ? 4 : T - t) {
        case 4: mv_block(dt, RG, 4, y, N, xs, K, w, row_bytes, r, t); break;
        case 3: mv_block(dt, RG, 3, y, N, xs, K, w, row_bytes, r, t); break;
        case 2: mv_block(dt, RG, 2, y, N, xs, K, w, row_bytes, r, t); break;
        default: mv_block(dt, RG, 1, y, N, xs, K, w, row_bytes, r, t); break;
        }
    }
}

AI void matvec_dt(const int dt, float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0,
                  int64_t n1) {
    int64_t N = W->rows, K = W->cols;
    size_t row_bytes = (size_t)K * dt_size(dt);
    const uint8_t *base = (const uint8_t *)W->data;
    for (int64_t r = n0; r < n1;) {
        int64_t rend = n1;
        const float *xs = x;
        if (dt == LM_DTYPE_F8_E4M3) { /* x times this row block's scales times 2^8 */
            int64_t rb = r / LM_FP8_BLOCK, sc = (K + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
            if ((rb + 1) * LM_FP8_BLOCK < rend) rend = (rb + 1) * LM_FP8_BLOCK;
            float *buf = (float *)lm_scratch(2, (size_t)(T * K) * sizeof(float));
            const float *s = W->scale_inv + rb * sc;
            for (int64_t t = 0; t < T; t++)
                for (int64_t k = 0; k < K; k += 16) {
                    __mmask16 m = tail_mask(K - k);
                    __m512 v = _mm512_maskz_loadu_ps(m, x + t * K + k);
                    __m512 f = _mm512_set1_ps(s[k / LM_FP8_BLOCK] * 256.0f);
                    _mm512_mask_storeu_ps(buf + t * K + k, m, _mm512_mul_ps(v, f));
                }
            xs = buf;
        }
        if (T == 1) {
            for (; r < rend; r++) y[r] = mv_row1(dt, xs, K, base + (size_t)r * row_bytes);
            continue;
        }
        for (; r + 4 <= rend; r += 4) mv_rows(dt, 4, y, T, N, xs, K, base + (size_t)r * row_bytes, row_bytes, r);
        for (; r < rend; r++) mv_rows(dt, 1, y, T, N, xs, K, base + (size_t)r * row_bytes, row_bytes, r);
    }
}

static void matvec_avx512(float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0, int64_t n1) {
    switch (W->dtype) {
    case LM_DTYPE_F32: matvec_dt(LM_DTYPE_F32, y, x, T, W, n0, n1); break;
    case LM_DTYPE_BF16: matvec_dt(LM_DTYPE_BF16, y, x, T, W, n0, n1); break;
    case LM_DTYPE_F16: matvec_dt(LM_DTYPE_F16, y, x, T, W, n0, n1); break;
    default: matvec_dt(LM_DTYPE_F8_E4M3, y, x, T, W, n0, n1); break;
    }
}

/* ---- GEMM (prefill) ---- */

/* In-register transpose of a 16x16 block: r[i][j] -> r[j][i]. */
AI void transpose16(__m512 r[16]) {
    __m512 t[16];
    #pragma GCC unroll 16
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m512 u[16];
    #pragma GCC unroll 16
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* u[4g + e], 128-bit lane L: rows 4g..4g+3 of column 4L + e */
    #pragma GCC unroll 16
    for (int e = 0; e < 4; e++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        r[e] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + e] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + e] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + e] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

/* xT[s][k][32] for strips s of 32 rows starting at x row tb, rows < te
 * valid (others zero), columns kc0 .. kc0+kcn. */
static void pack_x(float *xT, const float *x, int64_t K, int64_t tb, int64_t te, int64_t kc0,
                   int64_t kcn) {
    int64_t nstrips = (te - tb + NT - 1) / NT;
    for (int64_t s = 0; s < nstrips; s++) {
        float *dst = xT + s * KC * NT;
        for (int half = 0; half < 2; half++) {
            int64_t r0 = tb + s * NT + half * 16;
            int64_t nr = te - r0;
            if (nr > 16) nr = 16;
            for (int64_t k = 0; k < kcn; k += 16) {
                __mmask16 m = tail_mask(kcn - k);
                __m512 r[16];
                #pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i < nr ? _mm512_maskz_loadu_ps(m, x + (r0 + i) * K + kc0 + k) : _mm512_setzero_ps();
                transpose16(r);
                int64_t kn = kcn - k < 16 ? kcn - k : 16;
                for (int64_t i = 0; i < kn; i++) _mm512_store_ps(dst + (k + i) * NT + half * 16, r[i]);
            }
        }
    }
}

/* wp[i][k] = W[n + i][kc0 + k] as f32 (FP8 with its block scale), i < mr. */
AI void pack_w_dt(const int dt, float *wp, const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn) {
    int64_t K = W->cols;
    size_t row_bytes = (size_t)K * dt_size(dt);
    #pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)(n + i) * row_bytes;
        const float *s = NULL;
        if (dt == LM_DTYPE_F8_E4M3)
            s = W->scale_inv + ((n + i) / LM_FP8_BLOCK) * ((K + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK);
        float *dst = wp + i * KC;
        int64_t k = 0;
        for (; k + 16 <= kcn; k += 16) {
            __m512 v = load16_full(dt, row, kc0 + k);
            if (dt == LM_DTYPE_F8_E4M3) v = _mm512_mul_ps(v, _mm512_set1_ps(s[(kc0 + k) / LM_FP8_BLOCK] * 256.0f));
            _mm512_store_ps(dst + k, v);
        }
        if (k < kcn) {
            __mmask16 m = tail_mask(kcn - k);
            __m512 v = load16(dt, row, kc0 + k, m);
            if (dt == LM_DTYPE_F8_E4M3) v = _mm512_mul_ps(v, _mm512_set1_ps(s[(kc0 + k) / LM_FP8_BLOCK] * 256.0f));
            _mm512_store_ps(dst + k, v);
        }
    }
}

static void pack_w(float *wp, const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn) {
    switch (W->dtype) {
    case LM_DTYPE_F32: pack_w_dt(LM_DTYPE_F32, wp, W, n, mr, kc0, kcn); break;
    case LM_DTYPE_BF16: pack_w_dt(LM_DTYPE_BF16, wp, W, n, mr, kc0, kcn); break;
    case LM_DTYPE_F16: pack_w_dt(LM_DTYPE_F16, wp, W, n, mr, kc0, kcn); break;
    default: pack_w_dt(LM_DTYPE_F8_E4M3, wp, W, n, mr, kc0, kcn); break;
    }
}

/* acc[i][0..NV*16) += sum_k wp[i][k] * xt[k][..], i < mr: NV = 2 (32 tokens)
 * or 1 (16). acc is [MR][32] floats, in and out. */
AI void micro(const int mr, const int NV, float *acc, const float *wp, const float *xt, int64_t kcn) {
    __m512 a0[MR], a1[MR];
    #pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        a0[i] = _mm512_load_ps(acc + i * NT);
        if (NV == 2) a1[i] = _mm512_load_ps(acc + i * NT + 16);
    }
    for (int64_t k = 0; k < kcn; k++) {
        __m512 x0 = _mm512_load_ps(xt + k * NT), x1;
        if (NV == 2) x1 = _mm512_load_ps(xt + k * NT + 16);
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            __m512 b = _mm512_set1_ps(wp[i * KC + k]);
            a0[i] = _mm512_fmadd_ps(b, x0, a0[i]);
            if (NV == 2) a1[i] = _mm512_fmadd_ps(b, x1, a1[i]);
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        _mm512_store_ps(acc + i * NT, a0[i]);
        if (NV == 2) _mm512_store_ps(acc + i * NT + 16, a1[i]);
    }
}

#define MICRO_CASE(m)                                                                 \
    case m:                                                                           \
        if (nv == 2) micro(m, 2, acc, wp, xt, kcn);                                   \
        else micro(m, 1, acc, wp, xt, kcn);                                           \
        break;

static void micro_any(int mr, int nv, float *acc, const float *wp, const float *xt, int64_t kcn) {
    switch (mr) {
        MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10) MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7)
        MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    }
}

/* acc[i][j] (i < mr, j < nt, row stride NT) <-> y[(ts + j) * N + n + i]:
 * 16x16 transposes, so y is touched with one masked vector per token. */
static void tile_to_y(float *y, int64_t N, int64_t ts, int nt, int64_t n, int mr, const float *acc) {
    __mmask16 m = tail_mask(mr);
    for (int h = 0; h * 16 < nt; h++) {
        __m512 r[16];
        #pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = i < mr ? _mm512_load_ps(acc + i * NT + h * 16) : _mm512_setzero_ps();
        transpose16(r);
        int nj = nt - h * 16 < 16 ? nt - h * 16 : 16;
        #pragma GCC unroll 16
        for (int j = 0; j < nj; j++) _mm512_mask_storeu_ps(y + (ts + h * 16 + j) * N + n, m, r[j]);
    }
}

/* Prefetches W rows n .. n+mr-1, columns kc0 .. kc0+kcn into L2. */
/* Prefetches part `part` of `parts` of W rows n .. n+mr-1, columns kc0 ..
 * kc0+kcn, into L2: the next panel arrives while this one is used, without
 * flooding the miss queue with one burst. */
static void prefetch_w(const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn, int64_t part,
                       int64_t parts) {
    size_t es = lm_dtype_size(W->dtype), row_bytes = (size_t)W->cols * es;
    int64_t lines = (int64_t)(((size_t)kcn * es + 63) / 64), total = lines * mr;
    for (int64_t l = total * part / parts; l < total * (part + 1) / parts; l++) {
        const char *p = (const char *)W->data + (size_t)(n + l / lines) * row_bytes + (size_t)kc0 * es;
        _mm_prefetch(p + (l % lines) * 64, _MM_HINT_T1);
    }
}

static void gemm_avx512(float *y, const float *x, int64_t T, const lm_mat *W, int64_t t0, int64_t t1, int64_t n0,
                        int64_t n1, int64_t packed[2]) {
    (void)T;
    int64_t N = W->rows, K = W->cols, nkc = (K + KC - 1) / KC;
    /* x packed for all of K when it fits XT_FULL_K: tiles of the same rows
     * that follow on this thread reuse it */
    int full = K <= XT_FULL_K && t1 - t0 <= TC;
    float *xT = (float *)lm_scratch(0, (size_t)TC * KC * (size_t)(full ? nkc : 1) * sizeof(float));
    int have = full && packed[0] == t0 && packed[1] == t1;
    float *wp = (float *)lm_scratch(1, (size_t)MR * KC * sizeof(float));
    /* partial sums of the whole tile, [group][strip][MR][NT], kept across K
     * blocks (exact) and written to y once, after the last block */
    int64_t ngroups = (n1 - n0 + MR - 1) / MR;
    float *accbuf = (float *)lm_scratch(3, (size_t)(ngroups * (TC / NT) * MR * NT) * sizeof(float));
    for (int64_t tb = t0; tb < t1; tb += TC) {
        int64_t te = tb + TC < t1 ? tb + TC : t1;
        int64_t nstrips = (te - tb + NT - 1) / NT;
        for (int64_t kc0 = 0; kc0 < K; kc0 += KC) {
            int64_t kcn = K - kc0 < KC ? K - kc0 : KC;
            float *xk = full ? xT + (kc0 / KC) * TC * KC : xT;
            if (!have) pack_x(xk, x, K, tb, te, kc0, kcn);
            for (int64_t n = n0; n < n1; n += MR) {
                int mr = (int)(n1 - n < MR ? n1 - n : MR);
                pack_w(wp, W, n, mr, kc0, kcn);
                int mr_next = (int)(n1 - n - MR < MR ? n1 - n - MR : MR);
                for (int64_t s = 0; s < nstrips; s++) {
                    if (mr_next > 0) prefetch_w(W, n + MR, mr_next, kc0, kcn, s, nstrips);
                    int64_t ts = tb + s * NT;
                    int nt = (int)(te - ts < NT ? te - ts : NT);
                    float *acc = accbuf + (((n - n0) / MR) * (TC / NT) + s) * (MR * NT);
                    if (kc0 == 0) memset(acc, 0, MR * NT * sizeof(float));
                    micro_any(mr, nt > 16 ? 2 : 1, acc, wp, xk + s * KC * NT, kcn);
                    if (kc0 + KC >= K) tile_to_y(y, N, ts, nt, n, mr, acc);
                }
            }
        }
    }
    packed[0] = full ? t0 : -1;
    packed[1] = full ? t1 : -1;
}

/* ---- row kernels ---- */

/* e^x for a vector, about 1 ulp: x = n ln2 + r, |r| <= ln2/2, degree-7
 * Taylor polynomial for e^r, scaled by 2^n with vscalefps (handles overflow
 * to inf and gradual underflow). NaN propagates; -inf gives 0. */
AI __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* NaN in x stays (second operand) */
    x = _mm512_min_ps(_mm512_set1_ps(110.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static void rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    float ss = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    __m512 rv = _mm512_set1_ps(r);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i), b = _mm512_maskz_loadu_ps(m, w + i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(a, rv), b));
    }
}

static void swiglu_avx512(float *out, const float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, u));
    }
}

static void softmax_avx512(float *x, int64_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
    }
    __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv));
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_mask_add_ps(s, m, s, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

const lm_kernel_table lm_kernels_avx512 = {
    .matvec_max_t = {64, 128, 128, 12}, /* F32, BF16, F16, FP8: measured crossovers on Zen 4 */
    .matvec = matvec_avx512,
    .gemm = gemm_avx512,
    .rmsnorm = rmsnorm_avx512,
    .swiglu = swiglu_avx512,
    .softmax = softmax_avx512,
};
