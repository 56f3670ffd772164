/* test_tasks_util.c — src/tasks/util.c: strict integers, the template
 * matcher, solution lines, line edits, answers, draws. */
#include "test.h"
#include "tasks/util.h"

static int parse(const char *s, int signs, int64_t *v, size_t *used) { return lm_task_parse_int(s, strlen(s), signs, v, used); }

TEST(strict_integers) {
    int64_t v = 0;
    size_t u = 0;
    CHECK(parse("0", 0, &v, &u) == 1 && v == 0 && u == 1);
    CHECK(parse("123x", 0, &v, &u) == 1 && v == 123 && u == 3);
    CHECK(parse("-5", LM_INT_MINUS, &v, &u) == 1 && v == -5 && u == 2);
    CHECK(parse("-5", 0, &v, &u) == 0);
    CHECK(parse("+5", LM_INT_PLUS, &v, &u) == 1 && v == 5);
    CHECK(parse("+5", LM_INT_MINUS, &v, &u) == 0);
    CHECK(parse("007", 0, &v, &u) == 0);
    CHECK(parse("-0", LM_INT_MINUS, &v, &u) == 0);
    CHECK(parse("+0", LM_INT_PLUS, &v, &u) == 0);
    CHECK(parse("- 5", LM_INT_MINUS, &v, &u) == 0);
    CHECK(parse("", LM_INT_MINUS, &v, &u) == 0);
    CHECK(parse("-", LM_INT_MINUS, &v, &u) == 0);
    CHECK(parse("9223372036854775807", 0, &v, &u) == 1 && v == INT64_MAX);
    CHECK(parse("9223372036854775808", 0, &v, &u) == -1);
    CHECK(parse("-9223372036854775808", LM_INT_MINUS, &v, &u) == 1 && v == INT64_MIN);
    CHECK(parse("-9223372036854775809", LM_INT_MINUS, &v, &u) == -1);
    CHECK(parse("99999999999999999999999999", 0, &v, &u) == -1);
    /* the length bounds the parse, not the NUL */
    CHECK(lm_task_parse_int("12345", 2, 0, &v, &u) == 1 && v == 12 && u == 2);
}

static int m(const char *s, const char *t, int64_t *a, int64_t *b, int64_t *c) {
    return lm_task_match(s, strlen(s), t, a, b, c);
}

TEST(templates) {
    int64_t a = 0, b = 0, c = 0;
    CHECK(m("7 + 8 = 15", "%u + %u = %u", &a, &b, &c) == 1 && a == 7 && b == 8 && c == 15);
    CHECK(m("  7+8=15 \t", "%u + %u = %u", &a, &b, &c) == 1);
    CHECK(m("7 + 8 = 15.", "%u + %u = %u", &a, &b, &c) == 0);
    CHECK(m("7 + 8 = 1 5", "%u + %u = %u", &a, &b, &c) == 0);
    CHECK(m("7 + -8 = 15", "%u + %u = %u", &a, &b, &c) == 0);
    CHECK(m("7 + -8 = -1", "%d + %d = %d", &a, &b, &c) == 1 && b == -8 && c == -1);
    CHECK(m("Final carry 1", "Final carry %u", &a, &b, &c) == 1 && a == 1);
    CHECK(m("Final  carry\t1", "Final carry %u", &a, &b, &c) == 1);
    CHECK(m("Final carry1", "Final carry %u", &a, &b, &c) == 0);
    CHECK(m("Finalcarry 1", "Final carry %u", &a, &b, &c) == 0);
    CHECK(m("Final carrying 1", "Final carry %u", &a, &b, &c) == 0);
    CHECK(m("final carry 1", "Final carry %u", &a, &b, &c) == 0);
    CHECK(m("3x", "%dx", &a, &b, &c) == 1 && a == 3);
    CHECK(m("3 x", "%dx", &a, &b, &c) == 1);
    CHECK(m("3xy", "%dx", &a, &b, &c) == 0);
    CHECK(m("(-2)*36", "%p*%u", &a, &b, &c) == 1 && a == -2 && b == 36);
    CHECK(m("( -2 ) * 36", "%p*%u", &a, &b, &c) == 1 && a == -2);
    CHECK(m("2*36", "%p*%u", &a, &b, &c) == 1 && a == 2);
    CHECK(m("(2)*36", "%p*%u", &a, &b, &c) == 0);
    CHECK(m("-2*36", "%p*%u", &a, &b, &c) == 0);
    CHECK(m("(-0)*36", "%p*%u", &a, &b, &c) == 0);
    CHECK(m("(- 2)*36", "%p*%u", &a, &b, &c) == 0);
    CHECK(m("50%", "%u%%", &a, &b, &c) == 1 && a == 50);
    CHECK(m("1 = 99999999999999999999", "%u = %u", &a, &b, &c) == -1);
    CHECK(m("(-99999999999999999999)", "%p", &a, &b, &c) == -1);
    /* a prefix match leaves the scanner after it; a failed one leaves it alone */
    lm_scan sc;
    const char *s = "Column 3: 1 + 2";
    lm_scan_init(&sc, s, strlen(s));
    CHECK(lm_scan_fmt(&sc, "Column %u:", &a) == 1 && a == 3 && !lm_scan_end(&sc));
    const char *at = sc.p;
    CHECK(lm_scan_fmt(&sc, "%u - %u", &a, &b) == 0 && sc.p == at);
    CHECK(lm_scan_fmt(&sc, "%u + %u", &a, &b) == 1 && lm_scan_end(&sc));
}

TEST(lines) {
    const char *t = "a\n\n  b  c \r\n\t\n d";
    lm_task_lines L;
    CHECK(lm_task_split_lines(t, strlen(t), &L) == 0 && L.n == 3);
    CHECK(L.n == 3 && L.line[0].len == 1 && L.line[0].number == 1 && !strncmp(L.line[1].text, "b  c", L.line[1].len) &&
          L.line[1].len == 4 && L.line[2].number == 3 && L.line[2].len == 1 && L.line[2].text[0] == 'd');
    lm_task_lines_free(&L);
    CHECK(lm_task_split_lines(" \n\t\r\n", 5, &L) == 0 && L.n == 0);
    lm_task_lines_free(&L);
    /* many lines */
    lm_text big = {0};
    for (int i = 0; i < 1000; i++) lm_text_appendf(&big, "line %d\n", i);
    CHECK(lm_task_split_lines(big.data, big.len, &L) == 0 && L.n == 1000 && L.line[999].number == 1000);
    lm_task_lines_free(&L);
    lm_text_free(&big);
}

TEST(edits) {
    const char *body = "one\ntwo\nthree\n";
    lm_text o = {0};
    CHECK(lm_task_count_lines(body) == 3);
    CHECK(!lm_task_edit_lines(body, 2, 1, NULL, &o) && !strcmp(o.data, "one\nthree\n"));
    o.len = 0;
    CHECK(!lm_task_edit_lines(body, 1, 0, "zero", &o) && !strcmp(o.data, "zero\none\ntwo\nthree\n"));
    o.len = 0;
    CHECK(!lm_task_edit_lines(body, 3, 1, "THREE", &o) && !strcmp(o.data, "one\ntwo\nTHREE\n"));
    o.len = 0;
    CHECK(!lm_task_edit_lines(body, 4, 0, "four", &o) && !strcmp(o.data, "one\ntwo\nthree\nfour\n"));
    o.len = 0;
    CHECK(lm_task_edit_lines(body, 4, 1, NULL, &o) == -1);
    CHECK(lm_task_edit_lines(body, 0, 0, "x", &o) == -1);
    CHECK(lm_task_edit_lines(body, 5, 0, "x", &o) == -1);
    lm_text_free(&o);
}

TEST(answers_and_numbers) {
    lm_text a = {0};
    CHECK(!lm_task_answer("x = 1\n", 6, &a));
    CHECK(!strncmp(a.data, "## Solution\nx = 1\n\n## Self Evaluation\n", 38) && strstr(a.data, "\\boxed{1}"));
    const char *b;
    size_t n;
    lm_task_solution_part(a.data, &b, &n);
    CHECK(n == 7 && !strncmp(b, "x = 1\n\n", 7));
    lm_text_free(&a);
    char f[24], t[48];
    CHECK(!strcmp(lm_task_factor(f, -7), "(-7)") && !strcmp(lm_task_factor(f, 7), "7") && !strcmp(lm_task_factor(f, 0), "0"));
    CHECK(!strcmp(lm_task_factor(f, INT64_MIN), "(-9223372036854775808)"));
    CHECK(!strcmp(lm_task_i128_text(t, 0), "0") && !strcmp(lm_task_i128_text(t, -17), "-17"));
    CHECK(!strcmp(lm_task_i128_text(t, (__int128)1 << 100), "1267650600228229401496703205376"));
    CHECK(!strcmp(lm_task_i128_text(t, -((__int128)INT64_MAX * INT64_MAX)), "-85070591730234615847396907784232501249"));
    lm_text p = {0};
    CHECK(!lm_text_appendf(&p, "%s", "") && p.len == 0 && p.data && !p.data[0]);
    char longer[600];
    memset(longer, 'y', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    CHECK(!lm_text_appendf(&p, "<%s>", longer) && p.len == 601 && p.data[600] == '>');
    lm_text_free(&p);
}

TEST(draws) {
    lm_task_rng r1 = {5, 0}, r2 = {5, 0};
    int seen[7] = {0}, same = 1;
    for (int i = 0; i < 2000; i++) {
        int64_t x = lm_task_rng_range(&r1, -3, 3);
        same &= x == lm_task_rng_range(&r2, -3, 3);
        CHECK(x >= -3 && x <= 3);
        if (x >= -3 && x <= 3) seen[x + 3] = 1;
    }
    CHECK(same);
    for (int i = 0; i < 7; i++) CHECK(seen[i]);
    CHECK(lm_task_rng_range(&r1, 4, 4) == 4);
}

int main(void) {
    RUN(strict_integers);
    RUN(templates);
    RUN(lines);
    RUN(edits);
    RUN(answers_and_numbers);
    RUN(draws);
    return test_report("test_tasks_util");
}
