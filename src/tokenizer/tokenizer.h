/* tokenizer.h — byte-level BPE tokenizers in Hugging Face tokenizer.json form
 * (DeepSeek-V3 and friends): load, encode, decode, streaming decode.
 *
 *   lm_error err;
 *   lm_tokenizer *tok = lm_tokenizer_load("models/DeepSeek-V3", &err);   // dir or tokenizer.json
 *   if (!tok) { fprintf(stderr, "%s\n", err.msg); ... }
 *   lm_ids ids = {0};
 *   if (lm_tokenizer_encode(tok, text, strlen(text), LM_TOK_SPECIAL, &ids, &err)) ...
 *   lm_text out = {0};
 *   lm_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &err);           // out.data, out.len
 *   lm_ids_free(&ids); lm_text_free(&out); lm_tokenizer_free(tok);
 *
 * Encode follows the reference (HF tokenizers) step for step: added tokens are
 * matched first (leftmost-longest; tokens with normalized=false before those
 * with normalized=true), the text between them is pre-tokenized (DeepSeek-V3's
 * three Split regexes by a hand-written scanner proven on the reference cases,
 * any other Split regex through PCRE2), byte-level mapped and BPE-merged
 * (lowest merge rank first, leftmost on ties). No BOS/EOS is added: prepend
 * lm_tokenizer_bos() yourself where a model wants it.
 *
 * Invalid UTF-8 in text to encode is not an error: each maximal invalid
 * subpart becomes U+FFFD (as Python's errors="replace", WHATWG and Rust's
 * from_utf8_lossy do) before encoding, which is what the reference sees.
 *
 * Thread safety: a loaded tokenizer is read-only apart from a lazily filled
 * per-token flag written with relaxed atomics; encode/decode may run on many
 * threads at once. */
#ifndef LEMMA_TOKENIZER_TOKENIZER_H
#define LEMMA_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h" /* lm_ids, lm_text */
#include "core/error.h"

typedef struct lm_tokenizer lm_tokenizer;

/* Loads DIR/tokenizer.json (and DIR/tokenizer_config.json when present, for
 * bos/eos) or a tokenizer.json path. NULL on error, with err naming the file,
 * the JSON path or byte offset and what was expected. Loading DeepSeek-V3's
 * 128k-vocab file takes well under a second. */
lm_tokenizer *lm_tokenizer_load(const char *path, lm_error *err);
/* The same from tokenizer.json bytes in memory; name is used in messages.
 * config_json may be NULL (no tokenizer_config.json). */
lm_tokenizer *lm_tokenizer_load_mem(const char *json, size_t len, const char *config_json,
                                    size_t config_len, const char *name, lm_error *err);
void lm_tokenizer_free(lm_tokenizer *tok);

enum {
    LM_TOK_SPECIAL = 1,      /* encode: match added tokens in the text (off: all plain text) */
    LM_TOK_SKIP_SPECIAL = 2, /* decode: drop ids of added tokens marked special */
    LM_TOK_RAW = 4,          /* decode: raw bytes, no U+FFFD replacement of invalid UTF-8 */
    LM_TOK_STRICT_UTF8 = 8,  /* encode: invalid UTF-8 input is an error instead of U+FFFD */
};

/* Appends the ids of len bytes of text to out. Returns 0, or -1 with err set
 * (out of memory; a single pre-token longer than lm_tokenizer_max_piece();
 * invalid UTF-8 under LM_TOK_STRICT_UTF8). len 0 appends nothing. */
int lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int flags,
                        lm_ids *out, lm_error *err);

/* Appends the text of ids to out: added tokens verbatim, the others mapped
 * back from byte-level characters; invalid UTF-8 in the result becomes
 * U+FFFD per maximal invalid subpart unless LM_TOK_RAW. An id outside
 * [0, vocab size) or with no token is an error. */
int lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                        lm_text *out, lm_error *err);

/* Number of ids (highest id + 1), counting added tokens. */
int32_t lm_tokenizer_vocab_size(const lm_tokenizer *tok);
/* Id of a token given its exact text (an added token's content, or a vocab
 * token's decoded bytes), or -1. E.g. lm_tokenizer_find(tok, "<｜User｜>"). */
int32_t lm_tokenizer_find(const lm_tokenizer *tok, const char *text);
/* The decoded bytes of one token (not NUL-terminated), or NULL for a bad id. */
const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len);
/* 1 when id is an added token marked special (dropped by LM_TOK_SKIP_SPECIAL). */
int lm_tokenizer_is_special(const lm_tokenizer *tok, int32_t id);
/* 1 when id is an added token (special or not). */
int lm_tokenizer_is_added(const lm_tokenizer *tok, int32_t id);
/* BOS/EOS ids from tokenizer_config.json, else from well-known token texts
 * (<｜begin▁of▁sentence｜>, <s>, ...); -1 when unknown. */
int32_t lm_tokenizer_bos(const lm_tokenizer *tok);
int32_t lm_tokenizer_eos(const lm_tokenizer *tok);
/* Longest pre-token (bytes) that encode accepts; longer ones are an error so
 * that memory stays bounded (default 1 MiB). */
size_t lm_tokenizer_max_piece(const lm_tokenizer *tok);
void lm_tokenizer_set_max_piece(lm_tokenizer *tok, size_t bytes);
/* A short description: "BPE, 128815 ids, 127741 merges, 818 added, pre-tokenizer deepseek-v3". */
const char *lm_tokenizer_describe(const lm_tokenizer *tok);

/* ---- Streaming decoder -------------------------------------------------
 * Feeds one id at a time; appends to out only complete UTF-8 characters (a
 * character split across tokens is held back until its last byte comes;
 * bytes that can never form a character come out as U+FFFD). The text
 * emitted over a whole stream, after lm_tok_stream_finish, equals
 * lm_tokenizer_decode of all the ids.
 *
 *   lm_tok_stream st; lm_tok_stream_init(&st, tok, LM_TOK_SKIP_SPECIAL);
 *   for each new id: lm_tok_stream_push(&st, id, &out, &err); print out, out.len = 0;
 *   lm_tok_stream_finish(&st, &out); */
typedef struct lm_tok_stream {
    const lm_tokenizer *tok;
    int flags;
    unsigned char pend[4]; /* an incomplete UTF-8 sequence held back */
    int npend;
} lm_tok_stream;

void lm_tok_stream_init(lm_tok_stream *st, const lm_tokenizer *tok, int flags);
int lm_tok_stream_push(lm_tok_stream *st, int32_t id, lm_text *out, lm_error *err);
int lm_tok_stream_finish(lm_tok_stream *st, lm_text *out);

#endif
