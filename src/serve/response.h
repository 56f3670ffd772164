/* response.h — OpenAI-shaped JSON for lemma serve's answers, without HTTP:
 * whole responses, Server-Sent Event chunks, usage, logprobs and errors.
 *
 *   lm_serve_head h = {.id = "chatcmpl-1f", .created = time(NULL), .model = "lemma"};
 *   lm_serve_delta d = {.content = "Hel", .content_len = 3};
 *   lm_serve_fmt_chat_chunk(&out, &h, 0, &d);    // "data: {...}\n\n"
 *
 * Text goes through jw_strn, so bytes that are not UTF-8 become U+FFFD the
 * same way in a stream and in a whole answer. Each returns 0, or -1 out of
 * memory. */
#ifndef LEMMA_SERVE_RESPONSE_H
#define LEMMA_SERVE_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "serve/request.h"

typedef struct lm_serve_head {
    const char *id;          /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;         /* Unix seconds */
    const char *model;
} lm_serve_head;

/* {"error":{"message","type","param","code"}}; param and code NULL write null. */
int lm_serve_fmt_error(lm_text *out, const char *message, const char *type, const char *param, const char *code);

/* A token as the logprobs show it: its bytes (the raw decode) and logprob. */
typedef struct lm_serve_token {
    const char *bytes;
    size_t len;
    double logprob;
} lm_serve_token;

/* One entry of a chat choice's logprobs.content list (appended, with a
 * comma first when out already holds entries: pass first = 1 for the first). */
int lm_serve_fmt_chat_logprob(lm_text *out, int first, const lm_serve_token *tok, const lm_serve_token *top, int ntop);

/* The completions logprobs object, built a token at a time. */
typedef struct lm_serve_cmpl_logprobs {
    lm_text tokens, logprobs, tops, offsets;
    int64_t count;
} lm_serve_cmpl_logprobs;
int lm_serve_cmpl_logprobs_add(lm_serve_cmpl_logprobs *a, const lm_serve_token *tok, const lm_serve_token *top,
                               int ntop, int64_t text_offset);
int lm_serve_fmt_cmpl_logprobs(lm_text *out, const lm_serve_cmpl_logprobs *a); /* {"tokens":[...],...} */
void lm_serve_cmpl_logprobs_free(lm_serve_cmpl_logprobs *a);

/* What changed in one choice of a stream. A NULL string is left out. */
typedef struct lm_serve_delta {
    int role;                /* "role":"assistant" (the first chunk of a chat choice) */
    const char *reasoning;   /* reasoning_content, and its alias reasoning */
    size_t reasoning_len;
    const char *content;     /* chat: content; completions: text */
    size_t content_len;
    const char *logprobs;    /* chat: the entries of logprobs.content; completions: the object */
    size_t logprobs_len;
    const char *finish;      /* finish_reason, or NULL for null */
} lm_serve_delta;

int lm_serve_fmt_chunk(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, int choice, const lm_serve_delta *d);
/* The final chunk of stream_options.include_usage: empty choices and usage. */
int lm_serve_fmt_usage_chunk(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, int64_t prompt_tokens,
                             int64_t completion_tokens);
int lm_serve_fmt_done(lm_text *out);   /* "data: [DONE]\n\n" */

/* One choice of a whole answer. */
typedef struct lm_serve_choice {
    const char *content;     /* chat: message.content; completions: text */
    size_t content_len;
    const char *reasoning;   /* NULL: the answer has no reasoning part */
    size_t reasoning_len;
    const char *logprobs;    /* NULL: null; chat: the entries; completions: the object */
    size_t logprobs_len;
    const char *finish;
} lm_serve_choice;

int lm_serve_fmt_response(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, const lm_serve_choice *c, int n,
                          int64_t prompt_tokens, int64_t completion_tokens);

#endif
