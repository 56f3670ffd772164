/* chat.c — DeepSeek-V3 chat rendering and output splitting; see chat.h.
 * The rendering mirrors the model's template (chat_template_v3.inc) statement
 * by statement (the names is_first, is_tool, is_output_first are the
 * template's). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "tokenizer/chat.h"

#include <string.h>

#define BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"
#define ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"
#define CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define SEP "<\xef\xbd\x9ctool\xe2\x96\x81sep\xef\xbd\x9c>"
#define OUTPUTS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define OUTPUTS_END "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "end\xef\xbd\x9c>"
#define OUTPUT_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define OUTPUT_END "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "end\xef\xbd\x9c>"

const char lm_chat_template_v3[] =
#include "tokenizer/chat_template_v3.inc"

static int put(lm_text *out, const char *s) { return lm_text_append(out, s, strlen(s)); }

static int put_call(lm_text *out, const lm_chat_tool_call *c) {
    return put(out, CALL_BEGIN) || put(out, c->type ? c->type : "function") || put(out, SEP) ||
           put(out, c->name ? c->name : "") || put(out, "\n```json\n") || put(out, c->arguments ? c->arguments : "") ||
           put(out, "\n```" CALL_END);
}

static int put_content(lm_text *out, const lm_chat_msg *m) {
    if (m->reasoning && (put(out, "<think>\n") || put(out, m->reasoning) || put(out, "\n</think>\n\n"))) return -1;
    return put(out, m->content);
}

int lm_chat_render(const lm_chat_msg *msgs, size_t n, const lm_chat_opts *opts, lm_text *out, lm_error *err) {
    lm_chat_opts dflt = {0};
    if (!opts) opts = &dflt;
    size_t len0 = out->len;
    for (size_t i = 0; i < n; i++) {
        const lm_chat_msg *m = &msgs[i];
        const char *r = m->role ? m->role : "";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
            return lm_fail(err, "messages[%zu].role: '%s' is not system, user, assistant or tool", i, r);
        if (!m->content && strcmp(r, "assistant"))
            return lm_fail(err, "messages[%zu].content: a %s message needs content", i, r);
        if (!m->content && m->ntool_calls == 0)
            return lm_fail(err, "messages[%zu]: an assistant message needs content or tool calls", i);
    }
    int rc = put(out, opts->bos ? opts->bos : BOS);
    int first_sp = 1;
    for (size_t i = 0; i < n && !rc; i++)
        if (!strcmp(msgs[i].role, "system")) {
            if (!first_sp) rc = put(out, "\n\n");
            if (!rc) rc = put(out, msgs[i].content);
            first_sp = 0;
        }
    int is_first = 0, is_tool = 0, is_output_first = 1;
    for (size_t i = 0; i < n && !rc; i++) {
        const lm_chat_msg *m = &msgs[i];
        if (!strcmp(m->role, "user")) {
            is_tool = 0;
            rc = put(out, USER) || put(out, m->content);
        } else if (!strcmp(m->role, "assistant") && !m->content) {
            is_tool = 0;
            for (size_t k = 0; k < m->ntool_calls && !rc; k++) {
                if (!is_first) {
                    rc = put(out, ASSISTANT CALLS_BEGIN) || put_call(out, &m->tool_calls[k]);
                    is_first = 1;
                } else {
                    rc = put(out, "\n") || put_call(out, &m->tool_calls[k]) || put(out, CALLS_END EOS);
                }
            }
        } else if (!strcmp(m->role, "assistant")) {
            if (is_tool) {
                rc = put(out, OUTPUTS_END) || put_content(out, m) || put(out, EOS);
                is_tool = 0;
            } else {
                rc = put(out, ASSISTANT) || put_content(out, m) || put(out, EOS);
            }
        } else if (!strcmp(m->role, "tool")) {
            is_tool = 1;
            if (is_output_first) {
                rc = put(out, OUTPUTS_BEGIN OUTPUT_BEGIN) || put(out, m->content) || put(out, OUTPUT_END);
                is_output_first = 0;
            } else {
                rc = put(out, "\n" OUTPUT_BEGIN) || put(out, m->content) || put(out, OUTPUT_END);
            }
        }
    }
    if (!rc && is_tool) rc = put(out, OUTPUTS_END);
    if (!rc && opts->add_generation_prompt && !is_tool) {
        rc = put(out, ASSISTANT);
        if (!rc && opts->thinking) rc = put(out, "<think>\n");
    }
    if (rc) {
        out->len = len0;
        return lm_fail(err, "out of memory");
    }
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

void lm_chat_split_output(const char *text, size_t len, int started_in_think, lm_chat_split *out) {
    memset(out, 0, sizeof *out);
    const char *end = text + len;
    const char *s = text;
    while (s < end && is_space(*s)) s++;
    int opened = started_in_think;
    if ((size_t)(end - s) >= 7 && !memcmp(s, "<think>", 7)) {
        s += 7;
        opened = 1;
    }
    const char *close = memmem(text, len, "</think>", 8);
    const char *ans;
    if (close) {
        const char *rs = opened ? s : text;
        if (rs > close) rs = close;
        const char *re = close;
        while (rs < re && is_space(*rs)) rs++;
        while (re > rs && is_space(re[-1])) re--;
        out->reasoning = rs;
        out->reasoning_len = (size_t)(re - rs);
        out->has_reasoning = 1;
        out->finished = 1;
        ans = close + 8;
    } else if (opened) {
        while (s < end && is_space(*s)) s++;
        out->reasoning = s;
        out->reasoning_len = (size_t)(end - s);
        out->has_reasoning = 1;
        out->finished = 0;
        out->answer = end;
        return;
    } else {
        out->finished = 1;
        ans = text;
    }
    while (ans < end && is_space(*ans)) ans++;
    const char *ae = end;
    size_t el = sizeof EOS - 1;
    if ((size_t)(ae - ans) >= el && !memcmp(ae - el, EOS, el)) ae -= el;
    out->answer = ans;
    out->answer_len = (size_t)(ae - ans);
}
