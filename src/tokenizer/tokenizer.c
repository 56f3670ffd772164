/* tokenizer.c — what every part of the tokenizer shares: the byte-level
 * alphabet, the hash of a byte string and the vocabulary lookup built on it,
 * and the accessors of tokenizer.h. The rest of the contract is in
 * load.c (tokenizer.json -> lm_tokenizer), encode.c (with pretok.c and bpe.c
 * for its two stages) and decode.c; tok_internal.h is the struct they share. */
#include "tokenizer/tokenizer.h"

#include <string.h>

#include "tokenizer/tok_internal.h"

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
