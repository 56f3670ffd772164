/* poly.c — "Prove that (x + 2)(x - 3) = x^2 - x - 6 for all real x." by
 * expansion.
 *
 * The factors are multiplied in from the left, one round per factor after
 * the first: a distribution line lists every product of a term of the
 * product so far with a term of the next factor, a products line evaluates
 * them in the same order, a collected line adds like terms (normal form).
 * The conclusion restates the claim (docs/tasks.md, "### poly"). */
#include <stdio.h>
#include <string.h>

#include "tasks/intpoly.h"
#include "tasks/steptext.h"
#include "tasks/tasks.h"
#include "tasks/util.h"

extern const lm_task_domain lm_domain_poly;

#define POLY_STREAM 0x706f6c79ull         /* "poly" */
#define POLY_CORRUPT_STREAM 0x706f6c63ull /* "polc" */
#define MAX_FACTORS 6
#define MAX_FACTOR_TERMS 8
#define MAX_PRODUCTS LM_IPOLY_MAX_TERMS

typedef struct question {
    int k;
    lm_ipoly factor[MAX_FACTORS], rhs;
} question;

/* "(p)(q)...(r) = s": the factors and the right side, scanned from s. */
static int scan_claim(lm_steps *s, question *q) {
    q->k = 0;
    while (lm_steps_sym(s, "(")) {
        if (q->k == MAX_FACTORS || !lm_ipoly_scan(s, 'x', &q->factor[q->k]) || !lm_steps_sym(s, ")")) return 0;
        q->k++;
    }
    return q->k > 0 && lm_steps_sym(s, "=") && lm_ipoly_scan(s, 'x', &q->rhs) && lm_steps_words(s, "for all real x") &&
           lm_steps_sym(s, ".") && lm_steps_end(s);
}

/* A deliberate coefficient error for the corrupter: in round `round`, term
 * `term` of the products line (what == 0) or of the collected line
 * (what == 1) is off by delta; later rounds compute on from it. */
typedef struct slip {
    int round; /* -1: none */
    int what, term;
    int64_t delta;
} slip;
static const slip no_slip = {-1, 0, 0, 0};

static int write_rounds(const question *q, const slip *sl, lm_linebuf *lb, int *all_collect);

static int parse_question(const char *text, question *q, lm_error *err) {
    lm_steps s = {text, text + strlen(text)};
    if (!lm_steps_words(&s, "Prove that") || !scan_claim(&s, q))
        return lm_fail(err, "expected \"Prove that (P1)(P2)... = P for all real x.\" with polynomials in x in "
                            "normal form and at most %d factors",
                       MAX_FACTORS);
    if (q->k < 2) return lm_fail(err, "expected at least two factors");
    lm_ipoly prod = q->factor[0];
    for (int i = 0; i < q->k; i++) {
        if (q->factor[i].deg < 1) return lm_fail(err, "factor %d is a constant, expected degree at least 1", i + 1);
        if (lm_ipoly_nterms(&q->factor[i]) > MAX_FACTOR_TERMS)
            return lm_fail(err, "factor %d has more than %d terms", i + 1, MAX_FACTOR_TERMS);
        if (i && lm_ipoly_nterms(&prod) * lm_ipoly_nterms(&q->factor[i]) > MAX_PRODUCTS)
            return lm_fail(err, "multiplying in factor %d takes more than %d products", i + 1, MAX_PRODUCTS);
        if (i && lm_ipoly_mul(&prod, &prod, &q->factor[i]))
            return lm_fail(err, "the product is too large (degree above %d or a coefficient beyond int64)",
                           LM_IPOLY_MAX_DEG);
    }
    /* a term product may overflow even where the sums do not */
    lm_linebuf lb = {0};
    int rc = write_rounds(q, &no_slip, &lb, NULL);
    lm_linebuf_free(&lb);
    return rc ? lm_fail(err, "the expansion is too large for int64 arithmetic") : 0;
}

static int poly_recognizes(const char *text) {
    size_t n = strlen(text), tail = strlen(" for all real x.");
    return !strncmp(text, "Prove that (", 12) && n > tail && !strcmp(text + n - tail, " for all real x.");
}

/* ---- Writing ------------------------------------------------------------- */


static int64_t slipped(int64_t c, int64_t delta) { return c + delta != 0 ? c + delta : c - delta; }

static int append_factors(lm_text *t, const question *q) {
    for (int i = 0; i < q->k; i++)
        if (lm_text_append(t, "(", 1) || lm_ipoly_append(t, &q->factor[i], 'x') || lm_text_append(t, ")", 1))
            return -1;
    return 0;
}

static int append_conclusion(lm_text *t, const question *q, const lm_ipoly *rhs) {
    return lm_text_append(t, "Therefore ", 10) || append_factors(t, q) || lm_text_append(t, " = ", 3) ||
           lm_ipoly_append(t, rhs, 'x') || lm_text_append(t, " for all real x.", 16);
}

/* One line from a builder; the builder is reset. */
static int push_line(lm_linebuf *lb, lm_text *t, int rc) {
    rc = rc || lm_linebuf_push(lb, t->data ? t->data : "", t->len);
    lm_text_free(t);
    return rc;
}

/* The rounds, each appending three lines; -1 on overflow or out of memory.
 * *all_collect (when given) is cleared when some round has no like terms. */
static int write_rounds(const question *q, const slip *sl, lm_linebuf *lb, int *all_collect) {
    lm_ipoly cur = q->factor[0];
    for (int round = 0; round + 1 < q->k; round++) {
        const lm_ipoly *f = &q->factor[round + 1];
        lm_mono pt[LM_IPOLY_MAX_DEG + 1], ft[LM_IPOLY_MAX_DEG + 1], prod[MAX_PRODUCTS];
        int np = lm_ipoly_terms(&cur, pt), nf = lm_ipoly_terms(f, ft), n = 0;
        if (np * nf > MAX_PRODUCTS) return -1;
        lm_text t = {0};
        int rc = lm_text_append(&t, "(", 1) || lm_ipoly_append(&t, &cur, 'x') || lm_text_append(&t, ")(", 2) ||
                 lm_ipoly_append(&t, f, 'x') || lm_text_append(&t, ") = ", 4);
        for (int i = 0; i < np; i++)
            for (int j = 0; j < nf; j++) {
                rc = rc || (n && lm_text_append(&t, " + ", 3)) || lm_mono_append_factor(&t, pt[i], 'x') ||
                     lm_text_append(&t, "*", 1) || lm_mono_append_factor(&t, ft[j], 'x');
                if (__builtin_mul_overflow(pt[i].c, ft[j].c, &prod[n].c)) rc = -1;
                prod[n++].deg = pt[i].deg + ft[j].deg;
            }
        if (push_line(lb, &t, rc)) return -1;
        if (sl->round == round && sl->what == 0) prod[sl->term % n].c = slipped(prod[sl->term % n].c, sl->delta);
        lm_ipoly sum;
        lm_ipoly_zero(&sum);
        int like = 0;
        rc = lm_text_append(&t, "= ", 2);
        for (int i = 0; i < n; i++) {
            rc = rc || lm_mono_append_term(&t, prod[i], 'x', i == 0) || lm_ipoly_add_mono(&sum, prod[i].c, prod[i].deg);
            for (int j = 0; j < i; j++) like |= prod[j].deg == prod[i].deg;
        }
        if (all_collect && !like) *all_collect = 0;
        if (push_line(lb, &t, rc)) return -1;
        if (sl->round == round && sl->what == 1 && sum.deg >= 0) {
            lm_mono st[LM_IPOLY_MAX_DEG + 1];
            int ns = lm_ipoly_terms(&sum, st);
            lm_mono m = st[sl->term % ns];
            sum.c[m.deg] = slipped(m.c, sl->delta);
        }
        rc = lm_text_append(&t, "= ", 2) || lm_ipoly_append(&t, &sum, 'x');
        if (push_line(lb, &t, rc)) return -1;
        cur = sum;
    }
    return 0;
}

static int write_solution(const question *q, const slip *sl, const lm_ipoly *rhs, lm_linebuf *lb) {
    if (write_rounds(q, sl, lb, NULL)) return -1;
    lm_text t = {0};
    return push_line(lb, &t, append_conclusion(&t, q, rhs));
}

typedef struct level {
    int k;       /* factors */
    int lead;    /* leading coefficients of the linear factors in 1..lead */
    int c;       /* constants in -c..c, not 0 */
    int quad;    /* one factor is x^2 + bx + c */
} level;

static const level levels[5] = {{2, 1, 9, 0}, {2, 3, 9, 0}, {3, 1, 5, 0}, {3, 2, 5, 1}, {4, 2, 4, 0}};

static int64_t nonzero(uint64_t seed, uint64_t ctr, int64_t c) {
    int64_t v = lm_steptext_pick(seed, POLY_STREAM, ctr, 1, 2 * c);
    return v <= c ? -v : v - c;
}

static int poly_generate(uint64_t seed, int difficulty, lm_text *qtext, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "difficulty %d is not in 1..5", difficulty);
    const level *lv = &levels[difficulty - 1];
    uint64_t ctr = (uint64_t)difficulty << 32;
    question q;
    for (;;) {
        q.k = lv->k;
        int quad_at = lv->quad ? (int)lm_steptext_pick(seed, POLY_STREAM, ctr++, 0, lv->k - 1) : -1;
        int lead_gt1 = 0;
        for (int i = 0; i < q.k; i++) {
            lm_ipoly_zero(&q.factor[i]);
            if (i == quad_at) {
                q.factor[i].c[2] = 1;
                q.factor[i].c[1] = lm_steptext_pick(seed, POLY_STREAM, ctr++, -3, 3);
                q.factor[i].c[0] = nonzero(seed, ctr++, lv->c);
                q.factor[i].deg = 2;
            } else {
                q.factor[i].c[1] = lm_steptext_pick(seed, POLY_STREAM, ctr++, 1, lv->lead);
                q.factor[i].c[0] = nonzero(seed, ctr++, lv->c);
                q.factor[i].deg = 1;
                lead_gt1 |= q.factor[i].c[1] > 1;
            }
        }
        if (lv->lead > 1 && !lead_gt1 && difficulty == 2) continue; /* difficulty 2 is about leading coefficients */
        lm_ipoly prod = q.factor[0];
        for (int i = 1; i < q.k; i++) lm_ipoly_mul(&prod, &prod, &q.factor[i]); /* small: cannot overflow */
        q.rhs = prod;
        /* every round must have like terms, so that the products line and
         * the collected line differ (docs/tasks.md) */
        lm_linebuf lb = {0};
        int like = 1;
        int rc = write_rounds(&q, &no_slip, &lb, &like);
        lm_linebuf_free(&lb);
        if (rc) return lm_fail(err, "out of memory");
        if (like) break;
    }
    lm_text qt = {0};
    lm_linebuf lb = {0};
    int rc = lm_text_append(&qt, "Prove that ", 11) || append_factors(&qt, &q) || lm_text_append(&qt, " = ", 3) ||
             lm_ipoly_append(&qt, &q.rhs, 'x') || lm_text_append(&qt, " for all real x.", 16) ||
             write_solution(&q, &no_slip, &q.rhs, &lb) || lm_linebuf_answer(&lb, proof) ||
             lm_text_append(qtext, qt.data, qt.len);
    lm_text_free(&qt);
    lm_linebuf_free(&lb);
    return rc ? lm_fail(err, "out of memory") : 0;
}

/* ---- Checking ------------------------------------------------------------ */

enum line_kind { L_NONE, L_DIST, L_SUM, L_CONCLUSION };

typedef struct line {
    enum line_kind kind;
    lm_ipoly left, right;                   /* L_DIST: "(left)(right) = ..." */
    int n;                                  /* L_DIST: products, L_SUM: terms */
    lm_mono a[MAX_PRODUCTS], b[MAX_PRODUCTS]; /* L_DIST: factor pairs; L_SUM: a = terms */
    int normal;                             /* L_SUM: in normal form; then `sum` holds it */
    lm_ipoly sum;
    question claim;                         /* L_CONCLUSION */
} line;

static void parse_line(const char *b, const char *e, line *l) {
    l->kind = L_NONE;
    lm_steps s = {b, e};
    if (lm_steps_word(&s, "Therefore")) {
        if (scan_claim(&s, &l->claim)) l->kind = L_CONCLUSION;
        return;
    }
    if (lm_steps_sym(&s, "=")) {
        lm_steps z = s;
        if (lm_ipoly_scan(&z, 'x', &l->sum) && l->sum.deg < 0 && lm_steps_end(&z)) { /* "= 0" */
            l->kind = L_SUM;
            l->n = 0;
            l->normal = 1;
            return;
        }
        if (!lm_mono_scan_sum(&s, 'x', l->a, MAX_PRODUCTS, &l->n) || !lm_steps_end(&s)) return;
        l->kind = L_SUM;
        l->normal = 1;
        for (int i = 1; i < l->n; i++) l->normal &= l->a[i].deg < l->a[i - 1].deg;
        lm_ipoly_zero(&l->sum);
        for (int i = 0; i < l->n; i++) l->sum.c[l->a[i].deg] = l->a[i].c;
        l->sum.deg = l->a[0].deg;
        return;
    }
    if (!(lm_steps_sym(&s, "(") && lm_ipoly_scan(&s, 'x', &l->left) && lm_steps_sym(&s, ")") && lm_steps_sym(&s, "(") &&
          lm_ipoly_scan(&s, 'x', &l->right) && lm_steps_sym(&s, ")") && lm_steps_sym(&s, "=")))
        return;
    l->n = 0;
    do {
        if (l->n == MAX_PRODUCTS || !lm_mono_scan_factor(&s, 'x', &l->a[l->n]) || !lm_steps_sym(&s, "*") ||
            !lm_mono_scan_factor(&s, 'x', &l->b[l->n]))
            return;
        l->n++;
    } while (lm_steps_sym(&s, "+"));
    if (lm_steps_end(&s)) l->kind = L_DIST;
}

enum phase { P_DIST, P_PRODUCTS, P_COLLECTED, P_CONCLUSION, P_DONE };

/* The highest degree where a and b differ, as "the x coefficient is -1, not -2". */
static void describe_difference(char *msg, size_t n, const char *what, const lm_ipoly *want, const lm_ipoly *got) {
    int top = want->deg > got->deg ? want->deg : got->deg, d = top;
    while (d > 0 && want->c[d] == got->c[d]) d--;
    char name[48];
    lm_ipoly_format_degree(name, sizeof name, d, 'x');
    snprintf(msg, n, "%s: %s is %lld, not %lld", what, name, (long long)want->c[d], (long long)got->c[d]);
}

static int poly_check_work(const char *qtext, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    line l;
    enum phase ph = P_DIST;
    int round = 0, nprod = 0, omitted_step = 0;
    lm_ipoly cur = q.factor[0], expansion;
    lm_mono prod[MAX_PRODUCTS], pa[MAX_PRODUCTS], pb[MAX_PRODUCTS];
    char s1[96], s2[96], msg[200];
    lm_lines it = {solution, 0};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e)) {
        int step = it.step;
        parse_line(b, e, &l);
        if (l.kind == L_NONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "%s",
                         lm_steps_has_bad_number(b, e) ? "a number is too large or has a leading zero"
                                                      : "not a step of the poly language");
            return 0;
        }
        if (ph == P_DONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a step after the conclusion");
            return 0;
        }
        if (l.kind == L_CONCLUSION) {
            question *c = &l.claim;
            if (work && ph == P_CONCLUSION) {
                lm_ipoly_format(s1, sizeof s1, &cur, 'x');
                lm_task_work_add(work, step, "the expansion is %s", s1);
            }
            int same = c->k == q.k;
            for (int i = 0; same && i < q.k; i++) same = lm_ipoly_equal(&c->factor[i], &q.factor[i]);
            if (!same) {
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the conclusion is about another product");
                return 0;
            }
            if (!lm_ipoly_equal(&c->rhs, &q.rhs)) {
                lm_ipoly_format(s1, sizeof s1, &q.rhs, 'x');
                lm_ipoly_format(s2, sizeof s2, &c->rhs, 'x');
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the claimed right side is %s, not %s", s1, s2);
                return 0;
            }
            if (ph != P_CONCLUSION) {
                lm_ipoly_format(s1, sizeof s1, &q.factor[round + 1], 'x');
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "concluded before (%s) is multiplied in", s1);
                return 0;
            }
            if (!lm_ipoly_equal(&cur, &q.rhs)) {
                lm_ipoly_format(s1, sizeof s1, &cur, 'x');
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the expansion is %s, not the claimed right side", s1);
                return 0;
            }
            ph = P_DONE;
            continue;
        }
        if (ph == P_DIST) {
            if (l.kind != L_DIST) {
                lm_ipoly_format(s1, sizeof s1, &q.factor[round + 1], 'x');
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected the distribution of (...)(%s)", s1);
                return 0;
            }
            if (work) { /* the product so far and the next factor of the question */
                lm_ipoly_format(s1, sizeof s1, &cur, 'x');
                lm_ipoly_format(s2, sizeof s2, &q.factor[round + 1], 'x');
                lm_task_work_add(work, step, "distribute (%s)(%s)", s1, s2);
            }
            if (!lm_ipoly_equal(&l.left, &cur)) {
                lm_ipoly_format(s1, sizeof s1, &cur, 'x');
                lm_ipoly_format(s2, sizeof s2, &l.left, 'x');
                if (round == 0)
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the first factor is (%s), not (%s)", s1, s2);
                else
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the product so far is %s, not %s", s1, s2);
                return 0;
            }
            const lm_ipoly *f = &q.factor[round + 1];
            if (!lm_ipoly_equal(&l.right, f)) {
                lm_ipoly_format(s1, sizeof s1, f, 'x');
                lm_ipoly_format(s2, sizeof s2, &l.right, 'x');
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "factor %d is (%s), not (%s)", round + 2, s1, s2);
                return 0;
            }
            lm_mono ct[LM_IPOLY_MAX_DEG + 1], ft[LM_IPOLY_MAX_DEG + 1];
            int nc = lm_ipoly_terms(&cur, ct), nf = lm_ipoly_terms(f, ft);
            if (l.n != nc * nf) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%d*%d = %d products, not %d", nc, nf, nc * nf, l.n);
                return 0;
            }
            nprod = l.n;
            for (int i = 0; i < nprod; i++) {
                lm_mono x = ct[i / nf], y = ft[i % nf];
                if (x.c != l.a[i].c || x.deg != l.a[i].deg || y.c != l.b[i].c || y.deg != l.b[i].deg) {
                    char w1[40], w2[40], g1[40], g2[40];
                    lm_mono_format_factor(w1, sizeof w1, x, 'x');
                    lm_mono_format_factor(w2, sizeof w2, y, 'x');
                    lm_mono_format_factor(g1, sizeof g1, l.a[i], 'x');
                    lm_mono_format_factor(g2, sizeof g2, l.b[i], 'x');
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "product %d is %s*%s, not %s*%s", i + 1, w1, w2, g1,
                                 g2);
                    return 0;
                }
                pa[i] = x;
                pb[i] = y;
                prod[i].deg = x.deg + y.deg;
                if (__builtin_mul_overflow(x.c, y.c, &prod[i].c)) {
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a product is too large");
                    return 0;
                }
            }
            lm_ipoly_zero(&expansion);
            for (int i = 0; i < nprod; i++)
                if (lm_ipoly_add_mono(&expansion, prod[i].c, prod[i].deg)) {
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the expansion is too large");
                    return 0;
                }
            ph = P_PRODUCTS;
            continue;
        }
        if (ph == P_CONCLUSION) {
            if (l.kind == L_DIST)
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the product has only %d factors", q.k);
            else
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected the conclusion");
            return 0;
        }
        if (l.kind != L_SUM) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected a line \"= ...\" (%s)",
                         ph == P_PRODUCTS ? "the products" : "like terms collected");
            return 0;
        }
        if (ph == P_PRODUCTS) {
            if (l.n == nprod) {
                if (work) { /* each product redone from the distributed factors */
                    char wb[LM_TASK_WORK_MAX] = "";
                    for (int i = 0; i < nprod; i++) {
                        char w1[40], w2[40], w[40];
                        size_t n = strlen(wb);
                        lm_mono_format_factor(w1, sizeof w1, pa[i], 'x');
                        lm_mono_format_factor(w2, sizeof w2, pb[i], 'x');
                        lm_mono_format_term(w, sizeof w, prod[i], 'x');
                        if (n + 1 < sizeof wb)
                            snprintf(wb + n, sizeof wb - n, "%s%s*%s = %s", i ? ", " : "", w1, w2, w);
                    }
                    lm_task_work_add(work, step, "%s", wb);
                }
                for (int i = 0; i < nprod; i++)
                    if (l.a[i].c != prod[i].c || l.a[i].deg != prod[i].deg) {
                        char w1[40], w2[40], w[40], g[40];
                        lm_mono_format_factor(w1, sizeof w1, pa[i], 'x');
                        lm_mono_format_factor(w2, sizeof w2, pb[i], 'x');
                        lm_mono_format_term(w, sizeof w, prod[i], 'x');
                        lm_mono_format_term(g, sizeof g, l.a[i], 'x');
                        lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s*%s = %s, not %s", w1, w2, w, g);
                        return 0;
                    }
                ph = P_COLLECTED;
                continue;
            }
            /* a different number of terms: the products line was left out */
            if (!omitted_step) omitted_step = step;
            ph = P_COLLECTED;
        }
        if (work) { /* the like terms of the products added, degree by degree, then the sum */
            char wb[LM_TASK_WORK_MAX] = "";
            for (int deg = LM_IPOLY_MAX_DEG; deg >= 0; deg--) {
                int many = 0;
                for (int i = 0; i < nprod; i++) many += prod[i].deg == deg;
                if (many < 2) continue;
                size_t n = strlen(wb);
                for (int i = 0, first = 1; i < nprod && n + 1 < sizeof wb; i++) {
                    if (prod[i].deg != deg) continue;
                    char t[40];
                    lm_mono_format_factor(t, sizeof t, prod[i], 'x');
                    snprintf(wb + n, sizeof wb - n, "%s%s", first ? (n ? ", " : "") : " + ", t);
                    first = 0;
                    n = strlen(wb);
                }
                char t[40] = "0";
                int64_t c = deg <= expansion.deg ? expansion.c[deg] : 0;
                if (c) lm_mono_format_term(t, sizeof t, (lm_mono){.c = c, .deg = deg}, 'x');
                if (n + 1 < sizeof wb) snprintf(wb + n, sizeof wb - n, " = %s", t);
            }
            lm_ipoly_format(s1, sizeof s1, &expansion, 'x');
            lm_task_work_add(work, step, "%s%sso %s", wb, *wb ? ", " : "", s1);
        }
        if (!l.normal) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "like terms not collected in decreasing degree");
            return 0;
        }
        if (!lm_ipoly_equal(&l.sum, &expansion)) {
            describe_difference(msg, sizeof msg, "collecting", &expansion, &l.sum);
            lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s", msg);
            return 0;
        }
        cur = expansion;
        round++;
        ph = round + 1 < q.k ? P_DIST : P_CONCLUSION;
    }
    if (ph != P_DONE) {
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION, "no conclusion restating the claim");
        return 0;
    }
    if (omitted_step) {
        lm_check_set(res, 0.5, omitted_step, LM_ERR_OMITTED, "the products line before this one is missing");
        return 0;
    }
    lm_check_set(res, 1, 0, "", NULL);
    return 0;
}

static int poly_check(const char *qtext, const char *solution, lm_check_result *res, lm_error *err) {
    return poly_check_work(qtext, solution, res, NULL, err);
}

/* ---- Corrupting ---------------------------------------------------------- */

static int poly_corrupt(const char *qtext, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                        lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    if (lm_task_require_correct(&lm_domain_poly, qtext, proof, err)) return -1;

    int rounds = q.k - 1;
    int kind = (int)lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 0, 0, 2);
    int round = (int)lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 1, 0, rounds - 1);
    int64_t delta = lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 2, 1, 4);
    if (delta > 2) delta = 2 - delta; /* -1, -2 */
    slip sl = {-1, 0, 0, 0};
    lm_ipoly rhs = q.rhs;
    memset(c, 0, sizeof *c);
    if (kind == 0) {
        sl = (slip){round, (int)lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 3, 0, 1),
                    (int)lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 4, 0, 1 << 20), delta};
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_ARITHMETIC);
        c->step = 3 * round + 2 + sl.what;
    } else if (kind == 1) {
        lm_mono t[LM_IPOLY_MAX_DEG + 1];
        int n = lm_ipoly_terms(&rhs, t);
        lm_mono m = t[lm_steptext_pick(seed, POLY_CORRUPT_STREAM, 3, 0, n - 1)];
        rhs.c[m.deg] = slipped(m.c, delta);
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_CONCLUSION);
        c->step = 3 * rounds + 1;
    } else {
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_OMITTED);
        c->label = 0.5;
        c->step = 3 * round + 2;
    }
    lm_linebuf lb = {0};
    int rc = write_solution(&q, &sl, &rhs, &lb);
    if (!rc && kind == 2) lm_linebuf_remove(&lb, 3 * round + 1);
    rc = rc || lm_linebuf_answer(&lb, out);
    lm_linebuf_free(&lb);
    return rc ? lm_fail(err, "out of memory or overflow") : 0;
}

const lm_task_domain lm_domain_poly = {
    .name = "poly",
    .summary = "Prove that (x + a)(x + b)... = P for all real x: distribute, evaluate products, collect",
    .difficulty = "more factors (2 to 4), leading coefficients up to 3, a quadratic factor: more and longer rounds",
    .generate = poly_generate,
    .recognizes = poly_recognizes,
    .check = poly_check,
    .check_work = poly_check_work,
    .corrupt = poly_corrupt,
};
