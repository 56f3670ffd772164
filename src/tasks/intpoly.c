/* intpoly.c — int64 polynomials with overflow checks and canonical text. */
#include "tasks/intpoly.h"

#include <stdio.h>
#include <string.h>

static void normalize(lm_ipoly *p) {
    while (p->deg >= 0 && p->c[p->deg] == 0) p->deg--;
}

void lm_ipoly_zero(lm_ipoly *p) {
    memset(p->c, 0, sizeof p->c);
    p->deg = -1;
}

int lm_ipoly_set_mono(lm_ipoly *p, int64_t c, int deg) {
    lm_ipoly_zero(p);
    if (deg < 0 || deg > LM_IPOLY_MAX_DEG) return -1;
    p->c[deg] = c;
    p->deg = deg;
    normalize(p);
    return 0;
}

int lm_ipoly_add(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b) {
    lm_ipoly t;
    lm_ipoly_zero(&t);
    t.deg = a->deg > b->deg ? a->deg : b->deg;
    for (int i = 0; i <= t.deg; i++)
        if (__builtin_add_overflow(a->c[i], b->c[i], &t.c[i])) return -1;
    normalize(&t);
    *r = t;
    return 0;
}

int lm_ipoly_scale(lm_ipoly *r, const lm_ipoly *a, int64_t k) {
    lm_ipoly t;
    lm_ipoly_zero(&t);
    t.deg = a->deg;
    for (int i = 0; i <= t.deg; i++)
        if (__builtin_mul_overflow(a->c[i], k, &t.c[i])) return -1;
    normalize(&t);
    *r = t;
    return 0;
}

int lm_ipoly_sub(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b) {
    lm_ipoly nb;
    return lm_ipoly_scale(&nb, b, -1) || lm_ipoly_add(r, a, &nb) ? -1 : 0;
}

int lm_ipoly_mul(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b) {
    lm_ipoly t;
    lm_ipoly_zero(&t);
    if (a->deg < 0 || b->deg < 0) {
        *r = t;
        return 0;
    }
    if (a->deg + b->deg > LM_IPOLY_MAX_DEG) return -1;
    t.deg = a->deg + b->deg;
    for (int i = 0; i <= a->deg; i++)
        for (int j = 0; j <= b->deg; j++) {
            int64_t prod;
            if (__builtin_mul_overflow(a->c[i], b->c[j], &prod) ||
                __builtin_add_overflow(t.c[i + j], prod, &t.c[i + j]))
                return -1;
        }
    normalize(&t);
    *r = t;
    return 0;
}

int lm_ipoly_add_mono(lm_ipoly *p, int64_t c, int deg) {
    if (deg < 0 || deg > LM_IPOLY_MAX_DEG) return -1;
    if (__builtin_add_overflow(p->c[deg], c, &p->c[deg])) return -1;
    if (deg > p->deg) p->deg = deg;
    normalize(p);
    return 0;
}

int lm_ipoly_subst_linear(lm_ipoly *r, const lm_ipoly *p, int64_t a, int64_t b) {
    /* Horner: r = (...(c_d (ak+b) + c_{d-1})(ak+b) + ...) */
    lm_ipoly lin, acc;
    lm_ipoly_zero(&lin);
    lin.c[1] = a;
    lin.c[0] = b;
    lin.deg = 1;
    normalize(&lin);
    lm_ipoly_zero(&acc);
    for (int i = p->deg; i >= 0; i--)
        if (lm_ipoly_mul(&acc, &acc, &lin) || lm_ipoly_add_mono(&acc, p->c[i], 0)) return -1;
    *r = acc;
    return 0;
}

int lm_ipoly_eval(const lm_ipoly *p, int64_t x, int64_t *v) {
    int64_t acc = 0;
    for (int i = p->deg; i >= 0; i--)
        if (__builtin_mul_overflow(acc, x, &acc) || __builtin_add_overflow(acc, p->c[i], &acc)) return -1;
    *v = acc;
    return 0;
}

int lm_ipoly_equal(const lm_ipoly *a, const lm_ipoly *b) {
    if (a->deg != b->deg) return 0;
    for (int i = 0; i <= a->deg; i++)
        if (a->c[i] != b->c[i]) return 0;
    return 1;
}

int lm_ipoly_nterms(const lm_ipoly *p) {
    int n = 0;
    for (int i = 0; i <= p->deg; i++) n += p->c[i] != 0;
    return n;
}

int lm_ipoly_terms(const lm_ipoly *p, lm_mono *terms) {
    int n = 0;
    for (int i = p->deg; i >= 0; i--)
        if (p->c[i]) terms[n++] = (lm_mono){p->c[i], i};
    return n;
}

int lm_ipoly_divisible(const lm_ipoly *p, int64_t m) {
    for (int i = 0; i <= p->deg; i++)
        if (p->c[i] % m) return 0;
    return 1;
}

/* |c| v^deg without sign; c != 0. */
static int append_unsigned(lm_text *out, int64_t c, int deg, char var) {
    /* |INT64_MIN| does not fit an int64; print it through uint64 */
    uint64_t mag = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    if (mag != 1 || deg == 0)
        if (lm_text_appendf(out, "%llu", (unsigned long long)mag)) return -1;
    if (deg >= 1 && lm_text_appendf(out, "%c", var)) return -1;
    if (deg >= 2 && lm_text_appendf(out, "^%d", deg)) return -1;
    return 0;
}

int lm_mono_append_term(lm_text *out, lm_mono m, char var, int first) {
    const char *sign = first ? (m.c < 0 ? "-" : "") : (m.c < 0 ? " - " : " + ");
    return lm_text_append(out, sign, strlen(sign)) || append_unsigned(out, m.c, m.deg, var);
}

int lm_mono_append_factor(lm_text *out, lm_mono m, char var) {
    if (m.c > 0) return append_unsigned(out, m.c, m.deg, var);
    return lm_text_append(out, "(-", 2) || append_unsigned(out, m.c, m.deg, var) || lm_text_append(out, ")", 1);
}

int lm_ipoly_append(lm_text *out, const lm_ipoly *p, char var) {
    if (p->deg < 0) return lm_text_append(out, "0", 1);
    int first = 1;
    for (int i = p->deg; i >= 0; i--) {
        if (!p->c[i]) continue;
        if (lm_mono_append_term(out, (lm_mono){p->c[i], i}, var, first)) return -1;
        first = 0;
    }
    return 0;
}

static void copy_out(char *buf, size_t n, lm_text *t, int rc) {
    snprintf(buf, n, "%s", rc || !t->data ? "?" : t->data);
    lm_text_free(t);
}

void lm_ipoly_format(char *buf, size_t n, const lm_ipoly *p, char var) {
    lm_text t = {0};
    copy_out(buf, n, &t, lm_ipoly_append(&t, p, var));
}

void lm_mono_format_factor(char *buf, size_t n, lm_mono m, char var) {
    lm_text t = {0};
    copy_out(buf, n, &t, lm_mono_append_factor(&t, m, var));
}

void lm_mono_format_term(char *buf, size_t n, lm_mono m, char var) {
    lm_text t = {0};
    copy_out(buf, n, &t, lm_mono_append_term(&t, m, var, 1));
}

void lm_ipoly_format_degree(char *buf, size_t n, int deg, char var) {
    if (deg == 0) snprintf(buf, n, "the constant term");
    else if (deg == 1) snprintf(buf, n, "the %c coefficient", var);
    else snprintf(buf, n, "the %c^%d coefficient", var, deg);
}

/* An unsigned monomial in canonical spelling: "7", "x", "3x", "x^2", "3x^2". */
static int scan_unsigned_mono(lm_steps *s, char var, lm_mono *m) {
    lm_steps save = *s;
    char v[2] = {var, 0};
    int64_t c = 1, d = 0;
    int has_coef = lm_steps_num(s, &c);
    if (lm_steps_word(s, v)) {
        d = 1;
        if (lm_steps_sym(s, "^")) {
            if (!lm_steps_num(s, &d) || d < 2 || d > LM_IPOLY_MAX_DEG) goto fail;
        }
        if (has_coef && c == 1) goto fail; /* "1x" */
    } else if (!has_coef) {
        goto fail;
    }
    if (c == 0) goto fail;
    m->c = c;
    m->deg = (int)d;
    return 1;
fail:
    *s = save;
    return 0;
}

int lm_mono_scan_sum(lm_steps *s, char var, lm_mono *terms, int max, int *n) {
    lm_steps save = *s;
    int k = 0;
    int neg = lm_steps_sym(s, "-");
    for (;;) {
        if (k == max || !scan_unsigned_mono(s, var, &terms[k])) goto fail;
        if (neg) terms[k].c = -terms[k].c; /* c >= 1 here, so this cannot overflow */
        k++;
        if (lm_steps_sym(s, "+")) neg = 0;
        else if (lm_steps_sym(s, "-")) neg = 1;
        else break;
    }
    *n = k;
    return 1;
fail:
    *s = save;
    return 0;
}

int lm_ipoly_scan(lm_steps *s, char var, lm_ipoly *p) {
    lm_steps save = *s;
    lm_ipoly_zero(p);
    int64_t z;
    if (lm_steps_num(s, &z)) {
        if (z == 0) return 1; /* "0" is the zero polynomial; "0x" then fails in the caller */
        *s = save;
    }
    lm_mono t[LM_IPOLY_MAX_TERMS];
    int n;
    if (!lm_mono_scan_sum(s, var, t, LM_IPOLY_MAX_TERMS, &n)) goto fail;
    for (int i = 0; i < n; i++) {
        if (i && t[i].deg >= t[i - 1].deg) goto fail;
        p->c[t[i].deg] = t[i].c;
    }
    p->deg = t[0].deg;
    return 1;
fail:
    *s = save;
    lm_ipoly_zero(p);
    return 0;
}

int lm_mono_scan_factor(lm_steps *s, char var, lm_mono *m) {
    lm_steps save = *s;
    if (lm_steps_sym(s, "(")) {
        if (lm_steps_sym(s, "-") && scan_unsigned_mono(s, var, m) && lm_steps_sym(s, ")")) {
            m->c = -m->c;
            return 1;
        }
        *s = save;
        return 0;
    }
    return scan_unsigned_mono(s, var, m);
}
