/* model.c — binding a checkpoint's tensors to the model structure, with a
 * shape and dtype check for each; parameter counting. */
#include "model/model.h"

#include "model/indexer.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct binder {
    lm_model *m;
    lm_error *err;
    float *vec_next;             /* bump pointer into m->owned */
    float *vec_end;
} binder;

static int bind_vec(binder *b, const char *name, int64_t n, float **out);

/* NaN or Inf anywhere in tensor t is an error naming the element. */
static int check_finite(binder *b, const lm_tensor *t, const char *name) {
    int64_t i = lm_first_nonfinite(t->data, t->dtype, t->numel);
    if (i < 0) return 0;
    return lm_fail(b->err, "%s: tensor '%s' has %s at element %lld, expected finite values",
                   lm_st_file_path(b->m->tensors, t->file), name, lm_nonfinite_name(t->data, t->dtype, i), (long long)i);
}

int lm_model_bind_mat(const lm_model *m, const char *name, int64_t rows, int64_t cols, lm_mat *out, lm_error *err) {
    binder bb = {(lm_model *)(uintptr_t)m, err, NULL, NULL}, *b = &bb;
    const lm_tensor *t = lm_st_find(b->m->tensors, name);
    if (!t) return lm_fail(b->err, "%s: missing tensor '%s' (expected shape [%lld, %lld])", b->m->dir, name,
                           (long long)rows, (long long)cols);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return lm_fail(b->err, "%s: tensor '%s' has shape %s[%lld%s%lld], expected [%lld, %lld]",
                       lm_st_file_path(b->m->tensors, t->file), name, t->ndim == 2 ? "" : "(not 2-D) ",
                       (long long)(t->ndim > 0 ? t->shape[0] : 0), t->ndim > 1 ? ", " : "",
                       (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)rows, (long long)cols);
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->data = t->data;
    out->dtype = t->dtype;
    switch (t->dtype) {
    case LM_DTYPE_F32:
    case LM_DTYPE_BF16:
    case LM_DTYPE_F16:
        return 0;
    case LM_DTYPE_F8_E4M3: {
        char sname[512];
        snprintf(sname, sizeof sname, "%s_scale_inv", name);
        const lm_tensor *s = lm_st_find(b->m->tensors, sname);
        int64_t br = (rows + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK, bc = (cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
        if (!s)
            return lm_fail(b->err, "%s: FP8 tensor '%s' has no scale tensor '%s' (expected F32 [%lld, %lld])",
                           b->m->dir, name, sname, (long long)br, (long long)bc);
        if (s->dtype != LM_DTYPE_F32 || s->ndim != 2 || s->shape[0] != br || s->shape[1] != bc)
            return lm_fail(b->err, "%s: scale tensor '%s' must be F32 [%lld, %lld] (128x128 blocks)",
                           lm_st_file_path(b->m->tensors, s->file), sname, (long long)br, (long long)bc);
        if (((uintptr_t)s->data & 3) != 0)
            return lm_fail(b->err, "%s: scale tensor '%s' is not 4-byte aligned in the file",
                           lm_st_file_path(b->m->tensors, s->file), sname);
        /* One scale per 16384 weights: cheap to check at load, and a bad one
         * poisons a whole block. */
        if (check_finite(b, s, sname)) return -1;
        out->scale_inv = s->data;
        return 0;
    }
    case LM_DTYPE_I8: { /* Q8 (lemma quantize): F16 scales per 32 columns */
        char sname[512];
        snprintf(sname, sizeof sname, "%s_q8_scale", name);
        const lm_tensor *s = lm_st_find(b->m->tensors, sname);
        int64_t sc = (cols + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK;
        if (!s)
            return lm_fail(b->err, "%s: I8 tensor '%s' has no scale tensor '%s' (expected F16 [%lld, %lld])", b->m->dir,
                           name, sname, (long long)rows, (long long)sc);
        if (s->dtype != LM_DTYPE_F16 || s->ndim != 2 || s->shape[0] != rows || s->shape[1] != sc)
            return lm_fail(b->err, "%s: scale tensor '%s' must be F16 [%lld, %lld] (blocks of 32 columns)",
                           lm_st_file_path(b->m->tensors, s->file), sname, (long long)rows, (long long)sc);
        if (((uintptr_t)s->data & 1) != 0)
            return lm_fail(b->err, "%s: scale tensor '%s' is not 2-byte aligned in the file",
                           lm_st_file_path(b->m->tensors, s->file), sname);
        if (check_finite(b, s, sname)) return -1;
        out->q8_scale = s->data;
        return 0;
    }
    default:
        return lm_fail(b->err, "%s: tensor '%s' has dtype %s, expected F32, BF16, F16, F8_E4M3 or I8 (Q8)",
                       lm_st_file_path(b->m->tensors, t->file), name, lm_dtype_name(t->dtype));
    }
}

static int bind_mat(binder *b, const char *name, int64_t rows, int64_t cols, lm_mat *out) {
    return lm_model_bind_mat(b->m, name, rows, cols, out, b->err);
}

int lm_model_bind_vec(const lm_model *m, const char *name, int64_t n, float *dst, lm_error *err) {
    float *end = dst + n;
    binder bb = {(lm_model *)(uintptr_t)m, err, dst, end};
    float *out;
    return bind_vec(&bb, name, n, &out);
}

/* A 1-D float vector of length n, converted to F32 into the owned block;
 * NaN or Inf (in a norm weight or routing bias) is an error. */
static int bind_vec(binder *b, const char *name, int64_t n, float **out) {
    const lm_tensor *t = lm_st_find(b->m->tensors, name);
    if (!t) return lm_fail(b->err, "%s: missing tensor '%s' (expected shape [%lld])", b->m->dir, name, (long long)n);
    if (t->ndim != 1 || t->shape[0] != n)
        return lm_fail(b->err, "%s: tensor '%s' has %d dims [%lld...], expected shape [%lld]",
                       lm_st_file_path(b->m->tensors, t->file), name, t->ndim,
                       (long long)(t->ndim ? t->shape[0] : 0), (long long)n);
    if (t->dtype != LM_DTYPE_F32 && t->dtype != LM_DTYPE_BF16 && t->dtype != LM_DTYPE_F16)
        return lm_fail(b->err, "%s: tensor '%s' has dtype %s, expected F32, BF16 or F16",
                       lm_st_file_path(b->m->tensors, t->file), name, lm_dtype_name(t->dtype));
    if (n > b->vec_end - b->vec_next) /* cannot happen: see lm_model_load */
        return lm_fail(b->err, "%s: tensor '%s': more vector elements than the checkpoint holds", b->m->dir, name);
    float *dst = b->vec_next;
    b->vec_next += n;
    lm_convert_to_f32(dst, t->data, t->dtype, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return lm_fail(b->err, "%s: tensor '%s' has %s at element %lld, expected finite values",
                           lm_st_file_path(b->m->tensors, t->file), name,
                           isnan(dst[i]) ? "NaN" : dst[i] > 0 ? "inf" : "-inf", (long long)i);
    *out = dst;
    return 0;
}

static int64_t owned_floats(const lm_config *c) {
    int64_t D = c->hidden_size,
            per = 2 * D + c->kv_lora_rank + c->q_lora_rank + c->n_routed_experts + 2 * c->index_head_dim;
    return D + c->num_hidden_layers * per;
}

/* One tensor of the arch table: a matrix view, or a vector converted into
 * the owned block. */
static int bind_item(void *ctx, const lm_arch_item *it) {
    binder *b = ctx;
    lm_model *m = b->m;
    if (it->t->scope == LM_AT_EXPERT) {
        lm_layer *L = &m->w.layers[it->layer];
        /* Allocated only now that the router [E, D] exists: E is then backed
         * by the checkpoint, not just by config.json. */
        int64_t E = m->cfg.n_routed_experts;
        if (!L->ew1 && !(L->ew1 = calloc((size_t)E * 3, sizeof(lm_mat)))) return lm_fail(b->err, "out of memory");
        L->ew2 = L->ew1 + E;
        L->ew3 = L->ew1 + 2 * E;
    }
    void *field = lm_arch_field(&m->w, it);
    if (!field) return 0;
    if (it->ndim == 1) return bind_vec(b, it->name, it->shape[0], field);
    if (bind_mat(b, it->name, it->shape[0], it->shape[1], field)) return -1;
    /* The router is small (E x D, ~0.4% of a V3 MoE layer) and a non-finite
     * score would silently mis-route every token: checked at load. */
    if (it->t->flags & LM_ARCH_CHECK_FINITE) return check_finite(b, lm_st_find(m->tensors, it->name), it->name);
    return 0;
}

/* ---- panels (model.h) ---- */

typedef struct pack_plan {
    lm_model *m;
    lm_mat **mats;               /* the views to repack */
    size_t *offset;              /* where each goes in m->panels */
    int64_t n, cap;
    int64_t *chunk_mat, *chunk_p0; /* work items: blocks [p0, p0 + PACK_CHUNK) of a matrix */
    int64_t *chunk_nan;          /* FP8 NaN bytes each work item found */
    int64_t nchunks;
    atomic_llong next;
} pack_plan;

enum { PACK_CHUNK = 8 }; /* blocks of 128 rows */

static int plan_add(pack_plan *pl, lm_mat *w) {
    if (pl->n == pl->cap) {
        int64_t cap = pl->cap ? 2 * pl->cap : 64;
        lm_mat **mats = realloc(pl->mats, (size_t)cap * sizeof *mats);
        if (!mats) return -1;
        pl->mats = mats;
        pl->cap = cap;
    }
    pl->mats[pl->n++] = w;
    return 0;
}

/* Every matrix the forward reaches only through lm_matmul and lm_mat_row:
 * all 2-D tensors with a field, except the embedding (a row lookup; packed
 * only as the tied head, below). */
static int plan_item(void *ctx, const lm_arch_item *it) {
    pack_plan *pl = ctx;
    if (it->ndim != 2) return 0;
    if (it->t->scope == LM_AT_MODEL && it->t->field == (ptrdiff_t)offsetof(lm_weights, embed)) return 0;
    lm_mat *w = lm_arch_field(&pl->m->w, it);
    if (!w || !w->data) return 0;
    return plan_add(pl, w);
}

static void pack_task(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    pack_plan *pl = arg;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&pl->next, 1, memory_order_relaxed);
        if (c >= pl->nchunks) return;
        int64_t i = pl->chunk_mat[c], p0 = pl->chunk_p0[c];
        const lm_mat *w = pl->mats[i];
        int64_t np = lm_panel_blocks(w), p1 = p0 + PACK_CHUNK < np ? p0 + PACK_CHUNK : np;
        pl->chunk_nan[c] = lm_mat_pack_panels(w, (uint8_t *)pl->m->panels + pl->offset[i], p0, p1);
    }
}

static int pack_model(lm_model *m, lm_error *err) {
    pack_plan pl = {.m = m};
    int rc = -1;
    lm_pool *pool = NULL;
    if (lm_arch_each(&m->cfg, LM_ARCH_MAIN, plan_item, &pl)) goto oom;
    /* A tied head is the embedding: packed with it, the lookups read it
     * through lm_mat_row. A tied config that stores lm_head.weight anyway
     * binds that (not in the table's walk). */
    int tied = m->w.head.data == m->w.embed.data;
    if (tied && plan_add(&pl, &m->w.embed)) goto oom;
    if (!tied && m->cfg.tie_word_embeddings && plan_add(&pl, &m->w.head)) goto oom;
    pl.offset = malloc((size_t)(pl.n + 1) * sizeof *pl.offset);
    if (!pl.offset) goto oom;
    size_t total = 0;
    int64_t nchunks = 0;
    for (int64_t i = 0; i < pl.n; i++) {
        pl.offset[i] = total;
        total += (lm_mat_panel_bytes(pl.mats[i]) + 63) / 64 * 64;
        nchunks += (lm_panel_blocks(pl.mats[i]) + PACK_CHUNK - 1) / PACK_CHUNK;
    }
    /* Beyond 3/4 of RAM the copy would push the mapping (and everything
     * else) out: keep the row-major views, same bits, slower decode. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (!total || (pages > 0 && page > 0 && (double)total > 0.75 * (double)pages * (double)page)) {
        rc = 0;
        goto done;
    }
    pl.chunk_mat = malloc((size_t)nchunks * sizeof *pl.chunk_mat);
    pl.chunk_p0 = malloc((size_t)nchunks * sizeof *pl.chunk_p0);
    pl.chunk_nan = calloc((size_t)nchunks, sizeof *pl.chunk_nan);
    size_t align = (size_t)1 << 21;
    m->panels = aligned_alloc(align, (total + align - 1) / align * align);
    if (!pl.chunk_mat || !pl.chunk_p0 || !pl.chunk_nan || !m->panels) goto oom;
    m->panel_bytes = total;
    madvise(m->panels, (total + align - 1) / align * align, MADV_HUGEPAGE);
    for (int64_t i = 0; i < pl.n; i++)
        for (int64_t p = 0; p < lm_panel_blocks(pl.mats[i]); p += PACK_CHUNK) {
            pl.chunk_mat[pl.nchunks] = i;
            pl.chunk_p0[pl.nchunks++] = p;
        }
    atomic_init(&pl.next, 0);
    /* a pass over every weight: threads pay off from a few MB up */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (total > ((size_t)32 << 20) && ncpu > 1) pool = lm_pool_create(ncpu > 32 ? 32 : (int)ncpu);
    lm_pool_run_dynamic(pool, pack_task, &pl);
    for (int64_t i = 0; i < pl.n; i++) {
        pl.mats[i]->data = (uint8_t *)m->panels + pl.offset[i];
        pl.mats[i]->layout = LM_LAYOUT_PANELS;
        pl.mats[i]->fp8_nan_free = pl.mats[i]->dtype == LM_DTYPE_F8_E4M3;
    }
    for (int64_t c = 0; c < pl.nchunks; c++)
        if (pl.chunk_nan[c]) pl.mats[pl.chunk_mat[c]]->fp8_nan_free = 0;
    if (tied) m->w.head = m->w.embed;
    rc = 0;
    goto done;
oom:
    lm_fail(err, "%s: out of memory repacking the weights into panels (LEMMA_PANELS=0 loads without)", m->dir);
done:
    lm_pool_free(pool);
    free(pl.mats);
    free(pl.offset);
    free(pl.chunk_mat);
    free(pl.chunk_p0);
    free(pl.chunk_nan);
    return rc;
}

int lm_model_load(const char *dir, lm_model **out, lm_error *err) {
    const char *env = getenv("LEMMA_PANELS");
    return lm_model_load_flags(dir, env && !strcmp(env, "0") ? LM_LOAD_ROWS : 0, out, err);
}

int lm_model_load_flags(const char *dir, unsigned flags, lm_model **out, lm_error *err) {
    lm_model *m = calloc(1, sizeof *m);
    if (!m) return lm_fail(err, "out of memory");
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (lm_config_load(dir, &m->cfg, err) || lm_st_open_dir(dir, &m->tensors, err)) {
        lm_model_free(m);
        return -1;
    }
    const lm_config *c = &m->cfg;
    int64_t L = c->num_hidden_layers;
    /* Every vector bound is a distinct tensor of the checkpoint, so the block
     * never needs more floats than the checkpoint has elements: a config.json
     * with absurd sizes cannot make us allocate more than the files hold (it
     * fails on the first tensor that does not match instead). */
    int64_t nvec = owned_floats(c), have = 0;
    for (int64_t i = 0; i < lm_st_count(m->tensors); i++) have += lm_st_tensor(m->tensors, i)->numel;
    if (nvec > have) nvec = have;
    m->dims = lm_dims_of(c);
    m->w.layers = calloc((size_t)L, sizeof *m->w.layers);
    m->owned = malloc((size_t)(nvec + 1) * sizeof(float));
    if (!m->w.layers || !m->owned) {
        lm_model_free(m);
        return lm_fail(err, "out of memory");
    }
    binder b = {m, err, m->owned, m->owned + nvec};
    for (int64_t l = 0; l < L; l++) {
        m->w.layers[l].is_moe = lm_config_layer_is_moe(c, l);
        m->w.layers[l].has_shared = m->w.layers[l].is_moe && c->n_shared_experts > 0;
    }
    int rc = lm_arch_each(c, LM_ARCH_MAIN, bind_item, &b);
    /* A tied head is the embedding unless the checkpoint stores one anyway. */
    if (!rc && c->tie_word_embeddings) {
        if (lm_st_find(m->tensors, "lm_head.weight"))
            rc = bind_mat(&b, "lm_head.weight", c->vocab_size, c->hidden_size, &m->w.head);
        else
            m->w.head = m->w.embed;
    }
    if (!rc && !(flags & LM_LOAD_ROWS)) rc = pack_model(m, err);
    if (rc) {
        lm_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    if (m->w.layers)
        for (int64_t l = 0; l < m->cfg.num_hidden_layers; l++) free(m->w.layers[l].ew1);
    free(m->w.layers);
    free(m->owned);
    free(m->panels);
    lm_st_close(m->tensors);
    free(m);
}

typedef struct count_walk {
    const lm_config *c;
    lm_param_count *p;
} count_walk;

static int count_item(void *ctx, const lm_arch_item *it) {
    count_walk *w = ctx;
    w->p->total += it->numel;
    if (it->t->scope == LM_AT_MODEL && it->t->field == (ptrdiff_t)offsetof(lm_weights, embed)) return 0; /* a lookup */
    /* Experts have one shape: the first top-k of them are what a token runs. */
    if (it->t->scope != LM_AT_EXPERT || it->expert < w->c->num_experts_per_tok) w->p->active += it->numel;
    return 0;
}

lm_param_count lm_model_params(const lm_model *m) {
    const lm_config *c = &m->cfg;
    lm_param_count p = {0};
    p.embedding = c->vocab_size * c->hidden_size;
    p.expert_each = 3 * c->moe_intermediate_size * c->hidden_size;
    count_walk w = {c, &p};
    lm_arch_each(c, LM_ARCH_MAIN, count_item, &w);
    if (c->tie_word_embeddings) p.active += p.embedding; /* the head is a full matmul per token, tied or not */
    return p;
}

typedef struct report_walk {
    const lm_tensor_set *set;
    lm_tensor_report *r;
} report_walk;

static int report_item(void *ctx, const lm_arch_item *it) {
    report_walk *w = ctx;
    const lm_tensor *t = lm_st_find(w->set, it->name);
    if (!t) {
        w->r->missing++;
        return 0;
    }
    w->r->known++;
    char sname[LM_ARCH_NAME_MAX + 16];
    snprintf(sname, sizeof sname, "%s_scale_inv", it->name);
    if (t->dtype == LM_DTYPE_F8_E4M3 && lm_st_find(w->set, sname)) w->r->known++;
    snprintf(sname, sizeof sname, "%s_q8_scale", it->name);
    if (t->dtype == LM_DTYPE_I8 && lm_st_find(w->set, sname)) w->r->known++;
    return 0;
}

void lm_model_tensor_report(const lm_model *m, lm_tensor_report *r) {
    memset(r, 0, sizeof *r);
    r->total = lm_st_count(m->tensors);
    for (int64_t i = 0; i < r->total; i++) {
        const lm_tensor *t = lm_st_tensor(m->tensors, i);
        r->count[t->dtype]++;
        r->bytes[t->dtype] += (double)t->nbytes;
    }
    report_walk w = {m->tensors, r};
    lm_arch_each(&m->cfg, LM_ARCH_WITH_MTP, report_item, &w);
}

int64_t lm_kv_floats_per_token(const lm_config *c, lm_attn_mode mode) {
    int64_t index_key = lm_indexer_key_floats(c); /* V3.2: beside the MLA part of the row */
    int64_t C = c->kv_lora_rank;
    /* V3.2 with the FP8 emulation caches the latent as e4m3 codes (4 to a
     * float) and one scale per 128 channels (forward.c, conv. 45). */
    if (mode == LM_ATTN_LATENT && lm_config_fp8_emulated(c))
        return (C + 3) / 4 + (C + 127) / 128 + c->qk_rope_head_dim + index_key;
    if (mode == LM_ATTN_LATENT) return C + c->qk_rope_head_dim + index_key;
    return c->num_attention_heads * (c->qk_nope_head_dim + c->qk_rope_head_dim + c->v_head_dim) + index_key;
}

static double mat_bytes(const lm_mat *w) {
    if (!w->data) return 0;
    double b = (double)w->rows * (double)w->cols * (double)lm_dtype_size(w->dtype);
    if (w->scale_inv)
        b += (double)((w->rows + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK) * ((w->cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK) * 4;
    if (w->dtype == LM_DTYPE_I8) b += (double)w->rows * (double)((w->cols + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK) * 2;
    return b;
}

double lm_model_active_weight_bytes(const lm_model *m) {
    const lm_config *c = &m->cfg;
    double b = mat_bytes(&m->w.head) + (double)c->hidden_size * (double)lm_dtype_size(m->w.embed.dtype);
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        const lm_layer *L = &m->w.layers[l];
        b += mat_bytes(&L->wq) + mat_bytes(&L->wq_a) + mat_bytes(&L->wq_b) + mat_bytes(&L->wkv_a) +
             mat_bytes(&L->wkv_b) + mat_bytes(&L->wo);
        b += mat_bytes(&L->iwq_b) + mat_bytes(&L->iwk) + mat_bytes(&L->iw_proj); /* V3.2 indexer (zero views otherwise) */
        if (!L->is_moe) {
            b += mat_bytes(&L->w1) + mat_bytes(&L->w2) + mat_bytes(&L->w3);
            continue;
        }
        double experts = 0;
        for (int64_t e = 0; e < c->n_routed_experts; e++)
            experts += mat_bytes(&L->ew1[e]) + mat_bytes(&L->ew2[e]) + mat_bytes(&L->ew3[e]);
        b += experts * (double)c->num_experts_per_tok / (double)c->n_routed_experts;
        b += mat_bytes(&L->gate) + mat_bytes(&L->sw1) + mat_bytes(&L->sw2) + mat_bytes(&L->sw3);
    }
    return b;
}
