/* test_tvec.c — training's vector kernels (src/train/tvec.h) and the
 * attention built on them:
 *  - nn: every ISA path against a plain fmaf chain, bit for bit, over
 *    shapes with ragged row tiles and column tails, strided (transposed) A
 *    and a k range; and against lm_matmul's canonical chain (C = X W^T with
 *    B = W^T);
 *  - adamw: every path against the scalar expression of adamw.c, bit for
 *    bit, with and without decay, with a ragged tail;
 *  - bf16 rounding (in place and into bf16 storage): every path against
 *    lm_f32_to_bf16 on every class of bit pattern (NaN, inf, ties, subnormals);
 *  - attention forward and backward: the same bits on every path, and the
 *    same bits as the earlier form built from lm_matmul on causal blocks of
 *    64 (kept here as the reference), so the change kept training's bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/mathfn.h"
#include "model/arch.h"
#include "test.h"
#include "train/tkernels.h"
#include "train/tvec.h"

static int isa_list(lm_isa *out) {
    int n = 0;
    for (int i = LM_ISA_SCALAR; i <= (int)lm_cpu_isa(); i++) out[n++] = (lm_isa)i;
    return n;
}

static const tv_table *table_of(lm_isa isa) {
    return isa == LM_ISA_AVX512 ? &tv_avx512 : isa == LM_ISA_AVX2 ? &tv_avx2 : &tv_scalar;
}

/* Deterministic values in [-a, a] with some exact zeros and small values. */
static void fill(float *x, int64_t n, float a, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)((s >> 8) & 0xffffff) / 16777216.0f;
        x[i] = (u * 2.0f - 1.0f) * a;
        if ((s >> 3) % 23 == 0) x[i] = 0.0f;
        if ((s >> 5) % 31 == 0) x[i] *= 1e-20f;
    }
}

TEST(nn_paths_match_fma_chain) {
    lm_isa isas[3];
    int ni = isa_list(isas);
    const int shapes[][5] = {/* M, N, K, k0, transposedA */
                             {1, 1, 1, 0, 0},  {7, 16, 5, 0, 0},  {13, 70, 33, 4, 0}, {6, 64, 96, 0, 0},
                             {17, 150, 64, 0, 1}, {5, 3, 9, 2, 1}, {24, 96, 150, 100, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], k0 = shapes[si][3], tA = shapes[si][4];
        int64_t sam = tA ? 1 : K, sak = tA ? M : 1, ldb = N + 3, ldc = N + 1;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * ldb);
        float *ref = malloc(sizeof(float) * M * ldc), *C = malloc(sizeof(float) * M * ldc);
        fill(A, M * K, 1.5f, 1 + si);
        fill(B, K * ldb, 2.0f, 100 + si);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float acc = 0.0f;
                for (int k = k0; k < K; k++) acc = fmaf(A[m * sam + k * sak], B[k * ldb + n], acc);
                ref[m * ldc + n] = acc;
            }
        for (int ii = 0; ii < ni; ii++) {
            for (int64_t i = 0; i < M * ldc; i++) C[i] = ref[i];
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) C[m * ldc + n] = NAN;
            table_of(isas[ii])->nn(C, ldc, A, sam, sak, B, ldb, M, N, k0, K);
            CHECKF(memcmp(C, ref, sizeof(float) * M * ldc) == 0, "%s, M %d N %d K %d k0 %d", lm_isa_name(isas[ii]),
                   M, N, K, k0);
        }
        free(A), free(B), free(ref), free(C);
    }
}

TEST(nn_is_matmul_chain) {
    enum { T = 37, Kd = 96, Nn = 80 };
    float *X = malloc(sizeof(float) * T * Kd), *W = malloc(sizeof(float) * Nn * Kd), *WT = malloc(sizeof(float) * Kd * Nn);
    float *y = malloc(sizeof(float) * T * Nn), *c = malloc(sizeof(float) * T * Nn);
    fill(X, T * Kd, 1.0f, 7);
    fill(W, Nn * Kd, 0.5f, 8);
    for (int n = 0; n < Nn; n++)
        for (int k = 0; k < Kd; k++) WT[k * Nn + n] = W[n * Kd + k];
    lm_mat m = lm_f32_mat(W, Nn, Kd);
    for (int path = 1; path <= 2; path++) {
        int old = lm_matmul_force_path(path);
        lm_matmul(NULL, y, X, T, &m);
        lm_matmul_force_path(old);
        tv_kernels()->nn(c, Nn, X, Kd, 1, WT, Nn, T, Nn, 0, Kd);
        CHECKF(memcmp(y, c, sizeof(float) * T * Nn) == 0, "path %d", path);
    }
    free(X), free(W), free(WT), free(y), free(c);
}

TEST(adamw_paths_match_scalar) {
    lm_isa isas[3];
    int ni = isa_list(isas);
    enum { N = 16 * 9 + 7 };
    tv_adamw_k k = {0.9999f, 0.9f, 0.95f, 0.1f, 0.05f, 3e-4f, 1.0f / sqrtf(0.0975f), 1e-8f, 0.73f};
    float w0[N], g[N], m0[N], v0[N];
    fill(w0, N, 0.1f, 21);
    fill(g, N, 0.01f, 22);
    fill(m0, N, 0.003f, 23);
    fill(v0, N, 1e-5f, 24);
    for (int i = 0; i < N; i++) v0[i] = fabsf(v0[i]);
    for (int decay = 0; decay < 2; decay++) {
        float rw[N], rm[N], rv[N];
        for (int i = 0; i < N; i++) { /* adamw.c's order: decay, then the update */
            float w = decay ? w0[i] * k.decay_mul : w0[i];
            float gi = g[i] * k.gscale;
            rm[i] = m0[i] * k.b1 + gi * k.omb1;
            rv[i] = v0[i] * k.b2 + gi * gi * k.omb2;
            float denom = sqrtf(rv[i]) * k.inv_bc2_sqrt + k.eps;
            rw[i] = w - k.step_size * (rm[i] / denom);
        }
        for (int ii = 0; ii < ni; ii++) {
            float w[N], m[N], v[N];
            memcpy(w, w0, sizeof w), memcpy(m, m0, sizeof m), memcpy(v, v0, sizeof v);
            table_of(isas[ii])->adamw(w, g, m, v, N, &k, decay);
            CHECKF(!memcmp(w, rw, sizeof w) && !memcmp(m, rm, sizeof m) && !memcmp(v, rv, sizeof v), "%s decay %d",
                   lm_isa_name(isas[ii]), decay);
        }
    }
}

TEST(bf16_rounding_paths_match_scalar) {
    lm_isa isas[3];
    int ni = isa_list(isas);
    enum { N = 4096 + 13 };
    static float x[N], r[N], ref[N];
    static uint16_t h[N], href[N];
    uint32_t s = 99;
    for (int i = 0; i < N; i++) { /* every bit pattern class: NaNs, infs, subnormals, ties */
        s = s * 1664525u + 1013904223u;
        uint32_t u = s;
        if (i % 5 == 0) u = (u & 0xffff0000u) | 0x8000u;        /* exact tie */
        if (i % 7 == 0) u |= 0x7f800000u;                       /* inf or NaN exponent */
        if (i % 11 == 0) u &= 0x807fffffu;                      /* zero exponent: subnormal */
        memcpy(&x[i], &u, 4);
        href[i] = lm_f32_to_bf16(x[i]);
        ref[i] = lm_bf16_to_f32(href[i]);
    }
    for (int ii = 0; ii < ni; ii++) {
        memcpy(r, x, sizeof r);
        table_of(isas[ii])->round_bf16(r, N);
        table_of(isas[ii])->to_bf16(h, x, N);
        CHECKF(!memcmp(r, ref, sizeof r) && !memcmp(h, href, sizeof h), "%s", lm_isa_name(isas[ii]));
    }
}

/* ---- the earlier attention (lm_matmul on causal blocks of 64), the reference ---- */

enum { AB = 64 };

static void transpose_ref(float *dst, const float *src, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

static void ref_attn_fwd(const float *Q, const float *K, const float *V, int64_t T, int64_t dk, int64_t dv,
                         float scale, float *O, float *lse) {
    float *S = malloc(sizeof(float) * AB * T), *VT = malloc(sizeof(float) * dv * T);
    for (int64_t i0 = 0; i0 < T; i0 += AB) {
        int64_t i1 = i0 + AB < T ? i0 + AB : T, nb = i1 - i0;
        lm_mat km = lm_f32_mat(K, i1, dk);
        lm_matmul(NULL, S, Q + i0 * dk, nb, &km);
        for (int64_t i = i0; i < i1; i++) {
            float *s = S + (i - i0) * i1;
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
            for (int64_t j = n; j < i1; j++) s[j] = 0.0f;
        }
        transpose_ref(VT, V, i1, dv);
        lm_mat vt = lm_f32_mat(VT, dv, i1);
        lm_matmul(NULL, O + i0 * dv, S, nb, &vt);
    }
    free(S), free(VT);
}

static void ref_attn_bwd(const float *Q, const float *K, const float *V, const float *O, const float *dO,
                         const float *lse, int64_t T, int64_t dk, int64_t dv, float scale, float *dQ, float *dK,
                         float *dV) {
    int64_t dm = dk > dv ? dk : dv;
    float *P = malloc(sizeof(float) * T * T), *dS = malloc(sizeof(float) * T * T), *X = malloc(sizeof(float) * AB * T),
          *Y = malloc(sizeof(float) * dm * T);
    for (int64_t i0 = 0; i0 < T; i0 += AB) {
        int64_t i1 = i0 + AB < T ? i0 + AB : T, nb = i1 - i0;
        float *pb = P + i0 * T, *db = dS + i0 * T;
        lm_mat km = lm_f32_mat(K, i1, dk), vm = lm_f32_mat(V, i1, dv);
        lm_matmul(NULL, pb, Q + i0 * dk, nb, &km);
        lm_matmul(NULL, db, dO + i0 * dv, nb, &vm);
        for (int64_t i = i0; i < i1; i++) {
            float *p = pb + (i - i0) * i1, *ds = db + (i - i0) * i1;
            const float *o = O + i * dv, *dorow = dO + i * dv;
            float Di = 0, li = lse[i];
            for (int64_t d = 0; d < dv; d++) Di += dorow[d] * o[d];
            for (int64_t j = 0; j <= i; j++) p[j] *= scale;
            lm_exp_shifted(p, p, li, i + 1);
            for (int64_t j = 0; j <= i; j++) ds[j] = p[j] * (ds[j] - Di) * scale;
            for (int64_t j = i + 1; j < i1; j++) p[j] = ds[j] = 0.0f;
        }
        transpose_ref(Y, K, i1, dk);
        lm_mat kt = lm_f32_mat(Y, dk, i1);
        lm_matmul(NULL, dQ + i0 * dk, db, nb, &kt);
    }
    for (int64_t j0 = 0; j0 < T; j0 += AB) {
        int64_t j1 = j0 + AB < T ? j0 + AB : T, nb = j1 - j0, m = T - j0;
        for (int pass = 0; pass < 2; pass++) {
            const float *M = pass ? dS : P, *R = pass ? Q : dO;
            int64_t d = pass ? dk : dv;
            for (int64_t i = j0; i < T; i++) {
                int64_t bi0 = i / AB * AB, bi1 = bi0 + AB < T ? bi0 + AB : T;
                const float *row = M + bi0 * T + (i - bi0) * bi1;
                for (int64_t j = j0; j < j1; j++) X[(j - j0) * m + (i - j0)] = j < bi1 ? row[j] : 0.0f;
            }
            transpose_ref(Y, R + j0 * d, m, d);
            lm_mat rt = lm_f32_mat(Y, d, m);
            lm_matmul(NULL, (pass ? dK : dV) + j0 * d, X, nb, &rt);
        }
    }
    free(P), free(dS), free(X), free(Y);
}

static void attention_bits_case(int64_t T, int64_t dk, int64_t dv) {
    lm_isa isas[3];
    int ni = isa_list(isas);
    const float scale = 0.3f;
    size_t fk = sizeof(float) * T * dk, fv = sizeof(float) * T * dv;
    float *Q = malloc(fk), *K = malloc(fk), *V = malloc(fv), *dO = malloc(fv);
    fill(Q, T * dk, 2.0f, 31);
    fill(K, T * dk, 2.0f, 32);
    fill(V, T * dv, 1.0f, 33);
    fill(dO, T * dv, 1.0f, 34);
    float *rO = malloc(fv), *rl = malloc(sizeof(float) * T), *rdQ = malloc(fk), *rdK = malloc(fk), *rdV = malloc(fv);
    float *O = malloc(fv), *l = malloc(sizeof(float) * T), *dQ = malloc(fk), *dK = malloc(fk), *dV = malloc(fv);
    float *scratch = malloc(sizeof(float) * lm_tk_attn_scratch_floats(T, dk, dv));
    ref_attn_fwd(Q, K, V, T, dk, dv, scale, rO, rl);
    ref_attn_bwd(Q, K, V, rO, dO, rl, T, dk, dv, scale, rdQ, rdK, rdV);
    lm_isa old = lm_kernel_isa();
    for (int ii = 0; ii < ni; ii++) {
        lm_set_isa(isas[ii]);
        lm_tk_attn_fwd(Q, K, V, T, dk, dv, scale, O, l, scratch);
        lm_tk_attn_bwd(Q, K, V, O, dO, l, T, dk, dv, scale, dQ, dK, dV, scratch);
        CHECKF(!memcmp(O, rO, fv) && !memcmp(l, rl, sizeof(float) * T), "forward, %s, T %lld",
               lm_isa_name(isas[ii]), (long long)T);
        CHECKF(!memcmp(dQ, rdQ, fk) && !memcmp(dK, rdK, fk) && !memcmp(dV, rdV, fv), "backward, %s, T %lld",
               lm_isa_name(isas[ii]), (long long)T);
    }
    lm_set_isa(old);
    free(Q), free(K), free(V), free(dO), free(rO), free(rl), free(rdQ), free(rdK), free(rdV);
    free(O), free(l), free(dQ), free(dK), free(dV), free(scratch);
}

TEST(attention_same_bits_as_matmul_form) {
    attention_bits_case(9, 6, 5);     /* one group, column tails on every path */
    attention_bits_case(150, 96, 64); /* bench-m's head dims, ragged last group and block */
    attention_bits_case(70, 24, 40);
}

int main(void) {
    RUN(nn_paths_match_fma_chain);
    RUN(nn_is_matmul_chain);
    RUN(adamw_paths_match_scalar);
    RUN(bf16_rounding_paths_match_scalar);
    RUN(attention_same_bits_as_matmul_form);
    return test_report("test_tvec");
}
