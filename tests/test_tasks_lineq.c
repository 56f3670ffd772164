/* test_tasks_lineq.c — the "lineq" domain (src/tasks/lineq.c): references
 * score 1, corruptions score their label, hand-written flawed proofs of every
 * kind, bad questions, wrong problems, determinism, recognition, fuzzing. */
#include "test.h"
#include "tasks_harness.h"

extern const lm_task_domain lm_domain_lineq;

static const char *Q = "Find all real numbers x such that 5x + 3 = 2x - 9, and prove that there are no others.";
#define E "Equation: 5x + 3 = 2x - 9\n"
#define S1 "Subtract 2x from both sides: 3x + 3 = -9\n"
#define S2 "Subtract 3 from both sides: 3x = -12\n"
#define S3 "Divide both sides by 3: x = -4\n"
#define CK "Check: 5*(-4) + 3 = -17 and 2*(-4) - 9 = -17\n"
#define CL "Therefore the only solution is x = -4.\n"

TEST(reference_of_the_example) {
    EXPECT(Q, "## Solution\n" E S1 S2 S3 CK CL "\n## Self Evaluation\n\\boxed{1}", 1, "", 0);
    /* another order of the same operations, and a pointless but true one */
    EXPECT(Q, E "Subtract 3 from both sides: 5x = 2x - 12\nSubtract 2x from both sides: 3x = -12\n" S3 CK CL, 1, "", 0);
    EXPECT(Q, E S1 S2 "Add 0 to both sides: 3x = -12\n" S3 CK CL, 1, "", 0);
    /* x on the left only, coefficient 1 and -1, integers */
    EXPECT("Find all real numbers x such that 3x + 5 = 17, and prove that there are no others.",
           "Equation: 3x + 5 = 17\nSubtract 5 from both sides: 3x = 12\nDivide both sides by 3: x = 4\n"
           "Check: 3*4 + 5 = 17\nTherefore the only solution is x = 4.\n", 1, "", 0);
    EXPECT("Find all integers x such that -x + 7 = x + 1, and prove that there are no others.",
           "Equation: -x + 7 = x + 1\nSubtract x from both sides: -2x + 7 = 1\nSubtract 7 from both sides: -2x = -6\n"
           "Divide both sides by -2: x = 3\nCheck: -3 + 7 = 4 and 3 + 1 = 4\nTherefore the only solution is x = 3.\n",
           1, "", 0);
    EXPECT("Find all integers x such that x - 2 = -3x + 6, and prove that there are no others.",
           "Equation: x - 2 = -3x + 6\nAdd 3x to both sides: 4x - 2 = 6\nAdd 2 to both sides: 4x = 8\n"
           "Divide both sides by 4: x = 2\nCheck: 2 - 2 = 0 and -3*2 + 6 = 0\nTherefore the only solution is x = 2.\n",
           1, "", 0);
    EXPECT("Find all integers x such that x + 2 = 0, and prove that there are no others.",
           "Equation: x + 2 = 0\nSubtract 2 from both sides: x = -2\nCheck: (-2) + 2 = 0\n"
           "Therefore the only solution is x = -2.\n", 1, "", 0);
}

TEST(white_space_and_strictness) {
    EXPECT(Q, "  Equation:5x+3=2x-9\r\n\n Subtract 2x from both sides :3x + 3 = -9\n\tSubtract 3 from both sides: 3 x = -12\n"
              "Divide both sides by 3 : x=-4\nCheck: 5 * (-4) + 3 = -17  and 2*(-4) - 9 = -17\nTherefore the only solution "
              "is x = -4 .\n", 1, "", 0);
    EXPECT(Q, E "Subtract 2x from both sides: 3x + 3 = -9 + 0\n" S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E "Subtract 2x from both sides: 3x + 3 = -9.\n" S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E S1 S2 "Divide both sides by 3: 1x = -4\n" CK CL, 0, LM_ERR_UNPARSEABLE, 4);
    EXPECT(Q, E "Subtract -2x from both sides: 7x + 3 = -9\n" S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E "subtract 2x from both sides: 3x + 3 = -9\n" S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E S1 S2 S3 "Check: 5*-4 + 3 = -17 and 2*(-4) - 9 = -17\n" CL, 0, LM_ERR_UNPARSEABLE, 5);
    EXPECT(Q, E S1 S2 S3 "Check: 5*(-4) + 3 = -17\n" CL, 0, LM_ERR_UNPARSEABLE, 5); /* a side left out */
    EXPECT(Q, E "Subtract 99999999999999999999x from both sides: 3x + 3 = -9\n" S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E "Subtract 9223372036854775807 from both sides: 5x - 9223372036854775804 = 2x - 9223372036854775816\n",
           0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, S1 S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 1); /* no Equation line */
    EXPECT(Q, E E S1 S2 S3 CK CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, E S1 S2 S3 CK S2 CL, 0, LM_ERR_UNPARSEABLE, 6);
}

TEST(arithmetic_slips) {
    EXPECT(Q, E "Subtract 2x from both sides: 3x + 3 = -8\n" S2 S3 CK CL, 0, LM_ERR_ARITHMETIC, 2);
    EXPECT(Q, E "Subtract 2x from both sides: 7x + 3 = -9\n" S2 S3 CK CL, 0, LM_ERR_ARITHMETIC, 2);
    EXPECT(Q, E S1 "Subtract 3 from both sides: 3x = -6\nDivide both sides by 3: x = -2\n"
              "Check: 5*(-2) + 3 = -7 and 2*(-2) - 9 = -13\nTherefore the only solution is x = -2.\n",
           0, LM_ERR_ARITHMETIC, 3);
    EXPECT(Q, E S1 S2 "Divide both sides by 3: x = -5\n" CK CL, 0, LM_ERR_ARITHMETIC, 4);
    EXPECT(Q, E S1 S2 "Divide both sides by 0: x = -4\n" CK CL, 0, LM_ERR_ARITHMETIC, 4);
    EXPECT(Q, E S1 S2 "Divide both sides by 2: x = -6\n" CK CL, 0, LM_ERR_ARITHMETIC, 4); /* 3 is not divisible by 2 */
    EXPECT(Q, E S1 S2 S3 "Check: 5*(-4) + 3 = -18 and 2*(-4) - 9 = -17\n" CL, 0, LM_ERR_ARITHMETIC, 5);
    EXPECT(Q, E S1 S2 S3 "Check: 5*(-5) + 3 = -22 and 2*(-5) - 9 = -19\n" CL, 0, LM_ERR_ARITHMETIC, 5);
}

TEST(wrong_problem) {
    EXPECT(Q, "Equation: 5x + 3 = 2x - 6\nSubtract 2x from both sides: 3x + 3 = -6\nSubtract 3 from both sides: 3x = -9\n"
              "Divide both sides by 3: x = -3\nCheck: 5*(-3) + 3 = -12 and 2*(-3) - 6 = -12\n"
              "Therefore the only solution is x = -3.\n", 0, LM_ERR_WRONG_PROBLEM, 1);
    EXPECT(Q, E S1 S2 S3 "Check: 5*(-4) + 4 = -16 and 2*(-4) - 9 = -17\n" CL, 0, LM_ERR_WRONG_PROBLEM, 5);
    lm_text q1 = {0}, p1 = {0}, q2 = {0}, p2 = {0};
    lm_error err;
    CHECK(!lm_domain_lineq.generate(7, 3, &q1, &p1, &err) && !lm_domain_lineq.generate(8, 3, &q2, &p2, &err));
    lm_check_result r;
    CHECK(!lm_task_check(q1.data, p2.data, &r, &err) && r.score == 0 && !strcmp(r.kind, LM_ERR_WRONG_PROBLEM) && r.step == 1);
    lm_text_free(&q1);
    lm_text_free(&p1);
    lm_text_free(&q2);
    lm_text_free(&p2);
}

TEST(conclusions_circular_omitted) {
    EXPECT(Q, E S1 S2 S3 CK "Therefore the only solution is x = 4.\n", 0, LM_ERR_CONCLUSION, 6);
    EXPECT(Q, E S1 S2 S3 CK, 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, "", 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, E S1 S2 S3 CK CL CL, 0, LM_ERR_UNPARSEABLE, 7);
    EXPECT(Q, E "x = -4\n" CK CL, 0, LM_ERR_CIRCULAR, 2);       /* guess and check */
    EXPECT(Q, CL E S1 S2 S3 CK CL, 0, LM_ERR_CIRCULAR, 1);
    EXPECT(Q, E S1 CL S2 S3 CK CL, 0, LM_ERR_CIRCULAR, 3);
    EXPECT(Q, E S1 CK S2 S3 CL, 0, LM_ERR_CIRCULAR, 3);         /* a check before x is known */
    EXPECT(Q, E S1 S2 S3 CL, 0.5, LM_ERR_OMITTED, 0);
    EXPECT(Q, E S1 S2 S3 "Therefore the only solution is x = -3.\n", 0, LM_ERR_CONCLUSION, 5);
    EXPECT(Q, E S1 S2 S3 "x = -4\n" CK CL, 0, LM_ERR_UNPARSEABLE, 5);
}

TEST(bad_questions) {
    BAD_QUESTION("Find all real numbers x such that 2x + 1 = 2x + 3, and prove that there are no others.", "cancel");
    BAD_QUESTION("Find all real numbers x such that 2x + 1 = 4, and prove that there are no others.", "not an integer");
    BAD_QUESTION("Find all real numbers x such that 2x + 1 = 4", "expected 'Find all real numbers x");
    BAD_QUESTION("Find all real numbers x such that 1x + 1 = 4, and prove that there are no others.", "expected");
    BAD_QUESTION("Find all real numbers x such that 2x + 0 = 4, and prove that there are no others.", "expected");
    BAD_QUESTION("Find all real numbers x such that 2x = 4 + x, and prove that there are no others.", "expected");
    BAD_QUESTION("Find all real numbers x such that 99999999999999999999x = 1, and prove that there are no others.",
                 "out of range");
    BAD_QUESTION("Find all real numbers x such that -9223372036854775807x = 9223372036854775807x, and prove that there "
                 "are no others.", "out of range");
    BAD_QUESTION("Find all real numbers y such that 2y = 4, and prove that there are no others.", "any domain");
}

TEST(recognition) {
    CHECK(lm_domain_lineq.recognizes(Q));
    CHECK(lm_domain_lineq.recognizes("Find all integers x such that x = 1, and prove that there are no others."));
    static const char *others[] = {
        "Prove that 4736 + 5891 = 10627.",          "Prove that gcd(84, 36) = 12.",
        "Prove that 3^100 = 4 (mod 7).",            "Prove that (x + 1)^2 = x^2 + 2x + 1.",
        "Prove that n^3 - n is divisible by 6 for every integer n.",
        "Find all primes p such that p + 2 is prime.",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        CHECKF(!lm_domain_lineq.recognizes(others[i]), "%s", others[i]);
}

TEST(references_score_one) { th_references(&lm_domain_lineq, 600, 300); }

TEST(corruptions_score_their_label) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                        LM_ERR_CIRCULAR, LM_ERR_OMITTED, LM_ERR_WRONG_PROBLEM};
    th_corruptions(&lm_domain_lineq, 400, kinds, 6);
    lm_text out = {0};
    lm_corruption c;
    lm_error err = {{0}};
    CHECK(lm_domain_lineq.corrupt(Q, E S1 S2 S3 CL, 1, &out, &c, &err) == -1 && strstr(err.msg, "does not check"));
    /* an equation already solved: no operation to replace, still a valid corruption */
    const char *solved = "Find all integers x such that x = 5, and prove that there are no others.";
    const char *proof = "Equation: x = 5\nCheck: 5 = 5\nTherefore the only solution is x = 5.\n";
    EXPECT(solved, proof, 1, "", 0);
    for (uint64_t s = 0; s < 50; s++) {
        out.len = 0;
        CHECK(!lm_domain_lineq.corrupt(solved, proof, s, &out, &c, &err));
    }
    /* the largest coefficients a question may have */
    const char *big = "Find all integers x such that 1000000000000x - 1000000000000 = -999999999999x + 999999999999, "
                      "and prove that there are no others.";
    const char *bigp = "Equation: 1000000000000x - 1000000000000 = -999999999999x + 999999999999\n"
                       "Add 999999999999x to both sides: 1999999999999x - 1000000000000 = 999999999999\n"
                       "Add 1000000000000 to both sides: 1999999999999x = 1999999999999\n"
                       "Divide both sides by 1999999999999: x = 1\n"
                       "Check: 1000000000000*1 - 1000000000000 = 0 and -999999999999*1 + 999999999999 = 0\n"
                       "Therefore the only solution is x = 1.\n";
    EXPECT(big, bigp, 1, "", 0);
    for (uint64_t s = 0; s < 60; s++) {
        out.len = 0;
        int rc = lm_domain_lineq.corrupt(big, bigp, s, &out, &c, &err);
        CHECKF(rc == 0, "seed %llu: %s", (unsigned long long)s, err.msg);
    }
    BAD_QUESTION("Find all integers x such that 1000000000001x = 0, and prove that there are no others.",
                 "at most 10^12");
    lm_text_free(&out);
}

TEST(determinism) { th_determinism(&lm_domain_lineq); }

TEST(fuzz) { th_fuzz(&lm_domain_lineq, 3000); }

int main(void) {
    RUN(reference_of_the_example);
    RUN(white_space_and_strictness);
    RUN(arithmetic_slips);
    RUN(wrong_problem);
    RUN(conclusions_circular_omitted);
    RUN(bad_questions);
    RUN(recognition);
    RUN(references_score_one);
    RUN(corruptions_score_their_label);
    RUN(determinism);
    RUN(fuzz);
    return test_report("test_tasks_lineq");
}
