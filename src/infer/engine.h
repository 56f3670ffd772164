/* engine.h — many sequences decoded together: continuous batching over the
 * paged latent cache (model/kvcache.h).
 *
 *   lm_engine_opts o = lm_engine_opts_default();  o.max_ctx = 8192;
 *   lm_engine *e = lm_engine_create(model, tok, pool, &o, &err);
 *   lm_engine_request r = {.prompt = ids, .prompt_len = n, .n = 4, .params = p,
 *                          .on_event = fn, .user = ctx};
 *   uint64_t id;  lm_engine_submit(e, &r, &id, &err);     // any thread
 *   lm_engine_run(e, &err);                                // steps until nothing is left
 *
 * Each step is one lm_batch_forward carrying one new token for every
 * decoding sequence and then chunks of waiting prompts, up to
 * max_batch_tokens rows; a request submitted between steps joins at the next
 * one, a finished sequence leaves at once and gives its blocks back. The n
 * choices of a request share the prompt: it is prefilled once and each
 * choice forks its cache (copy on write). When the cache runs out of blocks
 * the most recently admitted sequence is preempted (its blocks released) and
 * later recomputed from its prompt and the tokens it had produced.
 *
 * Determinism: a choice's tokens depend only on (model, prompt, params, its
 * seed) — never on the batch, the schedule, preemption or the thread count:
 * the batched forward is batch-invariant (kvcache.h) and choice k samples
 * with seeds[k] (or params.sampling.seed + k), draw i with step i, exactly
 * as lm_generate does. So a choice equals `lemma generate` with that seed.
 *
 * Threads: lm_engine_submit, lm_engine_cancel, lm_engine_stats and
 * lm_engine_wake may be called from any thread; lm_engine_step,
 * lm_engine_run and lm_engine_wait from one thread at a time (the engine
 * thread). Events are delivered on the engine thread, inside step. */
#ifndef LEMMA_INFER_ENGINE_H
#define LEMMA_INFER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "infer/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct lm_engine_opts {
    int64_t max_ctx;          /* positions per sequence, prompt + completion (default: the model's
                                 max_position_embeddings) */
    int max_seqs;             /* sequences in the running batch at most (default 64) */
    int max_queue;            /* requests waiting to start at most (>= 1); submit fails beyond (default 256) */
    int64_t max_batch_tokens; /* rows of one forward: decode tokens first, then prompt chunks (default 512;
                                 at least max_seqs) */
    int64_t block_tokens;     /* positions per cache block (default 16) */
    int64_t cache_tokens;     /* positions the block pool holds in all (at least max_ctx: one sequence
                                 alone always fits); 0: max_seqs x max_ctx, capped at a quarter of
                                 physical memory and at least max_ctx */
    int max_top_logprobs;     /* bound on lm_engine_request.top_logprobs (default 20) */
    lm_attn_mode attn;        /* what the cache holds (default LM_ATTN_LATENT) */
} lm_engine_opts;
lm_engine_opts lm_engine_opts_default(void);

typedef enum lm_engine_event_kind {
    LM_EV_TOKEN = 0,          /* a token was sampled (text: what became final with it, maybe "") */
    LM_EV_DONE,               /* the choice ended (text: the rest; finish, counts set) */
} lm_engine_event_kind;

typedef struct lm_engine_event {
    uint64_t request;         /* the id submit returned */
    int choice;               /* 0 .. n-1 */
    lm_engine_event_kind kind;
    /* LM_EV_TOKEN: */
    int32_t token;
    float logprob;            /* log-softmax of the model's logits (before temperature and filters, over
                                 the ids that can be sampled: the tokenizer's when there is one; summed
                                 in double); NAN when the request asked for no logprobs */
    int ntop;                 /* top_logprobs alternatives, most likely first (ties: smaller id) */
    const int32_t *top_ids;
    const float *top_logprobs;
    /* both kinds: text that became final (complete UTF-8, never past a stop
     * string; invalid bytes as U+FFFD) — concatenated over a choice's events
     * it is exactly the choice's text; valid only during the callback. */
    const char *text;
    size_t text_len;
    /* LM_EV_DONE: */
    lm_finish finish;         /* EOS, STOP, LENGTH, CONTEXT, CANCELLED */
    int64_t prompt_tokens, completion_tokens; /* completion counts an ending EOS */
    const char *error;        /* non-NULL: the choice failed (the message); finish is CANCELLED */
} lm_engine_event;

typedef void (*lm_engine_event_fn)(void *user, const lm_engine_event *ev);

typedef struct lm_engine_request {
    const int32_t *prompt;    /* copied at submit */
    int64_t prompt_len;       /* >= 1, < max_ctx */
    int n;                    /* choices (>= 1); they share the prompt's prefill */
    lm_gen_params params;     /* max_tokens (>= 1), sampling, stop strings (copied), stop_at_eos,
                                 skip_special; as lm_generate, a choice that reaches max_ctx ends with
                                 LM_FINISH_CONTEXT (its last token sampled, not cached) */
    const uint64_t *seeds;    /* NULL: choice k samples with params.sampling.seed + k; else seeds[k] */
    int logprobs;             /* report the sampled token's logprob */
    int top_logprobs;         /* and this many alternatives (0 .. max_top_logprobs) */
    lm_engine_event_fn on_event;
    void *user;
} lm_engine_request;

typedef struct lm_engine lm_engine;

/* tok may be NULL (ids only: no text, stop strings ignored). The pool's size
 * bounds the threads; the engine keeps pointers to m, tok and pool. */
lm_engine *lm_engine_create(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, const lm_engine_opts *o,
                            lm_error *err);
void lm_engine_free(lm_engine *e);    /* requests still present get no more events */
int64_t lm_engine_max_ctx(const lm_engine *e);

/* Queues a request; -1 with err when it is invalid (empty prompt, too long,
 * n < 1 or above max_seqs, bad ids) or the queue is full (err names it;
 * lm_engine_queue_full tells the two apart). */
int lm_engine_submit(lm_engine *e, const lm_engine_request *r, uint64_t *id, lm_error *err);
int lm_engine_queue_full(const lm_error *err);
/* Ends every choice of a request at the next step (LM_FINISH_CANCELLED, one
 * DONE event each, with text "": what was held back is dropped) and frees
 * its cache blocks; 0, or -1 when the id is unknown, already finished or
 * already cancelled. */
int lm_engine_cancel(lm_engine *e, uint64_t id);

/* One forward for the running batch (admitting waiting requests first).
 * Returns the number of sequences still running or waiting (0: idle), -1 on
 * a failure of the model itself (err; every live choice then gets a DONE
 * event with error set). */
int lm_engine_step(lm_engine *e, lm_error *err);
/* Steps until idle. */
int lm_engine_run(lm_engine *e, lm_error *err);
/* Blocks until work is waiting, lm_engine_wake is called, or seconds pass. */
void lm_engine_wait(lm_engine *e, double seconds);
void lm_engine_wake(lm_engine *e);

typedef struct lm_engine_stats {
    int running;              /* sequences in the batch */
    int queued;               /* requests not yet started */
    int64_t blocks_used, blocks_total, block_tokens;
    uint64_t requests_done, prompt_tokens, completion_tokens, preemptions, steps;
    double busy_s;            /* time spent in steps */
} lm_engine_stats;
void lm_engine_stats_get(lm_engine *e, lm_engine_stats *s);

#endif
