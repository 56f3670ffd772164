/* test_chat.c — DeepSeek-V3 chat rendering against the examples rendered by
 * the model's own Jinja template (../shared/.../chat-examples.jsonl), their
 * reference ids, and splitting model output into reasoning and answer. */
#include "formats/json.h"
#include "test.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

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
    *len = (size_t)n;
    return b;
}

static const char *str_or_null(const json_value *v) { return v && v->type == JSON_STRING ? v->str : NULL; }

TEST(test_examples) {
    const char *sh = test_shared_dir();
    if (!sh) SKIP("../shared (chat examples) is absent");
    char path[700], dir[600];
    snprintf(dir, sizeof dir, "%s/data/tokenizer/deepseek-v3", sh);
    snprintf(path, sizeof path, "%s/chat-examples.jsonl", dir);
    size_t len;
    char *data = slurp(path, &len);
    if (!data) SKIP("%s is absent", path);
    lm_error err;
    lm_tokenizer *tok = lm_tokenizer_load(dir, &err);
    CHECKF(tok != NULL, "%s", err.msg);
    int n = 0, same = 0;
    for (char *line = data; line < data + len;) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
        json_doc *doc = json_parse(line, ll, &err);
        line += ll + 1;
        if (!doc) continue;
        const json_value *r = json_root(doc), *msgs = json_get(r, "messages");
        lm_chat_msg m[32];
        lm_chat_tool_call calls[32];
        size_t nm = 0, nc = 0;
        for (const json_value *e = msgs->child; e && nm < 32; e = e->next, nm++) {
            m[nm] = (lm_chat_msg){.role = str_or_null(json_get(e, "role")), .content = str_or_null(json_get(e, "content"))};
            const json_value *tc = json_get(e, "tool_calls");
            if (tc && tc->type == JSON_ARRAY) {
                m[nm].tool_calls = &calls[nc];
                for (const json_value *c = tc->child; c && nc < 32; c = c->next) {
                    const json_value *fn = json_get(c, "function");
                    calls[nc++] = (lm_chat_tool_call){str_or_null(json_get(c, "type")), str_or_null(json_get(fn, "name")),
                                                      str_or_null(json_get(fn, "arguments"))};
                    m[nm].ntool_calls++;
                }
            }
        }
        int agp = 0;
        json_as_bool(json_get(r, "add_generation_prompt"), &agp);
        lm_chat_opts o = {.add_generation_prompt = agp};
        lm_text out = {0};
        CHECK(lm_chat_render(m, nm, &o, &out, &err) == 0);
        const json_value *want = json_get(r, "prompt"), *name = json_get(r, "name");
        int ok = out.len == want->len && !memcmp(out.data, want->str, out.len);
        CHECKF(ok, "example '%s': rendered prompt differs:\n    got  %s\n    want %s", name->str, out.data, want->str);
        /* and the prompt encodes to the reference ids */
        if (tok) {
            lm_ids ids = {0};
            CHECK(lm_tokenizer_encode(tok, out.data, out.len, LM_TOK_SPECIAL, &ids, &err) == 0);
            const json_value *wi = json_get(r, "ids");
            int idok = ids.n == wi->len;
            size_t k = 0;
            for (const json_value *e = wi->child; idok && e; e = e->next, k++) idok = e->inum == ids.ids[k];
            CHECKF(idok, "example '%s': ids differ", name->str);
            ok = ok && idok;
            lm_ids_free(&ids);
        }
        same += ok;
        n++;
        lm_text_free(&out);
        json_free(doc);
    }
    printf("  %d/%d chat examples byte-identical (and same ids)\n", same, n);
    CHECK(n == 10);
    lm_tokenizer_free(tok);
    free(data);
}

#define BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"
#define ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"

TEST(test_render_extensions) {
    lm_error err;
    lm_text out = {0};
    lm_chat_msg m[] = {{.role = "user", .content = "Is 91 prime?"},
                       {.role = "assistant", .content = "No.", .reasoning = "91 = 7 * 13."},
                       {.role = "user", .content = "And 97?"}};
    lm_chat_opts o = {.add_generation_prompt = 1, .thinking = 1};
    CHECK(lm_chat_render(m, 3, &o, &out, &err) == 0);
    const char *want = BOS USER "Is 91 prime?" ASSISTANT "<think>\n91 = 7 * 13.\n</think>\n\nNo." EOS USER "And 97?"
                       ASSISTANT "<think>\n";
    CHECKF(!strcmp(out.data, want), "got %s", out.data);
    out.len = 0;
    lm_chat_opts o2 = {.add_generation_prompt = 0, .bos = ""};
    CHECK(lm_chat_render(m, 1, &o2, &out, &err) == 0 && !strcmp(out.data, USER "Is 91 prime?"));
    /* no messages: just BOS (+ the generation prompt) */
    out.len = 0;
    lm_chat_opts o3 = {.add_generation_prompt = 1};
    CHECK(lm_chat_render(NULL, 0, &o3, &out, &err) == 0 && !strcmp(out.data, BOS ASSISTANT));
    /* errors */
    lm_chat_msg bad1[] = {{.role = "robot", .content = "x"}};
    CHECK(lm_chat_render(bad1, 1, NULL, &out, &err) == -1 && strstr(err.msg, "messages[0].role"));
    lm_chat_msg bad2[] = {{.role = "user", .content = "x"}, {.role = "user"}};
    CHECK(lm_chat_render(bad2, 2, NULL, &out, &err) == -1 && strstr(err.msg, "messages[1].content"));
    lm_chat_msg bad3[] = {{.role = "assistant"}};
    CHECK(lm_chat_render(bad3, 1, NULL, &out, &err) == -1 && strstr(err.msg, "content or tool calls"));
    lm_text_free(&out);
}

static int eq(const char *p, size_t n, const char *want) { return n == strlen(want) && !memcmp(p, want, n); }

TEST(test_split_output) {
    lm_chat_split s;
    const char *a = "<think>\nLet me see. 91 = 7*13.\n</think>\n\nNo, 91 is not prime." EOS;
    lm_chat_split_output(a, strlen(a), 0, &s);
    CHECK(s.has_reasoning && s.finished);
    CHECK(eq(s.reasoning, s.reasoning_len, "Let me see. 91 = 7*13."));
    CHECK(eq(s.answer, s.answer_len, "No, 91 is not prime."));
    /* the prompt ended with "<think>\n": the output starts inside the reasoning */
    const char *b = "Hmm.\n</think>\nYes.";
    lm_chat_split_output(b, strlen(b), 1, &s);
    CHECK(s.has_reasoning && eq(s.reasoning, s.reasoning_len, "Hmm.") && eq(s.answer, s.answer_len, "Yes."));
    /* </think> without <think>: text before it is still reasoning */
    lm_chat_split_output(b, strlen(b), 0, &s);
    CHECK(s.has_reasoning && eq(s.reasoning, s.reasoning_len, "Hmm.") && eq(s.answer, s.answer_len, "Yes."));
    /* unfinished reasoning */
    const char *c = "<think>\nStill thinking";
    lm_chat_split_output(c, strlen(c), 0, &s);
    CHECK(s.has_reasoning && !s.finished && eq(s.reasoning, s.reasoning_len, "Still thinking") && s.answer_len == 0);
    /* no reasoning at all */
    const char *d = "  Just an answer.";
    lm_chat_split_output(d, strlen(d), 0, &s);
    CHECK(!s.has_reasoning && s.finished && eq(s.answer, s.answer_len, "Just an answer."));
    lm_chat_split_output("", 0, 0, &s);
    CHECK(!s.has_reasoning && s.answer_len == 0);
    lm_chat_split_output("", 0, 1, &s);
    CHECK(s.has_reasoning && !s.finished && s.reasoning_len == 0);
}

int main(void) {
    RUN(test_examples);
    RUN(test_render_extensions);
    RUN(test_split_output);
    return test_report("test_chat");
}
