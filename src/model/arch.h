/* arch.h — what a DeepSeek-V2/V3/V3.2 checkpoint consists of, written once: the
 * table of tensors (Hugging Face name, shape in config dimensions, which
 * layers have it, dtype policy, the field it binds to), the weight views it
 * binds into, and the dimensions derived from the config.
 *
 * Every tensor list in the code is a loop over this table: binding a
 * checkpoint (model.c), random init (init.c), the training parameters
 * (train/params.c) and the tensor report of `lemma info`.
 *
 *   lm_arch_each(&cfg, LM_ARCH_WITH_MTP, visit, ctx);  // every tensor, in file order
 *
 * Adding a tensor kind is one line in arch.c's table plus its use: e.g. a
 * norm of the latent keys would be
 *   {"model.layers.{L}.self_attn.k_norm.weight", LM_AT_LAYER, LM_WHEN_ALWAYS,
 *    LM_ROLE_NORM, LM_DIM_C, LM_DIM_NONE, 0, LAYER(k_norm)},
 * plus a `float *k_norm` in lm_layer and the block that reads it; binding,
 * init, training (with its gradient view) and the report follow with no
 * other edit. Tensors only some configs have (the V3.2 indexer's, under
 * LM_WHEN_INDEXER) add an lm_arch_when value with its one-line test in
 * arch.c's `applies`; a new
 * shape adds an lm_arch_dim and its line in `dim`. MTP layers are written
 * by init and skipped by the forward (LM_ARCH_NO_FIELD) until it runs them. */
#ifndef LEMMA_MODEL_ARCH_H
#define LEMMA_MODEL_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/kernels.h"
#include "model/config.h"

/* One decoder layer's weights. The same struct serves inference (views into
 * the memory-mapped checkpoint, any stored dtype) and training (F32 views
 * into the parameter block, and a second lm_layer of the same shapes for the
 * gradients). Vectors are always F32: converted at load, or trained. */
typedef struct lm_layer {
    int is_moe;
    int has_shared;
    float *attn_norm;            /* [D] */
    lm_mat wq;                   /* [H*(dn+dr), D]   when Q == 0 */
    lm_mat wq_a;                 /* [Q, D]           when Q > 0 */
    float *q_norm;               /* [Q] */
    lm_mat wq_b;                 /* [H*(dn+dr), Q] */
    lm_mat wkv_a;                /* [C+dr, D] */
    float *kv_norm;              /* [C] */
    lm_mat wkv_b;                /* [H*(dn+dv), C], head-major [k_nope | v] */
    lm_mat wo;                   /* [D, H*dv] */
    float *ffn_norm;             /* [D] */
    lm_mat w1, w2, w3;           /* dense: gate [I, D], down [D, I], up [I, D] */
    lm_mat gate;                 /* MoE router [E, D] */
    float *gate_bias;            /* [E] e_score_correction_bias, or NULL (not in a gradient view) */
    lm_mat *ew1, *ew2, *ew3;     /* [E] routed experts: [Im, D], [D, Im], [Im, D] */
    lm_mat sw1, sw2, sw3;        /* shared experts: [Is, D], [D, Is], [Is, D], Is = Im * n_shared */
    /* V3.2's DSA indexer (model/indexer.h), when the config has one: */
    lm_mat iwq_b;                /* [Hi*di, Q] its query from the normalised q latent */
    lm_mat iwk;                  /* [di, D] its one key per token */
    float *ik_norm, *ik_bias;    /* [di] the key's LayerNorm (weight and bias) */
    lm_mat iw_proj;              /* [Hi, D] per-head weights of the score */
} lm_layer;

/* A whole model's weights (or, in training, its gradients). */
typedef struct lm_weights {
    lm_mat embed;                /* [V, D] */
    lm_mat head;                 /* [V, D]; the embedding when tied */
    float *final_norm;           /* [D] */
    lm_layer *layers;            /* [L] */
} lm_weights;

/* An F32 view of rows x cols floats (activations, training's blocks). */
static inline lm_mat lm_f32_mat(const float *data, int64_t rows, int64_t cols) {
    lm_mat w = {.dtype = LM_DTYPE_F32, .rows = rows, .cols = cols, .data = data, .scale_inv = NULL};
    return w;
}
/* The floats behind an F32 view of a block the caller owns and may write
 * (training's parameters and gradients); never for a checkpoint's views. */
static inline float *lm_mat_data(const lm_mat *m) { return (float *)(uintptr_t)m->data; }

/* Dimensions derived from the config, computed once (config.h's letters). */
typedef struct lm_dims {
    int64_t V, D, L, H;
    int64_t dn, dr, dv, dk;      /* dk = dn + dr, the query/key head width */
    int64_t half;                /* dr / 2 rope pairs */
    int64_t C, Q;                /* kv_lora_rank, q_lora_rank (0 = no q LoRA) */
    int64_t qd;                  /* H * dk: query row */
    int64_t kva;                 /* C + dr: kv_a_proj_with_mqa row */
    int64_t kvb;                 /* H * (dn + dv): kv_b_proj row */
    int64_t od;                  /* H * dv: attention output row */
    int64_t I;                   /* dense FFN width */
    int64_t E, k, Im, Is;        /* experts, top-k, expert width, shared width (Im * n_shared) */
    float eps;                   /* rms_norm_eps */
    int64_t Hi, di, K;           /* V3.2 indexer heads, head width, top-k (0 without) */
} lm_dims;
lm_dims lm_dims_of(const lm_config *c);

/* ---- the table ---- */

typedef enum lm_arch_scope {
    LM_AT_MODEL = 0,             /* once per model (embedding, final norm, head) */
    LM_AT_LAYER,                 /* every decoder layer */
    LM_AT_DENSE,                 /* layers with a dense SwiGLU */
    LM_AT_MOE,                   /* MoE layers */
    LM_AT_EXPERT,                /* each routed expert of a MoE layer ({E} in the name) */
    LM_AT_SHARED,                /* MoE layers with shared experts */
    LM_AT_MTP,                   /* each MTP layer, after its own decoder-layer tensors */
} lm_arch_scope;

typedef enum lm_arch_when {
    LM_WHEN_ALWAYS = 0,
    LM_WHEN_Q_LORA,              /* q_lora_rank > 0 */
    LM_WHEN_NO_Q_LORA,           /* q_lora_rank == 0 */
    LM_WHEN_NOAUX_TC,            /* topk_method noaux_tc (the correction bias) */
    LM_WHEN_UNTIED,              /* tie_word_embeddings false */
    LM_WHEN_INDEXER,             /* V3.2: index_topk set */
} lm_arch_when;

/* Dtype policy and initial values:
 *  LINEAR  attention / MLP / expert Linear: F32, BF16, F16, or FP8 E4M3 with
 *          an F32 `<name>_scale_inv`; `lemma init --dtype fp8` makes it FP8;
 *          N(0, std); trained with weight decay.
 *  MATRIX  embedding, head, router, MTP eh_proj: as LINEAR when read, but
 *          BF16 in an FP8 checkpoint (as DeepSeek releases them).
 *  NORM    RMSNorm weight: F32/BF16/F16, converted to F32 at load and checked
 *          finite; ones; trained without decay.
 *  BIAS    e_score_correction_bias: as NORM when read, always F32 when
 *          written; zeros; not a gradient parameter (the balance rule moves it). */
typedef enum lm_arch_role { LM_ROLE_LINEAR = 0, LM_ROLE_MATRIX, LM_ROLE_NORM, LM_ROLE_BIAS } lm_arch_role;

typedef enum lm_arch_dim {
    LM_DIM_NONE = 0,             /* no second dimension: a vector */
    LM_DIM_V, LM_DIM_D, LM_DIM_2D, LM_DIM_Q, LM_DIM_QD, LM_DIM_KVA, LM_DIM_C, LM_DIM_KVB, LM_DIM_OD,
    LM_DIM_I, LM_DIM_IM, LM_DIM_IS, LM_DIM_E,
    LM_DIM_IQ, LM_DIM_DI, LM_DIM_HI, /* V3.2 indexer: Hi*di, di, Hi */
} lm_arch_dim;

enum { LM_ARCH_CHECK_FINITE = 1 }; /* flags: scanned for NaN/Inf at load (the router) */
enum { LM_ARCH_NO_FIELD = -1 };     /* not bound (MTP tensors: written by init, skipped by the forward) */

typedef struct lm_arch_tensor {
    const char *pattern;         /* HF name; {L} = layer index, {E} = expert index */
    lm_arch_scope scope;
    lm_arch_when when;
    lm_arch_role role;
    lm_arch_dim rows, cols;      /* cols LM_DIM_NONE: a vector of `rows` */
    int flags;
    ptrdiff_t field;             /* offsetof in lm_weights (model scope) or lm_layer; LM_ARCH_NO_FIELD */
} lm_arch_tensor;

enum { LM_ARCH_NAME_MAX = 128 };

/* One tensor of one config: a table row at a layer (and expert). */
typedef struct lm_arch_item {
    const lm_arch_tensor *t;
    int64_t layer;               /* -1 at model scope */
    int64_t expert;              /* -1 unless LM_AT_EXPERT */
    int mtp;                     /* part of an MTP layer (layer >= num_hidden_layers) */
    char name[LM_ARCH_NAME_MAX];
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];            /* [rows, cols] or [n, 0] */
    int64_t numel;               /* INT64_MAX when the product overflows (absurd configs) */
} lm_arch_item;

typedef enum lm_arch_set {
    LM_ARCH_MAIN = 0,            /* what the forward uses */
    LM_ARCH_WITH_MTP = 1,        /* and num_nextn_predict_layers MTP layers (a full checkpoint) */
} lm_arch_set;

/* Calls fn for every tensor the config needs, in checkpoint order: the
 * embedding, layer by layer (experts one by one), the final norm and head,
 * then (WITH_MTP) each MTP layer. Stops at and returns fn's first non-zero
 * return; 0 after the last. */
typedef int (*lm_arch_visit)(void *ctx, const lm_arch_item *it);
int lm_arch_each(const lm_config *c, lm_arch_set set, lm_arch_visit fn, void *ctx);

/* Where an item binds in w: an lm_mat * (ndim 2) or a float ** (ndim 1), or
 * NULL when it has no field (MTP) or its expert array is not allocated. */
void *lm_arch_field(lm_weights *w, const lm_arch_item *it);

#endif
