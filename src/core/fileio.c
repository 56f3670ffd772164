/* fileio.c — whole-file reads, atomic writes, folders; see fileio.h. */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int lm_open_regular(const char *path, uint64_t *size, lm_error *err) {
    /* O_NONBLOCK: a FIFO is refused below instead of blocking the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) st.st_mode = 0; /* reported as not a regular file */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lm_fail(err, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory, not a regular file" : "not a regular file");
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

int lm_read_file(const char *path, size_t max_bytes, char **out, size_t *len, lm_error *err) {
    uint64_t size;
    int fd = lm_open_regular(path, &size, err);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    if (size > max_bytes) {
        fclose(f);
        return lm_fail(err, "%s: %llu bytes, larger than the %zu-byte limit for this file", path,
                       (unsigned long long)size, max_bytes);
    }
    size_t n = (size_t)size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lm_fail(err, "out of memory");
    }
    errno = 0;
    if (n && fread(buf, 1, n, f) != n) {
        int why = errno;
        free(buf);
        fclose(f);
        return lm_fail(err, "%s: cannot read: %s", path, why ? strerror(why) : "the file shrank while it was read");
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

/* ---- atomic writes ---- */

static int fsync_dir_of(const char *path) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

typedef struct atomic_file {
    char tmp[PATH_MAX];
    const char *path;
    FILE *f;
    int direct;             /* path is a device or FIFO: written in place */
} atomic_file;

/* A temporary file renamed over path, so that a reader never sees half a
 * file. When path already exists and is not a regular file — a device
 * (/dev/full), a FIFO, or a symlink (/dev/stdout) — a rename would replace
 * the node itself (the device or the link), so the bytes go through it in
 * place instead, every write checked. */
static int atomic_open(atomic_file *af, const char *path, lm_error *err) {
    af->path = path;
    af->direct = 0;
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode) || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
            return lm_fail(err, "%s: is a directory, expected a file name", path);
        af->direct = 1;
        snprintf(af->tmp, sizeof af->tmp, "%s", path);
        af->f = fopen(path, "wb");
        if (!af->f) return lm_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
        return 0;
    }
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return lm_fail(err, "%s: cannot create: %s", af->tmp, strerror(errno));
    return 0;
}

/* Writes len bytes; the first failure is kept (errno) for atomic_commit. */
static void atomic_write(atomic_file *af, const void *data, size_t len, int *why) {
    if (len && fwrite(data, 1, len, af->f) != len && !*why) *why = errno ? errno : EIO;
}

static int atomic_commit(atomic_file *af, int why, lm_error *err) {
    int bad = why != 0 || ferror(af->f) != 0;
    errno = 0;
    if (fflush(af->f) != 0 && !why) bad = 1, why = errno;
    if (!bad && !af->direct && fsync(fileno(af->f)) != 0) bad = 1, why = errno;
    if (fclose(af->f) != 0 && !why) bad = 1, why = errno;
    af->f = NULL;
    if (bad) {
        if (!af->direct) unlink(af->tmp);
        return lm_fail(err, "%s: write failed: %s", af->tmp, why ? strerror(why) : "I/O error");
    }
    if (af->direct) return 0;
    if (rename(af->tmp, af->path) != 0) {
        int e = errno;
        unlink(af->tmp);
        return lm_fail(err, "%s: rename failed: %s", af->path, strerror(e));
    }
    fsync_dir_of(af->path);
    return 0;
}

int lm_write_file_atomic(const char *path, const void *data, size_t len, lm_error *err) {
    atomic_file af;
    if (atomic_open(&af, path, err)) return -1;
    int why = 0;
    errno = 0;
    atomic_write(&af, data, len, &why);
    return atomic_commit(&af, why, err);
}

struct lm_atomic_writer {
    atomic_file af;
    int why;
};

lm_atomic_writer *lm_atomic_begin(const char *path, lm_error *err) {
    lm_atomic_writer *w = calloc(1, sizeof *w);
    if (!w) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    if (atomic_open(&w->af, path, err)) {
        free(w);
        return NULL;
    }
    errno = 0;
    return w;
}

void lm_atomic_put(lm_atomic_writer *w, const void *data, size_t len) { atomic_write(&w->af, data, len, &w->why); }

void lm_atomic_abort(lm_atomic_writer *w) {
    if (!w) return;
    fclose(w->af.f);
    if (!w->af.direct) unlink(w->af.tmp);
    free(w);
}

int lm_atomic_finish(lm_atomic_writer *w, lm_error *err) {
    int rc = atomic_commit(&w->af, w->why, err);
    free(w);
    return rc;
}

/* ---- mappings ---- */

int lm_map_file(const char *path, lm_mapped *m, lm_error *err) {
    m->p = NULL;
    m->len = 0;
    uint64_t size;
    int fd = lm_open_regular(path, &size, err);
    if (fd < 0) return -1;
    if (size > 0) {
        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return lm_fail(err, "%s: mmap: %s", path, strerror(errno));
        }
        m->p = p;
        m->len = (size_t)size;
    }
    close(fd);
    return 0;
}

void lm_unmap_file(lm_mapped *m) {
    if (m->len) munmap((void *)m->p, m->len);
    m->p = NULL;
    m->len = 0;
}

/* ---- folders ---- */

int lm_mkdir_p(const char *dir, lm_error *err) {
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0) return lm_fail(err, "empty folder name");
    if (n >= sizeof path) return lm_fail(err, "%.64s...: folder name longer than %d bytes", dir, PATH_MAX - 1);
    memcpy(path, dir, n + 1);
    /* Each prefix that ends at a '/' (and the whole name), parents first. */
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0777) && errno != EEXIST) return lm_fail(err, "cannot create %s: %s", path, strerror(errno));
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st)) return lm_fail(err, "cannot create %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return lm_fail(err, "%s exists and is not a folder", dir);
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) ? -1 : 0;
}

int lm_remove_tree(const char *path, lm_error *err) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : lm_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return remove(path) ? lm_fail(err, "%s: %s", path, strerror(errno)) : 0;
    /* FTW_DEPTH: contents before their folder; FTW_PHYS: a link is removed, never followed. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS)) return lm_fail(err, "removing %s: %s", path, strerror(errno));
    return 0;
}
