/* kernels_simd.h — the one matmul driver and the row kernels, written once
 * over a thin vector layer, for every kernel path.
 *
 * Included by kernels_avx512.c (16 lanes), kernels_avx2.c (8 lanes) and
 * kernels_scalar.c / kernels_scalar_fma.c (1 lane: a "vector" is a float),
 * each of which first defines the vector layer:
 *
 *   VL                      lanes per vector (16, 8 or 1)
 *   VPS(op)                 SIMD layers: the intrinsic _mmNNN_<op>_ps; the
 *                           operations named alike in every width (zero,
 *                           set1, load, store, add, ..., fma, max) are then
 *                           defined here once; the scalar layer writes them
 *   vf                      the vector type
 *   MR, MVT                 GEMM panel rows (W rows broadcast per k), matvec tokens per block
 *   v_zero() v_set1(f)      constants
 *   v_load(p) v_load_a(p)   VL floats (any / vector-aligned address)
 *   v_loadn(p, n)           the first n (1..VL) floats, other lanes 0
 *   v_store(p, v) v_store_a(p, v) v_storen(p, v, n)
 *   v_add v_sub v_mul v_div one IEEE operation per lane
 *   v_fma(a, b, c)          a * b + c rounded once
 *   v_keepn(v, n)           lanes >= n set to 0
 *   v_max(x, m)             lane: x > m ? x : m
 *   v_clamp(x, lo, hi)      lane: x < lo ? lo : x > hi ? hi : x (NaN stays)
 *   v_exp_scale(p, n, t)    lm_expf's last step, p * 2^n rounded once (n as
 *                           a float, and t = n + shifter), lane-wise
 *   v_w(dt, p, i)           VL weights of dtype dt at element i of row p, as
 *                           exact f32 (FP8: value * 2^-8, see below)
 *   v_wn(dt, p, i, n)       the first n of them, other lanes 0
 *   v_transpose(r)          r[VL] vectors: r[i][j] -> r[j][i]
 *   v_sum16(s) v_max16(s)   the canonical 16-lane tree over 16/VL vectors
 *   TABLE_NAME, MATVEC_MAX_T  the lm_kernel_table this file defines, its
 *                           matvec thresholds (speed only: both paths give
 *                           the same bits)
 *
 * The arithmetic is docs/arithmetic.md: every matmul output is
 *   acc = +0; for k = 0 .. K-1: acc = fma(w[n][k], x[t][k], acc)
 * with w the exact f32 value of the weight (FP8: fp8 * block scale rounded
 * once: (fp8 * 2^-8) * (scale * 2^8) is that product; Q8 (I8): q * scale,
 * exact, v_w giving q), whatever the path,
 * tile, thread or T; row kernels use 16 lanes (element i in lane i mod 16)
 * combined by a fixed tree. So every path gives the same bits. */
#ifndef LEMMA_CORE_KERNELS_SIMD_H
#define LEMMA_CORE_KERNELS_SIMD_H

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "core/kernels.h"
#include "core/mathfn.h"

#ifdef VPS
#define AIL static inline __attribute__((always_inline))
AIL vf v_zero(void) { return VPS(setzero)(); }
AIL vf v_set1(float f) { return VPS(set1)(f); }
AIL vf v_load(const float *p) { return VPS(loadu)(p); }
AIL vf v_load_a(const float *p) { return VPS(load)(p); }
AIL void v_store(float *p, vf v) { VPS(storeu)(p, v); }
AIL void v_store_a(float *p, vf v) { VPS(store)(p, v); }
AIL vf v_add(vf a, vf b) { return VPS(add)(a, b); }
AIL vf v_sub(vf a, vf b) { return VPS(sub)(a, b); }
AIL vf v_mul(vf a, vf b) { return VPS(mul)(a, b); }
AIL vf v_div(vf a, vf b) { return VPS(div)(a, b); }
AIL vf v_fma(vf a, vf b, vf c) { return VPS(fmadd)(a, b, c); }
/* vmaxps(a, b) is a > b ? a : b and vminps(a, b) is a < b ? a : b (the
 * second operand when either is NaN or both are zeros): exactly the
 * ternaries the layer asks for. */
AIL vf v_max(vf x, vf m) { return VPS(max)(x, m); }
AIL vf v_clamp(vf x, vf lo, vf hi) { return VPS(min)(hi, VPS(max)(lo, x)); }
#undef AIL
#endif

enum { NT = 2 * VL, KC = 512, TC = 256, XT_FULL_K = 4096, MVG = 4, KCM = 128, NV16 = 16 / VL };

static inline size_t dt_size(int dt) {
    return dt == LM_DT_FP8_NAN_FREE || dt == LM_DT_FP8_WIDE ? 1 : lm_dtype_size((lm_dtype)dt);
}
static inline int dt_fp8(int dt) { return dt == LM_DTYPE_F8_E4M3 || dt == LM_DT_FP8_NAN_FREE || dt == LM_DT_FP8_WIDE; }

static inline int64_t fp8_scols(const lm_mat *W) { return (W->cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK; }

/* Q8 (I8) in rows: the scale of row r, columns k .. k + VL - 1 (one block of
 * 32: k is a multiple of VL). */
static inline float q8_factor(const lm_mat *W, int64_t r, int64_t k) {
    return lm_f16_to_f32(W->q8_scale[r * lm_q8_scale_cols(W) + k / LM_Q8_BLOCK]);
}

/* The factor that turns v_w's FP8 (value * 2^-8) into value * scale for
 * row r, column k. */
static inline float fp8_factor(const lm_mat *W, int64_t r, int64_t k) {
    return W->scale_inv[(r / LM_FP8_BLOCK) * fp8_scols(W) + k / LM_FP8_BLOCK] * 256.0f;
}

/* Calls fn(LM_DTYPE_X, args...) with the weight dtype as a constant, so
 * each always_inline body is compiled once per dtype. */
#define DISPATCH_DTYPE(dtype, fn, ...)                                        \
    do {                                                                      \
        switch (dtype) {                                                      \
        case LM_DTYPE_F32: fn(LM_DTYPE_F32, __VA_ARGS__); break;              \
        case LM_DTYPE_BF16: fn(LM_DTYPE_BF16, __VA_ARGS__); break;            \
        case LM_DTYPE_F16: fn(LM_DTYPE_F16, __VA_ARGS__); break;              \
        case LM_DTYPE_I8: fn(LM_DTYPE_I8, __VA_ARGS__); break;                \
        default: fn(LM_DTYPE_F8_E4M3, __VA_ARGS__); break;                    \
        }                                                                     \
    } while (0)

/* ---- matvec (small T): lanes over W rows, x broadcast ----
 *
 * A block of VL rows x VL columns of W is loaded row-wise and transposed in
 * registers, so vector kk holds column k + kk of VL rows; each output lane
 * then runs its own fma chain over k in order. The transposed, dequantized
 * panel of MVG x VL rows x KCM columns (L1-sized) is packed once and token
 * blocks of MVT run over it, MVG independent chains per token. (For T = 1,
 * working straight from the transposed registers measured 2x slower: the
 * 16 dependent FMAs of a block serialise, and 4 blocks do not fit the
 * registers.) Between column chunks the partial sums wait in y itself
 * (stored floats: exact). */

/* c[kk] = W[r .. r+VL)[k + kk] as f32 (dequantized), kk < VL: a full block. */
static inline __attribute__((always_inline)) void mv_load_full(const int dt, vf c[VL], const lm_mat *W,
                                                                 const uint8_t *base, size_t row_bytes, int64_t r,
                                                                 int64_t k) {
#pragma GCC unroll 16
    for (int i = 0; i < VL; i++) c[i] = v_w(dt, base + (size_t)i * row_bytes, k);
    if (dt == LM_DTYPE_I8) {
#pragma GCC unroll 16
        for (int i = 0; i < VL; i++) c[i] = v_mul(c[i], v_set1(q8_factor(W, r + i, k)));
    }
    v_transpose(c);
    if (dt == LM_DTYPE_F8_E4M3) {
        vf f = v_set1(fp8_factor(W, r, k));
#pragma GCC unroll 16
        for (int i = 0; i < VL; i++) c[i] = v_mul(c[i], f);
    }
}

/* The same for any block: rows >= nr and columns >= K come out 0. */
static void mv_load_block(int dt, vf c[VL], const lm_mat *W, int64_t r, int64_t nr, int64_t k) {
    int64_t K = W->cols, kn = K - k < VL ? K - k : VL;
    size_t row_bytes = (size_t)K * dt_size(dt);
    const uint8_t *base = (const uint8_t *)W->data + (size_t)r * row_bytes;
    for (int i = 0; i < VL; i++) {
        switch (dt) {
        case LM_DTYPE_F32: c[i] = i >= nr ? v_zero() : v_wn(LM_DTYPE_F32, base + (size_t)i * row_bytes, k, kn); break;
        case LM_DTYPE_BF16: c[i] = i >= nr ? v_zero() : v_wn(LM_DTYPE_BF16, base + (size_t)i * row_bytes, k, kn); break;
        case LM_DTYPE_F16: c[i] = i >= nr ? v_zero() : v_wn(LM_DTYPE_F16, base + (size_t)i * row_bytes, k, kn); break;
        case LM_DTYPE_I8:
            c[i] = i >= nr ? v_zero()
                           : v_mul(v_wn(LM_DTYPE_I8, base + (size_t)i * row_bytes, k, kn), v_set1(q8_factor(W, r + i, k)));
            break;
        default: c[i] = i >= nr ? v_zero() : v_wn(LM_DTYPE_F8_E4M3, base + (size_t)i * row_bytes, k, kn); break;
        }
    }
    v_transpose(c);
    if (dt == LM_DTYPE_F8_E4M3) {
        vf f = v_set1(fp8_factor(W, r, k));
        for (int i = 0; i < VL; i++) c[i] = v_mul(c[i], f);
    }
}

/* Over the packed panel wt[g][kk][VL]: tokens t0 .. t0+TT, G blocks of VL
 * rows, columns kc0 .. kc0+kcn; partial sums wait in y between panels. */
static inline __attribute__((always_inline)) void mv_micro(const int G, const int TT, float *y, int64_t N,
                                                             const float *x, int64_t K, const float *wt,
                                                             int64_t r, int64_t nr, int64_t t0, int64_t kc0,
                                                             int64_t kcn) {
    vf acc[MVG][MVT];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        int64_t rows = nr - g * VL < VL ? nr - g * VL : VL;
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++)
            acc[g][t] = kc0 == 0 ? v_zero() : rows == VL ? v_load(y + (t0 + t) * N + r + g * VL)
                                                         : v_loadn(y + (t0 + t) * N + r + g * VL, rows);
    }
    for (int64_t kk = 0; kk < kcn; kk++) {
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            vf xb = v_set1(x[(t0 + t) * K + kc0 + kk]);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) acc[g][t] = v_fma(v_load_a(wt + (g * KCM + kk) * VL), xb, acc[g][t]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        int64_t rows = nr - g * VL < VL ? nr - g * VL : VL;
#pragma GCC unroll 4
        for (int t = 0; t < TT; t++) {
            if (rows == VL) v_store(y + (t0 + t) * N + r + g * VL, acc[g][t]);
            else v_storen(y + (t0 + t) * N + r + g * VL, acc[g][t], rows);
        }
    }
}

static inline __attribute__((always_inline)) void mv_micro_g(const int G, int TT, float *y, int64_t N,
                                                               const float *x, int64_t K, const float *wt,
                                                               int64_t r, int64_t nr, int64_t t0, int64_t kc0,
                                                               int64_t kcn) {
    switch (TT) {
#if MVT >= 4
    case 4: mv_micro(G, 4, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    case 3: mv_micro(G, 3, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
#endif
    case 2: mv_micro(G, 2, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    default: mv_micro(G, 1, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    }
}

static void mv_micro_any(int G, int TT, float *y, int64_t N, const float *x, int64_t K, const float *wt, int64_t r,
                         int64_t nr, int64_t t0, int64_t kc0, int64_t kcn) {
    switch (G) {
    case 4: mv_micro_g(4, TT, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    case 3: mv_micro_g(3, TT, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    case 2: mv_micro_g(2, TT, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    default: mv_micro_g(1, TT, y, N, x, K, wt, r, nr, t0, kc0, kcn); return;
    }
}

static inline __attribute__((always_inline)) void matvec_dt(const int dt, float *y, const float *x, int64_t T,
                                                              const lm_mat *W, int64_t n0, int64_t n1) {
    int64_t N = W->rows, K = W->cols;
    float *wt = (float *)lm_scratch(2, (size_t)MVG * KCM * VL * sizeof(float));
    for (int64_t r = n0; r < n1; r += MVG * VL) {
        int64_t nr = n1 - r < MVG * VL ? n1 - r : MVG * VL;
        int ng = (int)((nr + VL - 1) / VL);
        for (int64_t kc0 = 0; kc0 < K; kc0 += KCM) {
            int64_t kcn = K - kc0 < KCM ? K - kc0 : KCM;
            size_t row_bytes = (size_t)K * dt_size(dt);
            for (int g = 0; g < ng; g++) {
                int64_t rows = nr - g * VL < VL ? nr - g * VL : VL;
                const uint8_t *base = (const uint8_t *)W->data + (size_t)(r + g * VL) * row_bytes;
                for (int64_t k = 0; k < kcn; k += VL) {
                    vf c[VL];
                    int64_t kn = kcn - k < VL ? kcn - k : VL;
                    if (rows == VL && kn == VL) {
                        mv_load_full(dt, c, W, base, row_bytes, r + g * VL, kc0 + k);
#pragma GCC unroll 16
                        for (int i = 0; i < VL; i++) v_store_a(wt + (g * KCM + k + i) * VL, c[i]);
                    } else {
                        mv_load_block(dt, c, W, r + g * VL, rows, kc0 + k);
                        for (int64_t i = 0; i < kn; i++) v_store_a(wt + (g * KCM + k + i) * VL, c[i]);
                    }
                }
            }
            for (int64_t t0 = 0; t0 < T; t0 += MVT)
                mv_micro_any(ng, (int)(T - t0 < MVT ? T - t0 : MVT), y, N, x, K, wt, r, nr, t0, kc0, kcn);
        }
    }
}

/* ---- matvec on panels (LM_LAYOUT_PANELS): no transposes ----
 *
 * A block of R (128) rows holds, for each k in order, its R weights side by
 * side: R/16 panels of NV16 vectors, read as one contiguous stream. Lane i
 * of panel g's accumulators is row 16g + i's chain: acc = fma(w, x[t][k],
 * acc) in k order, the canonical chain. G panels of one block run
 * interleaved (independent chains) for TT tokens at once, the tokens'
 * accumulators in registers. With 16-lane vectors the G = 8 panels of a
 * whole block run together for every T, by pairs of tokens (16
 * accumulators), so the block is read in address order: at T = 2 to 16
 * that streams 1.5-3x faster than 4 panels by blocks of 4 tokens, which
 * read each column in strided halves (measured on bench-m's expert and head
 * shapes; the chains, hence the bits, are the same). Columns go in chunks
 * (64 for several tokens: the chunk stays in L1/L2 while the token pairs
 * run over it; 128 for one or two; always inside one 128-column FP8 scale
 * block, so one scale per block and chunk); partial sums wait in y between
 * chunks (exact). */

#ifndef MVP1
#define MVP1 (VL == 16 ? 8 : 1) /* panels interleaved at T = 1 */
#endif
#ifndef MVP
#define MVP (VL == 16 ? 4 : VL == 8 ? 2 : 1) /* panels interleaved for token blocks */
#endif
#define MVP_MAX (MVP1 > MVP ? MVP1 : MVP) /* a macro: #if tests it */
/* One-byte weights (FP8, Q8) are prefetched this far ahead of the column
 * being read (48 columns of a 128-row block; the stream is contiguous across
 * chunks and blocks). Their conversion costs as much as the memory stream
 * itself, so the hardware prefetcher alone falls behind: cold (DRAM) Q8 and
 * FP8 went from about 80% to 95-100% of the read bandwidth with it, 2 KB
 * ahead gained less and 512 B lost (docs/benchmarks.md). Wider weights
 * showed no gain beyond the noise. Speed only: loads are unchanged. */
#if VL == 16 && defined(__x86_64__)
#define MVP_PREFETCH_BYTES 6144
#endif
/* Panels r/16 .. r/16 + G - 1, all in one block; rows >= n1 not stored. */
static inline __attribute__((always_inline)) void mvp_micro(const int dt, const int G, const int TT, float *y,
                                                              const float *x, int64_t T, const lm_mat *W,
                                                              int64_t r, int64_t n1, int64_t t0, int64_t kc0,
                                                              int64_t kcn) {
    int64_t N = W->rows, K = W->cols, q = r / LM_PANEL_BLOCK, R = lm_panel_rows(W, q);
    size_t es = dt_size(dt), stride = (size_t)R * es;
    (void)T;
    const uint8_t *col = (const uint8_t *)W->data +
                         ((size_t)(q * LM_PANEL_BLOCK) * (size_t)K + (size_t)kc0 * (size_t)R +
                          (size_t)(r - q * LM_PANEL_BLOCK)) * es;
    vf f = dt == LM_DT_FP8_WIDE ? v_set1(fp8_factor(W, r, kc0) * 0x1p112f)
           : dt_fp8(dt)         ? v_set1(fp8_factor(W, r, kc0))
                                : v_zero(),
       acc[MVP_MAX][NV16][MVT], qs[MVP_MAX][NV16];
    /* Q8: the scales of these rows for the 32-column block at kc0, then the
     * next blocks R apart (the scales' own panel layout) */
    const uint8_t *qcol = NULL;
    if (dt == LM_DTYPE_I8)
        qcol = (const uint8_t *)lm_q8_panel_scales(W) +
               ((size_t)(q * LM_PANEL_BLOCK) * (size_t)lm_q8_scale_cols(W) + (size_t)(kc0 / LM_Q8_BLOCK) * (size_t)R +
                (size_t)(r - q * LM_PANEL_BLOCK)) * 2;
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
#pragma GCC unroll 16
        for (int v = 0; v < NV16; v++) {
            int64_t at = r + g * LM_PANEL + v * VL, rows = n1 - at < VL ? n1 - at : VL;
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++)
                acc[g][v][t] = kc0 == 0 || rows <= 0 ? v_zero()
                               : rows == VL         ? v_load(y + (t0 + t) * N + at)
                                                    : v_loadn(y + (t0 + t) * N + at, rows);
        }
    }
    if (dt == LM_DTYPE_I8) { /* blocks of 32 columns, each with its scales */
        for (int64_t kb = 0; kb < kcn; kb += LM_Q8_BLOCK) {
            int64_t ke = kb + LM_Q8_BLOCK < kcn ? kb + LM_Q8_BLOCK : kcn;
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
#pragma GCC unroll 16
                for (int v = 0; v < NV16; v++) qs[g][v] = v_w(LM_DTYPE_F16, qcol, g * LM_PANEL + v * VL);
            }
            qcol += (size_t)R * 2;
            for (int64_t kk = kb; kk < ke; kk++, col += stride) {
#ifdef MVP_PREFETCH_BYTES
#pragma GCC unroll 8
                for (int b = 0; b < G * LM_PANEL; b += 64) _mm_prefetch((const char *)col + MVP_PREFETCH_BYTES + b, _MM_HINT_T0);
#endif
                vf xb[MVT];
#pragma GCC unroll 4
                for (int t = 0; t < TT; t++) xb[t] = v_set1(x[(t0 + t) * K + kc0 + kk]);
#pragma GCC unroll 8
                for (int g = 0; g < G; g++) {
#pragma GCC unroll 16
                    for (int v = 0; v < NV16; v++) {
                        vf w = v_mul(v_w(dt, col, g * LM_PANEL + v * VL), qs[g][v]);
#pragma GCC unroll 4
                        for (int t = 0; t < TT; t++) acc[g][v][t] = v_fma(w, xb[t], acc[g][v][t]);
                    }
                }
            }
        }
    } else {
        for (int64_t kk = 0; kk < kcn; kk++, col += stride) {
#ifdef MVP_PREFETCH_BYTES
            if (es == 1)
#pragma GCC unroll 8
                for (int b = 0; b < G * LM_PANEL; b += 64) _mm_prefetch((const char *)col + MVP_PREFETCH_BYTES + b, _MM_HINT_T0);
#endif
            vf xb[MVT];
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++) xb[t] = v_set1(x[(t0 + t) * K + kc0 + kk]);
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
#pragma GCC unroll 16
                for (int v = 0; v < NV16; v++) {
                    vf w = v_w(dt, col, g * LM_PANEL + v * VL);
                    if (dt_fp8(dt)) w = v_mul(w, f);
#pragma GCC unroll 4
                    for (int t = 0; t < TT; t++) acc[g][v][t] = v_fma(w, xb[t], acc[g][v][t]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) {
#pragma GCC unroll 16
        for (int v = 0; v < NV16; v++) {
            int64_t at = r + g * LM_PANEL + v * VL, rows = n1 - at < VL ? n1 - at : VL;
            if (rows <= 0) continue;
#pragma GCC unroll 4
            for (int t = 0; t < TT; t++) {
                if (rows == VL) v_store(y + (t0 + t) * N + at, acc[g][v][t]);
                else v_storen(y + (t0 + t) * N + at, acc[g][v][t], rows);
            }
        }
    }
}

static inline __attribute__((always_inline)) void mvp_tokens(const int dt, const int G, int TT, float *y,
                                                               const float *x, int64_t T, const lm_mat *W,
                                                               int64_t r, int64_t n1, int64_t t0, int64_t kc0,
                                                               int64_t kcn) {
    switch (TT) {
#if MVT >= 4
    case 4: mvp_micro(dt, G, 4, y, x, T, W, r, n1, t0, kc0, kcn); return;
    case 3: mvp_micro(dt, G, 3, y, x, T, W, r, n1, t0, kc0, kcn); return;
#endif
    case 2: mvp_micro(dt, G, 2, y, x, T, W, r, n1, t0, kc0, kcn); return;
    default: mvp_micro(dt, G, 1, y, x, T, W, r, n1, t0, kc0, kcn); return;
    }
}

/* G panels from row r (a multiple of 16) up to n1, columns kc0 .. kc0+kcn,
 * all tokens. */
static inline __attribute__((always_inline)) void mvp_group(const int dt, const int G, float *y, const float *x,
                                                              int64_t T, const lm_mat *W, int64_t r, int64_t n1,
                                                              int64_t kc0, int64_t kcn) {
    if (G > MVP) { /* the whole block in address order, tokens by pairs */
        for (int64_t t0 = 0; t0 < T; t0 += 2)
            if (T - t0 >= 2) mvp_micro(dt, G, 2, y, x, T, W, r, n1, t0, kc0, kcn);
            else mvp_micro(dt, G, 1, y, x, T, W, r, n1, t0, kc0, kcn);
        return;
    }
    for (int64_t t0 = 0; t0 < T; t0 += MVT)
        mvp_tokens(dt, G, (int)(T - t0 < MVT ? T - t0 : MVT), y, x, T, W, r, n1, t0, kc0, kcn);
}

/* One function per (dtype, G): inlined into one, GCC stops unrolling the
 * register blocks (the accumulators then live in memory: 3x slower). */
typedef void (*mvp_group_fn)(float *y, const float *x, int64_t T, const lm_mat *W, int64_t r, int64_t n1,
                             int64_t kc0, int64_t kcn);
#define MVP_FN(DT, G)                                                                                          \
    static __attribute__((noinline)) void mvp_group_##DT##_##G(float *y, const float *x, int64_t T,         \
                                                               const lm_mat *W, int64_t r, int64_t n1,      \
                                                               int64_t kc0, int64_t kcn) {                  \
        mvp_group(LM_DTYPE_##DT, G, y, x, T, W, r, n1, kc0, kcn);                                            \
    }
#define LM_DTYPE_FP8_NAN_FREE LM_DT_FP8_NAN_FREE
#define LM_DTYPE_FP8_WIDE LM_DT_FP8_WIDE
#ifdef FP8_WIDE
#define MVP_FNS(G) MVP_FN(F32, G) MVP_FN(BF16, G) MVP_FN(F16, G) MVP_FN(F8_E4M3, G) MVP_FN(FP8_NAN_FREE, G) MVP_FN(FP8_WIDE, G) MVP_FN(I8, G)
#define MVP_WIDE(G) mvp_group_FP8_WIDE_##G
#else
#define MVP_FNS(G) MVP_FN(F32, G) MVP_FN(BF16, G) MVP_FN(F16, G) MVP_FN(F8_E4M3, G) MVP_FN(FP8_NAN_FREE, G) MVP_FN(I8, G)
#define MVP_WIDE(G) mvp_group_FP8_NAN_FREE_##G
#endif
MVP_FNS(1)
#if MVP_MAX >= 2
MVP_FNS(2)
#endif
#if MVP_MAX >= 4
MVP_FNS(4)
#endif
#if MVP_MAX >= 8
MVP_FNS(8)
#endif
#define MVP_ROW(G)                                                                                             \
    {mvp_group_F32_##G, mvp_group_BF16_##G, mvp_group_F16_##G, mvp_group_F8_E4M3_##G, mvp_group_FP8_NAN_FREE_##G, \
     MVP_WIDE(G), mvp_group_I8_##G}
/* [log2 G][dtype: F32, BF16, F16, FP8, FP8 without NaN bytes, the same widened
 * (the layer's FP8_WIDE; else the same as without NaN bytes), I8 (Q8)] */
static const mvp_group_fn mvp_groups[][7] = {
    MVP_ROW(1),
#if MVP_MAX >= 2
    MVP_ROW(2),
#endif
#if MVP_MAX >= 4
    MVP_ROW(4),
#endif
#if MVP_MAX >= 8
    MVP_ROW(8),
#endif
};
#undef MVP_ROW
#undef MVP_FNS
#undef MVP_FN
#undef MVP_WIDE
#undef LM_DTYPE_FP8_NAN_FREE
#undef LM_DTYPE_FP8_WIDE

/* Block by block; within a block, chunk by chunk, every group of panels:
 * where a block takes several groups (token blocks; the scalar path), it is
 * still read in address order, not as several strided passes. */
static void matvec_panel(float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0, int64_t n1) {
    int gmax = MVP1 > MVP ? MVP1 : MVP, di = (int)W->dtype; /* F32 0, BF16 1, F16 2, F8_E4M3 3 */
    if (W->dtype == LM_DTYPE_F8_E4M3 && W->fp8_nan_free) di = 4;
    if (W->dtype == LM_DTYPE_I8) di = 6;
    int64_t K = W->cols, kc = T <= 2 ? KCM : KCM / 2;
    for (int64_t r0 = n0; r0 < n1;) {
        int64_t end = (r0 / LM_PANEL_BLOCK + 1) * LM_PANEL_BLOCK; /* groups stay in their block */
        if (end > n1) end = n1;
        for (int64_t kc0 = 0; kc0 < K; kc0 += kc) {
            int64_t kcn = K - kc0 < kc ? K - kc0 : kc;
            int dk = di;
            if (di == 4 && fabsf(W->scale_inv[(r0 / LM_FP8_BLOCK) * fp8_scols(W) + kc0 / LM_FP8_BLOCK]) < 256.0f)
                dk = 5; /* scale * 2^120 stays finite */
            for (int64_t r = r0; r < end;) {
                int64_t np = (end - r + LM_PANEL - 1) / LM_PANEL;
                int lg = 0; /* the largest power of two <= min(np, gmax) */
                while ((2 << lg) <= gmax && (2 << lg) <= np) lg++;
                mvp_groups[lg][dk](y, x, T, W, r, n1, kc0, kcn);
                r += (int64_t)LM_PANEL << lg;
            }
        }
        r0 = end;
    }
}

static void kern_matvec(float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0, int64_t n1) {
    if (W->layout == LM_LAYOUT_PANELS) {
        matvec_panel(y, x, T, W, n0, n1);
        return;
    }
    DISPATCH_DTYPE(W->dtype, matvec_dt, y, x, T, W, n0, n1);
}

/* ---- GEMM (larger T): lanes over tokens, W broadcast ----
 *   - x is packed transposed per (T chunk of TC rows, K block of KC):
 *     xT[strip][k][NT], NT = 2 VL tokens per strip, zero-padded;
 *   - a panel of MR W rows x KC is converted to f32 in scratch (row stride
 *     KC: every broadcast address is a constant offset);
 *   - the micro-kernel keeps MR x NT outputs in 2 MR vector accumulators:
 *     per k it loads 2 vectors of x and broadcasts MR weights;
 *   - partial sums stay in a per-tile scratch between K blocks (exact:
 *     stored floats) and reach y once, through VL x VL transposes. */

/* xT[s][k][NT] for strips s of NT rows starting at x row tb, rows < te
 * valid (others zero), columns kc0 .. kc0+kcn. */
static void pack_x(float *xT, const float *x, int64_t K, int64_t tb, int64_t te, int64_t kc0, int64_t kcn) {
    int64_t nstrips = (te - tb + NT - 1) / NT;
    for (int64_t s = 0; s < nstrips; s++) {
        float *dst = xT + s * KC * NT;
        for (int half = 0; half < 2; half++) {
            int64_t r0 = tb + s * NT + half * VL;
            int64_t nr = te - r0;
            if (nr > VL) nr = VL;
            for (int64_t k = 0; k < kcn; k += VL) {
                int64_t kn = kcn - k < VL ? kcn - k : VL;
                vf r[VL];
#pragma GCC unroll 16
                for (int i = 0; i < VL; i++)
                    r[i] = i < nr ? v_loadn(x + (r0 + i) * K + kc0 + k, kn) : v_zero();
                v_transpose(r);
                for (int64_t i = 0; i < kn; i++) v_store_a(dst + (k + i) * NT + half * VL, r[i]);
            }
        }
    }
}

/* wp[i][k] = W[n + i][kc0 + k] as f32 (FP8 dequantized), i < mr. */
static inline __attribute__((always_inline)) void pack_w_dt(const int dt, float *wp, const lm_mat *W, int64_t n,
                                                              int mr, int64_t kc0, int64_t kcn) {
    int64_t K = W->cols;
    size_t row_bytes = (size_t)K * dt_size(dt);
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)(n + i) * row_bytes;
        float *dst = wp + i * KC;
        for (int64_t k = 0; k < kcn; k += VL) {
            vf v = kcn - k >= VL ? v_w(dt, row, kc0 + k) : v_wn(dt, row, kc0 + k, kcn - k);
            if (dt == LM_DTYPE_F8_E4M3) v = v_mul(v, v_set1(fp8_factor(W, n + i, kc0 + k)));
            if (dt == LM_DTYPE_I8) v = v_mul(v, v_set1(q8_factor(W, n + i, kc0 + k)));
            v_store_a(dst + k, v);
        }
    }
}

/* The same from panels: VL rows x VL columns of a block are VL vectors
 * (one per column, R elements apart); transposed, each is a row of wp. */
static inline __attribute__((always_inline)) void pack_w_panel_dt(const int dt, float *wp, const lm_mat *W,
                                                                    int64_t n, int mr, int64_t kc0, int64_t kcn) {
    int64_t K = W->cols;
    size_t es = dt_size(dt);
    for (int64_t rs = n / VL * VL; rs < n + mr; rs += VL) {
        int64_t q = rs / LM_PANEL_BLOCK, R = lm_panel_rows(W, q);
        const uint8_t *base = (const uint8_t *)W->data +
                              ((size_t)(q * LM_PANEL_BLOCK) * (size_t)K + (size_t)kc0 * (size_t)R +
                               (size_t)(rs - q * LM_PANEL_BLOCK)) * es;
        for (int64_t k = 0; k < kcn; k += VL) {
            int64_t kn = kcn - k < VL ? kcn - k : VL;
            vf c[VL];
#pragma GCC unroll 16
            for (int j = 0; j < VL; j++) c[j] = j < kn ? v_w(dt, base, (k + j) * R) : v_zero();
            if (dt == LM_DTYPE_F8_E4M3) {
                vf fv = v_set1(fp8_factor(W, rs, kc0 + k));
#pragma GCC unroll 16
                for (int j = 0; j < VL; j++) c[j] = v_mul(c[j], fv);
            }
            if (dt == LM_DTYPE_I8) { /* VL rows' scales for columns k .. k + VL - 1 (one block of 32) */
                const uint8_t *qs = (const uint8_t *)lm_q8_panel_scales(W);
                vf sv = v_w(LM_DTYPE_F16, qs,
                            (q * LM_PANEL_BLOCK) * lm_q8_scale_cols(W) + ((kc0 + k) / LM_Q8_BLOCK) * R +
                                (rs - q * LM_PANEL_BLOCK));
#pragma GCC unroll 16
                for (int j = 0; j < VL; j++) c[j] = v_mul(c[j], sv);
            }
            v_transpose(c);
#pragma GCC unroll 16
            for (int i = 0; i < VL; i++)
                if (rs + i >= n && rs + i < n + mr) v_store_a(wp + (rs + i - n) * KC + k, c[i]);
        }
    }
}

static void pack_w(float *wp, const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn) {
    if (W->layout == LM_LAYOUT_PANELS) DISPATCH_DTYPE(W->dtype, pack_w_panel_dt, wp, W, n, mr, kc0, kcn);
    else DISPATCH_DTYPE(W->dtype, pack_w_dt, wp, W, n, mr, kc0, kcn);
}

/* acc[i][0 .. NV VL) += sum_k wp[i][k] * xt[k][..], i < mr: NV = 2 (NT
 * tokens) or 1 (VL). acc is [MR][NT] floats, in and out. */
static inline __attribute__((always_inline)) void micro(const int mr, const int NV, float *acc, const float *wp,
                                                          const float *xt, int64_t kcn) {
    vf a0[MR], a1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        a0[i] = v_load_a(acc + i * NT);
        if (NV == 2) a1[i] = v_load_a(acc + i * NT + VL);
    }
    for (int64_t k = 0; k < kcn; k++) {
        vf x0 = v_load_a(xt + k * NT), x1 = x0;
        if (NV == 2) x1 = v_load_a(xt + k * NT + VL);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            vf b = v_set1(wp[i * KC + k]);
            a0[i] = v_fma(b, x0, a0[i]);
            if (NV == 2) a1[i] = v_fma(b, x1, a1[i]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        v_store_a(acc + i * NT, a0[i]);
        if (NV == 2) v_store_a(acc + i * NT + VL, a1[i]);
    }
}

#define MICRO_CASE(m)                                                                                          \
    case m:                                                                                                    \
        if (nv == 2) micro(m, 2, acc, wp, xt, kcn);                                                            \
        else micro(m, 1, acc, wp, xt, kcn);                                                                    \
        break;

static void micro_any(int mr, int nv, float *acc, const float *wp, const float *xt, int64_t kcn) {
    switch (mr) {
#if MR >= 12
        MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10) MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7)
#endif
#if MR >= 6
        MICRO_CASE(6) MICRO_CASE(5)
#endif
        MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    }
}
#undef MICRO_CASE

/* acc[i][j] (i < mr, j < nt, row stride NT) -> y[(ts + j) * N + n + i]:
 * VL x VL transposes, so y is touched with one vector per token. */
static void tile_to_y(float *y, int64_t N, int64_t ts, int nt, int64_t n, int mr, const float *acc) {
    for (int h = 0; h * VL < nt; h++) {
        for (int i0 = 0; i0 < mr; i0 += VL) {
            int rows = mr - i0 < VL ? mr - i0 : VL;
            vf r[VL];
#pragma GCC unroll 16
            for (int i = 0; i < VL; i++) r[i] = i < rows ? v_load_a(acc + (i0 + i) * NT + h * VL) : v_zero();
            v_transpose(r);
            int nj = nt - h * VL < VL ? nt - h * VL : VL;
            for (int j = 0; j < nj; j++) {
                float *dst = y + (ts + h * VL + j) * N + n + i0;
                if (rows == VL) v_store(dst, r[j]);
                else v_storen(dst, r[j], rows);
            }
        }
    }
}

/* Prefetches part `part` of `parts` of W rows n .. n+mr-1, columns kc0 ..
 * kc0+kcn, into L2: the next panel arrives while this one is used, without
 * flooding the miss queue with one burst. */
static void prefetch_w(const lm_mat *W, int64_t n, int mr, int64_t kc0, int64_t kcn, int64_t part, int64_t parts) {
#if defined(__x86_64__)
    size_t es = lm_dtype_size(W->dtype), row_bytes = (size_t)W->cols * es;
    if (W->layout == LM_LAYOUT_PANELS) { /* the rows' slice of each column of their block */
        int64_t q = n / LM_PANEL_BLOCK, R = lm_panel_rows(W, q), o = n - q * LM_PANEL_BLOCK;
        if ((n + mr - 1) / LM_PANEL_BLOCK != q) return; /* straddles two blocks: rare, left to the hardware */
        const char *base = (const char *)W->data + ((size_t)(q * LM_PANEL_BLOCK) * (size_t)W->cols + (size_t)o) * es;
        for (int64_t k = kcn * part / parts; k < kcn * (part + 1) / parts; k++) {
            const char *p = base + (size_t)(kc0 + k) * (size_t)R * es;
            _mm_prefetch(p, _MM_HINT_T1);
            _mm_prefetch(p + (size_t)mr * es - 1, _MM_HINT_T1);
        }
        return;
    }
    int64_t lines = (int64_t)(((size_t)kcn * es + 63) / 64), total = lines * mr;
    for (int64_t l = total * part / parts; l < total * (part + 1) / parts; l++) {
        const char *p = (const char *)W->data + (size_t)(n + l / lines) * row_bytes + (size_t)kc0 * es;
        _mm_prefetch(p + (l % lines) * 64, _MM_HINT_T1);
    }
#else
    (void)W, (void)n, (void)mr, (void)kc0, (void)kcn, (void)part, (void)parts;
#endif
}

static void kern_gemm(float *y, const float *x, int64_t T, const lm_mat *W, int64_t t0, int64_t t1, int64_t n0,
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
                    micro_any(mr, nt > VL ? 2 : 1, acc, wp, xk + s * KC * NT, kcn);
                    if (kc0 + KC >= K) tile_to_y(y, N, ts, nt, n, mr, acc);
                }
            }
        }
    }
    packed[0] = full ? t0 : -1;
    packed[1] = full ? t1 : -1;
}

/* ---- row kernels: 16 canonical lanes (element i in lane i mod 16) ---- */

/* lm_expf lane-wise: the same operations in the same order. */
static inline __attribute__((always_inline)) vf v_expf(vf x) {
    x = v_clamp(x, v_set1(LM_EXPF_LO), v_set1(LM_EXPF_HI));
    vf t = v_add(v_mul(x, v_set1(LM_EXPF_LOG2E)), v_set1(LM_EXPF_SHIFTER));
    vf n = v_sub(t, v_set1(LM_EXPF_SHIFTER));
    vf r = v_sub(x, v_mul(n, v_set1(LM_EXPF_LN2_HI)));
    r = v_sub(r, v_mul(n, v_set1(LM_EXPF_LN2_LO)));
    vf p = v_set1(LM_EXPF_C7);
    p = v_add(v_mul(p, r), v_set1(LM_EXPF_C6));
    p = v_add(v_mul(p, r), v_set1(LM_EXPF_C5));
    p = v_add(v_mul(p, r), v_set1(LM_EXPF_C4));
    p = v_add(v_mul(p, r), v_set1(LM_EXPF_C3));
    p = v_add(v_mul(p, r), v_set1(LM_EXPF_C2));
    p = v_add(v_mul(p, r), v_set1(1.0f));
    p = v_add(v_mul(p, r), v_set1(1.0f));
    return v_exp_scale(p, n, t);
}

/* rms = sum of x^2 in 16 lanes (x*x rounded, then added), tree; then
 * r = 1 / sqrtf(ss / n + eps); y = (x * r) * w. */
static void kern_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    vf s[NV16];
#pragma GCC unroll 16
    for (int v = 0; v < NV16; v++) s[v] = v_zero();
    for (int64_t i = 0; i < n; i += 16) {
#pragma GCC unroll 16
        for (int v = 0; v < NV16; v++) {
            int64_t at = i + v * VL;
            if (at >= n) break;
            vf a = n - at >= VL ? v_load(x + at) : v_loadn(x + at, n - at);
            s[v] = v_add(s[v], v_mul(a, a));
        }
    }
    float ss = v_sum16(s);
    vf rv = v_set1(1.0f / sqrtf(ss / (float)n + eps));
    for (int64_t i = 0; i < n; i += VL) {
        if (n - i >= VL) v_store(y + i, v_mul(v_mul(v_load(x + i), rv), v_load(w + i)));
        else v_storen(y + i, v_mul(v_mul(v_loadn(x + i, n - i), rv), v_loadn(w + i, n - i)), n - i);
    }
}

/* out = (g / (1 + exp(0 - g))) * u */
static void kern_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    const vf one = v_set1(1.0f);
    for (int64_t i = 0; i < n; i += VL) {
        int64_t m = n - i < VL ? n - i : VL;
        vf g = m == VL ? v_load(gate + i) : v_loadn(gate + i, m);
        vf u = m == VL ? v_load(up + i) : v_loadn(up + i, m);
        vf o = v_mul(v_div(g, v_add(one, v_expf(v_sub(v_zero(), g)))), u);
        if (m == VL) v_store(out + i, o);
        else v_storen(out + i, o, m);
    }
}

/* m = max (x > m ? x : m from -inf; exact, so any order gives it), e_i =
 * exp(x_i - m), sum of e in 16 lanes + tree, x_i = e_i * (1 / sum). */
static void kern_softmax(float *x, int64_t n) {
    vf mx[NV16];
#pragma GCC unroll 16
    for (int v = 0; v < NV16; v++) mx[v] = v_set1(-INFINITY);
    int64_t full = n / 16 * 16;
    for (int64_t i = 0; i < full; i += 16) {
#pragma GCC unroll 16
        for (int v = 0; v < NV16; v++) mx[v] = v_max(v_load(x + i + v * VL), mx[v]);
    }
    float m = v_max16(mx);
    for (int64_t i = full; i < n; i++) m = x[i] > m ? x[i] : m;
    vf mv = v_set1(m), s[NV16];
#pragma GCC unroll 16
    for (int v = 0; v < NV16; v++) s[v] = v_zero();
    for (int64_t i = 0; i < n; i += 16) {
#pragma GCC unroll 16
        for (int v = 0; v < NV16; v++) {
            int64_t at = i + v * VL;
            if (at >= n) break;
            if (n - at >= VL) {
                vf e = v_expf(v_sub(v_load(x + at), mv));
                v_store(x + at, e);
                s[v] = v_add(s[v], e);
            } else {
                vf e = v_keepn(v_expf(v_sub(v_loadn(x + at, n - at), mv)), n - at);
                v_storen(x + at, e, n - at);
                s[v] = v_add(s[v], e);
            }
        }
    }
    vf inv = v_set1(1.0f / v_sum16(s));
    for (int64_t i = 0; i < n; i += VL) {
        if (n - i >= VL) v_store(x + i, v_mul(v_load(x + i), inv));
        else v_storen(x + i, v_mul(v_loadn(x + i, n - i), inv), n - i);
    }
}

/* out = exp(x - shift): x - shift rounded, then lm_expf. */
static void kern_exp_shifted(float *out, const float *x, float shift, int64_t n) {
    vf sv = v_set1(shift);
    for (int64_t i = 0; i < n; i += VL) {
        if (n - i >= VL) v_store(out + i, v_expf(v_sub(v_load(x + i), sv)));
        else v_storen(out + i, v_expf(v_sub(v_loadn(x + i, n - i), sv)), n - i);
    }
}

/* out = 1 / (1 + exp(0 - x)) (lm_sigmoidf: -x and 0 - x differ only for x =
 * +-0, where exp gives 1 either way) */
static void kern_sigmoid(float *out, const float *x, int64_t n) {
    const vf one = v_set1(1.0f);
    for (int64_t i = 0; i < n; i += VL) {
        int64_t m = n - i < VL ? n - i : VL;
        vf g = m == VL ? v_load(x + i) : v_loadn(x + i, m);
        vf o = v_div(one, v_add(one, v_expf(v_sub(v_zero(), g))));
        if (m == VL) v_store(out + i, o);
        else v_storen(out + i, o, m);
    }
}

/* ---- nn: y[t, n] = sum over k of a[t, k] * b[k, n], b read in rows ----
 * Each output is the canonical chain acc = fma(a[t][k], b[k][n], acc) from
 * +0, k ascending: lm_matmul's bits for W = b^T, without transposing b. A
 * register tile is NN_MR rows by NN_NV vectors of columns: b's row segment
 * is loaded once per k and reused by every row of the tile; the last
 * columns (fewer than VL) load and store masked lanes, the same chain. */
#if VL == 16
#define NN_MR 6
#define NN_NV 4
#elif VL == 8
#define NN_MR 4
#define NN_NV 3
#else
#define NN_MR 4
#define NN_NV 4
#endif

static inline __attribute__((always_inline)) void nn_tile(const int mr, const int nv, float *y, int64_t ldy,
                                                          const float *a, int64_t lda, const float *b, int64_t ldb,
                                                          int64_t K, int64_t tail) {
    vf acc[NN_MR][NN_NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[i][v] = v_zero();
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        vf bv[NN_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) bv[v] = tail ? v_loadn(bk + v * VL, tail) : v_load(bk + v * VL);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            vf ai = v_set1(a[i * lda + k]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[i][v] = v_fma(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            if (tail) v_storen(y + i * ldy + v * VL, acc[i][v], tail);
            else v_store(y + i * ldy + v * VL, acc[i][v]);
        }
}

/* Rows [0, mr) by nv vectors of columns (tail: lanes of a last partial
 * vector instead, nv = 1). */
static inline __attribute__((always_inline)) void nn_block(const int mr, int64_t nv, float *y, int64_t ldy,
                                                           const float *a, int64_t lda, const float *b, int64_t ldb,
                                                           int64_t K, int64_t tail) {
    switch (nv) {
#if NN_NV > 3
    case 4: nn_tile(mr, 4, y, ldy, a, lda, b, ldb, K, 0); break;
#endif
#if NN_NV > 2
    case 3: nn_tile(mr, 3, y, ldy, a, lda, b, ldb, K, 0); break;
#endif
    case 2: nn_tile(mr, 2, y, ldy, a, lda, b, ldb, K, 0); break;
    default: nn_tile(mr, 1, y, ldy, a, lda, b, ldb, K, tail); break;
    }
}

/* Column strips outermost: every row tile reads the same [K, NN_NV*VL]
 * strip of b while it is still in cache (b is the long operand: a
 * sequence's cache rows). */
static void kern_nn(float *y, int64_t ldy, const float *a, int64_t lda, int64_t T, const float *b, int64_t ldb,
                    int64_t K, int64_t N) {
    int64_t nvec = N / VL;
    /* whole vectors NN_NV at a time, then the partial one (tail lanes) */
    for (int64_t v = 0; v < nvec || (v == nvec && N % VL); v = v < nvec && v + NN_NV > nvec ? nvec : v + NN_NV) {
        int64_t nv = v == nvec ? 1 : nvec - v < NN_NV ? nvec - v : NN_NV, tail = v == nvec ? N % VL : 0;
        float *yv = y + v * VL;
        const float *bv = b + v * VL;
        int64_t t = 0;
        for (; t + NN_MR <= T; t += NN_MR) nn_block(NN_MR, nv, yv + t * ldy, ldy, a + t * lda, lda, bv, ldb, K, tail);
        for (; t < T; t++) nn_block(1, nv, yv + t * ldy, ldy, a + t * lda, lda, bv, ldb, K, tail);
    }
}
#undef NN_MR
#undef NN_NV

const lm_kernel_table TABLE_NAME = {
    .matvec_max_t = MATVEC_MAX_T,
    .matvec = kern_matvec,
    .gemm = kern_gemm,
    .rmsnorm = kern_rmsnorm,
    .swiglu = kern_swiglu,
    .softmax = kern_softmax,
    .exp_shifted = kern_exp_shifted,
    .sigmoid = kern_sigmoid,
    .nn = kern_nn,
};

#endif
