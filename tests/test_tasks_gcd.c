/* test_tasks_gcd.c — the "gcd" domain (src/tasks/gcd.c): references score
 * 1, corruptions score their label, hand-written flawed proofs of every kind,
 * bad questions, wrong problems, determinism, recognition, fuzzing. */
#include "test.h"
#include "tasks_harness.h"

extern const lm_task_domain lm_domain_gcd;

static const char *Q = "Prove that gcd(1071, 462) = 21.";
#define D1 "1071 = 2*462 + 147\n"
#define K1 "147 = 1*1071 + (-2)*462\n"
#define D2 "462 = 3*147 + 21\n"
#define K2 "21 = (-3)*1071 + 7*462\n"
#define D3 "147 = 7*21 + 0\n"
#define CL "Therefore gcd(1071, 462) = 21.\n"

TEST(reference_of_the_example) {
    EXPECT(Q, "## Solution\n" D1 K1 D2 K2 D3 CL "\n## Self Evaluation\n\\boxed{1}", 1, "", 0);
    /* any true combination is a certificate */
    EXPECT(Q, D1 K1 D2 "21 = 19*1071 + (-44)*462\n" D3 CL, 1, "", 0);
    EXPECT("Prove that gcd(84, 12) = 12.", "84 = 7*12 + 0\nTherefore gcd(84, 12) = 12.\n", 1, "", 0);
    EXPECT("Prove that gcd(36, 84) = 12.",
           "36 = 0*84 + 36\n36 = 1*36 + 0*84\n84 = 2*36 + 12\n12 = (-2)*36 + 1*84\n36 = 3*12 + 0\n"
           "Therefore gcd(36, 84) = 12.\n", 1, "", 0);
    EXPECT("Prove that gcd(5, 3) = 1.", "5 = 1*3 + 2\n2 = 1*5 + (-1)*3\n3 = 1*2 + 1\n1 = (-1)*5 + 2*3\n2 = 2*1 + 0\n"
                                        "Therefore gcd(5, 3) = 1.\n", 1, "", 0);
}

TEST(white_space_and_strictness) {
    EXPECT(Q, " 1071=2*462+147\r\n\n147 = 1 * 1071 + ( -2 ) * 462\n  462 = 3*147 + 21 \n21=(-3)*1071+7*462\n147 = 7*21 + 0\n"
              "Therefore gcd( 1071 , 462 ) = 21 .\n", 1, "", 0);
    EXPECT(Q, D1 "147 = 1*1071 - 2*462\n" D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, D1 "147 = 1*1071 + -2*462\n" D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, D1 K1 D2 K2 D3 "Therefore gcd(1071, 462) = 21\n", 0, LM_ERR_UNPARSEABLE, 6);
    EXPECT(Q, D1 K1 D2 K2 D3 "So gcd(1071, 462) = 21.\n", 0, LM_ERR_UNPARSEABLE, 6);
    EXPECT(Q, "1071 = 2*462 + 147, so 147 = 1*1071 + (-2)*462\n" D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 1);
    EXPECT(Q, D1 "147 = 99999999999999999999*1071 + (-2)*462\n" D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 2);
    EXPECT(Q, K1 D1 D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 1);         /* a combination before any division */
    EXPECT(Q, D1 K1 K1 D2 K2 D3 CL, 0, LM_ERR_UNPARSEABLE, 3);      /* twice */
    EXPECT(Q, D1 K1 D2 K2 D3 "21 = 3*7 + 0\n" CL, 0, LM_ERR_UNPARSEABLE, 6);
}

TEST(arithmetic_slips) {
    EXPECT(Q, "1071 = 2*462 + 148\n" K1 D2 K2 D3 CL, 0, LM_ERR_ARITHMETIC, 1);
    EXPECT(Q, D1 K1 "462 = 2*147 + 168\n" K2 D3 CL, 0, LM_ERR_ARITHMETIC, 3);   /* remainder too large */
    EXPECT(Q, D1 "147 = 1*1071 + (-3)*462\n" D2 K2 D3 CL, 0, LM_ERR_ARITHMETIC, 2);
    EXPECT(Q, D1 "148 = 1*1071 + (-2)*462\n" D2 K2 D3 CL, 0, LM_ERR_ARITHMETIC, 2);
    EXPECT(Q, D1 K1 "462 = 3*148 + 18\n" K2 D3 CL, 0, LM_ERR_ARITHMETIC, 3);   /* not the next division */
    EXPECT(Q, D1 K1 D2 "21 = (-3)*1071 + 8*462\n" D3 CL, 0, LM_ERR_ARITHMETIC, 4);
    /* the first fault, not a later one */
    EXPECT(Q, D1 K1 "462 = 3*147 + 22\n22 = (-3)*1071 + 7*462\n147 = 6*22 + 15\n", 0, LM_ERR_ARITHMETIC, 3);
}

TEST(wrong_problem) {
    EXPECT(Q, "1072 = 2*462 + 148\n" K1 D2 K2 D3 CL, 0, LM_ERR_WRONG_PROBLEM, 1);
    EXPECT(Q, "1071 = 462*2 + 147\n" K1 D2 K2 D3 CL, 0, LM_ERR_WRONG_PROBLEM, 1); /* the quotient comes first */
    EXPECT(Q, D1 "147 = 1*1071 + (-2)*463\n" D2 K2 D3 CL, 0, LM_ERR_WRONG_PROBLEM, 2);
    EXPECT(Q, D1 "147 = (-2)*462 + 1*1071\n" D2 K2 D3 CL, 0, LM_ERR_WRONG_PROBLEM, 2);
    lm_text q1 = {0}, p1 = {0}, q2 = {0}, p2 = {0};
    lm_error err;
    CHECK(!lm_domain_gcd.generate(7, 3, &q1, &p1, &err) && !lm_domain_gcd.generate(8, 3, &q2, &p2, &err));
    lm_check_result r;
    CHECK(!lm_task_check(q1.data, p2.data, &r, &err) && r.score == 0 && !strcmp(r.kind, LM_ERR_WRONG_PROBLEM) && r.step == 1);
    lm_text_free(&q1);
    lm_text_free(&p1);
    lm_text_free(&q2);
    lm_text_free(&p2);
}

TEST(omitted_certificate) {
    EXPECT(Q, D1 K1 D2 D3 CL, 0.5, LM_ERR_OMITTED, 0);
    EXPECT(Q, D1 D2 K2 D3 CL, 0.5, LM_ERR_OMITTED, 0);
    EXPECT(Q, D1 D2 D3 CL, 0.5, LM_ERR_OMITTED, 0); /* Euclid alone */
    EXPECT(Q, D1 D2 "147 = 7*21 + 1\n" CL, 0, LM_ERR_ARITHMETIC, 3);
    EXPECT(Q, D1 D2 D3 "Therefore gcd(1071, 462) = 7.\n", 0, LM_ERR_CONCLUSION, 4);
    lm_check_result r;
    lm_error err;
    CHECK(!lm_task_check(Q, D1 D2 D3 CL, &r, &err) && strstr(r.message, "'147 = s*1071 + t*462'"));
}

TEST(conclusions_and_circular) {
    EXPECT(Q, D1 K1 D2 K2 D3 "Therefore gcd(1071, 462) = 7.\n", 0, LM_ERR_CONCLUSION, 6);
    EXPECT(Q, D1 K1 D2 K2 D3 "Therefore gcd(1071, 461) = 21.\n", 0, LM_ERR_CONCLUSION, 6);
    EXPECT(Q, D1 K1 D2 K2 D3, 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, D1 K1 D2 K2, 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, "", 0, LM_ERR_MISSING_CONCLUSION, 0);
    EXPECT(Q, D1 K1 D2 K2 D3 CL CL, 0, LM_ERR_UNPARSEABLE, 7);
    EXPECT(Q, CL D1 K1 D2 K2 D3 CL, 0, LM_ERR_CIRCULAR, 1);
    EXPECT(Q, D1 K1 D2 K2 CL D3 CL, 0, LM_ERR_CIRCULAR, 5);
}

TEST(bad_questions) {
    BAD_QUESTION("Prove that gcd(84, 36) = 6.", "the claim is false: gcd(84, 36) = 12");
    BAD_QUESTION("Prove that gcd(0, 5) = 5.", "gcd of 0");
    BAD_QUESTION("Prove that gcd(84, 36) = 12", "expected 'Prove that gcd(A, B) = G.'");
    BAD_QUESTION("Prove that gcd(-84, 36) = 12.", "expected");
    BAD_QUESTION("Prove that gcd(84, 36, 12) = 12.", "expected");
    BAD_QUESTION("Prove that gcd(99999999999999999999, 36) = 12.", "out of range");
    BAD_QUESTION("Prove that lcm(84, 36) = 252.", "any domain");
    /* the largest numbers still work */
    EXPECT("Prove that gcd(9223372036854775807, 1) = 1.",
           "9223372036854775807 = 9223372036854775807*1 + 0\nTherefore gcd(9223372036854775807, 1) = 1.\n", 1, "", 0);
    EXPECT("Prove that gcd(9223372036854775807, 1) = 1.", "9223372036854775807 = 9223372036854775807*1 + 1\n", 0,
           LM_ERR_ARITHMETIC, 1);
}

TEST(recognition) {
    CHECK(lm_domain_gcd.recognizes(Q));
    static const char *others[] = {
        "Prove that 4736 + 5891 = 10627.",
        "Find all real numbers x such that 5x + 3 = 2x - 9, and prove that there are no others.",
        "Prove that 3^100 = 4 (mod 7).",
        "Prove that (x + 1)^2 = x^2 + 2x + 1.",
        "Prove that n^3 - n is divisible by 6 for every integer n.",
        "Prove that lcm(84, 36) = 252.",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) CHECKF(!lm_domain_gcd.recognizes(others[i]), "%s", others[i]);
}

TEST(references_score_one) { th_references(&lm_domain_gcd, 600, 300); }

TEST(corruptions_score_their_label) {
    static const char *const kinds[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                        LM_ERR_CIRCULAR, LM_ERR_OMITTED, LM_ERR_WRONG_PROBLEM};
    th_corruptions(&lm_domain_gcd, 400, kinds, 6);
    lm_text out = {0};
    lm_corruption c;
    lm_error err = {{0}};
    CHECK(lm_domain_gcd.corrupt(Q, D1 D2 D3 CL, 1, &out, &c, &err) == -1 && strstr(err.msg, "does not check"));
    /* questions the generator never asks: one division, a < b, the largest numbers */
    static const char *const qs[] = {"Prove that gcd(84, 12) = 12.", "Prove that gcd(36, 84) = 12.",
                                     "Prove that gcd(9223372036854775807, 1) = 1.",
                                     "Prove that gcd(9223372036854775807, 9223372036854775806) = 1."};
    static const char *const ps[] = {
        "84 = 7*12 + 0\nTherefore gcd(84, 12) = 12.\n",
        "36 = 0*84 + 36\n36 = 1*36 + 0*84\n84 = 2*36 + 12\n12 = (-2)*36 + 1*84\n36 = 3*12 + 0\nTherefore gcd(36, 84) = 12.\n",
        "9223372036854775807 = 9223372036854775807*1 + 0\nTherefore gcd(9223372036854775807, 1) = 1.\n",
        "9223372036854775807 = 1*9223372036854775806 + 1\n1 = 1*9223372036854775807 + (-1)*9223372036854775806\n"
        "9223372036854775806 = 9223372036854775806*1 + 0\n"
        "Therefore gcd(9223372036854775807, 9223372036854775806) = 1.\n"};
    for (int i = 0; i < 4; i++) {
        EXPECT(qs[i], ps[i], 1, "", 0);
        for (uint64_t s = 0; s < 40; s++) {
            out.len = 0;
            int rc = lm_domain_gcd.corrupt(qs[i], ps[i], s, &out, &c, &err);
            CHECKF(rc == 0, "%s seed %llu: %s", qs[i], (unsigned long long)s, err.msg);
        }
    }
    lm_text_free(&out);
}

TEST(determinism) { th_determinism(&lm_domain_gcd); }

TEST(fuzz) { th_fuzz(&lm_domain_gcd, 3000); }

int main(void) {
    RUN(reference_of_the_example);
    RUN(white_space_and_strictness);
    RUN(arithmetic_slips);
    RUN(wrong_problem);
    RUN(omitted_certificate);
    RUN(conclusions_and_circular);
    RUN(bad_questions);
    RUN(recognition);
    RUN(references_score_one);
    RUN(corruptions_score_their_label);
    RUN(determinism);
    RUN(fuzz);
    return test_report("test_tasks_gcd");
}
