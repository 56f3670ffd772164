/* tvec.h — training's own vector kernels, one table per ISA (scalar, AVX2,
 * AVX-512), picked with lm_kernel_isa() like the forward kernels (so
 * LEMMA_ISA and lm_set_isa cap them too).
 *
 * Every path computes the same bits (docs/arithmetic.md): a product element
 * is one fma chain over k in increasing order starting from +0, exactly
 * lm_matmul's canonical chain, so the attention products below give the
 * bits they gave through lm_matmul; the AdamW update is per-element IEEE
 * operations in adamw.c's order. Internal to src/train. */
#ifndef LEMMA_TRAIN_TVEC_H
#define LEMMA_TRAIN_TVEC_H

#include <stdint.h>

/* The per-step constants of one AdamW update (adamw.c). */
typedef struct tv_adamw_k {
    float decay_mul, b1, b2, omb1, omb2, step_size, inv_bc2_sqrt, eps, gscale;
} tv_adamw_k;

typedef struct tv_table {
    /* C[m*ldc + n] = sum over k in [k0, k1) of A[m*sam + k*sak] * B[k*ldb + n]
     * for m < M, n < N: the chain acc = fma(A, B, acc) from acc = +0, k
     * ascending. A is read with any strides (so A^T is free); B's rows are
     * read contiguously. */
    void (*nn)(float *C, int64_t ldc, const float *A, int64_t sam, int64_t sak, const float *B, int64_t ldb,
               int64_t M, int64_t N, int64_t k0, int64_t k1);
    /* One chunk of AdamW: for i < n, w *= decay_mul when decay, then
     * gi = g*gscale; m = m*b1 + gi*omb1; v = v*b2 + gi*gi*omb2;
     * w -= step_size * (m / (sqrt(v)*inv_bc2_sqrt + eps)). */
    void (*adamw)(float *w, const float *g, float *m, float *v, int64_t n, const tv_adamw_k *k, int decay);
    /* x[i] = bf16 rounding of x[i] (nearest even, NaN stays NaN: exactly
     * lm_f32_to_bf16 then lm_bf16_to_f32), and the same into bf16 storage. */
    void (*round_bf16)(float *x, int64_t n);
    void (*to_bf16)(uint16_t *dst, const float *x, int64_t n);
} tv_table;

extern const tv_table tv_scalar, tv_avx2, tv_avx512;

/* The table for lm_kernel_isa(). */
const tv_table *tv_kernels(void);

#endif
