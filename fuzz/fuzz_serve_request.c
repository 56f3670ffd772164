/* fuzz_serve_request.c — libFuzzer target: arbitrary bytes as the body of a
 * lemma serve request (the first byte picks chat or completions). Either
 * lm_serve_request_parse fails with one line (and a "param" without line
 * breaks), or the request keeps every field rule of serve/request.h, its
 * messages render in the chat format, and its text survives the answer's
 * formatting: the streaming split over pieces equals one whole feed, and a
 * formatted answer parses back as JSON.
 *
 * FUZZ_SEEDS: fuzz/seeds/serve-*
 * FUZZ_MAX_LEN: 8192
 * FUZZ_DICT: fuzz/json.dict
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "serve/request.h"
#include "serve/response.h"
#include "serve/split.h"
#include "tokenizer/chat.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static const lm_serve_limits LIM = {.max_n = 16, .max_top_logprobs = 20, .max_ctx = 4096, .max_stop = 4};

/* The split of text over pieces of the given sizes equals one feed. */
static void check_split(const char *text, size_t len, int started, const uint8_t *sizes, size_t nsizes) {
    lm_text r1 = {0}, c1 = {0}, r2 = {0}, c2 = {0};
    lm_serve_split a, b;
    lm_serve_split_init(&a, started);
    require(lm_serve_split_feed(&a, text, len, 1, &r1, &c1) == 0);
    lm_serve_split_init(&b, started);
    size_t pos = 0, i = 0;
    while (pos < len) {
        size_t n = nsizes ? 1 + sizes[i++ % nsizes] % 8 : len;
        if (n > len - pos) n = len - pos;
        require(lm_serve_split_feed(&b, text + pos, n, 0, &r2, &c2) == 0);
        require(r2.len <= r1.len && c2.len <= c1.len); /* nothing sent is taken back */
        pos += n;
    }
    require(lm_serve_split_feed(&b, NULL, 0, 1, &r2, &c2) == 0);
    require(r1.len == r2.len && c1.len == c2.len && a.reasoning == b.reasoning);
    require(!r1.len || !memcmp(r1.data, r2.data, r1.len));
    require(!c1.len || !memcmp(c1.data, c2.data, c1.len));
    /* and the answer made of it is JSON */
    lm_serve_head h = {.id = "chatcmpl-0", .created = 0, .model = "lemma"};
    lm_serve_choice ch = {.content = c1.data ? c1.data : "", .content_len = c1.len,
                          .reasoning = a.reasoning ? (r1.data ? r1.data : "") : NULL, .reasoning_len = r1.len,
                          .finish = "stop"};
    lm_text out = {0};
    require(lm_serve_fmt_response(&out, LM_SERVE_CHAT, &h, &ch, 1, 1, 1) == 0);
    lm_error err;
    json_doc *d = json_parse(out.data, out.len, &err);
    require(d != NULL);
    json_free(d);
    lm_text_free(&out);
    lm_serve_split_free(&a), lm_serve_split_free(&b);
    lm_text_free(&r1), lm_text_free(&c1), lm_text_free(&r2), lm_text_free(&c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    lm_serve_kind kind = data[0] & 1 ? LM_SERVE_CHAT : LM_SERVE_COMPLETION;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    lm_serve_request r;
    lm_serve_param_error pe;
    if (lm_serve_request_parse(kind, body, len, &LIM, &r, &pe)) {
        require(pe.msg[0] && !strchr(pe.msg, '\n') && !strchr(pe.param, '\n'));
        return 0;
    }
    require(r.n >= 1 && r.n <= LIM.max_n);
    require(r.temperature >= 0 && r.temperature <= 2 && r.top_p > 0 && r.top_p <= 1 && r.min_p >= 0 && r.min_p <= 1);
    require(r.top_k >= 0 && (r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= LIM.max_ctx)));
    require(r.nstop >= 0 && r.nstop <= LIM.max_stop);
    for (int i = 0; i < r.nstop; i++) require(r.stop[i] && r.stop[i][0]);
    require(r.top_logprobs >= 0 && r.top_logprobs <= LIM.max_top_logprobs && (r.logprobs || !r.top_logprobs));
    require(!r.include_usage || r.stream);
    if (kind == LM_SERVE_CHAT) {
        require(r.nmsgs >= 1);
        int users = 0;
        for (size_t i = 0; i < r.nmsgs; i++) {
            require(r.msgs[i].content != NULL);
            users += !strcmp(r.msgs[i].role, "user");
        }
        require(users >= 1);
        lm_chat_opts co = {.add_generation_prompt = 1, .thinking = r.thinking};
        lm_text out = {0};
        lm_error err;
        if (lm_chat_render(r.msgs, r.nmsgs, &co, &out, &err)) require(err.msg[0] && !strchr(err.msg, '\n'));
        lm_text_free(&out);
        const char *t = r.msgs[r.nmsgs - 1].content;
        check_split(t, strlen(t), r.thinking, data, size < 16 ? size : 16);
    } else {
        require((r.prompt != NULL) != (r.prompt_ids != NULL));
        if (r.prompt) check_split(r.prompt, r.prompt_len, 0, data, size < 16 ? size : 16);
    }
    lm_serve_request_free(&r);
    return 0;
}
