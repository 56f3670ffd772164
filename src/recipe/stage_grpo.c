/* stage_grpo.c — the "grpo" stage kind of `lemma build`: GRPO for the proof
 * generator with the learned verifier as its reward model and the
 * self-evaluation reward (DeepSeekMath-V2 §2.2, eq. 5–6), starting from the
 * model of an earlier pretrain, sft, verifier_rl or grpo stage.
 *
 * Step t (0-based) of a stage with seed S:
 *   1. prompts: P problems, problem j drawn from domain (t·P + j) mod D with
 *      a seed that is a function of (S, t, j) (a draw whose question is in an
 *      excluded set, the stage's text inputs, is redrawn); the prompt is the
 *      proof_generation template with the question, as a one-turn chat —
 *      exactly what the pipeline's generate phase sends.
 *   2. sampling: the engine on the current weights (the trainer's F32
 *      weights viewed as an lm_model), G proofs per problem, proof k seeded
 *      by a function of (S, t, j, k).
 *   3. verification (reward "verifier"): every proof in the answer format
 *      (prove/gen_reward.h) is verified K times through the engine with the
 *      proof_verification template, on the FROZEN input model (the verifier
 *      the stage was given; see docs/post-training.md for why not the
 *      current weights); verification k of proof i seeded by (S, t, i, k).
 *      R_Y = s = the mean score of the verifications whose format reads
 *      (prove/reward.h), 0 when none does. Reward "checker": R_Y = s = the
 *      exact checker's score of the proof (the ablation).
 *   4. rewards: R = R_format · (α·R_Y + β·R_Z), R_Z = (1 − |s′ − s|)·R_meta,
 *      R_meta = 1, or with meta_reward the frozen input model's ratings of
 *      the proof's verifications (meta_scores; seeds from (S, t, index)).
 *   5. training: logp_old = lm_train_logprobs of the sampling weights,
 *      logp_ref of the frozen input model, then num_iterations lm_rl_step
 *      calls on the batch.
 * So everything a step does is a function of (weights, optimiser state, S,
 * t): a resumed stage redoes exactly the steps an uninterrupted one does.
 *
 * Folder: as the verifier_rl stage's (ckpt-N/, latest, the final model
 * exported beside them, volatile metrics.jsonl and SVG plots). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/stop.h"
#include "formats/json.h"
#include "model/model.h"
#include "prove/answer.h"
#include "prove/gen_reward.h"
#include "prove/reward.h"
#include "prove/template.h"
#include "prove/templates.h"
#include "recipe/rl_common.h"
#include "recipe/stage_common.h"
#include "recipe/stages.h"
#include "recipe/vrl_meta.h"
#include "tasks/tasks.h"
#include "train/plot.h"

/* The keys of a grpo stage besides the shared RL ones (lm_rls_read_opts). */
static const char *const own_keys[] = {
    "reward", "verifications", "verify_max_tokens", "verify_seq", "verify_temperature", "alpha", "beta",
    "meta_reward", "meta_samples", "meta_max_tokens", NULL};

typedef struct grpo_opts {
    lm_rls_opts base;
    int64_t verifications, verify_max_tokens, verify_seq, meta_samples, meta_max_tokens;
    double verify_temperature, alpha, beta;
    int reward_checker, meta_reward;
} grpo_opts;

static int read_opts(const lm_stage *st, grpo_opts *o, lm_error *err) {
    memset(o, 0, sizeof *o);
    if (lm_rls_read_opts(st, "grpo", own_keys, &o->base, err)) return -1;
    const char *reward = "verifier";
    if (lm_stage_string(st, "reward", reward, &reward, err) ||
        lm_stage_int(st, "verifications", 4, 1, 64, &o->verifications, err) ||
        lm_stage_int(st, "verify_max_tokens", 256, 1, 1 << 20, &o->verify_max_tokens, err) ||
        lm_stage_int(st, "verify_seq", 1024, 8, 1 << 20, &o->verify_seq, err) ||
        lm_stage_double(st, "verify_temperature", 1.0, 0, 10, &o->verify_temperature, err) ||
        lm_stage_double(st, "alpha", LM_GEN_ALPHA, 0, 1, &o->alpha, err) ||
        lm_stage_double(st, "beta", LM_GEN_BETA, 0, 1, &o->beta, err) ||
        lm_stage_bool(st, "meta_reward", 0, &o->meta_reward, err) ||
        lm_stage_int(st, "meta_samples", 1, 1, 64, &o->meta_samples, err) ||
        lm_stage_int(st, "meta_max_tokens", 128, 1, 1 << 20, &o->meta_max_tokens, err))
        return -1;
    if (!o->meta_reward && (json_get(st->def, "meta_samples") || json_get(st->def, "meta_max_tokens")))
        return lm_fail(err, "%s: stage %s: \"meta_samples\" and \"meta_max_tokens\" need \"meta_reward\": true",
                       st->recipe_path, st->name);
    if (!strcmp(reward, "verifier")) o->reward_checker = 0;
    else if (!strcmp(reward, "checker")) o->reward_checker = 1;
    else
        return lm_fail(err, "%s: stage %s: \"reward\": expected \"verifier\" (the learned verifier, the input "
                            "model) or \"checker\" (the exact checker, the ablation)", st->recipe_path, st->name);
    if (o->reward_checker && o->meta_reward)
        return lm_fail(err, "%s: stage %s: \"meta_reward\" judges the learned verifier's verifications; with \"reward\": "
                            "\"checker\" there are none", st->recipe_path, st->name);
    if (o->alpha + o->beta <= 0)
        return lm_fail(err, "%s: stage %s: \"alpha\" + \"beta\" must be > 0 (every reward would be 0)",
                       st->recipe_path, st->name);
    if (o->verify_max_tokens >= o->verify_seq)
        return lm_fail(err, "%s: stage %s: \"verify_max_tokens\" %lld leaves no room for the proof in \"verify_seq\" %lld",
                       st->recipe_path, st->name, (long long)o->verify_max_tokens, (long long)o->verify_seq);
    return 0;
}

typedef struct grpo {
    const lm_stage *st;
    grpo_opts o;
    char model_dir[PATH_MAX];
    lm_params *p, *frozen;       /* the policy; the input model (verifier and KL reference) */
    lm_trainer *tr, *ref_tr;
    lm_pool *pool;
    lm_tokenizer *tok;
    lm_prompt_templates tp;
    int tp_loaded;
    const lm_task_domain *ds[64];
    int nd;
    lm_qset ex;
    lm_stage_ckpt ck;
} grpo;

typedef struct step_stats {
    double reward_mean, format, r_y, r_z, self_score, checker, pass, self_agree, verify_format, verifier_agree;
    double r_meta, r_meta_agreement;
    int64_t verified, completion_tokens, truncated, meta_judged;
    double sample_s, verify_s, meta_s, train_s;
    double engine_gap_max, engine_gap_mean; /* |engine logp - trainer logp| of the sampled tokens */
    int64_t trained;             /* samples trained (all, or those of mixed groups with drop_uniform_groups) */
    lm_rl_stats rl, rl_last;     /* the first (on-policy) and the last iteration's */
} step_stats;

/* The verification prompt of one proof: question and solution part. */
static int verify_prompt(const grpo *c, const char *question, const char *sol, size_t sol_len, lm_ids *ids,
                         lm_error *err) {
    char *proof = strndup(sol, sol_len);
    lm_text user = {0}, chat = {0};
    int rc = -1;
    const char *k[] = {"statement", "proof"}, *v[] = {question, proof};
    if (!proof) lm_fail(err, "out of memory");
    else if (!lm_template_fill(c->tp.text[LM_TPL_VERIFY], k, v, 2, &user, err) &&
             !lm_rls_chat_prompt(user.data, &chat, err) &&
             !lm_tokenizer_encode(c->tok, chat.data, chat.len, LM_TOK_SPECIAL, ids, err))
        rc = 0;
    free(proof);
    lm_text_free(&user);
    lm_text_free(&chat);
    return rc;
}

/* R_meta of every verified proof (meta_reward): each readable verification
 * of proof i is shown to the frozen input model with the meta_verification
 * template (as the pipeline's meta-verify phase shows it), meta_samples =
 * M times, rating m of verification v (its index i*K + k) seeded by (S, t,
 * v*M + m). A verification's R_meta is the mean of its M boxed ratings (an
 * unreadable one counts 0); the proof's is the mean over its readable
 * verifications, 0 when none reads. vs holds the verifications of the
 * proofs with gs[i] > 0, in order. The ratings are also compared with each
 * verification's faithfulness label (lm_meta_label_of: the checker knows
 * the first wrong step) for the log. */
static int meta_scores(grpo *c, int64_t step, const lm_text *qs, char *const *sols, const double *chk,
                       const int64_t *gs, const lm_rls_sample *vs, double *rmeta, step_stats *ss, lm_error *err) {
    const grpo_opts *o = &c->o;
    int64_t G = o->base.group, n = o->base.prompts * G, K = o->verifications, M = o->meta_samples, m = 0;
    int64_t max_ctx = c->frozen->cfg.max_position_embeddings;
    lm_ids *mids = calloc((size_t)(n * K), sizeof *mids);
    int64_t *proof_of = calloc((size_t)(n * K), sizeof *proof_of), *mg = calloc((size_t)(n * K), sizeof *mg);
    double *label = calloc((size_t)(n * K), sizeof *label), *rsum = calloc((size_t)n, sizeof *rsum);
    int64_t *rcnt = calloc((size_t)n, sizeof *rcnt);
    uint64_t *seeds = malloc((size_t)(n * K * M) * sizeof *seeds);
    lm_rls_sample *ms = calloc((size_t)(n * K * M), sizeof *ms);
    lm_text prompt = {0};
    int rc = -1;
    double t0 = lm_stage_now_s();
    if (!mids || !proof_of || !mg || !label || !rsum || !rcnt || !seeds || !ms) {
        lm_fail(err, "out of memory");
        goto done;
    }
    for (int64_t i = 0, off = 0; i < n; off += gs[i], i++) {
        lm_meta_truth truth = {0};
        if (gs[i]) {
            lm_check_result cr;
            if (lm_task_check(qs[i / G].data, sols[i], &cr, err)) goto done;
            truth = lm_meta_truth_of(sols[i], cr.score, cr.step);
        }
        for (int64_t k = 0; k < gs[i]; k++) {
            const lm_rls_sample *v = &vs[off + k];
            lm_verify_reward vr;
            lm_verify_reward_of(v->text.data, v->text.len, chk[i], &vr);
            if (!vr.format) continue;
            const char *b;
            size_t bl;
            lm_vrl_meta_rating_of(v->text.data, &b, &bl);
            prompt.len = 0;
            if (lm_vrl_meta_prompt(&c->tp, qs[i / G].data, sols[i], b, bl, &prompt, err) ||
                lm_tokenizer_encode(c->tok, prompt.data, prompt.len, LM_TOK_SPECIAL, &mids[m], err))
                goto done;
            if ((int64_t)mids[m].n + o->meta_max_tokens > max_ctx) {
                lm_fail(err, "step %lld: a meta-verification prompt of %zu tokens and \"meta_max_tokens\" %lld exceed "
                             "the model's max_position_embeddings %lld", (long long)step + 1, mids[m].n,
                        (long long)o->meta_max_tokens, (long long)max_ctx);
                goto done;
            }
            lm_meta_label ml;
            label[m] = lm_meta_label_of(v->text.data, v->text.len, &truth, &ml);
            proof_of[m] = i;
            mg[m] = M;
            for (int64_t r = 0; r < M; r++)
                seeds[m * M + r] = lm_rls_step_key(o->base.seed, step, LM_RLS_KEY_META, (uint64_t)((i * K + k) * M + r));
            m++;
        }
    }
    lm_rls_gen mgen = {.max_tokens = o->meta_max_tokens, .max_ctx = max_ctx, .temperature = o->verify_temperature,
                       .top_p = o->base.top_p};
    if (m && lm_rls_sample_groups(c->frozen, c->tok, c->pool, c->st->name, mids, m, mg, seeds, &mgen, ms, err))
        goto done;
    for (int64_t j = 0; j < m; j++) {
        double sum = 0;
        for (int64_t r = 0; r < M; r++) {
            lm_verify_reward mr;
            const lm_rls_sample *s = &ms[j * M + r];
            lm_meta_reward_of(s->text.data, s->text.len, label[j], &mr);
            sum += mr.format ? mr.predicted : 0;
            ss->r_meta_agreement += mr.format && mr.predicted == label[j];
        }
        rsum[proof_of[j]] += sum / (double)M;
        rcnt[proof_of[j]]++;
    }
    for (int64_t i = 0; i < n; i++) rmeta[i] = rcnt[i] ? rsum[i] / (double)rcnt[i] : 0;
    ss->meta_judged = m;
    ss->r_meta_agreement = m ? ss->r_meta_agreement / (double)(m * M) : NAN;
    rc = 0;
done:
    ss->meta_s = lm_stage_now_s() - t0;
    lm_text_free(&prompt);
    for (int64_t j = 0; mids && j < n * K; j++) lm_ids_free(&mids[j]);
    lm_rls_sample_free(ms, ms ? n * K * M : 0);
    free(mids);
    free(proof_of);
    free(mg);
    free(label);
    free(rsum);
    free(rcnt);
    free(seeds);
    free(ms);
    return rc;
}

static int run_step(grpo *c, int64_t step, step_stats *ss, lm_error *err) {
    const grpo_opts *o = &c->o;
    int64_t P = o->base.prompts, G = o->base.group, n = P * G, T = o->base.seq, K = o->verifications;
    lm_text *qs = calloc((size_t)P, sizeof *qs);
    lm_ids *pids = calloc((size_t)P, sizeof *pids), *vids = calloc((size_t)n, sizeof *vids);
    int64_t *gs = malloc((size_t)n * sizeof *gs);
    uint64_t *seeds = malloc((size_t)n * (size_t)(K > G ? K : G) * sizeof *seeds);
    lm_rls_sample *sm = calloc((size_t)n, sizeof *sm), *vs = calloc((size_t)(n * K), sizeof *vs);
    double *r_y = calloc((size_t)n, sizeof *r_y), *chk = calloc((size_t)n, sizeof *chk);
    double *rmeta = malloc((size_t)n * sizeof *rmeta);
    char **sols = calloc((size_t)n, sizeof *sols);
    lm_rl_sample *rs = calloc((size_t)(2 * n), sizeof *rs); /* the batch, then the trained samples */
    float **lold = calloc((size_t)(2 * n), sizeof *lold), **lref = calloc((size_t)(2 * n), sizeof *lref);
    int32_t *buf_ids = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_ids);
    int32_t *buf_tgt = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_tgt);
    float *buf_lp = malloc((size_t)(o->base.micro_batch * T) * sizeof *buf_lp);
    lm_text answer = {0}, user = {0}, chat = {0};
    int rc = -1;
    memset(ss, 0, sizeof *ss);
    if (!qs || !pids || !vids || !gs || !seeds || !sm || !vs || !r_y || !chk || !rmeta || !sols || !rs || !lold ||
        !lref || !buf_ids || !buf_tgt || !buf_lp) {
        lm_fail(err, "out of memory");
        goto done;
    }
    /* 1. prompts */
    for (int64_t j = 0; j < P; j++) {
        uint64_t pseed;
        if (lm_rls_draw_problem(o->base.seed, step, j, P, c->ds, c->nd, o->base.dmin, o->base.dmax, &c->ex, &qs[j],
                                &answer, &pseed, err))
            goto done;
        const char *k[] = {"question"}, *v[] = {qs[j].data};
        user.len = 0;
        if (lm_template_fill(c->tp.text[LM_TPL_GEN], k, v, 1, &user, err) ||
            lm_rls_chat_prompt(user.data, &chat, err) ||
            lm_tokenizer_encode(c->tok, chat.data, chat.len, LM_TOK_SPECIAL, &pids[j], err))
            goto done;
        if ((int64_t)pids[j].n + 1 >= T) {
            lm_fail(err, "step %lld, prompt %lld is %zu tokens: it does not fit \"seq\" %lld with room to answer",
                    (long long)step, (long long)j, pids[j].n, (long long)T);
            goto done;
        }
    }
    /* 2. G proofs per problem on the current weights */
    double t0 = lm_stage_now_s();
    for (int64_t i = 0; i < n; i++) seeds[i] = lm_rls_step_key(o->base.seed, step, LM_RLS_KEY_SAMPLE, (uint64_t)i);
    for (int64_t j = 0; j < P; j++) gs[j] = G;
    lm_rls_gen gen = {.max_tokens = o->base.max_tokens, .max_ctx = T, .temperature = o->base.temperature,
                      .top_p = o->base.top_p};
    if (lm_rls_sample_groups(c->p, c->tok, c->pool, c->st->name, pids, P, gs, seeds, &gen, sm, err)) goto done;
    ss->sample_s = lm_stage_now_s() - t0;
    /* 3. the exact checker always (for the log, and the reward in the ablation);
     * K verifications on the frozen verifier of each proof in the format */
    t0 = lm_stage_now_s();
    for (int64_t i = 0; i < n; i++) {
        lm_check_result cr;
        if (lm_task_check(qs[i / G].data, lm_answer_after_think(sm[i].text.data), &cr, err)) goto done;
        chk[i] = cr.score;
        double self;
        const char *sol;
        size_t sol_len;
        gs[i] = 0;
        if (o->reward_checker || lm_gen_answer_read(sm[i].text.data, &self, &sol, &sol_len) != LM_GFMT_OK) continue;
        if (verify_prompt(c, qs[i / G].data, sol, sol_len, &vids[i], err)) goto done;
        if (!(sols[i] = strndup(sol, sol_len))) {
            lm_fail(err, "out of memory");
            goto done;
        }
        if ((int64_t)vids[i].n + 1 >= o->verify_seq) continue; /* no room to judge it: R_Y = 0 */
        gs[i] = K;
        ss->verified++;
        for (int64_t k = 0; k < K; k++)
            seeds[i * K + k] = lm_rls_step_key(o->base.seed, step, LM_RLS_KEY_VERIFY, (uint64_t)(i * K + k));
    }
    if (!o->reward_checker) {
        /* compact the seeds: sample_groups reads them in order of the proofs verified */
        int64_t at = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < gs[i]; k++) seeds[at++] = seeds[i * K + k];
        lm_rls_gen vg = {.max_tokens = o->verify_max_tokens, .max_ctx = o->verify_seq,
                         .temperature = o->verify_temperature, .top_p = o->base.top_p};
        if (lm_rls_sample_groups(c->frozen, c->tok, c->pool, c->st->name, vids, n, gs, seeds, &vg, vs, err))
            goto done;
    }
    ss->verify_s = lm_stage_now_s() - t0;
    /* 3b. R_meta: the frozen model judges the verifications (else 1: eq. 5 without meta-verification) */
    for (int64_t i = 0; i < n; i++) rmeta[i] = 1;
    if (o->meta_reward && meta_scores(c, step, qs, sols, chk, gs, vs, rmeta, ss, err)) goto done;
    /* 4. rewards */
    int64_t vn = 0, voff = 0;
    for (int64_t i = 0; i < n; i++) {
        double y = 0;
        if (o->reward_checker) y = chk[i];
        else {
            int64_t ok = 0;
            double sum = 0;
            for (int64_t k = 0; k < gs[i]; k++) {
                lm_verify_reward vr;
                lm_verify_reward_of(vs[voff + k].text.data, vs[voff + k].text.len, chk[i], &vr);
                if (vr.format) ok++, sum += vr.predicted, ss->verifier_agree += vr.predicted == chk[i];
            }
            voff += gs[i];
            vn += gs[i];
            ss->verify_format += (double)ok;
            y = ok ? sum / (double)ok : 0;
        }
        r_y[i] = y;
        lm_gen_reward gr;
        double reward = lm_gen_reward_of(sm[i].text.data, y, y, o->alpha, o->beta, rmeta[i], &gr);
        if (!isfinite(reward)) {
            lm_fail(err, "step %lld: sample %lld: the reward is not finite", (long long)step + 1, (long long)i);
            goto done;
        }
        ss->reward_mean += reward;
        ss->format += gr.format;
        ss->r_y += y;
        ss->r_z += gr.r_z;
        ss->r_meta += gr.format ? rmeta[i] : 0;
        ss->self_score += gr.format ? gr.self_score : 0;
        ss->self_agree += gr.format && gr.self_score == chk[i];
        ss->checker += chk[i];
        ss->pass += chk[i] == 1;
        ss->completion_tokens += (int64_t)sm[i].completion.n;
        ss->truncated += sm[i].finish != LM_FINISH_EOS;
        int64_t pl = (int64_t)pids[i / G].n, len = pl + (int64_t)sm[i].completion.n;
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
        memcpy(ids + pl, sm[i].completion.ids, sm[i].completion.n * sizeof *ids);
        memset(train + pl, 1, sm[i].completion.n);
        rs[i] = (lm_rl_sample){.ids = ids, .len = len, .train = train, .logp_old = lold[i], .logp_ref = lref[i],
                               .reward = reward, .group = i / G};
    }
    ss->verify_format = vn ? ss->verify_format / (double)vn : NAN;
    ss->verifier_agree = vn ? ss->verifier_agree / (double)vn : NAN;
    ss->reward_mean /= (double)n;
    ss->format /= (double)n;
    ss->r_y /= (double)n;
    ss->r_z /= (double)n;
    ss->r_meta /= (double)n;
    ss->self_score /= (double)n;
    ss->self_agree /= (double)n;
    ss->checker /= (double)n;
    ss->pass /= (double)n;
    /* 5. training: every sample, or (drop_uniform_groups) those of the groups with a reward spread */
    t0 = lm_stage_now_s();
    lm_rls_trained trained;
    if (lm_rls_train(c->tr, c->ref_tr, c->pool, &o->base, step, rs, lold, lref, gs, n, P, buf_ids, buf_tgt, buf_lp,
                     &trained, err))
        goto done;
    ss->rl = trained.first;
    ss->rl_last = trained.last;
    ss->trained = trained.samples;
    lm_rls_engine_logp_gap(sm, trained.batch, trained.index, trained.samples, &ss->engine_gap_max,
                           &ss->engine_gap_mean);
    ss->train_s = lm_stage_now_s() - t0;
    rc = 0;
done:
    lm_text_free(&answer);
    lm_text_free(&user);
    lm_text_free(&chat);
    if (qs)
        for (int64_t j = 0; j < P; j++) lm_text_free(&qs[j]);
    if (pids)
        for (int64_t j = 0; j < P; j++) lm_ids_free(&pids[j]);
    if (vids)
        for (int64_t i = 0; i < n; i++) lm_ids_free(&vids[i]);
    lm_rls_sample_free(sm, sm ? n : 0);
    lm_rls_sample_free(vs, vs ? n * K : 0);
    if (rs)
        for (int64_t i = 0; i < n; i++) {
            free((void *)rs[i].ids);
            free((void *)rs[i].train);
        }
    if (lold)
        for (int64_t i = 0; i < n; i++) free(lold[i]);
    if (lref)
        for (int64_t i = 0; i < n; i++) free(lref[i]);
    free(qs);
    free(pids);
    free(vids);
    free(gs);
    free(seeds);
    free(sm);
    free(vs);
    free(r_y);
    free(chk);
    free(rmeta);
    if (sols)
        for (int64_t i = 0; i < n; i++) free(sols[i]);
    free(sols);
    free(rs);
    free(lold);
    free(lref);
    free(buf_ids);
    free(buf_tgt);
    free(buf_lp);
    return rc;
}


static int loop(grpo *c, int64_t start, lm_error *err) {
    const grpo_opts *o = &c->o;
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
        step_stats ss;
        if (run_step(c, step, &ss, err)) goto done;
        int64_t done_steps = step + 1;
        int last = done_steps == o->base.steps;
        double tok_s = (double)ss.completion_tokens / (ss.sample_s > 0 ? ss.sample_s : 1e-9);
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
            lm_stage_put_num(&line, "format", ss.format);
            lm_stage_put_num(&line, "r_y", ss.r_y);
            lm_stage_put_num(&line, "r_z", ss.r_z);
            lm_stage_put_num(&line, "self_score", ss.self_score);
            lm_stage_put_num(&line, "self_agree", ss.self_agree);
            lm_stage_put_num(&line, "checker_mean", ss.checker);
            lm_stage_put_num(&line, "pass", ss.pass);
            lm_stage_put_num(&line, "verified", (double)ss.verified);
            lm_stage_put_num(&line, "verify_format", ss.verify_format);
            lm_stage_put_num(&line, "verifier_agreement", ss.verifier_agree);
            lm_stage_put_num(&line, "kl", ss.rl.kl);
            lm_stage_put_num(&line, "clip_frac", ss.rl.clip_frac);
            lm_stage_put_num(&line, "ratio_mean", ss.rl.ratio_mean);
            lm_stage_put_num(&line, "engine_logp_gap_max", ss.engine_gap_max);
            lm_stage_put_num(&line, "engine_logp_gap_mean", ss.engine_gap_mean);
            lm_rls_put_learning(&line, &o->base, &ss.rl, &ss.rl_last, ss.trained);
            lm_stage_put_num(&line, "completion_tokens", (double)ss.completion_tokens);
            lm_stage_put_num(&line, "truncated", (double)ss.truncated);
            lm_stage_put_num(&line, "sample_s", ss.sample_s);
            lm_stage_put_num(&line, "verify_s", ss.verify_s);
            if (o->meta_reward) {
                lm_stage_put_num(&line, "r_meta", ss.r_meta);
                lm_stage_put_num(&line, "meta_judged", (double)ss.meta_judged);
                lm_stage_put_num(&line, "r_meta_agreement", ss.r_meta_agreement);
                lm_stage_put_num(&line, "meta_s", ss.meta_s);
            }
            lm_stage_put_num(&line, "train_s", ss.train_s);
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
                 "step %lld/%lld  reward %.3f  pass %.3f  format %.2f  self %.2f  kl %.2e  %.0f tok/s  sample %.1fs "
                 "verify %.1fs  train %.1fs  ETA %s",
                 (long long)done_steps, (long long)o->base.steps, ss.reward_mean, ss.pass, ss.format, ss.self_agree,
                 ss.rl.kl, tok_s, ss.sample_s, ss.verify_s, ss.train_s, eta);
        if (lm_stage_step_end(&c->ck, done_steps, o->base.save_every, msg, err)) goto done;
    }
    rc = 0;
done:
    lm_text_free(&line);
    fclose(metrics);
    static const char *const names[] = {"reward_mean", "pass", "format", "self_agree"};
    static const char *const labels[] = {"reward mean", "pass (checker)", "format ok", "self-score = checker"};
    lm_stage_write_step_plots(st, mpath,
                              o->reward_checker ? "generator GRPO (reward: checker)" : "generator GRPO (reward: verifier)",
                              "reward.svg", names, labels, 4);
    return rc;
}


int lm_stage_grpo(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    grpo c;
    memset(&c, 0, sizeof c);
    c.st = st;
    int rc = -1;
    lm_model *m = NULL;
    if (read_opts(st, &c.o, err)) return -1;
    const grpo_opts *o = &c.o;
    const lm_stage_input *model = NULL;
    for (int i = 0; i < st->n_inputs && !model; i++)
        if (lm_stage_is_model_kind(st->inputs[i].kind, 0)) model = &st->inputs[i];
    if (!model)
        return lm_fail(err, "%s: stage %s: needs a model to train (a pretrain, sft, verifier_rl or grpo stage) among "
                            "its inputs", st->recipe_path, st->name);
    snprintf(c.model_dir, sizeof c.model_dir, "%s/latest", model->path);
    if (lm_rls_pick_domains(o->base.domains, c.ds, &c.nd, st, err)) return -1;
    if (lm_rls_templates(st, o->base.templates, &c.tp, err)) return -1;
    c.tp_loaded = 1;
    if (lm_rls_heldout(st, &c.ex, err)) goto done;
    /* the policy starts as the input model; a frozen copy of it is the
     * verifier (reward "verifier") and the KL reference (beta_kl > 0) */
    if (lm_model_load_flags(c.model_dir, LM_LOAD_ROWS, &m, err)) goto done;
    if (lm_params_create(&m->cfg, &c.p, err) || lm_params_load_model(c.p, m, err)) goto done;
    if (o->base.rl.beta_kl > 0 || !o->reward_checker) {
        if (lm_params_create(&m->cfg, &c.frozen, err)) goto done;
        memcpy(c.frozen->w, c.p->w, (size_t)c.p->n_floats * sizeof(float));
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
    if (o->base.rl.beta_kl > 0) {
        lm_train_opts ro = to;
        ro.batch = ro.micro_batch = o->base.micro_batch;
        if (!(c.ref_tr = lm_trainer_create(c.frozen, &ro, st->threads, err))) goto done;
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
    lm_params_free(c.frozen);
    lm_pool_free(c.pool);
    lm_tokenizer_free(c.tok);
    if (c.tp_loaded) lm_templates_free(&c.tp);
    lm_qset_free(&c.ex);
    return rc;
}
