/* json.c — strict recursive-descent JSON parser; see json.h.
 *
 * Memory: one arena of chunks (4 KiB, doubling up to 1 MiB) owned by the
 * json_doc. Values and decoded strings are carved from it; nothing is freed
 * until json_free. */
#include "formats/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_chunk;

struct json_doc {
    arena_chunk *chunks;
    size_t next_cap;        /* chunks grow 4 KiB, 8 KiB, ... up to 1 MiB */
    json_value *root;
};

typedef struct parser {
    const unsigned char *s;
    size_t n, pos;
    int depth;
    json_doc *doc;
    lm_error *err;
    int failed;
} parser;

static void *arena_alloc(json_doc *doc, size_t size) {
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < size) {
        if (doc->next_cap < 4096) doc->next_cap = 4096;
        size_t cap = size > doc->next_cap ? size : doc->next_cap;
        if (doc->next_cap < (1u << 20)) doc->next_cap *= 2;
        c = malloc(sizeof(arena_chunk) + cap);
        if (!c) return NULL;
        c->next = doc->chunks;
        c->used = 0;
        c->cap = cap;
        doc->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

static json_value *fail(parser *p, size_t at, const char *what) {
    if (!p->failed) {
        p->failed = 1;
        if (at < p->n)
            lm_fail(p->err, "byte %zu: %s", at, what);
        else
            lm_fail(p->err, "byte %zu (end of input): %s", at, what);
    }
    return NULL;
}

static void skip_ws(parser *p) {
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            p->pos++;
        else
            break;
    }
}

static json_value *new_value(parser *p, json_type t, size_t at) {
    json_value *v = arena_alloc(p->doc, sizeof *v);
    if (!v) return fail(p, at, "out of memory");
    memset(v, 0, sizeof *v);
    v->type = t;
    v->offset = at;
    return v;
}

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes left), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t min, cp;
    if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static int hex4(parser *p, size_t at, uint32_t *out) {
    if (p->n - at < 4) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Parses a string starting at the opening quote; sets *out and *out_len. */
static int parse_string_raw(parser *p, const char **out, size_t *out_len) {
    size_t start = p->pos;
    p->pos++; /* opening quote */
    /* First pass: find the end and check whether escapes occur. */
    size_t i = p->pos;
    int has_escape = 0;
    while (i < p->n && p->s[i] != '"') {
        unsigned char c = p->s[i];
        if (c == '\\') { has_escape = 1; i += 2; continue; }
        if (c < 0x20) { fail(p, i, "control character in string (expected \\u escape)"); return -1; }
        if (c >= 0x80) {
            size_t l = utf8_seq_len(p->s + i, p->n - i);
            if (!l) { fail(p, i, "invalid UTF-8 in string"); return -1; }
            i += l;
            continue;
        }
        i++;
    }
    if (i >= p->n) { fail(p, start, "unterminated string"); return -1; }
    size_t raw_len = i - p->pos;
    unsigned char *buf = arena_alloc(p->doc, raw_len + 1);
    if (!buf) { fail(p, start, "out of memory"); return -1; }
    if (!has_escape) {
        memcpy(buf, p->s + p->pos, raw_len);
        buf[raw_len] = 0;
        *out = (const char *)buf;
        *out_len = raw_len;
        p->pos = i + 1;
        return 0;
    }
    size_t o = 0, j = p->pos;
    while (j < i) {
        unsigned char c = p->s[j];
        if (c != '\\') { buf[o++] = c; j++; continue; }
        unsigned char e = p->s[j + 1];
        switch (e) {
        case '"': buf[o++] = '"'; j += 2; break;
        case '\\': buf[o++] = '\\'; j += 2; break;
        case '/': buf[o++] = '/'; j += 2; break;
        case 'b': buf[o++] = '\b'; j += 2; break;
        case 'f': buf[o++] = '\f'; j += 2; break;
        case 'n': buf[o++] = '\n'; j += 2; break;
        case 'r': buf[o++] = '\r'; j += 2; break;
        case 't': buf[o++] = '\t'; j += 2; break;
        case 'u': {
            uint32_t cp;
            if (!hex4(p, j + 2, &cp)) { fail(p, j, "expected 4 hex digits after \\u"); return -1; }
            j += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) { fail(p, j - 6, "lone low surrogate in \\u escape"); return -1; }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (j + 1 >= i || p->s[j] != '\\' || p->s[j + 1] != 'u' || !hex4(p, j + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    fail(p, j - 6, "high surrogate not followed by a low surrogate escape");
                    return -1;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                j += 6;
            }
            /* A \uXXXX escape is at most 6 source bytes for at most 3 output
             * bytes, and a pair is 12 for 4, so buf never overflows. */
            o += lm_utf8_encode(cp, buf + o);
            break;
        }
        default: fail(p, j, "invalid escape in string"); return -1;
        }
    }
    buf[o] = 0;
    *out = (const char *)buf;
    *out_len = o;
    p->pos = i + 1;
    return 0;
}

static json_value *parse_value(parser *p);

static json_value *parse_number(parser *p) {
    size_t start = p->pos, i = p->pos;
    int is_int = 1;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n) return fail(p, start, "expected a digit");
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') return fail(p, start, "leading zero in number");
    } else if (p->s[i] >= '1' && p->s[i] <= '9') {
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    } else {
        return fail(p, start, "expected a value");
    }
    if (i < p->n && p->s[i] == '.') {
        is_int = 0;
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, i, "expected a digit after '.'");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, i, "expected a digit in exponent");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    size_t len = i - start;
    char small[64];
    char *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return fail(p, start, "out of memory");
    memcpy(tmp, p->s + start, len);
    tmp[len] = 0;
    json_value *v = new_value(p, JSON_NUMBER, start);
    if (v) {
        v->num = strtod(tmp, NULL);
        if (!isfinite(v->num)) {
            /* 1e400: a number no double holds would become inf and be
             * written back as invalid JSON. */
            if (tmp != small) free(tmp);
            return fail(p, start, "number out of range");
        }
        if (is_int) {
            errno = 0;
            long long ll = strtoll(tmp, NULL, 10);
            if (errno == 0) {
                v->is_int = 1;
                v->inum = ll;
            }
        }
    }
    if (tmp != small) free(tmp);
    p->pos = i;
    return v;
}

static int match_word(parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->n - p->pos >= l && memcmp(p->s + p->pos, w, l) == 0) {
        p->pos += l;
        return 1;
    }
    return 0;
}

/* ---- duplicate keys ----
 *
 * A key that appears twice in one object is an error: readers disagree on
 * which value wins (Python and Hugging Face take the last, a first-match
 * lookup the first), so a document with one means different things to
 * different tools. Small objects compare each new key with the earlier ones;
 * from DUP_LINEAR members on, an open-addressing table of the members (or, for
 * json_parse_each_member, of key hashes and offsets) keeps the check O(1). */
enum { DUP_LINEAR = 16 };

static uint64_t key_hash(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

static int same_key(const json_value *a, const json_value *b) {
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

static json_value *fail_duplicate(parser *p, size_t key_at, const char *key, size_t key_len) {
    char q[160], what[200];
    snprintf(what, sizeof what, "duplicate key %s (a key may appear once per object)",
             json_quote(q, sizeof q, key, key_len));
    return fail(p, key_at, what);
}

typedef struct member_index {
    const json_value **slots;
    size_t cap;                  /* power of two, or 0 while linear */
} member_index;

/* m has just been appended to obj (obj->len counts it); fails when an earlier
 * member has the same key. */
static int check_key(parser *p, member_index *ix, const json_value *obj, const json_value *m, size_t key_at) {
    if (!ix->cap && obj->len <= DUP_LINEAR) {
        for (const json_value *o = obj->child; o != m; o = o->next)
            if (same_key(o, m)) return fail_duplicate(p, key_at, m->key, m->key_len), -1;
        return 0;
    }
    if (obj->len * 2 > ix->cap) { /* (re)build from the earlier members, which are distinct */
        size_t cap = 64;
        while (cap < obj->len * 4) cap *= 2;
        const json_value **slots = calloc(cap, sizeof *slots);
        if (!slots) return fail(p, key_at, "out of memory"), -1;
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
        for (const json_value *o = obj->child; o != m; o = o->next) {
            size_t h = (size_t)key_hash(o->key, o->key_len) & (cap - 1);
            while (slots[h]) h = (h + 1) & (cap - 1);
            slots[h] = o;
        }
    }
    size_t h = (size_t)key_hash(m->key, m->key_len) & (ix->cap - 1);
    for (; ix->slots[h]; h = (h + 1) & (ix->cap - 1))
        if (same_key(ix->slots[h], m)) return fail_duplicate(p, key_at, m->key, m->key_len), -1;
    ix->slots[h] = m;
    return 0;
}

static json_value *parse_container(parser *p, int is_object) {
    size_t start = p->pos;
    if (++p->depth > JSON_MAX_DEPTH) return fail(p, start, "nesting too deep");
    json_value *v = new_value(p, is_object ? JSON_OBJECT : JSON_ARRAY, start);
    if (!v) return NULL;
    p->pos++;
    skip_ws(p);
    char close = is_object ? '}' : ']';
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return v;
    }
    member_index ix = {NULL, 0};
    json_value *result = NULL;
    json_value **tail = &v->child;
    for (;;) {
        skip_ws(p);
        const char *key = NULL;
        size_t key_len = 0, key_at = p->pos;
        if (is_object) {
            if (p->pos >= p->n || p->s[p->pos] != '"') { fail(p, p->pos, "expected a string key"); goto out; }
            if (parse_string_raw(p, &key, &key_len)) goto out;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') { fail(p, p->pos, "expected ':'"); goto out; }
            p->pos++;
            skip_ws(p);
        }
        json_value *m = parse_value(p);
        if (!m) goto out;
        m->key = key;
        m->key_len = key_len;
        *tail = m;
        tail = &m->next;
        v->len++;
        if (is_object && check_key(p, &ix, v, m, key_at)) goto out;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->n && p->s[p->pos] == close) { p->pos++; break; }
        fail(p, p->pos, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto out;
    }
    p->depth--;
    result = v;
out:
    free(ix.slots);
    return result;
}

static json_value *parse_value(parser *p) {
    skip_ws(p);
    if (p->pos >= p->n) return fail(p, p->pos, "expected a value");
    size_t at = p->pos;
    unsigned char c = p->s[at];
    switch (c) {
    case '{': return parse_container(p, 1);
    case '[': return parse_container(p, 0);
    case '"': {
        json_value *v = new_value(p, JSON_STRING, at);
        if (!v) return NULL;
        if (parse_string_raw(p, &v->str, &v->len)) return NULL;
        return v;
    }
    case 't': if (match_word(p, "true")) return new_value(p, JSON_TRUE, at); break;
    case 'f': if (match_word(p, "false")) return new_value(p, JSON_FALSE, at); break;
    case 'n': if (match_word(p, "null")) return new_value(p, JSON_NULL, at); break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    }
    return fail(p, at, "expected a value");
}

json_doc *json_parse(const char *text, size_t len, lm_error *err) {
    json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) { lm_fail(err, "out of memory"); return NULL; }
    parser p = {.s = (const unsigned char *)text, .n = len, .doc = doc, .err = err};
    /* A UTF-8 byte order mark is tolerated, as many editors write one. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;
    doc->root = parse_value(&p);
    if (doc->root) {
        skip_ws(&p);
        if (p.pos != p.n) {
            fail(&p, p.pos, "unexpected data after the top-level value");
            doc->root = NULL;
        }
    }
    if (!doc->root) {
        json_free(doc);
        return NULL;
    }
    return doc;
}

/* Frees every chunk but the newest (the largest) and empties it. */
static void arena_reset(json_doc *doc) {
    arena_chunk *c = doc->chunks;
    if (!c) return;
    for (arena_chunk *o = c->next; o;) {
        arena_chunk *n = o->next;
        free(o);
        o = n;
    }
    c->next = NULL;
    c->used = 0;
}

/* The top-level key index of json_parse_each_member: the members' trees are
 * gone by the time a later key is seen, so it keeps the key's hash and source
 * offset, and decodes both keys again only when the hashes are equal. */
typedef struct key_slot {
    uint64_t hash;
    size_t at;                   /* offset of the key's opening quote; 0 = empty (the '{' is there) */
} key_slot;

static int decode_key_at(const parser *p, size_t at, json_doc *scratch, const char **key, size_t *len) {
    parser q = {.s = p->s, .n = p->n, .pos = at, .doc = scratch, .err = NULL};
    return parse_string_raw(&q, key, len);
}

static int top_key_seen(parser *p, key_slot **slots, size_t *cap, size_t count, const char *key, size_t key_len,
                        size_t at) {
    if ((count + 1) * 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        key_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns) return fail(p, at, "out of memory"), -1;
        for (size_t i = 0; i < *cap; i++) {
            if (!(*slots)[i].at) continue;
            size_t h = (size_t)(*slots)[i].hash & (ncap - 1);
            while (ns[h].at) h = (h + 1) & (ncap - 1);
            ns[h] = (*slots)[i];
        }
        free(*slots);
        *slots = ns;
        *cap = ncap;
    }
    uint64_t hash = key_hash(key, key_len);
    size_t h = (size_t)hash & (*cap - 1);
    for (; (*slots)[h].at; h = (h + 1) & (*cap - 1)) {
        if ((*slots)[h].hash != hash) continue;
        json_doc scratch = {0};
        const char *old;
        size_t old_len;
        int same = decode_key_at(p, (*slots)[h].at, &scratch, &old, &old_len) == 0 && old_len == key_len &&
                   memcmp(old, key, key_len) == 0;
        arena_reset(&scratch);
        free(scratch.chunks);
        if (same) return fail_duplicate(p, at, key, key_len), -1;
    }
    (*slots)[h].hash = hash;
    (*slots)[h].at = at;
    return 0;
}

int json_parse_each_member(const char *text, size_t len, json_member_fn fn, void *ctx, lm_error *err) {
    json_doc doc = {0};
    parser p = {.s = (const unsigned char *)text, .n = len, .doc = &doc, .err = err};
    key_slot *slots = NULL;
    size_t cap = 0, count = 0;
    int rc = -1;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;
    skip_ws(&p);
    if (p.pos >= p.n || p.s[p.pos] != '{') {
        static const char *what[256] = {['['] = "an array", ['"'] = "a string", ['t'] = "true", ['f'] = "false",
                                        ['n'] = "null", ['-'] = "a number", ['0'] = "a number", ['1'] = "a number",
                                        ['2'] = "a number", ['3'] = "a number", ['4'] = "a number", ['5'] = "a number",
                                        ['6'] = "a number", ['7'] = "a number", ['8'] = "a number", ['9'] = "a number"};
        const char *found = p.pos < p.n ? what[p.s[p.pos]] : NULL;
        char msg[64];
        snprintf(msg, sizeof msg, "expected an object%s%s", found ? ", found " : "", found ? found : "");
        fail(&p, p.pos, msg);
        return -1;
    }
    p.pos++;
    p.depth = 1;
    skip_ws(&p);
    if (p.pos < p.n && p.s[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            skip_ws(&p);
            const char *key;
            size_t key_len, key_at = p.pos;
            if (p.pos >= p.n || p.s[p.pos] != '"') { fail(&p, p.pos, "expected a string key"); goto out; }
            if (parse_string_raw(&p, &key, &key_len)) goto out;
            if (top_key_seen(&p, &slots, &cap, count, key, key_len, key_at)) goto out;
            count++;
            skip_ws(&p);
            if (p.pos >= p.n || p.s[p.pos] != ':') { fail(&p, p.pos, "expected ':'"); goto out; }
            p.pos++;
            json_value *m = parse_value(&p);
            if (!m) goto out;
            m->key = key;
            m->key_len = key_len;
            if (fn(ctx, m)) goto out; /* fn's error stands */
            arena_reset(&doc);
            skip_ws(&p);
            if (p.pos < p.n && p.s[p.pos] == ',') { p.pos++; continue; }
            if (p.pos < p.n && p.s[p.pos] == '}') { p.pos++; break; }
            fail(&p, p.pos, "expected ',' or '}'");
            goto out;
        }
    }
    skip_ws(&p);
    if (p.pos != p.n) {
        fail(&p, p.pos, "unexpected data after the top-level value");
        goto out;
    }
    rc = 0;
out:
    free(slots);
    arena_reset(&doc);
    free(doc.chunks);
    return rc;
}

const json_value *json_root(const json_doc *doc) { return doc ? doc->root : NULL; }

void json_free(json_doc *doc) {
    if (!doc) return;
    arena_chunk *c = doc->chunks;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    free(doc);
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (const json_value *m = obj->child; m; m = m->next)
        if (m->key_len == kl && memcmp(m->key, key, kl) == 0) return m;
    return NULL;
}

const json_value *json_at(const json_value *arr, size_t i) {
    if (!arr || arr->type != JSON_ARRAY) return NULL;
    const json_value *m = arr->child;
    while (m && i--) m = m->next;
    return m;
}

int json_as_int(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    if (v->is_int) { *out = v->inum; return 1; }
    /* 1.0 or 1e3 are integers too, when exact and in range. */
    if (isfinite(v->num) && v->num == floor(v->num) && fabs(v->num) < 9.007199254740992e15) {
        *out = (int64_t)v->num;
        return 1;
    }
    return 0;
}

int json_as_double(const json_value *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    *out = v->num;
    return 1;
}

int json_as_bool(const json_value *v, int *out) {
    if (!v || (v->type != JSON_TRUE && v->type != JSON_FALSE)) return 0;
    *out = v->type == JSON_TRUE;
    return 1;
}

const char *json_type_name(json_type t) {
    static const char *names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

const char *json_escape_byte(unsigned char c, char buf[8]) {
    static const char hx[] = "0123456789abcdef";
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    }
    if (c >= 0x20) return NULL;
    memcpy(buf, "\\u00", 4);
    buf[4] = hx[c >> 4];
    buf[5] = hx[c & 15];
    buf[6] = 0;
    return buf;
}

int json_write_string(char *buf, size_t cap, size_t *pos, const char *s, size_t len) {
    size_t o = *pos;
#define PUT(ch) do { if (o + 1 >= cap) return -1; buf[o++] = (char)(ch); } while (0)
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        char tmp[8];
        const char *esc = json_escape_byte((unsigned char)s[i], tmp);
        if (!esc) PUT(s[i]);
        else
            for (; *esc; esc++) PUT(*esc);
    }
    PUT('"');
#undef PUT
    buf[o] = 0;
    *pos = o;
    return 0;
}

const char *json_quote(char *buf, size_t cap, const char *s, size_t len) {
    size_t pos = 0;
    if (json_write_string(buf, cap, &pos, s, len) == 0) return buf;
    /* Too long: the longest prefix (on a UTF-8 boundary) that fits with "...". */
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        pos = 0;
        if (json_write_string(buf, cap - 3, &pos, s, mid) == 0) lo = mid;
        else hi = mid - 1;
    }
    while (lo > 0 && ((unsigned char)s[lo] & 0xc0) == 0x80) lo--;
    pos = 0;
    json_write_string(buf, cap - 3, &pos, s, lo);
    memcpy(buf + pos - 1, "...\"", 5);
    return buf;
}
