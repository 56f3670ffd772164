/* sha256.h — SHA-256 (FIPS 180-4), self-contained.
 *
 * Used for the hashes in lemma.lock, recipe inputs, the tokenizer hash in
 * token shards and the train/validation split rule of `lemma data`. Kept in
 * the tree (about 150 lines, checked against the FIPS 180-2 / NIST vectors in
 * tests/test_recipe.c) so that the library needs no libcrypto and the fuzz
 * targets link without extra flags; it runs at a few hundred MB/s, enough for
 * the artifacts of a CPU build.
 *
 *   lm_sha256 h; lm_sha256_init(&h);
 *   lm_sha256_update(&h, data, len);       // as often as needed
 *   uint8_t d[32]; lm_sha256_final(&h, d);
 *   char hex[65]; lm_sha256_hex(d, hex);
 *
 *   lm_sha256_file("tokenizer/tokenizer.json", hex, &err);  // whole file
 */
#ifndef LEMMA_CORE_SHA256_H
#define LEMMA_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct lm_sha256 {
    uint32_t h[8];
    uint64_t nbytes;          /* total bytes fed */
    uint8_t buf[64];          /* pending partial block */
    size_t nbuf;
} lm_sha256;

void lm_sha256_init(lm_sha256 *s);
void lm_sha256_update(lm_sha256 *s, const void *data, size_t len);
void lm_sha256_final(lm_sha256 *s, uint8_t out[32]);
/* One-shot digest of a buffer. */
void lm_sha256_buf(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void lm_sha256_hex(const uint8_t d[32], char hex[65]);
/* Parses 64 hex digits (either case); 0 on success, -1 otherwise. */
int lm_sha256_parse(const char *hex, uint8_t out[32]);
/* Feeds exactly n bytes of fd, from its current offset, in 1 MiB pieces;
 * -1 with err naming path on a read error, a file shorter than that, or a
 * stop request. */
int lm_sha256_feed_fd(lm_sha256 *s, int fd, uint64_t n, const char *path, lm_error *err);
/* Hex digest of a whole file (read in 1 MiB pieces); -1 with err naming the file. */
int lm_sha256_file(const char *path, char hex[65], lm_error *err);

#endif
