/* generate.h — text generation on the KV-cached forward: sampling, stop
 * strings, EOS, streaming, prompt-prefix reuse, n samples sharing one
 * prompt prefill.
 *
 *   lm_generator *g = lm_generator_create(model, tok, pool, 4096, LM_ATTN_LATENT, &err);
 *   lm_gen_params p = lm_gen_params_default();  p.max_tokens = 256;
 *   lm_gen_result r = {0};
 *   lm_generate(g, prompt_ids, n, &p, print_piece, NULL, &r, &err);
 *   ... r.text.data, r.ids, r.finish ...
 *   lm_gen_result_free(&r); lm_generator_free(g);
 *
 * The generator remembers which tokens its cache holds: a prompt that
 * extends them (the next turn of a chat) only prefills the new part.
 * Sample k of lm_generate_n uses seed + k, so "n samples, seed s" equals n
 * single runs with seeds s, s+1, ... */
#ifndef LEMMA_INFER_GENERATE_H
#define LEMMA_INFER_GENERATE_H

#include <stdint.h>

#include "core/threadpool.h"
#include "infer/sample.h"
#include "infer/speculative.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct lm_gen_params {
    int64_t max_tokens;
    lm_sampling sampling;
    const char *const *stop;   /* stop strings (output is cut before the first match) */
    int nstop;
    int stop_at_eos;           /* default 1 */
    int skip_special;          /* drop special tokens from the text (default 0) */
} lm_gen_params;

lm_gen_params lm_gen_params_default(void);

typedef enum lm_finish {
    LM_FINISH_LENGTH = 0,      /* max_tokens reached */
    LM_FINISH_EOS,
    LM_FINISH_STOP,            /* a stop string matched */
    LM_FINISH_CONTEXT,         /* the context is full */
    LM_FINISH_CANCELLED,       /* the emit callback asked to stop */
} lm_finish;
const char *lm_finish_name(lm_finish f);

/* Receives streamed text (complete UTF-8, never past a stop string); return
 * non-zero to cancel. */
typedef int (*lm_gen_emit)(void *user, const char *text, size_t len);

typedef struct lm_gen_result {
    lm_ids ids;                /* generated ids (EOS included when it ended the run) */
    lm_text text;              /* generated text (up to a stop string) */
    lm_finish finish;
    int64_t prompt_tokens, prefilled_tokens;
    double prefill_s, decode_s;
} lm_gen_result;
void lm_gen_result_free(lm_gen_result *r);

typedef struct lm_generator lm_generator;

/* tok may be NULL: then no text is produced and stop strings are ignored. */
lm_generator *lm_generator_create(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, int64_t max_ctx,
                                  lm_attn_mode mode, lm_error *err);
void lm_generator_free(lm_generator *g);
int64_t lm_generator_max_ctx(const lm_generator *g);
int32_t lm_generator_eos(const lm_generator *g);

int lm_generate(lm_generator *g, const int32_t *prompt, int64_t n, const lm_gen_params *p, lm_gen_emit emit,
                void *user, lm_gen_result *res, lm_error *err);

/* nsamples continuations of one prompt; the prompt is prefilled once and its
 * cache copied to each sample. res has nsamples entries (zeroed by caller). */
int lm_generate_n(lm_generator *g, const int32_t *prompt, int64_t n, const lm_gen_params *p, int nsamples,
                  lm_gen_result *res, lm_error *err);

/* Speculative decoding with the checkpoint's MTP layer (infer/speculative.h)
 * for lm_generate from now on (NULL: plain decoding again); mtp must
 * outlive the generator. Greedy output is the plain greedy output token for
 * token; sampled output follows the same distribution with other draws.
 * lm_generate_n and the forks stay plain. */
int lm_generator_set_mtp(lm_generator *g, lm_mtp *mtp, lm_error *err);
/* The prefill form of the generator's state (model.h, lm_prefill_mode;
 * latent mode only). Not for speculative decoding: its verification chunks
 * would expand, and the drafts be checked against other bits. */
int lm_generator_set_prefill(lm_generator *g, lm_prefill_mode mode, lm_error *err);
/* Drafts verified and kept by the last lm_generate (zeros when plain). */
lm_spec_stats lm_generator_spec_stats(const lm_generator *g);

/* ---- One prompt, several continuations, on this generator ----
 * (The proof pipeline's local backend used these; it now runs on the
 * batched engine, infer/engine.h. Since arithmetic version 2 the bits do not
 * depend on how a prefill is split, so lm_generate's prefix reuse gives the
 * same answers too: docs/arithmetic.md.)
 *
 *   lm_generator_prefill(g, ids, n, &r0, &err);     // from position 0, always
 *   lm_generate_fork(g, &params_a, &ra, &err);      // equals lm_generate on a fresh generator
 *   lm_generate_fork(g, &params_b, &rb, &err);      // the prompt is prefilled once for both
 *
 * lm_generator_prefill empties the cache and prefills the whole prompt; res
 * gets prompt_tokens, prefilled_tokens and prefill_s. lm_generate_fork
 * decodes one continuation on a copy of that cache (the prompt stays for the
 * next fork); it fails when no prompt was prefilled since the last
 * lm_generate / lm_generate_n. Same errors as lm_generate. */
int lm_generator_prefill(lm_generator *g, const int32_t *prompt, int64_t n, lm_gen_result *res, lm_error *err);
int lm_generate_fork(lm_generator *g, const lm_gen_params *p, lm_gen_result *res, lm_error *err);

#endif
