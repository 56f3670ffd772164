/* split.h — a model's answer split into reasoning and content as it
 * streams: the deltas of reasoning_content and content.
 *
 *   lm_serve_split s;  lm_serve_split_init(&s, prompt_opened_think);
 *   lm_serve_split_feed(&s, piece, len, 0, &reasoning_delta, &content_delta);   // per piece
 *   lm_serve_split_feed(&s, NULL, 0, 1, &reasoning_delta, &content_delta);      // at the end
 *   lm_serve_split_free(&s);
 *
 * The rules are lm_chat_split_output's (tokenizer/chat.h), applied so that
 * the deltas never take anything back: whatever the pieces, the deltas
 * concatenated equal one feed of the whole text. Leading whitespace is
 * dropped; a text that opens with "<think>" (or a prompt that opened it)
 * is reasoning up to "</think>", whitespace around it trimmed, and the rest
 * (leading whitespace trimmed) is content; an unclosed reasoning part keeps
 * its trailing text. A trailing <｜end▁of▁sentence｜> is dropped from the
 * content. So that a delta is final when sent, bytes that may turn out to
 * be a "<think>", a "</think>", whitespace before it or the final EOS are
 * held back until the next piece decides them.
 *
 * One difference from lm_chat_split_output, needed for streaming: a
 * "</think>" in a text that never opened reasoning is content (split_output
 * would make everything before it reasoning, which a stream has already
 * sent as content). Both the streamed and the whole answers of lemma serve
 * use this splitter, so they agree byte for byte. */
#ifndef LEMMA_SERVE_SPLIT_H
#define LEMMA_SERVE_SPLIT_H

#include <stddef.h>

#include "core/buf.h"

typedef struct lm_serve_split {
    int state;          /* where the text is: see split.c */
    int started_in_think;
    int reasoning;      /* 1 once the text is known to have a reasoning part */
    lm_text hold;       /* bytes not decided yet */
} lm_serve_split;

void lm_serve_split_init(lm_serve_split *s, int started_in_think);
/* Appends the decided bytes to *reasoning and *content; finish decides the
 * rest. 0, or -1 out of memory. */
int lm_serve_split_feed(lm_serve_split *s, const char *text, size_t len, int finish, lm_text *reasoning,
                        lm_text *content);
void lm_serve_split_free(lm_serve_split *s);

#endif
