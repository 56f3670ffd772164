/* utf8.h — UTF-8 encoding shared by the JSON parser and the tokenizer. */
#ifndef LEMMA_CORE_UTF8_H
#define LEMMA_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 1-4 byte UTF-8 form of code point cp (<= 0x10FFFF; surrogates
 * are the caller's business) to out and returns its length. */
size_t lm_utf8_encode(uint32_t cp, unsigned char *out);

#endif
