/* fuzz_config.c — libFuzzer target: arbitrary bytes as config.json, through
 * lm_config_parse. Either it fails with a one-line message naming the file,
 * or the config is consistent (the invariants the model code relies on) and
 * the derived RoPE / softmax constants are finite.
 *
 * FUZZ_SEEDS: tests/golden/*\/config.json tests/golden_v32/*\/config.json tests/bad/*\/config.json
 * FUZZ_MAX_LEN: 8192
 * FUZZ_DICT: fuzz/json.dict
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_config c;
    if (lm_config_parse((const char *)data, size, "config.json", &c, &err)) {
        require(err.msg[0] && !strchr(err.msg, '\n') && !strncmp(err.msg, "config.json", 11));
        return 0;
    }
    require(c.arch == LM_ARCH_DEEPSEEK_V2 || c.arch == LM_ARCH_DEEPSEEK_V3);
    require(c.vocab_size >= 1 && c.hidden_size >= 1 && c.num_hidden_layers >= 1 && c.num_attention_heads >= 1);
    require(c.qk_rope_head_dim >= 2 && c.qk_rope_head_dim % 2 == 0 && c.kv_lora_rank >= 1 && c.v_head_dim >= 1);
    require(c.q_lora_rank >= 0 && c.moe_layer_freq >= 1 && c.n_routed_experts >= 0);
    /* products the model code forms stay far from overflow */
    require(c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim) < (1ll << 31));
    if (c.n_routed_experts) {
        require(c.n_group >= 1 && c.n_routed_experts % c.n_group == 0);
        require(c.topk_group >= 1 && c.topk_group <= c.n_group);
        require(c.num_experts_per_tok >= 1 && c.num_experts_per_tok <= c.n_routed_experts);
        if (c.topk_method != LM_TOPK_GREEDY && c.n_group > 1)
            require(c.num_experts_per_tok <= c.topk_group * (c.n_routed_experts / c.n_group));
    }
    if (lm_config_has_indexer(&c)) { /* V3.2: what the indexer relies on */
        int64_t di = c.index_head_dim;
        require(di >= c.qk_rope_head_dim && (di & (di - 1)) == 0 && c.index_n_heads >= 1 && c.q_lora_rank >= 1);
        require(c.index_n_heads * di < (1ll << 31) && c.fp8_emulation == 1);
    } else {
        require(c.index_n_heads == 0 && c.index_head_dim == 0 && c.index_topk == 0);
    }
    require(c.rms_norm_eps >= 0 && c.rms_norm_eps <= 1 && c.routed_scaling_factor > 0 && c.rope_theta > 1);
    double s = lm_config_softmax_scale(&c), a = lm_config_rope_attention_factor(&c);
    require(isfinite(s) && s > 0 && isfinite(a) && a > 0);
    int64_t half = c.qk_rope_head_dim / 2;
    double *f = malloc((size_t)half * sizeof *f);
    require(f != NULL);
    lm_config_rope_inv_freq(&c, f);
    for (int64_t i = 0; i < half; i++) require(isfinite(f[i]) && f[i] > 0);
    free(f);
    for (int64_t l = 0; l < c.num_hidden_layers && l < 8; l++) (void)lm_config_layer_is_moe(&c, l);
    return 0;
}
