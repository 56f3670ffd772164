/* server.h — lemma serve: an OpenAI-compatible HTTP/1.1 server
 * (libmicrohttpd) on the continuous-batching engine (infer/engine.h).
 *
 *   lm_serve_opts o = lm_serve_opts_default();  o.port = 0;
 *   lm_server *s = lm_serve_start(&o, &err);        // listening; /health answers 503
 *   printf("port %d\n", lm_serve_port(s));
 *   lm_serve_load(s, model_dir, &err);              // model, tokenizer, engine: /health 200
 *   ... wait for SIGTERM ...
 *   lm_serve_shutdown(s, 10);                       // stop accepting, finish or cut what runs
 *   lm_serve_free(s);
 *
 * Endpoints: POST /v1/chat/completions and /v1/completions (fields:
 * serve/request.h; answers and chunks: serve/response.h), GET /v1/models,
 * GET /health (no key needed), GET /metrics (Prometheus text). Errors use
 * OpenAI's shape with 400 (bad JSON or field, a prompt that does not fit
 * the context), 401 (key), 404, 405, 413 (body), 429 (queue full) and 503
 * (loading, shutting down).
 *
 * The library never prints; lm_serve_start refuses nothing about the
 * address: the caller warns about a non-loopback host without a key
 * (lm_serve_is_loopback). */
#ifndef LEMMA_SERVE_SERVER_H
#define LEMMA_SERVE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct lm_serve_opts {
    const char *host;        /* numeric IPv4 or IPv6 address (default 127.0.0.1) */
    int port;                /* 0: a free port (lm_serve_port says which) */
    const char *api_key;     /* NULL or "": no key; else "Authorization: Bearer KEY" is required */
    const char *served_name; /* the model's name in /v1/models and answers (default "lemma") */
    int max_seqs;            /* engine: sequences decoded together (default 64); also n's bound */
    int max_queue;           /* engine: requests waiting (default 256); beyond: 429 */
    int64_t ctx;             /* positions per sequence, prompt + completion (default 8192) */
    size_t max_body;         /* request body bytes at most (default 1 MiB); beyond: 413 */
    size_t max_header;       /* bytes of a request's head, for MHD's connection memory (default 32 KiB) */
    int threads;             /* compute threads (default: all cores) */
    int no_fp8_emulation;    /* DeepSeek-V3.2: --fp8-emulation off (lm_config's fp8_emulation) */
    int idle_timeout_s;      /* a connection silent this long is closed (default 60) */
    int max_connections;     /* connections at once (default 512) */
    int max_top_logprobs;    /* default 20 */
} lm_serve_opts;
lm_serve_opts lm_serve_opts_default(void);

typedef struct lm_server lm_server;

lm_server *lm_serve_start(const lm_serve_opts *o, lm_error *err);
int lm_serve_port(const lm_server *s);
/* Loads MODEL_DIR (weights and tokenizer.json) and starts the engine; until
 * it returns, /health and the completion endpoints answer 503. */
int lm_serve_load(lm_server *s, const char *model_dir, lm_error *err);
/* Stops accepting connections and new requests (503), lets the running ones
 * finish within grace_s seconds, then ends the rest with finish_reason
 * "length" (a stream gets its final chunk and [DONE]) and closes. */
void lm_serve_shutdown(lm_server *s, double grace_s);
void lm_serve_free(lm_server *s);

/* 1 when host is a loopback address (127.0.0.0/8, ::1). */
int lm_serve_is_loopback(const char *host);

#endif
