/* backend.h — where the proof pipeline's prompts are answered: the local
 * engine (prove/backend_local.c) or any OpenAI-compatible chat-completions
 * endpoint (prove/backend_openai.c), or a test's scripted answers.
 *
 *   lm_backend *b = lm_backend_openai_create(&oo, &err);   // or lm_backend_local_create
 *   lm_chat_request reqs[n] = {...};                        // every independent prompt at once
 *   b->run(b, reqs, n, on_reply, user, &err);              // on_reply once per request, as answers come
 *   b->free(b);
 *
 * The pipeline submits every independent request of a phase in one call (all
 * N generations, all N x M verifications); a backend answers them in any
 * order and as concurrently as it can (the OpenAI backend keeps --parallel K
 * requests in flight; a batched local engine may decode many sequences in one
 * forward). on_reply is called from the thread that called run, one reply at a
 * time, as each answer arrives, so the caller can append it to its pool at
 * once; run returns when every request has had its reply. A reply with
 * ok = 0 is a transport failure after retries (connection refused, timeout,
 * HTTP error, a body that is not a chat completion): the pipeline records it
 * and asks again on the next run. A reply with ok = 1 was received: it is
 * recorded and never asked again, even when its text does not parse or it
 * did not finish (finish_reason other than "stop").
 *
 * Determinism: a request carries its own seed; the local engine samples with
 * it, so the same request gives the same answer whatever the order or
 * concurrency. Endpoints receive it as "seed". */
#ifndef LEMMA_PROVE_BACKEND_H
#define LEMMA_PROVE_BACKEND_H

#include <stdint.h>

#include "core/error.h"

typedef struct lm_chat_request {
    uint64_t key;          /* the caller's handle, returned in the reply */
    const char *prompt;    /* the user message (a filled template) */
    double temperature;    /* sampling; <= 0 greedy */
    double top_p;          /* 1: off */
    int64_t max_tokens;    /* completion tokens at most */
    uint64_t seed;
} lm_chat_request;

typedef struct lm_chat_reply {
    uint64_t key;
    int ok;                  /* 1: an answer was received; 0: transport failure (see error) */
    const char *content;     /* the answer ("" when none) */
    const char *reasoning;   /* reasoning_content / reasoning, or the local model's <think> part ("" when none) */
    const char *finish_reason; /* "stop", "length", ... ("" when unknown) */
    const char *error;       /* ok = 0: why, one line; "" otherwise */
    int64_t prompt_tokens, completion_tokens; /* -1 when unknown */
    double seconds;          /* wall time of this request (its last attempt) */
    int attempts;            /* tries made (1 without retries) */
} lm_chat_reply;             /* strings are valid only during the on_reply call */

typedef void (*lm_reply_fn)(void *user, const lm_chat_reply *reply);

typedef struct lm_backend lm_backend;
struct lm_backend {
    const char *name;        /* "local", "openai", "scripted": recorded in the pool */
    /* Answers every request; -1 with err only when the backend cannot work at
     * all (e.g. the local model fails to run); per-request failures are
     * replies with ok = 0. A non-zero return from *stop (checked between
     * replies; may be NULL) makes run return early with "interrupted". */
    int (*run)(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
               volatile int *stop, lm_error *err);
    void (*free)(lm_backend *b);
    void *impl;
};

/* ---- The OpenAI-compatible backend (libcurl) -------------------------------
 * POST {api_base}/chat/completions with {"model", "messages": [{"role":
 * "user", "content": prompt}], "max_tokens", "temperature", "top_p", "seed",
 * "stream": false}; Authorization: Bearer $api_key_env when that variable is
 * set (never sent otherwise). Retries with exponential backoff and jitter on
 * connection errors, timeouts, 429 and 5xx (honouring Retry-After);
 * 4xx other than 429 fail at once. A body over max_reply_bytes, non-JSON or
 * without choices[0].message is a failure with the reason. */
typedef struct lm_openai_opts {
    const char *api_base;      /* e.g. "http://127.0.0.1:8000/v1" */
    const char *model;         /* "model" field */
    const char *api_key_env;   /* name of the environment variable; default "OPENAI_API_KEY" */
    int parallel;              /* requests in flight (default 8) */
    double timeout_s;          /* per attempt, whole request (default 600) */
    double connect_timeout_s;  /* default 10 */
    int max_retries;           /* default 5 */
    double backoff_s;          /* first backoff (default 1), doubled per retry, capped at 60, +-50% jitter */
    int64_t max_reply_bytes;   /* default 64 MiB */
} lm_openai_opts;
void lm_openai_opts_default(lm_openai_opts *o);
lm_backend *lm_backend_openai_create(const lm_openai_opts *o, lm_error *err);

/* ---- The local engine ------------------------------------------------------
 * Loads MODEL_DIR (config.json, safetensors, tokenizer.json), renders each
 * prompt as one user turn of the DeepSeek-V3 chat format and generates with
 * the request's sampling parameters and seed. finish_reason is "stop" on EOS,
 * "length" at max_tokens or the context limit. Requests are answered one by
 * one today; the interface lets a batched engine answer many at once. */
typedef struct lm_local_opts {
    const char *model_dir;
    int threads;               /* <= 0: all cores */
    int64_t max_ctx;           /* <= 0: the model's max_position_embeddings */
    int thinking;              /* start the answer with "<think>\n" */
} lm_local_opts;
lm_backend *lm_backend_local_create(const lm_local_opts *o, lm_error *err);

#endif
