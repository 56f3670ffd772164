/* build.h — `lemma build`: run a recipe's stages into a build directory and
 * record every artifact's SHA-256 in BUILD_DIR/lemma.lock (lock.h).
 *
 *   lm_build_opts o = {.out_dir = "out/default", .threads = 2};
 *   lm_build_result res;
 *   if (lm_build(recipe, &o, &res, &err)) ...           // res.built, res.reused
 *   int n = lm_build_check(recipe, &o, "out/default.check-1", on_diff, ctx, &err);
 *
 * The build directory:
 *   inputs/<name>.txt    built-in inputs, made and hash-checked (file inputs
 *                        are read in place and checked the same way)
 *   <stage>/             each stage's outputs
 *   .<stage>.partial-K/  a stage being built (K = its key's first 16 hex digits);
 *                        renamed to <stage>/ on success. An interrupted pretrain
 *                        stage is resumed from it by the next build.
 *   lemma.lock           written after every stage, atomically
 *   .lock                while a build runs in it (core/dirlock.h): a second
 *                        build gets "BUILD_DIR is in use by pid N"
 *   .lemma-made          in the build folder and in every folder a build
 *                        creates (stages, partials, inputs/)
 *
 * lemma removes or overwrites only what it made: an old stage folder or
 * partial is removed (with a note) only when it holds .lemma-made, or, for
 * folders from before the marker, when lemma.lock records exactly its files;
 * a file in inputs/ is overwritten only when inputs/ holds the marker or the
 * lock records exactly its bytes. Anything else is an error naming it, given
 * before any stage runs.
 *
 * A stage is reused ("up to date") when lemma.lock has it with the same key
 * and its directory still hashes to the recorded outputs digest; otherwise it
 * runs (and so do the stages after it whose key changes in consequence). The
 * key is the SHA-256 of "lemma-stage 1\n", the kind, the canonical JSON of
 * the stage's definition (recipe.h) and, per input in order, its name, kind
 * and hash (a file's SHA-256, or an earlier stage's outputs digest). Every
 * input is checked against the recipe's "sha256" before any stage runs; a
 * missing or different hash is an error that prints the actual one. */
#ifndef LEMMA_RECIPE_BUILD_H
#define LEMMA_RECIPE_BUILD_H

#include "core/error.h"
#include "recipe/lock.h"
#include "recipe/recipe.h"

typedef struct lm_build_opts {
    const char *out_dir;     /* the build directory (created when missing) */
    int threads;             /* passed to stages (>= 1; 0 means 1) */
    const char *until;       /* stop after this stage (NULL: all stages) */
    int force;               /* run every stage, even when up to date */
    /* Messages for the user: transient (1) a live status line of the running
     * stage, else (0) a permanent line ("[2/3] data: built in 1.2 s").
     * A non-zero return stops the build ("interrupted"). May be NULL. */
    int (*note)(void *ctx, int transient, const char *msg);
    void *note_ctx;
} lm_build_opts;

typedef struct lm_build_result {
    int built;               /* stages run */
    int reused;              /* stages up to date */
} lm_build_result;

int lm_build(const lm_recipe *r, const lm_build_opts *o, lm_build_result *res, lm_error *err);

/* Under mpirun (train/dp.h, lm_dp_start called), every rank calls lm_build
 * (or lm_build_check) with the same arguments, or, for ranks > 0, just
 * lm_build_follow (they need neither the recipe nor the directory). Rank 0
 * builds exactly as one process does -- every file, lock and message, and the
 * stages other than pretrain and sft, alone -- and the other ranks join each
 * pretrain and sft run as its data-parallel ranks, so lemma.lock is the
 * one-process build's byte for byte (tested). lm_build_follow returns 0 when
 * rank 0 finished, 1 when rank 0 stopped (rank 0 has the message), -1 on this
 * rank's own error. Rank 0, whatever happened, ends with
 * lm_build_release_ranks(): it tells the ranks still waiting that the build
 * stopped; -1 means they may be stuck inside a failed training stage and
 * the caller must end the job (lm_dp_abort). Outside mpirun both are no-ops. */
int lm_build_follow(const lm_build_opts *o, lm_error *err);
int lm_build_release_ranks(void);

/* Rebuilds every stage (up to o->until) into scratch_dir (which must be
 * empty or absent) and compares its artifacts with o->out_dir/lemma.lock:
 * diff(ctx, what, path, sha_lock, sha_rebuilt) per difference ("differs",
 * "missing" from the rebuild, "extra" in the rebuild, "recipe" when the
 * recipe changed since the lock was written). Only the stages rebuilt (and
 * inputs/) are compared. Returns the number of differences, or -1 on error
 * (e.g. no lemma.lock: build first). scratch_dir is left for the caller. */
int lm_build_check(const lm_recipe *r, const lm_build_opts *o, const char *scratch_dir,
                   void (*diff)(void *ctx, const char *what, const char *path, const char *sha_lock,
                                const char *sha_rebuilt),
                   void *ctx, lm_error *err);

#endif
