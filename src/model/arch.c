/* arch.c — the tensor table of a DeepSeek-V2/V3/V3.2 checkpoint and its walk. */
#include "model/arch.h"

#include <stdio.h>
#include <string.h>

lm_dims lm_dims_of(const lm_config *c) {
    lm_dims d;
    d.V = c->vocab_size;
    d.D = c->hidden_size;
    d.L = c->num_hidden_layers;
    d.H = c->num_attention_heads;
    d.dn = c->qk_nope_head_dim;
    d.dr = c->qk_rope_head_dim;
    d.dv = c->v_head_dim;
    d.dk = d.dn + d.dr;
    d.half = d.dr / 2;
    d.C = c->kv_lora_rank;
    d.Q = c->q_lora_rank;
    d.qd = d.H * d.dk;
    d.kva = d.C + d.dr;
    d.kvb = d.H * (d.dn + d.dv);
    d.od = d.H * d.dv;
    d.I = c->intermediate_size;
    d.E = c->n_routed_experts;
    d.k = c->num_experts_per_tok;
    d.Im = c->moe_intermediate_size;
    d.Is = d.Im * c->n_shared_experts;
    d.eps = (float)c->rms_norm_eps;
    d.Hi = c->index_n_heads;
    d.di = c->index_head_dim;
    d.K = c->index_topk;
    return d;
}

#define MODEL(f) offsetof(lm_weights, f)
#define LAYER(f) offsetof(lm_layer, f)
#define NONE LM_DIM_NONE

/* One line per tensor kind. Order within a scope is the checkpoint order
 * (`lemma init` writes it, training saves it): changing it changes files. */
static const lm_arch_tensor TABLE[] = {
    /* HF name                                              scope         when               role            rows         cols         flags                 field */
    {"model.embed_tokens.weight",                           LM_AT_MODEL,  LM_WHEN_ALWAYS,    LM_ROLE_MATRIX, LM_DIM_V,    LM_DIM_D,    0,                    MODEL(embed)},
    {"model.layers.{L}.input_layernorm.weight",             LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    LAYER(attn_norm)},
    {"model.layers.{L}.post_attention_layernorm.weight",    LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    LAYER(ffn_norm)},
    {"model.layers.{L}.self_attn.q_proj.weight",            LM_AT_LAYER,  LM_WHEN_NO_Q_LORA, LM_ROLE_LINEAR, LM_DIM_QD,   LM_DIM_D,    0,                    LAYER(wq)},
    {"model.layers.{L}.self_attn.q_a_proj.weight",          LM_AT_LAYER,  LM_WHEN_Q_LORA,    LM_ROLE_LINEAR, LM_DIM_Q,    LM_DIM_D,    0,                    LAYER(wq_a)},
    {"model.layers.{L}.self_attn.q_a_layernorm.weight",     LM_AT_LAYER,  LM_WHEN_Q_LORA,    LM_ROLE_NORM,   LM_DIM_Q,    NONE,        0,                    LAYER(q_norm)},
    {"model.layers.{L}.self_attn.q_b_proj.weight",          LM_AT_LAYER,  LM_WHEN_Q_LORA,    LM_ROLE_LINEAR, LM_DIM_QD,   LM_DIM_Q,    0,                    LAYER(wq_b)},
    {"model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight",LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_KVA,  LM_DIM_D,    0,                    LAYER(wkv_a)},
    {"model.layers.{L}.self_attn.kv_a_layernorm.weight",    LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_C,    NONE,        0,                    LAYER(kv_norm)},
    {"model.layers.{L}.self_attn.kv_b_proj.weight",         LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_KVB,  LM_DIM_C,    0,                    LAYER(wkv_b)},
    /* V3.2 indexer (conv. 34); k_norm.bias is a BIAS: zeros at init, F32 when written. */
    {"model.layers.{L}.self_attn.indexer.wq_b.weight",      LM_AT_LAYER,  LM_WHEN_INDEXER,   LM_ROLE_LINEAR, LM_DIM_IQ,   LM_DIM_Q,    0,                    LAYER(iwq_b)},
    {"model.layers.{L}.self_attn.indexer.wk.weight",        LM_AT_LAYER,  LM_WHEN_INDEXER,   LM_ROLE_LINEAR, LM_DIM_DI,   LM_DIM_D,    0,                    LAYER(iwk)},
    {"model.layers.{L}.self_attn.indexer.k_norm.weight",    LM_AT_LAYER,  LM_WHEN_INDEXER,   LM_ROLE_NORM,   LM_DIM_DI,   NONE,        0,                    LAYER(ik_norm)},
    {"model.layers.{L}.self_attn.indexer.k_norm.bias",      LM_AT_LAYER,  LM_WHEN_INDEXER,   LM_ROLE_BIAS,   LM_DIM_DI,   NONE,        0,                    LAYER(ik_bias)},
    {"model.layers.{L}.self_attn.indexer.weights_proj.weight",LM_AT_LAYER,LM_WHEN_INDEXER,   LM_ROLE_MATRIX, LM_DIM_HI,   LM_DIM_D,    LM_ARCH_CHECK_FINITE, LAYER(iw_proj)},
    {"model.layers.{L}.self_attn.o_proj.weight",            LM_AT_LAYER,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_D,    LM_DIM_OD,   0,                    LAYER(wo)},
    {"model.layers.{L}.mlp.gate_proj.weight",               LM_AT_DENSE,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_I,    LM_DIM_D,    0,                    LAYER(w1)},
    {"model.layers.{L}.mlp.up_proj.weight",                 LM_AT_DENSE,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_I,    LM_DIM_D,    0,                    LAYER(w3)},
    {"model.layers.{L}.mlp.down_proj.weight",               LM_AT_DENSE,  LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_D,    LM_DIM_I,    0,                    LAYER(w2)},
    {"model.layers.{L}.mlp.gate.weight",                    LM_AT_MOE,    LM_WHEN_ALWAYS,    LM_ROLE_MATRIX, LM_DIM_E,    LM_DIM_D,    LM_ARCH_CHECK_FINITE, LAYER(gate)},
    {"model.layers.{L}.mlp.gate.e_score_correction_bias",   LM_AT_MOE,    LM_WHEN_NOAUX_TC,  LM_ROLE_BIAS,   LM_DIM_E,    NONE,        0,                    LAYER(gate_bias)},
    {"model.layers.{L}.mlp.experts.{E}.gate_proj.weight",   LM_AT_EXPERT, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_IM,   LM_DIM_D,    0,                    LAYER(ew1)},
    {"model.layers.{L}.mlp.experts.{E}.up_proj.weight",     LM_AT_EXPERT, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_IM,   LM_DIM_D,    0,                    LAYER(ew3)},
    {"model.layers.{L}.mlp.experts.{E}.down_proj.weight",   LM_AT_EXPERT, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_D,    LM_DIM_IM,   0,                    LAYER(ew2)},
    {"model.layers.{L}.mlp.shared_experts.gate_proj.weight",LM_AT_SHARED, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_IS,   LM_DIM_D,    0,                    LAYER(sw1)},
    {"model.layers.{L}.mlp.shared_experts.up_proj.weight",  LM_AT_SHARED, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_IS,   LM_DIM_D,    0,                    LAYER(sw3)},
    {"model.layers.{L}.mlp.shared_experts.down_proj.weight",LM_AT_SHARED, LM_WHEN_ALWAYS,    LM_ROLE_LINEAR, LM_DIM_D,    LM_DIM_IS,   0,                    LAYER(sw2)},
    {"model.norm.weight",                                   LM_AT_MODEL,  LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    MODEL(final_norm)},
    {"lm_head.weight",                                      LM_AT_MODEL,  LM_WHEN_UNTIED,    LM_ROLE_MATRIX, LM_DIM_V,    LM_DIM_D,    0,                    MODEL(head)},
    /* MTP (released V3): a decoder layer plus these; not run by the forward. */
    {"model.layers.{L}.embed_tokens.weight",                LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_MATRIX, LM_DIM_V,    LM_DIM_D,    0,                    LM_ARCH_NO_FIELD},
    {"model.layers.{L}.enorm.weight",                       LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    LM_ARCH_NO_FIELD},
    {"model.layers.{L}.hnorm.weight",                       LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    LM_ARCH_NO_FIELD},
    {"model.layers.{L}.eh_proj.weight",                     LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_MATRIX, LM_DIM_D,    LM_DIM_2D,   0,                    LM_ARCH_NO_FIELD},
    {"model.layers.{L}.shared_head.norm.weight",            LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_NORM,   LM_DIM_D,    NONE,        0,                    LM_ARCH_NO_FIELD},
    {"model.layers.{L}.shared_head.head.weight",            LM_AT_MTP,    LM_WHEN_ALWAYS,    LM_ROLE_MATRIX, LM_DIM_V,    LM_DIM_D,    0,                    LM_ARCH_NO_FIELD},
};
enum { N_TABLE = sizeof TABLE / sizeof TABLE[0] };

static int64_t dim(const lm_dims *d, lm_arch_dim x) {
    switch (x) {
    case LM_DIM_V: return d->V;
    case LM_DIM_D: return d->D;
    case LM_DIM_2D: return 2 * d->D;
    case LM_DIM_Q: return d->Q;
    case LM_DIM_QD: return d->qd;
    case LM_DIM_KVA: return d->kva;
    case LM_DIM_C: return d->C;
    case LM_DIM_KVB: return d->kvb;
    case LM_DIM_OD: return d->od;
    case LM_DIM_I: return d->I;
    case LM_DIM_IM: return d->Im;
    case LM_DIM_IS: return d->Is;
    case LM_DIM_E: return d->E;
    case LM_DIM_IQ: return d->Hi * d->di;
    case LM_DIM_DI: return d->di;
    case LM_DIM_HI: return d->Hi;
    case LM_DIM_NONE: break;
    }
    return 0;
}

static int applies(const lm_config *c, lm_arch_when w) {
    switch (w) {
    case LM_WHEN_ALWAYS: return 1;
    case LM_WHEN_Q_LORA: return c->q_lora_rank > 0;
    case LM_WHEN_NO_Q_LORA: return c->q_lora_rank == 0;
    case LM_WHEN_NOAUX_TC: return c->topk_method == LM_TOPK_NOAUX_TC;
    case LM_WHEN_UNTIED: return !c->tie_word_embeddings;
    case LM_WHEN_INDEXER: return lm_config_has_indexer(c);
    }
    return 0;
}

/* name = pattern with {L} and {E} replaced (names stay far below the
 * buffer: the longest pattern plus two 20-digit numbers). */
static void expand(char *out, const char *pattern, int64_t layer, int64_t expert) {
    size_t n = 0;
    for (const char *p = pattern; *p && n < LM_ARCH_NAME_MAX - 24; p++) {
        if (p[0] == '{' && (p[1] == 'L' || p[1] == 'E') && p[2] == '}') {
            n += (size_t)snprintf(out + n, LM_ARCH_NAME_MAX - n, "%lld", (long long)(p[1] == 'L' ? layer : expert));
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = 0;
}

typedef struct walk {
    const lm_config *c;
    lm_dims d;
    lm_arch_visit fn;
    void *ctx;
} walk;

static int emit(walk *w, const lm_arch_tensor *t, int64_t layer, int64_t expert, int mtp) {
    lm_arch_item it;
    it.t = t;
    it.layer = layer;
    it.expert = expert;
    it.mtp = mtp;
    expand(it.name, t->pattern, layer, expert);
    it.ndim = t->cols == LM_DIM_NONE ? 1 : 2;
    it.shape[0] = dim(&w->d, t->rows);
    it.shape[1] = it.ndim == 2 ? dim(&w->d, t->cols) : 0;
    it.numel = it.shape[0];
    if (it.ndim == 2 && __builtin_mul_overflow(it.shape[0], it.shape[1], &it.numel)) it.numel = INT64_MAX;
    return w->fn(w->ctx, &it);
}

static int is_layer_scope(lm_arch_scope s) {
    return s == LM_AT_LAYER || s == LM_AT_DENSE || s == LM_AT_MOE || s == LM_AT_EXPERT || s == LM_AT_SHARED;
}

/* Whether a layer-scope row belongs to a layer of this kind. */
static int in_layer(const lm_config *c, lm_arch_scope s, int moe) {
    switch (s) {
    case LM_AT_LAYER: return 1;
    case LM_AT_DENSE: return !moe;
    case LM_AT_MOE:
    case LM_AT_EXPERT: return moe;
    case LM_AT_SHARED: return moe && c->n_shared_experts > 0;
    default: return 0;
    }
}

/* One decoder layer (l >= num_hidden_layers: an MTP layer's). Experts are
 * written expert by expert, each with all its LM_AT_EXPERT rows. */
static int emit_layer(walk *w, int64_t l, int mtp) {
    const lm_config *c = w->c;
    int moe = lm_config_layer_is_moe(c, l);
    for (size_t i = 0; i < N_TABLE; i++) {
        const lm_arch_tensor *t = &TABLE[i];
        if (!in_layer(c, t->scope, moe) || !applies(c, t->when)) continue;
        if (t->scope != LM_AT_EXPERT) {
            int rc = emit(w, t, l, -1, mtp);
            if (rc) return rc;
            continue;
        }
        size_t end = i;
        while (end < N_TABLE && TABLE[end].scope == LM_AT_EXPERT) end++;
        for (int64_t e = 0; e < c->n_routed_experts; e++)
            for (size_t j = i; j < end; j++) {
                if (!applies(c, TABLE[j].when)) continue;
                int rc = emit(w, &TABLE[j], l, e, mtp);
                if (rc) return rc;
            }
        i = end - 1;
    }
    return 0;
}

/* Model-scope rows before the first layer row (first = 1) or after it. */
static int emit_model(walk *w, int first) {
    int seen_layer = 0;
    for (size_t i = 0; i < N_TABLE; i++) {
        const lm_arch_tensor *t = &TABLE[i];
        if (is_layer_scope(t->scope)) seen_layer = 1;
        if (t->scope != LM_AT_MODEL || seen_layer == first || !applies(w->c, t->when)) continue;
        int rc = emit(w, t, -1, -1, 0);
        if (rc) return rc;
    }
    return 0;
}

int lm_arch_each(const lm_config *c, lm_arch_set set, lm_arch_visit fn, void *ctx) {
    walk w = {c, lm_dims_of(c), fn, ctx};
    int rc = emit_model(&w, 1);
    for (int64_t l = 0; l < c->num_hidden_layers && !rc; l++) rc = emit_layer(&w, l, 0);
    if (!rc) rc = emit_model(&w, 0);
    for (int64_t k = 0; set == LM_ARCH_WITH_MTP && k < c->num_nextn_predict_layers && !rc; k++) {
        int64_t l = c->num_hidden_layers + k;
        rc = emit_layer(&w, l, 1);
        for (size_t i = 0; i < N_TABLE && !rc; i++)
            if (TABLE[i].scope == LM_AT_MTP && applies(c, TABLE[i].when)) rc = emit(&w, &TABLE[i], l, -1, 1);
    }
    return rc;
}

void *lm_arch_field(lm_weights *w, const lm_arch_item *it) {
    const lm_arch_tensor *t = it->t;
    if (t->field == LM_ARCH_NO_FIELD || it->mtp) return NULL;
    if (t->scope == LM_AT_MODEL) return (char *)w + t->field;
    char *layer = (char *)&w->layers[it->layer];
    if (t->scope != LM_AT_EXPERT) return layer + t->field;
    lm_mat *experts = *(lm_mat **)(layer + t->field);
    return experts ? experts + it->expert : NULL;
}
