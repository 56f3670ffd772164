/* engine.c — continuous batching over the paged latent cache; see engine.h.
 *
 * The engine thread owns every sequence (a request's choice) once its
 * request has started; other threads only touch the queue of requests not
 * yet started, the cancel flags and the stats, all under one mutex.
 *
 * A started choice is one of:
 *   WAIT_FORK   choice k > 0 of a request whose prompt is still being
 *               prefilled by choice 0 (it forks choice 0's cache then);
 *   RUN         in the batch: it holds cache blocks for kv.pos positions of
 *               its tokens (prompt, then the ids it sampled) and feeds the
 *               rest: one token (the last sampled) when decoding, a chunk
 *               when prefilling or recomputing;
 *   PREEMPTED   in the batch's slots but holding no blocks: it waits to be
 *               readmitted and recomputes its tokens from position 0;
 *   DONE.
 * The batch is kept in admission order; the most recently admitted RUN
 * choice is the one preempted when blocks run out. Because the forward is
 * batch-invariant, a recomputed choice's logits, and so its future tokens,
 * are those it would have had. */
#include "infer/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "infer/textout.h"
#include "model/kvcache.h"

static const char QUEUE_FULL[] = "the engine's queue is full";

typedef enum choice_state { CH_WAIT_FORK = 0, CH_RUN, CH_PREEMPTED, CH_DONE } choice_state;

typedef struct request request;
typedef struct choice choice;

/* A token to sample for a choice from a row of logits, and what came of it. */
typedef struct draw {
    choice *c;
    const float *row;
    int32_t id;
    float logprob;
    int ntop;
    int32_t *top_ids;           /* into the engine's arrays */
    float *top_lp;
} draw;

struct choice {
    request *req;
    int index;
    uint64_t seed;
    choice_state state;
    lm_kvseq kv;
    lm_ids out;                 /* sampled ids, EOS included */
    lm_text text;
    lm_textout textout;
    uint64_t admitted;          /* admission stamp: larger = admitted later */
    int scheduled;              /* has a segment in this step's forward */
};

struct request {
    uint64_t id;
    request *live_prev, *live_next;   /* every request not retired (under the mutex) */
    request *queue_next;              /* the queue of requests not started (under the mutex) */
    int cancel;                       /* lm_engine_cancel was called (under the mutex) */
    int cancel_seen;                  /* the engine thread acted on it */
    int started, forked, ndone;
    int32_t *prompt;
    int64_t prompt_len;
    int n;
    lm_gen_params params;             /* stop points into stop_copy */
    char **stop_copy;
    int logprobs, top_logprobs;
    lm_engine_event_fn on_event;
    void *user;
    choice *choice;                   /* [n] */
    request *started_next;            /* the engine thread's list of started requests */
};

struct lm_engine {
    const lm_model *m;
    const lm_tokenizer *tok;
    lm_pool *pool;
    lm_engine_opts o;
    int64_t V, sample_vocab;
    int32_t eos;
    lm_kvcache *kc;
    lm_fwd *fwd;
    lm_sampler **samplers;      /* one per pool thread: sampling runs in parallel */
    int nsamplers;

    /* the engine thread's */
    choice **batch;             /* [max_seqs] RUN and PREEMPTED choices in admission order */
    int nbatch;
    int slots;                  /* choices of started requests not done (WAIT_FORK included) */
    request *started;           /* started requests, in start order */
    lm_batch_seg *segs;         /* [max_seqs] */
    choice **seg_choice;        /* [max_seqs] */
    int32_t *rows;              /* [max_batch_tokens] the forward's ids */
    float *logits;              /* [max_seqs, V] */
    struct draw *draws;         /* [max_seqs] this step's tokens to sample */
    int ndraws;
    int32_t *top_ids;           /* [max_seqs, max_top_logprobs] */
    float *top_lp;
    uint64_t stamp;
    uint64_t done_since_stats, prompt_since_stats, completion_since_stats, preempt_since_stats;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
    request *queue_head, *queue_tail;
    int nqueue, queued_choices;
    request *live;
    uint64_t next_id;
    lm_engine_stats stats;
};

lm_engine_opts lm_engine_opts_default(void) {
    lm_engine_opts o;
    memset(&o, 0, sizeof o);
    o.max_seqs = 64;
    o.max_queue = 256;
    o.max_batch_tokens = 512;
    o.block_tokens = 16;
    o.max_top_logprobs = 20;
    o.attn = LM_ATTN_LATENT;
    return o;
}

/* ---- create / free ---- */

static void request_free(request *r) {
    if (!r) return;
    if (r->choice)
        for (int k = 0; k < r->n; k++) {
            lm_ids_free(&r->choice[k].out);
            lm_text_free(&r->choice[k].text);
        }
    free(r->choice);
    if (r->stop_copy)
        for (int i = 0; i < r->params.nstop; i++) free(r->stop_copy[i]);
    free(r->stop_copy);
    free(r->prompt);
    free(r);
}

lm_engine *lm_engine_create(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, const lm_engine_opts *o,
                            lm_error *err) {
    lm_engine_opts d = o ? *o : lm_engine_opts_default();
    int64_t V = m->cfg.vocab_size;
    if (d.max_ctx <= 0) d.max_ctx = m->cfg.max_position_embeddings;
    if (d.max_ctx < 2) {
        lm_fail(err, "engine: max_ctx is %lld (the model's max_position_embeddings when 0): at least 2 needed",
                (long long)d.max_ctx);
        return NULL;
    }
    if (d.max_seqs < 1 || d.max_seqs > 65536) {
        lm_fail(err, "engine: max_seqs is %d, expected 1 to 65536", d.max_seqs);
        return NULL;
    }
    if (d.max_queue < 1) {
        lm_fail(err, "engine: max_queue is %d, expected at least 1 (every request waits in the queue first)",
                d.max_queue);
        return NULL;
    }
    if (d.max_batch_tokens < d.max_seqs || d.max_batch_tokens > (1 << 24)) {
        lm_fail(err, "engine: max_batch_tokens is %lld, expected max_seqs (%d) to 16777216 (every decoding "
                "sequence needs a row)", (long long)d.max_batch_tokens, d.max_seqs);
        return NULL;
    }
    if (d.block_tokens < 1 || d.block_tokens > 65536) {
        lm_fail(err, "engine: block_tokens is %lld, expected 1 to 65536", (long long)d.block_tokens);
        return NULL;
    }
    if (d.max_top_logprobs < 0 || d.max_top_logprobs > 1024) {
        lm_fail(err, "engine: max_top_logprobs is %d, expected 0 to 1024", d.max_top_logprobs);
        return NULL;
    }
    if (d.attn != LM_ATTN_LATENT && d.attn != LM_ATTN_NAIVE) {
        lm_fail(err, "engine: attn is %d, expected LM_ATTN_LATENT or LM_ATTN_NAIVE", (int)d.attn);
        return NULL;
    }
    if (tok && lm_tokenizer_vocab_size(tok) > V) {
        lm_fail(err, "engine: the tokenizer has %d ids but the model's vocab_size is %lld",
                lm_tokenizer_vocab_size(tok), (long long)V);
        return NULL;
    }
    if (d.cache_tokens <= 0) {
        double per_token = (double)lm_kv_floats_per_token(&m->cfg, d.attn) * (double)m->cfg.num_hidden_layers *
                           sizeof(float);
        double quarter = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 4;
        double want = (double)d.max_seqs * (double)d.max_ctx;
        if (per_token > 0 && want * per_token > quarter) want = quarter / per_token;
        d.cache_tokens = want < (double)d.max_ctx ? d.max_ctx : (int64_t)want;
    } else if (d.cache_tokens < d.max_ctx) {
        lm_fail(err, "engine: cache_tokens is %lld, below max_ctx %lld (one sequence of the full context must fit)",
                (long long)d.cache_tokens, (long long)d.max_ctx);
        return NULL;
    }
    lm_engine *e = calloc(1, sizeof *e);
    if (!e) {
        lm_fail(err, "engine: out of memory");
        return NULL;
    }
    e->m = m;
    e->tok = tok;
    e->pool = pool;
    e->o = d;
    e->V = V;
    e->sample_vocab = tok ? lm_tokenizer_vocab_size(tok) : V;
    int32_t eos = tok ? lm_tokenizer_eos(tok) : -1;
    e->eos = eos >= 0 ? eos : (int32_t)m->cfg.eos_token_id;
    e->next_id = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    int64_t nblocks = (d.cache_tokens + d.block_tokens - 1) / d.block_tokens;
    e->kc = lm_kvcache_create(m, d.attn, d.block_tokens, nblocks, err);
    if (!e->kc) goto fail;
    e->fwd = lm_fwd_create(m, d.attn, d.max_batch_tokens, d.max_ctx, pool ? lm_pool_size(pool) : 1, err);
    if (!e->fwd) goto fail;
    e->nsamplers = pool ? lm_pool_size(pool) : 1;
    e->samplers = calloc((size_t)e->nsamplers, sizeof *e->samplers);
    for (int t = 0; e->samplers && t < e->nsamplers; t++)
        if (!(e->samplers[t] = lm_sampler_create(e->sample_vocab))) {
            free(e->samplers);
            e->samplers = NULL;
        }
    e->draws = calloc((size_t)d.max_seqs, sizeof *e->draws);
    e->batch = calloc((size_t)d.max_seqs, sizeof *e->batch);
    e->segs = calloc((size_t)d.max_seqs, sizeof *e->segs);
    e->seg_choice = calloc((size_t)d.max_seqs, sizeof *e->seg_choice);
    e->rows = malloc((size_t)d.max_batch_tokens * sizeof *e->rows);
    e->logits = malloc((size_t)d.max_seqs * (size_t)V * sizeof *e->logits);
    size_t ntop = (size_t)d.max_seqs * (size_t)(d.max_top_logprobs + 1);
    e->top_ids = malloc(ntop * sizeof *e->top_ids);
    e->top_lp = malloc(ntop * sizeof *e->top_lp);
    if (!e->samplers || !e->draws || !e->batch || !e->segs || !e->seg_choice || !e->rows || !e->logits || !e->top_ids ||
        !e->top_lp) {
        lm_fail(err, "engine: out of memory (%d sequences of %lld logits)", d.max_seqs, (long long)V);
        goto fail;
    }
    e->stats.blocks_total = nblocks;
    e->stats.block_tokens = d.block_tokens;
    return e;
fail:
    lm_fail_prefix(err, "engine");
    lm_engine_free(e);
    return NULL;
}

void lm_engine_free(lm_engine *e) {
    if (!e) return;
    for (request *r = e->live; r;) {
        request *next = r->live_next;
        if (r->choice)
            for (int k = 0; k < r->n; k++) lm_kvseq_release(e->kc, &r->choice[k].kv);
        request_free(r);
        r = next;
    }
    lm_fwd_free(e->fwd);
    lm_kvcache_free(e->kc);
    for (int t = 0; e->samplers && t < e->nsamplers; t++) lm_sampler_free(e->samplers[t]);
    free(e->samplers);
    free(e->draws);
    free(e->batch);
    free(e->segs);
    free(e->seg_choice);
    free(e->rows);
    free(e->logits);
    free(e->top_ids);
    free(e->top_lp);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int64_t lm_engine_max_ctx(const lm_engine *e) { return e->o.max_ctx; }

/* ---- submit / cancel ---- */

static int check_request(const lm_engine *e, const lm_engine_request *r, lm_error *err) {
    if (!r) return lm_fail(err, "engine: no request");
    if (r->prompt_len < 1 || !r->prompt) return lm_fail(err, "engine: empty prompt");
    if (r->prompt_len >= e->o.max_ctx)
        return lm_fail(err, "engine: the prompt is %lld tokens and the context %lld (max_ctx): no room to generate",
                       (long long)r->prompt_len, (long long)e->o.max_ctx);
    for (int64_t i = 0; i < r->prompt_len; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->V)
            return lm_fail(err, "engine: prompt token %lld is id %d, outside the vocabulary [0, %lld)", (long long)i,
                           r->prompt[i], (long long)e->V);
    if (r->n < 1 || r->n > e->o.max_seqs)
        return lm_fail(err, "engine: n is %d, expected 1 to %d (max_seqs)", r->n, e->o.max_seqs);
    const lm_gen_params *p = &r->params;
    if (p->max_tokens < 1) return lm_fail(err, "engine: max_tokens is %lld, expected at least 1", (long long)p->max_tokens);
    const lm_sampling *s = &p->sampling;
    if (!(s->temperature >= 0) || isinf(s->temperature))
        return lm_fail(err, "engine: temperature is %g, expected a finite number >= 0", (double)s->temperature);
    if (!(s->top_p >= 0 && s->top_p <= 1)) return lm_fail(err, "engine: top_p is %g, expected 0 to 1", (double)s->top_p);
    if (!(s->min_p >= 0 && s->min_p <= 1)) return lm_fail(err, "engine: min_p is %g, expected 0 to 1", (double)s->min_p);
    if (s->top_k < 0) return lm_fail(err, "engine: top_k is %d, expected 0 or more", s->top_k);
    if (p->nstop < 0 || (p->nstop && !p->stop)) return lm_fail(err, "engine: %d stop strings without an array", p->nstop);
    for (int i = 0; i < p->nstop; i++)
        if (!p->stop[i]) return lm_fail(err, "engine: stop string %d is NULL", i);
    if (r->top_logprobs < 0 || r->top_logprobs > e->o.max_top_logprobs)
        return lm_fail(err, "engine: top_logprobs is %d, expected 0 to %d", r->top_logprobs, e->o.max_top_logprobs);
    return 0;
}

static request *request_copy(const lm_engine_request *r, lm_error *err) {
    request *q = calloc(1, sizeof *q);
    if (!q) goto oom;
    q->prompt_len = r->prompt_len;
    q->n = r->n;
    q->params = r->params;
    q->params.stop = NULL;
    q->params.nstop = 0;
    q->logprobs = r->logprobs || r->top_logprobs > 0;
    q->top_logprobs = r->top_logprobs;
    q->on_event = r->on_event;
    q->user = r->user;
    q->prompt = malloc((size_t)r->prompt_len * sizeof *q->prompt);
    q->choice = calloc((size_t)r->n, sizeof *q->choice);
    if (!q->prompt || !q->choice) goto oom;
    memcpy(q->prompt, r->prompt, (size_t)r->prompt_len * sizeof *q->prompt);
    if (r->params.nstop) {
        q->stop_copy = calloc((size_t)r->params.nstop, sizeof *q->stop_copy);
        if (!q->stop_copy) goto oom;
        for (int i = 0; i < r->params.nstop; i++) {
            if (!(q->stop_copy[i] = strdup(r->params.stop[i]))) goto oom;
            q->params.nstop = i + 1;
        }
        q->params.stop = (const char *const *)q->stop_copy;
    }
    for (int k = 0; k < r->n; k++) {
        choice *c = &q->choice[k];
        c->req = q;
        c->index = k;
        c->seed = r->seeds ? r->seeds[k] : r->params.sampling.seed + (uint64_t)k;
        c->state = CH_WAIT_FORK;
    }
    return q;
oom:
    request_free(q);
    lm_fail(err, "engine: out of memory for a request of %lld prompt tokens and %d choices", (long long)r->prompt_len,
            r->n);
    return NULL;
}

int lm_engine_submit(lm_engine *e, const lm_engine_request *r, uint64_t *id, lm_error *err) {
    if (check_request(e, r, err)) return -1;
    request *q = request_copy(r, err);
    if (!q) return -1;
    pthread_mutex_lock(&e->mu);
    if (e->nqueue >= e->o.max_queue) {
        int full = e->nqueue;
        pthread_mutex_unlock(&e->mu);
        request_free(q);
        return lm_fail(err, "%s (%d requests wait; max_queue %d)", QUEUE_FULL, full, e->o.max_queue);
    }
    q->id = e->next_id++;
    if (e->queue_tail) e->queue_tail->queue_next = q;
    else e->queue_head = q;
    e->queue_tail = q;
    e->nqueue++;
    e->queued_choices += q->n;
    q->live_next = e->live;
    if (e->live) e->live->live_prev = q;
    e->live = q;
    e->stats.queued = e->nqueue;
    if (id) *id = q->id;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int lm_engine_queue_full(const lm_error *err) {
    return err && !strncmp(err->msg, QUEUE_FULL, sizeof QUEUE_FULL - 1);
}

int lm_engine_cancel(lm_engine *e, uint64_t id) {
    int rc = -1;
    pthread_mutex_lock(&e->mu);
    for (request *r = e->live; r; r = r->live_next)
        if (r->id == id) {
            if (!r->cancel) {
                r->cancel = 1;
                rc = 0;
            }
            break;
        }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* A cancel the engine thread has not acted on (under the mutex). */
static int cancel_pending(const lm_engine *e) {
    for (const request *r = e->live; r; r = r->live_next)
        if (r->cancel && !r->cancel_seen) return 1;
    return 0;
}

void lm_engine_wait(lm_engine *e, double seconds) {
    pthread_mutex_lock(&e->mu);
    if (!e->woken && !e->queue_head && e->slots == 0 && seconds > 0) {
        struct timespec ts = lm_realtime_after(seconds);
        while (!e->woken && !e->queue_head && !cancel_pending(e))
            if (pthread_cond_timedwait(&e->cv, &e->mu, &ts)) break;
    }
    e->woken = 0;
    pthread_mutex_unlock(&e->mu);
}

void lm_engine_wake(lm_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->woken = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void lm_engine_stats_get(lm_engine *e, lm_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    s->queued = e->nqueue;
    pthread_mutex_unlock(&e->mu);
}

/* ---- events ---- */

static void emit(const lm_engine_event *ev, request *r) {
    if (r->on_event) r->on_event(r->user, ev);
}

/* Ends a choice: its DONE event (with the rest of its text unless it was
 * cancelled or failed), its blocks back to the pool. */
static void finish_choice(lm_engine *e, choice *c, lm_finish finish, const char *error) {
    request *r = c->req;
    const char *rest = "";
    size_t rest_len = 0;
    lm_error err;
    if (e->tok && finish != LM_FINISH_CANCELLED && !error) {
        if (lm_textout_finish(&c->textout, &err)) {
            error = err.msg;
            finish = LM_FINISH_CANCELLED;
        } else {
            lm_textout_take(&c->textout, &rest, &rest_len);
        }
    }
    lm_kvseq_release(e->kc, &c->kv);
    c->state = CH_DONE;
    r->ndone++;
    lm_engine_event ev = {.request = r->id, .choice = c->index, .kind = LM_EV_DONE, .token = -1, .logprob = NAN,
                          .text = rest, .text_len = rest_len, .finish = finish, .prompt_tokens = r->prompt_len,
                          .completion_tokens = (int64_t)c->out.n, .error = error};
    emit(&ev, r);
}

/* log-softmax of the sampled token and the top alternatives, over the ids
 * that can be sampled; sums in double. */
static void log_softmax_at(const lm_engine *e, const float *row, double *max_out, double *lse_out) {
    double mx = -INFINITY;
    for (int64_t v = 0; v < e->sample_vocab; v++)
        if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int64_t v = 0; v < e->sample_vocab; v++) sum += exp((double)row[v] - mx);
    *max_out = mx;
    *lse_out = log(sum);
}

static int top_alternatives(const lm_engine *e, const float *row, int k, double mx, double lse, int32_t *ids,
                            float *lp) {
    int n = 0;
    for (int64_t v = 0; v < e->sample_vocab; v++) {
        float x = row[v];
        if (n == k && !(x > row[ids[n - 1]])) continue; /* ties keep the smaller id */
        int at = n < k ? n++ : n - 1;
        while (at > 0 && x > row[ids[at - 1]]) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = (int32_t)v;
    }
    for (int i = 0; i < n; i++) lp[i] = (float)((double)row[ids[i]] - mx - lse);
    return n;
}

/* Samples d's token (draw number = tokens the choice has) and its logprobs. */
static void run_draw(const lm_engine *e, lm_sampler *smp, draw *d) {
    const request *r = d->c->req;
    lm_sampling s = r->params.sampling;
    s.seed = d->c->seed;
    d->id = lm_sample(smp, d->row, &s, (uint64_t)d->c->out.n);
    d->logprob = NAN;
    d->ntop = 0;
    if (r->logprobs) {
        double mx, lse;
        log_softmax_at(e, d->row, &mx, &lse);
        d->logprob = (float)((double)d->row[d->id] - mx - lse);
        if (r->top_logprobs) d->ntop = top_alternatives(e, d->row, r->top_logprobs, mx, lse, d->top_ids, d->top_lp);
    }
}

static void draws_job(void *ctx, int ith, int nth) {
    lm_engine *e = ctx;
    int64_t b, end;
    lm_split(e->ndraws, ith, nth, 1, &b, &end);
    for (int64_t i = b; i < end; i++) run_draw(e, e->samplers[ith], &e->draws[i]);
}

/* Every draw of the step, on the pool's threads (each draw depends only on
 * its row, its choice's settings and seed: the thread that runs it does not
 * matter). */
static void run_draws(lm_engine *e) {
    if (e->ndraws == 1 || !e->pool) {
        for (int i = 0; i < e->ndraws; i++) run_draw(e, e->samplers[0], &e->draws[i]);
        return;
    }
    lm_pool_run(e->pool, draws_job, e);
}

/* Reports choice c's drawn token; ends the choice when the token ends it. */
static void take_token(lm_engine *e, const draw *d) {
    choice *c = d->c;
    request *r = c->req;
    const lm_gen_params *p = &r->params;
    int64_t step = (int64_t)c->out.n;
    int32_t id = d->id;
    if (lm_ids_push(&c->out, id)) {
        finish_choice(e, c, LM_FINISH_CANCELLED, "out of memory");
        return;
    }
    e->completion_since_stats++;
    lm_engine_event ev = {.request = r->id, .choice = c->index, .kind = LM_EV_TOKEN, .token = id,
                          .logprob = d->logprob, .ntop = d->ntop, .top_ids = d->top_ids, .top_logprobs = d->top_lp,
                          .text = "", .text_len = 0, .prompt_tokens = r->prompt_len,
                          .completion_tokens = (int64_t)c->out.n};
    int eos = p->stop_at_eos && id == e->eos;
    int stopped = 0;
    if (!eos && e->tok) {
        lm_error err;
        stopped = lm_textout_push(&c->textout, id, &err);
        if (stopped < 0) {
            emit(&ev, r);
            finish_choice(e, c, LM_FINISH_CANCELLED, err.msg);
            return;
        }
        lm_textout_take(&c->textout, &ev.text, &ev.text_len);
    }
    emit(&ev, r);
    if (eos) finish_choice(e, c, LM_FINISH_EOS, NULL);
    else if (stopped) finish_choice(e, c, LM_FINISH_STOP, NULL);
    else if (step + 1 == p->max_tokens) finish_choice(e, c, LM_FINISH_LENGTH, NULL);
    else if (r->prompt_len + step >= e->o.max_ctx) finish_choice(e, c, LM_FINISH_CONTEXT, NULL);
}

/* ---- scheduling ---- */

static int64_t tokens_total(const choice *c) { return c->req->prompt_len + (int64_t)c->out.n; }

static int32_t token_at(const choice *c, int64_t i) {
    return i < c->req->prompt_len ? c->req->prompt[i] : c->out.ids[i - c->req->prompt_len];
}

static int64_t free_blocks(const lm_engine *e, int64_t reserved) {
    return lm_kvcache_blocks_total(e->kc) - lm_kvcache_blocks_used(e->kc) - reserved;
}

static void batch_remove(lm_engine *e, choice *c) {
    for (int i = 0; i < e->nbatch; i++)
        if (e->batch[i] == c) {
            memmove(&e->batch[i], &e->batch[i + 1], (size_t)(e->nbatch - i - 1) * sizeof *e->batch);
            e->nbatch--;
            return;
        }
}

static void admit(lm_engine *e, choice *c) {
    c->state = CH_RUN;
    c->admitted = ++e->stamp;
    e->batch[e->nbatch++] = c;
}

static void preempt(lm_engine *e, choice *c) {
    lm_kvseq_release(e->kc, &c->kv);
    c->state = CH_PREEMPTED;
    e->preempt_since_stats++;
    /* it waits in its old place: readmission goes in admission order */
}

/* Preempts the most recently admitted RUN choice that holds blocks, is not
 * scheduled in this step and was admitted at `since` or later; 0 when there
 * is none. */
static int preempt_youngest(lm_engine *e, uint64_t since) {
    for (int i = e->nbatch - 1; i >= 0; i--) {
        choice *c = e->batch[i];
        if (c->admitted < since) break; /* the batch is in admission order */
        if (c->state == CH_RUN && !c->scheduled && c->kv.nblock > 0) {
            preempt(e, c);
            return 1;
        }
    }
    return 0;
}

/* Blocks to admit a choice that holds none: all of its tokens and one more
 * per choice that will fork from it, never more than the pool. */
static int64_t admission_blocks(const lm_engine *e, const choice *c) {
    int64_t bt = e->o.block_tokens;
    int64_t need = (tokens_total(c) + bt - 1) / bt + (c->req->forked ? 1 : c->req->n);
    int64_t total = lm_kvcache_blocks_total(e->kc);
    return need < total ? need : total;
}

/* The largest chunk of at most want tokens that free blocks allow. */
static int64_t chunk_that_fits(const lm_engine *e, const choice *c, int64_t want, int64_t free) {
    if (lm_kvseq_blocks_needed(e->kc, &c->kv, want) <= free) return want;
    int64_t lo = 0, hi = want; /* fits(lo), !fits(hi) */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (lm_kvseq_blocks_needed(e->kc, &c->kv, mid) <= free) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* Retires requests whose choices are all done. */
static void retire(lm_engine *e) {
    for (int i = 0; i < e->nbatch;) {
        if (e->batch[i]->state == CH_DONE) batch_remove(e, e->batch[i]);
        else i++;
    }
    request **link = &e->started;
    while (*link) {
        request *r = *link;
        if (r->ndone < r->n) {
            link = &r->started_next;
            continue;
        }
        *link = r->started_next;
        e->slots -= r->n;
        e->done_since_stats++;
        pthread_mutex_lock(&e->mu);
        if (r->live_prev) r->live_prev->live_next = r->live_next;
        else e->live = r->live_next;
        if (r->live_next) r->live_next->live_prev = r->live_prev;
        pthread_mutex_unlock(&e->mu);
        request_free(r);
    }
}

/* Every choice not done of r ends with finish (and error). */
static void end_request(lm_engine *e, request *r, lm_finish finish, const char *error) {
    for (int k = 0; k < r->n; k++)
        if (r->choice[k].state != CH_DONE) finish_choice(e, &r->choice[k], finish, error);
}

/* Takes cancel flags and cancelled queued requests under the mutex; ends
 * them outside it (the events may call back into the engine). */
static void take_cancels(lm_engine *e) {
    request *cancelled = NULL, **tail = &cancelled;
    pthread_mutex_lock(&e->mu);
    for (request *r = e->started; r; r = r->started_next)
        if (r->cancel) r->cancel_seen = 1;
    request **link = &e->queue_head;
    e->queue_tail = NULL;
    while (*link) {
        request *r = *link;
        if (!r->cancel) {
            e->queue_tail = r;
            link = &r->queue_next;
            continue;
        }
        *link = r->queue_next;
        e->nqueue--;
        e->queued_choices -= r->n;
        r->queue_next = NULL;
        *tail = r;
        tail = &r->queue_next;
    }
    pthread_mutex_unlock(&e->mu);
    for (request *r = e->started; r; r = r->started_next)
        if (r->cancel_seen) end_request(e, r, LM_FINISH_CANCELLED, NULL);
    /* cancelled before they started: they go through the started list to be retired */
    while (cancelled) {
        request *r = cancelled;
        cancelled = r->queue_next;
        r->started = 1;
        r->started_next = e->started;
        e->started = r;
        e->slots += r->n;
        end_request(e, r, LM_FINISH_CANCELLED, NULL);
    }
}

static int any_preempted(const lm_engine *e) {
    for (int i = 0; i < e->nbatch; i++)
        if (e->batch[i]->state == CH_PREEMPTED) return 1;
    return 0;
}

/* Readmits preempted choices (oldest first) and then starts queued requests
 * while sequences and blocks allow. */
static void admit_waiting(lm_engine *e) {
    int64_t promised = 0; /* blocks the choices admitted here will take */
    int i = 0;
    while (i < e->nbatch) {
        choice *c = e->batch[i];
        if (c->state != CH_PREEMPTED) {
            i++;
            continue;
        }
        if (free_blocks(e, promised) < admission_blocks(e, c)) return; /* in order: no overtaking */
        promised += admission_blocks(e, c);
        batch_remove(e, c);
        admit(e, c); /* to the end: it is now the most recently admitted */
    }
    if (any_preempted(e)) return;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        request *r = e->queue_head;
        if (!r || e->slots + r->n > e->o.max_seqs || free_blocks(e, promised) < admission_blocks(e, &r->choice[0])) {
            pthread_mutex_unlock(&e->mu);
            return;
        }
        promised += admission_blocks(e, &r->choice[0]);
        e->queue_head = r->queue_next;
        if (!e->queue_head) e->queue_tail = NULL;
        e->nqueue--;
        e->queued_choices -= r->n;
        r->started = 1;
        pthread_mutex_unlock(&e->mu);
        request **link = &e->started;
        while (*link) link = &(*link)->started_next;
        *link = r;
        e->slots += r->n;
        for (int k = 0; k < r->n; k++)
            if (e->tok) lm_textout_init(&r->choice[k].textout, e->tok, &r->choice[k].text, r->params.stop,
                                        r->params.nstop, r->params.skip_special);
        admit(e, &r->choice[0]);
    }
}

/* Choice 0 has prefilled the prompt: the other choices share its cache. */
static int fork_choices(lm_engine *e, request *r, lm_error *err) {
    for (int k = 1; k < r->n; k++) {
        if (lm_kvseq_fork(e->kc, &r->choice[k].kv, &r->choice[0].kv, err)) return -1;
        admit(e, &r->choice[k]);
    }
    r->forked = 1;
    e->prompt_since_stats += (uint64_t)r->prompt_len;
    return 0;
}

/* Segments for this step: decoding choices first (preempting the most
 * recently admitted when blocks run out), then chunks of prompts and
 * recomputations while rows and blocks last. */
static int plan_step(lm_engine *e) {
    int nseg = 0;
    int64_t rows_left = e->o.max_batch_tokens, reserved = 0, nrows = 0;
    for (int i = 0; i < e->nbatch; i++) e->batch[i]->scheduled = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < e->nbatch && rows_left > 0; i++) {
            choice *c = e->batch[i];
            if (c->state != CH_RUN || c->scheduled) continue;
            int64_t want = tokens_total(c) - c->kv.pos;
            int decoding = c->out.n > 0 && want == 1;
            if (decoding != (pass == 0)) continue;
            if (want > rows_left) want = rows_left;
            int64_t n;
            if (pass == 0) {
                /* younger sequences give way, c itself the last of them */
                while (free_blocks(e, reserved) < lm_kvseq_blocks_needed(e->kc, &c->kv, 1))
                    if (!preempt_youngest(e, c->admitted)) break;
                if (c->state != CH_RUN) continue;
                n = 1;
            } else {
                n = chunk_that_fits(e, c, want, free_blocks(e, reserved));
                /* nothing else runs: the oldest waiting chunk preempts younger
                 * ones (alone, any sequence fits the cache) */
                while (n == 0 && nseg == 0 && preempt_youngest(e, c->admitted + 1))
                    n = chunk_that_fits(e, c, want, free_blocks(e, reserved));
                if (n == 0) continue;
            }
            reserved += lm_kvseq_blocks_needed(e->kc, &c->kv, n);
            for (int64_t j = 0; j < n; j++) e->rows[nrows + j] = token_at(c, c->kv.pos + j);
            e->segs[nseg] = (lm_batch_seg){.seq = &c->kv, .ids = e->rows + nrows, .n = n};
            e->seg_choice[nseg++] = c;
            c->scheduled = 1;
            nrows += n;
            rows_left -= n;
        }
    }
    return nseg;
}

static void publish_stats(lm_engine *e, double busy) {
    pthread_mutex_lock(&e->mu);
    lm_engine_stats *s = &e->stats;
    s->running = e->slots;
    s->queued = e->nqueue;
    s->blocks_used = lm_kvcache_blocks_used(e->kc);
    s->blocks_total = lm_kvcache_blocks_total(e->kc);
    s->block_tokens = e->o.block_tokens;
    s->requests_done += e->done_since_stats;
    s->prompt_tokens += e->prompt_since_stats;
    s->completion_tokens += e->completion_since_stats;
    s->preemptions += e->preempt_since_stats;
    s->busy_s += busy;
    if (busy > 0) s->steps++;
    e->done_since_stats = e->prompt_since_stats = e->completion_since_stats = e->preempt_since_stats = 0;
    pthread_mutex_unlock(&e->mu);
}

static int remaining(lm_engine *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->slots + e->queued_choices;
    pthread_mutex_unlock(&e->mu);
    return n;
}

int lm_engine_step(lm_engine *e, lm_error *err) {
    lm_error scratch;
    if (!err) err = &scratch; /* the choices' DONE events carry the message */
    double t0 = lm_now_s();
    take_cancels(e);
    retire(e);
    admit_waiting(e);
    int nseg = plan_step(e);
    if (nseg == 0 && e->slots == 0) {
        publish_stats(e, 0);
        return remaining(e);
    }
    /* started sequences always make progress (the oldest may preempt the
     * others); a step with none would repeat for ever */
    if (nseg == 0)
        lm_fail(err, "engine: %d sequences hold slots but none can run (%lld of %lld blocks used): a scheduling bug",
                e->slots, (long long)lm_kvcache_blocks_used(e->kc), (long long)lm_kvcache_blocks_total(e->kc));
    if (nseg == 0 || lm_batch_forward(e->fwd, e->pool, e->kc, e->segs, nseg, e->logits, LM_LOGITS_LAST, err)) {
        if (nseg) lm_fail_prefix(err, "engine");
        for (request *r = e->started; r; r = r->started_next) end_request(e, r, LM_FINISH_CANCELLED, err->msg);
        retire(e);
        publish_stats(e, lm_now_s() - t0);
        return -1;
    }
    /* the draws: a segment that reached the end of its tokens gives its
     * choice's next token (every choice's, for a prompt just prefilled) */
    e->ndraws = 0;
    int ntop = e->o.max_top_logprobs + 1;
    for (int s = 0; s < nseg; s++) {
        choice *c = e->seg_choice[s];
        if (c->state != CH_RUN || c->kv.pos < tokens_total(c)) continue; /* a chunk short of the end */
        const float *row = e->logits + (size_t)s * (size_t)e->V;
        request *r = c->req;
        int first = c->index, last = c->index; /* the choices that draw from this row */
        if (!r->forked) {
            lm_error ferr;
            if (fork_choices(e, r, &ferr)) {
                end_request(e, r, LM_FINISH_CANCELLED, ferr.msg);
                continue;
            }
            first = 0;
            last = r->n - 1;
        }
        for (int k = first; k <= last; k++) {
            draw *d = &e->draws[e->ndraws];
            *d = (draw){.c = &r->choice[k], .row = row, .top_ids = e->top_ids + (size_t)e->ndraws * (size_t)ntop,
                        .top_lp = e->top_lp + (size_t)e->ndraws * (size_t)ntop};
            e->ndraws++;
        }
    }
    run_draws(e);
    for (int i = 0; i < e->ndraws; i++)
        if (e->draws[i].c->state == CH_RUN) take_token(e, &e->draws[i]);
    retire(e);
    publish_stats(e, lm_now_s() - t0);
    return remaining(e);
}

int lm_engine_run(lm_engine *e, lm_error *err) {
    for (;;) {
        int n = lm_engine_step(e, err);
        if (n <= 0) return n;
    }
}
