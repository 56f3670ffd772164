/* jsonw.h — appending JSON values to an lm_text: the one JSON writer for
 * the files lemma writes piece by piece (lemma.lock, the token shards'
 * index.json, a trained tokenizer.json, task sets, the proof pipeline's
 * pool.jsonl, run.json and report.json).
 *
 *   lm_text t = {0};
 *   jw_raw(&t, "{\"id\":"); jw_str(&t, id); jw_raw(&t, ",\"score\":"); jw_num(&t, 0.5); jw_raw(&t, "}");
 *
 * Strings are written as UTF-8 with JSON escapes (json_escape_byte, the same
 * as json_write_string's); bytes that are not valid UTF-8 become U+FFFD, so
 * that what is written always parses back (the JSON reader refuses invalid
 * UTF-8). Numbers use the shortest text that reads back as the same double,
 * so a file's bytes depend only on the values. Each returns 0, or -1 when
 * out of memory. */
#ifndef LEMMA_FORMATS_JSONW_H
#define LEMMA_FORMATS_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

int jw_raw(lm_text *t, const char *s);
int jw_strn(lm_text *t, const char *s, size_t n);
int jw_str(lm_text *t, const char *s);       /* NULL writes null */
int jw_num(lm_text *t, double v);            /* non-finite writes null */
int jw_int(lm_text *t, int64_t v);
/* The shortest "%.{15,16,17}g" text of v that reads back as v. */
void jw_format_double(char buf[32], double v);

#endif
