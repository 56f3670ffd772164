/* outdir.h — the output folder of `lemma prove` / `lemma verify`: created
 * on first use, locked while a run writes it, and tied to the arguments it
 * was started with (DIR/run.json), so that a rerun continues the same run.
 *
 *   lm_dir_lock lock;
 *   if (lm_outdir_open(dir, &lock, &err)) ...          // mkdir -p, then an exclusive lock
 *   if (lm_run_args_check(dir, args_json, ignore, &err)) ...   // writes run.json or compares
 *   ...
 *   lm_outdir_unlock(&lock);
 *
 * The lock is the shared folder lock (core/dirlock.h: flock on DIR/.lock,
 * released by the kernel when the process dies, so kill -9 leaves nothing to
 * clean up; another run gets "DIR is in use by pid N"). */
#ifndef LEMMA_PROVE_OUTDIR_H
#define LEMMA_PROVE_OUTDIR_H

#include "core/dirlock.h"
#include "core/error.h"

/* Creates dir (and its parents) when missing and takes its lock. -1 with
 * err when dir cannot be made or written, or another process holds the lock. */
int lm_outdir_open(const char *dir, lm_dir_lock *lock, lm_error *err);
void lm_outdir_unlock(lm_dir_lock *lock);

/* args_json: a JSON object of the run's arguments, keys named like the
 * options without "--" ("samples", "refine-top", ...). When DIR/run.json is
 * missing it is written (atomically); otherwise every key not in ignore (a
 * NULL-terminated list; NULL for none) must have the same value in both, or
 * the result is -1 with a message naming the first differing option and
 * both values. */
int lm_run_args_check(const char *dir, const char *args_json, const char *const *ignore, lm_error *err);

#endif
