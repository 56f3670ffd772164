/* backend_local.c — the proof pipeline's prompts answered by lemma's own
 * engine; see prove/backend.h.
 *
 * Requests with the same prompt are answered together: the prompt is
 * prefilled once from position 0 and every request decodes on a copy of its
 * cache (lm_generator_prefill / lm_generate_fork), so each answer is a pure
 * function of (prompt, sampling, seed) whatever else the call holds or in
 * which order it comes. The N samples of a problem and the M verifications of
 * a proof share their prompts, which saves all but one prefill each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/generate.h"
#include "model/model.h"
#include "prove/backend.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

typedef struct local_impl {
    lm_model *model;
    lm_tokenizer *tok;
    lm_pool *pool;
    lm_generator *gen;
    int64_t max_ctx;
    int thinking;
} local_impl;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *finish_reason(lm_finish f) {
    switch (f) {
    case LM_FINISH_EOS: return "stop";
    case LM_FINISH_STOP: return "stop";
    case LM_FINISH_LENGTH: return "length";
    case LM_FINISH_CONTEXT: return "length";
    case LM_FINISH_CANCELLED: return "cancelled";
    }
    return "";
}

/* max_tokens is cut to what the context holds after the prompt, so that
 * prompt + completion <= max_ctx as an endpoint counts it. */
static lm_gen_params request_params(const lm_chat_request *r, int64_t prompt_tokens, int64_t max_ctx) {
    lm_gen_params p = lm_gen_params_default();
    int64_t room = max_ctx - prompt_tokens;
    p.max_tokens = r->max_tokens > 0 && r->max_tokens < room ? r->max_tokens : room;
    p.sampling.temperature = r->temperature > 0 ? (float)r->temperature : 0.0f;
    p.sampling.top_p = r->top_p > 0 && r->top_p <= 1 ? (float)r->top_p : 1.0f;
    p.sampling.seed = r->seed;
    p.stop_at_eos = 1;
    p.skip_special = 0; /* </think> must stay in the text for the split */
    return p;
}

static void reply_failure(const lm_chat_request *r, const char *why, int64_t prompt_tokens, lm_reply_fn on_reply,
                          void *user) {
    lm_chat_reply rep = {.key = r->key, .ok = 0, .content = "", .reasoning = "", .finish_reason = "",
                         .error = why, .prompt_tokens = prompt_tokens, .completion_tokens = -1,
                         .seconds = 0, .attempts = 1};
    on_reply(user, &rep);
}

/* Request indices ordered by prompt, then by index: requests with one prompt
 * end up next to each other, the first of each run being its lowest index. */
static int by_prompt(const void *a, const void *b, void *ctx) {
    const lm_chat_request *reqs = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    int c = strcmp(reqs[i].prompt, reqs[j].prompt);
    return c ? c : (i > j) - (i < j);
}

typedef struct group {
    int first;  /* lowest request index of the group */
    int start;  /* range in the sorted index array */
    int count;
} group;

static int by_first(const void *a, const void *b) {
    const group *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

static int local_run(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
                     volatile int *stop, lm_error *err) {
    local_impl *L = b->impl;
    if (n < 0) return lm_fail(err, "local backend: %d requests", n);
    if (n == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!reqs[i].prompt) return lm_fail(err, "local backend: request %d (key %llu) has no prompt", i,
                                            (unsigned long long)reqs[i].key);
    int rc = -1;
    int *order = malloc((size_t)n * sizeof *order);
    group *groups = malloc((size_t)n * sizeof *groups);
    lm_text rendered = {0}, content = {0}, reasoning = {0};
    lm_ids ids = {0};
    if (!order || !groups) {
        lm_fail(err, "local backend: out of memory for %d requests", n);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_prompt, (void *)reqs);
    int ngroups = 0;
    for (int k = 0; k < n; k++) {
        if (k && !strcmp(reqs[order[k]].prompt, reqs[order[k - 1]].prompt)) {
            groups[ngroups - 1].count++;
            continue;
        }
        groups[ngroups++] = (group){.first = order[k], .start = k, .count = 1};
    }
    qsort(groups, (size_t)ngroups, sizeof *groups, by_first);

    for (int gi = 0; gi < ngroups; gi++) {
        const group *gr = &groups[gi];
        const lm_chat_request *r0 = &reqs[gr->first];
        if (stop && *stop) {
            lm_fail(err, "interrupted");
            goto done;
        }
        lm_chat_msg msg = {.role = "user", .content = r0->prompt};
        lm_chat_opts co = {.add_generation_prompt = 1, .thinking = L->thinking};
        lm_error perr;
        rendered.len = 0;
        ids.n = 0;
        const char *why = NULL;
        char whybuf[sizeof perr.msg + 64];
        int64_t prompt_tokens = -1;
        if (lm_chat_render(&msg, 1, &co, &rendered, &perr) ||
            lm_tokenizer_encode(L->tok, rendered.data, rendered.len, LM_TOK_SPECIAL, &ids, &perr)) {
            snprintf(whybuf, sizeof whybuf, "cannot encode the prompt: %s", perr.msg);
            why = whybuf;
        } else if ((int64_t)ids.n >= L->max_ctx) {
            snprintf(whybuf, sizeof whybuf,
                     "the prompt is %zu tokens and the context %lld (max_ctx): no room to generate", ids.n,
                     (long long)L->max_ctx);
            why = whybuf;
            prompt_tokens = (int64_t)ids.n;
        }
        if (why) {
            for (int k = 0; k < gr->count; k++) {
                if (k && stop && *stop) {
                    lm_fail(err, "interrupted");
                    goto done;
                }
                reply_failure(&reqs[order[gr->start + k]], why, prompt_tokens, on_reply, user);
            }
            continue;
        }
        lm_gen_result pre = {0};
        if (lm_generator_prefill(L->gen, ids.ids, (int64_t)ids.n, &pre, err)) {
            lm_gen_result_free(&pre);
            lm_fail_prefix(err, "local backend");
            goto done;
        }
        double prefill_s = pre.prefill_s;
        lm_gen_result_free(&pre);
        /* within a group, in request order (indices ascend within a run) */
        for (int k = 0; k < gr->count; k++) {
            const lm_chat_request *r = &reqs[order[gr->start + k]];
            if (k && stop && *stop) {
                lm_fail(err, "interrupted");
                goto done;
            }
            lm_gen_params p = request_params(r, (int64_t)ids.n, L->max_ctx);
            lm_gen_result res = {0};
            double t0 = now_s();
            if (lm_generate_fork(L->gen, &p, &res, err)) {
                lm_gen_result_free(&res);
                lm_fail_prefix(err, "local backend");
                goto done;
            }
            double secs = now_s() - t0 + (k == 0 ? prefill_s : 0);
            lm_chat_split sp;
            lm_chat_split_output(res.text.data ? res.text.data : "", res.text.len, L->thinking, &sp);
            content.len = 0;
            reasoning.len = 0;
            if (lm_text_append(&content, sp.answer ? sp.answer : "", sp.answer ? sp.answer_len : 0) ||
                lm_text_append(&reasoning, sp.reasoning ? sp.reasoning : "", sp.reasoning ? sp.reasoning_len : 0)) {
                lm_gen_result_free(&res);
                lm_fail(err, "local backend: out of memory");
                goto done;
            }
            lm_chat_reply rep = {.key = r->key,
                                 .ok = 1,
                                 .content = content.data,
                                 .reasoning = reasoning.data,
                                 .finish_reason = finish_reason(res.finish),
                                 .error = "",
                                 .prompt_tokens = (int64_t)ids.n,
                                 .completion_tokens = (int64_t)res.ids.n,
                                 .seconds = secs,
                                 .attempts = 1};
            on_reply(user, &rep);
            lm_gen_result_free(&res);
        }
    }
    rc = 0;
done:
    free(order);
    free(groups);
    lm_text_free(&rendered);
    lm_text_free(&content);
    lm_text_free(&reasoning);
    lm_ids_free(&ids);
    return rc;
}

static void local_free(lm_backend *b) {
    if (!b) return;
    local_impl *L = b->impl;
    if (L) {
        lm_generator_free(L->gen);
        lm_pool_free(L->pool);
        lm_tokenizer_free(L->tok);
        lm_model_free(L->model);
        free(L);
    }
    free(b);
}

lm_backend *lm_backend_local_create(const lm_local_opts *o, lm_error *err) {
    if (!o || !o->model_dir || !*o->model_dir) {
        lm_fail(err, "local backend: no model directory given");
        return NULL;
    }
    lm_backend *b = calloc(1, sizeof *b);
    local_impl *L = calloc(1, sizeof *L);
    if (!b || !L) {
        free(b);
        free(L);
        lm_fail(err, "local backend: out of memory");
        return NULL;
    }
    b->name = "local";
    b->run = local_run;
    b->free = local_free;
    b->impl = L;
    L->thinking = o->thinking != 0;
    if (lm_model_load(o->model_dir, &L->model, err)) {
        L->model = NULL;
        goto fail;
    }
    L->tok = lm_tokenizer_load(o->model_dir, err);
    if (!L->tok) goto fail;
    L->max_ctx = o->max_ctx > 0 ? o->max_ctx : L->model->cfg.max_position_embeddings;
    if (L->max_ctx < 2) {
        lm_fail(err, "%s: max_position_embeddings is %lld and no max_ctx was given", o->model_dir,
                (long long)L->max_ctx);
        goto fail;
    }
    L->pool = lm_pool_create(o->threads);
    if (!L->pool) {
        lm_fail(err, "local backend: cannot start %d threads", o->threads);
        goto fail;
    }
    L->gen = lm_generator_create(L->model, L->tok, L->pool, L->max_ctx, LM_ATTN_LATENT, err);
    if (!L->gen) goto fail;
    return b;
fail:
    lm_fail_prefix(err, "local backend");
    local_free(b);
    return NULL;
}
