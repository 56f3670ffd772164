/* dirlock.h — folders lemma writes into over time: a lock while in use, and a
 * marker in every folder lemma creates, so that it deletes only what it made.
 *
 * Locking. A run folder (lemma train), a build folder (lemma build) and a
 * prover's output folder are each locked by the one process writing into
 * them; a second writer gets an error instead of interleaving with the first.
 *
 *   lm_dir_lock lock;
 *   if (lm_dir_lock_acquire("runs/a", &lock, &err)) return -1;
 *       // err: "runs/a is in use by pid 4242"
 *   ... write into runs/a ...
 *   lm_dir_lock_release(&lock);
 *
 * The lock is flock(LOCK_EX) on DIR/.lock, which holds the owner's pid as
 * text. The kernel drops it when the process exits, however it exits, so a
 * killed process never leaves a folder locked; a stale .lock file from a
 * killed process is taken over. It is per open file: a second acquire of the
 * same folder in the same process fails too. DIR must exist. Never blocks.
 * Release removes DIR/.lock (safe: acquire checks that the file it locked is
 * still the one at DIR/.lock). The descriptor is close-on-exec.
 *
 * Ownership. Every folder lemma creates for its outputs gets a marker file,
 * DIR/.lemma-made. lemma removes or replaces a folder only when it holds the
 * marker (or when lemma.lock records exactly the folder's contents, see
 * build.c); anything else is an error that names the folder. Both .lock and
 * .lemma-made are left out of lemma.lock's hashes (lock.h: lm_lock_volatile).
 *
 *   if (mkdir(dir, 0777) || lm_dir_mark_made(dir, &err)) ...
 *   if (!lm_dir_made_by_lemma(dir)) return lm_fail(&err, "%s: not made by lemma", dir);
 */
#ifndef LEMMA_CORE_DIRLOCK_H
#define LEMMA_CORE_DIRLOCK_H

#include "core/error.h"

#define LM_DIR_LOCK_NAME ".lock"
#define LM_DIR_MARKER_NAME ".lemma-made"

typedef struct lm_dir_lock {
    int fd;             /* -1 when not held */
    char path[4096];    /* DIR/.lock */
} lm_dir_lock;

/* Locks dir. 0, or -1 with err: "DIR is in use by pid N" when another open
 * lock holds it, else a message naming DIR/.lock and the system error. */
int lm_dir_lock_acquire(const char *dir, lm_dir_lock *lock, lm_error *err);
/* Releases (and removes DIR/.lock); a no-op on a lock not held. */
void lm_dir_lock_release(lm_dir_lock *lock);

/* Writes DIR/.lemma-made (a one-line note). 0, or -1 with err. */
int lm_dir_mark_made(const char *dir, lm_error *err);
/* 1 when dir is a real directory (not a symbolic link) holding the marker as
 * a regular file, else 0. */
int lm_dir_made_by_lemma(const char *dir);

#endif
