/* lock.h — lemma.lock: what a build made, with the SHA-256 of every artifact.
 *
 *   {
 *     "lemma_lock": 1,
 *     "recipe": "default",
 *     "recipe_sha256": "<hash of the recipe file>",
 *     "inputs": {"kjv": {"path": "inputs/kjv.txt", "sha256": "..."}},
 *     "stages": {
 *       "tokenizer": {"kind": "tokenizer", "key": "<stage key>", "outputs_sha256": "<outputs digest>"},
 *       ...
 *     },
 *     "artifacts": {
 *       "inputs/kjv.txt": "<sha256>",
 *       "tokenizer/tokenizer.json": "<sha256>",
 *       ...
 *     }
 *   }
 *
 * Artifact paths are relative to the build directory, '/'-separated, sorted
 * by byte order; the file is written atomically and holds no time or
 * absolute path, so two builds of one recipe give identical lock files.
 * A stage's key is the SHA-256 of its canonical definition and of the hashes
 * of everything it reads (build.h); its outputs digest is the SHA-256 of the
 * lines "<path> <sha256>\n" of its artifacts. Inputs given by path (outside
 * the build directory) appear under "inputs" with their path as written in
 * the recipe, not under "artifacts". */
#ifndef LEMMA_RECIPE_LOCK_H
#define LEMMA_RECIPE_LOCK_H

#include <stddef.h>

#include "core/error.h"

enum { LM_LOCK_VERSION = 1 };

typedef struct lm_lock_file {
    char *path;
    char sha256[65];
} lm_lock_file;

typedef struct lm_lock_input {
    char *name;
    char *path;
    char sha256[65];
} lm_lock_input;

typedef struct lm_lock_stage {
    char *name;
    char *kind;
    char key[65];
    char outputs_sha256[65];
} lm_lock_stage;

typedef struct lm_lock {
    int arith_version;       /* LM_ARITH_VERSION (core/mathfn.h) the stages were built with; 1 for old locks without the field */
    char *recipe;
    char recipe_sha256[65];
    lm_lock_input *inputs;
    int n_inputs;
    lm_lock_stage *stages;
    int n_stages;
    lm_lock_file *files;     /* artifacts, sorted by path */
    int n_files;
} lm_lock;

/* Reads a lock file. Returns 0, 1 when the file does not exist (lk empty),
 * or -1 with err (unreadable, malformed: names the field and byte). */
int lm_lock_read(const char *path, lm_lock *lk, lm_error *err);
/* Same from bytes (the fuzzer and tests). */
int lm_lock_parse(const char *text, size_t len, const char *name, lm_lock *lk, lm_error *err);
int lm_lock_write(const char *path, const lm_lock *lk, lm_error *err);
void lm_lock_free(lm_lock *lk);

/* Editing. Strings are copied. */
int lm_lock_set_recipe(lm_lock *lk, const char *name, const char *sha256);
int lm_lock_set_input(lm_lock *lk, const char *name, const char *path, const char *sha256);
/* Adds or replaces a stage record. */
int lm_lock_set_stage(lm_lock *lk, const char *name, const char *kind, const char *key, const char *outputs_sha256);
const lm_lock_stage *lm_lock_find_stage(const lm_lock *lk, const char *name);
const lm_lock_input *lm_lock_find_input(const lm_lock *lk, const char *name);
/* Replaces every artifact under prefix ("data/" or an exact path) by files. */
int lm_lock_replace_files(lm_lock *lk, const char *prefix, const lm_lock_file *files, int n);
const lm_lock_file *lm_lock_find_file(const lm_lock *lk, const char *path);

/* ---- hashing a directory ---- */

/* 1 for build products that are not artifacts: they may differ between two
 * identical builds (timings) or are views made later (lemma plot). Any
 * path with a directory named "logs", a file named metrics.jsonl, or a name
 * ending in ".log" or ".svg"; and lemma's folder lock and ownership marker
 * (.lock, .lemma-made; core/dirlock.h). */
int lm_lock_volatile(const char *relpath);

/* Hashes every regular file under root/rel (recursively; symbolic links by
 * their target text), skipping volatile ones. Paths in *files are
 * "rel/..." relative to root, sorted. Caller frees with lm_lock_files_free. */
int lm_lock_hash_tree(const char *root, const char *rel, lm_lock_file **files, int *n, lm_error *err);
void lm_lock_files_free(lm_lock_file *files, int n);
/* The outputs digest of a set of files (see above). */
void lm_lock_digest(const lm_lock_file *files, int n, char hex[65]);

/* Calls fn for every difference between the artifacts of a (the lock) and b
 * (a rebuild): "differs", "missing" (in a only), "extra" (in b only).
 * Returns the number of differences. */
int lm_lock_compare(const lm_lock *a, const lm_lock *b,
                    void (*fn)(void *ctx, const char *what, const char *path, const char *sha_a, const char *sha_b),
                    void *ctx);

#endif
