/* train.c — byte-level BPE trainer; see train.h.
 *
 * Counting: every fed text is cut at the special-token strings, pre-tokenized
 * with DeepSeek-V3's scanner and each piece counted in a hash map (word ->
 * count). Training: words become arrays of symbol ids; a hash map holds
 * every adjacent pair with its total count and the list of words it occurs
 * in; a max-heap of (count, pair) picks the next merge (stale entries are
 * re-queued with their current count when popped). Applying a merge to a
 * word subtracts the word's pairs, merges left to right (non-overlapping, as
 * HF does), and adds the new pairs back; only pairs with the new id can
 * grow, and those are (re)queued.
 *
 * Determinism: words are sorted by their bytes before training, ties between
 * equal counts go to the smaller (left id, right id), and no step depends on
 * hash order or thread timing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* qsort_r */
#endif
#include "tokenizer/train.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/stop.h"
#include "core/utf8.h"
#include "formats/jsonw.h"
#include "tokenizer/chat.h"
#include "tokenizer/tok_internal.h"

const char *const lm_bpe_special_tokens[LM_BPE_NSPECIAL] = {
    "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c\xe2\x96\x81pad\xe2\x96\x81\xef\xbd\x9c>",
    "<\xef\xbd\x9cUser\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>",
    "<think>",
    "</think>",
};
/* BOS, EOS and pad are "special" (dropped by skip_special_tokens). */
static const int special_flag[LM_BPE_NSPECIAL] = {1, 1, 1, 0, 0, 0, 0};

void lm_bpe_train_defaults(lm_bpe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab_size = 8000;
    o->min_frequency = 2;
    o->digit_group = 3;
}

typedef struct word {
    uint64_t off;   /* bytes in the arena (counting) / symbols in sym (training) */
    uint32_t len;
    int64_t count;
} word;

struct lm_bpe_trainer {
    lm_bpe_train_opts o;
    char *arena;
    size_t arena_len, arena_cap;
    word *w;
    size_t nw, wcap;
    uint32_t *slot; /* word index + 1 */
    size_t mask;
    lm_error *err;
    int failed;
    uint64_t pieces; /* counted so far; a stop request is polled every 64k */
};

static int arena_add(lm_bpe_trainer *t, const void *s, size_t n) {
    if (t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 20;
        while (cap < t->arena_len + n) cap *= 2;
        char *na = realloc(t->arena, cap);
        if (!na) return -1;
        t->arena = na;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena_len += n;
    return 0;
}

static int grow_words(lm_bpe_trainer *t) {
    size_t cap = t->wcap ? t->wcap * 2 : 4096;
    word *nw = realloc(t->w, cap * sizeof *nw);
    if (!nw) return -1;
    t->w = nw;
    t->wcap = cap;
    size_t scap = cap * 2;
    uint32_t *ns = calloc(scap, sizeof *ns);
    if (!ns) return -1;
    free(t->slot);
    t->slot = ns;
    t->mask = scap - 1;
    for (size_t i = 0; i < t->nw; i++) {
        size_t h = (size_t)lm_hash_bytes(t->arena + t->w[i].off, t->w[i].len) & t->mask;
        while (t->slot[h]) h = (h + 1) & t->mask;
        t->slot[h] = (uint32_t)(i + 1);
    }
    return 0;
}

static int count_piece(void *ctx, size_t a, size_t b) {
    lm_bpe_trainer *t = ((void **)ctx)[0];
    /* a stop request is seen within some 64k pieces (a few ms) */
    if (!(++t->pieces & 0xffff) && lm_stop_requested()) return -1;
    const unsigned char *s = ((void **)ctx)[1];
    size_t n = b - a;
    if (n > UINT32_MAX) return -1;
    if (t->nw * 2 >= t->wcap && grow_words(t)) return -1;
    size_t h = (size_t)lm_hash_bytes(s + a, n) & t->mask;
    while (t->slot[h]) {
        word *w = &t->w[t->slot[h] - 1];
        if (w->len == n && memcmp(t->arena + w->off, s + a, n) == 0) {
            w->count++;
            return 0;
        }
        h = (h + 1) & t->mask;
    }
    if (t->nw >= UINT32_MAX - 1) return -1;
    t->w[t->nw] = (word){t->arena_len, (uint32_t)n, 1};
    if (arena_add(t, s + a, n)) return -1;
    t->slot[h] = (uint32_t)(++t->nw);
    return 0;
}

lm_bpe_trainer *lm_bpe_trainer_new(const lm_bpe_train_opts *o, lm_error *err) {
    if (o->digit_group < 1 || o->digit_group > 3) {
        lm_fail(err, "digit group %d: expected 1, 2 or 3", o->digit_group);
        return NULL;
    }
    if (o->vocab_size < LM_BPE_NSPECIAL + 256) {
        lm_fail(err, "vocab size %d is too small: the special tokens and the 256 bytes need %d", o->vocab_size,
                LM_BPE_NSPECIAL + 256);
        return NULL;
    }
    lm_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t || grow_words(t)) {
        lm_bpe_trainer_free(t);
        lm_fail(err, "out of memory");
        return NULL;
    }
    t->o = *o;
    return t;
}

void lm_bpe_trainer_free(lm_bpe_trainer *t) {
    if (!t) return;
    free(t->arena);
    free(t->w);
    free(t->slot);
    free(t);
}

static int count_segment(lm_bpe_trainer *t, const unsigned char *s, size_t n) {
    void *ctx[2] = {t, (void *)s};
    return lm_pretok_deepseek_digits(s, n, t->o.digit_group, count_piece, ctx);
}

int lm_bpe_trainer_feed(lm_bpe_trainer *t, const char *text, size_t len, lm_error *err) {
    lm_text clean = {0};
    const unsigned char *s = (const unsigned char *)text;
    if (!lm_utf8_valid(text, len)) {
        if (lm_utf8_sanitize(text, len, &clean)) return lm_fail(err, "out of memory");
        s = (const unsigned char *)clean.data;
        len = clean.len;
    }
    size_t start = 0, i = 0;
    int rc = 0;
    while (i < len && !rc) {
        const unsigned char *lt = memchr(s + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - s);
        size_t best = 0;
        for (int k = 0; k < LM_BPE_NSPECIAL; k++) {
            size_t l = strlen(lm_bpe_special_tokens[k]);
            if (l > best && l <= len - i && memcmp(s + i, lm_bpe_special_tokens[k], l) == 0) best = l;
        }
        if (!best) { i++; continue; }
        rc = count_segment(t, s + start, i - start);
        i = start = i + best;
    }
    if (!rc) rc = count_segment(t, s + start, len - start);
    lm_text_free(&clean);
    if (rc && lm_stop_requested()) return lm_fail(err, "interrupted");
    return rc ? lm_fail(err, "out of memory while counting words") : 0;
}

/* ---- training -------------------------------------------------------------- */

typedef struct pair_info {
    int32_t a, b;
    int64_t count;
    uint32_t *words; /* indices of words it (once) occurred in; may repeat */
    uint32_t nwords, cap;
    uint32_t stamp;
} pair_info;

typedef struct trainer_state {
    pair_info *p;
    size_t np, pcap;
    uint32_t *pslot; /* pair index + 1 */
    size_t pmask;
    uint64_t *heap;  /* (count << 24 ... ) not packed: see heap_* */
    size_t hn, hcap;
} trainer_state;

static size_t pair_hash(int32_t a, int32_t b) {
    return (size_t)lm_hash_mix(((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
}

static int pairs_rehash(trainer_state *st, size_t cap) {
    uint32_t *ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    free(st->pslot);
    st->pslot = ns;
    st->pmask = cap - 1;
    for (size_t i = 0; i < st->np; i++) {
        size_t h = pair_hash(st->p[i].a, st->p[i].b) & st->pmask;
        while (st->pslot[h]) h = (h + 1) & st->pmask;
        st->pslot[h] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Index of pair (a, b), created when absent; -1 out of memory. */
static int64_t pair_get(trainer_state *st, int32_t a, int32_t b) {
    if ((st->np + 1) * 2 > st->pmask + 1 && pairs_rehash(st, (st->pmask + 1) * 2)) return -1;
    size_t h = pair_hash(a, b) & st->pmask;
    while (st->pslot[h]) {
        pair_info *p = &st->p[st->pslot[h] - 1];
        if (p->a == a && p->b == b) return st->pslot[h] - 1;
        h = (h + 1) & st->pmask;
    }
    if (st->np == st->pcap) {
        size_t cap = st->pcap ? st->pcap * 2 : 4096;
        pair_info *np = realloc(st->p, cap * sizeof *np);
        if (!np) return -1;
        st->p = np;
        st->pcap = cap;
    }
    st->p[st->np] = (pair_info){a, b, 0, NULL, 0, 0, 0};
    st->pslot[h] = (uint32_t)(st->np + 1);
    return (int64_t)st->np++;
}

static int pair_add_word(pair_info *p, uint32_t w) {
    if (p->nwords && p->words[p->nwords - 1] == w) return 0;
    if (p->nwords == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 4;
        uint32_t *nw = realloc(p->words, cap * sizeof *nw);
        if (!nw) return -1;
        p->words = nw;
        p->cap = cap;
    }
    p->words[p->nwords++] = w;
    return 0;
}

/* Heap entries: pair index with the count it was queued at. Order: higher
 * count first, then smaller (a, b). */
typedef struct hent {
    int64_t count;
    uint32_t pair;
} hent;

static int hless(const trainer_state *st, hent x, hent y) { /* x comes before y */
    if (x.count != y.count) return x.count > y.count;
    const pair_info *px = &st->p[x.pair], *py = &st->p[y.pair];
    if (px->a != py->a) return px->a < py->a;
    return px->b < py->b;
}

static int hpush(trainer_state *st, hent e) {
    hent *h = (hent *)st->heap;
    if (st->hn == st->hcap) {
        size_t cap = st->hcap ? st->hcap * 2 : 4096;
        hent *nh = realloc(h, cap * sizeof *nh);
        if (!nh) return -1;
        st->heap = (uint64_t *)nh;
        st->hcap = cap;
        h = nh;
    }
    size_t i = st->hn++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!hless(st, e, h[par])) break;
        h[i] = h[par];
        i = par;
    }
    h[i] = e;
    return 0;
}

static hent hpop(trainer_state *st) {
    hent *h = (hent *)st->heap;
    hent top = h[0], v = h[--st->hn];
    size_t i = 0, n = st->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hless(st, h[c + 1], h[c])) c++;
        if (!hless(st, h[c], v)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = v;
    return top;
}

static int cmp_word(const void *x, const void *y, void *arena) {
    const word *a = x, *b = y;
    const char *ar = arena;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(ar + a->off, ar + b->off, n);
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int putf(lm_text *out, const char *s) { return lm_text_append(out, s, strlen(s)); }

/* A token's bytes as byte-level characters. */
static int bytelevel_str(const unsigned char *s, size_t n, lm_text *out) {
    out->len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char u[4];
        size_t l = lm_utf8_encode(lm_bytelevel_char(s[i]), u);
        if (lm_text_append(out, (const char *)u, l)) return -1;
    }
    if (!out->data) return lm_text_append(out, "", 0);
    return 0;
}

static int write_json(const lm_bpe_trainer *t, char **tokbytes, const uint32_t *toklen, int32_t ntok,
                      const int32_t *ma, const int32_t *mb, size_t nm, lm_text *out) {
    int rc = 0;
    lm_text tmp = {0}, tmp2 = {0};
    rc |= putf(out, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n");
    for (int k = 0; k < LM_BPE_NSPECIAL; k++) {
        char head[64];
        snprintf(head, sizeof head, "    {\"id\": %d, \"content\": ", k);
        rc |= putf(out, head);
        rc |= jw_strn(out, lm_bpe_special_tokens[k], strlen(lm_bpe_special_tokens[k]));
        rc |= putf(out, special_flag[k] ? ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                                          "\"normalized\": false, \"special\": true}"
                                        : ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                                          "\"normalized\": true, \"special\": false}");
        rc |= putf(out, k + 1 < LM_BPE_NSPECIAL ? ",\n" : "\n");
    }
    rc |= putf(out, "  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n");
    for (int k = 0; k < 3; k++) {
        rc |= putf(out, "    {\"type\": \"Split\", \"pattern\": {\"Regex\": ");
        char digits[16];
        const char *pat = lm_deepseek_patterns[k];
        if (k == 0 && t->o.digit_group != 3) {
            if (t->o.digit_group == 1) snprintf(digits, sizeof digits, "\\p{N}");
            else snprintf(digits, sizeof digits, "\\p{N}{1,%d}", t->o.digit_group);
            pat = digits;
        }
        rc |= jw_strn(out, pat, strlen(pat));
        rc |= putf(out, "}, \"behavior\": \"Isolated\", \"invert\": false},\n");
    }
    rc |= putf(out, "    {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}\n"
                    "  ]},\n"
                    "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, "
                    "\"use_regex\": true},\n"
                    "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
                    "\"use_regex\": true},\n"
                    "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
                    "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
                    "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {\n");
    for (int32_t id = 0; id < ntok && !rc; id++) {
        rc |= putf(out, "      ");
        if (id < LM_BPE_NSPECIAL) rc |= jw_strn(out, tokbytes[id], toklen[id]);
        else {
            rc |= bytelevel_str((const unsigned char *)tokbytes[id], toklen[id], &tmp);
            rc |= jw_strn(out, tmp.data, tmp.len);
        }
        char num[32];
        snprintf(num, sizeof num, ": %d%s\n", id, id + 1 < ntok ? "," : "");
        rc |= putf(out, num);
    }
    rc |= putf(out, "    },\n    \"merges\": [\n");
    for (size_t m = 0; m < nm && !rc; m++) {
        rc |= bytelevel_str((const unsigned char *)tokbytes[ma[m]], toklen[ma[m]], &tmp);
        rc |= bytelevel_str((const unsigned char *)tokbytes[mb[m]], toklen[mb[m]], &tmp2);
        rc |= lm_text_append(&tmp, " ", 1) || lm_text_append(&tmp, tmp2.data, tmp2.len);
        rc |= putf(out, "      ");
        rc |= jw_strn(out, tmp.data, tmp.len);
        rc |= putf(out, m + 1 < nm ? ",\n" : "\n");
    }
    rc |= putf(out, "    ]\n  }\n}\n");
    lm_text_free(&tmp);
    lm_text_free(&tmp2);
    return rc ? -1 : 0;
}

static int write_config(lm_text *out) {
    int rc = putf(out, "{\n  \"add_bos_token\": true,\n  \"add_eos_token\": false,\n  \"bos_token\": ");
    rc |= jw_strn(out, lm_bpe_special_tokens[0], strlen(lm_bpe_special_tokens[0]));
    rc |= putf(out, ",\n  \"eos_token\": ");
    rc |= jw_strn(out, lm_bpe_special_tokens[1], strlen(lm_bpe_special_tokens[1]));
    rc |= putf(out, ",\n  \"pad_token\": ");
    rc |= jw_strn(out, lm_bpe_special_tokens[2], strlen(lm_bpe_special_tokens[2]));
    rc |= putf(out, ",\n  \"unk_token\": null,\n  \"clean_up_tokenization_spaces\": false,\n"
                    "  \"model_max_length\": 131072,\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n"
                    "  \"chat_template\": ");
    rc |= jw_strn(out, lm_chat_template_v3, strlen(lm_chat_template_v3));
    rc |= putf(out, "\n}\n");
    return rc ? -1 : 0;
}

int lm_bpe_trainer_finish(lm_bpe_trainer *t, lm_text *tokenizer_json, lm_text *config_json, lm_error *err) {
    int rc = 0;
    /* deterministic word order */
    qsort_r(t->w, t->nw, sizeof *t->w, cmp_word, t->arena);
    /* symbols */
    size_t total = 0;
    for (size_t i = 0; i < t->nw; i++) total += t->w[i].len;
    int32_t *sym = malloc((total ? total : 1) * sizeof *sym);
    int32_t cap_tok = t->o.vocab_size;
    char **tokbytes = calloc((size_t)cap_tok, sizeof *tokbytes);
    uint32_t *toklen = calloc((size_t)cap_tok, sizeof *toklen);
    size_t maxm = (size_t)cap_tok;
    int32_t *ma = malloc(maxm * sizeof *ma), *mb = malloc(maxm * sizeof *mb);
    uint32_t *stamp = calloc(t->nw ? t->nw : 1, sizeof *stamp);
    trainer_state st = {0};
    int32_t *new_pairs = NULL;
    size_t nnew = 0, newcap = 0;
    if (!sym || !tokbytes || !toklen || !ma || !mb || !stamp || pairs_rehash(&st, 1 << 16)) {
        rc = lm_fail(err, "out of memory");
        goto done;
    }
    size_t pos = 0;
    for (size_t i = 0; i < t->nw; i++) {
        const unsigned char *s = (const unsigned char *)t->arena + t->w[i].off;
        for (uint32_t k = 0; k < t->w[i].len; k++) sym[pos + k] = LM_BPE_NSPECIAL + s[k];
        t->w[i].off = pos;
        pos += t->w[i].len;
    }
    int32_t ntok = 0;
    for (int k = 0; k < LM_BPE_NSPECIAL; k++) {
        toklen[ntok] = (uint32_t)strlen(lm_bpe_special_tokens[k]);
        tokbytes[ntok] = strdup(lm_bpe_special_tokens[k]);
        if (!tokbytes[ntok++]) { rc = lm_fail(err, "out of memory"); goto done; }
    }
    for (int b = 0; b < 256; b++) {
        tokbytes[ntok] = malloc(1);
        if (!tokbytes[ntok]) { rc = lm_fail(err, "out of memory"); goto done; }
        tokbytes[ntok][0] = (char)b;
        toklen[ntok++] = 1;
    }
    /* token bytes -> id, for merges that rebuild an existing string */
    size_t tcap = 16;
    while (tcap < (size_t)cap_tok * 2) tcap *= 2;
    uint32_t *tslot = calloc(tcap, sizeof *tslot);
    if (!tslot) { rc = lm_fail(err, "out of memory"); goto done; }
    for (int32_t id = LM_BPE_NSPECIAL; id < ntok; id++) {
        size_t h = (size_t)lm_hash_bytes(tokbytes[id], toklen[id]) & (tcap - 1);
        while (tslot[h]) h = (h + 1) & (tcap - 1);
        tslot[h] = (uint32_t)id + 1;
    }
    /* initial pair counts */
    for (size_t i = 0; i < t->nw && !rc; i++) {
        if (!(i & 0xffff) && lm_stop_requested()) { rc = lm_fail(err, "interrupted"); break; }
        const int32_t *s = sym + t->w[i].off;
        for (uint32_t k = 0; k + 1 < t->w[i].len; k++) {
            int64_t p = pair_get(&st, s[k], s[k + 1]);
            if (p < 0 || pair_add_word(&st.p[p], (uint32_t)i)) { rc = lm_fail(err, "out of memory"); break; }
            st.p[p].count += t->w[i].count;
        }
    }
    for (size_t p = 0; p < st.np && !rc; p++)
        if (hpush(&st, (hent){st.p[p].count, (uint32_t)p})) rc = lm_fail(err, "out of memory");
    size_t nm = 0;
    uint32_t merge_no = 0;
    char msg[256];
    while (!rc && ntok < cap_tok && st.hn) {
        if (lm_stop_requested()) { rc = lm_fail(err, "interrupted"); break; }
        hent top = hpop(&st);
        pair_info *pi = &st.p[top.pair];
        if (top.count != pi->count) {
            if (pi->count > 0 && hpush(&st, (hent){pi->count, top.pair})) rc = lm_fail(err, "out of memory");
            continue;
        }
        if (pi->count < t->o.min_frequency || pi->count <= 0) break;
        int32_t a = pi->a, b = pi->b;
        /* the new token */
        size_t nl = (size_t)toklen[a] + toklen[b];
        char *nb = malloc(nl);
        if (!nb) { rc = lm_fail(err, "out of memory"); break; }
        memcpy(nb, tokbytes[a], toklen[a]);
        memcpy(nb + toklen[a], tokbytes[b], toklen[b]);
        int32_t nid = -1;
        size_t h = (size_t)lm_hash_bytes(nb, nl) & (tcap - 1);
        while (tslot[h]) {
            int32_t id = (int32_t)tslot[h] - 1;
            if (toklen[id] == nl && memcmp(tokbytes[id], nb, nl) == 0) { nid = id; break; }
            h = (h + 1) & (tcap - 1);
        }
        if (nid < 0) {
            nid = ntok++;
            tokbytes[nid] = nb;
            toklen[nid] = (uint32_t)nl;
            tslot[h] = (uint32_t)nid + 1;
        } else {
            free(nb);
        }
        ma[nm] = a;
        mb[nm] = b;
        nm++;
        merge_no++;
        /* apply to every word that has the pair */
        nnew = 0;
        uint32_t nwl = pi->nwords;
        uint32_t *wl = pi->words;
        pi->words = NULL;
        pi->nwords = pi->cap = 0;
        for (uint32_t k = 0; k < nwl && !rc; k++) {
            uint32_t wi = wl[k];
            if (stamp[wi] == merge_no) continue;
            stamp[wi] = merge_no;
            word *w = &t->w[wi];
            int32_t *s = sym + w->off;
            uint32_t n = w->len, has = 0;
            for (uint32_t j = 0; j + 1 < n; j++)
                if (s[j] == a && s[j + 1] == b) { has = 1; break; }
            if (!has) continue;
            for (uint32_t j = 0; j + 1 < n; j++) {
                int64_t p = pair_get(&st, s[j], s[j + 1]);
                if (p < 0) { rc = lm_fail(err, "out of memory"); break; }
                st.p[p].count -= w->count;
            }
            uint32_t o = 0;
            for (uint32_t j = 0; j < n; j++) {
                if (j + 1 < n && s[j] == a && s[j + 1] == b) {
                    s[o++] = nid;
                    j++;
                } else {
                    s[o++] = s[j];
                }
            }
            w->len = n = o;
            for (uint32_t j = 0; j + 1 < n && !rc; j++) {
                int64_t p = pair_get(&st, s[j], s[j + 1]);
                if (p < 0) { rc = lm_fail(err, "out of memory"); break; }
                st.p[p].count += w->count;
                if (s[j] == nid || s[j + 1] == nid) {
                    if (pair_add_word(&st.p[p], wi)) { rc = lm_fail(err, "out of memory"); break; }
                    if (st.p[p].stamp != merge_no) {
                        st.p[p].stamp = merge_no;
                        if (nnew == newcap) {
                            newcap = newcap ? newcap * 2 : 256;
                            int32_t *nn = realloc(new_pairs, newcap * sizeof *nn);
                            if (!nn) { rc = lm_fail(err, "out of memory"); break; }
                            new_pairs = nn;
                        }
                        new_pairs[nnew++] = (int32_t)p;
                    }
                }
            }
        }
        free(wl);
        pi = &st.p[top.pair]; /* st.p may have moved */
        for (size_t k = 0; k < nnew && !rc; k++)
            if (st.p[new_pairs[k]].count > 0 && hpush(&st, (hent){st.p[new_pairs[k]].count, (uint32_t)new_pairs[k]}))
                rc = lm_fail(err, "out of memory");
        if (t->o.progress && (nm % 500 == 0 || ntok == cap_tok)) {
            snprintf(msg, sizeof msg, "tokenizer train: %d/%d tokens, %zu merges, last pair count %lld", ntok, cap_tok,
                     nm, (long long)top.count);
            t->o.progress(t->o.progress_ctx, msg);
        }
    }
    free(tslot);
    if (!rc && write_json(t, tokbytes, toklen, ntok, ma, mb, nm, tokenizer_json))
        rc = lm_fail(err, "out of memory writing tokenizer.json");
    if (!rc && config_json && write_config(config_json)) rc = lm_fail(err, "out of memory writing tokenizer_config.json");
done:
    free(sym);
    if (tokbytes)
        for (int32_t i = 0; i < cap_tok; i++) free(tokbytes[i]);
    free(tokbytes);
    free(toklen);
    free(ma);
    free(mb);
    free(stamp);
    free(new_pairs);
    for (size_t i = 0; i < st.np; i++) free(st.p[i].words);
    free(st.p);
    free(st.pslot);
    free(st.heap);
    return rc;
}

/* ---- files ------------------------------------------------------------------- */

/* The last offset p with s[p-1] == '\n' and s[p] an ASCII letter, or 0. */
static size_t safe_cut(const char *s, size_t n) {
    for (size_t p = n; p-- > 1;)
        if (s[p - 1] == '\n' && (unsigned)((s[p] | 32) - 'a') < 26) return p;
    return 0;
}

static int write_file(const char *dir, const char *name, const lm_text *t, lm_error *err) {
    size_t n = strlen(dir) + strlen(name) + 8;
    char *path = malloc(n), *tmp = malloc(n + 8);
    if (!path || !tmp) { free(path); free(tmp); return lm_fail(err, "out of memory"); }
    snprintf(path, n, "%s/%s", dir, name);
    snprintf(tmp, n + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) rc = lm_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        errno = 0;
        if (fwrite(t->data, 1, t->len, f) != t->len || fflush(f) != 0)
            rc = lm_fail(err, "%s: write failed: %s", tmp, strerror(errno ? errno : EIO));
        if (fclose(f) != 0 && !rc) rc = lm_fail(err, "%s: write failed: %s", tmp, strerror(errno));
        if (rc) unlink(tmp);
        if (!rc && rename(tmp, path) != 0) rc = lm_fail(err, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    }
    free(path);
    free(tmp);
    return rc;
}

int lm_bpe_train_files(const char *const *files, int nfiles, const lm_bpe_train_opts *o, const char *out_dir,
                       lm_error *err) {
    lm_bpe_trainer *t = lm_bpe_trainer_new(o, err);
    if (!t) return -1;
    size_t total = 0;
    char *buf = malloc(1 << 20);
    int rc = buf ? 0 : lm_fail(err, "out of memory");
    lm_text carry = {0};
    for (int i = 0; i < nfiles && !rc; i++) {
        /* A regular file, read up to the size it had when opened: a device,
         * FIFO or a file that keeps growing cannot make this run without end. */
        uint64_t size;
        int fd = lm_open_regular(files[i], &size, err);
        if (fd < 0) { rc = -1; break; }
        /* Read in 1 MiB blocks and feed up to the last "\n" that is followed
         * by an ASCII letter: no pre-token spans such a point (the newline
         * ends a whitespace or punctuation piece, and no branch of the
         * regex joins a newline to a following letter), so the counts are
         * the same as for the whole file at once. */
        carry.len = 0;
        size_t left = (size_t)size;
        while (!rc && left) {
            if (lm_stop_requested()) { rc = lm_fail(err, "interrupted"); break; }
            ssize_t n = read(fd, buf, left < (1u << 20) ? left : (1u << 20));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) { rc = lm_fail(err, "%s: read error: %s", files[i], strerror(errno)); break; }
            if (n == 0) break; /* shrank meanwhile: what is there */
            size_t got = (size_t)n;
            left -= got;
            if (o->max_bytes && total + got > o->max_bytes) got = o->max_bytes - total;
            total += got;
            if (lm_text_append(&carry, buf, got)) { rc = lm_fail(err, "out of memory"); break; }
            size_t cut = safe_cut(carry.data, carry.len);
            if (cut) {
                rc = lm_bpe_trainer_feed(t, carry.data, cut, err);
                memmove(carry.data, carry.data + cut, carry.len - cut);
                carry.len -= cut;
            }
            if (o->max_bytes && total >= o->max_bytes) break;
        }
        close(fd);
        if (!rc && carry.len) rc = lm_bpe_trainer_feed(t, carry.data, carry.len, err);
        if (o->progress && !rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "tokenizer train: read %s (%zu bytes in all), %zu distinct words", files[i], total,
                     t->nw);
            o->progress(o->progress_ctx, msg);
        }
        if (o->max_bytes && total >= o->max_bytes) break;
    }
    free(buf);
    lm_text_free(&carry);
    lm_text js = {0}, cfg = {0};
    if (!rc) rc = lm_bpe_trainer_finish(t, &js, &cfg, err);
    lm_bpe_trainer_free(t);
    if (!rc && mkdir(out_dir, 0777) != 0 && errno != EEXIST) rc = lm_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    if (!rc) rc = write_file(out_dir, "tokenizer.json", &js, err);
    if (!rc) rc = write_file(out_dir, "tokenizer_config.json", &cfg, err);
    lm_text_free(&js);
    lm_text_free(&cfg);
    return rc;
}
