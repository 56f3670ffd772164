/* test_tokenizer_train.c — the BPE trainer: deterministic output, a valid
 * tokenizer.json that lemma loads back, round trips, special tokens, the
 * vocabulary size, merge order, and that feeding in pieces counts like
 * feeding at once. (Parity with Hugging Face's loader is in
 * tests/sh/test_tokenizer_hf.sh.) */
#include "formats/json.h"
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

/* A deterministic corpus: words, numbers, punctuation, CJK, emoji, code. */
static void make_corpus(lm_text *t, int lines, uint64_t seed) {
    static const char *w[] = {"the", "proof", "of", "lemma", "is", "trivial", "theorem", "we", "have", "prime",
                              "number", "x", "y", "=", "+", "\\frac{1}{2}", "$", "(", ")", ".", ",", "\xe4\xb8\xad\xe6\x96\x87",
                              "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf", "\xf0\x9f\x98\x80", "caf\xc3\xa9",
                              "int", "main(void)", "{", "}", "return", "0;", "  ", "\t", "1234567", "42", "3.14159"};
    for (int l = 0; l < lines; l++) {
        int n = 3 + l % 11;
        for (int i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *x = w[(seed >> 33) % (sizeof w / sizeof w[0])];
            if (i) lm_text_append(t, " ", 1);
            lm_text_append(t, x, strlen(x));
        }
        lm_text_append(t, l % 17 == 0 ? "\n\n" : "\n", l % 17 == 0 ? 2 : 1);
    }
}

static int train(const lm_text *corpus, size_t chunk, int32_t vocab, lm_text *js, lm_text *cfg) {
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    o.vocab_size = vocab;
    lm_error err;
    lm_bpe_trainer *t = lm_bpe_trainer_new(&o, &err);
    if (!t) return -1;
    int rc = 0;
    /* feed at line starts (a safe cut: see lm_bpe_train_files) */
    size_t pos = 0;
    while (pos < corpus->len && !rc) {
        size_t end = pos + chunk < corpus->len ? pos + chunk : corpus->len;
        while (end < corpus->len && !(corpus->data[end - 1] == '\n' && corpus->data[end] != '\n' &&
                                      corpus->data[end] != ' ' && corpus->data[end] != '\t'))
            end++;
        rc = lm_bpe_trainer_feed(t, corpus->data + pos, end - pos, &err);
        pos = end;
    }
    if (!rc) rc = lm_bpe_trainer_finish(t, js, cfg, &err);
    if (rc) printf("  train: %s\n", err.msg);
    lm_bpe_trainer_free(t);
    return rc;
}

TEST(test_train_deterministic_and_loadable) {
    lm_text corpus = {0}, js1 = {0}, cfg1 = {0}, js2 = {0}, cfg2 = {0};
    make_corpus(&corpus, 3000, 1);
    CHECK(train(&corpus, corpus.len, 600, &js1, &cfg1) == 0);
    CHECK(train(&corpus, 4096, 600, &js2, &cfg2) == 0);
    CHECKF(js1.len == js2.len && !memcmp(js1.data, js2.data, js1.len), "chunked feeding changed tokenizer.json");
    CHECK(cfg1.len == cfg2.len && !memcmp(cfg1.data, cfg2.data, cfg1.len));
    lm_error err;
    lm_tokenizer *tok = lm_tokenizer_load_mem(js1.data, js1.len, cfg1.data, cfg1.len, "trained.json", &err);
    CHECKF(tok != NULL, "%s", err.msg);
    if (!tok) goto out;
    /* the corpus has few distinct words: merging stops when no pair occurs twice */
    int32_t nv = lm_tokenizer_vocab_size(tok);
    CHECK(nv > LM_BPE_NSPECIAL + 256 + 100 && nv <= 600);
    CHECK(lm_tokenizer_bos(tok) == 0 && lm_tokenizer_eos(tok) == 1);
    for (int k = 0; k < LM_BPE_NSPECIAL; k++) CHECK(lm_tokenizer_find(tok, lm_bpe_special_tokens[k]) == k);
    CHECK(lm_tokenizer_is_special(tok, 0) && lm_tokenizer_is_special(tok, 2) && !lm_tokenizer_is_special(tok, 5));
    CHECK(strstr(lm_tokenizer_describe(tok), "deepseek-v3") != NULL);
    /* round trip of the corpus; it compresses */
    lm_ids ids = {0};
    lm_text back = {0};
    CHECK(lm_tokenizer_encode(tok, corpus.data, corpus.len, LM_TOK_SPECIAL, &ids, &err) == 0);
    CHECK(lm_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &err) == 0);
    CHECK(back.len == corpus.len && !memcmp(back.data, corpus.data, back.len));
    printf("  corpus %zu bytes -> %zu tokens with a %d-id vocabulary\n", corpus.len, ids.n, nv);
    CHECK(ids.n * 3 < corpus.len);
    /* special tokens in text are matched */
    const char *chat = "<\xef\xbd\x9cUser\xef\xbd\x9c>the proof<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>x</think>";
    ids.n = 0;
    CHECK(lm_tokenizer_encode(tok, chat, strlen(chat), LM_TOK_SPECIAL, &ids, &err) == 0);
    CHECK(ids.n >= 6 && ids.ids[0] == 3 && ids.ids[ids.n - 1] == 6);
    /* the config carries bos/eos and the chat template */
    json_doc *cd = json_parse(cfg1.data, cfg1.len, &err);
    CHECK(cd != NULL);
    const json_value *tmpl = json_get(json_root(cd), "chat_template");
    CHECK(tmpl && tmpl->type == JSON_STRING && strstr(tmpl->str, "add_generation_prompt"));
    json_free(cd);
    lm_ids_free(&ids);
    lm_text_free(&back);
    lm_tokenizer_free(tok);
out:
    lm_text_free(&corpus);
    lm_text_free(&js1);
    lm_text_free(&cfg1);
    lm_text_free(&js2);
    lm_text_free(&cfg2);
}

/* Every merge's parts exist before it (ids grow with rank), and the first
 * merge is the most frequent pair of the corpus. */
TEST(test_train_merge_order) {
    lm_text corpus = {0}, js = {0}, cfg = {0};
    /* "ab" is by far the most frequent pair */
    for (int i = 0; i < 200; i++) lm_text_append(&corpus, "ab ab abab cd\n", 14);
    lm_text_append(&corpus, "xy\n", 3);
    CHECK(train(&corpus, corpus.len, 270, &js, &cfg) == 0);
    lm_error err;
    json_doc *d = json_parse(js.data, js.len, &err);
    CHECKF(d != NULL, "%s", err.msg);
    if (!d) goto out;
    const json_value *model = json_get(json_root(d), "model"), *merges = json_get(model, "merges"),
                     *vocab = json_get(model, "vocab");
    CHECK(merges && vocab && merges->len == vocab->len - LM_BPE_NSPECIAL - 256 && vocab->len <= 270);
    CHECK(merges->child && !strcmp(merges->child->str, "a b"));
    /* each merge's parts are older tokens; "x y" occurs once and is not merged */
    CHECK(!strstr(js.data, "\"x y\""));
    lm_tokenizer *tok = lm_tokenizer_load_mem(js.data, js.len, NULL, 0, "t.json", &err);
    CHECKF(tok != NULL, "%s", err.msg);
    lm_ids ids = {0};
    if (tok) CHECK(lm_tokenizer_encode(tok, " abab", 5, 0, &ids, &err) == 0 && ids.n == 1);
    lm_ids_free(&ids);
    lm_tokenizer_free(tok);
    json_free(d);
out:
    lm_text_free(&corpus);
    lm_text_free(&js);
    lm_text_free(&cfg);
}

TEST(test_train_limits) {
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    o.vocab_size = 100;
    lm_error err;
    CHECK(lm_bpe_trainer_new(&o, &err) == NULL && strstr(err.msg, "too small"));
    /* an empty corpus still gives a valid tokenizer (bytes and specials only) */
    o.vocab_size = 1000;
    lm_bpe_trainer *t = lm_bpe_trainer_new(&o, &err);
    lm_text js = {0}, cfg = {0};
    CHECK(t && lm_bpe_trainer_finish(t, &js, &cfg, &err) == 0);
    lm_bpe_trainer_free(t);
    lm_tokenizer *tok = lm_tokenizer_load_mem(js.data, js.len, NULL, 0, "empty.json", &err);
    CHECKF(tok != NULL, "%s", err.msg);
    if (tok) CHECK(lm_tokenizer_vocab_size(tok) == LM_BPE_NSPECIAL + 256);
    /* invalid UTF-8 in the corpus is counted as U+FFFD, not an error */
    t = lm_bpe_trainer_new(&o, &err);
    CHECK(t && lm_bpe_trainer_feed(t, "ab\xff" "cd ab\xff" "cd\n", 11, &err) == 0);
    lm_bpe_trainer_free(t);
    lm_tokenizer_free(tok);
    lm_text_free(&js);
    lm_text_free(&cfg);
    /* files: a missing one is a clear error */
    const char *files[] = {"/nonexistent/corpus.txt"};
    CHECK(lm_bpe_train_files(files, 1, &o, "/tmp", &err) == -1 && strstr(err.msg, "/nonexistent/corpus.txt"));
}

/* digit_group 1: numbers reach BPE one digit at a time, so no merge can join
 * digits however often a number repeats; the written pattern is "\p{N}" and
 * the loaded tokenizer encodes the same way. digit_group 3 merges them. */
TEST(test_train_digit_group) {
    lm_text corpus = {0};
    for (int i = 0; i < 400; i++) lm_text_append(&corpus, "x = 1234 + 5678\n", 16);
    for (int group = 1; group <= 3; group += 2) {
        lm_bpe_train_opts o;
        lm_bpe_train_defaults(&o);
        o.vocab_size = 300;
        o.digit_group = group;
        lm_error err;
        lm_text js = {0}, cfg = {0};
        lm_bpe_trainer *t = lm_bpe_trainer_new(&o, &err);
        CHECK(t && !lm_bpe_trainer_feed(t, corpus.data, corpus.len, &err) && !lm_bpe_trainer_finish(t, &js, &cfg, &err));
        lm_bpe_trainer_free(t);
        CHECK((strstr(js.data, "\"Regex\": \"\\\\p{N}\"") != NULL) == (group == 1));
        lm_tokenizer *tok = lm_tokenizer_load_mem(js.data, js.len, cfg.data, cfg.len, "digits", &err);
        CHECK(tok != NULL);
        if (tok) {
            lm_ids ids = {0};
            CHECK(lm_tokenizer_encode(tok, "1234", 4, 0, &ids, &err) == 0);
            CHECKF(group == 1 ? ids.n == 4 : ids.n < 4, "group %d: %zu tokens for 1234", group, ids.n);
            lm_ids_free(&ids);
            lm_tokenizer_free(tok);
        }
        lm_text_free(&js);
        lm_text_free(&cfg);
    }
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    o.digit_group = 4;
    lm_error err;
    CHECK(lm_bpe_trainer_new(&o, &err) == NULL && strstr(err.msg, "digit group"));
    lm_text_free(&corpus);
}

int main(void) {
    RUN(test_train_deterministic_and_loadable);
    RUN(test_train_merge_order);
    RUN(test_train_limits);
    RUN(test_train_digit_group);
    return test_report("test_tokenizer_train");
}
