/* main.c — the lemma binary: one tool, many subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"

typedef struct command {
    const char *name;
    const cli_spec *spec;              /* a command with an option table, */
    int (*run)(int argc, char **argv); /* or one with subcommands */
    const char *summary;
} command;

/* Keep sorted by topic; one line per command. */
static const command commands[] = {
    {"info", &cli_info_spec, NULL, "MODEL_DIR: architecture, parameters, dtypes, memory"},
    {"logits", &cli_logits_spec, NULL, "MODEL_DIR --ids 1,5,9 [--out FILE]: full forward, logits of every position"},
    {"generate", &cli_generate_spec, NULL, "MODEL_DIR (--ids 1,5,9 | -p TEXT) -n 32: KV-cached generation"},
    {"chat", &cli_chat_spec, NULL, "MODEL_DIR [--system TEXT] [--think]: interactive multi-turn chat"},
    {"init", &cli_init_spec, NULL, "CONFIG.json --out DIR [--seed S --dtype f32|bf16|fp8]: random-weight checkpoint"},
    {"quantize", &cli_quantize_spec, NULL, "MODEL_DIR OUT_DIR --type q8: int8 weights with F16 scales per 32"},
    {"train", &cli_train_spec, NULL, "--config CONFIG.json --data DATA_DIR --out RUN_DIR | --resume RUN_DIR: train"},
    {"export", &cli_export_spec, NULL, "MODEL_DIR OUT.gguf [--type f32|f16|bf16|q8_0]: GGUF for llama.cpp (deepseek2)"},
    {"bench", &cli_bench_spec, NULL, "MODEL_DIR [--prompt 512 --gen 128]: prefill/decode tokens/s as JSON"},
    {"tokenize", &cli_tokenize_spec, NULL, "DIR TEXT: token ids (--pieces, --jsonl FILE, --no-special)"},
    {"detokenize", &cli_detokenize_spec, NULL, "DIR 3,1402,22: text"},
    {"tokenizer", NULL, cmd_tokenizer, "train FILES... --vocab N --out DIR: train a byte-level BPE tokenizer"},
    {"data", &cli_data_spec, NULL, "CORPUS... --tokenizer DIR --out DATA_DIR: token shards + index for training"},
    {"build", &cli_build_spec, NULL, "RECIPE.json [--out DIR] [--check]: run a recipe's stages, hashes in lemma.lock"},
    {"plot", &cli_plot_spec, NULL, "RUN_DIR [--out FILE.svg]: loss / lr / tokens/s / expert-load charts as SVG"},
    {"tasks", NULL, cmd_tasks, "list | gen DOMAINS --n N --out FILE | corrupt FILE --out FILE: theorem problem sets"},
    {"check", &cli_check_spec, NULL, "FILE.jsonl: exact scores of the answers to theorem-domain questions"},
    {"prove", &cli_prove_spec, NULL,
     "PROBLEMS (--model DIR | --api-base URL --api-model NAME) --out DIR: generate, verify, refine"},
    {"serve", &cli_serve_spec, NULL, "MODEL_DIR [--port 8080]: OpenAI-compatible HTTP server (chat, completions, models)"},
    {"verify", &cli_verify_spec, NULL, "PROOFS.jsonl (--model DIR | --api-base ...) --out DIR: verify given proofs"},
    {"eval", &cli_eval_spec, NULL,
     "MODEL_DIR --problems FILE --out DIR: pass@1, best-of-N, verifier agreement by the checker"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lemma <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'lemma <command> --help' describes each command's options.\n");
}

/* Output on stdout is only delivered once it is flushed and closed without
 * error: `lemma generate ... > full-disk/file` must not exit 0 with 4 KiB
 * written. stdio keeps the bytes a failed write could not deliver, so the
 * final fflush fails again and errno says why. A command that failed for
 * another reason has said so; this adds a line only to a command that
 * succeeded. */
static int finish_stdout(const char *cmd, int rc) {
    errno = 0;
    int failed = fflush(stdout) != 0;
    int why = errno;
    failed |= ferror(stdout) != 0;
    errno = 0;
    if (fclose(stdout) != 0 && !failed) {
        failed = 1;
        why = errno;
    }
    if (!failed || rc != 0) return rc;
    if (!why) why = stdout_errno();
    fprintf(stderr, "%s%s: cannot write to stdout: %s\n", cmd ? "lemma " : "lemma", cmd ? cmd : "",
            why ? strerror(why) : "write error");
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish_stdout(NULL, 0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            const command *c = &commands[i];
            return finish_stdout(c->name, c->spec ? cli_run(c->spec, argc - 1, argv + 1) : c->run(argc - 1, argv + 1));
        }
    fprintf(stderr, "lemma: unknown command '%s' (lemma --help lists them)\n", argv[1]);
    return 2;
}
