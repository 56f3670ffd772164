/* params.c — the F32 parameter block: layout, views, init, load, save. */
#include "train/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "formats/safetensors.h"
#include "model/init.h"
#include "train/tvec.h"

/* ---- layout ---- */

typedef struct slot_pair {
    void *w, *g;                 /* view fields to point at the tensor (lm_mat * or float **) */
} slot_pair;

typedef struct builder {
    lm_params *p;
    slot_pair *slots;            /* [n_tensors] */
    int64_t cap;
    lm_error *err;
} builder;

/* The view fields of an MTP-only tensor; returns 1 (name = the main tensor
 * it shares) for the embedding and head copies. */
static int mtp_field(lm_params *p, const lm_arch_item *it, void **wf, void **gf, const char **name) {
    const char *pat = it->t->pattern, *dot = strrchr(pat, '}');
    const char *suffix = dot ? dot + 1 : pat;
    *wf = *gf = NULL;
    if (!strcmp(suffix, ".enorm.weight")) *wf = &p->WM.enorm, *gf = &p->GM.enorm;
    else if (!strcmp(suffix, ".hnorm.weight")) *wf = &p->WM.hnorm, *gf = &p->GM.hnorm;
    else if (!strcmp(suffix, ".shared_head.norm.weight")) *wf = &p->WM.head_norm, *gf = &p->GM.head_norm;
    else if (!strcmp(suffix, ".eh_proj.weight")) *wf = &p->WM.eh_proj, *gf = &p->GM.eh_proj;
    else if (!strcmp(suffix, ".embed_tokens.weight")) *name = "model.embed_tokens.weight";
    else if (!strcmp(suffix, ".shared_head.head.weight"))
        *name = p->cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    return *name != NULL;
}

/* One tensor of the arch table: its place in the blocks and its view fields. */
static int add_item(void *ctx, const lm_arch_item *it) {
    builder *b = ctx;
    lm_params *p = b->p;
    if (p->n_tensors == b->cap) {
        int64_t cap = b->cap ? 2 * b->cap : 64;
        lm_ptensor *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) return lm_fail(b->err, "out of memory");
        p->t = t;
        slot_pair *s = realloc(b->slots, (size_t)cap * sizeof *s);
        if (!s) return lm_fail(b->err, "out of memory");
        b->slots = s;
        b->cap = cap;
    }
    lm_ptensor *t = &p->t[p->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", it->name);
    lm_arch_role role = it->t->role;
    t->kind = role == LM_ROLE_NORM ? LM_PARAM_NORM : role == LM_ROLE_BIAS ? LM_PARAM_BIAS : LM_PARAM_LINEAR;
    t->ndim = it->ndim;
    t->shape[0] = it->shape[0];
    t->shape[1] = it->shape[1];
    t->numel = it->numel;
    t->offset = p->n_floats;
    t->trainable = t->kind != LM_PARAM_BIAS;
    t->decay = t->kind == LM_PARAM_LINEAR;
    t->mtp = it->mtp;
    void *wf, *gf;
    if (it->mtp && it->t->scope == LM_AT_MTP) {
        const char *name = NULL;
        if (mtp_field(p, it, &wf, &gf, &name)) {
            /* embed_tokens / shared_head.head: the main tensor's floats */
            const lm_ptensor *main = lm_params_find(p, name);
            if (!main) return lm_fail(b->err, "MTP tensor '%s': no main tensor '%s' to share", it->name, name);
            t->alias = 1;
            t->trainable = t->decay = 0;
            t->offset = main->offset;
            b->slots[p->n_tensors].w = b->slots[p->n_tensors].g = NULL;
            p->n_tensors++;
            return 0;
        }
    } else {
        /* An MTP decoder-layer row binds to layers[L], past the main ones. */
        lm_arch_item local = *it;
        local.mtp = 0;
        wf = lm_arch_field(&p->W, &local);
        gf = lm_arch_field(&p->G, &local);
    }
    p->n_floats += (t->numel + 15) & ~(int64_t)15;
    if (t->trainable) p->n_trainable += t->numel;
    b->slots[p->n_tensors].w = wf;
    b->slots[p->n_tensors].g = t->trainable ? gf : NULL;
    p->n_tensors++;
    return 0;
}

/* Points a view field at a tensor of a block. */
static void set_view(void *field, const lm_ptensor *t, float *block) {
    if (!field) return;
    if (t->ndim == 1) *(float **)field = block + t->offset;
    else *(lm_mat *)field = lm_f32_mat(block + t->offset, t->shape[0], t->shape[1]);
}

/* Layer arrays of both views and, for MoE layers, their expert view arrays,
 * in one allocation. */
static int alloc_views(lm_params *p, lm_error *err) {
    const lm_config *c = &p->cfg;
    /* layers[L] is the MTP layer's decoder layer, when there is one */
    int64_t L = c->num_hidden_layers + (c->num_nextn_predict_layers > 0), E = c->n_routed_experts, nmoe = 0;
    for (int64_t l = 0; l < L; l++) nmoe += lm_config_layer_is_moe(c, l);
    size_t bytes = 2 * (size_t)L * sizeof(lm_layer) + 2 * 3 * (size_t)(nmoe * E) * sizeof(lm_mat);
    p->ptrs = calloc(1, bytes ? bytes : 1);
    if (!p->ptrs) return lm_fail(err, "out of memory");
    p->W.layers = p->ptrs;
    p->G.layers = p->W.layers + L;
    lm_mat *e = (lm_mat *)(p->G.layers + L);
    for (int64_t l = 0; l < L; l++) {
        lm_layer *v[2] = {&p->W.layers[l], &p->G.layers[l]};
        for (int i = 0; i < 2; i++) {
            v[i]->is_moe = lm_config_layer_is_moe(c, l);
            v[i]->has_shared = v[i]->is_moe && c->n_shared_experts > 0;
            if (!v[i]->is_moe) continue;
            v[i]->ew1 = e;
            v[i]->ew3 = e + E;
            v[i]->ew2 = e + 2 * E;
            e += 3 * E;
        }
    }
    return 0;
}

int lm_params_create(const lm_config *cfg, lm_params **out, lm_error *err) {
    if (cfg->num_nextn_predict_layers > 1)
        return lm_fail(err, "training supports one MTP layer (num_nextn_predict_layers = %lld, expected 0 or 1)",
                       (long long)cfg->num_nextn_predict_layers);
    if (lm_config_has_indexer(cfg))
        return lm_fail(err, "training of DeepSeek-V3.2 sparse attention (index_topk = %lld) is not supported",
                       (long long)cfg->index_topk);
    lm_params *p = calloc(1, sizeof *p);
    if (!p) return lm_fail(err, "out of memory");
    p->cfg = *cfg;
    p->dims = lm_dims_of(cfg);
    p->mtp_layers = cfg->num_nextn_predict_layers;
    builder b = {p, NULL, 0, err};
    int rc = alloc_views(p, err);
    if (!rc) rc = lm_arch_each(&p->cfg, LM_ARCH_WITH_MTP, add_item, &b);
    if (!rc) {
        size_t bytes = 4 * (size_t)p->n_floats * sizeof(float);
        p->block.bytes = bytes;
        if (lm_arena_map(&p->block))
            rc = lm_fail(err, "cannot allocate %.1f MiB of parameters, gradients and AdamW state", bytes / 1048576.0);

    }
    if (rc) {
        free(b.slots);
        lm_params_free(p);
        return -1;
    }
    p->w = lm_arena_take(&p->block, 4 * (size_t)p->n_floats * sizeof(float));
    p->g = p->w + p->n_floats;
    p->m = p->g + p->n_floats;
    p->v = p->m + p->n_floats;
    for (int64_t i = 0; i < p->n_tensors; i++) {
        set_view(b.slots[i].w, &p->t[i], p->w);
        set_view(b.slots[i].g, &p->t[i], p->g);
        if (p->t[i].kind == LM_PARAM_NORM)
            for (int64_t j = 0; j < p->t[i].numel; j++) p->w[p->t[i].offset + j] = 1.0f;
    }
    free(b.slots);
    if (cfg->tie_word_embeddings) {
        p->W.head = p->W.embed;
        p->G.head = p->G.embed;
    }
    *out = p;
    return 0;
}

void lm_params_free(lm_params *p) {
    if (!p) return;
    lm_arena_unmap(&p->block);
    free(p->ptrs);
    free(p->t);
    free(p);
}

const lm_ptensor *lm_params_find(const lm_params *p, const char *name) {
    for (int64_t i = 0; i < p->n_tensors; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

void lm_params_zero_grad(lm_params *p) { memset(p->g, 0, (size_t)p->n_floats * sizeof(float)); }

/* ---- values ---- */

void lm_params_init_random(lm_params *p, uint64_t seed, double std) {
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        if (t->alias) continue;
        lm_init_kind k = t->kind == LM_PARAM_LINEAR ? LM_INIT_NORMAL : t->kind == LM_PARAM_NORM ? LM_INIT_ONES
                                                                                                 : LM_INIT_ZEROS;
        lm_init_fill(t->name, k, seed, std, 0, t->numel, p->w + t->offset);
    }
}

/* Fills dst[numel] from a stored tensor (F32/BF16/F16, or FP8 with the
 * `<name>_scale_inv` of the set). */
/* Errors name the file (the shard holding the tensor, else `where`) once. */
static int read_tensor(const lm_tensor_set *set, const lm_ptensor *pt, float *dst, const char *where, lm_error *err) {
    const lm_tensor *t = lm_st_find(set, pt->name);
    if (!t) return lm_fail(err, "%s: missing tensor '%s'", where, pt->name);
    int ok = t->ndim == pt->ndim && t->shape[0] == pt->shape[0] && (pt->ndim == 1 || t->shape[1] == pt->shape[1]);
    if (!ok) {
        /* Every dimension, both sides: the one that differs must show. */
        char have[160] = "[", want[64];
        size_t k = 1;
        for (int d = 0; d < t->ndim && k < sizeof have - 24; d++)
            k += (size_t)snprintf(have + k, sizeof have - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(have + k, sizeof have - k, "]");
        if (pt->ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)pt->shape[0], (long long)pt->shape[1]);
        else snprintf(want, sizeof want, "[%lld]", (long long)pt->shape[0]);
        return lm_fail(err, "%s: tensor '%s' has shape %s, but the config gives %s", lm_st_file_path(set, t->file),
                       pt->name, have, want);
    }
    switch (t->dtype) {
    case LM_DTYPE_F32:
    case LM_DTYPE_BF16:
    case LM_DTYPE_F16:
        lm_convert_to_f32(dst, t->data, t->dtype, (size_t)pt->numel);
        return 0;
    case LM_DTYPE_F8_E4M3: {
        char sname[LM_PARAM_NAME_MAX + 16];
        snprintf(sname, sizeof sname, "%s_scale_inv", pt->name);
        const lm_tensor *s = lm_st_find(set, sname);
        int64_t rows = pt->shape[0], cols = pt->ndim == 2 ? pt->shape[1] : 1;
        int64_t bc = (cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK, br = (rows + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
        if (pt->ndim != 2 || !s || s->dtype != LM_DTYPE_F32 || s->ndim != 2 || s->shape[0] != br || s->shape[1] != bc)
            return lm_fail(err, "%s: FP8 tensor '%s' needs an F32 '%s' of shape [%lld, %lld]",
                           lm_st_file_path(set, t->file), pt->name, sname, (long long)br, (long long)bc);
        lm_mat m = {.dtype = LM_DTYPE_F8_E4M3, .rows = rows, .cols = cols, .data = t->data, .scale_inv = s->data};
        float *tmp = NULL;
        if (((uintptr_t)s->data & 3) != 0) { /* unaligned scales: copy them */
            tmp = malloc((size_t)(br * bc) * sizeof(float));
            if (!tmp) return lm_fail(err, "out of memory");
            memcpy(tmp, s->data, (size_t)(br * bc) * sizeof(float));
            m.scale_inv = tmp;
        }
        for (int64_t r = 0; r < rows; r++) lm_mat_row(&m, r, dst + r * cols);
        free(tmp);
        return 0;
    }
    case LM_DTYPE_I8: { /* Q8 (lemma quantize): q * scale, exact */
        char sname[LM_PARAM_NAME_MAX + 16];
        snprintf(sname, sizeof sname, "%s_q8_scale", pt->name);
        const lm_tensor *s = lm_st_find(set, sname);
        int64_t rows = pt->shape[0], cols = pt->ndim == 2 ? pt->shape[1] : 1, ks = (cols + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK;
        if (pt->ndim != 2 || !s || s->dtype != LM_DTYPE_F16 || s->ndim != 2 || s->shape[0] != rows || s->shape[1] != ks)
            return lm_fail(err, "%s: I8 tensor '%s' needs an F16 '%s' of shape [%lld, %lld]",
                           lm_st_file_path(set, t->file), pt->name, sname, (long long)rows, (long long)ks);
        uint16_t *scales = malloc((size_t)(rows * ks) * sizeof(uint16_t)); /* may be unaligned in the file */
        if (!scales) return lm_fail(err, "out of memory");
        memcpy(scales, s->data, (size_t)(rows * ks) * sizeof(uint16_t));
        lm_mat m = {.dtype = LM_DTYPE_I8, .rows = rows, .cols = cols, .data = t->data, .q8_scale = scales};
        for (int64_t r = 0; r < rows; r++) lm_mat_row(&m, r, dst + r * cols);
        free(scales);
        return 0;
    }
    default:
        return lm_fail(err, "%s: tensor '%s' has dtype %s, expected F32, BF16, F16, F8_E4M3 or I8 (Q8)",
                       lm_st_file_path(set, t->file), pt->name, lm_dtype_name(t->dtype));
    }
}

static int same_shapes(const lm_config *a, const lm_config *b) {
    return a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size && a->moe_intermediate_size == b->moe_intermediate_size &&
           a->num_hidden_layers == b->num_hidden_layers && a->first_k_dense_replace == b->first_k_dense_replace &&
           a->moe_layer_freq == b->moe_layer_freq && a->num_attention_heads == b->num_attention_heads &&
           a->n_routed_experts == b->n_routed_experts && a->n_shared_experts == b->n_shared_experts &&
           a->q_lora_rank == b->q_lora_rank && a->kv_lora_rank == b->kv_lora_rank &&
           a->qk_nope_head_dim == b->qk_nope_head_dim && a->qk_rope_head_dim == b->qk_rope_head_dim &&
           a->v_head_dim == b->v_head_dim && a->tie_word_embeddings == b->tie_word_embeddings &&
           (a->topk_method == LM_TOPK_NOAUX_TC) == (b->topk_method == LM_TOPK_NOAUX_TC);
}

static int read_set(lm_params *p, float *block, const lm_tensor_set *set, const char *where, int with_mtp,
                    lm_error *err) {
    for (int64_t i = 0; i < p->n_tensors; i++) {
        if (p->t[i].alias || (p->t[i].mtp && !with_mtp)) continue;
        if (read_tensor(set, &p->t[i], block + p->t[i].offset, where, err)) return -1;
    }
    return 0;
}

int lm_params_load_model(lm_params *p, const lm_model *m, lm_error *err) {
    int mtp_ok = m->cfg.num_nextn_predict_layers == p->cfg.num_nextn_predict_layers ||
                 m->cfg.num_nextn_predict_layers == 0;
    if (!same_shapes(&p->cfg, &m->cfg) || !mtp_ok)
        return lm_fail(err, "%s: the checkpoint's config does not match the parameter layout", m->dir);
    return read_set(p, p->w, m->tensors, m->dir, m->cfg.num_nextn_predict_layers > 0, err);
}

int lm_params_read(lm_params *p, float *block, const char *path, lm_error *err) {
    lm_tensor_set *set;
    if (lm_st_open_file(path, &set, err)) return -1;
    int rc = read_set(p, block, set, path, 1, err);
    lm_st_close(set);
    return rc;
}

int lm_params_save(const lm_params *p, const float *block, const char *path, const char *metadata_json,
                   lm_error *err) {
    lm_tensor_out *o = calloc((size_t)(p->n_tensors ? p->n_tensors : 1), sizeof *o);
    if (!o) return lm_fail(err, "out of memory");
    for (int64_t i = 0; i < p->n_tensors; i++) {
        const lm_ptensor *t = &p->t[i];
        o[i].name = t->name;
        o[i].dtype = LM_DTYPE_F32;
        o[i].ndim = t->ndim;
        o[i].shape[0] = t->shape[0];
        o[i].shape[1] = t->shape[1];
        o[i].data = block + t->offset;
    }
    int rc = lm_st_write(path, o, p->n_tensors, metadata_json, err);
    free(o);
    return rc;
}

/* ---- bf16 copies for mixed precision ---- */

typedef struct bf16_binder {
    const lm_params *p;
    lm_weights *out;
    const uint16_t *w16;
    int64_t i;                   /* items come in the order of p->t */
} bf16_binder;

static int bind_bf16(void *ctx, const lm_arch_item *it) {
    bf16_binder *b = ctx;
    const lm_ptensor *t = &b->p->t[b->i++];
    void *field = lm_arch_field(b->out, it);
    if (!field) return 0;
    if (t->ndim == 1)
        *(float **)field = b->p->w + t->offset;
    else
        *(lm_mat *)field = (lm_mat){.dtype = LM_DTYPE_BF16, .rows = t->shape[0], .cols = t->shape[1],
                                    .data = b->w16 + t->offset, .bf16_pairs = 1};
    return 0;
}

int lm_params_bf16_views(const lm_params *p, const uint16_t *w16, lm_weights *out, void **ptrs, lm_error *err) {
    const lm_config *c = &p->cfg;
    int64_t L = c->num_hidden_layers, E = c->n_routed_experts, nmoe = 0;
    for (int64_t l = 0; l < L; l++) nmoe += lm_config_layer_is_moe(c, l);
    size_t bytes = (size_t)L * sizeof(lm_layer) + 3 * (size_t)(nmoe * E) * sizeof(lm_mat);
    *out = (lm_weights){0};
    *ptrs = calloc(1, bytes ? bytes : 1);
    if (!*ptrs) return lm_fail(err, "out of memory");
    out->layers = *ptrs;
    lm_mat *e = (lm_mat *)(out->layers + L);
    for (int64_t l = 0; l < L; l++) {
        lm_layer *v = &out->layers[l];
        v->is_moe = lm_config_layer_is_moe(c, l);
        v->has_shared = v->is_moe && c->n_shared_experts > 0;
        if (!v->is_moe) continue;
        v->ew1 = e;
        v->ew3 = e + E;
        v->ew2 = e + 2 * E;
        e += 3 * E;
    }
    bf16_binder b = {p, out, w16, 0};
    lm_arch_each(c, LM_ARCH_MAIN, bind_bf16, &b);
    if (c->tie_word_embeddings) out->head = out->embed;
    return 0;
}

typedef struct bf16_job {
    const float *w;
    uint16_t *w16;
    int64_t n;
} bf16_job;

static void to_bf16_task(void *ctx, int ith, int nth) {
    const bf16_job *j = ctx;
    int64_t i0, i1;
    lm_split(j->n, ith, nth, 4096, &i0, &i1);
    tv_kernels()->to_bf16(j->w16 + i0, j->w + i0, i1 - i0);
}

void lm_params_to_bf16(const lm_params *p, uint16_t *w16, lm_pool *pool) {
    bf16_job j = {p->w, w16, p->n_floats};
    lm_pool_run(pool, to_bf16_task, &j);
}
