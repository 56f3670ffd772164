/* config.c — config.json reading and the derived RoPE / softmax constants.
 * The conventions follow docs/deepseek-conventions.md (numbers in
 * comments refer to its items). */
#include "model/config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/mathfn.h"
#include "formats/json.h"

/* Sizes beyond this are certainly not a real model and would overflow the
 * products the loader computes. */
#define CFG_MAX_DIM (1ll << 24)

typedef struct reader {
    const json_value *root;
    const char *path;
    lm_error *err;
    const char *prefix;          /* "rope_scaling." inside that object, for messages */
} reader;

/* Reads an integer field in [lo, hi]; missing → def when has_def, else error. */
static int read_int(reader *r, const char *key, int64_t lo, int64_t hi, int has_def, int64_t def,
                    int64_t *out) {
    const json_value *v = json_get(r->root, key);
    if (!v || v->type == JSON_NULL) {
        if (has_def) { *out = def; return 0; }
        return lm_fail(r->err, "%s: missing field '%s' (expected an integer)", r->path, key);
    }
    int64_t x;
    if (!json_as_int(v, &x) && v->type == JSON_NUMBER && (isinf(v->num) || v->num == floor(v->num)))
        return lm_fail(r->err, "%s: field '%s' = %g, expected %lld..%lld", r->path, key, v->num, (long long)lo,
                       (long long)hi); /* an integer, but beyond int64 or not exact in a double */
    if (!json_as_int(v, &x))
        return lm_fail(r->err, "%s: field '%s' at byte %zu is a %s, expected an integer", r->path, key,
                       v->offset, v->type == JSON_NUMBER ? "non-integer number" : json_type_name(v->type));
    if (x < lo || x > hi)
        return lm_fail(r->err, "%s: field '%s' = %lld, expected %lld..%lld", r->path, key, (long long)x,
                       (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int read_num(reader *r, const json_value *obj, const char *key, double lo, double hi, int has_def,
                    double def, double *out) {
    const json_value *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) {
        if (has_def) { *out = def; return 0; }
        return lm_fail(r->err, "%s: missing field '%s%s' (expected a number)", r->path, r->prefix, key);
    }
    double x;
    if (!json_as_double(v, &x))
        return lm_fail(r->err, "%s: field '%s%s' at byte %zu is a %s, expected a number", r->path, r->prefix, key,
                       v->offset, json_type_name(v->type));
    if (!(x >= lo && x <= hi))
        return lm_fail(r->err, "%s: field '%s%s' = %g, expected %g..%g", r->path, r->prefix, key, x, lo, hi);
    *out = x;
    return 0;
}

static int read_bool(reader *r, const char *key, int def, int *out) {
    const json_value *v = json_get(r->root, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (!json_as_bool(v, out))
        return lm_fail(r->err, "%s: field '%s' at byte %zu is a %s, expected true or false", r->path, key,
                       v->offset, json_type_name(v->type));
    return 0;
}

static int read_str(reader *r, const char *key, const char *def, const char **out) {
    const json_value *v = json_get(r->root, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (v->type != JSON_STRING)
        return lm_fail(r->err, "%s: field '%s' at byte %zu is a %s, expected a string", r->path, key,
                       v->offset, json_type_name(v->type));
    if (strlen(v->str) != v->len)
        return lm_fail(r->err, "%s: field '%s' at byte %zu contains a NUL character", r->path, key, v->offset);
    *out = v->str;
    return 0;
}

/* V3.2's indexer fields (conv. 33). The Hadamard rotation needs a power of
 * two, and the rope dims sit inside each indexer head. */
static int read_v32(reader *r, lm_config *cfg) {
    if (read_int(r, "index_n_heads", 1, 4096, 0, 0, &cfg->index_n_heads) ||
        read_int(r, "index_head_dim", 1, 1 << 16, 0, 0, &cfg->index_head_dim) ||
        read_int(r, "index_topk", 1, 1ll << 40, 0, 0, &cfg->index_topk))
        return -1;
    int64_t di = cfg->index_head_dim;
    if (di & (di - 1))
        return lm_fail(r->err, "%s: field 'index_head_dim' = %lld, expected a power of two (the Hadamard rotation)",
                       r->path, (long long)di);
    if (di < cfg->qk_rope_head_dim)
        return lm_fail(r->err, "%s: field 'index_head_dim' = %lld, expected at least qk_rope_head_dim = %lld", r->path,
                       (long long)di, (long long)cfg->qk_rope_head_dim);
    if (cfg->index_n_heads * di > CFG_MAX_DIM)
        return lm_fail(r->err, "%s: index_n_heads x index_head_dim = %lld, expected at most %lld", r->path,
                       (long long)(cfg->index_n_heads * di), (long long)CFG_MAX_DIM);
    if (!cfg->q_lora_rank)
        return lm_fail(r->err, "%s: missing field 'q_lora_rank': DeepseekV32ForCausalLM's indexer reads the query latent",
                       r->path);
    cfg->fp8_ue8m0 = 1;
    cfg->fp8_emulation = 1;
    return 0;
}

int lm_config_parse(const char *text, size_t len, const char *path, lm_config *cfg, lm_error *err) {
    memset(cfg, 0, sizeof *cfg);
    json_doc *doc = json_parse(text, len, err);
    if (!doc) return lm_fail_prefix(err, "%s", path);
    reader r = {json_root(doc), path, err, ""};
    char q[128]; /* a quoted string from the file, for messages */
    int rc = -1;
    if (r.root->type != JSON_OBJECT) {
        lm_fail(err, "%s: expected a JSON object at the top level", path);
        goto done;
    }

    /* Architecture: from "architectures" or, failing that, "model_type". */
    const json_value *archs = json_get(r.root, "architectures");
    const char *model_type;
    if (read_str(&r, "model_type", "", &model_type)) goto done;
    const char *arch = NULL;
    if (archs) {
        if (archs->type != JSON_ARRAY || !archs->child || archs->child->type != JSON_STRING) {
            lm_fail(err, "%s: field 'architectures' must be an array of strings", path);
            goto done;
        }
        arch = archs->child->str;
    }
    int v32 = arch ? !strcmp(arch, "DeepseekV32ForCausalLM") : !strcmp(model_type, "deepseek_v32");
    if (v32 || (arch ? !strcmp(arch, "DeepseekV3ForCausalLM") : !strcmp(model_type, "deepseek_v3")))
        cfg->arch = LM_ARCH_DEEPSEEK_V3;
    else if (arch ? !strcmp(arch, "DeepseekV2ForCausalLM") : !strcmp(model_type, "deepseek_v2"))
        cfg->arch = LM_ARCH_DEEPSEEK_V2;
    else if (!arch && !*model_type) {
        lm_fail(err, "%s: missing field 'architectures' (expected [\"DeepseekV2ForCausalLM\"] or "
                "[\"DeepseekV3ForCausalLM\"])", path);
        goto done;
    } else {
        const char *a = arch ? arch : model_type;
        lm_fail(err, "%s: unsupported architecture %s (expected DeepseekV2ForCausalLM, DeepseekV3ForCausalLM or "
                "DeepseekV32ForCausalLM)",
                path, json_quote(q, sizeof q, a, strlen(a)));
        goto done;
    }
    int v3 = cfg->arch == LM_ARCH_DEEPSEEK_V3;

    if (read_int(&r, "vocab_size", 1, 1ll << 31, 0, 0, &cfg->vocab_size) ||
        read_int(&r, "hidden_size", 1, CFG_MAX_DIM, 0, 0, &cfg->hidden_size) ||
        read_int(&r, "intermediate_size", 1, CFG_MAX_DIM, 0, 0, &cfg->intermediate_size) ||
        read_int(&r, "num_hidden_layers", 1, 100000, 0, 0, &cfg->num_hidden_layers) ||
        read_int(&r, "num_attention_heads", 1, 65536, 0, 0, &cfg->num_attention_heads) ||
        read_int(&r, "n_routed_experts", 0, 1 << 16, 1, 0, &cfg->n_routed_experts) ||
        read_int(&r, "n_shared_experts", 0, 1 << 10, 1, 0, &cfg->n_shared_experts) ||
        read_int(&r, "first_k_dense_replace", 0, 100000, 1, 0, &cfg->first_k_dense_replace) ||
        read_int(&r, "moe_layer_freq", 1, 100000, 1, 1, &cfg->moe_layer_freq) ||
        read_int(&r, "q_lora_rank", 1, CFG_MAX_DIM, 1, 0, &cfg->q_lora_rank) ||
        read_int(&r, "kv_lora_rank", 1, CFG_MAX_DIM, 0, 0, &cfg->kv_lora_rank) ||
        read_int(&r, "qk_nope_head_dim", 0, CFG_MAX_DIM, 0, 0, &cfg->qk_nope_head_dim) ||
        read_int(&r, "qk_rope_head_dim", 2, CFG_MAX_DIM, 0, 0, &cfg->qk_rope_head_dim) ||
        read_int(&r, "v_head_dim", 1, CFG_MAX_DIM, 0, 0, &cfg->v_head_dim) ||
        read_int(&r, "max_position_embeddings", 1, 1ll << 40, 1, 4096, &cfg->max_position_embeddings) ||
        read_int(&r, "bos_token_id", 0, 1ll << 31, 1, -1, &cfg->bos_token_id) ||
        read_int(&r, "eos_token_id", 0, 1ll << 31, 1, -1, &cfg->eos_token_id) ||
        read_int(&r, "num_nextn_predict_layers", 0, 64, 1, 0, &cfg->num_nextn_predict_layers))
        goto done;
    if (cfg->qk_rope_head_dim % 2) {
        lm_fail(err, "%s: field 'qk_rope_head_dim' = %lld, expected an even number", path,
                (long long)cfg->qk_rope_head_dim);
        goto done;
    }
    /* Products the model code forms (matrix widths, cache rows); each bounded
     * like a single dimension, so no product of them overflows 64 bits and
     * none reaches 32 bits unnoticed. */
    struct { const char *what; int64_t v; } prods[] = {
        {"num_attention_heads x (qk_nope_head_dim + qk_rope_head_dim)",
         cfg->num_attention_heads * (cfg->qk_nope_head_dim + cfg->qk_rope_head_dim)},
        {"num_attention_heads x (qk_nope_head_dim + v_head_dim)",
         cfg->num_attention_heads * (cfg->qk_nope_head_dim + cfg->v_head_dim)},
        {"kv_lora_rank + qk_rope_head_dim", cfg->kv_lora_rank + cfg->qk_rope_head_dim},
    };
    for (size_t i = 0; i < sizeof prods / sizeof prods[0]; i++)
        if (prods[i].v > CFG_MAX_DIM) {
            lm_fail(err, "%s: %s = %lld, expected at most %lld", path, prods[i].what, (long long)prods[i].v,
                    (long long)CFG_MAX_DIM);
            goto done;
        }
    if (cfg->n_routed_experts) {
        if (read_int(&r, "moe_intermediate_size", 1, CFG_MAX_DIM, 0, 0, &cfg->moe_intermediate_size) ||
            read_int(&r, "num_experts_per_tok", 1, cfg->n_routed_experts, 0, 0, &cfg->num_experts_per_tok) ||
            read_int(&r, "n_group", 1, cfg->n_routed_experts, 1, 1, &cfg->n_group) ||
            read_int(&r, "topk_group", 1, cfg->n_routed_experts, 1, 1, &cfg->topk_group))
            goto done;
        if (cfg->n_routed_experts % cfg->n_group) {
            lm_fail(err, "%s: n_routed_experts = %lld is not a multiple of n_group = %lld", path,
                    (long long)cfg->n_routed_experts, (long long)cfg->n_group);
            goto done;
        }
        if (cfg->topk_group > cfg->n_group) {
            lm_fail(err, "%s: topk_group = %lld exceeds n_group = %lld", path, (long long)cfg->topk_group,
                    (long long)cfg->n_group);
            goto done;
        }
    } else if (read_int(&r, "moe_intermediate_size", 1, CFG_MAX_DIM, 1, 1, &cfg->moe_intermediate_size)) {
        goto done;
    }
    if (v32 && read_v32(&r, cfg)) goto done;
    if (cfg->n_shared_experts * cfg->moe_intermediate_size > CFG_MAX_DIM) {
        lm_fail(err, "%s: n_shared_experts x moe_intermediate_size = %lld, expected at most %lld", path,
                (long long)(cfg->n_shared_experts * cfg->moe_intermediate_size), (long long)CFG_MAX_DIM);
        goto done;
    }

    const char *topk_method, *scoring;
    if (read_str(&r, "topk_method", v3 ? "noaux_tc" : "greedy", &topk_method) ||
        read_str(&r, "scoring_func", v3 ? "sigmoid" : "softmax", &scoring))
        goto done;
    if (!strcmp(topk_method, "greedy") || !strcmp(topk_method, "gready"))
        cfg->topk_method = LM_TOPK_GREEDY;
    else if (!strcmp(topk_method, "group_limited_greedy"))
        cfg->topk_method = LM_TOPK_GROUP_LIMITED_GREEDY;
    else if (!strcmp(topk_method, "noaux_tc"))
        cfg->topk_method = LM_TOPK_NOAUX_TC;
    else {
        lm_fail(err, "%s: field 'topk_method' = %s, expected greedy, group_limited_greedy or noaux_tc", path,
                json_quote(q, sizeof q, topk_method, strlen(topk_method)));
        goto done;
    }
    /* Group-limited routing keeps topk_group groups of E / n_group experts;
     * top-k must fit in them, else it would pick masked-out experts. */
    if (cfg->n_routed_experts && cfg->topk_method != LM_TOPK_GREEDY && cfg->n_group > 1 &&
        cfg->num_experts_per_tok > cfg->topk_group * (cfg->n_routed_experts / cfg->n_group)) {
        lm_fail(err, "%s: num_experts_per_tok = %lld exceeds the %lld experts in topk_group = %lld of n_group = %lld groups",
                path, (long long)cfg->num_experts_per_tok,
                (long long)(cfg->topk_group * (cfg->n_routed_experts / cfg->n_group)), (long long)cfg->topk_group,
                (long long)cfg->n_group);
        goto done;
    }
    if (!strcmp(scoring, "softmax"))
        cfg->scoring_func = LM_SCORING_SOFTMAX;
    else if (!strcmp(scoring, "sigmoid"))
        cfg->scoring_func = LM_SCORING_SIGMOID;
    else {
        lm_fail(err, "%s: field 'scoring_func' = %s, expected softmax or sigmoid", path,
                json_quote(q, sizeof q, scoring, strlen(scoring)));
        goto done;
    }
    if (read_bool(&r, "norm_topk_prob", 0, &cfg->norm_topk_prob) ||
        read_bool(&r, "tie_word_embeddings", 0, &cfg->tie_word_embeddings) ||
        read_num(&r, r.root, "routed_scaling_factor", 0, 1e6, 1, 1.0, &cfg->routed_scaling_factor) ||
        read_num(&r, r.root, "rope_theta", 1e-6, 1e12, 1, 10000.0, &cfg->rope_theta) ||
        read_num(&r, r.root, "rms_norm_eps", 0, 1.0, 1, 1e-6, &cfg->rms_norm_eps))
        goto done;
    if (!(cfg->routed_scaling_factor > 0)) {
        lm_fail(err, "%s: field 'routed_scaling_factor' must be positive", path);
        goto done;
    }
    if (!(cfg->rope_theta > 1)) { /* the rope frequencies and YaRN divide by log(theta) */
        lm_fail(err, "%s: field 'rope_theta' = %g, expected more than 1", path, cfg->rope_theta);
        goto done;
    }

    const json_value *rs = json_get(r.root, "rope_scaling");
    if (rs && rs->type != JSON_NULL) {
        if (rs->type != JSON_OBJECT) {
            lm_fail(err, "%s: field 'rope_scaling' must be an object or null", path);
            goto done;
        }
        const json_value *type = json_get(rs, "type");
        if (!type) type = json_get(rs, "rope_type");
        if (!type || type->type != JSON_STRING) {
            lm_fail(err, "%s: rope_scaling needs a string 'type'", path);
            goto done;
        }
        if (!strcmp(type->str, "yarn")) {
            cfg->rope_yarn = 1;
            r.prefix = "rope_scaling.";
            double orig;
            if (read_num(&r, rs, "factor", 1.0, 1e6, 0, 0, &cfg->yarn_factor) ||
                read_num(&r, rs, "original_max_position_embeddings", 1, 1e12, 0, 0, &orig) ||
                read_num(&r, rs, "beta_fast", 1e-9, 1e6, 1, 32, &cfg->yarn_beta_fast) ||
                read_num(&r, rs, "beta_slow", 1e-9, 1e6, 1, 1, &cfg->yarn_beta_slow) ||
                read_num(&r, rs, "mscale", 0, 1e6, 1, 1, &cfg->yarn_mscale))
                goto done;
            cfg->yarn_original_max_pos = (int64_t)orig;
            const json_value *mad = json_get(rs, "mscale_all_dim");
            if (mad && mad->type != JSON_NULL) {
                if (read_num(&r, rs, "mscale_all_dim", 0, 1e6, 0, 0, &cfg->yarn_mscale_all_dim)) goto done;
                cfg->yarn_has_mscale_all_dim = 1;
            }
            r.prefix = "";
        } else if (strcmp(type->str, "default") && strcmp(type->str, "none")) {
            lm_fail(err, "%s: rope_scaling type %s is not supported (expected yarn)", path,
                    json_quote(q, sizeof q, type->str, type->len));
            goto done;
        }
    }
    const json_value *qc = json_get(r.root, "quantization_config");
    if (qc && qc->type == JSON_OBJECT) {
        const json_value *qm = json_get(qc, "quant_method");
        if (qm && qm->type == JSON_STRING && !strcmp(qm->str, "fp8")) {
            const json_value *bs = json_get(qc, "weight_block_size");
            int64_t b0 = 0, b1 = 0;
            if (bs && (!json_as_int(json_at(bs, 0), &b0) || !json_as_int(json_at(bs, 1), &b1) || b0 != 128 ||
                       b1 != 128)) {
                lm_fail(err, "%s: quantization_config.weight_block_size must be [128, 128]", path);
                goto done;
            }
            cfg->fp8_block_quant = 1;
        }
        /* V3.2's FP8 activation scales (conv. 33): ue8m0 unless another
         * format is named; null means amax / 448. */
        const json_value *sf = json_get(qc, "scale_fmt");
        if (sf && sf->type == JSON_NULL) {
            cfg->fp8_ue8m0 = 0;
        } else if (sf && (sf->type != JSON_STRING || strcmp(sf->str, "ue8m0"))) {
            lm_fail(err, "%s: quantization_config.scale_fmt at byte %zu must be \"ue8m0\" or null", path, sf->offset);
            goto done;
        }
    }
    rc = 0;
done:
    json_free(doc);
    return rc;
}

int lm_config_load(const char *model_dir, lm_config *cfg, lm_error *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    char *text;
    size_t len;
    if (lm_read_file(path, 16u << 20, &text, &len, err)) return -1;
    int rc = lm_config_parse(text, len, path, cfg, err);
    free(text);
    return rc;
}

int lm_config_layer_is_moe(const lm_config *cfg, int64_t layer) {
    return cfg->n_routed_experts > 0 && layer >= cfg->first_k_dense_replace &&
           layer % cfg->moe_layer_freq == 0;
}

static double yarn_get_mscale(double scale, double mscale) {
    if (scale <= 1) return 1.0;
    return 0.1 * mscale * lm_log(scale) + 1.0;
}

double lm_config_softmax_scale(const lm_config *cfg) {
    double s = 1.0 / sqrt((double)(cfg->qk_nope_head_dim + cfg->qk_rope_head_dim));
    /* Convention 10: m^2 with m from mscale_all_dim, only for yarn. */
    if (cfg->rope_yarn && cfg->yarn_has_mscale_all_dim && cfg->yarn_mscale_all_dim != 0) {
        double m = yarn_get_mscale(cfg->yarn_factor, cfg->yarn_mscale_all_dim);
        s *= m * m;
    }
    return s;
}

double lm_config_rope_attention_factor(const lm_config *cfg) {
    if (!cfg->rope_yarn) return 1.0;
    /* Convention 16 (HF rule). */
    if (!cfg->yarn_has_mscale_all_dim) return yarn_get_mscale(cfg->yarn_factor, 1.0);
    return yarn_get_mscale(cfg->yarn_factor, cfg->yarn_mscale) /
           yarn_get_mscale(cfg->yarn_factor, cfg->yarn_mscale_all_dim);
}

void lm_config_rope_inv_freq(const lm_config *cfg, double *inv_freq) {
    int64_t dr = cfg->qk_rope_head_dim, half = dr / 2;
    double theta = cfg->rope_theta;
    for (int64_t i = 0; i < half; i++) inv_freq[i] = lm_pow(theta, -2.0 * (double)i / (double)dr);
    if (!cfg->rope_yarn) return;
    /* Convention 15. */
    double orig = (double)cfg->yarn_original_max_pos;
    double lowf = dr * lm_log(orig / (cfg->yarn_beta_fast * 2 * M_PI)) / (2 * lm_log(theta));
    double highf = dr * lm_log(orig / (cfg->yarn_beta_slow * 2 * M_PI)) / (2 * lm_log(theta));
    double low = floor(lowf), high = ceil(highf);
    if (low < 0) low = 0;
    if (high > dr - 1) high = (double)(dr - 1);
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; i++) {
        double ramp = ((double)i - low) / (high - low);
        if (ramp < 0) ramp = 0;
        if (ramp > 1) ramp = 1;
        inv_freq[i] = inv_freq[i] * (1 - ramp) + inv_freq[i] / cfg->yarn_factor * ramp;
    }
}
