/* config.h — a DeepSeek-V2/V3/V3.2 model's hyper-parameters, read from a
 * Hugging Face config.json (DeepseekV2ForCausalLM / DeepseekV3ForCausalLM /
 * DeepseekV32ForCausalLM) with the HF field names. Every field is validated (type, range, consistency); an
 * error names the file, the field and what was expected.
 *
 * Letters used across the model code: D = hidden_size, H = heads,
 * dn = qk_nope_head_dim, dr = qk_rope_head_dim, dv = v_head_dim,
 * C = kv_lora_rank, Q = q_lora_rank (0 = no q LoRA), E = n_routed_experts;
 * V3.2's sparse-attention indexer: Hi = index_n_heads, di = index_head_dim,
 * K = index_topk (docs/deepseek-conventions.md items 33-48). */
#ifndef LEMMA_MODEL_CONFIG_H
#define LEMMA_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum lm_arch { LM_ARCH_DEEPSEEK_V2 = 2, LM_ARCH_DEEPSEEK_V3 = 3 } lm_arch;
typedef enum lm_scoring { LM_SCORING_SOFTMAX = 0, LM_SCORING_SIGMOID = 1 } lm_scoring;
typedef enum lm_topk_method {
    LM_TOPK_GREEDY = 0,               /* plain top-k ("greedy", also "gready") */
    LM_TOPK_GROUP_LIMITED_GREEDY = 1, /* V2: group score = max */
    LM_TOPK_NOAUX_TC = 2,             /* V3: biased selection, group score = top-2 sum */
} lm_topk_method;

typedef struct lm_config {
    lm_arch arch;
    int64_t vocab_size;
    int64_t hidden_size;              /* D */
    int64_t intermediate_size;        /* dense FFN width */
    int64_t moe_intermediate_size;    /* per routed expert */
    int64_t num_hidden_layers;
    int64_t first_k_dense_replace;
    int64_t moe_layer_freq;
    int64_t num_attention_heads;      /* H */
    int64_t n_routed_experts;         /* E; 0 = no MoE at all */
    int64_t n_shared_experts;
    int64_t num_experts_per_tok;      /* top-k */
    int64_t n_group, topk_group;
    lm_topk_method topk_method;
    lm_scoring scoring_func;
    int norm_topk_prob;
    double routed_scaling_factor;
    int64_t q_lora_rank;              /* 0 = none (q_proj) */
    int64_t kv_lora_rank;             /* C */
    int64_t qk_nope_head_dim;         /* dn */
    int64_t qk_rope_head_dim;         /* dr */
    int64_t v_head_dim;               /* dv */
    double rope_theta;
    /* rope_scaling: yarn only (or none) */
    int rope_yarn;
    double yarn_factor;
    int64_t yarn_original_max_pos;
    double yarn_beta_fast, yarn_beta_slow;
    double yarn_mscale, yarn_mscale_all_dim;
    int yarn_has_mscale_all_dim;
    double rms_norm_eps;
    int tie_word_embeddings;
    int64_t max_position_embeddings;
    int64_t bos_token_id, eos_token_id; /* -1 when absent */
    int64_t num_nextn_predict_layers;   /* MTP layers stored after the main ones (skipped) */
    int fp8_block_quant;                /* quantization_config fp8 [128,128] present */
    /* V3.2 (DeepseekV32ForCausalLM): the DSA indexer, 0 for V2/V3. */
    int64_t index_n_heads;              /* Hi */
    int64_t index_head_dim;             /* di: a power of two >= dr */
    int64_t index_topk;                 /* K: keys each query attends to */
    int fp8_ue8m0;                      /* FP8 activation scales are powers of two (scale_fmt "ue8m0", V3.2's) */
    /* Not from config.json: whether the forward emulates V3.2's FP8 rounding
     * of the indexer's q/k and of the cached MLA latent (items 39, 45). 1
     * after parsing (what the released model computes); the CLI's
     * `--fp8-emulation off` clears it before any inference state exists. */
    int fp8_emulation;
} lm_config;

/* The config has V3.2's indexer (DeepSeek Sparse Attention). */
static inline int lm_config_has_indexer(const lm_config *cfg) { return cfg->index_topk > 0; }
/* Whether the FP8 emulation applies (a V3.2 model with it switched on). */
static inline int lm_config_fp8_emulated(const lm_config *cfg) {
    return lm_config_has_indexer(cfg) && cfg->fp8_emulation;
}

/* Parses config.json text; `path` is used in error messages only. */
int lm_config_parse(const char *text, size_t len, const char *path, lm_config *cfg, lm_error *err);
/* Reads MODEL_DIR/config.json. */
int lm_config_load(const char *model_dir, lm_config *cfg, lm_error *err);

/* Layer l uses routed experts (else a dense SwiGLU). */
int lm_config_layer_is_moe(const lm_config *cfg, int64_t layer);

/* Attention softmax scale, with YaRN's mscale^2 correction where it applies. */
double lm_config_softmax_scale(const lm_config *cfg);
/* HF's cos/sin multiplier ("attention_factor") for YaRN; 1 without YaRN. */
double lm_config_rope_attention_factor(const lm_config *cfg);
/* inv_freq[i] for i < dr/2, with YaRN applied. */
void lm_config_rope_inv_freq(const lm_config *cfg, double *inv_freq);

#endif
