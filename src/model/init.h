/* init.h — random initialisation of a DeepSeek-V2/V3 checkpoint.
 *
 *   lm_init_opts o = lm_init_opts_default();   // seed 0, F32, std from config
 *   o.dtype = LM_INIT_BF16;
 *   lm_model_init_random(&cfg, json_text, json_len, "out/dir", &o, pool, &err);
 *
 * writes out/dir/config.json and out/dir/model.safetensors (both atomically)
 * in the Hugging Face layout lm_model_load reads:
 *  - every Linear (attention, MLP, experts, router gate, embedding, head)
 *    ~ N(0, std), std = --std, else the config's initializer_range, else 0.02;
 *  - every RMSNorm weight = 1; mlp.gate.e_score_correction_bias = 0 (F32);
 *  - F32: everything F32. BF16: everything BF16 but the bias. FP8: as the
 *    released DeepSeek-V3 — attention/MLP Linears E4M3 with an F32
 *    `<name>_scale_inv` [ceil(r/128), ceil(c/128)] (scale = block max / 448),
 *    embedding, head, norms, router gate and MTP eh_proj BF16, bias F32.
 *
 * Determinism: element i of tensor `name` is a pure function of (seed, a
 * 64-bit hash of name, i) — a Box-Muller pair from the counter-based RNG
 * (rng.h, stream LM_RNG_INIT mixed with the name hash) — so the bytes never
 * depend on the thread count, on the order tensors are made, or on which
 * other tensors exist. The BF16 and FP8 files hold the F32 draw rounded, so
 * the three dtypes of one seed are the same model at three precisions.
 *
 * The tensor list is the arch table's (arch.h), which the training
 * parameters walk too; lm_init_fill gives the F32 values of any element
 * range, so training starts from exactly these weights.
 *
 * Left out: a streaming writer. lm_st_write takes every tensor in memory, so
 * lm_model_init_random holds the whole file in its stored dtype (one block,
 * the size of model.safetensors) plus one F32 scratch of the largest tensor
 * and ~350 bytes of bookkeeping per tensor. It sizes all that first
 * (lm_init_plan_size) and refuses, before allocating, a checkpoint whose
 * header readers would refuse (LM_ST_MAX_HEADER) or that exceeds the
 * machine's physical memory, with the numbers. */
#ifndef LEMMA_MODEL_INIT_H
#define LEMMA_MODEL_INIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/arch.h"
#include "model/config.h"

typedef enum lm_init_dtype { LM_INIT_F32 = 0, LM_INIT_BF16 = 1, LM_INIT_FP8 = 2 } lm_init_dtype;

/* "f32" / "bf16" / "fp8" -> dtype; -1 when unknown. */
int lm_init_dtype_parse(const char *s, lm_init_dtype *out);
const char *lm_init_dtype_name(lm_init_dtype d);

typedef enum lm_init_kind {
    LM_INIT_NORMAL = 0,          /* N(0, std) */
    LM_INIT_ONES = 1,            /* RMSNorm weights */
    LM_INIT_ZEROS = 2,           /* e_score_correction_bias */
} lm_init_kind;

/* The initial values of a tensor of this role (arch.h). */
lm_init_kind lm_init_kind_of(lm_arch_role role);

enum { LM_INIT_NAME_MAX = 128 };

typedef struct lm_init_tensor {
    char name[LM_INIT_NAME_MAX]; /* Hugging Face name */
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];            /* [rows, cols] of a Linear, [n] of a vector */
    int64_t numel;
    lm_init_kind kind;
    lm_dtype dtype;              /* stored dtype for the plan's lm_init_dtype */
    int fp8;                     /* stored as F8_E4M3 + F32 `<name>_scale_inv` */
    const char *values_of;       /* draw the values of this tensor instead (the MTP layer's copies of
                                    the embedding and head: shared, as DeepSeek trains them), or NULL */
} lm_init_tensor;

/* What lm_model_init_random would make, without making it: tensors planned
 * and stored (FP8 scales included), the file and header bytes, and the
 * memory it would take (the whole file is built in memory, see above). */
typedef struct lm_init_size {
    int64_t tensors, stored;
    double file_bytes, header_bytes, memory_bytes;
} lm_init_size;
int lm_init_plan_size(const lm_config *cfg, lm_init_dtype dtype, lm_init_size *size);

/* Every tensor the config needs (main layers, then num_nextn_predict_layers
 * MTP layers as in the released V3), in a fixed order. *out is malloc'd; the
 * caller frees it. */
int lm_init_plan(const lm_config *cfg, lm_init_dtype dtype, lm_init_tensor **out, int64_t *n, lm_error *err);

/* The 64-bit key of a tensor name that seeds its draws. */
uint64_t lm_init_name_key(const char *name);
/* Standard-normal draw number i of the tensor with this key. */
double lm_init_normal(uint64_t seed, uint64_t key, uint64_t i);
/* dst[j] = initial F32 value of element first + j of the tensor, j < n
 * (single-threaded; any split of a tensor gives the same values). */
void lm_init_fill(const char *name, lm_init_kind kind, uint64_t seed, double std, int64_t first, int64_t n,
                  float *dst);

/* FP8 E4M3 block quantisation of w [rows, cols]: codes [rows, cols] and
 * scale_inv [ceil(rows/128), ceil(cols/128)], scale = max|w| of the block / 448
 * (1 for an all-zero block); w ≈ code * scale. */
void lm_init_quantize_fp8(const float *w, int64_t rows, int64_t cols, uint8_t *codes, float *scale_inv);

typedef struct lm_init_opts {
    uint64_t seed;
    lm_init_dtype dtype;
    double std;                  /* <= 0: initializer_range from the config, else 0.02 */
} lm_init_opts;

lm_init_opts lm_init_opts_default(void);
/* The std the options give for this config text: o->std when > 0, else the
 * config's initializer_range (error when it is not a positive number), else
 * 0.02. */
int lm_init_std(const lm_init_opts *o, const char *config_json, size_t len, double *std, lm_error *err);

/* The config.json text to write next to weights of this dtype: the input
 * verbatim, or for FP8 with a quantization_config inserted when the input has
 * none. Refuses (error) an input whose quantization_config contradicts the
 * dtype. *out is malloc'd, NUL-terminated. */
int lm_init_config_text(const char *config_json, size_t len, lm_init_dtype dtype, char **out, size_t *out_len,
                        lm_error *err);

/* Writes a complete model directory (created if absent) with random weights:
 * config.json (lm_init_config_text) and model.safetensors. pool may be NULL. */
int lm_model_init_random(const lm_config *cfg, const char *config_json, size_t config_len, const char *out_dir,
                         const lm_init_opts *opts, lm_pool *pool, lm_error *err);

#endif
