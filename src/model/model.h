/* model.h — a DeepSeek-V2/V3 checkpoint bound to its weights, and the
 * inference state (KV cache + buffers) that runs it.
 *
 *   lm_model *m; lm_model_load("MODEL_DIR", &m, &err);
 *   lm_infer *s = lm_infer_create(m, LM_ATTN_LATENT, 4096, 256, nthreads, &err);
 *   lm_infer_forward(s, pool, ids, T, logits, LM_LOGITS_LAST, &err);  // prefill
 *   lm_infer_forward(s, pool, &next, 1, logits, LM_LOGITS_LAST, &err); // decode
 *
 * Every matrix the forward only multiplies by (the Linears, the routers,
 * the head; the embedding too when the head is tied to it) is repacked at
 * load into panels of 16 rows (LM_LAYOUT_PANELS, core/kernels.h) in its
 * stored dtype (F32/BF16/F16/FP8 block-scaled), so the decode matvec reads
 * contiguous memory; the bits are those of the row-major file
 * (docs/arithmetic.md). That costs one pass over the weights at load
 * (threaded) and about one copy of them in memory (`panels`); the mapped
 * file pages are then clean page cache the kernel may reclaim. An untied
 * embedding stays a view into the mapping (it is a row lookup). Packing
 * is skipped (views stay row-major, same bits) when the panels would take
 * more than 3/4 of the machine's RAM, or with LEMMA_PANELS=0. Norm
 * vectors and the routing bias are converted to F32 (a few KB per layer).
 *
 * Two attention paths share one forward:
 *  - LM_ATTN_NAIVE caches the expanded K (H x (dn+dr)) and V (H x dv) per
 *    token and layer, as the straightforward MLA reading does;
 *  - LM_ATTN_LATENT caches only the normalised latent c (C) and the roped
 *    k_pe (dr) per token and layer, and folds kv_b into the query and the
 *    output ("absorbed" MLA, what DeepSeek's decoder does).
 * Both are tested equal to the full-sequence forward at every position. */
#ifndef LEMMA_MODEL_MODEL_H
#define LEMMA_MODEL_MODEL_H

#include <stdint.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "formats/safetensors.h"
#include "model/arch.h"
#include "model/config.h"

typedef struct lm_model {
    lm_config cfg;
    lm_tensor_set *tensors;      /* owns the mappings */
    lm_dims dims;                /* derived from cfg */
    lm_weights w;                /* views bound by the arch table (arch.h) */
    float *owned;                /* one block holding every converted vector */
    void *panels;                /* the matrices repacked into panels (NULL: none) */
    size_t panel_bytes;
    char dir[4096];
} lm_model;

/* Loads config.json and the safetensors of a model directory and checks that
 * every tensor the config needs exists with the right shape and a supported
 * dtype (errors name the tensor and the expectation).
 *
 * Non-finite weights: what is cheap is checked here — every norm vector, the
 * routing bias, every FP8 scale tensor and the MoE routers (together well
 * under 0.1% of a V3 checkpoint). The big matrices are not scanned at load
 * (700 GB would take minutes); instead lm_infer_forward checks every logits
 * row it returns and names the first tensor whose output went non-finite.
 * lm_st_check_finite scans everything on request (lemma info --check-weights). */
int lm_model_load(const char *dir, lm_model **out, lm_error *err);
/* The same with flags: LM_LOAD_ROWS keeps every matrix a row-major view of
 * the mapping (no packing: for reading the tensors, e.g. training's init
 * from a checkpoint, and for tests; the forward gives the same bits).
 * lm_model_load packs unless LEMMA_PANELS=0 is in the environment. */
enum { LM_LOAD_ROWS = 1 };
int lm_model_load_flags(const char *dir, unsigned flags, lm_model **out, lm_error *err);
void lm_model_free(lm_model *m);
/* One tensor of m's files checked and bound as lm_model_load binds the
 * table's (shape, dtype, FP8 scales; a vector converted to F32 into dst[n]
 * and checked finite): for the tensors outside the main table (model/mtp.h). */
int lm_model_bind_mat(const lm_model *m, const char *name, int64_t rows, int64_t cols, lm_mat *out, lm_error *err);
int lm_model_bind_vec(const lm_model *m, const char *name, int64_t n, float *dst, lm_error *err);

/* Parameter counts: total, and active per token (embedding excluded from
 * "active": it is a lookup, not a matmul; the head included). */
typedef struct lm_param_count {
    int64_t total;
    int64_t active;
    int64_t embedding;
    int64_t expert_each;         /* one routed expert */
} lm_param_count;
lm_param_count lm_model_params(const lm_model *m);
/* The tensors of a loaded checkpoint: by stored dtype over every file, and
 * how many of them the arch table names (with FP8 scales and MTP layers). */
typedef struct lm_tensor_report {
    int64_t count[LM_DTYPE_COUNT];
    double bytes[LM_DTYPE_COUNT];
    int64_t total;               /* tensors in the files */
    int64_t known;               /* of those, named by the table for this config */
    int64_t missing;             /* table tensors absent (MTP layers a checkpoint left out) */
} lm_tensor_report;
void lm_model_tensor_report(const lm_model *m, lm_tensor_report *r);
/* Bytes of weights one token reads on average (routed experts weighted by
 * top-k / E), in their stored dtypes: decode's bandwidth numerator. */
double lm_model_active_weight_bytes(const lm_model *m);

typedef enum lm_attn_mode { LM_ATTN_NAIVE = 0, LM_ATTN_LATENT = 1 } lm_attn_mode;
/* How latent mode runs a chunk of several rows (decode, one row, is always
 * absorbed). ABSORBED (the default) gives every row the bits of
 * token-by-token decode whatever the chunking. EXPANDED decompresses the
 * cached latents the chunk attends to into K and V (kv_b) and runs the
 * naive attention where that costs fewer multiply-adds (forward.c,
 * expand_segment): fewer FLOPs for long prefills, but a row's bits then
 * depend on how the prompt was chunked (docs/arithmetic.md). ALWAYS expands
 * every chunk of two rows or more (tests). Only latents are cached either way. */
typedef enum lm_prefill_mode {
    LM_PREFILL_ABSORBED = 0,
    LM_PREFILL_EXPANDED = 1,
    LM_PREFILL_EXPANDED_ALWAYS = 2,
} lm_prefill_mode;

/* Floats cached per token per layer. */
int64_t lm_kv_floats_per_token(const lm_config *cfg, lm_attn_mode mode);

typedef enum lm_logits_mode {
    LM_LOGITS_NONE = 0,          /* no head matmul (cache fill only) */
    LM_LOGITS_LAST = 1,          /* logits[V] of the last token */
    LM_LOGITS_ALL = 2,           /* logits[T, V] */
} lm_logits_mode;

typedef struct lm_infer lm_infer;

/* Inference state for one sequence: a KV cache of max_ctx positions and
 * buffers for chunks of up to max_chunk tokens for up to nthreads threads.
 * Everything is allocated here, once; forward never allocates. It is the
 * batched forward of kvcache.h with one sequence (its own block pool), so
 * lm_infer_forward and lm_batch_forward give the same bits. */
lm_infer *lm_infer_create(const lm_model *m, lm_attn_mode mode, int64_t max_ctx, int64_t max_chunk,
                          int nthreads, lm_error *err);
void lm_infer_free(lm_infer *s);
/* Forgets the cache (position 0 again). */
void lm_infer_reset(lm_infer *s);
/* Number of positions in the cache. */
int64_t lm_infer_pos(const lm_infer *s);
/* Truncates the cache to n positions (n <= pos): the shared-prompt fork. */
void lm_infer_truncate(lm_infer *s, int64_t n);
/* Copies src's cache (same model/mode, dst capacity >= src pos) into dst. */
int lm_infer_copy_cache(lm_infer *dst, const lm_infer *src, lm_error *err);
/* Bytes of KV cache per token (all layers; V3.2's index keys included). */
int64_t lm_infer_kv_bytes_per_token(const lm_infer *s);
/* lm_fwd_trace_index (kvcache.h) of the state's forward: buf [L][max_chunk][K]. */
void lm_infer_trace_index(lm_infer *s, int32_t *buf);

/* Picks the prefill form (lm_prefill_mode); allocates the expanded form's
 * buffers (one layer's decompressed K/V for max_ctx positions) on first use.
 * Fails in naive mode. */
int lm_infer_set_prefill(lm_infer *s, lm_prefill_mode mode, lm_error *err);

/* Runs T tokens at positions pos..pos+T-1, appending them to the cache.
 * Tokens are processed in chunks of max_chunk. Fails (without changing the
 * cache) when an id is out of range or the cache would overflow. */
int lm_infer_forward(lm_infer *s, lm_pool *pool, const int32_t *ids, int64_t T, float *logits,
                     lm_logits_mode mode, lm_error *err);

#endif
