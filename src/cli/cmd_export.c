/* cmd_export.c — lemma export: a checkpoint as a GGUF file for llama.cpp
 * (model/export_gguf.h). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/clock.h"
#include "model/export_gguf.h"
#include "model/memplan.h"

typedef struct export_cli {
    const char *dir, *out, *tokenizer;
    lm_export_type type;
    int no_mla;
} export_cli;

static const cli_arg export_args[] = {{"MODEL_DIR", CLI_ARG_AT(export_cli, dir), CLI_REQUIRED},
                                      {"OUT.gguf", CLI_ARG_AT(export_cli, out), CLI_REQUIRED}};
static const cli_opt export_opts[] = {
    {"--type", NULL, CLI_ENUM, CLI_AT(export_cli, type), .choices = "auto|f32|f16|bf16|q8_0", .def = "auto",
     .metavar = "T", .help = "the matrices' type; auto keeps the stored precision (F32 stays\n"
                             "f32, F16 f16, BF16 and FP8 become bf16); q8_0: 8-bit blocks of 32\n"
                             "(a matrix whose rows are not whole blocks: f16). Norms and routers: f32"},
    {"--tokenizer", NULL, CLI_PATH, CLI_AT(export_cli, tokenizer), .note = "MODEL_DIR's, if any", .metavar = "PATH",
     .help = "tokenizer.json (or its folder) written into the GGUF"},
    {"--no-mla", NULL, CLI_FLAG, CLI_AT(export_cli, no_mla),
     .help = "write kv_b as one attn_kv_b (llama.cpp's expanded K/V path)\n"
             "instead of attn_k_b / attn_v_b"},
};
static int export_run(const void *dest);
const cli_spec cli_export_spec = {
    .cmd = "export", .usage = "MODEL_DIR OUT.gguf [--type auto|f32|f16|bf16|q8_0] [--tokenizer PATH] [--no-mla]",
    .about = "Writes the checkpoint as a GGUF file in llama.cpp's deepseek2 layout (the MLA\n"
             "attn_k_b / attn_v_b split, stacked experts, its metadata keys and the tokenizer),\n"
             "atomically. An existing OUT.gguf is replaced only when lemma export wrote it.",
    CLI_ARGS(export_args), CLI_OPTS(export_opts), .size = sizeof(export_cli), .run = export_run,
};

static int export_run(const void *dest) {
    const export_cli *o = dest;
    struct stat st;
    if (!lstat(o->out, &st) && S_ISREG(st.st_mode) && !lm_export_made_by_lemma(o->out)) {
        fprintf(stderr, "lemma export: %s exists and was not written by lemma export (remove it first)\n", o->out);
        return 1;
    }
    double t0 = lm_now_s();
    lm_export_opts eo = {.type = o->type, .no_mla = o->no_mla, .tokenizer = o->tokenizer};
    lm_export_result r;
    lm_error err;
    if (lm_export_gguf(o->dir, o->out, &eo, &r, &err)) {
        fprintf(stderr, "lemma export: %s\n", err.msg);
        return 1;
    }
    if (r.warning[0]) fprintf(stderr, "lemma export: warning: %s\n", r.warning);
    char b[32];
    fprintf(stderr, "wrote %s: %lld tensors (%s", o->out, (long long)r.tensors, r.type);
    if (r.f16_fallbacks)
        fprintf(stderr, "; %lld with rows not a multiple of 32 in %s", (long long)r.f16_fallbacks, r.fallback_type);
    fprintf(stderr, "), %lld keys, %s tokenizer, %s in %.2f s\n", (long long)r.keys,
            r.tokenizer ? "the model's" : "a synthetic", lm_human_bytes((double)r.bytes, b, sizeof b),
            lm_now_s() - t0);
    return 0;
}
