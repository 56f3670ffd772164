/* split.c — the streaming reasoning/content splitter; see split.h. */
#include "serve/split.h"

#include <string.h>

enum { START = 0, REASON_LEAD, REASON, ANSWER_LEAD, ANSWER };

#define EOS_TEXT "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
static const char open_tag[] = "<think>", close_tag[] = "</think>", eos[] = EOS_TEXT;

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

void lm_serve_split_init(lm_serve_split *s, int started_in_think) {
    memset(s, 0, sizeof *s);
    s->started_in_think = started_in_think != 0;
}

void lm_serve_split_free(lm_serve_split *s) { lm_text_free(&s->hold); }

/* Drops the first n bytes of the held text. */
static void drop(lm_serve_split *s, size_t n) {
    if (!n) return;
    memmove(s->hold.data, s->hold.data + n, s->hold.len - n);
    s->hold.len -= n;
}

static size_t lead_space(const lm_serve_split *s) {
    size_t i = 0;
    while (i < s->hold.len && is_space(s->hold.data[i])) i++;
    return i;
}

/* The longest suffix of the held text that is a prefix of word (at most
 * max bytes of it). */
static size_t partial_suffix(const lm_serve_split *s, const char *word, size_t max) {
    size_t n = s->hold.len;
    for (size_t k = max < n ? max : n; k > 0; k--)
        if (!memcmp(s->hold.data + n - k, word, k)) return k;
    return 0;
}

static int emit(lm_serve_split *s, lm_text *to, size_t n) {
    if (n && lm_text_append(to, s->hold.data, n)) return -1;
    drop(s, n);
    return 0;
}

int lm_serve_split_feed(lm_serve_split *s, const char *text, size_t len, int finish, lm_text *reasoning,
                        lm_text *content) {
    if (len && lm_text_append(&s->hold, text, len)) return -1;
    for (;;) {
        switch (s->state) {
        case START: {
            drop(s, lead_space(s));
            size_t n = s->hold.len;
            if (!finish && (n == 0 || (n < 7 && !memcmp(s->hold.data, open_tag, n)))) return 0; /* undecided */
            if (n >= 7 && !memcmp(s->hold.data, open_tag, 7)) {
                drop(s, 7);
                s->reasoning = 1;
            } else {
                s->reasoning = s->started_in_think;
            }
            s->state = s->reasoning ? REASON_LEAD : ANSWER;
            break;
        }
        case REASON_LEAD:
            drop(s, lead_space(s));
            if (!s->hold.len && !finish) return 0;
            s->state = REASON;
            break;
        case REASON: {
            char *close = s->hold.len ? memmem(s->hold.data, s->hold.len, close_tag, 8) : NULL;
            if (close) {
                size_t end = (size_t)(close - s->hold.data);
                size_t keep = end;
                while (keep > 0 && is_space(s->hold.data[keep - 1])) keep--;
                if (emit(s, reasoning, keep)) return -1;
                drop(s, end - keep + 8);
                s->state = ANSWER_LEAD;
                break;
            }
            if (finish) return emit(s, reasoning, s->hold.len); /* unclosed: all of it */
            size_t cut = s->hold.len - partial_suffix(s, close_tag, 7);
            while (cut > 0 && is_space(s->hold.data[cut - 1])) cut--;
            return emit(s, reasoning, cut);
        }
        case ANSWER_LEAD:
            drop(s, lead_space(s));
            if (!s->hold.len) return 0;
            s->state = ANSWER;
            break;
        default: { /* ANSWER */
            size_t el = sizeof eos - 1;
            if (finish) {
                size_t n = s->hold.len;
                if (n >= el && !memcmp(s->hold.data + n - el, eos, el)) n -= el;
                if (emit(s, content, n)) return -1;
                s->hold.len = 0;
                return 0;
            }
            return emit(s, content, s->hold.len - partial_suffix(s, eos, el));
        }
        }
    }
}
