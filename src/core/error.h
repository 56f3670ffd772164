/* error.h — how library code reports failure.
 *
 * Library code never exits or prints: a function that can fail returns int
 * (0 = ok, -1 = error) and fills an lm_error with one line that names the
 * file, field or byte offset and what was expected. The CLI prints that line
 * and exits non-zero. */
#ifndef LEMMA_CORE_ERROR_H
#define LEMMA_CORE_ERROR_H

#include <stdarg.h>

typedef struct lm_error {
    char msg[1024];
} lm_error;

/* Sets err->msg from the format (when err is non-NULL) and returns -1, so that
 * `return lm_fail(err, "...");` reads naturally. */
int lm_fail(lm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes err->msg with "prefix: " (for adding the file name on the way up). */
int lm_fail_prefix(lm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends " suffix" to err->msg (for a hint after the message, which names
 * the file first). */
int lm_fail_suffix(lm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
