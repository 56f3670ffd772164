/* request.h — the body of an OpenAI-style completion request, parsed and
 * validated, without HTTP: what `lemma serve` hands the engine.
 *
 *   lm_serve_limits lim = {.max_n = 64, .max_top_logprobs = 20, .max_ctx = 8192, .max_stop = 16};
 *   lm_serve_request r;  lm_serve_param_error pe;
 *   if (lm_serve_request_parse(LM_SERVE_CHAT, body, len, &lim, &r, &pe)) -> 400 with pe.msg, pe.param
 *   ... r.msgs / r.prompt ...
 *   lm_serve_request_free(&r);
 *
 * Field rules follow OpenAI's: temperature in [0, 2], top_p in (0, 1],
 * n in 1..max_n, max_tokens >= 1 (max_completion_tokens is its newer name;
 * giving both is an error), top_logprobs 0..max_top_logprobs and only with
 * logprobs, stop a string or a list of up to max_stop non-empty strings,
 * seed an integer >= 0. A JSON null counts as absent. Fields OpenAI defines
 * that lemma does not implement are accepted only at their neutral value
 * (frequency_penalty 0, logit_bias {}, ...); any other field is an error, so
 * a typo is never silently ignored. Extensions: top_k, min_p, ignore_eos (as vLLM),
 * chat_template_kwargs.thinking (the prompt then opens "<think>\n", as
 * vLLM's DeepSeek templates do).
 *
 * Messages: role system / developer (as system) / user / assistant;
 * content a string or a list of {"type":"text","text":...} parts (joined);
 * an assistant turn may carry reasoning_content (or reasoning), which the
 * chat format renders in front of its content. The messages list must not
 * be empty and must hold a user turn.
 *
 * Errors: pe.msg is one line naming the field ("messages[1].role: expected
 * one of system, user, assistant, got \"tool\""), pe.param the field's path
 * for the error object's "param" (empty for a body that is not JSON). */
#ifndef LEMMA_SERVE_REQUEST_H
#define LEMMA_SERVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "formats/json.h"
#include "tokenizer/chat.h"

typedef enum lm_serve_kind {
    LM_SERVE_CHAT = 0,       /* POST /v1/chat/completions */
    LM_SERVE_COMPLETION,     /* POST /v1/completions */
} lm_serve_kind;

typedef struct lm_serve_limits {
    int max_n;               /* n at most */
    int max_top_logprobs;    /* top_logprobs (chat) / logprobs (completions) at most */
    int64_t max_ctx;         /* max_tokens at most (the prompt is checked once tokenized) */
    int max_stop;            /* stop strings at most */
} lm_serve_limits;

typedef struct lm_serve_param_error {
    char msg[512];
    char param[96];
} lm_serve_param_error;

typedef struct lm_serve_request {
    lm_serve_kind kind;
    json_doc *doc;           /* owns every string below */
    /* chat */
    lm_chat_msg *msgs;
    size_t nmsgs;
    char **joined;           /* contents made from lists of parts (owned) */
    size_t njoined;
    int thinking;            /* chat_template_kwargs.thinking */
    /* completions: a string (prompt, prompt_len) or token ids */
    const char *prompt;
    size_t prompt_len;
    int32_t *prompt_ids;     /* owned */
    size_t nprompt_ids;
    int echo;                /* always 0 (echo is refused) */
    /* both */
    const char *model;       /* NULL when absent */
    int64_t max_tokens;      /* -1: up to the context */
    double temperature;      /* default 1 */
    double top_p;            /* default 1 */
    double min_p;            /* default 0 */
    int top_k;               /* default 0 (off) */
    uint64_t seed;           /* default 0 */
    int has_seed;
    const char **stop;       /* owned array of pointers into doc */
    int nstop;
    int n;                   /* default 1 */
    int stream;
    int include_usage;       /* stream_options.include_usage */
    int logprobs;            /* report the sampled tokens' logprobs */
    int top_logprobs;        /* and this many alternatives */
    int ignore_eos;          /* do not stop at the model's EOS */
} lm_serve_request;

/* 0, or -1 with pe filled (out is then empty: nothing to free). */
int lm_serve_request_parse(lm_serve_kind kind, const char *body, size_t len, const lm_serve_limits *lim,
                           lm_serve_request *out, lm_serve_param_error *pe);
void lm_serve_request_free(lm_serve_request *r);

#endif
