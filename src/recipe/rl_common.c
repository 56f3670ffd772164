/* rl_common.c — what the RL recipe stages share (rl_common.h): the
 * held-out set, problem draws, sampling groups and trainer log-probabilities. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "formats/json.h"
#include "model/model.h"
#include "recipe/rl_common.h"
#include "recipe/stage_common.h"
#include "tokenizer/chat.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void lm_qset_free(lm_qset *s) {
    for (size_t i = 0; i < s->n; i++) free(s->q[i]);
    free(s->q);
    memset(s, 0, sizeof *s);
}

int lm_qset_add_file(lm_qset *s, const char *path, lm_error *err) {
    char *text;
    size_t len;
    if (lm_read_file(path, (size_t)1 << 32, &text, &len, err)) return -1;
    int rc = 0;
    size_t line = 0;
    for (size_t pos = 0; pos < len && !rc; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (end > pos) {
            json_doc *d = json_parse(text + pos, end - pos, err);
            const json_value *q = d ? json_get(json_root(d), "question") : NULL;
            if (!d) rc = lm_fail_prefix(err, "%s: line %zu", path, line + 1);
            else if (!q || q->type != JSON_STRING)
                rc = lm_fail(err, "%s: line %zu: no \"question\" string (an RL stage's text inputs are problem "
                                  "sets whose questions it never trains on)", path, line + 1);
            else {
                if (s->n == s->cap) {
                    size_t cap = s->cap ? 2 * s->cap : 64;
                    char **p = realloc(s->q, cap * sizeof *p);
                    if (!p) rc = lm_fail(err, "out of memory");
                    else s->q = p, s->cap = cap;
                }
                if (!rc && !(s->q[s->n++] = strdup(q->str))) {
                    s->n--;
                    rc = lm_fail(err, "out of memory");
                }
            }
            json_free(d);
        }
        pos = end + 1;
    }
    free(text);
    if (!rc) qsort(s->q, s->n, sizeof *s->q, cmp_str);
    return rc;
}

int lm_rls_heldout(const lm_stage *st, lm_qset *ex, lm_error *err) {
    for (int i = 0; i < st->n_inputs; i++)
        if (!strcmp(st->inputs[i].kind, "input") && lm_qset_add_file(ex, st->inputs[i].path, err)) return -1;
    return 0;
}

int lm_rls_templates(const lm_stage *st, const char *file, lm_prompt_templates *tp, lm_error *err) {
    if (!file) return lm_templates_builtin(tp, err);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", st->recipe_dir, file);
    return lm_templates_load(path, tp, err) ? lm_fail_prefix(err, "%s: stage %s", st->recipe_path, st->name) : 0;
}

int lm_qset_has(const lm_qset *s, const char *q) {
    return s->n && bsearch(&q, s->q, s->n, sizeof *s->q, cmp_str) != NULL;
}

/* Trainer rows of samples [i0, i0 + nb): input x_0 .. x_{len-2}, target
 * x_{t+1} where the next token is trained, padding elsewhere. */
static void rows_of(const lm_rl_sample *s, int64_t nb, int64_t T, int32_t *ids, int32_t *tgt) {
    for (int64_t b = 0; b < nb; b++) {
        int32_t *ri = ids + b * T, *rt = tgt + b * T;
        for (int64_t t = 0; t < T; t++) {
            ri[t] = t < s[b].len - 1 ? s[b].ids[t] : 0;
            rt[t] = t < s[b].len - 1 && s[b].train[t + 1] ? s[b].ids[t + 1] : -1;
        }
    }
}

int lm_rls_keep_mixed(const lm_rl_sample *s, int64_t n, int64_t n_groups, float *const *lold, float *const *lref,
                      lm_rl_sample *out, float **out_old, float **out_ref, int64_t *out_index, int64_t *kept,
                      int64_t *kept_groups, lm_error *err) {
    int64_t *first = malloc((size_t)n_groups * sizeof *first), *map = malloc((size_t)n_groups * sizeof *map);
    uint8_t *mixed = calloc((size_t)n_groups, 1);
    if (!first || !map || !mixed) {
        free(first);
        free(map);
        free(mixed);
        return lm_fail(err, "out of memory");
    }
    for (int64_t g = 0; g < n_groups; g++) first[g] = -1, map[g] = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = s[i].group;
        if (first[g] < 0) first[g] = i;
        else if (s[i].reward != s[first[g]].reward) mixed[g] = 1;
    }
    *kept = *kept_groups = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = s[i].group;
        if (!mixed[g]) continue;
        if (map[g] < 0) map[g] = (*kept_groups)++;
        out[*kept] = s[i];
        out[*kept].group = map[g];
        out_old[*kept] = lold[i];
        if (out_ref) out_ref[*kept] = lref ? lref[i] : NULL;
        out_index[*kept] = i;
        (*kept)++;
    }
    free(first);
    free(map);
    free(mixed);
    return 0;
}

/* logp[i][t] = log pi(x_t | x_<t) for the trained tokens of every sample. */
int lm_rls_logprobs(lm_trainer *tr, lm_pool *pool, const lm_rl_sample *s, int64_t n, int64_t micro, int64_t T,
                       float **logp, int32_t *ids, int32_t *tgt, float *out, lm_error *err) {
    for (int64_t i0 = 0; i0 < n; i0 += micro) {
        int64_t nb = n - i0 < micro ? n - i0 : micro;
        rows_of(s + i0, nb, T, ids, tgt);
        if (lm_train_logprobs(tr, pool, ids, tgt, nb, out, err)) return -1;
        for (int64_t b = 0; b < nb; b++) {
            float *lp = logp[i0 + b];
            for (int64_t t = 0; t + 1 < s[i0 + b].len; t++) lp[t + 1] = s[i0 + b].train[t + 1] ? out[b * T + t] : 0;
            lp[0] = 0;
        }
    }
    return 0;
}

int lm_rls_train(lm_trainer *tr, lm_trainer *ref_tr, lm_pool *pool, const lm_rls_opts *o, int64_t step,
                 lm_rl_sample *rs, float **lold, float **lref, int64_t *index, int64_t n, int64_t n_groups,
                 int32_t *buf_ids, int32_t *buf_tgt, float *buf_lp, lm_rls_trained *out, lm_error *err) {
    memset(out, 0, sizeof *out);
    lm_rl_sample *ts = rs;
    float **told = lold, **tref = lref;
    int64_t tn = n, tg = n_groups;
    if (o->drop_uniform) {
        ts = rs + n;
        told = lold + n;
        tref = lref ? lref + n : NULL;
        if (lm_rls_keep_mixed(rs, n, n_groups, lold, lref, ts, told, tref, index, &tn, &tg, err))
            return -1;
        out->index = index;
    }
    out->batch = ts;
    out->samples = tn;
    if (!tn) return 0; /* no group with a reward spread: nothing to learn this step */
    int64_t micro = o->micro_batch, T = o->seq;
    if (lm_rls_logprobs(tr, pool, ts, tn, micro, T, told, buf_ids, buf_tgt, buf_lp, err)) return -1;
    if (o->rl.beta_kl > 0 && lm_rls_logprobs(ref_tr, pool, ts, tn, micro, T, tref, buf_ids, buf_tgt, buf_lp, err))
        return -1;
    for (int64_t it = 0; it < o->num_iterations; it++) {
        lm_rl_stats st;
        if (lm_rl_step(tr, pool, &o->rl, ts, tn, tg, lm_rls_lr(o, step), &st, err))
            return lm_fail_prefix(err, "step %lld, iteration %lld", (long long)step + 1, (long long)it + 1);
        if (it == 0) out->first = st; /* the on-policy iteration's loss, KL and ratio */
        else out->first.train = st.train;
        out->last = st;
    }
    return 0;
}

void lm_rls_put_learning(lm_text *line, const lm_rls_opts *o, const lm_rl_stats *first, const lm_rl_stats *last,
                         int64_t trained) {
    lm_stage_put_num(line, "ratio_dev_max", first->ratio_dev_max);
    lm_stage_put_num(line, "mixed_groups", (double)first->mixed_groups);
    lm_stage_put_num(line, "trained_samples", (double)trained);
    lm_stage_put_num(line, "adv_abs_mean", first->adv_abs_mean);
    if (o->num_iterations > 1) {
        lm_stage_put_num(line, "ratio_mean_last", last->ratio_mean);
        lm_stage_put_num(line, "clip_frac_last", last->clip_frac);
    }
}

int lm_rls_pick_domains(const char *spec, const lm_task_domain **ds, int *nd, const lm_stage *st, lm_error *err) {
    *nd = 0;
    if (!strcmp(spec, "all")) {
        for (int i = 0; i < lm_task_count() && i < 64; i++) ds[(*nd)++] = lm_task_domain_at(i);
        return 0;
    }
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), p);
        const lm_task_domain *d = lm_task_domain_find(name);
        if (!d)
            return lm_fail(err, "%s: stage %s: \"domains\": unknown domain \"%s\" (lemma tasks list shows them)",
                           st->recipe_path, st->name, name);
        if (*nd >= 64) return lm_fail(err, "%s: stage %s: \"domains\": too many", st->recipe_path, st->name);
        ds[(*nd)++] = d;
        p = comma ? comma + 1 : p + l;
    }
    if (!*nd) return lm_fail(err, "%s: stage %s: \"domains\": none chosen", st->recipe_path, st->name);
    return 0;
}


int lm_rls_difficulty(const lm_stage *st, int *dmin, int *dmax, lm_error *err) {
    const json_value *d = json_get(st->def, "difficulty");
    *dmin = *dmax = 1;
    if (!d) return 0;
    int64_t lo, hi;
    if (json_as_int(d, &lo)) hi = lo;
    else if (d->type != JSON_ARRAY || d->len != 2 || !json_as_int(json_at(d, 0), &lo) ||
             !json_as_int(json_at(d, 1), &hi))
        lo = hi = 0;
    if (lo < 1 || hi > 5 || lo > hi)
        return lm_fail(err, "%s: byte %zu: stage %s: \"difficulty\": expected d or [lo, hi] with 1 <= lo <= hi <= 5",
                       st->recipe_path, d->offset, st->name);
    *dmin = (int)lo;
    *dmax = (int)hi;
    return 0;
}

uint64_t lm_rls_step_key(uint64_t seed, int64_t step, uint64_t what, uint64_t index) {
    return lm_rng_u64(lm_rng_u64(seed, LM_RNG_RL, (uint64_t)step), what, index);
}

int lm_rls_draw_problem(uint64_t seed, int64_t step, int64_t j, int64_t per_step, const lm_task_domain *const *ds,
                        int nd, int dmin, int dmax, const lm_qset *ex, lm_text *question, lm_text *answer,
                        uint64_t *pseed, lm_error *err) {
    const lm_task_domain *d = ds[(uint64_t)(step * per_step + j) % (uint64_t)nd];
    for (uint64_t attempt = 0;; attempt++) {
        if (attempt > 1000)
            return lm_fail(err, "step %lld, prompt %lld: 1000 draws of domain %s were all in the excluded set",
                           (long long)step, (long long)j, d->name);
        *pseed = lm_rls_step_key(seed, step, LM_RLS_KEY_PROBLEM, (uint64_t)j << 16 | attempt);
        int diff = dmin + (int)(lm_rng_u64(*pseed, LM_RNG_TASKS, 0) % (uint64_t)(dmax - dmin + 1));
        question->len = answer->len = 0;
        if (d->generate(*pseed, diff, question, answer, err))
            return lm_fail_prefix(err, "%s seed %llu", d->name, (unsigned long long)*pseed);
        if (!lm_qset_has(ex, question->data)) return 0;
    }
}

int lm_rls_chat_prompt(const char *user, lm_text *out, lm_error *err) {
    lm_chat_msg m = {.role = "user", .content = user};
    lm_chat_opts co = {.add_generation_prompt = 1};
    out->len = 0;
    return lm_chat_render(&m, 1, &co, out, err);
}

/* ---- sampling ---- */

typedef struct group_req {
    lm_rls_sample *s;            /* [g] */
    int *done;                   /* [g] */
    int oom, failed;
} group_req;

static void on_event(void *user, const lm_engine_event *ev) {
    group_req *r = user;
    lm_rls_sample *s = &r->s[ev->choice];
    if (ev->kind == LM_EV_TOKEN) {
        if (s->completion.n == s->engine_logp_cap) {
            size_t cap = s->engine_logp_cap ? 2 * s->engine_logp_cap : 64;
            float *p = realloc(s->engine_logp, cap * sizeof *p);
            if (!p) r->oom = 1;
            else s->engine_logp = p, s->engine_logp_cap = cap;
        }
        if (!r->oom) s->engine_logp[s->completion.n] = ev->logprob;
        if (lm_ids_push(&s->completion, ev->token)) r->oom = 1;
    }
    if (ev->text_len && lm_text_append(&s->text, ev->text, ev->text_len)) r->oom = 1;
    if (ev->kind == LM_EV_DONE) {
        r->done[ev->choice] = 1;
        s->finish = ev->finish;
        if (ev->error) r->failed = 1;
    }
}

int lm_rls_sample_groups(const lm_params *p, lm_tokenizer *tok, lm_pool *pool, const char *name,
                         const lm_ids *prompts, int64_t n_prompts, const int64_t *g, const uint64_t *seeds,
                         const lm_rls_gen *gen, lm_rls_sample *out, lm_error *err) {
    int64_t n = 0;
    for (int64_t j = 0; j < n_prompts; j++) n += g[j];
    if (!n) return 0;
    group_req *rq = calloc((size_t)n_prompts, sizeof *rq);
    int *done = calloc((size_t)n, sizeof *done);
    lm_engine *e = NULL;
    int rc = -1;
    if (!rq || !done) {
        lm_fail(err, "out of memory");
        goto out;
    }
    /* the trainer's weights viewed as an inference model; the engine is made
     * anew each call: its forward keeps products of the weights */
    lm_model view;
    memset(&view, 0, sizeof view);
    view.cfg = p->cfg;
    view.dims = p->dims;
    view.w = p->W;
    snprintf(view.dir, sizeof view.dir, "%s (training)", name);
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = gen->max_ctx;
    eo.max_seqs = (int)(n < 65536 ? n : 65536);
    eo.max_queue = (int)(n_prompts < 65536 ? n_prompts : 65536);
    eo.max_batch_tokens = eo.max_seqs > 512 ? eo.max_seqs : 512;
    if (!(e = lm_engine_create(&view, tok, pool, &eo, err))) goto out;
    for (int64_t j = 0, off = 0; j < n_prompts; off += g[j], j++) {
        if (!g[j]) continue;
        if ((int64_t)prompts[j].n + 1 >= gen->max_ctx) {
            lm_fail(err, "prompt %lld is %zu tokens: it does not fit a context of %lld with room to answer",
                    (long long)j, prompts[j].n, (long long)gen->max_ctx);
            goto out;
        }
        rq[j].s = out + off;
        rq[j].done = done + off;
        lm_engine_request r = {.prompt = prompts[j].ids, .prompt_len = (int64_t)prompts[j].n, .n = (int)g[j],
                               .params = lm_gen_params_default(), .seeds = seeds + off, .on_event = on_event,
                               .user = &rq[j]};
        r.params.max_tokens = gen->max_tokens;
        r.params.sampling.temperature = (float)gen->temperature;
        r.params.sampling.top_p = (float)gen->top_p;
        r.params.stop_at_eos = 1;
        r.params.skip_special = 0;
        r.logprobs = 1;
        uint64_t id;
        if (lm_engine_submit(e, &r, &id, err)) goto out;
    }
    if (lm_engine_run(e, err)) goto out;
    for (int64_t j = 0; j < n_prompts; j++) {
        if (rq[j].oom) {
            lm_fail(err, "out of memory while sampling");
            goto out;
        }
        if (rq[j].failed) {
            lm_fail(err, "prompt %lld: sampling failed", (long long)j);
            goto out;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (!done[i]) {
            lm_fail(err, "sample %lld did not finish", (long long)i);
            goto out;
        }
        if (lm_text_append(&out[i].text, "", 0)) { /* a NUL-terminated text even when empty */
            lm_fail(err, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    lm_engine_free(e);
    free(rq);
    free(done);
    return rc;
}

void lm_rls_engine_logp_gap(const lm_rls_sample *sm, const lm_rl_sample *batch, const int64_t *index, int64_t n,
                            double *max_abs, double *mean_abs) {
    double mx = 0, sum = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_rls_sample *e = &sm[index ? index[i] : i];
        size_t k = 0;
        for (int64_t t = 0; t < batch[i].len && k < e->completion.n; t++) {
            if (!batch[i].train[t]) continue;
            double d = fabs((double)e->engine_logp[k++] - (double)batch[i].logp_old[t]);
            if (!(d <= mx)) mx = d; /* a NaN shows as NaN */
            sum += d;
            cnt++;
        }
    }
    *max_abs = mx;
    *mean_abs = cnt ? sum / (double)cnt : 0;
}

void lm_rls_sample_free(lm_rls_sample *s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) {
        free(s[i].engine_logp);
        lm_ids_free(&s[i].completion);
        lm_text_free(&s[i].text);
    }
}

/* ---- options ---- */

static const char *const shared_keys[] = {
    "name", "kind", "inputs", "description", "steps", "prompts", "group", "max_tokens", "seq", "micro_batch",
    "temperature", "top_p", "lr", "weight_decay", "beta1", "beta2", "eps", "clip", "bias_gamma", "beta_kl",
    "clip_low", "clip_high", "std_eps", "scale_std", "agg", "norm_len", "num_iterations", "seed", "difficulty",
    "domains", "templates", "save_every", "log_every", "warmup", "drop_uniform_groups", NULL};

static int key_in(const char *key, const char *const *keys) {
    for (int i = 0; keys[i]; i++)
        if (!strcmp(key, keys[i])) return 1;
    return 0;
}

int lm_rls_read_opts(const lm_stage *st, const char *kind, const char *const *own_keys, lm_rls_opts *o,
                     lm_error *err) {
    char q[80]; /* an unknown key, quoted and escaped for the message */
    for (const json_value *m = st->def->child; m; m = m->next)
        if (!key_in(m->key, shared_keys) && !key_in(m->key, own_keys))
            return lm_fail(err, "%s: byte %zu: stage %s: unknown key %s for a %s stage", st->recipe_path, m->offset,
                           st->name, json_quote(q, sizeof q, m->key, m->key_len), kind);
    memset(o, 0, sizeof *o);
    lm_train_opts to = lm_train_opts_default();
    o->adamw = to.adamw;
    o->rl = lm_rl_opts_default();
    int64_t seed;
    const char *agg = "seq_mean";
    int scale_std = 1;
    if (lm_stage_int(st, "steps", 20, 1, 1ll << 40, &o->steps, err) ||
        lm_stage_int(st, "prompts", 8, 1, 4096, &o->prompts, err) ||
        lm_stage_int(st, "group", 4, 1, 256, &o->group, err) ||
        lm_stage_int(st, "max_tokens", 256, 1, 1 << 20, &o->max_tokens, err) ||
        lm_stage_int(st, "seq", 512, 8, 1 << 20, &o->seq, err) ||
        lm_stage_int(st, "micro_batch", 0, 0, 1 << 20, &o->micro_batch, err) ||
        lm_stage_double(st, "temperature", 1.0, 0, 10, &o->temperature, err) ||
        lm_stage_double(st, "top_p", 1.0, 1e-6, 1, &o->top_p, err) ||
        lm_stage_double(st, "lr", 1e-4, 1e-12, 10, &o->lr, err) ||
        lm_stage_double(st, "weight_decay", 0.0, 0, 10, &o->adamw.weight_decay, err) ||
        lm_stage_double(st, "beta1", 0.9, 0, 0.999999, &o->adamw.beta1, err) ||
        lm_stage_double(st, "beta2", 0.95, 0, 0.9999999, &o->adamw.beta2, err) ||
        lm_stage_double(st, "eps", 1e-8, 0, 1, &o->adamw.eps, err) ||
        lm_stage_double(st, "clip", 1.0, 0, 1e9, &o->clip, err) ||
        lm_stage_double(st, "bias_gamma", 0.0, 0, 10, &o->bias_gamma, err) ||
        lm_stage_double(st, "beta_kl", o->rl.beta_kl, 0, 100, &o->rl.beta_kl, err) ||
        lm_stage_double(st, "clip_low", o->rl.clip_low, 0, 0.999999, &o->rl.clip_low, err) ||
        lm_stage_double(st, "clip_high", o->rl.clip_high, 0, 100, &o->rl.clip_high, err) ||
        lm_stage_double(st, "std_eps", o->rl.std_eps, 1e-12, 1, &o->rl.std_eps, err) ||
        lm_stage_bool(st, "scale_std", 1, &scale_std, err) || lm_stage_string(st, "agg", agg, &agg, err) ||
        lm_stage_double(st, "norm_len", 0, 0, 1e9, &o->rl.norm_len, err) ||
        lm_stage_int(st, "num_iterations", 1, 1, 64, &o->num_iterations, err) ||
        lm_stage_int(st, "seed", 0, 0, INT64_MAX, &seed, err) ||
        lm_stage_string(st, "domains", "all", &o->domains, err) ||
        lm_stage_string(st, "templates", NULL, &o->templates, err) ||
        lm_stage_int(st, "save_every", 0, 0, 1ll << 40, &o->save_every, err) ||
        lm_stage_int(st, "log_every", 1, 1, 1ll << 40, &o->log_every, err) ||
        lm_stage_int(st, "warmup", 0, 0, 1ll << 40, &o->warmup, err) ||
        lm_stage_bool(st, "drop_uniform_groups", 0, &o->drop_uniform, err))
        return -1;
    o->seed = (uint64_t)seed;
    o->rl.scale_std = scale_std;
    if (!strcmp(agg, "seq_mean")) o->rl.agg = LM_RL_SEQ_MEAN;
    else if (!strcmp(agg, "token_mean")) o->rl.agg = LM_RL_TOKEN_MEAN;
    else if (!strcmp(agg, "seq_sum")) o->rl.agg = LM_RL_SEQ_SUM;
    else
        return lm_fail(err, "%s: stage %s: \"agg\": expected \"seq_mean\" (GRPO), \"token_mean\" (DAPO) or "
                            "\"seq_sum\" (Dr. GRPO)", st->recipe_path, st->name);
    if (o->rl.agg == LM_RL_SEQ_SUM && o->rl.norm_len <= 0) o->rl.norm_len = (double)o->max_tokens;
    int64_t rows = o->prompts * o->group;
    if (!o->micro_batch) o->micro_batch = rows;
    if (rows % o->micro_batch)
        return lm_fail(err, "%s: stage %s: \"micro_batch\" %lld must divide prompts x group = %lld", st->recipe_path,
                       st->name, (long long)o->micro_batch, (long long)rows);
    if (o->max_tokens >= o->seq)
        return lm_fail(err, "%s: stage %s: \"max_tokens\" %lld leaves no room for the prompt in \"seq\" %lld",
                       st->recipe_path, st->name, (long long)o->max_tokens, (long long)o->seq);
    if (lm_rls_difficulty(st, &o->dmin, &o->dmax, err)) return -1;
    return lm_rl_opts_check(&o->rl, err) ? lm_fail_prefix(err, "%s: stage %s", st->recipe_path, st->name) : 0;
}

double lm_rls_lr(const lm_rls_opts *o, int64_t step) {
    if (step >= o->warmup) return o->lr;
    return o->lr * (double)(step + 1) / (double)o->warmup;
}

lm_train_opts lm_rls_train_opts(const lm_rls_opts *o) {
    lm_train_opts to = lm_train_opts_default();
    to.batch = o->prompts * o->group;
    to.micro_batch = o->micro_batch;
    to.seq = o->seq;
    to.adamw = o->adamw;
    to.clip = o->clip;
    to.bias_gamma = o->bias_gamma;
    return to;
}
