/* add.c — the "add" domain: a sum of natural numbers proved column by column
 * with carries. The step language and the checker's rules are in
 * docs/tasks.md ("### add"):
 *
 *   Prove that 4736 + 5891 = 10627.
 *
 *   Column 1: 6 + 1 + 0 = 7, write 7, carry 0
 *   Column 2: 3 + 9 + 0 = 12, write 2, carry 1
 *   Column 3: 7 + 8 + 1 = 16, write 6, carry 1
 *   Column 4: 4 + 5 + 1 = 10, write 0, carry 1
 *   Final carry 1, so the digits read 10627
 *   Therefore 4736 + 5891 = 10627.
 *
 * The "Final carry" line is the justification that the written digits are
 * the claimed sum; without it the answer scores 0.5. */
#include <stdio.h>
#include <string.h>

#include "tasks/tasks.h"
#include "tasks/util.h"

enum { ADD_MAX_TERMS = 9, ADD_MAX_COLS = 19 };

typedef struct add_problem {
    int n; /* addends, 2..ADD_MAX_TERMS */
    int64_t term[ADD_MAX_TERMS];
    int64_t sum;
    int cols; /* digits of the longest addend: the number of column lines */
} add_problem;

static int digits_of(int64_t v) {
    int d = 1;
    while (v >= 10) v /= 10, d++;
    return d;
}

/* Digit k (1 = units) of v >= 0; 0 beyond its length. */
static int digit_at(int64_t v, int k) {
    for (int i = 1; i < k && v; i++) v /= 10;
    return (int)(v % 10);
}

/* "a + b + c" into buf. */
static const char *join_terms(char *buf, size_t cap, const int64_t *t, int n) {
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < n && pos < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%lld", i ? " + " : "", (long long)t[i]);
    return buf;
}

/* The numbers of "N1 + N2 + ... + Nk" at sc (k <= max): 1 with *n, 0 when
 * there is no number, -1 when one is out of range or there are more than max. */
static int scan_sum(lm_scan *sc, int64_t *v, int max, int *n) {
    int r = lm_scan_fmt(sc, "%u", &v[0]);
    if (r <= 0) return r;
    int k = 1;
    for (;;) {
        int64_t x;
        r = lm_scan_fmt(sc, "+ %u", &x);
        if (r < 0) return -1;
        if (r == 0) break;
        if (k == max) return -1;
        v[k++] = x;
    }
    *n = k;
    return 1;
}

static int parse_question(const char *q, add_problem *pb, lm_error *err) {
    static const char *form = "expected 'Prove that A + B [+ ...] = S.' with natural numbers";
    lm_scan sc;
    lm_scan_init(&sc, q, strlen(q));
    int64_t v[ADD_MAX_TERMS + 1];
    int n = 0, r = lm_scan_fmt(&sc, "Prove that");
    if (r == 1) r = scan_sum(&sc, v, ADD_MAX_TERMS + 1, &n);
    int64_t s = 0;
    if (r == 1) r = lm_scan_fmt(&sc, "= %u.", &s);
    if (r < 0) return lm_fail(err, "a number out of range or more than %d addends (%s)", ADD_MAX_TERMS, form);
    if (r == 0 || !lm_scan_end(&sc) || n < 2) return lm_fail(err, "%s", form);
    if (n > ADD_MAX_TERMS) return lm_fail(err, "more than %d addends", ADD_MAX_TERMS);
    pb->n = n;
    pb->cols = 0;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        pb->term[i] = v[i];
        if (__builtin_add_overflow(total, v[i], &total)) return lm_fail(err, "the sum of the addends is out of range");
        if (digits_of(v[i]) > pb->cols) pb->cols = digits_of(v[i]);
    }
    if (total != s) return lm_fail(err, "the claim is false: the addends sum to %lld, not %lld", (long long)total, (long long)s);
    pb->sum = s;
    return 0;
}

static int add_recognizes(const char *q) {
    static const char prefix[] = "Prove that ";
    if (strncmp(q, prefix, sizeof prefix - 1)) return 0;
    int plus = 0, eq = 0, digit = 0;
    for (const char *p = q + sizeof prefix - 1; *p; p++) {
        if (*p >= '0' && *p <= '9') digit = 1;
        else if (*p == '+') plus++;
        else if (*p == '=') eq++;
        else if (*p != ' ' && *p != '.') return 0;
    }
    return digit && plus && eq == 1;
}

/* ---- reference proofs and their faults ------------------------------------ */

typedef struct add_fault {
    int col;          /* 1-based column of an arithmetic slip; 0: none */
    int delta;        /* ... its stated sum is off by delta (write and carry follow it) */
    int drop_carry;   /* ... or its sum is right but the carry out is one too small */
    int misread_pos;  /* > 0: the reading line has digit misread_pos (1 = units) ... */
    int misread_digit; /* ... replaced by this one */
} add_fault;

/* The solution body for pb (one line each, '\n'-terminated) with fault f
 * (NULL: the reference). Later lines follow the slip consistently. */
static int render(const add_problem *pb, const add_fault *f, lm_text *body) {
    static const add_fault none = {0};
    if (!f) f = &none;
    char digits[ADD_MAX_COLS + 2]; /* the written digits, most significant first */
    int carry = 0;
    for (int k = 1; k <= pb->cols; k++) {
        int s = carry;
        if (lm_text_appendf(body, "Column %d: ", k)) return -1;
        for (int i = 0; i < pb->n; i++) {
            int d = digit_at(pb->term[i], k);
            s += d;
            if (lm_text_appendf(body, "%d + ", d)) return -1;
        }
        int out_carry;
        if (k == f->col && f->drop_carry) {
            out_carry = s / 10 - 1;
        } else {
            if (k == f->col) s += f->delta;
            out_carry = s / 10;
        }
        if (lm_text_appendf(body, "%d = %d, write %d, carry %d\n", carry, s, s % 10, out_carry)) return -1;
        digits[pb->cols - k + 1] = (char)('0' + s % 10);
        carry = out_carry;
    }
    /* carry < 10 here: at most 9 addends of digits 0..9 plus a carry < 9 */
    digits[0] = (char)('0' + carry);
    digits[pb->cols + 1] = 0;
    char *read = carry ? digits : digits + 1;
    if (f->misread_pos > 0) {
        size_t len = strlen(read);
        read[len - (size_t)f->misread_pos] = (char)('0' + f->misread_digit);
    }
    char terms[ADD_MAX_TERMS * 22];
    return lm_text_appendf(body, "Final carry %d, so the digits read %s\n", carry, read) ||
           lm_text_appendf(body, "Therefore %s = %s.\n", join_terms(terms, sizeof terms, pb->term, pb->n), read);
}

static void draw_problem(lm_task_rng *r, int difficulty, add_problem *pb) {
    static const struct {
        int terms, min_digits, max_digits;
    } level[5] = {{2, 2, 2}, {2, 3, 3}, {2, 4, 5}, {3, 4, 5}, {4, 5, 7}};
    int L = difficulty - 1;
    pb->n = level[L].terms;
    pb->cols = 0;
    pb->sum = 0;
    for (int i = 0; i < pb->n; i++) {
        int nd = (int)lm_task_rng_range(r, level[L].min_digits, level[L].max_digits);
        int64_t lo = 1;
        for (int k = 1; k < nd; k++) lo *= 10;
        pb->term[i] = lm_task_rng_range(r, lo, lo * 10 - 1);
        pb->sum += pb->term[i];
        if (nd > pb->cols) pb->cols = nd;
    }
}

static int add_generate(uint64_t seed, int difficulty, lm_text *question, lm_text *proof, lm_error *err) {
    if (difficulty < 1 || difficulty > 5) return lm_fail(err, "add: difficulty %d is not in 1..5", difficulty);
    lm_task_rng r = {seed, 0};
    add_problem pb;
    draw_problem(&r, difficulty, &pb);
    char terms[ADD_MAX_TERMS * 22];
    lm_text body = {0};
    int rc = lm_text_appendf(question, "Prove that %s = %lld.", join_terms(terms, sizeof terms, pb.term, pb.n),
                             (long long)pb.sum) ||
             render(&pb, NULL, &body) || lm_task_answer(body.data, body.len, proof);
    lm_text_free(&body);
    return rc ? lm_fail(err, "out of memory") : 0;
}

/* ---- the checker ---------------------------------------------------------- */

enum { PH_COLUMNS, PH_READ, PH_CONCLUSION, PH_DONE };

static int add_check_work(const char *question, const char *solution, lm_check_result *res, lm_task_work *work,
                          lm_error *err) {
    add_problem pb;
    if (parse_question(question, &pb, err)) return -1;
    lm_task_lines L;
    if (lm_task_split_lines(solution, strlen(solution), &L)) return lm_fail(err, "out of memory");
    char claim[ADD_MAX_TERMS * 22 + 24], terms[ADD_MAX_TERMS * 22];
    snprintf(claim, sizeof claim, "%s = %lld", join_terms(terms, sizeof terms, pb.term, pb.n), (long long)pb.sum);
    int phase = PH_COLUMNS, col = 1, carry = 0, omitted = 0;
    __int128 written = 0, place = 1; /* the written digits as a number, and 10^(columns done): up to 10^19 */
    lm_check_set(res, 1, 0, "", NULL);
    for (int i = 0; i < L.n; i++) {
        const char *t = L.line[i].text;
        size_t len = L.line[i].len;
        int step = L.line[i].number;
        if (phase == PH_DONE) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "nothing may follow the conclusion");
            goto out;
        }
        lm_scan sc;
        int64_t v[ADD_MAX_TERMS + 2], k, s, w, c;
        int n = 0, r;
        /* Column k: d1 + ... + dn + carry = s, write w, carry c */
        lm_scan_init(&sc, t, len);
        r = lm_scan_fmt(&sc, "Column %u:", &k);
        if (r == 1) r = scan_sum(&sc, v, ADD_MAX_TERMS + 2, &n);
        if (r == 1) r = lm_scan_fmt(&sc, "= %u, write %u, carry %u", &s, &w, &c);
        if (r == 1 && !lm_scan_end(&sc)) r = 0;
        if (r < 0) {
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a number out of range or too many terms");
            goto out;
        }
        if (r == 1 && k < 1) r = 0;
        if (r == 1) {
            if (k > pb.cols) {
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "the addends have %d columns, not %lld", pb.cols,
                             (long long)k);
            } else if (phase == PH_COLUMNS && k > col) {
                lm_check_set(res, 0, step, LM_ERR_MISSING_CASE, "column %d is skipped", col);
            } else if (phase != PH_COLUMNS || k < col) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "column %lld is already done", (long long)k);
            } else if (n != pb.n + 1) {
                lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "column %d adds %d digits and a carry, not %d numbers",
                             col, pb.n, n);
            } else {
                int64_t want[ADD_MAX_TERMS];
                int same = 1, sum = carry;
                for (int j = 0; j < pb.n; j++) {
                    want[j] = digit_at(pb.term[j], col);
                    same &= want[j] == v[j];
                    sum += (int)want[j];
                }
                char a[ADD_MAX_TERMS * 22], b[ADD_MAX_TERMS * 22];
                /* the column redone from the question's digits and the carry so far */
                if (work)
                    lm_task_work_add(work, step, "%s + %d = %d, write %d, carry %d",
                                     join_terms(a, sizeof a, want, pb.n), carry, sum, sum % 10, sum / 10);
                if (!same)
                    lm_check_set(res, 0, step, LM_ERR_WRONG_PROBLEM, "column %d of the addends is %s, not %s", col,
                                 join_terms(a, sizeof a, want, pb.n), join_terms(b, sizeof b, v, pb.n));
                else if (v[pb.n] != carry)
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the carry into column %d is %d, not %lld", col, carry,
                                 (long long)v[pb.n]);
                else if (s != sum)
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%s + %d = %d, not %lld",
                                 join_terms(a, sizeof a, want, pb.n), carry, sum, (long long)s);
                else if (w != sum % 10 || c != sum / 10)
                    lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "%d gives write %d, carry %d, not write %lld, carry %lld",
                                 sum, sum % 10, sum / 10, (long long)w, (long long)c);
                else {
                    written += place * w;
                    place *= 10;
                    carry = sum / 10;
                    if (++col > pb.cols) phase = PH_READ;
                    continue;
                }
            }
            goto out;
        }
        /* Final carry c, so the digits read s */
        r = lm_task_match(t, len, "Final carry %u, so the digits read %u", &c, &s);
        if (r == 1) {
            /* all columns were right when the digits are read: this is the true sum */
            __int128 value = written + place * carry;
            char vb[48];
            if (phase == PH_READ)
                lm_task_work_add(work, step, "final carry %d, the digits read %s", carry, lm_task_i128_text(vb, value));
            if (phase == PH_COLUMNS) {
                lm_check_set(res, 0, step, LM_ERR_MISSING_CASE, "column %d is skipped", col);
            } else if (phase != PH_READ) {
                lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "the digits are read once, after the last column");
            } else if (c != carry) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the final carry is %d, not %lld", carry, (long long)c);
            } else if (s != value) {
                lm_check_set(res, 0, step, LM_ERR_ARITHMETIC, "the digits read %s, not %lld", vb, (long long)s);
            } else {
                phase = PH_CONCLUSION;
                continue;
            }
            goto out;
        }
        /* Therefore A + B = S. */
        if (r == 0) {
            lm_scan_init(&sc, t, len);
            r = lm_scan_fmt(&sc, "Therefore");
            if (r == 1) r = scan_sum(&sc, v, ADD_MAX_TERMS + 2, &n);
            if (r == 1) r = lm_scan_fmt(&sc, "= %u.", &s);
            if (r == 1 && !lm_scan_end(&sc)) r = 0;
        }
        if (r == 1) {
            char a[ADD_MAX_TERMS * 22];
            if (phase != PH_COLUMNS) lm_task_work_add(work, step, "the claim is %s", claim);
            int same_terms = n == pb.n;
            for (int j = 0; same_terms && j < n; j++) same_terms = v[j] == pb.term[j];
            int is_claim = same_terms && s == pb.sum;
            if (!is_claim && same_terms)
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the sum is %lld, not %lld", (long long)pb.sum,
                             (long long)s);
            else if (!is_claim)
                lm_check_set(res, 0, step, LM_ERR_CONCLUSION, "the conclusion is about %s, not the claim %s",
                             join_terms(a, sizeof a, v, n), claim);
            else if (phase == PH_COLUMNS)
                lm_check_set(res, 0, step, LM_ERR_CIRCULAR, "the claim is stated before column %d is computed", col);
            else {
                omitted = phase == PH_READ;
                phase = PH_DONE;
                continue;
            }
            goto out;
        }
        if (r < 0)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "a number out of range");
        else if (phase == PH_COLUMNS)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected 'Column %d: ... = s, write w, carry c'", col);
        else if (phase == PH_READ)
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected 'Final carry c, so the digits read S'");
        else
            lm_check_set(res, 0, step, LM_ERR_UNPARSEABLE, "expected the conclusion 'Therefore %s.'", claim);
        goto out;
    }
    if (phase != PH_DONE)
        lm_check_set(res, 0, 0, LM_ERR_MISSING_CONCLUSION, "the solution ends before the conclusion 'Therefore %s.'",
                     claim);
    else if (omitted)
        lm_check_set(res, 0.5, 0, LM_ERR_OMITTED, "the line 'Final carry c, so the digits read S' is missing");
out:
    lm_task_lines_free(&L);
    return 0;
}

static int add_check(const char *question, const char *solution, lm_check_result *res, lm_error *err) {
    return add_check_work(question, solution, res, NULL, err);
}

/* ---- the corrupter -------------------------------------------------------- */

extern const lm_task_domain lm_domain_add;

/* Picks a digit of sum to misread: lowered by one, or raised where it is 0
 * (or a leading 1), and never past int64. 0 when the misread would leave it. */
static int misread(int64_t sum, lm_task_rng *r, add_fault *f) {
    int nd = digits_of(sum), pos = (int)lm_task_rng_range(r, 1, nd), d = digit_at(sum, pos);
    int nd_new = d > (pos == nd && nd > 1 ? 1 : 0) ? d - 1 : d + 1;
    int64_t p10 = 1;
    for (int i = 1; i < pos; i++) p10 *= 10;
    if ((__int128)sum + (__int128)(nd_new - d) * p10 > INT64_MAX) return 0;
    f->misread_pos = pos;
    f->misread_digit = nd_new;
    return 1;
}

/* The flawed body of one kind; *step is the step the checker must report.
 * 1 when the kind does not apply to pb (the caller falls back to another). */
static int corrupt_body(const add_problem *pb, const char *kind, lm_task_rng *r, const lm_text *ref, lm_text *body,
                        int *step) {
    int C = pb->cols; /* lines: columns 1..C, the reading line C+1, the conclusion C+2 */
    char terms[ADD_MAX_TERMS * 22], line[ADD_MAX_TERMS * 22 + 64];
    join_terms(terms, sizeof terms, pb->term, pb->n);
    *step = 0;
    if (!strcmp(kind, LM_ERR_ARITHMETIC)) {
        add_fault f = {0};
        int variant = (int)lm_task_rng_range(r, 0, 2);
        int carried[ADD_MAX_COLS], nc = 0, carry = 0; /* columns with a carry out, for the second variant */
        for (int k = 1; k <= C; k++) {
            int s = carry;
            for (int i = 0; i < pb->n; i++) s += digit_at(pb->term[i], k);
            if (s >= 10) carried[nc++] = k;
            carry = s / 10;
        }
        if (variant == 1 && nc) { /* the carry forgotten */
            f.col = carried[lm_task_rng_range(r, 0, nc - 1)];
            f.drop_carry = 1;
            *step = f.col;
        } else if (variant == 2 && misread(pb->sum, r, &f)) { /* one digit of the sum misread */
            *step = C + 1;
        } else { /* a column's sum off by one */
            f.col = (int)lm_task_rng_range(r, 1, C);
            f.delta = lm_task_rng_range(r, 0, 1) ? 1 : -1;
            int s = 0;
            for (int i = 0; i < pb->n; i++) s += digit_at(pb->term[i], f.col);
            if (s == 0) f.delta = 1; /* with s >= 1, s + carry - 1 >= 0 */
            *step = f.col;
        }
        return render(pb, &f, body);
    }
    if (!strcmp(kind, LM_ERR_MISSING_CASE)) { /* a column left out */
        *step = (int)lm_task_rng_range(r, 1, C);
        return lm_task_edit_lines(ref->data, *step, 1, NULL, body);
    }
    if (!strcmp(kind, LM_ERR_CONCLUSION)) { /* one digit of the sum wrong in the conclusion */
        int64_t p10 = 1, k = lm_task_rng_range(r, 0, digits_of(pb->sum) - 1), wrong;
        for (int64_t i = 0; i < k; i++) p10 *= 10;
        if ((pb->sum / p10) % 10 == 9 || __builtin_add_overflow(pb->sum, p10, &wrong)) wrong = pb->sum - p10;
        snprintf(line, sizeof line, "Therefore %s = %lld.", terms, (long long)wrong);
        *step = C + 2;
        return lm_task_edit_lines(ref->data, *step, 1, line, body);
    }
    if (!strcmp(kind, LM_ERR_MISSING_CONCLUSION)) return lm_task_edit_lines(ref->data, C + 2, 1, NULL, body);
    if (!strcmp(kind, LM_ERR_CIRCULAR)) { /* the claim stated before a column */
        snprintf(line, sizeof line, "Therefore %s = %lld.", terms, (long long)pb->sum);
        *step = (int)lm_task_rng_range(r, 1, C);
        return lm_task_edit_lines(ref->data, *step, 0, line, body);
    }
    if (!strcmp(kind, LM_ERR_OMITTED)) return lm_task_edit_lines(ref->data, C + 1, 1, NULL, body);
    /* LM_ERR_WRONG_PROBLEM: the proof of the sum with one digit of one addend changed */
    add_problem other = *pb;
    int i = (int)lm_task_rng_range(r, 0, pb->n - 1), nd = digits_of(pb->term[i]);
    int k = (int)lm_task_rng_range(r, 1, nd), d = digit_at(pb->term[i], k);
    int lowest = k == nd && nd > 1 ? 1 : 0; /* the leading digit stays non-zero */
    int nd_new = d > lowest ? (int)lm_task_rng_range(r, lowest, d - 1) : (int)lm_task_rng_range(r, d + 1, 9);
    int64_t p10 = 1;
    for (int j = 1; j < k; j++) p10 *= 10;
    if (__builtin_add_overflow(other.sum, (nd_new - d) * p10, &other.sum)) return 1;
    other.term[i] += (nd_new - d) * p10;
    *step = k;
    return render(&other, NULL, body);
}

static int add_corrupt(const char *question, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                       lm_error *err) {
    add_problem pb;
    if (parse_question(question, &pb, err)) return lm_fail_prefix(err, "add question");
    if (lm_task_require_correct(&lm_domain_add, question, proof, err)) return -1;
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_MISSING_CASE, LM_ERR_CONCLUSION,
                                        LM_ERR_MISSING_CONCLUSION, LM_ERR_CIRCULAR, LM_ERR_OMITTED,
                                        LM_ERR_WRONG_PROBLEM};
    lm_task_rng r = {seed, 0};
    const char *kind = kinds[lm_task_rng_range(&r, 0, (int64_t)(sizeof kinds / sizeof kinds[0]) - 1)];
    lm_text ref = {0}, body = {0};
    int step = 0, rc = render(&pb, NULL, &ref);
    if (!rc) rc = corrupt_body(&pb, kind, &r, &ref, &body, &step);
    if (rc > 0) { /* the kind does not apply: leave the conclusion out instead */
        kind = LM_ERR_MISSING_CONCLUSION;
        body.len = 0;
        rc = corrupt_body(&pb, kind, &r, &ref, &body, &step);
    }
    rc = rc ? lm_fail(err, "out of memory")
            : lm_task_corrupted_answer(&lm_domain_add, question, &body, kind, step, out, c, err);
    lm_text_free(&ref);
    lm_text_free(&body);
    return rc;
}

const lm_task_domain lm_domain_add = {
    .name = "add",
    .summary = "a sum of natural numbers, proved column by column with carries",
    .difficulty = "addends and digits: 2 two-digit numbers (1), 2 of 3, 2 of 4-5, 3 of 4-5, 4 of 5-7 digits (5)",
    .generate = add_generate,
    .recognizes = add_recognizes,
    .check = add_check,
    .check_work = add_check_work,
    .corrupt = add_corrupt,
};
