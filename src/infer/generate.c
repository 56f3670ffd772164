/* generate.c — the generation loop; see generate.h. */
#include "infer/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "infer/speculative.h"
#include "infer/textout.h"

struct lm_generator {
    const lm_model *m;
    const lm_tokenizer *tok;
    lm_pool *pool;
    int64_t max_ctx;
    lm_infer *state;           /* holds the prompt (and the last run) */
    lm_infer *fork;            /* lm_generate_n: a sample's copy */
    lm_ids cached;             /* tokens whose K/V are in state */
    lm_sampler *sampler;
    float *logits;             /* [V] */
    float *prompt_logits;      /* [V] logits after the prompt (for forks) */
    lm_attn_mode mode;
    int forkable;              /* state holds exactly the prompt of lm_generator_prefill */
    lm_spec *spec;             /* lm_generate drafts with the MTP layer (NULL: plain decoding) */
};

lm_gen_params lm_gen_params_default(void) {
    lm_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.sampling = lm_sampling_default();
    p.stop_at_eos = 1;
    return p;
}

const char *lm_finish_name(lm_finish f) {
    static const char *names[] = {"length", "eos", "stop", "context", "cancelled"};
    return (unsigned)f < 5 ? names[f] : "?";
}

void lm_gen_result_free(lm_gen_result *r) {
    lm_ids_free(&r->ids);
    lm_text_free(&r->text);
}

lm_generator *lm_generator_create(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, int64_t max_ctx,
                                  lm_attn_mode mode, lm_error *err) {
    lm_generator *g = calloc(1, sizeof *g);
    if (!g) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    g->m = m;
    g->tok = tok;
    g->pool = pool;
    g->mode = mode;
    g->max_ctx = max_ctx;
    int nt = pool ? lm_pool_size(pool) : 1;
    int64_t V = m->cfg.vocab_size;
    if (tok && lm_tokenizer_vocab_size(tok) > V) {
        lm_fail(err, "the tokenizer has %d ids but the model's vocab_size is %lld", lm_tokenizer_vocab_size(tok),
                (long long)V);
        free(g);
        return NULL;
    }
    g->state = lm_infer_create(m, mode, max_ctx, 256, nt, err);
    /* A model's embedding may have rows past the tokenizer's last id (padding,
     * or a trained vocabulary that stopped short of vocab_size): those ids
     * have no text, so they are never sampled. */
    g->sampler = lm_sampler_create(tok ? lm_tokenizer_vocab_size(tok) : V);
    g->logits = malloc((size_t)V * sizeof(float));
    g->prompt_logits = malloc((size_t)V * sizeof(float));
    if (!g->state || !g->sampler || !g->logits || !g->prompt_logits) {
        if (g->state) lm_fail(err, "out of memory");
        lm_generator_free(g);
        return NULL;
    }
    return g;
}

void lm_generator_free(lm_generator *g) {
    if (!g) return;
    lm_infer_free(g->state);
    lm_infer_free(g->fork);
    lm_spec_free(g->spec);
    lm_ids_free(&g->cached);
    lm_sampler_free(g->sampler);
    free(g->logits);
    free(g->prompt_logits);
    free(g);
}

int64_t lm_generator_max_ctx(const lm_generator *g) { return g->max_ctx; }

int32_t lm_generator_eos(const lm_generator *g) {
    int32_t eos = g->tok ? lm_tokenizer_eos(g->tok) : -1;
    return eos >= 0 ? eos : (int32_t)g->m->cfg.eos_token_id;
}

/* Prefills prompt into g->state, reusing the cached prefix; leaves the
 * logits of the last prompt token in g->prompt_logits. */
static int prefill(lm_generator *g, const int32_t *prompt, int64_t n, lm_gen_result *res, lm_error *err) {
    if (n < 1) return lm_fail(err, "empty prompt");
    if (n >= g->max_ctx)
        return lm_fail(err, "prompt of %lld tokens does not fit the context of %lld (it needs room for one more)",
                       (long long)n, (long long)g->max_ctx);
    int64_t keep = 0;
    while (keep < (int64_t)g->cached.n && keep < n - 1 && g->cached.ids[keep] == prompt[keep]) keep++;
    lm_infer_truncate(g->state, keep);
    g->cached.n = (size_t)keep;
    double t0 = lm_now_s();
    if (lm_infer_forward(g->state, g->pool, prompt + keep, n - keep, g->prompt_logits, LM_LOGITS_LAST, err)) {
        lm_infer_reset(g->state);
        g->cached.n = 0;
        return -1;
    }
    for (int64_t i = keep; i < n; i++)
        if (lm_ids_push(&g->cached, prompt[i])) return lm_fail(err, "out of memory");
    res->prompt_tokens = n;
    res->prefilled_tokens = n - keep;
    res->prefill_s = lm_now_s() - t0;
    return 0;
}

/* What a decode loop carries from token to token. */
typedef struct decoding {
    lm_generator *g;
    const lm_gen_params *p;
    lm_gen_emit emit;
    void *user;
    lm_gen_result *res;
    lm_textout out;
    int32_t eos;
} decoding;

/* Takes generated token number `step`: 1 when the run ends with it (res->finish
 * set), 0 to go on, -1 on error. */
static int take_token(decoding *dc, int32_t id, int64_t step, lm_error *err) {
    lm_generator *g = dc->g;
    lm_gen_result *res = dc->res;
    const char *piece;
    size_t piece_len;
    if (lm_ids_push(&res->ids, id)) return lm_fail(err, "out of memory");
    if (!g->tok && dc->emit) { /* id mode: every generated id is output, EOS included */
        char buf[16];
        int k = snprintf(buf, sizeof buf, step ? ",%d" : "%d", id);
        if (dc->emit(dc->user, buf, (size_t)k)) {
            res->finish = LM_FINISH_CANCELLED;
            return 1;
        }
    }
    if (dc->p->stop_at_eos && id == dc->eos) {
        res->finish = LM_FINISH_EOS;
        return 1;
    }
    if (g->tok) {
        int stopped = lm_textout_push(&dc->out, id, err);
        if (stopped < 0) return -1;
        if (stopped) {
            res->finish = LM_FINISH_STOP;
            return 1; /* the text before the stop string goes out at the end */
        }
        lm_textout_take(&dc->out, &piece, &piece_len);
        if (dc->emit && piece_len && dc->emit(dc->user, piece, piece_len)) {
            res->finish = LM_FINISH_CANCELLED;
            return 1;
        }
    }
    if (step + 1 == dc->p->max_tokens) return 1;
    return 0;
}

static void decoding_start(decoding *dc, lm_generator *g, const lm_gen_params *p, lm_gen_emit emit, void *user,
                           lm_gen_result *res) {
    dc->g = g;
    dc->p = p;
    dc->emit = emit;
    dc->user = user;
    dc->res = res;
    dc->eos = lm_generator_eos(g);
    if (g->tok) lm_textout_init(&dc->out, g->tok, &res->text, p->stop, p->nstop, p->skip_special);
    res->finish = LM_FINISH_LENGTH;
}

static int decoding_finish(decoding *dc, lm_error *err) {
    const char *piece;
    size_t piece_len;
    if (dc->g->tok) {
        if (lm_textout_finish(&dc->out, err)) return -1;
        lm_textout_take(&dc->out, &piece, &piece_len);
        if (dc->emit && piece_len && dc->res->finish != LM_FINISH_CANCELLED) dc->emit(dc->user, piece, piece_len);
    }
    return 0;
}

/* Decodes from the current logits (in g->logits) with state s. */
static int decode_loop(lm_generator *g, lm_infer *s, const lm_gen_params *p, lm_gen_emit emit, void *user,
                       lm_gen_result *res, int track_cache, lm_error *err) {
    decoding dc;
    decoding_start(&dc, g, p, emit, user, res);
    double t0 = lm_now_s();
    for (int64_t step = 0; step < p->max_tokens; step++) {
        int32_t id = lm_sample(g->sampler, g->logits, &p->sampling, (uint64_t)step);
        int end = take_token(&dc, id, step, err);
        if (end < 0) return -1;
        if (end) break;
        if (lm_infer_pos(s) >= g->max_ctx) {
            res->finish = LM_FINISH_CONTEXT;
            break;
        }
        if (lm_infer_forward(s, g->pool, &id, 1, g->logits, LM_LOGITS_LAST, err)) return -1;
        if (track_cache && lm_ids_push(&g->cached, id)) return lm_fail(err, "out of memory");
    }
    if (decoding_finish(&dc, err)) return -1;
    res->decode_s = lm_now_s() - t0;
    return 0;
}

/* lm_generate with the MTP draft: the first token from the prompt's logits
 * as in plain decoding, then one or two tokens per verification step. The
 * prompt is prefilled whole (no prefix reuse). */
static int generate_speculative(lm_generator *g, const int32_t *prompt, int64_t n, const lm_gen_params *p,
                                lm_gen_emit emit, void *user, lm_gen_result *res, lm_error *err) {
    if (n < 1) return lm_fail(err, "empty prompt");
    if (n >= g->max_ctx)
        return lm_fail(err, "prompt of %lld tokens does not fit the context of %lld (it needs room for one more)",
                       (long long)n, (long long)g->max_ctx);
    lm_infer_reset(g->state); /* the plain cache no longer matches g->cached */
    g->cached.n = 0;
    double t0 = lm_now_s();
    if (lm_spec_prefill(g->spec, g->pool, prompt, n, g->logits, err)) return -1;
    res->prompt_tokens = n;
    res->prefilled_tokens = n;
    res->prefill_s = lm_now_s() - t0;
    decoding dc;
    decoding_start(&dc, g, p, emit, user, res);
    t0 = lm_now_s();
    int64_t step = 0;
    int32_t x = 0;
    if (p->max_tokens > 0) {
        x = lm_sample(g->sampler, g->logits, &p->sampling, 0);
        int end = take_token(&dc, x, step++, err);
        if (end < 0) return -1;
        while (!end) {
            if (lm_spec_pos(g->spec) >= g->max_ctx) {
                res->finish = LM_FINISH_CONTEXT;
                break;
            }
            int32_t got[2];
            int ngot;
            if (lm_spec_step(g->spec, g->pool, g->sampler, &p->sampling, x, got, &ngot, err)) return -1;
            for (int i = 0; i < ngot && !end; i++) {
                end = take_token(&dc, got[i], step++, err);
                if (end < 0) return -1;
            }
            x = got[ngot - 1];
        }
    }
    if (decoding_finish(&dc, err)) return -1;
    res->decode_s = lm_now_s() - t0;
    return 0;
}

int lm_generator_set_mtp(lm_generator *g, lm_mtp *mtp, lm_error *err) {
    lm_spec_free(g->spec);
    g->spec = NULL;
    if (!mtp) return 0;
    g->spec = lm_spec_create(g->m, mtp, g->mode, g->max_ctx, g->pool ? lm_pool_size(g->pool) : 1, err);
    return g->spec ? 0 : -1;
}

int lm_generator_set_prefill(lm_generator *g, lm_prefill_mode mode, lm_error *err) {
    if (mode != LM_PREFILL_ABSORBED && g->spec)
        return lm_fail(err, "expanded prefill does not combine with speculative decoding");
    return lm_infer_set_prefill(g->state, mode, err);
}

lm_spec_stats lm_generator_spec_stats(const lm_generator *g) {
    lm_spec_stats none = {0};
    return g->spec ? lm_spec_get_stats(g->spec) : none;
}

int lm_generate(lm_generator *g, const int32_t *prompt, int64_t n, const lm_gen_params *p, lm_gen_emit emit,
                void *user, lm_gen_result *res, lm_error *err) {
    g->forkable = 0;
    if (g->spec) return generate_speculative(g, prompt, n, p, emit, user, res, err);
    if (prefill(g, prompt, n, res, err)) return -1;
    memcpy(g->logits, g->prompt_logits, (size_t)g->m->cfg.vocab_size * sizeof(float));
    return decode_loop(g, g->state, p, emit, user, res, 1, err);
}

/* The fork's cache, created on first use. */
static int ensure_fork(lm_generator *g, lm_error *err) {
    if (!g->fork) g->fork = lm_infer_create(g->m, g->mode, g->max_ctx, 256, g->pool ? lm_pool_size(g->pool) : 1, err);
    return g->fork ? 0 : -1;
}

int lm_generator_prefill(lm_generator *g, const int32_t *prompt, int64_t n, lm_gen_result *res, lm_error *err) {
    g->forkable = 0;
    lm_infer_reset(g->state);
    g->cached.n = 0;
    if (prefill(g, prompt, n, res, err)) return -1;
    g->forkable = 1;
    return 0;
}

int lm_generate_fork(lm_generator *g, const lm_gen_params *p, lm_gen_result *res, lm_error *err) {
    if (!g->forkable) return lm_fail(err, "lm_generate_fork: no prompt prefilled (call lm_generator_prefill first)");
    if (ensure_fork(g, err) || lm_infer_copy_cache(g->fork, g->state, err)) return -1;
    memcpy(g->logits, g->prompt_logits, (size_t)g->m->cfg.vocab_size * sizeof(float));
    res->prompt_tokens = (int64_t)g->cached.n;
    res->prefilled_tokens = 0;
    return decode_loop(g, g->fork, p, NULL, NULL, res, 0, err);
}

int lm_generate_n(lm_generator *g, const int32_t *prompt, int64_t n, const lm_gen_params *p, int nsamples,
                  lm_gen_result *res, lm_error *err) {
    if (nsamples < 1) return lm_fail(err, "need at least one sample");
    g->forkable = 0;
    if (prefill(g, prompt, n, &res[0], err)) return -1;
    if (ensure_fork(g, err)) return -1;
    for (int k = 0; k < nsamples; k++) {
        lm_gen_params pk = *p;
        pk.sampling.seed = p->sampling.seed + (uint64_t)k;
        if (lm_infer_copy_cache(g->fork, g->state, err)) return -1;
        memcpy(g->logits, g->prompt_logits, (size_t)g->m->cfg.vocab_size * sizeof(float));
        if (k) {
            res[k].prompt_tokens = n;
            res[k].prefilled_tokens = 0;
        }
        if (decode_loop(g, g->fork, &pk, NULL, NULL, &res[k], 0, err)) return -1;
    }
    return 0;
}
