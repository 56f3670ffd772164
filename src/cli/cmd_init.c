/* cmd_init.c — `lemma init CONFIG.json --out DIR`: a checkpoint with random
 * weights (model/init.h) for tests, benchmarks and training from scratch. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "formats/safetensors.h"
#include "core/fileio.h"
#include "model/config.h"
#include "model/init.h"

static int exists(const char *dir, const char *file) {
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0;
}

typedef struct init_cli {
    const char *cfg_path, *out;
    int64_t seed;
    int dtype; /* lm_init_dtype, or -1: from CONFIG */
    double std;
    int threads, force;
} init_cli;

static const cli_arg init_args[] = {{"CONFIG.json", CLI_ARG_AT(init_cli, cfg_path), CLI_REQUIRED}};
static const cli_opt init_opts[] = {
    {"--out", "-o", CLI_PATH, CLI_AT(init_cli, out), .flags = CLI_REQUIRED, .metavar = "DIR",
     .help = "output directory (created if absent)"},
    {"--seed", NULL, CLI_INT, CLI_AT(init_cli, seed), .min = 0, .max = INT64_MAX, .def = "0", .metavar = "S",
     .help = "random seed"},
    {"--dtype", NULL, CLI_ENUM, CLI_AT(init_cli, dtype), .choices = "f32/F32|bf16/BF16|fp8/FP8/f8_e4m3",
     .note = "fp8 when CONFIG has an fp8 quantization_config, else f32", .metavar = "D",
     .help = "f32, bf16, or fp8 = E4M3 Linears with 128x128 block scales, BF16\n"
             "embedding/head/norms/gate as released DeepSeek-V3"},
    {"--std", NULL, CLI_REAL, CLI_AT(init_cli, std), .lo = 1e-12, .hi = 100, .note = "CONFIG's initializer_range, else 0.02",
     .metavar = "X", .help = "standard deviation"},
    CLI_OPT_THREADS(init_cli, threads, "worker threads (never changes the bytes)"),
    {"--force", NULL, CLI_FLAG, CLI_AT(init_cli, force), .help = "overwrite an existing checkpoint in DIR"},
};
static int init_run(const void *dest);
static void init_defaults(void *dest) { ((init_cli *)dest)->dtype = -1; }
const cli_spec cli_init_spec = {
    .cmd = "init", .usage = "CONFIG.json --out DIR [--seed 0] [--dtype f32|bf16|fp8] [--std X]",
    .about = "Writes a Hugging Face model directory with random weights: DIR/config.json (CONFIG\n"
             "verbatim; for fp8 with a quantization_config added) and DIR/model.safetensors.\n"
             "Linears and embeddings ~ N(0, std), norms 1, e_score_correction_bias 0. Each value\n"
             "is a pure function of (seed, tensor name, index): same seed, same bytes.",
    CLI_ARGS(init_args), CLI_OPTS(init_opts), .size = sizeof(init_cli),
    .run = init_run, .init = init_defaults,
};

static int init_run(const void *dest) {
    init_cli c = *(const init_cli *)dest;
    const char *cfg_path = c.cfg_path, *out = c.out;
    int64_t seed = c.seed, threads = c.threads;
    double std = c.std;
    int force = c.force;
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
    o.dtype = c.dtype >= 0 ? (lm_init_dtype)c.dtype : cfg.fp8_block_quant ? LM_INIT_FP8 : LM_INIT_F32;
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
