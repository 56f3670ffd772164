/* stages.c — parameter helpers and the tokenizer and data stage kinds; see
 * stages.h. Their parameters are documented in docs/recipe.md and validated
 * when the recipe loads (recipe.c); the readers here check again. */
#include "recipe/stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shards.h"
#include "tokenizer/train.h"

const lm_stage_input *lm_stage_find_input(const lm_stage *st, const char *kind) {
    for (int i = 0; i < st->n_inputs; i++)
        if (!strcmp(st->inputs[i].kind, kind)) return &st->inputs[i];
    return NULL;
}

int lm_stage_int(const lm_stage *st, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out, lm_error *err) {
    const json_value *v = json_get(st->def, key);
    *out = def;
    if (!v) return 0;
    if (!json_as_int(v, out) || *out < lo || *out > hi)
        return lm_fail(err, "%s: byte %zu: stage %s: \"%s\": expected an integer in [%lld, %lld]", st->recipe_path,
                       v->offset, st->name, key, (long long)lo, (long long)hi);
    return 0;
}

int lm_stage_double(const lm_stage *st, const char *key, double def, double lo, double hi, double *out, lm_error *err) {
    const json_value *v = json_get(st->def, key);
    *out = def;
    if (!v) return 0;
    if (!json_as_double(v, out) || !(*out >= lo && *out <= hi))
        return lm_fail(err, "%s: byte %zu: stage %s: \"%s\": expected a number in [%g, %g]", st->recipe_path, v->offset,
                       st->name, key, lo, hi);
    return 0;
}

int lm_stage_bool(const lm_stage *st, const char *key, int def, int *out, lm_error *err) {
    const json_value *v = json_get(st->def, key);
    *out = def;
    if (!v) return 0;
    if (!json_as_bool(v, out))
        return lm_fail(err, "%s: byte %zu: stage %s: \"%s\": expected true or false", st->recipe_path, v->offset,
                       st->name, key);
    return 0;
}

int lm_stage_string(const lm_stage *st, const char *key, const char *def, const char **out, lm_error *err) {
    const json_value *v = json_get(st->def, key);
    *out = def;
    if (!v) return 0;
    if (v->type != JSON_STRING || strlen(v->str) != v->len)
        return lm_fail(err, "%s: byte %zu: stage %s: \"%s\": expected a string", st->recipe_path, v->offset, st->name,
                       key);
    *out = v->str;
    return 0;
}

/* The paths of the stage's text inputs, in order. */
static const char **text_inputs(const lm_stage *st, int *n, lm_error *err) {
    const char **files = calloc((size_t)st->n_inputs + 1, sizeof *files);
    if (!files) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    *n = 0;
    for (int i = 0; i < st->n_inputs; i++)
        if (!strcmp(st->inputs[i].kind, "input")) files[(*n)++] = st->inputs[i].path;
    return files;
}

/* ---- tokenizer ---------------------------------------------------------------- */

int lm_stage_tokenizer(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    int64_t vocab, minf, maxb, digits;
    if (lm_stage_int(st, "vocab_size", o.vocab_size, 263, 1 << 24, &vocab, err) ||
        lm_stage_int(st, "digit_group", 3, 1, 3, &digits, err) ||
        lm_stage_int(st, "min_frequency", o.min_frequency, 1, INT64_MAX, &minf, err) ||
        lm_stage_int(st, "max_bytes", 0, 0, INT64_MAX, &maxb, err))
        return -1;
    o.vocab_size = (int32_t)vocab;
    o.min_frequency = minf;
    o.max_bytes = (size_t)maxb;
    o.digit_group = (int)digits;
    o.progress = st->progress;
    o.progress_ctx = st->progress_ctx;
    int n;
    const char **files = text_inputs(st, &n, err);
    if (!files) return -1;
    int rc = lm_bpe_train_files(files, n, &o, st->out_dir, err);
    free(files);
    return rc;
}

/* ---- data ------------------------------------------------------------------------- */

static int data_progress(void *ctx, const char *phase, int64_t done, int64_t total, int64_t tokens) {
    const lm_stage *st = ctx;
    if (!st->progress) return 0;
    char msg[160];
    if (!strcmp(phase, "scan"))
        snprintf(msg, sizeof msg, "scanning file %lld of %lld", (long long)done, (long long)total);
    else
        snprintf(msg, sizeof msg, "tokenizing %3.0f%%, %.1f/%.1f MB, %lld tokens", total ? 100.0 * done / total : 100.0,
                 done / 1e6, total / 1e6, (long long)tokens);
    return st->progress(st->progress_ctx, msg);
}

static int stage_windows(const lm_stage *st, int *doc_windows, lm_error *err) {
    const char *w;
    if (lm_stage_string(st, "windows", "any", &w, err)) return -1;
    if (strcmp(w, "any") && strcmp(w, "document"))
        return lm_fail(err, "%s: stage %s: \"windows\": expected \"any\" or \"document\"", st->recipe_path, st->name);
    *doc_windows = !strcmp(w, "document");
    return 0;
}

int lm_stage_data(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    lm_data_opts o;
    lm_data_opts_default(&o);
    const char *sep;
    int64_t seed, shard;
    if (lm_stage_string(st, "doc_sep", "file", &sep, err) ||
        lm_stage_double(st, "val_fraction", o.val_fraction, 0, 0.5, &o.val_fraction, err) ||
        lm_stage_int(st, "seed", 0, 0, INT64_MAX, &seed, err) ||
        lm_stage_int(st, "shard_tokens", o.shard_tokens, 1, (int64_t)1 << 32, &shard, err) ||
        lm_stage_bool(st, "bos", 1, &o.bos, err) || stage_windows(st, &o.doc_windows, err))
        return -1;
    if ((o.doc_sep = lm_data_doc_sep_parse(sep)) < 0)
        return lm_fail(err, "%s: stage %s: \"doc_sep\": expected \"file\", \"line\" or \"blank\"", st->recipe_path, st->name);
    o.seed = (uint64_t)seed;
    o.shard_tokens = shard;
    o.progress = data_progress;
    o.progress_ctx = (void *)st;
    const lm_stage_input *tok = lm_stage_find_input(st, "tokenizer");
    if (!tok) return lm_fail(err, "stage %s: no tokenizer stage among the inputs", st->name);
    int n;
    const char **files = text_inputs(st, &n, err);
    if (!files) return -1;
    int rc = lm_data_build(files, n, tok->path, st->out_dir, &o, err);
    free(files);
    return rc;
}
