/* cmd_tasks.c — the theorem domains from the command line (src/tasks/tasks.h,
 * docs/tasks.md):
 *
 *   lemma tasks list
 *   lemma tasks gen (all|DOMAIN[,DOMAIN...]) --seed S --n N [--difficulty D|LO..HI] --out FILE [--force]
 *   lemma tasks corrupt FILE --seed S --out FILE [--force]
 *   lemma check FILE
 *
 * Problem sets are JSONL, one problem per line. Output files are written
 * atomically (temp file, fsync, rename); "-" is stdin or stdout. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/rng.h"
#include "formats/json.h"
#include "formats/jsonw.h"
#include "tasks/tasks.h"

/* Longest input line read (a problem with its proof is a few KiB). */
#define MAX_LINE ((size_t)16 << 20)

/* ---- output: a file written atomically, or stdout ------------------------- */

typedef struct sink {
    FILE *f;
    const char *path; /* "-": stdout */
    char tmp[PATH_MAX];
} sink;

static int sink_open(sink *s, const char *path, int force, const char *cmd) {
    s->path = path;
    s->tmp[0] = 0;
    if (!strcmp(path, "-")) {
        s->f = stdout;
        return 0;
    }
    struct stat st;
    if (!force && stat(path, &st) == 0) {
        fprintf(stderr, "lemma %s: %s exists (use --force to overwrite it)\n", cmd, path);
        return -1;
    }
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp.%ld", path, (long)getpid());
    s->f = fopen(s->tmp, "wb");
    if (!s->f) {
        fprintf(stderr, "lemma %s: %s: cannot create: %s\n", cmd, s->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static int sink_write(sink *s, const char *data, size_t n) { return fwrite(data, 1, n, s->f) == n ? 0 : -1; }

/* Drops a file being written (after an error). */
static void sink_abandon(sink *s) {
    if (s->f && s->f != stdout) {
        fclose(s->f);
        unlink(s->tmp);
    }
    s->f = NULL;
}

static int sink_commit(sink *s, const char *cmd) {
    const char *shown = s->f == stdout ? "stdout" : s->tmp;
    int bad = ferror(s->f) != 0;
    if (fflush(s->f) != 0) bad = 1;
    int saved = errno;
    if (s->f == stdout) {
        s->f = NULL;
        if (bad) fprintf(stderr, "lemma %s: writing to stdout: %s\n", cmd, strerror(saved ? saved : EIO));
        return bad ? -1 : 0;
    }
    if (!bad && fsync(fileno(s->f)) != 0) bad = 1, saved = errno;
    if (fclose(s->f) != 0 && !bad) bad = 1, saved = errno;
    s->f = NULL;
    if (bad) {
        unlink(s->tmp);
        fprintf(stderr, "lemma %s: writing %s: %s\n", cmd, shown, strerror(saved ? saved : EIO));
        return -1;
    }
    if (rename(s->tmp, s->path) != 0) {
        fprintf(stderr, "lemma %s: renaming %s to %s: %s\n", cmd, s->tmp, s->path, strerror(errno));
        unlink(s->tmp);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", s->path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* ---- JSON text ------------------------------------------------------------ */

static int put(lm_text *t, const char *s) { return jw_raw(t, s); }
static int put_string(lm_text *t, const char *s, size_t n) { return jw_strn(t, s, n); }

static int put_key(lm_text *t, const char *key, int first) {
    return (!first && put(t, ",")) || put_string(t, key, strlen(key)) || put(t, ":");
}

static int put_int(lm_text *t, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return put(t, b);
}

static const char *score_text(double s) { return s >= 1 ? "1" : s > 0 ? "0.5" : "0"; }

/* A parsed value written back as JSON. */
static int put_value(lm_text *t, const json_value *v) {
    char b[40];
    switch (v->type) {
    case JSON_NULL: return put(t, "null");
    case JSON_TRUE: return put(t, "true");
    case JSON_FALSE: return put(t, "false");
    case JSON_NUMBER:
        if (v->is_int) return put_int(t, (long long)v->inum);
        snprintf(b, sizeof b, "%.17g", v->num);
        return put(t, b);
    case JSON_STRING: return put_string(t, v->str, v->len);
    case JSON_ARRAY:
    case JSON_OBJECT: {
        int obj = v->type == JSON_OBJECT;
        if (put(t, obj ? "{" : "[")) return -1;
        for (const json_value *c = v->child; c; c = c->next) {
            if (c != v->child && put(t, ",")) return -1;
            if (obj && (put_string(t, c->key, c->key_len) || put(t, ":"))) return -1;
            if (put_value(t, c)) return -1;
        }
        return put(t, obj ? "}" : "]");
    }
    }
    return -1;
}

/* ---- input: JSONL records with question and proof ------------------------- */

typedef struct reader {
    FILE *f;
    const char *name;
    long long lineno;
    lm_text line;
} reader;

static int reader_open(reader *r, const char *path, const char *cmd) {
    memset(r, 0, sizeof *r);
    r->name = strcmp(path, "-") ? path : "stdin";
    r->f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!r->f) {
        fprintf(stderr, "lemma %s: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    return 0;
}

static void reader_close(reader *r) {
    if (r->f && r->f != stdin) fclose(r->f);
    lm_text_free(&r->line);
}

/* The next line that is not blank: 1, 0 at the end, -1 after printing why. */
static int reader_next(reader *r, const char *cmd) {
    for (;;) {
        r->line.len = 0;
        if (lm_text_append(&r->line, "", 0)) goto oom;
        int c, any = 0;
        char chunk[4096];
        size_t n = 0;
        while ((c = getc(r->f)) != EOF) {
            any = 1;
            if (c == '\n') break;
            chunk[n++] = (char)c;
            if (n == sizeof chunk) {
                if (r->line.len + n > MAX_LINE) {
                    fprintf(stderr, "lemma %s: %s:%lld: line longer than %zu MiB\n", cmd, r->name, r->lineno + 1,
                            MAX_LINE >> 20);
                    return -1;
                }
                if (lm_text_append(&r->line, chunk, n)) goto oom;
                n = 0;
            }
        }
        if (ferror(r->f)) {
            fprintf(stderr, "lemma %s: %s: read error: %s\n", cmd, r->name, strerror(errno));
            return -1;
        }
        if (!any) return 0;
        if (r->line.len + n > MAX_LINE) {
            fprintf(stderr, "lemma %s: %s:%lld: line longer than %zu MiB\n", cmd, r->name, r->lineno + 1,
                    MAX_LINE >> 20);
            return -1;
        }
        if (lm_text_append(&r->line, chunk, n)) goto oom;
        r->lineno++;
        size_t i = 0;
        while (i < r->line.len && (r->line.data[i] == ' ' || r->line.data[i] == '\t' || r->line.data[i] == '\r')) i++;
        if (i < r->line.len) return 1;
    }
oom:
    fprintf(stderr, "lemma %s: out of memory\n", cmd);
    return -1;
}

/* A string field of the record: NULL after printing why. */
static const char *record_string(const reader *r, const json_value *root, const char *key, const char *cmd) {
    const json_value *v = json_get(root, key);
    if (!v || v->type != JSON_STRING) {
        fprintf(stderr, "lemma %s: %s:%lld: %s \"%s\"%s\n", cmd, r->name, r->lineno, v ? "field" : "no field", key,
                v ? " is not a string" : "");
        return NULL;
    }
    if (strlen(v->str) != v->len) {
        fprintf(stderr, "lemma %s: %s:%lld: field \"%s\" contains a NUL character\n", cmd, r->name, r->lineno, key);
        return NULL;
    }
    return v->str;
}

/* The record of the current line: its root object, question and proof; NULL
 * after printing why. The caller frees the document. */
static json_doc *record_parse(const reader *r, const char *cmd, const json_value **root, const char **question,
                              const char **proof) {
    lm_error err;
    json_doc *doc = json_parse(r->line.data, r->line.len, &err);
    if (!doc) {
        fprintf(stderr, "lemma %s: %s:%lld: not JSON: %s\n", cmd, r->name, r->lineno, err.msg);
        return NULL;
    }
    *root = json_root(doc);
    if ((*root)->type != JSON_OBJECT) {
        fprintf(stderr, "lemma %s: %s:%lld: expected a JSON object, got %s\n", cmd, r->name, r->lineno,
                json_type_name((*root)->type));
    } else if ((*question = record_string(r, *root, "question", cmd)) && (*proof = record_string(r, *root, "proof", cmd))) {
        return doc;
    }
    json_free(doc);
    return NULL;
}

/* ---- lemma tasks list ----------------------------------------------------- */

typedef struct list_cli {
    int unused;
} list_cli;

static int list_run(const void *dest);
const cli_spec cli_tasks_list_spec = {
    .cmd = "tasks list", .usage = "",
    .about = "The domains: name, summary, what difficulty changes, an example question\n(seed 1, difficulty 1).",
    .size = sizeof(list_cli), .run = list_run,
};

static int list_run(const void *dest) {
    (void)dest;
    for (int i = 0; i < lm_task_count(); i++) {
        const lm_task_domain *d = lm_task_domain_at(i);
        lm_text q = {0}, p = {0};
        lm_error err;
        int rc = d->generate(1, 1, &q, &p, &err);
        printf("%-9s %s\n          difficulty: %s\n          example: %s\n", d->name, d->summary, d->difficulty,
               rc ? err.msg : q.data);
        lm_text_free(&q);
        lm_text_free(&p);
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "lemma tasks list: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- lemma tasks gen ------------------------------------------------------ */

/* "3" or "2..4" within 1..5. */
typedef struct difficulty {
    int lo, hi;
} difficulty;

static int parse_difficulty(const char *s, void *field, char *detail, size_t cap) {
    difficulty *d = field;
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s) return -1;
    if (!strncmp(end, "..", 2)) {
        const char *t = end + 2;
        b = strtol(t, &end, 10);
        if (end == t) return -1;
    }
    if (*end || a < 1 || b > 5 || a > b) return -1;
    d->lo = (int)a;
    d->hi = (int)b;
    return 0;
}

typedef struct gen_cli {
    const char *which, *out;
    int64_t seed, n;
    difficulty diff;
    int force;
} gen_cli;

static const cli_arg gen_args[] = {{"DOMAINS", CLI_ARG_AT(gen_cli, which), CLI_REQUIRED}};
static const cli_opt gen_opts[] = {
    {"--n", "-n", CLI_INT, CLI_AT(gen_cli, n), .min = 0, .max = 100000000, .flags = CLI_REQUIRED, .metavar = "N",
     .help = "number of problems"},
    {"--out", "-o", CLI_PATH, CLI_AT(gen_cli, out), .flags = CLI_REQUIRED, .metavar = "FILE",
     .help = "output JSONL, written atomically; - for stdout"},
    {"--seed", NULL, CLI_INT, CLI_AT(gen_cli, seed), .min = 0, .max = INT64_MAX, .def = "0", .metavar = "S",
     .help = "seed of the set"},
    {"--difficulty", NULL, CLI_CUSTOM, CLI_AT(gen_cli, diff), .parse = parse_difficulty,
     .expects = "1..5 or a range LO..HI within 1..5", .def = "1..5", .metavar = "D", .help = "1..5, or a range LO..HI"},
    {"--force", NULL, CLI_FLAG, CLI_AT(gen_cli, force), .help = "overwrite FILE if it exists"},
};
static int gen_run(const void *dest);
const cli_spec cli_tasks_gen_spec = {
    .cmd = "tasks gen", .usage = "(all|DOMAIN[,DOMAIN...]) --n N --out FILE [--seed S] [--difficulty D|LO..HI] [--force]",
    .about = "N problems with their reference proofs, one JSON object per line:\n"
             "{\"id\", \"domain\", \"difficulty\", \"seed\", \"question\", \"proof\"}. Problem i goes to\n"
             "the (i mod k)-th of the k domains named (all: every domain of 'lemma tasks list');\n"
             "its seed is a 53-bit number drawn from (S, i), its difficulty cycles through\n"
             "LO..HI per domain. Same arguments, same bytes.",
    CLI_ARGS(gen_args), CLI_OPTS(gen_opts), .size = sizeof(gen_cli),
    .run = gen_run,
};

static int gen_run(const void *dest) {
    gen_cli c = *(const gen_cli *)dest;
    const char *which = c.which, *out = c.out;
    int64_t seed = c.seed, n = c.n;
    int lo = c.diff.lo, hi = c.diff.hi, force = c.force;
    const lm_task_domain *doms[64];
    int k = 0;
    if (!strcmp(which, "all")) {
        for (int i = 0; i < lm_task_count() && k < 64; i++) doms[k++] = lm_task_domain_at(i);
    } else {
        char names[256];
        if (strlen(which) >= sizeof names) {
            fprintf(stderr, "lemma tasks gen: domain list too long\n");
            return 2;
        }
        snprintf(names, sizeof names, "%s", which);
        for (char *save = NULL, *tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const lm_task_domain *d = lm_task_domain_find(tok);
            if (!d) {
                fprintf(stderr, "lemma tasks gen: unknown domain '%s' (lemma tasks list shows them)\n", tok);
                return 2;
            }
            if (k < 64) doms[k++] = d;
        }
    }
    if (!k) {
        fprintf(stderr, "lemma tasks gen: no domain named in '%s'\n", which);
        return 2;
    }
    sink s;
    if (sink_open(&s, out, force, "tasks gen")) return 1;
    lm_text rec = {0}, q = {0}, p = {0};
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        const lm_task_domain *d = doms[i % k];
        int diff = lo + (int)((i / k) % (hi - lo + 1));
        uint64_t pseed = lm_rng_u64((uint64_t)seed, LM_RNG_TASKS, (uint64_t)i) >> 11;
        lm_error err;
        char id[96];
        snprintf(id, sizeof id, "%s-s%lld-%06lld", d->name, (long long)seed, (long long)i);
        rec.len = q.len = p.len = 0;
        if (d->generate(pseed, diff, &q, &p, &err)) {
            fprintf(stderr, "lemma tasks gen: problem %lld (%s): %s\n", (long long)i, d->name, err.msg);
            rc = 1;
            break;
        }
        if (put(&rec, "{") || put_key(&rec, "id", 1) || put_string(&rec, id, strlen(id)) || put_key(&rec, "domain", 0) ||
            put_string(&rec, d->name, strlen(d->name)) || put_key(&rec, "difficulty", 0) || put_int(&rec, diff) ||
            put_key(&rec, "seed", 0) || put_int(&rec, (long long)pseed) || put_key(&rec, "question", 0) ||
            put_string(&rec, q.data, q.len) || put_key(&rec, "proof", 0) || put_string(&rec, p.data, p.len) ||
            put(&rec, "}\n")) {
            fprintf(stderr, "lemma tasks gen: out of memory\n");
            rc = 1;
        } else if (sink_write(&s, rec.data, rec.len)) {
            rc = 2; /* reported by the commit */
        }
    }
    lm_text_free(&rec);
    lm_text_free(&q);
    lm_text_free(&p);
    if (rc == 1) {
        sink_abandon(&s);
        return 1;
    }
    return sink_commit(&s, "tasks gen") ? 1 : 0;
}

/* ---- lemma tasks corrupt -------------------------------------------------- */

typedef struct corrupt_cli {
    const char *in, *out;
    int64_t seed;
    int force;
} corrupt_cli;

static const cli_arg corrupt_args[] = {{"FILE", CLI_ARG_AT(corrupt_cli, in), CLI_REQUIRED}};
static const cli_opt corrupt_opts[] = {
    {"--out", "-o", CLI_PATH, CLI_AT(corrupt_cli, out), .flags = CLI_REQUIRED, .metavar = "FILE",
     .help = "output JSONL, written atomically; - for stdout"},
    {"--seed", NULL, CLI_INT, CLI_AT(corrupt_cli, seed), .min = 0, .max = INT64_MAX, .def = "0", .metavar = "S",
     .help = "seed"},
    {"--force", NULL, CLI_FLAG, CLI_AT(corrupt_cli, force), .help = "overwrite the output if it exists"},
};
static int corrupt_run(const void *dest);
const cli_spec cli_tasks_corrupt_spec = {
    .cmd = "tasks corrupt", .usage = "FILE --out FILE [--seed S] [--force]",
    .about = "For every record of FILE (JSONL with \"question\" and a correct \"proof\", as\n"
             "'lemma tasks gen' writes), a flawed proof of a kind drawn from (S, record\n"
             "index): the record's fields with \"proof\" replaced, \"id\" suffixed with\n"
             "\"-corrupt\", and \"label\" (the score the checker gives: 0 or 0.5),\n"
             "\"error_kind\", \"error_step\" and \"original_id\" added. FILE - is stdin.",
    CLI_ARGS(corrupt_args), CLI_OPTS(corrupt_opts), .size = sizeof(corrupt_cli),
    .run = corrupt_run,
};

static int corrupt_run(const void *dest) {
    corrupt_cli c = *(const corrupt_cli *)dest;
    const char *in = c.in, *out = c.out;
    int64_t seed = c.seed;
    int force = c.force;
    reader r;
    if (reader_open(&r, in, "tasks corrupt")) return 1;
    sink s;
    if (sink_open(&s, out, force, "tasks corrupt")) {
        reader_close(&r);
        return 1;
    }
    lm_text rec = {0}, flawed = {0};
    int rc = 0, more = 0;
    long long index = 0;
    while (!rc && (more = reader_next(&r, "tasks corrupt")) == 1) {
        const json_value *root;
        const char *question, *proof;
        json_doc *doc = record_parse(&r, "tasks corrupt", &root, &question, &proof);
        if (!doc) {
            rc = 1;
            break;
        }
        const lm_task_domain *d = lm_task_domain_of(question);
        lm_error err;
        lm_corruption c;
        /* counters from 2^63 up: never the draws of 'tasks gen' with the same seed */
        uint64_t cseed = lm_rng_u64((uint64_t)seed, LM_RNG_TASKS, ((uint64_t)1 << 63) | (uint64_t)index++);
        flawed.len = rec.len = 0;
        if (!d) {
            fprintf(stderr, "lemma tasks corrupt: %s:%lld: the question is not in the wording of any domain\n", r.name,
                    r.lineno);
            rc = 1;
        } else if (d->corrupt(question, proof, cseed, &flawed, &c, &err)) {
            fprintf(stderr, "lemma tasks corrupt: %s:%lld: %s\n", r.name, r.lineno, err.msg);
            rc = 1;
        } else {
            const json_value *id = json_get(root, "id");
            int bad = put(&rec, "{");
            int first = 1;
            if (id && id->type == JSON_STRING) {
                lm_text nid = {0};
                bad = bad || lm_text_append(&nid, id->str, id->len) || put(&nid, "-corrupt") ||
                      put_key(&rec, "id", 1) || put_string(&rec, nid.data, nid.len);
                lm_text_free(&nid);
                first = 0;
            }
            static const char *const replaced[] = {"id", "proof", "label", "error_kind", "error_step", "original_id"};
            for (const json_value *m = root->child; m && !bad; m = m->next) {
                int skip = 0;
                for (size_t j = 0; j < sizeof replaced / sizeof replaced[0]; j++)
                    skip |= m->key_len == strlen(replaced[j]) && !memcmp(m->key, replaced[j], m->key_len);
                if (skip) continue;
                bad = (!first && put(&rec, ",")) || put_string(&rec, m->key, m->key_len) || put(&rec, ":") ||
                      put_value(&rec, m);
                first = 0;
            }
            bad = bad || put_key(&rec, "proof", first) || put_string(&rec, flawed.data, flawed.len) ||
                  put_key(&rec, "label", 0) || put(&rec, score_text(c.label)) || put_key(&rec, "error_kind", 0) ||
                  put_string(&rec, c.kind, strlen(c.kind)) || put_key(&rec, "error_step", 0) || put_int(&rec, c.step) ||
                  put_key(&rec, "original_id", 0) ||
                  (id ? put_value(&rec, id) : put(&rec, "null")) || put(&rec, "}\n");
            if (bad) {
                fprintf(stderr, "lemma tasks corrupt: out of memory\n");
                rc = 1;
            } else if (sink_write(&s, rec.data, rec.len)) {
                rc = 2;
            }
        }
        json_free(doc);
    }
    if (more < 0) rc = 1;
    reader_close(&r);
    lm_text_free(&rec);
    lm_text_free(&flawed);
    if (rc == 1) {
        sink_abandon(&s);
        return 1;
    }
    return sink_commit(&s, "tasks corrupt") ? 1 : 0;
}

/* ---- lemma tasks ---------------------------------------------------------- */

static const cli_sub tasks_subs[] = {
    {"list", &cli_tasks_list_spec},
    {"gen", &cli_tasks_gen_spec},
    {"corrupt", &cli_tasks_corrupt_spec},
};

int cmd_tasks(int argc, char **argv) {
    return cli_dispatch("tasks",
                        "Synthetic theorem domains with exact checkers (docs/tasks.md): list them, write\n"
                        "problem sets with reference proofs, or flawed proofs with known scores.\n"
                        "'lemma check FILE' scores answers.",
                        tasks_subs, CLI_COUNT(tasks_subs), argc, argv);
}

/* ---- lemma check ---------------------------------------------------------- */

typedef struct check_cli {
    const char *in;
    int quiet;
} check_cli;

static const cli_arg check_args[] = {{"FILE", CLI_ARG_AT(check_cli, in), CLI_REQUIRED}};
static const cli_opt check_opts[] = {
    {"--quiet", "-q", CLI_FLAG, CLI_AT(check_cli, quiet), .help = "no summary"},
};
static int check_run(const void *dest);
const cli_spec cli_check_spec = {
    .cmd = "check", .usage = "FILE [--quiet]",
    .about = "Scores answers exactly: FILE is JSONL whose records carry \"question\" and \"proof\"\n"
             "(the output of 'lemma tasks gen' or 'lemma tasks corrupt'; other fields are\n"
             "ignored, blank lines skipped; - for stdin). Prints one JSON object per record:\n"
             "{\"line\", \"id\" (when the record has one), \"domain\", \"score\" (0, 0.5 or 1) and,\n"
             "below 1, \"error\": {\"step\", \"kind\", \"message\"}}, and a summary on stderr.\n"
             "Exits 0 when every record was judged, whatever the scores; a record that is\n"
             "not JSON, lacks a field or has a question of no domain stops it with file:line.",
    CLI_ARGS(check_args), CLI_OPTS(check_opts), .size = sizeof(check_cli),
    .run = check_run,
};

static int check_run(const void *dest) {
    check_cli c = *(const check_cli *)dest;
    const char *in = c.in;
    int quiet = c.quiet;
    reader r;
    if (reader_open(&r, in, "check")) return 1;
    sink s = {stdout, "-", {0}};
    lm_text rec = {0};
    long long counts[3] = {0, 0, 0}; /* scores 0, 0.5, 1 */
    int rc = 0, more = 0;
    while (!rc && (more = reader_next(&r, "check")) == 1) {
        const json_value *root;
        const char *question, *proof;
        json_doc *doc = record_parse(&r, "check", &root, &question, &proof);
        if (!doc) {
            rc = 1;
            break;
        }
        const lm_task_domain *d = lm_task_domain_of(question);
        lm_check_result res;
        lm_error err;
        if (!d || lm_task_check(question, proof, &res, &err)) {
            fprintf(stderr, "lemma check: %s:%lld: %s\n", r.name, r.lineno,
                    d ? err.msg : "the question is not in the wording of any domain (lemma tasks list shows them)");
            json_free(doc);
            rc = 1;
            break;
        }
        counts[res.score >= 1 ? 2 : res.score > 0 ? 1 : 0]++;
        const json_value *id = json_get(root, "id");
        rec.len = 0;
        int bad = put(&rec, "{") || put_key(&rec, "line", 1) || put_int(&rec, r.lineno);
        if (id && id->type == JSON_STRING) bad = bad || put_key(&rec, "id", 0) || put_value(&rec, id);
        bad = bad || put_key(&rec, "domain", 0) || put_string(&rec, d->name, strlen(d->name)) ||
              put_key(&rec, "score", 0) || put(&rec, score_text(res.score));
        if (res.score < 1)
            bad = bad || put_key(&rec, "error", 0) || put(&rec, "{") || put_key(&rec, "step", 1) ||
                  put_int(&rec, res.step) || put_key(&rec, "kind", 0) || put_string(&rec, res.kind, strlen(res.kind)) ||
                  put_key(&rec, "message", 0) || put_string(&rec, res.message, strlen(res.message)) || put(&rec, "}");
        bad = bad || put(&rec, "}\n");
        json_free(doc);
        if (bad) {
            fprintf(stderr, "lemma check: out of memory\n");
            rc = 1;
        } else if (sink_write(&s, rec.data, rec.len)) {
            break; /* reported by the commit */
        }
    }
    if (more < 0) rc = 1;
    reader_close(&r);
    lm_text_free(&rec);
    if (sink_commit(&s, "check")) rc = 1;
    if (!rc && !quiet) {
        long long total = counts[0] + counts[1] + counts[2];
        fprintf(stderr, "lemma check: %lld answers, mean score %.4f (%lld scored 1, %lld 0.5, %lld 0)\n", total,
                total ? (counts[2] + 0.5 * counts[1]) / (double)total : 0.0, counts[2], counts[1], counts[0]);
    }
    return rc;
}
