/* forward.c — the DeepSeek-V2/V3 forward pass over a batch of token rows,
 * each segment of rows extending its own sequence in a paged KV cache
 * (kvcache.h), in two attention modes (naive / latent, see model.h); and
 * lm_infer, the one-sequence state, as a batch of one.
 *
 * Conventions follow docs/deepseek-conventions.md; the numbers in
 * comments ("conv. 13") refer to its items. Shapes are written beside each
 * buffer: T = rows in the batch, S = positions attended by a sequence.
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
#include "model/indexer.h"
#include "model/kvcache_internal.h"
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

/* The work buffers of a batched forward (kvcache.h). Rows are the tokens
 * of all segments, one after another; rowpos gives each row's position in
 * its own sequence. */
struct lm_fwd {
    const lm_model *m;
    diag *diag;                  /* non-NULL during a diagnostic forward: check every block output */
    lm_attn_mode mode;
    int64_t max_rows, max_ctx;
    int nthreads;
    double *inv_freq;            /* [dr/2] */
    float *cos_t, *sin_t;        /* [max_rows][dr/2] for each row's position */
    int64_t *rowpos;             /* [max_rows] */
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
    float *rows;                 /* [max_ctx, w] one layer of a sequence's cache when its blocks are not consecutive */
    float *vsel;                 /* naive mode with DSA: one head's values of the chosen positions [max_ctx, dv] */
    float *thr;                  /* per-thread attention scratch */
    int64_t thr_floats, thr_qb;       /* naive mode: per-thread floats, query rows per block */
    float *w_absorb;             /* latent mode: per layer W_UK^T [H][C][dn] then W_UV [H][dv][C], F32, each
                                  * head's matrix in panels when the model's are (absorb_mat) */
    float *qcat;                 /* latent: [T, H, C+dr] absorbed queries [q_lat | q_pe] */
    float *olat;                 /* latent: [T, H, C] attention outputs in the latent space */
    float *hx, *hy;              /* latent: [T, max(dn, C)], [T, max(C, dv)] one head's rows */
    float *ablk, *asc, *aout;    /* latent: [ATTN_ROWS, C+dr] query rows, [ATTN_ROWS, max_ctx] scores, [ATTN_ROWS, C] */
    int64_t absorb_layer_floats;
    int64_t absorb_uk_floats, absorb_uv_floats; /* one head's W_UK^T and W_UV in w_absorb */
    lm_layout absorb_layout;
    /* Latent mode's opt-in expanded prefill (lm_fwd_set_prefill): the
     * latents a chunk attends to decompressed through kv_b. Own allocation. */
    lm_prefill_mode prefill;
    float *xlat;                 /* [max_ctx, C] the cached latents, contiguous */
    float *xkvb;                 /* [max_ctx, H*(dn+dv)] their [k_nope | v] per head */
    float *xthr;                 /* per-thread naive attention scratch (thr_floats of the naive layout) */
    int64_t xthr_floats, xthr_qb;
    lm_arena xarena;
    /* V3.2 sparse attention (model/indexer.h); unset without an indexer.
     * K = min(index_topk, max_ctx). */
    int64_t K;
    float *icos, *isin;          /* [max_rows][dr/2] the indexer's rope tables (no attention factor) */
    float *iq, *iw, *ikey, *ik;  /* [T, Hi, di] queries, [T, Hi] head weights, [T, key floats] keys, [T, di] */
    float *iscore;               /* [ATTN_QBLOCK, max_ctx] index scores of a query block */
    float *idots;                /* [ATTN_QBLOCK * Hi, IDX_KCHUNK] per-head dot products */
    void *ikeys;                 /* [IDX_KCHUNK, di] cached keys gathered: e4m3 codes (FP8 on) or floats */
    float *ikeysf;               /* [IDX_KCHUNK, di] the codes as floats, for query blocks of many rows */
    float *ikscale;              /* [IDX_KCHUNK] their scales */
    float *ione;                 /* [IDX_KCHUNK / 128] 1.0f: the block scales of the gathered codes */
    uint64_t *iscratch;          /* [max_ctx] selection keys */
    int32_t *sel;                /* [max_rows, K] each row's chosen positions, ascending */
    int64_t *nsel;               /* [max_rows] how many */
    float *gkv;                  /* [K, C+dr] latent: the chosen cache rows of one query */
    int32_t *trace;              /* lm_fwd_trace_index's buffer, or NULL */
    lm_arena arena;              /* the one allocation behind every buffer */
};

/* A one-sequence state (model.h): its own block pool and work buffers. */
struct lm_infer {
    lm_fwd *f;
    lm_kvcache *kc;
    lm_kvseq seq;
    int64_t max_chunk;
};

/* Query rows per attention block: each block attends only to the keys up to
 * its last row, so a causal prefill skips most of the masked triangle. */
enum { ATTN_QBLOCK = 64 };
/* Latent mode: (head, query) rows scored against a sequence's keys in one
 * product; decode takes every head of a token at once up to this. */
enum { ATTN_ROWS = 256 };
/* Cached index keys gathered and scored per chunk of positions. */
enum { IDX_KCHUNK = 512 };

/* ---- allocation ---- */

static void layout(lm_fwd *f, lm_arena *p) {
    const lm_config *c = &f->m->cfg;
    const lm_dims *d = &f->m->dims;
    int64_t T = f->max_rows, D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, Q = d->Q, E = d->E,
            k = d->k;
    int64_t Imax = d->I;
    int64_t Ims = c->moe_intermediate_size * (c->n_shared_experts > 1 ? c->n_shared_experts : 1);
    if (Ims > Imax) Imax = Ims;
    int64_t F = sizeof(float);
    f->inv_freq = lm_arena_take(p, (size_t)(dr / 2) * sizeof(double));
    f->cos_t = lm_arena_take(p, (size_t)(T * dr / 2 * F));
    f->sin_t = lm_arena_take(p, (size_t)(T * dr / 2 * F));
    f->rowpos = lm_arena_take(p, (size_t)T * sizeof(int64_t));
    f->x = lm_arena_take(p, (size_t)(T * D * F));
    f->xn = lm_arena_take(p, (size_t)(T * D * F));
    f->q = lm_arena_take(p, (size_t)(T * H * (dn + dr) * F));
    f->qa = lm_arena_take(p, (size_t)(T * (Q ? Q : 1) * F));
    f->kva = lm_arena_take(p, (size_t)(T * (C + dr) * F));
    f->lat = lm_arena_take(p, (size_t)(T * C * F));
    f->kvb = lm_arena_take(p, (size_t)(T * H * (dn + dv) * F));
    f->attn = lm_arena_take(p, (size_t)(T * H * dv * F));
    f->ffn = lm_arena_take(p, (size_t)(T * D * F));
    f->h1 = lm_arena_take(p, (size_t)(T * Imax * F));
    f->h3 = lm_arena_take(p, (size_t)(T * Imax * F));
    if (E) {
        f->gate = lm_arena_take(p, (size_t)(T * E * F));
        f->route_idx = lm_arena_take(p, (size_t)(T * k) * sizeof(int32_t));
        f->route_w = lm_arena_take(p, (size_t)(T * k * F));
        f->slots = lm_arena_take(p, (size_t)(T * k * D * F));
        f->xe = lm_arena_take(p, (size_t)(T * D * F));
        f->ye = lm_arena_take(p, (size_t)(T * D * F));
        f->eoff = lm_arena_take(p, (size_t)(E + 1) * sizeof(int32_t));
        f->erow = lm_arena_take(p, (size_t)(T * k) * sizeof(int32_t));
        f->efill = lm_arena_take(p, (size_t)E * sizeof(int32_t));
    }
    /* Naive mode, per thread, for one head and one block of QB query rows:
     * q [QB, dn+dr]; scores [QB, S]; head output [QB, dv]; the head's keys
     * [S, dn+dr]. Latent mode keeps C floats (prepare_absorb's row). Shared:
     * one layer of the sequence's cache when it must be gathered from its
     * blocks. The P.V products read the value rows where they lie
     * (lm_matmul_nn); only naive DSA gathers a head's chosen values. */
    int64_t QB = T < ATTN_QBLOCK ? T : ATTN_QBLOCK;
    if (f->mode == LM_ATTN_LATENT) {
        f->thr_floats = (C + 15) & ~(int64_t)15;
    } else {
        f->thr_qb = QB;
        f->thr_floats = ((QB * (dn + dr) + QB * f->max_ctx + QB * dv + f->max_ctx * (dn + dr)) + 15) & ~(int64_t)15;
    }
    f->rows = lm_arena_take(p, (size_t)(f->max_ctx * lm_kv_floats_per_token(c, f->mode) * F));
    if (f->mode != LM_ATTN_LATENT) f->vsel = lm_arena_take(p, (size_t)(dv * f->max_ctx * F));
    f->thr = lm_arena_take(p, (size_t)(f->nthreads * f->thr_floats * F));
    if (f->mode == LM_ATTN_LATENT) {
        /* Panels pad rows to a multiple of LM_PANEL (zero rows). */
        f->absorb_layout = f->m->panels ? LM_LAYOUT_PANELS : LM_LAYOUT_ROWS;
        int64_t pad = f->absorb_layout == LM_LAYOUT_PANELS ? LM_PANEL : 1;
        f->absorb_uk_floats = (C + pad - 1) / pad * pad * dn;
        f->absorb_uv_floats = (dv + pad - 1) / pad * pad * C;
        f->absorb_layer_floats = H * (f->absorb_uk_floats + f->absorb_uv_floats);
        f->w_absorb = lm_arena_take(p, (size_t)(c->num_hidden_layers * f->absorb_layer_floats * F));
        f->qcat = lm_arena_take(p, (size_t)(T * H * (C + dr) * F));
        f->olat = lm_arena_take(p, (size_t)(T * H * C * F));
        f->hx = lm_arena_take(p, (size_t)(T * (dn > C ? dn : C) * F));
        f->hy = lm_arena_take(p, (size_t)(T * (C > dv ? C : dv) * F));
        f->ablk = lm_arena_take(p, (size_t)(ATTN_ROWS * (C + dr) * F));
        f->asc = lm_arena_take(p, (size_t)(ATTN_ROWS * f->max_ctx * F));
        f->aout = lm_arena_take(p, (size_t)(ATTN_ROWS * C * F));
    }
    if (lm_config_has_indexer(c)) {
        int64_t Hi = d->Hi, di = d->di, kf = lm_indexer_key_floats(c), K = d->K < f->max_ctx ? d->K : f->max_ctx;
        f->K = K;
        f->icos = lm_arena_take(p, (size_t)(T * dr / 2 * F));
        f->isin = lm_arena_take(p, (size_t)(T * dr / 2 * F));
        f->iq = lm_arena_take(p, (size_t)(T * Hi * di * F));
        f->iw = lm_arena_take(p, (size_t)(T * Hi * F));
        f->ikey = lm_arena_take(p, (size_t)(T * kf * F));
        f->ik = lm_arena_take(p, (size_t)(T * di * F));
        f->iscore = lm_arena_take(p, (size_t)(ATTN_QBLOCK * f->max_ctx * F));
        f->idots = lm_arena_take(p, (size_t)(ATTN_QBLOCK * Hi * IDX_KCHUNK * F));
        f->ikeys = lm_arena_take(p, (size_t)(IDX_KCHUNK * di * F));
        f->ikeysf = lm_arena_take(p, (size_t)(IDX_KCHUNK * di * F));
        f->ikscale = lm_arena_take(p, (size_t)(IDX_KCHUNK * F));
        f->ione = lm_arena_take(p, (size_t)(IDX_KCHUNK / 128 * F));
        f->iscratch = lm_arena_take(p, (size_t)f->max_ctx * sizeof(uint64_t));
        f->sel = lm_arena_take(p, (size_t)(T * K) * sizeof(int32_t));
        f->nsel = lm_arena_take(p, (size_t)T * sizeof(int64_t));
        f->gkv = lm_arena_take(p, (size_t)(K * (C + dr) * F));
    }
}

/* Head h's W_UK^T [C, dn] (uv = 0) or W_UV [dv, C] (uv = 1) of layer l. */
static lm_mat absorb_mat(const lm_fwd *f, int64_t l, int uv, int64_t h) {
    const lm_dims *d = &f->m->dims;
    const float *base = f->w_absorb + l * f->absorb_layer_floats;
    lm_mat w = uv ? lm_f32_mat(base + d->H * f->absorb_uk_floats + h * f->absorb_uv_floats, d->dv, d->C)
                  : lm_f32_mat(base + h * f->absorb_uk_floats, d->C, d->dn);
    w.layout = f->absorb_layout;
    return w;
}

/* W_UK^T and W_UV of every layer in F32, for the absorbed path (conv. 11),
 * in panels like the model's matrices: the decode matvec then reads them
 * without transposes (the same bits, docs/arithmetic.md). */
static int prepare_absorb(lm_fwd *f, lm_error *err) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dn = d->dn, dv = d->dv, C = d->C;
    float *rows = malloc((size_t)(C * (dn > dv ? dn : dv)) * sizeof(float)); /* one head's matrix, row-major */
    float *row = f->thr; /* scratch: C floats, before any forward runs */
    if (!rows) return lm_fail(err, "out of memory preparing the absorbed attention weights");
    for (int64_t l = 0; l < d->L; l++) {
        const lm_mat *W = &f->m->w.layers[l].wkv_b;
        for (int64_t h = 0; h < H; h++) {
            for (int64_t j = 0; j < dn; j++) {
                lm_mat_row(W, h * (dn + dv) + j, row);
                for (int64_t i = 0; i < C; i++) rows[i * dn + j] = row[i];
            }
            for (int uv = 0; uv < 2; uv++) {
                if (uv)
                    for (int64_t j = 0; j < dv; j++) lm_mat_row(W, h * (dn + dv) + dn + j, rows + j * C);
                lm_mat dst = absorb_mat(f, l, uv, h), src = dst;
                src.data = rows;
                src.layout = LM_LAYOUT_ROWS;
                if (dst.layout == LM_LAYOUT_PANELS) lm_mat_pack_panels(&src, lm_mat_data(&dst), 0, lm_panel_blocks(&src));
                else memcpy(lm_mat_data(&dst), rows, (size_t)(src.rows * src.cols) * sizeof(float));
            }
        }
    }
    free(rows);
    return 0;
}

lm_fwd *lm_fwd_create(const lm_model *m, lm_attn_mode mode, int64_t max_rows, int64_t max_ctx, int nthreads,
                      lm_error *err) {
    if (max_ctx < 1 || max_rows < 1) {
        lm_fail(err, "context (%lld) and batch rows (%lld) must be positive", (long long)max_ctx, (long long)max_rows);
        return NULL;
    }
    const lm_config *c = &m->cfg;
    /* The official FP8 code quantises the indexer's q/k per head of 128
     * with one scale, and the latent per 128 channels (conv. 39, 45). */
    if (lm_config_fp8_emulated(c) && (c->index_head_dim != 128 || c->kv_lora_rank % 128)) {
        lm_fail(err, "%s/config.json: index_head_dim = %lld and kv_lora_rank = %lld, but the FP8 emulation of "
                "DeepSeek-V3.2 needs index_head_dim 128 and kv_lora_rank a multiple of 128 (--fp8-emulation off)",
                m->dir, (long long)c->index_head_dim, (long long)c->kv_lora_rank);
        return NULL;
    }
    lm_fwd *f = calloc(1, sizeof *f);
    if (!f) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    f->m = m;
    f->mode = mode;
    f->max_ctx = max_ctx;
    f->max_rows = max_rows;
    f->nthreads = nthreads < 1 ? 1 : nthreads;
    layout(f, &f->arena);
    size_t bytes = f->arena.bytes;
    /* Refuse absurd requests before touching memory (a huge max_ctx). */
    if (bytes > ((size_t)1 << 40)) {
        lm_fail(err, "inference buffers would need %.1f GiB (context %lld): too large", bytes / 1073741824.0,
                (long long)max_ctx);
        free(f);
        return NULL;
    }
    if (lm_arena_map(&f->arena)) {
        lm_fail(err, "cannot allocate %.1f MiB of inference buffers", bytes / 1048576.0);
        free(f);
        return NULL;
    }
    layout(f, &f->arena);
    lm_config_rope_inv_freq(&m->cfg, f->inv_freq);
    for (int64_t i = 0; f->ione && i < IDX_KCHUNK / 128; i++) f->ione[i] = 1.0f;
    if (mode == LM_ATTN_LATENT && prepare_absorb(f, err)) {
        lm_fwd_free(f);
        return NULL;
    }
    return f;
}

int lm_fwd_set_prefill(lm_fwd *f, lm_prefill_mode mode, lm_error *err) {
    if (mode != LM_PREFILL_ABSORBED && f->mode != LM_ATTN_LATENT)
        return lm_fail(err, "expanded prefill needs the latent attention cache (--attn latent)");
    if (mode != LM_PREFILL_ABSORBED && !f->xlat) {
        const lm_dims *d = &f->m->dims;
        int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, S = f->max_ctx;
        int64_t QB = f->max_rows < ATTN_QBLOCK ? f->max_rows : ATTN_QBLOCK;
        /* the naive path's per-thread scratch (layout()) */
        f->xthr_qb = QB;
        f->xthr_floats = (QB * (dn + dr) + QB * S + QB * dv + S * (dn + dr) + 15) & ~(int64_t)15;
        lm_arena *a = &f->xarena;
        for (int pass = 0; pass < 2; pass++) { /* sizing, then placing (as lm_fwd_create) */
            if (pass && lm_arena_map(a))
                return lm_fail(err, "cannot allocate %.1f MiB for the expanded prefill", a->bytes / 1048576.0);
            f->xlat = lm_arena_take(a, (size_t)(S * C) * sizeof(float));
            f->xkvb = lm_arena_take(a, (size_t)(S * H * (dn + dv)) * sizeof(float));
            f->xthr = lm_arena_take(a, (size_t)(f->nthreads * f->xthr_floats) * sizeof(float));
        }
    }
    f->prefill = mode;
    return 0;
}

void lm_fwd_free(lm_fwd *f) {
    if (!f) return;
    if (f->xlat) lm_arena_unmap(&f->xarena);
    lm_arena_unmap(&f->arena);
    free(f);
}

int64_t lm_fwd_max_rows(const lm_fwd *f) { return f->max_rows; }
int64_t lm_fwd_max_ctx(const lm_fwd *f) { return f->max_ctx; }
void lm_fwd_trace_index(lm_fwd *f, int32_t *buf) { f->trace = buf; }

/* ---- non-finite diagnosis ---- */

/* The first row of buf [rows, width] holding a non-finite value, or -1. */
static int64_t bad_row(const float *buf, int64_t rows, int64_t width, const char **kind) {
    int64_t i = lm_first_nonfinite(buf, LM_DTYPE_F32, rows * width);
    if (i < 0) return -1;
    *kind = lm_nonfinite_name(buf, LM_DTYPE_F32, i);
    return i / width;
}

static void note(lm_fwd *f, int64_t layer, int64_t pos, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void note(lm_fwd *f, int64_t layer, int64_t pos, const char *kind, const char *fmt, ...) {
    diag *d = f->diag;
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
 * (row t being batch row r0 + t) hold a non-finite value; fmt names what
 * produced them. Costs one pointer test otherwise. */
#define DIAG(buf, T, width, layer, r0, ...)                                                 \
    do {                                                                                    \
        const char *kind_;                                                                  \
        int64_t row_;                                                                       \
        if (f->diag && (row_ = bad_row((buf), (T), (width), &kind_)) >= 0) {                \
            note(f, (layer), f->rowpos[(r0) + row_], kind_, __VA_ARGS__);                   \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)

/* ---- the cache of one sequence ---- */

/* Positions 0..S-1 of layer l of seq as one [S, w] array: the blocks
 * themselves when their ids are consecutive (a one-sequence state always),
 * else a copy gathered into f->rows. */
static const float *kv_rows(lm_fwd *f, const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t S) {
    int64_t nb = (S + kc->bt - 1) / kc->bt, i = 1;
    while (i < nb && seq->block[i] == seq->block[0] + i) i++;
    if (i >= nb) return kvcache_rows(kc, l, seq->block[0]);
    for (int64_t b = 0; b < nb; b++) {
        int64_t n = S - b * kc->bt < kc->bt ? S - b * kc->bt : kc->bt;
        memcpy(f->rows + b * kc->bt * kc->w, kvcache_rows(kc, l, seq->block[b]), (size_t)(n * kc->w) * sizeof(float));
    }
    return f->rows;
}

/* Where position p of layer l of seq is stored. */
static float *kv_row(const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t p) {
    return kvcache_rows(kc, l, seq->block[p / kc->bt]) + (p % kc->bt) * kc->w;
}

/* ---- attention ---- */

/* Where the expanded keys and values of positions 0..S-1 lie: head h's key
 * of position j is [k[j*k_stride + h*k_head .. + kn) | kpe[j*kpe_stride ..
 * + dr)] (kn = dn + dr and no kpe when the rope part is stored with it); its
 * value is v[j*v_stride + h*v_head .. + dv). */
typedef struct expanded_kv {
    const float *k, *kpe, *v;
    int64_t k_stride, k_head, kn, kpe_stride, v_stride, v_head;
} expanded_kv;

typedef struct attn_job {
    lm_fwd *f;
    int64_t layer;
    int64_t t0, nb;              /* the block: batch rows t0 .. t0+nb-1 */
    int64_t pos;                 /* position of batch row t0 */
    int64_t S;                   /* keys attended: positions 0 .. S-1 */
    expanded_kv kv;
    float *thr;                  /* per-thread scratch: thr_floats each, blocks of up to thr_qb rows */
    int64_t thr_floats, thr_qb;
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

/* Expanded K/V (the naive cache, or latent mode's expanded prefill): each
 * thread takes whole heads of a query block. */
static void attn_heads(void *ctx, int ith, int nth) {
    attn_job *job = ctx;
    lm_fwd *f = job->f;
    const lm_dims *d = &f->m->dims;
    const expanded_kv *kv = &job->kv;
    int64_t H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, nb = job->nb, S = job->S, pos = job->pos;
    (void)nth;
    float scale = (float)lm_config_softmax_scale(&f->m->cfg);
    int64_t qd = dn + dr;
    float *qh = job->thr + ith * job->thr_floats; /* [nb, qd] */
    float *sc = qh + job->thr_qb * qd;            /* [nb, S] */
    float *oh = sc + job->thr_qb * f->max_ctx;    /* [nb, dv] */
    float *kh = oh + job->thr_qb * dv;            /* [S, dn+dr] */
    int64_t qstride = H * (dn + dr);
    /* Whole heads, claimed in turn: a head is computed the same way by
     * whichever thread takes it, and a late worker just finds none left. */
    for (int64_t h; (h = __atomic_fetch_add(&job->next_head, 1, __ATOMIC_RELAXED)) < H;) {
        const float *qsrc = f->q + job->t0 * qstride + h * (dn + dr);
        for (int64_t j = 0; j < S; j++) {
            memcpy(kh + j * qd, kv->k + j * kv->k_stride + h * kv->k_head, (size_t)kv->kn * sizeof(float));
            if (kv->kpe) memcpy(kh + j * qd + dn, kv->kpe + j * kv->kpe_stride, (size_t)dr * sizeof(float));
        }
        for (int64_t t = 0; t < nb; t++) memcpy(qh + t * qd, qsrc + t * qstride, (size_t)qd * sizeof(float));
        lm_mat keys = lm_f32_mat(kh, S, dn + dr);
        lm_matmul(NULL, sc, qh, nb, &keys);
        masked_softmax(sc, nb, S, pos, scale);
        lm_matmul_nn(NULL, oh, dv, sc, S, nb, kv->v + h * kv->v_head, kv->v_stride, S, dv);
        for (int64_t t = 0; t < nb; t++)
            memcpy(f->attn + (job->t0 + t) * H * dv + h * dv, oh + t * dv, (size_t)dv * sizeof(float));
    }
}

/* ---- absorbed (latent) attention ----
 * Every product below gives each output element one fma chain over its
 * inner dimension (docs/arithmetic.md), so grouping rows differently — all
 * tokens of the batch for a head's W_UK / W_UV, all heads of a query block
 * for the scores — changes no bit: a row's attention is the same alone or
 * in any batch. */

/* Small products run on the caller: a dispatch costs more than they do. */
static lm_pool *pool_for(lm_pool *pool, int64_t rows, int64_t n, int64_t k) {
    return rows * n * k >= ((int64_t)1 << 18) ? pool : NULL;
}

/* qcat[t, h] = [q_nope[t, h] @ W_UK[h] | q_pe[t, h]] for rows r0 .. r0+T-1 (conv. 11). */
static void latent_queries(lm_fwd *f, lm_pool *pool, int64_t l, int64_t r0, int64_t T) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dn = d->dn, dr = d->dr, C = d->C, qs = H * (dn + dr);
    const float *q = f->q + r0 * qs;
    for (int64_t h = 0; h < H; h++) {
        for (int64_t t = 0; t < T; t++) memcpy(f->hx + t * dn, q + t * qs + h * (dn + dr), (size_t)dn * sizeof(float));
        lm_mat wuk = absorb_mat(f, l, 0, h);
        lm_matmul(pool_for(pool, T, C, dn), f->hy, f->hx, T, &wuk);
        for (int64_t t = 0; t < T; t++) {
            float *dst = f->qcat + ((r0 + t) * H + h) * (C + dr);
            memcpy(dst, f->hy + t * C, (size_t)C * sizeof(float));
            memcpy(dst + C, q + t * qs + h * (dn + dr) + dn, (size_t)dr * sizeof(float));
        }
    }
}

/* olat rows of segment rows r0 .. r0+n-1 (positions pos0 ..): scores of
 * (head, query) rows against the sequence's latent keys, causal softmax,
 * then the weighted sum of its latents. */
static void latent_scores(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r0,
                          int64_t n, int64_t pos0) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dr = d->dr, C = d->C;
    float scale = (float)lm_config_softmax_scale(&f->m->cfg);
    for (int64_t t0 = 0; t0 < n; t0 += ATTN_QBLOCK) {
        int64_t nb = n - t0 < ATTN_QBLOCK ? n - t0 : ATTN_QBLOCK, S = pos0 + t0 + nb;
        const float *kv = kv_rows(f, kc, seq, l, S);
        lm_mat keys = lm_f32_mat(kv, S, C + dr);
        int64_t hg = ATTN_ROWS / nb;
        for (int64_t h0 = 0; h0 < H; h0 += hg) {
            int64_t nh = H - h0 < hg ? H - h0 : hg, rows = nh * nb;
            for (int64_t hh = 0; hh < nh; hh++)
                for (int64_t t = 0; t < nb; t++)
                    memcpy(f->ablk + (hh * nb + t) * (C + dr), f->qcat + ((r0 + t0 + t) * H + h0 + hh) * (C + dr),
                           (size_t)(C + dr) * sizeof(float));
            lm_matmul(pool_for(pool, rows, S, C + dr), f->asc, f->ablk, rows, &keys);
            for (int64_t hh = 0; hh < nh; hh++) masked_softmax(f->asc + hh * nb * S, nb, S, pos0 + t0, scale);
            lm_matmul_nn(pool_for(pool, rows, C, S), f->aout, C, f->asc, S, rows, kv, C + dr, S, C);
            for (int64_t hh = 0; hh < nh; hh++)
                for (int64_t t = 0; t < nb; t++)
                    memcpy(f->olat + ((r0 + t0 + t) * H + h0 + hh) * C, f->aout + (hh * nb + t) * C,
                           (size_t)C * sizeof(float));
        }
    }
}

/* attn[t, h] = W_UV[h] @ olat[t, h] for rows r0 .. r0+T-1. */
static void latent_values(lm_fwd *f, lm_pool *pool, int64_t l, int64_t r0, int64_t T) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dv = d->dv, C = d->C;
    for (int64_t h = 0; h < H; h++) {
        for (int64_t t = 0; t < T; t++)
            memcpy(f->hx + t * C, f->olat + ((r0 + t) * H + h) * C, (size_t)C * sizeof(float));
        lm_mat wuv = absorb_mat(f, l, 1, h);
        lm_matmul(pool_for(pool, T, dv, C), f->hy, f->hx, T, &wuv);
        for (int64_t t = 0; t < T; t++)
            memcpy(f->attn + (r0 + t) * H * dv + h * dv, f->hy + t * dv, (size_t)dv * sizeof(float));
    }
}

/* ---- latent mode's expanded prefill (lm_fwd_set_prefill) ---- */

static int latent_fp8(const lm_fwd *f);

/* Whether a segment of n rows at positions pos0 .. runs expanded: when that
 * mode is on and it costs fewer multiply-adds (docs/arithmetic.md). Per
 * position attended, expanding costs C*H*(dn+dv) (k_nope and v from the
 * latent); per (query, key) pair H*(dn+dr) + H*dv. The absorbed form costs
 * H*(C+dr) + H*C per pair and H*C*(dn+dv) per query (q and o through kv_b).
 * One row (decode) always stays absorbed. Not with V3.2's sparse attention
 * (its selected keys are per row) nor the FP8 latent cache. */
static int expand_segment(const lm_fwd *f, int64_t n, int64_t pos0) {
    if (f->prefill == LM_PREFILL_ABSORBED || n < 2 || lm_config_has_indexer(&f->m->cfg) || latent_fp8(f)) return 0;
    if (f->prefill == LM_PREFILL_EXPANDED_ALWAYS) return 1;
    const lm_dims *d = &f->m->dims;
    double H = (double)d->H, C = (double)d->C, dn = (double)d->dn, dr = (double)d->dr, dv = (double)d->dv;
    double pairs = (double)n * (double)pos0 + (double)n * (double)(n + 1) / 2, keys = (double)(pos0 + n);
    double expanded = keys * C * H * (dn + dv) + pairs * H * (dn + dr + dv);
    double absorbed = (double)n * H * C * (dn + dv) + pairs * H * (2 * C + dr);
    return expanded < absorbed;
}

/* Query blocks of segment rows r0 .. r0+n-1 (positions pos0 ..), each
 * attending to the expanded keys and values up to its last row. */
static void expanded_attention(lm_fwd *f, lm_pool *pool, int64_t l, int64_t r0, int64_t n, int64_t pos0,
                               const expanded_kv *kv, float *thr, int64_t thr_floats, int64_t thr_qb) {
    for (int64_t t0 = 0; t0 < n; t0 += ATTN_QBLOCK) {
        int64_t nb = n - t0 < ATTN_QBLOCK ? n - t0 : ATTN_QBLOCK;
        attn_job job = {.f = f, .layer = l, .t0 = r0 + t0, .nb = nb, .pos = pos0 + t0, .S = pos0 + t0 + nb,
                        .kv = *kv, .thr = thr, .thr_floats = thr_floats, .thr_qb = thr_qb};
        lm_pool_run_dynamic(pool, attn_heads, &job);
    }
}

/* The segment's attention from its cached latents (the new positions
 * already written): every latent it attends to goes through kv_b — the
 * product the naive path applies as it caches, so these K and V have the
 * naive cache's bits — then the naive attention. Only latents stay cached. */
static void expanded_prefill(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r0,
                             int64_t n, int64_t pos0) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dn = d->dn, dv = d->dv, C = d->C, S = pos0 + n;
    const float *rows = kv_rows(f, kc, seq, l, S);
    for (int64_t j = 0; j < S; j++) memcpy(f->xlat + j * C, rows + j * kc->w, (size_t)C * sizeof(float));
    lm_matmul(pool, f->xkvb, f->xlat, S, &f->m->w.layers[l].wkv_b);
    expanded_kv kv = {.k = f->xkvb, .k_stride = H * (dn + dv), .k_head = dn + dv, .kn = dn, .kpe = rows + C,
                      .kpe_stride = kc->w, .v = f->xkvb + dn, .v_stride = H * (dn + dv), .v_head = dn + dv};
    expanded_attention(f, pool, l, r0, n, pos0, &kv, f->xthr, f->xthr_floats, f->xthr_qb);
}

/* Latent mode: fn over each maximal run of consecutive rows whose segments
 * run absorbed (all rows, unless expanded prefill took some). */
static void absorbed_runs(lm_fwd *f, lm_pool *pool, int64_t l, const lm_batch_seg *segs, int nseg,
                          void (*fn)(lm_fwd *, lm_pool *, int64_t, int64_t, int64_t)) {
    int64_t r0 = 0, run0 = 0;
    for (int g = 0; g < nseg; g++) {
        int64_t n = segs[g].n;
        if (expand_segment(f, n, f->rowpos[r0])) {
            if (r0 > run0) fn(f, pool, l, run0, r0 - run0);
            run0 = r0 + n;
        }
        r0 += n;
    }
    if (r0 > run0) fn(f, pool, l, run0, r0 - run0);
}

/* The diagnostic check of each stage of the attention projection. */
typedef struct proj_check {
    lm_fwd *f;
    int64_t layer;
} proj_check;

static int check_projection(void *ctx, lm_proj_stage stage, const float *buf, int64_t rows, int64_t width) {
    const proj_check *pc = ctx;
    lm_fwd *f = pc->f;
    const char *kind;
    int64_t row = bad_row(buf, rows, width, &kind);
    if (row < 0) return 0;
    static const char *const tensor[] = {
        [LM_PROJ_Q_A] = "q_a_proj.weight", [LM_PROJ_Q_NORM] = "q_a_layernorm.weight", [LM_PROJ_Q] = "q_b_proj.weight",
        [LM_PROJ_KV_A] = "kv_a_proj_with_mqa.weight", [LM_PROJ_KV_NORM] = "kv_a_layernorm.weight"};
    const char *name = stage == LM_PROJ_Q && !f->m->dims.Q ? "q_proj.weight" : tensor[stage];
    note(f, pc->layer, f->rowpos[row], kind, "'model.layers.%lld.self_attn.%s'", (long long)pc->layer, name);
    return 1;
}

/* The batch as the forward sees it. */
typedef struct batch {
    lm_kvcache *kc;
    const lm_batch_seg *segs;
    int nseg;
    int64_t T;                   /* rows */
    const float *x_in;           /* [T, D] input rows instead of the embeddings of the ids, or NULL */
} batch;

/* ---- V3.2 sparse attention (conv. 41-44) ---- */

/* Floats of a cache row before its index key. */
static int64_t mla_floats(const lm_kvcache *kc) { return kc->w - lm_indexer_key_floats(&kc->m->cfg); }

/* Latent mode with the FP8 emulation (conv. 45): a cache row holds the
 * latent as what the model caches in deployment — its C e4m3 codes (4 to a
 * float), then one scale per 128 channels, then k_pe in F32 — and the index
 * key: 916 bytes per token and layer for V3.2 instead of 2,436. Decoding a
 * code times its scale gives back exactly the rounded latent. */
static int latent_fp8(const lm_fwd *f) { return f->mode == LM_ATTN_LATENT && lm_config_fp8_emulated(&f->m->cfg); }

/* Row layout of latent_fp8: codes [C bytes], scales [C/128], k_pe [dr]. */
static void latent_fp8_store(float *dst, const float *kva, int64_t C, int64_t dr, int ue8m0) {
    int64_t nb = C / 128;
    float *scales = dst + C / 4;
    for (int64_t b = 0; b < nb; b++) scales[b] = lm_fp8_act_quant(kva + b * 128, 128, ue8m0, (uint8_t *)dst + b * 128);
    memcpy(scales + nb, kva + C, (size_t)dr * sizeof(float));
}

/* The latent [C] and k_pe [dr] of a latent_fp8 row into out [C + dr];
 * tab = the 256 e4m3 values. */
static void latent_fp8_load(float *out, const float *row, int64_t C, int64_t dr, const float *tab) {
    const uint8_t *codes = (const uint8_t *)row;
    const float *scales = row + C / 4;
    for (int64_t i = 0; i < C; i++) out[i] = tab[codes[i]] * scales[i / 128];
    memcpy(out + C, scales + C / 128, (size_t)dr * sizeof(float));
}

/* Index scores of the segment rows r0 .. r0+nb-1 (positions pos0 ..)
 * against positions 0 .. pos0+nb-1 of the layer's key cache, into
 * f->iscore [nb, max_ctx]; keys are gathered chunk by chunk. */
static void index_scores(lm_fwd *f, lm_pool *pool, const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r0,
                         int64_t nb, int64_t pos0) {
    const lm_config *c = &f->m->cfg;
    const lm_dims *d = &f->m->dims;
    int64_t S = pos0 + nb, off = mla_floats(kc);
    for (int64_t s0 = 0; s0 < S; s0 += IDX_KCHUNK) {
        int64_t ks = S - s0 < IDX_KCHUNK ? S - s0 : IDX_KCHUNK;
        /* Runs of positions within one cache block are consecutive rows. */
        size_t elem = lm_config_fp8_emulated(c) ? 1 : sizeof(float);
        for (int64_t p = s0; p < s0 + ks;) {
            int64_t run = kc->bt - p % kc->bt;
            if (run > s0 + ks - p) run = s0 + ks - p;
            lm_indexer_gather_keys(c, kv_row(kc, seq, l, p) + off, kc->w, run,
                                   (char *)f->ikeys + (size_t)((p - s0) * d->di) * elem, f->ikscale + (p - s0));
            p += run;
        }
        /* Decode reads the codes in the matmul (a matvec converts each once);
         * a prefill block converts them first (the GEMM would once per
         * token group). The same values either way. */
        lm_mat keys = lm_indexer_keys_view(c, f->ikeys, ks, f->ione, nb * d->Hi > 16 ? f->ikeysf : NULL);
        lm_indexer_scores(pool, c, f->iq + r0 * d->Hi * d->di, f->iw + r0 * d->Hi, nb, &keys, f->ikscale, f->idots,
                          f->iscore + s0, f->max_ctx);
    }
}

/* Absorbed attention of batch row r over its chosen positions sel[0..ns):
 * their latent rows gathered in ascending order, then scores, softmax and
 * the weighted latent sum of every head (conv. 42: one key set for all). */
static void dsa_latent_row(lm_fwd *f, lm_pool *pool, const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r,
                           const int32_t *sel, int64_t ns) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, dr = d->dr, C = d->C;
    float scale = (float)lm_config_softmax_scale(&f->m->cfg);
    if (latent_fp8(f)) {
        float tab[256];
        for (int i = 0; i < 256; i++) tab[i] = lm_fp8e4m3_to_f32((uint8_t)i);
        for (int64_t i = 0; i < ns; i++) latent_fp8_load(f->gkv + i * (C + dr), kv_row(kc, seq, l, sel[i]), C, dr, tab);
    } else {
        for (int64_t i = 0; i < ns; i++)
            memcpy(f->gkv + i * (C + dr), kv_row(kc, seq, l, sel[i]), (size_t)(C + dr) * sizeof(float));
    }
    lm_mat keys = lm_f32_mat(f->gkv, ns, C + dr);
    for (int64_t h0 = 0; h0 < H; h0 += ATTN_ROWS) {
        int64_t nh = H - h0 < ATTN_ROWS ? H - h0 : ATTN_ROWS;
        lm_matmul(pool_for(pool, nh, ns, C + dr), f->asc, f->qcat + (r * H + h0) * (C + dr), nh, &keys);
        for (int64_t h = 0; h < nh; h++) {
            float *row = f->asc + h * ns;
            for (int64_t j = 0; j < ns; j++) row[j] *= scale;
            lm_softmax(row, ns);
        }
        lm_matmul_nn(pool_for(pool, nh, C, ns), f->olat + (r * H + h0) * C, C, f->asc, ns, nh, f->gkv, C + dr, ns, C);
    }
}

/* Expanded attention of batch row r over its chosen positions, head by
 * head (the naive cache holds every head's K and V). */
static void dsa_naive_row(lm_fwd *f, const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r,
                          const int32_t *sel, int64_t ns) {
    const lm_dims *d = &f->m->dims;
    int64_t H = d->H, qd = d->dn + d->dr, dv = d->dv;
    float scale = (float)lm_config_softmax_scale(&f->m->cfg);
    float *kh = f->thr, *sc = kh + f->max_ctx * qd; /* [ns, qd], [ns]: one thread's naive scratch and more */
    float *vs = f->vsel;                           /* [ns, dv] */
    for (int64_t h = 0; h < H; h++) {
        for (int64_t i = 0; i < ns; i++) {
            const float *src = kv_row(kc, seq, l, sel[i]);
            memcpy(kh + i * qd, src + h * qd, (size_t)qd * sizeof(float));
            memcpy(vs + i * dv, src + H * qd + h * dv, (size_t)dv * sizeof(float));
        }
        lm_mat keys = lm_f32_mat(kh, ns, qd);
        lm_matmul(NULL, sc, f->q + r * H * qd + h * qd, 1, &keys);
        for (int64_t j = 0; j < ns; j++) sc[j] *= scale;
        lm_softmax(sc, ns);
        lm_matmul_nn(NULL, f->attn + r * H * dv + h * dv, dv, sc, ns, 1, vs, dv, ns, dv);
    }
}

/* A segment's rows r0 .. r0+n-1 (positions pos0 ..): each keeps the top
 * min(K, pos+1) causal positions by index score (conv. 41) and attends to
 * those only. While pos < K every causal position is kept, so no score is
 * computed for such rows. */
static void dsa_segment(lm_fwd *f, lm_pool *pool, const lm_kvcache *kc, const lm_kvseq *seq, int64_t l, int64_t r0,
                        int64_t n, int64_t pos0) {
    int64_t K = f->K;
    for (int64_t t0 = 0; t0 < n; t0 += ATTN_QBLOCK) {
        int64_t nb = n - t0 < ATTN_QBLOCK ? n - t0 : ATTN_QBLOCK;
        if (pos0 + t0 + nb > K) index_scores(f, pool, kc, seq, l, r0 + t0, nb, pos0 + t0);
        for (int64_t t = 0; t < nb; t++) {
            int64_t r = r0 + t0 + t, pos = pos0 + t0 + t;
            int32_t *sel = f->sel + r * K;
            f->nsel[r] = lm_indexer_select(f->iscore + t * f->max_ctx, pos + 1, K, sel, f->iscratch);
            if (f->trace) {
                int32_t *tr = f->trace + (l * f->max_rows + r) * K;
                memcpy(tr, sel, (size_t)f->nsel[r] * sizeof *sel);
                for (int64_t i = f->nsel[r]; i < K; i++) tr[i] = -1;
            }
            if (f->mode == LM_ATTN_LATENT) dsa_latent_row(f, pool, kc, seq, l, r, sel, f->nsel[r]);
            else dsa_naive_row(f, kc, seq, l, r, sel, f->nsel[r]);
        }
    }
}

static int attention(lm_fwd *f, lm_pool *pool, const batch *b, int64_t l) {
    const lm_dims *d = &f->m->dims;
    const lm_layer *L = &f->m->w.layers[l];
    lm_kvcache *kc = b->kc;
    int64_t D = d->D, H = d->H, dn = d->dn, dr = d->dr, dv = d->dv, C = d->C, T = b->T;
    long long ll = (long long)l;
    for (int64_t t = 0; t < T; t++) lm_rmsnorm(f->xn + t * D, f->x + t * D, L->attn_norm, D, d->eps);
    DIAG(f->xn, T, D, l, 0, "'model.layers.%lld.input_layernorm.weight'", ll);
    /* The latent is normalised and its key roped in place in kva. */
    proj_check pc = {f, l};
    lm_attn_proj proj = {.norm = lm_norm_row_kernel, .cos_t = f->cos_t, .sin_t = f->sin_t, .rope_period = T,
                         .qa = f->qa, .qa_n = f->qa, .q = f->q, .kva = f->kva, .c_n = f->kva, .c_stride = C + dr,
                         .kpe = f->kva + C, .kpe_stride = C + dr, .check = f->diag ? check_projection : NULL,
                         .check_ctx = &pc};
    if (lm_attn_project(pool, d, L, f->xn, T, &proj)) return 1;
    int dsa = lm_config_has_indexer(&f->m->cfg);
    int64_t kf = lm_indexer_key_floats(&f->m->cfg);
    if (dsa) {
        /* The FP8 round trip of the normalised latent, before it is expanded
         * (conv. 45; latent mode quantises it as it caches it); k_pe stays
         * as it is. */
        if (lm_config_fp8_emulated(&f->m->cfg) && !latent_fp8(f))
            for (int64_t t = 0; t < T; t++) lm_fp8_round_blocks(f->kva + t * (C + dr), C, f->m->cfg.fp8_ue8m0);
        lm_indexer_out io = {f->iq, f->iw, f->ikey, f->ik};
        lm_indexer_project(pool, &f->m->cfg, L, f->xn, f->qa, T, f->icos, f->isin, &io);
    }
    if (f->mode == LM_ATTN_NAIVE) {
        for (int64_t t = 0; t < T; t++) memcpy(f->lat + t * C, f->kva + t * (C + dr), (size_t)C * sizeof(float));
        lm_matmul(pool, f->kvb, f->lat, T, &L->wkv_b);
        DIAG(f->kvb, T, H * (dn + dv), l, 0, "'model.layers.%lld.self_attn.kv_b_proj.weight'", ll);
    }
    if (f->mode == LM_ATTN_LATENT) absorbed_runs(f, pool, l, b->segs, b->nseg, latent_queries);
    int64_t r0 = 0;
    for (int g = 0; g < b->nseg; r0 += b->segs[g].n, g++) {
        const lm_kvseq *seq = b->segs[g].seq;
        int64_t n = b->segs[g].n, pos0 = f->rowpos[r0];
        if (f->diag && pos0 > 0) {
            const char *kind;
            int64_t p = -1;
            /* only the float part of each row: the index key (and, FP8 on,
             * the latent) are codes */
            int64_t f0 = latent_fp8(f) ? C / 4 : 0, nf = mla_floats(kc) - f0;
            if (dsa)
                for (int64_t q = 0; q < pos0 && p < 0; q++)
                    if (bad_row(kv_row(kc, seq, l, q) + f0, 1, nf, &kind) >= 0) p = q;
            if (!dsa) p = bad_row(kv_rows(f, kc, seq, l, pos0), pos0, kc->w, &kind);
            if (p >= 0) {
                note(f, l, p, kind, "the KV cache of layer %lld (written by an earlier forward)", ll);
                return 1;
            }
        }
        /* The segment's new positions into the cache. */
        for (int64_t t = 0; t < n; t++) {
            float *dst = kv_row(kc, seq, l, pos0 + t);
            const float *kva = f->kva + (r0 + t) * (C + dr);
            if (dsa) memcpy(dst + kc->w - kf, f->ikey + (r0 + t) * kf, (size_t)kf * sizeof(float));
            if (latent_fp8(f)) {
                latent_fp8_store(dst, kva, C, dr, f->m->cfg.fp8_ue8m0);
                continue;
            }
            if (f->mode == LM_ATTN_LATENT) {
                memcpy(dst, kva, (size_t)(C + dr) * sizeof(float));
                continue;
            }
            for (int64_t h = 0; h < H; h++) {
                const float *src = f->kvb + (r0 + t) * H * (dn + dv) + h * (dn + dv); /* conv. 8: [k_nope | v] */
                memcpy(dst + h * (dn + dr), src, (size_t)dn * sizeof(float));
                memcpy(dst + h * (dn + dr) + dn, kva + C, (size_t)dr * sizeof(float));
                memcpy(dst + H * (dn + dr) + h * dv, src + dn, (size_t)dv * sizeof(float));
            }
        }
        if (dsa) {
            dsa_segment(f, pool, kc, seq, l, r0, n, pos0);
            continue;
        }
        if (f->mode == LM_ATTN_LATENT && expand_segment(f, n, pos0)) {
            expanded_prefill(f, pool, kc, seq, l, r0, n, pos0);
            continue;
        }
        if (f->mode == LM_ATTN_LATENT) {
            latent_scores(f, pool, kc, seq, l, r0, n, pos0);
            continue;
        }
        /* Query blocks, each attending to the keys up to its last row. A
         * position's naive row is [K of every head | V of every head]. */
        int64_t w = H * (dn + dr + dv);
        const float *rows = kv_rows(f, kc, seq, l, pos0 + n);
        expanded_kv kv = {.k = rows, .k_stride = w, .k_head = dn + dr, .kn = dn + dr, .v = rows + H * (dn + dr),
                          .v_stride = w, .v_head = dv};
        expanded_attention(f, pool, l, r0, n, pos0, &kv, f->thr, f->thr_floats, f->thr_qb);
    }
    if (f->mode == LM_ATTN_LATENT) absorbed_runs(f, pool, l, b->segs, b->nseg, latent_values);
    if (f->diag) {
        /* Latent mode reads kv_b through its F32 copy (w_absorb); otherwise
         * finite q, k and v can only give a non-finite output by overflow. */
        const char *kind;
        int64_t row = bad_row(f->attn, T, H * dv, &kind);
        if (row >= 0) {
            const char *k2;
            int64_t p = f->rowpos[row];
            if (f->mode == LM_ATTN_LATENT && bad_row(f->w_absorb + l * f->absorb_layer_floats, 1, f->absorb_layer_floats, &k2) >= 0)
                note(f, l, p, kind, "'model.layers.%lld.self_attn.kv_b_proj.weight' (absorbed into the attention)", ll);
            else
                note(f, l, p, kind, "the attention of layer %lld (the scores overflowed)", ll);
            return 1;
        }
    }
    lm_matmul(pool, f->ffn, f->attn, T, &L->wo);
    DIAG(f->ffn, T, D, l, 0, "'model.layers.%lld.self_attn.o_proj.weight'", ll);
    return 0;
}

/* ---- feed-forward ---- */

/* A SwiGLU MLP named `name` (e.g. "model.layers.3.mlp.experts.5."); row i of
 * x is batch row (slot ? slot[i] / k : i), for diagnosis. */
static int swiglu_mlp(lm_fwd *f, lm_pool *pool, float *out, const float *x, int64_t T, const lm_mat *w1,
                      const lm_mat *w3, const lm_mat *w2, float *h1, float *h3, int64_t layer, const int32_t *slot,
                      int64_t k, const char *name) {
    lm_matmul(pool, h1, x, T, w1);
    lm_matmul(pool, h3, x, T, w3);
    if (f->diag) {
        const float *bufs[3] = {h1, h3, NULL};
        const char *parts[3] = {"gate_proj.weight'", "up_proj.weight'", NULL};
        for (int k = 0; k < 2; k++) {
            const char *kind;
            int64_t row = bad_row(bufs[k], T, w1->rows, &kind);
            if (row >= 0) {
                note(f, layer, f->rowpos[slot ? slot[row] / k : row], kind, "'%s%s", name, parts[k]);
                return 1;
            }
        }
    }
    lm_swiglu(h1, h1, h3, T * w1->rows);
    lm_matmul(pool, out, h1, T, w2);
    if (f->diag) {
        const char *kind;
        int64_t row = bad_row(h1, T, w1->rows, &kind);
        if (row >= 0) {
            note(f, layer, f->rowpos[slot ? slot[row] / k : row], kind,
                 "the SwiGLU of '%sgate_proj.weight' and 'up_proj' (overflow)", name);
            return 1;
        }
        row = bad_row(out, T, w2->rows, &kind);
        if (row >= 0) {
            note(f, layer, f->rowpos[slot ? slot[row] / k : row], kind, "'%sdown_proj.weight'", name);
            return 1;
        }
    }
    return 0;
}

/* Every token of the batch is routed on its own; an expert then multiplies
 * all the rows that chose it at once, each row with the same bits as alone. */
static int moe(lm_fwd *f, lm_pool *pool, const lm_layer *L, int64_t l, int64_t T) {
    const lm_config *c = &f->m->cfg;
    int64_t D = c->hidden_size, E = c->n_routed_experts, k = c->num_experts_per_tok;
    long long ll = (long long)l;
    char name[160];
    lm_matmul(pool, f->gate, f->xn, T, &L->gate);
    DIAG(f->gate, T, E, l, 0, "the router 'model.layers.%lld.mlp.gate.weight' (its input overflowed)", ll);
    for (int64_t t = 0; t < T; t++)
        lm_route_token(c, L->gate_bias, f->gate + t * E, f->route_idx + t * k, f->route_w + t * k);
    DIAG(f->route_w, T, k, l, 0, "the routing weights of layer %lld", ll);
    lm_group_experts(f->route_idx, T * k, E, f->eoff, f->erow, f->efill);
    for (int64_t e = 0; e < E; e++) {
        int64_t r0 = f->eoff[e], n = f->eoff[e + 1] - r0;
        if (!n) continue;
        lm_gather_expert_rows(f->xe, f->xn, f->erow + r0, n, k, D);
        if (f->diag) snprintf(name, sizeof name, "model.layers.%lld.mlp.experts.%lld.", ll, (long long)e);
        if (swiglu_mlp(f, pool, f->ye, f->xe, n, &L->ew1[e], &L->ew3[e], &L->ew2[e], f->h1, f->h3, l, f->erow + r0, k,
                       name))
            return 1;
        lm_scatter_expert_rows(f->slots, f->ye, f->erow + r0, n, D);
    }
    if (L->has_shared) {
        if (f->diag) snprintf(name, sizeof name, "model.layers.%lld.mlp.shared_experts.", ll);
        if (swiglu_mlp(f, pool, f->ffn, f->xn, T, &L->sw1, &L->sw3, &L->sw2, f->h1, f->h3, l, NULL, 1, name)) return 1;
    } else {
        memset(f->ffn, 0, (size_t)(T * D) * sizeof(float));
    }
    lm_moe_combine(f->ffn, f->slots, f->route_w, T, k, D);
    DIAG(f->ffn, T, D, l, 0, "the MoE output of layer %lld (overflow)", ll);
    return 0;
}

/* ---- the forward ---- */

/* One batch whose blocks are reserved; positions advance on success.
 * Returns 1 when a diagnostic forward found a non-finite value (the batch is
 * then left unfinished and positions unchanged). Logits rows: LAST, one per
 * segment; ALL, one per row. */
static int forward_batch(lm_fwd *f, lm_pool *pool, const batch *b, float *logits, lm_logits_mode mode) {
    const lm_model *m = f->m;
    const lm_config *c = &m->cfg;
    int64_t D = c->hidden_size, T = b->T, half = c->qk_rope_head_dim / 2;
    int64_t r = 0;
    for (int g = 0; g < b->nseg; g++) {
        const lm_batch_seg *sg = &b->segs[g];
        for (int64_t t = 0; t < sg->n; t++) {
            f->rowpos[r + t] = sg->seq->pos + t;
            if (b->x_in) memcpy(f->x + (r + t) * D, b->x_in + (r + t) * D, (size_t)D * sizeof(float));
            else lm_mat_row(&m->w.embed, sg->ids[t], f->x + (r + t) * D);
        }
        lm_rope_tables(c, f->inv_freq, sg->seq->pos, sg->n, f->cos_t + r * half, f->sin_t + r * half);
        if (f->icos) lm_indexer_rope_tables(c, f->inv_freq, sg->seq->pos, sg->n, f->icos + r * half, f->isin + r * half);
        r += sg->n;
    }
    if (f->diag) {
        const char *kind;
        int64_t row = bad_row(f->x, T, D, &kind);
        if (row >= 0) {
            int64_t rr = row, g = 0;
            while (rr >= b->segs[g].n) rr -= b->segs[g++].n;
            if (b->x_in) note(f, -1, f->rowpos[row], kind, "the input rows given to the forward");
            else
                note(f, -1, f->rowpos[row], kind, "'model.embed_tokens.weight' (row %d, the token's embedding)",
                     b->segs[g].ids[rr]);
            return 1;
        }
    }
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        const lm_layer *L = &m->w.layers[l];
        long long ll = (long long)l;
        if (attention(f, pool, b, l)) return 1;
        for (int64_t i = 0; i < T * D; i++) f->x[i] += f->ffn[i];
        DIAG(f->x, T, D, l, 0, "the residual stream after the attention of layer %lld (overflow)", ll);
        for (int64_t t = 0; t < T; t++) lm_rmsnorm(f->xn + t * D, f->x + t * D, L->ffn_norm, D, (float)c->rms_norm_eps);
        DIAG(f->xn, T, D, l, 0, "'model.layers.%lld.post_attention_layernorm.weight'", ll);
        if (L->is_moe) {
            if (moe(f, pool, L, l, T)) return 1;
        } else {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%lld.mlp.", ll);
            if (swiglu_mlp(f, pool, f->ffn, f->xn, T, &L->w1, &L->w3, &L->w2, f->h1, f->h3, l, NULL, 1, name)) return 1;
        }
        for (int64_t i = 0; i < T * D; i++) f->x[i] += f->ffn[i];
        DIAG(f->x, T, D, l, 0, "the residual stream after the MLP of layer %lld (overflow)", ll);
    }
    for (int g = 0; g < b->nseg; g++) b->segs[g].seq->pos += b->segs[g].n;
    if (mode == LM_LOGITS_NONE) return 0;
    /* The rows that get logits, normalised into consecutive rows of xn
     * (row i <= the row it comes from, so nothing is overwritten early). */
    int64_t nrows = 0;
    r = 0;
    for (int g = 0; g < b->nseg; r += b->segs[g].n, g++)
        for (int64_t t = mode == LM_LOGITS_ALL ? 0 : b->segs[g].n - 1; t < b->segs[g].n; t++) {
            f->rowpos[nrows] = f->rowpos[r + t];
            lm_rmsnorm(f->xn + nrows * D, f->x + (r + t) * D, m->w.final_norm, D, (float)c->rms_norm_eps);
            nrows++;
        }
    DIAG(f->xn, nrows, D, -1, 0, "'model.norm.weight'");
    lm_matmul(pool, logits, f->xn, nrows, &m->w.head);
    DIAG(logits, nrows, c->vocab_size, -1, 0, "%s",
         m->w.head.data == m->w.embed.data ? "'model.embed_tokens.weight' (the tied head)" : "'lm_head.weight'");
    return 0;
}

static void rewind_batch(lm_kvcache *kc, const lm_batch_seg *segs, int nseg, const int64_t *start) {
    for (int g = 0; g < nseg; g++) lm_kvseq_truncate(kc, segs[g].seq, start[g]);
}

static int batch_forward(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_batch_seg *segs, int nseg,
                         const float *x_in, float *logits, lm_logits_mode mode, lm_error *err) {
    const lm_config *c = &f->m->cfg;
    if (kc->m != f->m || kc->mode != f->mode)
        return lm_fail(err, "batched forward: the cache belongs to another model or attention mode");
    if (nseg < 1) return lm_fail(err, "batched forward of no segments");
    if (pool && lm_pool_size(pool) > f->nthreads)
        return lm_fail(err, "pool has %d threads but the state was sized for %d", lm_pool_size(pool), f->nthreads);
    int64_t T = 0, need = 0;
    for (int g = 0; g < nseg; g++) {
        const lm_batch_seg *sg = &segs[g];
        if (!sg->seq || sg->n < 1) return lm_fail(err, "segment %d of the batch has no sequence or no tokens", g);
        for (int h = 0; h < g; h++)
            if (segs[h].seq == sg->seq) return lm_fail(err, "segments %d and %d extend the same sequence", h, g);
        for (int64_t t = 0; !x_in && t < sg->n; t++)
            if (sg->ids[t] < 0 || sg->ids[t] >= c->vocab_size)
                return lm_fail(err, "token id %d at position %lld is out of range (vocab_size %lld)", sg->ids[t],
                               (long long)(sg->seq->pos + t), (long long)c->vocab_size);
        if (sg->seq->pos + sg->n > f->max_ctx)
            return lm_fail(err, "%lld tokens after %lld cached exceed the context of %lld", (long long)sg->n,
                           (long long)sg->seq->pos, (long long)f->max_ctx);
        T += sg->n;
        need += lm_kvseq_blocks_needed(kc, sg->seq, sg->n);
    }
    if (T > f->max_rows)
        return lm_fail(err, "a batch of %lld rows exceeds the %lld the state was sized for", (long long)T,
                       (long long)f->max_rows);
    if (need > kc->nfree)
        return lm_fail(err, "KV cache full: %lld more blocks needed, %lld free of %lld", (long long)need,
                       (long long)kc->nfree, (long long)kc->nblocks);
    int64_t start_small[64], *start = nseg <= 64 ? start_small : malloc((size_t)nseg * sizeof *start);
    if (!start) return lm_fail(err, "out of memory");
    int rc = 0;
    for (int g = 0; g < nseg; g++) {
        start[g] = segs[g].seq->pos;
        if (kvseq_reserve(kc, segs[g].seq, segs[g].n, err)) {
            rewind_batch(kc, segs, g, start);
            rc = -1;
            goto done;
        }
    }
    batch b = {kc, segs, nseg, T, x_in};
    forward_batch(f, pool, &b, logits, mode);
    /* Every row handed back is checked: NaN logits would otherwise be
     * sampled as token 0 or written out as numbers (V floats per row, next
     * to a V x D matmul). */
    const char *bad_kind = NULL;
    int64_t rows = mode == LM_LOGITS_ALL ? T : mode == LM_LOGITS_LAST ? nseg : 0;
    int64_t bad = rows ? bad_row(logits, rows, c->vocab_size, &bad_kind) : -1;
    if (bad < 0) goto done;
    /* Non-finite logits: run the batch again from the same caches, checking
     * every block output, to name the first tensor whose output went
     * non-finite. The caches are left as they were before the call. */
    int bad_seg = 0;
    int64_t bad_pos;
    if (mode == LM_LOGITS_LAST) {
        bad_seg = (int)bad;
        bad_pos = start[bad_seg] + segs[bad_seg].n - 1;
    } else {
        int64_t rr = bad;
        while (rr >= segs[bad_seg].n) rr -= segs[bad_seg++].n;
        bad_pos = start[bad_seg] + rr;
    }
    rewind_batch(kc, segs, nseg, start);
    diag d = {0};
    for (int g = 0; g < nseg; g++)
        if (kvseq_reserve(kc, segs[g].seq, segs[g].n, err)) { /* the blocks just freed: cannot fail */
            rewind_batch(kc, segs, g, start);
            rc = -1;
            goto done;
        }
    f->diag = &d;
    forward_batch(f, pool, &b, logits, mode);
    f->diag = NULL;
    rewind_batch(kc, segs, nseg, start);
    char where[48] = "";
    if (nseg > 1) snprintf(where, sizeof where, " (segment %d)", bad_seg);
    if (!d.found) {
        rc = lm_fail(err, "logits at position %lld%s are %s (a diagnostic re-run found no non-finite block output)",
                     (long long)bad_pos, where, bad_kind);
        goto done;
    }
    char layer[32] = "";
    if (d.layer >= 0) snprintf(layer, sizeof layer, "layer %lld, ", (long long)d.layer);
    rc = lm_fail(err, "logits at position %lld%s are %s: the first non-finite value (%s) is in the output of %s "
                 "(%sposition %lld); `lemma info --check-weights` scans every tensor",
                 (long long)bad_pos, where, bad_kind, d.kind, d.what, layer, (long long)d.pos);
done:
    if (start != start_small) free(start);
    return rc;
}

int lm_batch_forward(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_batch_seg *segs, int nseg, float *logits,
                     lm_logits_mode mode, lm_error *err) {
    return batch_forward(f, pool, kc, segs, nseg, NULL, logits, mode, err);
}

int lm_batch_forward_rows(lm_fwd *f, lm_pool *pool, lm_kvcache *kc, const lm_batch_seg *segs, int nseg,
                          const float *x_in, float *logits, lm_logits_mode mode, lm_error *err) {
    if (!x_in) return lm_fail(err, "batched forward from rows: no input rows");
    return batch_forward(f, pool, kc, segs, nseg, x_in, logits, mode, err);
}

const float *lm_fwd_residual(const lm_fwd *f) { return f->x; }

/* ---- one sequence ---- */

/* Blocks of the one-sequence state: enough to hold max_ctx positions. */
enum { INFER_BLOCK = 64 };

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
    s->max_chunk = max_chunk;
    s->f = lm_fwd_create(m, mode, max_chunk, max_ctx, nthreads, err);
    if (s->f) s->kc = lm_kvcache_create(m, mode, INFER_BLOCK, (max_ctx + INFER_BLOCK - 1) / INFER_BLOCK, err);
    if (!s->f || !s->kc) {
        lm_infer_free(s);
        return NULL;
    }
    return s;
}

void lm_infer_free(lm_infer *s) {
    if (!s) return;
    if (s->kc) lm_kvseq_release(s->kc, &s->seq);
    lm_kvcache_free(s->kc);
    lm_fwd_free(s->f);
    free(s);
}

void lm_infer_trace_index(lm_infer *s, int32_t *buf) { lm_fwd_trace_index(s->f, buf); }
int lm_infer_set_prefill(lm_infer *s, lm_prefill_mode mode, lm_error *err) { return lm_fwd_set_prefill(s->f, mode, err); }
void lm_infer_reset(lm_infer *s) { lm_kvseq_truncate(s->kc, &s->seq, 0); }
int64_t lm_infer_pos(const lm_infer *s) { return s->seq.pos; }
void lm_infer_truncate(lm_infer *s, int64_t n) { lm_kvseq_truncate(s->kc, &s->seq, n); }

int64_t lm_infer_kv_bytes_per_token(const lm_infer *s) {
    return lm_kv_floats_per_token(&s->f->m->cfg, s->f->mode) * s->f->m->cfg.num_hidden_layers * (int64_t)sizeof(float);
}

int lm_infer_copy_cache(lm_infer *dst, const lm_infer *src, lm_error *err) {
    if (dst->f->m != src->f->m || dst->f->mode != src->f->mode)
        return lm_fail(err, "cache copy between different models or attention modes");
    if (src->seq.pos > dst->f->max_ctx)
        return lm_fail(err, "cache copy: %lld positions do not fit in %lld", (long long)src->seq.pos,
                       (long long)dst->f->max_ctx);
    lm_kvseq_truncate(dst->kc, &dst->seq, 0);
    if (kvseq_reserve(dst->kc, &dst->seq, src->seq.pos, err)) return -1;
    const lm_kvcache *a = src->kc, *b = dst->kc;
    for (int64_t l = 0; l < src->f->m->cfg.num_hidden_layers; l++)
        for (int64_t p = 0; p < src->seq.pos; p += a->bt) {
            int64_t n = src->seq.pos - p < a->bt ? src->seq.pos - p : a->bt;
            memcpy(kv_row(b, &dst->seq, l, p), kv_row(a, &src->seq, l, p), (size_t)(n * a->w) * sizeof(float));
        }
    dst->seq.pos = src->seq.pos;
    return 0;
}

int lm_infer_forward(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t T, float *logits, lm_logits_mode mode,
                     lm_error *err) {
    const lm_config *c = &s->f->m->cfg;
    if (T < 1) return lm_fail(err, "forward of an empty token list");
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return lm_fail(err, "token id %d at position %lld is out of range (vocab_size %lld)", ids[t], (long long)t,
                           (long long)c->vocab_size);
    if (s->seq.pos + T > s->f->max_ctx)
        return lm_fail(err, "%lld tokens after %lld cached exceed the context of %lld", (long long)T,
                       (long long)s->seq.pos, (long long)s->f->max_ctx);
    int64_t start = s->seq.pos, V = c->vocab_size;
    for (int64_t t0 = 0; t0 < T; t0 += s->max_chunk) {
        int64_t n = T - t0 < s->max_chunk ? T - t0 : s->max_chunk;
        lm_logits_mode cm = mode == LM_LOGITS_ALL ? LM_LOGITS_ALL : (t0 + n == T ? mode : LM_LOGITS_NONE);
        lm_batch_seg seg = {&s->seq, ids + t0, n};
        if (lm_batch_forward(s->f, pool, s->kc, &seg, 1, cm == LM_LOGITS_ALL ? logits + t0 * V : logits, cm, err)) {
            lm_kvseq_truncate(s->kc, &s->seq, start);
            return -1;
        }
    }
    return 0;
}

size_t lm_fwd_buffer_bytes(const lm_config *cfg, lm_attn_mode mode, int64_t max_rows, int64_t max_ctx, int nthreads) {
    /* layout() reads only the config, the dimensions and these four fields:
     * its sizing pass on a weightless model is exactly what lm_fwd_create maps. */
    lm_model *mm = calloc(1, sizeof *mm); /* large (dir[]): not on the stack */
    if (!mm) return 0;
    mm->cfg = *cfg;
    mm->dims = lm_dims_of(cfg);
    lm_fwd f;
    memset(&f, 0, sizeof f);
    f.m = mm;
    f.mode = mode;
    f.max_rows = max_rows < 1 ? 1 : max_rows;
    f.max_ctx = max_ctx < 1 ? 1 : max_ctx;
    f.nthreads = nthreads < 1 ? 1 : nthreads;
    layout(&f, &f.arena);
    free(mm);
    return f.arena.bytes;
}
