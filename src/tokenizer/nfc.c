/* nfc.c — NFC normalization: full canonical decomposition (table + Hangul),
 * canonical ordering (stable sort of each run of non-zero combining classes),
 * then canonical composition (Unicode's reference algorithm: a character
 * composes with the last starter unless a character of the same or higher
 * class stands between them). Texts made only of "stable" code points (the
 * usual case) are copied unchanged. */
#include "tokenizer/nfc.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21, TCOUNT = 28,
       NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static inline unsigned info(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    return lm_nfc_stage2[((uint32_t)lm_nfc_stage1[cp >> 7] << 7) | (cp & 127)];
}
static inline unsigned ccc(uint32_t cp) { return info(cp) & 0x7f; }

int lm_nfc_is_stable(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0xcc) { /* below U+0300 nothing changes under NFC */
            i += s[i] < 0x80 ? 1 : 2;
            continue;
        }
        uint32_t cp;
        i += lm_utf8_decode(s + i, &cp);
        if (info(cp) & 0x80) return 0;
    }
    return 1;
}

static const lm_nfc_decomp *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = lm_nfc_ndecomps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lm_nfc_decomps[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < lm_nfc_ndecomps && lm_nfc_decomps[lo].cp == cp ? &lm_nfc_decomps[lo] : NULL;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = lm_nfc_npairs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const lm_nfc_pair *p = &lm_nfc_pairs[mid];
        if (p->first < a || (p->first == a && p->second < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < lm_nfc_npairs && lm_nfc_pairs[lo].first == a && lm_nfc_pairs[lo].second == b)
        return lm_nfc_pairs[lo].composite;
    return 0;
}

int lm_nfc_append(const char *str, size_t n, lm_text *out) {
    if (lm_nfc_is_stable(str, n)) return lm_text_append(out, str, n);
    const unsigned char *s = (const unsigned char *)str;
    /* decomposed length <= 4 code points per input byte (a 3-byte Hangul
     * syllable gives 3; table decompositions are at most 4 long per code point
     * of at least 2 bytes) */
    size_t cap = n * 2 + 8, m = 0;
    uint32_t *d = malloc(cap * sizeof *d);
    if (!d) return -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += lm_utf8_decode(s + i, &cp);
        if (m + 8 > cap) {
            cap *= 2;
            uint32_t *nd = realloc(d, cap * sizeof *nd);
            if (!nd) { free(d); return -1; }
            d = nd;
        }
        if (cp >= SBASE && cp < SBASE + SCOUNT) {
            uint32_t si = cp - SBASE;
            d[m++] = LBASE + si / NCOUNT;
            d[m++] = VBASE + (si % NCOUNT) / TCOUNT;
            if (si % TCOUNT) d[m++] = TBASE + si % TCOUNT;
            continue;
        }
        const lm_nfc_decomp *e = cp >= 0xc0 ? find_decomp(cp) : NULL;
        if (!e) { d[m++] = cp; continue; }
        if (m + e->len + 8 > cap) {
            cap = (m + e->len) * 2 + 8;
            uint32_t *nd = realloc(d, cap * sizeof *nd);
            if (!nd) { free(d); return -1; }
            d = nd;
        }
        for (uint32_t k = 0; k < e->len; k++) d[m++] = lm_nfc_decomp_data[e->off + k];
    }
    /* canonical ordering: insertion sort inside each run of non-starters */
    for (size_t i = 1; i < m; i++) {
        unsigned c = ccc(d[i]);
        if (!c) continue;
        uint32_t x = d[i];
        size_t j = i;
        while (j > 0 && ccc(d[j - 1]) > c) {
            d[j] = d[j - 1];
            j--;
        }
        d[j] = x;
    }
    /* canonical composition, in place */
    size_t w = 0;
    if (m) {
        size_t starter = 0;
        unsigned last = ccc(d[0]);
        if (last) last = 256;
        w = 1;
        for (size_t i = 1; i < m; i++) {
            uint32_t c = d[i];
            unsigned cc = ccc(c);
            uint32_t comp = compose_pair(d[starter], c);
            if (comp && (last < cc || last == 0)) {
                d[starter] = comp;
                continue;
            }
            if (cc == 0) starter = w;
            last = cc;
            d[w++] = c;
        }
    }
    int rc = 0;
    unsigned char buf[256];
    size_t bl = 0;
    for (size_t i = 0; i < w && !rc; i++) {
        bl += lm_utf8_encode(d[i], buf + bl);
        if (bl > sizeof buf - 4) {
            rc = lm_text_append(out, (const char *)buf, bl);
            bl = 0;
        }
    }
    if (!rc) rc = lm_text_append(out, (const char *)buf, bl);
    if (!rc && !out->data) rc = lm_text_append(out, "", 0);
    free(d);
    return rc;
}
