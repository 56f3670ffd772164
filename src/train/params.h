/* params.h — the trainable state of a DeepSeek-V2/V3 model: every parameter,
 * its gradient and its two AdamW moments, as F32, in one allocation.
 *
 *   lm_params *p;
 *   lm_params_create(&cfg, &p, &err);              // zeros, norms = 1
 *   lm_params_init_random(p, seed, 0.02);           // = `lemma init` of that seed
 *   lm_params_load_model(p, model, &err);           // or copy a checkpoint in
 *   ... train (step.h) ...
 *   lm_params_save(p, p->w, "out/model.safetensors", &err);
 *
 * Layout: four arrays of n_floats floats, w (values), g (gradients), m and v
 * (AdamW moments), each holding the tensors in the same order at the same
 * offsets (64-byte aligned): the tensors of the arch table (arch.h) in
 * checkpoint order, the one `lemma init` writes.
 * Names are the Hugging Face checkpoint names, so a saved block is a model
 * file lm_model_load reads. A tied head has no tensor of its own: W.head and
 * G.head point at the embedding, so head and lookup gradients add up there.
 *
 * mlp.gate.e_score_correction_bias is stored with the weights but is not a
 * gradient parameter (trainable = 0): its gradient stays 0, AdamW skips it,
 * and the MoE balance rule (step.h) moves it. Weight decay applies to the
 * trainable 2-D tensors only (decay = 1), never to norms or biases.
 *
 * MTP (num_nextn_predict_layers = 1; more are refused): the MTP layer's
 * decoder tensors are W.layers[L] / G.layers[L] (L = num_hidden_layers; the
 * arrays have L + 1 entries), its enorm, hnorm, eh_proj and
 * shared_head.norm are WM / GM. Its embed_tokens and shared_head.head are
 * the main embedding and head, shared as in DeepSeek-V3 (section 2.2): they
 * are `alias` tensors with no storage of their own (offset = the main
 * tensor's), never trained, read or initialised under their own names, and
 * saved as copies so that the checkpoint has the released layout. */
#ifndef LEMMA_TRAIN_PARAMS_H
#define LEMMA_TRAIN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/config.h"
#include "model/model.h"

enum { LM_PARAM_NAME_MAX = 128 };

typedef enum lm_param_kind {
    LM_PARAM_LINEAR = 0,         /* a weight matrix, N(0, std) at init */
    LM_PARAM_NORM = 1,           /* RMSNorm weight, 1 at init */
    LM_PARAM_BIAS = 2,           /* e_score_correction_bias, 0 at init, not trained by gradient */
} lm_param_kind;

typedef struct lm_ptensor {
    char name[LM_PARAM_NAME_MAX];
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];            /* [rows, cols] or [n] */
    int64_t numel;
    int64_t offset;              /* in floats from the start of each block */
    lm_param_kind kind;
    int trainable;               /* has a gradient and AdamW state */
    int decay;                   /* weight decay applies (trainable 2-D) */
    int alias;                   /* MTP copy of the embedding or head (see above) */
    int mtp;                     /* part of the MTP layer */
} lm_ptensor;

/* The MTP layer's own tensors outside its decoder layer (weights or gradients). */
typedef struct lm_mtp_views {
    float *enorm, *hnorm;        /* [D] */
    float *head_norm;            /* [D] shared_head.norm */
    lm_mat eh_proj;              /* [D, 2D] */
} lm_mtp_views;

typedef struct lm_params {
    lm_config cfg;
    lm_ptensor *t;               /* [n_tensors] */
    int64_t n_tensors;
    int64_t n_floats;            /* size of each of w, g, m, v (with alignment gaps, which stay 0) */
    int64_t n_trainable;         /* trainable elements (what AdamW updates) */
    float *w, *g, *m, *v;
    lm_dims dims;                /* derived from cfg */
    /* F32 views into w and g, of the type inference binds a checkpoint to
     * (arch.h): W's tensors are the weights, G's the gradients (lm_mat_data
     * gives the writable floats). G has no gate_bias. */
    lm_weights W, G;
    int64_t mtp_layers;          /* 0 or 1 */
    lm_mtp_views WM, GM;
    lm_arena block;              /* the one allocation behind w, g, m, v */
    void *ptrs;                  /* the layer and expert view arrays of both */
} lm_params;

/* Allocates the block for a config: weights 0, norm weights 1, g/m/v 0. */
int lm_params_create(const lm_config *cfg, lm_params **out, lm_error *err);
void lm_params_free(lm_params *p);

/* Fresh weights: exactly the values lm_model_init_random (init.h) writes for
 * this seed and std in F32. Leaves g, m, v alone. */
void lm_params_init_random(lm_params *p, uint64_t seed, double std);

/* Copies the weights of a loaded checkpoint (any stored dtype; FP8 with its
 * block scales) into w. The model's config must describe the same shapes,
 * except that a checkpoint without an MTP layer may load into parameters
 * with one (the MTP tensors then keep their values: init them first). */
int lm_params_load_model(lm_params *p, const lm_model *m, lm_error *err);

/* Reads the tensors of one of the blocks (w, g, m or v) from a safetensors
 * file written by lm_params_save: every tensor must be there, F32 or
 * BF16/F16, with the right shape. */
int lm_params_read(lm_params *p, float *block, const char *path, lm_error *err);

/* Writes one block (p->w, p->g, p->m or p->v) as F32 tensors with the HF
 * names to path, atomically (lm_st_write). metadata_json as in lm_st_write. */
int lm_params_save(const lm_params *p, const float *block, const char *path, const char *metadata_json,
                   lm_error *err);

/* Tensor by HF name, or NULL. */
const lm_ptensor *lm_params_find(const lm_params *p, const char *name);

/* g = 0. */
void lm_params_zero_grad(lm_params *p);

/* ---- bf16 copies of the weights (mixed precision, step.h) ----
 * lm_params_to_bf16 writes w rounded to bf16 (nearest even) into w16
 * (n_floats elements, the same offsets as w). lm_params_bf16_views binds
 * `out` like W but with BF16 matrices in w16; its vectors (norms, the MoE
 * bias) stay W's F32 ones. *ptrs holds the view arrays: free() it. */
void lm_params_to_bf16(const lm_params *p, uint16_t *w16, lm_pool *pool);
int lm_params_bf16_views(const lm_params *p, const uint16_t *w16, lm_weights *out, void **ptrs, lm_error *err);

#endif
