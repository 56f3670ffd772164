/* sha256.c — SHA-256 after FIPS 180-4 §6.2; see sha256.h. */
#include "core/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/stop.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void lm_sha256_init(lm_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbytes = 0;
    s->nbuf = 0;
}

void lm_sha256_update(lm_sha256 *s, const void *data, size_t len) {
    const uint8_t *p = data;
    if (!len) return;
    s->nbytes += len;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < len ? 64 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take; p += take; len -= take;
        if (s->nbuf < 64) return;
        block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; len >= 64; p += 64, len -= 64) block(s->h, p);
    memcpy(s->buf, p, len);
    s->nbuf = len;
}

void lm_sha256_final(lm_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->nbytes * 8;
    uint8_t pad[72] = {0x80};
    size_t npad = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    lm_sha256_update(s, pad, npad + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24); out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8); out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void lm_sha256_buf(const void *data, size_t len, uint8_t out[32]) {
    lm_sha256 s;
    lm_sha256_init(&s);
    lm_sha256_update(&s, data, len);
    lm_sha256_final(&s, out);
}

void lm_sha256_hex(const uint8_t d[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = 0;
}

static int hexdigit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int lm_sha256_parse(const char *hex, uint8_t out[32]) {
    if (!hex) return -1;
    for (int i = 0; i < 32; i++) {
        int a = hexdigit((unsigned char)hex[2 * i]), b = a < 0 ? -1 : hexdigit((unsigned char)hex[2 * i + 1]);
        if (a < 0 || b < 0) return -1;
        out[i] = (uint8_t)(a * 16 + b);
    }
    return hex[64] ? -1 : 0;
}

int lm_sha256_feed_fd(lm_sha256 *s, int fd, uint64_t n, const char *path, lm_error *err) {
    uint8_t *buf = malloc(1 << 20);
    if (!buf) return lm_fail(err, "%s: out of memory", path);
    uint64_t left = n, at = 0;
    int rc = 0;
    while (left && !rc) {
        if (lm_stop_requested()) {
            rc = lm_fail(err, "interrupted");
            break;
        }
        size_t want = left < (1u << 20) ? (size_t)left : (1u << 20);
        ssize_t got = read(fd, buf, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = lm_fail(err, "%s: read error at byte %llu: %s", path, (unsigned long long)at, strerror(errno));
        else if (got == 0) rc = lm_fail(err, "%s: file shrank while being read (%llu of %llu bytes)", path,
                                        (unsigned long long)at, (unsigned long long)n);
        else {
            lm_sha256_update(s, buf, (size_t)got);
            left -= (uint64_t)got;
            at += (uint64_t)got;
        }
    }
    free(buf);
    return rc;
}

int lm_sha256_file(const char *path, char hex[65], lm_error *err) {
    uint64_t size;
    int fd = lm_open_regular(path, &size, err);
    if (fd < 0) return -1;
    lm_sha256 s;
    lm_sha256_init(&s);
    /* Exactly the size fstat gave: a file that grows meanwhile is not read
     * without end, one that shrinks is an error. */
    int rc = lm_sha256_feed_fd(&s, fd, size, path, err);
    close(fd);
    if (rc) return -1;
    uint8_t d[32];
    lm_sha256_final(&s, d);
    lm_sha256_hex(d, hex);
    return 0;
}
