/* backend_local.c — the proof pipeline's prompts answered by lemma's own
 * batched engine; see prove/backend.h.
 *
 * A run becomes a list of engine requests: requests with one prompt and one
 * set of parameters but their seeds are one engine request whose choices
 * carry those seeds (the prompt prefilled once, its cache shared), so the N
 * samples of a problem and the M verifications of a proof cost one prefill
 * each. Everything is submitted as the engine's queue allows and decoded
 * together; a reply waits only for the replies before it in the documented
 * order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "infer/engine.h"
#include "model/model.h"
#include "prove/backend.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

typedef struct local_impl {
    lm_model *model;
    lm_tokenizer *tok;
    lm_pool *pool;
    lm_engine *engine;
    int64_t max_ctx;
    int max_seqs;
    int thinking;
} local_impl;

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

static int same_params(const lm_gen_params *a, const lm_gen_params *b) {
    return a->max_tokens == b->max_tokens && a->sampling.temperature == b->sampling.temperature &&
           a->sampling.top_p == b->sampling.top_p;
}

/* ---- the state of one run ---- */

typedef struct answer {        /* one lm_chat_request */
    int ok, ready;
    lm_text text;              /* the engine's text, split at delivery */
    lm_finish finish;
    int64_t prompt_tokens, completion_tokens;
    char why[1024 + 64];
    double t0, seconds;
} answer;

typedef struct run_state run_state;

typedef struct engine_job {    /* one engine request: choices of one prompt and one parameter set */
    run_state *run;
    const int32_t *prompt;
    int64_t prompt_len;
    lm_gen_params params;
    int *members;              /* request indices, one per choice */
    uint64_t *seeds;
    int n;
    uint64_t id;
    int submitted;
} engine_job;

struct run_state {
    answer *ans;
    int fatal;                 /* an engine failure: run returns -1 */
    char fatal_msg[1024];
};

static void on_event(void *user, const lm_engine_event *ev) {
    engine_job *job = user;
    answer *a = &job->run->ans[job->members[ev->choice]];
    if (ev->text_len && lm_text_append(&a->text, ev->text, ev->text_len)) {
        job->run->fatal = 1;
        snprintf(job->run->fatal_msg, sizeof job->run->fatal_msg, "out of memory for an answer's text");
    }
    if (ev->kind != LM_EV_DONE) return;
    if (ev->error && !job->run->fatal) {
        job->run->fatal = 1;
        snprintf(job->run->fatal_msg, sizeof job->run->fatal_msg, "%s", ev->error);
    }
    a->ok = 1;
    a->ready = 1;
    a->finish = ev->finish;
    a->prompt_tokens = ev->prompt_tokens;
    a->completion_tokens = ev->completion_tokens;
    a->seconds = lm_now_s() - a->t0;
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

/* Renders and encodes a prompt; NULL and why when it cannot be answered. */
static const char *encode_prompt(local_impl *L, const char *prompt, lm_text *rendered, lm_ids *ids, char *why,
                                 size_t cap, int64_t *prompt_tokens) {
    lm_chat_msg msg = {.role = "user", .content = prompt};
    lm_chat_opts co = {.add_generation_prompt = 1, .thinking = L->thinking};
    lm_error perr;
    rendered->len = 0;
    ids->n = 0;
    *prompt_tokens = -1;
    if (lm_chat_render(&msg, 1, &co, rendered, &perr) ||
        lm_tokenizer_encode(L->tok, rendered->data, rendered->len, LM_TOK_SPECIAL, ids, &perr)) {
        snprintf(why, cap, "cannot encode the prompt: %s", perr.msg);
        return why;
    }
    if ((int64_t)ids->n >= L->max_ctx) {
        snprintf(why, cap, "the prompt is %zu tokens and the context %lld (max_ctx): no room to generate", ids->n,
                 (long long)L->max_ctx);
        *prompt_tokens = (int64_t)ids->n;
        return why;
    }
    return NULL;
}

/* Hands out the replies that are ready, in order, until one is not or
 * *stop is set; -1 when stopped. */
static int deliver(const lm_chat_request *reqs, answer *ans, const int *order, int n, int *next, lm_reply_fn on_reply,
                   void *user, local_impl *L, volatile int *stop, lm_text *content, lm_text *reasoning) {
    while (*next < n && ans[order[*next]].ready) {
        if (*next && stop && *stop) return -1;
        int i = order[(*next)++];
        answer *a = &ans[i];
        lm_chat_reply rep = {.key = reqs[i].key, .attempts = 1, .error = "", .content = "", .reasoning = "",
                             .finish_reason = "", .prompt_tokens = a->prompt_tokens, .completion_tokens = -1};
        if (!a->ok) {
            rep.error = a->why;
        } else {
            lm_chat_split sp;
            lm_chat_split_output(a->text.data ? a->text.data : "", a->text.len, L->thinking, &sp);
            content->len = reasoning->len = 0;
            if (lm_text_append(content, sp.answer ? sp.answer : "", sp.answer ? sp.answer_len : 0) ||
                lm_text_append(reasoning, sp.reasoning ? sp.reasoning : "", sp.reasoning ? sp.reasoning_len : 0))
                return -2;
            rep.ok = 1;
            rep.content = content->data;
            rep.reasoning = reasoning->data;
            rep.finish_reason = finish_reason(a->finish);
            rep.completion_tokens = a->completion_tokens;
            rep.seconds = a->seconds;
        }
        on_reply(user, &rep);
        lm_text_free(&a->text);
    }
    return 0;
}

static int local_run(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
                     volatile int *stop, lm_error *err) {
    local_impl *L = b->impl;
    if (n < 0) return lm_fail(err, "local backend: %d requests", n);
    if (n == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!reqs[i].prompt) return lm_fail(err, "local backend: request %d (key %llu) has no prompt", i,
                                            (unsigned long long)reqs[i].key);
    int rc = -1, njobs = 0, ngroups = 0;
    int *order = malloc((size_t)n * sizeof *order);
    int *members = malloc((size_t)n * sizeof *members), *job_of = malloc((size_t)n * sizeof *job_of);
    uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
    group *groups = malloc((size_t)n * sizeof *groups);
    engine_job *jobs = calloc((size_t)n, sizeof *jobs);
    lm_ids *prompts = calloc((size_t)n, sizeof *prompts); /* one per group */
    run_state run = {.ans = calloc((size_t)n, sizeof *run.ans)};
    lm_text rendered = {0}, content = {0}, reasoning = {0};
    if (!order || !members || !job_of || !seeds || !groups || !jobs || !prompts || !run.ans) {
        lm_fail(err, "local backend: out of memory for %d requests", n);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_prompt, (void *)reqs);
    for (int k = 0; k < n; k++) {
        if (k && !strcmp(reqs[order[k]].prompt, reqs[order[k - 1]].prompt)) {
            groups[ngroups - 1].count++;
            continue;
        }
        groups[ngroups++] = (group){.first = order[k], .start = k, .count = 1};
    }
    qsort(groups, (size_t)ngroups, sizeof *groups, by_first);
    /* the delivery order: groups by first request, requests of a group in order */
    for (int g = 0, at = 0; g < ngroups; g++) {
        memmove(members + at, order + groups[g].start, (size_t)groups[g].count * sizeof *members);
        groups[g].start = at;
        at += groups[g].count;
    }
    memcpy(order, members, (size_t)n * sizeof *order);

    /* jobs: per group, requests with equal parameters, at most max_seqs each;
     * members[] holds each job's requests together, in request order */
    for (int g = 0; g < ngroups; g++) {
        const group *gr = &groups[g];
        char why[sizeof run.ans[0].why];
        int64_t prompt_tokens;
        if (encode_prompt(L, reqs[gr->first].prompt, &rendered, &prompts[g], why, sizeof why, &prompt_tokens)) {
            for (int k = 0; k < gr->count; k++) {
                answer *a = &run.ans[order[gr->start + k]];
                a->ready = 1;
                a->prompt_tokens = prompt_tokens;
                snprintf(a->why, sizeof a->why, "%s", why);
                job_of[order[gr->start + k]] = -1;
            }
            continue;
        }
        int64_t plen = (int64_t)prompts[g].n;
        int first_job = njobs;
        for (int k = 0; k < gr->count; k++) {
            int i = order[gr->start + k];
            lm_gen_params p = request_params(&reqs[i], plen, L->max_ctx);
            int j = first_job;
            while (j < njobs && !(same_params(&jobs[j].params, &p) && jobs[j].n < L->max_seqs)) j++;
            if (j == njobs)
                jobs[njobs++] = (engine_job){.run = &run, .prompt = prompts[g].ids, .prompt_len = plen, .params = p};
            job_of[i] = j;
            jobs[j].n++;
        }
    }
    for (int j = 0, at = 0; j < njobs; j++) {
        jobs[j].members = members + at;
        jobs[j].seeds = seeds + at;
        at += jobs[j].n;
        jobs[j].n = 0;
    }
    for (int k = 0; k < n; k++) {
        int i = order[k], j = job_of[i];
        if (j < 0) continue;
        jobs[j].members[jobs[j].n] = i;
        jobs[j].seeds[jobs[j].n++] = reqs[i].seed;
    }

    int next = 0, submitted = 0;
    for (;;) {
        int d = deliver(reqs, run.ans, order, n, &next, on_reply, user, L, stop, &content, &reasoning);
        if (d == -2) {
            lm_fail(err, "local backend: out of memory");
            goto done;
        }
        if (d < 0 || (stop && *stop && next < n)) {
            lm_fail(err, "interrupted");
            goto done;
        }
        if (next == n) break;
        while (submitted < njobs) {
            engine_job *job = &jobs[submitted];
            lm_engine_request er = {.prompt = job->prompt, .prompt_len = job->prompt_len, .n = job->n,
                                    .params = job->params, .seeds = job->seeds, .on_event = on_event, .user = job};
            lm_error serr;
            if (lm_engine_submit(L->engine, &er, &job->id, &serr)) {
                if (lm_engine_queue_full(&serr)) break;
                lm_fail(err, "local backend: %s", serr.msg);
                goto done;
            }
            double t0 = lm_now_s();
            for (int k = 0; k < job->n; k++) run.ans[job->members[k]].t0 = t0;
            job->submitted = 1;
            submitted++;
        }
        int left = lm_engine_step(L->engine, err);
        if (left < 0 || run.fatal) {
            if (left >= 0) lm_fail(err, "%s", run.fatal_msg);
            lm_fail_prefix(err, "local backend");
            goto done;
        }
        if (left == 0 && submitted == njobs && next < n && !run.ans[order[next]].ready) {
            lm_fail(err, "local backend: the engine went idle with reply %d of %d missing", next, n);
            goto done;
        }
    }
    rc = 0;
done:
    /* whatever is still running is dropped: the engine must be idle for the next run */
    if (jobs) {
        for (int j = 0; j < njobs; j++)
            if (jobs[j].submitted) lm_engine_cancel(L->engine, jobs[j].id);
        lm_error ignored;
        while (lm_engine_step(L->engine, &ignored) > 0) {}
    }
    if (run.ans)
        for (int i = 0; i < n; i++) lm_text_free(&run.ans[i].text);
    if (prompts)
        for (int g = 0; g < ngroups; g++) lm_ids_free(&prompts[g]);
    free(run.ans);
    free(prompts);
    free(jobs);
    free(groups);
    free(seeds);
    free(members);
    free(job_of);
    free(order);
    lm_text_free(&rendered);
    lm_text_free(&content);
    lm_text_free(&reasoning);
    return rc;
}

static void local_free(lm_backend *b) {
    if (!b) return;
    local_impl *L = b->impl;
    if (L) {
        lm_engine_free(L->engine);
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
    L->model->cfg.fp8_emulation = !o->no_fp8_emulation;
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
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = L->max_ctx;
    if (o->max_seqs > 0) eo.max_seqs = o->max_seqs;
    if (eo.max_batch_tokens < eo.max_seqs) eo.max_batch_tokens = eo.max_seqs;
    eo.cache_tokens = o->cache_tokens > 0 ? o->cache_tokens : 0;
    L->max_seqs = eo.max_seqs;
    L->engine = lm_engine_create(L->model, L->tok, L->pool, &eo, err);
    if (!L->engine) goto fail;
    return b;
fail:
    lm_fail_prefix(err, "local backend");
    local_free(b);
    return NULL;
}
