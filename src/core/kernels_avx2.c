/* kernels_avx2.c — AVX2 + FMA + F16C kernels (16 ymm registers).
 *
 * Same design as kernels_avx512.c, at half the width:
 *   - matvec (T <= matvec_max_t): blocks of 4 W rows x 2 tokens, one 8-lane
 *     accumulator per (row, token), fixed horizontal reduction; T = 1: one
 *     row at a time with four accumulators over k (one DRAM stream);
 *   - GEMM: W panel of MR = 6 rows broadcast against xT strips of 16 tokens
 *     (2 ymm): 12 accumulators; K blocked by KC with exact partial sums in scratch.
 * Every y element is computed by the same operation sequence whatever tile
 * or thread it lands in. Tails of 16/8-bit weights are copied into a zeroed
 * buffer (AVX2 has no masked loads for them); f32 tails use vmaskmovps.
 * FP8: see kernels_avx512.c (byte -> f16 bits worth value * 2^-8). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "core/kernels.h"

#define AI static inline __attribute__((always_inline))

enum { MR = 6, NT = 16, KC = 512, TC = 256, XT_FULL_K = 4096 };

/* ---- conversions ---- */

static inline __m256i lane_mask(int64_t n) { /* first n (0..8) lanes all-ones */
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - (n > 8 ? 8 : n)));
}

AI __m256 bf16x8(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }

/* 8 FP8 bytes (low half of b) -> value * 2^-8 */
AI __m256 fp8x8(__m128i b) {
    const __m128i m7f = _mm_set1_epi8(0x7f);
    __m128i w = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(b), 7), _mm_set1_epi16((short)0xbfff));
    __m128i nan = _mm_cmpeq_epi8(_mm_and_si128(b, m7f), m7f);
    if (__builtin_expect((_mm_movemask_epi8(nan) & 0xff) != 0, 0))
        w = _mm_blendv_epi8(w, _mm_set1_epi16(0x7e00), _mm_cvtepi8_epi16(nan));
    return _mm256_cvtph_ps(w);
}

/* 8 elements of dtype dt at element index i of p (FP8: times 2^-8). */
AI __m256 load8(const int dt, const uint8_t *p, int64_t i) {
    switch (dt) {
    case LM_DTYPE_F32: return _mm256_loadu_ps((const float *)(p + 4 * i));
    case LM_DTYPE_BF16: return bf16x8(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
    case LM_DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
    default: return fp8x8(_mm_loadl_epi64((const __m128i *)(p + i)));
    }
}

/* The first n (1..8, no more) elements, the rest zero. */
AI __m256 load8_part(const int dt, const uint8_t *p, int64_t i, int64_t n) {
    if (dt == LM_DTYPE_F32) return _mm256_maskload_ps((const float *)(p + 4 * i), lane_mask(n));
    _Alignas(16) uint8_t buf[16] = {0};
    size_t es = dt == LM_DTYPE_F8_E4M3 ? 1 : 2;
    memcpy(buf, p + es * (size_t)i, es * (size_t)n);
    return load8(dt, buf, 0);
}

static inline size_t dt_size(int dt) { return lm_dtype_size((lm_dtype)dt); }

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- matvec (decode) ---- */

AI void mv_block(const int dt, const int RG, const int TT, float *y, int64_t N, const float *xs,
                 int64_t K, const uint8_t *w, size_t row_bytes, int64_t r, int64_t t0) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++)
#pragma GCC unroll 2
        for (int j = 0; j < TT; j++) acc[i][j] = _mm256_setzero_ps();
    const uint8_t *wr[4];
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++) wr[i] = w + (size_t)i * row_bytes;
    const float *xr[2];
#pragma GCC unroll 2
    for (int j = 0; j < TT; j++) xr[j] = xs + (t0 + j) * K;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < RG; i++) wv[i] = load8(dt, wr[i], k);
#pragma GCC unroll 2
        for (int j = 0; j < TT; j++) {
            __m256 xv = _mm256_loadu_ps(xr[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < RG; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    if (k < K) { /* padded lanes add 0 * 0 */
        __m256 wv[4];
#pragma GCC unroll 4
        for (int i = 0; i < RG; i++) wv[i] = load8_part(dt, wr[i], k, K - k);
#pragma GCC unroll 2
        for (int j = 0; j < TT; j++) {
            __m256 xv = _mm256_maskload_ps(xr[j] + k, lane_mask(K - k));
#pragma GCC unroll 4
            for (int i = 0; i < RG; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++)
#pragma GCC unroll 2
        for (int j = 0; j < TT; j++) y[(t0 + j) * N + r + i] = hsum8(acc[i][j]);
}

/* T = 1: one W row at a time (one DRAM stream), four accumulators over k:
 * chunk c of 8 elements goes to accumulator c mod 4. */
AI float mv_row1(const int dt, const float *xs, int64_t K, const uint8_t *w) {
    __m256 a[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) a[q] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) a[q] = _mm256_fmadd_ps(load8(dt, w, k + 8 * q), _mm256_loadu_ps(xs + k + 8 * q), a[q]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* k is a multiple of 32: the rest is chunks 0..3 */
        int64_t kq = k + 8 * q;
        if (kq < K) { /* padded lanes add 0 * 0 */
            int64_t n = K - kq < 8 ? K - kq : 8;
            a[q] = _mm256_fmadd_ps(load8_part(dt, w, kq, n), _mm256_maskload_ps(xs + kq, lane_mask(n)), a[q]);
        }
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
}

AI void mv_rows(const int dt, const int RG, float *y, int64_t T, int64_t N, const float *xs, int64_t K,
                const uint8_t *w, size_t row_bytes, int64_t r) {
    int64_t t = 0;
    for (; t + 2 <= T; t += 2) mv_block(dt, RG, 2, y, N, xs, K, w, row_bytes, r, t);
    if (t < T) mv_block(dt, RG, 1, y, N, xs, K, w, row_bytes, r, t);
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
                for (int64_t k = 0; k < K; k++) buf[t * K + k] = x[t * K + k] * (s[k / LM_FP8_BLOCK] * 256.0f);
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

static void matvec_avx2(float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0, int64_t n1) {
    switch (W->dtype) {
    case LM_DTYPE_F32: matvec_dt(LM_DTYPE_F32, y, x, T, W, n0, n1); break;
    case LM_DTYPE_BF16: matvec_dt(LM_DTYPE_BF16, y, x, T, W, n0, n1); break;
    case LM_DTYPE_F16: matvec_dt(LM_DTYPE_F16, y, x, T, W, n0, n1); break;
    default: matvec_dt(LM_DTYPE_F8_E4M3, y, x, T, W, n0, n1); break;
    }
}

/* ---- GEMM (prefill) ---- */

/* In-register transpose of an 8x8 block. */
AI void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    /* u[4g + e], 128-bit lane L: rows 4g..4g+3 of column 4L + e */
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
}

/* xT[s][k][16] for strips of 16 x rows from tb (rows >= te zero), k < kcn. */
static void pack_x(float *xT, const float *x, int64_t K, int64_t tb, int64_t te, int64_t kc0, int64_t kcn) {
    int64_t nstrips = (te - tb + NT - 1) / NT;
    for (int64_t s = 0; s < nstrips; s++) {
        float *dst = xT + s * KC * NT;
        for (int half = 0; half < 2; half++) {
            int64_t r0 = tb + s * NT + half * 8;
            int64_t nr = te - r0;
            if (nr > 8) nr = 8;
            for (int64_t k = 0; k < kcn; k += 8) {
                __m256i m = lane_mask(kcn - k);
                __m256 r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = i < nr ? _mm256_maskload_ps(x + (r0 + i) * K + kc0 + k, m) : _mm256_setzero_ps();
                transpose8(r);
                int64_t kn = kcn - k < 8 ? kcn - k : 8;
                for (int64_t i = 0; i < kn; i++) _mm256_store_ps(dst + (k + i) * NT + half * 8, r[i]);
            }
        }
    }
}

AI void pack_w_dt(const int dt, float *wp, const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn) {
    int64_t K = W->cols;
    size_t row_bytes = (size_t)K * dt_size(dt);
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)(n + i) * row_bytes;
        const float *s = NULL;
        if (dt == LM_DTYPE_F8_E4M3)
            s = W->scale_inv + ((n + i) / LM_FP8_BLOCK) * ((K + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK);
        float *dst = wp + i * KC;
        for (int64_t k = 0; k < kcn; k += 8) {
            __m256 v = kcn - k >= 8 ? load8(dt, row, kc0 + k) : load8_part(dt, row, kc0 + k, kcn - k);
            if (dt == LM_DTYPE_F8_E4M3) v = _mm256_mul_ps(v, _mm256_set1_ps(s[(kc0 + k) / LM_FP8_BLOCK] * 256.0f));
            _mm256_store_ps(dst + k, v);
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

/* acc[i][0..NV*8) += sum_k wp[i][k] * xt[k][..], i < mr. acc is [MR][16]. */
AI void micro(const int mr, const int NV, float *acc, const float *wp, const float *xt, int64_t kcn) {
    __m256 a0[MR], a1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        a0[i] = _mm256_load_ps(acc + i * NT);
        if (NV == 2) a1[i] = _mm256_load_ps(acc + i * NT + 8);
    }
    for (int64_t k = 0; k < kcn; k++) {
        __m256 x0 = _mm256_load_ps(xt + k * NT), x1;
        if (NV == 2) x1 = _mm256_load_ps(xt + k * NT + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 b = _mm256_broadcast_ss(wp + i * KC + k);
            a0[i] = _mm256_fmadd_ps(b, x0, a0[i]);
            if (NV == 2) a1[i] = _mm256_fmadd_ps(b, x1, a1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm256_store_ps(acc + i * NT, a0[i]);
        if (NV == 2) _mm256_store_ps(acc + i * NT + 8, a1[i]);
    }
}

#define MICRO_CASE(m)                                                                 \
    case m:                                                                           \
        if (nv == 2) micro(m, 2, acc, wp, xt, kcn);                                   \
        else micro(m, 1, acc, wp, xt, kcn);                                           \
        break;

static void micro_any(int mr, int nv, float *acc, const float *wp, const float *xt, int64_t kcn) {
    switch (mr) { MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1) }
}

/* acc[i][j] (i < mr, j < nt) <-> y[(ts + j) * N + n + i], via 8x8 transposes. */
static void tile_to_y(float *y, int64_t N, int64_t ts, int nt, int64_t n, int mr, const float *acc) {
    __m256i m = lane_mask(mr);
    for (int h = 0; h * 8 < nt; h++) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) r[i] = i < mr ? _mm256_load_ps(acc + i * NT + h * 8) : _mm256_setzero_ps();
        transpose8(r);
        int nj = nt - h * 8 < 8 ? nt - h * 8 : 8;
        for (int j = 0; j < nj; j++) _mm256_maskstore_ps(y + (ts + h * 8 + j) * N + n, m, r[j]);
    }
}

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

static void gemm_avx2(float *y, const float *x, int64_t T, const lm_mat *W, int64_t t0, int64_t t1, int64_t n0,
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
                    micro_any(mr, nt > 8 ? 2 : 1, acc, wp, xk + s * KC * NT, kcn);
                    if (kc0 + KC >= K) tile_to_y(y, N, ts, nt, n, mr, acc);
                }
            }
        }
    }
    packed[0] = full ? t0 : -1;
    packed[1] = full ? t1 : -1;
}

/* ---- row kernels ---- */

/* e^x, about 1 ulp (see exp512 in kernels_avx512.c); 2^n applied as two
 * factors so that gradual underflow and overflow come out right. */
AI __m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-110.0f), x); /* NaN stays (second operand) */
    x = _mm256_min_ps(_mm256_set1_ps(110.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n); /* exact: n is an integer in [-159, 159] */
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

static void rmsnorm_avx2(float *y, const float *x, const float *w, int64_t n, float eps) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 8) {
        __m256 a = _mm256_maskload_ps(x + i, lane_mask(n - i));
        s0 = _mm256_fmadd_ps(a, a, s0);
    }
    float ss = hsum8(_mm256_add_ps(s0, s1));
    __m256 rv = _mm256_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
    for (i = 0; i < n; i += 8) {
        __m256i m = lane_mask(n - i);
        __m256 a = _mm256_maskload_ps(x + i, m), b = _mm256_maskload_ps(w + i, m);
        _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_mul_ps(a, rv), b));
    }
}

static void swiglu_avx2(float *out, const float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = lane_mask(n - i);
        __m256 g = _mm256_maskload_ps(gate + i, m), u = _mm256_maskload_ps(up + i, m);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
    }
}

static void softmax_avx2(float *x, int64_t n) {
    float mx = -INFINITY;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    _Alignas(32) float t[8];
    _mm256_store_ps(t, mv);
    for (int j = 0; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    mv = _mm256_set1_ps(mx);
    __m256 s = _mm256_setzero_ps();
    for (i = 0; i < n; i += 8) {
        __m256i m = lane_mask(n - i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(m)); /* padded lanes: 0 */
        _mm256_maskstore_ps(x + i, m, e);
        s = _mm256_add_ps(s, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum8(s));
    for (i = 0; i < n; i += 8) {
        __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
    }
}

const lm_kernel_table lm_kernels_avx2 = {
    .matvec_max_t = {8, 32, 32, 8}, /* F32, BF16, F16, FP8: measured crossovers on Zen 4 */
    .matvec = matvec_avx2,
    .gemm = gemm_avx2,
    .rmsnorm = rmsnorm_avx2,
    .swiglu = swiglu_avx2,
    .softmax = softmax_avx2,
};
