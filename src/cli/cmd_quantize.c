/* cmd_quantize.c — `lemma quantize MODEL_DIR OUT_DIR --type q8`: a
 * checkpoint with Q8 weights (model/quantize.h), which every command loads. */
#include <stdio.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "model/quantize.h"

typedef struct quantize_cli {
    const char *in, *out;
    int type; /* 0: q8 */
} quantize_cli;

static const cli_arg quantize_args[] = {
    {"MODEL_DIR", CLI_ARG_AT(quantize_cli, in), CLI_REQUIRED},
    {"OUT_DIR", CLI_ARG_AT(quantize_cli, out), CLI_REQUIRED},
};
static const cli_opt quantize_opts[] = {
    {"--type", NULL, CLI_ENUM, CLI_AT(quantize_cli, type), .choices = "q8/Q8/q8_0", .def = "q8", .metavar = "T",
     .help = "q8: int8 weights, one F16 scale per 32 (llama.cpp's Q8_0 blocks)"},
};
static int quantize_run(const void *dest);
const cli_spec cli_quantize_spec = {
    .cmd = "quantize", .usage = "MODEL_DIR OUT_DIR [--type q8]",
    .about = "Writes OUT_DIR/model.safetensors with every projection, expert, embedding and head\n"
             "as I8 NAME plus F16 NAME_q8_scale [rows, ceil(cols/32)] (w = q * scale, exact in f32),\n"
             "the router, norms and biases unchanged, and copies config and tokenizer files.",
    CLI_ARGS(quantize_args), CLI_OPTS(quantize_opts), .size = sizeof(quantize_cli), .run = quantize_run,
};

static int quantize_run(const void *dest) {
    const quantize_cli *c = (const quantize_cli *)dest;
    lm_error err;
    lm_quantize_stats st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lm_quantize_q8(c->in, c->out, &st, &err)) {
        fprintf(stderr, "lemma quantize: %s\n", err.msg);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "lemma quantize: wrote %s (q8: %lld matrices, %.1fM weights; %.1f MiB -> %.1f MiB) in %.2f s\n",
            c->out, (long long)st.matrices, st.params / 1e6, st.bytes_in / 1048576.0, st.bytes_out / 1048576.0,
            (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}
