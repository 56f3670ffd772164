/* fuzz_encode.c — libFuzzer target: arbitrary bytes as text to encode.
 * Checks, aborting on failure:
 *   - decode(encode(text)) equals text with invalid UTF-8 replaced by U+FFFD
 *     (byte-level BPE loses nothing), with and without added-token matching;
 *   - the streaming decoder, fed one id at a time, emits only valid UTF-8 and
 *     the same text as the one-shot decode;
 *   - NFC of the (U+FFFD-replaced) text is valid UTF-8 and NFC is idempotent;
 *   - the fast BPE and the bucket-queue BPE equal the plain reference on the
 *     whole input as one piece
 *     (inputs up to 300 bytes).
 * The tokenizer: DeepSeek-V3's from $LEMMA_SHARED or ../shared when present,
 * else one trained in memory at start-up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

static lm_tokenizer *tok;

static lm_tokenizer *trained(void) {
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    o.vocab_size = 700;
    lm_error err;
    lm_bpe_trainer *t = lm_bpe_trainer_new(&o, &err);
    if (!t) return NULL;
    static const char *corpus =
        "The proof of the lemma is trivial. We have x = 1/2 + 3.14159 and 1234567.\n"
        "int main(void) { return 0; }\n\\frac{a}{b} \xe4\xb8\xad\xe6\x96\x87\xe3\x81\x93\xe3\x82\x93 caf\xc3\xa9 \xf0\x9f\x98\x80\xf0\x9f\x98\x80\n"
        "<\xef\xbd\x9cUser\xef\xbd\x9c>What is 2+2?<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n4\n</think>\n\nFour.\n";
    for (int i = 0; i < 50; i++) lm_bpe_trainer_feed(t, corpus, strlen(corpus), &err);
    lm_text js = {0}, cfg = {0};
    lm_tokenizer *r = NULL;
    if (lm_bpe_trainer_finish(t, &js, &cfg, &err) == 0) r = lm_tokenizer_load_mem(js.data, js.len, NULL, 0, "trained", &err);
    lm_bpe_trainer_free(t);
    lm_text_free(&js);
    lm_text_free(&cfg);
    return r;
}

static void init(void) {
    lm_error err;
    const char *sh = getenv("LEMMA_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/tokenizer/deepseek-v3", sh && *sh ? sh : "../shared");
    tok = lm_tokenizer_load(path, &err);
    if (!tok) tok = trained();
    if (!tok) abort();
}

#define REQUIRE(c) do { if (!(c)) { fprintf(stderr, "fuzz_encode: %s failed\n", #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) init();
    const char *text = (const char *)data;
    lm_text want = {0};
    REQUIRE(lm_utf8_sanitize(text, size, &want) == 0);
    lm_error err;
    for (int flags = 0; flags <= LM_TOK_SPECIAL; flags += LM_TOK_SPECIAL) {
        lm_ids ids = {0};
        lm_text got = {0}, st = {0};
        REQUIRE(lm_tokenizer_encode(tok, text, size, flags, &ids, &err) == 0);
        REQUIRE(lm_tokenizer_decode(tok, ids.ids, ids.n, 0, &got, &err) == 0);
        REQUIRE(got.len == want.len && (!got.len || !memcmp(got.data, want.data, got.len)));
        lm_tok_stream s;
        lm_tok_stream_init(&s, tok, 0);
        for (size_t i = 0; i < ids.n; i++) {
            size_t before = st.len;
            REQUIRE(lm_tok_stream_push(&s, ids.ids[i], &st, &err) == 0);
            REQUIRE(lm_utf8_valid(st.data + before, st.len - before));
        }
        lm_tok_stream_finish(&s, &st);
        REQUIRE(st.len == got.len && (!st.len || !memcmp(st.data, got.data, st.len)));
        lm_ids_free(&ids);
        lm_text_free(&got);
        lm_text_free(&st);
    }
    lm_text n1 = {0}, n2 = {0};
    REQUIRE(lm_nfc_append(want.data ? want.data : "", want.len, &n1) == 0);
    REQUIRE(lm_utf8_valid(n1.data ? n1.data : "", n1.len));
    REQUIRE(lm_nfc_append(n1.data ? n1.data : "", n1.len, &n2) == 0);
    REQUIRE(n1.len == n2.len && (!n1.len || !memcmp(n1.data, n2.data, n1.len)));
    lm_text_free(&n1);
    lm_text_free(&n2);
    if (size <= 300) { /* the reference is O(n^3) */
        lm_ids a = {0}, b = {0};
        bpe_scratch sc = {0};
        REQUIRE(lm_bpe_encode_piece(tok, data, size, &a, &sc) == 0);
        REQUIRE(lm_bpe_encode_naive(tok, data, size, &b) == 0);
        REQUIRE(a.n == b.n && (!a.n || !memcmp(a.ids, b.ids, a.n * sizeof *a.ids)));
        a.n = 0;
        REQUIRE(lm_bpe_encode_bucket(tok, data, size, &a, &sc) == 0);
        REQUIRE(a.n == b.n && (!a.n || !memcmp(a.ids, b.ids, a.n * sizeof *a.ids)));
        lm_bpe_scratch_free(&sc);
        lm_ids_free(&a);
        lm_ids_free(&b);
    }
    lm_text_free(&want);
    return 0;
}
