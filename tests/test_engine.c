/* test_engine.c — the continuous-batching engine (infer/engine.h) on the
 * golden checkpoints (ids only) and on a tiny random model with a tokenizer
 * trained here (text): every choice's ids, logprobs and text are
 * bit-identical whether it runs alone, among others, or joins and leaves at
 * random steps, at 1 and 2 threads, under preemption by a tiny cache, and
 * equal lm_generate with the choice's seed; n choices equal n requests with
 * seeds s+k; cancel frees the cache; bad requests fail with one clear line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "model/config.h"
#include "model/init.h"
#include "test.h"
#include "tokenizer/train.h"

enum { MAXTOK = 48, TOPK = 3, MAXN = 4, MAXREQ = 24, TEXTCAP = 4096 };

/* ---- what one choice received ---- */

typedef struct got_choice {
    int32_t ids[MAXTOK];
    float lp[MAXTOK];
    int ntop[MAXTOK];
    int32_t top[MAXTOK][TOPK];
    float toplp[MAXTOK][TOPK];
    int n;
    char text[TEXTCAP];
    size_t text_len;
    int done;                   /* DONE events (must end up 1) */
    int late;                   /* events after DONE (must stay 0) */
    lm_finish finish;
    int64_t prompt_tokens, completion_tokens;
    char error[256];
} got_choice;

typedef struct got_request {
    uint64_t id;
    int n;
    int bad;                    /* an event with a wrong request id or choice */
    got_choice c[MAXN];
} got_request;

static void on_event(void *user, const lm_engine_event *ev) {
    got_request *g = user;
    if (ev->request != g->id || ev->choice < 0 || ev->choice >= g->n) {
        g->bad++;
        return;
    }
    got_choice *c = &g->c[ev->choice];
    if (c->done) c->late++;
    if (c->text_len + ev->text_len < TEXTCAP) {
        memcpy(c->text + c->text_len, ev->text, ev->text_len);
        c->text_len += ev->text_len;
    }
    if (ev->kind == LM_EV_TOKEN) {
        if (c->n < MAXTOK) {
            c->ids[c->n] = ev->token;
            c->lp[c->n] = ev->logprob;
            c->ntop[c->n] = ev->ntop;
            for (int i = 0; i < ev->ntop && i < TOPK; i++) {
                c->top[c->n][i] = ev->top_ids[i];
                c->toplp[c->n][i] = ev->top_logprobs[i];
            }
        }
        c->n++;
    } else {
        c->done++;
        c->finish = ev->finish;
        c->prompt_tokens = ev->prompt_tokens;
        c->completion_tokens = ev->completion_tokens;
        snprintf(c->error, sizeof c->error, "%s", ev->error ? ev->error : "");
    }
}

/* Same ids, logprobs (bits), alternatives, text and finish. */
static int same_choice(const got_choice *a, const got_choice *b) {
    if (a->n != b->n || a->finish != b->finish || a->text_len != b->text_len ||
        memcmp(a->text, b->text, a->text_len) || a->completion_tokens != b->completion_tokens)
        return 0;
    for (int i = 0; i < a->n && i < MAXTOK; i++) {
        if (a->ids[i] != b->ids[i] || memcmp(&a->lp[i], &b->lp[i], sizeof(float)) || a->ntop[i] != b->ntop[i])
            return 0;
        for (int k = 0; k < a->ntop[i] && k < TOPK; k++)
            if (a->top[i][k] != b->top[i][k] || memcmp(&a->toplp[i][k], &b->toplp[i][k], sizeof(float))) return 0;
    }
    return 1;
}

/* ---- request specs and runs ---- */

typedef struct spec {
    int32_t prompt[64];
    int64_t plen;
    int n;
    lm_gen_params p;
    uint64_t seeds[MAXN];
    int use_seeds;
    int logprobs, top;
    int join;                  /* step at which it is submitted */
    int cancel_at;             /* step at which it is cancelled (-1: never) */
} spec;

static uint64_t rng_state;
static uint64_t rnd(uint64_t n) {
    rng_state++;
    return lm_rng_u64(77, LM_RNG_BENCH, rng_state) % n;
}

/* Random requests over vocabulary V: prompts of 1 to 40 ids, greedy or
 * sampled with assorted filters, 1 to MAXTOK - 8 tokens. */
static void random_specs(spec *s, int n, int64_t V, int ignore_eos) {
    for (int i = 0; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].plen = 1 + (int64_t)rnd(40);
        for (int64_t t = 0; t < s[i].plen; t++) s[i].prompt[t] = (int32_t)rnd((uint64_t)V);
        s[i].n = 1;
        s[i].p = lm_gen_params_default();
        s[i].p.max_tokens = 1 + (int64_t)rnd(MAXTOK - 8);
        s[i].p.stop_at_eos = !ignore_eos;
        switch (rnd(4)) {
        case 0: break; /* greedy */
        case 1: s[i].p.sampling.temperature = 1.0f; break;
        case 2: s[i].p.sampling.temperature = 0.8f; s[i].p.sampling.top_k = 20; break;
        default: s[i].p.sampling.temperature = 1.2f; s[i].p.sampling.top_p = 0.9f; s[i].p.sampling.min_p = 0.01f;
        }
        s[i].p.sampling.seed = rnd(1000);
        s[i].logprobs = 1;
        s[i].top = (int)rnd(TOPK + 1);
        s[i].cancel_at = -1;
    }
}

static lm_engine_request to_request(const spec *s, got_request *g) {
    return (lm_engine_request){.prompt = s->prompt, .prompt_len = s->plen, .n = s->n, .params = s->p,
                               .seeds = s->use_seeds ? s->seeds : NULL, .logprobs = s->logprobs,
                               .top_logprobs = s->top, .on_event = on_event, .user = g};
}

static int peak_running; /* the most sequences in one run's batch */

/* Runs specs on a fresh engine: each submitted at its join step (all at
 * once when joins are 0), cancelled at cancel_at. got[i] must be zeroed. */
static int run_specs(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, const lm_engine_opts *o,
                     const spec *s, int n, got_request *got, lm_engine_stats *stats) {
    lm_error err;
    lm_engine *e = lm_engine_create(m, tok, pool, o, &err);
    if (!e) {
        printf("  create: %s\n", err.msg);
        return -1;
    }
    int rc = 0, submitted = 0;
    for (int step = 0; step < 100000; step++) {
        for (int i = 0; i < n; i++) {
            if (s[i].join == step) {
                got[i].n = s[i].n;
                lm_engine_request r = to_request(&s[i], &got[i]);
                if (lm_engine_submit(e, &r, &got[i].id, &err)) {
                    printf("  submit %d: %s\n", i, err.msg);
                    rc = -1;
                }
                submitted++;
            }
            if (s[i].cancel_at == step && got[i].id) lm_engine_cancel(e, got[i].id);
        }
        int left = lm_engine_step(e, &err);
        if (left < 0) {
            printf("  step: %s\n", err.msg);
            rc = -1;
            break;
        }
        lm_engine_stats now;
        lm_engine_stats_get(e, &now);
        if (now.running > peak_running) peak_running = now.running;
        if (left == 0 && submitted == n) break;
    }
    lm_engine_stats st;
    lm_engine_stats_get(e, &st);
    if (st.blocks_used != 0 || st.running != 0 || st.queued != 0) {
        printf("  idle engine holds %lld blocks, %d running, %d queued\n", (long long)st.blocks_used, st.running,
               st.queued);
        rc = -1;
    }
    if (stats) *stats = st;
    lm_engine_free(e);
    return rc;
}

/* Every choice ended exactly once, with its tokens counted. */
static int well_formed(const got_request *g, int n) {
    for (int i = 0; i < n; i++) {
        if (g[i].bad) return 0;
        for (int k = 0; k < g[i].n; k++)
            if (g[i].c[k].done != 1 || g[i].c[k].late || g[i].c[k].completion_tokens != g[i].c[k].n) return 0;
    }
    return 1;
}

/* Choice k of spec s through lm_generate (fresh prompt each time: lm_generate
 * may reuse the cached prefix, which the forward makes irrelevant). */
static int reference(lm_generator *g, const spec *s, int k, lm_gen_result *res) {
    lm_error err;
    lm_gen_params p = s->p;
    p.sampling.seed = s->use_seeds ? s->seeds[k] : s->p.sampling.seed + (uint64_t)k;
    memset(res, 0, sizeof *res);
    if (lm_generate(g, s->prompt, s->plen, &p, NULL, NULL, res, &err)) {
        printf("  lm_generate: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int equals_reference(const got_choice *c, const lm_gen_result *r) {
    return c->n == (int)r->ids.n && !memcmp(c->ids, r->ids.ids, r->ids.n * sizeof(int32_t)) &&
           c->finish == r->finish && c->text_len == r->text.len && !memcmp(c->text, r->text.data ? r->text.data : "", r->text.len);
}

/* ---- the golden checkpoints ---- */

static const char *GOLDENS[] = {"tests/golden/v3_f32", "tests/golden/v2_f32", "tests/golden/v3_bf16"};

static lm_model *load(const char *dir) {
    lm_error err;
    lm_model *m = NULL;
    if (lm_model_load(dir, &m, &err)) {
        printf("  %s: %s\n", dir, err.msg);
        return NULL;
    }
    return m;
}

static lm_engine_opts small_opts(int64_t max_ctx) {
    lm_engine_opts o = lm_engine_opts_default();
    o.max_ctx = max_ctx;
    o.max_seqs = 16;
    o.max_batch_tokens = 24; /* prompts go in several chunks */
    o.block_tokens = 4;
    o.cache_tokens = 4096;
    return o;
}

/* (a), (b): alone, all together, and joining/leaving at random steps, at 1
 * and 2 threads: the same bits, equal to lm_generate. */
TEST(batch_invariance_on_goldens) {
    enum { N = 12 };
    for (size_t gi = 0; gi < sizeof GOLDENS / sizeof *GOLDENS; gi++) {
        lm_model *m = load(GOLDENS[gi]);
        CHECK(m);
        if (!m) continue;
        int64_t V = m->cfg.vocab_size;
        spec s[N];
        rng_state = gi * 1000;
        random_specs(s, N, V, gi == 0);
        got_request *alone = calloc(N, sizeof *alone), *together = calloc(N, sizeof *together),
                    *mid = calloc(N, sizeof *mid);
        lm_error err;
        lm_generator *gen = lm_generator_create(m, NULL, NULL, 128, LM_ATTN_LATENT, &err);
        CHECK(gen);
        lm_engine_opts o = small_opts(128);
        for (int threads = 1; threads <= 2; threads++) {
            lm_pool *pool = lm_pool_create(threads);
            memset(alone, 0, N * sizeof *alone);
            memset(together, 0, N * sizeof *together);
            memset(mid, 0, N * sizeof *mid);
            for (int i = 0; i < N; i++) CHECK(run_specs(m, NULL, pool, &o, &s[i], 1, &alone[i], NULL) == 0);
            CHECK(run_specs(m, NULL, pool, &o, s, N, together, NULL) == 0);
            spec sched[N];
            memcpy(sched, s, sizeof sched);
            for (int i = 0; i < N; i++) {
                sched[i].join = (int)rnd(30);
                if (i % 4 == 3) sched[i].cancel_at = sched[i].join + 1 + (int)rnd(10);
            }
            int cancelled = 0;
            peak_running = 0;
            CHECK(run_specs(m, NULL, pool, &o, sched, N, mid, NULL) == 0);
            CHECKF(peak_running >= 4, "at most %d sequences ran together", peak_running);
            CHECK(well_formed(alone, N) && well_formed(together, N) && well_formed(mid, N));
            for (int i = 0; i < N; i++) {
                CHECKF(same_choice(&alone[i].c[0], &together[i].c[0]), "%s, %d threads: request %d together differs",
                       GOLDENS[gi], threads, i);
                const got_choice *a = &alone[i].c[0], *b = &mid[i].c[0];
                if (sched[i].cancel_at < 0) {
                    CHECKF(same_choice(a, b), "%s, %d threads: request %d joining at step %d differs", GOLDENS[gi],
                           threads, i, sched[i].join);
                } else if (b->finish != LM_FINISH_CANCELLED) { /* it ended before the cancel */
                    CHECKF(same_choice(a, b), "%s: request %d, cancelled after it ended, differs", GOLDENS[gi], i);
                } else { /* cancelled: a prefix of its tokens */
                    cancelled++;
                    CHECKF(b->n <= a->n && !memcmp(a->ids, b->ids, (size_t)b->n * 4) &&
                               !memcmp(a->lp, b->lp, (size_t)b->n * 4),
                           "%s: cancelled request %d: %d of %d tokens differ", GOLDENS[gi], i, b->n, a->n);
                }
                if (threads == 1 && gen) {
                    lm_gen_result r;
                    CHECK(reference(gen, &s[i], 0, &r) == 0);
                    CHECKF(equals_reference(a, &r), "%s: request %d differs from lm_generate (%d vs %zu tokens)",
                           GOLDENS[gi], i, a->n, r.ids.n);
                    lm_gen_result_free(&r);
                }
            }
            CHECKF(cancelled > 0, "%s: no request was cancelled while it ran", GOLDENS[gi]);
            lm_pool_free(pool);
        }
        lm_generator_free(gen);
        free(alone);
        free(together);
        free(mid);
        lm_model_free(m);
    }
}

/* The logprobs are the log-softmax of the lone forward's logits: computed
 * here from lm_infer_forward over prompt + tokens, in double. */
TEST(logprobs_are_the_lone_forwards) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    int64_t V = m->cfg.vocab_size;
    spec s;
    rng_state = 5;
    random_specs(&s, 1, V, 1);
    s.p.max_tokens = 20;
    s.p.sampling.temperature = 1.0f;
    s.top = TOPK;
    got_request g = {0};
    lm_engine_opts o = small_opts(128);
    CHECK(run_specs(m, NULL, NULL, &o, &s, 1, &g, NULL) == 0);
    const got_choice *c = &g.c[0];
    CHECK(c->n == 20);
    int64_t T = s.plen + c->n;
    int32_t ids[128];
    memcpy(ids, s.prompt, (size_t)s.plen * 4);
    memcpy(ids + s.plen, c->ids, (size_t)c->n * 4);
    float *logits = malloc((size_t)(T * V) * sizeof(float));
    lm_error err;
    lm_infer *inf = lm_infer_create(m, LM_ATTN_LATENT, 128, 256, 1, &err);
    CHECK(inf && logits && lm_infer_forward(inf, NULL, ids, T, logits, LM_LOGITS_ALL, &err) == 0);
    int bad = 0;
    for (int i = 0; inf && i < c->n; i++) {
        const float *row = logits + (s.plen - 1 + i) * V;
        double mx = row[0], sum = 0;
        for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++) sum += exp((double)row[v] - mx);
        float want = (float)((double)row[c->ids[i]] - mx - log(sum));
        bad += memcmp(&want, &c->lp[i], sizeof want) != 0;
        /* the alternatives: most likely first, ties to the smaller id */
        CHECK(c->ntop[i] == TOPK);
        for (int k = 0; k < TOPK; k++) {
            int32_t id = c->top[i][k];
            int above = 0;
            for (int64_t v = 0; v < V; v++) above += row[v] > row[id] || (row[v] == row[id] && v < id);
            bad += above != k;
            float lp = (float)((double)row[id] - mx - log(sum));
            bad += memcmp(&lp, &c->toplp[i][k], sizeof lp) != 0;
        }
    }
    CHECKF(bad == 0, "%d logprobs differ from the lone forward's", bad);
    lm_infer_free(inf);
    free(logits);
    lm_model_free(m);
}

/* The expanded K/V cache (LM_ATTN_NAIVE) as well: together equals lm_generate. */
TEST(naive_cache_equals_lm_generate) {
    lm_model *m = load(GOLDENS[1]);
    if (!m) { CHECK(0); return; }
    enum { N = 6 };
    spec s[N];
    rng_state = 314;
    random_specs(s, N, m->cfg.vocab_size, 1);
    got_request g[N];
    memset(g, 0, sizeof g);
    lm_engine_opts o = small_opts(128);
    o.attn = LM_ATTN_NAIVE;
    CHECK(run_specs(m, NULL, NULL, &o, s, N, g, NULL) == 0 && well_formed(g, N));
    lm_error err;
    lm_generator *gen = lm_generator_create(m, NULL, NULL, 128, LM_ATTN_NAIVE, &err);
    for (int i = 0; gen && i < N; i++) {
        lm_gen_result r;
        CHECK(reference(gen, &s[i], 0, &r) == 0);
        CHECKF(equals_reference(&g[i].c[0], &r), "request %d differs from lm_generate (naive)", i);
        lm_gen_result_free(&r);
    }
    lm_generator_free(gen);
    lm_model_free(m);
}

/* (c) n choices of one prompt equal n requests with seeds s+k (and an
 * explicit seeds[] those seeds). */
TEST(choices_share_the_prompt) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    spec s[1 + MAXN + 1];
    rng_state = 900;
    random_specs(s, 1, m->cfg.vocab_size, 1);
    s[0].n = MAXN;
    s[0].plen = 13; /* a block and a bit: the shared last block is copied on write */
    s[0].p.sampling.temperature = 1.0f;
    s[0].p.max_tokens = 16;
    for (int k = 0; k < MAXN; k++) {
        s[1 + k] = s[0];
        s[1 + k].n = 1;
        s[1 + k].p.sampling.seed = s[0].p.sampling.seed + (uint64_t)k;
    }
    s[1 + MAXN] = s[0];
    s[1 + MAXN].use_seeds = 1;
    for (int k = 0; k < MAXN; k++) s[1 + MAXN].seeds[k] = s[0].p.sampling.seed + (uint64_t)(MAXN - 1 - k);
    got_request g[1 + MAXN + 1];
    memset(g, 0, sizeof g);
    lm_engine_opts o = small_opts(64);
    lm_engine_stats st;
    CHECK(run_specs(m, NULL, NULL, &o, s, 1 + MAXN + 1, g, &st) == 0 && well_formed(g, 1 + MAXN + 1));
    int distinct = 0;
    for (int k = 0; k < MAXN; k++) {
        CHECKF(same_choice(&g[0].c[k], &g[1 + k].c[0]), "choice %d differs from its own request", k);
        CHECKF(same_choice(&g[1 + MAXN].c[MAXN - 1 - k], &g[1 + k].c[0]), "seeds[] choice %d", MAXN - 1 - k);
        distinct += k && memcmp(g[0].c[k].ids, g[0].c[0].ids, 16 * 4);
        CHECK(g[0].c[k].prompt_tokens == 13);
    }
    CHECK(distinct > 0);
    /* the prompt counted once per request, not per choice */
    CHECK(st.prompt_tokens == (uint64_t)(13 * (MAXN + 2)) && st.requests_done == MAXN + 2);
    lm_model_free(m);
}

/* (d) A cache of one context's worth of blocks for many sequences:
 * preemption and recompute, the same tokens. */
TEST(preemption_recomputes_the_same_tokens) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    enum { N = 8 };
    spec s[N];
    rng_state = 4242;
    random_specs(s, N, m->cfg.vocab_size, 1);
    for (int i = 0; i < N; i++) {
        s[i].p.max_tokens = 30;
        s[i].plen = 10 + (int64_t)rnd(20);
        s[i].n = i % 3 == 0 ? 2 : 1;
    }
    got_request free_run[N], tight[N];
    memset(free_run, 0, sizeof free_run);
    memset(tight, 0, sizeof tight);
    lm_engine_opts o = small_opts(64);
    lm_engine_stats st;
    CHECK(run_specs(m, NULL, NULL, &o, s, N, free_run, &st) == 0);
    CHECK(st.preemptions == 0);
    for (int threads = 1; threads <= 2; threads++) {
        lm_pool *pool = lm_pool_create(threads);
        memset(tight, 0, sizeof tight);
        o.cache_tokens = 64; /* 16 blocks of 4: one sequence of the full context */
        CHECK(run_specs(m, NULL, pool, &o, s, N, tight, &st) == 0 && well_formed(tight, N));
        CHECKF(st.preemptions > 0, "%llu preemptions", (unsigned long long)st.preemptions);
        CHECK(st.blocks_total == 16);
        for (int i = 0; i < N; i++)
            for (int k = 0; k < s[i].n; k++)
                CHECKF(same_choice(&free_run[i].c[k], &tight[i].c[k]), "%d threads: request %d choice %d differs",
                       threads, i, k);
        lm_pool_free(pool);
    }
    lm_model_free(m);
}

/* Random engines (block size, cache size down to one context, sequences,
 * rows per forward) under random joins and cancels: every choice that was
 * not cancelled equals its run on a roomy engine; no step stalls. */
TEST(random_engines_and_schedules) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    enum { N = 8, ITER = 40 };
    spec s[N];
    got_request *ref = calloc(N, sizeof *ref), *got = calloc(N, sizeof *got);
    uint64_t preemptions = 0;
    for (int it = 0; it < ITER; it++) {
        rng_state = 10000 + (uint64_t)it * 100;
        random_specs(s, N, m->cfg.vocab_size, it % 2);
        for (int i = 0; i < N; i++) {
            s[i].n = 1 + (int)rnd(3);
            s[i].join = (int)rnd(20);
            s[i].cancel_at = rnd(5) == 0 ? s[i].join + (int)rnd(15) : -1;
        }
        lm_engine_opts o = small_opts(64);
        memset(ref, 0, N * sizeof *ref);
        CHECK(run_specs(m, NULL, NULL, &o, s, N, ref, NULL) == 0);
        o.block_tokens = 1 + (int64_t)rnd(8);
        o.cache_tokens = 64 + (int64_t)rnd(128);
        o.max_seqs = 3 + (int)rnd(6);
        o.max_batch_tokens = o.max_seqs + (int64_t)rnd(20);
        memset(got, 0, N * sizeof *got);
        lm_engine_stats st;
        CHECKF(run_specs(m, NULL, NULL, &o, s, N, got, &st) == 0 && well_formed(got, N), "iteration %d", it);
        preemptions += st.preemptions;
        for (int i = 0; i < N; i++)
            for (int k = 0; k < s[i].n; k++) {
                const got_choice *a = &ref[i].c[k], *b = &got[i].c[k];
                int ok = b->finish == LM_FINISH_CANCELLED || a->finish == LM_FINISH_CANCELLED
                             ? b->n <= a->n || a->finish == LM_FINISH_CANCELLED
                             : same_choice(a, b);
                int shared = b->n < a->n ? b->n : a->n;
                ok = ok && !memcmp(a->ids, b->ids, (size_t)shared * 4);
                CHECKF(ok, "iteration %d (blocks of %lld, cache %lld, %d seqs, %lld rows): request %d choice %d", it,
                       (long long)o.block_tokens, (long long)o.cache_tokens, o.max_seqs, (long long)o.max_batch_tokens,
                       i, k);
            }
    }
    CHECKF(preemptions > 20, "%llu preemptions in all", (unsigned long long)preemptions);
    free(ref);
    free(got);
    lm_model_free(m);
}

/* (e) Cancel: running and queued requests end with CANCELLED, the cache is
 * empty again, unknown or finished ids are refused. */
TEST(cancel_frees_the_cache) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    lm_error err;
    lm_engine_opts o = small_opts(128);
    o.max_seqs = 2;
    o.max_batch_tokens = 8;
    lm_engine *e = lm_engine_create(m, NULL, NULL, &o, &err);
    if (!e) { CHECK(0); lm_model_free(m); return; }
    spec s[3];
    rng_state = 31;
    random_specs(s, 3, m->cfg.vocab_size, 1);
    got_request g[3];
    memset(g, 0, sizeof g);
    s[0].n = 2;
    for (int i = 0; i < 3; i++) {
        s[i].p.max_tokens = 40;
        g[i].n = s[i].n;
        lm_engine_request r = to_request(&s[i], &g[i]);
        CHECK(lm_engine_submit(e, &r, &g[i].id, &err) == 0);
    }
    for (int step = 0; step < 12; step++) CHECK(lm_engine_step(e, &err) > 0);
    lm_engine_stats st;
    lm_engine_stats_get(e, &st);
    CHECK(st.blocks_used > 0 && st.running == 2 && st.queued == 2);
    CHECK(g[0].c[0].n > 0 && g[0].c[1].n > 0 && g[1].c[0].n == 0);
    CHECK(lm_engine_cancel(e, g[0].id) == 0 && lm_engine_cancel(e, g[2].id) == 0);
    CHECK(lm_engine_cancel(e, g[0].id) == -1); /* already asked */
    CHECK(lm_engine_cancel(e, 987654) == -1);
    CHECK(lm_engine_step(e, &err) > 0);
    CHECK(g[0].c[0].done == 1 && g[0].c[1].done == 1 && g[0].c[0].finish == LM_FINISH_CANCELLED &&
          g[0].c[1].finish == LM_FINISH_CANCELLED && g[0].c[0].completion_tokens == g[0].c[0].n);
    CHECK(g[2].c[0].done == 1 && g[2].c[0].finish == LM_FINISH_CANCELLED && g[2].c[0].n == 0);
    CHECK(lm_engine_run(e, &err) == 0);
    CHECK(g[1].c[0].done == 1 && g[1].c[0].finish != LM_FINISH_CANCELLED);
    CHECK(well_formed(g, 3));
    CHECK(lm_engine_cancel(e, g[1].id) == -1); /* finished */
    lm_engine_stats_get(e, &st);
    CHECK(st.blocks_used == 0 && st.running == 0 && st.queued == 0 && st.requests_done == 3);
    lm_engine_free(e);
    lm_model_free(m);
}

/* (f) Bad requests and options: one line naming what is wrong. */
TEST(bad_requests_are_refused) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    lm_error err;
    lm_engine_opts o = small_opts(32);
    o.max_seqs = 4;
    o.max_queue = 2;
    lm_engine *e = lm_engine_create(m, NULL, NULL, &o, &err);
    if (!e) { CHECK(0); lm_model_free(m); return; }
    int32_t ids[40] = {5, 6, 7};
    got_request g = {.n = 4};
    lm_engine_request ok = {.prompt = ids, .prompt_len = 3, .n = 1, .params = lm_gen_params_default(),
                            .on_event = on_event, .user = &g};
    lm_engine_request r;
    uint64_t id;
#define REFUSED(field, value, words)                                                                     \
    do {                                                                                                 \
        r = ok;                                                                                          \
        r.field = value;                                                                                 \
        CHECKF(lm_engine_submit(e, &r, &id, &err) == -1 && strstr(err.msg, words) &&                    \
                   !strchr(err.msg, '\n') && !lm_engine_queue_full(&err),                               \
               "%s = %s: %s", #field, #value, err.msg);                                                  \
    } while (0)
    REFUSED(prompt_len, 0, "empty prompt");
    REFUSED(prompt, NULL, "empty prompt");
    REFUSED(prompt_len, 32, "no room to generate");
    REFUSED(n, 0, "n is 0");
    REFUSED(n, 5, "max_seqs");
    REFUSED(params.max_tokens, 0, "max_tokens");
    REFUSED(params.sampling.temperature, -1, "temperature");
    REFUSED(params.sampling.top_p, 1.5f, "top_p");
    REFUSED(top_logprobs, 21, "top_logprobs");
    ids[1] = -1;
    REFUSED(prompt_len, 3, "prompt token 1 is id -1");
    ids[1] = 256;
    REFUSED(prompt_len, 3, "outside the vocabulary");
    ids[1] = 6;
#undef REFUSED
    CHECK(lm_engine_submit(e, &ok, &id, &err) == 0);
    CHECK(lm_engine_submit(e, &ok, &id, &err) == 0);
    CHECKF(lm_engine_submit(e, &ok, &id, &err) == -1 && lm_engine_queue_full(&err) && strstr(err.msg, "max_queue"),
           "%s", err.msg);
    lm_engine_free(e); /* with requests still queued: no events, no leaks */
    /* options */
    o = small_opts(64);
    o.cache_tokens = 32;
    CHECK(!lm_engine_create(m, NULL, NULL, &o, &err) && strstr(err.msg, "cache_tokens"));
    o = small_opts(64);
    o.max_batch_tokens = 8;
    CHECK(!lm_engine_create(m, NULL, NULL, &o, &err) && strstr(err.msg, "max_batch_tokens"));
    o = small_opts(64);
    o.max_seqs = 0;
    CHECK(!lm_engine_create(m, NULL, NULL, &o, &err) && strstr(err.msg, "max_seqs"));
    lm_model_free(m);
}

/* A model whose forward fails (non-finite weights): the step fails naming
 * the tensor, every live choice ends with that error, the cache is empty,
 * and the engine still answers (the same way) afterwards. */
TEST(model_failure_ends_every_choice) {
    lm_model *m = load("tests/bad/model_nan_mlp");
    if (!m) { CHECK(0); return; }
    lm_error err;
    lm_engine_opts o = small_opts(32);
    lm_engine *e = lm_engine_create(m, NULL, NULL, &o, &err);
    if (!e) { CHECK(0); lm_model_free(m); return; }
    int32_t ids[3] = {0, 1, 2};
    got_request g[2];
    memset(g, 0, sizeof g);
    for (int round = 0; round < 2; round++) {
        memset(g, 0, sizeof g);
        for (int i = 0; i < 2; i++) {
            g[i].n = i + 1;
            lm_engine_request r = {.prompt = ids, .prompt_len = 3, .n = i + 1, .params = lm_gen_params_default(),
                                   .on_event = on_event, .user = &g[i]};
            CHECK(lm_engine_submit(e, &r, &g[i].id, &err) == 0);
        }
        CHECKF(lm_engine_step(e, &err) == -1 && strstr(err.msg, "mlp.down_proj") && !strchr(err.msg, '\n'), "%s",
               err.msg);
        CHECK(well_formed(g, 2));
        for (int i = 0; i < 2; i++)
            for (int k = 0; k <= i; k++)
                CHECK(g[i].c[k].finish == LM_FINISH_CANCELLED && strstr(g[i].c[k].error, "mlp.down_proj"));
        lm_engine_stats st;
        lm_engine_stats_get(e, &st);
        CHECK(st.blocks_used == 0 && st.running == 0 && st.queued == 0);
        CHECK(lm_engine_step(e, &err) == 0);
    }
    lm_engine_free(e);
    lm_model_free(m);
}

/* ---- a tiny model with a tokenizer ---- */

static char model_dir[256];

static const char CORPUS[] =
    "Prove that the sum of two even numbers is even.\n"
    "## Solution\nLet a = 2m and b = 2n. Then a + b = 2(m + n), which is even.\n"
    "## Self Evaluation\nThe proof is complete. \\boxed{1} \xc3\xa9\xe2\x88\x80x \xe2\x88\x83y\n"
    "Find all integers x with 3x + 4 = 19 and prove there are no others.\n"
    "## Solution\n3x = 15, so x = 5. Substituting: 3*5 + 4 = 19.\n";

static int make_text_model(void) {
    lm_error err;
    snprintf(model_dir, sizeof model_dir, "/tmp/lemma_engine_XXXXXX");
    if (!mkdtemp(model_dir)) return -1;
    lm_bpe_train_opts to;
    lm_bpe_train_defaults(&to);
    to.vocab_size = 300;
    lm_bpe_trainer *t = lm_bpe_trainer_new(&to, &err);
    lm_text js = {0}, tcfg = {0};
    int rc = -1;
    char path[512], cfg[4096], *golden_cfg = NULL;
    size_t glen;
    if (!t || lm_bpe_trainer_feed(t, CORPUS, sizeof CORPUS - 1, &err) || lm_bpe_trainer_finish(t, &js, &tcfg, &err))
        goto out;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (lm_write_file_atomic(path, js.data, js.len, &err)) goto out;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (lm_write_file_atomic(path, tcfg.data, tcfg.len, &err)) goto out;
    lm_tokenizer *tok = lm_tokenizer_load(model_dir, &err);
    if (!tok) goto out;
    int vocab = lm_tokenizer_vocab_size(tok);
    lm_tokenizer_free(tok);
    /* the v3 golden's architecture on this vocabulary (+8 rows the tokenizer never uses) */
    if (lm_read_file("tests/golden/v3_f32/config.json", 1 << 16, &golden_cfg, &glen, &err)) goto out;
    char *vs = strstr(golden_cfg, "\"vocab_size\": 256");
    if (!vs) goto out;
    int len = snprintf(cfg, sizeof cfg, "%.*s\"vocab_size\": %d%s", (int)(vs - golden_cfg), golden_cfg, vocab + 8,
                       vs + strlen("\"vocab_size\": 256"));
    lm_config c;
    if (lm_config_parse(cfg, (size_t)len, "config", &c, &err)) goto out;
    lm_init_opts io = lm_init_opts_default();
    io.seed = 3;
    io.std = 0.3;
    if (lm_model_init_random(&c, cfg, (size_t)len, model_dir, &io, NULL, &err)) goto out;
    rc = 0;
out:
    if (rc) printf("  make_text_model: %s\n", err.msg);
    free(golden_cfg);
    lm_bpe_trainer_free(t);
    lm_text_free(&js);
    lm_text_free(&tcfg);
    return rc;
}

static void remove_text_model(void) {
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", model_dir, files[i]);
        unlink(path);
    }
    rmdir(model_dir);
}

/* (g) Text: stop strings, UTF-8 and finish equal lm_generate's; the events'
 * text concatenated is the whole text; alone and together alike. */
TEST(text_and_stop_strings_equal_lm_generate) {
    lm_error err;
    lm_model *m = load(model_dir);
    lm_tokenizer *tok = lm_tokenizer_load(model_dir, &err);
    CHECK(m && tok);
    if (!m || !tok) {
        lm_model_free(m);
        lm_tokenizer_free(tok);
        return;
    }
    const char *prompts[] = {"Prove that", "## Solution\n", "x = ", "\xe2\x88\x80"};
    enum { N = 16 };
    spec s[N];
    rng_state = 555;
    random_specs(s, N, 2, 0);
    lm_generator *gen = lm_generator_create(m, tok, NULL, 128, LM_ATTN_LATENT, &err);
    CHECK(gen);
    /* stop strings taken from free runs' text, so that they do match */
    static const char *stops[N][2];
    static char stopbuf[N][2][8];
    for (int i = 0; i < N; i++) {
        lm_ids ids = {0};
        const char *pt = prompts[i % 4];
        CHECK(lm_tokenizer_encode(tok, pt, strlen(pt), LM_TOK_SPECIAL, &ids, &err) == 0 && ids.n > 0);
        s[i].plen = (int64_t)ids.n;
        memcpy(s[i].prompt, ids.ids, ids.n * 4);
        lm_ids_free(&ids);
        s[i].p.sampling.temperature = 1.0f + 0.1f * (float)(i % 3);
        s[i].p.max_tokens = 40;
        s[i].p.skip_special = i % 5 == 0;
        s[i].n = i % 4 == 1 ? 2 : 1;
        if (i % 2 == 0 && gen) {
            lm_gen_result r;
            if (reference(gen, &s[i], 0, &r) == 0 && r.text.len > 6) {
                for (int k = 0; k < 2; k++) {
                    size_t at = (size_t)(2 + 3 * k) % (r.text.len - 2), len = 1 + (size_t)k;
                    memcpy(stopbuf[i][k], r.text.data + at, len);
                    stopbuf[i][k][len] = 0;
                    stops[i][k] = stopbuf[i][k];
                }
                s[i].p.stop = stops[i];
                s[i].p.nstop = 2;
            }
            lm_gen_result_free(&r);
        }
    }
    got_request *alone = calloc(N, sizeof *alone), *together = calloc(N, sizeof *together);
    lm_engine_opts o = small_opts(128);
    for (int i = 0; i < N; i++) CHECK(run_specs(m, tok, NULL, &o, &s[i], 1, &alone[i], NULL) == 0);
    CHECK(run_specs(m, tok, NULL, &o, s, N, together, NULL) == 0);
    CHECK(well_formed(alone, N) && well_formed(together, N));
    int stopped = 0, with_text = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < s[i].n; k++) {
            const got_choice *a = &alone[i].c[k];
            CHECKF(same_choice(a, &together[i].c[k]), "request %d choice %d together differs", i, k);
            lm_gen_result r;
            if (!gen || reference(gen, &s[i], k, &r)) {
                CHECK(0);
                continue;
            }
            CHECKF(equals_reference(a, &r), "request %d choice %d: \"%.*s\" (%d) vs lm_generate \"%s\" (%d)", i, k,
                   (int)a->text_len, a->text, a->finish, r.text.data ? r.text.data : "", r.finish);
            stopped += a->finish == LM_FINISH_STOP;
            with_text += a->text_len > 0;
            lm_gen_result_free(&r);
        }
    CHECKF(stopped >= 3 && with_text >= N / 2, "%d stopped, %d with text", stopped, with_text);
    free(alone);
    free(together);
    lm_generator_free(gen);
    lm_tokenizer_free(tok);
    lm_model_free(m);
}

/* Submit and cancel from another thread while the engine thread steps and
 * waits: every request ends once. */
#include <pthread.h>
typedef struct feeder {
    lm_engine *e;
    spec *s;
    got_request *g;
    int n;
    volatile int done;
} feeder;

static void *feed(void *arg) {
    feeder *f = arg;
    lm_error err;
    for (int i = 0; i < f->n; i++) {
        f->g[i].n = f->s[i].n;
        lm_engine_request r = to_request(&f->s[i], &f->g[i]);
        /* the id is written before the engine thread can see the request */
        if (lm_engine_submit(f->e, &r, &f->g[i].id, &err)) printf("  submit: %s\n", err.msg);
        if (i % 3 == 2) lm_engine_cancel(f->e, f->g[i].id);
        usleep(200);
    }
    f->done = 1;
    lm_engine_wake(f->e);
    return NULL;
}

TEST(submit_and_cancel_from_another_thread) {
    lm_model *m = load(GOLDENS[0]);
    if (!m) { CHECK(0); return; }
    enum { N = 12 };
    spec s[N];
    rng_state = 99;
    random_specs(s, N, m->cfg.vocab_size, 0);
    got_request g[N];
    memset(g, 0, sizeof g);
    lm_engine_opts o = small_opts(128);
    lm_error err;
    lm_engine *e = lm_engine_create(m, NULL, NULL, &o, &err);
    if (!e) { CHECK(0); lm_model_free(m); return; }
    feeder f = {.e = e, .s = s, .g = g, .n = N};
    pthread_t th;
    pthread_create(&th, NULL, feed, &f);
    for (;;) {
        int left = lm_engine_step(e, &err);
        CHECK(left >= 0);
        if (left <= 0 && f.done) {
            lm_engine_stats st;
            lm_engine_stats_get(e, &st);
            if (st.queued == 0 && lm_engine_step(e, &err) == 0) break;
        }
        if (left == 0) lm_engine_wait(e, 0.05);
    }
    pthread_join(th, NULL);
    /* idle: wait returns after its time, or at once after a wake */
    lm_engine_wait(e, 0.01);
    lm_engine_wake(e);
    lm_engine_wait(e, 1e6);
    lm_engine_stats st;
    lm_engine_stats_get(e, &st);
    CHECK(st.blocks_used == 0 && st.requests_done == N);
    int ended = 0;
    for (int i = 0; i < N; i++) ended += g[i].c[0].done == 1 && !g[i].c[0].late;
    CHECK(ended == N);
    lm_engine_free(e);
    lm_model_free(m);
}

int main(void) {
    RUN(batch_invariance_on_goldens);
    RUN(logprobs_are_the_lone_forwards);
    RUN(naive_cache_equals_lm_generate);
    RUN(choices_share_the_prompt);
    RUN(preemption_recomputes_the_same_tokens);
    RUN(random_engines_and_schedules);
    RUN(cancel_frees_the_cache);
    RUN(bad_requests_are_refused);
    RUN(submit_and_cancel_from_another_thread);
    RUN(model_failure_ends_every_choice);
    if (make_text_model()) {
        printf("test_engine: cannot build the tiny text model\n");
        remove_text_model();
        return 1;
    }
    RUN(text_and_stop_strings_equal_lm_generate);
    remove_text_model();
    return test_report("test_engine");
}
