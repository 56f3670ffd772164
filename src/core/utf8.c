/* utf8.c — UTF-8 encoding and checking; see utf8.h. */
#include "core/utf8.h"

size_t lm_utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

int lm_utf8_check(const unsigned char *s, size_t n, size_t *len) {
    unsigned c = s[0];
    if (c < 0x80) { *len = 1; return 1; }
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else { *len = 1; return 0; }
    for (size_t k = 1; k < need; k++) {
        if (k >= n) { *len = n; return -1; }
        unsigned b = s[k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
        if (b < l || b > h) { *len = k; return 0; }
    }
    *len = need;
    return 1;
}

size_t lm_utf8_invalid_len(const unsigned char *s, size_t n) {
    size_t l;
    int r = lm_utf8_check(s, n, &l);
    return r == 1 ? 0 : l;
}

int lm_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t l;
        if (lm_utf8_check(s + i, n - i, &l) != 1) return 0;
        i += l;
    }
    return 1;
}

int lm_utf8_sanitize(const char *str, size_t n, lm_text *out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t l;
        if (lm_utf8_check(s + i, n - i, &l) == 1) { i += l; continue; }
        if (lm_text_append(out, str + run, i - run) || lm_text_append(out, LM_UTF8_REPLACEMENT, 3)) return -1;
        i += l;
        run = i;
    }
    return lm_text_append(out, str + run, n - run);
}
