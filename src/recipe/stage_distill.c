/* stage_distill.c — the "distill" stage kind of `lemma build`: logit
 * distillation (train/distill.h) or sequence distillation of a teacher
 * model into a student on the windows of a data stage.
 *
 * Inputs: one data stage (the sequences: pretraining text or SFT examples,
 * whose masked positions are not distilled), the teacher (a pretrain, sft,
 * verifier_rl or distill stage: its latest/ model), at most one tokenizer
 * stage, and optionally a second model stage the student starts from.
 * "teacher" names the teacher among the inputs (needed only when there are
 * two model stages); the student is either "config" (an HF config object or
 * a path relative to the recipe, initialised from "seed" and "std" as
 * `lemma init`) or the other model stage, never both.
 *
 * Step t (0-based): the batch is the data stage's training windows of step
 * t for "seed" (data/shards.h: a pure function of (seed, t, row)), the
 * teacher's forward on it, the student's forward and backward of the
 * tau^2 KL, AdamW with the schedule's lr of step t. So everything a step
 * does is a function of (student weights, optimiser state, teacher, seed,
 * t): a resumed stage redoes exactly the steps an uninterrupted one does.
 *
 * "mode": "sequence" (sequence distillation) keeps the windows and the loop
 * but replaces the loss: each window's prompt (its tokens up to the first
 * position with a target) is answered by the teacher through the engine
 * (choice seed a function of (seed, t, row); the engine's tokens do not
 * depend on the batch or threads), the window becomes prompt + answer and
 * the student takes a cross-entropy step on the answer tokens.
 *
 * Folder: ckpt-N/ (config.json, model.safetensors, optim_m.safetensors,
 * optim_v.safetensors, trainer_state.json, tokenizer files), latest -> the
 * newest, and at the end the final weights exported beside them (the
 * folder is a model directory); metrics.jsonl and distill.svg are volatile
 * (not hashed). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "core/stop.h"
#include "core/threadpool.h"
#include "data/shards.h"
#include "formats/json.h"
#include "infer/engine.h"
#include "model/config.h"
#include "model/model.h"
#include "recipe/recipe.h"
#include "recipe/stage_common.h"
#include "recipe/stages.h"
#include "train/distill.h"
#include "train/params.h"
#include "train/plot.h"
#include "train/schedule.h"
#include "train/step.h"

static const char *const keys[] = {
    "name", "kind", "inputs", "description", "teacher", "config", "temperature", "top_k", "steps", "batch",
    "micro_batch", "seq", "lr", "min_lr", "warmup", "schedule", "weight_decay", "beta1", "beta2", "eps", "clip",
    "bias_gamma", "seed", "std", "save_every", "log_every", "mode", "max_tokens", "sample_temperature", "top_p",
    NULL};

typedef struct dist_opts {
    int sequence;                /* "mode": "sequence" */
    int64_t max_tokens;          /* sequence: the teacher's answer at most */
    double sample_temperature, top_p;
    lm_distill_opts d;
    int64_t steps, batch, micro_batch, seq, save_every, log_every;
    lm_schedule sched;
    lm_adamw_opts adamw;
    double clip, bias_gamma, std;
    uint64_t seed;
} dist_opts;

typedef struct dist {
    const lm_stage *st;
    dist_opts o;
    char tok_dir[PATH_MAX];      /* where the tokenizer files come from ("" when none) */
    lm_text config;              /* the student's config.json */
    lm_params *student, *teacher;
    lm_distiller *dl;            /* logits */
    lm_trainer *tr;              /* the student's trainer (the distiller's in logits mode) */
    lm_model *teacher_model;     /* sequence: the teacher for the engine */
    lm_engine *engine;
    lm_pool *pool;
    lm_data *data;
    int32_t *ids, *tgt;
    lm_stage_ckpt ck;
} dist;

/* ---- parameters ---------------------------------------------------------------- */

static int read_opts(const lm_stage *st, dist_opts *o, lm_error *err) {
    char q[80]; /* an unknown key, quoted and escaped for the message */
    for (const json_value *m = st->def->child; m; m = m->next) {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++) known = !strcmp(m->key, keys[i]);
        if (!known)
            return lm_fail(err, "%s: byte %zu: stage %s: unknown key %s for a distill stage", st->recipe_path,
                           m->offset, st->name, json_quote(q, sizeof q, m->key, m->key_len));
    }
    lm_train_opts to = lm_train_opts_default();
    int64_t seed;
    const char *sched;
    o->adamw = to.adamw;
    if (lm_stage_double(st, "temperature", 2.0, 1e-3, 1e3, &o->d.temperature, err) ||
        lm_stage_int(st, "top_k", 0, 0, 1 << 24, &o->d.top_k, err) ||
        lm_stage_int(st, "steps", 100, 1, 1ll << 40, &o->steps, err) ||
        lm_stage_int(st, "batch", 8, 1, 1 << 20, &o->batch, err) ||
        lm_stage_int(st, "micro_batch", 0, 0, 1 << 20, &o->micro_batch, err) ||
        lm_stage_int(st, "seq", 256, 2, 1 << 24, &o->seq, err) ||
        lm_stage_double(st, "lr", 3e-4, 1e-12, 10, &o->sched.lr_max, err) ||
        lm_stage_double(st, "min_lr", o->sched.lr_max / 10, 0, 10, &o->sched.lr_min, err) ||
        lm_stage_int(st, "warmup", 0, 0, 1ll << 40, &o->sched.warmup, err) ||
        lm_stage_string(st, "schedule", "cosine", &sched, err) ||
        lm_stage_double(st, "weight_decay", o->adamw.weight_decay, 0, 10, &o->adamw.weight_decay, err) ||
        lm_stage_double(st, "beta1", o->adamw.beta1, 0, 0.999999, &o->adamw.beta1, err) ||
        lm_stage_double(st, "beta2", o->adamw.beta2, 0, 0.9999999, &o->adamw.beta2, err) ||
        lm_stage_double(st, "eps", o->adamw.eps, 0, 1, &o->adamw.eps, err) ||
        lm_stage_double(st, "clip", to.clip, 0, 1e9, &o->clip, err) ||
        lm_stage_double(st, "bias_gamma", to.bias_gamma, 0, 10, &o->bias_gamma, err) ||
        lm_stage_int(st, "seed", 0, 0, INT64_MAX, &seed, err) ||
        lm_stage_double(st, "std", 0.02, 0, 10, &o->std, err) ||
        lm_stage_int(st, "save_every", 0, 0, 1ll << 40, &o->save_every, err) ||
        lm_stage_int(st, "log_every", 10, 1, 1ll << 40, &o->log_every, err))
        return -1;
    const char *mode;
    if (lm_stage_string(st, "mode", "logits", &mode, err) ||
        lm_stage_int(st, "max_tokens", 64, 1, 1 << 24, &o->max_tokens, err) ||
        lm_stage_double(st, "sample_temperature", 0, 0, 100, &o->sample_temperature, err) ||
        lm_stage_double(st, "top_p", 1, 1e-6, 1, &o->top_p, err))
        return -1;
    if (strcmp(mode, "logits") && strcmp(mode, "sequence"))
        return lm_fail(err, "%s: stage %s: \"mode\": expected \"logits\" or \"sequence\"", st->recipe_path, st->name);
    o->sequence = !strcmp(mode, "sequence");
    static const char *const logits_only[] = {"temperature", "top_k"},
                             *const sequence_only[] = {"max_tokens", "sample_temperature", "top_p"};
    for (int i = 0; i < 2 && o->sequence; i++)
        if (json_get(st->def, logits_only[i]))
            return lm_fail(err, "%s: stage %s: \"%s\" is for \"mode\": \"logits\"", st->recipe_path, st->name,
                           logits_only[i]);
    for (int i = 0; i < 3 && !o->sequence; i++)
        if (json_get(st->def, sequence_only[i]))
            return lm_fail(err, "%s: stage %s: \"%s\" is for \"mode\": \"sequence\"", st->recipe_path, st->name,
                           sequence_only[i]);
    o->seed = (uint64_t)seed;
    if (lm_schedule_parse_kind(sched, &o->sched.kind) || o->sched.kind == LM_SCHED_WSD)
        return lm_fail(err, "%s: stage %s: \"schedule\": expected \"cosine\" or \"constant\"", st->recipe_path, st->name);
    o->sched.total = o->steps;
    if (lm_schedule_check(&o->sched, err)) return lm_fail_prefix(err, "%s: stage %s", st->recipe_path, st->name);
    int64_t mb = o->micro_batch ? o->micro_batch : o->batch;
    if (o->batch % mb)
        return lm_fail(err, "%s: stage %s: \"micro_batch\" %lld must divide \"batch\" %lld", st->recipe_path, st->name,
                       (long long)mb, (long long)o->batch);
    return 0;
}

/* ---- small helpers --------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat sb;
    return !stat(p, &sb) && S_ISREG(sb.st_mode);
}

static void write_plot(const lm_stage *st, const char *mpath) {
    lm_metrics m;
    lm_error err;
    if (lm_metrics_read(mpath, &m, &err)) return;
    lm_text svg = {0};
    if (!lm_plot_svg(&m, st->name, &svg, &err)) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/distill.svg", st->out_dir);
        lm_write_file_atomic(path, svg.data, svg.len, &err); /* a chart is a convenience: no failure */
    }
    lm_text_free(&svg);
    lm_metrics_free(&m);
}

/* ---- one step --------------------------------------------------------------------------- */

typedef struct step_out {
    double loss, grad_norm, sample_s;
    int64_t tokens;              /* positions trained on */
    int64_t answer_tokens, truncated; /* sequence: the teacher's tokens, answers cut by max_tokens or seq */
} step_out;

typedef struct seq_req {
    lm_ids answer;
    int done, oom, eos;
    const char *error;
} seq_req;

static void seq_event(void *user, const lm_engine_event *ev) {
    seq_req *r = user;
    if (ev->kind == LM_EV_TOKEN && lm_ids_push(&r->answer, ev->token)) r->oom = 1;
    if (ev->kind == LM_EV_DONE) {
        r->done = 1;
        r->eos = ev->finish == LM_FINISH_EOS;
        if (ev->error) r->error = ev->error;
    }
}

/* Sequence distillation: row r's prompt is its window up to the first
 * position with a target (an SFT example's prompt; one token of plain
 * text), the teacher answers it (the engine; seed a function of (seed,
 * step, r)), and the student is trained by cross-entropy on the answer
 * tokens: the rows become prompt + answer, padded with id 0. */
static int sequence_step(dist *c, int64_t step, double lr, step_out *so, lm_error *err) {
    const dist_opts *o = &c->o;
    int64_t B = o->batch, T = o->seq, mb = o->micro_batch ? o->micro_batch : o->batch;
    seq_req *rq = calloc((size_t)B, sizeof *rq);
    int64_t *plen = calloc((size_t)B, sizeof *plen);
    uint64_t *seeds = calloc((size_t)B, sizeof *seeds);
    int rc = -1;
    if (!rq || !plen || !seeds) {
        lm_fail(err, "out of memory");
        goto done;
    }
    double t0 = lm_stage_now_s();
    for (int64_t r = 0; r < B; r++) {
        const int32_t *tg = c->tgt + r * T;
        int64_t first = 0;
        while (first < T && tg[first] < 0) first++;
        if (first == T) continue; /* nothing to answer in this window */
        plen[r] = first + 1;
        seeds[r] = lm_rng_u64(lm_rng_u64(o->seed, LM_RNG_RL, (uint64_t)step), LM_RNG_RL, (uint64_t)r);
        lm_engine_request q = {.prompt = c->ids + r * T, .prompt_len = plen[r], .n = 1,
                               .params = lm_gen_params_default(), .seeds = &seeds[r], .on_event = seq_event,
                               .user = &rq[r]};
        q.params.max_tokens = o->max_tokens < T + 1 - plen[r] ? o->max_tokens : T + 1 - plen[r];
        q.params.sampling.temperature = (float)o->sample_temperature;
        q.params.sampling.top_p = (float)o->top_p;
        q.params.stop_at_eos = 1;
        uint64_t id;
        if (lm_engine_submit(c->engine, &q, &id, err)) goto done;
    }
    if (lm_engine_run(c->engine, err)) goto done;
    so->sample_s = lm_stage_now_s() - t0;
    int64_t denom = 0;
    for (int64_t r = 0; r < B; r++) {
        if (!plen[r]) continue;
        if (rq[r].oom || !rq[r].done || rq[r].error) {
            lm_fail(err, "step %lld: the teacher's answer to row %lld failed (%s)", (long long)step + 1, (long long)r,
                    rq[r].oom ? "out of memory" : rq[r].error ? rq[r].error : "unfinished");
            goto done;
        }
        int32_t *ids = c->ids + r * T, *tg = c->tgt + r * T;
        int64_t na = (int64_t)rq[r].answer.n, len = plen[r] + na;
        for (int64_t t = 0; t < T; t++) {
            int64_t at = t + 1; /* the token position t predicts */
            if (t >= plen[r]) ids[t] = t < len ? rq[r].answer.ids[t - plen[r]] : 0;
            tg[t] = at >= plen[r] && at < len ? rq[r].answer.ids[at - plen[r]] : -1;
            denom += tg[t] >= 0;
        }
        so->answer_tokens += na;
        so->truncated += !rq[r].eos;
    }
    if (!denom) {
        lm_fail(err, "step %lld: no window of the batch has a prompt with an answer to train on", (long long)step + 1);
        goto done;
    }
    lm_train_begin(c->tr);
    for (int64_t b = 0; b < B; b += mb)
        if (lm_train_accumulate(c->tr, c->pool, c->ids + b * T, c->tgt + b * T, mb, denom, B, err)) goto done;
    lm_train_loss_so_far(c->tr, &so->loss, &so->tokens);
    if (!isfinite(so->loss)) {
        lm_fail(err, "step %lld: the loss is not finite (%g); nothing updated", (long long)step + 1, so->loss);
        goto done;
    }
    lm_train_stats ts;
    lm_train_apply(c->tr, c->pool, lr, &ts);
    so->grad_norm = ts.grad_norm;
    rc = 0;
done:
    for (int64_t r = 0; rq && r < B; r++) lm_ids_free(&rq[r].answer);
    free(rq);
    free(plen);
    free(seeds);
    return rc;
}

static int run_step(dist *c, int64_t step, double lr, step_out *so, lm_error *err) {
    memset(so, 0, sizeof *so);
    if (lm_data_window(c->data, LM_SPLIT_TRAIN, c->o.seed, step, 0, c->o.batch, c->o.seq, c->ids, c->tgt, err))
        return -1;
    if (c->o.sequence) return sequence_step(c, step, lr, so, err);
    lm_distill_stats ds;
    if (lm_distill_step(c->dl, c->pool, c->ids, c->tgt, lr, &ds, err)) return -1;
    so->loss = ds.loss;
    so->tokens = ds.tokens;
    so->grad_norm = ds.train.grad_norm;
    return 0;
}

/* ---- the loop ----------------------------------------------------------------------- */

static int loop(dist *c, int64_t start, lm_error *err) {
    const dist_opts *o = &c->o;
    const lm_stage *st = c->st;
    char mpath[PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", st->out_dir);
    if (lm_stage_truncate_metrics(mpath, start, err)) return -1;
    FILE *metrics = fopen(mpath, "a");
    if (!metrics) return lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
    double t_start = lm_stage_now_s(), tokens_done = 0;
    int rc = -1;
    for (int64_t step = start; step < o->steps; step++) {
        double t0 = lm_stage_now_s(), lr = lm_schedule_lr(&o->sched, step);
        step_out ds;
        if (run_step(c, step, lr, &ds, err)) {
            lm_fail_prefix(err, "step %lld", (long long)step + 1);
            goto done;
        }
        int64_t done_steps = step + 1;
        int last = done_steps == o->steps;
        double dt = lm_stage_now_s() - t0, tok_s = (double)(o->batch * o->seq) / (dt > 0 ? dt : 1e-9);
        tokens_done += (double)(o->batch * o->seq);
        if (done_steps % o->log_every == 0 || last || done_steps == 1) {
            if (o->sequence)
                fprintf(metrics,
                        "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens_per_s\": %.6g, "
                        "\"distilled\": %lld, \"answer_tokens\": %lld, \"truncated\": %lld, \"sample_s\": %.4f}\n",
                        (long long)done_steps, ds.loss, lr, ds.grad_norm, tok_s, (long long)ds.tokens,
                        (long long)ds.answer_tokens, (long long)ds.truncated, ds.sample_s);
            else
                fprintf(metrics,
                        "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens_per_s\": %.6g, "
                        "\"distilled\": %lld, \"temperature\": %.9g, \"top_k\": %lld}\n",
                        (long long)done_steps, ds.loss, lr, ds.grad_norm, tok_s, (long long)ds.tokens,
                        o->d.temperature, (long long)o->d.top_k);
            if (fflush(metrics)) {
                lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
                goto done;
            }
        }
        double rate = tokens_done / (lm_stage_now_s() - t_start), eta = (double)(o->steps - done_steps) * o->batch * o->seq / rate;
        char msg[256];
        snprintf(msg, sizeof msg, "step %lld/%lld  %s %.4f  lr %.2e  %.0f tok/s  ETA %.0fs", (long long)done_steps,
                 (long long)o->steps, o->sequence ? "answer loss" : "kl*tau^2", ds.loss, lr, tok_s, eta);
        if (lm_stage_step_end(&c->ck, done_steps, o->save_every, msg, err)) goto done;
    }
    rc = 0;
done:
    fclose(metrics);
    write_plot(st, mpath);
    return rc;
}

/* ---- setup ------------------------------------------------------------------------------ */


/* The model of a stage folder: params and, in *cfg_text, its config.json. */
static int load_model_params(const char *dir, lm_params **out, lm_text *cfg_text, lm_error *err) {
    lm_model *m = NULL;
    if (lm_model_load_flags(dir, LM_LOAD_ROWS, &m, err)) return -1;
    int rc = lm_params_create(&m->cfg, out, err) || lm_params_load_model(*out, m, err);
    lm_model_free(m);
    if (rc || !cfg_text) return rc ? -1 : 0;
    char path[PATH_MAX + 16], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (lm_read_file(path, 1 << 24, &text, &len, err)) return -1;
    rc = lm_text_append(cfg_text, text, len) ? lm_fail(err, "out of memory") : 0;
    free(text);
    return rc;
}

/* The student's config and weights from "config" (fresh, "seed" and "std"). */
static int fresh_student(dist *c, const json_value *cfg, lm_error *err) {
    const lm_stage *st = c->st;
    if (cfg->type == JSON_OBJECT) {
        if (lm_json_canonical(cfg, &c->config) || lm_text_append(&c->config, "\n", 1))
            return lm_fail(err, "out of memory");
    } else if (cfg->type == JSON_STRING) {
        char path[PATH_MAX], *text;
        size_t len;
        snprintf(path, sizeof path, "%s/%s", st->recipe_dir, cfg->str);
        if (lm_read_file(path, 1 << 24, &text, &len, err))
            return lm_fail_prefix(err, "%s: stage %s: \"config\"", st->recipe_path, st->name);
        int bad = lm_text_append(&c->config, text, len);
        free(text);
        if (bad) return lm_fail(err, "out of memory");
    } else {
        return lm_fail(err, "%s: byte %zu: stage %s: \"config\" must be an object or a path", st->recipe_path,
                       cfg->offset, st->name);
    }
    lm_config mc;
    if (lm_config_parse(c->config.data, c->config.len, "config", &mc, err) || lm_params_create(&mc, &c->student, err))
        return lm_fail_prefix(err, "%s: stage %s: the student's config", st->recipe_path, st->name);
    lm_params_init_random(c->student, c->o.seed, c->o.std);
    return 0;
}

/* The teacher's tokenizer must be the data's: same vocabulary is not enough. */
static int check_tokenizer(const dist *c, const char *teacher_dir, lm_error *err) {
    char path[PATH_MAX + 32], hex[65];
    snprintf(path, sizeof path, "%s/tokenizer.json", teacher_dir);
    if (!file_exists(path)) return 0; /* a teacher without tokenizer files: the vocabulary check only */
    if (lm_sha256_file(path, hex, err)) return -1;
    if (strcmp(hex, lm_data_tokenizer_sha256(c->data)))
        return lm_fail(err, "%s: stage %s: the teacher's tokenizer (%s, sha256 %.12s...) is not the one the data was "
                            "made with (sha256 %.12s...)",
                       c->st->recipe_path, c->st->name, path, hex, lm_data_tokenizer_sha256(c->data));
    return 0;
}

int lm_stage_distill(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    dist c;
    memset(&c, 0, sizeof c);
    c.st = st;
    int rc = -1;
    if (read_opts(st, &c.o, err)) return -1;
    const dist_opts *o = &c.o;
    const lm_stage_input *data = lm_stage_find_input(st, "data"), *tok = lm_stage_find_input(st, "tokenizer");
    const lm_stage_input *models[2] = {NULL, NULL};
    int nmodels = 0;
    for (int i = 0; i < st->n_inputs; i++)
        if (lm_stage_is_model_kind(st->inputs[i].kind, 1)) {
            if (nmodels == 2)
                return lm_fail(err, "%s: stage %s: at most two model stages (the teacher and the student's start)",
                               st->recipe_path, st->name);
            models[nmodels++] = &st->inputs[i];
        }
    if (!data) return lm_fail(err, "%s: stage %s: needs a data stage as input", st->recipe_path, st->name);
    const char *teacher_name;
    if (lm_stage_string(st, "teacher", NULL, &teacher_name, err)) return -1;
    const lm_stage_input *teacher = NULL, *start = NULL;
    if (teacher_name) {
        for (int i = 0; i < nmodels; i++)
            if (!strcmp(models[i]->name, teacher_name)) teacher = models[i];
            else start = models[i];
        if (!teacher)
            return lm_fail(err, "%s: stage %s: \"teacher\": \"%s\" is not a model stage among the inputs",
                           st->recipe_path, st->name, teacher_name);
    } else if (nmodels == 1) {
        teacher = models[0];
    } else {
        return lm_fail(err, "%s: stage %s: %s", st->recipe_path, st->name,
                       nmodels ? "two model stages among the inputs: say which is the teacher (\"teacher\": NAME)"
                               : "needs a teacher (a pretrain, sft, verifier_rl or distill stage) among the inputs");
    }
    const json_value *cfg = json_get(st->def, "config");
    if (!cfg == !start)
        return lm_fail(err, "%s: stage %s: the student is either \"config\" (a new model) or a second model stage "
                            "among the inputs, %s",
                       st->recipe_path, st->name, cfg ? "not both" : "and there is neither");
    char teacher_dir[PATH_MAX], start_dir[PATH_MAX];
    snprintf(teacher_dir, sizeof teacher_dir, "%s/latest", teacher->path);
    if (tok) snprintf(c.tok_dir, sizeof c.tok_dir, "%s", tok->path);
    else snprintf(c.tok_dir, sizeof c.tok_dir, "%s", teacher_dir);
    if (!(c.data = lm_data_open(data->path, err))) goto done;
    if (check_tokenizer(&c, teacher_dir, err)) goto done;
    if (o->sequence ? lm_model_load(teacher_dir, &c.teacher_model, err)
                    : load_model_params(teacher_dir, &c.teacher, NULL, err)) {
        lm_fail_prefix(err, "%s: stage %s: the teacher %s", st->recipe_path, st->name, teacher->name);
        goto done;
    }
    if (start) {
        snprintf(start_dir, sizeof start_dir, "%s/latest", start->path);
        if (load_model_params(start_dir, &c.student, &c.config, err)) {
            lm_fail_prefix(err, "%s: stage %s: the student %s", st->recipe_path, st->name, start->name);
            goto done;
        }
    } else if (fresh_student(&c, cfg, err)) {
        goto done;
    }
    if (lm_data_vocab_size(c.data) > c.student->cfg.vocab_size) {
        lm_fail(err, "%s: stage %s: the data's tokenizer has %d tokens, the student's vocabulary %lld",
                st->recipe_path, st->name, lm_data_vocab_size(c.data), (long long)c.student->cfg.vocab_size);
        goto done;
    }
    lm_train_opts to = lm_train_opts_default();
    to.batch = o->batch;
    to.micro_batch = o->micro_batch;
    to.seq = o->seq;
    to.adamw = o->adamw;
    to.clip = o->clip;
    to.bias_gamma = o->bias_gamma;
    if (!(c.pool = lm_pool_create_err(st->threads, err))) goto done;
    if (o->sequence) {
        if (c.teacher_model->cfg.vocab_size != c.student->cfg.vocab_size) {
            lm_fail(err, "%s: stage %s: the teacher's vocabulary has %lld tokens, the student's %lld: distillation "
                         "needs the same tokenizer",
                    st->recipe_path, st->name, (long long)c.teacher_model->cfg.vocab_size,
                    (long long)c.student->cfg.vocab_size);
            goto done;
        }
        lm_engine_opts eo = lm_engine_opts_default();
        eo.max_ctx = o->seq + 1;
        eo.max_seqs = (int)(o->batch < 4096 ? o->batch : 4096);
        eo.max_queue = eo.max_seqs;
        eo.max_batch_tokens = eo.max_seqs > 512 ? eo.max_seqs : 512;
        if (!(c.engine = lm_engine_create(c.teacher_model, NULL, c.pool, &eo, err)) ||
            !(c.tr = lm_trainer_create(c.student, &to, st->threads, err))) {
            lm_fail_prefix(err, "%s: stage %s", st->recipe_path, st->name);
            goto done;
        }
    } else {
        if (!(c.dl = lm_distiller_create(&o->d, c.student, c.teacher, &to, st->threads, err))) {
            lm_fail_prefix(err, "%s: stage %s", st->recipe_path, st->name);
            goto done;
        }
        c.tr = lm_distiller_student(c.dl);
    }
    c.ids = malloc((size_t)(o->batch * o->seq) * sizeof(int32_t));
    c.tgt = malloc((size_t)(o->batch * o->seq) * sizeof(int32_t));
    if (!c.ids || !c.tgt) {
        lm_fail(err, "out of memory");
        goto done;
    }
    c.ck = (lm_stage_ckpt){.st = st, .model_dir = c.tok_dir, .config = &c.config, .p = c.student, .tr = c.tr,
                           .planned_steps = o->steps, .seed = o->seed, .last = -1};
    int64_t begin;
    if (lm_stage_resume(&c.ck, &begin, err)) goto done;
    if (loop(&c, begin, err) || lm_stage_export_final(st, err)) goto done;
    rc = 0;
done:
    free(c.ids);
    free(c.tgt);
    lm_distiller_free(c.dl);
    if (c.o.sequence) lm_trainer_free(c.tr);
    lm_engine_free(c.engine);
    lm_model_free(c.teacher_model);
    lm_params_free(c.student);
    lm_params_free(c.teacher);
    lm_pool_free(c.pool);
    lm_data_close(c.data);
    lm_text_free(&c.config);
    return rc;
}
