/* stage_verifier_rl.c — the "verifier_rl" stage kind of `lemma build`: GRPO
 * on verification prompts (DeepSeekMath-V2 §2.1.1, eq. 1–2), starting from
 * the model of an earlier pretrain, sft or verifier_rl stage.
 *
 * Step t (0-based) of a stage with seed S:
 *   1. prompts: P verification problems, problem j drawn from domain
 *      (t·P + j) mod D with a seed that is a function of (S, t, j) (a draw
 *      whose question is in an excluded set is redrawn with the next attempt
 *      counter); with probability p_flawed its reference proof is corrupted
 *      (the domain's corrupter); the label s is the exact checker's score of
 *      the proof shown. The prompt is the proof_verification template with
 *      the question and the solution part, as a one-turn chat — exactly what
 *      the SFT set and the pipeline's verify phase send.
 *   2. sampling: the engine on the current weights (the trainer's F32
 *      weights viewed as an lm_model: no copy, no save), G choices per
 *      prompt, choice k seeded by a function of (S, t, j, k).
 *   3. rewards: prove/reward.h (R_format · R_score) against s.
 *   4. training: logp_old = lm_train_logprobs of the sampling weights (the
 *      first iteration's ratio is exactly 1), logp_ref of the stage's input
 *      model (frozen), then num_iterations lm_rl_step calls on the batch.
 * With "meta", prompt j is a meta-verification prompt when a draw on its
 * own stream falls below p_meta_prompts (vrl_meta.h: a checker-made
 * verification to rate, rewarded by lm_meta_reward_of); with "meta_reward",
 * between 2 and 3 the sampling weights meta-verify every sampled
 * verification K times and its reward is multiplied by the mean rating,
 * R_meta (meta_scores; DeepSeekMath-V2 eq. 3).
 * So everything a step does is a function of (weights, optimiser state, S,
 * t): a resumed stage redoes exactly the steps an uninterrupted one does.
 *
 * Folder: ckpt-N/ (config.json, model.safetensors, optim_m.safetensors,
 * optim_v.safetensors, trainer_state.json, tokenizer files), latest -> the
 * newest, and at the end the final weights exported beside them (config.json,
 * model.safetensors, tokenizer files: the folder is a model directory);
 * metrics.jsonl and the SVG plots are volatile (not hashed). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/stop.h"
#include "core/threadpool.h"
#include "formats/json.h"
#include "infer/engine.h"
#include "model/model.h"
#include "prove/answer.h"
#include "prove/reward.h"
#include "prove/template.h"
#include "prove/templates.h"
#include "recipe/rl_common.h"
#include "recipe/stage_common.h"
#include "recipe/stages.h"
#include "recipe/vrl_meta.h"
#include "tasks/tasks.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/params.h"
#include "train/plot.h"
#include "train/rl.h"
#include "train/step.h"

/* The keys of a verifier_rl stage besides the shared RL ones (lm_rls_read_opts). */
static const char *const own_keys[] = {
    "p_flawed", "meta", "p_meta_prompts", "meta_reward", "meta_samples", "meta_max_tokens", "working", NULL};

typedef struct vrl_opts {
    lm_rls_opts base;
    double p_flawed;
    /* meta-verification (vrl_meta.h): a share of the prompts, and R_meta */
    int meta, meta_reward;
    int working; /* the checker's ratings carry its working (tasks.h lm_task_worked_verification) */
    double p_meta_prompts;
    int64_t meta_samples, meta_max_tokens;
} vrl_opts;

/* ---- parameters ---------------------------------------------------------------- */

static int read_meta_opts(const lm_stage *st, vrl_opts *o, lm_error *err) {
    if (lm_stage_bool(st, "meta", 0, &o->meta, err) ||
        lm_stage_double(st, "p_meta_prompts", o->meta ? 0.25 : 0, 0, 1, &o->p_meta_prompts, err) ||
        lm_stage_bool(st, "meta_reward", 0, &o->meta_reward, err) ||
        lm_stage_int(st, "meta_samples", 1, 1, 64, &o->meta_samples, err) ||
        lm_stage_int(st, "meta_max_tokens", 128, 1, 1 << 20, &o->meta_max_tokens, err) ||
        lm_stage_bool(st, "working", 0, &o->working, err))
        return -1;
    if (!o->meta && json_get(st->def, "p_meta_prompts"))
        return lm_fail(err, "%s: stage %s: \"p_meta_prompts\" needs \"meta\": true", st->recipe_path, st->name);
    if (!o->meta_reward && (json_get(st->def, "meta_samples") || json_get(st->def, "meta_max_tokens")))
        return lm_fail(err, "%s: stage %s: \"meta_samples\" and \"meta_max_tokens\" need \"meta_reward\": true",
                       st->recipe_path, st->name);
    if (o->meta && o->p_meta_prompts >= 1 && o->meta_reward)
        return lm_fail(err, "%s: stage %s: \"p_meta_prompts\" 1 leaves no verification prompt for \"meta_reward\"",
                       st->recipe_path, st->name);
    return 0;
}

static int read_opts(const lm_stage *st, vrl_opts *o, lm_error *err) {
    memset(o, 0, sizeof *o);
    if (lm_rls_read_opts(st, "verifier_rl", own_keys, &o->base, err) ||
        lm_stage_double(st, "p_flawed", 0.5, 0, 1, &o->p_flawed, err))
        return -1;
    return read_meta_opts(st, o, err);
}

/* ---- problems ------------------------------------------------------------------- */

/* Streams under LM_RNG_RL keyed by the step: what each draw of a step is for. */
enum { KEY_PROBLEM = LM_RLS_KEY_PROBLEM, KEY_SAMPLE = LM_RLS_KEY_SAMPLE, KEY_META_PICK = 3, KEY_META_PROBLEM = 4, KEY_META_SAMPLE = 5 };

typedef struct vproblem {
    lm_text prompt;              /* the rendered chat prompt */
    double label;                /* the checker's score of the proof shown; of a meta prompt, the rating's
                                    faithfulness label (lm_meta_label_of) */
    int flawed;
    int meta;                    /* a meta-verification prompt */
    char *question, *solution;   /* what is verified (for R_meta's prompts) */
    lm_meta_truth truth;         /* what the checker establishes about the solution */
} vproblem;

static void vproblem_free(vproblem *vp) {
    lm_text_free(&vp->prompt);
    free(vp->question);
    free(vp->solution);
}

/* Problem j of step t (see the top of the file). */
static int make_problem(const vrl_opts *o, const lm_task_domain *const *ds, int nd, const lm_qset *ex,
                        const lm_prompt_templates *tp, int64_t step, int64_t j, int meta, vproblem *vp,
                        lm_error *err) {
    const lm_task_domain *d = ds[(uint64_t)(step * o->base.prompts + j) % (uint64_t)nd];
    lm_text q = {0}, answer = {0}, bad = {0}, user = {0};
    char *sol = NULL;
    int rc = -1;
    uint64_t pseed = 0;
    for (uint64_t attempt = 0;; attempt++) {
        if (attempt > 1000) {
            lm_fail(err, "step %lld, prompt %lld: 1000 draws of domain %s were all in the excluded set",
                    (long long)step, (long long)j, d->name);
            goto done;
        }
        pseed = lm_rls_step_key(o->base.seed, step, meta ? KEY_META_PROBLEM : KEY_PROBLEM, (uint64_t)j << 16 | attempt);
        int diff =
            o->base.dmin + (int)(lm_rng_u64(pseed, LM_RNG_TASKS, 0) % (uint64_t)(o->base.dmax - o->base.dmin + 1));
        q.len = answer.len = 0;
        if (d->generate(pseed, diff, &q, &answer, err)) {
            lm_fail_prefix(err, "%s seed %llu", d->name, (unsigned long long)pseed);
            goto done;
        }
        if (!lm_qset_has(ex, q.data)) break;
    }
    vp->flawed = lm_rng_uniform(pseed, LM_RNG_RL, 1) < o->p_flawed;
    const char *shown = answer.data;
    if (vp->flawed) {
        lm_corruption c;
        if (d->corrupt(q.data, answer.data, lm_rng_u64(pseed, LM_RNG_TASKS, 1000), &bad, &c, err)) goto done;
        shown = bad.data;
    }
    lm_check_result r;
    if (lm_task_check(q.data, shown, &r, err)) goto done;
    vp->label = r.score;
    if (!(sol = lm_task_solution_copy(shown))) {
        lm_fail(err, "out of memory");
        goto done;
    }
    vp->meta = meta;
    vp->truth = lm_meta_truth_of(sol, r.score, r.step);
    if (!(vp->question = strdup(q.data)) || !(vp->solution = strdup(sol))) {
        lm_fail(err, "out of memory");
        goto done;
    }
    vp->prompt.len = 0;
    if (meta) {
        /* the checker writes the verification to be judged */
        lm_text rating = {0};
        lm_meta_label ml;
        int failed = lm_vrl_meta_rating(o->working ? q.data : NULL, sol, &r, lm_rng_u64(pseed, LM_RNG_RL, 2), &rating,
                                        err) ||
                     lm_vrl_meta_prompt(tp, q.data, sol, rating.data, rating.len, &vp->prompt, err);
        if (!failed) vp->label = lm_meta_label_of(rating.data, rating.len, &vp->truth, &ml);
        lm_text_free(&rating);
        if (failed) goto done;
        rc = 0;
        goto done;
    }
    const char *keys2[] = {"statement", "proof"}, *vals[] = {q.data, sol};
    if (lm_template_fill(tp->text[LM_TPL_VERIFY], keys2, vals, 2, &user, err)) goto done;
    lm_chat_msg m = {.role = "user", .content = user.data};
    lm_chat_opts co = {.add_generation_prompt = 1};
    if (lm_chat_render(&m, 1, &co, &vp->prompt, err)) goto done;
    rc = 0;
done:
    free(sol);
    lm_text_free(&q);
    lm_text_free(&answer);
    lm_text_free(&bad);
    lm_text_free(&user);
    return rc;
}

/* ---- sampling --------------------------------------------------------------------- */

typedef struct vsample {
    lm_ids completion;           /* sampled ids (an ending EOS included) */
    lm_text text;
    lm_finish finish;
    const char *error;
    int done;
} vsample;

typedef struct vreq {
    vsample *s;                  /* [group] */
    int oom;
} vreq;

static void on_event(void *user, const lm_engine_event *ev) {
    vreq *r = user;
    vsample *s = &r->s[ev->choice];
    if (ev->kind == LM_EV_TOKEN && lm_ids_push(&s->completion, ev->token)) r->oom = 1;
    if (ev->text_len && lm_text_append(&s->text, ev->text, ev->text_len)) r->oom = 1;
    if (ev->kind == LM_EV_DONE) {
        s->done = 1;
        s->finish = ev->finish;
        if (ev->error && !s->error) s->error = "failed";
    }
}

/* ---- the stage ---------------------------------------------------------------------- */

typedef struct vrl {
    const lm_stage *st;
    vrl_opts o;
    char model_dir[PATH_MAX];
    lm_params *p, *ref;
    lm_trainer *tr, *ref_tr;
    lm_pool *pool;
    lm_tokenizer *tok;
    lm_prompt_templates tp;
    int tp_loaded;
    const lm_task_domain *ds[64];
    int nd;
    lm_qset ex;
    lm_stage_ckpt ck;
} vrl;

/* Reward, agreement and the rest of one step, for the log. */
typedef struct step_stats {
    double reward_mean, agreement, format, label_mean, predicted_mean;
    int64_t completion_tokens, truncated;
    double sample_s, train_s, engine_s;
    lm_rl_stats rl, rl_last;     /* the first (on-policy) and the last iteration's */
    int64_t trained;             /* samples trained (all, or those of mixed groups with drop_uniform_groups) */
    /* meta-verification: over the meta prompts' samples, and (meta_reward)
     * R_meta over the verification samples; faithful is the mean label
     * (lm_meta_label_of) of the sampled verifications */
    int64_t n_verify, n_meta;
    double verify_reward, meta_format, meta_agreement, faithful, r_meta, r_meta_agreement, meta_s;
} step_stats;

/* R_meta of every verification sample (eq. 3): the step's sampling weights
 * (the current ones, before this step's update) meta-verify each sampled
 * verification meta_samples = K times (choice k of sample i seeded by
 * (S, t, i·K + k)); R_meta is the mean of the K boxed ratings, an
 * unreadable rating counting 0. A verification whose own format fails is
 * not meta-verified: its reward is 0 whatever R_meta is. */
static int meta_scores(vrl *c, int64_t step, const vproblem *pr, const vsample *sm, double *rmeta, step_stats *ss,
                       lm_error *err) {
    const vrl_opts *o = &c->o;
    int64_t G = o->base.group, n = o->base.prompts * G, K = o->meta_samples, m = 0, longest = 0;
    int64_t *which = calloc((size_t)n, sizeof *which);
    lm_ids *pids = calloc((size_t)n, sizeof *pids);
    vsample *ms = calloc((size_t)(n * K), sizeof *ms);
    vreq *rq = calloc((size_t)n, sizeof *rq);
    uint64_t *seeds = malloc((size_t)(n * K) * sizeof *seeds);
    lm_text prompt = {0};
    lm_engine *e = NULL;
    int rc = -1;
    double t0 = lm_stage_now_s();
    if (!which || !pids || !ms || !rq || !seeds) {
        lm_fail(err, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        rmeta[i] = 0;
        const vproblem *p = &pr[i / G];
        lm_verify_reward vr;
        if (p->meta) continue;
        lm_verify_reward_of(sm[i].text.data ? sm[i].text.data : "", sm[i].text.len, 0, &vr);
        if (!vr.format) continue;
        /* the rating as the pipeline passes it: the answer after its thinking,
         * stripped, and ending with its score's box (what the sampler wrote
         * after it is the end-of-sentence token's text) */
        const char *b;
        size_t bl;
        lm_vrl_meta_rating_of(sm[i].text.data, &b, &bl);
        prompt.len = 0;
        if (lm_vrl_meta_prompt(&c->tp, p->question, p->solution, b, bl, &prompt, err) ||
            lm_tokenizer_encode(c->tok, prompt.data, prompt.len, LM_TOK_SPECIAL, &pids[m], err))
            goto done;
        if ((int64_t)pids[m].n > longest) longest = (int64_t)pids[m].n;
        which[m++] = i;
    }
    if (!m) {
        rc = 0;
        goto done;
    }
    if (longest + o->meta_max_tokens > c->p->cfg.max_position_embeddings) {
        lm_fail(err, "step %lld: a meta-verification prompt of %lld tokens and \"meta_max_tokens\" %lld exceed the "
                     "model's max_position_embeddings %lld", (long long)step + 1, (long long)longest,
                (long long)o->meta_max_tokens, (long long)c->p->cfg.max_position_embeddings);
        goto done;
    }
    lm_model view;
    memset(&view, 0, sizeof view);
    view.cfg = c->p->cfg;
    view.dims = c->p->dims;
    view.w = c->p->W;
    snprintf(view.dir, sizeof view.dir, "%s (training)", c->st->name);
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = longest + o->meta_max_tokens;
    eo.max_seqs = (int)(m * K < 65536 ? m * K : 65536);
    eo.max_queue = (int)(m < 65536 ? m : 65536);
    eo.max_batch_tokens = eo.max_seqs > 512 ? eo.max_seqs : 512;
    if (!(e = lm_engine_create(&view, c->tok, c->pool, &eo, err))) goto done;
    for (int64_t r = 0; r < m; r++) {
        rq[r].s = ms + r * K;
        for (int64_t k = 0; k < K; k++)
            seeds[r * K + k] = lm_rls_step_key(o->base.seed, step, KEY_META_SAMPLE, (uint64_t)(which[r] * K + k));
        lm_engine_request req = {.prompt = pids[r].ids, .prompt_len = (int64_t)pids[r].n, .n = (int)K,
                                 .params = lm_gen_params_default(), .seeds = seeds + r * K, .on_event = on_event,
                                 .user = &rq[r]};
        req.params.max_tokens = o->meta_max_tokens;
        req.params.sampling.temperature = (float)o->base.temperature;
        req.params.sampling.top_p = (float)o->base.top_p;
        req.params.stop_at_eos = 1;
        req.params.skip_special = 0;
        uint64_t id;
        if (lm_engine_submit(e, &req, &id, err)) goto done;
    }
    if (lm_engine_run(e, err)) goto done;
    for (int64_t r = 0; r < m; r++) {
        int64_t i = which[r];
        if (rq[r].oom) {
            lm_fail(err, "out of memory while meta-verifying");
            goto done;
        }
        const vproblem *p = &pr[i / G];
        lm_meta_label ml;
        lm_meta_label_of(sm[i].text.data, sm[i].text.len, &p->truth, &ml);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            const vsample *s = &ms[r * K + k];
            if (!s->done || s->error) {
                lm_fail(err, "step %lld: meta-verification %lld of sample %lld did not finish", (long long)step + 1,
                        (long long)k, (long long)i);
                goto done;
            }
            lm_verify_reward mr;
            lm_meta_reward_of(s->text.data ? s->text.data : "", s->text.len, ml.label, &mr);
            sum += mr.format ? mr.predicted : 0;
            ss->r_meta_agreement += mr.format && mr.predicted == ml.label;
        }
        rmeta[i] = sum / (double)K;
    }
    ss->r_meta_agreement /= (double)(m * K);
    rc = 0;
done:
    ss->meta_s = lm_stage_now_s() - t0;
    lm_engine_free(e);
    for (int64_t r = 0; pids && r < n; r++) lm_ids_free(&pids[r]);
    for (int64_t r = 0; ms && r < n * K; r++) {
        lm_ids_free(&ms[r].completion);
        lm_text_free(&ms[r].text);
    }
    lm_text_free(&prompt);
    free(which);
    free(pids);
    free(ms);
    free(rq);
    free(seeds);
    return rc;
}

/* The reward of one sample: R_format · R_score of its verification against
 * the checker's label (times R_meta with meta_reward), or of its
 * meta-verification against the rating's faithfulness label. */
static double sample_reward(const vrl_opts *o, const vproblem *p, const vsample *s, double rmeta, step_stats *ss,
                            lm_verify_reward *vr) {
    const char *text = s->text.data ? s->text.data : "";
    if (p->meta) {
        lm_meta_reward_of(text, s->text.len, p->label, vr);
        ss->n_meta++;
        ss->meta_format += vr->format;
        ss->meta_agreement += vr->format && vr->predicted == p->label;
        return vr->reward;
    }
    lm_verify_reward_of(text, s->text.len, p->label, vr);
    lm_meta_label ml;
    ss->n_verify++;
    ss->format += vr->format;
    ss->agreement += vr->format && vr->predicted == p->label;
    ss->predicted_mean += vr->format ? vr->predicted : 0;
    ss->label_mean += p->label;
    ss->faithful += lm_meta_label_of(text, s->text.len, &p->truth, &ml);
    ss->r_meta += rmeta;
    double reward = o->meta_reward ? vr->reward * rmeta : vr->reward;
    ss->verify_reward += reward;
    return reward;
}

/* Means over the samples each statistic counts. */
static void finish_stats(const vrl_opts *o, step_stats *ss) {
    double nv = ss->n_verify ? (double)ss->n_verify : 1, nm = ss->n_meta ? (double)ss->n_meta : 1;
    ss->format /= nv;
    ss->agreement /= nv;
    ss->predicted_mean /= nv;
    ss->label_mean /= nv;
    ss->faithful /= nv;
    ss->verify_reward /= nv;
    ss->r_meta = o->meta_reward ? ss->r_meta / nv : NAN;
    if (!o->meta_reward) ss->r_meta_agreement = NAN;
    ss->meta_format = ss->n_meta ? ss->meta_format / nm : NAN;
    ss->meta_agreement = ss->n_meta ? ss->meta_agreement / nm : NAN;
}

static int run_step(vrl *c, int64_t step, step_stats *ss, lm_error *err) {
    const vrl_opts *o = &c->o;
    int64_t P = o->base.prompts, G = o->base.group, n = P * G, T = o->base.seq;
    vproblem *pr = calloc((size_t)P, sizeof *pr);
    vsample *sm = calloc((size_t)n, sizeof *sm);
    vreq *rq = calloc((size_t)P, sizeof *rq);
    lm_ids *pids = calloc((size_t)P, sizeof *pids);
    uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
    lm_rl_sample *rs = calloc((size_t)(2 * n), sizeof *rs); /* the batch, then the trained samples */
    float **lold = calloc((size_t)(2 * n), sizeof *lold), **lref = calloc((size_t)(2 * n), sizeof *lref);
    int64_t *kept_index = malloc((size_t)n * sizeof *kept_index);
    int32_t *buf_ids = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_ids);
    int32_t *buf_tgt = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_tgt);
    float *buf_lp = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_lp);
    double *rmeta = calloc((size_t)n, sizeof *rmeta);
    lm_engine *e = NULL;
    int rc = -1;
    memset(ss, 0, sizeof *ss);
    if (!pr || !sm || !rq || !pids || !seeds || !rs || !lold || !lref || !kept_index || !buf_ids || !buf_tgt ||
        !buf_lp || !rmeta) {
        lm_fail(err, "out of memory");
        goto done;
    }
    /* 1. prompts */
    for (int64_t j = 0; j < P; j++) {
        int meta = o->meta &&
                   lm_rng_uniform(lm_rls_step_key(o->base.seed, step, KEY_META_PICK, (uint64_t)j), LM_RNG_RL, 0) <
                       o->p_meta_prompts;
        if (make_problem(o, c->ds, c->nd, &c->ex, &c->tp, step, j, meta, &pr[j], err)) goto done;
        if (lm_tokenizer_encode(c->tok, pr[j].prompt.data, pr[j].prompt.len, LM_TOK_SPECIAL, &pids[j], err))
            goto done;
        if ((int64_t)pids[j].n + 1 >= T) {
            lm_fail(err, "step %lld, prompt %lld is %zu tokens: it does not fit \"seq\" %lld with room to answer",
                    (long long)step, (long long)j, pids[j].n, (long long)T);
            goto done;
        }
    }
    /* 2. sampling on the trainer's weights, viewed as an inference model (the
     * engine is made anew each step: its forward keeps products of the
     * weights, the absorbed attention matrices) */
    double t0 = lm_stage_now_s();
    lm_model view;
    memset(&view, 0, sizeof view);
    view.cfg = c->p->cfg;
    view.dims = c->p->dims;
    view.w = c->p->W;
    snprintf(view.dir, sizeof view.dir, "%s (training)", c->st->name);
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = T;
    eo.max_seqs = (int)(n < 65536 ? n : 65536);
    eo.max_queue = (int)(P < 65536 ? P : 65536);
    eo.max_batch_tokens = eo.max_seqs > 512 ? eo.max_seqs : 512;
    if (!(e = lm_engine_create(&view, c->tok, c->pool, &eo, err))) goto done;
    ss->engine_s = lm_stage_now_s() - t0;
    for (int64_t j = 0; j < P; j++) {
        rq[j].s = sm + j * G;
        for (int64_t k = 0; k < G; k++)
            seeds[j * G + k] = lm_rls_step_key(o->base.seed, step, KEY_SAMPLE, (uint64_t)(j * G + k));
        lm_engine_request r = {.prompt = pids[j].ids, .prompt_len = (int64_t)pids[j].n, .n = (int)G,
                               .params = lm_gen_params_default(), .seeds = seeds + j * G, .on_event = on_event,
                               .user = &rq[j]};
        r.params.max_tokens = o->base.max_tokens;
        r.params.sampling.temperature = (float)o->base.temperature;
        r.params.sampling.top_p = (float)o->base.top_p;
        r.params.stop_at_eos = 1;
        r.params.skip_special = 0;
        uint64_t id;
        if (lm_engine_submit(e, &r, &id, err)) goto done;
    }
    if (lm_engine_run(e, err)) goto done;
    ss->sample_s = lm_stage_now_s() - t0;
    if (o->meta_reward && meta_scores(c, step, pr, sm, rmeta, ss, err)) goto done;
    /* 3. rewards */
    for (int64_t i = 0; i < n; i++) {
        vsample *s = &sm[i];
        if (rq[i / G].oom) {
            lm_fail(err, "out of memory while sampling");
            goto done;
        }
        if (!s->done || s->error || !s->completion.n) {
            lm_fail(err, "step %lld: sample %lld of prompt %lld did not finish (%s)", (long long)step,
                    (long long)(i % G), (long long)(i / G), s->error ? s->error : "no tokens");
            goto done;
        }
        const vproblem *p = &pr[i / G];
        lm_verify_reward vr;
        double reward = sample_reward(o, p, s, rmeta[i], ss, &vr);
        ss->reward_mean += reward;
        ss->completion_tokens += (int64_t)s->completion.n;
        ss->truncated += s->finish != LM_FINISH_EOS;
        /* the sample: prompt + completion, the completion trained */
        int64_t pl = (int64_t)pids[i / G].n, len = pl + (int64_t)s->completion.n;
        int32_t *ids = malloc((size_t)len * sizeof *ids);
        uint8_t *train = calloc((size_t)len, 1);
        lold[i] = calloc((size_t)len, sizeof(float));
        if (o->base.rl.beta_kl > 0) lref[i] = calloc((size_t)len, sizeof(float));
        if (!ids || !train || !lold[i] || (o->base.rl.beta_kl > 0 && !lref[i])) {
            free(ids);
            free(train);
            lm_fail(err, "out of memory");
            goto done;
        }
        memcpy(ids, pids[i / G].ids, (size_t)pl * sizeof *ids);
        memcpy(ids + pl, s->completion.ids, s->completion.n * sizeof *ids);
        memset(train + pl, 1, s->completion.n);
        rs[i] = (lm_rl_sample){.ids = ids, .len = len, .train = train, .logp_old = lold[i], .logp_ref = lref[i],
                               .reward = reward, .group = i / G};
    }
    ss->reward_mean /= (double)n;
    finish_stats(o, ss);
    /* 4. training: logp_old from the sampling weights, logp_ref from the
     * frozen input model, then num_iterations steps on the batch */
    t0 = lm_stage_now_s();
    lm_rls_trained trained;
    if (lm_rls_train(c->tr, c->ref_tr, c->pool, &o->base, step, rs, lold, lref, kept_index, n, P, buf_ids, buf_tgt,
                     buf_lp, &trained, err))
        goto done;
    ss->rl = trained.first;
    ss->rl_last = trained.last;
    ss->trained = trained.samples;
    ss->train_s = lm_stage_now_s() - t0;
    rc = 0;
done:
    lm_engine_free(e);
    if (pr)
        for (int64_t j = 0; j < P; j++) vproblem_free(&pr[j]);
    if (sm)
        for (int64_t i = 0; i < n; i++) {
            lm_ids_free(&sm[i].completion);
            lm_text_free(&sm[i].text);
        }
    if (pids)
        for (int64_t j = 0; j < P; j++) lm_ids_free(&pids[j]);
    if (rs)
        for (int64_t i = 0; i < n; i++) {
            free((void *)rs[i].ids);
            free((void *)rs[i].train);
        }
    if (lold)
        for (int64_t i = 0; i < n; i++) free(lold[i]);
    if (lref)
        for (int64_t i = 0; i < n; i++) free(lref[i]);
    free(pr);
    free(sm);
    free(rq);
    free(pids);
    free(seeds);
    free(rs);
    free(lold);
    free(lref);
    free(buf_ids);
    free(buf_tgt);
    free(buf_lp);
    free(rmeta);
    free(kept_index);
    return rc;
}


static int loop(vrl *c, int64_t start, lm_error *err) {
    const vrl_opts *o = &c->o;
    const lm_stage *st = c->st;
    char mpath[PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", st->out_dir);
    if (lm_stage_truncate_metrics(mpath, start, err)) return -1;
    FILE *metrics = fopen(mpath, "a");
    if (!metrics) return lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
    double t_start = lm_stage_now_s();
    int rc = -1;
    lm_text line = {0};
    for (int64_t step = start; step < o->base.steps; step++) {
        double t0 = lm_stage_now_s();
        step_stats ss;
        if (run_step(c, step, &ss, err)) goto done;
        int64_t done_steps = step + 1;
        int last = done_steps == o->base.steps;
        double dt = lm_stage_now_s() - t0, tok_s = (double)ss.completion_tokens / (ss.sample_s > 0 ? ss.sample_s : 1e-9);
        if (done_steps % o->base.log_every == 0 || last || done_steps == 1) {
            line.len = 0;
            char head[64];
            snprintf(head, sizeof head, "{\"step\": %lld", (long long)done_steps);
            lm_text_append(&line, head, strlen(head));
            lm_stage_put_num(&line, "loss", ss.rl.loss);
            lm_stage_put_num(&line, "lr", lm_rls_lr(&o->base, step));
            lm_stage_put_num(&line, "grad_norm", ss.rl.train.grad_norm);
            lm_stage_put_num(&line, "tokens_per_s", tok_s);
            lm_stage_put_num(&line, "reward_mean", ss.reward_mean);
            lm_stage_put_num(&line, "reward_std", ss.rl.reward_std);
            lm_stage_put_num(&line, "agreement", ss.agreement);
            lm_stage_put_num(&line, "format", ss.format);
            lm_stage_put_num(&line, "label_mean", ss.label_mean);
            lm_stage_put_num(&line, "kl", ss.rl.kl);
            lm_stage_put_num(&line, "clip_frac", ss.rl.clip_frac);
            lm_stage_put_num(&line, "ratio_mean", ss.rl.ratio_mean);
            lm_rls_put_learning(&line, &o->base, &ss.rl, &ss.rl_last, ss.trained);
            lm_stage_put_num(&line, "completion_tokens", (double)ss.completion_tokens);
            lm_stage_put_num(&line, "truncated", (double)ss.truncated);
            lm_stage_put_num(&line, "sample_s", ss.sample_s);
            lm_stage_put_num(&line, "train_s", ss.train_s);
            lm_stage_put_num(&line, "engine_s", ss.engine_s);
            lm_stage_put_num(&line, "faithful", ss.faithful);
            if (o->meta) {
                lm_stage_put_num(&line, "meta_samples", (double)ss.n_meta);
                lm_stage_put_num(&line, "verify_reward", ss.verify_reward);
                lm_stage_put_num(&line, "meta_format", ss.meta_format);
                lm_stage_put_num(&line, "meta_agreement", ss.meta_agreement);
            }
            if (o->meta_reward) {
                lm_stage_put_num(&line, "r_meta", ss.r_meta);
                lm_stage_put_num(&line, "r_meta_agreement", ss.r_meta_agreement);
                lm_stage_put_num(&line, "meta_s", ss.meta_s);
            }
            if (lm_text_append(&line, "}\n", 2)) {
                lm_fail(err, "out of memory");
                goto done;
            }
            if (fwrite(line.data, 1, line.len, metrics) != line.len || fflush(metrics)) {
                lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
                goto done;
            }
        }
        double rate = (double)(done_steps - start) / (lm_stage_now_s() - t_start);
        char eta[32], msg[320];
        lm_stage_fmt_eta((double)(o->base.steps - done_steps) / rate, eta, sizeof eta);
        snprintf(msg, sizeof msg,
                 "step %lld/%lld  reward %.3f  agreement %.3f  format %.2f  kl %.2e  %.0f tok/s  sample %.1fs "
                 "train %.1fs  ETA %s",
                 (long long)done_steps, (long long)o->base.steps, ss.reward_mean, ss.agreement, ss.format, ss.rl.kl,
                 tok_s, ss.sample_s, ss.train_s, eta);
        (void)dt;
        if (lm_stage_step_end(&c->ck, done_steps, o->base.save_every, msg, err)) goto done;
    }
    rc = 0;
done:
    lm_text_free(&line);
    fclose(metrics);
    static const char *const names[] = {"reward_mean", "agreement", "format"};
    static const char *const labels[] = {"reward mean", "agreement with the checker", "format ok"};
    lm_stage_write_step_plots(st, mpath, "verifier RL", "reward.svg", names, labels, 3);
    return rc;
}


int lm_stage_verifier_rl(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    vrl c;
    memset(&c, 0, sizeof c);
    c.st = st;
    int rc = -1;
    lm_model *m = NULL;
    if (read_opts(st, &c.o, err)) return -1;
    const vrl_opts *o = &c.o;
    const lm_stage_input *model = NULL;
    for (int i = 0; i < st->n_inputs && !model; i++)
        if (lm_stage_is_model_kind(st->inputs[i].kind, 0)) model = &st->inputs[i];
    if (!model)
        return lm_fail(err, "%s: stage %s: needs a model to train (a pretrain, sft or verifier_rl stage) among its "
                            "inputs", st->recipe_path, st->name);
    snprintf(c.model_dir, sizeof c.model_dir, "%s/latest", model->path);
    if (lm_rls_pick_domains(o->base.domains, c.ds, &c.nd, st, err)) return -1;
    if (lm_rls_templates(st, o->base.templates, &c.tp, err)) return -1;
    c.tp_loaded = 1;
    if (lm_rls_heldout(st, &c.ex, err)) goto done;
    /* the policy and the frozen reference start as the input model */
    if (lm_model_load_flags(c.model_dir, LM_LOAD_ROWS, &m, err)) goto done;
    if (lm_params_create(&m->cfg, &c.p, err) || lm_params_load_model(c.p, m, err)) goto done;
    if (o->base.rl.beta_kl > 0) {
        if (lm_params_create(&m->cfg, &c.ref, err)) goto done;
        memcpy(c.ref->w, c.p->w, (size_t)c.p->n_floats * sizeof(float));
    }
    lm_model_free(m);
    m = NULL;
    if (!(c.tok = lm_tokenizer_load(c.model_dir, err))) {
        lm_fail_prefix(err, "%s: stage %s: the input model has no usable tokenizer", st->recipe_path, st->name);
        goto done;
    }
    lm_train_opts to = lm_rls_train_opts(&o->base);
    if (!(c.pool = lm_pool_create_err(st->threads, err))) goto done;
    if (!(c.tr = lm_trainer_create(c.p, &to, st->threads, err))) goto done;
    if (c.ref) {
        lm_train_opts ro = to;
        ro.batch = ro.micro_batch = o->base.micro_batch;
        if (!(c.ref_tr = lm_trainer_create(c.ref, &ro, st->threads, err))) goto done;
    }
    c.ck = (lm_stage_ckpt){.st = st, .model_dir = c.model_dir, .sampling = LM_RLS_SAMPLING_NOTE, .p = c.p,
                           .tr = c.tr, .planned_steps = o->base.steps, .seed = o->base.seed, .last = -1};
    int64_t start;
    if (lm_stage_resume(&c.ck, &start, err)) goto done;
    if (loop(&c, start, err) || lm_stage_export_final(st, err)) goto done;
    rc = 0;
done:
    lm_model_free(m);
    lm_trainer_free(c.tr);
    lm_trainer_free(c.ref_tr);
    lm_params_free(c.p);
    lm_params_free(c.ref);
    lm_pool_free(c.pool);
    lm_tokenizer_free(c.tok);
    if (c.tp_loaded) lm_templates_free(&c.tp);
    lm_qset_free(&c.ex);
    return rc;
}
