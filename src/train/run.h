/* run.h — a whole training run: data windows, steps, schedule, validation,
 * metrics, checkpoints, and exact resumption. `lemma train` and the build's
 * pretrain stage both run through here.
 *
 * RUN_DIR layout:
 *   run.json                the run's settings (written once; --resume reads it)
 *   metrics.jsonl           one JSON object per logged step (append-only; on
 *                           resume, lines past the checkpoint are dropped);
 *                           a number that is not finite is written as null
 *   .lock                   while a process trains in it (core/dirlock.h): a
 *                           second one gets "RUN_DIR is in use by pid N"
 *   ckpt-00000120/          a checkpoint: config.json, model.safetensors (F32
 *                           weights, HF names), optim_m.safetensors,
 *                           optim_v.safetensors (AdamW moments),
 *                           trainer_state.json, tokenizer files when known
 *   latest -> ckpt-...      the newest complete checkpoint: an HF model
 *                           directory that `lemma generate` loads
 *
 * A checkpoint is written into ckpt-N.tmp/, each file atomically, then the
 * folder is renamed and `latest` re-pointed with an atomic rename: a crash at
 * any moment leaves `latest` naming a complete checkpoint. Nothing else needs
 * saving: the data windows and the learning rate are pure functions of
 * (seed, step), so a resumed run computes exactly the steps the uninterrupted
 * run would have, and ends with bit-identical weights (tested).
 *
 * Resuming takes the newest ckpt-N folder (ckpt-N.tmp ones are unfinished
 * and ignored), whatever `latest` says; if that newest one lacks a file, it
 * is an error naming it, never a silent fall-back. A run folder without any
 * checkpoint (killed before the first) starts from step 0; one with
 * checkpoints starts over only when asked (restart). Every removal (old
 * checkpoints beyond keep, leftovers, metrics lines past the checkpoint) is
 * announced through the notice sink. A failed metrics append or checkpoint
 * write stops the run with an error; a failed checkpoint leaves no
 * ckpt-N.tmp behind. */
#ifndef LEMMA_TRAIN_RUN_H
#define LEMMA_TRAIN_RUN_H

#include <stdint.h>

#include "core/error.h"
#include "train/adamw.h"
#include "train/schedule.h"
#include "train/step.h"

typedef struct lm_run_opts {
    const char *out_dir;         /* RUN_DIR */
    const char *config_path;     /* fresh init from this HF config.json ... */
    const char *config_json;     /* ... or from this config text (recipes) */
    const char *init_dir;        /* ... or start from the weights of this model directory */
    const char *data_dir;        /* token shards (lemma data) */
    const char *tokenizer_dir;   /* copied into checkpoints; NULL: DATA_DIR's tokenizer files if any */
    int64_t steps;               /* planned optimiser steps */
    int64_t batch, micro_batch, seq;
    lm_schedule sched;           /* total is set to steps */
    lm_adamw_opts adamw;
    double clip, bias_gamma, balance_alpha;
    double mtp_weight;           /* MTP loss weight (step.h); > 0 gives the config num_nextn_predict_layers 1 */
    lm_precision precision;      /* of the products (step.h); run.json records bf16 only */
    uint64_t seed;               /* init and data order */
    double init_std;             /* <= 0: the config's initializer_range, else 0.02 */
    int threads;
    int64_t save_every;          /* 0: only at the end (and on a signal) */
    int64_t eval_every;          /* 0: only at the end */
    int64_t eval_batches;        /* micro-batches of validation windows per evaluation */
    int64_t log_every;
    int64_t keep;                /* checkpoints to keep (>= 1) */
    int quiet;                   /* no progress on stderr */
    /* run.json without "world_size": a build stage's run.json is a hashed
     * output, which must not depend on how many ranks computed the same bits */
    int omit_world_size;
    /* Optional status sink (the build's live line); a non-zero return stops
     * the run like a signal: checkpoint, then an "interrupted" error. */
    int (*progress)(void *ctx, const char *msg);
    void *progress_ctx;
    /* Optional sink for permanent lines (what the run removes); NULL: stderr,
     * even when quiet. */
    void (*notice)(void *ctx, const char *msg);
    void *notice_ctx;
} lm_run_opts;

/* The one set of defaults (lemma train, the recipe's pretrain stage and
 * their docs read it): steps 1000, batch 8, micro-batch = batch, seq 256,
 * cosine 3e-4 -> lr/10 (lr_min < 0 means lr/10) with 1% warmup (warmup < 0),
 * wsd decay over 20% of the steps (decay_steps 0), AdamW (0.9, 0.95, 1e-8,
 * weight decay 0.1), clip 1, gamma 1e-3, alpha 0, seed 0, init std 0.02,
 * save every 0, eval every 0, 8 eval batches, log every 10, keep 2,
 * 1 thread. */
void lm_run_opts_default(lm_run_opts *o);

/* Data parallel (train/dp.h): under mpirun every rank calls the same
 * function with the same arguments. Rank 0 does all a single process does
 * (the folder, run.json with "world_size" unless omit_world_size, metrics, checkpoints, the
 * messages); each rank runs whole micro-batches of every step (the first
 * (batch/micro_batch) % K ranks one more), and the gradients are summed in
 * the order one process sums its micro-batches, so the weights after every
 * step are bit-identical to a single process with the same batch and
 * micro-batch, for any number of ranks (tested). Fewer micro-batches than
 * ranks is refused. The other ranks return 1, with nothing to say, when
 * rank 0 stopped the run (rank 0 returns why); -1 from a rank without
 * lm_dp_stop_was_told() means the others may still wait for it (the
 * caller ends the job, lm_dp_abort). metrics.jsonl lines then also carry
 * "allreduce_s": rank 0's seconds from the end of its own passes to the
 * summed gradient (waiting for slower ranks included). */

/* A new run into o->out_dir, which must be new or empty. */
int lm_train_run(const lm_run_opts *o, lm_error *err);

typedef struct lm_resume_opts {
    int threads;                 /* <= 0: as recorded (results do not depend on it) */
    int quiet;
    int restart;                 /* start over from step 0 even though the run has
                                    checkpoints (they and the metrics are removed) */
    int (*progress)(void *ctx, const char *msg);
    void *progress_ctx;
    void (*notice)(void *ctx, const char *msg);
    void *notice_ctx;
} lm_resume_opts;

/* Continues the run in run_dir from its newest checkpoint to the planned step
 * count (see above). ro may be NULL (defaults). Stops like lm_train_run on a
 * stop request (core/stop.h) or a non-zero progress return. */
int lm_train_resume(const char *run_dir, const lm_resume_opts *ro, lm_error *err);

#endif
