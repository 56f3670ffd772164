/* write.c — `lemma data`: input files to token shards and index.json
 * (formats in shards.h).
 *
 * The writer makes two passes over the inputs: the first cuts documents,
 * hashes them for the split rule and validates JSONL records (so that bad
 * input fails before anything is written, and the total size is known for
 * progress); the second tokenises and fills one shard buffer per split. */
#include "data/shards.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/sha256.h"
#include "core/stop.h"
#include "data/shards_internal.h"
#include "formats/json.h"
#include "formats/jsonw.h"
#include "tokenizer/tokenizer.h"

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

/* ---- helpers ---------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
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
    lm_put_u64(s8, seed);
    lm_sha256 h;
    lm_sha256_init(&h);
    lm_sha256_update(&h, s8, 8);
    lm_sha256_update(&h, p, n);
    lm_sha256_final(&h, d);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | d[i];
    return u;
}

static int scan_doc(void *vctx, const lm_doc_span *d) {
    scan_ctx *c = vctx;
    if (lm_stop_requested()) return lm_fail(c->err, "interrupted");
    if (c->jsonl) {
        lm_error e;
        json_doc *doc = json_parse(d->p, d->len, &e);
        if (!doc) return lm_fail(c->err, "%s:%zu: %s", c->path, d->line, e.msg);
        int rc = lm_data_check_record(json_root(doc), c->path, d->line, c->err);
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
    snprintf(buf, cap, "%s-%05d.bin", lm_split_name(split), index);
}

/* Writes the waiting tokens as one shard, streamed (no image of the file). */
static int flush_shard(build_ctx *c, int split) {
    split_buf *b = &c->sb[split];
    int64_t n = (int64_t)b->ids.n;
    if (!n) return 0;
    uint8_t head[LM_SHARD_HEADER];
    memset(head, 0, sizeof head);
    memcpy(head, LM_SHARD_MAGIC, 8);
    lm_put_u32(head + 8, LM_SHARD_VERSION);
    lm_put_u32(head + 12, b->masked ? LM_SHARD_MASKED : 0);
    lm_put_u64(head + 16, (uint64_t)n);
    lm_put_u32(head + 24, c->vocab);
    lm_put_u32(head + 28, (uint32_t)b->docs);
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
        for (; i < n && k < (int64_t)sizeof chunk / 4; i++, k++) lm_put_u32(chunk + 4 * k, (uint32_t)b->ids.ids[i]);
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

static int build_doc(void *vctx, const lm_doc_span *d) {
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
            size_t pl = strlen(lm_split_name(s));
            if (strncmp(e->d_name, lm_split_name(s), pl) || e->d_name[pl] != '-' || !ends_with(e->d_name, ".bin"))
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
                         lm_split_name(s), (long long)b->total_tokens, (long long)b->total_docs);
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
        lm_mapped m;
        if (lm_map_file(files[i], &m, err)) goto done;
        sc.path = files[i];
        sc.jsonl = ends_with(files[i], ".jsonl");
        sc.file_docs = 0;
        int r = lm_data_each_doc(&m, sc.jsonl, o->doc_sep, scan_doc, &sc);
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
        lm_unmap_file(&m);
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
        lm_mapped m;
        if (lm_map_file(files[i], &m, err)) goto done;
        c.path = files[i];
        c.jsonl = ends_with(files[i], ".jsonl");
        int r = lm_data_each_doc(&m, c.jsonl, o->doc_sep, build_doc, &c);
        lm_unmap_file(&m);
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
