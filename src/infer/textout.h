/* textout.h — the text side of one generated sequence: ids become UTF-8
 * through the tokenizer's stream decoder, stop strings cut the text, and
 * text that could still turn into a stop string (or the rest of a UTF-8
 * character) is held back until it is known to be final. lm_generate and
 * the engine both use it, so a streamed choice and a one-shot generation
 * produce the same bytes.
 *
 *   lm_text text = {0};
 *   lm_textout o;  lm_textout_init(&o, tok, &text, stop, nstop, skip_special);
 *   for each id: if (lm_textout_push(&o, id, &err) < 0) fail;   // 1: a stop string matched
 *                lm_textout_take(&o, &s, &n);                   // bytes that became final
 *   lm_textout_finish(&o, &err);  lm_textout_take(&o, &s, &n);        // the rest
 *
 * The text lives in the caller's lm_text (it is the whole generated text, up
 * to the first stop string); o only points at it. Concatenated, the pieces
 * take hands out equal that text. */
#ifndef LEMMA_INFER_TEXTOUT_H
#define LEMMA_INFER_TEXTOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct lm_textout {
    lm_tok_stream stream;
    lm_text *text;             /* the caller's; appended to */
    const char *const *stop;   /* not copied: must outlive o */
    int nstop;
    size_t longest_stop;
    size_t taken;              /* bytes of text handed out by take */
    size_t final;              /* bytes of text that can no longer change */
    int stopped;               /* a stop string matched: text ends before it */
} lm_textout;

void lm_textout_init(lm_textout *o, const lm_tokenizer *tok, lm_text *text, const char *const *stop, int nstop,
                     int skip_special);
/* Appends id's text; 1 when a stop string matched (the text is cut before it
 * and everything left is final), 0 otherwise, -1 with err when the id has no
 * text (out of the tokenizer's range) or memory runs out. */
int lm_textout_push(lm_textout *o, int32_t id, lm_error *err);
/* The sequence ended: bytes held back for an incomplete UTF-8 character
 * become U+FFFD (unless a stop string matched) and all the text is final;
 * -1 with err when memory runs out. */
int lm_textout_finish(lm_textout *o, lm_error *err);
/* The final bytes not handed out yet (maybe none); they count as handed out.
 * *s is valid until the next push or finish. */
void lm_textout_take(lm_textout *o, const char **s, size_t *len);

#endif
