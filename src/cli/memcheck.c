/* memcheck.c — see memcheck.h. */
#include "cli/memcheck.h"

#include <stdio.h>
#include <unistd.h>

int cli_memory_check(const char *cmd, const char *dir, const lm_memplan_req *req, int skip) {
    if (skip) return 0;
    lm_memplan p;
    lm_meminfo mi;
    lm_error err;
    if (lm_meminfo_read(&mi, &err)) {
        fprintf(stderr, "lemma %s: %s\n", cmd, err.msg);
        return 1;
    }
    /* a checkpoint the loader will refuse gets the loader's message, not a plan */
    if (lm_memplan_read(dir, &p, &err) || p.mismatched) return 0;
    lm_memplan_size(&p, req);
    if (!lm_memplan_check(&p, dir, &mi, &err)) return 0;
    fprintf(stderr, "lemma %s: %s; pass --no-memory-check to load anyway\n", cmd, err.msg);
    return 1;
}

int64_t cli_engine_cache_tokens(const char *dir, int64_t max_ctx, int64_t max_seqs, lm_attn_mode attn) {
    lm_config cfg;
    lm_error err;
    if (lm_config_load(dir, &cfg, &err)) return max_ctx * max_seqs;
    if (max_ctx <= 0) max_ctx = cfg.max_position_embeddings;
    double per_token = (double)lm_kv_floats_per_token(&cfg, attn) * (double)cfg.num_hidden_layers * sizeof(float);
    double quarter = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 4;
    double want = (double)max_seqs * (double)max_ctx;
    if (per_token > 0 && want * per_token > quarter) want = quarter / per_token;
    return want < (double)max_ctx ? max_ctx : (int64_t)want;
}
