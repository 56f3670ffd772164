/* test_tasks_add.c — the "add" domain (src/tasks/add.c): references score 1,
 * corruptions score their label, hand-written flawed proofs of every kind,
 * bad questions, wrong problems, determinism, recognition, fuzzing. */
#include "test.h"
#include "tasks_harness.h"

extern const lm_task_domain lm_domain_add;

static const char *Q = "Prove that 4736 + 5891 = 10627.";
#define C1 "Column 1: 6 + 1 + 0 = 7, write 7, carry 0\n"
#define C2 "Column 2: 3 + 9 + 0 = 12, write 2, carry 1\n"
#define C3 "Column 3: 7 + 8 + 1 = 16, write 6, carry 1\n"
#define C4 "Column 4: 4 + 5 + 1 = 10, write 0, carry 1\n"
#define RD "Final carry 1, so the digits read 10627\n"
#define CL "Therefore 4736 + 5891 = 10627.\n"

TEST(reference_of_the_example) {
    lm_text q = {0}, p = {0};
    lm_error err;
    /* the documented example is what the checker expects, with and without headings */
    EXPECT(Q, "## Solution\n" C1 C2 C3 C4 RD CL "\n## Self Evaluation\n\\boxed{1}", 1, "", 0);
    EXPECT(Q, C1 C2 C3 C4 RD CL, 1, "", 0);
    CHECK(!lm_domain_add.generate(1, 1, &q, &p, &err));
    CHECK(!strncmp(q.data, "Prove that ", 11));
    CHECK(strstr(p.data, "## Solution\nColumn 1: ") && strstr(p.data, "\\boxed{1}"));
    lm_text_free(&q);
    lm_text_free(&p);
}

TEST(white_space_is_tolerated) {
    EXPECT(Q, "\n\n  Column 1:6+1+0=7,write 7,carry 0\r\n\tColumn  2 :  3 + 9 + 0 = 12 ,  write 2, carry 1  \n\n" C3 C4
              "Final  carry 1 ,so the digits  read 10627\r\n Therefore 4736+5891=10627 . \n",
           1, "", 0);
    EXPECT(Q, C1 C2 C3 C4 "Finalcarry 1, so the digits read 10627\n" CL, 0, LM_ERR_UNPARSEABLE, 5);
    EXPECT(Q, C1 "column 2: 3 + 9 + 0 = 12, write 2, carry 1\n" C3 C4 RD CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, C1 C2 C3 C4 RD "Therefore 4736 + 5891 = 10627\n", 0, LM_ERR_UNPARSEABLE, 6); /* no period */
    EXPECT(Q, "Column 1: 6 + 1 + 0 = 07, write 7, carry 0\n" C2 C3 C4 RD CL, 0, LM_ERR_UNPARSEABLE, 1);
    EXPECT(Q, "Column 1: 6 + 1 + 0 = 99999999999999999999, write 7, carry 0\n" C2 C3 C4 RD CL, 0, LM_ERR_UNPARSEABLE, 1);
    EXPECT(Q, "1. " C1 C2 C3 C4 RD CL, 0, LM_ERR_UNPARSEABLE, 1);
}

TEST(arithmetic_slips) {
    EXPECT(Q, C1 C2 "Column 3: 7 + 8 + 1 = 15, write 5, carry 1\n" C4 RD CL, 0, LM_ERR_ARITHMETIC, 3);
    EXPECT(Q, C1 C2 "Column 3: 7 + 8 + 1 = 16, write 6, carry 0\n" C4 RD CL, 0, LM_ERR_ARITHMETIC, 3);
    EXPECT(Q, C1 C2 "Column 3: 7 + 8 + 1 = 16, write 1, carry 6\n" C4 RD CL, 0, LM_ERR_ARITHMETIC, 3);
    EXPECT(Q, C1 "Column 2: 3 + 9 + 1 = 13, write 3, carry 1\n" C3 C4 RD CL, 0, LM_ERR_ARITHMETIC, 2);
    EXPECT(Q, C1 C2 C3 C4 "Final carry 1, so the digits read 10617\n" CL, 0, LM_ERR_ARITHMETIC, 5);
    EXPECT(Q, C1 C2 C3 C4 "Final carry 0, so the digits read 627\n" CL, 0, LM_ERR_ARITHMETIC, 5);
    EXPECT(Q, C1 C2 C3 C2 C4 RD CL, 0, LM_ERR_ARITHMETIC, 4); /* a column done twice */
    /* the first fault is reported, not a later one */
    EXPECT(Q, C1 "Column 2: 3 + 9 + 0 = 11, write 1, carry 1\n" C3 C4 "Final carry 1, so the digits read 10617\n"
              "Therefore 4736 + 5891 = 10617.\n", 0, LM_ERR_ARITHMETIC, 2);
}

TEST(skipped_columns) {
    EXPECT(Q, C1 C3 C4 RD CL, 0, LM_ERR_MISSING_CASE, 2);
    EXPECT(Q, C1 C2 C3 RD CL, 0, LM_ERR_MISSING_CASE, 4);
    EXPECT(Q, C2 C3 C4 RD CL, 0, LM_ERR_MISSING_CASE, 1);
}

TEST(wrong_problem) {
    /* a correct proof of 4736 + 5892 = 10628 */
    EXPECT(Q, "Column 1: 6 + 2 + 0 = 8, write 8, carry 0\n" C2 C3 C4 "Final carry 1, so the digits read 10628\n"
              "Therefore 4736 + 5892 = 10628.\n", 0, LM_ERR_WRONG_PROBLEM, 1);
    /* three addends in a two-addend question; a fifth column */
    EXPECT(Q, "Column 1: 6 + 1 + 0 + 0 = 7, write 7, carry 0\n" C2 C3 C4 RD CL, 0, LM_ERR_WRONG_PROBLEM, 1);
    EXPECT(Q, C1 C2 C3 C4 "Column 5: 0 + 0 + 1 = 1, write 1, carry 0\n" RD CL, 0, LM_ERR_WRONG_PROBLEM, 5);
    /* the generator's proof of another problem */
    lm_text q1 = {0}, p1 = {0}, q2 = {0}, p2 = {0};
    lm_error err;
    CHECK(!lm_domain_add.generate(7, 3, &q1, &p1, &err) && !lm_domain_add.generate(8, 3, &q2, &p2, &err));
    lm_check_result r;
    CHECK(!lm_task_check(q1.data, p2.data, &r, &err) && r.score == 0 && !strcmp(r.kind, LM_ERR_WRONG_PROBLEM));
    lm_text_free(&q1);
    lm_text_free(&p1);
    lm_text_free(&q2);
    lm_text_free(&p2);
}

TEST(conclusions) {
    EXPECT(Q, C1 C2 C3 C4 RD "Therefore 4736 + 5891 = 10637.\n", 0, LM_ERR_CONCLUSION, 6);
    EXPECT(Q, C1 C2 C3 C4 RD "Therefore 4736 + 5890 = 10627.\n", 0, LM_ERR_CONCLUSION, 6);
    EXPECT(Q, C1 C2 C3 C4 RD, 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, C1 C2, 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, "", 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, "## Solution\n\n## Self Evaluation\n\\boxed{1}", 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, C1 C2 C3 C4 RD CL "Column 1: 6 + 1 + 0 = 7, write 7, carry 0\n", 0, LM_ERR_UNPARSEABLE, 7);
    EXPECT(Q, C1 C2 C3 C4 RD CL CL, 0, LM_ERR_UNPARSEABLE, 7);
}

TEST(circular_and_omitted) {
    EXPECT(Q, CL C1 C2 C3 C4 RD CL, 0, LM_ERR_CIRCULAR, 1);
    EXPECT(Q, C1 C2 CL C3 C4 RD CL, 0, LM_ERR_CIRCULAR, 3);
    EXPECT(Q, C1 "Therefore 4736 + 5891 = 10600.\n" C2 C3 C4 RD CL, 0, LM_ERR_CONCLUSION, 2);
    EXPECT(Q, C1 C2 C3 C4 CL, 0.5, LM_ERR_OMITTED, 0);
    EXPECT(Q, C1 C2 C3 C4 "Therefore 4736 + 5891 = 10628.\n", 0, LM_ERR_CONCLUSION, 5); /* fatal beats minor */
    EXPECT(Q, C1 C2 C3 "Column 4: 4 + 5 + 1 = 11, write 1, carry 1\n" CL, 0, LM_ERR_ARITHMETIC, 4);
}

TEST(bad_questions) {
    BAD_QUESTION("Prove that 2 + 2 = 5.", "the claim is false");
    BAD_QUESTION("Prove that 2 + 2 = 4", "expected 'Prove that A + B");
    BAD_QUESTION("Prove that 02 + 2 = 4.", "expected");
    BAD_QUESTION("Prove that 2 +  = 4.", "expected");
    BAD_QUESTION("Prove that 99999999999999999999 + 1 = 5.", "out of range");
    BAD_QUESTION("Prove that 9223372036854775807 + 1 = 1.", "out of range");
    BAD_QUESTION("Prove that 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 = 10.", "more than 9 addends");
    BAD_QUESTION("Prove that 5 = 5.", "any domain");
    BAD_QUESTION("", "any domain");
    /* the largest sums still work */
    EXPECT("Prove that 9223372036854775806 + 1 = 9223372036854775807.",
           "Column 1: 6 + 1 + 0 = 7, write 7, carry 0\n", 0, LM_ERR_MISSING_CONCLUSION, 0);
}

/* The column proof of a sum, written here independently of add.c. */
static void column_proof(const int64_t *t, int n, lm_text *q, lm_text *p) {
    int64_t sum = 0;
    int cols = 0;
    char terms[256] = "";
    for (int i = 0; i < n; i++) {
        sum += t[i];
        char d[24];
        int len = snprintf(d, sizeof d, "%lld", (long long)t[i]);
        if (len > cols) cols = len;
        snprintf(terms + strlen(terms), sizeof terms - strlen(terms), "%s%s", i ? " + " : "", d);
    }
    lm_text_appendf(q, "Prove that %s = %lld.", terms, (long long)sum);
    int carry = 0;
    for (int k = 1; k <= cols; k++) {
        int s = carry;
        lm_text_appendf(p, "Column %d: ", k);
        for (int i = 0; i < n; i++) {
            int64_t v = t[i];
            for (int j = 1; j < k; j++) v /= 10;
            lm_text_appendf(p, "%d + ", (int)(v % 10));
            s += (int)(v % 10);
        }
        lm_text_appendf(p, "%d = %d, write %d, carry %d\n", carry, s, s % 10, s / 10);
        carry = s / 10;
    }
    lm_text_appendf(p, "Final carry %d, so the digits read %lld\nTherefore %s = %lld.\n", carry, (long long)sum, terms,
                    (long long)sum);
}

TEST(largest_numbers) {
    /* 19 columns: the written digits reach 10^18, the place value 10^19 */
    static const int64_t cases[][3] = {{4611686018427387903, 4611686018427387904, 0},
                                       {999999999999999999, 1, 0},
                                       {3074457345618258602, 3074457345618258602, 3074457345618258603}};
    static const int counts[] = {2, 2, 3};
    for (int c = 0; c < 3; c++) {
        lm_text q = {0}, p = {0}, out = {0};
        column_proof(cases[c], counts[c], &q, &p);
        EXPECT(q.data, p.data, 1, "", 0);
        for (uint64_t seed = 0; seed < 60; seed++) {
            lm_corruption k;
            lm_error err = {{0}};
            out.len = 0;
            int rc = lm_domain_add.corrupt(q.data, p.data, seed, &out, &k, &err);
            CHECKF(rc == 0, "%s seed %llu: %s", q.data, (unsigned long long)seed, err.msg);
        }
        lm_text_free(&q);
        lm_text_free(&p);
        lm_text_free(&out);
    }
}

TEST(recognition) {
    CHECK(lm_domain_add.recognizes(Q));
    CHECK(lm_domain_add.recognizes("Prove that 1 + 2 + 3 = 6."));
    static const char *others[] = {
        "Find all real numbers x such that 5x + 3 = 2x - 9, and prove that there are no others.",
        "Prove that gcd(84, 36) = 12.",
        "Prove that 3^100 = 4 (mod 7).",
        "Prove that 2^10 mod 7 = 2.",
        "Prove that (x + 1)^2 = x^2 + 2x + 1.",
        "Prove that n^3 - n is divisible by 6 for every integer n.",
        "Prove that 7 - 2 = 5.",
        "Prove that 5 = 5.",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) CHECKF(!lm_domain_add.recognizes(others[i]), "%s", others[i]);
}

TEST(references_score_one) { th_references(&lm_domain_add, 600, 300); }

TEST(corruptions_score_their_label) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_MISSING_CASE, LM_ERR_CONCLUSION,
                                        LM_ERR_MISSING_CONCLUSION, LM_ERR_CIRCULAR, LM_ERR_OMITTED,
                                        LM_ERR_WRONG_PROBLEM};
    th_corruptions(&lm_domain_add, 400, kinds, 7);
    /* a proof that does not check is not corrupted */
    lm_text out = {0};
    lm_corruption c;
    lm_error err = {{0}};
    CHECK(lm_domain_add.corrupt(Q, C1 C2 C3 C4 CL, 1, &out, &c, &err) == -1 && strstr(err.msg, "does not check"));
    lm_text_free(&out);
}

TEST(determinism) { th_determinism(&lm_domain_add); }

TEST(fuzz) { th_fuzz(&lm_domain_add, 3000); }

int main(void) {
    RUN(reference_of_the_example);
    RUN(white_space_is_tolerated);
    RUN(arithmetic_slips);
    RUN(skipped_columns);
    RUN(wrong_problem);
    RUN(conclusions);
    RUN(circular_and_omitted);
    RUN(bad_questions);
    RUN(largest_numbers);
    RUN(recognition);
    RUN(references_score_one);
    RUN(corruptions_score_their_label);
    RUN(determinism);
    RUN(fuzz);
    return test_report("test_tasks_add");
}
