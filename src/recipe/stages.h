/* stages.h — the stage kinds `lemma build` runs (see build.h, docs/recipe.md).
 *
 * A stage function reads its parameters from st->def (the stage's object in
 * the recipe) and its inputs from st->inputs, writes every output into
 * st->out_dir (an empty directory the build made; the build renames it to
 * BUILD_DIR/<stage name> on success and hashes everything in it into
 * lemma.lock), and returns 0, or -1 with err set. It must be deterministic:
 * the same parameters and input bytes give the same output bytes at any
 * thread count, except for volatile files (logs/, metrics.jsonl, *.log,
 * *.svg; see lock.h), which are kept but not hashed.
 *
 *   int lm_stage_pretrain(const lm_stage *st, const char *build_dir, lm_error *err) {
 *       const lm_stage_input *data = lm_stage_find_input(st, "data");     // DATA_DIR
 *       const lm_stage_input *tok = lm_stage_find_input(st, "tokenizer"); // NULL if none
 *       int64_t steps; if (lm_stage_int(st, "steps", 1000, 1, INT64_MAX, &steps, err)) return -1;
 *       ... train into st->out_dir, calling st->progress now and then ...
 *   }
 */
#ifndef LEMMA_RECIPE_STAGES_H
#define LEMMA_RECIPE_STAGES_H

#include <stdint.h>

#include "core/error.h"
#include "formats/json.h"

typedef struct lm_stage_input {
    const char *name;        /* recipe input or earlier stage */
    const char *kind;        /* "input" (a text file), or the stage's kind: "tokenizer", "data", ... */
    const char *path;        /* the file (inputs) or the stage's output directory */
    char sha256[65];         /* the file's hash, or the stage's outputs digest */
} lm_stage_input;

typedef struct lm_stage {
    const char *name;
    const char *kind;
    const json_value *def;           /* the stage object: parameters by key */
    const char *recipe_path;         /* for messages */
    const char *recipe_dir;          /* parameters that are paths are relative to this */
    const char *out_dir;             /* write here (exists, empty unless resume) */
    int resume;                      /* out_dir holds a partial run of this same stage key
                                        (an interrupted build); a stage may continue it */
    const lm_stage_input *inputs;    /* in recipe order */
    int n_inputs;
    int threads;                     /* worker threads the user asked for (>= 1) */
    /* Optional: a one-line status ("step 120/2000 loss 3.21 ..."), shown as a
     * live line on a terminal. A non-zero return means stop (Ctrl-C): the
     * stage should save what lets it resume, then fail with "interrupted". */
    int (*progress)(void *ctx, const char *msg);
    void *progress_ctx;
    /* Optional: a permanent line for the user, e.g. what a stage removes
     * ("removing RUN/ckpt-00000010 (--keep 2)"). */
    void (*notice)(void *ctx, const char *msg);
    void *notice_ctx;
} lm_stage;

/* The first input of a kind ("input", "tokenizer", "data", ...), or NULL. */
const lm_stage_input *lm_stage_find_input(const lm_stage *st, const char *kind);

/* Parameter readers: a missing key gives the default; a present one of the
 * wrong type or range is an error naming the recipe, stage, key and byte. */
int lm_stage_int(const lm_stage *st, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out, lm_error *err);
int lm_stage_double(const lm_stage *st, const char *key, double def, double lo, double hi, double *out, lm_error *err);
int lm_stage_bool(const lm_stage *st, const char *key, int def, int *out, lm_error *err);
/* *out points into the recipe (valid while it is loaded); def may be NULL. */
int lm_stage_string(const lm_stage *st, const char *key, const char *def, const char **out, lm_error *err);

/* The stage kinds. */
int lm_stage_tokenizer(const lm_stage *st, const char *build_dir, lm_error *err);
int lm_stage_data(const lm_stage *st, const char *build_dir, lm_error *err);
/* Pretraining (src/recipe/stage_pretrain.c; `lemma train` provides it). */
int lm_stage_pretrain(const lm_stage *st, const char *build_dir, lm_error *err);
/* GRPO on verification prompts (src/recipe/stage_verifier_rl.c). */
int lm_stage_verifier_rl(const lm_stage *st, const char *build_dir, lm_error *err);
/* Logit distillation of a teacher into a student (src/recipe/stage_distill.c). */
int lm_stage_distill(const lm_stage *st, const char *build_dir, lm_error *err);
/* GRPO for the generator with the learned verifier as reward (src/recipe/stage_grpo.c). */
int lm_stage_grpo(const lm_stage *st, const char *build_dir, lm_error *err);
/* Rejection-sampling fine-tuning with checker-labelled self-judging rows (src/recipe/stage_rft.c). */
int lm_stage_rft(const lm_stage *st, const char *build_dir, lm_error *err);

#endif
