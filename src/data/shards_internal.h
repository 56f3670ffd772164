/* shards_internal.h — what the token-shard writer (write.c), its document
 * cutter (documents.c) and the reader (read.c) share: the little-endian
 * fields of the shard header, the split names, and documents. The formats
 * are described in shards.h. Not a public interface. */
#ifndef LEMMA_DATA_SHARDS_INTERNAL_H
#define LEMMA_DATA_SHARDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/shards.h"
#include "formats/json.h"

/* "train" or "val": the prefix of a split's shard files and its key in index.json. */
static inline const char *lm_split_name(int split) { return split == LM_SPLIT_VAL ? "val" : "train"; }

static inline void lm_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void lm_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t lm_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t lm_get_u64(const uint8_t *p) {
    return (uint64_t)lm_get_u32(p) | (uint64_t)lm_get_u32(p + 4) << 32;
}

/* ---- documents (documents.c) ---------------------------------------------- */

typedef struct lm_doc_span {
    const char *p;      /* the document's bytes (plain) or the JSONL line */
    size_t len;
    size_t line;        /* 1-based line of the document's start */
} lm_doc_span;

/* Calls fn for each document of a mapped file; stops at the first non-zero. */
typedef int (*lm_doc_fn)(void *ctx, const lm_doc_span *d);
int lm_data_each_doc(const lm_mapped *m, int jsonl, int doc_sep, lm_doc_fn fn, void *ctx);

/* Checks one JSONL record: {"text": s} or {"segments": [{"text": s, "loss":
 * b}, ...]}; the error names path:line and the byte. */
int lm_data_check_record(const json_value *r, const char *path, size_t line, lm_error *err);

#endif
