/* test_reward.c — the verifier's reward R_format · R_score (prove/reward.h). */
#include "prove/reward.h"

#include "core/buf.h"
#include "tasks/tasks.h"
#include "test.h"

/* A verification in the SFT target's format with the given box content. */
static const char *verif(char *buf, size_t cap, const char *box) {
    snprintf(buf, cap,
             "Here is my evaluation of the solution:\nStep 1 checks.\nStep 2 (arithmetic): 2 + 2 = 4, not 5.\n\n"
             "Based on my evaluation, the final overall score should be:\n\\boxed{%s}",
             box);
    return buf;
}

static double R(const char *text, double label, lm_verify_reward *r) {
    return lm_verify_reward_of(text, strlen(text), label, r);
}

TEST(every_score_pair) {
    static const char *const boxes[] = {"0", "0.5", "1"};
    static const double vals[] = {0, 0.5, 1};
    char buf[512];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            lm_verify_reward r;
            double got = R(verif(buf, sizeof buf, boxes[i]), vals[j], &r);
            double want = 1 - fabs(vals[i] - vals[j]);
            CHECK(r.why == LM_VFMT_OK);
            CHECK(r.format == 1);
            CHECK(r.predicted == vals[i]);
            CHECK(r.score == want);
            CHECK(got == want && r.reward == want);
        }
    lm_verify_reward r;
    /* the table of eq. 2 at its corners */
    CHECK(R(verif(buf, sizeof buf, "1"), 0, &r) == 0);
    CHECK(R(verif(buf, sizeof buf, "0.5"), 1, &r) == 0.5);
    CHECK(R(verif(buf, sizeof buf, "0"), 0, &r) == 1);
}

TEST(score_spellings) {
    char buf[512];
    lm_verify_reward r;
    /* read as the pipeline reads scores: Python float() of the stripped box */
    CHECK(R(verif(buf, sizeof buf, " 1.0 "), 1, &r) == 1 && r.predicted == 1);
    CHECK(R(verif(buf, sizeof buf, "0.50"), 0.5, &r) == 1 && r.predicted == 0.5);
    CHECK(R(verif(buf, sizeof buf, "5e-1"), 0.5, &r) == 1);
    /* a number that is no allowed score, or no number */
    static const char *const bad[] = {"0.7", "0.25", "yes", "1/2", "-0.5", "2", "nan", "\\frac{1}{2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(R(verif(buf, sizeof buf, bad[i]), 0.5, &r) == 0);
        CHECK(r.why == LM_VFMT_BAD_SCORE && r.format == 0 && r.score == 0 && r.predicted == -1);
    }
}

TEST(format_failures) {
    lm_verify_reward r;
    /* no opening phrase */
    CHECK(R("Step 1 checks.\nBased on my evaluation, the final overall score should be:\n\\boxed{1}", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_OPEN && r.format == 0);
    /* no score phrase */
    CHECK(R("Here is my evaluation of the solution:\nStep 1 checks.\n\\boxed{1}", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_SCORE_PHRASE);
    /* the phrases in the wrong order */
    CHECK(R("Based on my evaluation, the final overall score should be:\nHere is my evaluation of the solution:\n"
            "\\boxed{1}", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_SCORE_PHRASE);
    /* no box, an empty box, an unclosed box */
    CHECK(R("Here is my evaluation of the solution:\nBased on my evaluation, the final overall score should be:\n1",
            1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_BOX);
    CHECK(R("Here is my evaluation of the solution:\nBased on my evaluation, the final overall score should be:\n"
            "\\boxed{ }", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_BOX);
    CHECK(R("Here is my evaluation of the solution:\nBased on my evaluation, the final overall score should be:\n"
            "\\boxed{1", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_BOX);
    /* the only box comes before the score phrase */
    CHECK(R("Here is my evaluation of the solution: \\boxed{1}\nBased on my evaluation, the final overall score "
            "should be:\nfine", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_BOX);
    /* the last box is what counts: a trailing wrong box fails */
    CHECK(R("Here is my evaluation of the solution:\nBased on my evaluation, the final overall score should be:\n"
            "\\boxed{1} or maybe \\boxed{0.3}", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_BAD_SCORE);
    /* phrases only inside the thinking do not count */
    CHECK(R("<think>Here is my evaluation of the solution:</think>\nBased on my evaluation, the final overall score "
            "should be:\n\\boxed{1}", 1, &r) == 0);
    CHECK(r.why == LM_VFMT_NO_OPEN);
    /* ... while the answer after the thinking does */
    CHECK(R("<think>hmm \\boxed{0}</think>Here is my evaluation of the solution:\nBased on my evaluation, the final "
            "overall score should be:\n\\boxed{1}", 1, &r) == 1);
    CHECK(r.why == LM_VFMT_OK);
    /* empty text, and a text with a NUL byte inside a phrase */
    CHECK(lm_verify_reward_of("", 0, 1, &r) == 0 && r.why == LM_VFMT_NO_OPEN);
    const char nul[] = "Here is my\0evaluation of the solution:\nBased on my evaluation, the final overall score should "
                       "be:\n\\boxed{1}";
    CHECK(lm_verify_reward_of(nul, sizeof nul - 1, 1, &r) == 0 && r.why == LM_VFMT_NO_OPEN);
    CHECK(!strcmp(lm_verify_format_name(LM_VFMT_NO_BOX), "no_box"));
}

/* The SFT targets (the checker's own analyses) earn the full reward against
 * their label, so the reward agrees with what SFT taught. */
TEST(sft_targets_earn_one) {
    static const double labels[] = {1, 0.5, 0};
    for (int i = 0; i < 3; i++) {
        lm_check_result cr = {.score = labels[i], .step = labels[i] == 0 ? 2 : 0};
        snprintf(cr.kind, sizeof cr.kind, "%s", labels[i] == 0 ? LM_ERR_ARITHMETIC : labels[i] < 1 ? LM_ERR_OMITTED : "");
        snprintf(cr.message, sizeof cr.message, "%s", labels[i] < 1 ? "something" : "");
        lm_text t = {0};
        CHECK(lm_task_verification_text("a = 1\nb = 2\nso a < b", &cr, &t) == 0);
        lm_verify_reward r;
        CHECK(lm_verify_reward_of(t.data, t.len, labels[i], &r) == 1);
        CHECK(r.predicted == labels[i]);
        lm_text_free(&t);
    }
}

int main(void) {
    RUN(every_score_pair);
    RUN(score_spellings);
    RUN(format_failures);
    RUN(sft_targets_earn_one);
    return test_report("test_reward");
}
