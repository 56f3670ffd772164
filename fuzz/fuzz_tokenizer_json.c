/* fuzz_tokenizer_json.c — libFuzzer target: arbitrary bytes as tokenizer.json.
 * Loading must either fail with a message or give a tokenizer that encodes
 * and decodes without crashing; nothing may leak. Seeds: any tokenizer.json
 * (a lemma-trained one is small). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_tokenizer *tok = lm_tokenizer_load_mem((const char *)data, size, NULL, 0, "fuzz.json", &err);
    if (!tok) {
        if (!err.msg[0]) __builtin_trap(); /* a failure must say why */
        return 0;
    }
    static const char *texts[] = {"Hello, world! 123 \xe4\xb8\xad\xe6\x96\x87 <s>", "", "\xff\xfe", "  \n\n\t x"};
    for (int i = 0; i < 4; i++) {
        lm_ids ids = {0};
        if (lm_tokenizer_encode(tok, texts[i], strlen(texts[i]), i & 1 ? LM_TOK_SPECIAL : 0, &ids, &err) == 0) {
            lm_text out = {0};
            lm_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &err);
            lm_text_free(&out);
        }
        lm_ids_free(&ids);
    }
    int32_t n = lm_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < n && id < 64; id++) {
        size_t l;
        lm_tokenizer_token(tok, id, &l);
    }
    lm_tokenizer_free(tok);
    return 0;
}
