/* fuzz_tasks_check.c — libFuzzer target: arbitrary text as a question and an
 * answer to lm_task_check (src/tasks). The first byte picks the mode: even,
 * a generated question of some domain (bytes 1-3: domain, seed, difficulty)
 * with the rest as the answer, so the step languages are reached without
 * seeds; odd, the text up to the first newline is the question and the rest
 * the answer. Either the check fails with one line (only for a question that
 * is not well formed), or the verdict is well formed: score 0, 0.5 or 1, a
 * known kind exactly when below 1 (omitted_justification exactly at 0.5), a
 * one-line message, a step within the solution. In the first mode the
 * reference answer scores 1 and its corruption checks as its label. The
 * verification texts (plain and with the checker's working) are well formed
 * for every verdict.
 *
 * FUZZ_MAX_LEN: 2048
 * FUZZ_DICT: fuzz/tasks.dict
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/tasks.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static int known_kind(const char *k) {
    static const char *const all[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                      LM_ERR_MISSING_CASE, LM_ERR_CIRCULAR, LM_ERR_UNPARSEABLE,
                                      LM_ERR_WRONG_PROBLEM, LM_ERR_OMITTED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(k, all[i])) return 1;
    return 0;
}

static void check_one(const char *question, const char *answer) {
    lm_check_result r;
    lm_error err;
    err.msg[0] = 0;
    if (lm_task_check(question, answer, &r, &err)) {
        require(err.msg[0] && !strchr(err.msg, '\n'));
        return;
    }
    int lines = 1;
    for (const char *p = answer; *p; p++) lines += *p == '\n';
    require(r.score == 0 || r.score == 0.5 || r.score == 1);
    if (r.score == 1) {
        require(!r.kind[0] && !r.message[0] && r.step == 0);
    } else {
        require(known_kind(r.kind) && (r.score == 0.5) == !strcmp(r.kind, LM_ERR_OMITTED));
        require(r.message[0] && !strchr(r.message, '\n') && r.step >= 0 && r.step <= lines);
    }
    lm_text v = {0};
    const char *sol;
    size_t sl;
    lm_task_solution_part(answer, &sol, &sl);
    char *solution = strndup(sol, sl);
    require(solution && lm_task_verification_text(solution, &r, &v) == 0 && strstr(v.data, "\\boxed{"));
    /* the worked verification: the same verdicts, each step's working on one bounded line */
    lm_text w = {0};
    require(lm_task_worked_verification(question, solution, &r, &w, &err) == 0 && w.len >= v.len);
    for (const char *p = w.data; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        if (!strncmp(p, "Line ", 5)) require((size_t)(e - p) < 16 + LM_TASK_WORK_MAX);
        p = *e ? e + 1 : e;
    }
    free(solution);
    lm_text_free(&v);
    lm_text_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || lm_task_count() == 0) return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* an embedded NUL ends the text early, as in a C string */
    if (data[0] % 2 == 0) {
        const lm_task_domain *d = lm_task_domain_at(data[1] % lm_task_count());
        lm_text q = {0}, p = {0}, bad = {0};
        lm_error err;
        require(d->generate(data[2], 1 + data[3] % 5, &q, &p, &err) == 0);
        check_one(q.data, text + 4);
        lm_check_result r;
        require(lm_task_check(q.data, p.data, &r, &err) == 0 && r.score == 1);
        lm_corruption c;
        require(d->corrupt(q.data, p.data, data[1] * 256u + data[3], &bad, &c, &err) == 0);
        require(lm_task_check(q.data, bad.data, &r, &err) == 0 && r.score == c.label && r.step == c.step &&
                !strcmp(r.kind, c.kind));
        lm_text_free(&q);
        lm_text_free(&p);
        lm_text_free(&bad);
    } else {
        char *nl = strchr(text + 1, '\n');
        if (nl) *nl = 0;
        check_one(text + 1, nl ? nl + 1 : "");
    }
    free(text);
    return 0;
}
