/* test_train_bf16.c — mixed-precision training (step.h, LM_PRECISION_BF16):
 *
 *  - lm_tk_round_bf16: round to nearest even (ties, carries into the
 *    exponent, overflow to inf), NaN and inf kept;
 *  - the three products of a Linear under bf16 (forward, dx, dW) are the
 *    bf16 pair chain of docs/arithmetic.md written out here, bit for bit,
 *    on every path (core/bf16gemm.h; test_bf16gemm.c checks the kernel
 *    itself on edge values and against the vdpbf16ps instruction);
 *  - the bf16 weight views (params.h): every matrix holds the rounded
 *    weights, every vector is the fp32 one;
 *  - a small MoE model (q LoRA, shared expert, sigmoid router) learning a
 *    deterministic next-token rule for 200 steps: fp32 and bf16 losses both
 *    fall below 10% of the first, and at every step |bf16 - fp32| <= 0.01 +
 *    1% of fp32's loss, in nats (docs/train-benchmarks.md has a longer
 *    comparison on a bench preset);
 *  - determinism: the bf16 weights after 12 steps are the same bytes at 1, 2
 *    and 3 threads and on every ISA path, and differ from fp32's (the mode is on). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "test.h"
#include "train/params.h"
#include "train/step.h"
#include "train/tkernels.h"

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

TEST(round_bf16_values) {
    float x[] = {1.0f + 0x1p-8f,           /* tie, even below: 1 */
                 1.0f + 3 * 0x1p-8f,       /* tie, even above: 1 + 2^-6 */
                 1.0f + 0x1p-8f + 0x1p-20f, /* above the tie: 1 + 2^-7 */
                 -(2.0f - 0x1p-9f),        /* carries into the exponent: -2 */
                 bits_f(0x7f7fffffu),      /* FLT_MAX: inf */
                 bits_f(0x00000001u),      /* smallest subnormal: +0 */
                 bits_f(0x7fc00001u),      /* NaN */
                 -INFINITY};
    float want[] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -2.0f, INFINITY, 0.0f, NAN, -INFINITY};
    lm_tk_round_bf16(NULL, x, 8);
    for (int i = 0; i < 8; i++) {
        if (want[i] != want[i]) CHECKF(x[i] != x[i], "element %d stays NaN", i);
        else CHECKF(f_bits(x[i]) == f_bits(want[i]), "element %d: %a, want %a", i, x[i], want[i]);
    }
}

static void fill(float *x, int64_t n, uint32_t seed) {
    uint32_t s = seed * 747796405u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 3.0f;
    }
}

/* The pair chain written out (docs/arithmetic.md), for operands whose
 * products and sums stay far above 2^-126 (no flush can happen): element
 * (m, n) over k of a[m*sam + k*sak] b[n*sbn + k*sbk], both rounded to bf16,
 * the odd k of each pair first, an odd K's last pair with a zero. */
static float pair_chain(const float *a, int64_t sam, int64_t sak, const float *b, int64_t sbn, int64_t sbk, int64_t m,
                        int64_t n, int64_t K) {
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k += 2) {
        float a1 = 0, b1 = 0, a0 = a[m * sam + k * sak], b0 = b[n * sbn + k * sbk];
        if (k + 1 < K) a1 = a[m * sam + (k + 1) * sak], b1 = b[n * sbn + (k + 1) * sbk];
        lm_tk_round_bf16(NULL, &a1, 1), lm_tk_round_bf16(NULL, &b1, 1);
        lm_tk_round_bf16(NULL, &a0, 1), lm_tk_round_bf16(NULL, &b0, 1);
        acc = fmaf(a1, b1, acc);
        acc = fmaf(a0, b0, acc);
    }
    return acc;
}

/* The three products of a Linear under bf16 (forward through lm_matmul on
 * the bf16 weight view, dx and dW) are the pair chain, on every path; odd
 * sizes so K is odd in each. */
TEST(bf16_products_are_the_pair_chain) {
    enum { N = 19, OUT = 23, IN = 41 };
    float W[OUT * IN], dy[N * OUT], x[N * IN];
    fill(W, OUT * IN, 1), fill(dy, N * OUT, 2), fill(x, N * IN, 3);
    uint16_t W16[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) W16[i] = lm_f32_to_bf16(W[i]);
    lm_mat Wb = {.dtype = LM_DTYPE_BF16, .rows = OUT, .cols = IN, .data = W16, .bf16_pairs = 1};
    static float ws[1 << 14];
    CHECK(lm_tk_ws_floats(N, OUT, IN) <= (int64_t)(sizeof ws / sizeof ws[0]));
    float y[N * OUT], y_r[N * OUT], dx_b[N * IN], dx_r[N * IN], dw_b[OUT * IN], dw_r[OUT * IN], dx_f[N * IN];
    for (int64_t t = 0; t < N; t++)
        for (int64_t o = 0; o < OUT; o++) y_r[t * OUT + o] = pair_chain(x, IN, 1, W, IN, 1, t, o, IN);
    lm_isa old = lm_kernel_isa();
    for (int isa = LM_ISA_SCALAR; isa <= (int)lm_cpu_isa(); isa++) {
        lm_set_isa((lm_isa)isa);
        const char *path = lm_isa_name((lm_isa)isa);
        lm_matmul(NULL, y, x, N, &Wb);
        CHECKF(memcmp(y, y_r, sizeof y) == 0, "%s: forward", path);
        for (int acc = 0; acc < 2; acc++) {
            fill(dx_b, N * IN, 4), fill(dx_r, N * IN, 4), fill(dx_f, N * IN, 4);
            for (int64_t t = 0; t < N; t++)
                for (int64_t i = 0; i < IN; i++) {
                    float d = pair_chain(dy, OUT, 1, W, 1, IN, t, i, OUT);
                    dx_r[t * IN + i] = acc ? dx_r[t * IN + i] + d : d;
                }
            lm_tk_linear_dx(NULL, dx_b, dy, N, W, OUT, IN, acc, ws, 1);
            lm_tk_linear_dx(NULL, dx_f, dy, N, W, OUT, IN, acc, ws, 0);
            CHECKF(memcmp(dx_b, dx_r, sizeof dx_b) == 0, "%s: dx, accumulate %d", path, acc);
            CHECKF(memcmp(dx_b, dx_f, sizeof dx_b) != 0, "%s: dx, accumulate %d: bf16 rounds", path, acc);
        }
        fill(dw_b, OUT * IN, 5), fill(dw_r, OUT * IN, 5);
        for (int64_t o = 0; o < OUT; o++)
            for (int64_t i = 0; i < IN; i++) dw_r[o * IN + i] += pair_chain(dy, 1, OUT, x, 1, IN, o, i, N);
        lm_tk_linear_dw(NULL, dw_b, dy, x, N, OUT, IN, ws, 1);
        CHECKF(memcmp(dw_b, dw_r, sizeof dw_b) == 0, "%s: dW", path);
    }
    lm_set_isa(old);
}

/* ---- a small model learning a rule ---- */

static const char SMALL[] =
    "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"vocab_size\":48,\"hidden_size\":32,"
    "\"intermediate_size\":48,\"moe_intermediate_size\":16,\"num_hidden_layers\":2,\"first_k_dense_replace\":1,"
    "\"num_attention_heads\":2,\"kv_lora_rank\":16,\"q_lora_rank\":24,\"qk_nope_head_dim\":16,"
    "\"qk_rope_head_dim\":8,\"v_head_dim\":16,\"n_routed_experts\":4,\"n_shared_experts\":1,"
    "\"num_experts_per_tok\":2,\"n_group\":2,\"topk_group\":1,\"topk_method\":\"noaux_tc\","
    "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":64,\"tie_word_embeddings\":false}";

enum { B = 4, T = 24, V = 48 };

/* Batch s: sequences of x -> (5x + 3 + [x odd]) mod V from a start per
 * (step, row): the next token depends on the current one only. */
static void batch_of(int64_t s, int32_t *ids, int32_t *tgt) {
    for (int b = 0; b < B; b++) {
        uint32_t x = (uint32_t)((s * 7919 + b * 104729 + 13) % V);
        for (int t = 0; t <= T; t++) {
            if (t < T) ids[b * T + t] = (int32_t)x;
            if (t > 0) tgt[b * T + t - 1] = (int32_t)x;
            x = (5 * x + 3 + (x & 1)) % V;
        }
    }
}

/* Trains nsteps; losses into loss[] (may be NULL); returns the params. */
static lm_params *train(lm_precision prec, int threads, int64_t nsteps, double *loss) {
    lm_config cfg;
    lm_error err;
    lm_params *p = NULL;
    if (lm_config_parse(SMALL, sizeof SMALL - 1, "small", &cfg, &err) || lm_params_create(&cfg, &p, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    lm_params_init_random(p, 5, 0.05);
    lm_train_opts o = lm_train_opts_default();
    o.batch = B;
    o.seq = T;
    o.precision = prec;
    lm_pool *pool = lm_pool_create(threads);
    lm_trainer *tr = lm_trainer_create(p, &o, threads, &err);
    if (!tr) {
        printf("  %s\n", err.msg);
        lm_pool_free(pool);
        lm_params_free(p);
        return NULL;
    }
    int32_t ids[B * T], tgt[B * T];
    for (int64_t s = 0; s < nsteps; s++) {
        lm_train_stats st;
        batch_of(s, ids, tgt);
        if (lm_train_step(tr, pool, ids, tgt, 3e-3, &st, &err)) printf("  %s\n", err.msg);
        if (loss) loss[s] = st.loss;
    }
    lm_trainer_free(tr);
    lm_pool_free(pool);
    return p;
}

/* Every matrix of the bf16 views holds w rounded (rows read back through
 * lm_mat_row), every vector is w's own fp32 one. */
static int check_mat(const lm_mat *b, const lm_mat *f) {
    if (b->dtype != LM_DTYPE_BF16 || b->rows != f->rows || b->cols != f->cols) return 0;
    float rb[64], rf[64];
    if (b->cols > 64) return 0;
    for (int64_t r = 0; r < b->rows; r++) {
        lm_mat_row(b, r, rb);
        memcpy(rf, (const float *)f->data + r * f->cols, sizeof(float) * (size_t)f->cols);
        lm_tk_round_bf16(NULL, rf, f->cols);
        if (memcmp(rb, rf, sizeof(float) * (size_t)f->cols)) return 0;
    }
    return 1;
}

TEST(bf16_views_hold_rounded_weights) {
    lm_config cfg;
    lm_error err;
    lm_params *p = NULL;
    if (lm_config_parse(SMALL, sizeof SMALL - 1, "small", &cfg, &err) || lm_params_create(&cfg, &p, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    lm_params_init_random(p, 9, 0.05);
    uint16_t *w16 = malloc(sizeof(uint16_t) * (size_t)p->n_floats);
    lm_weights Wb;
    void *ptrs = NULL;
    lm_params_to_bf16(p, w16, NULL);
    CHECK(lm_params_bf16_views(p, w16, &Wb, &ptrs, &err) == 0);
    const lm_layer *b0 = &Wb.layers[0], *f0 = &p->W.layers[0], *b1 = &Wb.layers[1], *f1 = &p->W.layers[1];
    CHECK(check_mat(&Wb.head, &p->W.head) && check_mat(&Wb.embed, &p->W.embed));
    CHECK(check_mat(&b0->wq_a, &f0->wq_a) && check_mat(&b0->wq_b, &f0->wq_b) && check_mat(&b0->wkv_a, &f0->wkv_a));
    CHECK(check_mat(&b0->wkv_b, &f0->wkv_b) && check_mat(&b0->wo, &f0->wo) && check_mat(&b0->w2, &f0->w2));
    CHECK(b1->is_moe && check_mat(&b1->gate, &f1->gate) && check_mat(&b1->sw3, &f1->sw3));
    for (int e = 0; e < 4; e++)
        CHECKF(check_mat(&b1->ew1[e], &f1->ew1[e]) && check_mat(&b1->ew2[e], &f1->ew2[e]) &&
                   check_mat(&b1->ew3[e], &f1->ew3[e]), "expert %d", e);
    CHECK(b0->attn_norm == f0->attn_norm && b0->q_norm == f0->q_norm && b1->gate_bias == f1->gate_bias &&
          Wb.final_norm == p->W.final_norm);
    free(ptrs);
    free(w16);
    lm_params_free(p);
}

TEST(bf16_loss_curve_follows_f32) {
    enum { STEPS = 200 };
    double lf[STEPS], lb[STEPS], worst = 0, worst_abs = 0;
    int at = 0;
    lm_params *a = train(LM_PRECISION_F32, 1, STEPS, lf), *b = train(LM_PRECISION_BF16, 1, STEPS, lb);
    CHECK(a && b);
    if (a && b) {
        for (int s = 0; s < STEPS; s++) {
            /* the tolerance's share used: |bf16 - f32| <= 0.01 + 0.01 f32 (nats) */
            double used = fabs(lb[s] - lf[s]) / (0.01 + 0.01 * lf[s]);
            if (used > worst) worst = used, at = s;
            if (fabs(lb[s] - lf[s]) > worst_abs) worst_abs = fabs(lb[s] - lf[s]);
        }
        printf("  loss f32 %.4f -> %.4f, bf16 %.4f -> %.4f; max |bf16 - f32| %.2e nats; worst step %d uses %.0f%% "
               "of the tolerance\n", lf[0], lf[STEPS - 1], lb[0], lb[STEPS - 1], worst_abs, at + 1, 100 * worst);
        CHECK(lf[STEPS - 1] < 0.1 * lf[0] && lb[STEPS - 1] < 0.1 * lb[0]);
        CHECK(worst <= 1.0);
    }
    lm_params_free(a);
    lm_params_free(b);
}

TEST(bf16_deterministic) {
    enum { STEPS = 12 };
    lm_params *ref = train(LM_PRECISION_BF16, 1, STEPS, NULL), *f = train(LM_PRECISION_F32, 1, STEPS, NULL);
    CHECK(ref && f);
    if (!ref || !f) return;
    size_t bytes = (size_t)ref->n_floats * sizeof(float);
    CHECK(memcmp(ref->w, f->w, bytes) != 0);
    for (int threads = 2; threads <= 3; threads++) {
        lm_params *q = train(LM_PRECISION_BF16, threads, STEPS, NULL);
        CHECKF(q && memcmp(ref->w, q->w, bytes) == 0 && memcmp(ref->v, q->v, bytes) == 0, "%d threads", threads);
        lm_params_free(q);
    }
    lm_isa old = lm_kernel_isa();
    for (int isa = LM_ISA_SCALAR; isa < (int)lm_cpu_isa(); isa++) {
        lm_set_isa((lm_isa)isa);
        lm_params *q = train(LM_PRECISION_BF16, 2, STEPS, NULL);
        CHECKF(q && memcmp(ref->w, q->w, bytes) == 0, "isa %s", lm_isa_name((lm_isa)isa));
        lm_params_free(q);
    }
    lm_set_isa(old);
    lm_params_free(ref);
    lm_params_free(f);
}

int main(void) {
    RUN(round_bf16_values);
    RUN(bf16_products_are_the_pair_chain);
    RUN(bf16_views_hold_rounded_weights);
    RUN(bf16_loss_curve_follows_f32);
    RUN(bf16_deterministic);
    return test_report("test_train_bf16");
}
