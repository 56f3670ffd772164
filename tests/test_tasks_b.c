/* test_tasks_b.c — the modpow, poly and divcases theorem domains
 * (src/tasks/{modpow,poly,divcases}.c): reference proofs check as 1, every
 * corruption checks as its label, hand-written flawed proofs per kind,
 * wrong problems, bad questions, determinism, and a small fuzz loop. */
#include <stdint.h>

#include "core/rng.h"
#include "tasks/intpoly.h"
#include "tasks/steptext.h"
#include "tasks/tasks.h"
#include "test.h"

/* Named directly: a static archive does not pull in members for the
 * registry's weak references, so this is what links the domains in. */
extern const lm_task_domain lm_domain_modpow, lm_domain_poly, lm_domain_divcases;

#define SEEDS 1000 /* per difficulty and family */

/* ---- helpers ------------------------------------------------------------- */

/* The solution part of an answer, as its own string (caller frees). */
static char *solution_of(const char *answer) {
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

static int count_lines(const char *solution) {
    lm_lines it = {solution, 0};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e)) {}
    return it.step;
}

static size_t solution_chars(const char *solution) {
    size_t n = strlen(solution);
    while (n && (solution[n - 1] == '\n' || solution[n - 1] == ' ')) n--;
    return n;
}

/* Checks a solution (bare or in the answer format) against a question. */
static lm_check_result judge(const char *q, const char *answer) {
    lm_check_result r;
    lm_error err = {{0}};
    memset(&r, 0, sizeof r);
    r.score = -1;
    if (lm_task_check(q, answer, &r, &err)) {
        printf("  check failed: %s\n", err.msg);
        r.score = -2;
    }
    return r;
}

#define EXPECT(q, sol, score_, step_, kind_) do {                                            \
        lm_check_result r_ = judge(q, sol);                                                  \
        CHECKF(r_.score == (score_) && r_.step == (step_) && !strcmp(r_.kind, kind_),         \
               "got %g step %d %s (%s), want %g step %d %s", r_.score, r_.step, r_.kind,      \
               r_.message, (double)(score_), step_, kind_);                                  \
    } while (0)

/* Joins lines with '\n'. */
static char *join(const char *const *lines, int n) {
    lm_text t = {0};
    for (int i = 0; i < n; i++) {
        lm_text_append(&t, lines[i], strlen(lines[i]));
        lm_text_append(&t, "\n", 1);
    }
    return t.data ? t.data : strdup("");
}

/* The lines with line i (0-based) replaced (repl != NULL) or removed. */
static char *edited(const char *const *lines, int n, int i, const char *repl) {
    const char *tmp[64];
    int k = 0;
    for (int j = 0; j < n; j++) {
        if (j == i && !repl) continue;
        tmp[k++] = j == i ? repl : lines[j];
    }
    return join(tmp, k);
}

static char *swapped(const char *const *lines, int n, int i, int j) {
    const char *tmp[64];
    for (int k = 0; k < n; k++) tmp[k] = lines[k];
    tmp[i] = lines[j];
    tmp[j] = lines[i];
    return join(tmp, n);
}

static const lm_task_domain *mine[] = {&lm_domain_modpow, &lm_domain_poly, &lm_domain_divcases};
#define NMINE (int)(sizeof mine / sizeof *mine)

/* Questions of the other engineer's domains, as far as their wording is
 * known here: none of mine may claim them. */
static const char *foreign_questions[] = {
    "Prove that 478 + 356 = 834.",
    "Prove that gcd(84, 36) = 12.",
    "Find all real x such that 3x + 5 = 11, and prove that there are no others.",
    "Prove that 2x + 3 = 7 has the unique solution x = 2.",
    "",
};

/* Generation, reference check, corruptions and wrong-problem refusal over
 * SEEDS seeds at every difficulty. `kinds` lists the corruption kinds the
 * domain must produce; each must appear. */
static void family(const lm_task_domain *d, const char *const *kinds, int nkinds) {
    int seen[8] = {0}, bad_ref = 0, bad_corrupt = 0, bad_det = 0, bad_other = 0, bad_len = 0;
    size_t chars[6] = {0}, max_chars[6] = {0};
    int max_lines[6] = {0}, min_lines[6] = {99, 99, 99, 99, 99, 99};
    for (int diff = 1; diff <= 5; diff++) {
        lm_text prev_q = {0}, prev_p = {0};
        for (uint64_t seed = 0; seed < SEEDS; seed++) {
            lm_text q = {0}, p = {0};
            lm_error err = {{0}};
            if (d->generate(seed, diff, &q, &p, &err)) {
                CHECKF(0, "%s generate(%llu, %d): %s", d->name, (unsigned long long)seed, diff, err.msg);
                return;
            }
            if (seed % 97 == 0) { /* determinism: same bytes again */
                lm_text q2 = {0}, p2 = {0};
                d->generate(seed, diff, &q2, &p2, &err);
                bad_det += strcmp(q.data, q2.data) || strcmp(p.data, p2.data);
                lm_text_free(&q2);
                lm_text_free(&p2);
            }
            CHECK(d->recognizes(q.data));
            for (int k = 0; k < NMINE; k++)
                if (mine[k] != d) CHECK(!mine[k]->recognizes(q.data));
            CHECK(lm_task_domain_of(q.data) == d);
            lm_check_result r = judge(q.data, p.data);
            if (r.score != 1 || r.step != 0 || r.kind[0]) {
                if (bad_ref++ < 3) printf("  %s reference: %s\n%s\n-> %s %s\n", d->name, q.data, p.data, r.kind, r.message);
            }
            char *sol = solution_of(p.data);
            int lines = count_lines(sol);
            size_t n = solution_chars(sol);
            chars[diff] += n;
            if (n > max_chars[diff]) max_chars[diff] = n;
            if (lines > max_lines[diff]) max_lines[diff] = lines;
            if (lines < min_lines[diff]) min_lines[diff] = lines;
            if (diff <= 2 && (lines < 3 || lines > 8)) bad_len++;
            if (diff == 1 && n > 300) bad_len++;
            free(sol);
            for (uint64_t cs = 0; cs < 3; cs++) {
                lm_text bad = {0}, bad2 = {0};
                lm_corruption c, c2;
                uint64_t cseed = seed * 3 + cs;
                if (d->corrupt(q.data, p.data, cseed, &bad, &c, &err)) {
                    CHECKF(0, "%s corrupt: %s", d->name, err.msg);
                    lm_text_free(&bad);
                    continue;
                }
                for (int k = 0; k < nkinds; k++) seen[k] += !strcmp(c.kind, kinds[k]);
                lm_check_result cr = judge(q.data, bad.data);
                if (cr.score != c.label || cr.step != c.step || strcmp(cr.kind, c.kind)) {
                    if (bad_corrupt++ < 3)
                        printf("  %s corruption %s/%g/step %d, checker %s/%g/step %d (%s)\n%s\n%s\n", d->name, c.kind,
                               c.label, c.step, cr.kind, cr.score, cr.step, cr.message, q.data, bad.data);
                }
                if (cs == 0 && seed % 97 == 0) {
                    d->corrupt(q.data, p.data, cseed, &bad2, &c2, &err);
                    bad_det += strcmp(bad.data, bad2.data) || c2.step != c.step || strcmp(c2.kind, c.kind);
                }
                lm_text_free(&bad);
                lm_text_free(&bad2);
            }
            /* the previous seed's proof is a proof of another problem */
            if (prev_q.data && strcmp(prev_q.data, q.data)) {
                lm_check_result wr = judge(q.data, prev_p.data);
                if (wr.score != 0 || strcmp(wr.kind, LM_ERR_WRONG_PROBLEM)) {
                    if (bad_other++ < 3)
                        printf("  %s: proof of\n%s\nagainst\n%s\n-> %g %s %s\n", d->name, prev_q.data, q.data, wr.score,
                               wr.kind, wr.message);
                }
            }
            lm_text_free(&prev_q);
            lm_text_free(&prev_p);
            prev_q = q;
            prev_p = p;
        }
        lm_text_free(&prev_q);
        lm_text_free(&prev_p);
    }
    CHECKF(bad_ref == 0, "%s: %d reference proofs do not check", d->name, bad_ref);
    CHECKF(bad_corrupt == 0, "%s: %d corruptions mislabelled", d->name, bad_corrupt);
    CHECKF(bad_det == 0, "%s: %d nondeterministic", d->name, bad_det);
    CHECKF(bad_other == 0, "%s: %d proofs of other problems not refused as wrong_problem", d->name, bad_other);
    CHECKF(bad_len == 0, "%s: %d proofs too long at difficulty 1-2", d->name, bad_len);
    for (int k = 0; k < nkinds; k++) CHECKF(seen[k] > 0, "%s never corrupts as %s", d->name, kinds[k]);
    printf("  %s: lines/chars by difficulty:", d->name);
    for (int diff = 1; diff <= 5; diff++)
        printf(" d%d %d-%d/%zu(max %zu)", diff, min_lines[diff], max_lines[diff], chars[diff] / SEEDS, max_chars[diff]);
    printf("\n");
    for (size_t i = 0; i < sizeof foreign_questions / sizeof *foreign_questions; i++)
        CHECK(!d->recognizes(foreign_questions[i]));
}

/* Random edits of a reference proof and random token soup: the checker
 * returns a verdict (never crashes, never -1 for a good question). */
static void fuzz(const lm_task_domain *d, const char *alphabet) {
    int bad = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        lm_text q = {0}, p = {0};
        lm_error err = {{0}};
        d->generate(seed, 1 + (int)(seed % 5), &q, &p, &err);
        size_t n = p.len;
        char *m = malloc(n + 64);
        for (int round = 0; round < 8; round++) {
            memcpy(m, p.data, n + 1);
            uint64_t ctr = (uint64_t)round * 1000;
            size_t len = n;
            int edits = 1 + (int)(lm_rng_u64(seed, 9, ctr++) % 4);
            for (int k = 0; k < edits; k++) {
                size_t at = lm_rng_u64(seed, 9, ctr++) % (len ? len : 1);
                int op = (int)(lm_rng_u64(seed, 9, ctr++) % 4);
                char ch = alphabet[lm_rng_u64(seed, 9, ctr++) % strlen(alphabet)];
                if (op == 0) len = at; /* truncate */
                else if (op == 1) m[at] = ch;
                else if (op == 2 && len) memmove(m + at, m + at + 1, len - at), len--;
                else if (op == 3) memmove(m + at + 1, m + at, len - at + 1), m[at] = ch, len++;
                m[len] = 0;
            }
            lm_check_result r;
            memset(&r, 0, sizeof r);
            if (lm_task_check(q.data, m, &r, &err)) bad++;
            else if (!(r.score == 0 || r.score == 0.5 || r.score == 1) || r.step < 0) bad++;
            else if (r.score < 1 && !r.kind[0]) bad++;
        }
        /* token soup */
        char soup[400];
        for (int round = 0; round < 4; round++) {
            size_t len = lm_rng_u64(seed, 10, (uint64_t)round) % (sizeof soup - 1);
            for (size_t i = 0; i < len; i++) soup[i] = alphabet[lm_rng_u64(seed, 11, round * 1000 + i) % strlen(alphabet)];
            soup[len] = 0;
            lm_check_result r;
            if (lm_task_check(q.data, soup, &r, &err) || r.score == 1) bad++;
            /* and as a question: an error or a recognised question, never a crash */
            lm_check_result r2;
            if (d->check(soup, p.data, &r2, &err) == 0) CHECK(r2.score >= 0);
        }
        free(m);
        lm_text_free(&q);
        lm_text_free(&p);
    }
    CHECKF(bad == 0, "%s: %d fuzzed solutions gave no verdict or a bad one", d->name, bad);
}

/* ---- steptext / intpoly --------------------------------------------------- */

TEST(scanner_tokens) {
    const char *t = "3^13 \xe2\x89\xa1 3*3 = 9 (mod 7). x^2-3x";
    lm_steps s = {t, t + strlen(t)};
    int64_t a, e, b, c, v;
    CHECK(lm_steps_num(&s, &a) && a == 3 && lm_steps_sym(&s, "^") && lm_steps_num(&s, &e) && e == 13);
    CHECK(lm_steps_sym(&s, LM_SYM_CONGRUENT));
    CHECK(lm_steps_num(&s, &b) && lm_steps_sym(&s, "*") && lm_steps_num(&s, &c) && b * c == 9);
    CHECK(!lm_steps_word(&s, "mod")); /* '=' comes first, and nothing was consumed */
    CHECK(lm_steps_sym(&s, "=") && lm_steps_num(&s, &v) && v == 9);
    CHECK(lm_steps_words(&s, "( mod"));
    CHECK(lm_steps_num(&s, &v) && v == 7 && lm_steps_words(&s, ") ."));
    lm_ipoly p;
    CHECK(lm_ipoly_scan(&s, 'x', &p) && p.deg == 2 && p.c[2] == 1 && p.c[1] == -3 && p.c[0] == 0);
    CHECK(lm_steps_end(&s));
    /* numbers: canonical and in range only */
    const char *big = "9223372036854775807 9223372036854775808 007";
    lm_steps s2 = {big, big + strlen(big)};
    CHECK(lm_steps_num(&s2, &v) && v == INT64_MAX);
    CHECK(!lm_steps_num(&s2, &v) && lm_steps_peek(&s2).kind == LM_TOK_BADNUM);
    CHECK(lm_steps_has_bad_number(big, big + strlen(big)));
    CHECK(!lm_steps_has_bad_number(t, t + strlen(t)));
    const char *x1 = "x^2 -  x", *x2 = "x^2-x";
    CHECK(lm_steps_same_tokens(x1, x1 + strlen(x1), x2, x2 + strlen(x2)));
    CHECK(!lm_steps_same_tokens(x1, x1 + strlen(x1), x2, x2 + 3));
}

TEST(lines_skip_blank) {
    const char *text = "\n  a b \r\n\t\n c\n";
    lm_lines it = {text, 0};
    const char *b, *e;
    CHECK(lm_lines_next(&it, &b, &e) && it.step == 1 && e - b == 3 && !strncmp(b, "a b", 3));
    CHECK(lm_lines_next(&it, &b, &e) && it.step == 2 && e - b == 1 && *b == 'c');
    CHECK(!lm_lines_next(&it, &b, &e));
}

static int scan_poly_text(const char *text, char var, lm_ipoly *p) {
    lm_steps s = {text, text + strlen(text)};
    return lm_ipoly_scan(&s, var, p) && lm_steps_end(&s);
}

TEST(intpoly_normal_form) {
    lm_ipoly p, q, r;
    CHECK(scan_poly_text("x^2 - x - 6", 'x', &p));
    CHECK(scan_poly_text("0", 'x', &q) && q.deg == -1);
    CHECK(scan_poly_text("-x^3 + 2", 'x', &q) && q.c[3] == -1 && q.c[0] == 2);
    /* not normal form */
    CHECK(!scan_poly_text("x - x^2", 'x', &q));
    CHECK(!scan_poly_text("x + x", 'x', &q));
    CHECK(!scan_poly_text("1x^2", 'x', &q));
    CHECK(!scan_poly_text("x^1", 'x', &q));
    CHECK(!scan_poly_text("x^0", 'x', &q));
    CHECK(!scan_poly_text("0x", 'x', &q));
    CHECK(!scan_poly_text("x^2 + 0", 'x', &q));
    CHECK(!scan_poly_text("x^2 + -3", 'x', &q));
    CHECK(!scan_poly_text("k^2", 'x', &q));
    CHECK(!scan_poly_text("x^99", 'x', &q));
    /* arithmetic and text round trip */
    lm_ipoly a, b;
    scan_poly_text("x + 2", 'x', &a);
    scan_poly_text("x - 3", 'x', &b);
    CHECK(lm_ipoly_mul(&r, &a, &b) == 0 && lm_ipoly_equal(&r, &p));
    char buf[64];
    lm_ipoly_format(buf, sizeof buf, &r, 'x');
    CHECK(!strcmp(buf, "x^2 - x - 6"));
    /* p(3k + 1) for n^3 - n */
    lm_ipoly c;
    scan_poly_text("n^3 - n", 'n', &c);
    CHECK(lm_ipoly_subst_linear(&r, &c, 3, 1) == 0);
    lm_ipoly_format(buf, sizeof buf, &r, 'k');
    CHECK(!strcmp(buf, "27k^3 + 27k^2 + 6k"));
    /* overflow is reported, never UB */
    lm_ipoly big;
    lm_ipoly_set_mono(&big, INT64_MAX, 1);
    CHECK(lm_ipoly_add(&r, &big, &big) == -1);
    CHECK(lm_ipoly_mul(&r, &big, &a) == -1);
    CHECK(lm_ipoly_scale(&r, &big, -2) == -1);
    lm_ipoly_set_mono(&big, 1, 20);
    CHECK(lm_ipoly_mul(&r, &big, &big) == -1); /* degree 40 */
    lm_mono m = {-3, 2};
    lm_mono_format_factor(buf, sizeof buf, m, 'x');
    CHECK(!strcmp(buf, "(-3x^2)"));
    m = (lm_mono){INT64_MIN, 0};
    lm_mono_format_term(buf, sizeof buf, m, 'x');
    CHECK(!strcmp(buf, "-9223372036854775808"));
}

/* ---- modpow --------------------------------------------------------------- */

static const char *MP_Q = "Prove that 3^13 \xe2\x89\xa1 3 (mod 7).";
static const char *mp_lines[] = {
    "3^1 \xe2\x89\xa1 3 (mod 7)",
    "3^2 \xe2\x89\xa1 3*3 = 9 \xe2\x89\xa1 2 (mod 7)",
    "3^4 \xe2\x89\xa1 2*2 = 4 \xe2\x89\xa1 4 (mod 7)",
    "3^8 \xe2\x89\xa1 4*4 = 16 \xe2\x89\xa1 2 (mod 7)",
    "13 = 8 + 4 + 1",
    "3^8*3^4 = 3^12 \xe2\x89\xa1 2*4 = 8 \xe2\x89\xa1 1 (mod 7)",
    "3^12*3^1 = 3^13 \xe2\x89\xa1 1*3 = 3 \xe2\x89\xa1 3 (mod 7)",
    "Therefore 3^13 \xe2\x89\xa1 3 (mod 7).",
};
#define MP_N 8

TEST(modpow_family) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_CIRCULAR, LM_ERR_OMITTED};
    family(&lm_domain_modpow, kinds, 4);
}

TEST(modpow_hand_written) {
    char *s = join(mp_lines, MP_N);
    EXPECT(MP_Q, s, 1, 0, "");
    free(s);
    /* white space is free, blank lines are skipped, CRLF is fine */
    EXPECT(MP_Q,
           "## Solution\r\n3^1\xe2\x89\xa1" "3(mod 7)\r\n\n  3^2 \xe2\x89\xa1 3 * 3=9\xe2\x89\xa1 2 ( mod 7 )\r\n"
           "3^4 \xe2\x89\xa1 2*2 = 4 \xe2\x89\xa1 4 (mod 7)\n3^8 \xe2\x89\xa1 4*4 = 16 \xe2\x89\xa1 2 (mod 7)\n"
           "13=8+4+1\n3^8*3^4 = 3^12 \xe2\x89\xa1 2*4 = 8 \xe2\x89\xa1 1 (mod 7)\n"
           "3^12*3^1 = 3^13 \xe2\x89\xa1 1*3 = 3 \xe2\x89\xa1 3 (mod 7)\nTherefore 3^13 \xe2\x89\xa1 3 (mod 7).\r\n\n"
           "## Self Evaluation\nwhatever\n",
           1, 0, "");
    struct { int line; const char *repl; int step; const char *kind; } cases[] = {
        /* arithmetic: a product, a reduction, a copied residue, an exponent sum, the decomposition */
        {3, "3^8 \xe2\x89\xa1 4*4 = 15 \xe2\x89\xa1 1 (mod 7)", 4, LM_ERR_ARITHMETIC},
        {3, "3^8 \xe2\x89\xa1 4*4 = 16 \xe2\x89\xa1 3 (mod 7)", 4, LM_ERR_ARITHMETIC},
        {3, "3^8 \xe2\x89\xa1 4*4 = 16 \xe2\x89\xa1 9 (mod 7)", 4, LM_ERR_ARITHMETIC}, /* true but not reduced */
        {2, "3^4 \xe2\x89\xa1 3*3 = 9 \xe2\x89\xa1 2 (mod 7)", 3, LM_ERR_ARITHMETIC},
        {5, "3^8*3^4 = 3^13 \xe2\x89\xa1 2*4 = 8 \xe2\x89\xa1 1 (mod 7)", 6, LM_ERR_ARITHMETIC},
        {5, "3^8*3^4 = 3^12 \xe2\x89\xa1 2*2 = 4 \xe2\x89\xa1 4 (mod 7)", 6, LM_ERR_ARITHMETIC},
        {4, "13 = 8 + 4 + 2", 5, LM_ERR_ARITHMETIC},
        {2, "3^3 \xe2\x89\xa1 3*3 = 9 \xe2\x89\xa1 2 (mod 7)", 3, LM_ERR_ARITHMETIC},
        /* the conclusion */
        {7, "Therefore 3^13 \xe2\x89\xa1 5 (mod 7).", 8, LM_ERR_CONCLUSION},
        /* circular: the claim asserted; a power used before it is derived */
        {6, "3^13 \xe2\x89\xa1 3 (mod 7)", 7, LM_ERR_CIRCULAR},
        {5, "3^12*3^1 = 3^13 \xe2\x89\xa1 1*3 = 3 \xe2\x89\xa1 3 (mod 7)", 6, LM_ERR_CIRCULAR},
        {0, "3^13 \xe2\x89\xa1 3 (mod 7)", 1, LM_ERR_CIRCULAR},
        /* wrong problem: another base, modulus, exponent */
        {0, "5^1 \xe2\x89\xa1 5 (mod 7)", 1, LM_ERR_WRONG_PROBLEM},
        {1, "3^2 \xe2\x89\xa1 3*3 = 9 \xe2\x89\xa1 1 (mod 8)", 2, LM_ERR_WRONG_PROBLEM},
        {4, "11 = 8 + 2 + 1", 5, LM_ERR_WRONG_PROBLEM},
        {7, "Therefore 3^12 \xe2\x89\xa1 1 (mod 7).", 8, LM_ERR_WRONG_PROBLEM},
        /* not in the language */
        {1, "3^2 = 9 \xe2\x89\xa1 2 (mod 7)", 2, LM_ERR_UNPARSEABLE},
        {1, "3^2 \xe2\x89\xa1 3*3 = 9 \xe2\x89\xa1 2 mod 7", 2, LM_ERR_UNPARSEABLE},
        {1, "3^2 is congruent to 2 modulo 7", 2, LM_ERR_UNPARSEABLE},
        {1, "3^2 \xe2\x89\xa1 3*3 = 09 \xe2\x89\xa1 2 (mod 7)", 2, LM_ERR_UNPARSEABLE},
        {1, "3^2 \xe2\x89\xa1 3*3 = 99999999999999999999 \xe2\x89\xa1 2 (mod 7)", 2, LM_ERR_UNPARSEABLE},
        {4, "13 = 4 + 8 + 1", 5, LM_ERR_UNPARSEABLE},
        {7, "Therefore 3^13 is 3 mod 7.", 8, LM_ERR_UNPARSEABLE},
        {5, "3^8*3^1 = 3^9 \xe2\x89\xa1 2*3 = 6 \xe2\x89\xa1 6 (mod 7)", 6, LM_ERR_UNPARSEABLE}, /* out of order */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = edited(mp_lines, MP_N, cases[i].line, cases[i].repl);
        lm_check_result r = judge(MP_Q, t);
        CHECKF(r.score == 0 && r.step == cases[i].step && !strcmp(r.kind, cases[i].kind),
               "case %zu: got step %d %s (%s), want step %d %s", i, r.step, r.kind, r.message, cases[i].step,
               cases[i].kind);
        free(t);
    }
    /* the decomposition left out: 0.5 at the step where it belonged */
    s = edited(mp_lines, MP_N, 4, NULL);
    EXPECT(MP_Q, s, 0.5, 5, LM_ERR_OMITTED);
    free(s);
    /* ... but a fatal error later still gives 0 */
    {
        const char *l2[MP_N];
        memcpy(l2, mp_lines, sizeof l2);
        l2[6] = "3^12*3^1 = 3^13 \xe2\x89\xa1 1*3 = 4 \xe2\x89\xa1 4 (mod 7)";
        s = edited(l2, MP_N, 4, NULL);
        EXPECT(MP_Q, s, 0, 6, LM_ERR_ARITHMETIC);
        free(s);
    }
    /* squarings out of order: 3^4 before 3^2 is derived */
    s = swapped(mp_lines, MP_N, 1, 2);
    EXPECT(MP_Q, s, 0, 2, LM_ERR_CIRCULAR);
    free(s);
    /* a squaring skipped: 3^8 from 3^4 that is not there */
    s = edited(mp_lines, MP_N, 2, NULL);
    EXPECT(MP_Q, s, 0, 3, LM_ERR_CIRCULAR);
    free(s);
    /* the conclusion right after the decomposition: not derived */
    {
        const char *l3[] = {mp_lines[0], mp_lines[1], mp_lines[2], mp_lines[3], mp_lines[4], mp_lines[7]};
        s = join(l3, 6);
        EXPECT(MP_Q, s, 0, 6, LM_ERR_CIRCULAR);
        free(s);
    }
    /* the conclusion missing, or a line after it */
    s = edited(mp_lines, MP_N, 7, NULL);
    EXPECT(MP_Q, s, 0, 0, LM_ERR_MISSING_CONCLUSION);
    free(s);
    EXPECT(MP_Q, "", 0, 0, LM_ERR_MISSING_CONCLUSION);
    EXPECT(MP_Q, "## Solution\n\n## Self Evaluation\n\\boxed{1}", 0, 0, LM_ERR_MISSING_CONCLUSION);
    {
        const char *l4[MP_N + 1];
        memcpy(l4, mp_lines, sizeof mp_lines);
        l4[MP_N] = "13 = 8 + 4 + 1";
        s = join(l4, MP_N + 1);
        EXPECT(MP_Q, s, 0, 9, LM_ERR_UNPARSEABLE);
        free(s);
    }
    /* a whole proof of 3^11 ≡ 5 (mod 7) */
    const char *other[] = {
        mp_lines[0], mp_lines[1], mp_lines[2], mp_lines[3], "11 = 8 + 2 + 1",
        "3^8*3^2 = 3^10 \xe2\x89\xa1 2*2 = 4 \xe2\x89\xa1 4 (mod 7)",
        "3^10*3^1 = 3^11 \xe2\x89\xa1 4*3 = 12 \xe2\x89\xa1 5 (mod 7)", "Therefore 3^11 \xe2\x89\xa1 5 (mod 7).",
    };
    s = join(other, 8);
    EXPECT("Prove that 3^11 \xe2\x89\xa1 5 (mod 7).", s, 1, 0, "");
    EXPECT(MP_Q, s, 0, 5, LM_ERR_WRONG_PROBLEM);
    /* and with its decomposition left out the foreign term is caught */
    free(s);
    s = edited(other, 8, 4, NULL);
    EXPECT(MP_Q, s, 0, 5, LM_ERR_WRONG_PROBLEM);
    free(s);
    /* the same base and modulus, a smaller exponent: the squaring 3^8 is not needed for 3^7 */
    s = join(mp_lines, MP_N);
    EXPECT("Prove that 3^7 \xe2\x89\xa1 3 (mod 7).", s, 0, 4, LM_ERR_WRONG_PROBLEM);
    free(s);
    /* a false claim cannot be proved: the honest steps end in another residue */
    s = join(mp_lines, MP_N);
    EXPECT("Prove that 3^13 \xe2\x89\xa1 4 (mod 7).", s, 0, 8, LM_ERR_CONCLUSION);
    free(s);
}

TEST(modpow_bad_questions) {
    const char *bad[] = {
        "Prove that 3^13 \xe2\x89\xa1 3 (mod 2).",       /* modulus too small */
        "Prove that 3^13 \xe2\x89\xa1 3 (mod 7)",        /* no period */
        "Prove that 9^13 \xe2\x89\xa1 3 (mod 7).",       /* base not below the modulus */
        "Prove that 3^1 \xe2\x89\xa1 3 (mod 7).",        /* exponent 1 */
        "Prove that 3^13 \xe2\x89\xa1 8 (mod 7).",       /* residue not reduced */
        "Prove that 3^13 \xe2\x89\xa1 3 (mod 99999999999).",
        "Prove that 3^99999999999999999999 \xe2\x89\xa1 3 (mod 7).",
        "Prove that 3^13 = 3 (mod 7).",
        "Prove that 3^13 \xe2\x89\xa1 3 (mod 7). Extra",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lm_check_result r;
        lm_error err = {{0}};
        CHECKF(lm_domain_modpow.check(bad[i], "x", &r, &err) == -1 && err.msg[0], "%s", bad[i]);
        CHECK(!strchr(err.msg, '\n'));
    }
    lm_error err = {{0}};
    lm_check_result r;
    CHECK(lm_task_check("Prove that the moon is cheese.", "x", &r, &err) == -1 && err.msg[0]);
    lm_text q = {0}, p = {0}, out = {0};
    CHECK(lm_domain_modpow.generate(1, 0, &q, &p, &err) == -1);
    CHECK(lm_domain_modpow.generate(1, 6, &q, &p, &err) == -1);
    /* only a correct proof is corrupted */
    lm_corruption c;
    CHECK(lm_domain_modpow.corrupt(MP_Q, "## Solution\n3^1 \xe2\x89\xa1 3 (mod 7)\n", 1, &out, &c, &err) == -1);
    lm_text_free(&out);
}

TEST(modpow_fuzz) { fuzz(&lm_domain_modpow, "0123456789^*=+() \n\xe2\x89\xa1modTherefore."); }

/* ---- poly ----------------------------------------------------------------- */

static const char *PQ = "Prove that (x + 2)(x - 3) = x^2 - x - 6 for all real x.";
static const char *p_lines[] = {
    "(x + 2)(x - 3) = x*x + x*(-3) + 2*x + 2*(-3)",
    "= x^2 - 3x + 2x - 6",
    "= x^2 - x - 6",
    "Therefore (x + 2)(x - 3) = x^2 - x - 6 for all real x.",
};
static const char *PQ3 = "Prove that (x + 1)(x - 2)(x + 3) = x^3 + 2x^2 - 5x - 6 for all real x.";
static const char *p3_lines[] = {
    "(x + 1)(x - 2) = x*x + x*(-2) + 1*x + 1*(-2)",
    "= x^2 - 2x + x - 2",
    "= x^2 - x - 2",
    "(x^2 - x - 2)(x + 3) = x^2*x + x^2*3 + (-x)*x + (-x)*3 + (-2)*x + (-2)*3",
    "= x^3 + 3x^2 - x^2 - 3x - 2x - 6",
    "= x^3 + 2x^2 - 5x - 6",
    "Therefore (x + 1)(x - 2)(x + 3) = x^3 + 2x^2 - 5x - 6 for all real x.",
};

TEST(poly_family) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_OMITTED};
    family(&lm_domain_poly, kinds, 3);
}

TEST(poly_hand_written) {
    char *s = join(p_lines, 4);
    EXPECT(PQ, s, 1, 0, "");
    free(s);
    s = join(p3_lines, 7);
    EXPECT(PQ3, s, 1, 0, "");
    free(s);
    EXPECT(PQ, "(x+2)(x-3)=x*x+x*(-3)+2*x+2*(-3)\n=x^2-3x+2x-6\n\n=x^2-x-6\nTherefore (x+2)(x-3)=x^2-x-6 for all real x.",
           1, 0, "");
    struct { const char *const *lines; int n; const char *q; int line; const char *repl; int step; const char *kind; } cases[] = {
        /* arithmetic: a product, collecting, the distribution, the product carried into the next round */
        {p_lines, 4, NULL, 1, "= x^2 - 4x + 2x - 6", 2, LM_ERR_ARITHMETIC},
        {p_lines, 4, NULL, 2, "= x^2 - 2x - 6", 3, LM_ERR_ARITHMETIC},
        {p_lines, 4, NULL, 2, "= x^2 - 6", 3, LM_ERR_ARITHMETIC},
        {p_lines, 4, NULL, 0, "(x + 2)(x - 3) = x*x + x*(-3) + 2*x + 3*(-3)", 1, LM_ERR_ARITHMETIC},
        {p_lines, 4, NULL, 0, "(x + 2)(x - 3) = x*x + x*(-3) + 2*x", 1, LM_ERR_ARITHMETIC},
        {p3_lines, 7, NULL, 3, "(x^2 - x - 3)(x + 3) = x^2*x + x^2*3 + (-x)*x + (-x)*3 + (-3)*x + (-3)*3", 4,
         LM_ERR_ARITHMETIC},
        {p3_lines, 7, NULL, 4, "= x^3 + 3x^2 - x^2 - 3x - 2x - 5", 5, LM_ERR_ARITHMETIC},
        /* the conclusion */
        {p_lines, 4, NULL, 3, "Therefore (x + 2)(x - 3) = x^2 - x - 5 for all real x.", 4, LM_ERR_CONCLUSION},
        /* wrong problem: another factor, in the first or a later round, or in the conclusion */
        {p_lines, 4, NULL, 0, "(x + 2)(x - 4) = x*x + x*(-4) + 2*x + 2*(-4)", 1, LM_ERR_WRONG_PROBLEM},
        {p_lines, 4, NULL, 0, "(x + 1)(x - 3) = x*x + x*(-3) + 1*x + 1*(-3)", 1, LM_ERR_WRONG_PROBLEM},
        {p3_lines, 7, NULL, 3, "(x^2 - x - 2)(x + 4) = x^2*x + x^2*4 + (-x)*x + (-x)*4 + (-2)*x + (-2)*4", 4,
         LM_ERR_WRONG_PROBLEM},
        {p_lines, 4, NULL, 3, "Therefore (x + 2)(x - 4) = x^2 - x - 6 for all real x.", 4, LM_ERR_WRONG_PROBLEM},
        {p_lines, 4, NULL, 3, "(x^2 - x - 6)(x + 1) = x^2*x + x^2*1 + (-x)*x + (-x)*1 + (-6)*x + (-6)*1", 4,
         LM_ERR_WRONG_PROBLEM},
        /* circular: concluded before the last factor is multiplied in */
        {p3_lines, 7, NULL, 3, "Therefore (x + 1)(x - 2)(x + 3) = x^3 + 2x^2 - 5x - 6 for all real x.", 4,
         LM_ERR_CIRCULAR},
        /* not in the language */
        {p_lines, 4, NULL, 1, "= x^2 + (-3x) + 2x - 6", 2, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 2, "= -x + x^2 - 6", 3, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 2, "= x^2 - 1x - 6", 3, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 0, "(x + 2)(x - 3) = x*x + x*-3 + 2*x + 2*-3", 1, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 0, "(x + 2)(x - 3) = x\xc2\xb7x + x*(-3) + 2*x + 2*(-3)", 1, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 0, "(2 + x)(x - 3) = 2*x + 2*(-3) + x*x + x*(-3)", 1, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 3, "Hence (x + 2)(x - 3) = x^2 - x - 6.", 4, LM_ERR_UNPARSEABLE},
        {p_lines, 4, NULL, 3, "= x^2 - x - 6", 4, LM_ERR_UNPARSEABLE},
        {p3_lines, 7, NULL, 3, "= x^2 - x - 2", 4, LM_ERR_UNPARSEABLE},
        /* a false claim: the honest expansion does not reach it */
        {p_lines, 4, "Prove that (x + 2)(x - 3) = x^2 - x - 5 for all real x.", 3,
         "Therefore (x + 2)(x - 3) = x^2 - x - 5 for all real x.", 4, LM_ERR_CONCLUSION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = edited(cases[i].lines, cases[i].n, cases[i].line, cases[i].repl);
        const char *q = cases[i].q ? cases[i].q : cases[i].n == 4 ? PQ : PQ3;
        lm_check_result r = judge(q, t);
        CHECKF(r.score == 0 && r.step == cases[i].step && !strcmp(r.kind, cases[i].kind),
               "case %zu: got step %d %s (%s), want step %d %s", i, r.step, r.kind, r.message, cases[i].step,
               cases[i].kind);
        free(t);
    }
    /* a products line left out: 0.5 at the collected line that took its place */
    s = edited(p_lines, 4, 1, NULL);
    EXPECT(PQ, s, 0.5, 2, LM_ERR_OMITTED);
    free(s);
    s = edited(p3_lines, 7, 4, NULL);
    EXPECT(PQ3, s, 0.5, 5, LM_ERR_OMITTED);
    free(s);
    {
        const char *l[] = {p3_lines[0], p3_lines[2], p3_lines[3], p3_lines[5], p3_lines[6]};
        s = join(l, 5);
        EXPECT(PQ3, s, 0.5, 2, LM_ERR_OMITTED); /* the first omission is reported */
        free(s);
        /* without the products line a wrong collection is still caught */
        const char *l2[] = {p3_lines[0], "= x^2 - 2", p3_lines[3], p3_lines[5], p3_lines[6]};
        s = join(l2, 5);
        EXPECT(PQ3, s, 0, 2, LM_ERR_ARITHMETIC);
        free(s);
    }
    /* conclusion missing; a line after it */
    s = edited(p_lines, 4, 3, NULL);
    EXPECT(PQ, s, 0, 0, LM_ERR_MISSING_CONCLUSION);
    free(s);
    {
        const char *l[] = {p_lines[0], p_lines[1], p_lines[2], p_lines[3], p_lines[2]};
        s = join(l, 5);
        EXPECT(PQ, s, 0, 5, LM_ERR_UNPARSEABLE);
        free(s);
    }
    /* the two-factor proof for the three-factor claim */
    s = join(p_lines, 4);
    EXPECT(PQ3, s, 0, 1, LM_ERR_WRONG_PROBLEM);
    free(s);
}

TEST(poly_bad_questions) {
    const char *bad[] = {
        "Prove that (x + 2) = x + 2 for all real x.",
        "Prove that (x + 2)(3) = 3x + 6 for all real x.",
        "Prove that (x + 2)(x - 3) = x^2 - x - 6 for all x.",
        "Prove that (2 + x)(x - 3) = x^2 - x - 6 for all real x.",
        "Prove that (x + 2)(x - 3) = -x + x^2 - 6 for all real x.",
        "Prove that (x + 1)(x + 1)(x + 1)(x + 1)(x + 1)(x + 1)(x + 1) = x for all real x.",
        "Prove that (4611686018427387904x + 1)(2x + 1) = x for all real x.",
        "Prove that (x^20 + 1)(x^20 + 1) = x for all real x.",
        "Prove that x + 2 = x + 2 for all real x.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lm_check_result r;
        lm_error err = {{0}};
        CHECKF(lm_domain_poly.check(bad[i], "x", &r, &err) == -1 && err.msg[0], "%s", bad[i]);
        CHECK(!strchr(err.msg, '\n'));
    }
    lm_error err = {{0}};
    lm_text out = {0};
    lm_corruption c;
    CHECK(lm_domain_poly.corrupt(PQ, "## Solution\n= x^2 - x - 6\n", 1, &out, &c, &err) == -1);
    lm_text_free(&out);
}

TEST(poly_fuzz) { fuzz(&lm_domain_poly, "0123456789x^*=+-() \nTherefore for all real."); }

/* ---- divcases ------------------------------------------------------------- */

static const char *DQ = "Prove that n^3 - n is divisible by 3 for every integer n.";
static const char *d_lines[] = {
    "n = 3k: n^3 - n = 27k^3 - 3k = 3*(9k^3 - k)",
    "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 3*(9k^3 + 9k^2 + 2k)",
    "n = 3k + 2: n^3 - n = 27k^3 + 54k^2 + 33k + 6 = 3*(9k^3 + 18k^2 + 11k + 2)",
    "Therefore n^3 - n is divisible by 3 for every integer n.",
};

TEST(divcases_family) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_MISSING_CASE, LM_ERR_OMITTED, LM_ERR_CONCLUSION};
    family(&lm_domain_divcases, kinds, 4);
}

TEST(divcases_hand_written) {
    char *s = join(d_lines, 4);
    EXPECT(DQ, s, 1, 0, "");
    free(s);
    EXPECT(DQ,
           "n=3k:n^3-n=27k^3-3k=3*(9k^3-k)\n\n  n = 3 k + 1 : n^3 - n = 27k^3 + 27k^2 + 6k = 3 * ( 9k^3 + 9k^2 + 2k )\n"
           "n = 3k + 2: n^3 - n = 27k^3 + 54k^2 + 33k + 6 = 3*(9k^3 + 18k^2 + 11k + 2)\n"
           "Therefore n^3 - n is divisible by 3 for every integer n.\n",
           1, 0, "");
    struct { int line; const char *repl; int step; const char *kind; } cases[] = {
        /* arithmetic: the expansion, the quotient */
        {2, "n = 3k + 2: n^3 - n = 27k^3 + 54k^2 + 33k + 8 = 3*(9k^3 + 18k^2 + 11k + 2)", 3, LM_ERR_ARITHMETIC},
        {2, "n = 3k + 2: n^3 - n = 27k^3 + 54k^2 + 33k = 3*(9k^3 + 18k^2 + 11k)", 3, LM_ERR_ARITHMETIC},
        {1, "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 3*(9k^3 + 9k^2 + 3k)", 2, LM_ERR_ARITHMETIC},
        {1, "n = 3k + 1: n^3 - n = 3*(9k^3 + 9k^2 + 3k)", 2, LM_ERR_ARITHMETIC},
        /* a case skipped: reported where it was due */
        {1, NULL, 2, LM_ERR_MISSING_CASE},
        {2, NULL, 3, LM_ERR_MISSING_CASE},
        {0, NULL, 1, LM_ERR_MISSING_CASE},
        /* the conclusion */
        {3, "Therefore n^3 - n is divisible by 6 for every integer n.", 4, LM_ERR_CONCLUSION},
        /* wrong problem: other cases, another polynomial, another factor, another conclusion */
        {0, "n = 2k: n^3 - n = 8k^3 - 2k = 2*(4k^3 - k)", 1, LM_ERR_WRONG_PROBLEM},
        {0, "n = 3k: n^3 + 2n = 27k^3 + 6k = 3*(9k^3 + 2k)", 1, LM_ERR_WRONG_PROBLEM},
        {1, "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 1*(27k^3 + 27k^2 + 6k)", 2, LM_ERR_WRONG_PROBLEM},
        {3, "Therefore n^3 + 2n is divisible by 3 for every integer n.", 4, LM_ERR_WRONG_PROBLEM},
        /* not in the language */
        {0, "n = 3k + 0: n^3 - n = 27k^3 - 3k = 3*(9k^3 - k)", 1, LM_ERR_UNPARSEABLE},
        {2, "n = 3k + 3: n^3 - n = 27k^3 + 81k^2 + 78k + 24 = 3*(9k^3 + 27k^2 + 26k + 8)", 3, LM_ERR_UNPARSEABLE},
        {2, d_lines[1], 3, LM_ERR_UNPARSEABLE},
        {1, "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 3(9k^3 + 9k^2 + 2k)", 2, LM_ERR_UNPARSEABLE},
        {1, "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k", 2, LM_ERR_UNPARSEABLE},
        {1, "n = 3k + 1: n^3 - n = 6k + 27k^2 + 27k^3 = 3*(9k^3 + 9k^2 + 2k)", 2, LM_ERR_UNPARSEABLE},
        {1, "n = 3k + 1: -n + n^3 = 27k^3 + 27k^2 + 6k = 3*(9k^3 + 9k^2 + 2k)", 2, LM_ERR_UNPARSEABLE},
        {3, "In every case 3 divides n^3 - n.", 4, LM_ERR_UNPARSEABLE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = edited(d_lines, 4, cases[i].line, cases[i].repl);
        lm_check_result r = judge(DQ, t);
        CHECKF(r.score == 0 && r.step == cases[i].step && !strcmp(r.kind, cases[i].kind),
               "case %zu: got step %d %s (%s), want step %d %s", i, r.step, r.kind, r.message, cases[i].step,
               cases[i].kind);
        free(t);
    }
    /* the expansion left out: 0.5 on that line; a fatal error later still gives 0 */
    s = edited(d_lines, 4, 1, "n = 3k + 1: n^3 - n = 3*(9k^3 + 9k^2 + 2k)");
    EXPECT(DQ, s, 0.5, 2, LM_ERR_OMITTED);
    free(s);
    {
        const char *l[] = {d_lines[0], "n = 3k + 1: n^3 - n = 3*(9k^3 + 9k^2 + 2k)", d_lines[3]};
        s = join(l, 3);
        EXPECT(DQ, s, 0, 3, LM_ERR_MISSING_CASE);
        free(s);
    }
    /* conclusion missing; a line after it */
    s = edited(d_lines, 4, 3, NULL);
    EXPECT(DQ, s, 0, 0, LM_ERR_MISSING_CONCLUSION);
    free(s);
    {
        const char *l[] = {d_lines[0], d_lines[1], d_lines[2], d_lines[3], d_lines[2]};
        s = join(l, 5);
        EXPECT(DQ, s, 0, 5, LM_ERR_UNPARSEABLE);
        free(s);
    }
    /* a false claim: a remainder where the coefficient is not divisible */
    EXPECT("Prove that n^2 + n + 1 is divisible by 2 for every integer n.",
           "n = 2k: n^2 + n + 1 = 4k^2 + 2k + 1 = 2*(2k^2 + k)\n", 0, 1, LM_ERR_ARITHMETIC);
    /* overflowing numbers in a step are unparseable */
    s = edited(d_lines, 4, 1, "n = 3k + 1: n^3 - n = 27k^3 + 27k^2 + 6k = 3*(4611686018427387904k^3 + 9k^2 + 2k)");
    EXPECT(DQ, s, 0, 2, LM_ERR_UNPARSEABLE);
    free(s);
}

TEST(divcases_bad_questions) {
    const char *bad[] = {
        "Prove that n^3 - n is divisible by 1 for every integer n.",
        "Prove that n^3 - n is divisible by 13 for every integer n.",
        "Prove that 6 is divisible by 3 for every integer n.",
        "Prove that n^9 - n is divisible by 3 for every integer n.",
        "Prove that n^3 - n is divisible by 3.",
        "Prove that -n + n^3 is divisible by 3 for every integer n.",
        "Prove that x^3 - x is divisible by 3 for every integer n.",
        "Prove that 9223372036854775807n^8 is divisible by 12 for every integer n.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lm_check_result r;
        lm_error err = {{0}};
        CHECKF(lm_domain_divcases.check(bad[i], "x", &r, &err) == -1 && err.msg[0], "%s", bad[i]);
        CHECK(!strchr(err.msg, '\n'));
    }
    lm_error err = {{0}};
    lm_text out = {0};
    lm_corruption c;
    CHECK(lm_domain_divcases.corrupt(DQ, d_lines[0], 1, &out, &c, &err) == -1);
    lm_text_free(&out);
}

TEST(divcases_fuzz) {
    fuzz(&lm_domain_divcases, "0123456789nk^*=+-():. \nTherefore is divisible by for every integer");
}

/* The verifier's target text for a corrupted proof names the step and kind. */
TEST(verification_text_of_corruption) {
    lm_text q = {0}, p = {0}, bad = {0}, v = {0};
    lm_error err = {{0}};
    lm_corruption c;
    lm_check_result r;
    for (uint64_t cs = 0; cs < 20; cs++) {
        lm_domain_divcases.generate(5, 2, &q, &p, &err);
        lm_domain_divcases.corrupt(q.data, p.data, cs, &bad, &c, &err);
        lm_task_check(q.data, bad.data, &r, &err);
        const char *sol;
        size_t sl;
        lm_task_solution_part(bad.data, &sol, &sl);
        char *solution = strndup(sol, sl);
        lm_task_verification_text(solution, &r, &v);
        free(solution);
        char want[64];
        if (c.step > 0) snprintf(want, sizeof want, "Step %d (%s): ", c.step, c.kind);
        else snprintf(want, sizeof want, "(%s): ", c.kind);
        CHECKF(strstr(v.data, want) != NULL, "%s", v.data);
        /* the lines before the failing one are judged correct, none after it is listed */
        if (c.step > 0) {
            snprintf(want, sizeof want, "Step %d", c.step + 1);
            CHECK(strstr(v.data, want) == NULL);
            snprintf(want, sizeof want, "Step %d checks.", c.step - 1);
            CHECK(c.step == 1 || strstr(v.data, want) != NULL);
        }
        CHECK(strstr(v.data, c.label == 0.5 ? "\\boxed{0.5}" : "\\boxed{0}") != NULL);
        lm_text_free(&q);
        lm_text_free(&p);
        lm_text_free(&bad);
        lm_text_free(&v);
    }
}

int main(void) {
    RUN(scanner_tokens);
    RUN(lines_skip_blank);
    RUN(intpoly_normal_form);
    RUN(modpow_family);
    RUN(modpow_hand_written);
    RUN(modpow_bad_questions);
    RUN(modpow_fuzz);
    RUN(poly_family);
    RUN(poly_hand_written);
    RUN(poly_bad_questions);
    RUN(poly_fuzz);
    RUN(divcases_family);
    RUN(divcases_hand_written);
    RUN(divcases_bad_questions);
    RUN(divcases_fuzz);
    RUN(verification_text_of_corruption);
    return test_report("test_tasks_b");
}
