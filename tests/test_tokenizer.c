/* test_tokenizer.c — the tokenizer against the DeepSeek-V3 reference cases
 * (../shared/data/tokenizer/deepseek-v3-cases.jsonl, ids from HF tokenizers),
 * fast BPE paths against the plain reference, decode/streaming round trips,
 * UTF-8 handling and malformed tokenizer.json inputs. */
#include <stdint.h>

#include "core/utf8.h"
#include "formats/json.h"
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static lm_tokenizer *ds_tok;
static char ds_dir[600];

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static int ids_equal(const lm_ids *got, const json_value *want) {
    if (!want || want->type != JSON_ARRAY || got->n != want->len) return 0;
    size_t i = 0;
    for (const json_value *e = want->child; e; e = e->next, i++) {
        int64_t v;
        if (!json_as_int(e, &v) || v != got->ids[i]) return 0;
    }
    return 1;
}

static void print_ids(const char *what, const lm_ids *v) {
    printf("    %s:", what);
    for (size_t i = 0; i < v->n && i < 40; i++) printf(" %d", v->ids[i]);
    printf("%s\n", v->n > 40 ? " ..." : "");
}

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* Input bytes of a case: bytes_hex when present, else text. */
static char *case_input(const json_value *rec, size_t *n) {
    const json_value *hx = json_get(rec, "bytes_hex");
    if (hx && hx->type == JSON_STRING) {
        char *b = malloc(hx->len / 2 + 1);
        for (size_t i = 0; i + 1 < hx->len; i += 2) b[i / 2] = (char)(hexval(hx->str[i]) * 16 + hexval(hx->str[i + 1]));
        *n = hx->len / 2;
        return b;
    }
    const json_value *t = json_get(rec, "text");
    char *b = malloc(t->len + 1);
    memcpy(b, t->str, t->len + 1);
    *n = t->len;
    return b;
}

static int load_ds(void) {
    if (ds_tok) return 1;
    const char *sh = test_shared_dir();
    if (!sh) return 0;
    snprintf(ds_dir, sizeof ds_dir, "%s/data/tokenizer/deepseek-v3", sh);
    lm_error err;
    ds_tok = lm_tokenizer_load(ds_dir, &err);
    if (!ds_tok) printf("  load failed: %s\n", err.msg);
    return ds_tok != NULL;
}

TEST(test_reference_cases) {
    if (!load_ds()) SKIP("../shared (DeepSeek-V3 tokenizer data) is absent");
    char path[700];
    snprintf(path, sizeof path, "%s/data/tokenizer/deepseek-v3-cases.jsonl", test_shared_dir());
    size_t len;
    char *data = slurp(path, &len);
    if (!data) SKIP("%s is absent", path);
    int ncase = 0, nok = 0, nplain = 0, nhex = 0, ndec = 0;
    char *line = data;
    while (line < data + len) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
        if (ll == 0) { line += 1; continue; }
        lm_error err;
        json_doc *doc = json_parse(line, ll, &err);
        CHECKF(doc != NULL, "case %d: %s", ncase, err.msg);
        if (!doc) break;
        const json_value *rec = json_root(doc);
        size_t n;
        char *in = case_input(rec, &n);
        const json_value *want = json_get(rec, "ids");
        const json_value *plain = json_get(rec, "ids_plain");
        const json_value *note = json_get(rec, "note");
        lm_ids got = {0}, gotp = {0};
        int ok = lm_tokenizer_encode(ds_tok, in, n, LM_TOK_SPECIAL, &got, &err) == 0 && ids_equal(&got, want);
        CHECKF(ok, "case %d (%s): ids differ", ncase, note ? note->str : "");
        if (!ok) print_ids("got ", &got);
        int okp = lm_tokenizer_encode(ds_tok, in, n, 0, &gotp, &err) == 0 && ids_equal(&gotp, plain ? plain : want);
        CHECKF(okp, "case %d (%s): ids_plain differ", ncase, note ? note->str : "");
        if (!okp) print_ids("got ", &gotp);
        if (plain) nplain++;
        if (json_get(rec, "bytes_hex")) nhex++;
        /* decode(ids) == text; decode(ids, skip special) == decoded_skip_special */
        lm_text dec = {0}, dsk = {0};
        const json_value *text = json_get(rec, "text");
        CHECK(lm_tokenizer_decode(ds_tok, got.ids, got.n, 0, &dec, &err) == 0);
        CHECKF(dec.len == text->len && memcmp(dec.data, text->str, dec.len) == 0, "case %d: decode differs", ncase);
        const json_value *skip = json_get(rec, "decoded_skip_special");
        if (skip) {
            ndec++;
            CHECK(lm_tokenizer_decode(ds_tok, got.ids, got.n, LM_TOK_SKIP_SPECIAL, &dsk, &err) == 0);
            CHECKF(dsk.len == skip->len && memcmp(dsk.data, skip->str, dsk.len) == 0, "case %d: skip-special decode", ncase);
        }
        /* streaming decode of ids_plain, one id at a time, equals decode */
        lm_text st = {0};
        lm_tok_stream s;
        lm_tok_stream_init(&s, ds_tok, 0);
        for (size_t i = 0; i < gotp.n; i++) {
            size_t before = st.len;
            CHECK(lm_tok_stream_push(&s, gotp.ids[i], &st, &err) == 0);
            CHECKF(lm_utf8_valid(st.data + before, st.len - before), "case %d: stream emitted broken UTF-8", ncase);
        }
        lm_tok_stream_finish(&s, &st);
        CHECKF(st.len == text->len && (st.len == 0 || memcmp(st.data, text->str, st.len) == 0),
               "case %d: stream decode differs", ncase);
        if (ok && okp) nok++;
        lm_text_free(&dec);
        lm_text_free(&dsk);
        lm_text_free(&st);
        lm_ids_free(&got);
        lm_ids_free(&gotp);
        free(in);
        json_free(doc);
        ncase++;
        line += ll + 1;
    }
    printf("  %d/%d reference cases match (%d with ids_plain, %d bytes_hex, %d skip-special decodes)\n", nok, ncase,
           nplain, nhex, ndec);
    CHECK(ncase == 347);
    free(data);
}


/* ---- a small tokenizer that needs no shared data ------------------------------ */

/* Appends the byte-level form of byte b as UTF-8. */
static void put_bl(lm_text *t, unsigned b) {
    unsigned char u[4];
    size_t l = lm_utf8_encode(lm_bytelevel_char(b), u);
    lm_text_append(t, (const char *)u, l);
}

static void put_bl_str(lm_text *t, const char *s) {
    for (; *s; s++) put_bl(t, (unsigned char)*s);
}

/* vocab: 256 bytes (id = byte) + merged tokens; merges given as "a|b" pairs of
 * plain strings; added tokens as JSON text. array_form writes ["a","b"]. */
static char *tiny_json(const char *const *merges, int nm, int array_form, const char *added, const char *pretok) {
    lm_text t = {0};
    lm_text_append(&t, "{\"version\":\"1.0\",\"added_tokens\":[", 33);
    lm_text_append(&t, added, strlen(added));
    const char *pt = pretok ? pretok : "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";
    lm_text_append(&t, "],\"normalizer\":null,\"pre_tokenizer\":", 36);
    lm_text_append(&t, pt, strlen(pt));
    const char *m = ",\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{";
    lm_text_append(&t, m, strlen(m));
    int id = 0;
    for (unsigned b = 0; b < 256; b++, id++) {
        char num[32];
        lm_text_append(&t, "\"", 1);
        if (lm_bytelevel_char(b) == '"' || lm_bytelevel_char(b) == '\\') lm_text_append(&t, "\\", 1);
        put_bl(&t, b);
        snprintf(num, sizeof num, "\":%d,", id);
        lm_text_append(&t, num, strlen(num));
    }
    for (int i = 0; i < nm; i++) {
        const char *sp = strchr(merges[i], '|');
        char joined[64];
        snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        char num[32];
        lm_text_append(&t, "\"", 1);
        put_bl_str(&t, joined);
        snprintf(num, sizeof num, "\":%d%s", id++, i + 1 < nm ? "," : "");
        lm_text_append(&t, num, strlen(num));
    }
    if (t.data[t.len - 1] == ',') t.len--;
    lm_text_append(&t, "},\"merges\":[", 12);
    for (int i = 0; i < nm; i++) {
        const char *sp = strchr(merges[i], '|');
        char left[32], right[32];
        snprintf(left, sizeof left, "%.*s", (int)(sp - merges[i]), merges[i]);
        snprintf(right, sizeof right, "%s", sp + 1);
        lm_text_append(&t, array_form ? "[\"" : "\"", array_form ? 2 : 1);
        put_bl_str(&t, left);
        lm_text_append(&t, array_form ? "\",\"" : " ", array_form ? 3 : 1);
        put_bl_str(&t, right);
        lm_text_append(&t, array_form ? "\"]" : "\"", array_form ? 2 : 1);
        if (i + 1 < nm) lm_text_append(&t, ",", 1);
    }
    lm_text_append(&t, "]}}", 3);
    return t.data;
}

/* "left|right" */
static const char *const tiny_merges[] = {"a|a", "aa|a", "a|b", "ab|c", " |a", " a|b", "h|e", "he|l", "hel|l",
                                         "hell|o", "aa|aa"};
enum { TINY_NM = sizeof tiny_merges / sizeof tiny_merges[0] };

static lm_tokenizer *tiny(int array_form, lm_error *err) {
    char *js = tiny_json(tiny_merges, TINY_NM, array_form,
                         "{\"id\":300,\"content\":\"<eos>\",\"special\":true,\"normalized\":false}", NULL);
    lm_tokenizer *t = lm_tokenizer_load_mem(js, strlen(js), NULL, 0, "tiny.json", err);
    free(js);
    return t;
}

static void encode_str(const lm_tokenizer *t, const char *s, int flags, lm_ids *out) {
    lm_error err;
    out->n = 0;
    if (lm_tokenizer_encode(t, s, strlen(s), flags, out, &err)) printf("  encode failed: %s\n", err.msg);
}

static int ids_are(const lm_ids *v, const int32_t *want, size_t n) {
    if (v->n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (v->ids[i] != want[i]) return 0;
    return 1;
}

TEST(test_tiny_merges) {
    lm_error err;
    for (int form = 0; form < 2; form++) {
        lm_tokenizer *t = tiny(form, &err);
        CHECKF(t != NULL, "%s", err.msg);
        if (!t) return;
        lm_ids v = {0};
        /* merges: 256 "aa", 257 "aaa", 258 "ab", 259 "abc", 260 " a", 261 " ab", ..., 266 "aaaa" */
        encode_str(t, "aaa", 0, &v); /* (aa)a -> aaa */
        CHECK(ids_are(&v, (int32_t[]){257}, 1));
        encode_str(t, "aaaa", 0, &v); /* aa aa -> aaaa (rank 10) */
        CHECK(ids_are(&v, (int32_t[]){266}, 1));
        /* a a a a a -> aa a a a -> aa aa a (rank 0 beats rank 1) -> aa aaa (rank 1 beats 10) */
        encode_str(t, "aaaaa", 0, &v);
        CHECK(ids_are(&v, (int32_t[]){256, 257}, 2));
        /* GPT-2 pieces "abc" " hello" " ab"; in " ab", "a b" (rank 2) wins over " a" (rank 4) */
        encode_str(t, "abc hello ab", 0, &v);
        CHECK(ids_are(&v, (int32_t[]){259, ' ', 265, ' ', 258}, 5));
        encode_str(t, " a", 0, &v);
        CHECK(ids_are(&v, (int32_t[]){260}, 1));
        encode_str(t, "x<eos>y", LM_TOK_SPECIAL, &v);
        CHECK(ids_are(&v, (int32_t[]){'x', 300, 'y'}, 3));
        encode_str(t, "x<eos>y", 0, &v);
        CHECK(v.n == 7);
        CHECK(lm_tokenizer_vocab_size(t) == 301);
        CHECK(lm_tokenizer_find(t, "<eos>") == 300);
        CHECK(lm_tokenizer_find(t, "hello") == 265);
        CHECK(lm_tokenizer_is_special(t, 300) && !lm_tokenizer_is_special(t, 265));
        CHECK(lm_tokenizer_eos(t) == -1); /* "<eos>" is not a well-known name */
        lm_text d = {0};
        CHECK(lm_tokenizer_decode(t, (int32_t[]){259, 300, 261}, 3, 0, &d, &err) == 0 && !strcmp(d.data, "abc<eos> ab"));
        d.len = 0;
        CHECK(lm_tokenizer_decode(t, (int32_t[]){259, 300, 261}, 3, LM_TOK_SKIP_SPECIAL, &d, &err) == 0 &&
              !strcmp(d.data, "abc ab"));
        d.len = 0;
        CHECK(lm_tokenizer_decode(t, (int32_t[]){259, 290}, 2, 0, &d, &err) == -1 && strstr(err.msg, "id 290"));
        CHECK(lm_tokenizer_decode(t, (int32_t[]){-1}, 1, 0, &d, &err) == -1);
        lm_text_free(&d);
        lm_ids_free(&v);
        lm_tokenizer_free(t);
    }
}

/* Loads JSON that must fail; the message must contain `want`. */
static void expect_load_error(const char *js, const char *want) {
    lm_error err;
    err.msg[0] = 0;
    lm_tokenizer *t = lm_tokenizer_load_mem(js, strlen(js), NULL, 0, "bad.json", &err);
    CHECKF(t == NULL, "loaded, expected an error with '%s'", want);
    CHECKF(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    CHECKF(strncmp(err.msg, "bad.json", 8) == 0, "message '%s' does not name the file", err.msg);
    lm_tokenizer_free(t);
}

TEST(test_bad_tokenizer_json) {
    expect_load_error("", "expected a value");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []", "byte");
    expect_load_error("[]", "top");
    expect_load_error("{}", "\"model\"");
    expect_load_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{},\"merges\":[]}}", "only BPE");
    expect_load_error("{\"model\":{\"vocab\":[],\"merges\":[]}}", "model.vocab");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":-1},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                      "model.vocab[\"a\"]");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                      "id 0 is given to two tokens");
    expect_load_error("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "only byte-level BPE");
    expect_load_error("{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "normalizer type 'NFKC' is not supported");
    expect_load_error("{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "pre-tokenizer type 'Metaspace'");
    expect_load_error("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},"
                      "\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "regex does not compile");
    expect_load_error("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"},"
                      "\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "'Sideways'");
    /* a merge naming a token that is not in the vocab, and a merge whose
     * result is not in the vocab */
    char *js = tiny_json((const char *const[]){"a|b", "zz|b"}, 2, 0, "", NULL);
    expect_load_error(js, "model.merges[1]: token \"zz\" is not in the vocab");
    free(js);
    js = tiny_json((const char *const[]){"a|b", "ab|q"}, 2, 0, "", NULL);
    char *p = strstr(js, "\"abq\"");
    if (p) memcpy(p, "\"zzz\"", 5);
    expect_load_error(js, "merged token \"abq\" is not in the vocab");
    free(js);
    js = tiny_json((const char *const[]){"a|b"}, 1, 0, "", NULL);
    p = strstr(js, "\"merges\":[\"a b\"]");
    if (p) memcpy(p + 11, "q", 1);
    expect_load_error(js, "model.merges[0]");
    free(js);
    js = tiny_json((const char *const[]){"a|b"}, 1, 0, "", NULL);
    p = strstr(js, "\"merges\":[\"a b\"]");
    if (p) p[12] = '_'; /* "a_b": no space */
    expect_load_error(js, "exactly one space");
    free(js);
    js = tiny_json((const char *const[]){"a|b"}, 1, 0, "{\"id\":3,\"content\":\"\"}", NULL);
    expect_load_error(js, "added_tokens[0].content");
    free(js);
    /* a file that does not exist, and a directory without tokenizer.json */
    lm_error err;
    CHECK(lm_tokenizer_load("/nonexistent/tok", &err) == NULL && strstr(err.msg, "/nonexistent/tok"));
    CHECK(lm_tokenizer_load("/", &err) == NULL && strstr(err.msg, "tokenizer.json"));
}

TEST(test_utf8_handling) {
    struct { const char *in; const char *out; } cases[] = {
        {"ok", "ok"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\x80" "b", "a\xef\xbf\xbd" "b"},
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  /* overlong: E0 80 is not a prefix */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  /* surrogate */
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},                          /* truncated: one maximal subpart */
        {"\xf0\x9f\x98z", "\xef\xbf\xbdz"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xc2", "\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe2\x82\xac\xe2\x82", "\xe2\x82\xac\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_text t = {0};
        CHECK(lm_utf8_sanitize(cases[i].in, strlen(cases[i].in), &t) == 0);
        CHECKF(t.len == strlen(cases[i].out) && !memcmp(t.data, cases[i].out, t.len), "sanitize case %zu", i);
        CHECK(lm_utf8_valid(t.data, t.len));
        CHECK(lm_utf8_valid(cases[i].in, strlen(cases[i].in)) == (i == 0));
        lm_text_free(&t);
    }
    lm_error err;
    lm_tokenizer *t = tiny(0, &err);
    if (!t) return;
    lm_ids a = {0}, b = {0};
    /* invalid input encodes as its U+FFFD form; strict mode refuses it */
    CHECK(lm_tokenizer_encode(t, "x\xff" "y", 3, 0, &a, &err) == 0);
    CHECK(lm_tokenizer_encode(t, "x\xef\xbf\xbdy", 5, 0, &b, &err) == 0);
    CHECK(a.n == b.n && !memcmp(a.ids, b.ids, a.n * sizeof *a.ids));
    size_t n0 = a.n;
    CHECK(lm_tokenizer_encode(t, "x\xff" "y", 3, LM_TOK_STRICT_UTF8, &a, &err) == -1 && strstr(err.msg, "byte 1"));
    CHECK(a.n == n0);
    /* empty input: nothing, no error */
    CHECK(lm_tokenizer_encode(t, "", 0, LM_TOK_SPECIAL, &a, &err) == 0 && a.n == n0);
    /* a pre-token over the limit is a clear error, and nothing is appended */
    lm_tokenizer_set_max_piece(t, 100);
    char big[300];
    memset(big, 'q', sizeof big);
    CHECK(lm_tokenizer_encode(t, big, sizeof big, 0, &a, &err) == -1 && strstr(err.msg, "300 bytes") && a.n == n0);
    lm_ids_free(&a);
    lm_ids_free(&b);
    lm_tokenizer_free(t);
}

TEST(test_stream_decoder) {
    lm_error err;
    lm_tokenizer *t = tiny(0, &err);
    if (!t) return;
    /* byte tokens of U+1F600 (F0 9F 98 80), one at a time: nothing until the last */
    lm_tok_stream st;
    lm_text out = {0};
    lm_tok_stream_init(&st, t, 0);
    int32_t emoji[] = {0xf0, 0x9f, 0x98, 0x80};
    for (int i = 0; i < 3; i++) {
        CHECK(lm_tok_stream_push(&st, emoji[i], &out, &err) == 0);
        CHECK(out.len == 0);
    }
    CHECK(lm_tok_stream_push(&st, emoji[3], &out, &err) == 0);
    CHECK(out.len == 4 && !memcmp(out.data, "\xf0\x9f\x98\x80", 4));
    /* a broken sequence comes out as U+FFFD as soon as it is known broken */
    out.len = 0;
    CHECK(lm_tok_stream_push(&st, 0xe2, &out, &err) == 0 && out.len == 0);
    CHECK(lm_tok_stream_push(&st, 'a', &out, &err) == 0);
    CHECK(out.len == 4 && !memcmp(out.data, "\xef\xbf\xbd" "a", 4));
    /* an unfinished sequence at the end is flushed as U+FFFD */
    out.len = 0;
    CHECK(lm_tok_stream_push(&st, 0xe2, &out, &err) == 0 && lm_tok_stream_push(&st, 0x82, &out, &err) == 0);
    CHECK(out.len == 0);
    lm_tok_stream_finish(&st, &out);
    CHECK(out.len == 3 && !memcmp(out.data, "\xef\xbf\xbd", 3));
    /* special tokens are skipped on request */
    out.len = 0;
    lm_tok_stream_init(&st, t, LM_TOK_SKIP_SPECIAL);
    CHECK(lm_tok_stream_push(&st, 300, &out, &err) == 0 && out.len == 0);
    CHECK(lm_tok_stream_push(&st, 5000, &out, &err) == -1 && strstr(err.msg, "5000"));
    /* random byte ids: the stream equals the one-shot decode, and every
     * chunk it emits is valid UTF-8 */
    uint64_t seed = 42;
    for (int round = 0; round < 200; round++) {
        int32_t ids[40];
        int n = 1 + round % 40;
        for (int i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(seed >> 33);
            /* bias towards UTF-8 lead/continuation bytes */
            ids[i] = (int32_t)(r % 4 == 0 ? 0x80 + (r >> 8) % 64 : r % 4 == 1 ? 0xc2 + (r >> 8) % 51 : (r >> 8) % 301);
            if (ids[i] >= 256 && ids[i] < 300) ids[i] = 'x';
        }
        lm_text one = {0}, s = {0};
        CHECK(lm_tokenizer_decode(t, ids, (size_t)n, 0, &one, &err) == 0);
        lm_tok_stream_init(&st, t, 0);
        for (int i = 0; i < n; i++) {
            size_t before = s.len;
            CHECK(lm_tok_stream_push(&st, ids[i], &s, &err) == 0);
            CHECK(lm_utf8_valid(s.data + before, s.len - before));
        }
        lm_tok_stream_finish(&st, &s);
        CHECKF(s.len == one.len && (!s.len || !memcmp(s.data, one.data, s.len)), "round %d", round);
        lm_text_free(&one);
        lm_text_free(&s);
    }
    lm_text_free(&out);
    lm_tokenizer_free(t);
}

/* The short-piece, heap and naive BPE give the same ids on every piece. */
TEST(test_bpe_paths_agree) {
    if (!load_ds()) SKIP("../shared (DeepSeek-V3 tokenizer data) is absent");
    char path[700];
    snprintf(path, sizeof path, "%s/data/tokenizer/deepseek-v3-cases.jsonl", test_shared_dir());
    size_t len;
    char *data = slurp(path, &len);
    if (!data) SKIP("cases absent");
    bpe_scratch sc = {0};
    lm_ids a = {0}, b = {0}, c = {0}, d = {0};
    int pieces = 0;
    /* every window of every case text, cut at random lengths up to 300 bytes */
    uint64_t seed = 7;
    for (size_t off = 0; off + 1 < len; off += 97) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = 1 + (seed >> 40) % 300;
        if (off + n > len) n = len - off;
        const unsigned char *s = (const unsigned char *)data + off;
        a.n = b.n = c.n = d.n = 0;
        CHECK(lm_bpe_encode_piece(ds_tok, s, n, &a, &sc) == 0);
        CHECK(lm_bpe_encode_heap(ds_tok, s, n, &b, &sc) == 0);
        CHECK(lm_bpe_encode_naive(ds_tok, s, n, &c) == 0);
        CHECK(lm_bpe_encode_bucket(ds_tok, s, n, &d, &sc) == 0);
        int same = a.n == c.n && b.n == c.n && d.n == c.n && !memcmp(a.ids, c.ids, a.n * 4) &&
                   !memcmp(b.ids, c.ids, b.n * 4) && !memcmp(d.ids, c.ids, d.n * 4);
        CHECKF(same, "piece at %zu (%zu bytes) differs", off, n);
        pieces++;
    }
    /* long runs (a heap path stress): emoji and kana */
    const char *units[] = {"\xf0\x9f\x98\x80", "\xe3\x82\xa2", "ab", " \xe2\x80\x94", "\xe3\x82\xa2\xe3\x83\xbc",
                           "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"};
    for (int u = 0; u < 6; u++) {
        lm_text t = {0};
        for (int i = 0; i < 1500; i++) lm_text_append(&t, units[u], strlen(units[u]));
        a.n = b.n = c.n = 0;
        CHECK(lm_bpe_encode_piece(ds_tok, (const unsigned char *)t.data, t.len, &a, &sc) == 0); /* bucket path */
        CHECK(lm_bpe_encode_heap(ds_tok, (const unsigned char *)t.data, t.len, &b, &sc) == 0);
        CHECK(lm_bpe_encode_naive(ds_tok, (const unsigned char *)t.data, t.len < 3000 ? t.len : 3000, &c) == 0);
        CHECKF(a.n == b.n && !memcmp(a.ids, b.ids, a.n * 4), "run %d: bucket and heap differ", u);
        /* the first 3000 bytes alone through the reference, and through the fast path */
        d.n = 0;
        CHECK(lm_bpe_encode_piece(ds_tok, (const unsigned char *)t.data, t.len < 3000 ? t.len : 3000, &d, &sc) == 0);
        CHECKF(d.n == c.n && !memcmp(d.ids, c.ids, d.n * 4), "run %d differs from the reference", u);
        lm_text_free(&t);
        pieces++;
    }
    /* windows of the whole case file through bucket vs heap (long pieces) */
    for (size_t off = 0; off + 8192 < len; off += 8191) {
        a.n = b.n = 0;
        CHECK(lm_bpe_encode_bucket(ds_tok, (const unsigned char *)data + off, 8192, &a, &sc) == 0);
        CHECK(lm_bpe_encode_heap(ds_tok, (const unsigned char *)data + off, 8192, &b, &sc) == 0);
        CHECKF(a.n == b.n && !memcmp(a.ids, b.ids, a.n * 4), "8 KiB window at %zu differs", off);
        pieces++;
    }
    printf("  %d pieces agree across the four BPE implementations\n", pieces);
    lm_bpe_scratch_free(&sc);
    lm_ids_free(&a);
    lm_ids_free(&b);
    lm_ids_free(&c);
    lm_ids_free(&d);
    free(data);
}

TEST(test_deepseek_lookups) {
    if (!load_ds()) SKIP("../shared (DeepSeek-V3 tokenizer data) is absent");
    CHECK(lm_tokenizer_vocab_size(ds_tok) == 128815);
    CHECK(lm_tokenizer_bos(ds_tok) == 0);
    CHECK(lm_tokenizer_eos(ds_tok) == 1);
    CHECK(lm_tokenizer_find(ds_tok, "<\xef\xbd\x9cUser\xef\xbd\x9c>") == 128803);
    CHECK(lm_tokenizer_find(ds_tok, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") == 128804);
    CHECK(lm_tokenizer_find(ds_tok, "<think>") == -1); /* not a token in V3 */
    CHECK(lm_tokenizer_find(ds_tok, " the") == 270);
    CHECK(lm_tokenizer_is_special(ds_tok, 0) && lm_tokenizer_is_special(ds_tok, 128805));
    CHECK(!lm_tokenizer_is_special(ds_tok, 128803) && lm_tokenizer_is_added(ds_tok, 128803));
    lm_ids v = {0};
    encode_str(ds_tok, "<think>", LM_TOK_SPECIAL, &v);
    CHECK(ids_are(&v, (int32_t[]){30, 37947, 32}, 3));
    size_t l;
    const char *s = lm_tokenizer_token(ds_tok, 223, &l);
    CHECK(s && l == 1 && s[0] == ' ');
    CHECK(lm_tokenizer_token(ds_tok, 128815, &l) == NULL);
    lm_ids_free(&v);
}

typedef struct thr_arg {
    const lm_tokenizer *tok;
    const char *text;
    size_t len;
    lm_ids out;
} thr_arg;

#include <pthread.h>
static void *thr_encode(void *p) {
    thr_arg *a = p;
    lm_error err;
    for (int i = 0; i < 3; i++) {
        a->out.n = 0;
        lm_tokenizer_encode(a->tok, a->text, a->len, LM_TOK_SPECIAL, &a->out, &err);
    }
    return NULL;
}

/* Two threads encoding at once get what one thread gets (the lazily filled
 * whole-token flags are the only shared writes). */
TEST(test_threads) {
    if (!load_ds()) SKIP("../shared (DeepSeek-V3 tokenizer data) is absent");
    char path[700];
    snprintf(path, sizeof path, "%s/data/tokenizer/deepseek-v3-cases.jsonl", test_shared_dir());
    size_t len;
    char *data = slurp(path, &len);
    if (!data) SKIP("cases absent");
    lm_tokenizer *fresh;
    lm_error err;
    fresh = lm_tokenizer_load(ds_dir, &err);
    CHECK(fresh != NULL);
    if (!fresh) { free(data); return; }
    thr_arg a[2] = {{fresh, data, len, {0}}, {fresh, data, len, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thr_encode, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    lm_ids ref = {0};
    CHECK(lm_tokenizer_encode(ds_tok, data, len, LM_TOK_SPECIAL, &ref, &err) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(a[i].out.n == ref.n && !memcmp(a[i].out.ids, ref.ids, ref.n * 4));
    for (int i = 0; i < 2; i++) lm_ids_free(&a[i].out);
    lm_ids_free(&ref);
    lm_tokenizer_free(fresh);
    free(data);
}

/* A generic (PCRE2) Split pipeline: GPT-2's pattern written as a Split gives
 * the same pieces as ByteLevel(use_regex), and behaviours work. */
TEST(test_generic_pretokenizer) {
    const char *gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+";
    char pt[512];
    snprintf(pt, sizeof pt,
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"%s\"},"
             "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
             "\"use_regex\":false}]}", gpt2);
    char *js1 = tiny_json(tiny_merges, TINY_NM, 0, "", pt);
    char *js2 = tiny_json(tiny_merges, TINY_NM, 0, "", NULL);
    lm_error err;
    lm_tokenizer *t1 = lm_tokenizer_load_mem(js1, strlen(js1), NULL, 0, "pcre.json", &err);
    CHECKF(t1 != NULL, "%s", err.msg);
    lm_tokenizer *t2 = lm_tokenizer_load_mem(js2, strlen(js2), NULL, 0, "gpt2.json", &err);
    CHECKF(t2 != NULL, "%s", err.msg);
    const char *texts[] = {"hello world  aa ab", "I'm   here\n\n  x", "abc123 4567 \xc2\xa0z", "  ", "a\xc2\x85 b",
                           "it's 'll \xe4\xb8\xad\xe6\x96\x87!!", "x\t\t\ty"};
    for (size_t i = 0; t1 && t2 && i < sizeof texts / sizeof texts[0]; i++) {
        lm_ids a = {0}, b = {0};
        encode_str(t1, texts[i], 0, &a);
        encode_str(t2, texts[i], 0, &b);
        CHECKF(a.n == b.n && !memcmp(a.ids, b.ids, a.n * 4), "text %zu differs", i);
        lm_ids_free(&a);
        lm_ids_free(&b);
    }
    lm_tokenizer_free(t1);
    lm_tokenizer_free(t2);
    free(js1);
    free(js2);
    /* Removed behaviour with a literal pattern, and Digits */
    const char *pt3 = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},"
                      "\"behavior\":\"Removed\",\"invert\":false},{\"type\":\"Digits\",\"individual_digits\":true},"
                      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}";
    char *js3 = tiny_json(tiny_merges, TINY_NM, 0, "", pt3);
    lm_tokenizer *t3 = lm_tokenizer_load_mem(js3, strlen(js3), NULL, 0, "split.json", &err);
    CHECKF(t3 != NULL, "%s", err.msg);
    if (t3) {
        lm_ids v = {0};
        encode_str(t3, "aa-ab-12", 0, &v);
        CHECK(ids_are(&v, (int32_t[]){256, 258, '1', '2'}, 4));
        lm_ids_free(&v);
    }
    lm_tokenizer_free(t3);
    free(js3);
}

#include "tokenizer/nfc.h"

TEST(test_nfc) {
    struct { const char *in, *out; } cases[] = {
        {"abc", "abc"},
        {"e\xcc\x81", "\xc3\xa9"},                                  /* e + U+0301 -> é */
        {"\xc3\xa9", "\xc3\xa9"},
        {"\xe2\x84\xab", "\xc3\x85"},                               /* U+212B ANGSTROM SIGN -> Å */
        {"A\xcc\x8a", "\xc3\x85"},
        {"\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80"},               /* Hangul L + V -> 가 */
        {"\xea\xb0\x80\xe1\x86\xa8", "\xea\xb0\x81"},               /* LV + T -> 각 */
        {"a\xcc\x81\xcc\xa3", "\xe1\xba\xa1\xcc\x81"},              /* a + acute + dot below -> ạ + acute */
        {"\xcc\x81" "a", "\xcc\x81" "a"},                           /* leading mark stays */
        /* U+1FB3 (alpha + ypogegrammeni) + U+0342 (perispomeni): reordered to
         * alpha + perispomeni + ypogegrammeni, which composes to U+1FB7 */
        {"\xe1\xbe\xb3\xcd\x82", "\xe1\xbe\xb7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_text t = {0};
        CHECK(lm_nfc_append(cases[i].in, strlen(cases[i].in), &t) == 0);
        CHECKF(t.len == strlen(cases[i].out) && !memcmp(t.data, cases[i].out, t.len), "nfc case %zu", i);
        lm_text_free(&t);
    }
    CHECK(lm_nfc_is_stable("plain ascii \xe4\xb8\xad", 15));
    CHECK(!lm_nfc_is_stable("e\xcc\x81", 3));
    /* a tokenizer with an NFC normalizer encodes e + U+0301 like é, and a
     * non-normalized added token is matched before normalization */
    char *js = tiny_json(tiny_merges, TINY_NM, 0, "{\"id\":300,\"content\":\"<x>\",\"special\":true,\"normalized\":false}",
                         NULL);
    const char *norm = "\"normalizer\":null";
    char *p = strstr(js, norm);
    CHECK(p != NULL);
    if (!p) { free(js); return; }
    lm_text j2 = {0};
    lm_text_append(&j2, js, (size_t)(p - js));
    const char *nfc = "\"normalizer\":{\"type\":\"NFC\"}";
    lm_text_append(&j2, nfc, strlen(nfc));
    lm_text_append(&j2, p + strlen(norm), strlen(p + strlen(norm)));
    lm_error err;
    lm_tokenizer *t = lm_tokenizer_load_mem(j2.data, j2.len, NULL, 0, "nfc.json", &err);
    CHECKF(t != NULL, "%s", err.msg);
    if (t) {
        CHECK(strstr(lm_tokenizer_describe(t), "NFC") != NULL);
        lm_ids a = {0}, b = {0};
        encode_str(t, "caf\x65\xcc\x81!", 0, &a);
        encode_str(t, "caf\xc3\xa9!", 0, &b);
        CHECK(a.n == b.n && !memcmp(a.ids, b.ids, a.n * 4));
        /* "<x>" + U+0338: ">" + U+0338 would compose to U+226F, but the token is cut out first */
        encode_str(t, "<x>\xcc\xb8", LM_TOK_SPECIAL, &a);
        CHECK(a.n >= 1 && a.ids[0] == 300);
        lm_ids_free(&a);
        lm_ids_free(&b);
    }
    lm_tokenizer_free(t);
    lm_text_free(&j2);
    free(js);
}

int main(void) {
    RUN(test_reference_cases);
    RUN(test_deepseek_lookups);
    RUN(test_bpe_paths_agree);
    RUN(test_threads);
    RUN(test_tiny_merges);
    RUN(test_bad_tokenizer_json);
    RUN(test_utf8_handling);
    RUN(test_stream_decoder);
    RUN(test_generic_pretokenizer);
    RUN(test_nfc);
    lm_tokenizer_free(ds_tok);
    return test_report("test_tokenizer");
}
