/* stage_pretrain.c — the "pretrain" stage kind of `lemma build`: a training
 * run (train/run.h) into the stage's folder.
 *
 * Parameters (docs/recipe.md): config (an HF config object, or a path
 * relative to the recipe), steps, batch, micro_batch, seq, lr, min_lr,
 * warmup, schedule, decay_steps, decay_shape, weight_decay, beta1, beta2,
 * eps, clip, bias_gamma, balance_alpha, seed, std, save_every, eval_every,
 * eval_batches, log_every, keep. The data input is the run's DATA_DIR; a
 * tokenizer input is shipped with every checkpoint.
 *
 * Hashed outputs: config.json, run.json (paths in it are relative, threads
 * and the rank count are not recorded), the kept checkpoints and `latest`. metrics.jsonl holds
 * timings and is not hashed. An interrupted build resumes the run. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "recipe/build.h"
#include "recipe/recipe.h"
#include "recipe/stage_common.h"
#include "recipe/stages.h"
#include "train/run.h"

static const char *const keys[] = {
    "name", "kind", "inputs", "config", "steps", "batch", "micro_batch", "seq", "lr", "min_lr", "warmup", "schedule",
    "decay_steps", "decay_shape", "weight_decay", "beta1", "beta2", "eps", "clip", "bias_gamma", "balance_alpha",
    "precision", "seed", "std", "save_every", "eval_every", "eval_batches", "log_every", "keep", "description", "export", NULL};

/* "export": true makes the stage folder itself a Hugging Face model
 * directory: the final checkpoint's weights, config and tokenizer files are
 * copied beside run.json, so `lemma generate STAGE_DIR` and `lemma prove
 * --model STAGE_DIR` work on it (lm_stage_export_final). */
int lm_stage_pretrain(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    char q[80]; /* an unknown key, quoted and escaped for the message */
    for (const json_value *m = st->def->child; m; m = m->next) {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++) known = !strcmp(m->key, keys[i]);
        if (!known)
            return lm_fail(err, "%s: byte %zu: stage %s: unknown key %s for a pretrain stage", st->recipe_path, m->offset,
                           st->name, json_quote(q, sizeof q, m->key, m->key_len));
    }
    const lm_stage_input *data = lm_stage_find_input(st, "data"), *tok = lm_stage_find_input(st, "tokenizer");
    if (!data) return lm_fail(err, "%s: stage %s: needs a data stage as input", st->recipe_path, st->name);
    char runjson[PATH_MAX];
    snprintf(runjson, sizeof runjson, "%s/run.json", st->out_dir);
    FILE *f = fopen(runjson, "r");
    int export;
    if (lm_stage_bool(st, "export", 0, &export, err)) {
        if (f) fclose(f);
        return -1;
    }
    /* an interrupted build's partial folder without run.json holds a run
     * killed before it started (config.json at most): lm_train_run wants an
     * empty folder, so remove what is there (the folder is the build's) */
    if (st->resume && !f && lm_stage_clear_folder(st, "from a run that never started", err)) return -1;
    if (st->resume && f) {
        fclose(f);
        lm_resume_opts ro = {.threads = st->threads, .quiet = 1, .progress = st->progress,
                             .progress_ctx = st->progress_ctx, .notice = st->notice, .notice_ctx = st->notice_ctx};
        if (lm_train_resume(st->out_dir, &ro, err)) return -1;
        return export ? lm_stage_export_final(st, err) : 0;
    }
    if (f) fclose(f);

    lm_run_opts o;
    lm_run_opts_default(&o);
    o.out_dir = st->out_dir;
    o.data_dir = data->path;
    o.tokenizer_dir = tok ? tok->path : NULL;
    o.threads = st->threads;
    o.quiet = 1;
    o.progress = st->progress;
    o.progress_ctx = st->progress_ctx;
    o.notice = st->notice;
    o.notice_ctx = st->notice_ctx;
    /* A build's output is its final model: one checkpoint unless the recipe
     * asks for more (lemma train keeps lm_run_opts_default's). */
    o.keep = 1;
    /* the lock of a build under mpirun is the one-process build's */
    o.omit_world_size = 1;
    const json_value *cfg = json_get(st->def, "config");
    lm_text cfg_text = {0};
    char cfg_path[PATH_MAX], init_path[PATH_MAX];
    const lm_stage_input *init = lm_stage_find_input(st, "pretrain");
    if (!init) init = lm_stage_find_input(st, "sft");
    if (!strcmp(st->kind, "sft")) {
        /* fine-tuning: the weights (and config) of the model stage it starts from */
        if (!init) return lm_fail(err, "%s: stage %s: needs a pretrain or sft stage as input", st->recipe_path, st->name);
        snprintf(init_path, sizeof init_path, "%s/latest", init->path);
        o.init_dir = init_path;
    } else if (!cfg) return lm_fail(err, "%s: stage %s: missing 'config' (an HF config object or path)", st->recipe_path, st->name);
    if (o.init_dir) {
        /* the config comes with the weights */
    } else if (cfg->type == JSON_OBJECT) {
        if (lm_json_canonical(cfg, &cfg_text) || lm_text_append(&cfg_text, "\n", 1))
            return lm_fail(err, "out of memory");
        o.config_json = cfg_text.data;
    } else if (cfg->type == JSON_STRING) {
        snprintf(cfg_path, sizeof cfg_path, "%s/%s", st->recipe_dir, cfg->str);
        o.config_path = cfg_path;
    } else {
        return lm_fail(err, "%s: byte %zu: stage %s: 'config' must be an object or a path", st->recipe_path, cfg->offset,
                       st->name);
    }
    /* Every default is the run's (lm_run_opts_default), read in place. */
    int64_t seed = (int64_t)o.seed;
    const char *sched = "cosine", *shape = "linear", *precision = "f32";
    int rc = lm_stage_int(st, "steps", o.steps, 1, 1ll << 40, &o.steps, err) ||
             lm_stage_int(st, "batch", o.batch, 1, 1 << 20, &o.batch, err) ||
             lm_stage_int(st, "micro_batch", o.micro_batch, 0, 1 << 20, &o.micro_batch, err) ||
             lm_stage_int(st, "seq", o.seq, 2, 1 << 24, &o.seq, err) ||
             lm_stage_double(st, "lr", o.sched.lr_max, 1e-12, 10, &o.sched.lr_max, err) ||
             lm_stage_double(st, "min_lr", o.sched.lr_min, 0, 10, &o.sched.lr_min, err) ||
             lm_stage_int(st, "warmup", o.sched.warmup, -1, 1ll << 40, &o.sched.warmup, err) ||
             lm_stage_string(st, "schedule", sched, &sched, err) ||
             lm_stage_int(st, "decay_steps", o.sched.decay_steps, 0, 1ll << 40, &o.sched.decay_steps, err) ||
             lm_stage_string(st, "decay_shape", shape, &shape, err) ||
             lm_stage_double(st, "weight_decay", o.adamw.weight_decay, 0, 10, &o.adamw.weight_decay, err) ||
             lm_stage_double(st, "beta1", o.adamw.beta1, 0, 0.999999, &o.adamw.beta1, err) ||
             lm_stage_double(st, "beta2", o.adamw.beta2, 0, 0.9999999, &o.adamw.beta2, err) ||
             lm_stage_double(st, "eps", o.adamw.eps, 0, 1, &o.adamw.eps, err) ||
             lm_stage_double(st, "clip", o.clip, 0, 1e9, &o.clip, err) ||
             lm_stage_double(st, "bias_gamma", o.bias_gamma, 0, 10, &o.bias_gamma, err) ||
             lm_stage_double(st, "balance_alpha", o.balance_alpha, 0, 100, &o.balance_alpha, err) ||
             lm_stage_int(st, "seed", seed, 0, INT64_MAX, &seed, err) ||
             lm_stage_double(st, "std", o.init_std, 0, 10, &o.init_std, err) ||
             lm_stage_int(st, "save_every", o.save_every, 0, 1ll << 40, &o.save_every, err) ||
             lm_stage_int(st, "eval_every", o.eval_every, 0, 1ll << 40, &o.eval_every, err) ||
             lm_stage_int(st, "eval_batches", o.eval_batches, 1, 1 << 20, &o.eval_batches, err) ||
             lm_stage_int(st, "log_every", o.log_every, 1, 1ll << 40, &o.log_every, err) ||
             lm_stage_int(st, "keep", o.keep, 1, 1000, &o.keep, err) ||
             lm_stage_string(st, "precision", precision, &precision, err);
    if (rc) {
        lm_text_free(&cfg_text);
        return -1;
    }
    o.seed = (uint64_t)seed;
    if (lm_schedule_parse_kind(sched, &o.sched.kind) || lm_schedule_parse_decay(shape, &o.sched.decay)) {
        lm_text_free(&cfg_text);
        return lm_fail(err, "%s: stage %s: schedule must be cosine|wsd|constant and decay_shape linear|cosine|sqrt",
                       st->recipe_path, st->name);
    }
    if (lm_precision_parse(precision, &o.precision)) {
        lm_text_free(&cfg_text);
        return lm_fail(err, "%s: stage %s: precision must be f32 or bf16 (got \"%s\")", st->recipe_path, st->name,
                       precision);
    }
    rc = lm_train_run(&o, err);
    lm_text_free(&cfg_text);
    return rc ? rc : export ? lm_stage_export_final(st, err) : 0;
}
