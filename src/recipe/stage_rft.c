/* stage_rft.c — the "rft" stage kind of `lemma build`: rejection-sampling
 * fine-tuning. The model samples proofs of fresh problems, the exact
 * checker (or the frozen input model as verifier) decides which to keep,
 * and the model is fine-tuned by cross-entropy on what it kept, together
 * with checker-labelled examples of judging its own proofs.
 *
 * Step t (0-based) of a stage with seed S:
 *   1. prompts: P problems drawn as the grpo stage draws them (domain
 *      (t·P + j) mod D, a seed from (S, t, j), questions of the excluded
 *      sets redrawn), the proof_generation template as a one-turn chat.
 *   2. sampling: G proofs per problem on the current weights through the
 *      engine, proof i seeded by (S, t, i).
 *   3. grading: the exact checker scores every proof (score s, first
 *      failing step). A proof is accepted when it ended at EOS, is in the
 *      answer format (prove/gen_reward.h) and, with accept "checker" (the
 *      default), s = 1; with accept "verifier", when all of its K
 *      verifications by the frozen input model that read score it 1 (and
 *      at least one reads).
 *   4. rows, in sample order, each trained by cross-entropy on its answer:
 *      - generation (gen_examples): an accepted proof, its solution as
 *        sampled and its self-evaluation rewritten as the checker's
 *        analysis (so a kept proof never teaches a dishonest score);
 *      - self-evaluation (self_eval_examples): a rejected proof in the
 *        format, its solution as context (no loss) and the checker's
 *        analysis as its self-evaluation: the generator learns to admit
 *        its own mistakes (the SFT set's generation examples all end in
 *        \boxed{1});
 *      - verification (verify_examples): a proof in the format, the
 *        proof_verification prompt with its solution, answered by the
 *        checker's analysis (with "working": true, with the checker's
 *        working, tasks.h lm_task_worked_verification; the self-evaluations
 *        above always carry the verdicts alone, which keeps a proof within
 *        the generation's max_tokens)
 *        (what the SFT set does for reference proofs and their
 *        corruptions, here on the model's own proofs: the verifier is
 *        trained on the distribution it will judge).
 *      The labels of the self-evaluation and verification rows always come
 *      from the checker; `accept` decides only which proofs are trained as
 *      generation. A row longer than seq is left out (counted).
 *   5. one AdamW step on all rows (mean cross-entropy over their answer
 *      tokens), micro_batch rows at a time.
 * Everything a step does is a function of (weights, optimiser state, S, t),
 * so threads do not change the bytes and a resumed stage ends bit-identical.
 * Folder: as the other training stages' (stage_common.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
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
#include "tasks/tasks.h"
#include "train/plot.h"

static const char *const own_keys[] = {"accept",           "verifications",      "verify_max_tokens",
                                       "verify_seq",       "verify_temperature", "gen_examples",
                                       "verify_examples",  "self_eval_examples", "working",
                                       NULL};
/* Shared RL keys that mean nothing to a cross-entropy fine-tune. */
static const char *const policy_gradient_keys[] = {"beta_kl", "clip_low", "clip_high",      "std_eps",
                                                   "scale_std", "agg",    "norm_len", "num_iterations",
                                                   "drop_uniform_groups", NULL};

typedef struct rft_opts {
    lm_rls_opts base;
    int64_t verifications, verify_max_tokens, verify_seq;
    double verify_temperature;
    int accept_verifier, gen_rows, verify_rows, self_rows;
    int working; /* verification rows carry the checker's working (tasks.h lm_task_worked_verification) */
} rft_opts;

static int read_opts(const lm_stage *st, rft_opts *o, lm_error *err) {
    memset(o, 0, sizeof *o);
    for (int i = 0; policy_gradient_keys[i]; i++) {
        const json_value *v = json_get(st->def, policy_gradient_keys[i]);
        if (v)
            return lm_fail(err, "%s: byte %zu: stage %s: \"%s\" is a policy-gradient option; an rft stage fine-tunes "
                                "by cross-entropy on what it keeps",
                           st->recipe_path, v->offset, st->name, policy_gradient_keys[i]);
    }
    if (lm_rls_read_opts(st, "rft", own_keys, &o->base, err)) return -1;
    const char *accept = "checker";
    if (lm_stage_string(st, "accept", accept, &accept, err) ||
        lm_stage_int(st, "verifications", 2, 1, 64, &o->verifications, err) ||
        lm_stage_int(st, "verify_max_tokens", 256, 1, 1 << 20, &o->verify_max_tokens, err) ||
        lm_stage_int(st, "verify_seq", 1024, 8, 1 << 20, &o->verify_seq, err) ||
        lm_stage_double(st, "verify_temperature", 1.0, 0, 10, &o->verify_temperature, err) ||
        lm_stage_bool(st, "gen_examples", 1, &o->gen_rows, err) ||
        lm_stage_bool(st, "verify_examples", 1, &o->verify_rows, err) ||
        lm_stage_bool(st, "self_eval_examples", 1, &o->self_rows, err) ||
        lm_stage_bool(st, "working", 0, &o->working, err))
        return -1;
    if (!strcmp(accept, "checker")) o->accept_verifier = 0;
    else if (!strcmp(accept, "verifier")) o->accept_verifier = 1;
    else
        return lm_fail(err, "%s: stage %s: \"accept\": expected \"checker\" (the exact checker) or \"verifier\" (the "
                            "input model's verifications)", st->recipe_path, st->name);
    if (!o->gen_rows && !o->verify_rows && !o->self_rows)
        return lm_fail(err, "%s: stage %s: \"gen_examples\", \"verify_examples\" and \"self_eval_examples\" are all "
                            "false: nothing to train on", st->recipe_path, st->name);
    if (o->verify_max_tokens >= o->verify_seq)
        return lm_fail(err, "%s: stage %s: \"verify_max_tokens\" %lld leaves no room for the proof in \"verify_seq\" %lld",
                       st->recipe_path, st->name, (long long)o->verify_max_tokens, (long long)o->verify_seq);
    return 0;
}

typedef struct rft {
    const lm_stage *st;
    rft_opts o;
    char model_dir[PATH_MAX];
    lm_params *p, *frozen;       /* the model trained; the input model (accept "verifier") */
    lm_trainer *tr;
    lm_pool *pool;
    lm_tokenizer *tok;
    int32_t eos;
    lm_prompt_templates tp;
    int tp_loaded;
    const lm_task_domain *ds[64];
    int nd;
    lm_qset ex;
    lm_stage_ckpt ck;
    int32_t *ids, *tgt;          /* [micro_batch * seq] */
} rft;

typedef struct step_stats {
    double pass, format, self_agree, accepted, verifier_agree, loss, grad_norm;
    int64_t gen_rows, self_rows, verify_rows, too_long, trained_tokens, completion_tokens, truncated, verified;
    double sample_s, verify_s, train_s;
} step_stats;

/* One training row: ids (prompt + answer, EOS last) and where the answer's
 * trained tokens start. */
typedef struct row {
    lm_ids ids;
    size_t first_trained;
} row;

static int encode(const rft *c, const char *text, lm_ids *out, lm_error *err) {
    return lm_tokenizer_encode(c->tok, text, strlen(text), LM_TOK_SPECIAL, out, err);
}

/* The proof_verification prompt of (question, solution) as a chat. */
static int verify_prompt(const rft *c, const char *question, const char *sol, lm_ids *ids, lm_error *err) {
    lm_text user = {0}, chat = {0};
    const char *k[] = {"statement", "proof"}, *v[] = {question, sol};
    int rc = lm_template_fill(c->tp.text[LM_TPL_VERIFY], k, v, 2, &user, err) ||
             lm_rls_chat_prompt(user.data, &chat, err) || encode(c, chat.data, ids, err);
    lm_text_free(&user);
    lm_text_free(&chat);
    return rc ? -1 : 0;
}

/* A row of prompt, context (untrained) and answer (trained, EOS added). */
static int make_row(const rft *c, const lm_ids *prompt, const char *context, const char *answer, row *r,
                    lm_error *err) {
    r->ids.n = 0;
    for (size_t k = 0; k < prompt->n; k++)
        if (lm_ids_push(&r->ids, prompt->ids[k])) return lm_fail(err, "out of memory");
    if (context && encode(c, context, &r->ids, err)) return -1;
    r->first_trained = r->ids.n;
    if (encode(c, answer, &r->ids, err)) return -1;
    if (lm_ids_push(&r->ids, c->eos)) return lm_fail(err, "out of memory");
    return 0;
}

/* Trains one AdamW step on rows[0..n), micro_batch at a time. */
static int train_rows(rft *c, int64_t step, const row *rows, int64_t n, step_stats *ss, lm_error *err) {
    int64_t T = c->o.base.seq, mb = c->o.base.micro_batch, denom = 0;
    for (int64_t i = 0; i < n; i++) denom += (int64_t)(rows[i].ids.n - rows[i].first_trained);
    if (!denom) return 0; /* nothing kept this step: no update */
    lm_train_begin(c->tr);
    for (int64_t i0 = 0; i0 < n; i0 += mb) {
        int64_t nb = n - i0 < mb ? n - i0 : mb;
        for (int64_t b = 0; b < nb; b++) {
            const row *r = &rows[i0 + b];
            int32_t *ids = c->ids + b * T, *tg = c->tgt + b * T;
            int64_t len = (int64_t)r->ids.n;
            for (int64_t t = 0; t < T; t++) {
                ids[t] = t < len ? r->ids.ids[t] : 0;
                tg[t] = t + 1 < len && t + 1 >= (int64_t)r->first_trained ? r->ids.ids[t + 1] : -1;
            }
        }
        if (lm_train_accumulate(c->tr, c->pool, c->ids, c->tgt, nb, denom, n, err)) return -1;
    }
    lm_train_loss_so_far(c->tr, &ss->loss, &ss->trained_tokens);
    if (!isfinite(ss->loss)) return lm_fail(err, "the loss is not finite (%g); nothing updated", ss->loss);
    lm_train_stats ts;
    lm_train_apply(c->tr, c->pool, lm_rls_lr(&c->o.base, step), &ts);
    ss->grad_norm = ts.grad_norm;
    return 0;
}

static int run_step(rft *c, int64_t step, step_stats *ss, lm_error *err) {
    const rft_opts *o = &c->o;
    int64_t P = o->base.prompts, G = o->base.group, n = P * G, T = o->base.seq, K = o->verifications;
    lm_text *qs = calloc((size_t)P, sizeof *qs);
    lm_ids *pids = calloc((size_t)P, sizeof *pids), *vids = calloc((size_t)n, sizeof *vids);
    int64_t *gs = malloc((size_t)n * sizeof *gs);
    uint64_t *seeds = malloc((size_t)n * (size_t)(K > G ? K : G) * sizeof *seeds);
    lm_rls_sample *sm = calloc((size_t)n, sizeof *sm), *vs = calloc((size_t)(n * K), sizeof *vs);
    lm_check_result *cr = calloc((size_t)n, sizeof *cr);
    char **sols = calloc((size_t)n, sizeof *sols);
    int *fmt = calloc((size_t)n, sizeof *fmt), *acc = calloc((size_t)n, sizeof *acc);
    row *rows = calloc((size_t)(2 * n), sizeof *rows);
    int64_t nrows = 0;
    lm_text answer = {0}, user = {0}, chat = {0}, analysis = {0}, worked = {0}, text = {0};
    int rc = -1;
    memset(ss, 0, sizeof *ss);
    if (!qs || !pids || !vids || !gs || !seeds || !sm || !vs || !cr || !sols || !fmt || !acc || !rows) {
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
            lm_rls_chat_prompt(user.data, &chat, err) || encode(c, chat.data, &pids[j], err))
            goto done;
        if ((int64_t)pids[j].n + 1 >= T) {
            lm_fail(err, "step %lld, prompt %lld is %zu tokens: it does not fit \"seq\" %lld with room to answer",
                    (long long)step + 1, (long long)j, pids[j].n, (long long)T);
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
    /* 3. grading: the checker always; the frozen verifier with accept "verifier" */
    t0 = lm_stage_now_s();
    for (int64_t i = 0; i < n; i++) {
        const char *ans = lm_answer_after_think(sm[i].text.data);
        if (lm_task_check(qs[i / G].data, ans, &cr[i], err)) goto done;
        double self = -1;
        fmt[i] = lm_gen_answer_read(ans, &self, NULL, NULL) == LM_GFMT_OK;
        if (!(sols[i] = lm_task_solution_copy(ans))) {
            lm_fail(err, "out of memory");
            goto done;
        }
        ss->pass += cr[i].score == 1;
        ss->format += fmt[i];
        ss->self_agree += fmt[i] && self == cr[i].score;
        ss->completion_tokens += (int64_t)sm[i].completion.n;
        ss->truncated += sm[i].finish != LM_FINISH_EOS;
        gs[i] = 0;
        if (!o->accept_verifier || !fmt[i] || sm[i].finish != LM_FINISH_EOS) continue;
        if (verify_prompt(c, qs[i / G].data, sols[i], &vids[i], err)) goto done;
        if ((int64_t)vids[i].n + 1 >= o->verify_seq) continue; /* no room to judge it: not accepted */
        gs[i] = K;
        ss->verified++;
        for (int64_t k = 0; k < K; k++)
            seeds[i * K + k] = lm_rls_step_key(o->base.seed, step, LM_RLS_KEY_VERIFY, (uint64_t)(i * K + k));
    }
    if (o->accept_verifier) {
        int64_t at = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < gs[i]; k++) seeds[at++] = seeds[i * K + k];
        lm_rls_gen vg = {.max_tokens = o->verify_max_tokens, .max_ctx = o->verify_seq,
                         .temperature = o->verify_temperature, .top_p = o->base.top_p};
        if (lm_rls_sample_groups(c->frozen, c->tok, c->pool, c->st->name, vids, n, gs, seeds, &vg, vs, err))
            goto done;
    }
    int64_t voff = 0, vn = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!o->accept_verifier) acc[i] = fmt[i] && sm[i].finish == LM_FINISH_EOS && cr[i].score == 1;
        else {
            int64_t ok = 0, ones = 0;
            for (int64_t k = 0; k < gs[i]; k++) {
                lm_verify_reward vr;
                lm_verify_reward_of(vs[voff + k].text.data, vs[voff + k].text.len, cr[i].score, &vr);
                if (vr.format) ok++, ones += vr.predicted == 1, ss->verifier_agree += vr.predicted == cr[i].score;
            }
            voff += gs[i];
            vn += gs[i];
            acc[i] = ok > 0 && ones == ok;
        }
        ss->accepted += acc[i];
    }
    ss->verify_s = lm_stage_now_s() - t0;
    ss->verifier_agree = vn ? ss->verifier_agree / (double)vn : NAN;
    /* 4. rows */
    for (int64_t i = 0; i < n; i++) {
        const char *ans = lm_answer_after_think(sm[i].text.data);
        /* the self-evaluation gets the verdicts alone, the verification (with "working") the checker's
         * working too: the working would take a proof past the generation's max_tokens */
        analysis.len = 0;
        worked.len = 0;
        if (lm_task_verification_text(sols[i], &cr[i], &analysis)) {
            lm_fail(err, "out of memory");
            goto done;
        }
        if (o->working ? lm_task_worked_verification(qs[i / G].data, sols[i], &cr[i], &worked, err)
                       : lm_text_append(&worked, analysis.data, analysis.len) ? lm_fail(err, "out of memory") : 0)
            goto done;
        const char *sev = fmt[i] ? strstr(strstr(ans, "## Solution"), "## Self Evaluation") : NULL;
        if (sev && ((acc[i] && o->gen_rows) || (!acc[i] && o->self_rows))) {
            /* the solution as sampled, then the checker's analysis as the self-evaluation */
            text.len = 0;
            if (lm_text_append(&text, ans, (size_t)(sev - ans))) {
                lm_fail(err, "out of memory");
                goto done;
            }
            lm_text tail = {0};
            row *r = &rows[nrows];
            int erc = lm_text_appendf(&tail, "## Self Evaluation\n\n%s", analysis.data) ? lm_fail(err, "out of memory") : 0;
            if (!erc && acc[i]) { /* accepted: the whole answer is trained */
                erc = lm_text_append(&text, tail.data, tail.len) ? lm_fail(err, "out of memory")
                                                                 : make_row(c, &pids[i / G], NULL, text.data, r, err);
            } else if (!erc) /* rejected: only its self-evaluation */
                erc = make_row(c, &pids[i / G], text.data, tail.data, r, err);
            lm_text_free(&tail);
            if (erc) goto done;
            if ((int64_t)r->ids.n > T + 1) ss->too_long++;
            else if (acc[i]) ss->gen_rows++, nrows++;
            else ss->self_rows++, nrows++;
        }
        if (o->verify_rows && fmt[i]) { /* as the pipeline: a proof it would drop is not judged */
            row *r = &rows[nrows];
            lm_ids vp = {0};
            int erc =
                verify_prompt(c, qs[i / G].data, sols[i], &vp, err) || make_row(c, &vp, NULL, worked.data, r, err);
            lm_ids_free(&vp);
            if (erc) goto done;
            if ((int64_t)r->ids.n > T + 1) ss->too_long++;
            else ss->verify_rows++, nrows++;
        }
    }
    ss->pass /= (double)n;
    ss->format /= (double)n;
    ss->self_agree /= (double)n;
    ss->accepted /= (double)n;
    /* 5. one update on every row */
    t0 = lm_stage_now_s();
    if (train_rows(c, step, rows, nrows, ss, err)) {
        lm_fail_prefix(err, "step %lld", (long long)step + 1);
        goto done;
    }
    ss->train_s = lm_stage_now_s() - t0;
    rc = 0;
done:
    lm_text_free(&answer);
    lm_text_free(&user);
    lm_text_free(&chat);
    lm_text_free(&analysis);
    lm_text_free(&worked);
    lm_text_free(&text);
    if (qs)
        for (int64_t j = 0; j < P; j++) lm_text_free(&qs[j]);
    if (pids)
        for (int64_t j = 0; j < P; j++) lm_ids_free(&pids[j]);
    if (vids)
        for (int64_t i = 0; i < n; i++) lm_ids_free(&vids[i]);
    if (sols)
        for (int64_t i = 0; i < n; i++) free(sols[i]);
    if (rows)
        for (int64_t i = 0; i < 2 * n; i++) lm_ids_free(&rows[i].ids);
    lm_rls_sample_free(sm, sm ? n : 0);
    lm_rls_sample_free(vs, vs ? n * K : 0);
    free(qs);
    free(pids);
    free(vids);
    free(gs);
    free(seeds);
    free(sm);
    free(vs);
    free(cr);
    free(sols);
    free(fmt);
    free(acc);
    free(rows);
    return rc;
}


static int loop(rft *c, int64_t start, lm_error *err) {
    const rft_opts *o = &c->o;
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
            lm_text_appendf(&line, "{\"step\": %lld", (long long)done_steps);
            lm_stage_put_num(&line, "loss", ss.trained_tokens ? ss.loss : NAN);
            lm_stage_put_num(&line, "lr", lm_rls_lr(&o->base, step));
            lm_stage_put_num(&line, "grad_norm", ss.trained_tokens ? ss.grad_norm : NAN);
            lm_stage_put_num(&line, "tokens_per_s", tok_s);
            lm_stage_put_num(&line, "pass", ss.pass);
            lm_stage_put_num(&line, "accepted", ss.accepted);
            lm_stage_put_num(&line, "format", ss.format);
            lm_stage_put_num(&line, "self_agree", ss.self_agree);
            lm_stage_put_num(&line, "verified", (double)ss.verified);
            lm_stage_put_num(&line, "verifier_agreement", ss.verifier_agree);
            lm_stage_put_num(&line, "gen_rows", (double)ss.gen_rows);
            lm_stage_put_num(&line, "self_eval_rows", (double)ss.self_rows);
            lm_stage_put_num(&line, "verify_rows", (double)ss.verify_rows);
            lm_stage_put_num(&line, "too_long", (double)ss.too_long);
            lm_stage_put_num(&line, "trained_tokens", (double)ss.trained_tokens);
            lm_stage_put_num(&line, "completion_tokens", (double)ss.completion_tokens);
            lm_stage_put_num(&line, "truncated", (double)ss.truncated);
            lm_stage_put_num(&line, "sample_s", ss.sample_s);
            lm_stage_put_num(&line, "verify_s", ss.verify_s);
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
                 "step %lld/%lld  pass %.3f  accepted %.3f  self %.2f  rows %lld+%lld+%lld  loss %.3f  sample %.1fs "
                 "verify %.1fs  train %.1fs  ETA %s",
                 (long long)done_steps, (long long)o->base.steps, ss.pass, ss.accepted, ss.self_agree,
                 (long long)ss.gen_rows, (long long)ss.self_rows, (long long)ss.verify_rows, ss.loss, ss.sample_s,
                 ss.verify_s, ss.train_s, eta);
        if (lm_stage_step_end(&c->ck, done_steps, o->base.save_every, msg, err)) goto done;
    }
    rc = 0;
done:
    lm_text_free(&line);
    fclose(metrics);
    static const char *const names[] = {"pass", "accepted", "self_agree"};
    static const char *const labels[] = {"pass (checker)", "accepted", "self-score = checker"};
    lm_stage_write_step_plots(st, mpath, "rejection-sampling fine-tuning", "rft.svg", names, labels, 3);
    return rc;
}


int lm_stage_rft(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    rft c;
    memset(&c, 0, sizeof c);
    c.st = st;
    int rc = -1;
    lm_model *m = NULL;
    if (read_opts(st, &c.o, err)) return -1;
    const rft_opts *o = &c.o;
    const lm_stage_input *model = NULL;
    for (int i = 0; i < st->n_inputs && !model; i++)
        if (lm_stage_is_model_kind(st->inputs[i].kind, 0)) model = &st->inputs[i];
    if (!model)
        return lm_fail(err, "%s: stage %s: needs a model to train (a pretrain, sft, verifier_rl, grpo or rft stage) "
                            "among its inputs", st->recipe_path, st->name);
    snprintf(c.model_dir, sizeof c.model_dir, "%s/latest", model->path);
    if (lm_rls_pick_domains(o->base.domains, c.ds, &c.nd, st, err)) return -1;
    if (lm_rls_templates(st, o->base.templates, &c.tp, err)) return -1;
    c.tp_loaded = 1;
    if (lm_rls_heldout(st, &c.ex, err)) goto done;
    if (lm_model_load_flags(c.model_dir, LM_LOAD_ROWS, &m, err)) goto done;
    if (m->cfg.eos_token_id < 0 || m->cfg.eos_token_id >= m->cfg.vocab_size) {
        lm_fail(err, "%s: stage %s: the input model's config has no eos_token_id in its vocabulary (the rows end "
                     "with it)", st->recipe_path, st->name);
        goto done;
    }
    c.eos = (int32_t)m->cfg.eos_token_id;
    if (lm_params_create(&m->cfg, &c.p, err) || lm_params_load_model(c.p, m, err)) goto done;
    if (o->accept_verifier) {
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
    c.ids = malloc((size_t)(o->base.micro_batch * o->base.seq) * sizeof *c.ids);
    c.tgt = malloc((size_t)(o->base.micro_batch * o->base.seq) * sizeof *c.tgt);
    if (!c.ids || !c.tgt) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (!(c.pool = lm_pool_create_err(st->threads, err))) goto done;
    if (!(c.tr = lm_trainer_create(c.p, &to, st->threads, err))) goto done;
    c.ck = (lm_stage_ckpt){.st = st, .model_dir = c.model_dir, .sampling = LM_RLS_SAMPLING_NOTE, .p = c.p,
                           .tr = c.tr, .planned_steps = o->base.steps, .seed = o->base.seed, .last = -1};
    int64_t start;
    if (lm_stage_resume(&c.ck, &start, err)) goto done;
    if (loop(&c, start, err) || lm_stage_export_final(st, err)) goto done;
    rc = 0;
done:
    lm_model_free(m);
    lm_trainer_free(c.tr);
    lm_params_free(c.p);
    lm_params_free(c.frozen);
    lm_pool_free(c.pool);
    lm_tokenizer_free(c.tok);
    if (c.tp_loaded) lm_templates_free(&c.tp);
    lm_qset_free(&c.ex);
    free(c.ids);
    free(c.tgt);
    return rc;
}
