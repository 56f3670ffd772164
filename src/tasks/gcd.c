/* gcd.c — the "gcd" domain: gcd(a, b) = g by Euclid's algorithm with a
 * Bezout certificate built along the way. The step language is in
 * docs/tasks.md ("### gcd"):
 *
 *   Prove that gcd(1071, 462) = 21.
 *
 *   1071 = 2*462 + 147
 *   147 = 1*1071 + (-2)*462
 *   462 = 3*147 + 21
 *   21 = (-3)*1071 + 7*462
 *   147 = 7*21 + 0
 *   Therefore gcd(1071, 462) = 21.
 *
 * The division lines show that g divides a and b (read from the last one
 * up). The combination lines, one after each division with a non-zero
 * remainder, write that remainder as s*a + t*b; the last one is the
 * certificate g = s*a + t*b, which shows that every common divisor of a and
 * b divides g. Each combination follows from the two before it
 * (r_k = r_{k-2} - q_k*r_{k-1}), so every line is computable from the lines
 * just above. A missing combination line leaves the conclusion resting on
 * the unstated lemma gcd(a, b) = gcd(b, r): the answer scores 0.5; a false
 * one scores 0. */
#include <stdio.h>
#include <string.h>

#include "tasks/tasks.h"
#include "tasks/util.h"

enum { GCD_MAX_STEPS = 200 }; /* Euclid on int64 takes at most 92 divisions */

typedef struct gcd_problem {
    int64_t a, b, g;
} gcd_problem;

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static int parse_question(const char *q, gcd_problem *pb, lm_error *err) {
    int r = lm_task_match(q, strlen(q), "Prove that gcd(%u, %u) = %u.", &pb->a, &pb->b, &pb->g);
    if (r < 0) return lm_fail(err, "a number out of range");
    if (r == 0) return lm_fail(err, "expected 'Prove that gcd(A, B) = G.' with natural numbers");
    if (pb->a == 0 || pb->b == 0) return lm_fail(err, "gcd of 0: A and B must be at least 1");
    int64_t g = gcd64(pb->a, pb->b);
    if (g != pb->g) return lm_fail(err, "the claim is false: gcd(%lld, %lld) = %lld", (long long)pb->a, (long long)pb->b,
                                   (long long)g);
    return 0;
}

static int gcd_recognizes(const char *q) { return !strncmp(q, "Prove that gcd(", 15); }

/* ---- reference proofs and their faults ------------------------------------ */

typedef struct gcd_fault {
    int division;   /* 1-based division whose remainder is written as rem (Euclid goes on from it); 0 none */
    int64_t rem;
    int combination; /* 1-based combination line whose first coefficient is off by ds (carried on); 0 none */
    int64_t ds;
} gcd_fault;

/* The solution body; *divisions gets their number. 1 when a number would
 * leave int64 (only for faults on huge questions), -1 out of memory. */
static int render(const gcd_problem *pb, const gcd_fault *f, lm_text *body, int *divisions) {
    static const gcd_fault none = {0};
    if (!f) f = &none;
    int64_t D = pb->a, V = pb->b;
    int64_t ps = 1, pt = 0, cs = 0, ct = 1; /* D = ps*a + pt*b, V = cs*a + ct*b */
    int k = 0, combos = 0;
    char f1[24], f2[24];
    while (V != 0 && k < GCD_MAX_STEPS) {
        k++;
        int64_t q = D / V, r = k == f->division ? f->rem : D % V, ns, nt;
        if (lm_text_appendf(body, "%lld = %lld*%lld + %lld\n", (long long)D, (long long)q, (long long)V, (long long)r))
            return -1;
        if (__builtin_mul_overflow(q, cs, &ns) || __builtin_sub_overflow(ps, ns, &ns) ||
            __builtin_mul_overflow(q, ct, &nt) || __builtin_sub_overflow(pt, nt, &nt))
            return 1;
        if (r != 0) {
            if (++combos == f->combination && __builtin_add_overflow(ns, f->ds, &ns)) return 1;
            if (lm_text_appendf(body, "%lld = %s*%lld + %s*%lld\n", (long long)r, lm_task_factor(f1, ns), (long long)pb->a,
                                lm_task_factor(f2, nt), (long long)pb->b))
                return -1;
        }
        ps = cs, pt = ct, cs = ns, ct = nt;
        D = V;
        V = r;
    }
    if (divisions) *divisions = k;
    return lm_text_appendf(body, "Therefore gcd(%lld, %lld) = %lld.\n", (long long)pb->a, (long long)pb->b, (long long)D);
}

static void draw_problem(lm_task_rng *r, int difficulty, gcd_problem *pb) {
    static const struct {
        int min_div, max_div, gmax, qmax;
    } level[5] = {{2, 2, 12, 5}, {3, 3, 12, 4}, {4, 4, 15, 4}, {5, 5, 20, 4}, {6, 7, 20, 4}};
    int L = difficulty - 1;
    int n = (int)lm_task_rng_range(r, level[L].min_div, level[L].max_div);
    /* backwards from the last division: divisor g, remainder 0 */
    int64_t g = lm_task_rng_range(r, 1, level[L].gmax);
    int64_t V = g, R = 0, D = lm_task_rng_range(r, 2, level[L].qmax) * g;
    for (int k = n - 1; k >= 1; k--) {
        R = V;
        V = D;
        D = lm_task_rng_range(r, 1, level[L].qmax) * V + R;
    }
    pb->a = D;
    pb->b = V;
    pb->g = g;
}

static int gcd_generate(uint64_t seed, int difficulty, lm_text *question, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "gcd: difficulty %d is not in 1..5", difficulty);
    lm_task_rng r = {seed, 0};
    gcd_problem pb;
    draw_problem(&r, difficulty, &pb);
    lm_text body = {0};
    int rc = lm_text_appendf(question, "Prove that gcd(%lld, %lld) = %lld.", (long long)pb.a, (long long)pb.b,
                             (long long)pb.g);
    if (!rc) rc = render(&pb, NULL, &body, NULL);
    if (!rc) rc = lm_task_answer(body.data, body.len, proof);
    lm_text_free(&body);
    return rc ? lm_fail(err, "out of memory") : 0;
}

/* ---- the checker ---------------------------------------------------------- */

enum { PH_DIVIDE, PH_CONCLUDE, PH_DONE };

/* v as a factor of a sum: "7" or "(-7)"; buf has room for 52 bytes. */
static const char *factor128(char buf[52], __int128 v) {
    char t[48];
    snprintf(buf, 52, v < 0 ? "(%s)" : "%s", lm_task_i128_text(t, v));
    return buf;
}

static int gcd_check_work(const char *question, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    gcd_problem pb;
    if (parse_question(question, &pb, err)) return -1;
    lm_task_lines L;
    if (lm_task_split_lines(solution, strlen(solution), &L)) return lm_fail(err, "out of memory");
    int64_t D = pb.a, V = pb.b, pending = 0, missing = 0; /* pending: a remainder awaiting its combination */
    int phase = PH_DIVIDE, divisions = 0;
    lm_check_set(res, 1, 0, "", NULL);
    for (int i = 0; i < L.n; i++) {
        const char *t = L.line[i].text;
        size_t len = L.line[i].len;
        int step = L.line[i].number, r;
        int64_t x, y, z, s, w;
        char b1[48], b2[48], b4[48], f1[24], f2[24];
        if (phase == PH_DONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "nothing may follow the conclusion");
            goto out;
        }
        /* r = s*a + t*b */
        if ((r = lm_task_match(t, len, "%u = %p*%u + %p*%u", &x, &s, &y, &w, &z)) != 0) {
            if (r < 0) goto range;
            __int128 value = (__int128)s * y + (__int128)w * z;
            char b2[48], b3[48], f3[52];
            if (work)
                lm_task_work_add(work, step, "%s*%lld = %s, %s*%lld = %s, %s + %s = %s", lm_task_factor(f1, s),
                                 (long long)y, lm_task_i128_text(b1, (__int128)s * y), lm_task_factor(f2, w),
                                 (long long)z, lm_task_i128_text(b2, (__int128)w * z),
                                 lm_task_i128_text(b3, (__int128)s * y), factor128(f3, (__int128)w * z),
                                 lm_task_i128_text(b4, value));
            if (y != pb.a || z != pb.b)
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "a combination is written as s*%lld + t*%lld",
                             (long long)pb.a, (long long)pb.b);
            else if (!pending)
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE,
                             "a combination line follows a division with a non-zero remainder");
            else if (x != pending)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the remainder to write as a combination is %lld, not %lld",
                             (long long)pending, (long long)x);
            else if (value != x)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s*%lld + %s*%lld = %s, not %lld", lm_task_factor(f1, s),
                             (long long)y, lm_task_factor(f2, w), (long long)z, lm_task_i128_text(b1, value),
                             (long long)x);
            else {
                pending = 0;
                continue;
            }
            goto out;
        }
        /* D = q*V + r */
        if ((r = lm_task_match(t, len, "%u = %u*%u + %u", &x, &s, &y, &z)) != 0) {
            if (r < 0) goto range;
            __int128 value = (__int128)s * y + z;
            /* the division the line should be, then the line's own quotient and remainder put back together */
            if (work)
                lm_task_work_add(work, step, "divide %lld by %lld: %lld*%lld = %s, %s + %lld = %s", (long long)D,
                                 (long long)V, (long long)s, (long long)y, lm_task_i128_text(b1, (__int128)s * y),
                                 lm_task_i128_text(b2, (__int128)s * y), (long long)z, lm_task_i128_text(b4, value));
            if (phase != PH_DIVIDE)
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the divisions ended with remainder 0");
            else if (divisions == 0 && (x != pb.a || y != pb.b))
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the first division is of %lld by %lld",
                             (long long)pb.a, (long long)pb.b);
            else if (x != D || y != V)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the next division is of %lld by %lld, not %lld by %lld",
                             (long long)D, (long long)V, (long long)x, (long long)y);
            else if (value != x)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%lld*%lld + %lld = %s, not %lld", (long long)s,
                             (long long)y, (long long)z, lm_task_i128_text(b1, value), (long long)x);
            else if (z >= y)
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the remainder %lld is not less than %lld", (long long)z,
                             (long long)y);
            else {
                if (pending && !missing) missing = pending;
                divisions++;
                D = V;
                V = z;
                pending = z;
                if (z == 0) phase = PH_CONCLUDE;
                continue;
            }
            goto out;
        }
        /* Therefore gcd(a, b) = g. */
        if ((r = lm_task_match(t, len, "Therefore gcd(%u, %u) = %u.", &x, &y, &z)) != 0) {
            if (r < 0) goto range;
            if (phase == PH_CONCLUDE) lm_task_work_add(work, step, "the last non-zero remainder is %lld", (long long)D);
            if (x != pb.a || y != pb.b)
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the conclusion is about gcd(%lld, %lld), not gcd(%lld, %lld)",
                             (long long)x, (long long)y, (long long)pb.a, (long long)pb.b);
            else if (z != pb.g)
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "gcd(%lld, %lld) = %lld, not %lld", (long long)pb.a,
                             (long long)pb.b, (long long)pb.g, (long long)z);
            else if (phase == PH_DIVIDE)
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "the claim is stated before the divisions reach remainder 0");
            else {
                phase = PH_DONE;
                continue;
            }
            goto out;
        }
        if (phase == PH_DIVIDE)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected a division '%lld = q*%lld + r'%s", (long long)D,
                         (long long)V, pending ? " or a combination 'r = s*a + t*b'" : "");
        else
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected the conclusion 'Therefore gcd(%lld, %lld) = %lld.'",
                         (long long)pb.a, (long long)pb.b, (long long)pb.g);
        goto out;
    range:
        lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a number out of range");
        goto out;
    }
    if (phase != PH_DONE)
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION,
                     "the solution ends before the conclusion 'Therefore gcd(%lld, %lld) = %lld.'", (long long)pb.a,
                     (long long)pb.b, (long long)pb.g);
    else if (missing)
        lm_check_set(res, 0.5, 0, LM_ERR_OMITTED, "the combination line '%lld = s*%lld + t*%lld' is missing",
                     (long long)missing, (long long)pb.a, (long long)pb.b);
out:
    lm_task_lines_free(&L);
    return 0;
}

static int gcd_check(const char *question, const char *solution, lm_check_result *res, lm_error *err) {
    return gcd_check_work(question, solution, res, NULL, err);
}

/* ---- the corrupter -------------------------------------------------------- */

extern const lm_task_domain lm_domain_gcd;

/* The flawed body of one kind; 1 when the kind does not apply. */
static int corrupt_body(const gcd_problem *pb, const char *kind, lm_task_rng *r, const lm_text *ref, int n,
                        lm_text *body, int *step) {
    /* lines: division k on 2k-1, its combination on 2k (k < n), division n on 2n-1, the conclusion on 2n */
    char line[96];
    *step = 0;
    if (!strcmp(kind, LM_ERR_ARITHMETIC)) {
        gcd_fault f = {0};
        if (n >= 2 && lm_task_rng_range(r, 0, 1)) { /* a coefficient off, carried on */
            f.combination = (int)lm_task_rng_range(r, 1, n - 1);
            f.ds = lm_task_rng_range(r, 0, 1) ? 1 : -1;
            *step = 2 * f.combination;
        } else { /* a wrong remainder, Euclid carried on from it */
            int64_t D = pb->a, V = pb->b;
            int usable[GCD_MAX_STEPS], nu = 0;
            int64_t divisor[GCD_MAX_STEPS + 1], rem[GCD_MAX_STEPS + 1];
            for (int k = 1; k <= n; k++) {
                divisor[k] = V;
                rem[k] = D % V;
                if (V >= 2) usable[nu++] = k;
                int64_t t = D % V;
                D = V;
                V = t;
            }
            if (!nu) return 1;
            f.division = usable[lm_task_rng_range(r, 0, nu - 1)];
            f.rem = lm_task_rng_range(r, 0, divisor[f.division] - 2);
            if (f.rem >= rem[f.division]) f.rem++; /* any remainder below the divisor but the right one */
            *step = 2 * f.division - 1;
        }
        return render(pb, &f, body, NULL);
    }
    if (!strcmp(kind, LM_ERR_CONCLUSION)) {
        int64_t D = pb->a, V = pb->b, prev = pb->a;
        while (V) { /* the divisor before g: a plausible wrong answer */
            int64_t t = D % V;
            prev = D;
            D = V;
            V = t;
        }
        int64_t wrong = prev != pb->g ? prev : pb->g + 1;
        snprintf(line, sizeof line, "Therefore gcd(%lld, %lld) = %lld.", (long long)pb->a, (long long)pb->b,
                 (long long)wrong);
        *step = 2 * n;
        return lm_task_edit_lines(ref->data, *step, 1, line, body);
    }
    if (!strcmp(kind, LM_ERR_MISSING_CONCLUSION)) return lm_task_edit_lines(ref->data, 2 * n, 1, NULL, body);
    if (!strcmp(kind, LM_ERR_CIRCULAR)) { /* the claim stated before the last division */
        snprintf(line, sizeof line, "Therefore gcd(%lld, %lld) = %lld.", (long long)pb->a, (long long)pb->b,
                 (long long)pb->g);
        *step = (int)lm_task_rng_range(r, 1, 2 * n - 1);
        return lm_task_edit_lines(ref->data, *step, 0, line, body);
    }
    if (!strcmp(kind, LM_ERR_OMITTED)) { /* a combination line left out */
        if (n < 2) return 1;
        return lm_task_edit_lines(ref->data, 2 * (int)lm_task_rng_range(r, 1, n - 1), 1, NULL, body);
    }
    /* LM_ERR_WRONG_PROBLEM: the proof for a + m*b, whose Euclid differs only in the first quotient */
    gcd_problem other = *pb;
    int64_t m = lm_task_rng_range(r, 1, 2), mb;
    if (__builtin_mul_overflow(m, pb->b, &mb) || __builtin_add_overflow(pb->a, mb, &other.a)) return 1;
    *step = 1;
    return render(&other, NULL, body, NULL);
}

static int gcd_corrupt(const char *question, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                       lm_error *err) {
    gcd_problem pb;
    if (parse_question(question, &pb, err)) return lm_fail_prefix(err, "gcd question");
    if (lm_task_require_correct(&lm_domain_gcd, question, proof, err)) return -1;
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                        LM_ERR_CIRCULAR, LM_ERR_OMITTED, LM_ERR_WRONG_PROBLEM};
    lm_task_rng r = {seed, 0};
    const char *kind = kinds[lm_task_rng_range(&r, 0, (int64_t)(sizeof kinds / sizeof kinds[0]) - 1)];
    lm_text ref = {0}, body = {0};
    int n = 0, step = 0, rc = render(&pb, NULL, &ref, &n);
    if (rc) {
        lm_text_free(&ref);
        return lm_fail(err, rc < 0 ? "out of memory" : "gcd: a Bezout coefficient out of range");
    }
    rc = corrupt_body(&pb, kind, &r, &ref, n, &body, &step);
    if (rc > 0) { /* the kind does not apply: leave the conclusion out instead */
        kind = LM_ERR_MISSING_CONCLUSION;
        body.len = 0;
        rc = corrupt_body(&pb, kind, &r, &ref, n, &body, &step);
    }
    rc = rc ? lm_fail(err, "out of memory")
            : lm_task_corrupted_answer(&lm_domain_gcd, question, &body, kind, step, out, c, err);
    lm_text_free(&ref);
    lm_text_free(&body);
    return rc;
}

const lm_task_domain lm_domain_gcd = {
    .name = "gcd",
    .summary = "gcd(a, b) = g by Euclid's divisions with a Bezout combination after each",
    .difficulty = "number of divisions: 2 (1), 3, 4, 5, 6-7 (5); numbers grow from about 10^2 to 10^5",
    .generate = gcd_generate,
    .recognizes = gcd_recognizes,
    .check = gcd_check,
    .check_work = gcd_check_work,
    .corrupt = gcd_corrupt,
};
