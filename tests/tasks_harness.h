/* tasks_harness.h — checks every theorem domain's test runs (included by
 * tests/test_tasks_<domain>.c after test.h): reference proofs score 1 and
 * stay short, every corruption checks as its label, kind and step, the
 * generator is deterministic, and garbage never crashes the checker. */
#ifndef LEMMA_TESTS_TASKS_HARNESS_H
#define LEMMA_TESTS_TASKS_HARNESS_H

#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "tasks/tasks.h"
#include "tasks/util.h"

/* The solution part of an answer, as its own string (caller frees). */
static char *th_solution(const char *answer) {
    const char *b;
    size_t n;
    lm_task_solution_part(answer, &b, &n);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

static int th_valid_kind(const char *k) {
    static const char *const all[] = {LM_ERR_ARITHMETIC, LM_ERR_CONCLUSION, LM_ERR_MISSING_CONCLUSION,
                                      LM_ERR_MISSING_CASE, LM_ERR_CIRCULAR, LM_ERR_UNPARSEABLE,
                                      LM_ERR_WRONG_PROBLEM, LM_ERR_OMITTED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(k, all[i])) return 1;
    return 0;
}

/* A verdict is well formed: score 0, 0.5 or 1 with a matching kind, a step
 * within the solution, one-line message. */
static int th_well_formed(const lm_check_result *r, int lines) {
    if (r->score == 1) return !r->kind[0] && !r->message[0] && r->step == 0;
    if (r->score != 0 && r->score != 0.5) return 0;
    if (!th_valid_kind(r->kind) || (r->score == 0.5) != !strcmp(r->kind, LM_ERR_OMITTED)) return 0;
    if (!r->message[0] || strchr(r->message, '\n') || r->step < 0 || r->step > lines) return 0;
    return 1;
}

/* lm_task_check of (q, answer) equals (score, kind, step); prints both when not. */
static void th_expect(const char *q, const char *answer, double score, const char *kind, int step, int line) {
    lm_check_result r;
    lm_error err = {{0}};
    int rc = lm_task_check(q, answer, &r, &err);
    if (rc) {
        printf("  line %d: check failed: %s\n", line, err.msg);
        CHECK(rc == 0);
        return;
    }
    if (r.score != score || strcmp(r.kind, kind) || r.step != step) {
        printf("  line %d: got %g %s step %d (%s), expected %g %s step %d\n", line, r.score, r.kind, r.step, r.message,
               score, kind, step);
        CHECK(0);
    }
}
#define EXPECT(q, a, score, kind, step) th_expect(q, a, score, kind, step, __LINE__)

/* Every difficulty, `seeds` seeds each: the reference answer scores 1; at
 * difficulty 1 the solution has 3..8 lines and fewer than max_chars_d1
 * characters, at difficulty 2 3..8 lines. */
static void th_references(const lm_task_domain *d, int seeds, size_t max_chars_d1) {
    int bad = 0;
    for (int diff = 1; diff <= 5; diff++)
        for (int s = 0; s < seeds; s++) {
            lm_text q = {0}, p = {0};
            lm_error err = {{0}};
            uint64_t seed = lm_rng_u64(1234, 77, (uint64_t)s);
            if (d->generate(seed, diff, &q, &p, &err)) {
                if (bad++ < 5) printf("  %s d%d seed %llu: generate: %s\n", d->name, diff, (unsigned long long)seed, err.msg);
                continue;
            }
            lm_check_result r;
            int ok = d->recognizes(q.data) && lm_task_domain_of(q.data) == d && !lm_task_check(q.data, p.data, &r, &err) &&
                     r.score == 1 && th_well_formed(&r, 0);
            char *sol = th_solution(p.data);
            lm_task_lines L;
            lm_task_split_lines(sol, strlen(sol), &L);
            if (diff <= 2 && (L.n < 3 || L.n > 8)) ok = 0;
            if (diff == 1 && strlen(sol) >= max_chars_d1) ok = 0;
            if (!ok && bad++ < 5)
                printf("  %s d%d seed %llu: %s\n%s\n  -> %g %s step %d: %s (%d lines, %zu chars)\n", d->name, diff,
                       (unsigned long long)seed, q.data, p.data, r.score, r.kind, r.step, r.message, L.n, strlen(sol));
            lm_task_lines_free(&L);
            free(sol);
            lm_text_free(&q);
            lm_text_free(&p);
        }
    CHECKF(bad == 0, "%d reference answers of %s failed", bad, d->name);
}

/* Every difficulty, `seeds` seeds each, one corruption per seed: it checks
 * as its label, kind and step; every kind in `kinds` occurs. */
static void th_corruptions(const lm_task_domain *d, int seeds, const char *const *kinds, int nkinds) {
    int bad = 0, seen[16] = {0};
    for (int diff = 1; diff <= 5; diff++)
        for (int s = 0; s < seeds; s++) {
            lm_text q = {0}, p = {0}, f = {0};
            lm_error err = {{0}};
            uint64_t seed = lm_rng_u64(99, 5, (uint64_t)s);
            lm_corruption c;
            lm_check_result r;
            if (d->generate(seed, diff, &q, &p, &err) || d->corrupt(q.data, p.data, seed ^ 0x5a5a, &f, &c, &err)) {
                if (bad++ < 5) printf("  %s d%d seed %llu: %s\n", d->name, diff, (unsigned long long)seed, err.msg);
            } else if (lm_task_check(q.data, f.data, &r, &err) || r.score != c.label || r.step != c.step ||
                       strcmp(r.kind, c.kind) || !th_well_formed(&r, lm_task_count_lines(f.data))) {
                if (bad++ < 5)
                    printf("  %s d%d seed %llu: corruption %s step %d label %g checks as %g %s step %d (%s)\n%s\n",
                           d->name, diff, (unsigned long long)seed, c.kind, c.step, c.label, r.score, r.kind, r.step,
                           r.message, f.data);
            } else {
                for (int k = 0; k < nkinds; k++) seen[k] |= !strcmp(c.kind, kinds[k]);
            }
            /* the corruption is a pure function of (question, proof, seed) */
            lm_text f2 = {0};
            lm_corruption c2;
            if (!d->corrupt(q.data, p.data, seed ^ 0x5a5a, &f2, &c2, &err) && (f2.len != f.len || memcmp(f.data, f2.data, f.len)))
                if (bad++ < 5) printf("  %s: corrupt is not deterministic\n", d->name);
            lm_text_free(&f2);
            lm_text_free(&q);
            lm_text_free(&p);
            lm_text_free(&f);
        }
    CHECKF(bad == 0, "%d corruptions of %s failed", bad, d->name);
    for (int k = 0; k < nkinds; k++) CHECKF(seen[k], "%s never corrupted with kind %s", d->name, kinds[k]);
}

/* Same seed, same bytes; other seeds give other problems. */
static void th_determinism(const lm_task_domain *d) {
    for (int diff = 1; diff <= 5; diff++) {
        lm_text q1 = {0}, p1 = {0}, q2 = {0}, p2 = {0};
        lm_error err;
        CHECK(!d->generate(42, diff, &q1, &p1, &err) && !d->generate(42, diff, &q2, &p2, &err));
        CHECK(q1.len == q2.len && !memcmp(q1.data, q2.data, q1.len) && p1.len == p2.len &&
              !memcmp(p1.data, p2.data, p1.len));
        int distinct = 0;
        for (uint64_t s = 0; s < 20; s++) {
            lm_text q = {0}, p = {0};
            CHECK(!d->generate(1000 + s, diff, &q, &p, &err));
            distinct += strcmp(q.data, q1.data) != 0;
            lm_text_free(&q);
            lm_text_free(&p);
        }
        CHECKF(distinct >= 18, "%s d%d: only %d of 20 other seeds give another question", d->name, diff, distinct);
        lm_text_free(&q1);
        lm_text_free(&p1);
        lm_text_free(&q2);
        lm_text_free(&p2);
    }
    lm_text q = {0}, p = {0};
    lm_error err = {{0}};
    CHECK(d->generate(1, 0, &q, &p, &err) == -1 && err.msg[0]);
    CHECK(d->generate(1, 6, &q, &p, &err) == -1);
    lm_text_free(&q);
    lm_text_free(&p);
}

/* Random edits of reference answers (cut lines, changed, inserted, deleted
 * and swapped bytes) and pure garbage: the checker always answers with a
 * well-formed verdict; a question it recognises never makes it fail. */
static void th_fuzz(const lm_task_domain *d, int iters) {
    int bad = 0;
    static const char alphabet[] = "0123456789 +-*=(),.:x\n\tabcdefgwrityCFT";
    for (int it = 0; it < iters; it++) {
        lm_text q = {0}, p = {0};
        lm_error err = {{0}};
        if (d->generate((uint64_t)it, 1 + it % 5, &q, &p, &err)) {
            bad++;
            continue;
        }
        char *sol = th_solution(p.data);
        size_t n = strlen(sol);
        lm_task_rng r = {(uint64_t)it * 7919u, 0};
        int edits = (int)lm_task_rng_range(&r, 1, 4);
        for (int e = 0; e < edits && n; e++) {
            size_t at = (size_t)lm_task_rng_range(&r, 0, (int64_t)n - 1);
            switch (lm_task_rng_range(&r, 0, 4)) {
            case 0: n = at; break;                                                     /* truncate */
            case 1: sol[at] = alphabet[lm_task_rng_range(&r, 0, sizeof alphabet - 2)]; break; /* change */
            case 2: memmove(sol + at, sol + at + 1, n - at); n--; break;                 /* delete */
            case 3: { size_t b = (size_t)lm_task_rng_range(&r, 0, (int64_t)n - 1); char t = sol[at]; sol[at] = sol[b]; sol[b] = t; break; }
            default: if (at > 0) sol[at] = sol[at - 1] == '9' ? '0' : '9'; break;      /* a digit */
            }
            sol[n] = 0;
        }
        lm_check_result res;
        if (lm_task_check(q.data, sol, &res, &err) || !th_well_formed(&res, lm_task_count_lines(sol) + 1)) {
            if (bad++ < 5) printf("  %s: fuzz %d: %s -> %s %g %s %d %s\n%s\n", d->name, it, q.data, err.msg, res.score,
                                  res.kind, res.step, res.message, sol);
        }
        /* pure garbage as the solution */
        char g[200];
        int gl = (int)lm_task_rng_range(&r, 0, sizeof g - 1);
        for (int i = 0; i < gl; i++) g[i] = alphabet[lm_task_rng_range(&r, 0, sizeof alphabet - 2)];
        g[gl] = 0;
        if (lm_task_check(q.data, g, &res, &err) || !th_well_formed(&res, 200) || res.score == 1) {
            if (bad++ < 5) printf("  %s: garbage %d scored %g\n", d->name, it, res.score);
        }
        /* a damaged question: an error with one line, or a verdict */
        char *qq = strdup(q.data);
        size_t ql = strlen(qq), at = (size_t)lm_task_rng_range(&r, 0, (int64_t)ql - 1);
        qq[at] = alphabet[lm_task_rng_range(&r, 0, sizeof alphabet - 2)];
        if (lm_task_rng_range(&r, 0, 1)) qq[at + 1 <= ql ? at + 1 : ql] = 0;
        err.msg[0] = 0;
        int rc = lm_task_check(qq, p.data, &res, &err);
        if (rc ? (!err.msg[0] || strchr(err.msg, '\n')) : !th_well_formed(&res, 100)) {
            if (bad++ < 5) printf("  %s: damaged question '%s': rc %d '%s'\n", d->name, qq, rc, err.msg);
        }
        free(qq);
        free(sol);
        lm_text_free(&q);
        lm_text_free(&p);
    }
    CHECKF(bad == 0, "%d fuzz cases of %s failed", bad, d->name);
}

/* A question the domain must refuse with one clear line naming the problem. */
static void th_bad_question(const char *q, const char *want, int line) {
    lm_check_result r;
    lm_error err = {{0}};
    int rc = lm_task_check(q, "## Solution\nx\n", &r, &err);
    if (rc != -1 || !strstr(err.msg, want) || strchr(err.msg, '\n')) {
        printf("  line %d: question '%s': rc %d, message '%s' (expected one containing '%s')\n", line, q, rc, err.msg,
               want);
        CHECK(0);
    }
}
#define BAD_QUESTION(q, want) th_bad_question(q, want, __LINE__)

#endif
