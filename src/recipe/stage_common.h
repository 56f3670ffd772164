/* stage_common.h — what the training stages of `lemma build` (grpo,
 * verifier_rl, distill, pretrain) share: atomic checkpoints with resume,
 * clearing a stage folder, metrics lines and the final export.
 *
 *   lm_stage_ckpt ck = {.st = st, .model_dir = dir, .p = p, .tr = tr, .planned_steps = n, .seed = s, .last = -1};
 *   int64_t start;  lm_stage_resume(&ck, &start, &err);       // the newest ckpt-N loaded, or 0
 *   lm_stage_write_checkpoint(&ck, step, &err);              // ckpt-N/, latest -> ckpt-N
 *   lm_stage_export_final(st, &err);                          // latest/'s model beside it
 */
#ifndef LEMMA_RECIPE_STAGE_COMMON_H
#define LEMMA_RECIPE_STAGE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "recipe/stages.h"
#include "tokenizer/tokenizer.h"
#include "train/params.h"
#include "train/step.h"

/* ---- checkpoints ---- */

typedef struct lm_stage_ckpt {
    const lm_stage *st;
    const char *model_dir;       /* config.json (unless config is set) and the tokenizer files, where present,
                                    are copied from it; NULL or "": no tokenizer files */
    const lm_text *config;       /* config.json's bytes, NULL: copied from model_dir */
    const char *sampling;        /* trainer_state.json's "sampling" note, NULL: none */
    lm_params *p;
    lm_trainer *tr;
    int64_t planned_steps;
    uint64_t seed;
    int64_t last;                /* the newest checkpoint written or loaded, -1: none */
} lm_stage_ckpt;

/* ckpt-NNNNNNNN/ (weights, AdamW moments, trainer_state.json) written as
 * .tmp, fsynced, renamed; latest -> it; the previous one removed. */
int lm_stage_write_checkpoint(lm_stage_ckpt *c, int64_t step, lm_error *err);
/* Where a build resumes the stage: with st->resume, the newest ckpt-N
 * loaded (*start = N, noted), or the folder cleared when it has none;
 * else *start = 0. */
int lm_stage_resume(lm_stage_ckpt *c, int64_t *start, lm_error *err);
/* After step done_steps: progress reported (a stop asked by it or by a
 * signal saves and fails), a checkpoint every save_every steps and at the
 * last one. -1 with the error when the loop must end early. For the
 * resume tests, LEMMA_TEST_CRASH_AFTER_CHECKPOINT=STAGE:STEP in the
 * environment kills the process (SIGKILL) right after stage STAGE's
 * checkpoint of step STEP is complete. */
int lm_stage_step_end(lm_stage_ckpt *c, int64_t done_steps, int64_t save_every, const char *progress,
                      lm_error *err);
/* Empties the stage folder (lemma's marker and lock kept), noting each removal. */
int lm_stage_clear_folder(const lm_stage *st, const char *why, lm_error *err);
/* config, weights and tokenizer files of latest/ copied beside it. */
int lm_stage_export_final(const lm_stage *st, lm_error *err);

/* ---- logs ---- */

/* Keeps the metrics lines of steps <= last (a resumed stage writes the rest again). */
int lm_stage_truncate_metrics(const char *path, int64_t last, lm_error *err);
/* Appends ", \"key\": v" (null when v is not finite). */
void lm_stage_put_num(lm_text *t, const char *key, double v);
void lm_stage_fmt_eta(double s, char *buf, size_t n);
double lm_stage_now_s(void);

/* The reward/acceptance curves of an RL-style stage: the columns names[k]
 * (labelled labels[k], k < n <= 4) of metrics.jsonl against "step" (a
 * resumed stage's rewritten steps replace the old ones), drawn into
 * OUT/svg_name, and the trainer's own curves into OUT/training.svg. Both
 * are volatile files: nothing happens when the metrics cannot be read. */
void lm_stage_write_step_plots(const lm_stage *st, const char *metrics_path, const char *title, const char *svg_name,
                               const char *const *names, const char *const *labels, int n);

/* ---- inputs ---- */

/* A stage kind whose output folder holds a model (pretrain, sft, and the
 * post-training stages); with_distill: a distill stage's student counts. */
int lm_stage_is_model_kind(const char *kind, int with_distill);

#endif
