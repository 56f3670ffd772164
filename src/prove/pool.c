/* pool.c — the append-only answer log of the proof pipeline; see pool.h. */
#include "prove/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "formats/json.h"
#include "formats/jsonw.h"

static const char *const kind_names[LM_KIND_COUNT] = {"proof", "verification", "meta_verification"};
const char *lm_kind_name(int kind) { return kind >= 0 && kind < LM_KIND_COUNT ? kind_names[kind] : "?"; }

struct lm_proof_pool {
    char *path;
    int fd;
    lm_pool_rec **recs;
    int n, cap, loaded;
    int *slots;              /* open addressing: record index + 1, 0 empty */
    size_t nslots, used;
};

void lm_prompt_hash(const char *prompt, size_t n, char out[17]) {
    uint8_t d[32];
    char hex[65];
    lm_sha256_buf(prompt, n, d);
    lm_sha256_hex(d, hex);
    memcpy(out, hex, 16);
    out[16] = 0;
}

/* ---- the index: (problem_id, id, prompt_hash) -> first received record ---- */

static uint64_t key_hash(const char *pid, const char *id, const char *ph) {
    uint64_t h = 1469598103934665603ull;
    const char *parts[3] = {pid, id, ph};
    for (int k = 0; k < 3; k++) {
        for (const unsigned char *s = (const unsigned char *)parts[k]; *s; s++) h = (h ^ *s) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("ab","c") and ("a","bc") differ */
    }
    return h;
}

static int key_eq(const lm_pool_rec *r, const char *pid, const char *id, const char *ph) {
    return !strcmp(r->problem_id, pid) && !strcmp(r->id, id) && !strcmp(r->prompt_hash, ph);
}

static int index_insert(lm_proof_pool *p, int idx);

static int index_grow(lm_proof_pool *p) {
    size_t ns = p->nslots ? p->nslots * 2 : 1024;
    int *s = calloc(ns, sizeof *s);
    if (!s) return -1;
    free(p->slots);
    p->slots = s;
    p->nslots = ns;
    p->used = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->recs[i]->failed && index_insert(p, i)) return -1;
    return 0;
}

/* Adds record idx unless an earlier received record has its keys. */
static int index_insert(lm_proof_pool *p, int idx) {
    if ((p->used + 1) * 2 > p->nslots && index_grow(p)) return -1;
    const lm_pool_rec *r = p->recs[idx];
    size_t mask = p->nslots - 1, i = key_hash(r->problem_id, r->id, r->prompt_hash) & mask;
    while (p->slots[i]) {
        if (key_eq(p->recs[p->slots[i] - 1], r->problem_id, r->id, r->prompt_hash)) return 0;
        i = (i + 1) & mask;
    }
    p->slots[i] = idx + 1;
    p->used++;
    return 0;
}

const lm_pool_rec *lm_proof_pool_find(const lm_proof_pool *p, const char *problem_id, const char *id, const char *prompt_hash) {
    if (!p->nslots) return NULL;
    size_t mask = p->nslots - 1, i = key_hash(problem_id, id, prompt_hash) & mask;
    while (p->slots[i]) {
        const lm_pool_rec *r = p->recs[p->slots[i] - 1];
        if (key_eq(r, problem_id, id, prompt_hash)) return r;
        i = (i + 1) & mask;
    }
    return NULL;
}

/* ---- records ---- */

void lm_pool_rec_clear(lm_pool_rec *r) {
    free(r->id);
    free(r->problem_id);
    for (int i = 0; i < r->n_parents; i++) free(r->parents[i]);
    free(r->parents);
    free(r->error);
    free(r->text);
    free(r->reasoning);
    free(r->finish_reason);
    free(r->backend);
    free(r->dropped);
    memset(r, 0, sizeof *r);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int rec_copy(lm_pool_rec *d, const lm_pool_rec *s) {
    *d = *s;
    d->id = dup_or_null(s->id);
    d->problem_id = dup_or_null(s->problem_id);
    d->error = dup_or_null(s->error);
    d->text = dup_or_null(s->text);
    d->reasoning = dup_or_null(s->reasoning);
    d->finish_reason = dup_or_null(s->finish_reason);
    d->backend = dup_or_null(s->backend);
    d->dropped = dup_or_null(s->dropped);
    d->parents = NULL;
    d->n_parents = 0;
    int bad = !d->id || !d->problem_id || (s->error && !d->error) || (s->text && !d->text) ||
              (s->reasoning && !d->reasoning) || (s->finish_reason && !d->finish_reason) ||
              (s->backend && !d->backend) || (s->dropped && !d->dropped);
    if (s->n_parents) {
        d->parents = calloc((size_t)s->n_parents, sizeof *d->parents);
        if (!d->parents) bad = 1;
        for (int i = 0; d->parents && i < s->n_parents; i++) {
            if (!(d->parents[i] = strdup(s->parents[i]))) bad = 1;
            d->n_parents = i + 1;
        }
    }
    if (bad) {
        lm_pool_rec_clear(d);
        return -1;
    }
    return 0;
}

static int put_key(lm_text *t, const char *k) {
    return jw_raw(t, ",\"") || jw_raw(t, k) || jw_raw(t, "\":");
}

static int put_opt_int(lm_text *t, int64_t v) { return v < 0 ? jw_raw(t, "null") : jw_int(t, v); }

int lm_pool_rec_format(const lm_pool_rec *r, lm_text *t) {
    char seed[17];
    snprintf(seed, sizeof seed, "%016" PRIx64, r->seed);
    int e = jw_raw(t, "{\"id\":") || jw_str(t, r->id) || put_key(t, "problem_id") || jw_str(t, r->problem_id) ||
            put_key(t, "kind") || jw_str(t, lm_kind_name(r->kind)) || put_key(t, "parent");
    if (r->parent_is_list) {
        e = e || jw_raw(t, "[");
        for (int i = 0; i < r->n_parents; i++) e = e || (i && jw_raw(t, ",")) || jw_str(t, r->parents[i]);
        e = e || jw_raw(t, "]");
    } else {
        e = e || jw_str(t, r->n_parents ? r->parents[0] : NULL);
    }
    e = e || put_key(t, "round") || jw_int(t, r->round);
    if (r->failed) {
        e = e || put_key(t, "failed") || jw_raw(t, "true") || put_key(t, "error") || jw_str(t, r->error);
    } else {
        e = e || put_key(t, "score") || (r->has_score ? jw_num(t, r->score) : jw_raw(t, "null"));
        if (r->kind == LM_KIND_PROOF)
            e = e || put_key(t, "self_score") || (r->has_self_score ? jw_num(t, r->self_score) : jw_raw(t, "null"));
        e = e || put_key(t, "text") || jw_str(t, r->text ? r->text : "") || put_key(t, "reasoning") ||
            jw_str(t, r->reasoning ? r->reasoning : "") || put_key(t, "finish_reason") ||
            jw_str(t, r->finish_reason ? r->finish_reason : "");
    }
    e = e || put_key(t, "backend") || jw_str(t, r->backend ? r->backend : "");
    if (!r->failed)
        e = e || put_key(t, "prompt_tokens") || put_opt_int(t, r->prompt_tokens) || put_key(t, "completion_tokens") ||
            put_opt_int(t, r->completion_tokens);
    e = e || put_key(t, "seconds") || jw_num(t, r->seconds) || put_key(t, "prompt_hash") || jw_str(t, r->prompt_hash) ||
        put_key(t, "seed") || jw_str(t, seed);
    if (!r->failed) e = e || put_key(t, "dropped") || jw_str(t, r->dropped);
    e = e || jw_raw(t, "}");
    return e ? -1 : 0;
}

/* ---- parsing a line ---- */

typedef struct line_ctx {
    const char *name;
    int64_t line;
    lm_error *err;
} line_ctx;

static int bad_field(line_ctx *c, const char *field, const char *want) {
    return lm_fail(c->err, "%s:%" PRId64 ": field \"%s\": expected %s", c->name, c->line, field, want);
}

static int get_str(line_ctx *c, const json_value *o, const char *k, int required, char **out) {
    const json_value *v = json_get(o, k);
    if (!v || v->type == JSON_NULL) {
        if (required) return bad_field(c, k, "a string");
        *out = NULL;
        return 0;
    }
    if (v->type != JSON_STRING || strlen(v->str) != v->len) return bad_field(c, k, "a string without NUL bytes");
    if (!(*out = strdup(v->str))) return lm_fail(c->err, "out of memory");
    return 0;
}

static int get_num(line_ctx *c, const json_value *o, const char *k, int *has, double *out) {
    const json_value *v = json_get(o, k);
    *has = 0;
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_NUMBER) return bad_field(c, k, "a number or null");
    *has = 1;
    *out = v->num;
    return 0;
}

static int get_tokens(line_ctx *c, const json_value *o, const char *k, int64_t *out) {
    const json_value *v = json_get(o, k);
    *out = -1;
    if (!v || v->type == JSON_NULL) return 0;
    if (!json_as_int(v, out) || *out < 0) return bad_field(c, k, "a non-negative integer or null");
    return 0;
}

int lm_pool_rec_parse(const char *s, size_t n, const char *name, int64_t line, lm_pool_rec *r, lm_error *err) {
    memset(r, 0, sizeof *r);
    r->line = line;
    line_ctx c = {name, line, err};
    json_doc *doc = json_parse(s, n, err);
    if (!doc) return lm_fail_prefix(err, "%s:%" PRId64, name, line);
    const json_value *o = json_root(doc);
    int rc = -1;
    char *kind = NULL, *ph = NULL, *seed = NULL;
    if (o->type != JSON_OBJECT) {
        lm_fail(err, "%s:%" PRId64 ": expected a JSON object", name, line);
        goto done;
    }
    if (get_str(&c, o, "id", 1, &r->id) || get_str(&c, o, "problem_id", 1, &r->problem_id) ||
        get_str(&c, o, "kind", 1, &kind))
        goto done;
    r->kind = -1;
    for (int k = 0; k < LM_KIND_COUNT; k++)
        if (!strcmp(kind, kind_names[k])) r->kind = k;
    if (r->kind < 0) {
        bad_field(&c, "kind", "proof, verification or meta_verification");
        goto done;
    }
    int64_t round;
    const json_value *v = json_get(o, "round");
    if (!v || !json_as_int(v, &round) || round < 0 || round > 1000000) {
        bad_field(&c, "round", "a non-negative integer");
        goto done;
    }
    r->round = (int)round;
    v = json_get(o, "parent");
    if (v && v->type == JSON_STRING) {
        r->parents = calloc(1, sizeof *r->parents);
        if (!r->parents || !(r->parents[0] = strdup(v->str))) {
            lm_fail(err, "out of memory");
            goto done;
        }
        r->n_parents = 1;
    } else if (v && v->type == JSON_ARRAY) {
        r->parent_is_list = 1;
        r->parents = calloc(v->len ? v->len : 1, sizeof *r->parents);
        if (!r->parents) {
            lm_fail(err, "out of memory");
            goto done;
        }
        for (const json_value *e = v->child; e; e = e->next) {
            if (e->type != JSON_STRING) {
                bad_field(&c, "parent", "null, an id or a list of ids");
                goto done;
            }
            if (!(r->parents[r->n_parents] = strdup(e->str))) {
                lm_fail(err, "out of memory");
                goto done;
            }
            r->n_parents++;
        }
    } else if (v && v->type != JSON_NULL) {
        bad_field(&c, "parent", "null, an id or a list of ids");
        goto done;
    }
    v = json_get(o, "failed");
    if (v && !json_as_bool(v, &r->failed)) {
        bad_field(&c, "failed", "true or false");
        goto done;
    }
    if (r->failed) {
        if (get_str(&c, o, "error", 1, &r->error)) goto done;
    } else {
        if (get_str(&c, o, "text", 1, &r->text) || get_str(&c, o, "reasoning", 0, &r->reasoning) ||
            get_str(&c, o, "finish_reason", 1, &r->finish_reason) || get_str(&c, o, "dropped", 0, &r->dropped) ||
            get_num(&c, o, "score", &r->has_score, &r->score) ||
            get_num(&c, o, "self_score", &r->has_self_score, &r->self_score) ||
            get_tokens(&c, o, "prompt_tokens", &r->prompt_tokens) ||
            get_tokens(&c, o, "completion_tokens", &r->completion_tokens))
            goto done;
        if (!r->reasoning && !(r->reasoning = strdup(""))) {
            lm_fail(err, "out of memory");
            goto done;
        }
    }
    int has;
    if (get_str(&c, o, "backend", 0, &r->backend) || get_num(&c, o, "seconds", &has, &r->seconds) ||
        get_str(&c, o, "prompt_hash", 1, &ph) || get_str(&c, o, "seed", 0, &seed))
        goto done;
    if (strlen(ph) != 16 || strspn(ph, "0123456789abcdef") != 16) {
        bad_field(&c, "prompt_hash", "16 lowercase hex digits");
        goto done;
    }
    memcpy(r->prompt_hash, ph, 17);
    if (seed) {
        char *end;
        errno = 0;
        r->seed = strtoull(seed, &end, 16);
        if (errno || !*seed || *end) {
            bad_field(&c, "seed", "hex digits");
            goto done;
        }
    }
    rc = 0;
done:
    free(kind);
    free(ph);
    free(seed);
    json_free(doc);
    if (rc) lm_pool_rec_clear(r);
    r->line = line;
    return rc;
}

/* ---- the file ---- */

static int push(lm_proof_pool *p, lm_pool_rec *owned) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        lm_pool_rec **r = realloc(p->recs, (size_t)cap * sizeof *r);
        if (!r) return -1;
        p->recs = r;
        p->cap = cap;
    }
    p->recs[p->n++] = owned;
    return owned->failed ? 0 : index_insert(p, p->n - 1);
}

static int write_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, char **out, size_t *len, const char *path, lm_error *err) {
    struct stat st;
    if (fstat(fd, &st)) return lm_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return lm_fail(err, "%s: not a regular file", path);
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) return lm_fail(err, "%s: out of memory reading %zu bytes", path, n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return lm_fail(err, "%s: read error: %s", path, r < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)r;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

lm_proof_pool *lm_proof_pool_open(const char *path, lm_text *warn, lm_error *err) {
    lm_proof_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        lm_fail(err, "out of memory");
        return NULL;
    }
    p->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        lm_fail(err, "%s: cannot open for appending: %s", path, strerror(errno));
        free(p->path);
        free(p);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    if (read_all(p->fd, &text, &len, path, err)) goto fail;
    size_t pos = 0;
    int64_t line = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t b = pos;
        while (b < end && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) b++;
        if (b < end) {
            lm_pool_rec r, *owned;
            if (lm_pool_rec_parse(text + pos, end - pos, path, line, &r, err)) {
                if (nl) goto fail;
                /* The last line, cut short by a crash mid-write. */
                char msg[600];
                snprintf(msg, sizeof msg,
                         "%s:%" PRId64 ": dropped an incomplete last line (%zu bytes, written when a run was stopped)\n",
                         path, line, end - pos);
                if (ftruncate(p->fd, (off_t)pos)) {
                    lm_fail(err, "%s: cannot drop the incomplete last line: %s", path, strerror(errno));
                    goto fail;
                }
                if (warn && lm_text_append(warn, msg, strlen(msg))) {
                    lm_fail(err, "out of memory");
                    goto fail;
                }
                break;
            }
            if (!nl && write_all(p->fd, "\n", 1)) { /* complete, only its newline was lost */
                lm_pool_rec_clear(&r);
                lm_fail(err, "%s: cannot write: %s", path, strerror(errno));
                goto fail;
            }
            if (!(owned = malloc(sizeof *owned))) {
                lm_pool_rec_clear(&r);
                lm_fail(err, "out of memory");
                goto fail;
            }
            *owned = r;
            if (push(p, owned)) {
                lm_pool_rec_clear(owned);
                free(owned);
                lm_fail(err, "out of memory");
                goto fail;
            }
        }
        pos = end + 1;
    }
    free(text);
    p->loaded = p->n;
    return p;
fail:
    free(text);
    lm_proof_pool_close(p);
    return NULL;
}

const lm_pool_rec *lm_proof_pool_append(lm_proof_pool *p, const lm_pool_rec *r, lm_error *err) {
    lm_text line = {0};
    lm_pool_rec *owned = malloc(sizeof *owned);
    if (!owned || rec_copy(owned, r) || lm_pool_rec_format(owned, &line) || lm_text_append(&line, "\n", 1)) {
        if (owned && owned->id) lm_pool_rec_clear(owned);
        free(owned);
        lm_text_free(&line);
        lm_fail(err, "out of memory");
        return NULL;
    }
    owned->line = p->n + 1;
    if (write_all(p->fd, line.data, line.len)) {
        lm_fail(err, "%s: cannot append: %s", p->path, strerror(errno));
        lm_text_free(&line);
        lm_pool_rec_clear(owned);
        free(owned);
        return NULL;
    }
    lm_text_free(&line);
    if (push(p, owned)) {
        lm_pool_rec_clear(owned);
        free(owned);
        lm_fail(err, "out of memory");
        return NULL;
    }
    return owned;
}

int lm_proof_pool_sync(lm_proof_pool *p, lm_error *err) {
    if (fdatasync(p->fd)) return lm_fail(err, "%s: fdatasync: %s", p->path, strerror(errno));
    return 0;
}

int lm_proof_pool_count(const lm_proof_pool *p) { return p->n; }
const lm_pool_rec *lm_proof_pool_at(const lm_proof_pool *p, int i) { return i >= 0 && i < p->n ? p->recs[i] : NULL; }
int lm_proof_pool_loaded(const lm_proof_pool *p) { return p->loaded; }

void lm_proof_pool_close(lm_proof_pool *p) {
    if (!p) return;
    if (p->fd >= 0) close(p->fd);
    for (int i = 0; i < p->n; i++) {
        lm_pool_rec_clear(p->recs[i]);
        free(p->recs[i]);
    }
    free(p->recs);
    free(p->slots);
    free(p->path);
    free(p);
}
