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

/* ---- meta-verification ---------------------------------------------------- */

#define OPEN "Here is my evaluation of the solution:\n"
#define TAIL(box) "\nBased on my evaluation, the final overall score should be:\n\\boxed{" box "}"

static lm_meta_label L(const char *v, double score, int step, int n_steps) {
    lm_meta_truth t = {.score = score, .step = step, .n_steps = n_steps};
    lm_meta_label l;
    double got = lm_meta_label_of(v, strlen(v), &t, &l);
    CHECK(got == l.label);
    return l;
}

TEST(meta_faithful_cases) {
    /* a wrong proof (first wrong line 2 of 3), the real defect named */
    lm_meta_label l = L(OPEN "Step 1 checks.\nStep 2 (arithmetic): 2 + 2 = 4, not 5.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 1 && l.why == LM_META_FAITHFUL && l.claimed_step == 2);
    /* prose around the claims, markdown bullets, thinking before it */
    l = L("<think>hmm Step 1 (arithmetic)</think>" OPEN "I read it line by line.\n- Step 1 checks.\n* Step 2: wrong sum.\n"
          "Step 3 looks off too.\n" TAIL("0"),
          0, 2, 3);
    CHECK(l.label == 1 && l.claimed_step == 2); /* a claim after the first fault is unknown: not held against it */
    /* a clean proof, no line blamed */
    l = L(OPEN "Step 1 checks.\nStep 2 checks.\nEvery step checks and the conclusion is the claim.\n" TAIL("1"), 1, 0, 2);
    CHECK(l.label == 1 && l.claimed_step == 0);
    /* a fault on no line (an omitted justification, 0.5): no line blamed */
    l = L(OPEN "Step 1 checks.\n(omitted_justification): why.\n" TAIL("0.5"), 0.5, 0, 1);
    CHECK(l.label == 1);
}

TEST(meta_unfaithful_cases) {
    /* the right low score, but a correct line named as the defect */
    lm_meta_label l = L(OPEN "Step 1 (arithmetic): 1 + 1 = 2, not 3.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT && l.claimed_step == 1);
    /* a defect invented in a clean proof, with the wrong score */
    l = L(OPEN "Step 2 (arithmetic): no.\n" TAIL("0"), 1, 0, 3);
    CHECK(l.label == 0 && l.why == LM_META_WRONG_SCORE);
    /* a defect invented in a clean proof, the score still 1 */
    l = L(OPEN "Step 2 (circular): uses the claim.\n" TAIL("1"), 1, 0, 3);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT);
    /* a line the solution does not have */
    l = L(OPEN "Step 1 checks.\nStep 2 checks.\nStep 9 (arithmetic): x.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT); /* invented comes before denied */
    l = L(OPEN "Step 9 (arithmetic): x.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT);
    l = L(OPEN "Step 0 (arithmetic): x.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT);
    /* the real defect called correct */
    l = L(OPEN "Step 1 checks.\nStep 2 checks.\nStep 3 (arithmetic): x.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_DENIED_DEFECT);
    /* a fault on no line: every line is correct, so blaming one is invented */
    l = L(OPEN "Step 1 (omitted_justification): x.\n" TAIL("0.5"), 0.5, 0, 2);
    CHECK(l.label == 0 && l.why == LM_META_INVENTED_DEFECT);
    /* the right score, the real defect unnamed */
    l = L(OPEN "Something is wrong somewhere.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0.5 && l.why == LM_META_MISSED_DEFECT && l.claimed_step == 0);
    /* a blame after the real fault only: still unnamed */
    l = L(OPEN "Step 1 checks.\nStep 3 (arithmetic): x.\n" TAIL("0"), 0, 2, 3);
    CHECK(l.label == 0.5 && l.why == LM_META_MISSED_DEFECT && l.claimed_step == 3);
    /* no score to judge */
    l = L(OPEN "Step 2 (arithmetic): x.\n", 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_BAD_FORMAT);
    l = L(OPEN "Step 2 (arithmetic): x.\n" TAIL("0.7"), 0, 2, 3);
    CHECK(l.label == 0 && l.why == LM_META_BAD_FORMAT);
    /* "Step 12" is not "Step 1" */
    l = L(OPEN "Step 12 checks.\nStep 1 (arithmetic): x.\n" TAIL("0"), 0, 1, 12);
    CHECK(l.label == 1);
    CHECK(!strcmp(lm_meta_fault_name(LM_META_MISSED_DEFECT), "missed_defect"));
}

/* The checker's own analyses are faithful; an analysis of a made-up fault
 * at a correct line is not. */
TEST(meta_checker_analyses) {
    const lm_task_domain *d = lm_task_domain_find("add");
    CHECK(d != NULL);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        lm_error err;
        lm_text q = {0}, a = {0}, bad = {0}, v = {0}, w = {0};
        lm_corruption c;
        CHECK(d->generate(seed, 2, &q, &a, &err) == 0);
        CHECK(d->corrupt(q.data, a.data, seed, &bad, &c, &err) == 0);
        lm_check_result r;
        CHECK(lm_task_check(q.data, bad.data, &r, &err) == 0);
        const char *b;
        size_t bl;
        lm_task_solution_part(bad.data, &b, &bl);
        char *sol = strndup(b, bl);
        lm_meta_truth t = lm_meta_truth_of(sol, r.score, r.step);
        CHECK(t.n_steps >= 1 && t.step <= t.n_steps);
        CHECK(lm_task_verification_text(sol, &r, &v) == 0);
        lm_meta_label l;
        CHECK(lm_meta_label_of(v.data, v.len, &t, &l) == 1);
        if (r.step > 1) {
            lm_check_result made = r;
            made.step = 1;
            CHECK(lm_task_verification_text(sol, &made, &w) == 0);
            CHECK(lm_meta_label_of(w.data, w.len, &t, &l) == 0 && l.why == LM_META_INVENTED_DEFECT);
        }
        free(sol);
        lm_text_free(&q);
        lm_text_free(&a);
        lm_text_free(&bad);
        lm_text_free(&v);
        lm_text_free(&w);
    }
}

TEST(meta_reward) {
    static const char *const boxes[] = {"0", "0.5", "1"};
    static const double vals[] = {0, 0.5, 1};
    char buf[512];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            snprintf(buf, sizeof buf,
                     "Here is my analysis of the \"solution evaluation\":\nThe defect it reports is real.\n\n"
                     "Based on my analysis, I will rate the \"solution evaluation\" as:\n\\boxed{%s}",
                     boxes[i]);
            lm_verify_reward r;
            CHECK(lm_meta_reward_of(buf, strlen(buf), vals[j], &r) == 1 - fabs(vals[i] - vals[j]));
            CHECK(r.format == 1 && r.predicted == vals[i]);
        }
    /* a verification's phrases are not a meta-verification's */
    lm_verify_reward r;
    const char *v = OPEN "Step 1 checks.\n" TAIL("1");
    CHECK(lm_meta_reward_of(v, strlen(v), 1, &r) == 0 && r.why == LM_VFMT_NO_OPEN);
    const char *m = "Here is my analysis of the \"solution evaluation\":\nok\n\\boxed{1}";
    CHECK(lm_meta_reward_of(m, strlen(m), 1, &r) == 0 && r.why == LM_VFMT_NO_SCORE_PHRASE);
}

int main(void) {
    RUN(every_score_pair);
    RUN(score_spellings);
    RUN(format_failures);
    RUN(sft_targets_earn_one);
    RUN(meta_faithful_cases);
    RUN(meta_unfaithful_cases);
    RUN(meta_checker_analyses);
    RUN(meta_reward);
    return test_report("test_reward");
}
