/* load.c — tokenizer.json (and tokenizer_config.json) into an lm_tokenizer:
 * the model's vocabulary and merges, added tokens, the normalizer,
 * pre-tokenizer and decoder that lemma supports, bos/eos. See tokenizer.h
 * for the contract and the messages.
 *
 * Layout after load: every id's decoded bytes live in one blob; a hash table
 * maps the bytes of each vocab token that BPE can produce to its id; merges
 * are a hash table (left id, right id) -> (rank, new id); added tokens are in
 * two tries (normalized=false, normalized=true). The JSON tree is freed at
 * the end of load. */
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "tokenizer/tok_internal.h"

enum { MAX_IDS = 1 << 24 };

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

/* ---- tokenizer.json ------------------------------------------------------------ */

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
