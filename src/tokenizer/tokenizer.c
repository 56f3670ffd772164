/* tokenizer.c — loading tokenizer.json, added tokens, the encode driver,
 * decode and the streaming decoder. See tokenizer.h for the contract and
 * pretok.c / bpe.c for the two encode stages.
 *
 * Layout after load: every id's decoded bytes live in one blob; a hash table
 * maps the bytes of each vocab token that BPE can produce to its id; merges
 * are a hash table (left id, right id) -> (rank, new id). The JSON tree is
 * freed at the end of load. */
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/utf8.h"
#include "formats/json.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

enum { MAX_IDS = 1 << 24 };

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ----------------------------- */

static int printable_byte(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174); }

uint32_t lm_bytelevel_char(unsigned b) {
    if (printable_byte(b)) return b;
    unsigned k = 0;
    for (unsigned x = 0; x < b; x++) k += !printable_byte(x);
    return 256 + k;
}

int lm_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned k = cp - 256;
    for (unsigned x = 0; x < 256; x++)
        if (!printable_byte(x) && k-- == 0) return (int)x;
    return -1;
}

/* Decodes a token string from byte-level characters into out (capacity >=
 * len); returns the byte count, or SIZE_MAX when a character is not in the
 * alphabet (HF then keeps the string's own UTF-8). */
static size_t bytelevel_decode(const char *str, size_t len, unsigned char *out, const int16_t *rev) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t l = lm_utf8_decode(s + i, &cp);
        if (cp >= 324 || rev[cp] < 0) return SIZE_MAX;
        out[o++] = (unsigned char)rev[cp];
        i += l;
    }
    return o;
}

/* ---- hashing ------------------------------------------------------------------- */

uint64_t lm_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0x100000001b3ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0x94d049bb133111ebULL;
    return lm_hash_mix(h);
}

int32_t lm_tok_lookup_bytes(const lm_tokenizer *tok, const unsigned char *s, size_t n) {
    if (!tok->enc_slot) return -1;
    uint64_t h = lm_hash_bytes(s, n);
    size_t i = (size_t)h & tok->enc_mask;
    uint32_t tag = (uint32_t)(h >> 32);
    const uint64_t *slots = tok->enc_slot;
    for (;;) {
        uint64_t e = slots[i];
        if (!e) return -1;
        if ((uint32_t)(e >> 32) == tag) {
            int32_t id = (int32_t)(uint32_t)e - 1;
            if (tok->len[id] == n && memcmp(tok->blob + tok->off[id], s, n) == 0) return id;
        }
        i = (i + 1) & tok->enc_mask;
    }
}

static int enc_insert(lm_tokenizer *tok, int32_t id) {
    const unsigned char *s = (const unsigned char *)tok->blob + tok->off[id];
    size_t n = tok->len[id];
    if (lm_tok_lookup_bytes(tok, s, n) >= 0) return 0; /* first wins */
    uint64_t h = lm_hash_bytes(s, n);
    size_t i = (size_t)h & tok->enc_mask;
    uint64_t *slots = tok->enc_slot;
    while (slots[i]) i = (i + 1) & tok->enc_mask;
    slots[i] = ((h >> 32) << 32) | (uint32_t)(id + 1);
    return 0;
}

static int merge_insert(merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t nid) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)lm_hash_mix(key) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX) m->count++;
    m->keys[i] = key; /* a repeated pair takes the later rank, as HF's map does */
    m->vals[i] = ((uint64_t)rank << 32) | (uint32_t)nid;
    return 0;
}

/* String -> id map used while loading (token strings as written in JSON). */
typedef struct str_map {
    const char **key;
    uint32_t *klen;
    int32_t *val;
    size_t mask;
} str_map;

static int smap_init(str_map *m, size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->klen = calloc(cap, sizeof *m->klen);
    m->val = calloc(cap, sizeof *m->val);
    m->mask = cap - 1;
    return (m->key && m->klen && m->val) ? 0 : -1;
}

static void smap_free(str_map *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
}

static int32_t smap_get(const str_map *m, const char *k, size_t n) {
    size_t i = (size_t)lm_hash_bytes(k, n) & m->mask;
    while (m->key[i]) {
        if (m->klen[i] == n && memcmp(m->key[i], k, n) == 0) return m->val[i];
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* Returns 1 when inserted, 0 when the key was there already. */
static int smap_put(str_map *m, const char *k, size_t n, int32_t v) {
    size_t i = (size_t)lm_hash_bytes(k, n) & m->mask;
    while (m->key[i]) {
        if (m->klen[i] == n && memcmp(m->key[i], k, n) == 0) return 0;
        i = (i + 1) & m->mask;
    }
    m->key[i] = k;
    m->klen[i] = (uint32_t)n;
    m->val[i] = v;
    return 1;
}

/* ---- added-token trie --------------------------------------------------------- */

static int trie_add(added_trie *t, const unsigned char *s, size_t n, int32_t token) {
    if (t->n == 0) {
        t->cap = 256;
        t->nodes = malloc(t->cap * sizeof *t->nodes);
        if (!t->nodes) return -1;
        t->nodes[0] = (trie_node){-1, -1, -1, 0};
        t->n = 1;
    }
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->nodes[cur].first_child;
        while (c >= 0 && t->nodes[c].byte != s[i]) c = t->nodes[c].next_sibling;
        if (c < 0) {
            if (t->n == t->cap) {
                trie_node *nn = realloc(t->nodes, 2 * t->cap * sizeof *nn);
                if (!nn) return -1;
                t->nodes = nn;
                t->cap *= 2;
            }
            c = (int32_t)t->n++;
            t->nodes[c] = (trie_node){-1, t->nodes[cur].first_child, -1, s[i]};
            t->nodes[cur].first_child = c;
        }
        cur = c;
    }
    if (t->nodes[cur].token < 0) t->nodes[cur].token = token; /* first of equal contents wins */
    t->first[s[0]] = 1;
    return 0;
}

/* Longest token starting at s[0]: its index, with *len; -1 when none. */
static int32_t trie_longest(const added_trie *t, const unsigned char *s, size_t n, size_t *len) {
    int32_t cur = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->nodes[cur].first_child;
        while (c >= 0 && t->nodes[c].byte != s[i]) c = t->nodes[c].next_sibling;
        if (c < 0) break;
        cur = c;
        if (t->nodes[cur].token >= 0) {
            best = t->nodes[cur].token;
            *len = i + 1;
        }
    }
    return best;
}

/* ---- loading --------------------------------------------------------------------- */

/* A regular file (a FIFO or device is refused without blocking), at most 1 GiB. */
static int read_file(const char *path, char **data, size_t *len, lm_error *err) {
    return lm_read_file(path, (size_t)1 << 30, data, len, err);
}

static int blob_add(lm_tokenizer *tok, const void *s, size_t n, uint32_t *off) {
    if (tok->blob_len + n + 1 > tok->blob_cap) {
        size_t cap = tok->blob_cap ? tok->blob_cap : 1 << 16;
        while (cap < tok->blob_len + n + 1) cap *= 2;
        char *nb = realloc(tok->blob, cap);
        if (!nb) return -1;
        tok->blob = nb;
        tok->blob_cap = cap;
    }
    if (tok->blob_len + n > UINT32_MAX) return -1;
    *off = (uint32_t)tok->blob_len;
    memcpy(tok->blob + tok->blob_len, s, n);
    tok->blob_len += n;
    return 0;
}

typedef struct loader {
    lm_tokenizer *tok;
    const char *name;
    lm_error *err;
    int16_t rev[324]; /* byte-level char -> byte */
} loader;

#define LFAIL(ld, v, ...) (lm_fail((ld)->err, __VA_ARGS__), lm_fail_prefix((ld)->err, "%s: byte %zu", (ld)->name, (v) ? (v)->offset : (size_t)0))

static const char *type_of(const json_value *v) {
    const json_value *t = json_get(v, "type");
    return t && t->type == JSON_STRING ? t->str : NULL;
}

static int get_bool(const json_value *obj, const char *key, int dflt) {
    int b;
    const json_value *v = json_get(obj, key);
    return json_as_bool(v, &b) ? b : dflt;
}

static int add_step(loader *ld, pt_step st) {
    pt_config *pc = &ld->tok->pt;
    pt_step *ns = realloc(pc->steps, (size_t)(pc->nsteps + 1) * sizeof *ns);
    if (!ns) return lm_fail(ld->err, "out of memory");
    pc->steps = ns;
    pc->steps[pc->nsteps++] = st;
    return 0;
}

static int parse_pretok(loader *ld, const json_value *v, const char *path) {
    if (!v || v->type == JSON_NULL) return 0;
    const char *t = type_of(v);
    if (!t) return LFAIL(ld, v, "%s: expected an object with a \"type\"", path);
    if (!strcmp(t, "Sequence")) {
        const json_value *arr = json_get(v, "pretokenizers");
        if (!arr || arr->type != JSON_ARRAY) return LFAIL(ld, v, "%s.pretokenizers: expected an array", path);
        int i = 0;
        for (const json_value *c = arr->child; c; c = c->next, i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i);
            if (parse_pretok(ld, c, sub)) return -1;
        }
        return 0;
    }
    if (!strcmp(t, "ByteLevel")) {
        if (get_bool(v, "add_prefix_space", 0))
            return LFAIL(ld, v, "%s: ByteLevel add_prefix_space=true is not supported", path);
        ld->tok->byte_level = 1;
        if (get_bool(v, "use_regex", 1)) return add_step(ld, (pt_step){.kind = PT_BYTELEVEL_REGEX});
        return 0;
    }
    if (!strcmp(t, "Digits")) {
        return add_step(ld, (pt_step){.kind = PT_DIGITS, .individual_digits = get_bool(v, "individual_digits", 0)});
    }
    if (!strcmp(t, "Split")) {
        pt_step st = {0};
        const json_value *b = json_get(v, "behavior");
        if (!b || b->type != JSON_STRING) return LFAIL(ld, v, "%s.behavior: expected a string", path);
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int found = -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(b->str, names[k])) found = k;
        if (found < 0)
            return LFAIL(ld, b, "%s.behavior: '%s' is not one of Removed, Isolated, MergedWithPrevious, "
                         "MergedWithNext, Contiguous", path, b->str);
        st.behavior = (split_behavior)found;
        st.invert = get_bool(v, "invert", 0);
        const json_value *p = json_get(v, "pattern");
        const json_value *re = json_get(p, "Regex"), *lit = json_get(p, "String");
        if (re && re->type == JSON_STRING) {
            st.kind = PT_SPLIT_REGEX;
            if (lm_pretok_compile(&st, re->str, re->len, ld->err)) {
                free(st.pattern);
                return lm_fail_prefix(ld->err, "%s: byte %zu: %s.pattern.Regex", ld->name, re->offset, path);
            }
        } else if (lit && lit->type == JSON_STRING) {
            st.kind = PT_SPLIT_STRING;
            st.literal = malloc(lit->len + 1);
            if (!st.literal) return lm_fail(ld->err, "out of memory");
            memcpy(st.literal, lit->str, lit->len + 1);
            st.literal_len = lit->len;
        } else {
            return LFAIL(ld, v, "%s.pattern: expected {\"Regex\": ...} or {\"String\": ...}", path);
        }
        if (add_step(ld, st)) {
            free(st.literal);
            free(st.pattern);
            return -1;
        }
        return 0;
    }
    return LFAIL(ld, v, "%s: pre-tokenizer type '%s' is not supported (Sequence, Split, ByteLevel, Digits are)",
                 path, t);
}

static int check_normalizer(loader *ld, const json_value *v, const char *path) {
    if (!v || v->type == JSON_NULL) return 0;
    const char *t = type_of(v);
    if (!t) return LFAIL(ld, v, "%s: expected an object with a \"type\"", path);
    if (!strcmp(t, "Sequence")) {
        const json_value *arr = json_get(v, "normalizers");
        if (!arr || arr->type != JSON_ARRAY) return LFAIL(ld, v, "%s.normalizers: expected an array", path);
        int i = 0;
        for (const json_value *c = arr->child; c; c = c->next, i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i);
            if (check_normalizer(ld, c, sub)) return -1;
        }
        return 0;
    }
    if (!strcmp(t, "NFC")) {
        ld->tok->nfc = 1; /* NFC is idempotent: several in a Sequence are one */
        return 0;
    }
    return LFAIL(ld, v, "%s: normalizer type '%s' is not supported (NFC, an empty Sequence or none are)", path, t);
}

static int check_decoder(loader *ld, const json_value *v, const char *path) {
    if (!v || v->type == JSON_NULL) return 0;
    const char *t = type_of(v);
    if (!t) return LFAIL(ld, v, "%s: expected an object with a \"type\"", path);
    if (!strcmp(t, "ByteLevel")) return 0;
    if (!strcmp(t, "Sequence")) {
        const json_value *arr = json_get(v, "decoders");
        if (!arr || arr->type != JSON_ARRAY) return LFAIL(ld, v, "%s.decoders: expected an array", path);
        int i = 0;
        for (const json_value *c = arr->child; c; c = c->next, i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i);
            if (check_decoder(ld, c, sub)) return -1;
        }
        return 0;
    }
    return LFAIL(ld, v, "%s: decoder type '%s' is not supported (ByteLevel is)", path, t);
}

/* Sets the decoded bytes of id from its token string. */
static int set_token(loader *ld, int32_t id, const char *str, size_t len, unsigned char *tmp) {
    lm_tokenizer *tok = ld->tok;
    size_t n = bytelevel_decode(str, len, tmp, ld->rev);
    const void *src = tmp;
    if (n == SIZE_MAX) {
        src = str;
        n = len;
    }
    if (blob_add(tok, src, n, &tok->off[id])) return lm_fail(ld->err, "out of memory");
    tok->len[id] = (uint32_t)n;
    return 0;
}

static int token_of(const json_value *v, const char **s, size_t *n) {
    if (v && v->type == JSON_STRING) { *s = v->str; *n = v->len; return 1; }
    const json_value *c = json_get(v, "content");
    if (c && c->type == JSON_STRING) { *s = c->str; *n = c->len; return 1; }
    return 0;
}

static int32_t find_named(const lm_tokenizer *tok, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int32_t id = lm_tokenizer_find(tok, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

static int build(loader *ld, const json_value *root, const json_value *config) {
    lm_tokenizer *tok = ld->tok;
    lm_error *err = ld->err;
    if (!root || root->type != JSON_OBJECT) return LFAIL(ld, root, "expected a JSON object at the top");
    const json_value *model = json_get(root, "model");
    if (!model || model->type != JSON_OBJECT) return LFAIL(ld, root, "\"model\": expected an object");
    const char *mt = type_of(model);
    if (mt && strcmp(mt, "BPE"))
        return LFAIL(ld, model, "model.type: '%s' is not supported (only BPE)", mt);
    const json_value *vocab = json_get(model, "vocab"), *merges = json_get(model, "merges");
    if (!vocab || vocab->type != JSON_OBJECT) return LFAIL(ld, model, "model.vocab: expected an object");
    if (!merges || merges->type != JSON_ARRAY) return LFAIL(ld, model, "model.merges: expected an array");
    double dropout;
    if (json_as_double(json_get(model, "dropout"), &dropout) && dropout != 0.0)
        return LFAIL(ld, json_get(model, "dropout"), "model.dropout: BPE dropout is not supported");
    const char *pfx[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const json_value *x = json_get(model, pfx[k]);
        if (x && x->type == JSON_STRING && x->len)
            return LFAIL(ld, x, "model.%s: not supported for byte-level BPE", pfx[k]);
    }
    tok->ignore_merges = get_bool(model, "ignore_merges", 0);
    if (check_normalizer(ld, json_get(root, "normalizer"), "normalizer")) return -1;
    if (check_decoder(ld, json_get(root, "decoder"), "decoder")) return -1;
    if (parse_pretok(ld, json_get(root, "pre_tokenizer"), "pre_tokenizer")) return -1;
    if (!tok->byte_level)
        return LFAIL(ld, root, "pre_tokenizer: no ByteLevel step: only byte-level BPE tokenizers are supported");
    pt_config *pc = &tok->pt;
    pc->deepseek = pc->nsteps == 3;
    for (int k = 0; k < pc->nsteps && pc->deepseek; k++)
        pc->deepseek = pc->steps[k].kind == PT_SPLIT_REGEX && pc->steps[k].hand == k + 1 &&
                       pc->steps[k].behavior == SB_ISOLATED && !pc->steps[k].invert;

    /* ids: vocab and added tokens */
    const json_value *added = json_get(root, "added_tokens");
    if (added && added->type != JSON_ARRAY && added->type != JSON_NULL)
        return LFAIL(ld, added, "added_tokens: expected an array");
    int64_t maxid = -1;
    for (const json_value *e = vocab->child; e; e = e->next) {
        int64_t id;
        if (!json_as_int(e, &id) || id < 0 || id >= MAX_IDS)
            return LFAIL(ld, e, "model.vocab[\"%.*s\"]: expected an id in [0, %d)", (int)(e->key_len > 60 ? 60 : e->key_len),
                         e->key, MAX_IDS);
        if (id > maxid) maxid = id;
    }
    size_t nadded = 0;
    if (added && added->type == JSON_ARRAY)
        for (const json_value *e = added->child; e; e = e->next, nadded++) {
            int64_t id;
            const char *c;
            size_t cl;
            if (!json_as_int(json_get(e, "id"), &id) || id < 0 || id >= MAX_IDS)
                return LFAIL(ld, e, "added_tokens[%zu].id: expected an id in [0, %d)", nadded, MAX_IDS);
            if (!token_of(e, &c, &cl) || cl == 0)
                return LFAIL(ld, e, "added_tokens[%zu].content: expected a non-empty string", nadded);
            if (id > maxid) maxid = id;
        }
    if (maxid < 0) return LFAIL(ld, vocab, "model.vocab: empty");
    tok->nids = (int32_t)(maxid + 1);
    tok->off = calloc((size_t)tok->nids, sizeof *tok->off);
    tok->len = malloc((size_t)tok->nids * sizeof *tok->len);
    tok->whole = calloc((size_t)tok->nids, 1);
    tok->kind = calloc((size_t)tok->nids, 1);
    if (!tok->off || !tok->len || !tok->whole || !tok->kind) return lm_fail(err, "out of memory");
    for (int32_t i = 0; i < tok->nids; i++) tok->len[i] = LM_TOK_NONE;

    size_t nvocab = vocab->len;
    str_map sm = {0};
    if (smap_init(&sm, nvocab)) { smap_free(&sm); return lm_fail(err, "out of memory"); }
    size_t tmpcap = 1024;
    unsigned char *tmp = malloc(tmpcap);
    int rc = tmp ? 0 : lm_fail(err, "out of memory");
    for (const json_value *e = vocab->child; e && !rc; e = e->next) {
        int64_t id64 = 0;
        json_as_int(e, &id64);
        int32_t id = (int32_t)id64;
        if (tok->kind[id] & 4) {
            rc = LFAIL(ld, e, "model.vocab: id %d is given to two tokens", id);
            break;
        }
        if (!smap_put(&sm, e->key, e->key_len, id)) {
            rc = LFAIL(ld, e, "model.vocab: token \"%.*s\" appears twice", (int)(e->key_len > 60 ? 60 : e->key_len), e->key);
            break;
        }
        if (e->key_len > tmpcap) {
            tmpcap = e->key_len * 2;
            unsigned char *nt = realloc(tmp, tmpcap);
            if (!nt) { rc = lm_fail(err, "out of memory"); break; }
            tmp = nt;
        }
        tok->kind[id] |= 4;
        rc = set_token(ld, id, e->key, e->key_len, tmp);
    }

    /* the encode index: vocab tokens written in byte-level characters */
    if (!rc) {
        size_t cap = 16;
        while (cap < nvocab * 2) cap *= 2;
        tok->enc_slot = calloc(cap, sizeof(uint64_t));
        tok->enc_mask = cap - 1;
        if (!tok->enc_slot) rc = lm_fail(err, "out of memory");
    }
    for (const json_value *e = vocab->child; e && !rc; e = e->next) {
        int32_t id = smap_get(&sm, e->key, e->key_len);
        if (bytelevel_decode(e->key, e->key_len, tmp, ld->rev) != SIZE_MAX) enc_insert(tok, id);
    }
    for (int b = 0; b < 256 && !rc; b++) {
        unsigned char c = (unsigned char)b;
        tok->byte_id[b] = lm_tok_lookup_bytes(tok, &c, 1);
    }
    const json_value *unk = json_get(model, "unk_token");
    (void)unk; /* byte-level: every byte has a token in practice; a missing one is dropped like HF without unk */

    /* merges */
    if (!rc) {
        size_t cap = 16;
        while (cap < merges->len * 2) cap *= 2;
        tok->merges.keys = malloc(cap * sizeof(uint64_t));
        tok->merges.vals = malloc(cap * sizeof(uint64_t));
        tok->merges.mask = cap - 1;
        if (!tok->merges.keys || !tok->merges.vals) rc = lm_fail(err, "out of memory");
        else memset(tok->merges.keys, 0xff, cap * sizeof(uint64_t));
    }
    char *cat = NULL;
    size_t catcap = 0;
    size_t rank = 0;
    for (const json_value *m = merges->child; m && !rc; m = m->next, rank++) {
        const char *a, *b;
        size_t al, bl;
        if (m->type == JSON_STRING) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                rc = LFAIL(ld, m, "model.merges[%zu]: expected \"left right\" with exactly one space", rank);
                break;
            }
            a = m->str;
            al = (size_t)(sp - m->str);
            b = sp + 1;
            bl = m->len - al - 1;
        } else if (m->type == JSON_ARRAY && m->len == 2 && m->child->type == JSON_STRING &&
                   m->child->next->type == JSON_STRING) {
            a = m->child->str;
            al = m->child->len;
            b = m->child->next->str;
            bl = m->child->next->len;
        } else {
            rc = LFAIL(ld, m, "model.merges[%zu]: expected \"left right\" or [\"left\", \"right\"]", rank);
            break;
        }
        int32_t ia = smap_get(&sm, a, al), ib = smap_get(&sm, b, bl);
        if (ia < 0 || ib < 0) {
            const char *u = ia < 0 ? a : b;
            size_t ul = ia < 0 ? al : bl;
            rc = LFAIL(ld, m, "model.merges[%zu]: token \"%.*s\" is not in the vocab", rank, (int)(ul > 60 ? 60 : ul), u);
            break;
        }
        if (al + bl > catcap) {
            catcap = (al + bl) * 2;
            char *nc = realloc(cat, catcap);
            if (!nc) { rc = lm_fail(err, "out of memory"); break; }
            cat = nc;
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int32_t in = smap_get(&sm, cat, al + bl);
        if (in < 0) {
            rc = LFAIL(ld, m, "model.merges[%zu]: the merged token \"%.*s\" is not in the vocab", rank,
                       (int)(al + bl > 60 ? 60 : al + bl), cat);
            break;
        }
        if (rank >= UINT32_MAX) { rc = LFAIL(ld, m, "model.merges: too many merges"); break; }
        merge_insert(&tok->merges, ia, ib, (uint32_t)rank, in);
    }
    tok->nmerges = rank;
    free(cat);
    smap_free(&sm);

    /* added tokens */
    if (!rc && nadded) {
        tok->added = calloc(nadded, sizeof *tok->added);
        if (!tok->added) rc = lm_fail(err, "out of memory");
    }
    size_t k = 0;
    if (!rc && added && added->type == JSON_ARRAY)
        for (const json_value *e = added->child; e && !rc; e = e->next, k++) {
            int64_t id;
            const char *c;
            size_t cl;
            json_as_int(json_get(e, "id"), &id);
            token_of(e, &c, &cl);
            added_token *at = &tok->added[k];
            at->id = (int32_t)id;
            at->special = (uint8_t)get_bool(e, "special", 0);
            at->lstrip = (uint8_t)get_bool(e, "lstrip", 0);
            at->rstrip = (uint8_t)get_bool(e, "rstrip", 0);
            at->single_word = (uint8_t)get_bool(e, "single_word", 0);
            at->normalized = (uint8_t)get_bool(e, "normalized", !at->special);
            uint32_t off;
            if (blob_add(tok, c, cl, &off)) { rc = lm_fail(err, "out of memory"); break; }
            at->len = (uint32_t)cl;
            at->content = (const char *)(uintptr_t)off; /* fixed up below, the blob may move */
            if (cl > tmpcap) {
                tmpcap = cl * 2;
                unsigned char *nt = realloc(tmp, tmpcap);
                if (!nt) { rc = lm_fail(err, "out of memory"); break; }
                tmp = nt;
            }
            rc = set_token(ld, at->id, c, cl, tmp);
            tok->kind[at->id] |= 1 | (at->special ? 2 : 0);
        }
    tok->nadded = k;
    free(tmp);
    if (rc) return rc;
    for (size_t i = 0; i < tok->nadded; i++) {
        added_token *at = &tok->added[i];
        at->content = tok->blob + (uintptr_t)at->content;
        added_trie *t = at->normalized ? &tok->trie_norm : &tok->trie_raw;
        if (trie_add(t, (const unsigned char *)at->content, at->len, (int32_t)i)) return lm_fail(err, "out of memory");
    }

    /* bos / eos */
    tok->bos = tok->eos = -1;
    if (config && config->type == JSON_OBJECT) {
        const char *s;
        size_t n;
        char buf[256];
        if (token_of(json_get(config, "bos_token"), &s, &n) && n < sizeof buf) {
            memcpy(buf, s, n);
            buf[n] = 0;
            tok->bos = lm_tokenizer_find(tok, buf);
        }
        if (token_of(json_get(config, "eos_token"), &s, &n) && n < sizeof buf) {
            memcpy(buf, s, n);
            buf[n] = 0;
            tok->eos = lm_tokenizer_find(tok, buf);
        }
    }
    static const char *const bos_names[] = {"<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "<s>",
                                            "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "</s>",
                                            "<|end_of_text|>", "<|endoftext|>", NULL};
    if (tok->bos < 0) tok->bos = find_named(tok, bos_names);
    if (tok->eos < 0) tok->eos = find_named(tok, eos_names);
    snprintf(tok->desc, sizeof tok->desc, "BPE, %d ids, %zu merges, %zu added, %spre-tokenizer %s", tok->nids,
             tok->nmerges, tok->nadded, tok->nfc ? "NFC, " : "", pc->deepseek ? "deepseek-v3 (built-in scanner)" : "generic");
    return 0;
}

lm_tokenizer *lm_tokenizer_load_mem(const char *json, size_t len, const char *config_json, size_t config_len,
                                    const char *name, lm_error *err) {
    lm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) { lm_fail(err, "out of memory"); return NULL; }
    tok->max_piece = 1 << 20;
    loader ld = {.tok = tok, .name = name ? name : "tokenizer.json", .err = err};
    snprintf(tok->name, sizeof tok->name, "%s", ld.name);
    for (int i = 0; i < 324; i++) ld.rev[i] = -1;
    for (unsigned b = 0; b < 256; b++) ld.rev[lm_bytelevel_char(b)] = (int16_t)b;
    json_doc *doc = json_parse(json, len, err);
    if (!doc) {
        lm_fail_prefix(err, "%s", ld.name);
        lm_tokenizer_free(tok);
        return NULL;
    }
    json_doc *cdoc = NULL;
    if (config_json) {
        lm_error cerr;
        cdoc = json_parse(config_json, config_len, &cerr); /* a broken config only loses bos/eos */
    }
    int rc = build(&ld, json_root(doc), cdoc ? json_root(cdoc) : NULL);
    json_free(doc);
    json_free(cdoc);
    if (rc) {
        lm_tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

lm_tokenizer *lm_tokenizer_load(const char *path, lm_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        lm_fail(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t pl = strlen(path);
    char *jpath = malloc(pl + 32), *cpath = malloc(pl + 32);
    if (!jpath || !cpath) {
        free(jpath);
        free(cpath);
        lm_fail(err, "out of memory");
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(jpath, pl + 32, "%s/tokenizer.json", path);
        snprintf(cpath, pl + 32, "%s/tokenizer_config.json", path);
    } else {
        memcpy(jpath, path, pl + 1);
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path + 1) : 0;
        memcpy(cpath, path, dl);
        memcpy(cpath + dl, "tokenizer_config.json", 22);
    }
    char *data = NULL, *cdata = NULL;
    size_t len = 0, clen = 0;
    lm_tokenizer *tok = NULL;
    if (read_file(jpath, &data, &len, err) == 0) {
        lm_error cerr;
        if (read_file(cpath, &cdata, &clen, &cerr) != 0) cdata = NULL;
        tok = lm_tokenizer_load_mem(data, len, cdata, clen, jpath, err);
    }
    free(data);
    free(cdata);
    free(jpath);
    free(cpath);
    return tok;
}

void lm_tokenizer_free(lm_tokenizer *tok) {
    if (!tok) return;
    free(tok->off);
    free(tok->len);
    free(tok->blob);
    free(tok->enc_slot);
    free(tok->merges.keys);
    free(tok->merges.vals);
    free(tok->whole);
    free(tok->kind);
    free(tok->added);
    free(tok->trie_raw.nodes);
    free(tok->trie_norm.nodes);
    lm_pretok_free(&tok->pt);
    free(tok);
}

/* ---- encode ------------------------------------------------------------------------ */

/* Per-call cache of encoded pieces. A long text repeats its words; a piece
 * seen before is copied from here instead of being looked up and merged
 * again. Keys point into the text being encoded (alive for the whole call).
 * Bounded: PC_SLOTS entries and PC_MAX_IDS ids, after which nothing more is
 * added. Used only for texts of PC_MIN_TEXT bytes or more. */
enum { PC_SLOTS = 1 << 16, PC_MAX_IDS = 1 << 22, PC_MIN_TEXT = 8192, PC_MAX_PIECE = 256 };

typedef struct pc_entry {
    uint64_t h;
    const unsigned char *s;
    uint32_t n, off, nids, used;
} pc_entry;

typedef struct piece_cache {
    pc_entry *e;   /* [PC_SLOTS] */
    size_t count;
    int32_t *ids;
    size_t nids, cap;
} piece_cache;

typedef struct enc_ctx {
    const lm_tokenizer *tok;
    const unsigned char *base;
    lm_ids *out;
    bpe_scratch sc;
    lm_error *err;
    piece_cache *pc;
    lm_text *norm;   /* NFC-normalized copies made during the call, freed at its end */
    size_t nnorm, norm_cap;
} enc_ctx;

static int emit_piece(void *p, size_t a, size_t b) {
    enc_ctx *c = p;
    size_t n = b - a;
    const unsigned char *s = c->base + a;
    if (n > c->tok->max_piece)
        return lm_fail(c->err, "a single pre-token of %zu bytes exceeds the limit of %zu bytes", n, c->tok->max_piece);
    piece_cache *pc = c->pc;
    if (!pc || n < 2 || n > PC_MAX_PIECE) {
        if (lm_bpe_encode_piece(c->tok, s, n, c->out, &c->sc)) return lm_fail(c->err, "out of memory");
        return 0;
    }
    uint64_t h = lm_hash_bytes(s, n);
    size_t i = (size_t)h & (PC_SLOTS - 1);
    for (;;) {
        pc_entry *e = &pc->e[i];
        if (!e->used) break;
        if (e->h == h && e->n == n && memcmp(e->s, s, n) == 0) {
            lm_ids *out = c->out;
            if (out->n + e->nids > out->cap) {
                size_t cap = out->cap ? out->cap : 64;
                while (cap < out->n + e->nids) cap *= 2;
                int32_t *nv = realloc(out->ids, cap * sizeof *nv);
                if (!nv) return lm_fail(c->err, "out of memory");
                out->ids = nv;
                out->cap = cap;
            }
            memcpy(out->ids + out->n, pc->ids + e->off, e->nids * sizeof(int32_t));
            out->n += e->nids;
            return 0;
        }
        i = (i + 1) & (PC_SLOTS - 1);
    }
    size_t n0 = c->out->n;
    if (lm_bpe_encode_piece(c->tok, s, n, c->out, &c->sc)) return lm_fail(c->err, "out of memory");
    size_t k = c->out->n - n0;
    if (pc->count < PC_SLOTS / 4 * 3 && pc->nids + k <= PC_MAX_IDS) {
        if (pc->nids + k > pc->cap) {
            size_t cap = pc->cap ? pc->cap * 2 : 1 << 16;
            while (cap < pc->nids + k) cap *= 2;
            int32_t *nv = realloc(pc->ids, cap * sizeof *nv);
            if (!nv) return 0; /* the cache is an optimisation only */
            pc->ids = nv;
            pc->cap = cap;
        }
        memcpy(pc->ids + pc->nids, c->out->ids + n0, k * sizeof(int32_t));
        pc->e[i] = (pc_entry){h, s, (uint32_t)n, (uint32_t)pc->nids, (uint32_t)k, 1};
        pc->nids += k;
        pc->count++;
    }
    return 0;
}

static int encode_plain(enc_ctx *c, const unsigned char *s, size_t n) {
    if (!n) return 0;
    c->base = s;
    c->err->msg[0] = 0;
    if (lm_pretok_run(&c->tok->pt, s, n, emit_piece, c, c->err)) {
        if (!c->err->msg[0]) lm_fail(c->err, "pre-tokenizer failed on %zu bytes of text without saying why", n);
        return lm_fail_prefix(c->err, "%s", c->tok->name);
    }
    return 0;
}

static int is_word_char(const unsigned char *s, size_t i, size_t n) {
    (void)n;
    uint32_t cp;
    lm_utf8_decode(s + i, &cp);
    return cp == '_' || (lm_uni_class(cp) & (LM_U_L | LM_U_N));
}

/* Start of the character that ends at s[end). */
static size_t char_start_before(const unsigned char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xc0) == 0x80) i--;
    return i;
}

static int encode_added(enc_ctx *c, const unsigned char *s, size_t n, int phase);

/* The normalizer on text that the non-normalized added tokens left over;
 * then phase `next` (normalized added tokens, or plain text). */
static int encode_normalized(enc_ctx *c, const unsigned char *s, size_t n, int next) {
    if (!c->tok->nfc || !n || lm_nfc_is_stable((const char *)s, n)) return next == 1 ? encode_added(c, s, n, 1) : encode_plain(c, s, n);
    if (c->nnorm == c->norm_cap) {
        size_t cap = c->norm_cap ? c->norm_cap * 2 : 8;
        lm_text *nn = realloc(c->norm, cap * sizeof *nn);
        if (!nn) return lm_fail(c->err, "out of memory");
        c->norm = nn;
        c->norm_cap = cap;
    }
    lm_text *t = &c->norm[c->nnorm++];
    memset(t, 0, sizeof *t);
    if (lm_nfc_append((const char *)s, n, t)) return lm_fail(c->err, "out of memory");
    const unsigned char *ns = (const unsigned char *)t->data;
    return next == 1 ? encode_added(c, ns, t->len, 1) : encode_plain(c, ns, t->len);
}

/* Splits s[0, n) by the tokens of one trie; gaps go to the next phase. */
static int encode_added(enc_ctx *c, const unsigned char *s, size_t n, int phase) {
    const lm_tokenizer *tok = c->tok;
    if (phase == 2) return encode_plain(c, s, n);
    const added_trie *t = phase == 0 ? &tok->trie_raw : &tok->trie_norm;
    if (t->n == 0) return phase == 0 ? encode_normalized(c, s, n, 1) : encode_plain(c, s, n);
    size_t start = 0, i = 0;
    while (i < n) {
        if (!t->first[s[i]]) { i++; continue; }
        size_t ml = 0;
        int32_t k = trie_longest(t, s + i, n - i, &ml);
        if (k < 0) { i++; continue; }
        const added_token *at = &tok->added[k];
        size_t ms = i, me = i + ml;
        if (at->single_word) {
            int before = ms > 0 && is_word_char(s, char_start_before(s, ms), n);
            int after = me < n && is_word_char(s, me, n);
            if (before || after) { /* discarded; like HF, the search goes on after it */
                i += ml;
                continue;
            }
        }
        if (at->lstrip)
            while (ms > start) {
                size_t p = char_start_before(s, ms);
                uint32_t cp;
                lm_utf8_decode(s + p, &cp);
                if (!(lm_uni_class(cp) & LM_U_WS)) break;
                ms = p;
            }
        if (at->rstrip)
            while (me < n) {
                uint32_t cp;
                size_t l = lm_utf8_decode(s + me, &cp);
                if (!(lm_uni_class(cp) & LM_U_WS)) break;
                me += l;
            }
        if ((phase == 0 ? encode_normalized(c, s + start, ms - start, 1) : encode_plain(c, s + start, ms - start)))
            return -1;
        c->base = s; /* restored for clarity; encode_plain sets its own base */
        if (lm_ids_push(c->out, at->id)) return lm_fail(c->err, "out of memory");
        i = start = me;
    }
    return phase == 0 ? encode_normalized(c, s + start, n - start, 1) : encode_plain(c, s + start, n - start);
}

int lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int flags, lm_ids *out,
                        lm_error *err) {
    lm_error local;
    if (!err) err = &local;
    if (len == 0) return 0;
    if (!text) return lm_fail(err, "encode: NULL text");
    lm_text clean = {0};
    const unsigned char *s = (const unsigned char *)text;
    if (!lm_utf8_valid(text, len)) {
        if (flags & LM_TOK_STRICT_UTF8) {
            size_t i = 0;
            while (i < len) {
                size_t l;
                if (s[i] < 0x80) { i++; continue; }
                if (lm_utf8_check(s + i, len - i, &l) != 1) break;
                i += l;
            }
            return lm_fail(err, "invalid UTF-8 at byte %zu of the text", i);
        }
        if (lm_utf8_sanitize(text, len, &clean)) return lm_fail(err, "out of memory");
        s = (const unsigned char *)clean.data;
        len = clean.len;
    }
    enc_ctx c = {.tok = tok, .out = out, .err = err};
    piece_cache pc = {0};
    if (len >= PC_MIN_TEXT) {
        pc.e = calloc(PC_SLOTS, sizeof *pc.e);
        if (pc.e) c.pc = &pc; /* without memory, no cache */
    }
    size_t n0 = out->n;
    int rc = (flags & LM_TOK_SPECIAL) ? encode_added(&c, s, len, 0) : encode_normalized(&c, s, len, 2);
    if (rc) out->n = n0;
    lm_bpe_scratch_free(&c.sc);
    free(pc.e);
    free(pc.ids);
    for (size_t i = 0; i < c.nnorm; i++) lm_text_free(&c.norm[i]);
    free(c.norm);
    lm_text_free(&clean);
    return rc;
}

/* ---- decode ----------------------------------------------------------------------- */

static int id_bytes(const lm_tokenizer *tok, int32_t id, const char **s, size_t *n, lm_error *err) {
    if (id < 0 || id >= tok->nids || tok->len[id] == LM_TOK_NONE)
        return lm_fail(err, "id %d is not a token (vocab size %d)", id, tok->nids);
    *s = tok->blob + tok->off[id];
    *n = tok->len[id];
    return 0;
}

int lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n, int flags, lm_text *out,
                        lm_error *err) {
    lm_text raw = {0};
    lm_text *dst = (flags & LM_TOK_RAW) ? out : &raw;
    size_t len0 = out->len;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if (id_bytes(tok, ids[i], &s, &l, err)) {
            lm_text_free(&raw);
            out->len = len0;
            if (out->data) out->data[len0] = 0;
            return -1;
        }
        if ((flags & LM_TOK_SKIP_SPECIAL) && (tok->kind[ids[i]] & 2)) continue;
        if (lm_text_append(dst, s, l)) { lm_text_free(&raw); return lm_fail(err, "out of memory"); }
    }
    int rc = 0;
    if (!(flags & LM_TOK_RAW)) {
        if (raw.len || !out->data) rc = lm_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
        if (rc) rc = lm_fail(err, "out of memory");
    } else if (!out->data) {
        rc = lm_text_append(out, "", 0);
    }
    lm_text_free(&raw);
    return rc;
}

void lm_tok_stream_init(lm_tok_stream *st, const lm_tokenizer *tok, int flags) {
    memset(st, 0, sizeof *st);
    st->tok = tok;
    st->flags = flags;
}

int lm_tok_stream_push(lm_tok_stream *st, int32_t id, lm_text *out, lm_error *err) {
    const char *s;
    size_t n;
    if (id_bytes(st->tok, id, &s, &n, err)) return -1;
    if ((st->flags & LM_TOK_SKIP_SPECIAL) && (st->tok->kind[id] & 2)) return 0;
    if (st->flags & LM_TOK_RAW) return lm_text_append(out, s, n) ? lm_fail(err, "out of memory") : 0;
    unsigned char stackbuf[512];
    size_t tot = (size_t)st->npend + n;
    unsigned char *buf = tot <= sizeof stackbuf ? stackbuf : malloc(tot);
    if (!buf) return lm_fail(err, "out of memory");
    memcpy(buf, st->pend, (size_t)st->npend);
    memcpy(buf + st->npend, s, n);
    size_t i = 0, run = 0;
    int rc = 0;
    st->npend = 0;
    while (i < tot && !rc) {
        if (buf[i] < 0x80) { i++; continue; }
        size_t l;
        int r = lm_utf8_check(buf + i, tot - i, &l);
        if (r == 1) { i += l; continue; }
        rc = lm_text_append(out, (const char *)buf + run, i - run);
        if (r < 0) { /* incomplete at the end: hold it back */
            memcpy(st->pend, buf + i, l);
            st->npend = (int)l;
            run = i = tot;
            break;
        }
        if (!rc) rc = lm_text_append(out, LM_UTF8_REPLACEMENT, 3);
        i += l;
        run = i;
    }
    if (!rc && run < tot) rc = lm_text_append(out, (const char *)buf + run, tot - run);
    if (buf != stackbuf) free(buf);
    return rc ? lm_fail(err, "out of memory") : 0;
}

int lm_tok_stream_finish(lm_tok_stream *st, lm_text *out) {
    int rc = 0;
    if (st->npend) rc = lm_text_append(out, LM_UTF8_REPLACEMENT, 3);
    st->npend = 0;
    return rc;
}

/* ---- accessors ---------------------------------------------------------------------- */

int32_t lm_tokenizer_vocab_size(const lm_tokenizer *tok) { return tok->nids; }

int32_t lm_tokenizer_find(const lm_tokenizer *tok, const char *text) {
    size_t n = strlen(text);
    for (size_t i = 0; i < tok->nadded; i++)
        if (tok->added[i].len == n && memcmp(tok->added[i].content, text, n) == 0) return tok->added[i].id;
    int32_t id = lm_tok_lookup_bytes(tok, (const unsigned char *)text, n);
    if (id >= 0) return id;
    for (int32_t i = 0; i < tok->nids; i++) /* vocab tokens not in byte-level form (e.g. DeepSeek's ids 0-2) */
        if (tok->len[i] == n && memcmp(tok->blob + tok->off[i], text, n) == 0) return i;
    return -1;
}

const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->nids || tok->len[id] == LM_TOK_NONE) return NULL;
    *len = tok->len[id];
    return tok->blob + tok->off[id];
}

int lm_tokenizer_is_special(const lm_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->nids && (tok->kind[id] & 2);
}

int lm_tokenizer_is_added(const lm_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->nids && (tok->kind[id] & 1);
}

int32_t lm_tokenizer_bos(const lm_tokenizer *tok) { return tok->bos; }
int32_t lm_tokenizer_eos(const lm_tokenizer *tok) { return tok->eos; }
size_t lm_tokenizer_max_piece(const lm_tokenizer *tok) { return tok->max_piece; }
void lm_tokenizer_set_max_piece(lm_tokenizer *tok, size_t bytes) { tok->max_piece = bytes; }
const char *lm_tokenizer_describe(const lm_tokenizer *tok) { return tok->desc; }
