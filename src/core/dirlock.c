/* dirlock.c — see dirlock.h. */
#include "core/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pid written by the holder, or 0 when it cannot be read (the holder may
 * not have written it yet). */
static long holder_pid(int fd) {
    char buf[32];
    for (int tries = 0; tries < 20; tries++) {
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            char *end;
            long pid = strtol(buf, &end, 10);
            if (end != buf && pid > 0) return pid;
        }
        usleep(1000);
    }
    return 0;
}

int lm_dir_lock_acquire(const char *dir, lm_dir_lock *lock, lm_error *err) {
    lock->fd = -1;
    if ((size_t)snprintf(lock->path, sizeof lock->path, "%s/" LM_DIR_LOCK_NAME, dir) >= sizeof lock->path)
        return lm_fail(err, "%s: path too long", dir);
    /* Another process may remove .lock between our open and our flock (its
     * release); then we hold a lock on a file no longer in the folder, so
     * check that the file locked is the one at the path, and retry if not. */
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(lock->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) return lm_fail(err, "%s: cannot create: %s", lock->path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB)) {
            int e = errno;
            if (e != EWOULDBLOCK) {
                close(fd);
                return lm_fail(err, "%s: cannot lock: %s", lock->path, strerror(e));
            }
            long pid = holder_pid(fd);
            close(fd);
            if (pid) return lm_fail(err, "%s is in use by pid %ld", dir, pid);
            return lm_fail(err, "%s is in use by another process", dir);
        }
        struct stat a, b;
        if (fstat(fd, &a) || stat(lock->path, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
            close(fd);
            continue;
        }
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) || pwrite(fd, buf, (size_t)n, 0) != n) {
            int e = errno;
            close(fd);
            return lm_fail(err, "%s: cannot write: %s", lock->path, strerror(e));
        }
        lock->fd = fd;
        return 0;
    }
    return lm_fail(err, "%s: cannot lock: the file keeps being replaced", lock->path);
}

void lm_dir_lock_release(lm_dir_lock *lock) {
    if (lock->fd < 0) return;
    /* Unlink while still holding the lock: a process that opened the old file
     * meanwhile notices the replacement after its flock and retries. */
    unlink(lock->path);
    close(lock->fd);
    lock->fd = -1;
}

int lm_dir_mark_made(const char *dir, lm_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" LM_DIR_MARKER_NAME, dir) >= sizeof path)
        return lm_fail(err, "%s: path too long", dir);
    static const char note[] = "This folder was made by lemma, which may replace or remove it.\n";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) return lm_fail(err, "%s: cannot create: %s", path, strerror(errno));
    ssize_t n = write(fd, note, sizeof note - 1);
    int e = errno;
    if (close(fd) || n != (ssize_t)(sizeof note - 1))
        return lm_fail(err, "%s: write failed: %s", path, strerror(n < 0 ? e : ENOSPC));
    return 0;
}

int lm_dir_made_by_lemma(const char *dir) {
    struct stat st;
    if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) return 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" LM_DIR_MARKER_NAME, dir) >= sizeof path) return 0;
    return !lstat(path, &st) && S_ISREG(st.st_mode);
}
