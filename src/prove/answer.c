/* answer.c — thinking, headings and \boxed{} scores; see answer.h. */
#include "prove/answer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *lm_answer_after_think(const char *text) {
    const char *last = NULL, *p = text;
    while ((p = strstr(p, "</think>"))) {
        last = p;
        p += 8;
    }
    return last ? last + 8 : text;
}

/* Byte length of a Python white-space character starting at s (at most n
 * bytes), else 0. */
static size_t space_at(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20)) return 1;
    if (c == 0xc2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (n < 3) return 0;
    uint32_t cp;
    if ((c & 0xf0) != 0xe0 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
    cp = ((c & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
        cp == 0x205f || cp == 0x3000)
        return 3;
    return 0;
}

/* Byte length of a Python white-space character ending at s[n-1], else 0. */
static size_t space_before(const unsigned char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        size_t w = space_at(s + n - k, k);
        if (w == k) return k;
    }
    return 0;
}

void lm_py_strip(const char *s, size_t n, const char **begin, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t b = 0, e = n, w;
    while (b < e && (w = space_at(u + b, e - b))) b += w;
    while (e > b && (w = space_before(u + b, e - b))) e -= w;
    *begin = s + b;
    *len = e - b;
}

int lm_answer_last_boxed(const char *s, size_t n, const char **begin, size_t *len) {
    static const char tag[] = "\\boxed{";
    const size_t tl = sizeof tag - 1;
    /* From the last "\boxed{" backwards. A box whose '{' never closes makes
     * every earlier box that reaches it unclosed too (that brace is counted
     * by any scan passing over it), so scans stop at the earliest unclosed
     * box found so far: the work stays linear in n. */
    size_t unclosed = n;
    for (size_t i = n >= tl ? n - tl + 1 : 0; i-- > 0;) {
        if (memcmp(s + i, tag, tl)) continue;
        size_t b = i + tl, k = b;
        int depth = 1;
        while (k < unclosed) {
            char c = s[k];
            if (c == '\\') {
                k += 2;
                continue;
            }
            if (c == '{') depth++;
            else if (c == '}' && --depth == 0) break;
            k++;
        }
        if (k >= unclosed) {
            unclosed = b - 1;
            continue;
        }
        lm_py_strip(s + b, k - b, begin, len);
        if (*len) return 0;
    }
    return -1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Digits with single '_' between them (Python's float() grammar); returns
 * the end, or NULL when there are no digits or an underscore is misplaced.
 * Copies the digits without underscores to *o. */
static const char *digits(const char *p, const char *end, char **o) {
    if (p >= end || !is_digit(*p)) return NULL;
    while (p < end) {
        if (is_digit(*p)) *(*o)++ = *p++;
        else if (*p == '_' && p + 1 < end && is_digit(p[1]) && is_digit(p[-1])) p++;
        else break;
    }
    return p;
}

int lm_parse_score(const char *s, size_t n, double *out) {
    const char *b;
    size_t len;
    lm_py_strip(s, n, &b, &len);
    if (len == 0 || len > 64) return -1;
    char buf[80], *o = buf;
    const char *p = b, *end = b + len, *q;
    if (*p == '+' || *p == '-') *o++ = *p++;
    if (p < end && *p == '.') { /* ".5" */
        *o++ = *p++;
        if (!(p = digits(p, end, &o))) return -1;
    } else {
        if (!(p = digits(p, end, &o))) return -1;
        if (p < end && *p == '.') {
            *o++ = *p++;
            if (p < end && is_digit(*p) && !(p = digits(p, end, &o))) return -1;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *o++ = *p++;
        if (p < end && (*p == '+' || *p == '-')) *o++ = *p++;
        if (!(q = digits(p, end, &o))) return -1;
        p = q;
    }
    if (p != end) return -1;
    *o = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v) || v < 0 || v > 1) return -1;
    *out = v == 0 ? 0 : v; /* "-0" is 0 */
    return 0;
}

int lm_answer_score(const char *s, size_t n, double *out) {
    const char *b;
    size_t len;
    if (lm_answer_last_boxed(s, n, &b, &len)) return -1;
    return lm_parse_score(b, len, out);
}

int lm_answer_split(const char *text, lm_answer_parts *p) {
    const char *sol = strstr(text, "## Solution");
    if (!sol) return -1;
    const char *body = sol + strlen("## Solution");
    const char *ev = strstr(body, "## Self Evaluation");
    if (!ev) return -1;
    size_t n = strlen(sol);
    const char *b;
    size_t len;
    lm_py_strip(sol, n, &b, &len);
    p->from_solution = b;
    p->from_solution_len = len;
    lm_py_strip(body, (size_t)(ev - body), &p->solution, &p->solution_len);
    lm_py_strip(ev, strlen(ev), &p->self_eval, &p->self_eval_len);
    return 0;
}
