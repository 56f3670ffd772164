/* forward.c — the DeepSeek-V2/V3 forward pass over a chunk of tokens with a
 * KV cache, in two attention modes (naive / latent, see model.h).
 *
 * Conventions follow docs/deepseek-conventions.md; the numbers in
 * comments ("conv. 13") refer to its items. Shapes are written beside each
 * buffer: T = tokens in the chunk, S = positions attended (cache + chunk).
 *
 * Threading: matmuls split their outputs across the pool; attention gives
 * each thread whole heads; everything else is cheap and runs on the caller.
 * No result depends on the number of threads. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/blocks.h"
#include "core/mathfn.h"
#include "model/model.h"
#include "model/route.h"

/* What a diagnostic forward (see lm_infer_forward) found: the first block
 * output holding a NaN or an infinity. */
typedef struct diag {
    int found;
    char what[256];              /* the tensor ('...') or computation that produced it */
    int64_t layer;               /* -1: before or after the decoder layers */
    int64_t pos;                 /* its position in the sequence */
    const char *kind;            /* "NaN", "inf", "-inf" */
} diag;

struct lm_infer {
    const lm_model *m;
    diag *diag;                  /* non-NULL during a diagnostic forward: check every block output */
    lm_attn_mode mode;
    int64_t max_ctx, max_chunk, pos;
    int nthreads;
    int64_t kv_layer_floats;     /* floats per layer in kv */
    float *kv;                   /* latent: [L][max_ctx][C+dr]; naive: [L]{K [H][max_ctx][dn+dr], V [H][max_ctx][dv]} */
    double *inv_freq;            /* [dr/2] */
    float *cos_t, *sin_t;        /* [max_chunk][dr/2] for the chunk's positions */
    float *x;                    /* [T, D] residual stream */
    float *xn;                   /* [T, D] normalised input of a block */
    float *q;                    /* [T, H*(dn+dr)] */
    float *qa;                   /* [T, Q] */
    float *kva;                  /* [T, C+dr] */
    float *lat;                  /* [T, C] contiguous latent (naive path input to kv_b) */
    float *kvb;                  /* [T, H*(dn+dv)] */
    float *attn;                 /* [T, H*dv] */
    float *ffn;                  /* [T, D] block output */
    float *h1, *h3;              /* [T, I_max] */
    float *gate;                 /* [T, E] router logits -> scores */
    int32_t *route_idx;          /* [T, k] */
    float *route_w;              /* [T, k] */
    float *slots;                /* [T, k, D] routed expert outputs */
    float *xe, *ye;              /* [T, D] gathered rows of one expert */
    int32_t *eoff;               /* [E+1] expert e's slots are erow[eoff[e] .. eoff[e+1]) */
    int32_t *erow;               /* [T, k] slots grouped by expert */
    int32_t *efill;              /* [E] grouping counters */
    float *latT;                 /* values of the attended positions, transposed: latent [C, S]; naive [H, dv, S] */
    float *thr;                  /* per-thread attention scratch */
    int64_t thr_floats, thr_sc_floats, thr_od, thr_qb;
    float *w_absorb;             /* latent mode: per layer W_UK^T [H][C][dn] then W_UV [H][dv][C], F32 */
    int64_t absorb_layer_floats;
    lm_arena arena;              /* the one allocation behind every buffer */
};

/* Query rows per attention block: each block attends only to the keys up to
 * its last row, so a causal prefill skips most of the masked triangle. */
enum { ATTN_QBLOCK = 64 };

/* ---- allocation ---- */

static void layout(lm_infer *s, lm_arena *p) {
    const lm_config *c = &s->m->cfg;
    const lm_dims *d = &s->m->dims;
    int64_t T = s->max_chunk, D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, Q = d->Q, E = d->E,
            k = d->k;
    int64_t Imax = d->I;
    int64_t Ims = c->moe_intermediate_size * (c->n_shared_experts > 1 ? c->n_shared_experts : 1);
    if (Ims > Imax) Imax = Ims;
    int64_t F = sizeof(float);
    s->kv = lm_arena_take(p, (size_t)(c->num_hidden_layers * s->kv_layer_floats * F));
    s->inv_freq = lm_arena_take(p, (size_t)(dr / 2) * sizeof(double));
    s->cos_t = lm_arena_take(p, (size_t)(T * dr / 2 * F));
    s->sin_t = lm_arena_take(p, (size_t)(T * dr / 2 * F));
    s->x = lm_arena_take(p, (size_t)(T * D * F));
    s->xn = lm_arena_take(p, (size_t)(T * D * F));
    s->q = lm_arena_take(p, (size_t)(T * H * (dn + dr) * F));
    s->qa = lm_arena_take(p, (size_t)(T * (Q ? Q : 1) * F));
    s->kva = lm_arena_take(p, (size_t)(T * (C + dr) * F));
    s->lat = lm_arena_take(p, (size_t)(T * C * F));
    s->kvb = lm_arena_take(p, (size_t)(T * H * (dn + dv) * F));
    s->attn = lm_arena_take(p, (size_t)(T * H * dv * F));
    s->ffn = lm_arena_take(p, (size_t)(T * D * F));
    s->h1 = lm_arena_take(p, (size_t)(T * Imax * F));
    s->h3 = lm_arena_take(p, (size_t)(T * Imax * F));
    if (E) {
        s->gate = lm_arena_take(p, (size_t)(T * E * F));
        s->route_idx = lm_arena_take(p, (size_t)(T * k) * sizeof(int32_t));
        s->route_w = lm_arena_take(p, (size_t)(T * k * F));
        s->slots = lm_arena_take(p, (size_t)(T * k * D * F));
        s->xe = lm_arena_take(p, (size_t)(T * D * F));
        s->ye = lm_arena_take(p, (size_t)(T * D * F));
        s->eoff = lm_arena_take(p, (size_t)(E + 1) * sizeof(int32_t));
        s->erow = lm_arena_take(p, (size_t)(T * k) * sizeof(int32_t));
        s->efill = lm_arena_take(p, (size_t)E * sizeof(int32_t));
    }
    /* Per thread, for one head and one block of QB query rows: q [QB, qd];
     * scores [QB, S] (also a [QB, C] and [QB, dv] temporary); head output
     * [QB, od] (also q_nope [QB, dn]). Shared: the values of the attended
     * positions, transposed for the P.V product (latent: c^T [C, S];
     * naive: V^T [H, dv, S]). */
    int64_t QB = T < ATTN_QBLOCK ? T : ATTN_QBLOCK;
    int64_t qd = (s->mode == LM_ATTN_LATENT ? C : dn) + dr;
    int64_t sd = s->max_ctx, od = C > dv ? C : dv;
    if (sd < C) sd = C;
    if (sd < dv) sd = dv;
    if (od < dn) od = dn;
    s->thr_sc_floats = QB * sd;
    s->thr_od = od;
    s->thr_qb = QB;
    s->thr_floats = ((QB * qd + QB * sd + QB * od) + 15) & ~(int64_t)15;
    if (s->mode == LM_ATTN_LATENT) s->latT = lm_arena_take(p, (size_t)(C * s->max_ctx * F));
    else s->latT = lm_arena_take(p, (size_t)(H * dv * s->max_ctx * F));
    s->thr = lm_arena_take(p, (size_t)(s->nthreads * s->thr_floats * F));
    if (s->mode == LM_ATTN_LATENT) {
        s->absorb_layer_floats = H * (dn + dv) * C;
        s->w_absorb = lm_arena_take(p, (size_t)(c->num_hidden_layers * s->absorb_layer_floats * F));
    }
}

/* W_UK^T and W_UV of every layer in F32, for the absorbed path (conv. 11). */
static void prepare_absorb(lm_infer *s) {
    const lm_dims *d = &s->m->dims;
    int64_t H = d->H, dn = d->dn, dv = d->dv, C = d->C;
    float *row = s->thr; /* scratch: C floats, before any forward runs */
    for (int64_t l = 0; l < d->L; l++) {
        const lm_mat *W = &s->m->w.layers[l].wkv_b;
        float *uk_t = s->w_absorb + l * s->absorb_layer_floats; /* [H][C][dn] */
        float *uv = uk_t + H * C * dn;                           /* [H][dv][C] */
        for (int64_t h = 0; h < H; h++) {
            for (int64_t j = 0; j < dn; j++) {
                lm_mat_row(W, h * (dn + dv) + j, row);
                for (int64_t i = 0; i < C; i++) uk_t[(h * C + i) * dn + j] = row[i];
            }
            for (int64_t j = 0; j < dv; j++) lm_mat_row(W, h * (dn + dv) + dn + j, uv + (h * dv + j) * C);
        }
    }
}

lm_infer *lm_infer_create(const lm_model *m, lm_attn_mode mode, int64_t max_ctx, int64_t max_chunk, int nthreads,
                          lm_error *err) {
    if (max_ctx < 1 || max_chunk < 1) {
        lm_fail(err, "context (%lld) and chunk (%lld) sizes must be positive", (long long)max_ctx, (long long)max_chunk);
        return NULL;
    }
    if (max_chunk > max_ctx) max_chunk = max_ctx;
    lm_infer *s = calloc(1, sizeof *s);
    if (!s) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    s->m = m;
    s->mode = mode;
    s->max_ctx = max_ctx;
    s->max_chunk = max_chunk;
    s->nthreads = nthreads < 1 ? 1 : nthreads;
    const lm_config *c = &m->cfg;
    s->kv_layer_floats = max_ctx * lm_kv_floats_per_token(c, mode);
    layout(s, &s->arena);
    size_t bytes = s->arena.bytes;
    /* Refuse absurd requests before touching memory (a huge max_ctx). */
    if (bytes > ((size_t)1 << 40)) {
        lm_fail(err, "inference buffers would need %.1f GiB (context %lld): too large", bytes / 1073741824.0,
                (long long)max_ctx);
        free(s);
        return NULL;
    }
    if (lm_arena_map(&s->arena)) {
        lm_fail(err, "cannot allocate %.1f MiB of inference buffers", bytes / 1048576.0);
        free(s);
        return NULL;
    }
    layout(s, &s->arena);
    lm_config_rope_inv_freq(c, s->inv_freq);
    if (mode == LM_ATTN_LATENT) prepare_absorb(s);
    return s;
}

void lm_infer_free(lm_infer *s) {
    if (!s) return;
    lm_arena_unmap(&s->arena);
    free(s);
}

void lm_infer_reset(lm_infer *s) { s->pos = 0; }
int64_t lm_infer_pos(const lm_infer *s) { return s->pos; }
void lm_infer_truncate(lm_infer *s, int64_t n) {
    if (n >= 0 && n < s->pos) s->pos = n;
}

int64_t lm_infer_kv_bytes_per_token(const lm_infer *s) {
    return lm_kv_floats_per_token(&s->m->cfg, s->mode) * s->m->cfg.num_hidden_layers * (int64_t)sizeof(float);
}

int lm_infer_copy_cache(lm_infer *dst, const lm_infer *src, lm_error *err) {
    if (dst->m != src->m || dst->mode != src->mode)
        return lm_fail(err, "cache copy between different models or attention modes");
    if (src->pos > dst->max_ctx) return lm_fail(err, "cache copy: %lld positions do not fit in %lld", (long long)src->pos,
                                                (long long)dst->max_ctx);
    const lm_config *c = &src->m->cfg;
    int64_t L = c->num_hidden_layers;
    for (int64_t l = 0; l < L; l++) {
        const float *sl = src->kv + l * src->kv_layer_floats;
        float *dl = dst->kv + l * dst->kv_layer_floats;
        if (src->mode == LM_ATTN_LATENT) {
            int64_t w = c->kv_lora_rank + c->qk_rope_head_dim;
            memcpy(dl, sl, (size_t)(src->pos * w) * sizeof(float));
        } else {
            int64_t H = c->num_attention_heads, kd = c->qk_nope_head_dim + c->qk_rope_head_dim, vd = c->v_head_dim;
            for (int64_t h = 0; h < H; h++) {
                memcpy(dl + h * dst->max_ctx * kd, sl + h * src->max_ctx * kd, (size_t)(src->pos * kd) * sizeof(float));
                memcpy(dl + H * dst->max_ctx * kd + h * dst->max_ctx * vd, sl + H * src->max_ctx * kd + h * src->max_ctx * vd,
                       (size_t)(src->pos * vd) * sizeof(float));
            }
        }
    }
    dst->pos = src->pos;
    return 0;
}

/* ---- non-finite diagnosis ---- */

/* The first row of buf [rows, width] holding a non-finite value, or -1. */
static int64_t bad_row(const float *buf, int64_t rows, int64_t width, const char **kind) {
    int64_t i = lm_first_nonfinite(buf, LM_DTYPE_F32, rows * width);
    if (i < 0) return -1;
    *kind = lm_nonfinite_name(buf, LM_DTYPE_F32, i);
    return i / width;
}

static void note(lm_infer *s, int64_t layer, int64_t pos, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void note(lm_infer *s, int64_t layer, int64_t pos, const char *kind, const char *fmt, ...) {
    diag *d = s->diag;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->what, sizeof d->what, fmt, ap);
    va_end(ap);
    d->found = 1;
    d->layer = layer;
    d->pos = pos;
    d->kind = kind;
}

/* In a diagnostic forward: records and returns 1 when rows [T, width] of buf
 * (row t at position pos0 + t) hold a non-finite value; fmt names what
 * produced them. Costs one pointer test otherwise. */
#define DIAG(buf, T, width, layer, pos0, ...)                                               \
    do {                                                                                    \
        const char *kind_;                                                                  \
        int64_t row_;                                                                       \
        if (s->diag && (row_ = bad_row((buf), (T), (width), &kind_)) >= 0) {                \
            note(s, (layer), (pos0) + row_, kind_, __VA_ARGS__);                            \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)

/* ---- attention ---- */

typedef struct attn_job {
    lm_infer *s;
    int64_t layer;
    int64_t t0, nb;              /* the block: chunk rows t0 .. t0+nb-1 */
    int64_t pos0;                /* position of chunk row 0 */
    int64_t S;                   /* keys attended: positions 0 .. S-1 */
    int64_t next_head;           /* heads are claimed one at a time (atomic) */
} attn_job;

/* Scale, causal mask by absolute position (conv. 12), softmax: row t of
 * scores[T, S] keeps keys 0..pos0+t. */
static void masked_softmax(float *scores, int64_t T, int64_t S, int64_t pos0, float scale) {
    for (int64_t t = 0; t < T; t++) {
        float *row = scores + t * S;
        int64_t n = pos0 + t + 1;
        for (int64_t j = 0; j < n; j++) row[j] *= scale;
        lm_softmax(row, n);
        for (int64_t j = n; j < S; j++) row[j] = 0.0f;
    }
}

static void attn_heads(void *ctx, int ith, int nth) {
    attn_job *job = ctx;
    lm_infer *s = job->s;
    const lm_dims *d = &s->m->dims;
    int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, nb = job->nb, S = job->S,
            pos = job->pos0 + job->t0;
    (void)nth;
    float scale = (float)lm_config_softmax_scale(&s->m->cfg);
    int latent = s->mode == LM_ATTN_LATENT;
    int64_t qd = (latent ? C : dn) + dr;
    float *qh = s->thr + ith * s->thr_floats; /* [nb, qd] */
    float *sc = qh + s->thr_qb * qd;          /* [nb, S] */
    float *oh = sc + s->thr_sc_floats;        /* [nb, C or dv] */
    const float *kv = s->kv + job->layer * s->kv_layer_floats;
    int64_t qstride = H * (dn + dr);
    /* Whole heads, claimed in turn: a head is computed the same way by
     * whichever thread takes it, and a late worker just finds none left. */
    for (int64_t h; (h = __atomic_fetch_add(&job->next_head, 1, __ATOMIC_RELAXED)) < H;) {
        const float *qsrc = s->q + job->t0 * qstride + h * (dn + dr);
        if (latent) {
            /* q_lat = q_nope @ W_UK[h] (conv. 11), then [q_lat | q_pe]. */
            const float *uk_t = s->w_absorb + job->layer * s->absorb_layer_floats + h * C * dn;
            const float *uv = s->w_absorb + job->layer * s->absorb_layer_floats + H * C * dn + h * dv * C;
            for (int64_t t = 0; t < nb; t++) memcpy(oh + t * dn, qsrc + t * qstride, (size_t)dn * sizeof(float));
            lm_mat wuk = lm_f32_mat(uk_t, C, dn);
            lm_matmul(NULL, sc, oh, nb, &wuk); /* sc used as [nb, C] temp */
            for (int64_t t = 0; t < nb; t++) {
                memcpy(qh + t * qd, sc + t * C, (size_t)C * sizeof(float));
                memcpy(qh + t * qd + C, qsrc + t * qstride + dn, (size_t)dr * sizeof(float));
            }
            lm_mat keys = lm_f32_mat(kv, S, C + dr);
            lm_matmul(NULL, sc, qh, nb, &keys);
            masked_softmax(sc, nb, S, pos, scale);
            /* o_lat[nb, C] = P[nb, S] @ c[S, C], as a matmul against c^T. */
            lm_mat lt = lm_f32_mat(s->latT, C, S);
            lm_matmul(NULL, oh, sc, nb, &lt);
            /* out[h] = W_UV[h] @ o_lat, written straight into attn[T, H*dv]. */
            lm_mat wuv = lm_f32_mat(uv, dv, C);
            lm_matmul(NULL, sc, oh, nb, &wuv);
            for (int64_t t = 0; t < nb; t++)
                memcpy(s->attn + (job->t0 + t) * H * dv + h * dv, sc + t * dv, (size_t)dv * sizeof(float));
        } else {
            const float *K = kv + h * s->max_ctx * (dn + dr);
            for (int64_t t = 0; t < nb; t++) memcpy(qh + t * qd, qsrc + t * qstride, (size_t)qd * sizeof(float));
            lm_mat keys = lm_f32_mat(K, S, dn + dr);
            lm_matmul(NULL, sc, qh, nb, &keys);
            masked_softmax(sc, nb, S, pos, scale);
            lm_mat vm = lm_f32_mat(s->latT + h * dv * S, dv, S);
            lm_matmul(NULL, oh, sc, nb, &vm);
            for (int64_t t = 0; t < nb; t++)
                memcpy(s->attn + (job->t0 + t) * H * dv + h * dv, oh + t * dv, (size_t)dv * sizeof(float));
        }
    }
}

/* The values of positions 0..S-1 of layer l, transposed into s->latT. */
static void transpose_values(lm_infer *s, const float *kv, int64_t S) {
    const lm_dims *d = &s->m->dims;
    int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C;
    if (s->mode == LM_ATTN_LATENT) {
        for (int64_t j = 0; j < S; j++)
            for (int64_t i = 0; i < C; i++) s->latT[i * S + j] = kv[j * (C + dr) + i];
        return;
    }
    for (int64_t h = 0; h < H; h++) {
        const float *V = kv + H * s->max_ctx * (dn + dr) + h * s->max_ctx * dv;
        float *vt = s->latT + h * dv * S;
        for (int64_t j = 0; j < S; j++)
            for (int64_t i = 0; i < dv; i++) vt[i * S + j] = V[j * dv + i];
    }
}

/* The cached K/V (naive) or latent (latent mode) of positions 0..n-1 of
 * layer l: only a diagnostic forward looks, for values an earlier call left. */
static int64_t bad_cache_pos(const lm_infer *s, int64_t l, int64_t n, const char **kind) {
    const lm_config *c = &s->m->cfg;
    const float *kv = s->kv + l * s->kv_layer_floats;
    if (s->mode == LM_ATTN_LATENT) return bad_row(kv, n, c->kv_lora_rank + c->qk_rope_head_dim, kind);
    int64_t H = c->num_attention_heads, kd = c->qk_nope_head_dim + c->qk_rope_head_dim, vd = c->v_head_dim;
    int64_t first = -1;
    for (int64_t h = 0; h < H; h++) {
        const char *k;
        int64_t a = bad_row(kv + h * s->max_ctx * kd, n, kd, &k);
        if (a >= 0 && (first < 0 || a < first)) first = a, *kind = k;
        a = bad_row(kv + H * s->max_ctx * kd + h * s->max_ctx * vd, n, vd, &k);
        if (a >= 0 && (first < 0 || a < first)) first = a, *kind = k;
    }
    return first;
}

/* The diagnostic check of each stage of the attention projection. */
typedef struct proj_check {
    lm_infer *s;
    int64_t layer, pos0;
} proj_check;

static int check_projection(void *ctx, lm_proj_stage stage, const float *buf, int64_t rows, int64_t width) {
    const proj_check *pc = ctx;
    lm_infer *s = pc->s;
    const char *kind;
    int64_t row = bad_row(buf, rows, width, &kind);
    if (row < 0) return 0;
    static const char *const tensor[] = {
        [LM_PROJ_Q_A] = "q_a_proj.weight", [LM_PROJ_Q_NORM] = "q_a_layernorm.weight", [LM_PROJ_Q] = "q_b_proj.weight",
        [LM_PROJ_KV_A] = "kv_a_proj_with_mqa.weight", [LM_PROJ_KV_NORM] = "kv_a_layernorm.weight"};
    const char *name = stage == LM_PROJ_Q && !s->m->dims.Q ? "q_proj.weight" : tensor[stage];
    note(s, pc->layer, pc->pos0 + row, kind, "'model.layers.%lld.self_attn.%s'", (long long)pc->layer, name);
    return 1;
}

static int attention(lm_infer *s, lm_pool *pool, int64_t l, int64_t T, int64_t pos0) {
    const lm_dims *d = &s->m->dims;
    const lm_layer *L = &s->m->w.layers[l];
    int64_t D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C;
    long long ll = (long long)l;
    for (int64_t t = 0; t < T; t++) lm_rmsnorm(s->xn + t * D, s->x + t * D, L->attn_norm, D, d->eps);
    DIAG(s->xn, T, D, l, pos0, "'model.layers.%lld.input_layernorm.weight'", ll);
    /* The latent is normalised and its key roped in place in kva. */
    proj_check pc = {s, l, pos0};
    lm_attn_proj proj = {.norm = lm_norm_row_kernel, .cos_t = s->cos_t, .sin_t = s->sin_t, .rope_period = T,
                         .qa = s->qa, .qa_n = s->qa, .q = s->q, .kva = s->kva, .c_n = s->kva, .c_stride = C + dr,
                         .kpe = s->kva + C, .kpe_stride = C + dr, .check = s->diag ? check_projection : NULL,
                         .check_ctx = &pc};
    if (lm_attn_project(pool, d, L, s->xn, T, &proj)) return 1;
    if (s->diag && pos0 > 0) {
        const char *kind;
        int64_t p = bad_cache_pos(s, l, pos0, &kind);
        if (p >= 0) {
            note(s, l, p, kind, "the KV cache of layer %lld (written by an earlier forward)", ll);
            return 1;
        }
    }
    float *kv = s->kv + l * s->kv_layer_floats;
    if (s->mode == LM_ATTN_LATENT) {
        memcpy(kv + pos0 * (C + dr), s->kva, (size_t)(T * (C + dr)) * sizeof(float));
    } else {
        for (int64_t t = 0; t < T; t++) memcpy(s->lat + t * C, s->kva + t * (C + dr), (size_t)C * sizeof(float));
        lm_matmul(pool, s->kvb, s->lat, T, &L->wkv_b);
        DIAG(s->kvb, T, H * (dn + dv), l, pos0, "'model.layers.%lld.self_attn.kv_b_proj.weight'", ll);
        for (int64_t h = 0; h < H; h++) {
            float *K = kv + h * s->max_ctx * (dn + dr);
            float *V = kv + H * s->max_ctx * (dn + dr) + h * s->max_ctx * dv;
            for (int64_t t = 0; t < T; t++) {
                const float *src = s->kvb + t * H * (dn + dv) + h * (dn + dv); /* conv. 8: [k_nope | v] */
                float *k = K + (pos0 + t) * (dn + dr);
                memcpy(k, src, (size_t)dn * sizeof(float));
                memcpy(k + dn, s->kva + t * (C + dr) + C, (size_t)dr * sizeof(float));
                memcpy(V + (pos0 + t) * dv, src + dn, (size_t)dv * sizeof(float));
            }
        }
    }
    /* Query blocks, each attending to the keys up to its last row. */
    for (int64_t t0 = 0; t0 < T; t0 += ATTN_QBLOCK) {
        int64_t nb = T - t0 < ATTN_QBLOCK ? T - t0 : ATTN_QBLOCK;
        attn_job job = {s, l, t0, nb, pos0, pos0 + t0 + nb, 0};
        transpose_values(s, kv, job.S);
        lm_pool_run_dynamic(pool, attn_heads, &job);
    }
    if (s->diag) {
        /* Latent mode reads kv_b through its F32 copy (w_absorb); otherwise
         * finite q, k and v can only give a non-finite output by overflow. */
        const char *kind;
        int64_t row = bad_row(s->attn, T, H * dv, &kind);
        if (row >= 0) {
            const char *k2;
            if (s->mode == LM_ATTN_LATENT && bad_row(s->w_absorb + l * s->absorb_layer_floats, 1, s->absorb_layer_floats, &k2) >= 0)
                note(s, l, pos0 + row, kind, "'model.layers.%lld.self_attn.kv_b_proj.weight' (absorbed into the attention)", ll);
            else
                note(s, l, pos0 + row, kind, "the attention of layer %lld (the scores overflowed)", ll);
            return 1;
        }
    }
    lm_matmul(pool, s->ffn, s->attn, T, &L->wo);
    DIAG(s->ffn, T, D, l, pos0, "'model.layers.%lld.self_attn.o_proj.weight'", ll);
    return 0;
}

/* ---- feed-forward ---- */

/* A SwiGLU MLP named `name` (e.g. "model.layers.3.mlp.experts.5."); row i of
 * x is at position pos0 + (slot ? slot[i] / k : i), for diagnosis. */
static int swiglu_mlp(lm_infer *s, lm_pool *pool, float *out, const float *x, int64_t T, const lm_mat *w1,
                      const lm_mat *w3, const lm_mat *w2, float *h1, float *h3, int64_t layer, int64_t pos0,
                      const int32_t *slot, int64_t k, const char *name) {
    lm_matmul(pool, h1, x, T, w1);
    lm_matmul(pool, h3, x, T, w3);
    if (s->diag) {
        const float *bufs[3] = {h1, h3, NULL};
        const char *parts[3] = {"gate_proj.weight'", "up_proj.weight'", NULL};
        for (int k = 0; k < 2; k++) {
            const char *kind;
            int64_t row = bad_row(bufs[k], T, w1->rows, &kind);
            if (row >= 0) {
                note(s, layer, pos0 + (slot ? slot[row] / k : row), kind, "'%s%s", name, parts[k]);
                return 1;
            }
        }
    }
    lm_swiglu(h1, h1, h3, T * w1->rows);
    lm_matmul(pool, out, h1, T, w2);
    if (s->diag) {
        const char *kind;
        int64_t row = bad_row(h1, T, w1->rows, &kind);
        if (row >= 0) {
            note(s, layer, pos0 + (slot ? slot[row] / k : row), kind, "the SwiGLU of '%sgate_proj.weight' and 'up_proj' (overflow)",
                 name);
            return 1;
        }
        row = bad_row(out, T, w2->rows, &kind);
        if (row >= 0) {
            note(s, layer, pos0 + (slot ? slot[row] / k : row), kind, "'%sdown_proj.weight'", name);
            return 1;
        }
    }
    return 0;
}

static int moe(lm_infer *s, lm_pool *pool, const lm_layer *L, int64_t l, int64_t T, int64_t pos0) {
    const lm_config *c = &s->m->cfg;
    int64_t D = c->hidden_size, E = c->n_routed_experts, k = c->num_experts_per_tok;
    long long ll = (long long)l;
    char name[160];
    lm_matmul(pool, s->gate, s->xn, T, &L->gate);
    DIAG(s->gate, T, E, l, pos0, "the router 'model.layers.%lld.mlp.gate.weight' (its input overflowed)", ll);
    for (int64_t t = 0; t < T; t++)
        lm_route_token(c, L->gate_bias, s->gate + t * E, s->route_idx + t * k, s->route_w + t * k);
    DIAG(s->route_w, T, k, l, pos0, "the routing weights of layer %lld", ll);
    lm_group_experts(s->route_idx, T * k, E, s->eoff, s->erow, s->efill);
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = s->eoff[e], n = s->eoff[e + 1] - r0;
        if (!n) continue;
        lm_gather_expert_rows(s->xe, s->xn, s->erow + r0, n, k, D);
        if (s->diag) snprintf(name, sizeof name, "model.layers.%lld.mlp.experts.%lld.", ll, (long long)e);
        if (swiglu_mlp(s, pool, s->ye, s->xe, n, &L->ew1[e], &L->ew3[e], &L->ew2[e], s->h1, s->h3, l, pos0,
                       s->erow + r0, k, name))
            return 1;
        lm_scatter_expert_rows(s->slots, s->ye, s->erow + r0, n, D);
    }
    if (L->has_shared) {
        if (s->diag) snprintf(name, sizeof name, "model.layers.%lld.mlp.shared_experts.", ll);
        if (swiglu_mlp(s, pool, s->ffn, s->xn, T, &L->sw1, &L->sw3, &L->sw2, s->h1, s->h3, l, pos0, NULL, 1, name))
            return 1;
    } else {
        memset(s->ffn, 0, (size_t)(T * D) * sizeof(float));
    }
    lm_moe_combine(s->ffn, s->slots, s->route_w, T, k, D);
    DIAG(s->ffn, T, D, l, pos0, "the MoE output of layer %lld (overflow)", ll);
    return 0;
}

/* ---- the forward ---- */

/* One chunk; returns 1 when a diagnostic forward found a non-finite value
 * (the chunk is then left unfinished). */
static int forward_chunk(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t T, float *logits,
                         lm_logits_mode mode) {
    const lm_model *m = s->m;
    const lm_config *c = &m->cfg;
    int64_t D = c->hidden_size, pos0 = s->pos;
    for (int64_t t = 0; t < T; t++) lm_mat_row(&m->w.embed, ids[t], s->x + t * D);
    if (s->diag) {
        const char *kind;
        int64_t row = bad_row(s->x, T, D, &kind);
        if (row >= 0) {
            note(s, -1, pos0 + row, kind, "'model.embed_tokens.weight' (row %d, the token's embedding)", ids[row]);
            return 1;
        }
    }
    lm_rope_tables(c, s->inv_freq, pos0, T, s->cos_t, s->sin_t);
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        const lm_layer *L = &m->w.layers[l];
        long long ll = (long long)l;
        if (attention(s, pool, l, T, pos0)) return 1;
        for (int64_t i = 0; i < T * D; i++) s->x[i] += s->ffn[i];
        DIAG(s->x, T, D, l, pos0, "the residual stream after the attention of layer %lld (overflow)", ll);
        for (int64_t t = 0; t < T; t++) lm_rmsnorm(s->xn + t * D, s->x + t * D, L->ffn_norm, D, (float)c->rms_norm_eps);
        DIAG(s->xn, T, D, l, pos0, "'model.layers.%lld.post_attention_layernorm.weight'", ll);
        if (L->is_moe) {
            if (moe(s, pool, L, l, T, pos0)) return 1;
        } else {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%lld.mlp.", ll);
            if (swiglu_mlp(s, pool, s->ffn, s->xn, T, &L->w1, &L->w3, &L->w2, s->h1, s->h3, l, pos0, NULL, 1, name))
                return 1;
        }
        for (int64_t i = 0; i < T * D; i++) s->x[i] += s->ffn[i];
        DIAG(s->x, T, D, l, pos0, "the residual stream after the MLP of layer %lld (overflow)", ll);
    }
    s->pos += T;
    if (mode == LM_LOGITS_NONE) return 0;
    int64_t first = mode == LM_LOGITS_ALL ? 0 : T - 1;
    for (int64_t t = first; t < T; t++) lm_rmsnorm(s->xn + t * D, s->x + t * D, m->w.final_norm, D, (float)c->rms_norm_eps);
    DIAG(s->xn + first * D, T - first, D, -1, pos0 + first, "'model.norm.weight'");
    lm_matmul(pool, logits, s->xn + first * D, T - first, &m->w.head);
    DIAG(logits, T - first, c->vocab_size, -1, pos0 + first, "%s",
         m->w.head.data == m->w.embed.data ? "'model.embed_tokens.weight' (the tied head)" : "'lm_head.weight'");
    return 0;
}

/* Runs the chunks of one call; with s->diag set, stops at the first
 * non-finite block output. */
static void forward_all(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t T, float *logits, lm_logits_mode mode,
                        int64_t *bad_pos, const char **bad_kind) {
    int64_t V = s->m->cfg.vocab_size;
    *bad_pos = -1;
    for (int64_t t0 = 0; t0 < T; t0 += s->max_chunk) {
        int64_t n = T - t0 < s->max_chunk ? T - t0 : s->max_chunk;
        int last = t0 + n == T;
        lm_logits_mode cm = mode == LM_LOGITS_ALL ? LM_LOGITS_ALL : (last ? mode : LM_LOGITS_NONE);
        float *out = cm == LM_LOGITS_ALL ? logits + t0 * V : logits;
        int64_t pos0 = s->pos;
        if (forward_chunk(s, pool, ids + t0, n, out, cm)) return;
        /* Every row handed back is checked: NaN logits would otherwise be
         * sampled as token 0 or written out as numbers (V floats per row,
         * next to a V x D matmul). */
        if (cm != LM_LOGITS_NONE && *bad_pos < 0) {
            int64_t rows = cm == LM_LOGITS_ALL ? n : 1;
            int64_t row = bad_row(out, rows, V, bad_kind);
            if (row >= 0) *bad_pos = cm == LM_LOGITS_ALL ? pos0 + row : pos0 + n - 1;
        }
    }
}

int lm_infer_forward(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t T, float *logits, lm_logits_mode mode,
                     lm_error *err) {
    const lm_config *c = &s->m->cfg;
    if (T < 1) return lm_fail(err, "forward of an empty token list");
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return lm_fail(err, "token id %d at position %lld is out of range (vocab_size %lld)", ids[t], (long long)t,
                           (long long)c->vocab_size);
    if (s->pos + T > s->max_ctx)
        return lm_fail(err, "%lld tokens after %lld cached exceed the context of %lld", (long long)T, (long long)s->pos,
                       (long long)s->max_ctx);
    if (pool && lm_pool_size(pool) > s->nthreads)
        return lm_fail(err, "pool has %d threads but the state was sized for %d", lm_pool_size(pool), s->nthreads);
    int64_t start = s->pos, bad_pos;
    const char *bad_kind = NULL;
    forward_all(s, pool, ids, T, logits, mode, &bad_pos, &bad_kind);
    if (bad_pos < 0) return 0;
    /* Non-finite logits: run the call again from the same cache, checking
     * every block output, to name the first tensor whose output went
     * non-finite. The cache is left as it was before the call. */
    diag d = {0};
    s->pos = start;
    s->diag = &d;
    int64_t unused_pos;
    const char *unused_kind;
    forward_all(s, pool, ids, T, logits, mode, &unused_pos, &unused_kind);
    s->diag = NULL;
    s->pos = start;
    if (!d.found)
        return lm_fail(err, "logits at position %lld are %s (a diagnostic re-run found no non-finite block output)",
                       (long long)bad_pos, bad_kind);
    char layer[32] = "";
    if (d.layer >= 0) snprintf(layer, sizeof layer, "layer %lld, ", (long long)d.layer);
    return lm_fail(err, "logits at position %lld are %s: the first non-finite value (%s) is in the output of %s (%sposition %lld); "
                   "`lemma info --check-weights` scans every tensor",
                   (long long)bad_pos, bad_kind, d.kind, d.what, layer, (long long)d.pos);
}
