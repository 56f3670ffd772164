/* fingerprint.c — the content fingerprint of a model folder; see
 * fingerprint.h. */
#include "prove/fingerprint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/sha256.h"

/* Headers of real checkpoints are a few MB; anything far larger is not one. */
#define HEADER_MAX ((uint64_t)1 << 30)

static void put_u64(lm_sha256 *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    lm_sha256_update(h, b, 8);
}

/* name, size, then the whole content, or (by_headers) the mtime and the
 * safetensors header. */
static int hash_file(lm_sha256 *h, const char *dir, const char *name, int by_headers, lm_error *err) {
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return lm_fail(err, "%s: path too long", dir);
    uint64_t size;
    int fd = lm_open_regular(path, &size, err);
    if (fd < 0) return -1;
    lm_sha256_update(h, name, strlen(name) + 1);
    put_u64(h, size);
    int rc;
    if (!by_headers) {
        rc = lm_sha256_feed_fd(h, fd, size, path, err);
    } else {
        struct stat st;
        uint8_t len8[8];
        uint64_t hlen = 0;
        ssize_t got = 0;
        if (fstat(fd, &st)) {
            rc = lm_fail(err, "%s: %s", path, strerror(errno));
        } else if ((got = pread(fd, len8, 8, 0)) != 8) {
            rc = lm_fail(err, "%s: %s", path, got < 0 ? strerror(errno) : "shorter than a safetensors header (8 bytes)");
        } else {
            for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
            if (hlen > size - 8 || hlen > HEADER_MAX) {
                rc = lm_fail(err, "%s: safetensors header length %llu at byte 0 does not fit the file's %llu bytes",
                             path, (unsigned long long)hlen, (unsigned long long)size);
            } else {
                put_u64(h, (uint64_t)st.st_mtim.tv_sec);
                put_u64(h, (uint64_t)st.st_mtim.tv_nsec);
                lm_sha256_update(h, len8, 8);
                rc = lseek(fd, 8, SEEK_SET) < 0 ? lm_fail(err, "%s: %s", path, strerror(errno))
                                                : lm_sha256_feed_fd(h, fd, hlen, path, err);
            }
        }
    }
    close(fd);
    return rc;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int lm_model_fingerprint(const char *dir, uint64_t full_limit, char hex[65], int *by_headers, lm_error *err) {
    static const char *const small[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                        "model.safetensors.index.json"};
    DIR *d = opendir(dir);
    if (!d) return lm_fail(err, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st)) { rc = lm_fail(err, "%s: %s", path, strerror(errno)); break; }
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *names);
            if (!grown) { rc = lm_fail(err, "out of memory"); break; }
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) { rc = lm_fail(err, "out of memory"); break; }
        n++;
        total += (uint64_t)st.st_size;
    }
    closedir(d);
    if (!rc && !n) rc = lm_fail(err, "%s: no *.safetensors files", dir);
    if (!rc) {
        qsort(names, n, sizeof *names, by_name);
        int headers = total > full_limit;
        lm_sha256 h;
        lm_sha256_init(&h);
        const char *tag = headers ? "lemma model fingerprint 1: headers, sizes, mtimes\n" : "lemma model fingerprint 1: content\n";
        lm_sha256_update(&h, tag, strlen(tag));
        for (size_t i = 0; !rc && i < sizeof small / sizeof *small; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, small[i]);
            if (access(path, F_OK) && errno == ENOENT) continue;
            rc = hash_file(&h, dir, small[i], 0, err);
        }
        for (size_t i = 0; !rc && i < n; i++) rc = hash_file(&h, dir, names[i], headers, err);
        if (!rc) {
            uint8_t digest[32];
            lm_sha256_final(&h, digest);
            lm_sha256_hex(digest, hex);
            if (by_headers) *by_headers = headers;
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}
