/* util.c — lines, exact integers, templates and answer building for the
 * theorem domains; see util.h. */
#include "tasks/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tasks/tasks.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

int lm_task_split_lines(const char *text, size_t len, lm_task_lines *out) {
    out->line = NULL;
    out->n = 0;
    int cap = 0;
    size_t i = 0;
    while (i < len) {
        size_t b = i;
        while (i < len && text[i] != '\n') i++;
        size_t e = i;
        if (i < len) i++; /* the '\n' */
        while (b < e && is_space(text[b])) b++;
        while (e > b && is_space(text[e - 1])) e--;
        if (b == e) continue;
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 16;
            lm_task_line *nl = realloc(out->line, (size_t)nc * sizeof *nl);
            if (!nl) {
                lm_task_lines_free(out);
                return -1;
            }
            out->line = nl;
            cap = nc;
        }
        out->line[out->n] = (lm_task_line){text + b, e - b, out->n + 1};
        out->n++;
    }
    return 0;
}

void lm_task_lines_free(lm_task_lines *lines) {
    free(lines->line);
    lines->line = NULL;
    lines->n = 0;
}

int lm_task_parse_int(const char *s, size_t len, int signs, int64_t *out, size_t *used) {
    size_t i = 0;
    int neg = 0;
    if (i < len && ((s[i] == '-' && (signs & LM_INT_MINUS)) || (s[i] == '+' && (signs & LM_INT_PLUS)))) {
        neg = s[i] == '-';
        i++;
    }
    size_t d0 = i;
    if (i >= len || !is_digit(s[i])) return 0;
    if (s[i] == '0' && (i + 1 < len && is_digit(s[i + 1]))) return 0; /* leading zero */
    if (s[i] == '0' && d0 > 0) return 0;                              /* "-0", "+0" */
    /* magnitude limit: INT64_MAX, or INT64_MAX + 1 for a negative number */
    uint64_t limit = (uint64_t)INT64_MAX + (neg ? 1u : 0u), v = 0;
    for (; i < len && is_digit(s[i]); i++) {
        unsigned dg = (unsigned)(s[i] - '0');
        if (v > (limit - dg) / 10) return -1;
        v = v * 10 + dg;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    *used = i;
    return 1;
}

void lm_scan_init(lm_scan *sc, const char *s, size_t len) {
    sc->p = s;
    sc->end = s + len;
}

int lm_scan_end(const lm_scan *sc) {
    const char *p = sc->p;
    while (p < sc->end && is_space(*p)) p++;
    return p == sc->end;
}

static int vscan(lm_scan *sc, const char *t, va_list ap) {
    const char *p = sc->p, *end = sc->end;
    int prev_word = 0, spaced = 0;
    while (*t) {
        if (*t == ' ') {
            spaced = 1;
            t++;
            continue;
        }
        const char *ws = p;
        while (p < end && is_space(*p)) p++;
        if (is_letter(*t)) {
            if (prev_word && spaced && p == ws) return 0;
            while (is_letter(*t)) {
                if (p >= end || *p != *t) return 0;
                p++;
                t++;
            }
            if (p < end && (is_letter(*p) || is_digit(*p))) return 0;
            prev_word = 1;
        } else if (t[0] == '%' && (t[1] == 'u' || t[1] == 'd' || t[1] == 'p')) {
            int64_t *out = va_arg(ap, int64_t *);
            size_t used = 0;
            int r;
            if (t[1] == 'p' && p < end && *p == '(') { /* "(-n)", white space allowed inside */
                const char *q = p + 1;
                while (q < end && is_space(*q)) q++;
                r = lm_task_parse_int(q, (size_t)(end - q), LM_INT_MINUS, out, &used);
                if (r > 0 && *q != '-') r = 0;
                if (r > 0) {
                    q += used;
                    while (q < end && is_space(*q)) q++;
                    if (q >= end || *q != ')') r = 0;
                    used = (size_t)(q + 1 - p);
                }
            } else {
                r = lm_task_parse_int(p, (size_t)(end - p), t[1] == 'd' ? LM_INT_MINUS : 0, out, &used);
            }
            if (r <= 0) return r;
            p += used;
            t += 2;
            prev_word = 0;
        } else {
            char c = *t;
            if (t[0] == '%' && t[1] == '%') t++;
            if (p >= end || *p != c) return 0;
            p++;
            t++;
            prev_word = 0;
        }
        spaced = 0;
    }
    sc->p = p;
    return 1;
}

int lm_scan_fmt(lm_scan *sc, const char *tmpl, ...) {
    va_list ap;
    va_start(ap, tmpl);
    int r = vscan(sc, tmpl, ap);
    va_end(ap);
    return r;
}

int lm_task_match(const char *s, size_t len, const char *tmpl, ...) {
    lm_scan sc;
    lm_scan_init(&sc, s, len);
    va_list ap;
    va_start(ap, tmpl);
    int r = vscan(&sc, tmpl, ap);
    va_end(ap);
    if (r <= 0) return r;
    return lm_scan_end(&sc);
}

int64_t lm_task_rng_range(lm_task_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    uint64_t u = lm_rng_u64(r->seed, LM_RNG_TASKS, r->counter++);
    return span ? (int64_t)((uint64_t)lo + u % span) : (int64_t)u;
}


const char *lm_task_factor(char buf[24], int64_t n) {
    if (n < 0)
        snprintf(buf, 24, "(%lld)", (long long)n);
    else
        snprintf(buf, 24, "%lld", (long long)n);
    return buf;
}

const char *lm_task_i128_text(char buf[48], __int128 v) {
    char digits[48];
    int n = 0;
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    do digits[n++] = (char)('0' + (int)(u % 10));
    while ((u /= 10) != 0);
    size_t pos = 0;
    if (v < 0) buf[pos++] = '-';
    while (n) buf[pos++] = digits[--n];
    buf[pos] = 0;
    return buf;
}

int lm_task_answer(const char *body, size_t len, lm_text *out) {
    return lm_text_append(out, "## Solution\n", 12) || lm_text_append(out, body, len) ||
           lm_task_append_self_eval(out);
}

int lm_task_count_lines(const char *body) {
    int n = 0;
    for (const char *p = body; *p; p++) n += *p == '\n';
    return n;
}

int lm_task_edit_lines(const char *body, int at, int n_delete, const char *insert, lm_text *out) {
    int lines = lm_task_count_lines(body);
    if (at < 1 || n_delete < 0 || at + n_delete > lines + 1) return -1;
    const char *cut = body;
    for (int i = 1; i < at; i++) cut = strchr(cut, '\n') + 1;
    const char *resume = cut;
    for (int i = 0; i < n_delete; i++) resume = strchr(resume, '\n') + 1;
    if (lm_text_append(out, body, (size_t)(cut - body))) return -1;
    if (insert && (lm_text_append(out, insert, strlen(insert)) || lm_text_append(out, "\n", 1))) return -1;
    return lm_text_append(out, resume, strlen(resume));
}

int lm_task_check_answer(const lm_task_domain *d, const char *question, const char *answer, lm_check_result *res,
                         lm_error *err) {
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    lm_text sol = {0};
    if (lm_text_append(&sol, b, n)) return lm_fail(err, "out of memory");
    int rc = d->check(question, sol.data, res, err);
    lm_text_free(&sol);
    return rc;
}

int lm_task_require_correct(const lm_task_domain *d, const char *question, const char *proof, lm_error *err) {
    lm_check_result r;
    if (lm_task_check_answer(d, question, proof, &r, err)) return lm_fail_prefix(err, "%s question", d->name);
    if (r.score < 1)
        return lm_fail(err, "the proof to corrupt does not check: step %d (%s): %s", r.step, r.kind, r.message);
    return 0;
}

int lm_task_confirm(const lm_task_domain *d, const char *question, const char *answer, const lm_corruption *c,
                    lm_error *err) {
    lm_check_result r;
    if (lm_task_check_answer(d, question, answer, &r, err)) return lm_fail_prefix(err, "%s question", d->name);
    if (r.score != c->label || r.step != c->step || strcmp(r.kind, c->kind))
        return lm_fail(err, "%s: a corruption of kind %s at step %d checks as %g, %s at step %d (%s)", d->name,
                       c->kind, c->step, r.score, r.kind[0] ? r.kind : "correct", r.step, r.message);
    return 0;
}

int lm_task_corrupted_answer(const lm_task_domain *d, const char *question, const lm_text *body, const char *kind,
                             int step, lm_text *out, lm_corruption *c, lm_error *err) {
    size_t start = out->len;
    if (lm_task_answer(body->data, body->len, out)) return lm_fail(err, "out of memory");
    snprintf(c->kind, sizeof c->kind, "%s", kind);
    c->label = strcmp(kind, LM_ERR_OMITTED) ? 0 : 0.5;
    c->step = step;
    return lm_task_confirm(d, question, out->data + start, c, err);
}
