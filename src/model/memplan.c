/* memplan.c — see memplan.h. */
#include "model/memplan.h"

#include "model/indexer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/arch.h"
#include "model/kvcache.h"

const char *lm_human_bytes(double bytes, char *buf, size_t cap) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* The layer number of "model.layers.N.*", or -1. */
static int64_t layer_of(const char *name) {
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1)) return -1;
    const char *p = name + sizeof prefix - 1;
    int64_t l = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9' && l < INT32_MAX) l = l * 10 + (*p++ - '0');
    return *p == '.' ? l : -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int count_mismatch(void *ctx, const lm_arch_item *it) {
    const lm_tensor_set *set = ((void **)ctx)[0];
    int64_t *bad = ((void **)ctx)[1];
    const lm_tensor *t = lm_st_find(set, it->name);
    /* the first one settles it (an absurd config would list billions of tensors) */
    *bad = !t || t->ndim != it->ndim || t->shape[0] != it->shape[0] || (it->ndim == 2 && t->shape[1] != it->shape[1]);
    return (int)*bad;
}

int lm_memplan_from(const lm_config *cfg, const char *config_text, size_t config_len, const lm_tensor_set *set,
                    lm_memplan *p, lm_error *err) {
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    /* config.h does not know the V3.2 indexer's fields (yet): read the one
     * the index cache's size depends on here. */
    if (config_text) {
        json_doc *doc = json_parse(config_text, config_len, err);
        if (!doc) return lm_fail_prefix(err, "config.json");
        const json_value *v = json_get(json_root(doc), "index_head_dim");
        int64_t d = 0;
        if (v && (!json_as_int(v, &d) || d < 0 || d > (1 << 20))) {
            json_free(doc);
            return lm_fail(err, "config.json: field 'index_head_dim' must be an integer in 0..1048576");
        }
        p->index_head_dim = d;
        json_free(doc);
    }
    int files = 0;
    for (int64_t i = 0; i < lm_st_count(set); i++) {
        const lm_tensor *t = lm_st_tensor(set, i);
        double b = (double)t->nbytes;
        p->tensors++;
        p->count[t->dtype]++;
        p->bytes[t->dtype] += b;
        p->weight_bytes += b;
        if (t->file + 1 > files) files = t->file + 1;
        if (!ends_with(t->name, "weight_scale_inv")) p->params += t->numel;
        int64_t l = layer_of(t->name);
        if (l >= cfg->num_hidden_layers) {
            p->mtp_tensors++;
            p->mtp_bytes += b;
        } else if (strstr(t->name, ".self_attn.indexer.")) {
            p->indexer_tensors++;
            p->indexer_bytes += b;
        }
    }
    p->files = files;
    void *ctx[2] = {(void *)set, &p->mismatched};
    lm_arch_each(cfg, LM_ARCH_MAIN, count_mismatch, ctx);
    return 0;
}

int lm_memplan_read(const char *dir, lm_memplan *p, lm_error *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    lm_config cfg;
    if (lm_read_file(path, 16u << 20, &text, &len, err)) return -1;
    if (lm_config_parse(text, len, path, &cfg, err)) {
        free(text);
        return -1;
    }
    lm_tensor_set *set = NULL;
    if (lm_st_open_dir(dir, &set, err)) {
        free(text);
        return -1;
    }
    int rc = lm_memplan_from(&cfg, text, len, set, p, err);
    if (rc) lm_fail_prefix(err, "%s", dir);
    lm_st_close(set);
    free(text);
    return rc;
}

void lm_memplan_size(lm_memplan *p, const lm_memplan_req *req) {
    lm_config run_cfg = p->cfg; /* the configuration the command will run */
    if (req->fp8_off) run_cfg.fp8_emulation = 0;
    const lm_config *c = &run_cfg;
    int64_t ctx = req->ctx > 0 ? req->ctx : 1, seqs = req->seqs > 0 ? req->seqs : 1;
    p->ctx = ctx;
    p->seqs = seqs;
    p->cache_tokens = req->cache_tokens > 0 ? req->cache_tokens : ctx * seqs;
    /* The cache row of a position: the MLA part, and the V3.2 index key when the
     * model code keeps it in the same row (lm_kv_floats_per_token then counts it);
     * otherwise the official index cache is counted, FP8 keys and one F32 scale
     * per 128 of them. */
    int64_t row = lm_kv_floats_per_token(c, req->attn), key = lm_indexer_key_floats(c);
    /* key > 0: the row ends with the index key (and, with the FP8
     * emulation, holds the latent as e4m3 codes: smaller than C + dr). */
    int64_t mla = key ? row - key
                : req->attn == LM_ATTN_LATENT ? c->kv_lora_rank + c->qk_rope_head_dim
                                              : c->num_attention_heads *
                                                    (c->qk_nope_head_dim + c->qk_rope_head_dim + c->v_head_dim);
    double L = (double)c->num_hidden_layers;
    p->kv_bytes_per_token = (double)mla * L * sizeof(float);
    if (key) p->index_bytes_per_token = (double)key * L * sizeof(float);
    else if (p->index_head_dim) p->index_bytes_per_token = (double)(p->index_head_dim + (p->index_head_dim + 127) / 128 * 4) * L;
    else p->index_bytes_per_token = 0;
    p->cache_bytes = (p->kv_bytes_per_token + p->index_bytes_per_token) * (double)p->cache_tokens;
    p->buffer_bytes = req->training ? 0
                                    : (double)lm_fwd_buffer_bytes(c, req->attn, req->rows > 0 ? req->rows : 1, ctx,
                                                                  req->threads);
    p->train_bytes = req->training ? 16.0 * (double)p->params : 0;
    if (req->training) p->cache_bytes = 0, p->cache_tokens = 0, p->kv_bytes_per_token = 0, p->index_bytes_per_token = 0;
    p->total_bytes = p->weight_bytes + p->cache_bytes + p->buffer_bytes + p->train_bytes;
}

int lm_parse_bytes(const char *s, double *bytes) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1048576.0; end++; break;
    case 'g': case 'G': mul = 1073741824.0; end++; break;
    case 't': case 'T': mul = 1099511627776.0; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (mul > 1 && (*end == 'b' || *end == 'B')) end++;
    if (*end) return -1;
    *bytes = v * mul;
    return 0;
}

int lm_meminfo_parse(const char *text, const char *name, lm_meminfo *mi, lm_error *err) {
    double total = -1, avail = -1;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        long long kb;
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1) total = (double)kb * 1024;
        else if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = (double)kb * 1024;
        line = nl ? nl + 1 : NULL;
    }
    if (total < 0) return lm_fail(err, "%s: no 'MemTotal: N kB' line", name);
    if (avail < 0) return lm_fail(err, "%s: no 'MemAvailable: N kB' line (Linux 3.14 or later has it)", name);
    mi->total = total;
    mi->available = avail;
    mi->source = "MemAvailable";
    return 0;
}

int lm_meminfo_read(lm_meminfo *mi, lm_error *err) {
    const char *env = getenv("LEMMA_MEM_AVAILABLE");
    if (env && *env) {
        double b;
        if (lm_parse_bytes(env, &b))
            return lm_fail(err, "LEMMA_MEM_AVAILABLE is '%s', expected bytes or a number with K, M, G or T", env);
        mi->total = mi->available = b;
        mi->source = "LEMMA_MEM_AVAILABLE";
        return 0;
    }
    /* procfs files report size 0: read until end of file */
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return lm_fail(err, "/proc/meminfo: cannot open: %s (set LEMMA_MEM_AVAILABLE)", strerror(errno));
    char text[16384];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    return lm_meminfo_parse(text, "/proc/meminfo", mi, err);
}

int lm_memplan_check(const lm_memplan *p, const char *dir, const lm_meminfo *mi, lm_error *err) {
    if (p->total_bytes <= mi->available) return 0;
    char need[32], w[32], c[32], b[32], a[32];
    lm_human_bytes(p->total_bytes, need, sizeof need);
    lm_human_bytes(p->weight_bytes, w, sizeof w);
    lm_human_bytes(mi->available, a, sizeof a);
    if (p->train_bytes > 0)
        return lm_fail(err, "%s needs %s (weights %s + parameters, gradients and AdamW moments %s) but %s is "
                       "available (%s)", dir, need, w, lm_human_bytes(p->train_bytes, c, sizeof c), a, mi->source);
    return lm_fail(err, "%s needs %s (weights %s + cache %s for %lld tokens + buffers %s) but %s is available (%s)",
                   dir, need, w, lm_human_bytes(p->cache_bytes, c, sizeof c), (long long)p->cache_tokens,
                   lm_human_bytes(p->buffer_bytes, b, sizeof b), a, mi->source);
}
