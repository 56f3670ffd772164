/* utf8.h — UTF-8 encoding, validation and U+FFFD replacement, shared by the
 * JSON reader and writer, the tokenizer and the proof pipeline.
 *
 * "Maximal invalid subpart" is Unicode's rule (and WHATWG's, Python's
 * errors="replace", Rust's from_utf8_lossy): each one becomes one U+FFFD. */
#ifndef LEMMA_CORE_UTF8_H
#define LEMMA_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* U+FFFD REPLACEMENT CHARACTER, 3 bytes. */
#define LM_UTF8_REPLACEMENT "\xef\xbf\xbd"

/* Writes the 1-4 byte UTF-8 form of code point cp (<= 0x10FFFF; surrogates
 * are the caller's business) to out and returns its length. */
size_t lm_utf8_encode(uint32_t cp, unsigned char *out);

/* At s[0] (n > 0): 1 = a valid sequence of *len bytes; 0 = invalid, *len is
 * the maximal invalid subpart (1..3); -1 = a valid prefix cut short by the
 * end of the input (*len = n). */
int lm_utf8_check(const unsigned char *s, size_t n, size_t *len);
/* Length of the maximal invalid subpart at s[0] (1..3) when s does not start
 * with a valid UTF-8 sequence, else 0 (n > 0). */
size_t lm_utf8_invalid_len(const unsigned char *s, size_t n);
/* Appends s with every maximal invalid subpart replaced by U+FFFD; 0, or -1
 * out of memory. */
int lm_utf8_sanitize(const char *s, size_t n, lm_text *out);
/* 1 when s is valid UTF-8. */
int lm_utf8_valid(const char *s, size_t n);

#endif
