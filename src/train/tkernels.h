/* tkernels.h — the numeric kernels of training: the two extra products of a
 * Linear's backward, and the forward/backward of the row operations
 * (RMSNorm, SwiGLU, interleaved RoPE, causal attention of one head, softmax
 * cross-entropy).
 *
 * Letters: N = tokens (rows), in = input features, out = output features.
 * A Linear's weight is W [out, in] (HF layout) and its forward is
 * y[N, out] = x[N, in] W^T (lm_matmul). Its backward is
 *   dx[N, in]   = dy[N, out] W          (lm_tk_linear_dx)
 *   dW[out, in] += dy^T x               (lm_tk_linear_dw, a sum over tokens)
 * Both are computed with lm_matmul on transposed copies, so they inherit its
 * speed and its determinism: every output value is computed by one thread
 * in an order that depends only on the shapes, never on the thread count.
 * The reduction over tokens in dW is therefore in a fixed order too.
 *
 * Workspace: the products need scratch of lm_tk_ws_floats(N, out, in)
 * floats, passed in by the caller (nothing here allocates). */
#ifndef LEMMA_TRAIN_TKERNELS_H
#define LEMMA_TRAIN_TKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"

/* Floats of workspace lm_tk_linear_dx / lm_tk_linear_dw need. */
int64_t lm_tk_ws_floats(int64_t N, int64_t out, int64_t in);

/* y[N, out] = x[N, in] @ W^T. */
void lm_tk_linear(lm_pool *pool, float *y, const float *x, int64_t N, const float *W, int64_t out, int64_t in);
/* dx[N, in] = dy[N, out] @ W, or dx += that when accumulate. With bf16,
 * the product is the bf16 pair chain of core/bf16gemm.h (dy and W rounded
 * to bf16 as they are read, fp32 accumulation, mixed precision, step.h),
 * W and dy read in place (no transposes, no workspace). */
void lm_tk_linear_dx(lm_pool *pool, float *dx, const float *dy, int64_t N, const float *W, int64_t out, int64_t in,
                     int accumulate, float *ws, int bf16);
/* dW[out, in] += dy[N, out]^T @ x[N, in]; with bf16, the pair chain over
 * the tokens, dy and x read in place. */
void lm_tk_linear_dw(lm_pool *pool, float *dW, const float *dy, const float *x, int64_t N, int64_t out, int64_t in,
                     float *ws, int bf16);
/* x[i] = x rounded to the nearest bf16 value (ties to even; NaN stays NaN),
 * i < n (threaded). */
void lm_tk_round_bf16(lm_pool *pool, float *x, int64_t n);

/* dst[cols, rows] = src[rows, cols]^T (threaded over dst rows). */
void lm_tk_transpose(lm_pool *pool, float *dst, const float *src, int64_t rows, int64_t cols);
/* y[i] += x[i], i < n (threaded). */
void lm_tk_add(lm_pool *pool, float *y, const float *x, int64_t n);

/* ---- RMSNorm: y = x * r * w, r = 1/sqrt(mean(x^2) + eps) ---- */

/* One row; returns r (computed in double, rounded). y may alias x. */
float lm_tk_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t n, float eps);
/* One row: dx = r (dy*w) - x r^3 mean(dy*w*x); dx += that when accumulate. */
void lm_tk_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, float r, int64_t n,
                       int accumulate);
/* dw[n] += sum over the N rows of dy * x * r (rows in order; threaded over n). */
void lm_tk_rmsnorm_dw(lm_pool *pool, float *dw, const float *dy, const float *x, const float *r, int64_t N,
                      int64_t n);

/* ---- SwiGLU: a = silu(h1) * h3 ---- */

void lm_tk_swiglu_fwd(float *a, const float *h1, const float *h3, int64_t n);
/* dh1 = da * h3 * silu'(h1), dh3 = da * silu(h1). */
void lm_tk_swiglu_bwd(float *dh1, float *dh3, const float *da, const float *h1, const float *h3, int64_t n);

/* ---- interleaved RoPE: pair i = (x[2i], x[2i+1]) rotated by (cos[i], sin[i]) ---- */

void lm_tk_rope_fwd(float *x, const float *cos_t, const float *sin_t, int64_t d);
/* The transpose of the rotation (x holds dy on entry, dx on return). */
void lm_tk_rope_bwd(float *x, const float *cos_t, const float *sin_t, int64_t d);

/* ---- causal attention of one head over one sequence ----
 * Q [T, dk], K [T, dk], V [T, dv] contiguous; row i attends to keys 0..i:
 * P = softmax(scale Q K^T + causal mask), O = P V. */

/* Floats of scratch the two attention kernels need. */
int64_t lm_tk_attn_scratch_floats(int64_t T, int64_t dk, int64_t dv);
/* O [T, dv] and lse [T] (log-sum-exp of each scaled score row). */
void lm_tk_attn_fwd(const float *Q, const float *K, const float *V, int64_t T, int64_t dk, int64_t dv, float scale,
                    float *O, float *lse, float *scratch);
/* From dO [T, dv] (with the forward's O and lse; P is recomputed):
 * dQ, dK [T, dk], dV [T, dv] (overwritten). */
void lm_tk_attn_bwd(const float *Q, const float *K, const float *V, const float *O, const float *dO, const float *lse,
                    int64_t T, int64_t dk, int64_t dv, float scale, float *dQ, float *dK, float *dV, float *scratch);

/* ---- softmax cross-entropy of one row ----
 * Returns -log softmax(logits)[target] (in double) and writes
 * dlogits = (softmax(logits) - onehot(target)) * scale (dlogits may be
 * logits). */
double lm_tk_xent(const float *logits, int64_t V, int32_t target, float scale, float *dlogits);
/* lm_tk_xent in two halves, for losses whose scale depends on the row's
 * log-probability (step.h, lm_train_accumulate_token_loss): the first
 * returns -log softmax(logits)[target] and leaves exp(logits - max) in e
 * (may be logits) and 1/sum in *inv; the second turns e into
 * (softmax - onehot) * scale. Together the same bits as lm_tk_xent. */
double lm_tk_xent_exp(const float *logits, int64_t V, int32_t target, float *e, float *inv);
void lm_tk_xent_grad(float *e, int64_t V, int32_t target, float inv, float scale);

#endif
