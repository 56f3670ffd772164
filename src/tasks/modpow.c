/* modpow.c — "Prove that 3^13 ≡ 3 (mod 7)." by repeated squaring.
 *
 * The proof squares a^1, a^2, a^4, ... up to the largest power of two not
 * above e, writes e in binary ("13 = 8 + 4 + 1"), multiplies the powers of
 * the decomposition in together from the largest, and restates the claim
 * (docs/tasks.md, "### modpow", has the exact step language). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tasks/steptext.h"
#include "tasks/tasks.h"
#include "tasks/util.h"

extern const lm_task_domain lm_domain_modpow;

#define CONG LM_SYM_CONGRUENT
#define MODPOW_STREAM 0x6d6f64706f77ull         /* "modpow" */
#define MODPOW_CORRUPT_STREAM 0x6d6f64636f72ull /* "modcor" */
#define MAX_MODULUS 1000000000LL /* residues stay below 2^30, so products fit in int64 */
#define MAX_EXPONENT 1000000000LL
#define MAX_TERMS 32

typedef struct question {
    int64_t a, e, r, m;
    int t;                   /* 2^t <= e < 2^(t+1): the squarings are a^1 .. a^(2^t) */
    int nterms;              /* the binary decomposition of e, largest first */
    int64_t term[MAX_TERMS];
} question;

static int64_t mulmod(int64_t x, int64_t y, int64_t m) { return (int64_t)((__int128)x * y % m); }

static int parse_question(const char *text, question *q, lm_error *err) {
    lm_steps s = {text, text + strlen(text)};
    if (!(lm_steps_words(&s, "Prove that") && lm_steps_num(&s, &q->a) && lm_steps_sym(&s, "^") &&
          lm_steps_num(&s, &q->e) && lm_steps_sym(&s, CONG) && lm_steps_num(&s, &q->r) && lm_steps_sym(&s, "(") &&
          lm_steps_word(&s, "mod") && lm_steps_num(&s, &q->m) && lm_steps_sym(&s, ")") && lm_steps_sym(&s, ".") &&
          lm_steps_end(&s)))
        return lm_fail(err, "expected \"Prove that A^E " CONG " R (mod M).\"");
    if (q->m < 3 || q->m > MAX_MODULUS) return lm_fail(err, "the modulus must be in 3..%lld", (long long)MAX_MODULUS);
    if (q->a < 2 || q->a >= q->m) return lm_fail(err, "the base must be in 2..M-1");
    if (q->e < 2 || q->e > MAX_EXPONENT) return lm_fail(err, "the exponent must be in 2..%lld", (long long)MAX_EXPONENT);
    if (q->r >= q->m) return lm_fail(err, "the residue must be in 0..M-1");
    q->t = 0;
    while ((q->e >> (q->t + 1)) != 0) q->t++;
    q->nterms = 0;
    for (int b = q->t; b >= 0; b--)
        if ((q->e >> b) & 1) q->term[q->nterms++] = (int64_t)1 << b;
    return 0;
}

static int modpow_recognizes(const char *question_text) {
    return !strncmp(question_text, "Prove that ", 11) && strstr(question_text, CONG) && strstr(question_text, "(mod ");
}

/* ---- Writing ------------------------------------------------------------- */

/* A deliberate error for the corrupter: on computational line `line`
 * (0-based over the whole solution), the product (what == 0) or the reduced
 * residue (what == 1) is changed; later lines compute on from the wrong value,
 * as a prover who slipped would. */
typedef struct slip {
    int line; /* -1: none */
    int what;
    int64_t delta;
} slip;

static int64_t slip_product(const slip *sl, int line, int64_t p) {
    return sl->line == line && sl->what == 0 ? p + sl->delta : p;
}

static int64_t slip_residue(const slip *sl, int line, int64_t r, int64_t m) {
    if (sl->line != line || sl->what != 1) return r;
    return (r + sl->delta) % m;
}

static int write_solution(const question *q, const slip *sl, lm_linebuf *lb) {
    long long a = q->a, m = q->m;
    int line = 0;
    int64_t sq[64]; /* sq[i]: residue of a^(2^i) */
    sq[0] = q->a % q->m;
    if (lm_linebuf_pushf(lb, "%lld^1 " CONG " %lld (mod %lld)", a, (long long)sq[0], m)) return -1;
    for (int i = 1; i <= q->t; i++) {
        line++;
        int64_t s = sq[i - 1], p = slip_product(sl, line, s * s);
        sq[i] = slip_residue(sl, line, p % q->m, q->m);
        if (lm_linebuf_pushf(lb, "%lld^%lld " CONG " %lld*%lld = %lld " CONG " %lld (mod %lld)", a,
                             (long long)1 << i, (long long)s, (long long)s, (long long)p, (long long)sq[i], m))
            return -1;
    }
    line++;
    lm_text d = {0};
    int rc = lm_text_appendf(&d, "%lld =", (long long)q->e);
    for (int j = 0; j < q->nterms && !rc; j++)
        rc = lm_text_appendf(&d, "%s %lld", j ? " +" : "", (long long)q->term[j]);
    rc = rc || lm_linebuf_push(lb, d.data, d.len);
    lm_text_free(&d);
    if (rc) return -1;
    int64_t acc = q->term[0], racc = sq[q->t];
    for (int j = 1; j < q->nterms; j++) {
        line++;
        int64_t y = q->term[j], ry = sq[__builtin_ctzll((unsigned long long)y)];
        int64_t p = slip_product(sl, line, racc * ry), r = slip_residue(sl, line, p % q->m, q->m);
        if (lm_linebuf_pushf(lb, "%lld^%lld*%lld^%lld = %lld^%lld " CONG " %lld*%lld = %lld " CONG " %lld (mod %lld)",
                             a, (long long)acc, a, (long long)y, a, (long long)(acc + y), (long long)racc,
                             (long long)ry, (long long)p, (long long)r, m))
            return -1;
        acc += y;
        racc = r;
    }
    return lm_linebuf_pushf(lb, "Therefore %lld^%lld " CONG " %lld (mod %lld).", a, (long long)q->e, (long long)q->r,
                            m);
}

static int format_question(const question *q, lm_text *out) {
    return lm_text_appendf(out, "Prove that %lld^%lld " CONG " %lld (mod %lld).", (long long)q->a,
                               (long long)q->e, (long long)q->r, (long long)q->m);
}

typedef struct level {
    int64_t mlo, mhi;
    int tlo, thi, pclo, pchi;
} level;

/* Squarings 1 + t, products popcount - 1: a difficulty-1 proof has 6-8 lines. */
static const level levels[5] = {
    {5, 9, 2, 3, 2, 3}, {10, 30, 3, 4, 2, 2}, {11, 99, 4, 6, 2, 4}, {100, 999, 6, 9, 2, 5}, {1000, 9999, 9, 11, 3, 6},
};

static int modpow_generate(uint64_t seed, int difficulty, lm_text *qtext, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "difficulty %d is not in 1..5", difficulty);
    const level *lv = &levels[difficulty - 1];
    uint64_t ctr = (uint64_t)difficulty << 32;
    question q;
    for (;;) {
        q.m = lm_steptext_pick(seed, MODPOW_STREAM, ctr++, lv->mlo, lv->mhi);
        q.a = lm_steptext_pick(seed, MODPOW_STREAM, ctr++, 2, q.m - 1);
        int t = (int)lm_steptext_pick(seed, MODPOW_STREAM, ctr++, lv->tlo, lv->thi);
        int64_t low = lm_steptext_pick(seed, MODPOW_STREAM, ctr++, 0, ((int64_t)1 << t) - 1);
        q.e = ((int64_t)1 << t) | low;
        int pc = __builtin_popcountll((unsigned long long)q.e);
        if (pc < lv->pclo || pc > lv->pchi) continue;
        /* a residue 0 makes every later line 0: no proof worth learning */
        int64_t s = q.a, zero = 0;
        for (int i = 1; i <= t && !zero; i++) zero = (s = mulmod(s, s, q.m)) == 0;
        if (zero) continue;
        int64_t r = 1, b = q.a;
        for (int64_t e = q.e; e; e >>= 1, b = mulmod(b, b, q.m))
            if (e & 1) r = mulmod(r, b, q.m);
        q.r = r;
        break;
    }
    lm_text qt = {0};
    lm_linebuf lb = {0};
    slip none = {-1, 0, 0};
    if (format_question(&q, &qt)) return lm_fail(err, "out of memory");
    /* parsing back what was written fills in the squarings and the decomposition */
    int rc = parse_question(qt.data, &q, err);
    if (!rc && (write_solution(&q, &none, &lb) || lm_linebuf_answer(&lb, proof) ||
                lm_text_append(qtext, qt.data, qt.len)))
        rc = lm_fail(err, "out of memory");
    lm_text_free(&qt);
    lm_linebuf_free(&lb);
    return rc;
}

/* ---- Checking ------------------------------------------------------------ */

enum line_kind { L_NONE, L_FACT, L_SQUARE, L_DECOMP, L_PRODUCT, L_CONCLUSION };

typedef struct line {
    enum line_kind kind;
    int64_t a[3], x, y, z; /* bases; exponents (x: the power a fact or square states; x*y = z for products) */
    int64_t u, v, p, r, m; /* u*v = p ≡ r (mod m) */
    int nterms;
    int64_t lhs, term[MAX_TERMS];
} line;

static int scan_power(lm_steps *s, int64_t *base, int64_t *exp) {
    lm_steps save = *s;
    if (lm_steps_num(s, base) && lm_steps_sym(s, "^") && lm_steps_num(s, exp)) return 1;
    *s = save;
    return 0;
}

static int scan_mod_tail(lm_steps *s, int64_t *m) {
    return lm_steps_sym(s, "(") && lm_steps_word(s, "mod") && lm_steps_num(s, m) && lm_steps_sym(s, ")");
}

/* "u*v = p ≡ r (mod m)" */
static int scan_mul_reduce(lm_steps *s, line *l) {
    return lm_steps_num(s, &l->u) && lm_steps_sym(s, "*") && lm_steps_num(s, &l->v) && lm_steps_sym(s, "=") &&
           lm_steps_num(s, &l->p) && lm_steps_sym(s, CONG) && lm_steps_num(s, &l->r) && scan_mod_tail(s, &l->m);
}

static void parse_line(const char *b, const char *e, line *l) {
    memset(l, 0, sizeof *l);
    lm_steps s = {b, e};
    if (lm_steps_word(&s, "Therefore")) {
        if (scan_power(&s, &l->a[0], &l->x) && lm_steps_sym(&s, CONG) && lm_steps_num(&s, &l->r) &&
            scan_mod_tail(&s, &l->m) && lm_steps_sym(&s, ".") && lm_steps_end(&s))
            l->kind = L_CONCLUSION;
        return;
    }
    lm_steps d = s;
    if (lm_steps_num(&d, &l->lhs) && lm_steps_sym(&d, "=")) {
        for (;;) {
            if (l->nterms == MAX_TERMS || !lm_steps_num(&d, &l->term[l->nterms])) return;
            l->nterms++;
            if (lm_steps_end(&d)) {
                l->kind = L_DECOMP;
                return;
            }
            if (!lm_steps_sym(&d, "+")) return;
        }
    }
    if (!scan_power(&s, &l->a[0], &l->x)) return;
    if (lm_steps_sym(&s, "*")) { /* a^x*a^y = a^z ≡ u*v = p ≡ r (mod m) */
        if (scan_power(&s, &l->a[1], &l->y) && lm_steps_sym(&s, "=") && scan_power(&s, &l->a[2], &l->z) &&
            lm_steps_sym(&s, CONG) && scan_mul_reduce(&s, l) && lm_steps_end(&s))
            l->kind = L_PRODUCT;
        return;
    }
    if (!lm_steps_sym(&s, CONG)) return;
    lm_steps f = s;
    if (lm_steps_num(&f, &l->r) && scan_mod_tail(&f, &l->m) && lm_steps_end(&f)) {
        l->kind = L_FACT;
        return;
    }
    if (scan_mul_reduce(&s, l) && lm_steps_end(&s)) l->kind = L_SQUARE;
}

/* Residues derived so far, by exponent. */
typedef struct derived {
    int n;
    int64_t exp[128], res[128];
} derived;

static int find(const derived *d, int64_t exp, int64_t *res) {
    for (int i = 0; i < d->n; i++)
        if (d->exp[i] == exp) {
            *res = d->res[i];
            return 1;
        }
    return 0;
}

static void derive(derived *d, int64_t exp, int64_t res) {
    if (d->n < 128) {
        d->exp[d->n] = exp;
        d->res[d->n++] = res;
    }
}

enum phase { P_BASE, P_SQUARE, P_DECOMP, P_PRODUCT, P_CONCLUSION, P_DONE };

/* Checks "u*v = p ≡ r (mod m)" given that u, v are the right residues (< m). */
static int check_mul_reduce(const line *l, lm_check_result *res, int step) {
    int64_t p = l->u * l->v; /* both below 2^30 */
    if (l->p != p) {
        lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld*%lld = %lld, not %lld", (long long)l->u, (long long)l->v,
                     (long long)p, (long long)l->p);
        return -1;
    }
    if (l->r != p % l->m) {
        lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld " CONG " %lld (mod %lld), not %lld", (long long)p,
                     (long long)(p % l->m), (long long)l->m, (long long)l->r);
        return -1;
    }
    return 0;
}

static int check_bases(const question *q, const line *l, int nbases, lm_check_result *res, int step) {
    for (int i = 0; i < nbases; i++)
        if (l->a[i] != q->a) {
            lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the base is %lld, not %lld", (long long)q->a,
                         (long long)l->a[i]);
            return -1;
        }
    if (l->m != q->m) {
        lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the modulus is %lld, not %lld", (long long)q->m,
                     (long long)l->m);
        return -1;
    }
    return 0;
}

static int is_term_of(const question *q, int64_t y) {
    for (int j = 0; j < q->nterms; j++)
        if (q->term[j] == y) return 1;
    return 0;
}

/* What the skeleton expects next, for "expected ..." messages. */
static void describe_expected(const question *q, enum phase ph, int64_t next_square, int64_t acc, int j, char *buf,
                              size_t n) {
    long long a = q->a;
    switch (ph) {
    case P_BASE: snprintf(buf, n, "%lld^1 " CONG " ...", a); break;
    case P_SQUARE: snprintf(buf, n, "%lld^%lld " CONG " ...", a, (long long)next_square); break;
    case P_DECOMP: snprintf(buf, n, "the decomposition %lld = ...", (long long)q->e); break;
    case P_PRODUCT:
        snprintf(buf, n, "%lld^%lld*%lld^%lld = ...", a, (long long)acc, a, (long long)q->term[j]);
        break;
    default: snprintf(buf, n, "the conclusion"); break;
    }
}

static int modpow_check_work(const char *qtext, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    derived d = {0};
    enum phase ph = P_BASE;
    int64_t next_square = 2, acc = 0, rx, ry;
    int j = 1, omitted_step = 0;
    char want[96];
    lm_lines it = {solution, 0};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e)) {
        int step = it.step;
        line l;
        parse_line(b, e, &l);
        if (l.kind == L_NONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "%s",
                         lm_steps_has_bad_number(b, e) ? "a number is too large or has a leading zero"
                                                      : "not a step of the modpow language");
            return 0;
        }
        if (ph == P_DONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a step after the conclusion");
            return 0;
        }
        if (ph == P_DECOMP && (l.kind == L_PRODUCT || l.kind == L_CONCLUSION)) {
            /* the products still check without it: a missing justification */
            if (!omitted_step) omitted_step = step;
            ph = q.nterms > 1 ? P_PRODUCT : P_CONCLUSION;
            acc = q.term[0];
        }
        describe_expected(&q, ph, next_square, acc, j, want, sizeof want);
        switch (l.kind) {
        case L_FACT:
            if (check_bases(&q, &l, 1, res, step)) return 0;
            if (ph == P_BASE && l.x == 1) {
                lm_task_work_add(work, step, "%lld = %lld*%lld + %lld", (long long)q.a, (long long)(q.a / q.m),
                                 (long long)q.m, (long long)(q.a % q.m));
                if (l.r != q.a % q.m) {
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld " CONG " %lld (mod %lld), not %lld",
                                 (long long)q.a, (long long)(q.a % q.m), (long long)q.m, (long long)l.r);
                    return 0;
                }
                derive(&d, 1, l.r);
                ph = q.t > 0 ? P_SQUARE : P_DECOMP;
                break;
            }
            if (find(&d, l.x, &rx)) {
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected %s", want);
                return 0;
            }
            lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "%lld^%lld " CONG " %lld is asserted, not derived",
                         (long long)l.a[0], (long long)l.x, (long long)l.r);
            return 0;
        case L_SQUARE:
            if (check_bases(&q, &l, 1, res, step)) return 0;
            if (l.x < 2 || l.x % 2) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld^%lld is not the square of a power of %lld",
                             (long long)q.a, (long long)l.x, (long long)q.a);
                return 0;
            }
            if (!find(&d, l.x / 2, &rx)) {
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "%lld^%lld is used before it is derived",
                             (long long)q.a, (long long)(l.x / 2));
                return 0;
            }
            if (work) { /* the square of the residue derived for the half power, reduced */
                int64_t p = rx * rx; /* residues are below 2^30 */
                lm_task_work_add(work, step, "%lld*%lld = %lld = %lld*%lld + %lld", (long long)rx, (long long)rx,
                                 (long long)p, (long long)(p / q.m), (long long)q.m, (long long)(p % q.m));
            }
            if (l.u != rx || l.v != rx) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld^%lld " CONG " %lld, not %lld", (long long)q.a,
                             (long long)(l.x / 2), (long long)rx, (long long)(l.u != rx ? l.u : l.v));
                return 0;
            }
            if (check_mul_reduce(&l, res, step)) return 0;
            if (ph != P_SQUARE || l.x != next_square) {
                if (l.x > q.e)
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "%lld^%lld is not needed for %lld^%lld",
                                 (long long)q.a, (long long)l.x, (long long)q.a, (long long)q.e);
                else
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected %s", want);
                return 0;
            }
            derive(&d, l.x, l.r);
            next_square *= 2;
            if (next_square > q.e) ph = P_DECOMP;
            break;
        case L_DECOMP: {
            if (l.lhs != q.e) {
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the exponent is %lld, not %lld", (long long)q.e,
                             (long long)l.lhs);
                return 0;
            }
            if (work) { /* the terms added up */
                char wb[LM_TASK_WORK_MAX] = "";
                int64_t part = 0;
                for (int i = 0; i < l.nterms; i++) {
                    size_t n = strlen(wb);
                    if (n + 1 >= sizeof wb || __builtin_add_overflow(part, l.term[i], &part)) break;
                    snprintf(wb + n, sizeof wb - n, "%s%lld", i ? " + " : "", (long long)l.term[i]);
                }
                lm_task_work_add(work, step, "%s = %lld", wb, (long long)part);
            }
            int64_t sum = 0;
            for (int i = 0; i < l.nterms; i++) {
                int64_t t = l.term[i];
                if (t <= 0 || (t & (t - 1)) || (i && t >= l.term[i - 1])) {
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE,
                                 "not a sum of decreasing powers of two");
                    return 0;
                }
                sum += t; /* distinct powers of two below 2^63: no overflow */
            }
            if (sum != l.lhs) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the terms add up to %lld, not %lld",
                             (long long)sum, (long long)l.lhs);
                return 0;
            }
            if (ph != P_DECOMP) {
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected %s", want);
                return 0;
            }
            ph = q.nterms > 1 ? P_PRODUCT : P_CONCLUSION;
            acc = q.term[0];
            break;
        }
        case L_PRODUCT:
            if (check_bases(&q, &l, 3, res, step)) return 0;
            if (!find(&d, l.x, &rx) || !find(&d, l.y, &ry)) {
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "%lld^%lld is used before it is derived",
                             (long long)q.a, (long long)(find(&d, l.x, &rx) ? l.y : l.x));
                return 0;
            }
            if (work) { /* the exponents added, the product of the residues derived for them, reduced */
                int64_t p = rx * ry;
                lm_task_work_add(work, step, "%lld + %lld = %lld, %lld*%lld = %lld = %lld*%lld + %lld", (long long)l.x,
                                 (long long)l.y, (long long)(l.x + l.y), (long long)rx, (long long)ry, (long long)p,
                                 (long long)(p / q.m), (long long)q.m, (long long)(p % q.m));
            }
            if (l.u != rx || l.v != ry) {
                int first = l.u != rx;
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld^%lld " CONG " %lld, not %lld", (long long)q.a,
                             (long long)(first ? l.x : l.y), (long long)(first ? rx : ry),
                             (long long)(first ? l.u : l.v));
                return 0;
            }
            if (l.x + l.y != l.z) { /* both derived exponents are at most e */
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld + %lld = %lld, not %lld", (long long)l.x,
                             (long long)l.y, (long long)(l.x + l.y), (long long)l.z);
                return 0;
            }
            if (check_mul_reduce(&l, res, step)) return 0;
            if (ph != P_PRODUCT || l.x != acc || l.y != q.term[j]) {
                if (!is_term_of(&q, l.y))
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "%lld is not a term of %lld in binary",
                                 (long long)l.y, (long long)q.e);
                else
                    lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected %s", want);
                return 0;
            }
            derive(&d, l.z, l.r);
            acc = l.z;
            if (++j == q.nterms) ph = P_CONCLUSION;
            break;
        case L_CONCLUSION:
            if (check_bases(&q, &l, 1, res, step)) return 0;
            if (l.x != q.e) {
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the conclusion is about %lld^%lld, not %lld^%lld",
                             (long long)q.a, (long long)l.x, (long long)q.a, (long long)q.e);
                return 0;
            }
            if (l.r != q.r) {
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the claim is %lld^%lld " CONG " %lld, not %lld",
                             (long long)q.a, (long long)q.e, (long long)q.r, (long long)l.r);
                return 0;
            }
            if (find(&d, q.e, &rx))
                lm_task_work_add(work, step, "%lld^%lld " CONG " %lld was derived", (long long)q.a, (long long)q.e,
                                 (long long)rx);
            if (!find(&d, q.e, &rx)) {
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "%lld^%lld is concluded before it is derived",
                             (long long)q.a, (long long)q.e);
                return 0;
            }
            if (rx != q.r) {
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the steps give %lld^%lld " CONG " %lld, not %lld",
                             (long long)q.a, (long long)q.e, (long long)rx, (long long)q.r);
                return 0;
            }
            ph = P_DONE;
            break;
        case L_NONE: break;
        }
    }
    if (ph != P_DONE) {
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION, "no conclusion \"Therefore %lld^%lld " CONG
                     " %lld (mod %lld).\"", (long long)q.a, (long long)q.e, (long long)q.r, (long long)q.m);
        return 0;
    }
    if (omitted_step) {
        lm_check_set(res, 0.5, omitted_step, LM_ERR_OMITTED, "the decomposition of %lld is missing", (long long)q.e);
        return 0;
    }
    lm_check_set(res, 1, 0, "", NULL);
    return 0;
}

static int modpow_check(const char *qtext, const char *solution, lm_check_result *res, lm_error *err) {
    return modpow_check_work(qtext, solution, res, NULL, err);
}

/* ---- Corrupting ---------------------------------------------------------- */

static int modpow_corrupt(const char *qtext, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                          lm_error *err) {
    question q;
    if (parse_question(qtext, &q, err)) return -1;
    if (lm_task_require_correct(&lm_domain_modpow, qtext, proof, err)) return -1;

    int computational = q.t + q.nterms - 1; /* squarings and products */
    int kind = (int)lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 0, 0, 3);
    if (kind == 2 && q.nterms < 2) kind = 0; /* no product line to replace */
    slip sl = {-1, 0, 0};
    memset(c, 0, sizeof *c);
    if (kind == 0) {
        int k = (int)lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 1, 0, computational - 1);
        sl.line = k < q.t ? 1 + k : q.t + 2 + (k - q.t); /* skip the decomposition line */
        sl.what = (int)lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 2, 0, 1);
        sl.delta = sl.what == 0 ? lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 3, 1, 3)
                                : lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 3, 1, q.m - 1);
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_ARITHMETIC);
        c->label = 0;
        c->step = sl.line + 1;
    }
    lm_linebuf lb = {0};
    int rc = write_solution(&q, &sl, &lb);
    if (!rc && kind == 1) {
        int64_t wrong = (q.r + lm_steptext_pick(seed, MODPOW_CORRUPT_STREAM, 4, 1, q.m - 1)) % q.m;
        char buf[160];
        snprintf(buf, sizeof buf, "Therefore %lld^%lld " CONG " %lld (mod %lld).", (long long)q.a, (long long)q.e,
                 (long long)wrong, (long long)q.m);
        rc = lm_linebuf_set(&lb, lb.n - 1, buf);
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_CONCLUSION);
        c->step = lb.n;
    } else if (!rc && kind == 2) {
        /* the last product line replaced by the claim itself */
        char buf[160];
        snprintf(buf, sizeof buf, "%lld^%lld " CONG " %lld (mod %lld)", (long long)q.a, (long long)q.e,
                 (long long)q.r, (long long)q.m);
        rc = lm_linebuf_set(&lb, lb.n - 2, buf);
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_CIRCULAR);
        c->step = lb.n - 1;
    } else if (!rc && kind == 3) {
        lm_linebuf_remove(&lb, q.t + 1);
        snprintf(c->kind, sizeof c->kind, "%s", LM_ERR_OMITTED);
        c->label = 0.5;
        c->step = q.t + 2;
    }
    rc = rc || lm_linebuf_answer(&lb, out);
    lm_linebuf_free(&lb);
    return rc ? lm_fail(err, "out of memory") : 0;
}

const lm_task_domain lm_domain_modpow = {
    .name = "modpow",
    .summary = "Prove that a^e " CONG " r (mod m): repeated squaring, binary decomposition, products",
    .difficulty = "larger modulus (1 to 4 digits) and exponent (up to 2^12): more squarings and products",
    .generate = modpow_generate,
    .recognizes = modpow_recognizes,
    .check = modpow_check,
    .check_work = modpow_check_work,
    .corrupt = modpow_corrupt,
};
