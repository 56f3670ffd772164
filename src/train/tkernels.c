/* tkernels.c — training kernels; see tkernels.h. Plain C: the big products
 * go through lm_matmul (SIMD, threaded), the rest is O(N*d) or the per-head
 * attention loops, written so the compiler can vectorise the inner loops. */
#include "train/tkernels.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <xmmintrin.h>
#endif

#include "core/bf16gemm.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "model/arch.h"
#include "core/mathfn.h"
#include "train/tvec.h"

/* ---- transposes and adds ---- */

typedef struct tr_job {
    float *dst;
    const float *src;
    int64_t rows, cols;
} tr_job;

/* 64 x 64 blocks; inside them 4 x 4 register transposes (SSE, part of the
 * x86-64 baseline), scalar at the edges. A pure copy: any split gives the
 * same bits. */
static void transpose_block(float *dst, const float *src, int64_t rows, int64_t cols, int64_t r0, int64_t r1,
                            int64_t c0, int64_t c1) {
    int64_t c = c0;
#ifdef __SSE2__
    /* four destination rows at a time, written left to right */
    for (; c + 4 <= c1; c += 4) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            __m128 a = _mm_loadu_ps(src + (r + 0) * cols + c), b = _mm_loadu_ps(src + (r + 1) * cols + c),
                   e = _mm_loadu_ps(src + (r + 2) * cols + c), f = _mm_loadu_ps(src + (r + 3) * cols + c);
            _MM_TRANSPOSE4_PS(a, b, e, f);
            _mm_storeu_ps(dst + (c + 0) * rows + r, a);
            _mm_storeu_ps(dst + (c + 1) * rows + r, b);
            _mm_storeu_ps(dst + (c + 2) * rows + r, e);
            _mm_storeu_ps(dst + (c + 3) * rows + r, f);
        }
        for (; r < r1; r++)
            for (int64_t i = 0; i < 4; i++) dst[(c + i) * rows + r] = src[r * cols + c + i];
    }
#endif
    for (; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) dst[c * rows + r] = src[r * cols + c];
}

static void transpose_task(void *ctx, int ith, int nth) {
    const tr_job *j = ctx;
    int64_t c0, c1;
    lm_split(j->cols, ith, nth, 64, &c0, &c1);
    for (int64_t rb = 0; rb < j->rows; rb += 64)
        for (int64_t cb = c0; cb < c1; cb += 64)
            transpose_block(j->dst, j->src, j->rows, j->cols, rb, rb + 64 < j->rows ? rb + 64 : j->rows, cb,
                            cb + 64 < c1 ? cb + 64 : c1);
}

void lm_tk_transpose(lm_pool *pool, float *dst, const float *src, int64_t rows, int64_t cols) {
    tr_job j = {dst, src, rows, cols};
    lm_pool_run(rows * cols < 65536 ? NULL : pool, transpose_task, &j);
}

typedef struct add_job {
    float *y;
    const float *x;
    int64_t n;
} add_job;

static void add_task(void *ctx, int ith, int nth) {
    const add_job *j = ctx;
    int64_t i0, i1;
    lm_split(j->n, ith, nth, 64, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) j->y[i] += j->x[i];
}

void lm_tk_add(lm_pool *pool, float *y, const float *x, int64_t n) {
    add_job j = {y, x, n};
    lm_pool_run(n < 65536 ? NULL : pool, add_task, &j);
}

/* ---- Linear ---- */

int64_t lm_tk_ws_floats(int64_t N, int64_t out, int64_t in) {
    int64_t dx = out * in + N * in + N * out; /* W^T, the accumulated product, bf16 dy */
    int64_t dw = N * out + N * in + out * in;
    return dx > dw ? dx : dw;
}

void lm_tk_linear(lm_pool *pool, float *y, const float *x, int64_t N, const float *W, int64_t out, int64_t in) {
    lm_mat m = lm_f32_mat(W, out, in);
    lm_matmul(pool, y, x, N, &m);
}

void lm_tk_linear_dx(lm_pool *pool, float *dx, const float *dy, int64_t N, const float *W, int64_t out, int64_t in,
                     int accumulate, float *ws, int bf16) {
    if (N <= 0) return;
    if (bf16) { /* dx(t, i) = the pair chain over o of dy(t, o) W(o, i), W read in place */
        lm_bf16_operand a = {dy, LM_DTYPE_F32, out, 1}, b = {W, LM_DTYPE_F32, 1, in};
        lm_bf16_gemm(pool, dx, in, N, in, out, &a, &b, accumulate);
        return;
    }
    float *wt = ws; /* W^T [in, out] */
    lm_tk_transpose(pool, wt, W, out, in);
    lm_mat m = lm_f32_mat(wt, in, out);
    float *tmp = ws + out * in; /* [N, in] */
    if (!accumulate) {
        lm_matmul(pool, dx, dy, N, &m);
        return;
    }
    lm_matmul(pool, tmp, dy, N, &m);
    lm_tk_add(pool, dx, tmp, N * in);
}

void lm_tk_linear_dw(lm_pool *pool, float *dW, const float *dy, const float *x, int64_t N, int64_t out, int64_t in,
                     float *ws, int bf16) {
    if (N <= 0) return;
    if (bf16) { /* dW(o, i) += the pair chain over t of dy(t, o) x(t, i), both read in place */
        lm_bf16_operand a = {dy, LM_DTYPE_F32, 1, out}, b = {x, LM_DTYPE_F32, 1, in};
        lm_bf16_gemm(pool, dW, in, out, in, N, &a, &b, 1);
        return;
    }
    float *dyt = ws;            /* [out, N] */
    float *xt = dyt + out * N;  /* [in, N] */
    float *tmp = xt + in * N;   /* [out, in] */
    lm_tk_transpose(pool, dyt, dy, N, out);
    lm_tk_transpose(pool, xt, x, N, in);
    lm_mat m = lm_f32_mat(xt, in, N);
    lm_matmul(pool, tmp, dyt, out, &m);
    lm_tk_add(pool, dW, tmp, out * in);
}

/* ---- bf16 rounding ---- */

typedef struct round_job {
    float *x;
    int64_t n;
} round_job;

static void round_task(void *ctx, int ith, int nth) {
    const round_job *j = ctx;
    int64_t i0, i1;
    lm_split(j->n, ith, nth, 64, &i0, &i1);
    tv_kernels()->round_bf16(j->x + i0, i1 - i0);
}

void lm_tk_round_bf16(lm_pool *pool, float *x, int64_t n) {
    round_job j = {x, n};
    lm_pool_run(n < 65536 ? NULL : pool, round_task, &j);
}

/* ---- RMSNorm ---- */

float lm_tk_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
    return r;
}

void lm_tk_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, float r, int64_t n,
                       int accumulate) {
    double dot = 0; /* sum of dy*w*x */
    for (int64_t i = 0; i < n; i++) dot += (double)dy[i] * w[i] * x[i];
    float c = (float)(dot * (double)r * r * r / (double)n);
    if (accumulate)
        for (int64_t i = 0; i < n; i++) dx[i] += r * dy[i] * w[i] - x[i] * c;
    else
        for (int64_t i = 0; i < n; i++) dx[i] = r * dy[i] * w[i] - x[i] * c;
}

typedef struct rmsdw_job {
    float *dw;
    const float *dy, *x, *r;
    int64_t N, n;
} rmsdw_job;

static void rmsnorm_dw_task(void *ctx, int ith, int nth) {
    const rmsdw_job *j = ctx;
    int64_t i0, i1;
    lm_split(j->n, ith, nth, 16, &i0, &i1);
    if (i0 >= i1) return;
    float acc[64];
    for (int64_t b = i0; b < i1; b += 64) {
        int64_t e = b + 64 < i1 ? b + 64 : i1;
        for (int64_t i = b; i < e; i++) acc[i - b] = 0;
        for (int64_t t = 0; t < j->N; t++) {
            const float *dy = j->dy + t * j->n, *x = j->x + t * j->n;
            float r = j->r[t];
            for (int64_t i = b; i < e; i++) acc[i - b] += dy[i] * x[i] * r;
        }
        for (int64_t i = b; i < e; i++) j->dw[i] += acc[i - b];
    }
}

void lm_tk_rmsnorm_dw(lm_pool *pool, float *dw, const float *dy, const float *x, const float *r, int64_t N,
                      int64_t n) {
    rmsdw_job j = {dw, dy, x, r, N, n};
    lm_pool_run(N * n < 65536 ? NULL : pool, rmsnorm_dw_task, &j);
}

/* ---- SwiGLU ---- */

/* (g / (1 + exp(-g))) * up: lm_swiglu's definition (docs/arithmetic.md), vectorised. */
void lm_tk_swiglu_fwd(float *a, const float *h1, const float *h3, int64_t n) { lm_swiglu(a, h1, h3, n); }

void lm_tk_swiglu_bwd(float *dh1, float *dh3, const float *da, const float *h1, const float *h3, int64_t n) {
    float sig[256]; /* sigmoid(g) for a chunk, vectorised (lm_sigmoid) */
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        int64_t m = n - i0 < 256 ? n - i0 : 256;
        lm_sigmoid(sig, h1 + i0, m);
        for (int64_t j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float g = h1[i], s = sig[j], d = da[i];
            dh3[i] = d * g * s;
            dh1[i] = d * h3[i] * s * (1.0f + g * (1.0f - s));
        }
    }
}

/* ---- RoPE ---- */

void lm_tk_rope_fwd(float *x, const float *cos_t, const float *sin_t, int64_t d) {
    for (int64_t i = 0; i < d / 2; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_t[i], s = sin_t[i];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

void lm_tk_rope_bwd(float *x, const float *cos_t, const float *sin_t, int64_t d) {
    for (int64_t i = 0; i < d / 2; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_t[i], s = sin_t[i];
        x[2 * i] = a * c + b * s;
        x[2 * i + 1] = b * c - a * s;
    }
}

/* ---- attention of one head ----
 * The six products are tvec.h's nn kernel (register tiles over rows of the
 * result, single-threaded: the caller gives each thread whole heads), in
 * row groups of G queries or keys over the causal triangle: query group
 * [g0, g1) needs keys [0, g1) only, key group [j0, j1) gets gradient from
 * queries [j0, T) only. Inside a group the entries past the diagonal are
 * exactly 0. Every element is the chain lm_matmul computed before (same
 * order over k; the chains differ only by terms 0 * x, which add nothing),
 * so the bits are those of the earlier lm_matmul form. K and V are
 * transposed once per call, not once per block. */

enum { G = 16 };

int64_t lm_tk_attn_scratch_floats(int64_t T, int64_t dk, int64_t dv) { return 2 * T * T + T * (dk + dv); }

/* dst[cols, rows] = src[rows, cols]^T, single-threaded. */
static void transpose1(float *dst, const float *src, int64_t rows, int64_t cols) {
    tr_job j = {dst, src, rows, cols};
    transpose_task(&j, 0, 1);
}

void lm_tk_attn_fwd(const float *Q, const float *K, const float *V, int64_t T, int64_t dk, int64_t dv, float scale,
                    float *O, float *lse, float *scratch) {
    const tv_table *tv = tv_kernels();
    float *S = scratch, *KT = scratch + 2 * T * T; /* S [G, T] rows of the group, KT [dk, T] */
    transpose1(KT, K, T, dk);
    for (int64_t g0 = 0; g0 < T; g0 += G) {
        int64_t g1 = g0 + G < T ? g0 + G : T, nb = g1 - g0;
        tv->nn(S, T, Q + g0 * dk, dk, 1, KT, T, nb, g1, 0, dk); /* scores [nb, g1] */
        for (int64_t i = g0; i < g1; i++) {
            float *s = S + (i - g0) * T;
            int64_t n = i + 1;
            float m = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                s[j] *= scale;
                if (s[j] > m) m = s[j];
            }
            double sum = 0;
            lm_exp_shifted(s, s, m, n);
            for (int64_t j = 0; j < n; j++) sum += s[j];
            float inv = (float)(1.0 / sum);
            lse[i] = m + (float)lm_log(sum);
            for (int64_t j = 0; j < n; j++) s[j] *= inv;
            for (int64_t j = n; j < g1; j++) s[j] = 0.0f;
        }
        tv->nn(O + g0 * dv, dv, S, T, 1, V, dv, nb, dv, 0, g1); /* O = P V */
    }
}

void lm_tk_attn_bwd(const float *Q, const float *K, const float *V, const float *O, const float *dO, const float *lse,
                    int64_t T, int64_t dk, int64_t dv, float scale, float *dQ, float *dK, float *dV, float *scratch) {
    const tv_table *tv = tv_kernels();
    /* P and dS [T, T]: row i holds keys 0..i, then zeros up to the end of
     * its group; KT [dk, T] and VT [dv, T]. */
    float *P = scratch, *dS = scratch + T * T, *KT = scratch + 2 * T * T, *VT = KT + T * dk;
    transpose1(KT, K, T, dk);
    transpose1(VT, V, T, dv);
    for (int64_t g0 = 0; g0 < T; g0 += G) {
        int64_t g1 = g0 + G < T ? g0 + G : T, nb = g1 - g0;
        float *pb = P + g0 * T, *db = dS + g0 * T;
        tv->nn(pb, T, Q + g0 * dk, dk, 1, KT, T, nb, g1, 0, dk);  /* scores */
        tv->nn(db, T, dO + g0 * dv, dv, 1, VT, T, nb, g1, 0, dv); /* dP */
        for (int64_t i = g0; i < g1; i++) {
            float *p = P + i * T, *ds = dS + i * T;
            const float *o = O + i * dv, *dorow = dO + i * dv;
            float Di = 0, li = lse[i];
            for (int64_t d = 0; d < dv; d++) Di += dorow[d] * o[d];
            for (int64_t j = 0; j <= i; j++) p[j] *= scale;
            lm_exp_shifted(p, p, li, i + 1); /* exp(p * scale - li) */
            for (int64_t j = 0; j <= i; j++) ds[j] = p[j] * (ds[j] - Di) * scale;
            for (int64_t j = i + 1; j < g1; j++) p[j] = ds[j] = 0.0f;
        }
        tv->nn(dQ + g0 * dk, dk, db, T, 1, K, dk, nb, dk, 0, g1); /* dQ = dS K */
    }
    /* Key groups: dV[j0:j1] = P[j0:T, j0:j1]^T dO[j0:T], dK likewise with dS
     * and Q (A read transposed: element (j, i) at P[i*T + j]). */
    for (int64_t j0 = 0; j0 < T; j0 += G) {
        int64_t j1 = j0 + G < T ? j0 + G : T, nb = j1 - j0;
        tv->nn(dV + j0 * dv, dv, P + j0, 1, T, dO, dv, nb, dv, j0, T);
        tv->nn(dK + j0 * dk, dk, dS + j0, 1, T, Q, dk, nb, dk, j0, T);
    }
}

/* ---- cross-entropy ---- */

double lm_tk_xent_exp(const float *logits, int64_t V, int32_t target, float *e, float *inv) {
    const float lt = logits[target]; /* e may alias logits */
    float m = logits[0];
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > m) m = logits[i];
    double sum = 0;
    lm_exp_shifted(e, logits, m, V);
    for (int64_t i = 0; i < V; i++) sum += e[i];
    *inv = (float)(1.0 / sum);
    return (double)m + lm_log(sum) - (double)lt;
}

void lm_tk_xent_grad(float *e, int64_t V, int32_t target, float inv, float scale) {
    for (int64_t i = 0; i < V; i++) e[i] = e[i] * inv * scale;
    e[target] -= scale;
}

double lm_tk_xent(const float *logits, int64_t V, int32_t target, float scale, float *dlogits) {
    float inv;
    double nll = lm_tk_xent_exp(logits, V, target, dlogits, &inv);
    lm_tk_xent_grad(dlogits, V, target, inv, scale);
    return nll;
}
