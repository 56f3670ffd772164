/* buf.h — growable buffers owned by the caller: bytes of text (lm_text) and
 * token ids (lm_ids). Many layers build output piece by piece (the tokenizer,
 * the task generators, the JSON writer, lemma.lock, the proof reports); this
 * is the one implementation they share.
 *
 *   lm_text t = {0};
 *   if (lm_text_append(&t, "abc", 3) || lm_text_appendf(&t, " %d", 42)) ...  // out of memory
 *   use(t.data, t.len);                                                       // "abc 42"
 *   lm_text_free(&t);
 *
 * Start both as {0}. Functions append (they never reset len or n); set
 * t.len = 0 to reuse a buffer without freeing it. */
#ifndef LEMMA_CORE_BUF_H
#define LEMMA_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable array of token ids. */
typedef struct lm_ids {
    int32_t *ids;
    size_t n, cap;
} lm_ids;

/* A growable byte buffer, NUL-terminated after the first append (data is
 * NULL before it). */
typedef struct lm_text {
    char *data;
    size_t len, cap;
} lm_text;

void lm_ids_free(lm_ids *v);
int lm_ids_push(lm_ids *v, int32_t id);                       /* 0, or -1 out of memory */
void lm_text_free(lm_text *t);
int lm_text_append(lm_text *t, const char *s, size_t n);      /* 0, or -1 out of memory */
int lm_text_appendf(lm_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* the same, printf */

#endif
