/* test_tasks_work.c — the checker's working (tasks.h lm_task_work,
 * lm_task_worked_verification): for every domain, the worked verification of
 * a reference proof says every step checks, that of every corruption kind
 * names the checker's first failing step after the steps before it check,
 * the meta-verification parser reads both as faithful, the working of a
 * step comes before its verdict and is the checker's own arithmetic, and the
 * lengths stay within what the recipe's token budgets allow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prove/reward.h"
#include "tasks/steptext.h"
#include "tasks/tasks.h"
#include "test.h"

static char *solution_of(const char *answer) {
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    return strndup(b, n);
}

/* The worked verification of answer (clean or flawed) judged by the checker:
 * its verdict lines are "Step 1 checks." .. "Step f-1 checks." and then the
 * fault (f = the checker's step; every step checks when f = 0), each "Line k"
 * right before "Step k", nothing after the fault's line but the score; the
 * meta-verification label of the text is 1 (faithful). Returns the text
 * (caller frees) or NULL after reporting. */
static char *expect_worked(const lm_task_domain *d, const char *q, const char *answer, double want_score, int want_step,
                           const char *want_kind) {
    lm_error err = {{0}};
    lm_check_result r;
    CHECK(lm_task_check(q, answer, &r, &err) == 0);
    CHECKF(r.score == want_score && r.step == want_step && !strcmp(r.kind, want_kind), "%s: %g %d %s", d->name,
           r.score, r.step, r.kind);
    char *sol = solution_of(answer);
    lm_text v = {0}, v2 = {0};
    CHECK(lm_task_worked_verification(q, sol, &r, &v, &err) == 0);
    CHECK(lm_task_worked_verification(q, sol, &r, &v2, &err) == 0);
    CHECK(v.len == v2.len && !memcmp(v.data, v2.data, v.len)); /* pure */
    int n = lm_lines_count(sol), last = r.score < 1 && r.step > 0 ? r.step : n, lines_worked = 0;
    const char *p = v.data;
    CHECK(!strncmp(p, "Here is my evaluation of the solution:\n", 39));
    p += 39;
    for (int k = 1; k <= last; k++) {
        char head[64];
        snprintf(head, sizeof head, "Line %d: ", k);
        if (!strncmp(p, head, strlen(head))) {
            const char *e = strchr(p, '\n');
            CHECKF(e && e[-1] == '.' && (size_t)(e - p) < strlen(head) + LM_TASK_WORK_MAX, "%s step %d", d->name, k);
            p = e ? e + 1 : p + strlen(p);
            lines_worked++;
        }
        if (k < last || r.score >= 1 || r.step == 0) snprintf(head, sizeof head, "Step %d checks.\n", k);
        else snprintf(head, sizeof head, "Step %d (%s): ", k, r.kind);
        CHECKF(!strncmp(p, head, strlen(head)), "%s: expected \"%s\" at:\n%s", d->name, head, p);
        const char *e = strchr(p, '\n');
        p = e ? e + 1 : p + strlen(p);
    }
    if (r.score >= 1) CHECK(!strncmp(p, "Every step checks and the conclusion is the claim.\n", 51));
    else if (r.step == 0) CHECK(p[0] == '(' && !strncmp(p + 1, r.kind, strlen(r.kind)));
    const char *tail = strstr(p, "\nBased on my evaluation, the final overall score should be:\n\\boxed{");
    CHECKF(tail && !strstr(p, "Line "), "%s", v.data); /* no working after the verdicts */
    const char *box = r.score >= 1 ? "\\boxed{1}" : r.score > 0 ? "\\boxed{0.5}" : "\\boxed{0}";
    CHECK(v.len >= strlen(box) && !strcmp(v.data + v.len - strlen(box), box));
    /* every domain recomputes most of its steps (a first step that fails on its form has nothing to redo) */
    CHECKF(2 * lines_worked + 1 >= last, "%s: %d of %d steps worked", d->name, lines_worked, last);
    lm_meta_truth t = lm_meta_truth_of(sol, r.score, r.step);
    lm_meta_label ml;
    CHECKF(lm_meta_label_of(v.data, v.len, &t, &ml) == 1 && ml.why == LM_META_FAITHFUL, "%s: %s", d->name, v.data);
    free(sol);
    lm_text_free(&v2);
    return v.data;
}

TEST(clean_proofs_check_every_step) {
    for (int i = 0; i < lm_task_count(); i++) {
        const lm_task_domain *d = lm_task_domain_at(i);
        for (int diff = 1; diff <= 5; diff++)
            for (uint64_t seed = 1; seed <= 6; seed++) {
                lm_text q = {0}, a = {0};
                lm_error err;
                CHECK(d->generate(seed * 31 + (uint64_t)diff, diff, &q, &a, &err) == 0);
                free(expect_worked(d, q.data, a.data, 1, 0, ""));
                lm_text_free(&q);
                lm_text_free(&a);
            }
    }
}

TEST(corruptions_name_the_first_failing_step) {
    for (int i = 0; i < lm_task_count(); i++) {
        const lm_task_domain *d = lm_task_domain_at(i);
        char kinds[16][32];
        int nkinds = 0;
        for (uint64_t seed = 1; seed <= 60; seed++) {
            lm_text q = {0}, a = {0}, bad = {0};
            lm_error err;
            lm_corruption c;
            int diff = 1 + (int)(seed % 3);
            CHECK(d->generate(seed, diff, &q, &a, &err) == 0);
            CHECK(d->corrupt(q.data, a.data, seed * 7, &bad, &c, &err) == 0);
            free(expect_worked(d, q.data, bad.data, c.label, c.step, c.kind));
            int seen = 0;
            for (int k = 0; k < nkinds; k++) seen |= !strcmp(kinds[k], c.kind);
            if (!seen && nkinds < 16) snprintf(kinds[nkinds++], sizeof kinds[0], "%s", c.kind);
            lm_text_free(&q);
            lm_text_free(&a);
            lm_text_free(&bad);
        }
        CHECKF(nkinds >= 3, "%s: only %d corruption kinds drawn", d->name, nkinds); /* the loop reached the kinds */
    }
}

/* The working of the flawed step is the checker's arithmetic, written before
 * the verdict: the brief's example and one per domain. */
TEST(working_of_a_flawed_step) {
    static const struct {
        const char *q, *solution, *line, *verdict;
    } cases[] = {
        {"Prove that gcd(156, 30) = 6.",
         "156 = 5*30 + 7\n6 = 1*156 + (-5)*30\n30 = 5*6 + 0\nTherefore gcd(156, 30) = 6.",
         "Line 1: divide 156 by 30: 5*30 = 150, 150 + 7 = 157.\n", "Step 1 (arithmetic): 5*30 + 7 = 157, not 156.\n"},
        {"Prove that 27 + 47 = 74.",
         "Column 1: 7 + 7 + 0 = 15, write 5, carry 1\nColumn 2: 2 + 4 + 1 = 7, write 7, carry 0\n"
         "Final carry 0, so the digits read 75\nTherefore 27 + 47 = 74.",
         "Line 1: 7 + 7 + 0 = 14, write 4, carry 1.\n", "Step 1 (arithmetic): 7 + 7 + 0 = 14, not 15.\n"},
        {"Find all real numbers x such that 5x + 9 = 14, and prove that there are no others.",
         "Equation: 5x + 9 = 14\nSubtract 9 from both sides: 5x = 6\nDivide both sides by 5: x = 1\nCheck: 5*1 + 9 = "
         "14\nTherefore the only solution is x = 1.",
         "Line 1: the question's equation is 5x + 9 = 14.\nStep 1 checks.\nLine 2: 9 - 9 = 0, 14 - 9 = 5, so 5x = 5.\n",
         "Step 2 (arithmetic): the result is 5x = 5, not 5x = 6.\n"},
        {"Prove that 7^13 \xe2\x89\xa1 7 (mod 8).",
         "7^1 \xe2\x89\xa1 7 (mod 8)\n7^2 \xe2\x89\xa1 7*7 = 49 \xe2\x89\xa1 2 (mod 8)\n",
         "Line 1: 7 = 0*8 + 7.\nStep 1 checks.\nLine 2: 7*7 = 49 = 6*8 + 1.\n",
         "Step 2 (arithmetic): 49 \xe2\x89\xa1 1 (mod 8), not 2.\n"},
        {"Prove that (x - 6)(x + 5) = x^2 - x - 30 for all real x.",
         "(x - 6)(x + 5) = x*x + x*5 + (-6)*x + (-6)*5\n= x^2 + 5x - 6x - 30\n= x^2 - 2x - 30\n"
         "Therefore (x - 6)(x + 5) = x^2 - x - 30 for all real x.",
         "Line 3: 5x + (-6x) = -x, so x^2 - x - 30.\n", "Step 3 (arithmetic): "},
        {"Prove that n^2 + n is divisible by 2 for every integer n.",
         "n = 2k: n^2 + n = 4k^2 + 2k = 2*(2k^2 + k)\nn = 2k + 1: n^2 + n = 4k^2 + 6k + 2 = 2*(2k^2 + 3k + 2)\n"
         "Therefore n^2 + n is divisible by 2 for every integer n.",
         "Line 2: n^2 + n at n = 2k + 1 is 4k^2 + 6k + 2, 4/2 = 2, 6/2 = 3, 2/2 = 1.\n", "Step 2 (arithmetic): "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_error err = {{0}};
        lm_check_result r;
        CHECK(lm_task_check(cases[i].q, cases[i].solution, &r, &err) == 0);
        lm_text v = {0};
        CHECK(lm_task_worked_verification(cases[i].q, cases[i].solution, &r, &v, &err) == 0);
        const char *at = v.data ? strstr(v.data, cases[i].line) : NULL;
        CHECKF(at && !strncmp(at + strlen(cases[i].line), cases[i].verdict, strlen(cases[i].verdict)),
               "case %zu:\n%s", i, v.data);
        lm_text_free(&v);
    }
}

/* The verdicts follow the result given, which may be an invented defect:
 * the meta-verification parser then reads it as one. */
TEST(invented_defects_and_errors) {
    const char *q = "Find all real numbers x such that 5x + 9 = 14, and prove that there are no others.";
    const char *sol = "Equation: 5x + 9 = 14\nSubtract 9 from both sides: 5x = 6\nDivide both sides by 5: x = 1\n"
                      "Therefore the only solution is x = 1.";
    lm_text v = {0};
    lm_error err = {{0}};
    lm_check_result r, made;
    CHECK(lm_task_check(q, sol, &r, &err) == 0 && r.score == 0 && r.step == 2);
    made = r;
    made.step = 1;
    CHECK(lm_task_worked_verification(q, sol, &made, &v, &err) == 0);
    CHECK(strstr(v.data, "Line 1: the question's equation is 5x + 9 = 14.\nStep 1 (arithmetic): "));
    lm_meta_truth t = lm_meta_truth_of(sol, r.score, r.step);
    lm_meta_label ml;
    CHECK(lm_meta_label_of(v.data, v.len, &t, &ml) == 0 && ml.why == LM_META_INVENTED_DEFECT);
    /* a question of no domain, a malformed one: one line naming it */
    lm_text w = {0};
    CHECK(lm_task_worked_verification("What is love?", sol, &made, &w, &err) == -1);
    CHECK(strstr(err.msg, "not in the wording of any domain") && !strchr(err.msg, '\n'));
    CHECK(lm_task_worked_verification("Prove that 2 + 2 = 5.", "x", &made, &w, &err) == -1);
    CHECK(!strncmp(err.msg, "add question: ", 14) && !strchr(err.msg, '\n'));
    /* work is optional: no sink, no working */
    const lm_task_domain *d = lm_task_domain_find("lineq");
    CHECK(d->check_work(q, sol, &r, NULL, &err) == 0 && r.score == 0 && r.step == 2);
    lm_text_free(&v);
    lm_text_free(&w);
}

/* Lengths: no step's working reaches the cap at any difficulty, and at
 * difficulty 1 (recipes/default.json) a worked verification stays within
 * 600 bytes: the longest, a modpow one of about 520 bytes, is about 270
 * tokens with the default recipe's tokenizer, under the 320 max_tokens of
 * its verifier_rl and grpo verifications. */
TEST(lengths_bounded) {
    size_t longest_d1 = 0;
    for (int i = 0; i < lm_task_count(); i++) {
        const lm_task_domain *d = lm_task_domain_at(i);
        for (int diff = 1; diff <= 5; diff++)
            for (uint64_t seed = 1; seed <= 40; seed++) {
                lm_text q = {0}, a = {0}, bad = {0}, v = {0};
                lm_error err;
                lm_corruption c;
                CHECK(d->generate(seed * 131 + (uint64_t)diff, diff, &q, &a, &err) == 0);
                CHECK(d->corrupt(q.data, a.data, seed, &bad, &c, &err) == 0);
                const char *ans = seed % 2 ? a.data : bad.data;
                char *sol = solution_of(ans);
                lm_task_work w = {0};
                lm_check_result r;
                CHECK(d->check_work(q.data, sol, &r, &w, &err) == 0 && !w.oom);
                for (int k = 0; k < w.n; k++) {
                    CHECKF(strlen(w.text[k]) < LM_TASK_WORK_MAX - 1, "%s: %s", d->name, w.text[k]);
                    CHECK(!strchr(w.text[k], '\n') && (k == 0 || w.step[k] > w.step[k - 1]));
                }
                CHECK(lm_task_worked_verification(q.data, sol, &r, &v, &err) == 0);
                if (diff == 1 && v.len > longest_d1) longest_d1 = v.len;
                lm_task_work_free(&w);
                free(sol);
                lm_text_free(&q);
                lm_text_free(&a);
                lm_text_free(&bad);
                lm_text_free(&v);
            }
    }
    CHECKF(longest_d1 > 300 && longest_d1 <= 600, "longest worked verification at difficulty 1: %zu bytes", longest_d1);
}

int main(void) {
    RUN(clean_proofs_check_every_step);
    RUN(corruptions_name_the_first_failing_step);
    RUN(working_of_a_flawed_step);
    RUN(invented_defects_and_errors);
    RUN(lengths_bounded);
    return test_report("test_tasks_work");
}
