/* tvec_simd.h — the training vector kernels (tvec.h) written once over a
 * small vector layer, included by tvec_avx512.c, tvec_avx2.c and
 * tvec_scalar.c after each defines:
 *   VL, vf, TV_MR, TV_NV   lanes; the vector type; the register tile of nn
 *                          (TV_MR rows of C by TV_NV vectors of columns)
 *   t_zero t_set1 t_load t_store t_add t_sub t_mul t_div t_sqrt t_fma
 *                          one IEEE operation per lane (t_fma rounds once)
 *   t_round_bf16           each lane rounded to bf16 (lm_f32_to_bf16), as f32
 *   TV_STORE_BF16(p, v)    optional: store the high halves of v's lanes
 *   TV_TABLE               the table's name
 * Each lane does exactly what the scalar code does, so every path gives
 * the same bits. */
#ifndef LEMMA_TRAIN_TVEC_SIMD_H
#define LEMMA_TRAIN_TVEC_SIMD_H

#include <math.h>
#include <stdint.h>

#include "core/dtype.h"
#include "train/tvec.h"

#define TAI static inline __attribute__((always_inline))

/* ---- nn: C = A B over k in [k0, k1) ---- */

/* A register tile: mr rows of C by nv vectors of columns, each lane one
 * chain over k; B's row is loaded once per k and reused by the mr rows. */
TAI void nn_tile(const int mr, const int nv, float *C, int64_t ldc, const float *A, int64_t sam, int64_t sak,
                 const float *B, int64_t ldb, int64_t k0, int64_t k1) {
    vf acc[TV_MR][TV_NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[i][v] = t_zero();
    for (int64_t k = k0; k < k1; k++) {
        const float *b = B + k * ldb, *a = A + k * sak;
        vf bv[TV_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) bv[v] = t_load(b + v * VL);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            vf ai = t_set1(a[i * sam]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[i][v] = t_fma(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) t_store(C + i * ldc + v * VL, acc[i][v]);
}

/* Rows [m0, m0+mr) over whole vector columns [n0, n0 + nv*VL). */
TAI void nn_rows(const int mr, float *C, int64_t ldc, const float *A, int64_t sam, int64_t sak, const float *B,
                 int64_t ldb, int64_t nvec, int64_t k0, int64_t k1) {
    int64_t v = 0;
    for (; v + TV_NV <= nvec; v += TV_NV)
        nn_tile(mr, TV_NV, C + v * VL, ldc, A, sam, sak, B + v * VL, ldb, k0, k1);
    switch (nvec - v) {
#if TV_NV > 3
    case 3: nn_tile(mr, 3, C + v * VL, ldc, A, sam, sak, B + v * VL, ldb, k0, k1); break;
#endif
#if TV_NV > 2
    case 2: nn_tile(mr, 2, C + v * VL, ldc, A, sam, sak, B + v * VL, ldb, k0, k1); break;
#endif
#if TV_NV > 1
    case 1: nn_tile(mr, 1, C + v * VL, ldc, A, sam, sak, B + v * VL, ldb, k0, k1); break;
#endif
    default: break;
    }
}

static void nn(float *C, int64_t ldc, const float *A, int64_t sam, int64_t sak, const float *B, int64_t ldb,
               int64_t M, int64_t N, int64_t k0, int64_t k1) {
    int64_t nvec = N / VL, m = 0;
    for (; m + TV_MR <= M; m += TV_MR)
        nn_rows(TV_MR, C + m * ldc, ldc, A + m * sam, sam, sak, B, ldb, nvec, k0, k1);
    for (; m < M; m++) nn_rows(1, C + m * ldc, ldc, A + m * sam, sam, sak, B, ldb, nvec, k0, k1);
    /* columns past the last whole vector: the same chain, one lane at a time */
    for (int64_t n = nvec * VL; n < N; n++)
        for (int64_t r = 0; r < M; r++) {
            float acc = 0.0f;
            for (int64_t k = k0; k < k1; k++) acc = fmaf(A[r * sam + k * sak], B[k * ldb + n], acc);
            C[r * ldc + n] = acc;
        }
}

/* ---- AdamW ---- */

TAI vf adamw_lane(vf w, vf g, vf *m, vf *v, const tv_adamw_k *c, int decay) {
    if (decay) w = t_mul(w, t_set1(c->decay_mul));
    vf gi = t_mul(g, t_set1(c->gscale));
    vf mi = t_add(t_mul(*m, t_set1(c->b1)), t_mul(gi, t_set1(c->omb1)));
    vf vi = t_add(t_mul(*v, t_set1(c->b2)), t_mul(t_mul(gi, gi), t_set1(c->omb2)));
    vf denom = t_add(t_mul(t_sqrt(vi), t_set1(c->inv_bc2_sqrt)), t_set1(c->eps));
    *m = mi;
    *v = vi;
    return t_sub(w, t_mul(t_set1(c->step_size), t_div(mi, denom)));
}

static void adamw(float *w, const float *g, float *m, float *v, int64_t n, const tv_adamw_k *c, int decay) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf mi = t_load(m + i), vi = t_load(v + i);
        vf wi = adamw_lane(t_load(w + i), t_load(g + i), &mi, &vi, c, decay);
        t_store(m + i, mi);
        t_store(v + i, vi);
        t_store(w + i, wi);
    }
    for (; i < n; i++) { /* the same operations on single floats */
        float wi = decay ? w[i] * c->decay_mul : w[i];
        float gi = g[i] * c->gscale;
        m[i] = m[i] * c->b1 + gi * c->omb1;
        v[i] = v[i] * c->b2 + gi * gi * c->omb2;
        float denom = sqrtf(v[i]) * c->inv_bc2_sqrt + c->eps;
        w[i] = wi - c->step_size * (m[i] / denom);
    }
}

/* ---- bf16 rounding (t_round_bf16: the lanes of lm_f32_to_bf16) ---- */

static void round_bf16(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) t_store(x + i, t_round_bf16(t_load(x + i)));
    for (; i < n; i++) x[i] = lm_bf16_to_f32(lm_f32_to_bf16(x[i]));
}

static void to_bf16(uint16_t *dst, const float *x, int64_t n) {
    int64_t i = 0;
#ifdef TV_STORE_BF16
    for (; i + VL <= n; i += VL) TV_STORE_BF16(dst + i, t_round_bf16(t_load(x + i)));
#endif
    for (; i < n; i++) dst[i] = lm_f32_to_bf16(x[i]);
}

const tv_table TV_TABLE = {nn, adamw, round_bf16, to_bf16};

#undef TAI
#endif
