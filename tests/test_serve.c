/* test_serve.c — lemma serve's pure parts, without HTTP: request parsing and
 * validation (serve/request.h), the streaming reasoning split
 * (serve/split.h) and the answers' JSON (serve/response.h). */
#include "test.h"

#include "core/rng.h"
#include "formats/json.h"
#include "serve/request.h"
#include "serve/response.h"
#include "serve/split.h"
#include "tokenizer/chat.h"

static const lm_serve_limits LIM = {.max_n = 8, .max_top_logprobs = 20, .max_ctx = 1000, .max_stop = 4};

static int parse(lm_serve_kind k, const char *body, lm_serve_request *r, lm_serve_param_error *pe) {
    return lm_serve_request_parse(k, body, strlen(body), &LIM, r, pe);
}

/* body must be refused naming param, with want in the message */
static int refused(lm_serve_kind k, const char *body, const char *param, const char *want) {
    lm_serve_request r;
    lm_serve_param_error pe;
    if (parse(k, body, &r, &pe) == 0) {
        printf("  accepted: %s\n", body);
        lm_serve_request_free(&r);
        return 0;
    }
    int ok = !strcmp(pe.param, param) && strstr(pe.msg, want) && !strchr(pe.msg, '\n');
    if (!ok) printf("  %s -> param '%s', message '%s'\n", body, pe.param, pe.msg);
    return ok;
}

TEST(chat_request_fields) {
    lm_serve_request r;
    lm_serve_param_error pe;
    const char *body =
        "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Is 91 \"},{\"type\":\"text\",\"text\":\"prime?\"}]},"
        "{\"role\":\"assistant\",\"content\":\"No.\",\"reasoning_content\":\"7*13\"},{\"role\":\"developer\",\"content\":\"d\"},"
        "{\"role\":\"user\",\"content\":\"Why?\",\"name\":\"bob\"}],"
        "\"max_completion_tokens\":50,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":-1,\"min_p\":0.1,\"seed\":42,"
        "\"stop\":[\"\\n\\n\",\"END\"],\"n\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"logprobs\":true,\"top_logprobs\":2,\"frequency_penalty\":0,\"user\":\"u\",\"tools\":null,"
        "\"chat_template_kwargs\":{\"thinking\":true},\"ignore_eos\":true}";
    CHECKF(parse(LM_SERVE_CHAT, body, &r, &pe) == 0, "%s", pe.msg);
    CHECK(r.nmsgs == 5);
    if (r.nmsgs == 5) {
        CHECK(!strcmp(r.msgs[1].content, "Is 91 prime?"));
        CHECK(!strcmp(r.msgs[2].reasoning, "7*13"));
        CHECK(!strcmp(r.msgs[3].role, "system"));
    }
    CHECK(r.max_tokens == 50 && r.temperature == 0.5 && r.top_p == 0.9 && r.top_k == 0 && r.min_p == 0.1);
    CHECK(r.seed == 42 && r.has_seed && r.n == 3 && r.stream && r.include_usage && r.logprobs && r.top_logprobs == 2);
    CHECK(r.nstop == 2 && !strcmp(r.stop[1], "END") && r.thinking && r.ignore_eos && !strcmp(r.model, "x"));
    lm_serve_request_free(&r);

    /* defaults; null is absent */
    CHECK(parse(LM_SERVE_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\"}],\"seed\":null,\"stop\":null}", &r,
                &pe) == 0);
    CHECK(r.max_tokens == -1 && r.temperature == 1 && r.top_p == 1 && r.n == 1 && !r.stream && !r.has_seed && !r.nstop);
    lm_serve_request_free(&r);
    CHECK(parse(LM_SERVE_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":\"x\"}", &r, &pe) == 0);
    CHECK(r.nstop == 1 && !strcmp(r.stop[0], "x"));
    lm_serve_request_free(&r);
}

TEST(chat_request_errors) {
    const lm_serve_kind C = LM_SERVE_CHAT;
#define U "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
    CHECK(refused(C, "", "", "not valid JSON"));
    CHECK(refused(C, "{\"messages\":", "", "not valid JSON"));
    CHECK(refused(C, "[1]", "", "must be a JSON object"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", "", "not valid JSON"));
    CHECK(refused(C, "{}", "messages", "missing"));
    CHECK(refused(C, "{\"messages\":[]}", "messages", "must not be empty"));
    CHECK(refused(C, "{\"messages\":{}}", "messages", "expected a list"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].role", "\"tool\""));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role", "expected one of"));
    CHECK(refused(C, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role", "missing"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "missing"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content", "expected a string"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content[0]",
                  "only parts of type"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"colour\":1}]}", "messages[0].colour",
                  "unknown field"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages", "user message"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"reasoning_content\":\"r\"}]}",
                  "messages[0].reasoning_content", "only an assistant"));
    CHECK(refused(C, "{" U ",\"temperature\":2.5}", "temperature", "[0, 2]"));
    CHECK(refused(C, "{" U ",\"temperature\":-0.1}", "temperature", "[0, 2]"));
    CHECK(refused(C, "{" U ",\"temperature\":\"hot\"}", "temperature", "expected a number"));
    CHECK(refused(C, "{" U ",\"top_p\":0}", "top_p", "(0, 1]"));
    CHECK(refused(C, "{" U ",\"top_p\":1.5}", "top_p", "(0, 1]"));
    CHECK(refused(C, "{" U ",\"n\":0}", "n", "1..8"));
    CHECK(refused(C, "{" U ",\"n\":-3}", "n", "1..8"));
    CHECK(refused(C, "{" U ",\"n\":1000000000000}", "n", "1..8"));
    CHECK(refused(C, "{" U ",\"n\":1e300}", "n", "expected an integer"));
    CHECK(refused(C, "{" U ",\"n\":1.5}", "n", "expected an integer"));
    CHECK(refused(C, "{" U ",\"max_tokens\":0}", "max_tokens", "1..1000"));
    CHECK(refused(C, "{" U ",\"max_tokens\":-5}", "max_tokens", "1..1000"));
    CHECK(refused(C, "{" U ",\"max_tokens\":5,\"max_completion_tokens\":5}", "max_completion_tokens", "not both"));
    CHECK(refused(C, "{" U ",\"seed\":-1}", "seed", "expected an integer in 0.."));
    CHECK(refused(C, "{" U ",\"stop\":\"\"}", "stop", "must not be empty"));
    CHECK(refused(C, "{" U ",\"stop\":[\"a\",\"\"]}", "stop[1]", "must not be empty"));
    CHECK(refused(C, "{" U ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "at most 4"));
    CHECK(refused(C, "{" U ",\"stop\":[1]}", "stop[0]", "expected a string"));
    CHECK(refused(C, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "messages[0].content", "NUL"));
    CHECK(refused(C, "{" U ",\"stop\":[\"a\\u0000\"]}", "stop[0]", "NUL"));
    CHECK(refused(C, "{" U ",\"top_logprobs\":3}", "top_logprobs", "needs logprobs"));
    CHECK(refused(C, "{" U ",\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs", "0..20"));
    CHECK(refused(C, "{" U ",\"logprobs\":1}", "logprobs", "true or false"));
    CHECK(refused(C, "{" U ",\"stream_options\":{\"include_usage\":true}}", "stream_options", "only with stream"));
    CHECK(refused(C, "{" U ",\"stream\":\"yes\"}", "stream", "true or false"));
    CHECK(refused(C, "{" U ",\"temprature\":1}", "temprature", "unknown field"));
    CHECK(refused(C, "{" U ",\"a\\nb\":1}", "a?b", "a?b: unknown field")); /* found by fuzz_serve_request */
    CHECK(refused(C, "{" U ",\"presence_penalty\":0.5}", "presence_penalty", "not supported"));
    CHECK(refused(C, "{" U ",\"tools\":[{\"type\":\"function\"}]}", "tools", "not supported"));
    CHECK(refused(C, "{" U ",\"prompt\":\"x\"}", "prompt", "unknown field"));
    CHECK(refused(C, "{" U ",\"messages\":[]}", "", "duplicate key"));
#undef U
    /* deep nesting is refused by the JSON reader, not by the stack */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    CHECK(refused(C, deep, "", "not valid JSON"));
    free(deep);
}

TEST(completion_request) {
    const lm_serve_kind K = LM_SERVE_COMPLETION;
    lm_serve_request r;
    lm_serve_param_error pe;
    CHECK(parse(K, "{\"prompt\":\"int main\",\"logprobs\":3,\"max_tokens\":7,\"echo\":false,\"best_of\":1}", &r, &pe) == 0);
    CHECK(r.prompt && !strcmp(r.prompt, "int main") && r.logprobs && r.top_logprobs == 3 && r.max_tokens == 7);
    lm_serve_request_free(&r);
    CHECK(parse(K, "{\"prompt\":[5,6,7]}", &r, &pe) == 0);
    CHECK(r.nprompt_ids == 3 && r.prompt_ids[2] == 7 && !r.prompt);
    lm_serve_request_free(&r);
    CHECK(parse(K, "{\"prompt\":[\"one\"]}", &r, &pe) == 0);
    CHECK(r.prompt && !strcmp(r.prompt, "one"));
    lm_serve_request_free(&r);
    CHECK(parse(K, "{\"prompt\":\"x\",\"logprobs\":0}", &r, &pe) == 0);
    CHECK(r.logprobs && r.top_logprobs == 0);
    lm_serve_request_free(&r);
    CHECK(refused(K, "{}", "prompt", "missing"));
    CHECK(refused(K, "{\"prompt\":[]}", "prompt", "must not be empty"));
    CHECK(refused(K, "{\"prompt\":[1,-2]}", "prompt[1]", "0..2147483647"));
    CHECK(refused(K, "{\"prompt\":[[1],[2]]}", "prompt[0]", "not supported"));
    CHECK(refused(K, "{\"prompt\":[\"a\",\"b\"]}", "prompt", "not supported"));
    CHECK(refused(K, "{\"prompt\":\"x\",\"echo\":true}", "echo", "not supported"));
    CHECK(refused(K, "{\"prompt\":\"x\",\"logprobs\":true}", "logprobs", "expected an integer"));
    CHECK(refused(K, "{\"prompt\":\"x\",\"logprobs\":21}", "logprobs", "0..20"));
    CHECK(refused(K, "{\"prompt\":\"x\",\"best_of\":2}", "best_of", "only equal to n"));
    CHECK(refused(K, "{\"prompt\":\"x\",\"messages\":[]}", "messages", "unknown field"));
}

/* The splitter's deltas over random pieces equal one feed of the whole. */
static void split_whole(const char *text, size_t len, int started, lm_text *r, lm_text *c, int *reasoning) {
    lm_serve_split s;
    lm_serve_split_init(&s, started);
    lm_serve_split_feed(&s, text, len, 1, r, c);
    *reasoning = s.reasoning;
    lm_serve_split_free(&s);
}

static int split_pieces_agree(const char *text, int started, uint64_t seed) {
    size_t len = strlen(text);
    lm_text r1 = {0}, c1 = {0}, r2 = {0}, c2 = {0};
    int h1, ok = 1;
    split_whole(text, len, started, &r1, &c1, &h1);
    lm_serve_split s;
    lm_serve_split_init(&s, started);
    size_t pos = 0;
    for (uint64_t i = 0; pos < len; i++) {
        size_t n = 1 + (size_t)(lm_rng_uniform(seed, 0, i) * 5);
        if (n > len - pos) n = len - pos;
        size_t r0 = r2.len, c0 = c2.len;
        lm_serve_split_feed(&s, text + pos, n, 0, &r2, &c2);
        /* what was sent is final: a prefix of the whole answer */
        ok &= r2.len <= r1.len && (!r2.len || !memcmp(r2.data, r1.data, r2.len));
        ok &= c2.len <= c1.len && (!c2.len || !memcmp(c2.data, c1.data, c2.len));
        (void)r0, (void)c0;
        pos += n;
    }
    lm_serve_split_feed(&s, NULL, 0, 1, &r2, &c2);
    ok &= r1.len == r2.len && c1.len == c2.len && (!r1.len || !memcmp(r1.data, r2.data, r1.len)) &&
          (!c1.len || !memcmp(c1.data, c2.data, c1.len)) && s.reasoning == h1;
    if (!ok) printf("  pieces differ for \"%s\" (started %d, seed %llu)\n", text, started, (unsigned long long)seed);
    lm_serve_split_free(&s);
    lm_text_free(&r1), lm_text_free(&c1), lm_text_free(&r2), lm_text_free(&c2);
    return ok;
}

#define EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

TEST(split_matches_chat_split) {
    /* texts where lm_chat_split_output and the streaming splitter agree:
     * every one that opens reasoning, or has no "</think>" */
    static const char *texts[] = {
        "", "   ", "plain answer", "  lead space", "answer" EOS, "<think>", "<thi", "<think>\n r1 \n</think>\n\n ans",
        "<think>unfinished  ", "<think>a</think>", "<think></think>x" EOS, " \n<think>x</thi", "r</think>a",
        "</think>only", "<think>a</think>b</think>c", "a " EOS " b", "<think>\n\n</think>\n\n", "x<think>y",
        "<think>\xe2\x96\x81</think>\xe4\xb8\xad" EOS,
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int started = 0; started < 2; started++) {
            const char *t = texts[i];
            lm_chat_split ref;
            lm_chat_split_output(t, strlen(t), started, &ref);
            int opens = started || strstr(t, "<think>") == t + strspn(t, " \n\t\r");
            lm_text r = {0}, c = {0};
            int has;
            split_whole(t, strlen(t), started, &r, &c, &has);
            if (opens || !strstr(t, "</think>")) {
                int same = has == ref.has_reasoning && r.len == ref.reasoning_len && c.len == ref.answer_len &&
                           (!r.len || !memcmp(r.data, ref.reasoning, r.len)) && (!c.len || !memcmp(c.data, ref.answer, c.len));
                CHECKF(same, "\"%s\" started %d: reasoning '%.*s' content '%.*s', split_output '%.*s' / '%.*s'", t,
                       started, (int)r.len, r.data ? r.data : "", (int)c.len, c.data ? c.data : "",
                       (int)ref.reasoning_len, ref.reasoning ? ref.reasoning : "", (int)ref.answer_len,
                       ref.answer ? ref.answer : "");
            } else {
                /* the one documented difference: no opening, so a "</think>" is content */
                CHECK(!has && !r.len && c.len == strlen(t) - strspn(t, " \n\t\r"));
            }
            lm_text_free(&r), lm_text_free(&c);
            for (uint64_t seed = 1; seed <= 20; seed++) CHECK(split_pieces_agree(t, started, seed));
        }
    }
}

/* Every formatted piece parses as JSON with the fields a client reads. */
static const json_value *parse_ok(json_doc **doc, const char *s, size_t len) {
    lm_error err;
    *doc = json_parse(s, len, &err);
    if (!*doc) printf("  does not parse (%s): %.*s\n", err.msg, (int)len, s);
    return *doc ? json_root(*doc) : NULL;
}

TEST(response_json) {
    lm_serve_head h = {.id = "chatcmpl-1", .created = 1700000000, .model = "lemma"};
    lm_text t = {0};
    json_doc *doc;
    /* an error, with a message that needs escapes */
    CHECK(lm_serve_fmt_error(&t, "bad \"x\"\n", "invalid_request_error", "n", NULL) == 0);
    const json_value *v = parse_ok(&doc, t.data, t.len);
    CHECK(v && !strcmp(json_get(json_get(v, "error"), "message")->str, "bad \"x\"\n") &&
          json_get(json_get(v, "error"), "code")->type == JSON_NULL &&
          !strcmp(json_get(json_get(v, "error"), "param")->str, "n"));
    json_free(doc);
    /* a chat answer with reasoning and logprobs; invalid UTF-8 becomes U+FFFD */
    lm_text lp = {0};
    lm_serve_token tok = {"a\xff", 2, -0.5}, top[2] = {{"a\xff", 2, -0.5}, {"b", 1, -1e30}};
    CHECK(lm_serve_fmt_chat_logprob(&lp, 1, &tok, top, 2) == 0);
    CHECK(lm_serve_fmt_chat_logprob(&lp, 0, &tok, NULL, 0) == 0);
    lm_serve_choice c[2] = {{.content = "hi\xc3", .content_len = 3, .reasoning = "r", .reasoning_len = 1,
                             .logprobs = lp.data, .logprobs_len = lp.len, .finish = "stop"},
                            {.content = "", .finish = "length"}};
    t.len = 0;
    CHECK(lm_serve_fmt_response(&t, LM_SERVE_CHAT, &h, c, 2, 7, 3) == 0);
    v = parse_ok(&doc, t.data, t.len);
    const json_value *ch0 = json_at(json_get(v, "choices"), 0), *msg = json_get(ch0, "message");
    CHECK(v && !strcmp(json_get(v, "object")->str, "chat.completion"));
    CHECK(msg && !strcmp(json_get(msg, "content")->str, "hi\xef\xbf\xbd") &&
          !strcmp(json_get(msg, "reasoning_content")->str, "r") && !strcmp(json_get(msg, "reasoning")->str, "r"));
    const json_value *lc = json_get(json_get(ch0, "logprobs"), "content");
    CHECK(lc && lc->len == 2 && json_get(json_at(lc, 0), "bytes")->len == 2 &&
          json_get(json_at(json_get(json_at(lc, 0), "top_logprobs"), 1), "logprob")->num == -9999.0);
    CHECK(json_get(json_get(v, "usage"), "total_tokens")->inum == 10);
    CHECK(json_get(json_at(json_get(v, "choices"), 1), "message") &&
          !json_get(json_get(json_at(json_get(v, "choices"), 1), "message"), "reasoning_content"));
    json_free(doc);
    /* completions logprobs */
    lm_serve_cmpl_logprobs a = {0};
    CHECK(lm_serve_cmpl_logprobs_add(&a, &tok, top + 1, 1, 0) == 0 && lm_serve_cmpl_logprobs_add(&a, &tok, NULL, 0, 2) == 0);
    lp.len = 0;
    CHECK(lm_serve_fmt_cmpl_logprobs(&lp, &a) == 0);
    v = parse_ok(&doc, lp.data, lp.len);
    CHECK(v && json_get(v, "tokens")->len == 2 && json_at(json_get(v, "text_offset"), 1)->inum == 2 &&
          json_get(json_at(json_get(v, "top_logprobs"), 0), "b"));
    json_free(doc);
    lm_serve_cmpl_logprobs_free(&a);
    /* stream chunks: "data: {json}\n\n" */
    lm_serve_delta d = {.role = 1, .reasoning = "th", .reasoning_len = 2, .content = "", .finish = NULL};
    t.len = 0;
    CHECK(lm_serve_fmt_chunk(&t, LM_SERVE_CHAT, &h, 1, &d) == 0);
    CHECK(t.len > 8 && !memcmp(t.data, "data: ", 6) && !memcmp(t.data + t.len - 2, "\n\n", 2));
    v = parse_ok(&doc, t.data + 6, t.len - 8);
    const json_value *delta = json_get(json_at(json_get(v, "choices"), 0), "delta");
    CHECK(v && !strcmp(json_get(delta, "role")->str, "assistant") && !strcmp(json_get(delta, "reasoning")->str, "th") &&
          json_at(json_get(v, "choices"), 0)->child->inum == 1 &&
          json_get(json_at(json_get(v, "choices"), 0), "finish_reason")->type == JSON_NULL);
    json_free(doc);
    t.len = 0;
    lm_serve_delta d2 = {.content = "x", .content_len = 1, .finish = "stop"};
    CHECK(lm_serve_fmt_chunk(&t, LM_SERVE_COMPLETION, &h, 0, &d2) == 0);
    v = parse_ok(&doc, t.data + 6, t.len - 8);
    CHECK(v && !strcmp(json_get(json_at(json_get(v, "choices"), 0), "text")->str, "x") &&
          !strcmp(json_get(v, "object")->str, "text_completion"));
    json_free(doc);
    t.len = 0;
    CHECK(lm_serve_fmt_usage_chunk(&t, LM_SERVE_CHAT, &h, 4, 5) == 0);
    v = parse_ok(&doc, t.data + 6, t.len - 8);
    CHECK(v && json_get(v, "choices")->len == 0 && json_get(json_get(v, "usage"), "completion_tokens")->inum == 5);
    json_free(doc);
    t.len = 0;
    CHECK(lm_serve_fmt_done(&t) == 0 && !strcmp(t.data, "data: [DONE]\n\n"));
    lm_text_free(&t);
    lm_text_free(&lp);
}

int main(void) {
    RUN(chat_request_fields);
    RUN(chat_request_errors);
    RUN(completion_request);
    RUN(split_matches_chat_split);
    RUN(response_json);
    return test_report("test_serve");
}
