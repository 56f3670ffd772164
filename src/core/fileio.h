/* fileio.h — whole-file reads, atomic writes, folders: the file handling
 * every layer shares, written once.
 *
 *   char *text; size_t len;
 *   if (lm_read_file("config.json", 1 << 20, &text, &len, &err)) ...   // err names the file
 *   if (lm_write_file_atomic("out/run.json", text, len, &err)) ...
 *   if (lm_mkdir_p("out/a/b", &err)) ...
 *
 * Results are written atomically (a temporary file in the same folder,
 * fsync, rename over the target, fsync of the folder), so that a reader,
 * or a rerun after a crash, sees the old file or the new one, never half of
 * one. Every function returns 0, or -1 with err holding one line that names
 * the path and what went wrong. */
#ifndef LEMMA_CORE_FILEIO_H
#define LEMMA_CORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Opens a regular file for reading and returns its descriptor, with its
 * size then in *size; -1 with err: "X: cannot open: reason", "X: is a
 * directory, not a regular file", "X: not a regular file" (a FIFO or device
 * is refused without blocking, so an input can never hang a command). */
int lm_open_regular(const char *path, uint64_t *size, lm_error *err);

/* Reads a whole regular file into a malloc'd NUL-terminated buffer (caller
 * frees *out). Refuses files larger than max_bytes, and anything that is not
 * a regular file (a FIFO or device is refused without blocking). */
int lm_read_file(const char *path, size_t max_bytes, char **out, size_t *len, lm_error *err);

/* Atomic write of a whole buffer to a file (temp, fsync, rename, dir fsync).
 * When path exists and is not a regular file (a device such as /dev/full or
 * /dev/null, a FIFO, a symlink such as /dev/stdout), the bytes are written
 * through it in place instead of replacing the node. Every write is checked:
 * a failure (disk full, EIO) is an error naming the path and the reason. */
int lm_write_file_atomic(const char *path, const void *data, size_t len, lm_error *err);

/* The same, for an output produced piece by piece (no whole-file buffer):
 * lm_atomic_begin, any number of lm_atomic_put (a failure is kept and
 * reported by lm_atomic_finish), then lm_atomic_finish, which commits and
 * frees; after an error nothing is left at path. */
typedef struct lm_atomic_writer lm_atomic_writer;
lm_atomic_writer *lm_atomic_begin(const char *path, lm_error *err);
void lm_atomic_put(lm_atomic_writer *w, const void *data, size_t len);
int lm_atomic_finish(lm_atomic_writer *w, lm_error *err);
/* Gives up: closes and removes the temporary file; path is left as it was. */
void lm_atomic_abort(lm_atomic_writer *w);

/* A read-only mapping of a whole regular file (len 0 maps nothing), for
 * inputs read in place (lemma data's corpus files and shards). A FIFO,
 * device or folder is refused without blocking. lm_unmap_file releases it. */
typedef struct lm_mapped {
    const char *p;
    size_t len;
} lm_mapped;
int lm_map_file(const char *path, lm_mapped *m, lm_error *err);
void lm_unmap_file(lm_mapped *m);

/* Creates dir and its missing parents (mkdir -p). An existing folder is
 * fine; an existing file is not ("X exists and is not a folder"); a failure
 * names the part that could not be made ("cannot create X: reason"). */
int lm_mkdir_p(const char *dir, lm_error *err);

/* rm -rf of a path: a file, a symbolic link (never followed) or a folder
 * with everything in it; a missing path is not an error. The caller decides
 * that the path is lemma's to remove. */
int lm_remove_tree(const char *path, lm_error *err);

#endif
