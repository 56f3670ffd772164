/* encode.c — the encode driver: added tokens first (leftmost-longest, the
 * non-normalized trie before the normalized one), the NFC normalizer where
 * tokenizer.json has one, then each gap pre-tokenized (pretok.c) and
 * BPE-merged (bpe.c), with a per-call cache of repeated pieces for long
 * texts. See tokenizer.h for the contract. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

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
