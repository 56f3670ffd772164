/* export_gguf.c — see export_gguf.h. */
#include "model/export_gguf.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "formats/gguf.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

#define ARCH "deepseek2"

/* llama.cpp's token types (llama_token_type) */
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 };
/* general.file_type (llama_ftype) of each matrix type */
static uint32_t file_type(lm_ggml_type t) {
    switch (t) {
    case LM_GGML_F32: return 0;
    case LM_GGML_F16: return 1;
    case LM_GGML_Q8_0: return 7;
    case LM_GGML_BF16: return 32;
    }
    return 0;
}

typedef enum src_kind { SRC_PLAIN, SRC_K_B, SRC_V_B, SRC_EXPERTS, SRC_ZERO } src_kind;

typedef struct out_tensor {
    char name[64];
    lm_ggml_type type;
    int ndim;
    int64_t ne[3];
    src_kind kind;
    const lm_tensor *src;        /* PLAIN, K_B, V_B; EXPERTS: expert 0 */
    int64_t layer;               /* EXPERTS */
    const char *proj;            /* EXPERTS: "gate", "up", "down" */
} out_tensor;

typedef struct exporter {
    const char *dir;
    lm_config c;
    lm_tensor_set *set;
    lm_ggml_type big;
    out_tensor *t;
    int64_t nt, cap;
    int64_t f16_fallbacks;
    int q8_input;                /* some matrices are lemma Q8 (I8 + F16 _q8_scale) */
    lm_error *err;
} exporter;

/* A lemma Q8 matrix's F16 block scales (quantize.h), NULL for any other tensor. */
static const lm_tensor *q8_scale_of(const lm_tensor_set *set, const lm_tensor *t) {
    if (t->dtype != LM_DTYPE_I8) return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s_q8_scale", t->name);
    return lm_st_find(set, name);
}

static const lm_tensor *need(exporter *x, const char *name) {
    const lm_tensor *t = lm_st_find(x->set, name);
    if (!t) lm_fail(x->err, "%s: tensor '%s' is missing (llama.cpp's deepseek2 needs it)", x->dir, name);
    else if (t->dtype != LM_DTYPE_F32 && t->dtype != LM_DTYPE_BF16 && t->dtype != LM_DTYPE_F16 &&
             t->dtype != LM_DTYPE_F8_E4M3 && t->dtype != LM_DTYPE_I8) {
        lm_fail(x->err, "%s: tensor '%s' is %s, expected F32, BF16, F16, F8_E4M3 or I8 (Q8)", x->dir, name,
                lm_dtype_name(t->dtype));
        return NULL;
    } else if (t->dtype == LM_DTYPE_I8) {
        const lm_tensor *s = q8_scale_of(x->set, t);
        int64_t ks = t->ndim == 2 ? (t->shape[1] + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK : 0;
        if (t->ndim != 2 || !s || s->dtype != LM_DTYPE_F16 || s->ndim != 2 || s->shape[0] != t->shape[0] ||
            s->shape[1] != ks) {
            lm_fail(x->err, "%s: I8 tensor '%s' needs an F16 '%s_q8_scale' of shape [%lld, %lld] (a lemma Q8 matrix)",
                    x->dir, name, name, (long long)(t->ndim == 2 ? t->shape[0] : 0), (long long)ks);
            return NULL;
        }
    } else if (t->ndim != 1 && t->ndim != 2) {
        lm_fail(x->err, "%s: tensor '%s' has %d dimensions, expected 1 or 2", x->dir, name, t->ndim);
        return NULL;
    }
    return t;
}

static out_tensor *add(exporter *x, const char *name, lm_ggml_type type, src_kind kind, const lm_tensor *src) {
    if (x->nt == x->cap) {
        int64_t cap = x->cap ? 2 * x->cap : 256;
        out_tensor *t = realloc(x->t, (size_t)cap * sizeof *t);
        if (!t) return lm_fail(x->err, "out of memory"), NULL;
        x->t = t;
        x->cap = cap;
    }
    out_tensor *o = &x->t[x->nt++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    o->type = type;
    o->kind = kind;
    o->src = src;
    if (src) { /* row-major [rows, cols] is ne = {cols, rows} */
        o->ndim = src->ndim;
        o->ne[0] = src->shape[src->ndim - 1];
        if (src->ndim == 2) o->ne[1] = src->shape[0];
    }
    return o;
}

/* A matrix in the chosen type; Q8_0 falls back to F16 for rows that are not
 * whole blocks (F32 when the input is Q8: its values q * d are exact in F32
 * only). */
static lm_ggml_type matrix_type(exporter *x, int64_t row_len) {
    if (x->big == LM_GGML_Q8_0 && row_len % LM_Q8_0_BLOCK) {
        x->f16_fallbacks++;
        return x->q8_input ? LM_GGML_F32 : LM_GGML_F16;
    }
    return x->big;
}

static int add_matrix(exporter *x, const char *gname, const char *hname) {
    const lm_tensor *t = need(x, hname);
    if (!t) return -1;
    out_tensor *o = add(x, gname, x->big, SRC_PLAIN, t);
    if (!o) return -1;
    o->type = t->ndim == 1 ? LM_GGML_F32 : matrix_type(x, o->ne[0]);
    return 0;
}

static int add_f32(exporter *x, const char *gname, const char *hname) {
    const lm_tensor *t = need(x, hname);
    return t && add(x, gname, LM_GGML_F32, SRC_PLAIN, t) ? 0 : -1;
}

static int plan_layer(exporter *x, int64_t l, int mla) {
    const lm_config *c = &x->c;
    char g[64], h[128];
    int64_t H = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim, C = c->kv_lora_rank;
#define G(s) (snprintf(g, sizeof g, "blk.%lld." s, (long long)l), g)
#define HF(s) (snprintf(h, sizeof h, "model.layers.%lld." s, (long long)l), h)
    if (add_f32(x, G("attn_norm.weight"), HF("input_layernorm.weight"))) return -1;
    if (c->q_lora_rank) {
        if (add_matrix(x, G("attn_q_a.weight"), HF("self_attn.q_a_proj.weight")) ||
            add_f32(x, G("attn_q_a_norm.weight"), HF("self_attn.q_a_layernorm.weight")) ||
            add_matrix(x, G("attn_q_b.weight"), HF("self_attn.q_b_proj.weight")))
            return -1;
    } else if (add_matrix(x, G("attn_q.weight"), HF("self_attn.q_proj.weight"))) {
        return -1;
    }
    if (add_matrix(x, G("attn_kv_a_mqa.weight"), HF("self_attn.kv_a_proj_with_mqa.weight")) ||
        add_f32(x, G("attn_kv_a_norm.weight"), HF("self_attn.kv_a_layernorm.weight")))
        return -1;
    const lm_tensor *kvb = need(x, HF("self_attn.kv_b_proj.weight"));
    if (!kvb) return -1;
    if (kvb->ndim != 2 || kvb->shape[0] != H * (dn + dv) || kvb->shape[1] != C)
        return lm_fail(x->err, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] (heads x (nope + v), kv_lora)",
                       x->dir, h, (long long)kvb->shape[0], (long long)(kvb->ndim == 2 ? kvb->shape[1] : 0),
                       (long long)(H * (dn + dv)), (long long)C);
    if (mla) {
        /* k_b is kv_b transposed: a Q8 kv_b's blocks run across its rows, so
         * Q8_0 would re-quantize them; F32 keeps its values exact */
        lm_ggml_type kb_type = kvb->dtype == LM_DTYPE_I8 && x->big == LM_GGML_Q8_0 ? LM_GGML_F32 : matrix_type(x, dn);
        out_tensor *kb = add(x, G("attn_k_b.weight"), kb_type, SRC_K_B, kvb);
        if (!kb) return -1;
        kb->ndim = 3, kb->ne[0] = dn, kb->ne[1] = C, kb->ne[2] = H;
        out_tensor *vb = add(x, G("attn_v_b.weight"), matrix_type(x, C), SRC_V_B, kvb);
        if (!vb) return -1;
        vb->ndim = 3, vb->ne[0] = C, vb->ne[1] = dv, vb->ne[2] = H;
    } else if (add_matrix(x, G("attn_kv_b.weight"), h)) {
        return -1;
    }
    if (add_matrix(x, G("attn_output.weight"), HF("self_attn.o_proj.weight")) ||
        add_f32(x, G("ffn_norm.weight"), HF("post_attention_layernorm.weight")))
        return -1;
    static const char *const proj[3] = {"gate", "up", "down"};
    if (!lm_config_layer_is_moe(c, l)) {
        for (int p = 0; p < 3; p++) {
            char gn[64], hn[128];
            snprintf(gn, sizeof gn, "blk.%lld.ffn_%s.weight", (long long)l, proj[p]);
            snprintf(hn, sizeof hn, "model.layers.%lld.mlp.%s_proj.weight", (long long)l, proj[p]);
            if (add_matrix(x, gn, hn)) return -1;
        }
        return 0;
    }
    if (add_f32(x, G("ffn_gate_inp.weight"), HF("mlp.gate.weight"))) return -1;
    if (lm_st_find(x->set, HF("mlp.gate.e_score_correction_bias")) &&
        add_f32(x, G("exp_probs_b.bias"), h))
        return -1;
    for (int p = 0; p < 3; p++) {
        char gn[64], hn[128];
        snprintf(hn, sizeof hn, "model.layers.%lld.mlp.experts.0.%s_proj.weight", (long long)l, proj[p]);
        const lm_tensor *e0 = need(x, hn);
        if (!e0) return -1;
        if (e0->ndim != 2) return lm_fail(x->err, "%s: tensor '%s' is not a matrix", x->dir, hn);
        snprintf(gn, sizeof gn, "blk.%lld.ffn_%s_exps.weight", (long long)l, proj[p]);
        out_tensor *o = add(x, gn, matrix_type(x, e0->shape[1]), SRC_EXPERTS, e0);
        if (!o) return -1;
        o->ndim = 3, o->ne[2] = c->n_routed_experts, o->layer = l, o->proj = proj[p];
        for (int64_t e = 1; e < c->n_routed_experts; e++) { /* every expert there, same shape */
            snprintf(hn, sizeof hn, "model.layers.%lld.mlp.experts.%lld.%s_proj.weight", (long long)l, (long long)e,
                     proj[p]);
            const lm_tensor *t = need(x, hn);
            if (!t) return -1;
            if (t->ndim != 2 || t->shape[0] != e0->shape[0] || t->shape[1] != e0->shape[1])
                return lm_fail(x->err, "%s: tensor '%s' has another shape than expert 0's [%lld, %lld]", x->dir, hn,
                               (long long)e0->shape[0], (long long)e0->shape[1]);
        }
    }
    for (int p = 0; p < 3; p++) {
        char gn[64], hn[128];
        snprintf(gn, sizeof gn, "blk.%lld.ffn_%s_shexp.weight", (long long)l, proj[p]);
        if (c->n_shared_experts) {
            snprintf(hn, sizeof hn, "model.layers.%lld.mlp.shared_experts.%s_proj.weight", (long long)l, proj[p]);
            if (add_matrix(x, gn, hn)) return -1;
        } else { /* llama.cpp's deepseek2 requires a shared expert: one of zeros adds exactly 0 */
            int64_t D = c->hidden_size, F = c->moe_intermediate_size;
            out_tensor *o = add(x, gn, LM_GGML_F32, SRC_ZERO, NULL);
            if (!o) return -1;
            o->ndim = 2;
            o->ne[0] = p == 2 ? F : D;
            o->ne[1] = p == 2 ? D : F;
            o->type = matrix_type(x, o->ne[0]);
        }
    }
    return 0;
#undef G
#undef HF
}

/* ---- metadata ---- */

/* Warnings accumulate, "; "-separated (what llama.cpp will compute differently). */
static void warn(lm_export_result *r, const char *text) {
    size_t n = strlen(r->warning);
    snprintf(r->warning + n, sizeof r->warning - n, "%s%s", n ? "; " : "", text);
}

static int add_hparams(exporter *x, lm_gguf *g, int mla, const char *name, lm_export_result *r) {
    const lm_config *c = &x->c;
    int64_t E = c->n_routed_experts;
    lm_gguf_kv_str(g, "general.architecture", ARCH);
    lm_gguf_kv_str(g, "general.name", name);
    lm_gguf_kv_u32(g, "general.alignment", LM_GGUF_ALIGN);
    lm_gguf_kv_u32(g, "general.file_type", file_type(x->big));
    lm_gguf_kv_u32(g, ARCH ".block_count", (uint32_t)c->num_hidden_layers);
    lm_gguf_kv_u32(g, ARCH ".context_length", (uint32_t)c->max_position_embeddings);
    lm_gguf_kv_u32(g, ARCH ".embedding_length", (uint32_t)c->hidden_size);
    lm_gguf_kv_u32(g, ARCH ".feed_forward_length", (uint32_t)c->intermediate_size);
    lm_gguf_kv_u32(g, ARCH ".attention.head_count", (uint32_t)c->num_attention_heads);
    lm_gguf_kv_f32(g, ARCH ".attention.layer_norm_rms_epsilon", (float)c->rms_norm_eps);
    lm_gguf_kv_f32(g, ARCH ".rope.freq_base", (float)c->rope_theta);
    lm_gguf_kv_u32(g, ARCH ".rope.dimension_count", (uint32_t)c->qk_rope_head_dim);
    lm_gguf_kv_u32(g, ARCH ".vocab_size", (uint32_t)c->vocab_size);
    lm_gguf_kv_u32(g, ARCH ".leading_dense_block_count",
                   (uint32_t)(E ? c->first_k_dense_replace : c->num_hidden_layers));
    /* required by llama.cpp except for a few hard-coded layer counts; 0 selects attn_q */
    lm_gguf_kv_u32(g, ARCH ".attention.q_lora_rank", (uint32_t)c->q_lora_rank);
    lm_gguf_kv_u32(g, ARCH ".attention.kv_lora_rank", (uint32_t)c->kv_lora_rank);
    if (mla) {
        lm_gguf_kv_u32(g, ARCH ".attention.head_count_kv", 1);
        lm_gguf_kv_u32(g, ARCH ".attention.key_length", (uint32_t)(c->kv_lora_rank + c->qk_rope_head_dim));
        lm_gguf_kv_u32(g, ARCH ".attention.value_length", (uint32_t)c->kv_lora_rank);
        lm_gguf_kv_u32(g, ARCH ".attention.key_length_mla", (uint32_t)(c->qk_nope_head_dim + c->qk_rope_head_dim));
        lm_gguf_kv_u32(g, ARCH ".attention.value_length_mla", (uint32_t)c->v_head_dim);
    } else {
        lm_gguf_kv_u32(g, ARCH ".attention.head_count_kv", (uint32_t)c->num_attention_heads);
        lm_gguf_kv_u32(g, ARCH ".attention.key_length", (uint32_t)(c->qk_nope_head_dim + c->qk_rope_head_dim));
        lm_gguf_kv_u32(g, ARCH ".attention.value_length", (uint32_t)c->v_head_dim);
    }
    lm_gguf_kv_u32(g, ARCH ".expert_feed_forward_length",
                   (uint32_t)(E ? c->moe_intermediate_size : c->intermediate_size));
    if (E) {
        lm_gguf_kv_u32(g, ARCH ".expert_count", (uint32_t)E);
        lm_gguf_kv_u32(g, ARCH ".expert_used_count", (uint32_t)c->num_experts_per_tok);
        int grouped = c->n_group > 1 && c->topk_group < c->n_group;
        if (c->topk_method == LM_TOPK_GROUP_LIMITED_GREEDY && grouped)
            warn(r, "llama.cpp scores expert groups by the sum of their top-2 scores (V3); this model's "
                    "group_limited_greedy (V2) uses the max, so its routing can differ");
        if (c->topk_method != LM_TOPK_GREEDY && grouped) {
            lm_gguf_kv_u32(g, ARCH ".expert_group_count", (uint32_t)c->n_group);
            lm_gguf_kv_u32(g, ARCH ".expert_group_used_count", (uint32_t)c->topk_group);
        }
    }
    lm_gguf_kv_u32(g, ARCH ".expert_shared_count", (uint32_t)(c->n_shared_experts ? c->n_shared_experts : E ? 1 : 0));
    lm_gguf_kv_f32(g, ARCH ".expert_weights_scale", (float)c->routed_scaling_factor);
    if (c->norm_topk_prob) lm_gguf_kv_bool(g, ARCH ".expert_weights_norm", 1);
    lm_gguf_kv_u32(g, ARCH ".expert_gating_func", c->scoring_func == LM_SCORING_SIGMOID ? 2 : 1);
    if (c->rope_yarn) {
        lm_gguf_kv_str(g, ARCH ".rope.scaling.type", "yarn");
        lm_gguf_kv_f32(g, ARCH ".rope.scaling.factor", (float)c->yarn_factor);
        lm_gguf_kv_u32(g, ARCH ".rope.scaling.original_context_length", (uint32_t)c->yarn_original_max_pos);
        lm_gguf_kv_f32(g, ARCH ".rope.scaling.yarn_beta_fast", (float)c->yarn_beta_fast);
        lm_gguf_kv_f32(g, ARCH ".rope.scaling.yarn_beta_slow", (float)c->yarn_beta_slow);
        double all = c->yarn_has_mscale_all_dim ? c->yarn_mscale_all_dim : 0;
        lm_gguf_kv_f32(g, ARCH ".rope.scaling.yarn_log_multiplier", (float)(0.1 * all));
        if (c->yarn_mscale != (c->yarn_has_mscale_all_dim ? c->yarn_mscale_all_dim : 1) && all == 1)
            warn(r, "llama.cpp assumes mscale == mscale_all_dim or mscale_all_dim != 1: its softmax scale differs");
    }
    return 0;
}

/* ---- tokenizer ---- */

/* GPT-2's byte-level alphabet: the printable character standing for byte b. */
static int byte_symbol(int b, char out[4]) {
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = (unsigned)b;
    if (!keep) {
        int extra = 0;
        for (int i = 0; i < b; i++)
            extra += !((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF));
        cp = 256u + (unsigned)extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

typedef struct vocab {
    const char **s;
    size_t *len;
    int32_t *type;
    char *scratch;               /* synthetic and padding token texts */
    const char **merges;
    size_t *merge_len;
    char *merge_scratch;
    int64_t nmerges;
} vocab;

static void vocab_free(vocab *v) {
    free(v->s);
    free(v->len);
    free(v->type);
    free(v->scratch);
    free((void *)v->merges);
    free(v->merge_len);
    free(v->merge_scratch);
}

static int synthetic_vocab(const lm_config *c, vocab *v, lm_error *err) {
    int64_t V = c->vocab_size;
    v->s = calloc((size_t)V, sizeof *v->s);
    v->len = calloc((size_t)V, sizeof *v->len);
    v->type = calloc((size_t)V, sizeof *v->type);
    v->scratch = malloc((size_t)V * 16);
    if (!v->s || !v->len || !v->type || !v->scratch) return lm_fail(err, "out of memory for %lld tokens", (long long)V);
    for (int64_t i = 0; i < V; i++) {
        char *p = v->scratch + i * 16;
        v->s[i] = p;
        v->type[i] = TOK_NORMAL;
        if (i == c->bos_token_id || i == c->eos_token_id) {
            v->len[i] = (size_t)snprintf(p, 16, i == c->bos_token_id ? "<|bos|>" : "<|eos|>");
            v->type[i] = TOK_CONTROL;
        } else if (i < 256) {
            v->len[i] = (size_t)byte_symbol((int)i, p);
        } else {
            v->len[i] = (size_t)snprintf(p, 16, "<|t%lld|>", (long long)i);
        }
    }
    return 0;
}

/* vocab from tokenizer.json (doc) for ids < V. */
static int json_vocab(const json_value *root, const char *path, int64_t V, vocab *v, lm_error *err) {
    const json_value *model = json_get(root, "model"), *type = model ? json_get(model, "type") : NULL;
    if (!model || (type && (type->type != JSON_STRING || strcmp(type->str, "BPE"))))
        return lm_fail(err, "%s: model.type must be \"BPE\" (a byte-level BPE tokenizer)", path);
    const json_value *voc = json_get(model, "vocab"), *merges = json_get(model, "merges");
    if (!voc || voc->type != JSON_OBJECT) return lm_fail(err, "%s: model.vocab: expected an object", path);
    v->s = calloc((size_t)V, sizeof *v->s);
    v->len = calloc((size_t)V, sizeof *v->len);
    v->type = calloc((size_t)V, sizeof *v->type);
    v->scratch = malloc((size_t)V * 24);
    if (!v->s || !v->len || !v->type || !v->scratch) return lm_fail(err, "out of memory for %lld tokens", (long long)V);
    for (const json_value *m = voc->child; m; m = m->next) {
        int64_t id;
        if (!json_as_int(m, &id) || id < 0)
            return lm_fail(err, "%s: byte %zu: model.vocab: expected a non-negative integer id", path, m->offset);
        if (id >= V)
            return lm_fail(err, "%s: byte %zu: token id %lld is beyond the model's vocab_size %lld", path, m->offset,
                           (long long)id, (long long)V);
        v->s[id] = m->key;
        v->len[id] = m->key_len;
        v->type[id] = TOK_NORMAL;
    }
    const json_value *added = json_get(root, "added_tokens");
    for (const json_value *a = added && added->type == JSON_ARRAY ? added->child : NULL; a; a = a->next) {
        const json_value *idv = json_get(a, "id"), *content = json_get(a, "content"), *special = json_get(a, "special");
        int64_t id;
        if (!idv || !json_as_int(idv, &id) || id < 0 || !content || content->type != JSON_STRING)
            return lm_fail(err, "%s: byte %zu: added_tokens: expected {\"id\": N, \"content\": \"...\"}", path, a->offset);
        if (id >= V)
            return lm_fail(err, "%s: byte %zu: added token id %lld is beyond the model's vocab_size %lld", path,
                           a->offset, (long long)id, (long long)V);
        v->s[id] = content->str;
        v->len[id] = content->len;
        v->type[id] = special && special->type == JSON_TRUE ? TOK_CONTROL : TOK_USER_DEFINED;
    }
    for (int64_t i = 0; i < V; i++)
        if (!v->s[i]) { /* ids the model has but the tokenizer does not use */
            char *p = v->scratch + i * 24;
            v->len[i] = (size_t)snprintf(p, 24, "[PAD%lld]", (long long)i);
            v->s[i] = p;
            v->type[i] = TOK_UNUSED;
        }
    if (merges && merges->type != JSON_ARRAY) return lm_fail(err, "%s: model.merges: expected an array", path);
    int64_t n = merges ? (int64_t)merges->len : 0;
    size_t scratch = 0;
    for (const json_value *m = n ? merges->child : NULL; m; m = m->next)
        if (m->type == JSON_ARRAY && m->len == 2 && m->child->type == JSON_STRING &&
            m->child->next->type == JSON_STRING)
            scratch += m->child->len + 1 + m->child->next->len;
        else if (m->type != JSON_STRING)
            return lm_fail(err, "%s: byte %zu: model.merges: expected \"a b\" or [\"a\", \"b\"]", path, m->offset);
    v->merges = calloc((size_t)n + 1, sizeof *v->merges);
    v->merge_len = calloc((size_t)n + 1, sizeof *v->merge_len);
    v->merge_scratch = malloc(scratch + 1);
    if (!v->merges || !v->merge_len || !v->merge_scratch) return lm_fail(err, "out of memory for %lld merges", (long long)n);
    char *p = v->merge_scratch;
    for (const json_value *m = n ? merges->child : NULL; m; m = m->next, v->nmerges++) {
        if (m->type == JSON_STRING) {
            v->merges[v->nmerges] = m->str;
            v->merge_len[v->nmerges] = m->len;
            continue;
        }
        const json_value *a = m->child, *b = a->next;
        v->merges[v->nmerges] = p;
        memcpy(p, a->str, a->len);
        p[a->len] = ' ';
        memcpy(p + a->len + 1, b->str, b->len);
        v->merge_len[v->nmerges] = a->len + 1 + b->len;
        p += a->len + 1 + b->len;
    }
    return 0;
}

/* tokenizer.json's pre-tokenizer, as llama.cpp names them. */
static const char *pre_name(const json_value *root, const lm_tokenizer *tok, lm_export_result *r) {
    if (strstr(lm_tokenizer_describe(tok), "pre-tokenizer deepseek-v3")) return "deepseek-v3";
    /* lemma's trained tokenizers: DeepSeek-V3's pre-tokenizer with one digit per token */
    const json_value *pt = json_get(root, "pre_tokenizer"), *steps = pt ? json_get(pt, "pretokenizers") : NULL;
    const json_value *first = steps && steps->type == JSON_ARRAY ? steps->child : NULL;
    const json_value *pat = first ? json_get(first, "pattern") : NULL, *re = pat ? json_get(pat, "Regex") : NULL;
    if (re && re->type == JSON_STRING && !strcmp(re->str, "\\p{N}")) {
        warn(r, "llama.cpp's deepseek-v3 pre-tokenizer groups up to 3 digits where this tokenizer isolates each: "
                "text with numbers tokenizes differently in llama.cpp (token ids are exact)");
        return "deepseek-v3";
    }
    warn(r, "the pre-tokenizer is not DeepSeek-V3's: llama.cpp pre-tokenizes text with its default regex");
    return "default";
}

static int add_tokenizer(exporter *x, lm_gguf *g, const char *tok_path, lm_export_result *r) {
    const lm_config *c = &x->c;
    char path[PATH_MAX + 32], dir[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s", tok_path ? tok_path : x->dir);
    if (!stat(dir, &st) && !S_ISDIR(st.st_mode)) { /* a tokenizer.json path */
        snprintf(path, sizeof path, "%s", dir);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    }
    vocab v = {0};
    int rc = -1, real = tok_path || !access(path, F_OK);
    int32_t bos = (int32_t)c->bos_token_id, eos = (int32_t)c->eos_token_id;
    int add_bos = 0;
    char *text = NULL, *ctext = NULL;
    json_doc *doc = NULL, *cdoc = NULL;
    lm_tokenizer *tok = NULL;
    const char *pre = "default", *chat_template = NULL;
    if (!real) {
        if (synthetic_vocab(c, &v, x->err)) goto done;
    } else {
        size_t len, clen;
        /* the tokenizer must be one lemma reads (the same checks as every command) */
        if (!(tok = lm_tokenizer_load(path, x->err))) goto done;
        if (lm_tokenizer_vocab_size(tok) > c->vocab_size) {
            lm_fail(x->err, "%s: has %d ids but the model's vocab_size is %lld", path, lm_tokenizer_vocab_size(tok),
                    (long long)c->vocab_size);
            goto done;
        }
        if (lm_read_file(path, 256u << 20, &text, &len, x->err)) goto done;
        if (!(doc = json_parse(text, len, x->err))) {
            lm_fail_prefix(x->err, "%s", path);
            goto done;
        }
        if (json_vocab(json_root(doc), path, c->vocab_size, &v, x->err)) goto done;
        pre = pre_name(json_root(doc), tok, r);
        if (lm_tokenizer_bos(tok) >= 0) bos = lm_tokenizer_bos(tok);
        if (lm_tokenizer_eos(tok) >= 0) eos = lm_tokenizer_eos(tok);
        add_bos = bos >= 0; /* DeepSeek models start with BOS, and lemma -p puts it first */
        char cpath[PATH_MAX + 32];
        snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
        if (!access(cpath, F_OK)) {
            if (lm_read_file(cpath, 64u << 20, &ctext, &clen, x->err)) goto done;
            if (!(cdoc = json_parse(ctext, clen, x->err))) {
                lm_fail_prefix(x->err, "%s", cpath);
                goto done;
            }
            const json_value *ab = json_get(json_root(cdoc), "add_bos_token");
            const json_value *ct = json_get(json_root(cdoc), "chat_template");
            if (ab) add_bos = ab->type == JSON_TRUE;
            if (ct && ct->type == JSON_STRING && ct->len == strlen(ct->str)) chat_template = ct->str;
        }
    }
    lm_gguf_kv_str(g, "tokenizer.ggml.model", "gpt2");
    lm_gguf_kv_str(g, "tokenizer.ggml.pre", pre);
    lm_gguf_kv_str_array(g, "tokenizer.ggml.tokens", v.s, v.len, (uint64_t)c->vocab_size);
    lm_gguf_kv_i32_array(g, "tokenizer.ggml.token_type", v.type, (uint64_t)c->vocab_size);
    lm_gguf_kv_str_array(g, "tokenizer.ggml.merges", v.merges, v.merge_len, (uint64_t)v.nmerges);
    if (bos >= 0) lm_gguf_kv_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0) lm_gguf_kv_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    lm_gguf_kv_bool(g, "tokenizer.ggml.add_bos_token", add_bos);
    lm_gguf_kv_bool(g, "tokenizer.ggml.add_eos_token", 0);
    if (chat_template) lm_gguf_kv_str(g, "tokenizer.chat_template", chat_template);
    r->tokenizer = real;
    rc = 0;
done:
    vocab_free(&v);
    json_free(doc);
    json_free(cdoc);
    free(text);
    free(ctext);
    lm_tokenizer_free(tok);
    return rc;
}

/* ---- data ---- */

/* Row r of a stored 1-D or 2-D tensor as floats; FP8 times its block scale. */
static void src_row(exporter *x, const lm_tensor *t, const lm_tensor *scale, int64_t r, float *out) {
    int64_t cols = t->shape[t->ndim - 1];
    size_t es = lm_dtype_size(t->dtype);
    lm_convert_to_f32(out, (const char *)t->data + (size_t)(r * cols) * es, t->dtype, (size_t)cols);
    if (t->dtype == LM_DTYPE_I8) { /* Q8: w = q * d, exact in f32 (quantize.h) */
        const unsigned char *d = (const unsigned char *)scale->data + (size_t)(r * scale->shape[1]) * 2;
        for (int64_t c = 0; c < cols; c++) {
            uint16_t h;
            memcpy(&h, d + (c / LM_Q8_BLOCK) * 2, 2); /* may be unaligned in the file */
            out[c] *= lm_f16_to_f32(h);
        }
        return;
    }
    if (t->dtype != LM_DTYPE_F8_E4M3 || !scale) return;
    int64_t scols = scale->shape[scale->ndim - 1];
    size_t ses = lm_dtype_size(scale->dtype);
    for (int64_t c0 = 0; c0 < cols; c0 += LM_FP8_BLOCK) {
        float s;
        lm_convert_to_f32(&s, (const char *)scale->data + (size_t)((r / LM_FP8_BLOCK) * scols + c0 / LM_FP8_BLOCK) * ses,
                          scale->dtype, 1);
        int64_t c1 = c0 + LM_FP8_BLOCK < cols ? c0 + LM_FP8_BLOCK : cols;
        for (int64_t c = c0; c < c1; c++) out[c] *= s;
    }
    (void)x;
}

static const lm_tensor *scale_of(exporter *x, const lm_tensor *t) {
    if (t->dtype == LM_DTYPE_I8) return q8_scale_of(x->set, t);
    if (t->dtype != LM_DTYPE_F8_E4M3) return NULL;
    char name[256];
    size_t n = strlen(t->name);
    if (n < 6 || strcmp(t->name + n - 6, "weight")) return NULL;
    snprintf(name, sizeof name, "%.*sweight_scale_inv", (int)(n - 6), t->name);
    return lm_st_find(x->set, name);
}

/* Staging of encoded rows into large writes. */
typedef struct stage {
    lm_atomic_writer *w;
    char *buf;
    size_t len, cap;
} stage;

static void stage_put(stage *s, const void *p, size_t n) {
    if (s->len + n > s->cap) {
        lm_atomic_put(s->w, s->buf, s->len);
        s->len = 0;
    }
    if (n > s->cap) {
        lm_atomic_put(s->w, p, n);
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void put_row(stage *s, lm_ggml_type type, const float *row, int64_t n, void *enc) {
    lm_ggml_encode_row(type, row, n, enc);
    stage_put(s, enc, (size_t)lm_ggml_bytes(type, (uint64_t)n));
}

/* Row r of a lemma Q8 matrix as GGUF Q8_0 blocks, copied: lemma's blocks are
 * llama.cpp's (32 values along a row, an F16 d), so the GGUF holds the same q
 * and d and dequantises to the same q * d. */
static void put_q8_row(stage *s, const lm_tensor *t, const lm_tensor *scale, int64_t r, unsigned char *enc) {
    int64_t cols = t->shape[1], ks = scale->shape[1];
    const unsigned char *q = (const unsigned char *)t->data + (size_t)(r * cols);
    const unsigned char *d = (const unsigned char *)scale->data + (size_t)(r * ks) * 2;
    for (int64_t b = 0; b < ks; b++) {
        memcpy(enc + b * LM_Q8_0_BYTES, d + b * 2, 2);
        memcpy(enc + b * LM_Q8_0_BYTES + 2, q + b * LM_Q8_0_BLOCK, LM_Q8_0_BLOCK);
    }
    stage_put(s, enc, (size_t)(ks * LM_Q8_0_BYTES));
}

/* put_row of row r of t, the blocks copied when both sides are Q8. */
static void put_src_row(exporter *x, stage *s, lm_ggml_type type, const lm_tensor *t, const lm_tensor *sc, int64_t r,
                        float *row, void *enc) {
    if (type == LM_GGML_Q8_0 && t->dtype == LM_DTYPE_I8) {
        put_q8_row(s, t, sc, r, enc);
        return;
    }
    src_row(x, t, sc, r, row);
    put_row(s, type, row, t->shape[t->ndim - 1], enc);
}

static void write_tensor(exporter *x, const out_tensor *o, stage *s, float *row, float *head, void *enc) {
    const lm_config *c = &x->c;
    switch (o->kind) {
    case SRC_PLAIN: {
        const lm_tensor *sc = scale_of(x, o->src);
        int64_t rows = o->ndim == 2 ? o->ne[1] : 1;
        for (int64_t r = 0; r < rows; r++) put_src_row(x, s, o->type, o->src, sc, r, row, enc);
        return;
    }
    case SRC_EXPERTS:
        for (int64_t e = 0; e < o->ne[2]; e++) {
            char hn[128];
            snprintf(hn, sizeof hn, "model.layers.%lld.mlp.experts.%lld.%s_proj.weight", (long long)o->layer,
                     (long long)e, o->proj);
            const lm_tensor *t = lm_st_find(x->set, hn), *sc = scale_of(x, t);
            for (int64_t r = 0; r < o->ne[1]; r++) put_src_row(x, s, o->type, t, sc, r, row, enc);
        }
        return;
    case SRC_K_B:
    case SRC_V_B: {
        int64_t H = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim, C = c->kv_lora_rank;
        const lm_tensor *sc = scale_of(x, o->src);
        for (int64_t h = 0; h < H; h++) {
            if (o->kind == SRC_V_B) { /* head h's value rows, as they are: ne = {C, dv} */
                for (int64_t j = 0; j < dv; j++) put_src_row(x, s, o->type, o->src, sc, h * (dn + dv) + dn + j, row, enc);
                continue;
            }
            /* head h's key rows [dn, C], transposed: output row i holds column i of them */
            for (int64_t j = 0; j < dn; j++) src_row(x, o->src, sc, h * (dn + dv) + j, head + j * C);
            for (int64_t i = 0; i < C; i++) {
                for (int64_t j = 0; j < dn; j++) row[j] = head[j * C + i];
                put_row(s, o->type, row, dn, enc);
            }
        }
        return;
    }
    case SRC_ZERO:
        memset(row, 0, (size_t)o->ne[0] * sizeof *row);
        for (int64_t r = 0; r < o->ne[1]; r++) put_row(s, o->type, row, o->ne[0], enc);
        return;
    }
}

int lm_export_made_by_lemma(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char b[64];
    struct stat st;
    ssize_t n = !fstat(fd, &st) && S_ISREG(st.st_mode) ? read(fd, b, sizeof b) : -1;
    close(fd);
    const size_t klen = sizeof LM_EXPORT_MARK_KEY - 1;
    if (n < (ssize_t)(24 + 8 + klen) || memcmp(b, "GGUF", 4)) return 0;
    uint64_t len;
    memcpy(&len, b + 24, 8);
    return len == klen && !memcmp(b + 32, LM_EXPORT_MARK_KEY, klen);
}

int lm_export_gguf(const char *model_dir, const char *out_path, const lm_export_opts *o, lm_export_result *r,
                   lm_error *err) {
    lm_export_opts defaults = {0};
    if (!o) o = &defaults;
    memset(r, 0, sizeof *r);
    exporter x = {.dir = model_dir, .err = err};
    lm_gguf *g = NULL;
    lm_atomic_writer *w = NULL;
    float *row = NULL, *head = NULL;
    void *enc = NULL;
    stage s = {0};
    int rc = -1;
    if (lm_config_load(model_dir, &x.c, err)) return -1;
    const lm_config *c = &x.c;
    if (c->n_routed_experts && c->moe_layer_freq != 1)
        return lm_fail(err, "%s/config.json: moe_layer_freq is %lld: llama.cpp's deepseek2 has MoE in every layer "
                       "after first_k_dense_replace (moe_layer_freq 1)", model_dir, (long long)c->moe_layer_freq);
    if (lm_st_open_dir(model_dir, &x.set, err)) return -1;
    /* the matrices' type */
    int only[LM_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < lm_st_count(x.set); i++) {
        const lm_tensor *t = lm_st_tensor(x.set, i);
        size_t n = strlen(t->name);
        if ((n < 16 || strcmp(t->name + n - 16, "weight_scale_inv")) && (n < 9 || strcmp(t->name + n - 9, "_q8_scale")))
            only[t->dtype] = 1;
    }
    switch (o->type) {
    case LM_EXPORT_F32: x.big = LM_GGML_F32; break;
    case LM_EXPORT_F16: x.big = LM_GGML_F16; break;
    case LM_EXPORT_BF16: x.big = LM_GGML_BF16; break;
    case LM_EXPORT_Q8_0: x.big = LM_GGML_Q8_0; break;
    default: /* a Q8 checkpoint stays Q8 (its blocks copied); else the widest type there */
        x.big = only[LM_DTYPE_I8] ? LM_GGML_Q8_0
                : !only[LM_DTYPE_BF16] && !only[LM_DTYPE_F16] && !only[LM_DTYPE_F8_E4M3] ? LM_GGML_F32
                : only[LM_DTYPE_F16] && !only[LM_DTYPE_BF16] && !only[LM_DTYPE_F8_E4M3] ? LM_GGML_F16
                                                                                        : LM_GGML_BF16;
    }
    x.q8_input = only[LM_DTYPE_I8];
    int mla = !o->no_mla;
    for (int64_t i = 0; i < lm_st_count(x.set); i++)
        if (strstr(lm_st_tensor(x.set, i)->name, ".self_attn.indexer.")) {
            warn(r, "the DeepSeek-V3.2 indexer is not exported: llama.cpp's deepseek2 attends to every earlier "
                    "token, the model's own result only up to index_topk tokens of context");
            break;
        }
    if (add_matrix(&x, "token_embd.weight", "model.embed_tokens.weight")) goto done;
    for (int64_t l = 0; l < c->num_hidden_layers; l++)
        if (plan_layer(&x, l, mla)) goto done;
    if (add_f32(&x, "output_norm.weight", "model.norm.weight")) goto done;
    if (!c->tie_word_embeddings && add_matrix(&x, "output.weight", "lm_head.weight")) goto done;

    if (!(g = lm_gguf_new())) {
        lm_fail(err, "out of memory");
        goto done;
    }
    const char *base = strrchr(model_dir, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : model_dir);
    lm_gguf_kv_str(g, LM_EXPORT_MARK_KEY, "written by lemma export"); /* first: lm_export_made_by_lemma */
    if (add_hparams(&x, g, mla, name, r) || add_tokenizer(&x, g, o->tokenizer, r)) goto done;
    int64_t widest = 1;
    for (int64_t i = 0; i < x.nt; i++) {
        if (lm_gguf_tensor(g, x.t[i].name, x.t[i].type, x.t[i].ndim, x.t[i].ne) < 0) break;
        if (x.t[i].ne[0] > widest) widest = x.t[i].ne[0];
    }
    if (c->kv_lora_rank > widest) widest = c->kv_lora_rank;
    row = malloc((size_t)widest * sizeof *row);
    head = malloc((size_t)(c->qk_nope_head_dim * c->kv_lora_rank + 1) * sizeof *head);
    enc = malloc((size_t)widest * 4 + 64);
    s.cap = 4u << 20;
    s.buf = malloc(s.cap);
    if (!row || !head || !enc || !s.buf) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (!(w = lm_atomic_begin(out_path, err))) goto done;
    s.w = w;
    if (lm_gguf_write_header(g, w, err)) goto done;
    for (int64_t i = 0; i < x.nt; i++) {
        write_tensor(&x, &x.t[i], &s, row, head, enc); /* write failures are kept by w: lm_atomic_finish */
        lm_atomic_put(w, s.buf, s.len);
        s.len = 0;
        lm_gguf_pad(g, w, i);
    }
    lm_atomic_writer *done_w = w;
    w = NULL;
    if (lm_atomic_finish(done_w, err)) goto done;
    r->tensors = x.nt;
    r->keys = lm_gguf_kv_count(g);
    r->bytes = lm_gguf_file_bytes(g);
    r->type = lm_ggml_type_name(x.big);
    r->f16_fallbacks = x.f16_fallbacks;
    r->fallback_type = x.q8_input ? "f32" : "f16";
    rc = 0;
done:
    lm_atomic_abort(w); /* a failed export leaves nothing behind */
    free(s.buf);
    free(row);
    free(head);
    free(enc);
    free(x.t);
    lm_gguf_free(g);
    lm_st_close(x.set);
    return rc;
}
