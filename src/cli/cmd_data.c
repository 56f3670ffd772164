/* cmd_data.c — lemma data: text files -> token shards + index (src/data/shards.h).
 *
 *   lemma data CORPUS... --tokenizer DIR --out DATA_DIR [--val-fraction 0.01]
 *              [--shard-tokens N] [--seed S] [--doc-sep file|line|blank] [--no-bos]
 *   lemma data --info DATA_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/clock.h"
#include "core/stop.h"
#include "data/shards.h"

/* Progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain
 * line every 10% (or 30 s) otherwise. */
typedef struct progress {
    int tty;
    double t0, last_print;
    int last_decile;
} progress;

static void show_notice(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "lemma data: %s\n", msg);
}

static int show_progress(void *ctx, const char *phase, int64_t done, int64_t total, int64_t tokens) {
    progress *p = ctx;
    if (strcmp(phase, "tokenize")) return 0;
    double t = lm_now_s(), el = t - p->t0;
    double frac = total > 0 ? (double)done / (double)total : 1;
    double mbps = el > 0 ? done / el / 1e6 : 0;
    double eta = frac > 0 && frac < 1 ? el * (1 - frac) / frac : 0;
    if (p->tty) {
        if (t - p->last_print < 0.1 && done < total) return 0;
        p->last_print = t;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[Kdata [%s] %3.0f%%  %.1f/%.1f MB  %.2f MB/s  %lld tokens  ETA %.0fs", bar, frac * 100,
                done / 1e6, total / 1e6, mbps, (long long)tokens, eta);
        if (done >= total) fputc('\n', stderr);
    } else {
        int dec = (int)(frac * 10);
        if (dec == p->last_decile && t - p->last_print < 30 && done < total) return 0;
        if (dec == p->last_decile && done >= total) return 0;
        p->last_decile = dec;
        p->last_print = t;
        fprintf(stderr, "data: %3.0f%% %.1f/%.1f MB, %.2f MB/s, %lld tokens, ETA %.0fs\n", frac * 100, done / 1e6,
                total / 1e6, mbps, (long long)tokens, eta);
    }
    return 0;
}

static int data_info(const char *dir) {
    lm_error err;
    lm_data *d = lm_data_open(dir, &err);
    if (!d) {
        fprintf(stderr, "lemma data: %s\n", err.msg);
        return lm_stop_requested() ? 130 : 1;
    }
    printf("tokenizer sha256 %s, vocab %d, bos %d, eos %d\n", lm_data_tokenizer_sha256(d), lm_data_vocab_size(d),
           lm_data_bos(d), lm_data_eos(d));
    for (int s = 0; s < 2; s++)
        printf("%-5s %lld tokens, %lld documents, %d shards\n", s ? "val" : "train", (long long)lm_data_tokens(d, s),
               (long long)lm_data_documents(d, s), lm_data_shard_count(d, s));
    lm_data_close(d);
    return 0;
}

typedef struct data_cli {
    cli_list files;
    const char *tok, *out, *info;
    lm_data_opts o;
    int quiet;
} data_cli;

static const cli_arg data_args[] = {{"CORPUS...", CLI_ARG_AT(data_cli, files), CLI_REQUIRED, .unless = "--info"}};
static const cli_opt data_opts[] = {
    {"--tokenizer", NULL, CLI_PATH, CLI_AT(data_cli, tok), .flags = CLI_REQUIRED, .unless = "--info", .metavar = "DIR",
     .help = "tokenizer directory (tokenizer.json) or the file itself"},
    {"--out", "-o", CLI_PATH, CLI_AT(data_cli, out), .flags = CLI_REQUIRED, .unless = "--info", .metavar = "DATA_DIR",
     .help = "output directory (created if absent)"},
    {"--doc-sep", NULL, CLI_ENUM, CLI_AT(data_cli, o.doc_sep), .choices = "file|line|blank", .flags = CLI_SHOW_FIELD,
     .metavar = "MODE",
     .help = "file: one document per file; line: every line;\nblank: paragraphs separated by blank lines"},
    {"--val-fraction", NULL, CLI_REAL, CLI_AT(data_cli, o.val_fraction), .lo = 0, .hi = 0.5, .flags = CLI_SHOW_FIELD,
     .metavar = "F", .help = "share of documents for validation, 0..0.5;\nchosen per document by SHA-256(seed, content)"},
    {"--seed", NULL, CLI_INT, CLI_AT(data_cli, o.seed), .min = 0, .max = INT64_MAX, .flags = CLI_SHOW_FIELD,
     .metavar = "S", .help = "seed of the split rule"},
    {"--shard-tokens", NULL, CLI_INT, CLI_AT(data_cli, o.shard_tokens), .min = 1, .max = (int64_t)1 << 32,
     .flags = CLI_SHOW_FIELD, .metavar = "N", .help = "start a new shard after N tokens"},
    {"--no-bos", NULL, CLI_UNSET, CLI_AT(data_cli, o.bos),
     .help = "no BOS before documents (default: BOS when the tokenizer has one)"},
    {"--document-windows", NULL, CLI_FLAG, CLI_AT(data_cli, o.doc_windows),
     .help = "training windows start at a document's BOS (SFT data: every\nexample is seen from its prompt on)"},
    {"--quiet", "-q", CLI_FLAG, CLI_AT(data_cli, quiet), .help = "no progress on stderr"},
    {"--info", NULL, CLI_PATH, CLI_AT(data_cli, info), .metavar = "DATA_DIR",
     .help = "print what DATA_DIR holds instead of building"},
};
static int data_run(const void *dest);
static void data_defaults(void *dest) { lm_data_opts_default(&((data_cli *)dest)->o); }
const cli_spec cli_data_spec = {
    .cmd = "data", .usage = "CORPUS... --tokenizer DIR --out DATA_DIR [options]\n--info DATA_DIR",
    .about = "Tokenises text files into uint32 token shards (train-*.bin, val-*.bin) and\n"
             "DATA_DIR/index.json. Each document becomes [BOS] tokens EOS.\n"
             "Documents: a *.jsonl file has one record per line, {\"text\": ...} or\n"
             "{\"segments\": [{\"text\": ..., \"loss\": true|false}, ...]} (loss only on the\n"
             "segments marked true: the SFT form); other files are plain text cut by --doc-sep.",
    CLI_ARGS(data_args), CLI_OPTS(data_opts), .size = sizeof(data_cli),
    .run = data_run, .init = data_defaults,
};

static int data_run(const void *dest) {
    data_cli c = *(const data_cli *)dest;
    if (c.info) return data_info(c.info);
    lm_data_opts o = c.o;
    int quiet = c.quiet;
    progress p = {isatty(2), lm_now_s(), 0, -1};
    if (!quiet) {
        o.progress = show_progress;
        o.progress_ctx = &p;
    }
    lm_error err;
    o.notice = show_notice;
    lm_stop_on_signals(); /* Ctrl-C or SIGTERM: stop between documents */
    const char *tok = c.tok, *out = c.out;
    int rc = lm_data_build(c.files.items, c.files.n, tok, out, &o, &err);
    if (rc) {
        if (p.tty && !quiet) fputc('\n', stderr);
        fprintf(stderr, "lemma data: %s\n", err.msg);
        return 1;
    }
    lm_data *d = lm_data_open(out, &err);
    if (!d) {
        fprintf(stderr, "lemma data: reading back %s: %s\n", out, err.msg);
        return 1;
    }
    fprintf(stderr, "lemma data: %s: train %lld tokens (%lld documents), val %lld tokens (%lld documents)\n", out,
            (long long)lm_data_tokens(d, LM_SPLIT_TRAIN), (long long)lm_data_documents(d, LM_SPLIT_TRAIN),
            (long long)lm_data_tokens(d, LM_SPLIT_VAL), (long long)lm_data_documents(d, LM_SPLIT_VAL));
    lm_data_close(d);
    return 0;
}
