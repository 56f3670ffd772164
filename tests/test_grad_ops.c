/* test_grad_ops.c — every backward of the training code against central
 * finite differences of a double-precision forward.
 *
 * Part 1, one kernel at a time (train/tkernels.h): RMSNorm (input and
 * weight), Linear (dx, dW, accumulation, 1 vs 2 threads bit-identical),
 * SwiGLU, interleaved RoPE with YaRN tables, causal softmax attention of one
 * head, softmax cross-entropy. The fp32 analytic gradient must match the
 * double finite difference to 1e-4 of the largest gradient of the tensor.
 *
 * Part 2, whole models: tiny configurations run through the trainer
 * (lm_train_accumulate, fp32) and through a plain double-precision forward
 * written here from the conventions (embedding, RMSNorm, MLA with and
 * without q LoRA, rope with YaRN, causal attention, dense SwiGLU, MoE
 * routing with sigmoid/noaux_tc/groups or softmax/group-limited, combine
 * weights, shared experts, final norm, tied or untied head, masked
 * cross-entropy, the sequence-wise balance term). Elements of every
 * trainable tensor are perturbed by +-h in double; the routing of every
 * token is recorded at +h and -h and an element whose perturbation changes
 * a choice is skipped and counted (the choice is piecewise constant; the
 * test also requires the unperturbed routing margin to be large and the
 * skips to be rare). Tolerance: |fd - g| <= 1e-4 * max|g| of the tensor. */
#include <stdint.h>

#include "core/rng.h"
#include "model/config.h"
#include "test.h"
#include "train/params.h"
#include "train/rl.h"
#include "train/step.h"
#include "train/tkernels.h"
#include "train/trainer.h"

#define TOL 1e-4

static uint64_t rng_ctr;
static double urand(void) { return lm_rng_uniform(1234, 7, rng_ctr++); }
static double nrand(void) {
    double u1 = 1.0 - urand(), u2 = urand();
    return sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
}
static void fill(float *x, int64_t n, double s) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(s * nrand());
}

/* Running worst error of analytic vs finite-difference values of one tensor. */
typedef struct fdcheck {
    double max_g, max_err;
} fdcheck;

static void fd_add(fdcheck *c, double analytic, double fd) {
    c->max_g = fmax(c->max_g, fabs(analytic));
    c->max_err = fmax(c->max_err, fabs(analytic - fd));
}

static double fd_rel(const fdcheck *c) { return c->max_g > 0 ? c->max_err / c->max_g : c->max_err; }

#define FD_REPORT(name, c)                                                                                  \
    do {                                                                                                    \
        printf("  %-34s max|g| %.3e  max|g - fd|/max|g| %.2e\n", name, (c).max_g, fd_rel(&(c)));             \
        CHECK(fd_rel(&(c)) <= TOL);                                                                         \
    } while (0)

/* ---- part 1: kernels ---- */

static double rms_ref(const double *x, const double *w, const double *c, int64_t n, double eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps), L = 0;
    for (int64_t i = 0; i < n; i++) L += c[i] * x[i] * r * w[i];
    return L;
}

TEST(rmsnorm) {
    enum { N = 3, n = 13 };
    float x[N * n], w[n], c[N * n], y[n], r[N], dx[N * n], dw[n];
    fill(x, N * n, 1.0);
    fill(c, N * n, 1.0);
    for (int i = 0; i < n; i++) w[i] = (float)(1 + 0.2 * nrand());
    for (int t = 0; t < N; t++) {
        r[t] = lm_tk_rmsnorm_fwd(y, x + t * n, w, n, 1e-6f);
        lm_tk_rmsnorm_bwd(dx + t * n, c + t * n, x + t * n, w, r[t], n, 0);
    }
    memset(dw, 0, sizeof dw);
    lm_tk_rmsnorm_dw(NULL, dw, c, x, r, N, n);
    double xd[N * n], wd[n], cd[N * n];
    for (int i = 0; i < N * n; i++) xd[i] = x[i], cd[i] = c[i];
    for (int i = 0; i < n; i++) wd[i] = w[i];
    fdcheck cx = {0}, cw = {0};
    double h = 1e-6;
    for (int i = 0; i < N * n; i++) {
        int t = i / n;
        double s = xd[i];
        xd[i] = s + h;
        double lp = rms_ref(xd + t * n, wd, cd + t * n, n, 1e-6);
        xd[i] = s - h;
        double lm = rms_ref(xd + t * n, wd, cd + t * n, n, 1e-6);
        xd[i] = s;
        fd_add(&cx, dx[i], (lp - lm) / (2 * h));
    }
    for (int i = 0; i < n; i++) {
        double s = wd[i], fd = 0;
        for (int t = 0; t < N; t++) {
            wd[i] = s + h;
            double lp = rms_ref(xd + t * n, wd, cd + t * n, n, 1e-6);
            wd[i] = s - h;
            double lm = rms_ref(xd + t * n, wd, cd + t * n, n, 1e-6);
            fd += (lp - lm) / (2 * h);
        }
        wd[i] = s;
        fd_add(&cw, dw[i], fd);
    }
    FD_REPORT("rmsnorm dx", cx);
    FD_REPORT("rmsnorm dw", cw);
    /* accumulate adds */
    float acc[n];
    for (int i = 0; i < n; i++) acc[i] = 1.0f;
    lm_tk_rmsnorm_bwd(acc, c, x, w, r[0], n, 1);
    for (int i = 0; i < n; i++) CHECK_NEAR(acc[i], 1.0f + dx[i], 1e-6, 1e-6);
}

/* Linear products: exact in double, so compare directly (the finite
 * difference of a linear map is exact), at sizes that wake the pool. */
static void linear_case(lm_pool *pool, int64_t N, int64_t out, int64_t in) {
    float *x = malloc(sizeof(float) * N * in), *W = malloc(sizeof(float) * out * in),
          *dy = malloc(sizeof(float) * N * out), *dx = malloc(sizeof(float) * N * in),
          *dW = malloc(sizeof(float) * out * in), *y = malloc(sizeof(float) * N * out);
    int64_t wsn = lm_tk_ws_floats(N, out, in);
    float *ws = malloc(sizeof(float) * wsn);
    fill(x, N * in, 1);
    fill(W, out * in, 0.3);
    fill(dy, N * out, 1);
    for (int64_t i = 0; i < N * in; i++) dx[i] = 0.5f;
    for (int64_t i = 0; i < out * in; i++) dW[i] = 0.25f;
    lm_tk_linear(pool, y, x, N, W, out, in);
    lm_tk_linear_dx(pool, dx, dy, N, W, out, in, 1, ws, 0);
    lm_tk_linear_dw(pool, dW, dy, x, N, out, in, ws, 0);
    fdcheck cy = {0}, cx = {0}, cw = {0};
    for (int64_t t = 0; t < N; t++)
        for (int64_t o = 0; o < out; o++) {
            double s = 0;
            for (int64_t i = 0; i < in; i++) s += (double)x[t * in + i] * W[o * in + i];
            fd_add(&cy, y[t * out + o], s);
        }
    for (int64_t t = 0; t < N; t++)
        for (int64_t i = 0; i < in; i++) {
            double s = 0.5;
            for (int64_t o = 0; o < out; o++) s += (double)dy[t * out + o] * W[o * in + i];
            fd_add(&cx, dx[t * in + i], s);
        }
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double s = 0.25;
            for (int64_t t = 0; t < N; t++) s += (double)dy[t * out + o] * x[t * in + i];
            fd_add(&cw, dW[o * in + i], s);
        }
    char name[64];
    snprintf(name, sizeof name, "linear y   [%lld,%lld,%lld]", (long long)N, (long long)out, (long long)in);
    FD_REPORT(name, cy);
    snprintf(name, sizeof name, "linear dx+ [%lld,%lld,%lld]", (long long)N, (long long)out, (long long)in);
    FD_REPORT(name, cx);
    snprintf(name, sizeof name, "linear dW+ [%lld,%lld,%lld]", (long long)N, (long long)out, (long long)in);
    FD_REPORT(name, cw);
    /* The same at one thread: identical bits. */
    float *dx1 = malloc(sizeof(float) * N * in), *dW1 = malloc(sizeof(float) * out * in);
    for (int64_t i = 0; i < N * in; i++) dx1[i] = 0.5f;
    for (int64_t i = 0; i < out * in; i++) dW1[i] = 0.25f;
    lm_tk_linear_dx(NULL, dx1, dy, N, W, out, in, 1, ws, 0);
    lm_tk_linear_dw(NULL, dW1, dy, x, N, out, in, ws, 0);
    CHECK(memcmp(dx1, dx, sizeof(float) * N * in) == 0);
    CHECK(memcmp(dW1, dW, sizeof(float) * out * in) == 0);
    free(dx1), free(dW1), free(x), free(W), free(dy), free(dx), free(dW), free(y), free(ws);
}

TEST(linear) {
    lm_pool *pool = lm_pool_create(2);
    linear_case(pool, 5, 7, 9);
    linear_case(pool, 67, 130, 45);
    linear_case(pool, 300, 97, 160);
    lm_pool_free(pool);
}

TEST(swiglu) {
    enum { n = 29 };
    float h1[n], h3[n], da[n], d1[n], d3[n];
    fill(h1, n, 2);
    fill(h3, n, 1);
    fill(da, n, 1);
    lm_tk_swiglu_bwd(d1, d3, da, h1, h3, n);
    fdcheck c1 = {0}, c3 = {0};
    double h = 1e-6;
    for (int i = 0; i < n; i++) {
        double g = h1[i], u = h3[i];
#define SILU(v) ((v) / (1 + exp(-(v))))
        fd_add(&c1, d1[i], da[i] * u * (SILU(g + h) - SILU(g - h)) / (2 * h));
        fd_add(&c3, d3[i], da[i] * SILU(g) * ((u + h) - (u - h)) / (2 * h));
#undef SILU
    }
    FD_REPORT("swiglu d(gate)", c1);
    FD_REPORT("swiglu d(up)", c3);
}

static const char YARN_CFG[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":40,\"hidden_size\":16,"
    "\"intermediate_size\":24,\"moe_intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"kv_lora_rank\":10,\"q_lora_rank\":12,\"qk_nope_head_dim\":8,\"qk_rope_head_dim\":8,\"v_head_dim\":6,"
    "\"rope_theta\":10000,\"max_position_embeddings\":128,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":8,"
    "\"original_max_position_embeddings\":16,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,"
    "\"mscale_all_dim\":0.8}}";

TEST(rope_yarn) {
    lm_config cfg;
    lm_error err;
    CHECKF(lm_config_parse(YARN_CFG, sizeof YARN_CFG - 1, "cfg", &cfg, &err) == 0, "%s", err.msg);
    enum { d = 8, P = 23 };
    double inv[d / 2], af = lm_config_rope_attention_factor(&cfg);
    CHECK(fabs(af - 1.0) > 1e-3); /* the attention factor is exercised */
    lm_config_rope_inv_freq(&cfg, inv);
    float cs[d / 2], sn[d / 2], x[d], c[d];
    fdcheck ck = {0};
    for (int pos = 0; pos < P; pos += 5) {
        for (int i = 0; i < d / 2; i++) {
            cs[i] = (float)(cos(pos * inv[i]) * af);
            sn[i] = (float)(sin(pos * inv[i]) * af);
        }
        fill(c, d, 1);
        /* backward of L = c . rope(x) is rope^T(c) */
        memcpy(x, c, sizeof x);
        lm_tk_rope_bwd(x, cs, sn, d);
        for (int j = 0; j < d; j++) {
            /* L is linear in x: the difference quotient of unit vectors is exact */
            float e[d];
            memset(e, 0, sizeof e);
            e[j] = 1;
            lm_tk_rope_fwd(e, cs, sn, d);
            double fd = 0;
            for (int i = 0; i < d; i++) fd += (double)c[i] * e[i];
            fd_add(&ck, x[j], fd);
        }
    }
    FD_REPORT("rope (yarn) dx", ck);
}

/* Causal attention of one head in double: L = sum c . O. */
static double attn_ref(const double *Q, const double *K, const double *V, const double *c, int T, int dk, int dv,
                       double scale) {
    double L = 0, *s = malloc(sizeof(double) * T);
    for (int i = 0; i < T; i++) {
        double m = -INFINITY, z = 0;
        for (int j = 0; j <= i; j++) {
            s[j] = 0;
            for (int d = 0; d < dk; d++) s[j] += Q[i * dk + d] * K[j * dk + d];
            s[j] *= scale;
            m = fmax(m, s[j]);
        }
        for (int j = 0; j <= i; j++) z += (s[j] = exp(s[j] - m));
        for (int d = 0; d < dv; d++) {
            double o = 0;
            for (int j = 0; j <= i; j++) o += s[j] / z * V[j * dv + d];
            L += c[i * dv + d] * o;
        }
    }
    free(s);
    return L;
}

/* T = 9 (one block, every element) and T = 150 (three causal blocks, the
 * last ragged; 40 elements of each input). */
static void attention_case(int T, int picks) {
    const int dk = 6, dv = 5;
    float *Q = malloc(sizeof(float) * T * dk), *K = malloc(sizeof(float) * T * dk), *V = malloc(sizeof(float) * T * dv),
          *O = malloc(sizeof(float) * T * dv), *lse = malloc(sizeof(float) * T), *dO = malloc(sizeof(float) * T * dv),
          *dQ = malloc(sizeof(float) * T * dk), *dK = malloc(sizeof(float) * T * dk), *dV = malloc(sizeof(float) * T * dv);
    float *scratch = malloc(sizeof(float) * lm_tk_attn_scratch_floats(T, dk, dv));
    const float scale = 0.45f;
    fill(Q, T * dk, 1.5);
    fill(K, T * dk, 1.5);
    fill(V, T * dv, 1);
    fill(dO, T * dv, 1);
    lm_tk_attn_fwd(Q, K, V, T, dk, dv, scale, O, lse, scratch);
    lm_tk_attn_bwd(Q, K, V, O, dO, lse, T, dk, dv, scale, dQ, dK, dV, scratch);
    double *q = malloc(sizeof(double) * T * dk), *k = malloc(sizeof(double) * T * dk), *v = malloc(sizeof(double) * T * dv),
           *c = malloc(sizeof(double) * T * dv);
    for (int i = 0; i < T * dk; i++) q[i] = Q[i], k[i] = K[i];
    for (int i = 0; i < T * dv; i++) v[i] = V[i], c[i] = dO[i];
    char name[64];
    fdcheck co = {0};
    double L = attn_ref(q, k, v, c, T, dk, dv, scale), Lf = 0;
    for (int i = 0; i < T * dv; i++) Lf += (double)dO[i] * O[i];
    fd_add(&co, Lf, L);
    snprintf(name, sizeof name, "attention T=%d forward (c . O)", T);
    FD_REPORT(name, co);
    double h = 1e-6;
    fdcheck cq = {0}, ck = {0}, cv = {0};
    struct {
        double *a;
        float *g;
        int n;
        fdcheck *c;
    } parts[3] = {{q, dQ, T * dk, &cq}, {k, dK, T * dk, &ck}, {v, dV, T * dv, &cv}};
    for (int pi = 0; pi < 3; pi++) {
        for (int e = 0; e < parts[pi].n; e++) parts[pi].c->max_g = fmax(parts[pi].c->max_g, fabs(parts[pi].g[e]));
        int n = picks ? picks : parts[pi].n;
        for (int e = 0; e < n; e++) {
            int i = picks ? (int)(urand() * parts[pi].n) : e;
            if (picks && e < 3) i = parts[pi].n - 1 - e; /* the ragged end */
            double s = parts[pi].a[i];
            parts[pi].a[i] = s + h;
            double lp = attn_ref(q, k, v, c, T, dk, dv, scale);
            parts[pi].a[i] = s - h;
            double lm = attn_ref(q, k, v, c, T, dk, dv, scale);
            parts[pi].a[i] = s;
            fd_add(parts[pi].c, parts[pi].g[i], (lp - lm) / (2 * h));
        }
    }
    snprintf(name, sizeof name, "attention T=%d dQ", T);
    FD_REPORT(name, cq);
    snprintf(name, sizeof name, "attention T=%d dK", T);
    FD_REPORT(name, ck);
    snprintf(name, sizeof name, "attention T=%d dV", T);
    FD_REPORT(name, cv);
    free(Q), free(K), free(V), free(O), free(lse), free(dO), free(dQ), free(dK), free(dV), free(scratch);
    free(q), free(k), free(v), free(c);
}

TEST(attention_head) {
    attention_case(9, 0);
    attention_case(150, 40);
}

static double xent_ref(const double *l, int V, int y) {
    double m = l[0], z = 0;
    for (int i = 1; i < V; i++) m = fmax(m, l[i]);
    for (int i = 0; i < V; i++) z += exp(l[i] - m);
    return m + log(z) - l[y];
}

TEST(cross_entropy) {
    enum { V = 17 };
    float l[V], dl[V];
    fill(l, V, 3);
    double ld[V];
    for (int i = 0; i < V; i++) ld[i] = l[i];
    const float scale = 0.25f;
    double loss = lm_tk_xent(l, V, 5, scale, dl);
    CHECK_NEAR(loss, xent_ref(ld, V, 5), 1e-6, 1e-6);
    fdcheck c = {0};
    double h = 1e-6;
    for (int i = 0; i < V; i++) {
        double s = ld[i];
        ld[i] = s + h;
        double lp = xent_ref(ld, V, 5);
        ld[i] = s - h;
        double lm = xent_ref(ld, V, 5);
        ld[i] = s;
        fd_add(&c, dl[i], scale * (lp - lm) / (2 * h));
    }
    FD_REPORT("cross-entropy dlogits", c);
    /* in place (dlogits = logits) gives the same */
    float l2[V];
    memcpy(l2, l, sizeof l);
    CHECK(lm_tk_xent(l2, V, 5, scale, l2) == loss);
    CHECK(memcmp(l2, dl, sizeof dl) == 0);
}

/* ---- part 2: whole models in double ---- */

typedef struct refm {
    const lm_params *p;
    const double *w;             /* [n_floats] the weights in double */
    int64_t B, T;
    const int32_t *ids, *tgt;
    double alpha;
    int32_t *route;              /* [L, N, k] chosen experts (sorted), or NULL */
    double margin;               /* smallest routing gap seen */
    double (*head_loss)(const struct refm *r, const double *logp); /* NULL: mean cross-entropy */
    double *logp;                /* [N] log-probability of each row's target (with head_loss) */
    const void *ctx;             /* head_loss's data */
    double mtp_weight;           /* > 0: add lambda x the MTP layer's mean cross-entropy of token t+2 */
} refm;

/* The double copy of a parameter: a matrix view or a vector's floats. */
static const float *mat_floats(lm_mat m) { return m.data; }
static const float *vec_floats(const float *v) { return v; }
#define PARAM_FLOATS(x) _Generic((x), lm_mat: mat_floats, default: vec_floats)(x)
#define WD(r, x) ((r)->w + (PARAM_FLOATS(x) - (r)->p->w))

static void mv(double *y, const double *W, const double *x, int64_t out, int64_t in) {
    for (int64_t o = 0; o < out; o++) {
        double s = 0;
        for (int64_t i = 0; i < in; i++) s += W[o * in + i] * x[i];
        y[o] = s;
    }
}

static void rmsn(double *y, const double *x, const double *w, int64_t n, double eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

static double silu(double v) { return v / (1 + exp(-v)); }

static void swiglu_mlp(double *out, const double *x, const double *w1, const double *w3, const double *w2, int64_t D,
                       int64_t I) {
    double *a = malloc(sizeof(double) * I), *b = malloc(sizeof(double) * I);
    mv(a, w1, x, I, D);
    mv(b, w3, x, I, D);
    for (int64_t i = 0; i < I; i++) a[i] = silu(a[i]) * b[i];
    mv(out, w2, a, D, I);
    free(a), free(b);
}

/* k best of v[n] (ties: lower index), best first; returns the gap between
 * the k-th and (k+1)-th finite values (INFINITY if none). */
static double topk_d(const double *v, int64_t n, int64_t k, int *idx) {
    char used[256] = {0};
    for (int64_t j = 0; j < k; j++) {
        int best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!used[i] && (best < 0 || v[i] > v[best])) best = (int)i;
        idx[j] = best;
        used[best] = 1;
    }
    double next = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (!used[i] && v[i] > next) next = v[i];
    double gap = v[idx[k - 1]] - next;
    return isfinite(gap) ? gap : INFINITY;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* out = MoE(xn) for the N rows; adds the balance term to *bal. */
static void moe_ref(refm *r, int64_t l, const double *xn, double *out, double *bal) {
    const lm_config *c = &r->p->cfg;
    const lm_layer *W = &r->p->W.layers[l];
    int64_t N = r->B * r->T, D = c->hidden_size, E = c->n_routed_experts, k = c->num_experts_per_tok,
            Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts;
    double *s = malloc(sizeof(double) * N * E), *y = malloc(sizeof(double) * D);
    int *idx = malloc(sizeof(int) * N * k);
    for (int64_t n = 0; n < N; n++) {
        double *sn = s + n * E, sel[64];
        mv(sn, WD(r, W->gate), xn + n * D, E, D);
        if (c->scoring_func == LM_SCORING_SOFTMAX) {
            double m = -INFINITY, z = 0;
            for (int64_t e = 0; e < E; e++) m = fmax(m, sn[e]);
            for (int64_t e = 0; e < E; e++) z += (sn[e] = exp(sn[e] - m));
            for (int64_t e = 0; e < E; e++) sn[e] /= z;
        } else {
            for (int64_t e = 0; e < E; e++) sn[e] = 1 / (1 + exp(-sn[e]));
        }
        for (int64_t e = 0; e < E; e++)
            sel[e] = sn[e] + (c->topk_method == LM_TOPK_NOAUX_TC && W->gate_bias ? *WD(r, W->gate_bias + e) : 0);
        if (c->topk_method != LM_TOPK_GREEDY && c->n_group > 1) {
            int64_t G = c->n_group, per = E / G;
            double gs[64];
            for (int64_t g = 0; g < G; g++) {
                int t2[2];
                if (c->topk_method == LM_TOPK_NOAUX_TC) {
                    topk_d(sel + g * per, per, 2, t2);
                    gs[g] = sel[g * per + t2[0]] + sel[g * per + t2[1]];
                } else {
                    topk_d(sel + g * per, per, 1, t2);
                    gs[g] = sel[g * per + t2[0]];
                }
            }
            int keep[64];
            double gap = topk_d(gs, G, c->topk_group, keep);
            r->margin = fmin(r->margin, gap);
            char kept[64] = {0};
            for (int64_t i = 0; i < c->topk_group; i++) kept[keep[i]] = 1;
            for (int64_t e = 0; e < E; e++)
                if (!kept[e / per]) sel[e] = -INFINITY;
        }
        r->margin = fmin(r->margin, topk_d(sel, E, k, idx + n * k));
        double w[16], sum = 0;
        for (int64_t j = 0; j < k; j++) sum += (w[j] = sn[idx[n * k + j]]);
        for (int64_t j = 0; j < k; j++) {
            if (c->norm_topk_prob && k > 1) w[j] /= sum;
            w[j] *= c->routed_scaling_factor;
        }
        double *o = out + n * D;
        if (Is)
            swiglu_mlp(o, xn + n * D, WD(r, W->sw1), WD(r, W->sw3), WD(r, W->sw2), D, Is);
        else
            memset(o, 0, sizeof(double) * D);
        for (int64_t j = 0; j < k; j++) {
            int e = idx[n * k + j];
            swiglu_mlp(y, xn + n * D, WD(r, W->ew1[e]), WD(r, W->ew3[e]), WD(r, W->ew2[e]), D, Im);
            for (int64_t i = 0; i < D; i++) o[i] += w[j] * y[i];
        }
        if (r->route) {
            int32_t *dst = r->route + (l * N + n) * k;
            int tmp[16];
            memcpy(tmp, idx + n * k, sizeof(int) * k);
            qsort(tmp, (size_t)k, sizeof(int), cmp_int);
            for (int64_t j = 0; j < k; j++) dst[j] = tmp[j];
        }
    }
    if (r->alpha > 0)
        for (int64_t b = 0; b < r->B; b++) {
            double f[64] = {0}, P[64] = {0};
            for (int64_t t = 0; t < r->T; t++) {
                int64_t n = b * r->T + t;
                double z = 0;
                for (int64_t j = 0; j < k; j++) f[idx[n * k + j]] += 1;
                for (int64_t e = 0; e < E; e++) z += s[n * E + e];
                for (int64_t e = 0; e < E; e++) P[e] += s[n * E + e] / z / r->T;
            }
            double lb = 0;
            for (int64_t e = 0; e < E; e++) lb += f[e] * E / (double)(k * r->T) * P[e];
            *bal += r->alpha * lb / r->B;
        }
    free(s), free(y), free(idx);
}

/* Decoder layer l (r->p->W.layers[l]; l = L: the MTP layer) on the N rows
 * of x in place; adds its balance term to *bal. */
static void ref_layer(refm *r, int64_t l, double *x, double *bal) {
    const lm_params *p = r->p;
    const lm_config *c = &p->cfg;
    int64_t N = r->B * r->T, T = r->T, D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim,
            dr = c->qk_rope_head_dim, dv = c->v_head_dim, C = c->kv_lora_rank, Q = c->q_lora_rank, dk = dn + dr;
    double eps = c->rms_norm_eps, scale = lm_config_softmax_scale(c), af = lm_config_rope_attention_factor(c);
    double inv[64];
    lm_config_rope_inv_freq(c, inv);
    double *xn = malloc(sizeof(double) * N * D), *q = malloc(sizeof(double) * N * H * dk),
           *kv = malloc(sizeof(double) * N * (C + dr)), *kvb = malloc(sizeof(double) * N * H * (dn + dv)),
           *att = malloc(sizeof(double) * N * H * dv), *o = malloc(sizeof(double) * N * D),
           *qa = malloc(sizeof(double) * (Q ? Q : 1)), *sc = malloc(sizeof(double) * T);
    const lm_layer *W = &p->W.layers[l];
    for (int64_t n = 0; n < N; n++) {
        int64_t t = n % T;
        rmsn(xn + n * D, x + n * D, WD(r, W->attn_norm), D, eps);
        if (Q) {
            mv(qa, WD(r, W->wq_a), xn + n * D, Q, D);
            rmsn(qa, qa, WD(r, W->q_norm), Q, eps);
            mv(q + n * H * dk, WD(r, W->wq_b), qa, H * dk, Q);
        } else {
            mv(q + n * H * dk, WD(r, W->wq), xn + n * D, H * dk, D);
        }
        double *kvr = kv + n * (C + dr);
        mv(kvr, WD(r, W->wkv_a), xn + n * D, C + dr, D);
        rmsn(kvr, kvr, WD(r, W->kv_norm), C, eps);
        for (int64_t i = 0; i < dr / 2; i++) {
            double cs = cos(t * inv[i]) * af, sn = sin(t * inv[i]) * af;
            for (int64_t h = -1; h < H; h++) {
                double *v = h < 0 ? kvr + C : q + n * H * dk + h * dk + dn;
                double a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cs - b * sn;
                v[2 * i + 1] = a * sn + b * cs;
            }
        }
        mv(kvb + n * H * (dn + dv), WD(r, W->wkv_b), kvr, H * (dn + dv), C);
    }
    for (int64_t n = 0; n < N; n++) {
        int64_t b = n / T, t = n % T;
        for (int64_t h = 0; h < H; h++) {
            const double *qh = q + n * H * dk + h * dk;
            double m = -INFINITY, z = 0;
            for (int64_t j = 0; j <= t; j++) {
                int64_t ns = b * T + j;
                const double *kn = kvb + ns * H * (dn + dv) + h * (dn + dv), *kp = kv + ns * (C + dr) + C;
                double s = 0;
                for (int64_t d = 0; d < dn; d++) s += qh[d] * kn[d];
                for (int64_t d = 0; d < dr; d++) s += qh[dn + d] * kp[d];
                sc[j] = s * scale;
                m = fmax(m, sc[j]);
            }
            for (int64_t j = 0; j <= t; j++) z += (sc[j] = exp(sc[j] - m));
            double *a = att + n * H * dv + h * dv;
            for (int64_t d = 0; d < dv; d++) a[d] = 0;
            for (int64_t j = 0; j <= t; j++) {
                const double *vv = kvb + (b * T + j) * H * (dn + dv) + h * (dn + dv) + dn;
                for (int64_t d = 0; d < dv; d++) a[d] += sc[j] / z * vv[d];
            }
        }
        mv(o + n * D, WD(r, W->wo), att + n * H * dv, D, H * dv);
    }
    for (int64_t i = 0; i < N * D; i++) x[i] += o[i];
    for (int64_t n = 0; n < N; n++) rmsn(xn + n * D, x + n * D, WD(r, W->ffn_norm), D, eps);
    if (W->is_moe)
        moe_ref(r, l, xn, o, bal);
    else
        for (int64_t n = 0; n < N; n++)
            swiglu_mlp(o + n * D, xn + n * D, WD(r, W->w1), WD(r, W->w3), WD(r, W->w2), D, c->intermediate_size);
    for (int64_t i = 0; i < N * D; i++) x[i] += o[i];
    free(xn), free(q), free(kv), free(kvb), free(att), free(o), free(qa), free(sc);
}

/* The MTP term (DeepSeek-V3 section 2.2, one depth) from the main output x
 * (before model.norm): lambda / cnt x the sum over positions t < T-1 with a
 * target at t+1 of CE(head(shared_head.norm(layer_L(eh_proj [enorm(E t_{t+1}) ;
 * hnorm(model.norm(x_t))]))), target_{t+1}). */
static double ref_mtp(refm *r, const double *x, int64_t cnt, double *bal) {
    const lm_params *p = r->p;
    const lm_config *c = &p->cfg;
    int64_t N = r->B * r->T, T = r->T, D = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    double eps = c->rms_norm_eps;
    double *cat = malloc(sizeof(double) * 2 * D), *xm = malloc(sizeof(double) * N * D), *hn = malloc(sizeof(double) * D),
           *lg = malloc(sizeof(double) * V);
    for (int64_t n = 0; n < N; n++) {
        int32_t next = n % T == T - 1 ? r->ids[n] : r->ids[n + 1];
        rmsn(cat, WD(r, p->W.embed) + (int64_t)next * D, WD(r, p->WM.enorm), D, eps);
        rmsn(hn, x + n * D, WD(r, p->W.final_norm), D, eps);
        rmsn(cat + D, hn, WD(r, p->WM.hnorm), D, eps);
        mv(xm + n * D, WD(r, p->WM.eh_proj), cat, D, 2 * D);
    }
    ref_layer(r, L, xm, bal);
    double loss = 0;
    for (int64_t n = 0; n < N; n++) {
        if (n % T == T - 1 || r->tgt[n + 1] < 0) continue;
        rmsn(hn, xm + n * D, WD(r, p->WM.head_norm), D, eps);
        mv(lg, WD(r, p->W.head), hn, V, D);
        loss += xent_ref(lg, (int)V, r->tgt[n + 1]);
    }
    free(cat), free(xm), free(hn), free(lg);
    return r->mtp_weight * loss / (double)cnt;
}

static double ref_loss(refm *r) {
    const lm_params *p = r->p;
    const lm_config *c = &p->cfg;
    int64_t N = r->B * r->T, D = c->hidden_size, V = c->vocab_size;
    double eps = c->rms_norm_eps;
    double *x = malloc(sizeof(double) * N * D), *xn = malloc(sizeof(double) * D), *lg = malloc(sizeof(double) * V);
    r->margin = INFINITY;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < D; i++) x[n * D + i] = WD(r, p->W.embed)[(int64_t)r->ids[n] * D + i];
    double bal = 0;
    for (int64_t l = 0; l < c->num_hidden_layers; l++) ref_layer(r, l, x, &bal);
    double loss = 0;
    int64_t cnt = 0;
    for (int64_t n = 0; n < N; n++) {
        if (r->tgt[n] < 0) continue;
        rmsn(xn, x + n * D, WD(r, p->W.final_norm), D, eps);
        mv(lg, WD(r, p->W.head), xn, V, D);
        double nll = xent_ref(lg, (int)V, r->tgt[n]);
        loss += nll;
        if (r->logp) r->logp[n] = -nll;
        cnt++;
    }
    double mtp = r->mtp_weight > 0 ? ref_mtp(r, x, cnt, &bal) : 0;
    free(x), free(xn), free(lg);
    if (r->head_loss) return r->head_loss(r, r->logp) + bal;
    return loss / (double)cnt + mtp + bal;
}

typedef struct mcase {
    const char *name;
    const char *json;
    int64_t B, T;
    double alpha;
    double mtp_weight;           /* > 0: the config gets num_nextn_predict_layers 1 */
} mcase;

static const char V3_CFG[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":37,\"hidden_size\":16,"
    "\"intermediate_size\":20,\"moe_intermediate_size\":8,\"num_hidden_layers\":2,\"first_k_dense_replace\":1,"
    "\"num_attention_heads\":2,\"kv_lora_rank\":10,\"q_lora_rank\":12,\"qk_nope_head_dim\":6,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"n_routed_experts\":6,\"n_shared_experts\":1,"
    "\"num_experts_per_tok\":2,\"n_group\":3,\"topk_group\":2,\"topk_method\":\"noaux_tc\","
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,\"rms_norm_eps\":1e-6,"
    "\"rope_theta\":10000,\"max_position_embeddings\":256,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":16,"
    "\"original_max_position_embeddings\":16,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,"
    "\"mscale_all_dim\":1.0},\"tie_word_embeddings\":false}";

static const char V2_CFG[] =
    "{\"architectures\":[\"DeepseekV2ForCausalLM\"],\"vocab_size\":31,\"hidden_size\":12,"
    "\"intermediate_size\":16,\"moe_intermediate_size\":6,\"num_hidden_layers\":2,\"first_k_dense_replace\":0,"
    "\"num_attention_heads\":3,\"kv_lora_rank\":8,\"q_lora_rank\":null,\"qk_nope_head_dim\":4,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":6,\"n_routed_experts\":6,\"n_shared_experts\":2,"
    "\"num_experts_per_tok\":3,\"n_group\":3,\"topk_group\":2,\"topk_method\":\"group_limited_greedy\","
    "\"scoring_func\":\"softmax\",\"norm_topk_prob\":false,\"routed_scaling_factor\":1.5,\"rms_norm_eps\":1e-6,"
    "\"rope_theta\":10000,\"max_position_embeddings\":64,\"rope_scaling\":null,\"tie_word_embeddings\":true}";

/* V3 gating without shared experts or q LoRA, plain top-k, tied. */
static const char V3B_CFG[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":29,\"hidden_size\":12,"
    "\"intermediate_size\":16,\"moe_intermediate_size\":6,\"num_hidden_layers\":1,\"first_k_dense_replace\":0,"
    "\"num_attention_heads\":2,\"kv_lora_rank\":6,\"q_lora_rank\":null,\"qk_nope_head_dim\":4,"
    "\"qk_rope_head_dim\":2,\"v_head_dim\":4,\"n_routed_experts\":5,\"n_shared_experts\":0,"
    "\"num_experts_per_tok\":2,\"n_group\":1,\"topk_group\":1,\"topk_method\":\"noaux_tc\","
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":1.0,\"rms_norm_eps\":1e-6,"
    "\"rope_theta\":10000,\"max_position_embeddings\":64,\"rope_scaling\":null,\"tie_word_embeddings\":true}";

static void model_case(const mcase *mc, uint64_t seed) {
    lm_config cfg;
    lm_error err;
    CHECKF(lm_config_parse(mc->json, strlen(mc->json), mc->name, &cfg, &err) == 0, "%s", err.msg);
    if (mc->mtp_weight > 0) cfg.num_nextn_predict_layers = 1;
    lm_params *p;
    CHECKF(lm_params_create(&cfg, &p, &err) == 0, "%s", err.msg);
    if (test_cur_failed) return;
    lm_params_init_random(p, seed, 0.3);
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        float *w = p->w + t->offset;
        if (t->kind == LM_PARAM_NORM)
            for (int64_t j = 0; j < t->numel; j++) w[j] = (float)(1 + 0.2 * nrand());
        if (t->kind == LM_PARAM_BIAS)
            for (int64_t j = 0; j < t->numel; j++) w[j] = (float)(0.1 * nrand());
        if (strstr(t->name, "embed_tokens"))
            for (int64_t j = 0; j < t->numel; j++) w[j] *= 3;
    }
    int64_t B = mc->B, T = mc->T, N = B * T, V = cfg.vocab_size, L = cfg.num_hidden_layers + (mc->mtp_weight > 0),
            k = cfg.num_experts_per_tok;
    int32_t ids[256], tgt[256];
    double *wd = malloc(sizeof(double) * p->n_floats);
    for (int64_t i = 0; i < p->n_floats; i++) wd[i] = p->w[i];
    int32_t *route0 = calloc((size_t)(L * N * k), sizeof(int32_t)), *route1 = calloc((size_t)(L * N * k), sizeof(int32_t));
    refm r = {p, wd, B, T, ids, tgt, mc->alpha, route0, 0, NULL, NULL, NULL, mc->mtp_weight};
    /* Draw ids until the routing margin is comfortable for fp32. */
    double L0 = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int64_t n = 0; n < N; n++) {
            ids[n] = (int32_t)(urand() * V);
            tgt[n] = urand() < 0.25 ? -1 : (int32_t)(urand() * V);
        }
        tgt[0] = 3;
        L0 = ref_loss(&r);
        if (r.margin > 1e-4) break;
    }
    CHECKF(r.margin > 1e-4, "routing margin %.2e", r.margin);
    /* The trainer's gradient (fp32). */
    lm_train_opts o = lm_train_opts_default();
    o.batch = B;
    o.seq = T;
    o.balance_alpha = mc->alpha;
    o.mtp_weight = mc->mtp_weight;
    lm_pool *pool = lm_pool_create(2);
    lm_trainer *tr = lm_trainer_create(p, &o, 2, &err);
    CHECKF(tr != NULL, "%s", err.msg);
    int64_t denom = 0;
    for (int64_t n = 0; n < N; n++) denom += tgt[n] >= 0;
    lm_train_begin(tr);
    CHECK(lm_train_accumulate(tr, pool, ids, tgt, B, denom, B, &err) == 0);
    double loss32 = tr->loss_sum / (double)denom + mc->mtp_weight * tr->mtp_loss_sum / (double)denom + tr->bal_sum;
    printf("  %s: loss fp32 %.8f, double %.8f (balance %.3g), routing margin %.2e\n", mc->name, loss32, L0,
           tr->bal_sum, r.margin);
    CHECK_NEAR(loss32, L0, 0, 1e-5);
    /* Same experts chosen by the fp32 trainer. */
    int route_diff = 0;
    for (int64_t l = 0; l < L; l++) {
        if (!p->W.layers[l].is_moe) continue;
        for (int64_t n = 0; n < N; n++) {
            int tmp[16];
            for (int64_t j = 0; j < k; j++) tmp[j] = tr->acts[l].ridx[n * k + j];
            qsort(tmp, (size_t)k, sizeof(int), cmp_int);
            for (int64_t j = 0; j < k; j++) route_diff += tmp[j] != route0[(l * N + n) * k + j];
        }
    }
    CHECK(route_diff == 0);
    /* Finite differences over elements of every trainable tensor. */
    int64_t skipped = 0, tried = 0;
    double worst = 0;
    const char *worst_name = "";
    r.route = route1;
    for (int64_t ti = 0; ti < p->n_tensors; ti++) {
        const lm_ptensor *t = &p->t[ti];
        if (!t->trainable) continue;
        fdcheck ck = {0};
        for (int64_t j = 0; j < t->numel; j++) ck.max_g = fmax(ck.max_g, fabs(p->g[t->offset + j]));
        /* every element of the router (its gradient comes only through the
         * combine weights and the balance term), 10 of every other tensor */
        int all = t->numel <= 10 || strstr(t->name, "mlp.gate.weight") != NULL;
        int64_t picks = all ? t->numel : 10;
        for (int64_t pi = 0; pi < picks; pi++) {
            int64_t j = all ? pi : (int64_t)(urand() * t->numel);
            if (strstr(t->name, "embed_tokens") && pi % 2 == 0) /* a row that is used */
                j = (int64_t)ids[(int64_t)(urand() * N)] * cfg.hidden_size + (int64_t)(urand() * cfg.hidden_size);
            double *wp = wd + t->offset + j, s = *wp, h = 1e-5 * fmax(1.0, fabs(s));
            *wp = s + h;
            double lp = ref_loss(&r);
            int flip = memcmp(route0, route1, sizeof(int32_t) * L * N * k) != 0;
            *wp = s - h;
            double lm = ref_loss(&r);
            flip |= memcmp(route0, route1, sizeof(int32_t) * L * N * k) != 0;
            *wp = s;
            tried++;
            if (flip) {
                skipped++;
                continue;
            }
            fd_add(&ck, p->g[t->offset + j], (lp - lm) / (2 * h));
        }
        double rel = fd_rel(&ck);
        if (rel > worst) worst = rel, worst_name = t->name;
        if (rel > TOL) printf("  %s: %s max|g| %.3e err %.2e\n", mc->name, t->name, ck.max_g, rel);
        CHECK(rel <= TOL);
    }
    printf("  %s: %lld elements of %lld tensors, worst max|g - fd|/max|g| %.2e (%s), %lld skipped (routing flip)\n",
           mc->name, (long long)tried, (long long)p->n_tensors, worst, worst_name, (long long)skipped);
    CHECK(skipped * 20 <= tried);
    lm_trainer_free(tr);
    lm_pool_free(pool);
    lm_params_free(p);
    free(wd), free(route0), free(route1);
}

TEST(model_v3) {
    mcase mc = {"v3 (q_lora, yarn, sigmoid/noaux_tc, 3 groups, shared, untied)", V3_CFG, 2, 7, 0.0, 0.0};
    model_case(&mc, 1);
}
TEST(model_v3_balance) {
    mcase mc = {"v3 + balance loss alpha 0.3", V3_CFG, 3, 5, 0.3, 0.0};
    model_case(&mc, 2);
}
TEST(model_v2) {
    mcase mc = {"v2 (no q_lora, softmax, group-limited, 2 shared, tied)", V2_CFG, 2, 6, 0.0, 0.0};
    model_case(&mc, 3);
}
TEST(model_v3_mtp) {
    mcase mc = {"v3 + MTP layer (MoE), lambda 0.7, balance 0.2", V3_CFG, 2, 7, 0.2, 0.7};
    model_case(&mc, 5);
}
TEST(model_v2_mtp_tied) {
    mcase mc = {"v2 + MTP layer (MoE), tied head, lambda 0.3", V2_CFG, 2, 6, 0.0, 0.3};
    model_case(&mc, 6);
}
TEST(model_v3_plain) {
    mcase mc = {"v3 (no q_lora, no shared, top-k, tied) + balance", V3B_CFG, 2, 6, 0.1, 0.0};
    model_case(&mc, 4);
}

/* ---- part 3: the policy-gradient loss (train/rl.h) through whole models ----
 * The RL loss written again here in double, from its definition (rl.h,
 * docs/post-training.md): advantages per group, ratio, clipped surrogate,
 * k3 KL, the three averagings; the trainer's fp32 gradient of it
 * (lm_rl_accumulate, micro-batches of 2) against central differences. */

typedef struct rlref {
    lm_rl_opts o;
    const double *reward;        /* [B] */
    const int64_t *group;        /* [B] */
    int64_t n_groups;
    const float *old, *ref;      /* [N] per row: log-probabilities of the row's target */
} rlref;

static double rl_head_loss(const refm *r, const double *logp) {
    const rlref *q = r->ctx;
    int64_t B = r->B, T = r->T;
    double mean[8] = {0}, var[8] = {0}, cnt[8] = {0}, adv[16], ntok[16], total = 0, loss = 0;
    for (int64_t b = 0; b < B; b++) mean[q->group[b]] += q->reward[b], cnt[q->group[b]] += 1;
    for (int64_t g = 0; g < q->n_groups; g++) mean[g] /= cnt[g];
    for (int64_t b = 0; b < B; b++) var[q->group[b]] += pow(q->reward[b] - mean[q->group[b]], 2);
    for (int64_t b = 0; b < B; b++) {
        int64_t g = q->group[b];
        adv[b] = q->reward[b] - mean[g];
        if (q->o.scale_std) adv[b] /= sqrt(var[g] / cnt[g]) + q->o.std_eps;
        ntok[b] = 0;
        for (int64_t t = 0; t < T; t++) ntok[b] += r->tgt[b * T + t] >= 0;
        total += ntok[b];
    }
    for (int64_t b = 0; b < B; b++) {
        double w = q->o.agg == LM_RL_SEQ_MEAN     ? 1.0 / (B * ntok[b])
                   : q->o.agg == LM_RL_TOKEN_MEAN ? 1.0 / total
                                                  : 1.0 / (B * q->o.norm_len);
        for (int64_t t = 0; t < T; t++) {
            int64_t n = b * T + t;
            if (r->tgt[n] < 0) continue;
            double rho = exp(logp[n] - q->old[n]);
            double rc = fmin(fmax(rho, 1 - q->o.clip_low), 1 + q->o.clip_high);
            double sur = fmin(rho * adv[b], rc * adv[b]);
            double k3 = exp(q->ref[n] - logp[n]) - (q->ref[n] - logp[n]) - 1;
            loss += w * (-sur + q->o.beta_kl * k3);
        }
    }
    return loss;
}

static void rl_model_case(const mcase *mc, const lm_rl_opts *opts, uint64_t seed) {
    lm_config cfg;
    lm_error err;
    CHECKF(lm_config_parse(mc->json, strlen(mc->json), mc->name, &cfg, &err) == 0, "%s", err.msg);
    lm_params *p;
    CHECKF(lm_params_create(&cfg, &p, &err) == 0, "%s", err.msg);
    if (test_cur_failed) return;
    lm_params_init_random(p, seed, 0.3);
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        float *w = p->w + t->offset;
        if (t->kind == LM_PARAM_NORM)
            for (int64_t j = 0; j < t->numel; j++) w[j] = (float)(1 + 0.2 * nrand());
        if (strstr(t->name, "embed_tokens"))
            for (int64_t j = 0; j < t->numel; j++) w[j] *= 3;
    }
    enum { B = 3, MAXT = 8 };
    int64_t T = mc->T, N = B * T, V = cfg.vocab_size, L = cfg.num_hidden_layers, k = cfg.num_experts_per_tok;
    /* samples of T + 1 tokens: a prompt of 2 + b, the rest trained but one hole */
    int32_t sid[B][MAXT + 1], ids[B * MAXT], tgt[B * MAXT];
    uint8_t train[B][MAXT + 1];
    float old_s[B][MAXT + 1], ref_s[B][MAXT + 1], old_r[B * MAXT], ref_r[B * MAXT];
    double reward[B] = {1.0, 0.25, 0.5}, logp[B * MAXT];
    int64_t group[B] = {0, 0, 0};
    double *wd = malloc(sizeof(double) * p->n_floats);
    for (int64_t i = 0; i < p->n_floats; i++) wd[i] = p->w[i];
    int32_t *route0 = calloc((size_t)(L * N * k), sizeof(int32_t)), *route1 = calloc((size_t)(L * N * k), sizeof(int32_t));
    rlref q = {*opts, reward, group, 1, old_r, ref_r};
    refm r = {p, wd, B, T, ids, tgt, 0.0, route0, 0, rl_head_loss, logp, &q, 0.0};
    int ready = 0;
    for (int attempt = 0; attempt < 100 && !ready; attempt++) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t <= T; t++) {
                sid[b][t] = (int32_t)(urand() * V);
                train[b][t] = t >= 2 + b && !(b == 0 && t == T - 1);
            }
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                ids[b * T + t] = sid[b][t];
                tgt[b * T + t] = train[b][t + 1] ? sid[b][t + 1] : -1;
                old_r[b * T + t] = ref_r[b * T + t] = 0;
            }
        ref_loss(&r);
        if (r.margin <= 1e-4) continue;
        /* logp_old and ref around the current logp, ratios >= 2e-3 from the clip bounds */
        ready = 1;
        for (int64_t n = 0; n < N; n++) {
            if (tgt[n] < 0) continue;
            old_r[n] = (float)(logp[n] + 0.25 * nrand());
            ref_r[n] = (float)(logp[n] + 0.3 * nrand());
            double rho = exp(logp[n] - old_r[n]);
            if (fabs(rho - (1 - opts->clip_low)) < 2e-3 || fabs(rho - (1 + opts->clip_high)) < 2e-3) ready = 0;
        }
    }
    CHECKF(ready, "no batch with routing margin > 1e-4 and ratios away from the clip bounds");
    for (int64_t b = 0; b < B; b++) {
        old_s[b][0] = ref_s[b][0] = 0;
        for (int64_t t = 0; t < T; t++) old_s[b][t + 1] = old_r[b * T + t], ref_s[b][t + 1] = ref_r[b * T + t];
    }
    double L0 = ref_loss(&r);
    lm_rl_sample smp[B];
    for (int64_t b = 0; b < B; b++)
        smp[b] = (lm_rl_sample){sid[b], T + 1, train[b], old_s[b], ref_s[b], reward[b], group[b]};
    lm_train_opts o = lm_train_opts_default();
    o.batch = 2;
    o.seq = T;
    lm_pool *pool = lm_pool_create(2);
    lm_trainer *tr = lm_trainer_create(p, &o, 2, &err);
    CHECKF(tr != NULL, "%s", err.msg);
    lm_rl_stats st;
    CHECKF(lm_rl_accumulate(tr, pool, opts, smp, B, 1, &st, &err) == 0, "%s", err.msg);
    printf("  %s: RL loss fp32 %.8f, double %.8f, clipped %.2f, routing margin %.2e\n", mc->name, st.loss, L0,
           st.clip_frac, r.margin);
    CHECK_NEAR(st.loss, L0, 1e-7, 1e-5);
    int64_t skipped = 0, tried = 0;
    double worst = 0;
    const char *worst_name = "";
    r.route = route1;
    for (int64_t ti = 0; ti < p->n_tensors; ti++) {
        const lm_ptensor *t = &p->t[ti];
        if (!t->trainable) continue;
        fdcheck ck = {0};
        for (int64_t j = 0; j < t->numel; j++) ck.max_g = fmax(ck.max_g, fabs(p->g[t->offset + j]));
        int64_t picks = t->numel < 6 ? t->numel : 6;
        for (int64_t pi = 0; pi < picks; pi++) {
            int64_t j = picks == t->numel ? pi : (int64_t)(urand() * t->numel);
            if (strstr(t->name, "embed_tokens") && pi % 2 == 0)
                j = (int64_t)ids[(int64_t)(urand() * N)] * cfg.hidden_size + (int64_t)(urand() * cfg.hidden_size);
            double *wp = wd + t->offset + j, s0 = *wp, h = 1e-5 * fmax(1.0, fabs(s0));
            *wp = s0 + h;
            double lp = ref_loss(&r);
            int flip = memcmp(route0, route1, sizeof(int32_t) * L * N * k) != 0;
            *wp = s0 - h;
            double lm = ref_loss(&r);
            flip |= memcmp(route0, route1, sizeof(int32_t) * L * N * k) != 0;
            *wp = s0;
            tried++;
            if (flip) {
                skipped++;
                continue;
            }
            fd_add(&ck, p->g[t->offset + j], (lp - lm) / (2 * h));
        }
        double rel = fd_rel(&ck);
        if (rel > worst) worst = rel, worst_name = t->name;
        if (rel > TOL) printf("  %s: %s max|g| %.3e err %.2e\n", mc->name, t->name, ck.max_g, rel);
        CHECK(rel <= TOL);
    }
    printf("  %s: %lld elements, worst max|g - fd|/max|g| %.2e (%s), %lld skipped (routing flip)\n", mc->name,
           (long long)tried, worst, worst_name, (long long)skipped);
    CHECK(skipped * 20 <= tried);
    lm_trainer_free(tr);
    lm_pool_free(pool);
    lm_params_free(p);
    free(wd), free(route0), free(route1);
}

TEST(rl_grpo_v3) {
    mcase mc = {"GRPO on v3 (q_lora, yarn, MoE, untied)", V3_CFG, 3, 7, 0.0, 0.0};
    lm_rl_opts o = lm_rl_opts_default(); /* std-normalised, sequence mean, clip 0.2, beta 0.04 */
    rl_model_case(&mc, &o, 5);
}
TEST(rl_drgrpo_v2) {
    mcase mc = {"Dr. GRPO on v2 (softmax, tied)", V2_CFG, 3, 6, 0.0, 0.0};
    lm_rl_opts o = lm_rl_opts_default();
    o.scale_std = 0;
    o.agg = LM_RL_SEQ_SUM;
    o.norm_len = 8;
    o.beta_kl = 0.2;
    rl_model_case(&mc, &o, 6);
}
TEST(rl_dapo_v3_plain) {
    mcase mc = {"DAPO on v3 (no q_lora, top-k, tied)", V3B_CFG, 3, 8, 0.0, 0.0};
    lm_rl_opts o = lm_rl_opts_default();
    o.agg = LM_RL_TOKEN_MEAN;
    o.clip_high = 0.28;
    o.beta_kl = 0;
    rl_model_case(&mc, &o, 7);
}

/* The routing choice is piecewise constant: a perturbation large enough to
 * flip it is detected by the reference (this is what the skip guards). */
TEST(routing_flip_detected) {
    lm_config cfg;
    lm_error err;
    CHECK(lm_config_parse(V3B_CFG, sizeof V3B_CFG - 1, "v3b", &cfg, &err) == 0);
    lm_params *p;
    CHECK(lm_params_create(&cfg, &p, &err) == 0);
    lm_params_init_random(p, 9, 0.3);
    double *wd = malloc(sizeof(double) * p->n_floats);
    for (int64_t i = 0; i < p->n_floats; i++) wd[i] = p->w[i];
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, tgt[8] = {2, 3, 4, 5, 6, 7, 8, 9};
    int64_t k = cfg.num_experts_per_tok;
    int32_t r0[8 * 4], r1[8 * 4];
    refm r = {p, wd, 1, 8, ids, tgt, 0, r0, 0, NULL, NULL, NULL, 0.0};
    ref_loss(&r);
    /* a big push on one expert's bias changes the choice of some token */
    r.route = r1;
    wd[p->W.layers[0].gate_bias - p->w + 0] += 10.0;
    ref_loss(&r);
    CHECK(memcmp(r0, r1, sizeof(int32_t) * 8 * k) != 0);
    free(wd);
    lm_params_free(p);
}

int main(void) {
    RUN(rmsnorm);
    RUN(linear);
    RUN(swiglu);
    RUN(rope_yarn);
    RUN(attention_head);
    RUN(cross_entropy);
    RUN(model_v3);
    RUN(model_v3_balance);
    RUN(model_v2);
    RUN(model_v3_plain);
    RUN(model_v3_mtp);
    RUN(model_v2_mtp_tied);
    RUN(routing_flip_detected);
    RUN(rl_grpo_v3);
    RUN(rl_drgrpo_v2);
    RUN(rl_dapo_v3_plain);
    return test_report("test_grad_ops");
}
