/* response.c — the JSON of lemma serve's answers; see response.h. */
#include "serve/response.h"

#include <stdio.h>

#include "formats/jsonw.h"

int lm_serve_fmt_error(lm_text *out, const char *message, const char *type, const char *param, const char *code) {
    return jw_raw(out, "{\"error\":{\"message\":") || jw_str(out, message) || jw_raw(out, ",\"type\":") ||
           jw_str(out, type) || jw_raw(out, ",\"param\":") || jw_str(out, param && *param ? param : NULL) ||
           jw_raw(out, ",\"code\":") || jw_str(out, code) || jw_raw(out, "}}");
}

static int bytes_list(lm_text *out, const lm_serve_token *t) {
    if (jw_raw(out, "[")) return -1;
    for (size_t i = 0; i < t->len; i++)
        if (lm_text_appendf(out, i ? ",%u" : "%u", (unsigned char)t->bytes[i])) return -1;
    return jw_raw(out, "]");
}

/* OpenAI writes -9999.0 for a probability of zero; JSON has no -Infinity. */
static int logprob(lm_text *out, double lp) { return jw_num(out, lp < -9999.0 || lp != lp ? -9999.0 : lp); }

static int token_entry(lm_text *out, const lm_serve_token *t) {
    return jw_raw(out, "{\"token\":") || jw_strn(out, t->bytes, t->len) || jw_raw(out, ",\"logprob\":") ||
           logprob(out, t->logprob) || jw_raw(out, ",\"bytes\":") || bytes_list(out, t);
}

int lm_serve_fmt_chat_logprob(lm_text *out, int first, const lm_serve_token *tok, const lm_serve_token *top, int ntop) {
    if ((!first && jw_raw(out, ",")) || token_entry(out, tok) || jw_raw(out, ",\"top_logprobs\":[")) return -1;
    for (int i = 0; i < ntop; i++)
        if ((i && jw_raw(out, ",")) || token_entry(out, &top[i]) || jw_raw(out, "}")) return -1;
    return jw_raw(out, "]}");
}

int lm_serve_cmpl_logprobs_add(lm_serve_cmpl_logprobs *a, const lm_serve_token *tok, const lm_serve_token *top,
                               int ntop, int64_t text_offset) {
    const char *sep = a->count ? "," : "";
    if (jw_raw(&a->tokens, sep) || jw_strn(&a->tokens, tok->bytes, tok->len) || jw_raw(&a->logprobs, sep) ||
        logprob(&a->logprobs, tok->logprob) || jw_raw(&a->tops, sep) || jw_raw(&a->offsets, sep) ||
        jw_int(&a->offsets, text_offset))
        return -1;
    if (jw_raw(&a->tops, "{")) return -1;
    for (int i = 0; i < ntop; i++)
        if ((i && jw_raw(&a->tops, ",")) || jw_strn(&a->tops, top[i].bytes, top[i].len) || jw_raw(&a->tops, ":") ||
            logprob(&a->tops, top[i].logprob))
            return -1;
    if (jw_raw(&a->tops, "}")) return -1;
    a->count++;
    return 0;
}

static int raw_n(lm_text *out, const lm_text *t) { return t->len ? lm_text_append(out, t->data, t->len) : 0; }

int lm_serve_fmt_cmpl_logprobs(lm_text *out, const lm_serve_cmpl_logprobs *a) {
    return jw_raw(out, "{\"tokens\":[") || raw_n(out, &a->tokens) || jw_raw(out, "],\"token_logprobs\":[") ||
           raw_n(out, &a->logprobs) || jw_raw(out, "],\"top_logprobs\":[") || raw_n(out, &a->tops) ||
           jw_raw(out, "],\"text_offset\":[") || raw_n(out, &a->offsets) || jw_raw(out, "]}");
}

void lm_serve_cmpl_logprobs_free(lm_serve_cmpl_logprobs *a) {
    lm_text_free(&a->tokens);
    lm_text_free(&a->logprobs);
    lm_text_free(&a->tops);
    lm_text_free(&a->offsets);
    a->count = 0;
}

static int head(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, int chunk) {
    const char *object = kind == LM_SERVE_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return jw_raw(out, "{\"id\":") || jw_str(out, h->id) || jw_raw(out, ",\"object\":") || jw_str(out, object) ||
           jw_raw(out, ",\"created\":") || jw_int(out, h->created) || jw_raw(out, ",\"model\":") ||
           jw_str(out, h->model) || jw_raw(out, ",\"system_fingerprint\":null");
}

static int usage(lm_text *out, int64_t prompt_tokens, int64_t completion_tokens) {
    return jw_raw(out, "\"usage\":{\"prompt_tokens\":") || jw_int(out, prompt_tokens) ||
           jw_raw(out, ",\"completion_tokens\":") || jw_int(out, completion_tokens) ||
           jw_raw(out, ",\"total_tokens\":") || jw_int(out, prompt_tokens + completion_tokens) || jw_raw(out, "}");
}

static int reasoning_fields(lm_text *out, const char *r, size_t len) {
    /* reasoning_content (DeepSeek's name) and reasoning (vLLM's), the same text */
    return jw_raw(out, "\"reasoning_content\":") || jw_strn(out, r, len) || jw_raw(out, ",\"reasoning\":") ||
           jw_strn(out, r, len);
}

int lm_serve_fmt_chunk(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, int choice, const lm_serve_delta *d) {
    if (jw_raw(out, "data: ") || head(out, kind, h, 1) || jw_raw(out, ",\"choices\":[{\"index\":") ||
        jw_int(out, choice))
        return -1;
    if (kind == LM_SERVE_CHAT) {
        int comma = 0;
        if (jw_raw(out, ",\"delta\":{")) return -1;
        if (d->role) {
            if (jw_raw(out, "\"role\":\"assistant\"")) return -1;
            comma = 1;
        }
        if (d->reasoning) {
            if ((comma && jw_raw(out, ",")) || reasoning_fields(out, d->reasoning, d->reasoning_len)) return -1;
            comma = 1;
        }
        if (d->content) {
            if ((comma && jw_raw(out, ",")) || jw_raw(out, "\"content\":") || jw_strn(out, d->content, d->content_len))
                return -1;
        }
        if (jw_raw(out, "},\"logprobs\":")) return -1;
        if (d->logprobs) {
            if (jw_raw(out, "{\"content\":[") || lm_text_append(out, d->logprobs, d->logprobs_len) || jw_raw(out, "]}"))
                return -1;
        } else if (jw_raw(out, "null")) {
            return -1;
        }
    } else {
        if (jw_raw(out, ",\"text\":") || jw_strn(out, d->content ? d->content : "", d->content ? d->content_len : 0) ||
            jw_raw(out, ",\"logprobs\":"))
            return -1;
        if (d->logprobs ? lm_text_append(out, d->logprobs, d->logprobs_len) : jw_raw(out, "null")) return -1;
    }
    return jw_raw(out, ",\"finish_reason\":") || jw_str(out, d->finish) || jw_raw(out, "}]}\n\n");
}

int lm_serve_fmt_usage_chunk(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, int64_t prompt_tokens,
                             int64_t completion_tokens) {
    return jw_raw(out, "data: ") || head(out, kind, h, 1) || jw_raw(out, ",\"choices\":[],") ||
           usage(out, prompt_tokens, completion_tokens) || jw_raw(out, "}\n\n");
}

int lm_serve_fmt_done(lm_text *out) { return jw_raw(out, "data: [DONE]\n\n"); }

int lm_serve_fmt_response(lm_text *out, lm_serve_kind kind, const lm_serve_head *h, const lm_serve_choice *c, int n,
                          int64_t prompt_tokens, int64_t completion_tokens) {
    if (head(out, kind, h, 0) || jw_raw(out, ",\"choices\":[")) return -1;
    for (int i = 0; i < n; i++) {
        if ((i && jw_raw(out, ",")) || jw_raw(out, "{\"index\":") || jw_int(out, i)) return -1;
        if (kind == LM_SERVE_CHAT) {
            if (jw_raw(out, ",\"message\":{\"role\":\"assistant\",\"content\":") ||
                jw_strn(out, c[i].content, c[i].content_len))
                return -1;
            if (c[i].reasoning && (jw_raw(out, ",") || reasoning_fields(out, c[i].reasoning, c[i].reasoning_len)))
                return -1;
            if (jw_raw(out, ",\"refusal\":null},\"logprobs\":")) return -1;
            if (c[i].logprobs) {
                if (jw_raw(out, "{\"content\":[") || lm_text_append(out, c[i].logprobs, c[i].logprobs_len) ||
                    jw_raw(out, "]}"))
                    return -1;
            } else if (jw_raw(out, "null")) {
                return -1;
            }
        } else {
            if (jw_raw(out, ",\"text\":") || jw_strn(out, c[i].content, c[i].content_len) ||
                jw_raw(out, ",\"logprobs\":"))
                return -1;
            if (c[i].logprobs ? lm_text_append(out, c[i].logprobs, c[i].logprobs_len) : jw_raw(out, "null")) return -1;
        }
        if (jw_raw(out, ",\"finish_reason\":") || jw_str(out, c[i].finish) || jw_raw(out, "}")) return -1;
    }
    return jw_raw(out, "],") || usage(out, prompt_tokens, completion_tokens) || jw_raw(out, "}");
}
