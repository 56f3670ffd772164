/* backend.h — where the proof pipeline's prompts are answered: the local
 * engine (prove/backend_local.c) or any OpenAI-compatible chat-completions
 * endpoint (prove/backend_openai.c), or a test's scripted answers.
 *
 *   lm_backend *b = lm_backend_openai_create(&oo, &err);   // or lm_backend_local_create
 *   lm_chat_request reqs[n] = {...};                        // every independent prompt at once
 *   b->run(b, reqs, n, on_reply, user, &stop, &err);       // on_reply once per request, as answers come
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
 * HTTP error, a body that is not a chat completion; for the local engine a
 * prompt that does not fit its context): the pipeline records it and asks
 * again on the next run. A reply with ok = 1 was received: it is
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
    const char *prompt;    /* the user message (a filled template); must not be NULL */
    double temperature;    /* sampling; <= 0 (or NaN) greedy; endpoints get 0 */
    double top_p;          /* in (0, 1]; anything else means off (1; not sent to endpoints) */
    int64_t max_tokens;    /* completion tokens at most; <= 0: up to the context (not sent) */
    uint64_t seed;         /* endpoints get its low 63 bits (servers take a signed 64-bit seed) */
} lm_chat_request;

typedef struct lm_chat_reply {
    uint64_t key;
    int ok;                  /* 1: an answer was received; 0: transport failure (see error) */
    const char *content;     /* the answer ("" when none, also for a null or missing content) */
    const char *reasoning;   /* reasoning_content / reasoning, or the local model's <think> part ("" when none) */
    const char *finish_reason; /* "stop", "length", ... ("" when unknown) */
    const char *error;       /* ok = 0: why, one line; "" otherwise */
    int64_t prompt_tokens, completion_tokens; /* -1 when unknown; the local engine counts an ending EOS */
    double seconds;          /* wall time of this request (its last attempt); the local engine's
                                requests overlap: from submission to the end, shared prefill included */
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
 * POST {api_base}/chat/completions (trailing slashes of api_base dropped)
 * with {"model", "messages": [{"role": "user", "content": prompt}],
 * "max_tokens", "temperature", "top_p", "seed", "stream": false} (see
 * lm_chat_request for which are sent); invalid UTF-8 in a prompt is sent as
 * U+FFFD. Authorization: Bearer $api_key_env when that variable is set and
 * not empty at create time (never sent otherwise; a value with a line break
 * is refused). One thread keeps requests in flight (libcurl's multi
 * interface); replies come as transfers finish.
 *
 * Endpoints: api_base alone, or n_endpoints replicas serving the same model
 * (same name, key, options), each with its own `parallel` requests in flight.
 * A request goes to the available endpoint with the most free slots (ties:
 * the first listed), so the work spreads by free capacity.
 *
 * Failures that are the endpoint's: connection errors (refused, DNS, reset,
 * a body cut short of its Content-Length), timeouts, 429 and 5xx, and, when
 * there are other endpoints, a 2xx body that is not a chat completion. Such
 * a failure puts the endpoint on probation: no new work for
 * backoff_s * 2^(f-1) seconds (f: its failures in a row, a failure of a
 * request sent before the probation began not counted again), capped at
 * 60 s, times a jitter factor in [0.5, 1.5) drawn from (endpoint, f)
 * (core/rng.h, deterministic); at least the Retry-After the server sent
 * (seconds or a date, capped at 60 s). When the probation is over the
 * endpoint gets one request (the probe); its success ends the probation
 * (any success resets f), its failure starts the next, twice as long. The
 * failed request is asked again at once on another available endpoint (a
 * bad body never on the endpoint that sent it), until it has had
 * 1 + max_retries tries; then it is a reply with ok = 0. When every endpoint
 * has failed more than max_retries times in a row, run stops: -1 with
 * "every endpoint is failing: U of N requests not answered (BASE: F failures
 * in a row, last: WHY; ...)", the requests not answered get no reply
 * (a rerun asks them again). Probation is kept across run calls.
 *
 * No retry, a failure at once: other 4xx (and 1xx/3xx; redirects are not
 * followed), a 2xx body that is not a chat completion from the only
 * endpoint, a reply over max_reply_bytes (the transfer is aborted when the
 * cap is passed, or refused from its Content-Length: a 100 MB reply never
 * sits in memory). Failure reasons (reply.error, one line, "(after N
 * attempts)" appended when there were retries; with several endpoints
 * prefixed by the endpoint's api_base and ": "):
 *   "cannot connect to URL: ..."          "timed out (timeout_s T, connect_timeout_s C): ..."
 *   "HTTP 503: \"server's message\""      "transfer failed: ..."
 *   "the reply is over N bytes (max_reply_bytes): refused"
 *   "the reply is not JSON (N bytes, byte K: expected ...), it starts \"...\""
 *   "the reply is not a chat completion: ..."   "the reply is an error: \"...\""
 *   "the reply has no choices[0] ..."    "byte K of the reply: choices[0].message.content is a ..."
 * The server's message is error.message, error, message or detail of a JSON
 * body, else the body, quoted and cut to ~200 bytes. A 2xx completion is
 * read as choices[0].message.content (null or missing: ""),
 * message.reasoning_content (DeepSeek) or else message.reasoning (vLLM),
 * choices[0].finish_reason (null: ""), usage.prompt_tokens and
 * usage.completion_tokens (-1 when absent). run() returns -1 only for a
 * NULL prompt, out-of-memory, every endpoint failing and the stop flag,
 * which is looked at between replies and at least every 100 ms while
 * waiting. */
typedef struct lm_openai_endpoint {
    const char *api_base;      /* e.g. "http://10.0.0.2:8000/v1" */
    int parallel;              /* requests in flight to it; <= 0: the options' parallel */
} lm_openai_endpoint;

typedef struct lm_openai_opts {
    const char *api_base;      /* e.g. "http://127.0.0.1:8000/v1"; used when n_endpoints is 0 */
    const lm_openai_endpoint *endpoints; /* n_endpoints (1..LM_OPENAI_MAX_ENDPOINTS) replicas, or NULL */
    int n_endpoints;
    const char *model;         /* "model" field */
    const char *api_key_env;   /* name of the environment variable; default "OPENAI_API_KEY" */
    int parallel;              /* requests in flight per endpoint (default 8) */
    double timeout_s;          /* per attempt, whole request (default 600) */
    double connect_timeout_s;  /* default 10 */
    int max_retries;           /* default 5 */
    double backoff_s;          /* first probation (default 1), doubled per failure, capped at 60, +-50% jitter */
    int64_t max_reply_bytes;   /* default 64 MiB */
} lm_openai_opts;
enum { LM_OPENAI_MAX_ENDPOINTS = 256 };
void lm_openai_opts_default(lm_openai_opts *o);
lm_backend *lm_backend_openai_create(const lm_openai_opts *o, lm_error *err);

/* An endpoints file: one endpoint a line, "URL" or "URL parallel=K" (K in
 * 1..4096); blank lines and lines starting with '#' are skipped. Fills
 * *out (malloc'd, its api_base strings too: free with
 * lm_openai_endpoints_free) and *n (at least 1). -1 with "FILE:LINE: ..."
 * otherwise. */
int lm_openai_endpoints_load(const char *path, lm_openai_endpoint **out, int *n, lm_error *err);
void lm_openai_endpoints_free(lm_openai_endpoint *e, int n);

/* ---- The local engine ------------------------------------------------------
 * Loads MODEL_DIR (config.json, safetensors, tokenizer.json), renders each
 * prompt as one user turn of the DeepSeek-V3 chat format (tokenizer/chat.h,
 * with "<think>\n" after <｜Assistant｜> when thinking), encodes it with the
 * special tokens matched, and generates with the request's temperature,
 * top_p and seed until EOS ("stop") or max_tokens ("length"); max_tokens is
 * cut so that prompt + completion <= max_ctx. The output is split at
 * </think> (lm_chat_split_output): before it the reasoning, after it the
 * content; reasoning never closed leaves the content "".
 *
 * A prompt that leaves no room in the context (prompt tokens >= max_ctx) is
 * a reply with ok = 0 ("... no room to generate", prompt_tokens set): nothing
 * was generated, so nothing is recorded as an answer, and a rerun with a
 * larger context can answer it. An encoding failure is the same.
 *
 * Every request of a run goes to the batched engine (infer/engine.h) at
 * once: requests with the same prompt and the same parameters but the seed
 * are one engine request of n choices (the prompt is prefilled once and its
 * cache shared), and all of them decode together, max_seqs sequences per
 * forward. Every answer is a pure function of (model, prompt, temperature,
 * top_p, seed, max_tokens, max_ctx): the batched forward is batch-invariant,
 * so order, company, preemption and resumption do not change it. Replies
 * come grouped by prompt, groups in order of their first request, requests
 * of a group in order: each as soon as it and every reply before it are
 * done (the order, and so the pool, is the same whatever the schedule).
 * seconds is the wall time from its submission to its end, shared prefill
 * and company included. */
typedef struct lm_local_opts {
    const char *model_dir;
    int threads;               /* <= 0: all cores */
    int64_t max_ctx;           /* <= 0: the model's max_position_embeddings */
    int thinking;              /* start the answer with "<think>\n" */
    int no_fp8_emulation;      /* DeepSeek-V3.2: --fp8-emulation off (lm_config's fp8_emulation) */
    int max_seqs;              /* sequences decoded together (<= 0: 64) */
    int64_t cache_tokens;      /* positions the cache holds in all (<= 0: the engine's default,
                                  max_seqs x max_ctx capped at a quarter of memory) */
} lm_local_opts;
lm_backend *lm_backend_local_create(const lm_local_opts *o, lm_error *err);

#endif
