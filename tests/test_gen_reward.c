/* test_gen_reward.c — the generator's reward R_format · (α R_Y + β R_Z)
 * (prove/gen_reward.h, DeepSeekMath-V2 eq. 5–6) on hand-made answers. */
#include "prove/gen_reward.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

/* An answer in the pipeline's format whose self-evaluation boxes `box`. */
static const char *answer(char *buf, size_t cap, const char *box) {
    snprintf(buf, cap,
             "<think>try 2 + 2</think>## Solution\n2 + 2 = 4\nso the sum is 4\n\n## Self Evaluation\n"
             "Every step checks.\n\\boxed{%s}",
             box);
    return buf;
}

static int near(double a, double b) { return fabs(a - b) < 1e-12; }

TEST(combination_formula) {
    static const char *const boxes[] = {"0", "0.5", "1"};
    static const double vals[] = {0, 0.5, 1}, ys[] = {0, 0.25, 0.5, 2.0 / 3, 1};
    char buf[512];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            lm_gen_reward r;
            double y = ys[j];
            double got = lm_gen_reward_of(answer(buf, sizeof buf, boxes[i]), y, y, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r);
            double want = 0.76 * y + 0.24 * (1 - fabs(vals[i] - y));
            CHECK(r.why == LM_GFMT_OK && r.format == 1);
            CHECK(r.self_score == vals[i]);
            CHECK(near(r.r_z, 1 - fabs(vals[i] - y)));
            CHECK(near(got, want) && got == r.reward);
        }
    lm_gen_reward r;
    /* the corners: a right proof judged right earns 1; a wrong proof that
     * says so earns β only; a wrong proof claiming to be right earns 0 */
    CHECK(near(lm_gen_reward_of(answer(buf, sizeof buf, "1"), 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r), 1));
    CHECK(near(lm_gen_reward_of(answer(buf, sizeof buf, "0"), 0, 0, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r), 0.24));
    CHECK(lm_gen_reward_of(answer(buf, sizeof buf, "1"), 0, 0, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r) == 0);
    /* honesty pays: for a proof the verifier scores 0.5, saying 0.5 beats 1 */
    double honest = lm_gen_reward_of(answer(buf, sizeof buf, "0.5"), 0.5, 0.5, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r);
    double boast = lm_gen_reward_of(answer(buf, sizeof buf, "1"), 0.5, 0.5, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r);
    CHECK(near(honest, 0.38 + 0.24) && near(boast, 0.38 + 0.12) && honest > boast);
    /* R_meta scales R_Z only; s and R_Y are separate arguments */
    CHECK(near(lm_gen_reward_of(answer(buf, sizeof buf, "1"), 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 0, &r), 0.76));
    CHECK(near(lm_gen_reward_of(answer(buf, sizeof buf, "1"), 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 0.5, &r), 0.88));
    CHECK(near(lm_gen_reward_of(answer(buf, sizeof buf, "1"), 0.2, 0.5, 0.5, 0.5, 1, &r), 0.1 + 0.25));
    /* score spellings the pipeline reads */
    CHECK(lm_gen_reward_of(answer(buf, sizeof buf, " 1.0 "), 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r) > 0.99 &&
          r.self_score == 1);
    CHECK(lm_gen_reward_of(answer(buf, sizeof buf, "0.50"), 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r) > 0 &&
          r.self_score == 0.5);
}

TEST(format_failures) {
    lm_gen_reward r;
    static const struct {
        const char *text;
        lm_gen_format why;
    } cases[] = {
        {"2 + 2 = 4\n\\boxed{1}", LM_GFMT_NO_SPLIT},
        {"## Solution\n2 + 2 = 4\n\\boxed{1}", LM_GFMT_NO_SPLIT},
        {"## Self Evaluation\nfine \\boxed{1}\n## Solution\n2 + 2 = 4", LM_GFMT_NO_SPLIT},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine", LM_GFMT_NO_SELF_SCORE},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine \\boxed{ }", LM_GFMT_NO_SELF_SCORE},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine \\boxed{1", LM_GFMT_NO_SELF_SCORE},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine \\boxed{0.7}", LM_GFMT_BAD_SELF_SCORE},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine \\boxed{yes}", LM_GFMT_BAD_SELF_SCORE},
        {"## Solution\n2 + 2 = 4\n## Self Evaluation\nfine \\boxed{1/2}", LM_GFMT_BAD_SELF_SCORE},
        {"", LM_GFMT_NO_SPLIT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* whatever the verifier says, an answer out of format earns nothing */
        CHECK(lm_gen_reward_of(cases[i].text, 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 1, &r) == 0);
        CHECK(r.why == cases[i].why && r.format == 0 && r.self_score == -1 && r.r_z == 0 && r.r_y == 1);
    }
    /* a box in the solution does not count as the self-score */
    CHECK(lm_gen_reward_of("## Solution\n\\boxed{1}\n## Self Evaluation\nfine", 1, 1, LM_GEN_ALPHA, LM_GEN_BETA, 1,
                           &r) == 0 &&
          r.why == LM_GFMT_NO_SELF_SCORE);
    /* only the text after the thinking is read */
    CHECK(lm_gen_reward_of("## Solution\nx\n## Self Evaluation\n\\boxed{1}</think>no answer", 1, 1, LM_GEN_ALPHA,
                           LM_GEN_BETA, 1, &r) == 0 &&
          r.why == LM_GFMT_NO_SPLIT);
    CHECK(!strcmp(lm_gen_format_name(LM_GFMT_BAD_SELF_SCORE), "bad_self_score"));
    CHECK(!strcmp(lm_gen_format_name(LM_GFMT_OK), "ok"));
}

TEST(solution_part) {
    char buf[512];
    double s;
    const char *sol;
    size_t n;
    CHECK(lm_gen_answer_read(answer(buf, sizeof buf, "0.5"), &s, &sol, &n) == LM_GFMT_OK && s == 0.5);
    CHECK(n == strlen("2 + 2 = 4\nso the sum is 4") && !memcmp(sol, "2 + 2 = 4\nso the sum is 4", n));
    CHECK(lm_gen_answer_read("no headings", &s, &sol, &n) == LM_GFMT_NO_SPLIT && !sol && !n && s == -1);
    /* a bad self-score still yields the solution (the caller decides) */
    CHECK(lm_gen_answer_read(answer(buf, sizeof buf, "2"), &s, &sol, &n) == LM_GFMT_BAD_SELF_SCORE && sol && s == -1);
}

int main(void) {
    RUN(combination_formula);
    RUN(format_failures);
    RUN(solution_part);
    return test_report("test_gen_reward");
}
