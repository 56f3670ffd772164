/* test_vrl_meta.c — the checker-made verifications the verifier_rl stage's
 * meta-verification prompts carry (recipe/vrl_meta.h): each of its kinds
 * occurs, each gets the label its kind promises from lm_meta_label_of, the
 * draw is a pure function of its inputs, and the prompt is the pipeline's
 * meta_verification template. */
#include "recipe/vrl_meta.h"

#include <stdlib.h>
#include <string.h>

#include "prove/reward.h"
#include "test.h"

static char *solution_of(const char *answer) {
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    return strndup(b, n);
}

TEST(kinds_and_labels) {
    int seen[4] = {0}; /* by label x 2: 0, 0.5, 1; index 3: invented faults */
    for (int d = 0; d < lm_task_count(); d++) {
        const lm_task_domain *dom = lm_task_domain_at(d);
        for (uint64_t seed = 1; seed <= 12; seed++) {
            lm_error err;
            lm_text q = {0}, a = {0}, bad = {0};
            lm_corruption c;
            CHECK(dom->generate(seed, 2, &q, &a, &err) == 0);
            CHECK(dom->corrupt(q.data, a.data, seed, &bad, &c, &err) == 0);
            for (int flawed = 0; flawed < 2; flawed++) {
                const char *shown = flawed ? bad.data : a.data;
                lm_check_result r;
                CHECK(lm_task_check(q.data, shown, &r, &err) == 0);
                char *sol = solution_of(shown);
                lm_meta_truth t = lm_meta_truth_of(sol, r.score, r.step);
                for (uint64_t s = 0; s < 12; s++) {
                    lm_text v = {0}, v2 = {0};
                    const char *worked = s % 2 ? q.data : NULL; /* with the checker's working and without */
                    CHECK(lm_vrl_meta_rating(worked, sol, &r, seed * 100 + s, &v, &err) == 0);
                    CHECK(lm_vrl_meta_rating(worked, sol, &r, seed * 100 + s, &v2, &err) == 0);
                    CHECK(v.len == v2.len && !memcmp(v.data, v2.data, v.len)); /* pure */
                    lm_meta_label l;
                    double label = lm_meta_label_of(v.data, v.len, &t, &l);
                    CHECK(label == 0 || label == 0.5 || label == 1);
                    CHECK(l.why != LM_META_BAD_FORMAT); /* every kind is a well-formed verification */
                    seen[(int)(label * 2)]++;
                    seen[3] += l.why == LM_META_INVENTED_DEFECT;
                    lm_text_free(&v);
                    lm_text_free(&v2);
                }
                free(sol);
            }
            lm_text_free(&q);
            lm_text_free(&a);
            lm_text_free(&bad);
        }
    }
    /* faithful about half the time, the rest of each unfaithful kind */
    int total = seen[0] + seen[1] + seen[2];
    CHECK(seen[2] > total / 3 && seen[2] < 2 * total / 3);
    CHECK(seen[1] > 0 && seen[3] > 0 && seen[0] > seen[3]);
}

TEST(prompt) {
    lm_prompt_templates tp;
    lm_error err;
    CHECK(lm_templates_builtin(&tp, &err) == 0);
    lm_text out = {0};
    const char *rating = "Here is my evaluation of the solution:\nStep 1 checks.\n";
    CHECK(lm_vrl_meta_prompt(&tp, "Prove 1 + 1 = 2.", "1 + 1 = 2", rating, strlen(rating), &out, &err) == 0);
    CHECK(strstr(out.data, "Prove 1 + 1 = 2.") && strstr(out.data, "Step 1 checks.") &&
          strstr(out.data, "Is the solution evaluation reasonable?"));
    /* a rating is taken as bytes: braces in it are not placeholders */
    lm_text out2 = {0};
    CHECK(lm_vrl_meta_prompt(&tp, "Q", "S", "\\boxed{1} {rating}", 18, &out2, &err) == 0);
    CHECK(strstr(out2.data, "\\boxed{1} {rating}") != NULL);
    lm_text_free(&out);
    lm_text_free(&out2);
    lm_templates_free(&tp);
}

int main(void) {
    RUN(kinds_and_labels);
    RUN(prompt);
    return test_report("test_vrl_meta");
}
