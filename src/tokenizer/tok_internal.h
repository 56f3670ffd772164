/* tok_internal.h — the tokenizer's data structures, shared by load.c,
 * encode.c (the encode driver), decode.c, tokenizer.c (byte-level alphabet,
 * hashing, accessors), pretok.c (pre-tokenizers), bpe.c (merging) and
 * train.c. Not a public interface.
 *
 * Ids: 0 .. nids-1. Every id has its decoded bytes in blob[off[id] ..
 * off[id]+len[id]) (len[id] == LM_TOK_NONE: no token has that id). */
#ifndef LEMMA_TOKENIZER_TOK_INTERNAL_H
#define LEMMA_TOKENIZER_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

#define LM_TOK_NONE UINT32_MAX

/* ---- pre-tokenizer ------------------------------------------------------ */

typedef enum {
    PT_SPLIT_REGEX = 1, /* Split with a Regex pattern (PCRE2), or DeepSeek-V3's hand scanner */
    PT_SPLIT_STRING,    /* Split with a String pattern (literal) */
    PT_DIGITS,          /* Digits (individual_digits) */
    PT_BYTELEVEL_REGEX, /* ByteLevel with use_regex: the GPT-2 pattern */
} pt_kind;

typedef enum { SB_REMOVED, SB_ISOLATED, SB_MERGED_PREV, SB_MERGED_NEXT, SB_CONTIGUOUS } split_behavior;

typedef struct pt_step {
    pt_kind kind;
    split_behavior behavior;
    int invert;
    int individual_digits;
    int hand;              /* which hand-written scanner: 0 none (use PCRE2), 1..3 DeepSeek regex i */
    void *re;              /* pcre2_code_8 * */
    char *literal;         /* PT_SPLIT_STRING */
    size_t literal_len;
    char *pattern;         /* PT_SPLIT_REGEX: the regex as written, for messages */
    size_t pattern_len;
} pt_step;

typedef struct pt_config {
    pt_step *steps;
    int nsteps;
    int deepseek;          /* steps are exactly DeepSeek-V3's three Isolated splits: fused scanner */
    int add_prefix_space;  /* ByteLevel add_prefix_space */
} pt_config;

/* Calls emit(ctx, start, end) for each pre-token of s[0..n), in order. The
 * text is valid UTF-8. Returns 0, or -1 when emit returned non-zero or a
 * regex failed (err set). */
typedef int (*pt_emit_fn)(void *ctx, size_t start, size_t end);
int lm_pretok_run(const pt_config *pc, const unsigned char *s, size_t n, pt_emit_fn emit, void *ctx,
                  lm_error *err);
/* DeepSeek-V3's fused scanner (also used by the trainer). */
int lm_pretok_deepseek(const unsigned char *s, size_t n, pt_emit_fn emit, void *ctx);
/* The same with step 1 as \p{N}{1,group} (group 1..3; lemma's trained
 * tokenizers may split numbers into single digits, written as "\p{N}"). */
int lm_pretok_deepseek_digits(const unsigned char *s, size_t n, int group, pt_emit_fn emit, void *ctx);
/* Compiles a Split regex for step (PCRE2, or marks a hand-scanner pattern). */
int lm_pretok_compile(pt_step *st, const char *pattern, size_t len, lm_error *err);
void lm_pretok_free(pt_config *pc);

/* The DeepSeek-V3 Split patterns, exactly as in tokenizer.json (decoded). */
extern const char *const lm_deepseek_patterns[3];

/* ---- BPE ---------------------------------------------------------------- */

/* Merge table: open addressing, key (left << 32 | right), value (rank << 32 | new id). */
typedef struct merge_map {
    uint64_t *keys;   /* UINT64_MAX = empty */
    uint64_t *vals;
    size_t mask;
    size_t count;
} merge_map;

typedef struct bpe_scratch {
    void *sym;        /* symbols (bpe.c) */
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    int32_t *heads;   /* bucket queue: first entry per merge rank, -1 empty (all empty between uses) */
    size_t nheads;
    int32_t *node;    /* bucket entries: (position, next) pairs */
    int32_t *tmp;     /* positions of one bucket, and a radix-sort buffer */
    size_t node_cap;
} bpe_scratch;

/* ---- the tokenizer ------------------------------------------------------ */

typedef struct added_token {
    const char *content; /* into blob */
    uint32_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} added_token;

typedef struct trie_node {
    int32_t first_child, next_sibling;
    int32_t token;      /* index into added[], or -1 */
    unsigned char byte;
} trie_node;

typedef struct added_trie {
    trie_node *nodes;
    size_t n, cap;
    uint8_t first[256]; /* bytes some token starts with */
} added_trie;

struct lm_tokenizer {
    int32_t nids;
    uint32_t *off, *len;   /* [nids] decoded bytes of each id in blob */
    char *blob;
    size_t blob_len, blob_cap;

    uint64_t *enc_slot;    /* hash: producible vocab bytes -> (hash tag << 32 | id+1), 0 empty */
    size_t enc_mask;
    int32_t byte_id[256];  /* initial symbol of each byte, -1 when absent */
    merge_map merges;
    size_t nmerges;
    uint8_t *whole;        /* [nids] 0 unknown, 1 BPE of its bytes is itself, 2 not (atomic) */
    uint8_t *kind;         /* [nids] bit0 added, bit1 special, bit2 in model vocab */
    int ignore_merges;
    int byte_level;        /* ByteLevel pre-tokenizer present */
    int nfc;               /* normalizer: NFC */

    added_token *added;
    size_t nadded;
    added_trie trie_raw, trie_norm; /* normalized=false tokens, normalized=true tokens */

    pt_config pt;
    int32_t bos, eos;
    size_t max_piece;
    char desc[160];
    char name[256];        /* the tokenizer.json it came from, for messages */
};

/* Appends the ids of one pre-token (raw bytes; byte-level mapping is
 * implicit: the vocab is indexed by decoded bytes) to out. */
int lm_bpe_encode_piece(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                        bpe_scratch *sc);
/* The plain reference: repeated scan for the lowest-rank pair, O(n^2). */
int lm_bpe_encode_naive(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out);
/* The heap + linked-list merge, O(n log n); lm_bpe_encode_piece uses it for pieces of 49..511 bytes. */
int lm_bpe_encode_heap(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                       bpe_scratch *sc);
/* The bucket-queue merge (one list per merge rank, each bucket's positions
 * taken in order), O(n + ranks); lm_bpe_encode_piece uses it for pieces
 * of 512 bytes or more. */
int lm_bpe_encode_bucket(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                         bpe_scratch *sc);
void lm_bpe_scratch_free(bpe_scratch *sc);

static inline uint64_t lm_hash_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Looks a merge up: returns 1 and sets rank/new id when (a, b) merges. */
static inline int merge_find(const merge_map *m, int32_t a, int32_t b, uint32_t *rank, int32_t *nid) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)lm_hash_mix(key) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *rank = (uint32_t)(m->vals[i] >> 32);
            *nid = (int32_t)(uint32_t)m->vals[i];
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        i = (i + 1) & m->mask;
    }
}

/* Hash of a byte string (64-bit, fast for short keys). */
uint64_t lm_hash_bytes(const void *p, size_t n);
/* Id of the producible vocab token with exactly these bytes, or -1. */
int32_t lm_tok_lookup_bytes(const lm_tokenizer *tok, const unsigned char *s, size_t n);

/* GPT-2 bytes_to_unicode: the code point standing for byte b, and back. */
uint32_t lm_bytelevel_char(unsigned b);
/* Byte of a byte-level code point, or -1. */
int lm_bytelevel_byte(uint32_t cp);

/* Decodes one UTF-8 character (input known valid); returns its length. */
static inline size_t lm_utf8_decode(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xe0) { *cp = ((c & 0x1f) << 6) | (s[1] & 0x3f); return 2; }
    if (c < 0xf0) { *cp = ((c & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f); return 3; }
    *cp = ((c & 0x07) << 18) | ((s[1] & 0x3f) << 12) | ((s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    return 4;
}

#endif
