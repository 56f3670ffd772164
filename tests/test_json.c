/* test_json.c — the strict JSON parser (src/formats/json.c): valid documents
 * (escapes, surrogate pairs, numbers, int64 limits, nesting), rejected ones
 * with their exact error offsets, typed accessors, json_write_string and
 * json_quote, and that the lm_text writer (formats/jsonw.h) escapes the same. */
#include <stdint.h>

#include "formats/json.h"
#include "formats/jsonw.h"
#include "test.h"

static json_doc *parse(const char *s) {
    lm_error err = {{0}};
    json_doc *d = json_parse(s, strlen(s), &err);
    if (!d) printf("  unexpected parse error on %.60s: %s\n", s, err.msg);
    return d;
}

/* Parses s (len bytes) expecting failure; returns 1 when err.msg equals want. */
static int fails_with_n(const char *s, size_t len, const char *want) {
    lm_error err = {{0}};
    json_doc *d = json_parse(s, len, &err);
    if (d) {
        printf("  accepted: %.60s\n", s);
        json_free(d);
        return 0;
    }
    if (strcmp(err.msg, want)) {
        printf("  on %.60s\n    got:  %s\n    want: %s\n", s, err.msg, want);
        return 0;
    }
    return 1;
}
static int fails_with(const char *s, const char *want) { return fails_with_n(s, strlen(s), want); }

/* Parses s expecting failure with any message. */
static int rejects(const char *s, size_t len) {
    lm_error err = {{0}};
    json_doc *d = json_parse(s, len, &err);
    if (d) {
        json_free(d);
        printf("  accepted: %.*s\n", (int)(len < 60 ? len : 60), s);
        return 0;
    }
    return err.msg[0] != 0 && strchr(err.msg, '\n') == NULL;
}

TEST(scalars) {
    json_doc *d = parse(" true ");
    CHECK(d && json_root(d)->type == JSON_TRUE);
    json_free(d);
    d = parse("false");
    CHECK(d && json_root(d)->type == JSON_FALSE);
    json_free(d);
    d = parse("\n\t\r null\n");
    CHECK(d && json_root(d)->type == JSON_NULL && json_root(d)->offset == 4);
    json_free(d);
    d = parse("\"\"");
    CHECK(d && json_root(d)->type == JSON_STRING && json_root(d)->len == 0 && json_root(d)->str[0] == 0);
    json_free(d);
    d = parse("\xEF\xBB\xBF{}"); /* BOM tolerated */
    CHECK(d && json_root(d)->type == JSON_OBJECT && json_root(d)->offset == 3);
    json_free(d);
}

TEST(objects_and_arrays) {
    json_doc *d = parse("{\"a\": 1, \"b\": [true, null, {\"c\": \"x\"}], \"d\": 2, \"e\": {}, \"f\": []}");
    CHECK(d != NULL);
    if (!d) return;
    const json_value *r = json_root(d);
    CHECK(r->type == JSON_OBJECT && r->len == 5);
    int64_t i;
    CHECK(json_as_int(json_get(r, "a"), &i) && i == 1);
    const json_value *b = json_get(r, "b");
    CHECK(b && b->type == JSON_ARRAY && b->len == 3);
    CHECK(json_at(b, 0)->type == JSON_TRUE && json_at(b, 1)->type == JSON_NULL);
    CHECK(json_at(b, 3) == NULL);
    const json_value *c = json_get(json_at(b, 2), "c");
    CHECK(c && c->type == JSON_STRING && !strcmp(c->str, "x") && c->offset == 33);
    CHECK(json_get(r, "e")->len == 0 && json_get(r, "e")->child == NULL);
    CHECK(json_get(r, "f")->type == JSON_ARRAY && json_get(r, "f")->len == 0);
    CHECK(json_get(r, "zz") == NULL);
    CHECK(json_get(b, "a") == NULL);      /* not an object */
    CHECK(json_at(r, 0) == NULL);         /* not an array */
    CHECK(json_get(NULL, "a") == NULL && json_at(NULL, 0) == NULL);
    json_free(d);
}

TEST(string_escapes) {
    json_doc *d = parse("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\\u0041\\u00e9\\u20ac\\u0000z\"");
    CHECK(d != NULL);
    if (!d) return;
    const json_value *v = json_root(d);
    static const char want[] = "a\"b\\c/d\be\ff\ng\rh\tiA\xc3\xa9\xe2\x82\xac\0z";
    CHECK(v->len == sizeof want - 1);
    CHECK(!memcmp(v->str, want, sizeof want)); /* also checks the final NUL */
    json_free(d);
    /* Raw UTF-8 passes through unchanged. */
    d = parse("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    CHECK(d && json_root(d)->len == 9 && !strcmp(json_root(d)->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    json_free(d);
}

TEST(surrogate_pairs) {
    json_doc *d = parse("[\"\\ud83d\\ude00\", \"\\uD834\\uDD1E\", \"\\udbff\\udfff\", \"\\ud800\\udc00\"]");
    CHECK(d != NULL);
    if (!d) return;
    const json_value *r = json_root(d);
    CHECK(!strcmp(json_at(r, 0)->str, "\xf0\x9f\x98\x80")); /* U+1F600 */
    CHECK(!strcmp(json_at(r, 1)->str, "\xf0\x9d\x84\x9e")); /* U+1D11E */
    CHECK(!strcmp(json_at(r, 2)->str, "\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    CHECK(!strcmp(json_at(r, 3)->str, "\xf0\x90\x80\x80")); /* U+10000 */
    json_free(d);
}

TEST(numbers) {
    json_doc *d = parse("[0, -0, 1, -1, 12345, 1.5, -2.25e3, 1E2, 1e-2, 0.5, 1.0, 1e300, 4.9e-324]");
    CHECK(d != NULL);
    if (!d) return;
    const json_value *r = json_root(d);
    int64_t i;
    double x;
    CHECK(json_at(r, 0)->is_int && json_as_int(json_at(r, 0), &i) && i == 0);
    CHECK(json_as_int(json_at(r, 1), &i) && i == 0);
    CHECK(json_as_int(json_at(r, 3), &i) && i == -1);
    CHECK(json_as_int(json_at(r, 4), &i) && i == 12345);
    CHECK(!json_at(r, 5)->is_int && !json_as_int(json_at(r, 5), &i));
    CHECK(json_as_double(json_at(r, 5), &x) && x == 1.5);
    CHECK(json_as_double(json_at(r, 6), &x) && x == -2250.0);
    CHECK(json_as_int(json_at(r, 6), &i) && i == -2250); /* exact integral value */
    CHECK(json_as_int(json_at(r, 7), &i) && i == 100);
    CHECK(json_as_double(json_at(r, 8), &x) && x == 0.01);
    CHECK(!json_as_int(json_at(r, 8), &i));
    CHECK(json_as_int(json_at(r, 10), &i) && i == 1);
    CHECK(json_as_double(json_at(r, 11), &x) && x == 1e300);
    CHECK(!json_as_int(json_at(r, 11), &i));
    /* A number no double holds is an error, not inf (inf would be written
     * back as invalid JSON). */
    lm_error e;
    CHECK(json_parse("[1e400]", 7, &e) == NULL && strstr(e.msg, "byte 1: number out of range"));
    CHECK(json_parse("-1e400", 6, &e) == NULL && strstr(e.msg, "number out of range"));
    CHECK(json_as_double(json_at(r, 12), &x) && x > 0 && x < 1e-300);
    CHECK(!json_as_int(json_at(r, 11), &i));
    CHECK(!json_as_double(NULL, &x) && !json_as_int(NULL, &i));
    json_free(d);
}

TEST(int64_limits) {
    json_doc *d = parse("[9223372036854775807, -9223372036854775808, 9223372036854775808, "
                        "-9223372036854775809, 18446744073709551616, 9007199254740993e0, 1e15]");
    CHECK(d != NULL);
    if (!d) return;
    const json_value *r = json_root(d);
    int64_t i;
    CHECK(json_at(r, 0)->is_int && json_as_int(json_at(r, 0), &i) && i == INT64_MAX);
    CHECK(json_at(r, 1)->is_int && json_as_int(json_at(r, 1), &i) && i == INT64_MIN);
    CHECK(!json_at(r, 2)->is_int && !json_as_int(json_at(r, 2), &i)); /* out of range */
    CHECK(!json_at(r, 3)->is_int && !json_as_int(json_at(r, 3), &i));
    CHECK(!json_as_int(json_at(r, 4), &i));
    double x;
    CHECK(json_as_double(json_at(r, 2), &x) && x == 9223372036854775808.0);
    CHECK(!json_as_int(json_at(r, 5), &i)); /* not exact in a double: refused */
    CHECK(json_as_int(json_at(r, 6), &i) && i == 1000000000000000ll);
    json_free(d);
}

TEST(nesting) {
    enum { N = JSON_MAX_DEPTH };
    char *s = malloc(2 * N + 8);
    for (int i = 0; i < N; i++) s[i] = '[', s[N + i] = ']';
    s[2 * N] = 0;
    json_doc *d = parse(s);
    CHECK(d != NULL); /* exactly the limit */
    if (d) {
        const json_value *v = json_root(d);
        int depth = 0;
        while (v && v->type == JSON_ARRAY) { depth++; v = v->child; }
        CHECK(depth == N);
    }
    json_free(d);
    free(s);
    /* One more level, and a depth bomb, fail at the first level too deep. */
    s = malloc(2 * N + 8);
    for (int i = 0; i <= N; i++) s[i] = '[';
    s[N + 1] = 0;
    char want[64];
    snprintf(want, sizeof want, "byte %d: nesting too deep", N);
    CHECK(fails_with(s, want));
    free(s);
    size_t big = 10u << 20;
    s = malloc(big + 1);
    for (size_t i = 0; i < big; i++) s[i] = i % 2 ? '[' : '{';
    s[big] = 0;
    CHECK(rejects(s, big)); /* {[{[... : object keys expected, fails fast */
    for (size_t i = 0; i < big; i++) s[i] = '[';
    CHECK(fails_with_n(s, big, want));
    free(s);
    d = parse("{\"a\":{\"b\":{\"c\":[[[{\"d\":1}]]]}}}");
    const json_value *v = json_at(json_at(json_at(json_get(json_get(json_get(json_root(d), "a"), "b"), "c"), 0), 0), 0);
    int64_t one;
    CHECK(json_as_int(json_get(v, "d"), &one) && one == 1);
    json_free(d);
}

TEST(invalid_with_offsets) {
    CHECK(fails_with("", "byte 0 (end of input): expected a value"));
    CHECK(fails_with("   ", "byte 3 (end of input): expected a value"));
    CHECK(fails_with("[1, 2,]", "byte 6: expected a value"));                 /* trailing comma */
    CHECK(fails_with("{\"a\": 1,}", "byte 8: expected a string key"));
    CHECK(fails_with("{\"a\" 1}", "byte 5: expected ':'"));
    CHECK(fails_with("{1: 2}", "byte 1: expected a string key"));
    CHECK(fails_with("[1 2]", "byte 3: expected ',' or ']'"));
    CHECK(fails_with("{\"a\": 1 \"b\": 2}", "byte 8: expected ',' or '}'"));
    CHECK(fails_with("01", "byte 0: leading zero in number"));
    CHECK(fails_with("[-012]", "byte 1: leading zero in number"));
    CHECK(fails_with("1.", "byte 2 (end of input): expected a digit after '.'"));
    CHECK(fails_with("1.e5", "byte 2: expected a digit after '.'"));
    CHECK(fails_with("1e", "byte 2 (end of input): expected a digit in exponent"));
    CHECK(fails_with("1e+", "byte 3 (end of input): expected a digit in exponent"));
    CHECK(fails_with("-", "byte 0: expected a digit"));
    CHECK(fails_with("-x", "byte 0: expected a value"));
    CHECK(fails_with("+1", "byte 0: expected a value"));
    CHECK(fails_with(".5", "byte 0: expected a value"));
    CHECK(fails_with("[NaN]", "byte 1: expected a value"));
    CHECK(fails_with("Infinity", "byte 0: expected a value"));
    CHECK(fails_with("-Infinity", "byte 0: expected a value"));
    CHECK(fails_with("tru", "byte 0: expected a value"));
    CHECK(fails_with("nul", "byte 0: expected a value"));
    CHECK(fails_with("True", "byte 0: expected a value"));
    CHECK(fails_with("1 2", "byte 2: unexpected data after the top-level value"));   /* garbage after */
    CHECK(fails_with("{} x", "byte 3: unexpected data after the top-level value"));
    CHECK(fails_with("[] ]", "byte 3: unexpected data after the top-level value"));
    CHECK(fails_with("\"abc", "byte 0: unterminated string"));
    CHECK(fails_with("[\"abc\\\"]", "byte 1: unterminated string"));
    CHECK(fails_with("[1, 2", "byte 5 (end of input): expected ',' or ']'"));
    CHECK(fails_with("{\"a\": ", "byte 6 (end of input): expected a value"));
    CHECK(fails_with("{\"a\"", "byte 4 (end of input): expected ':'"));
    CHECK(fails_with("{", "byte 1 (end of input): expected a string key"));
    CHECK(fails_with("// c\n1", "byte 0: expected a value"));                  /* no comments */
    CHECK(fails_with("[1] /* c */", "byte 4: unexpected data after the top-level value"));
    CHECK(fails_with("'a'", "byte 0: expected a value"));                      /* no single quotes */
}

TEST(invalid_strings) {
    CHECK(fails_with("\"a\\x\"", "byte 2: invalid escape in string"));
    CHECK(fails_with("\"\\u12\"", "byte 1: expected 4 hex digits after \\u"));
    CHECK(fails_with("\"\\u12g4\"", "byte 1: expected 4 hex digits after \\u"));
    CHECK(fails_with("\"ab\\udc00\"", "byte 3: lone low surrogate in \\u escape"));
    CHECK(fails_with("\"\\ud800\"", "byte 1: high surrogate not followed by a low surrogate escape"));
    CHECK(fails_with("\"\\ud800x\"", "byte 1: high surrogate not followed by a low surrogate escape"));
    CHECK(fails_with("\"\\ud800\\u0041\"", "byte 1: high surrogate not followed by a low surrogate escape"));
    CHECK(fails_with("\"\\ud800\\ud800\"", "byte 1: high surrogate not followed by a low surrogate escape"));
    CHECK(fails_with("\"\\ud800\\udc\"", "byte 1: high surrogate not followed by a low surrogate escape"));
    CHECK(fails_with("\"a\tb\"", "byte 2: control character in string (expected \\u escape)"));
    CHECK(fails_with("\"a\nb\"", "byte 2: control character in string (expected \\u escape)"));
    CHECK(fails_with_n("\"a\0b\"", 5, "byte 2: control character in string (expected \\u escape)"));
    CHECK(fails_with("[\"ok\", \"\x1f\"]", "byte 8: control character in string (expected \\u escape)"));
    /* Invalid UTF-8: stray continuation, overlong forms, surrogates encoded
     * directly, beyond U+10FFFF, truncated sequences, 0xFE/0xFF. */
    CHECK(fails_with("\"a\x80\"", "byte 2: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xc0\xaf\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xc1\xbf\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xe0\x80\xaf\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xf0\x80\x80\xaf\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xed\xa0\x80\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xf4\x90\x80\x80\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xe2\x82\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"ab\xc3", "byte 3: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xff\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("\"\xfe\"", "byte 1: invalid UTF-8 in string"));
    CHECK(fails_with("{\"k\xf8\": 1}", "byte 3: invalid UTF-8 in string"));
    /* Outside strings, any non-ASCII byte is just not a value. */
    CHECK(fails_with("\xc3\xa9", "byte 0: expected a value"));
}

TEST(not_nul_terminated) {
    /* The parser must read only len bytes: the buffer ends exactly there. */
    const char *cases[] = {"123", "-1.5e3", "\"abc\"", "[1,2]", "{\"a\":true}", "tru", "\"ab", "1e", "[1,", "\"\\u00"};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = strlen(cases[k]);
        char *buf = malloc(n); /* no NUL: ASan catches any read past */
        memcpy(buf, cases[k], n);
        lm_error err;
        json_doc *d = json_parse(buf, n, &err);
        int ok = k < 5;
        CHECKF((d != NULL) == ok, "%s", cases[k]);
        json_free(d);
        free(buf);
    }
    /* A prefix of a valid document is parsed as the prefix only. */
    json_doc *d = json_parse("12345", 2, NULL);
    int64_t i;
    CHECK(d && json_as_int(json_root(d), &i) && i == 12);
    json_free(d);
    CHECK(json_parse("[1]", 0, NULL) == NULL); /* err may be NULL */
}

TEST(typed_accessors) {
    json_doc *d = parse("{\"t\": true, \"f\": false, \"s\": \"x\", \"n\": null, \"i\": 3}");
    if (!d) { CHECK(0); return; }
    const json_value *r = json_root(d);
    int b = -1;
    int64_t i;
    double x;
    CHECK(json_as_bool(json_get(r, "t"), &b) && b == 1);
    CHECK(json_as_bool(json_get(r, "f"), &b) && b == 0);
    CHECK(!json_as_bool(json_get(r, "i"), &b) && !json_as_bool(json_get(r, "n"), &b) && !json_as_bool(NULL, &b));
    CHECK(!json_as_int(json_get(r, "s"), &i) && !json_as_double(json_get(r, "t"), &x));
    CHECK(!strcmp(json_type_name(JSON_OBJECT), "object") && !strcmp(json_type_name(JSON_NUMBER), "number"));
    CHECK(!strcmp(json_type_name((json_type)99), "?"));
    json_free(d);
}

/* Round trip: every byte string that is valid UTF-8 survives write + parse. */
static int round_trips(const char *s, size_t len) {
    char buf[4096];
    size_t pos = 0;
    if (json_write_string(buf, sizeof buf, &pos, s, len)) return 0;
    if (pos != strlen(buf)) return 0; /* NUL-terminated, *pos at the NUL */
    if (memchr(buf, '\n', pos) || memchr(buf, '\r', pos)) return 0;
    lm_error err;
    json_doc *d = json_parse(buf, pos, &err);
    if (!d) {
        printf("  reparse failed: %s\n", err.msg);
        return 0;
    }
    const json_value *v = json_root(d);
    int ok = v->type == JSON_STRING && v->len == len && !memcmp(v->str, s, len);
    json_free(d);
    return ok;
}

TEST(write_string_round_trip) {
    CHECK(round_trips("", 0));
    CHECK(round_trips("plain", 5));
    CHECK(round_trips("q\"b\\s/", 6));
    CHECK(round_trips("\n\r\t\b\f", 5));
    CHECK(round_trips("a\0b", 3));
    char all[32];
    for (int i = 0; i < 32; i++) all[i] = (char)i;
    CHECK(round_trips(all, 32));
    CHECK(round_trips("\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf", 17));
    /* Exact text of a few. */
    char buf[64];
    size_t pos = 0;
    CHECK(json_write_string(buf, sizeof buf, &pos, "a\"\x01\n", 4) == 0);
    CHECK(!strcmp(buf, "\"a\\\"\\u0001\\n\""));
    /* Appends at *pos. */
    size_t p2 = pos;
    CHECK(json_write_string(buf, sizeof buf, &p2, "z", 1) == 0 && !strcmp(buf + pos, "\"z\"") && p2 == pos + 3);
    /* Does not fit: -1, *pos unchanged, never writes past cap. */
    char small[8];
    memset(small, 'X', sizeof small);
    pos = 0;
    CHECK(json_write_string(small, 6, &pos, "abcdef", 6) == -1 && pos == 0);
    CHECK(small[6] == 'X' && small[7] == 'X');
    pos = 0;
    CHECK(json_write_string(small, 5, &pos, "abc", 3) == -1 && pos == 0); /* needs 6 with the NUL */
    pos = 0;
    CHECK(json_write_string(small, 6, &pos, "abc", 3) == 0 && !strcmp(small, "\"abc\"") && pos == 5);
    /* A pseudo-random sweep of byte strings made of valid pieces. */
    static const char *pieces[] = {"a", "\"", "\\", "\x01", "\x1f", "\n", "\xc3\xa9", "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80", "/", " ", "\0"};
    uint64_t st = 12345;
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        char s[256];
        size_t n = 0;
        int parts = (int)(st % 40);
        for (int k = 0; k < parts; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            const char *p = pieces[(st >> 33) % 12];
            size_t pl = p[0] ? strlen(p) : 1;
            memcpy(s + n, p, pl);
            n += pl;
        }
        st = st * 6364136223846793005ull + 1;
        if (!round_trips(s, n)) bad++;
    }
    CHECKF(bad == 0, "%d of 2000 strings did not round-trip", bad);
}

TEST(quote_for_messages) {
    char q[16];
    CHECK(!strcmp(json_quote(q, sizeof q, "F99", 3), "\"F99\""));
    CHECK(!strcmp(json_quote(q, sizeof q, "a\nb", 3), "\"a\\nb\""));
    CHECK(!strcmp(json_quote(q, sizeof q, "abcdefghijklmnopqrstuvwxyz", 26), "\"abcdefghij...\""));
    CHECK(strlen(q) < sizeof q);
    /* Never cuts inside a UTF-8 sequence: 10 bytes fit, the 2-byte é at 9..10 does not. */
    CHECK(!strcmp(json_quote(q, sizeof q, "abcdefghi\xc3\xa9xyz", 14), "\"abcdefghi...\""));
    /* Escapes are not cut either. */
    CHECK(!strcmp(json_quote(q, sizeof q, "abcdefgh\x01zzzzz", 14), "\"abcdefgh...\""));
    char q8[8];
    CHECK(!strcmp(json_quote(q8, sizeof q8, "abcdefgh", 8), "\"ab...\""));
}

/* A key twice in one object is an error naming the key and the byte offset
 * of its second occurrence, whatever the object's size (small objects are
 * checked pairwise, large ones through a hash table) and however the key is
 * spelt (escapes are decoded first). */
TEST(duplicate_keys) {
    CHECK(fails_with("{\"a\": 1, \"b\": 2, \"a\": 3}",
                     "byte 17: duplicate key \"a\" (a key may appear once per object)"));
    CHECK(fails_with("{\"x\": {\"k\": 1, \"k\": 1}}", "byte 15: duplicate key \"k\" (a key may appear once per object)"));
    CHECK(fails_with("[{\"a\": 1}, {\"\\u0061\": 1, \"a\": 2}]",
                     "byte 25: duplicate key \"a\" (a key may appear once per object)"));
    CHECK(fails_with("{\"\": 1, \"\": 2}", "byte 8: duplicate key \"\" (a key may appear once per object)"));
    json_doc *d = parse("{\"a\": 1, \"A\": 2, \"a \": 3, \"b\": {\"a\": 4}}"); /* distinct keys, same key in a child */
    CHECK(d && json_root(d)->len == 4);
    json_free(d);
    /* 100,000 keys: linear in the number of keys (a pairwise check would be
     * 5e9 comparisons); the duplicate is the last one, of the first key. */
    enum { N = 100000 };
    size_t cap = (size_t)N * 16 + 64, pos = 0;
    char *s = malloc(cap);
    s[pos++] = '{';
    for (int i = 0; i < N; i++) pos += (size_t)snprintf(s + pos, cap - pos, "%s\"k%d\":%d", i ? "," : "", i, i);
    size_t dup_at = pos + 1;
    pos += (size_t)snprintf(s + pos, cap - pos, ",\"k0\":0}");
    char want[96];
    snprintf(want, sizeof want, "byte %zu: duplicate key \"k0\" (a key may appear once per object)", dup_at);
    CHECK(fails_with_n(s, pos, want));
    s[dup_at - 1] = '}'; /* without the duplicate: accepted, every key found */
    lm_error e = {{0}};
    d = json_parse(s, dup_at, &e);
    CHECK(d && json_root(d)->len == N);
    int64_t v;
    CHECK(d && json_as_int(json_get(json_root(d), "k99999"), &v) && v == 99999);
    json_free(d);
    free(s);
}

typedef struct members_seen {
    int n;
    char keys[8][8];
    int64_t sum;
} members_seen;

static int count_member(void *ctx, const json_value *m) {
    members_seen *c = ctx;
    if (c->n < 8) snprintf(c->keys[c->n], sizeof c->keys[0], "%s", m->key);
    c->n++;
    int64_t v;
    if (json_as_int(m, &v)) c->sum += v;
    else if (m->type == JSON_OBJECT) c->sum += (int64_t)m->len;
    return 0;
}

static int stop_at_second(void *ctx, const json_value *m) {
    (void)m;
    return ++*(int *)ctx == 2;
}

/* json_parse_each_member: the members in order, the same errors as
 * json_parse (duplicates included, also ones far apart), and a stop from the
 * callback. */
TEST(each_member) {
    lm_error e = {{0}};
    members_seen c = {0};
    const char *doc = "\xEF\xBB\xBF {\"a\": 1, \"b\": {\"x\": [1, 2], \"y\": null}, \"c\": 40}  ";
    CHECK(json_parse_each_member(doc, strlen(doc), count_member, &c, &e) == 0);
    CHECK(c.n == 3 && !strcmp(c.keys[0], "a") && !strcmp(c.keys[1], "b") && !strcmp(c.keys[2], "c") && c.sum == 43);
    c.n = 0;
    CHECK(json_parse_each_member("{}", 2, count_member, &c, &e) == 0 && c.n == 0);
    CHECK(json_parse_each_member("[1, 2]", 6, count_member, &c, &e) == -1 &&
          !strcmp(e.msg, "byte 0: expected an object, found an array"));
    CHECK(json_parse_each_member("  x", 3, count_member, &c, &e) == -1 && !strcmp(e.msg, "byte 2: expected an object"));
    CHECK(json_parse_each_member("", 0, count_member, &c, &e) == -1 &&
          !strcmp(e.msg, "byte 0 (end of input): expected an object"));
    CHECK(json_parse_each_member("{\"a\": 1,}", 9, count_member, &c, &e) == -1 &&
          !strcmp(e.msg, "byte 8: expected a string key"));
    CHECK(json_parse_each_member("{\"a\": 1} {}", 11, count_member, &c, &e) == -1 &&
          !strcmp(e.msg, "byte 9: unexpected data after the top-level value"));
    CHECK(json_parse_each_member("{\"a\": {\"b\": 1, \"b\": 2}}", 24, count_member, &c, &e) == -1 &&
          !strcmp(e.msg, "byte 15: duplicate key \"b\" (a key may appear once per object)"));
    int calls = 0;
    CHECK(json_parse_each_member("{\"a\": 1, \"b\": 2, \"c\": 3}", 24, stop_at_second, &calls, &e) == -1 && calls == 2);
    /* 50,000 members, then the first key again (spelt with an escape). */
    enum { N = 50000 };
    size_t cap = (size_t)N * 40 + 64, pos = 0;
    char *s = malloc(cap);
    s[pos++] = '{';
    for (int i = 0; i < N; i++) pos += (size_t)snprintf(s + pos, cap - pos, "%s\"t%d\":{\"v\":[%d]}", i ? "," : "", i, i);
    size_t dup_at = pos + 1;
    pos += (size_t)snprintf(s + pos, cap - pos, ",\"\\u00740\":{}}");
    c.n = 0;
    CHECK(json_parse_each_member(s, pos, count_member, &c, &e) == -1 && c.n == N);
    char want[96];
    snprintf(want, sizeof want, "byte %zu: duplicate key \"t0\" (a key may appear once per object)", dup_at);
    CHECKF(!strcmp(e.msg, want), "%s", e.msg);
    free(s);
}

/* The fixed-buffer writer and the lm_text writer share one escape table:
 * every ASCII byte and a mixed string come out byte for byte the same; they
 * differ only on invalid UTF-8, which jw_strn replaces with U+FFFD. */
TEST(two_writers_same_bytes) {
    int same = 1;
    for (int c = 0; c < 0x80 && same; c++) {
        char one = (char)c, buf[16];
        size_t pos = 0;
        lm_text t = {0};
        same = json_write_string(buf, sizeof buf, &pos, &one, 1) == 0 && jw_strn(&t, &one, 1) == 0 &&
               t.len == pos && !memcmp(t.data, buf, pos);
        if (!same) printf("  byte 0x%02x differs\n", c);
        lm_text_free(&t);
    }
    CHECK(same);
    const char *mixed = "caf\xc3\xa9 \"q\" \\ \t\x01 \xf0\x9f\x98\x80 end";
    char buf[128];
    size_t pos = 0;
    lm_text t = {0};
    CHECK(json_write_string(buf, sizeof buf, &pos, mixed, strlen(mixed)) == 0 && jw_str(&t, mixed) == 0);
    CHECK(t.len == pos && !memcmp(t.data, buf, pos));
    t.len = 0;
    CHECK(jw_strn(&t, "a\xff" "b", 3) == 0 && !strcmp(t.data, "\"a\xef\xbf\xbd" "b\""));
    lm_text_free(&t);
}

int main(void) {
    RUN(scalars);
    RUN(objects_and_arrays);
    RUN(duplicate_keys);
    RUN(each_member);
    RUN(string_escapes);
    RUN(surrogate_pairs);
    RUN(numbers);
    RUN(int64_limits);
    RUN(nesting);
    RUN(invalid_with_offsets);
    RUN(invalid_strings);
    RUN(not_nul_terminated);
    RUN(typed_accessors);
    RUN(write_string_round_trip);
    RUN(quote_for_messages);
    RUN(two_writers_same_bytes);
    return test_report("test_json");
}
