/* indexer.c — DeepSeek-V3.2's lightning indexer and its FP8 rounding; see
 * indexer.h. "conv. N" = docs/deepseek-conventions.md item N. */
#include "model/indexer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/mathfn.h"

/* ---- FP8 ---- */

enum { FP8_QBLOCK = 128 };       /* act_quant's block along the last dimension */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lm_fp8_act_scale(float amax, int ue8m0) {
    if (!(amax >= 1e-4f)) amax = 1e-4f; /* also a NaN amax: the kernel's max(amax, 1e-4) */
    float v = amax * (1.0f / 448.0f);
    if (!ue8m0) return v;
    /* 2^ceil(log2 v) from the bits, as the reference's fast_round_scale:
     * v is a normal number here (>= 1e-4 / 448). */
    uint32_t u = f32_bits(v);
    int32_t e = (int32_t)((u >> 23) & 255) - 127 + ((u & 0x7fffffu) != 0);
    return f32_from_bits((uint32_t)(e + 127) << 23);
}

float lm_fp8_act_quant(const float *x, int64_t n, int ue8m0, uint8_t *codes) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    float s = lm_fp8_act_scale(amax, ue8m0);
    for (int64_t i = 0; i < n; i++) {
        float y = x[i] / s;
        if (y < -448.0f) y = -448.0f;
        if (y > 448.0f) y = 448.0f;
        codes[i] = lm_f32_to_fp8e4m3(y); /* round to nearest even */
    }
    return s;
}

void lm_fp8_round_blocks(float *x, int64_t n, int ue8m0) {
    uint8_t codes[FP8_QBLOCK];
    for (int64_t b = 0; b < n; b += FP8_QBLOCK) {
        int64_t m = n - b < FP8_QBLOCK ? n - b : FP8_QBLOCK;
        float s = lm_fp8_act_quant(x + b, m, ue8m0, codes);
        for (int64_t i = 0; i < m; i++) x[b + i] = lm_fp8e4m3_to_f32(codes[i]) * s;
    }
}

/* ---- transforms ---- */

void lm_hadamard(float *x, int64_t n) {
    for (int64_t h = 1; h < n; h *= 2)
        for (int64_t i = 0; i < n; i += 2 * h)
            for (int64_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    float scale = (float)(1.0 / sqrt((double)n));
    for (int64_t i = 0; i < n; i++) x[i] *= scale;
}

void lm_rope_neox(float *x, const float *cos_t, const float *sin_t, int64_t half) {
    for (int64_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + half] = a * sin_t[i] + b * cos_t[i];
    }
}

void lm_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    /* Mean and variance in double: n is small (di), and the reference's
     * fp32 reduction order is unspecified anyway. */
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= (double)n;
    float m = (float)mean, r = (float)(1.0 / sqrt(var + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) * r * w[i] + b[i];
}

void lm_indexer_rope_tables(const lm_config *c, const double *inv_freq, int64_t pos0, int64_t T, float *cos_t,
                            float *sin_t) {
    int64_t half = c->qk_rope_head_dim / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            double a = (double)(pos0 + t) * inv_freq[i];
            cos_t[t * half + i] = (float)lm_cos(a);
            sin_t[t * half + i] = (float)lm_sin(a);
        }
}

/* ---- projection ---- */

int64_t lm_indexer_key_floats(const lm_config *c) {
    if (!lm_config_has_indexer(c)) return 0;
    int64_t di = c->index_head_dim;
    return lm_config_fp8_emulated(c) ? (di + 3) / 4 + 1 : di;
}

/* Rope, Hadamard and (FP8 on) quantisation of one indexer vector of di:
 * x becomes the e4m3 values, codes (when asked) their bytes; returns the
 * scale (1 with FP8 off). */
static float finish_vector(const lm_config *c, float *x, const float *cos_t, const float *sin_t, uint8_t *codes) {
    int64_t di = c->index_head_dim, half = c->qk_rope_head_dim / 2;
    lm_rope_neox(x, cos_t, sin_t, half); /* the first dr dims (conv. 37) */
    lm_hadamard(x, di);
    if (!lm_config_fp8_emulated(c)) return 1.0f;
    uint8_t local[FP8_QBLOCK];
    /* di is one block for V3.2; a wider head would have one scale per
     * block, which the score (one q_scale per head) cannot take: the
     * forward refuses di != 128 with FP8 on. */
    uint8_t *cd = codes ? codes : local;
    float s = lm_fp8_act_quant(x, di, c->fp8_ue8m0, cd);
    for (int64_t i = 0; i < di; i++) x[i] = lm_fp8e4m3_to_f32(cd[i]);
    return s;
}

void lm_indexer_project(lm_pool *pool, const lm_config *c, const lm_layer *L, const float *xn, const float *qa_n,
                        int64_t T, const float *cos_t, const float *sin_t, const lm_indexer_out *out) {
    int64_t Hi = c->index_n_heads, di = c->index_head_dim, half = c->qk_rope_head_dim / 2;
    int64_t kf = lm_indexer_key_floats(c);
    int emu = lm_config_fp8_emulated(c);
    lm_matmul(pool, out->q, qa_n, T, &L->iwq_b);
    lm_matmul(pool, out->w, xn, T, &L->iw_proj);
    lm_matmul(pool, out->k, xn, T, &L->iwk);
    float hi_scale = (float)(1.0 / sqrt((double)Hi)), di_scale = (float)(1.0 / sqrt((double)di));
    for (int64_t t = 0; t < T; t++) {
        const float *ct = cos_t + t * half, *st = sin_t + t * half;
        for (int64_t h = 0; h < Hi; h++) {
            float qs = finish_vector(c, out->q + (t * Hi + h) * di, ct, st, NULL);
            /* conv. 40: weights_proj(x) * Hi^-0.5 * q_scale * di^-0.5, in that order */
            float *w = out->w + t * Hi + h;
            *w = *w * hi_scale * qs * di_scale;
        }
        float *k = out->k + t * di, *slot = out->key + t * kf;
        lm_layernorm(k, k, L->ik_norm, L->ik_bias, di, 1e-6f); /* eps fixed at 1e-6 (conv. 36) */
        if (emu) {
            uint8_t codes[FP8_QBLOCK];
            float s = finish_vector(c, k, ct, st, codes);
            memset(slot, 0, (size_t)kf * sizeof(float));
            memcpy(slot, codes, (size_t)di);
            slot[kf - 1] = s;
        } else {
            finish_vector(c, k, ct, st, NULL);
            memcpy(slot, k, (size_t)di * sizeof(float));
        }
    }
}

void lm_indexer_gather_keys(const lm_config *c, const float *slot, int64_t stride, int64_t n, void *buf,
                            float *kscale) {
    int64_t di = c->index_head_dim, kf = lm_indexer_key_floats(c);
    int emu = lm_config_fp8_emulated(c);
    size_t bytes = emu ? (size_t)di : (size_t)di * sizeof(float);
    for (int64_t s = 0; s < n; s++) {
        memcpy((char *)buf + (size_t)s * bytes, slot + s * stride, bytes);
        kscale[s] = emu ? slot[s * stride + kf - 1] : 1.0f;
    }
}

lm_mat lm_indexer_keys_view(const lm_config *c, const void *buf, int64_t n, const float *ones, float *f32) {
    int64_t di = c->index_head_dim;
    if (!lm_config_fp8_emulated(c)) return lm_f32_mat(buf, n, di);
    if (f32) {
        float tab[256]; /* local: a call per code would cost more than the products */
        for (int i = 0; i < 256; i++) tab[i] = lm_fp8e4m3_to_f32((uint8_t)i);
        const uint8_t *codes = buf;
        for (int64_t i = 0; i < n * di; i++) f32[i] = tab[codes[i]];
        return lm_f32_mat(f32, n, di);
    }
    /* The codes never hold the NaN bytes (act_quant clamps to +-448). */
    lm_mat m = {.dtype = LM_DTYPE_F8_E4M3, .rows = n, .cols = di, .data = buf, .scale_inv = ones};
    return m;
}

/* ---- scores and selection ---- */

void lm_indexer_scores(lm_pool *pool, const lm_config *c, const float *q, const float *w, int64_t nq,
                       const lm_mat *keys, const float *kscale, float *dots, float *I, int64_t ldI) {
    int64_t Hi = c->index_n_heads, di = c->index_head_dim, n = keys->rows;
    lm_matmul(nq * Hi * n * di >= ((int64_t)1 << 18) ? pool : NULL, dots, q, nq * Hi, keys);
    for (int64_t t = 0; t < nq; t++) {
        float *row = I + t * ldI;
        for (int64_t s = 0; s < n; s++) row[s] = 0.0f;
        /* Heads in order, each adding ReLU(dot) * w (conv. 40): the same
         * sum for a key whatever else is scored with it. */
        for (int64_t h = 0; h < Hi; h++) {
            const float *d = dots + (t * Hi + h) * n;
            float wh = w[t * Hi + h];
            for (int64_t s = 0; s < n; s++) row[s] += (d[s] > 0.0f ? d[s] : 0.0f) * wh;
        }
        for (int64_t s = 0; s < n; s++) {
            float v = row[s] * kscale[s];
            row[s] = v == 0.0f ? 0.0f : v;
        }
    }
}

/* A total order on (score, position) as one integer: larger scores first,
 * then smaller positions; NaN below -inf. */
static uint64_t rank_key(float v, int64_t pos) {
    uint32_t u = f32_bits(v == 0.0f ? 0.0f : v), o;
    if (v != v) o = 0;
    else if (u >> 31) o = ~u;
    else o = u | 0x80000000u;
    return ((uint64_t)o << 32) | (uint64_t)(0xffffffffu - (uint32_t)pos);
}

static void swap64(uint64_t *a, uint64_t *b) {
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Reorders v[0..n) so that its K largest come first (any order among them):
 * quickselect with a median-of-three pivot; keys are distinct. */
static void select_largest(uint64_t *v, int64_t n, int64_t K) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] > v[lo]) swap64(&v[mid], &v[lo]);
        if (v[hi] > v[lo]) swap64(&v[hi], &v[lo]);
        if (v[mid] > v[hi]) swap64(&v[mid], &v[hi]);
        uint64_t pivot = v[hi]; /* the median of the three */
        int64_t store = lo;
        for (int64_t i = lo; i < hi; i++)
            if (v[i] > pivot) swap64(&v[i], &v[store++]);
        swap64(&v[store], &v[hi]);
        /* v[lo..store) > pivot = v[store] > v(store..hi] */
        if (store == K - 1 || store == K) return;
        if (store < K) lo = store + 1;
        else hi = store - 1;
    }
}

int64_t lm_indexer_select(const float *I, int64_t n, int64_t K, int32_t *sel, uint64_t *scratch) {
    if (n <= K) {
        for (int64_t s = 0; s < n; s++) sel[s] = (int32_t)s;
        return n;
    }
    for (int64_t s = 0; s < n; s++) scratch[s] = rank_key(I[s], s);
    select_largest(scratch, n, K);
    /* The K-th largest key, then one pass in position order: the chosen
     * positions come out ascending with no sort (keys are distinct). */
    uint64_t kth = scratch[0];
    for (int64_t i = 1; i < K; i++)
        if (scratch[i] < kth) kth = scratch[i];
    int64_t m = 0;
    for (int64_t s = 0; s < n; s++)
        if (rank_key(I[s], s) >= kth) sel[m++] = (int32_t)s;
    return m;
}
