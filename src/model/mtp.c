/* mtp.c — binding and mixing of the MTP layer; see mtp.h. */
#include "model/mtp.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lm_mtp {
    const lm_model *main;
    lm_model block;              /* one-layer model: the MTP decoder layer, shared_head norm and head */
    lm_layer layer;
    lm_mat embed_own, head_own;  /* the checkpoint's copies (views), used when they differ from main's */
    lm_mat embed;                /* what lm_mtp_mix looks rows up in */
    lm_mat eh_proj;              /* [D, 2D] */
    float *enorm, *hnorm;        /* [D] */
    float *vecs;                 /* owns every converted vector */
    int64_t vec_used, vec_cap;
    lm_mat **mats;               /* the bound matrices (for packing) */
    int64_t nmats, cap_mats;
    void *panels;
    int share_embed, share_head;
    float *cat;                  /* [LM_MTP_MAX_ROWS, 2D] eh_proj input */
};

/* ---- binding ---- */

typedef struct bind_walk {
    lm_mtp *mtp;
    int64_t layer;               /* the checkpoint's index of the MTP layer */
    lm_error *err;
} bind_walk;

static int keep_mat(lm_mtp *mtp, lm_mat *w, lm_error *err) {
    if (mtp->nmats == mtp->cap_mats) {
        int64_t cap = mtp->cap_mats ? 2 * mtp->cap_mats : 32;
        lm_mat **mats = realloc(mtp->mats, (size_t)cap * sizeof *mats);
        if (!mats) return lm_fail(err, "out of memory");
        mtp->mats = mats;
        mtp->cap_mats = cap;
    }
    mtp->mats[mtp->nmats++] = w;
    return 0;
}

static int bind_vec(lm_mtp *mtp, const char *name, int64_t n, float **out, lm_error *err) {
    if (n > mtp->vec_cap - mtp->vec_used) /* cannot happen: sized from the config in lm_mtp_load */
        return lm_fail(err, "%s: tensor '%s': more MTP vector elements than planned", mtp->main->dir, name);
    float *dst = mtp->vecs + mtp->vec_used;
    if (lm_model_bind_vec(mtp->main, name, n, dst, err)) return -1;
    mtp->vec_used += n;
    *out = dst;
    return 0;
}

static int bind_mat(lm_mtp *mtp, const char *name, int64_t rows, int64_t cols, lm_mat *out, lm_error *err) {
    if (lm_model_bind_mat(mtp->main, name, rows, cols, out, err)) return -1;
    return keep_mat(mtp, out, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int bind_item(void *ctx, const lm_arch_item *it) {
    bind_walk *w = ctx;
    lm_mtp *mtp = w->mtp;
    if (!it->mtp || it->layer != w->layer) return 0;
    if (it->t->scope != LM_AT_MTP) {
        /* A decoder-layer row: bound into the block's layer 0. */
        lm_arch_item local = *it;
        local.layer = 0;
        local.mtp = 0;
        if (it->t->scope == LM_AT_EXPERT && !mtp->layer.ew1) {
            int64_t E = mtp->main->cfg.n_routed_experts;
            if (!(mtp->layer.ew1 = calloc((size_t)E * 3, sizeof(lm_mat)))) return lm_fail(w->err, "out of memory");
            mtp->layer.ew2 = mtp->layer.ew1 + E;
            mtp->layer.ew3 = mtp->layer.ew1 + 2 * E;
        }
        void *field = lm_arch_field(&mtp->block.w, &local);
        if (!field) return 0;
        if (it->ndim == 1) return bind_vec(mtp, it->name, it->shape[0], field, w->err);
        return bind_mat(mtp, it->name, it->shape[0], it->shape[1], field, w->err);
    }
    const char *p = it->t->pattern;
    if (ends_with(p, ".enorm.weight")) return bind_vec(mtp, it->name, it->shape[0], &mtp->enorm, w->err);
    if (ends_with(p, ".hnorm.weight")) return bind_vec(mtp, it->name, it->shape[0], &mtp->hnorm, w->err);
    if (ends_with(p, ".shared_head.norm.weight"))
        return bind_vec(mtp, it->name, it->shape[0], &mtp->block.w.final_norm, w->err);
    if (ends_with(p, ".eh_proj.weight")) return bind_mat(mtp, it->name, it->shape[0], it->shape[1], &mtp->eh_proj, w->err);
    /* The embedding and head are compared with the main model's before
     * deciding whether to pack them (below). */
    if (ends_with(p, ".embed_tokens.weight"))
        return lm_model_bind_mat(mtp->main, it->name, it->shape[0], it->shape[1], &mtp->embed_own, w->err);
    if (ends_with(p, ".shared_head.head.weight"))
        return lm_model_bind_mat(mtp->main, it->name, it->shape[0], it->shape[1], &mtp->head_own, w->err);
    return lm_fail(w->err, "%s: MTP tensor '%s' has no place in the MTP layer", mtp->main->dir, it->name);
}

/* Whether tensor `a` of m's files holds the same dtype and bytes as `b`. */
static int same_tensor(const lm_model *m, const char *a, const char *b) {
    const lm_tensor *x = lm_st_find(m->tensors, a), *y = lm_st_find(m->tensors, b);
    if (!x || !y || x->dtype != y->dtype || x->nbytes != y->nbytes) return 0;
    return x == y || !memcmp(x->data, y->data, x->nbytes);
}

/* The block's matrices into panels, as lm_model_load packs the main ones
 * (same bits; the decode matvec reads them contiguously). */
static int pack(lm_mtp *mtp, lm_error *err) {
    size_t total = 0;
    for (int64_t i = 0; i < mtp->nmats; i++) total += (lm_mat_panel_bytes(mtp->mats[i]) + 63) / 64 * 64;
    if (!total) return 0;
    mtp->panels = aligned_alloc(64, (total + 63) / 64 * 64);
    if (!mtp->panels) return lm_fail(err, "%s: out of memory packing the MTP layer", mtp->main->dir);
    size_t off = 0;
    for (int64_t i = 0; i < mtp->nmats; i++) {
        lm_mat *w = mtp->mats[i];
        int64_t nan = lm_mat_pack_panels(w, (uint8_t *)mtp->panels + off, 0, lm_panel_blocks(w));
        w->data = (uint8_t *)mtp->panels + off;
        w->layout = LM_LAYOUT_PANELS;
        w->fp8_nan_free = w->dtype == LM_DTYPE_F8_E4M3 && nan == 0;
        off += (lm_mat_panel_bytes(w) + 63) / 64 * 64;
    }
    return 0;
}

int lm_mtp_load(const lm_model *m, lm_mtp **out, lm_error *err) {
    const lm_config *c = &m->cfg;
    if (c->num_nextn_predict_layers < 1)
        return lm_fail(err, "%s/config.json: num_nextn_predict_layers is %lld, expected 1 or more for an MTP draft",
                       m->dir, (long long)c->num_nextn_predict_layers);
    lm_mtp *mtp = calloc(1, sizeof *mtp);
    if (!mtp) return lm_fail(err, "out of memory");
    mtp->main = m;
    lm_model *b = &mtp->block;
    b->cfg = *c;
    b->cfg.num_hidden_layers = 1;
    b->cfg.num_nextn_predict_layers = 0;
    b->tensors = m->tensors; /* not owned: lm_model_free is never called on the block */
    b->dims = lm_dims_of(&b->cfg);
    b->w.layers = &mtp->layer;
    snprintf(b->dir, sizeof b->dir, "%s", m->dir);
    int64_t L = c->num_hidden_layers, D = c->hidden_size;
    mtp->layer.is_moe = lm_config_layer_is_moe(c, L);
    mtp->layer.has_shared = mtp->layer.is_moe && c->n_shared_experts > 0;
    mtp->vec_cap = 5 * D + c->q_lora_rank + c->kv_lora_rank + c->n_routed_experts + 2 * c->index_head_dim; /* V3.2: the indexer's LayerNorm */
    mtp->vecs = malloc((size_t)mtp->vec_cap * sizeof(float));
    mtp->cat = malloc((size_t)(LM_MTP_MAX_ROWS * 2 * D) * sizeof(float));
    if (!mtp->vecs || !mtp->cat) {
        lm_mtp_free(mtp);
        return lm_fail(err, "out of memory");
    }
    bind_walk w = {mtp, L, err};
    if (lm_arch_each(c, LM_ARCH_WITH_MTP, bind_item, &w)) {
        lm_mtp_free(mtp);
        return -1;
    }
    char ename[LM_ARCH_NAME_MAX], hname[LM_ARCH_NAME_MAX];
    snprintf(ename, sizeof ename, "model.layers.%lld.embed_tokens.weight", (long long)L);
    snprintf(hname, sizeof hname, "model.layers.%lld.shared_head.head.weight", (long long)L);
    mtp->share_embed = same_tensor(m, ename, "model.embed_tokens.weight");
    mtp->share_head = same_tensor(m, hname, c->tie_word_embeddings && !lm_st_find(m->tensors, "lm_head.weight")
                                                ? "model.embed_tokens.weight"
                                                : "lm_head.weight");
    mtp->embed = mtp->share_embed ? m->w.embed : mtp->embed_own;
    b->w.embed = mtp->embed;
    if (mtp->share_head) {
        b->w.head = m->w.head;
    } else {
        b->w.head = mtp->head_own;
        if (keep_mat(mtp, &b->w.head, err)) {
            lm_mtp_free(mtp);
            return -1;
        }
    }
    if (m->panels && pack(mtp, err)) {
        lm_mtp_free(mtp);
        return -1;
    }
    *out = mtp;
    return 0;
}

void lm_mtp_free(lm_mtp *mtp) {
    if (!mtp) return;
    free(mtp->layer.ew1);
    free(mtp->vecs);
    free(mtp->mats);
    free(mtp->panels);
    free(mtp->cat);
    free(mtp);
}

const lm_model *lm_mtp_model(const lm_mtp *mtp) { return &mtp->block; }
int lm_mtp_shares_embedding(const lm_mtp *mtp) { return mtp->share_embed; }
int lm_mtp_shares_head(const lm_mtp *mtp) { return mtp->share_head; }

int lm_mtp_mix(lm_mtp *mtp, lm_pool *pool, const float *resid, const int32_t *next_ids, int64_t n, float *x,
               lm_error *err) {
    const lm_model *m = mtp->main;
    int64_t D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    float eps = (float)m->cfg.rms_norm_eps;
    if (n < 1 || n > LM_MTP_MAX_ROWS)
        return lm_fail(err, "MTP mix of %lld rows, expected 1 to %d", (long long)n, LM_MTP_MAX_ROWS);
    for (int64_t r = 0; r < n; r++)
        if (next_ids[r] < 0 || next_ids[r] >= V)
            return lm_fail(err, "MTP input token id %d is out of range (vocab_size %lld)", next_ids[r], (long long)V);
    for (int64_t r = 0; r < n; r++) {
        float *e = mtp->cat + r * 2 * D, *h = e + D;
        lm_mat_row(&mtp->embed, next_ids[r], e);
        lm_rmsnorm(e, e, mtp->enorm, D, eps);
        /* h_i is the main model's output after model.norm (what the head
         * reads), then hnorm: the same lm_rmsnorm call as the forward's. */
        lm_rmsnorm(h, resid + r * D, m->w.final_norm, D, eps);
        lm_rmsnorm(h, h, mtp->hnorm, D, eps);
    }
    lm_matmul(pool, x, mtp->cat, n, &mtp->eh_proj);
    return 0;
}
