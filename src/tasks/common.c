/* common.c — the domain registry and what every domain shares: the answer
 * format, finding the solution part, and the verifier's analysis text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/tasks.h"

/* The domains, each in its own file (src/tasks/<name>.c). */
#define DOMAIN(x) extern const lm_task_domain x;
DOMAIN(lm_domain_add)
DOMAIN(lm_domain_lineq)
DOMAIN(lm_domain_gcd)
DOMAIN(lm_domain_modpow)
DOMAIN(lm_domain_poly)
DOMAIN(lm_domain_divcases)
#undef DOMAIN

static const lm_task_domain *const all_domains[] = {
    &lm_domain_add, &lm_domain_lineq, &lm_domain_gcd, &lm_domain_modpow, &lm_domain_poly, &lm_domain_divcases,
};

int lm_task_count(void) { return (int)(sizeof all_domains / sizeof all_domains[0]); }

const lm_task_domain *lm_task_domain_at(int i) { return i >= 0 && i < lm_task_count() ? all_domains[i] : NULL; }

const lm_task_domain *lm_task_domain_find(const char *name) {
    for (int i = 0; i < lm_task_count(); i++)
        if (!strcmp(lm_task_domain_at(i)->name, name)) return lm_task_domain_at(i);
    return NULL;
}

const lm_task_domain *lm_task_domain_of(const char *question) {
    for (int i = 0; i < lm_task_count(); i++)
        if (lm_task_domain_at(i)->recognizes(question)) return lm_task_domain_at(i);
    return NULL;
}

void lm_task_solution_part(const char *text, const char **begin, size_t *len) {
    const char *b = text, *sol = strstr(text, "## Solution");
    if (sol) {
        b = sol + strlen("## Solution");
        while (*b == ' ' || *b == '\t') b++;
        if (*b == '\r') b++;
        if (*b == '\n') b++;
    }
    const char *e = strstr(b, "## Self Evaluation");
    *begin = b;
    *len = e ? (size_t)(e - b) : strlen(b);
}

char *lm_task_solution_copy(const char *text) {
    const char *b;
    size_t n;
    lm_task_solution_part(text, &b, &n);
    while (n && (*b == '\n' || *b == ' ')) b++, n--;
    while (n && (b[n - 1] == '\n' || b[n - 1] == ' ')) n--;
    return strndup(b, n);
}

int lm_task_check(const char *question, const char *answer, lm_check_result *res, lm_error *err) {
    const lm_task_domain *d = lm_task_domain_of(question);
    if (!d) return lm_fail(err, "the question is not in the wording of any domain (lemma tasks list shows them)");
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    lm_text sol = {0};
    if (lm_text_append(&sol, b, n)) return lm_fail(err, "out of memory");
    int rc = d->check(question, sol.data ? sol.data : "", res, err);
    lm_text_free(&sol);
    if (rc) return lm_fail_prefix(err, "%s question", d->name);
    return 0;
}

static int append(lm_text *t, const char *s) { return lm_text_append(t, s, strlen(s)); }

/* The verification text; with each step's working before its verdict when
 * work is not NULL. */
static int verification_text(const char *solution, const lm_check_result *r, const lm_task_work *work, lm_text *out) {
    int rc = append(out, "Here is my evaluation of the solution:\n");
    /* a verdict for every step up to the first failing one: a place for a
     * small model to judge one line at a time */
    int step = 0, last = r->score >= 1 || r->step <= 0 ? -1 : r->step;
    for (const char *p = solution; *p && !rc && step != last;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e) {
            char line[LM_TASK_WORK_MAX + 400];
            const char *w = lm_task_work_of(work, ++step);
            if (w) rc = lm_text_appendf(out, "Line %d: %s.\n", step, w);
            if (step == last) snprintf(line, sizeof line, "Step %d (%s): %s.\n", step, r->kind, r->message);
            else snprintf(line, sizeof line, "Step %d checks.\n", step);
            rc = rc || append(out, line);
        }
        p = *e ? e + 1 : e;
    }
    if (!rc && r->score >= 1) rc = append(out, "Every step checks and the conclusion is the claim.\n");
    else if (!rc && last < 0) {
        char line[400];
        snprintf(line, sizeof line, "(%s): %s.\n", r->kind, r->message);
        rc = append(out, line);
    }
    const char *score = r->score >= 1 ? "1" : r->score > 0 ? "0.5" : "0";
    return rc || append(out, "\nBased on my evaluation, the final overall score should be:\n\\boxed{") ||
           append(out, score) || append(out, "}");
}

int lm_task_verification_text(const char *solution, const lm_check_result *r, lm_text *out) {
    return verification_text(solution, r, NULL, out);
}

int lm_task_worked_verification(const char *question, const char *solution, const lm_check_result *r, lm_text *out,
                                lm_error *err) {
    const lm_task_domain *d = lm_task_domain_of(question);
    if (!d) return lm_fail(err, "the question is not in the wording of any domain (lemma tasks list shows them)");
    lm_task_work work = {0};
    lm_check_result own;
    int rc = d->check_work(question, solution, &own, &work, err);
    if (rc) rc = lm_fail_prefix(err, "%s question", d->name);
    else if (work.oom || verification_text(solution, r, &work, out)) rc = lm_fail(err, "out of memory");
    lm_task_work_free(&work);
    return rc;
}

void lm_task_work_free(lm_task_work *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->text[i]);
    free(w->text);
    free(w->step);
    *w = (lm_task_work){0};
}

void lm_task_work_add(lm_task_work *w, int step, const char *fmt, ...) {
    if (!w || w->oom) return;
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        int *s = realloc(w->step, (size_t)cap * sizeof *s);
        if (s) w->step = s;
        char **t = s ? realloc(w->text, (size_t)cap * sizeof *t) : NULL;
        if (t) w->text = t;
        if (!s || !t) {
            w->oom = 1;
            return;
        }
        w->cap = cap;
    }
    char *text = malloc(LM_TASK_WORK_MAX);
    if (!text) {
        w->oom = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, LM_TASK_WORK_MAX, fmt, ap);
    va_end(ap);
    w->step[w->n] = step;
    w->text[w->n++] = text;
}

const char *lm_task_work_of(const lm_task_work *w, int step) {
    if (!w) return NULL;
    for (int i = w->n - 1; i >= 0; i--)
        if (w->step[i] == step) return w->text[i];
    return NULL;
}

int lm_task_append_self_eval(lm_text *out) {
    return append(out, "\n## Self Evaluation\n\nHere is my evaluation of the solution:\n"
                       "Every step checks and the conclusion is the claim.\n\n"
                       "Based on my evaluation, the final overall score should be:\n\\boxed{1}");
}

void lm_check_set(lm_check_result *res, double score, int step, const char *kind, const char *fmt, ...) {
    res->score = score;
    res->step = step;
    snprintf(res->kind, sizeof res->kind, "%s", kind ? kind : "");
    res->message[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->message, sizeof res->message, fmt, ap);
        va_end(ap);
    }
}
