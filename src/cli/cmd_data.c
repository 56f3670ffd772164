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

#include "cli/args.h"
#include "cli/commands.h"
#include "data/shards.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain
 * line every 10% (or 30 s) otherwise. */
typedef struct progress {
    int tty;
    double t0, last_print;
    int last_decile;
} progress;

static int show_progress(void *ctx, const char *phase, int64_t done, int64_t total, int64_t tokens) {
    progress *p = ctx;
    if (strcmp(phase, "tokenize")) return 0;
    double t = now_s(), el = t - p->t0;
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
        return 1;
    }
    printf("tokenizer sha256 %s, vocab %d, bos %d, eos %d\n", lm_data_tokenizer_sha256(d), lm_data_vocab_size(d),
           lm_data_bos(d), lm_data_eos(d));
    for (int s = 0; s < 2; s++)
        printf("%-5s %lld tokens, %lld documents, %d shards\n", s ? "val" : "train", (long long)lm_data_tokens(d, s),
               (long long)lm_data_documents(d, s), lm_data_shard_count(d, s));
    lm_data_close(d);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: lemma data CORPUS... --tokenizer DIR --out DATA_DIR [options]\n"
            "       lemma data --info DATA_DIR\n"
            "  Tokenises text files into uint32 token shards (train-*.bin, val-*.bin) and\n"
            "  DATA_DIR/index.json. Each document becomes [BOS] tokens EOS.\n"
            "  Documents: a *.jsonl file has one record per line, {\"text\": ...} or\n"
            "  {\"segments\": [{\"text\": ..., \"loss\": true|false}, ...]} (loss only on the\n"
            "  segments marked true: the SFT form); other files are plain text cut by --doc-sep.\n"
            "  --tokenizer DIR      tokenizer directory (tokenizer.json) or the file itself\n"
            "  --out DATA_DIR       output directory (created if absent)\n"
            "  --doc-sep MODE       file: one document per file (default); line: every line;\n"
            "                       blank: paragraphs separated by blank lines\n"
            "  --val-fraction F     share of documents for validation, 0..0.5 (default 0.01);\n"
            "                       chosen per document by SHA-256(seed, content)\n"
            "  --seed S             seed of the split rule (default 0)\n"
            "  --shard-tokens N     start a new shard after N tokens (default 16777216)\n"
            "  --no-bos             no BOS before documents (default: BOS when the tokenizer has one)\n"
            "  --document-windows   training windows start at a document's BOS (SFT data: every\n"
            "                       example is seen from its prompt on)\n"
            "  --quiet              no progress on stderr\n");
}

int cmd_data(int argc, char **argv) {
    args a = {argc, argv, 1, "data", 0};
    const char *tok = NULL, *out = NULL, *info = NULL, *v;
    lm_data_opts o;
    lm_data_opts_default(&o);
    int quiet = 0;
    const char **files = calloc((size_t)argc, sizeof *files);
    int nfiles = 0;
    if (!files) return 1;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            usage(stdout);
            free(files);
            return 0;
        } else if (args_opt(&a, "--tokenizer", NULL, &v)) {
            tok = v;
        } else if (args_opt(&a, "--out", "-o", &v)) {
            out = v;
        } else if (args_opt(&a, "--info", NULL, &v)) {
            info = v;
        } else if (args_opt(&a, "--val-fraction", NULL, &v)) {
            args_double(&a, "--val-fraction", v, 0, 0.5, &o.val_fraction);
        } else if (args_opt(&a, "--seed", NULL, &v)) {
            int64_t s = 0;
            if (!args_int(&a, "--seed", v, 0, INT64_MAX, &s)) o.seed = (uint64_t)s;
        } else if (args_opt(&a, "--shard-tokens", NULL, &v)) {
            args_int(&a, "--shard-tokens", v, 1, (int64_t)1 << 32, &o.shard_tokens);
        } else if (args_opt(&a, "--doc-sep", NULL, &v)) {
            if (v && (o.doc_sep = lm_data_doc_sep_parse(v)) < 0) {
                fprintf(stderr, "lemma data: --doc-sep '%s': expected file, line or blank\n", v);
                a.bad = 1;
            }
        } else if (args_opt(&a, "--no-bos", NULL, NULL)) {
            o.bos = 0;
        } else if (args_opt(&a, "--document-windows", NULL, NULL)) {
            o.doc_windows = 1;
        } else if (args_opt(&a, "--quiet", "-q", NULL)) {
            quiet = 1;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            fprintf(stderr, "lemma data: unknown option '%s'\n", argv[a.i]);
            a.bad = 1;
        } else {
            files[nfiles++] = argv[a.i];
        }
    }
    if (a.bad) {
        free(files);
        return 2;
    }
    if (info) {
        free(files);
        return data_info(info);
    }
    if (!nfiles || !tok || !out) {
        fprintf(stderr, "lemma data: %s\n", !nfiles ? "no corpus files given" : !tok ? "--tokenizer DIR is required"
                                                                                  : "--out DATA_DIR is required");
        usage(stderr);
        free(files);
        return 2;
    }
    progress p = {isatty(2), now_s(), 0, -1};
    if (!quiet) {
        o.progress = show_progress;
        o.progress_ctx = &p;
    }
    lm_error err;
    int rc = lm_data_build(files, nfiles, tok, out, &o, &err);
    free(files);
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
