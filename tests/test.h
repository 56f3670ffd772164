/* test.h — the tiny test harness every tests/test_*.c uses.
 *
 * Each test file is one program: TEST(name) functions registered in main via
 * RUN(name); CHECK* record failures with file:line and go on; test_report()
 * prints "<file>: N passed, N failed, N skipped" and returns the exit status.
 * tests/run.sh adds the counts of all programs into the closing line. */
#ifndef LEMMA_TEST_H
#define LEMMA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed, test_skipped;
static int test_cur_failed;
static const char *test_cur_name;

#define TEST(name) static void name(void)

#define RUN(name) do {                                                        \
        test_cur_failed = 0; test_cur_name = #name;                           \
        name();                                                               \
        if (test_cur_failed < 0) { test_skipped++; }                          \
        else if (test_cur_failed) { test_failed++; printf("FAIL %s\n", #name); } \
        else { test_passed++; printf("ok   %s\n", #name); }                   \
        fflush(stdout);                                                       \
    } while (0)

/* Marks the current test skipped, with a visible reason. */
#define SKIP(...) do {                                                        \
        printf("skip %s: ", test_cur_name); printf(__VA_ARGS__); printf("\n"); \
        test_cur_failed = -1; return;                                         \
    } while (0)

#define CHECK(cond) do {                                                      \
        if (!(cond)) {                                                        \
            printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            if (test_cur_failed >= 0) test_cur_failed++;                      \
        }                                                                     \
    } while (0)

#define CHECKF(cond, ...) do {                                                \
        if (!(cond)) {                                                        \
            printf("  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__); printf("\n");                                \
            if (test_cur_failed >= 0) test_cur_failed++;                      \
        }                                                                     \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_NEAR(a, b, atol, rtol) do {                                     \
        double _a = (a), _b = (b);                                            \
        if (!(fabs(_a - _b) <= (atol) + (rtol) * fabs(_b))) {                 \
            printf("  %s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__,      \
                   __LINE__, #a, _a, #b, _b);                                 \
            if (test_cur_failed >= 0) test_cur_failed++;                      \
        }                                                                     \
    } while (0)

static inline int test_report(const char *file) {
    printf("%s: %d passed, %d failed, %d skipped\n", file, test_passed, test_failed,
           test_skipped);
    return test_failed ? 1 : 0;
}

/* Directory of ../shared/data relative to the repository root, or NULL. */
static inline const char *test_shared_dir(void) {
    const char *env = getenv("LEMMA_SHARED");
    static const char *cands[] = {"../shared", NULL};
    if (env && *env) return env;
    for (int i = 0; cands[i]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/docs/MISSION.md", cands[i]);
        FILE *f = fopen(p, "r");
        if (f) { fclose(f); return cands[i]; }
    }
    return NULL;
}

#endif
