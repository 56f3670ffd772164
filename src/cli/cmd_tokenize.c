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

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: lemma tokenize DIR_OR_TOKENIZER_JSON [TEXT] [options]\n"
            "  TEXT               text to encode (or use --file / --jsonl)\n"
            "  --file F           encode the contents of F ('-' = stdin)\n"
            "  --jsonl F          one JSON object per line with \"text\" (or \"bytes_hex\" for raw bytes);\n"
            "                     writes {\"ids\":[...]} per line, {\"error\":\"...\"} for a bad line\n"
            "  --pieces           one line per token: id, then its bytes\n"
            "  --no-special       encode added/special token text as plain text (default: match them)\n"
            "  --bos              prepend the BOS id\n"
            "  --count            print only the number of tokens\n"
            "  --bench N          encode N times (one thread); print JSON with CPU-time MB/s (median),\n"
            "                     tokens, load time and peak memory instead of the ids\n"
            "Output (default): the ids, comma-separated, on one line.\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *file = NULL, *jsonl = NULL;
    int pieces = 0, flags = LM_TOK_SPECIAL, bos = 0, count = 0, bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { tokenize_usage(stdout); return 0; }
        else if (!strcmp(a, "--pieces")) pieces = 1;
        else if (!strcmp(a, "--no-special")) flags &= ~LM_TOK_SPECIAL;
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--count")) count = 1;
        else if (!strcmp(a, "--bench") && i + 1 < argc) {
            bench = atoi(argv[++i]);
            if (bench < 1) bench = 1;
        } else if ((!strcmp(a, "--file") || !strcmp(a, "--jsonl")) && i + 1 < argc) {
            if (a[2] == 'f') file = argv[++i];
            else jsonl = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "lemma tokenize: unknown or incomplete option '%s'\n", a);
            tokenize_usage(stderr);
            return 2;
        } else if (!dir) dir = a;
        else if (!text) text = a;
        else {
            fprintf(stderr, "lemma tokenize: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!dir || (!text && !file && !jsonl)) {
        tokenize_usage(stderr);
        return 2;
    }
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

int cmd_detokenize(int argc, char **argv) {
    const char *dir = NULL;
    int flags = 0;
    lm_ids ids = {0};
    lm_error err;
    lm_text in = {0};
    int have_ids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: lemma detokenize DIR_OR_TOKENIZER_JSON IDS [--skip-special] [--raw]\n"
                   "  IDS              e.g. 3,1402,22 ('-' reads them from stdin)\n"
                   "  --skip-special   drop special tokens (BOS, EOS, ...)\n"
                   "  --raw            write the bytes as they are (no U+FFFD for invalid UTF-8)\n");
            return 0;
        } else if (!strcmp(a, "--skip-special")) flags |= LM_TOK_SKIP_SPECIAL;
        else if (!strcmp(a, "--raw")) flags |= LM_TOK_RAW;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "lemma detokenize: unknown option '%s'\n", a);
            return 2;
        } else if (!dir) dir = a;
        else {
            const char *src = a;
            if (!strcmp(a, "-")) {
                if (read_all("-", &in, &err)) { fprintf(stderr, "lemma detokenize: %s\n", err.msg); return 1; }
                src = in.data;
            }
            if (parse_ids(src, &ids, &err)) {
                fprintf(stderr, "lemma detokenize: %s\n", err.msg);
                lm_ids_free(&ids);
                lm_text_free(&in);
                return 2;
            }
            have_ids = 1;
        }
    }
    lm_text_free(&in);
    if (!dir || !have_ids) {
        fprintf(stderr, "usage: lemma detokenize DIR_OR_TOKENIZER_JSON 3,1402,22 [--skip-special]\n");
        lm_ids_free(&ids);
        return 2;
    }
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

static void tokenizer_usage(FILE *f) {
    fprintf(f,
            "usage: lemma tokenizer info DIR_OR_TOKENIZER_JSON\n"
            "       lemma tokenizer train FILES... --vocab N --out DIR [options]\n"
            "train options:\n"
            "  --vocab N          total vocabulary size, special tokens and the 256 bytes included (default 8000)\n"
            "  --out DIR          where tokenizer.json and tokenizer_config.json are written (required)\n"
            "  --min-frequency N  a pair must occur at least N times to be merged (default 2)\n"
            "  --max-bytes N      read at most N bytes of the corpus in all (default: everything)\n"
            "  --digit-group N    cut numbers into groups of at most N digits: 3 (DeepSeek-V3, default) or 1\n"
            "  --quiet            no progress on stderr\n"
            "The pre-tokenizer is DeepSeek-V3's; the special tokens are BOS, EOS, pad, <｜User｜>,\n"
            "<｜Assistant｜>, <think>, </think>. Same corpus and options -> byte-identical files.\n");
}

static int tokenizer_info(const char *dir) {
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

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        tokenizer_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "info")) {
        if (argc != 3) { tokenizer_usage(stderr); return 2; }
        return tokenizer_info(argv[2]);
    }
    if (strcmp(argv[1], "train")) {
        fprintf(stderr, "lemma tokenizer: unknown subcommand '%s'\n", argv[1]);
        tokenizer_usage(stderr);
        return 2;
    }
    lm_bpe_train_opts opt;
    lm_bpe_train_defaults(&opt);
    const char *out = NULL;
    const char **files = calloc((size_t)argc, sizeof *files);
    int nfiles = 0, quiet = 0;
    if (!files) return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { tokenizer_usage(stdout); free(files); return 0; }
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if ((!strcmp(a, "--vocab") || !strcmp(a, "--min-frequency") || !strcmp(a, "--max-bytes") ||
                  !strcmp(a, "--digit-group")) && i + 1 < argc) {
            long long v = strtoll(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 0) {
                fprintf(stderr, "lemma tokenizer train: %s: expected a non-negative integer, got '%s'\n", a, argv[i]);
                free(files);
                return 2;
            }
            if (a[2] == 'd') opt.digit_group = (int)(v > 3 ? 4 : v);
            else if (a[2] == 'v') opt.vocab_size = (int32_t)(v > INT32_MAX ? INT32_MAX : v);
            else if (a[3] == 'i') opt.min_frequency = v;
            else opt.max_bytes = (size_t)v;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "lemma tokenizer train: unknown or incomplete option '%s'\n", a);
            free(files);
            return 2;
        } else files[nfiles++] = a;
    }
    if (!out || nfiles == 0) {
        tokenizer_usage(stderr);
        free(files);
        return 2;
    }
    if (!quiet) {
        opt.progress = progress;
        opt.progress_ctx = NULL;
    }
    lm_error err;
    lm_stop_on_signals(); /* Ctrl-C or SIGTERM: stop within a fraction of a second */
    int rc = lm_bpe_train_files(files, nfiles, &opt, out, &err);
    if (!quiet) fprintf(stderr, "\n");
    free(files);
    if (rc) {
        fprintf(stderr, "lemma tokenizer train: %s\n", err.msg);
        return lm_stop_requested() ? 130 : 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s/tokenizer.json and %s/tokenizer_config.json\n", out, out);
    return 0;
}
