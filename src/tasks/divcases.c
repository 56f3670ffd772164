/* divcases.c — "Prove that n^3 - n is divisible by 3 for every integer n."
 * by cases on n mod M.
 *
 * One line per remainder r = 0, 1, ..., M-1, in order:
 *   n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 3*(9k^3 + 9k^2 + 2k)
 * (the expansion of p(Mk + r), then M times the quotient), then the
 * conclusion restating the claim (docs/tasks.md, "### divcases"). */
#include <stdio.h>
#include <string.h>

#include "tasks/intpoly.h"
#include "tasks/steptext.h"
#include "tasks/tasks.h"
#include "tasks/util.h"

extern const lm_task_domain lm_domain_divcases;

#define DIV_STREAM 0x64697663ull         /* "divc" */
#define DIV_CORRUPT_STREAM 0x64697678ull /* "divx" */
#define MAX_DIVISOR 12
#define MAX_DEGREE 8

typedef struct question {
    lm_ipoly p;                         /* in n */
    int64_t m;                          /* the divisor: the cases are n = mk + r */
    lm_ipoly expansion[MAX_DIVISOR];    /* p(mk + r), in k */
} question;

static int scan_claim(lm_steps *s, lm_ipoly *p, int64_t *m) {
    return lm_ipoly_scan(s, 'n', p) && lm_steps_words(s, "is divisible by") && lm_steps_num(s, m) &&
           lm_steps_words(s, "for every integer n") && lm_steps_sym(s, ".") && lm_steps_end(s);
}

static int parse_question(const char *text, question *q, lm_error *err) {
    lm_steps s = {text, text + strlen(text)};
    if (!lm_steps_words(&s, "Prove that") || !scan_claim(&s, &q->p, &q->m))
        return lm_fail(err, "expected \"Prove that P is divisible by M for every integer n.\" with P a polynomial "
                            "in n in normal form");
    if (q->m < 2 || q->m > MAX_DIVISOR) return lm_fail(err, "the divisor must be in 2..%d", MAX_DIVISOR);
    if (q->p.deg < 1 || q->p.deg > MAX_DEGREE) return lm_fail(err, "the degree must be in 1..%d", MAX_DEGREE);
    for (int r = 0; r < q->m; r++)
        if (lm_ipoly_subst_linear(&q->expansion[r], &q->p, q->m, r))
            return lm_fail(err, "p(%lldk + %d) is too large for int64 arithmetic", (long long)q->m, r);
    return 0;
}

static int divcases_recognizes(const char *text) {
    size_t n = strlen(text), tail = strlen(" for every integer n.");
    return !strncmp(text, "Prove that ", 11) && strstr(text, " is divisible by ") && n > tail &&
           !strcmp(text + n - tail, " for every integer n.");
}

/* ---- Writing ------------------------------------------------------------- */

static int append_case_head(lm_text *t, const question *q, int r) {
    int rc = r ? lm_text_appendf(t, "n = %lldk + %d: ", (long long)q->m, r)
               : lm_text_appendf(t, "n = %lldk: ", (long long)q->m);
    return rc || lm_ipoly_append(t, &q->p, 'n') || lm_text_append(t, " = ", 3);
}

static int append_claim(lm_text *t, const lm_ipoly *p, int64_t m) {
    return lm_ipoly_append(t, p, 'n') ||
           lm_text_appendf(t, " is divisible by %lld for every integer n.", (long long)m);
}

/* A case line: the expansion (unless omitted), then m*(quotient). */
static int append_case(lm_text *t, const question *q, int r, const lm_ipoly *shown, const lm_ipoly *quotient,
                       int with_expansion) {
    return append_case_head(t, q, r) || (with_expansion && (lm_ipoly_append(t, shown, 'k') ||
                                                            lm_text_append(t, " = ", 3))) ||
           lm_text_appendf(t, "%lld*(", (long long)q->m) || lm_ipoly_append(t, quotient, 'k') ||
           lm_text_append(t, ")", 1);
}

/* The reference lines; a case line may be changed by the corrupter. */
typedef struct edit {
    int r;          /* case to change, -1: none */
    int what;       /* 0: expansion coefficient, 1: quotient coefficient, 2: drop the case, 3: drop the expansion */
    int term;
    int64_t delta;
    int64_t conclusion_m; /* the divisor the conclusion states */
} edit;

static int64_t slipped(int64_t c, int64_t delta) { return c + delta != 0 ? c + delta : c - delta; }

static void slip_term(lm_ipoly *p, int term, int64_t delta) {
    lm_mono t[LM_IPOLY_MAX_DEG + 1];
    int n = lm_ipoly_terms(p, t);
    if (n == 0) return;
    lm_mono m = t[term % n];
    p->c[m.deg] = slipped(m.c, delta);
}

static int write_solution(const question *q, const edit *ed, lm_linebuf *lb) {
    for (int r = 0; r < q->m; r++) {
        lm_ipoly shown = q->expansion[r], quotient = shown;
        for (int i = 0; i <= quotient.deg; i++) quotient.c[i] /= q->m;
        int with_expansion = 1;
        if (ed->r == r) {
            if (ed->what == 2) continue;
            if (ed->what == 0) slip_term(&shown, ed->term, ed->delta);
            if (ed->what == 1) slip_term(&quotient, ed->term, ed->delta);
            if (ed->what == 3) with_expansion = 0;
        }
        lm_text t = {0};
        int rc = append_case(&t, q, r, &shown, &quotient, with_expansion) ||
                 lm_linebuf_push(lb, t.data, t.len);
        lm_text_free(&t);
        if (rc) return -1;
    }
    lm_text t = {0};
    int rc = lm_text_append(&t, "Therefore ", 10) || append_claim(&t, &q->p, ed->conclusion_m) ||
             lm_linebuf_push(lb, t.data, t.len);
    lm_text_free(&t);
    return rc;
}

/* p = c*(m/d)*b(n + s) + m*q(n) with b divisible by d for every integer n:
 * true by construction, and not term by term (c*(m/d) is not a multiple
 * of m). */
typedef struct level {
    int m, d;          /* divisor and the base's divisor (d | m) */
    int base;          /* 0: n^2 + n, 1: n^3 - n, 2: n^5 - n */
    int cmax;          /* c in 1..cmax, coprime to d */
    int qdeg, qcoef;   /* q: degree up to qdeg, coefficients in -qcoef..qcoef */
} level;

static const level levels[5] = {
    {2, 2, 0, 1, 1, 1}, {3, 3, 1, 2, 1, 1}, {4, 2, 0, 1, 1, 1}, {6, 6, 1, 5, 2, 1}, {5, 5, 2, 4, 3, 1},
};

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int divcases_generate(uint64_t seed, int difficulty, lm_text *qtext, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "difficulty %d is not in 1..5", difficulty);
    const level *lv = &levels[difficulty - 1];
    uint64_t ctr = (uint64_t)difficulty << 32;
    lm_ipoly p;
    for (;;) {
        lm_ipoly b;
        lm_ipoly_zero(&b);
        if (lv->base == 0) b.c[2] = 1, b.c[1] = 1, b.deg = 2;
        if (lv->base == 1) b.c[3] = 1, b.c[1] = -1, b.deg = 3;
        if (lv->base == 2) b.c[5] = 1, b.c[1] = -1, b.deg = 5;
        int64_t shift = lm_steptext_pick(seed, DIV_STREAM, ctr++, -1, 1);
        int64_t c = lm_steptext_pick(seed, DIV_STREAM, ctr++, 1, lv->cmax);
        if (gcd64(c, lv->d) != 1) continue;
        lm_ipoly_subst_linear(&b, &b, 1, shift);
        lm_ipoly_scale(&b, &b, c * (lv->m / lv->d));
        lm_ipoly extra;
        lm_ipoly_zero(&extra);
        for (int i = 0; i <= lv->qdeg; i++) extra.c[i] = lv->m * lm_steptext_pick(seed, DIV_STREAM, ctr++, -lv->qcoef, lv->qcoef);
        extra.deg = lv->qdeg;
        while (extra.deg >= 0 && !extra.c[extra.deg]) extra.deg--;
        lm_ipoly_add(&p, &b, &extra);
        if (lm_ipoly_nterms(&p) >= 2) break;
    }
    question q;
    lm_text qt = {0};
    lm_linebuf lb = {0};
    int rc = lm_text_append(&qt, "Prove that ", 11) || append_claim(&qt, &p, lv->m);
    if (rc) return lm_fail(err, "out of memory");
    rc = parse_question(qt.data, &q, err);
    edit none = {-1, 0, 0, 0, q.m};
    if (!rc && (write_solution(&q, &none, &lb) || lm_linebuf_answer(&lb, proof) ||
                lm_text_append(qtext, qt.data, qt.len)))
        rc = lm_fail(err, "out of memory");
    lm_text_free(&qt);
    lm_linebuf_free(&lb);
    return rc;
}

/* ---- Checking ------------------------------------------------------------ */

enum line_kind { L_NONE, L_CASE, L_CONCLUSION };

typedef struct line {
    enum line_kind kind;
    int64_t m, r, factor;
    lm_ipoly p, expansion, quotient;
    int has_expansion;
} line;

/* "F*(Q)" */
static int scan_multiple(lm_steps *s, line *l) {
    lm_steps save = *s;
    if (lm_steps_num(s, &l->factor) && lm_steps_sym(s, "*") && lm_steps_sym(s, "(") &&
        lm_ipoly_scan(s, 'k', &l->quotient) && lm_steps_sym(s, ")"))
        return 1;
    *s = save;
    return 0;
}

static void parse_line(const char *b, const char *e, line *l) {
    memset(l, 0, sizeof *l);
    lm_steps s = {b, e};
    if (lm_steps_word(&s, "Therefore")) {
        if (scan_claim(&s, &l->p, &l->m)) l->kind = L_CONCLUSION;
        return;
    }
    if (!(lm_steps_word(&s, "n") && lm_steps_sym(&s, "=") && lm_steps_num(&s, &l->m) && lm_steps_word(&s, "k")))
        return;
    if (lm_steps_sym(&s, "+") && !(lm_steps_num(&s, &l->r) && l->r > 0)) return; /* "n = 3k", never "3k + 0" */
    if (!(lm_steps_sym(&s, ":") && lm_ipoly_scan(&s, 'n', &l->p) && lm_steps_sym(&s, "="))) return;
    if (!scan_multiple(&s, l)) {
        if (!(lm_ipoly_scan(&s, 'k', &l->expansion) && lm_steps_sym(&s, "=") && scan_multiple(&s, l))) return;
        l->has_expansion = 1;
    }
    if (lm_steps_end(&s)) l->kind = L_CASE;
}

/* "the k^2 coefficient is 27, not 26" for the highest degree where they differ. */
static void describe_difference(char *msg, size_t n, const lm_ipoly *want, const lm_ipoly *got) {
    int d = want->deg > got->deg ? want->deg : got->deg;
    while (d > 0 && want->c[d] == got->c[d]) d--;
    char name[48];
    lm_ipoly_format_degree(name, sizeof name, d, 'k');
    snprintf(msg, n, "%s is %lld, not %lld", name, (long long)want->c[d], (long long)got->c[d]);
}

static void case_name(char *buf, size_t n, int64_t m, int64_t r) {
    if (r) snprintf(buf, n, "n = %lldk + %lld", (long long)m, (long long)r);
    else snprintf(buf, n, "n = %lldk", (long long)m);
}

static int divcases_check_work(const char *qtext, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    int64_t next = 0; /* the remainder of the next case */
    int done = 0, omitted_step = 0;
    char s1[160], s2[160], cname[64];
    lm_lines it = {solution, 0};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e)) {
        int step = it.step;
        line l;
        parse_line(b, e, &l);
        if (l.kind == L_NONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "%s",
                         lm_steps_has_bad_number(b, e) ? "a number is too large or has a leading zero"
                                                      : "not a step of the divcases language");
            return 0;
        }
        if (done) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a step after the conclusion");
            return 0;
        }
        if (l.kind == L_CONCLUSION) {
            if (next == q.m) lm_task_work_add(work, step, "all %lld cases are done", (long long)q.m);
            if (next < q.m) {
                case_name(cname, sizeof cname, q.m, next);
                lm_check_set(res, 0, step, LM_ERR_MISSING_CASE, "the case %s is missing", cname);
                return 0;
            }
            if (!lm_ipoly_equal(&l.p, &q.p)) {
                lm_ipoly_format(s1, sizeof s1, &l.p, 'n');
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the conclusion is about %s", s1);
                return 0;
            }
            if (l.m != q.m) {
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the claim is divisibility by %lld, not %lld",
                             (long long)q.m, (long long)l.m);
                return 0;
            }
            done = 1;
            continue;
        }
        if (l.m != q.m) {
            lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the cases are n = %lldk + r, not n = %lldk + r",
                         (long long)q.m, (long long)l.m);
            return 0;
        }
        if (!lm_ipoly_equal(&l.p, &q.p)) {
            lm_ipoly_format(s1, sizeof s1, &q.p, 'n');
            lm_ipoly_format(s2, sizeof s2, &l.p, 'n');
            lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the polynomial is %s, not %s", s1, s2);
            return 0;
        }
        if (l.r >= q.m || l.r < next) {
            case_name(cname, sizeof cname, q.m, next);
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected the case %s", cname);
            return 0;
        }
        if (l.r > next) {
            case_name(cname, sizeof cname, q.m, next);
            lm_check_set(res, 0, step, LM_ERR_MISSING_CASE, "the case %s is missing", cname);
            return 0;
        }
        const lm_ipoly *want = &q.expansion[l.r];
        case_name(cname, sizeof cname, q.m, l.r);
        if (work) { /* the case's expansion, then each coefficient divided by m */
            char wb[2 * LM_TASK_WORK_MAX]; /* lm_task_work_add truncates */
            lm_ipoly_format(s1, sizeof s1, &q.p, 'n');
            lm_ipoly_format(s2, sizeof s2, want, 'k');
            snprintf(wb, sizeof wb, "%s at %s is %s", s1, cname, s2);
            for (int d = want->deg; d >= 0; d--) {
                size_t n = strlen(wb);
                if (want->c[d] && n + 1 < sizeof wb && want->c[d] % q.m == 0)
                    snprintf(wb + n, sizeof wb - n, ", %lld/%lld = %lld", (long long)want->c[d], (long long)q.m,
                             (long long)(want->c[d] / q.m));
                else if (want->c[d] && n + 1 < sizeof wb)
                    snprintf(wb + n, sizeof wb - n, ", %lld is not divisible by %lld", (long long)want->c[d],
                             (long long)q.m);
            }
            lm_task_work_add(work, step, "%s", wb);
        }
        if (l.has_expansion && !lm_ipoly_equal(&l.expansion, want)) {
            describe_difference(s1, sizeof s1, want, &l.expansion);
            lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "at %s %s", cname, s1);
            return 0;
        }
        if (!l.has_expansion && !omitted_step) omitted_step = step;
        if (l.factor != q.m) {
            lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the factor must be %lld, not %lld", (long long)q.m,
                         (long long)l.factor);
            return 0;
        }
        lm_ipoly times;
        if (lm_ipoly_scale(&times, &l.quotient, q.m)) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a coefficient of the quotient is too large");
            return 0;
        }
        if (!lm_ipoly_equal(&times, want)) {
            int d = want->deg > times.deg ? want->deg : times.deg;
            while (d > 0 && want->c[d] == times.c[d]) d--;
            lm_ipoly_format_degree(s1, sizeof s1, d, 'k');
            if (want->c[d] % q.m)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s %lld is not divisible by %lld", s1,
                             (long long)want->c[d], (long long)q.m);
            else
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s %lld = %lld*%lld, not %lld*%lld", s1,
                             (long long)want->c[d], (long long)q.m, (long long)(want->c[d] / q.m), (long long)q.m,
                             (long long)l.quotient.c[d]);
            return 0;
        }
        next++;
    }
    if (!done) {
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION, "no conclusion restating the claim");
        return 0;
    }
    if (omitted_step) {
        lm_check_set(res, 0.5, omitted_step, LM_ERR_OMITTED, "the expansion before %lld*(...) is missing",
                     (long long)q.m);
        return 0;
    }
    lm_check_set(res, 1, 0, "", NULL);
    return 0;
}

static int divcases_check(const char *qtext, const char *solution, lm_check_result *res, lm_error *err) {
    return divcases_check_work(qtext, solution, res, NULL, err);
}

/* ---- Corrupting ---------------------------------------------------------- */

static int divcases_corrupt(const char *qtext, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                            lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    if (lm_task_require_correct(&lm_domain_divcases, qtext, proof, err)) return -1;

    int kind = (int)lm_steptext_pick(seed, DIV_CORRUPT_STREAM, 0, 0, 4);
    int64_t delta = lm_steptext_pick(seed, DIV_CORRUPT_STREAM, 1, 1, 4);
    if (delta > 2) delta = 2 - delta; /* -1, -2 */
    edit ed = {-1, 0, 0, 0, q.m};
    memset(c, 0, sizeof *c);
    if (kind < 4) {
        ed.r = (int)lm_steptext_pick(seed, DIV_CORRUPT_STREAM, 2, 0, q.m - 1);
        ed.what = kind;
        ed.term = (int)lm_steptext_pick(seed, DIV_CORRUPT_STREAM, 3, 0, 1 << 20);
        ed.delta = delta;
        c->step = ed.r + 1;
        const char *k = kind < 2 ? LM_ERR_ARITHMETIC : kind == 2 ? LM_ERR_MISSING_CASE : LM_ERR_OMITTED;
        snprintf(c->kind, sizeof c->kind, "%s", k);
        c->label = kind == 3 ? 0.5 : 0;
    } else {
        ed.conclusion_m = q.m + lm_steptext_pick(seed, DIV_CORRUPT_STREAM, 2, 1, 3);
        c->step = (int)q.m + 1;
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_CONCLUSION);
    }
    lm_linebuf lb = {0};
    int rc = write_solution(&q, &ed, &lb) || lm_linebuf_answer(&lb, out);
    lm_linebuf_free(&lb);
    return rc ? lm_fail(err, "out of memory") : 0;
}

const lm_task_domain lm_domain_divcases = {
    .name = "divcases",
    .summary = "Prove that p(n) is divisible by m for every integer n: one line per case n = mk + r",
    .difficulty = "larger divisor (2 to 6) and degree (2 to 5): more and longer case lines",
    .generate = divcases_generate,
    .recognizes = divcases_recognizes,
    .check = divcases_check,
    .check_work = divcases_check_work,
    .corrupt = divcases_corrupt,
};
