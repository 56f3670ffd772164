/* lineq.c — the "lineq" domain: a linear equation a*x + b = c*x + d with an
 * integer solution, solved by equivalent steps and checked by substitution.
 * The step language is in docs/tasks.md ("### lineq"):
 *
 *   Find all real numbers x such that 5x + 3 = 2x - 9, and prove that there are no others.
 *
 *   Equation: 5x + 3 = 2x - 9
 *   Subtract 2x from both sides: 3x + 3 = -9
 *   Subtract 3 from both sides: 3x = -12
 *   Divide both sides by 3: x = -4
 *   Check: 5*(-4) + 3 = -17 and 2*(-4) - 9 = -17
 *   Therefore the only solution is x = -4.
 *
 * Each step replaces the equation by an equivalent one, which shows that -4
 * is the only candidate; the check line shows that it is a solution. Without
 * the check the answer scores 0.5. */
#include <stdio.h>
#include <string.h>

#include "tasks/tasks.h"
#include "tasks/util.h"

/* Largest coefficient of a question: every number a proof derives from it
 * (sums, differences, a*x + b in the check, the corruptions' shifts) then
 * fits in int64 with room to spare. */
#define LINEQ_MAX ((int64_t)1000000000000)

typedef struct equation {
    int64_t a, b, c, d; /* a*x + b = c*x + d */
} equation;

typedef struct lineq_problem {
    equation eq;
    int integers; /* "integers" rather than "real numbers" in the wording */
    int64_t x;    /* the solution */
} lineq_problem;

/* ---- sides and equations as text ------------------------------------------ */

/* Canonical text of x_coef*x + k: "3x + 3", "-x - 9", "x", "-12", "0". */
static const char *side_text(char *buf, size_t cap, int64_t xc, int64_t k) {
    if (xc == 0) {
        snprintf(buf, cap, "%lld", (long long)k);
        return buf;
    }
    size_t pos = 0;
    if (xc == 1) pos = (size_t)snprintf(buf, cap, "x");
    else if (xc == -1) pos = (size_t)snprintf(buf, cap, "-x");
    else pos = (size_t)snprintf(buf, cap, "%lldx", (long long)xc);
    if (k && pos < cap)
        snprintf(buf + pos, cap - pos, " %c %llu", k > 0 ? '+' : '-',
                 k > 0 ? (unsigned long long)k : 0ull - (unsigned long long)k);
    return buf;
}

static const char *eq_text(char *buf, size_t cap, const equation *e) {
    char l[64], r[64];
    snprintf(buf, cap, "%s = %s", side_text(l, sizeof l, e->a, e->b), side_text(r, sizeof r, e->c, e->d));
    return buf;
}

/* A side in canonical form at sc: 1, 0 (not one), -1 (a number out of range). */
static int scan_side(lm_scan *sc, int64_t *xc, int64_t *k) {
    lm_scan save = *sc;
    int64_t n;
    int r;
    *k = 0;
    if (lm_scan_fmt(sc, "-x") == 1) {
        *xc = -1;
    } else if (lm_scan_fmt(sc, "x") == 1) {
        *xc = 1;
    } else if ((r = lm_scan_fmt(sc, "%dx", &n)) != 0) {
        if (r < 0) return -1;
        if (n >= -1 && n <= 1) return *sc = save, 0; /* "0x", "1x", "-1x" are not canonical */
        *xc = n;
    } else if ((r = lm_scan_fmt(sc, "%d", &n)) != 0) {
        if (r < 0) return -1;
        *xc = 0;
        *k = n;
        return 1;
    } else {
        return 0;
    }
    int sign = 1;
    if ((r = lm_scan_fmt(sc, "+ %u", &n)) == 0) {
        sign = -1;
        r = lm_scan_fmt(sc, "- %u", &n);
    }
    if (r < 0) return -1;
    if (r == 1) {
        if (n == 0) return *sc = save, 0; /* "+ 0" is not canonical */
        *k = sign * n;
    }
    return 1;
}

static int scan_equation(lm_scan *sc, equation *e) {
    int r = scan_side(sc, &e->a, &e->b);
    if (r == 1) r = lm_scan_fmt(sc, "=");
    if (r == 1) r = scan_side(sc, &e->c, &e->d);
    return r;
}

static int eq_same(const equation *x, const equation *y) {
    return x->a == y->a && x->b == y->b && x->c == y->c && x->d == y->d;
}

/* ---- the question ---------------------------------------------------------- */

static const char *const openings[2] = {"Find all real numbers x such that", "Find all integers x such that"};
static const char ending[] = ", and prove that there are no others.";

static int parse_question(const char *q, lineq_problem *pb, lm_error *err) {
    static const char *form =
        "expected 'Find all real numbers x such that <ax + b> = <cx + d>, and prove that there are no others.'";
    lm_scan sc;
    lm_scan_init(&sc, q, strlen(q));
    int r = 0;
    for (int i = 0; i < 2 && r == 0; i++)
        if ((r = lm_scan_fmt(&sc, openings[i])) == 1) pb->integers = i;
    if (r == 1) r = scan_equation(&sc, &pb->eq);
    if (r == 1) r = lm_scan_fmt(&sc, ", and prove that there are no others.");
    if (r < 0) return lm_fail(err, "a number out of range");
    if (r == 0 || !lm_scan_end(&sc)) return lm_fail(err, "%s", form);
    const equation *e = &pb->eq;
    const int64_t c4[4] = {e->a, e->b, e->c, e->d};
    for (int i = 0; i < 4; i++)
        if (c4[i] > LINEQ_MAX || c4[i] < -LINEQ_MAX)
            return lm_fail(err, "a number out of range (at most 10^12 in size)");
    int64_t u = e->a - e->c, w = e->d - e->b;
    if (u == 0) return lm_fail(err, "the x terms cancel: the equation has no unique solution");
    if (w % u) return lm_fail(err, "the solution %lld/%lld is not an integer", (long long)w, (long long)u);
    pb->x = w / u;
    return 0;
}

static int lineq_recognizes(const char *q) {
    for (int i = 0; i < 2; i++)
        if (!strncmp(q, openings[i], strlen(openings[i]))) return 1;
    return 0;
}

/* ---- reference proofs and their faults ------------------------------------ */

/* value of coef*v + k for a substitution, in 128 bits */
static __int128 side_value(int64_t xc, int64_t k, int64_t v) { return (__int128)xc * v + k; }

/* The side with x replaced by v: "5*(-4) + 3", "(-4) - 9", "-4", "-3*7". */
static const char *subst_text(char *buf, size_t cap, int64_t xc, int64_t k, int64_t v) {
    char f[24], rest[40] = "";
    lm_task_factor(f, v);
    if (k)
        snprintf(rest, sizeof rest, " %c %llu", k > 0 ? '+' : '-',
                 k > 0 ? (unsigned long long)k : 0ull - (unsigned long long)k);
    if (xc == 1) snprintf(buf, cap, "%s%s", f, rest);
    else if (xc == -1) snprintf(buf, cap, "-%s%s", f, rest);
    else snprintf(buf, cap, "%lld*%s%s", (long long)xc, f, rest);
    return buf;
}

/* "Check: 5*(-4) + 3 = -17 and 2*(-4) - 9 = -17": each side with an x term,
 * evaluated at v. check_delta is added to the first value (a slip). */
static int append_check(lm_text *body, const equation *q, int64_t v, int check_delta) {
    char s[96], n[48];
    int parts = 0;
    if (lm_text_appendf(body, "Check: ")) return -1;
    if (q->a) {
        __int128 val = side_value(q->a, q->b, v) + check_delta;
        if (lm_text_appendf(body, "%s = %s", subst_text(s, sizeof s, q->a, q->b, v), lm_task_i128_text(n, val)))
            return -1;
        parts++;
        check_delta = 0;
    }
    if (q->c) {
        __int128 val = side_value(q->c, q->d, v) + check_delta;
        if (lm_text_appendf(body, "%s%s = %s", parts ? " and " : "", subst_text(s, sizeof s, q->c, q->d, v),
                            lm_task_i128_text(n, val)))
            return -1;
    }
    return lm_text_appendf(body, "\n");
}

typedef struct lineq_fault {
    int op;           /* 1-based operation line (after "Equation") whose right side is off by delta; 0 none */
    int64_t delta;
    int64_t x_delta;  /* the division's result off by this */
    int check_delta;  /* the check's first value off by this */
    int assert_x;     /* the operations replaced by the bare assertion "x = v" */
} lineq_fault;

/* The reference solution body (f NULL) or one with a fault; later lines
 * follow the fault consistently. *ops gets the number of operation lines. */
static int render(const lineq_problem *pb, const lineq_fault *f, lm_text *body, int *ops) {
    static const lineq_fault none = {0};
    if (!f) f = &none;
    equation e = pb->eq;
    char t[160], u[64];
    int n = 0;
    if (lm_text_appendf(body, "Equation: %s\n", eq_text(t, sizeof t, &e))) return -1;
    if (f->assert_x) {
        if (lm_text_appendf(body, "x = %lld\n", (long long)pb->x)) return -1;
        e = (equation){1, 0, 0, pb->x};
    } else {
        if (e.c) { /* move the x term to the left */
            int64_t c = e.c;
            e.a -= c;
            e.c = 0;
            if (++n == f->op) e.d += f->delta;
            if (lm_text_appendf(body, "%s %s %s both sides: %s\n", c > 0 ? "Subtract" : "Add",
                                side_text(u, sizeof u, c > 0 ? c : -c, 0), c > 0 ? "from" : "to",
                                eq_text(t, sizeof t, &e)))
                return -1;
        }
        if (e.b) { /* move the constant to the right */
            int64_t b = e.b;
            e.d -= b;
            e.b = 0;
            if (++n == f->op) e.d += f->delta;
            if (lm_text_appendf(body, "%s %llu %s both sides: %s\n", b > 0 ? "Subtract" : "Add",
                                b > 0 ? (unsigned long long)b : 0ull - (unsigned long long)b, b > 0 ? "from" : "to",
                                eq_text(t, sizeof t, &e)))
                return -1;
        }
        if (e.a != 1) {
            int64_t k = e.a;
            e.a = 1;
            e.d = e.d / k + f->x_delta;
            ++n;
            if (lm_text_appendf(body, "Divide both sides by %lld: %s\n", (long long)k, eq_text(t, sizeof t, &e)))
                return -1;
        }
    }
    if (ops) *ops = n;
    return append_check(body, &pb->eq, e.d, f->check_delta) ||
           lm_text_appendf(body, "Therefore the only solution is x = %lld.\n", (long long)e.d);
}

static int64_t draw_nonzero(lm_task_rng *r, int64_t max) {
    int64_t v = lm_task_rng_range(r, 1, max);
    return lm_task_rng_range(r, 0, 1) ? v : -v;
}

static void draw_problem(lm_task_rng *r, int difficulty, lineq_problem *pb) {
    static const struct {
        int64_t coef, x, konst;
    } level[5] = {{5, 9, 9}, {9, 12, 20}, {20, 30, 99}, {60, 99, 500}, {99, 999, 9999}};
    int L = difficulty - 1;
    equation *e = &pb->eq;
    if (difficulty == 1) { /* a*x + b = d */
        e->a = lm_task_rng_range(r, 2, level[0].coef);
        e->c = 0;
        e->b = draw_nonzero(r, level[0].konst);
    } else {
        e->a = draw_nonzero(r, level[L].coef);
        do e->c = draw_nonzero(r, level[L].coef);
        while (e->c == e->a);
        e->b = lm_task_rng_range(r, -level[L].konst, level[L].konst);
    }
    pb->x = lm_task_rng_range(r, -level[L].x, level[L].x);
    e->d = (e->a - e->c) * pb->x + e->b;
    pb->integers = difficulty >= 3 && lm_task_rng_range(r, 0, 1);
}

static int write_question(const lineq_problem *pb, lm_text *q) {
    char t[160];
    return lm_text_appendf(q, "%s %s%s", openings[pb->integers], eq_text(t, sizeof t, &pb->eq), ending);
}

static int lineq_generate(uint64_t seed, int difficulty, lm_text *question, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "lineq: difficulty %d is not in 1..5", difficulty);
    lm_task_rng r = {seed, 0};
    lineq_problem pb;
    draw_problem(&r, difficulty, &pb);
    lm_text body = {0};
    int rc = write_question(&pb, question) || render(&pb, NULL, &body, NULL) || lm_task_answer(body.data, body.len, proof);
    lm_text_free(&body);
    return rc ? lm_fail(err, "out of memory") : 0;
}

/* ---- the checker ---------------------------------------------------------- */

enum { PH_START, PH_DERIVE, PH_CONCLUDE, PH_DONE };

/* An operand of Add/Subtract: "x", "7x" (not "1x", "0x"), or "7". */
static int scan_term(lm_scan *sc, int64_t *xc, int64_t *k) {
    int64_t n;
    int r;
    *xc = *k = 0;
    if (lm_scan_fmt(sc, "x") == 1) return *xc = 1, 1;
    if ((r = lm_scan_fmt(sc, "%ux", &n)) != 0) {
        if (r < 0) return -1;
        if (n < 2) return 0;
        return *xc = n, 1;
    }
    if ((r = lm_scan_fmt(sc, "%u", &n)) != 0) {
        if (r < 0) return -1;
        return *k = n, 1;
    }
    return 0;
}

/* One part of the check line: "<side with x replaced> = value". */
static int scan_subst(lm_scan *sc, int64_t *xc, int64_t *v, int64_t *k, int64_t *value) {
    int r;
    if ((r = lm_scan_fmt(sc, "%d*%p", xc, v)) != 0) {
        if (r < 0) return -1;
        if (*xc >= -1 && *xc <= 1) return 0;
    } else if ((r = lm_scan_fmt(sc, "-%p", v)) != 0) {
        if (r < 0) return -1;
        *xc = -1;
    } else if ((r = lm_scan_fmt(sc, "%p", v)) != 0) {
        if (r < 0) return -1;
        *xc = 1;
    } else {
        return 0;
    }
    int64_t n;
    *k = 0;
    if ((r = lm_scan_fmt(sc, "+ %u", &n)) != 0) {
        if (r < 0 || n == 0) return r < 0 ? -1 : 0;
        *k = n;
    } else if ((r = lm_scan_fmt(sc, "- %u", &n)) != 0) {
        if (r < 0 || n == 0) return r < 0 ? -1 : 0;
        *k = -n;
    }
    return lm_scan_fmt(sc, "= %d", value);
}

/* ---- the checker's working ------------------------------------------------ */

/* Appends "from + delta = to" (or "from - |delta| = to") to buf, with ", "
 * before it when buf is not empty. */
static void work_shift(char *buf, size_t cap, int64_t from, int64_t delta) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    unsigned long long mag = delta < 0 ? 0ull - (unsigned long long)delta : (unsigned long long)delta;
    snprintf(buf + n, cap - n, "%s%lld %c %llu = %lld", n ? ", " : "", (long long)from, delta < 0 ? '-' : '+', mag,
             (long long)(from + delta));
}

static int lineq_check_work(const char *question, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    lineq_problem pb;
    if (parse_question(question, &pb, err)) return -1;
    lm_task_lines L;
    if (lm_task_split_lines(solution, strlen(solution), &L)) return lm_fail(err, "out of memory");
    char qeq[160], t1[160], t2[160];
    eq_text(qeq, sizeof qeq, &pb.eq);
    equation e = pb.eq;
    int phase = PH_START, omitted = 0;
    lm_check_set(res, 1, 0, "", NULL);
    for (int i = 0; i < L.n; i++) {
        const char *t = L.line[i].text;
        size_t len = L.line[i].len;
        int step = L.line[i].number, r;
        int solved = e.a == 1 && e.b == 0 && e.c == 0;
        lm_scan sc;
        equation ne;
        int64_t xc, k, v, dv;
        if (phase == PH_DONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "nothing may follow the conclusion");
            goto out;
        }
        /* Equation: E */
        lm_scan_init(&sc, t, len);
        if ((r = lm_scan_fmt(&sc, "Equation:")) == 1) {
            r = scan_equation(&sc, &ne);
            if (r == 1 && !lm_scan_end(&sc)) r = 0;
            if (r == 1) {
                lm_task_work_add(work, step, "the question's equation is %s", qeq);
                if (phase != PH_START)
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the equation is stated once, on the first line");
                else if (!eq_same(&ne, &pb.eq))
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the question's equation is %s, not %s", qeq,
                                 eq_text(t1, sizeof t1, &ne));
                else {
                    phase = PH_DERIVE;
                    continue;
                }
                goto out;
            }
            goto unparseable;
        }
        /* Subtract T from both sides: E / Add T to both sides: E */
        int sub = 0;
        lm_scan_init(&sc, t, len);
        if ((r = lm_scan_fmt(&sc, "Subtract")) == 1 || (lm_scan_init(&sc, t, len), r = lm_scan_fmt(&sc, "Add")) == 1) {
            sub = t[0] == 'S';
            r = scan_term(&sc, &xc, &k);
            if (r == 1) r = lm_scan_fmt(&sc, sub ? "from both sides:" : "to both sides:");
            if (r == 1) r = scan_equation(&sc, &ne);
            if (r == 1 && !lm_scan_end(&sc)) r = 0;
            if (r != 1) goto unparseable_r;
            if (phase != PH_DERIVE) goto misplaced;
            equation w = e;
            int64_t sx = sub ? -xc : xc, sk = sub ? -k : k;
            if (__builtin_add_overflow(w.a, sx, &w.a) || __builtin_add_overflow(w.c, sx, &w.c) ||
                __builtin_add_overflow(w.b, sk, &w.b) || __builtin_add_overflow(w.d, sk, &w.d)) {
                r = -1;
                goto unparseable_r;
            }
            if (work) { /* each coefficient the shift changes, then the equation they make */
                char wb[LM_TASK_WORK_MAX] = "";
                if (sx) work_shift(wb, sizeof wb, e.a, sx), work_shift(wb, sizeof wb, e.c, sx);
                if (sk) work_shift(wb, sizeof wb, e.b, sk), work_shift(wb, sizeof wb, e.d, sk);
                lm_task_work_add(work, step, "%s%sso %s", wb, *wb ? ", " : "", eq_text(t1, sizeof t1, &w));
            }
            if (!eq_same(&w, &ne)) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the result is %s, not %s", eq_text(t1, sizeof t1, &w),
                             eq_text(t2, sizeof t2, &ne));
                goto out;
            }
            e = w;
            continue;
        }
        /* Divide both sides by k: E */
        lm_scan_init(&sc, t, len);
        if ((r = lm_scan_fmt(&sc, "Divide both sides by %d:", &k)) != 0) {
            if (r == 1) r = scan_equation(&sc, &ne);
            if (r == 1 && !lm_scan_end(&sc)) r = 0;
            if (r != 1) goto unparseable_r;
            if (phase != PH_DERIVE) goto misplaced;
            if (k == 0) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "division by 0");
                goto out;
            }
            int64_t c4[4] = {e.a, e.b, e.c, e.d};
            for (int j = 0; j < 4; j++) {
                if (k == -1 && c4[j] == INT64_MIN) {
                    r = -1;
                    goto unparseable_r;
                }
                if (c4[j] % k) {
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld is not divisible by %lld", (long long)c4[j],
                                 (long long)k);
                    goto out;
                }
            }
            equation w = {e.a / k, e.b / k, e.c / k, e.d / k};
            if (work) { /* each non-zero coefficient divided, then the equation they make */
                char wb[LM_TASK_WORK_MAX] = "";
                for (int j = 0; j < 4; j++) {
                    size_t n = strlen(wb);
                    if (c4[j] && n + 1 < sizeof wb)
                        snprintf(wb + n, sizeof wb - n, "%s%lld/%lld = %lld", n ? ", " : "", (long long)c4[j],
                                 (long long)k, (long long)(c4[j] / k));
                }
                lm_task_work_add(work, step, "%s%sso %s", wb, *wb ? ", " : "", eq_text(t1, sizeof t1, &w));
            }
            if (!eq_same(&w, &ne)) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the result is %s, not %s", eq_text(t1, sizeof t1, &w),
                             eq_text(t2, sizeof t2, &ne));
                goto out;
            }
            e = w;
            continue;
        }
        /* Check: S = v [and S = v] */
        lm_scan_init(&sc, t, len);
        if ((r = lm_scan_fmt(&sc, "Check:")) == 1) {
            int64_t part[2][4];
            int parts = 0;
            for (;;) {
                r = scan_subst(&sc, &part[parts][0], &part[parts][1], &part[parts][2], &part[parts][3]);
                if (r != 1) break;
                if (++parts == 2 || lm_scan_end(&sc)) break;
                if ((r = lm_scan_fmt(&sc, "and")) != 1) break;
            }
            if (r == 1 && !lm_scan_end(&sc)) r = 0;
            if (r != 1) goto unparseable_r;
            if (phase != PH_DERIVE) goto misplaced;
            if (!solved) {
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "the check comes before x is determined (%s)",
                             eq_text(t1, sizeof t1, &e));
                goto out;
            }
            /* one part per side that has an x term, in order */
            int64_t want[2][2];
            int nwant = 0;
            if (pb.eq.a) want[nwant][0] = pb.eq.a, want[nwant][1] = pb.eq.b, nwant++;
            if (pb.eq.c) want[nwant][0] = pb.eq.c, want[nwant][1] = pb.eq.d, nwant++;
            if (work) { /* each side with x = the derived value: the product, then the sum */
                char wb[LM_TASK_WORK_MAX] = "", f1[24];
                for (int j = 0; j < nwant; j++) {
                    __int128 prod = (__int128)want[j][0] * e.d;
                    size_t n = strlen(wb);
                    if (n + 1 >= sizeof wb) break;
                    snprintf(wb + n, sizeof wb - n, "%s%lld*%s = %s", n ? ", " : "", (long long)want[j][0],
                             lm_task_factor(f1, e.d), lm_task_i128_text(t1, prod));
                    if (want[j][1] && prod >= INT64_MIN / 2 && prod <= INT64_MAX / 2)
                        work_shift(wb, sizeof wb, (int64_t)prod, want[j][1]);
                }
                lm_task_work_add(work, step, "%s", wb);
            }
            if (parts != nwant) {
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the check substitutes x into each side with x: %d part%s",
                             nwant, nwant == 1 ? "" : "s");
                goto out;
            }
            int bad = 0;
            for (int j = 0; j < parts && !bad; j++) {
                char s1[96];
                bad = 1;
                if (part[j][0] != want[j][0] || part[j][2] != want[j][1])
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the check is not of the question's side %s",
                                 side_text(t1, sizeof t1, want[j][0], want[j][1]));
                else if (part[j][1] != e.d)
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the check must substitute x = %lld, not %lld",
                                 (long long)e.d, (long long)part[j][1]);
                else if (side_value(want[j][0], want[j][1], e.d) != part[j][3])
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s = %s, not %lld",
                                 subst_text(s1, sizeof s1, want[j][0], want[j][1], e.d),
                                 lm_task_i128_text(t2, side_value(want[j][0], want[j][1], e.d)),
                                 (long long)part[j][3]);
                else
                    bad = 0;
            }
            if (bad) goto out;
            if (side_value(pb.eq.a, pb.eq.b, e.d) != side_value(pb.eq.c, pb.eq.d, e.d)) { /* not reached after valid steps */
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "x = %lld does not satisfy %s", (long long)e.d, qeq);
                goto out;
            }
            phase = PH_CONCLUDE;
            continue;
        }
        /* Therefore the only solution is x = v. */
        if ((r = lm_task_match(t, len, "Therefore the only solution is x = %d.", &v)) != 0) {
            if (r < 0) goto unparseable_r;
            if (solved) lm_task_work_add(work, step, "the derivation gives x = %lld", (long long)e.d);
            if (v != pb.x)
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the solution is x = %lld, not x = %lld", (long long)pb.x,
                             (long long)v);
            else if (phase == PH_START || (phase == PH_DERIVE && !solved))
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "the solution is stated before it is derived");
            else {
                omitted = phase == PH_DERIVE;
                phase = PH_DONE;
                continue;
            }
            goto out;
        }
        /* x = v, asserted */
        if ((r = lm_task_match(t, len, "x = %d", &dv)) != 0) {
            if (r < 0) goto unparseable_r;
            if (phase == PH_START || (phase == PH_DERIVE && !solved))
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "x = %lld is asserted, not derived", (long long)dv);
            else
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a bare 'x = %lld' is not a step", (long long)dv);
            goto out;
        }
        goto unparseable;
    misplaced:
        if (phase == PH_START)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the solution starts with 'Equation: %s'", qeq);
        else
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "after the check comes the conclusion");
        goto out;
    unparseable_r:
        if (r < 0) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a number out of range");
            goto out;
        }
    unparseable:
        if (phase == PH_START)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected 'Equation: %s'", qeq);
        else if (phase == PH_CONCLUDE)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected 'Therefore the only solution is x = v.'");
        else
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "not a step (Subtract/Add T from/to both sides, Divide both "
                                                           "sides by k, Check, Therefore)");
        goto out;
    }
    if (phase != PH_DONE)
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION,
                     "the solution ends before the conclusion 'Therefore the only solution is x = %lld.'", (long long)pb.x);
    else if (omitted)
        lm_check_set(res, 0.5, 0, LM_ERR_OMITTED, "the check that x = %lld solves the equation is missing", (long long)pb.x);
out:
    lm_task_lines_free(&L);
    return 0;
}

static int lineq_check(const char *question, const char *solution, lm_check_result *res, lm_error *err) {
    return lineq_check_work(question, solution, res, NULL, err);
}

/* ---- the corrupter -------------------------------------------------------- */

extern const lm_task_domain lm_domain_lineq;

static int lineq_corrupt(const char *question, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                         lm_error *err) {
    lineq_problem pb;
    if (parse_question(question, &pb, err)) return lm_fail_prefix(err, "lineq question");
    if (lm_task_require_correct(&lm_domain_lineq, question, proof, err)) return -1;
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                        LM_ERR_CIRCULAR, LM_ERR_OMITTED, LM_ERR_WRONG_PROBLEM};
    lm_task_rng r = {seed, 0};
    const char *kind = kinds[lm_task_rng_range(&r, 0, (int64_t)(sizeof kinds / sizeof kinds[0]) - 1)];
    lm_text ref = {0}, body = {0};
    int ops = 0, step = 0, rc = render(&pb, NULL, &ref, &ops);
    int n = ops + 3; /* Equation, the operations, Check, the conclusion */
    char line[96];
    int64_t u = pb.eq.a - pb.eq.c; /* the final divisor */
    if (ops == 0 && !strcmp(kind, LM_ERR_CIRCULAR)) /* no operation to replace by an assertion */
        kind = LM_ERR_MISSING_CONCLUSION;
    if (rc) {
    } else if (!strcmp(kind, LM_ERR_ARITHMETIC)) {
        lineq_fault f = {0};
        int variant = (int)lm_task_rng_range(&r, 0, 2);
        int divides = u != 1; /* the last operation is a division */
        if (variant == 0 && ops > divides) { /* a constant off in a move, carried through */
            f.op = (int)lm_task_rng_range(&r, 1, ops - divides);
            f.delta = u * (lm_task_rng_range(&r, 0, 1) ? 1 : -1) * lm_task_rng_range(&r, 1, 2);
            step = 1 + f.op;
        } else if (variant <= 1 && divides) { /* the division off by one */
            f.x_delta = lm_task_rng_range(&r, 0, 1) ? 1 : -1;
            step = 1 + ops;
        } else { /* a value of the check off by one */
            f.check_delta = lm_task_rng_range(&r, 0, 1) ? 1 : -1;
            step = n - 1;
        }
        rc = render(&pb, &f, &body, NULL);
    } else if (!strcmp(kind, LM_ERR_CONCLUSION)) {
        int64_t wrong = lm_task_rng_range(&r, 0, 1) && pb.x ? -pb.x : pb.x + (lm_task_rng_range(&r, 0, 1) ? 1 : -1);
        snprintf(line, sizeof line, "Therefore the only solution is x = %lld.", (long long)wrong);
        step = n;
        rc = lm_task_edit_lines(ref.data, n, 1, line, &body);
    } else if (!strcmp(kind, LM_ERR_MISSING_CONCLUSION)) {
        rc = lm_task_edit_lines(ref.data, n, 1, NULL, &body);
    } else if (!strcmp(kind, LM_ERR_CIRCULAR)) { /* guess and check: the answer asserted */
        lineq_fault f = {0};
        f.assert_x = 1;
        step = 2;
        rc = render(&pb, &f, &body, NULL);
    } else if (!strcmp(kind, LM_ERR_OMITTED)) {
        rc = lm_task_edit_lines(ref.data, n - 1, 1, NULL, &body);
    } else { /* the proof of the equation with another right-hand constant */
        lineq_problem other = pb;
        int64_t m = lm_task_rng_range(&r, 1, 3) * (lm_task_rng_range(&r, 0, 1) ? 1 : -1);
        other.eq.d += u * m;
        other.x += m;
        step = 1;
        rc = render(&other, NULL, &body, NULL);
    }
    rc = rc ? lm_fail(err, "out of memory")
            : lm_task_corrupted_answer(&lm_domain_lineq, question, &body, kind, step, out, c, err);
    lm_text_free(&ref);
    lm_text_free(&body);
    return rc;
}

const lm_task_domain lm_domain_lineq = {
    .name = "lineq",
    .summary = "all solutions of a linear equation a*x + b = c*x + d, by equivalent steps and a check",
    .difficulty = "size of the numbers: coefficients up to 5, solution up to 9, x on the left only (1) ... "
                  "coefficients up to 99, solution up to 999, x on both sides (5)",
    .generate = lineq_generate,
    .recognizes = lineq_recognizes,
    .check = lineq_check,
    .check_work = lineq_check_work,
    .corrupt = lineq_corrupt,
};
