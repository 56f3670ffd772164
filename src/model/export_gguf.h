/* export_gguf.h — a DeepSeek-V2/V3 checkpoint as a GGUF file for llama.cpp's
 * `deepseek2` architecture (`lemma export`).
 *
 *   lm_export_opts o = {.type = LM_EXPORT_Q8_0};
 *   lm_export_result r;
 *   if (lm_export_gguf("MODEL_DIR", "out.gguf", &o, &r, &err)) ...  // err names the tensor, key or file
 *
 * What llama.cpp expects (checked against the llama.cpp that node-llama-cpp
 * 3.21.1 ships, release v0.4.0: src/models/deepseek2.cpp and
 * src/llama-model.cpp), and what is written:
 *  - MLA layout: attention.head_count_kv = 1, key_length = kv_lora + rope,
 *    value_length = kv_lora, key_length_mla / value_length_mla = the real
 *    head sizes; kv_b_proj split per head into attn_k_b (each head's
 *    [nope, kv_lora] block transposed: ne = {nope, kv_lora, heads}) and
 *    attn_v_b (ne = {kv_lora, v, heads}). no_mla writes the single attn_kv_b
 *    (llama.cpp then runs its expanded K/V path).
 *  - RoPE: deepseek2 rotates adjacent pairs, the layout HF checkpoints store:
 *    q/k are written unpermuted. YaRN: rope.scaling.yarn_log_multiplier =
 *    0.1 * mscale_all_dim (llama.cpp divides by 0.1 again).
 *  - Routing: expert_gating_func (1 softmax, 2 sigmoid), exp_probs_b.bias
 *    (e_score_correction_bias), expert_group_count / expert_group_used_count
 *    (group score = the sum of its top-2 scores, V3's rule), expert_weights_norm
 *    and _scale. Routed experts are stacked into 3-D tensors. llama.cpp needs
 *    a shared expert: a model without one gets a shared expert of zeros (its
 *    output is exactly 0).
 *  - Types: norms, the router and the routing bias are always F32; the other
 *    matrices get the chosen type (auto: F32 when every matrix is F32, F16
 *    when they are F16, else BF16; FP8 is dequantised with its 128x128 block
 *    scales first). Q8_0 needs rows that are a multiple of 32 values; a
 *    matrix whose rows are not is written F16 (counted in the result).
 *  - A lemma Q8 checkpoint (quantize.h: I8 + F16 `_q8_scale` per 32 columns)
 *    exports as Q8_0 by default: its blocks are llama.cpp's, so they are
 *    copied as they are and the GGUF dequantises to lemma's w = q * d
 *    exactly. attn_k_b (kv_b transposed, across the blocks) and matrices
 *    with rows that are not whole blocks are written F32, where q * d is
 *    exact. The other types take q * d and round it like any F32 input.
 *  - Tokenizer: the model directory's tokenizer.json as a "gpt2" (byte-level
 *    BPE) vocabulary: tokens in their byte-level form, merges, added tokens as
 *    control (special) or user-defined tokens, ids up to vocab_size that the
 *    tokenizer does not use as unused "[PADn]" tokens; tokenizer.ggml.pre is
 *    "deepseek-v3" when the pre-tokenizer is DeepSeek-V3's (else "default");
 *    bos/eos, add_bos_token and the chat template from tokenizer_config.json.
 *    Without a tokenizer.json, a synthetic vocabulary (byte symbols for ids
 *    < 256, "<|tN|>" above, no merges) that only serves token ids.
 * What llama.cpp's deepseek2 cannot express is refused (moe_layer_freq != 1,
 * a rope_scaling other than yarn) or reported as a warning in the result
 * (DeepSeek-V2's group_limited_greedy: llama.cpp scores groups by the top-2
 * sum, not the max). The MTP layers and the V3.2 indexer are not exported.
 *
 * The file is written atomically (fileio.h): a temporary file, fsync,
 * rename. Memory stays bounded by one head or one row block of a matrix, not
 * the model: a 685B checkpoint exports without holding any tensor whole. */
#ifndef LEMMA_MODEL_EXPORT_GGUF_H
#define LEMMA_MODEL_EXPORT_GGUF_H

#include <stdint.h>

#include "core/error.h"

typedef enum lm_export_type {
    LM_EXPORT_AUTO = 0,
    LM_EXPORT_F32,
    LM_EXPORT_F16,
    LM_EXPORT_BF16,
    LM_EXPORT_Q8_0,
} lm_export_type;

typedef struct lm_export_opts {
    lm_export_type type;
    int no_mla;                  /* the legacy attn_kv_b instead of attn_k_b / attn_v_b */
    const char *tokenizer;       /* tokenizer.json or its folder; NULL: MODEL_DIR's when present */
} lm_export_opts;

typedef struct lm_export_result {
    int64_t tensors, keys;
    uint64_t bytes;              /* of the file */
    const char *type;            /* the matrices' type: "f32", "f16", "bf16", "q8_0" */
    int64_t f16_fallbacks;       /* q8_0: matrices written F16 (rows not a multiple of 32) */
    const char *fallback_type;   /* their type: "f16", or "f32" for a Q8 input (exact) */
    int tokenizer;               /* 1: the real tokenizer.json; 0: the synthetic vocabulary */
    char warning[1024];          /* "" or what llama.cpp will compute differently, "; "-separated */
} lm_export_result;

/* 0, or -1 with err; nothing is left at out_path on failure. */
int lm_export_gguf(const char *model_dir, const char *out_path, const lm_export_opts *o, lm_export_result *r,
                   lm_error *err);

/* The first key/value of every file lm_export_gguf writes; lemma export
 * overwrites an existing file only when it begins with it. */
#define LM_EXPORT_MARK_KEY "lemma.export"
/* 1 when path is a GGUF file that lm_export_gguf wrote (its first key is
 * LM_EXPORT_MARK_KEY), 0 otherwise (reads the first 64 bytes). */
int lm_export_made_by_lemma(const char *path);

#endif
