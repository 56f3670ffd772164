/* cmd_init.c — `lemma init CONFIG.json --out DIR`: a checkpoint with random
 * weights (model/init.h) for tests, benchmarks and training from scratch. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/fileio.h"
#include "model/config.h"
#include "model/init.h"

static int exists(const char *dir, const char *file) {
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0;
}

int cmd_init(int argc, char **argv) {
    args a = {argc, argv, 1, "init", 0};
    const char *cfg_path = NULL, *out = NULL, *dtype_s = NULL, *v;
    int64_t seed = 0, threads = args_default_threads();
    double std = 0;
    int force = 0;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma init CONFIG.json --out DIR [--seed 0] [--dtype f32|bf16|fp8] [--std X]\n"
                   "  Writes a Hugging Face model directory with random weights: DIR/config.json (CONFIG\n"
                   "  verbatim; for fp8 with a quantization_config added) and DIR/model.safetensors.\n"
                   "  Linears and embeddings ~ N(0, std), norms 1, e_score_correction_bias 0. Each value\n"
                   "  is a pure function of (seed, tensor name, index): same seed, same bytes.\n"
                   "  --out DIR      output directory (created if absent)\n"
                   "  --seed S       random seed (default 0)\n"
                   "  --dtype D      f32, bf16, or fp8 = E4M3 Linears with 128x128 block scales, BF16\n"
                   "                 embedding/head/norms/gate as released DeepSeek-V3 (default: fp8 when\n"
                   "                 CONFIG has an fp8 quantization_config, else f32)\n"
                   "  --std X        standard deviation (default: CONFIG's initializer_range, else 0.02)\n"
                   "  --threads N    worker threads (default: all cores; never changes the bytes)\n"
                   "  --force        overwrite an existing checkpoint in DIR\n");
            return 0;
        } else if (args_opt(&a, "--out", "-o", &v)) {
            out = v;
        } else if (args_opt(&a, "--seed", NULL, &v)) {
            args_int(&a, "--seed", v, 0, INT64_MAX, &seed);
        } else if (args_opt(&a, "--dtype", NULL, &v)) {
            dtype_s = v;
        } else if (args_opt(&a, "--std", NULL, &v)) {
            args_double(&a, "--std", v, 1e-12, 100, &std);
        } else if (args_opt(&a, "--threads", "-t", &v)) {
            args_int(&a, "--threads", v, 1, 1024, &threads);
        } else if (args_opt(&a, "--force", NULL, NULL)) {
            force = 1;
        } else if (argv[a.i][0] == '-') {
            fprintf(stderr, "lemma init: unknown option '%s' (see --help)\n", argv[a.i]);
            return 2;
        } else if (!cfg_path) {
            cfg_path = argv[a.i];
        } else {
            fprintf(stderr, "lemma init: unexpected argument '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (a.bad) return 2;
    if (!cfg_path || !out) {
        fprintf(stderr, "lemma init: needs CONFIG.json and --out DIR\n");
        return 2;
    }
    lm_init_opts o = lm_init_opts_default();
    o.seed = (uint64_t)seed;
    o.std = std;
    lm_error err;
    char *text = NULL;
    size_t len = 0;
    lm_config cfg;
    if (lm_read_file(cfg_path, 16u << 20, &text, &len, &err) || lm_config_parse(text, len, cfg_path, &cfg, &err)) {
        fprintf(stderr, "lemma init: %s\n", err.msg);
        free(text);
        return 1;
    }
    if (!dtype_s) o.dtype = cfg.fp8_block_quant ? LM_INIT_FP8 : LM_INIT_F32;
    else if (lm_init_dtype_parse(dtype_s, &o.dtype)) {
        fprintf(stderr, "lemma init: --dtype '%s': expected f32, bf16 or fp8\n", dtype_s);
        free(text);
        return 2;
    }
    if (exists(out, "model.safetensors.index.json") || (!force && exists(out, "model.safetensors"))) {
        fprintf(stderr, "lemma init: %s already holds a checkpoint (%s); %s\n", out,
                exists(out, "model.safetensors.index.json") ? "sharded" : "model.safetensors",
                exists(out, "model.safetensors.index.json") ? "remove it first" : "use --force to overwrite it");
        free(text);
        return 1;
    }
    lm_pool *pool = lm_pool_create_err((int)threads, &err);
    if (!pool) {
        fprintf(stderr, "lemma init: %s\n", err.msg);
        free(text);
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = lm_model_init_random(&cfg, text, len, out, &o, pool, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    lm_pool_free(pool);
    free(text);
    if (rc) {
        fprintf(stderr, "lemma init: %s\n", err.msg);
        return 1;
    }
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    double mib = stat(p, &st) ? 0 : st.st_size / 1048576.0;
    fprintf(stderr, "lemma init: wrote %s (%s, seed %lld, %.1f MiB) in %.2f s\n", out, lm_init_dtype_name(o.dtype),
            (long long)seed, mib, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}
