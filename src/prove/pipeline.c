/* pipeline.c — generate, verify, meta-verify, refine; see pipeline.h and
 * docs/prove.md. */
#include "prove/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/rng.h"
#include "prove/answer.h"
#include "prove/template.h"

void lm_prove_opts_default(lm_prove_opts *o) {
    memset(o, 0, sizeof *o);
    o->samples = 8;
    o->verifications = 4;
    o->rounds = 4;
    o->max_tokens = 4096;
    o->temperature = 1.0;
    o->top_p = 0.95;
    o->seed = 1;
    o->meta = 1;
    lm_prove_opts_complete(o);
}

void lm_prove_opts_complete(lm_prove_opts *o) {
    if (o->refine_top <= 0) o->refine_top = o->samples / 4 > 1 ? o->samples / 4 : 1;
    if (o->refine_samples <= 0) o->refine_samples = 4;
    if (o->refine_verifications <= 0) o->refine_verifications = o->verifications;
}

static uint64_t fnv1a(const char *s, uint64_t h) {
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) h = (h ^ *u) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator byte no UTF-8 text holds */
}

uint64_t lm_prove_seed(uint64_t base, const char *problem_id, const char *id) {
    uint64_t h = fnv1a(id, fnv1a(problem_id, 1469598103934665603ull));
    return lm_mix64(lm_mix64(base + 0x9e3779b97f4a7c15ull) ^ h);
}

static int finished(const lm_pool_rec *r) { return r->finish_reason && !strcasecmp(r->finish_reason, "stop"); }

/* ---- reading answers ---- */

static const char *const DROP_UNFINISHED = "did not finish (finish_reason is not stop)";
static const char *const DROP_NO_SPLIT = "no \"## Solution\" followed by \"## Self Evaluation\"";
static const char *const DROP_NO_SCORE = "no \\boxed{} score in [0, 1]";

/* Classifies a received answer as the pool records it: score, self_score,
 * dropped. */
static void judge(int kind, lm_pool_rec *r) {
    const char *text = lm_answer_after_think(r->text ? r->text : "");
    r->has_score = 0;
    r->has_self_score = 0;
    r->dropped = NULL;
    if (!finished(r)) {
        r->dropped = (char *)DROP_UNFINISHED;
        return;
    }
    if (kind == LM_KIND_PROOF) {
        lm_answer_parts parts;
        if (lm_answer_split(text, &parts)) {
            r->dropped = (char *)DROP_NO_SPLIT;
            return;
        }
        r->has_score = lm_answer_score(parts.self_eval, parts.self_eval_len, &r->score) == 0;
        r->has_self_score = 1;
        r->self_score = r->has_score ? r->score : 0;
    } else {
        r->has_score = lm_answer_score(text, strlen(text), &r->score) == 0;
        if (!r->has_score) r->dropped = (char *)DROP_NO_SCORE;
    }
}

static void attach_proof(lm_proof_state *pr, const lm_pool_rec *rec) {
    pr->rec = rec;
    pr->usable = 0;
    if (!rec || rec->failed || !finished(rec)) return;
    lm_answer_parts parts;
    if (lm_answer_split(lm_answer_after_think(rec->text), &parts)) return;
    pr->usable = 1;
    pr->from_solution = parts.from_solution;
    pr->from_solution_len = parts.from_solution_len;
    pr->solution = parts.solution;
    pr->solution_len = parts.solution_len;
    pr->has_self_score = lm_answer_score(parts.self_eval, parts.self_eval_len, &pr->self_score) == 0;
    if (!pr->has_self_score) pr->self_score = 0;
}

static void attach_verif(lm_verif_state *v, const lm_pool_rec *rec) {
    v->rec = rec;
    v->valid = 0;
    if (!rec || rec->failed || !finished(rec)) return;
    const char *t = lm_answer_after_think(rec->text);
    v->valid = lm_answer_score(t, strlen(t), &v->score) == 0;
    lm_py_strip(t, strlen(t), &v->rating, &v->rating_len);
}

static void attach_meta(lm_verif_state *v, const lm_pool_rec *rec, int use_meta) {
    v->meta = rec;
    v->meta_valid = 0;
    v->rejected = 0;
    if (!rec || rec->failed || !finished(rec)) return;
    const char *t = lm_answer_after_think(rec->text);
    v->meta_valid = lm_answer_score(t, strlen(t), &v->meta_score) == 0;
    v->rejected = use_meta && v->meta_valid && v->meta_score == 0;
}

static void compute_mean(lm_proof_state *pr) {
    double sum = 0;
    pr->n_counted = 0;
    for (int k = 0; k < pr->n_verifs; k++) {
        const lm_verif_state *v = &pr->verifs[k];
        if (v->valid && !v->rejected) {
            sum += v->score;
            pr->n_counted++;
        }
    }
    pr->mean = pr->n_counted ? sum / pr->n_counted : 0;
}

/* ---- ranking ---- */

static int ranked(const lm_proof_state *p, int round) { return p->round <= round && p->usable && p->n_counted > 0; }

/* <0 when a ranks before b. */
static int rank_cmp(const lm_proof_state *a, const lm_proof_state *b) {
    if (a->mean != b->mean) return a->mean > b->mean ? -1 : 1;
    if (a->self_score != b->self_score) return a->self_score > b->self_score ? -1 : 1;
    if (a->tie != b->tie) return a->tie < b->tie ? -1 : 1;
    if (a->round != b->round) return a->round < b->round ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

int lm_prove_best(const lm_problem_state *p, int round) {
    int best = -1;
    for (int i = 0; i < p->n_proofs; i++)
        if (ranked(&p->proofs[i], round) && (best < 0 || rank_cmp(&p->proofs[i], &p->proofs[best]) < 0)) best = i;
    return best;
}

static int idx_cmp(const void *a, const void *b, void *ctx) {
    const lm_problem_state *p = ctx;
    return rank_cmp(&p->proofs[*(const int *)a], &p->proofs[*(const int *)b]);
}

/* ---- prompts ---- */

static int strip_append(lm_text *out, const char *s, size_t n) {
    const char *b;
    size_t len;
    lm_py_strip(s, n, &b, &len);
    return lm_text_append(out, b, len);
}

static int fill(const char *tmpl, const char *const *keys, const char *const *vals, int n, lm_text *out, lm_error *err) {
    if (lm_template_fill(tmpl, keys, vals, n, out, err)) return -1;
    return 0;
}

static int gen_prompt(const lm_prompt_templates *t, const char *question, lm_text *out, lm_error *err) {
    lm_text q = {0};
    int rc = strip_append(&q, question, strlen(question)) ? lm_fail(err, "out of memory") : 0;
    const char *keys[] = {"question"}, *vals[] = {q.data};
    if (!rc) rc = fill(t->text[LM_TPL_GEN], keys, vals, 1, out, err);
    lm_text_free(&q);
    return rc;
}

static int verify_prompt(const lm_prompt_templates *t, const char *question, const lm_proof_state *pr, lm_text *out,
                         lm_error *err) {
    lm_text q = {0}, p = {0};
    int rc = strip_append(&q, question, strlen(question)) || lm_text_append(&p, pr->solution, pr->solution_len)
                 ? lm_fail(err, "out of memory")
                 : 0;
    const char *keys[] = {"statement", "proof"}, *vals[] = {q.data, p.data};
    if (!rc) rc = fill(t->text[LM_TPL_VERIFY], keys, vals, 2, out, err);
    lm_text_free(&q);
    lm_text_free(&p);
    return rc;
}

static int meta_prompt(const lm_prompt_templates *t, const char *question, const lm_proof_state *pr,
                       const lm_verif_state *v, lm_text *out, lm_error *err) {
    lm_text q = {0}, p = {0}, r = {0};
    int rc = strip_append(&q, question, strlen(question)) || lm_text_append(&p, pr->solution, pr->solution_len) ||
                     lm_text_append(&r, v->rating, v->rating_len)
                 ? lm_fail(err, "out of memory")
                 : 0;
    const char *keys[] = {"statement", "proof", "rating"}, *vals[] = {q.data, p.data, r.data};
    if (!rc) rc = fill(t->text[LM_TPL_META], keys, vals, 3, out, err);
    lm_text_free(&q);
    lm_text_free(&p);
    lm_text_free(&r);
    return rc;
}

static int verif_order(const void *a, const void *b, void *ctx) {
    const lm_proof_state *pr = ctx;
    const lm_verif_state *x = &pr->verifs[*(const int *)a], *y = &pr->verifs[*(const int *)b];
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

int lm_prove_refine_prompt(const lm_prompt_templates *t, const char *question, const lm_proof_state *pr, lm_text *out,
                           lm_error *err) {
    lm_text instr = {0}, gen = {0}, block = {0}, summary = {0};
    int *order = malloc(((size_t)pr->n_verifs + 1) * sizeof *order);
    int rc = order ? 0 : lm_fail(err, "out of memory");
    int n = 0, distinct = 0;
    for (int k = 0; k < pr->n_verifs && !rc; k++)
        if (pr->verifs[k].valid && !pr->verifs[k].rejected) order[n++] = k;
    if (!rc) qsort_r(order, (size_t)n, sizeof *order, verif_order, (void *)pr);
    for (int k = 0; k < n; k++) distinct += k == 0 || pr->verifs[order[k]].score != pr->verifs[order[k - 1]].score;
    int per_score = distinct == 1 ? LM_REFINE_MAX_VERIFS : LM_REFINE_PER_SCORE;
    if (!rc) rc = gen_prompt(t, question, &gen, err);
    if (!rc && (strip_append(&instr, gen.data, gen.len) || lm_text_append(&block, "--- Solution 0 ---\n", 19) ||
                lm_text_append(&block, pr->solution, pr->solution_len) || lm_text_append(&block, "\n\n", 2)))
        rc = lm_fail(err, "out of memory");
    int taken = 0, in_group = 0;
    for (int k = 0; k < n && !rc && taken < LM_REFINE_MAX_VERIFS; k++) {
        const lm_verif_state *v = &pr->verifs[order[k]];
        in_group = k > 0 && v->score == pr->verifs[order[k - 1]].score ? in_group + 1 : 0;
        if (in_group >= per_score) continue;
        char head[80];
        int hl = snprintf(head, sizeof head, "%s=== Evaluation %d of Solution 0 ===\n", taken ? "\n\n" : "", taken);
        if (lm_text_append(&block, head, (size_t)hl) || lm_text_append(&block, v->rating, v->rating_len))
            rc = lm_fail(err, "out of memory");
        taken++;
    }
    if (!rc && strip_append(&summary, block.data, block.len)) rc = lm_fail(err, "out of memory");
    const char *keys[] = {"instruction", "proofs_to_refine"}, *vals[] = {instr.data, summary.data};
    if (!rc) rc = fill(t->text[LM_TPL_REFINE], keys, vals, 2, out, err);
    free(order);
    lm_text_free(&instr);
    lm_text_free(&gen);
    lm_text_free(&block);
    lm_text_free(&summary);
    return rc;
}

/* ---- the state ---- */

static int add_proof(lm_problem_state *p, const char *id, int round, int index, const char *parent, uint64_t seed) {
    if (p->n_proofs == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        lm_proof_state *n = realloc(p->proofs, (size_t)cap * sizeof *n);
        if (!n) return -1;
        p->proofs = n;
        p->cap = cap;
    }
    lm_proof_state *pr = &p->proofs[p->n_proofs];
    memset(pr, 0, sizeof *pr);
    pr->id = strdup(id);
    pr->parent = parent ? strdup(parent) : NULL;
    if (!pr->id || (parent && !pr->parent)) {
        free(pr->id);
        free(pr->parent);
        return -1;
    }
    pr->round = round;
    pr->index = index;
    pr->tie = lm_prove_seed(seed ^ 0x7469652d6b657973ull /* "tie-keys" */, p->problem->id, id);
    p->n_proofs++;
    return 0;
}

void lm_prove_result_free(lm_prove_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        lm_problem_state *p = &r->problems[i];
        for (int j = 0; j < p->n_proofs; j++) {
            lm_proof_state *pr = &p->proofs[j];
            for (int k = 0; k < pr->n_verifs; k++) free(pr->verifs[k].id);
            free(pr->verifs);
            free(pr->id);
            free(pr->parent);
        }
        free(p->proofs);
        free(p->best_after);
    }
    free(r->problems);
    if (r->given) {
        for (int i = 0; i < r->n; i++) free(r->given[i].text);
        free(r->given);
    }
    free(r);
}

static lm_prove_result *result_new(const lm_problem_set *ps, const lm_prove_ctx *c, int verify_mode) {
    lm_prove_result *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->opts = *c->opts;
    r->verify_mode = verify_mode;
    r->backend = c->backend->name;
    r->n = ps->n;
    if (!(r->problems = calloc((size_t)ps->n, sizeof *r->problems))) {
        free(r);
        return NULL;
    }
    int rounds = verify_mode ? 0 : c->opts->rounds;
    for (int i = 0; i < ps->n; i++) {
        lm_problem_state *p = &r->problems[i];
        p->problem = &ps->items[i];
        if (!(p->best_after = malloc(((size_t)rounds + 1) * sizeof *p->best_after))) {
            lm_prove_result_free(r);
            return NULL;
        }
        for (int k = 0; k <= rounds; k++) p->best_after[k] = -1;
    }
    return r;
}

/* ---- running one phase ---- */

typedef struct pending {
    int problem, proof, verif;  /* what the answer attaches to (verif -1 for proofs) */
    int kind, round;
    const char *id;             /* borrowed from the state */
    const char *parent;         /* borrowed; NULL for first proofs */
    int parent_list;
    int prompt;                 /* index into the phase's prompts: identical requests share one */
    uint64_t seed;
    int resolved;
} pending;

/* The requests of one phase and their distinct prompts. */
typedef struct plist {
    pending *p;
    int n, cap;
    lm_text *prompts;
    char (*hashes)[17];
    int n_prompts, cap_prompts;
} plist;

static pending *plist_add(plist *l, int prompt) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        pending *n = realloc(l->p, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        l->p = n;
        l->cap = cap;
    }
    pending *q = &l->p[l->n++];
    memset(q, 0, sizeof *q);
    q->verif = -1;
    q->prompt = prompt;
    return q;
}

/* A new, empty prompt; its index, or -1. */
static int plist_prompt(plist *l) {
    if (l->n_prompts == l->cap_prompts) {
        int cap = l->cap_prompts ? 2 * l->cap_prompts : 64;
        lm_text *t = realloc(l->prompts, (size_t)cap * sizeof *t);
        if (!t) return -1;
        l->prompts = t;
        char(*h)[17] = realloc(l->hashes, (size_t)cap * sizeof *h);
        if (!h) return -1;
        l->hashes = h;
        l->cap_prompts = cap;
    }
    memset(&l->prompts[l->n_prompts], 0, sizeof l->prompts[0]);
    return l->n_prompts++;
}

static void plist_free(plist *l) {
    for (int i = 0; i < l->n_prompts; i++) lm_text_free(&l->prompts[i]);
    free(l->prompts);
    free(l->hashes);
    free(l->p);
    memset(l, 0, sizeof *l);
}

typedef struct phase_run {
    const lm_prove_ctx *c;
    lm_prove_result *res;
    const plist *l;
    pending *p;
    int n;
    lm_prove_phase ph;
    double t0;
    volatile int *stop;
    int internal;               /* an error in on_reply (e.g. the pool cannot be written) */
    lm_error err;
} phase_run;

static void attach(phase_run *r, pending *q, const lm_pool_rec *rec) {
    lm_problem_state *p = &r->res->problems[q->problem];
    lm_proof_state *pr = &p->proofs[q->proof];
    if (q->kind == LM_KIND_PROOF) attach_proof(pr, rec);
    else if (q->kind == LM_KIND_VERIFICATION) attach_verif(&pr->verifs[q->verif], rec);
    else attach_meta(&pr->verifs[q->verif], rec, r->c->opts->meta);
}

static void on_reply(void *user, const lm_chat_reply *reply) {
    phase_run *r = user;
    if (r->internal || reply->key >= (uint64_t)r->n) return;
    pending *q = &r->p[reply->key];
    if (q->resolved) return;
    lm_pool_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.id = (char *)q->id;
    rec.problem_id = r->res->problems[q->problem].problem->id;
    rec.kind = q->kind;
    rec.round = q->round;
    char *parents[1] = {(char *)q->parent};
    rec.parents = parents;
    rec.n_parents = q->parent ? 1 : 0;
    rec.parent_is_list = q->parent_list;
    rec.backend = (char *)r->c->backend->name;
    rec.seconds = reply->seconds;
    memcpy(rec.prompt_hash, r->l->hashes[q->prompt], sizeof rec.prompt_hash);
    rec.seed = q->seed;
    if (!reply->ok) {
        rec.failed = 1;
        rec.error = (char *)(reply->error && *reply->error ? reply->error : "failed");
    } else {
        rec.text = (char *)(reply->content ? reply->content : "");
        rec.reasoning = (char *)(reply->reasoning ? reply->reasoning : "");
        rec.finish_reason = (char *)(reply->finish_reason ? reply->finish_reason : "");
        rec.prompt_tokens = reply->prompt_tokens;
        rec.completion_tokens = reply->completion_tokens;
        judge(q->kind, &rec);
    }
    const lm_pool_rec *stored = lm_proof_pool_append(r->c->pool, &rec, &r->err);
    if (!stored) {
        r->internal = 1;
        if (r->stop) *r->stop = 1;
        return;
    }
    q->resolved = 1;
    r->ph.done++;
    if (rec.failed) {
        r->ph.failed++;
        r->res->failed++;
    } else {
        attach(r, q, stored);
    }
    r->ph.elapsed = lm_now_s() - r->t0;
    if (r->c->progress) r->c->progress(r->c->progress_ctx, &r->ph);
}

/* Resolves every pending request from the pool or the backend. */
static int run_phase(const lm_prove_ctx *c, lm_prove_result *res, plist *l, int round, const char *name,
                     lm_error *err) {
    pending *p = l->p;
    int n = l->n;
    phase_run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.res = res;
    r.l = l;
    r.p = p;
    r.n = n;
    r.ph.round = round;
    r.ph.name = name;
    r.ph.total = n;
    r.stop = c->stop;
    lm_chat_request *reqs = malloc(((size_t)n + 1) * sizeof *reqs);
    if (!reqs) return lm_fail(err, "out of memory");
    for (int k = 0; k < l->n_prompts; k++) {
        if (!l->prompts[k].data && lm_text_append(&l->prompts[k], "", 0)) {
            free(reqs);
            return lm_fail(err, "out of memory");
        }
        lm_prompt_hash(l->prompts[k].data, l->prompts[k].len, l->hashes[k]);
    }
    int ask = 0;
    for (int i = 0; i < n; i++) {
        pending *q = &p[i];
        q->seed = lm_prove_seed(c->opts->seed, res->problems[q->problem].problem->id, q->id);
        const lm_pool_rec *rec =
            lm_proof_pool_find(c->pool, res->problems[q->problem].problem->id, q->id, l->hashes[q->prompt]);
        if (rec) {
            q->resolved = 1;
            attach(&r, q, rec);
            r.ph.from_pool++;
            continue;
        }
        lm_chat_request *rq = &reqs[ask++];
        rq->key = (uint64_t)i;
        rq->prompt = l->prompts[q->prompt].data;
        rq->temperature = c->opts->temperature;
        rq->top_p = c->opts->top_p;
        rq->max_tokens = c->opts->max_tokens;
        rq->seed = q->seed;
    }
    res->from_pool += r.ph.from_pool;
    res->asked += ask;
    int rc = 0;
    if (c->progress) c->progress(c->progress_ctx, &r.ph);
    r.t0 = lm_now_s();
    if (ask > 0) {
        lm_error berr;
        int brc = c->backend->run(c->backend, reqs, ask, on_reply, &r, c->stop, &berr);
        if (r.internal) {
            *err = r.err;
            rc = -1;
        } else if (brc) {
            *err = berr;
            rc = -1;
        } else if (c->stop && *c->stop) {
            rc = lm_fail(err, "interrupted");
        }
        /* A request the backend never answered is left for the next run. */
    }
    free(reqs);
    r.ph.elapsed = lm_now_s() - r.t0;
    r.ph.finished = 1;
    if (!rc && c->progress) c->progress(c->progress_ctx, &r.ph);
    if (ask > 0 && lm_proof_pool_sync(c->pool, rc ? &r.err : err) && !rc) rc = -1;
    return rc;
}

/* The verifications of every usable proof of round `round` that has none
 * yet; then their meta-verifications. */
static int verify_round(const lm_prove_ctx *c, lm_prove_result *res, int round, int per_proof, lm_error *err) {
    plist l = {0};
    int rc = 0;
    for (int i = 0; i < res->n && !rc; i++) {
        lm_problem_state *p = &res->problems[i];
        for (int j = 0; j < p->n_proofs && !rc; j++) {
            lm_proof_state *pr = &p->proofs[j];
            if (pr->round != round || !pr->usable || pr->verifs) continue;
            if (!(pr->verifs = calloc((size_t)per_proof, sizeof *pr->verifs))) {
                rc = lm_fail(err, "out of memory");
                break;
            }
            pr->n_verifs = per_proof;
            int prompt = plist_prompt(&l);
            if (prompt < 0) {
                rc = lm_fail(err, "out of memory");
                break;
            }
            rc = verify_prompt(c->templates, p->problem->question, pr, &l.prompts[prompt], err);
            for (int k = 0; k < per_proof && !rc; k++) {
                char id[300];
                snprintf(id, sizeof id, "%s.v%d", pr->id, k);
                pending *q = plist_add(&l, prompt);
                if (!q || !(pr->verifs[k].id = strdup(id))) {
                    rc = lm_fail(err, "out of memory");
                    break;
                }
                q->problem = i;
                q->proof = j;
                q->verif = k;
                q->kind = LM_KIND_VERIFICATION;
                q->round = round;
                q->id = pr->verifs[k].id;
                q->parent = pr->id;
            }
        }
    }
    if (!rc) rc = run_phase(c, res, &l, round, "verify", err);
    plist_free(&l);
    if (rc || !c->opts->meta) return rc;

    memset(&l, 0, sizeof l);
    for (int i = 0; i < res->n && !rc; i++) {
        lm_problem_state *p = &res->problems[i];
        for (int j = 0; j < p->n_proofs && !rc; j++) {
            lm_proof_state *pr = &p->proofs[j];
            if (pr->round != round) continue;
            for (int k = 0; k < pr->n_verifs && !rc; k++) {
                lm_verif_state *v = &pr->verifs[k];
                if (!v->valid || v->score > LM_META_THRESHOLD) continue;
                int prompt = plist_prompt(&l);
                pending *q = prompt < 0 ? NULL : plist_add(&l, prompt);
                if (!q) {
                    rc = lm_fail(err, "out of memory");
                    break;
                }
                q->problem = i;
                q->proof = j;
                q->verif = k;
                q->kind = LM_KIND_META;
                q->round = round;
                q->parent = v->id;
                /* the id lives as long as the state: "<verification id>.m" */
                char *id = malloc(strlen(v->id) + 3);
                if (!id) {
                    rc = lm_fail(err, "out of memory");
                    break;
                }
                sprintf(id, "%s.m", v->id);
                q->id = id;
                rc = meta_prompt(c->templates, p->problem->question, pr, v, &l.prompts[prompt], err);
            }
        }
    }
    if (!rc) rc = run_phase(c, res, &l, round, "meta-verify", err);
    for (int i = 0; i < l.n; i++) free((char *)l.p[i].id);
    plist_free(&l);
    return rc;
}

/* Means, the stop rule and the best proof after `round`. */
static void close_round(lm_prove_result *res, int round) {
    for (int i = 0; i < res->n; i++) {
        lm_problem_state *p = &res->problems[i];
        for (int j = 0; j < p->n_proofs; j++) {
            lm_proof_state *pr = &p->proofs[j];
            if (pr->round != round) continue;
            compute_mean(pr);
            if (pr->usable && pr->n_counted > 0 && pr->mean > LM_PASS_THRESHOLD) p->stopped = 1;
        }
        p->best_after[round] = lm_prove_best(p, round);
    }
}

static int generate_first(const lm_prove_ctx *c, lm_prove_result *res, lm_error *err) {
    plist l = {0};
    int rc = 0;
    for (int i = 0; i < res->n && !rc; i++) {
        lm_problem_state *p = &res->problems[i];
        int prompt = plist_prompt(&l);
        if (prompt < 0) {
            rc = lm_fail(err, "out of memory");
            break;
        }
        rc = gen_prompt(c->templates, p->problem->question, &l.prompts[prompt], err);
        for (int g = 0; g < c->opts->samples && !rc; g++) {
            char id[64];
            snprintf(id, sizeof id, "r0.g%d", g);
            pending *q = plist_add(&l, prompt);
            if (!q || add_proof(p, id, 0, g, NULL, c->opts->seed)) {
                rc = lm_fail(err, "out of memory");
                break;
            }
            q->problem = i;
            q->proof = p->n_proofs - 1;
            q->kind = LM_KIND_PROOF;
            q->round = 0;
        }
    }
    /* ids are borrowed from the states, which no longer move */
    for (int k = 0; k < l.n; k++) l.p[k].id = res->problems[l.p[k].problem].proofs[l.p[k].proof].id;
    if (!rc) rc = run_phase(c, res, &l, 0, "generate", err);
    plist_free(&l);
    return rc;
}

/* Refinement round `round`: the best refine_top proofs of every problem
 * still going, each with refine_samples new proofs. Returns the number of
 * problems that took part, or -1. */
static int refine(const lm_prove_ctx *c, lm_prove_result *res, int round, lm_error *err) {
    plist l = {0};
    int rc = 0, active = 0;
    const lm_prove_opts *o = c->opts;
    for (int i = 0; i < res->n && !rc; i++) {
        lm_problem_state *p = &res->problems[i];
        if (p->stopped || p->exhausted) continue;
        int *cand = malloc(((size_t)p->n_proofs + 1) * sizeof *cand), nc = 0;
        if (!cand) {
            rc = lm_fail(err, "out of memory");
            break;
        }
        for (int j = 0; j < p->n_proofs; j++)
            if (ranked(&p->proofs[j], round - 1)) cand[nc++] = j;
        if (nc == 0) {
            p->exhausted = 1;
            free(cand);
            continue;
        }
        qsort_r(cand, (size_t)nc, sizeof *cand, idx_cmp, p);
        if (nc > o->refine_top) nc = o->refine_top;
        active++;
        p->rounds_used = round;
        for (int k = 0; k < nc && !rc; k++) {
            int prompt = plist_prompt(&l);
            if (prompt < 0) {
                rc = lm_fail(err, "out of memory");
                break;
            }
            /* the prompt first: adding proofs moves the array */
            rc = lm_prove_refine_prompt(c->templates, p->problem->question, &p->proofs[cand[k]], &l.prompts[prompt],
                                        err);
            char *parent = rc ? NULL : strdup(p->proofs[cand[k]].id);
            if (!rc && !parent) rc = lm_fail(err, "out of memory");
            for (int s = 0; s < o->refine_samples && !rc; s++) {
                char id[64];
                int index = k * o->refine_samples + s;
                snprintf(id, sizeof id, "r%d.g%d", round, index);
                pending *q = plist_add(&l, prompt);
                if (!q || add_proof(p, id, round, index, parent, o->seed)) {
                    rc = lm_fail(err, "out of memory");
                    break;
                }
                q->problem = i;
                q->proof = p->n_proofs - 1;
                q->kind = LM_KIND_PROOF;
                q->round = round;
                q->parent_list = 1;
            }
            free(parent);
        }
        free(cand);
    }
    for (int k = 0; k < l.n; k++) {
        lm_proof_state *pr = &res->problems[l.p[k].problem].proofs[l.p[k].proof];
        l.p[k].id = pr->id;
        l.p[k].parent = pr->parent;
    }
    if (!rc && l.n) rc = run_phase(c, res, &l, round, "refine", err);
    plist_free(&l);
    return rc ? -1 : active;
}

int lm_prove_run(const lm_problem_set *ps, const lm_prove_ctx *c, lm_prove_result **out, lm_error *err) {
    *out = NULL;
    lm_prove_result *res = result_new(ps, c, 0);
    if (!res) return lm_fail(err, "out of memory");
    const lm_prove_opts *o = c->opts;
    int rc = generate_first(c, res, err);
    if (!rc) rc = verify_round(c, res, 0, o->verifications, err);
    if (!rc) close_round(res, 0);
    for (int round = 1; round <= o->rounds && !rc; round++) {
        int active = refine(c, res, round, err);
        if (active < 0) {
            rc = -1;
            break;
        }
        if (active > 0) rc = verify_round(c, res, round, o->refine_verifications, err);
        if (!rc) close_round(res, round);
    }
    if (rc) {
        lm_prove_result_free(res);
        return -1;
    }
    *out = res;
    return 0;
}

int lm_verify_run(const lm_problem_set *ps, const lm_prove_ctx *c, lm_prove_result **out, lm_error *err) {
    *out = NULL;
    lm_prove_result *res = result_new(ps, c, 1);
    if (!res || !(res->given = calloc((size_t)ps->n, sizeof *res->given))) {
        lm_prove_result_free(res);
        return lm_fail(err, "out of memory");
    }
    for (int i = 0; i < ps->n; i++) {
        lm_problem_state *p = &res->problems[i];
        lm_pool_rec *g = &res->given[i];
        if (!(g->text = strdup(ps->items[i].proof ? ps->items[i].proof : "")) ||
            add_proof(p, "given", 0, 0, NULL, c->opts->seed)) {
            lm_prove_result_free(res);
            return lm_fail(err, "out of memory");
        }
        lm_proof_state *pr = &p->proofs[0];
        pr->rec = g;
        pr->usable = 1;
        /* A given proof is judged whatever its shape: the solution part
         * when it has the headings, else all of it after any thinking. */
        const char *t = lm_answer_after_think(g->text);
        lm_answer_parts parts;
        if (lm_answer_split(t, &parts) == 0) {
            pr->from_solution = parts.from_solution;
            pr->from_solution_len = parts.from_solution_len;
            pr->solution = parts.solution;
            pr->solution_len = parts.solution_len;
            pr->has_self_score = lm_answer_score(parts.self_eval, parts.self_eval_len, &pr->self_score) == 0;
        } else {
            const char *s = strstr(t, "## Solution");
            const char *b = s ? s + strlen("## Solution") : t;
            lm_py_strip(s ? s : t, strlen(s ? s : t), &pr->from_solution, &pr->from_solution_len);
            lm_py_strip(b, strlen(b), &pr->solution, &pr->solution_len);
        }
        if (!pr->has_self_score) pr->self_score = 0;
    }
    int rc = verify_round(c, res, 0, c->opts->verifications, err);
    if (!rc) close_round(res, 0);
    if (rc) {
        lm_prove_result_free(res);
        return -1;
    }
    *out = res;
    return 0;
}
