/* shards.c — `lemma data` writer and the window reader; formats in shards.h.
 *
 * The writer makes two passes over the inputs: the first cuts documents,
 * hashes them for the split rule and validates JSONL records (so that bad
 * input fails before anything is written, and the total size is known for
 * progress); the second tokenises and fills one shard buffer per split. */
#include "data/shards.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "core/stop.h"
#include "formats/json.h"
#include "formats/jsonw.h"
#include "tokenizer/tokenizer.h"

static const char *const split_names[2] = {"train", "val"};

void lm_data_opts_default(lm_data_opts *o) {
    memset(o, 0, sizeof *o);
    o->val_fraction = 0.01;
    o->shard_tokens = (int64_t)1 << 24;
    o->seed = 0;
    o->doc_sep = LM_DOC_FILE;
    o->bos = 1;
}

int lm_data_doc_sep_parse(const char *s) {
    if (!strcmp(s, "file")) return LM_DOC_FILE;
    if (!strcmp(s, "line")) return LM_DOC_LINE;
    if (!strcmp(s, "blank")) return LM_DOC_BLANK;
    return -1;
}

const char *lm_data_doc_sep_name(int doc_sep) {
    return doc_sep == LM_DOC_LINE ? "line" : doc_sep == LM_DOC_BLANK ? "blank" : "file";
}

/* ---- little helpers --------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}


static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space((unsigned char)s[i])) return 0;
    return 1;
}

/* A read-only mapping of a whole file (len 0 maps nothing). */
typedef struct mapped {
    const char *p;
    size_t len;
} mapped;

static int map_file(const char *path, mapped *m, lm_error *err) {
    m->p = NULL;
    m->len = 0;
    /* O_NONBLOCK: a FIFO is refused below instead of blocking the open */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return lm_fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return lm_fail(err, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lm_fail(err, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory, not a regular file" : "not a regular file");
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return lm_fail(err, "%s: mmap: %s", path, strerror(errno));
        }
        m->p = p;
        m->len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

static void unmap_file(mapped *m) {
    if (m->len) munmap((void *)m->p, m->len);
    m->p = NULL;
    m->len = 0;
}

/* ---- documents ---------------------------------------------------------------- */

typedef struct doc_span {
    const char *p;      /* the document's bytes (plain) or the JSONL line */
    size_t len;
    size_t line;        /* 1-based line of the document's start */
} doc_span;

/* Calls fn for each document of a mapped file; stops at the first non-zero. */
typedef int (*doc_fn)(void *ctx, const doc_span *d);

static int each_doc(const mapped *m, int jsonl, int doc_sep, doc_fn fn, void *ctx) {
    const char *p = m->p, *end = m->p + m->len;
    if (!m->len) return 0;
    if (!jsonl && doc_sep == LM_DOC_FILE) {
        size_t n = m->len;
        while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
        if (all_space(p, n)) return 0;
        doc_span d = {p, n, 1};
        return fn(ctx, &d);
    }
    size_t line = 1;
    const char *dstart = NULL, *dend = NULL;  /* blank mode: the paragraph so far */
    size_t dline = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--;
        int blank = all_space(p, n);
        if (jsonl || doc_sep == LM_DOC_LINE) {
            if (!blank) {
                doc_span d = {p, n, line};
                int rc = fn(ctx, &d);
                if (rc) return rc;
            }
        } else if (blank) {
            if (dstart) {
                doc_span d = {dstart, (size_t)(dend - dstart), dline};
                int rc = fn(ctx, &d);
                if (rc) return rc;
                dstart = NULL;
            }
        } else {
            if (!dstart) {
                dstart = p;
                dline = line;
            }
            dend = p + n;
        }
        p = nl ? nl + 1 : end;
        line++;
    }
    if (dstart) {
        doc_span d = {dstart, (size_t)(dend - dstart), dline};
        return fn(ctx, &d);
    }
    return 0;
}

/* A JSONL record: {"text": s} or {"segments": [{"text": s, "loss": b}, ...]}. */
static int check_record(const json_value *r, const char *path, size_t line, lm_error *err) {
    if (!r || r->type != JSON_OBJECT)
        return lm_fail(err, "%s:%zu: expected a JSON object with \"text\" or \"segments\"", path, line);
    const json_value *t = json_get(r, "text"), *s = json_get(r, "segments");
    if (t && s) return lm_fail(err, "%s:%zu: a record has \"text\" or \"segments\", not both", path, line);
    if (t) {
        if (t->type != JSON_STRING) return lm_fail(err, "%s:%zu: byte %zu: \"text\": expected a string", path, line, t->offset);
        return 0;
    }
    if (!s) return lm_fail(err, "%s:%zu: expected a JSON object with \"text\" or \"segments\"", path, line);
    if (s->type != JSON_ARRAY || !s->len)
        return lm_fail(err, "%s:%zu: byte %zu: \"segments\": expected a non-empty array", path, line, s->offset);
    for (const json_value *e = s->child; e; e = e->next) {
        const json_value *et = json_get(e, "text"), *el = json_get(e, "loss");
        int b;
        if (e->type != JSON_OBJECT || !et || et->type != JSON_STRING || (el && !json_as_bool(el, &b)))
            return lm_fail(err, "%s:%zu: byte %zu: a segment is {\"text\": string, \"loss\": true|false}", path, line,
                           e->offset);
    }
    return 0;
}

/* ---- pass 1: split ------------------------------------------------------------ */

typedef struct scan_ctx {
    const char *path;
    int jsonl;
    uint64_t seed;
    uint64_t *u;          /* [ndocs] split key of each document */
    int64_t ndocs, cap;
    int64_t file_docs;
    lm_error *err;
} scan_ctx;

static uint64_t split_key(uint64_t seed, const char *p, size_t n) {
    uint8_t s8[8], d[32];
    put_u64(s8, seed);
    lm_sha256 h;
    lm_sha256_init(&h);
    lm_sha256_update(&h, s8, 8);
    lm_sha256_update(&h, p, n);
    lm_sha256_final(&h, d);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | d[i];
    return u;
}

static int scan_doc(void *vctx, const doc_span *d) {
    scan_ctx *c = vctx;
    if (lm_stop_requested()) return lm_fail(c->err, "interrupted");
    if (c->jsonl) {
        lm_error e;
        json_doc *doc = json_parse(d->p, d->len, &e);
        if (!doc) return lm_fail(c->err, "%s:%zu: %s", c->path, d->line, e.msg);
        int rc = check_record(json_root(doc), c->path, d->line, c->err);
        json_free(doc);
        if (rc) return -1;
    }
    if (c->ndocs == c->cap) {
        int64_t nc = c->cap ? c->cap * 2 : 1024;
        uint64_t *nu = realloc(c->u, (size_t)nc * sizeof *nu);
        if (!nu) return lm_fail(c->err, "out of memory");
        c->u = nu;
        c->cap = nc;
    }
    c->u[c->ndocs++] = split_key(c->seed, d->p, d->len);
    c->file_docs++;
    return 0;
}

/* ---- pass 2: tokenise into shards ---------------------------------------------- */

typedef struct shard_rec {
    int64_t tokens, docs;
    int masked;
} shard_rec;

/* One split's tokens waiting for the next shard. The tokenizer appends to
 * ids directly (no scratch copy), and the loss mask exists only once a
 * masked record has come (all-1 until then): the memory is 4 bytes per
 * waiting token, 5 with a mask, which is what the shard file holds. */
typedef struct split_buf {
    lm_ids ids;           /* every id < vocab, so also the u32 written */
    uint8_t *loss;        /* NULL: every token has loss 1; else [ids.n] */
    size_t loss_cap;
    int64_t docs;
    int masked;           /* a masked document is in the buffer */
    shard_rec *shards;    /* written so far */
    int nshards, shards_cap;
    int64_t total_tokens, total_docs;
} split_buf;

typedef struct build_ctx {
    const char *path;
    int jsonl;
    const lm_data_opts *o;
    const lm_tokenizer *tok;
    int32_t bos, eos;
    uint32_t vocab;
    uint8_t tok_hash[32];
    const uint64_t *u;    /* split keys */
    const uint8_t *is_val;
    int64_t doc;          /* global document index */
    split_buf sb[2];
    const char *out_dir;
    int64_t bytes_done, bytes_total, last_report;
    int64_t tokens;
    lm_error *err;
} build_ctx;

/* Loss v for tokens [from, to) of b (to <= ids.n). */
static int set_loss(split_buf *b, size_t from, size_t to, uint8_t v) {
    if (!b->loss && v == 1) return 0;
    if (to > b->loss_cap || !b->loss) {
        size_t cap = b->ids.cap > to ? b->ids.cap : to;
        uint8_t *nl = realloc(b->loss, cap ? cap : 1);
        if (!nl) return -1;
        if (!b->loss) memset(nl, 1, from); /* the tokens before the first masked one */
        b->loss = nl;
        b->loss_cap = cap;
    }
    memset(b->loss + from, v, to - from);
    return 0;
}

static int sb_push(split_buf *b, int32_t id, uint8_t loss) {
    if (lm_ids_push(&b->ids, id)) return -1;
    return set_loss(b, b->ids.n - 1, b->ids.n, loss);
}

static void shard_name(char *buf, size_t cap, int split, int index) {
    snprintf(buf, cap, "%s-%05d.bin", split_names[split], index);
}

/* Writes the waiting tokens as one shard, streamed (no image of the file). */
static int flush_shard(build_ctx *c, int split) {
    split_buf *b = &c->sb[split];
    int64_t n = (int64_t)b->ids.n;
    if (!n) return 0;
    uint8_t head[LM_SHARD_HEADER];
    memset(head, 0, sizeof head);
    memcpy(head, LM_SHARD_MAGIC, 8);
    put_u32(head + 8, LM_SHARD_VERSION);
    put_u32(head + 12, b->masked ? LM_SHARD_MASKED : 0);
    put_u64(head + 16, (uint64_t)n);
    put_u32(head + 24, c->vocab);
    put_u32(head + 28, (uint32_t)b->docs);
    memcpy(head + 32, c->tok_hash, 32);
    char name[64], path[4096];
    shard_name(name, sizeof name, split, b->nshards);
    snprintf(path, sizeof path, "%s/%s", c->out_dir, name);
    lm_atomic_writer *w = lm_atomic_begin(path, c->err);
    if (!w) return -1;
    lm_atomic_put(w, head, sizeof head);
    uint8_t chunk[1 << 16];
    for (int64_t i = 0; i < n;) {
        int64_t k = 0;
        for (; i < n && k < (int64_t)sizeof chunk / 4; i++, k++) put_u32(chunk + 4 * k, (uint32_t)b->ids.ids[i]);
        lm_atomic_put(w, chunk, (size_t)k * 4);
    }
    if (b->masked) {
        if (b->loss) {
            lm_atomic_put(w, b->loss, (size_t)n);
        } else {
            memset(chunk, 1, sizeof chunk);
            for (int64_t i = 0; i < n; i += (int64_t)sizeof chunk)
                lm_atomic_put(w, chunk, (size_t)(n - i < (int64_t)sizeof chunk ? n - i : (int64_t)sizeof chunk));
        }
    }
    if (lm_atomic_finish(w, c->err)) return -1;
    if (b->nshards == b->shards_cap) {
        int nc = b->shards_cap ? b->shards_cap * 2 : 8;
        shard_rec *ns = realloc(b->shards, (size_t)nc * sizeof *ns);
        if (!ns) return lm_fail(c->err, "out of memory");
        b->shards = ns;
        b->shards_cap = nc;
    }
    b->shards[b->nshards++] = (shard_rec){n, b->docs, b->masked};
    b->total_tokens += n;
    b->total_docs += b->docs;
    b->ids.n = 0;
    free(b->loss);
    b->loss = NULL;
    b->loss_cap = 0;
    b->docs = 0;
    b->masked = 0;
    return 0;
}

static int encode_into(build_ctx *c, split_buf *b, const char *text, size_t len, int flags, uint8_t loss) {
    size_t from = b->ids.n;
    if (lm_tokenizer_encode(c->tok, text, len, flags, &b->ids, c->err)) return -1;
    if (set_loss(b, from, b->ids.n, loss)) return lm_fail(c->err, "out of memory");
    return 0;
}

static int build_doc(void *vctx, const doc_span *d) {
    build_ctx *c = vctx;
    if (lm_stop_requested()) return lm_fail(c->err, "interrupted");
    int split = c->is_val[c->doc++] ? LM_SPLIT_VAL : LM_SPLIT_TRAIN;
    split_buf *b = &c->sb[split];
    size_t start = b->ids.n;
    if (c->o->bos && c->bos >= 0) {
        if (sb_push(b, c->bos, 1)) return lm_fail(c->err, "out of memory");
    }
    uint8_t eos_loss = 1;
    if (!c->jsonl) {
        if (encode_into(c, b, d->p, d->len, 0, 1)) return lm_fail_prefix(c->err, "%s:%zu", c->path, d->line);
    } else {
        lm_error e;
        json_doc *doc = json_parse(d->p, d->len, &e);
        if (!doc) return lm_fail(c->err, "%s:%zu: %s", c->path, d->line, e.msg);
        const json_value *r = json_root(doc), *t = json_get(r, "text"), *s = json_get(r, "segments");
        int rc = 0;
        if (t) {
            rc = encode_into(c, b, t->str, t->len, LM_TOK_SPECIAL, 1);
        } else {
            /* BOS of a masked record: no loss */
            if (start < b->ids.n && set_loss(b, start, start + 1, 0)) rc = lm_fail(c->err, "out of memory");
            for (const json_value *e2 = s->child; e2 && !rc; e2 = e2->next) {
                const json_value *et = json_get(e2, "text"), *el = json_get(e2, "loss");
                int lb = 0;
                if (el) json_as_bool(el, &lb);
                rc = encode_into(c, b, et->str, et->len, LM_TOK_SPECIAL, (uint8_t)lb);
                eos_loss = (uint8_t)lb;
            }
            b->masked = 1;
        }
        json_free(doc);
        if (rc) return lm_fail_prefix(c->err, "%s:%zu", c->path, d->line);
    }
    if (sb_push(b, c->eos, eos_loss)) return lm_fail(c->err, "out of memory");
    for (size_t i = start; i < b->ids.n; i++)
        if ((uint32_t)b->ids.ids[i] >= c->vocab)
            return lm_fail(c->err, "%s:%zu: token id %u >= vocab size %u", c->path, d->line, (uint32_t)b->ids.ids[i],
                           c->vocab);
    c->tokens += (int64_t)(b->ids.n - start);
    b->docs++;
    if ((int64_t)b->ids.n >= c->o->shard_tokens && flush_shard(c, split)) return -1;
    c->bytes_done += (int64_t)d->len + 1;
    if (c->o->progress && c->bytes_done - c->last_report >= (1 << 18)) {
        c->last_report = c->bytes_done;
        if (c->o->progress(c->o->progress_ctx, "tokenize", c->bytes_done, c->bytes_total, c->tokens))
            return lm_fail(c->err, "interrupted");
    }
    return 0;
}

/* ---- lm_data_build ---------------------------------------------------------------- */

/* lemma data writes (and replaces shards) only in a folder that is new, empty
 * but for lemma's dot files, made by lemma, or an earlier lemma data output
 * (index.json of format lemma-tokens). 0, or -1 naming the folder. */
static int check_out_dir(const char *out_dir, lm_error *err) {
    struct stat st;
    if (lstat(out_dir, &st)) return 0;
    if (!S_ISDIR(st.st_mode)) return lm_fail(err, "%s: exists and is not a directory", out_dir);
    if (lm_dir_made_by_lemma(out_dir)) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/index.json", out_dir);
    char *text;
    size_t len;
    lm_error e2;
    if (!lm_read_file(path, (size_t)256 << 20, &text, &len, &e2)) {
        json_doc *doc = json_parse(text, len, &e2);
        free(text);
        const json_value *v = doc ? json_get(json_root(doc), "format") : NULL;
        int ours = v && v->type == JSON_STRING && !strcmp(v->str, "lemma-tokens");
        json_free(doc);
        if (ours) return 0;
    }
    DIR *dp = opendir(out_dir);
    if (!dp) return lm_fail(err, "%s: %s", out_dir, strerror(errno));
    struct dirent *e;
    char first[256] = "";
    while ((e = readdir(dp)) && !first[0])
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, LM_DIR_LOCK_NAME))
            snprintf(first, sizeof first, "%s", e->d_name);
    closedir(dp);
    if (first[0])
        return lm_fail(err, "%s is not empty (it holds %s) and is not a lemma data folder: choose a new or empty --out",
                       out_dir, first);
    return 0;
}

/* Removes DIR/train-*.bin and DIR/val-*.bin that the new index does not list
 * (DIR is lemma's: check_out_dir), each with a notice. */
static void remove_stale(const char *dir, const split_buf sb[2], const lm_data_opts *o) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        for (int s = 0; s < 2; s++) {
            size_t pl = strlen(split_names[s]);
            if (strncmp(e->d_name, split_names[s], pl) || e->d_name[pl] != '-' || !ends_with(e->d_name, ".bin"))
                continue;
            int keep = 0;
            for (int i = 0; i < sb[s].nshards && !keep; i++) {
                char name[64];
                shard_name(name, sizeof name, s, i);
                keep = !strcmp(name, e->d_name);
            }
            if (!keep) {
                char path[4096], msg[4200];
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                snprintf(msg, sizeof msg, "removing %s (a shard of the earlier build, not in the new index)", path);
                if (o->notice) o->notice(o->notice_ctx, msg);
                unlink(path);
            }
        }
    }
    closedir(dp);
}

static int write_index(build_ctx *c, const char *const *files, int nfiles, const int64_t *file_docs,
                       const int64_t *file_bytes, char (*file_hash)[65], const char *tok_hex, lm_error *err) {
    lm_text t = {0};
    int bad = 0;
    char vf[64];
    snprintf(vf, sizeof vf, "%.17g", c->o->val_fraction);
    bad |= lm_text_appendf(&t, "{\n  \"format\": \"lemma-tokens\",\n  \"version\": %d,\n  \"tokenizer_sha256\": \"%s\",\n"
                         "  \"vocab_size\": %u,\n  \"bos_id\": %d,\n  \"eos_id\": %d,\n  \"doc_sep\": \"%s\",\n"
                         "  \"bos\": %s,\n  \"val_fraction\": %s,\n  \"seed\": %llu,\n  \"shard_tokens\": %lld,\n"
                         "%s  \"sources\": [",
                     LM_SHARD_VERSION, tok_hex, c->vocab, c->bos, c->eos, lm_data_doc_sep_name(c->o->doc_sep),
                     c->o->bos && c->bos >= 0 ? "true" : "false", vf, (unsigned long long)c->o->seed,
                     (long long)c->o->shard_tokens, c->o->doc_windows ? "  \"windows\": \"document\",\n" : "");
    for (int i = 0; i < nfiles; i++) {
        bad |= lm_text_appendf(&t, "%s\n    {\"file\": ", i ? "," : "");
        bad |= jw_str(&t, base_name(files[i]));
        bad |= lm_text_appendf(&t, ", \"bytes\": %lld, \"sha256\": \"%s\", \"documents\": %lld}", (long long)file_bytes[i],
                         file_hash[i], (long long)file_docs[i]);
    }
    bad |= lm_text_appendf(&t, "\n  ],\n  \"splits\": {");
    for (int s = 0; s < 2; s++) {
        const split_buf *b = &c->sb[s];
        bad |= lm_text_appendf(&t, "%s\n    \"%s\": {\"tokens\": %lld, \"documents\": %lld, \"shards\": [", s ? "," : "",
                         split_names[s], (long long)b->total_tokens, (long long)b->total_docs);
        for (int i = 0; i < b->nshards; i++) {
            char name[64];
            shard_name(name, sizeof name, s, i);
            bad |= lm_text_appendf(&t, "%s\n      {\"file\": \"%s\", \"tokens\": %lld, \"documents\": %lld, \"masked\": %s}",
                             i ? "," : "", name, (long long)b->shards[i].tokens, (long long)b->shards[i].docs,
                             b->shards[i].masked ? "true" : "false");
        }
        bad |= lm_text_appendf(&t, "%s]}", b->nshards ? "\n    " : "");
    }
    bad |= lm_text_appendf(&t, "\n  }\n}\n");
    if (bad) {
        lm_text_free(&t);
        return lm_fail(err, "out of memory");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/index.json", c->out_dir);
    int rc = lm_write_file_atomic(path, t.data, t.len, err);
    lm_text_free(&t);
    return rc;
}

/* tokenizer_dir may be a directory or the tokenizer.json itself. */
static int tokenizer_json_path(const char *tokenizer_dir, char *out, size_t cap, lm_error *err) {
    struct stat st;
    if (stat(tokenizer_dir, &st)) return lm_fail(err, "tokenizer %s: %s", tokenizer_dir, strerror(errno));
    if (S_ISDIR(st.st_mode)) snprintf(out, cap, "%s/tokenizer.json", tokenizer_dir);
    else snprintf(out, cap, "%s", tokenizer_dir);
    if (access(out, R_OK)) return lm_fail(err, "tokenizer: %s: %s", out, strerror(errno));
    return 0;
}

int lm_data_build(const char *const *files, int nfiles, const char *tokenizer_dir, const char *out_dir,
                  const lm_data_opts *o, lm_error *err) {
    if (nfiles <= 0) return lm_fail(err, "no input files");
    if (o->doc_windows && !o->bos)
        return lm_fail(err, "document windows need a BOS before every document (bos is off)");
    if (!(o->val_fraction >= 0 && o->val_fraction <= 0.5))
        return lm_fail(err, "val_fraction %g: expected a number in [0, 0.5]", o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > ((int64_t)1 << 32))
        return lm_fail(err, "shard_tokens %lld: expected 1 .. 2^32", (long long)o->shard_tokens);
    if (o->doc_sep < LM_DOC_FILE || o->doc_sep > LM_DOC_BLANK) return lm_fail(err, "bad doc_sep %d", o->doc_sep);

    if (check_out_dir(out_dir, err)) return -1;
    char tok_json[4096], tok_hex[65];
    if (tokenizer_json_path(tokenizer_dir, tok_json, sizeof tok_json, err)) return -1;
    if (lm_sha256_file(tok_json, tok_hex, err)) return lm_fail_prefix(err, "tokenizer");
    lm_tokenizer *tok = lm_tokenizer_load(tokenizer_dir, err);
    if (!tok) return lm_fail_prefix(err, "tokenizer");

    int rc = -1;
    build_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.tok = tok;
    c.bos = lm_tokenizer_bos(tok);
    c.eos = lm_tokenizer_eos(tok);
    c.vocab = (uint32_t)lm_tokenizer_vocab_size(tok);
    c.out_dir = out_dir;
    c.err = err;
    lm_sha256_parse(tok_hex, c.tok_hash);
    scan_ctx sc = {.seed = o->seed, .err = err};
    int64_t *file_docs = calloc((size_t)nfiles, sizeof *file_docs);
    int64_t *file_bytes = calloc((size_t)nfiles, sizeof *file_bytes);
    char(*file_hash)[65] = calloc((size_t)nfiles, sizeof *file_hash);
    uint8_t *is_val = NULL;
    if (!file_docs || !file_bytes || !file_hash) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (c.eos < 0) {
        lm_fail(err, "tokenizer %s: no EOS token (documents are separated by EOS)", tokenizer_dir);
        goto done;
    }

    /* Pass 1: documents, split keys, JSONL validation, sizes and hashes. */
    int64_t total_bytes = 0;
    for (int i = 0; i < nfiles; i++) {
        mapped m;
        if (map_file(files[i], &m, err)) goto done;
        sc.path = files[i];
        sc.jsonl = ends_with(files[i], ".jsonl");
        sc.file_docs = 0;
        int r = each_doc(&m, sc.jsonl, o->doc_sep, scan_doc, &sc);
        /* hashed a MiB at a time, so that a stop request is seen */
        lm_sha256 h;
        uint8_t d[32];
        lm_sha256_init(&h);
        for (size_t at = 0; !r && at < m.len; at += (size_t)1 << 20) {
            if (lm_stop_requested()) r = lm_fail(err, "interrupted");
            else lm_sha256_update(&h, m.p + at, m.len - at < ((size_t)1 << 20) ? m.len - at : (size_t)1 << 20);
        }
        lm_sha256_final(&h, d);
        lm_sha256_hex(d, file_hash[i]);
        file_bytes[i] = (int64_t)m.len;
        total_bytes += (int64_t)m.len;
        unmap_file(&m);
        if (r) goto done;
        file_docs[i] = sc.file_docs;
        if (o->progress && o->progress(o->progress_ctx, "scan", i + 1, nfiles, 0)) {
            lm_fail(err, "interrupted");
            goto done;
        }
    }
    if (sc.ndocs == 0) {
        lm_fail(err, "empty corpus: no documents in %d file%s (all empty or white space)", nfiles,
                nfiles == 1 ? "" : "s");
        goto done;
    }
    is_val = calloc((size_t)sc.ndocs, 1);
    if (!is_val) {
        lm_fail(err, "out of memory");
        goto done;
    }
    uint64_t thresh = o->val_fraction >= 0.5 ? (uint64_t)1 << 63 : (uint64_t)ldexp(o->val_fraction, 64);
    int64_t nval = 0, argmin = 0;
    for (int64_t i = 0; i < sc.ndocs; i++) {
        is_val[i] = sc.u[i] < thresh;
        nval += is_val[i];
        if (sc.u[i] < sc.u[argmin]) argmin = i;
    }
    if (o->val_fraction > 0 && nval == 0 && sc.ndocs >= 2) is_val[argmin] = 1;

    /* Pass 2: tokenise. */
    struct stat ost;
    int fresh = lstat(out_dir, &ost) != 0;
    if (lm_mkdir_p(out_dir, err) || (fresh && lm_dir_mark_made(out_dir, err))) goto done;
    c.u = sc.u;
    c.is_val = is_val;
    c.bytes_total = total_bytes;
    for (int i = 0; i < nfiles; i++) {
        mapped m;
        if (map_file(files[i], &m, err)) goto done;
        c.path = files[i];
        c.jsonl = ends_with(files[i], ".jsonl");
        int r = each_doc(&m, c.jsonl, o->doc_sep, build_doc, &c);
        unmap_file(&m);
        if (r) goto done;
    }
    if (flush_shard(&c, LM_SPLIT_TRAIN) || flush_shard(&c, LM_SPLIT_VAL)) goto done;
    if (o->progress) o->progress(o->progress_ctx, "tokenize", total_bytes, total_bytes, c.tokens);
    remove_stale(out_dir, c.sb, o);
    if (write_index(&c, files, nfiles, file_docs, file_bytes, file_hash, tok_hex, err)) goto done;
    rc = 0;
done:
    for (int s = 0; s < 2; s++) {
        lm_ids_free(&c.sb[s].ids);
        free(c.sb[s].loss);
        free(c.sb[s].shards);
    }
    free(sc.u);
    free(is_val);
    free(file_docs);
    free(file_bytes);
    free(file_hash);
    lm_tokenizer_free(tok);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

int lm_shard_check(const void *bytes, size_t len, const char *name, lm_shard_info *info, lm_error *err) {
    const uint8_t *p = bytes;
    if (len < LM_SHARD_HEADER)
        return lm_fail(err, "%s: %zu bytes, shorter than the %d-byte shard header", name, len, LM_SHARD_HEADER);
    if (memcmp(p, LM_SHARD_MAGIC, 8)) return lm_fail(err, "%s: byte 0: not a token shard (magic is not \"LMTOKENS\")", name);
    uint32_t ver = get_u32(p + 8);
    if (ver != LM_SHARD_VERSION) return lm_fail(err, "%s: byte 8: shard version %u, expected %d", name, ver, LM_SHARD_VERSION);
    info->flags = get_u32(p + 12);
    if (info->flags & ~(uint32_t)LM_SHARD_MASKED)
        return lm_fail(err, "%s: byte 12: unknown flags 0x%x", name, info->flags);
    info->n = get_u64(p + 16);
    info->vocab_size = get_u32(p + 24);
    info->documents = get_u32(p + 28);
    memcpy(info->tokenizer_sha256, p + 32, 32);
    uint64_t per = (info->flags & LM_SHARD_MASKED) ? 5 : 4;
    if (info->n > (UINT64_MAX - LM_SHARD_HEADER) / 5 || LM_SHARD_HEADER + info->n * per != (uint64_t)len)
        return lm_fail(err, "%s: size %zu bytes, but the header's %llu tokens%s need %llu (truncated or corrupt)", name,
                       len, (unsigned long long)info->n, per == 5 ? " with loss mask" : "",
                       info->n > (UINT64_MAX - LM_SHARD_HEADER) / 5 ? 0ull
                                                                      : (unsigned long long)(LM_SHARD_HEADER + info->n * per));
    if (info->vocab_size == 0) return lm_fail(err, "%s: byte 24: vocab size 0", name);
    return 0;
}

typedef struct shard {
    char *path;
    const uint8_t *map;
    size_t len;
    const uint8_t *ids;       /* n little-endian u32 */
    const uint8_t *loss;      /* NULL or n bytes */
    int64_t n;
    int64_t docs;
    int64_t *doc_at;          /* document windows: the positions of the BOS tokens, ascending */
    int64_t ndoc_at;
} shard;

struct lm_data {
    shard *sh[2];
    int nsh[2];
    int64_t tokens[2], docs[2];
    int32_t vocab, bos, eos;
    char tok_hex[65];
    int doc_windows;          /* training windows start at a document's BOS ("windows": "document") */
};

/* The BOS positions of a shard, for document windows. */
static int index_documents(shard *sh, int32_t bos, lm_error *err) {
    int64_t n = 0;
    for (int64_t t = 0; t < sh->n; t++) n += get_u32(sh->ids + 4 * t) == (uint32_t)bos;
    if (!(sh->doc_at = malloc((size_t)(n ? n : 1) * sizeof *sh->doc_at))) return lm_fail(err, "out of memory");
    for (int64_t t = 0; t < sh->n; t++)
        if (get_u32(sh->ids + 4 * t) == (uint32_t)bos) sh->doc_at[sh->ndoc_at++] = t;
    return 0;
}

/* Documents of a shard that start a full window of T (+1) tokens. */
static int64_t doc_starts(const shard *sh, int64_t T) {
    int64_t lo = 0, hi = sh->ndoc_at; /* first index with doc_at + T >= n */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sh->doc_at[mid] + T < sh->n) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int json_int_field(const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          const char *path, lm_error *err) {
    const json_value *v = json_get(obj, key);
    if (!v) return lm_fail(err, "%s: missing \"%s\"", path, key);
    if (!json_as_int(v, out) || *out < lo || *out > hi)
        return lm_fail(err, "%s: byte %zu: \"%s\": expected an integer in [%lld, %lld]", path, v->offset, key,
                       (long long)lo, (long long)hi);
    return 0;
}

lm_data *lm_data_open(const char *dir, lm_error *err) {
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/index.json", dir);
    char *text = NULL;
    size_t tlen = 0;
    if (lm_read_file(ipath, (size_t)64 << 20, &text, &tlen, err)) return NULL;
    json_doc *doc = json_parse(text, tlen, err);
    free(text);
    if (!doc) {
        lm_fail_prefix(err, "%s", ipath);
        return NULL;
    }
    lm_data *d = calloc(1, sizeof *d);
    if (!d) {
        json_free(doc);
        lm_fail(err, "out of memory");
        return NULL;
    }
    const json_value *root = json_root(doc), *v;
    int64_t x;
    v = json_get(root, "format");
    if (!v || v->type != JSON_STRING || strcmp(v->str, "lemma-tokens")) {
        lm_fail(err, "%s: \"format\": expected \"lemma-tokens\"", ipath);
        goto fail;
    }
    if (json_int_field(root, "version", LM_SHARD_VERSION, LM_SHARD_VERSION, &x, ipath, err)) goto fail;
    if (json_int_field(root, "vocab_size", 1, INT32_MAX, &x, ipath, err)) goto fail;
    d->vocab = (int32_t)x;
    if (json_int_field(root, "eos_id", -1, INT32_MAX, &x, ipath, err)) goto fail;
    d->eos = (int32_t)x;
    if (json_int_field(root, "bos_id", -1, INT32_MAX, &x, ipath, err)) goto fail;
    d->bos = (int32_t)x;
    if ((v = json_get(root, "windows"))) {
        if (v->type != JSON_STRING || (strcmp(v->str, "document") && strcmp(v->str, "any"))) {
            lm_fail(err, "%s: byte %zu: \"windows\": expected \"document\" or \"any\"", ipath, v->offset);
            goto fail;
        }
        d->doc_windows = !strcmp(v->str, "document");
        if (d->doc_windows && d->bos < 0) {
            lm_fail(err, "%s: \"windows\": \"document\" needs a BOS token before every document (bos_id is -1)", ipath);
            goto fail;
        }
    }
    v = json_get(root, "tokenizer_sha256");
    uint8_t th[32];
    if (!v || v->type != JSON_STRING || lm_sha256_parse(v->str, th)) {
        lm_fail(err, "%s: \"tokenizer_sha256\": expected 64 hex digits", ipath);
        goto fail;
    }
    lm_sha256_hex(th, d->tok_hex);
    const json_value *splits = json_get(root, "splits");
    if (!splits || splits->type != JSON_OBJECT) {
        lm_fail(err, "%s: \"splits\": expected an object", ipath);
        goto fail;
    }
    for (int s = 0; s < 2; s++) {
        const json_value *sp = json_get(splits, split_names[s]);
        if (!sp) {
            lm_fail(err, "%s: \"splits\": missing \"%s\"", ipath, split_names[s]);
            goto fail;
        }
        const json_value *arr = json_get(sp, "shards");
        if (!arr || arr->type != JSON_ARRAY) {
            lm_fail(err, "%s: \"splits.%s.shards\": expected an array", ipath, split_names[s]);
            goto fail;
        }
        if (arr->len > 1000000) {
            lm_fail(err, "%s: \"splits.%s.shards\": too many shards", ipath, split_names[s]);
            goto fail;
        }
        d->sh[s] = calloc(arr->len ? arr->len : 1, sizeof(shard));
        if (!d->sh[s]) {
            lm_fail(err, "out of memory");
            goto fail;
        }
        for (const json_value *e = arr->child; e; e = e->next) {
            shard *sh = &d->sh[s][d->nsh[s]++];
            const json_value *f = json_get(e, "file");
            if (!f || f->type != JSON_STRING || !f->len || memchr(f->str, '/', f->len) || f->str[0] == '.' ||
                strlen(f->str) != f->len) {
                lm_fail(err, "%s: byte %zu: shard \"file\": expected a file name in the directory", ipath, e->offset);
                goto fail;
            }
            int64_t tokens;
            if (json_int_field(e, "tokens", 0, INT64_MAX / 8, &tokens, ipath, err)) goto fail;
            size_t pl = strlen(dir) + f->len + 2;
            sh->path = malloc(pl);
            if (!sh->path) {
                lm_fail(err, "out of memory");
                goto fail;
            }
            snprintf(sh->path, pl, "%s/%s", dir, f->str);
            mapped m;
            if (map_file(sh->path, &m, err)) goto fail;
            sh->map = (const uint8_t *)m.p;
            sh->len = m.len;
            lm_shard_info info;
            if (lm_shard_check(sh->map, sh->len, sh->path, &info, err)) goto fail;
            if ((int64_t)info.n != tokens) {
                lm_fail(err, "%s: %llu tokens, but %s says %lld", sh->path, (unsigned long long)info.n, ipath,
                        (long long)tokens);
                goto fail;
            }
            if (memcmp(info.tokenizer_sha256, th, 32)) {
                lm_fail(err, "%s: byte 32: tokenizer hash differs from %s's tokenizer_sha256", sh->path, ipath);
                goto fail;
            }
            if ((int32_t)info.vocab_size != d->vocab) {
                lm_fail(err, "%s: byte 24: vocab size %u, but %s says %d", sh->path, info.vocab_size, ipath, d->vocab);
                goto fail;
            }
            sh->n = (int64_t)info.n;
            sh->docs = info.documents;
            sh->ids = sh->map + LM_SHARD_HEADER;
            sh->loss = (info.flags & LM_SHARD_MASKED) ? sh->ids + 4 * info.n : NULL;
            if (d->doc_windows && index_documents(sh, d->bos, err)) goto fail;
            d->tokens[s] += sh->n;
            d->docs[s] += sh->docs;
        }
    }
    json_free(doc);
    return d;
fail:
    json_free(doc);
    lm_data_close(d);
    return NULL;
}

void lm_data_close(lm_data *d) {
    if (!d) return;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < d->nsh[s]; i++) {
            if (d->sh[s][i].len) munmap((void *)d->sh[s][i].map, d->sh[s][i].len);
            free(d->sh[s][i].path);
            free(d->sh[s][i].doc_at);
        }
        free(d->sh[s]);
    }
    free(d);
}

static int split_ok(int split) { return split == LM_SPLIT_TRAIN || split == LM_SPLIT_VAL; }

int64_t lm_data_tokens(const lm_data *d, int split) { return split_ok(split) ? d->tokens[split] : 0; }
int64_t lm_data_documents(const lm_data *d, int split) { return split_ok(split) ? d->docs[split] : 0; }
int lm_data_shard_count(const lm_data *d, int split) { return split_ok(split) ? d->nsh[split] : 0; }
int32_t lm_data_vocab_size(const lm_data *d) { return d->vocab; }
int32_t lm_data_eos(const lm_data *d) { return d->eos; }
int32_t lm_data_bos(const lm_data *d) { return d->bos; }
const char *lm_data_tokenizer_sha256(const lm_data *d) { return d->tok_hex; }

int64_t lm_data_starts(const lm_data *d, int split, int64_t T) {
    if (!split_ok(split) || T < 1) return 0;
    int64_t S = 0;
    for (int i = 0; i < d->nsh[split]; i++)
        if (d->doc_windows) S += doc_starts(&d->sh[split][i], T);
        else if (d->sh[split][i].n > T) S += d->sh[split][i].n - T;
    return S;
}

static uint64_t row_key(uint64_t seed, int split, int64_t step, int64_t row) {
    uint64_t k = lm_rng_u64(seed, LM_RNG_DATA, (uint64_t)step);
    k = lm_rng_u64(k, (uint64_t)split, 0);
    return lm_rng_u64(k, LM_RNG_DATA, (uint64_t)row);
}

int64_t lm_data_window_start(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t row, int64_t T) {
    int64_t S = lm_data_starts(d, split, T);
    if (S <= 0) return -1;
    uint64_t x = row_key(seed, split, step, row);
    return (int64_t)(((unsigned __int128)x * (uint64_t)S) >> 64);
}

/* Copies the window at shard sh, start s into one row. */
static int fill_row(const lm_data *d, const shard *sh, int64_t s, int64_t T, int32_t *ids, int32_t *targets,
                    lm_error *err) {
    const uint8_t *p = sh->ids + 4 * s;
    for (int64_t t = 0; t <= T; t++) {
        uint32_t id = get_u32(p + 4 * t);
        if (id >= (uint32_t)d->vocab)
            return lm_fail(err, "%s: byte %lld: token id %u >= vocab size %d", sh->path,
                           (long long)(LM_SHARD_HEADER + 4 * (s + t)), id, d->vocab);
        if (t < T) ids[t] = (int32_t)id;
        if (t > 0) targets[t - 1] = (sh->loss && !sh->loss[s + t]) ? -1 : (int32_t)id;
    }
    return 0;
}

/* Finds the shard holding the k-th start (in the split's order of starts). */
static const shard *locate(const lm_data *d, int split, int64_t T, int64_t k, int64_t *s) {
    for (int i = 0; i < d->nsh[split]; i++) {
        const shard *sh = &d->sh[split][i];
        int64_t here = d->doc_windows ? doc_starts(sh, T) : sh->n > T ? sh->n - T : 0;
        if (k < here) {
            *s = d->doc_windows ? sh->doc_at[k] : k;
            return sh;
        }
        k -= here;
    }
    return NULL;
}

static int check_shape(const lm_data *d, int split, int64_t B, int64_t T, lm_error *err) {
    if (!split_ok(split)) return lm_fail(err, "bad split %d", split);
    if (B < 1 || T < 1 || T > ((int64_t)1 << 40) || B > ((int64_t)1 << 40) / T)
        return lm_fail(err, "bad window shape B=%lld, T=%lld", (long long)B, (long long)T);
    if (lm_data_starts(d, split, T) <= 0)
        return lm_fail(err, "%s split: no shard holds more than %lld tokens (%lld tokens in %d shards)",
                       split_names[split], (long long)T, (long long)d->tokens[split], d->nsh[split]);
    return 0;
}

int lm_data_window(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t micro, int64_t B, int64_t T,
                   int32_t *ids, int32_t *targets, lm_error *err) {
    if (check_shape(d, split, B, T, err)) return -1;
    if (step < 0 || micro < 0) return lm_fail(err, "bad step %lld or micro-batch %lld", (long long)step, (long long)micro);
    for (int64_t b = 0; b < B; b++) {
        int64_t k = lm_data_window_start(d, split, seed, step, micro * B + b, T), s = 0;
        const shard *sh = locate(d, split, T, k, &s);
        if (fill_row(d, sh, s, T, ids + b * T, targets + b * T, err)) return -1;
    }
    return 0;
}

int64_t lm_data_eval_count(const lm_data *d, int split, int64_t T) {
    if (!split_ok(split) || T < 1) return 0;
    int64_t c = 0;
    for (int i = 0; i < d->nsh[split]; i++)
        if (d->sh[split][i].n > T) c += (d->sh[split][i].n - 1) / T;
    return c;
}

int lm_data_eval_window(const lm_data *d, int split, int64_t first, int64_t B, int64_t T, int32_t *ids,
                        int32_t *targets, lm_error *err) {
    if (check_shape(d, split, B, T, err)) return -1;
    int64_t count = lm_data_eval_count(d, split, T);
    if (first < 0 || first > count - B)
        return lm_fail(err, "%s split: eval rows %lld..%lld, but there are %lld windows of %lld tokens",
                       split_names[split], (long long)first, (long long)(first + B - 1), (long long)count, (long long)T);
    int i = 0;
    int64_t k = first;
    for (int64_t b = 0; b < B; b++, k++) {
        for (;;) {
            const shard *sh = &d->sh[split][i];
            int64_t w = sh->n > T ? (sh->n - 1) / T : 0;
            if (k < w) break;
            k -= w;
            i++;
        }
        if (fill_row(d, &d->sh[split][i], k * T, T, ids + b * T, targets + b * T, err)) return -1;
    }
    return 0;
}
