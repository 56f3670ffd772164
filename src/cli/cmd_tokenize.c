/* cmd_tokenize.c — lemma tokenize / detokenize / tokenizer (train, info).
 *
 *   lemma tokenize DIR "text" [--pieces] [--no-special] [--bos]
 *   lemma tokenize DIR --file F            text from a file ('-' for stdin)
 *   lemma tokenize DIR --jsonl FILE        one {"text":..} or {"bytes_hex":..} per line
 *                                          -> one {"ids":[..]} or {"error":".."} per line
 *   lemma detokenize DIR 3,1402,22 [--skip-special]
 *   lemma tokenizer info DIR
 *   lemma tokenizer train FILES... --vocab N --out DIR
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/stop.h"
#include "core/utf8.h"
#include "formats/json.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

/* Opens path ('-' = stdin) for reading; a directory is refused by name
 * (fopen accepts one, and the first read would fail with a bare EISDIR). */
static FILE *open_input(const char *path, lm_error *err) {
    if (!strcmp(path, "-")) return stdin;
    FILE *f = fopen(path, "rb");
    if (!f) {
        lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        lm_fail(err, "%s: is a directory, expected a file", path);
        return NULL;
    }
    return f;
}

static int read_all(const char *path, lm_text *out, lm_error *err) {
    FILE *f = open_input(path, err);
    if (!f) return -1;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (lm_text_append(out, buf, n)) {
            if (f != stdin) fclose(f);
            return lm_fail(err, "%s: out of memory", path);
        }
    int bad = ferror(f), why = errno;
    if (f != stdin) fclose(f);
    if (bad) return lm_fail(err, "%s: cannot read: %s", path, strerror(why));
    if (!out->data) lm_text_append(out, "", 0);
    return 0;
}

/* Prints a token's bytes readably: printable UTF-8 as is, the rest escaped. */
static void print_piece(FILE *f, const char *s, size_t n) {
    lm_text t = {0};
    lm_utf8_sanitize(s, n, &t);
    int valid = lm_utf8_valid(s, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') fputs("\\\\", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !valid)) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    lm_text_free(&t);
}

static void print_ids_line(FILE *f, const lm_ids *ids, size_t from) {
    for (size_t i = from; i < ids->n; i++) fprintf(f, "%s%d", i > from ? "," : "", ids->ids[i]);
    fputc('\n', f);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 32;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static void jsonl_error(FILE *f, const char *msg) {
    size_t cap = strlen(msg) * 6 + 32, pos = 0;
    char *buf = malloc(cap);
    if (!buf) { fputs("{\"error\":\"out of memory\"}\n", f); return; }
    json_write_string(buf, cap, &pos, msg, strlen(msg));
    fprintf(f, "{\"error\":%s}\n", buf);
    free(buf);
}

/* One JSONL line -> one output line. */
static void jsonl_line(const lm_tokenizer *tok, const char *line, size_t len, size_t lineno, int flags, int bos,
                       lm_ids *ids, FILE *out) {
    lm_error err;
    char msg[1200];
    json_doc *doc = json_parse(line, len, &err);
    if (!doc) {
        snprintf(msg, sizeof msg, "line %zu: %s", lineno, err.msg);
        jsonl_error(out, msg);
        return;
    }
    const json_value *rec = json_root(doc);
    const json_value *hx = json_get(rec, "bytes_hex"), *tx = json_get(rec, "text");
    char *bytes = NULL;
    const char *in = NULL;
    size_t n = 0;
    if (hx && hx->type == JSON_STRING) {
        bytes = malloc(hx->len / 2 + 1);
        size_t bad_at = hx->len;
        for (size_t i = 0; i < hx->len && bad_at == hx->len; i++)
            if (hexval((unsigned char)hx->str[i]) < 0) bad_at = i;
        if (bad_at < hx->len) {
            unsigned char c = (unsigned char)hx->str[bad_at];
            char shown[8];
            snprintf(shown, sizeof shown, c > 0x20 && c < 0x7f ? "'%c'" : "\\x%02x", c);
            snprintf(msg, sizeof msg, "line %zu: byte %zu: \"bytes_hex\": character %zu (%s) is not a hex digit",
                     lineno, hx->offset, bad_at, shown);
        } else if (hx->len % 2) {
            snprintf(msg, sizeof msg, "line %zu: byte %zu: \"bytes_hex\": %zu hex digits, expected an even number",
                     lineno, hx->offset, hx->len);
        } else if (!bytes) {
            snprintf(msg, sizeof msg, "line %zu: out of memory", lineno);
        } else {
            for (size_t i = 0; i < hx->len; i += 2)
                bytes[i / 2] = (char)(hexval((unsigned char)hx->str[i]) * 16 + hexval((unsigned char)hx->str[i + 1]));
            msg[0] = 0;
        }
        if (msg[0]) {
            jsonl_error(out, msg);
            free(bytes);
            json_free(doc);
            return;
        }
        in = bytes;
        n = hx->len / 2;
    } else if (tx && tx->type == JSON_STRING) {
        in = tx->str;
        n = tx->len;
    } else {
        snprintf(msg, sizeof msg, "line %zu: expected an object with a \"text\" or \"bytes_hex\" string", lineno);
        jsonl_error(out, msg);
        json_free(doc);
        return;
    }
    ids->n = 0;
    if (bos && lm_tokenizer_bos(tok) >= 0) lm_ids_push(ids, lm_tokenizer_bos(tok));
    if (lm_tokenizer_encode(tok, in, n, flags, ids, &err)) {
        snprintf(msg, sizeof msg, "line %zu: %s", lineno, err.msg);
        jsonl_error(out, msg);
    } else {
        fputs("{\"ids\":[", out);
        for (size_t i = 0; i < ids->n; i++) fprintf(out, i ? ",%d" : "%d", ids->ids[i]);
        fputs("]}\n", out);
    }
    free(bytes);
    json_free(doc);
}

static int run_jsonl(const lm_tokenizer *tok, const char *path, int flags, int bos) {
    lm_error err;
    FILE *f = open_input(path, &err);
    if (!f) {
        fprintf(stderr, "lemma tokenize: %s\n", err.msg);
        return 1;
    }
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    lm_ids ids = {0};
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        jsonl_line(tok, line, len, lineno, flags, bos, &ids, stdout);
        if (ferror(stdout)) break; /* nobody gets the rest: stop now, main() says why */
    }
    int read_failed = ferror(f) && !ferror(stdout), why = errno;
    free(line);
    lm_ids_free(&ids);
    if (f != stdin) fclose(f);
    if (read_failed) {
        fprintf(stderr, "lemma tokenize: %s: cannot read: %s\n", path, strerror(why));
        return 1;
    }
    return 0;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Encodes the text `runs` times; prints one JSON object. */
static int run_bench(const lm_tokenizer *tok, const char *in, size_t n, int flags, int runs, double load_s) {
    double *mbs = calloc((size_t)runs, sizeof *mbs);
    lm_ids ids = {0};
    lm_error err;
    if (!mbs) return 1;
    for (int r = 0; r < runs; r++) {
        ids.n = 0;
        double t0 = cpu_seconds();
        if (lm_tokenizer_encode(tok, in, n, flags, &ids, &err)) {
            fprintf(stderr, "lemma tokenize: %s\n", err.msg);
            free(mbs);
            lm_ids_free(&ids);
            return 1;
        }
        double dt = cpu_seconds() - t0;
        mbs[r] = (double)n / 1e6 / (dt > 1e-9 ? dt : 1e-9);
    }
    double first = mbs[0];
    qsort(mbs, (size_t)runs, sizeof *mbs, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bytes\":%zu,\"tokens\":%zu,\"runs\":%d,\"mb_s_median\":%.3f,\"mb_s_first\":%.3f,"
           "\"load_ms\":%.1f,\"max_rss_mb\":%.1f}\n",
           n, ids.n, runs, mbs[runs / 2], first, load_s * 1e3, (double)ru.ru_maxrss / 1024.0);
    free(mbs);
    lm_ids_free(&ids);
    return 0;
}

typedef struct tokenize_cli {
    const char *dir, *text, *file, *jsonl;
    int pieces, no_special, bos, count, bench;
} tokenize_cli;

static const cli_arg tokenize_args[] = {
    {"DIR_OR_TOKENIZER_JSON", CLI_ARG_AT(tokenize_cli, dir), CLI_REQUIRED},
    {"TEXT", CLI_ARG_AT(tokenize_cli, text)},
};
static const cli_opt tokenize_opts[] = {
    {"--file", NULL, CLI_PATH, CLI_AT(tokenize_cli, file), .metavar = "F",
     .help = "encode the contents of F ('-' = stdin) instead of TEXT"},
    {"--jsonl", NULL, CLI_PATH, CLI_AT(tokenize_cli, jsonl), .metavar = "F",
     .help = "one JSON object per line with \"text\" (or \"bytes_hex\" for raw bytes);\n"
             "writes {\"ids\":[...]} per line, {\"error\":\"...\"} for a bad line"},
    {"--pieces", NULL, CLI_FLAG, CLI_AT(tokenize_cli, pieces), .help = "one line per token: id, then its bytes"},
    {"--no-special", NULL, CLI_FLAG, CLI_AT(tokenize_cli, no_special),
     .help = "encode added/special token text as plain text (default: match them)"},
    {"--bos", NULL, CLI_FLAG, CLI_AT(tokenize_cli, bos), .help = "prepend the BOS id"},
    {"--count", NULL, CLI_FLAG, CLI_AT(tokenize_cli, count), .help = "print only the number of tokens"},
    {"--bench", NULL, CLI_INT, CLI_AT(tokenize_cli, bench), .min = 1, .max = 1000000, .metavar = "N",
     .help = "encode N times (one thread); print JSON with CPU-time MB/s (median),\n"
             "tokens, load time and peak memory instead of the ids"},
};
static int tokenize_run(const void *dest);
const cli_spec cli_tokenize_spec = {
    .cmd = "tokenize", .usage = "DIR_OR_TOKENIZER_JSON [TEXT] [options]",
    .about = "Encodes TEXT (or --file, or every line of --jsonl) with the tokenizer.",
    CLI_ARGS(tokenize_args), CLI_OPTS(tokenize_opts),
    .footer = "Output (default): the ids, comma-separated, on one line.", .size = sizeof(tokenize_cli),
    .flags = CLI_DASH_ARGS, .run = tokenize_run,
};

static int tokenize_run(const void *dest) {
    tokenize_cli c = *(const tokenize_cli *)dest;
    if (!c.text && !c.file && !c.jsonl) return cli_fail(&cli_tokenize_spec, "missing TEXT, --file F or --jsonl F");
    const char *dir = c.dir, *text = c.text, *file = c.file, *jsonl = c.jsonl;
    int pieces = c.pieces, flags = c.no_special ? 0 : LM_TOK_SPECIAL, bos = c.bos, count = c.count, bench = c.bench;
    lm_error err;
    double t0 = cpu_seconds();
    lm_tokenizer *tok = lm_tokenizer_load(dir, &err);
    double load_s = cpu_seconds() - t0;
    if (!tok) {
        fprintf(stderr, "lemma tokenize: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (jsonl) {
        rc = run_jsonl(tok, jsonl, flags, bos);
        lm_tokenizer_free(tok);
        return rc;
    }
    lm_text buf = {0};
    const char *in = text;
    size_t n = text ? strlen(text) : 0;
    if (file) {
        if (read_all(file, &buf, &err)) {
            fprintf(stderr, "lemma tokenize: %s\n", err.msg);
            lm_tokenizer_free(tok);
            return 1;
        }
        in = buf.data;
        n = buf.len;
    }
    lm_ids ids = {0};
    if (bench) {
        rc = run_bench(tok, in, n, flags, bench, load_s);
        lm_text_free(&buf);
        lm_tokenizer_free(tok);
        return rc;
    }
    if (bos && lm_tokenizer_bos(tok) >= 0) lm_ids_push(&ids, lm_tokenizer_bos(tok));
    if (lm_tokenizer_encode(tok, in, n, flags, &ids, &err)) {
        fprintf(stderr, "lemma tokenize: %s\n", err.msg);
        rc = 1;
    } else if (count) {
        printf("%zu\n", ids.n);
    } else if (pieces) {
        for (size_t i = 0; i < ids.n; i++) {
            size_t l = 0;
            const char *s = lm_tokenizer_token(tok, ids.ids[i], &l);
            printf("%d\t", ids.ids[i]);
            print_piece(stdout, s, l);
            fputc('\n', stdout);
            if (ferror(stdout)) break; /* main() says why */
        }
    } else {
        print_ids_line(stdout, &ids, 0);
    }
    lm_ids_free(&ids);
    lm_text_free(&buf);
    lm_tokenizer_free(tok);
    return rc;
}

/* Parses "3,1402,22" (commas and/or spaces, or a JSON-ish [..]) into ids. */
static int parse_ids(const char *s, lm_ids *ids, lm_error *err) {
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX)
            return lm_fail(err, "ids: byte %zu: expected a non-negative integer", (size_t)(p - s));
        if (lm_ids_push(ids, (int32_t)v)) return lm_fail(err, "out of memory");
        p = end;
    }
    return 0;
}

typedef struct detokenize_cli {
    const char *dir;
    cli_list ids;
    int skip_special, raw;
} detokenize_cli;

static const cli_arg detokenize_args[] = {
    {"DIR_OR_TOKENIZER_JSON", CLI_ARG_AT(detokenize_cli, dir), CLI_REQUIRED},
    {"IDS...", CLI_ARG_AT(detokenize_cli, ids), CLI_REQUIRED},
};
static const cli_opt detokenize_opts[] = {
    {"--skip-special", NULL, CLI_FLAG, CLI_AT(detokenize_cli, skip_special),
     .help = "drop special tokens (BOS, EOS, ...)"},
    {"--raw", NULL, CLI_FLAG, CLI_AT(detokenize_cli, raw),
     .help = "write the bytes as they are (no U+FFFD for invalid UTF-8)"},
};
static int detokenize_run(const void *dest);
const cli_spec cli_detokenize_spec = {
    .cmd = "detokenize", .usage = "DIR_OR_TOKENIZER_JSON IDS [--skip-special] [--raw]",
    .about = "The text of token ids: IDS e.g. 3,1402,22 (commas and/or spaces, or [..]);\n"
             "'-' reads them from stdin.",
    CLI_ARGS(detokenize_args), CLI_OPTS(detokenize_opts), .size = sizeof(detokenize_cli),
    .flags = CLI_DASH_ARGS, .run = detokenize_run,
};

static int detokenize_run(const void *dest) {
    detokenize_cli c = *(const detokenize_cli *)dest;
    const char *dir = c.dir;
    int flags = (c.skip_special ? LM_TOK_SKIP_SPECIAL : 0) | (c.raw ? LM_TOK_RAW : 0);
    lm_ids ids = {0};
    lm_error err;
    lm_text in = {0};
    for (int i = 0; i < c.ids.n; i++) {
        const char *src = c.ids.items[i];
        if (!strcmp(src, "-")) {
            in.len = 0;
            if (read_all("-", &in, &err)) {
                fprintf(stderr, "lemma detokenize: %s\n", err.msg);
                lm_text_free(&in);
                lm_ids_free(&ids);
                return 1;
            }
            src = in.data;
        }
        if (parse_ids(src, &ids, &err)) {
            fprintf(stderr, "lemma detokenize: %s\n", err.msg);
            lm_ids_free(&ids);
            lm_text_free(&in);
            return 2;
        }
    }
    lm_text_free(&in);
    lm_tokenizer *tok = lm_tokenizer_load(dir, &err);
    if (!tok) {
        fprintf(stderr, "lemma detokenize: %s\n", err.msg);
        lm_ids_free(&ids);
        return 1;
    }
    lm_text out = {0};
    int rc = 0;
    if (lm_tokenizer_decode(tok, ids.ids, ids.n, flags, &out, &err)) {
        fprintf(stderr, "lemma detokenize: %s\n", err.msg);
        rc = 1;
    } else {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    }
    lm_text_free(&out);
    lm_ids_free(&ids);
    lm_tokenizer_free(tok);
    return rc;
}

typedef struct tokenizer_info_cli {
    const char *dir;
} tokenizer_info_cli;

static const cli_arg tokenizer_info_args[] = {
    {"DIR_OR_TOKENIZER_JSON", CLI_ARG_AT(tokenizer_info_cli, dir), CLI_REQUIRED},
};
static int tokenizer_info_run(const void *dest);
const cli_spec cli_tokenizer_info_spec = {
    .cmd = "tokenizer info", .usage = "DIR_OR_TOKENIZER_JSON",
    .about = "What the tokenizer is: model, vocabulary, pre-tokenizer; its BOS and EOS.",
    CLI_ARGS(tokenizer_info_args), .size = sizeof(tokenizer_info_cli),
    .run = tokenizer_info_run,
};

static int tokenizer_info_run(const void *dest) {
    tokenizer_info_cli c = *(const tokenizer_info_cli *)dest;
    const char *dir = c.dir;
    lm_error err;
    lm_tokenizer *tok = lm_tokenizer_load(dir, &err);
    if (!tok) {
        fprintf(stderr, "lemma tokenizer: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", lm_tokenizer_describe(tok));
    int32_t b = lm_tokenizer_bos(tok), e = lm_tokenizer_eos(tok);
    size_t l;
    const char *s;
    if (b >= 0 && (s = lm_tokenizer_token(tok, b, &l))) printf("bos %d %.*s\n", b, (int)l, s);
    if (e >= 0 && (s = lm_tokenizer_token(tok, e, &l))) printf("eos %d %.*s\n", e, (int)l, s);
    lm_tokenizer_free(tok);
    return 0;
}

static int progress(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "\r%s\033[K", msg);
    fflush(stderr);
    return 0;
}

typedef struct tokenizer_train_cli {
    cli_list files;
    const char *out;
    lm_bpe_train_opts opt;
    int quiet;
} tokenizer_train_cli;

static const cli_arg tokenizer_train_args[] = {{"FILES...", CLI_ARG_AT(tokenizer_train_cli, files), CLI_REQUIRED}};
static const cli_opt tokenizer_train_opts[] = {
    {"--vocab", NULL, CLI_INT, CLI_AT(tokenizer_train_cli, opt.vocab_size), .min = 0, .max = INT32_MAX,
     .flags = CLI_SHOW_FIELD, .metavar = "N",
     .help = "total vocabulary size, special tokens and the 256 bytes included"},
    {"--out", "-o", CLI_PATH, CLI_AT(tokenizer_train_cli, out), .flags = CLI_REQUIRED, .metavar = "DIR",
     .help = "where tokenizer.json and tokenizer_config.json are written"},
    {"--min-frequency", NULL, CLI_INT, CLI_AT(tokenizer_train_cli, opt.min_frequency), .min = 0, .max = INT64_MAX,
     .flags = CLI_SHOW_FIELD, .metavar = "N", .help = "a pair must occur at least N times to be merged"},
    {"--max-bytes", NULL, CLI_INT, CLI_AT(tokenizer_train_cli, opt.max_bytes), .min = 0, .max = INT64_MAX,
     .note = "everything", .metavar = "N", .help = "read at most N bytes of the corpus in all"},
    {"--digit-group", NULL, CLI_INT, CLI_AT(tokenizer_train_cli, opt.digit_group), .min = 1, .max = 3,
     .flags = CLI_SHOW_FIELD, .metavar = "N",
     .help = "cut numbers into groups of at most N digits: 3 (DeepSeek-V3) or 1"},
    {"--quiet", "-q", CLI_FLAG, CLI_AT(tokenizer_train_cli, quiet), .help = "no progress on stderr"},
};
static int tokenizer_train_run(const void *dest);
static void tokenizer_train_defaults(void *dest) { lm_bpe_train_defaults(&((tokenizer_train_cli *)dest)->opt); }
const cli_spec cli_tokenizer_train_spec = {
    .cmd = "tokenizer train", .usage = "FILES... --vocab N --out DIR [options]",
    .about = "Trains a byte-level BPE tokenizer. The pre-tokenizer is DeepSeek-V3's; the special\n"
             "tokens are BOS, EOS, pad, <｜User｜>, <｜Assistant｜>, <think>, </think>.\n"
             "Same corpus and options -> byte-identical files.",
    CLI_ARGS(tokenizer_train_args), CLI_OPTS(tokenizer_train_opts), .size = sizeof(tokenizer_train_cli),
    .run = tokenizer_train_run, .init = tokenizer_train_defaults,
};

static int tokenizer_train_run(const void *dest) {
    tokenizer_train_cli c = *(const tokenizer_train_cli *)dest;
    lm_bpe_train_opts opt = c.opt;
    const char *out = c.out;
    const char **files = c.files.items;
    int nfiles = c.files.n, quiet = c.quiet;
    if (!quiet) {
        opt.progress = progress;
        opt.progress_ctx = NULL;
    }
    lm_error err;
    lm_stop_on_signals(); /* Ctrl-C or SIGTERM: stop within a fraction of a second */
    int rc = lm_bpe_train_files(files, nfiles, &opt, out, &err);
    if (!quiet) fprintf(stderr, "\n");
    if (rc) {
        fprintf(stderr, "lemma tokenizer train: %s\n", err.msg);
        return lm_stop_requested() ? 130 : 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s/tokenizer.json and %s/tokenizer_config.json\n", out, out);
    return 0;
}

static const cli_sub tokenizer_subs[] = {
    {"info", &cli_tokenizer_info_spec},
    {"train", &cli_tokenizer_train_spec},
};

int cmd_tokenizer(int argc, char **argv) {
    return cli_dispatch("tokenizer", "Byte-level BPE tokenizers: describe one, or train one on text files.",
                        tokenizer_subs, CLI_COUNT(tokenizer_subs), argc, argv);
}
