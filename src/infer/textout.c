/* textout.c — ids to final text with stop strings; see textout.h. */
#include "infer/textout.h"

#include <string.h>

void lm_textout_init(lm_textout *o, const lm_tokenizer *tok, lm_text *text, const char *const *stop, int nstop,
                     int skip_special) {
    memset(o, 0, sizeof *o);
    lm_tok_stream_init(&o->stream, tok, skip_special ? LM_TOK_SKIP_SPECIAL : 0);
    o->text = text;
    o->stop = stop;
    o->nstop = stop ? nstop : 0;
    for (int i = 0; i < o->nstop; i++)
        if (strlen(stop[i]) > o->longest_stop) o->longest_stop = strlen(stop[i]);
    o->taken = o->final = text->len;
}

/* Length of the longest suffix of text that is a proper prefix of a stop
 * string: text that must be held back until it is known not to stop. */
static size_t holdback(const lm_textout *o, const char *text, size_t len) {
    size_t best = 0;
    for (int i = 0; i < o->nstop; i++) {
        size_t sl = strlen(o->stop[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > best; k--)
            if (k <= len && !memcmp(text + len - k, o->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* First match of any stop string in text at or after `from`; SIZE_MAX if none. */
static size_t find_stop(const lm_textout *o, const char *text, size_t len, size_t from) {
    size_t best = (size_t)-1;
    for (int i = 0; i < o->nstop; i++) {
        size_t sl = strlen(o->stop[i]);
        if (!sl || sl > len) continue;
        for (size_t at = from; at + sl <= len && at < best; at++)
            if (!memcmp(text + at, o->stop[i], sl)) {
                best = at;
                break;
            }
    }
    return best;
}

int lm_textout_push(lm_textout *o, int32_t id, lm_error *err) {
    if (o->stopped) return 1;
    lm_text *t = o->text;
    size_t before = t->len;
    if (lm_tok_stream_push(&o->stream, id, t, err)) return -1;
    if (o->nstop && t->len > before) {
        /* a match must end in the new bytes: it starts at most longest_stop - 1 before them */
        size_t from = before >= o->longest_stop ? before - o->longest_stop + 1 : 0;
        size_t at = find_stop(o, t->data, t->len, from);
        if (at != (size_t)-1) {
            t->len = at;
            t->data[at] = 0;
            o->final = at;
            o->stopped = 1;
            return 1;
        }
    }
    o->final = t->len - holdback(o, t->data ? t->data : "", t->len);
    return 0;
}

int lm_textout_finish(lm_textout *o, lm_error *err) {
    if (!o->stopped && lm_tok_stream_finish(&o->stream, o->text)) return lm_fail(err, "out of memory");
    o->final = o->text->len;
    return 0;
}

void lm_textout_take(lm_textout *o, const char **s, size_t *len) {
    size_t from = o->taken < o->final ? o->taken : o->final;
    *s = o->text->data ? o->text->data + from : "";
    *len = o->final - from;
    o->taken = o->final > o->taken ? o->final : o->taken;
}
