/* request.c — OpenAI request bodies to lm_serve_request; see request.h. */
#include "serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chat format and stop strings are C strings: a NUL inside would cut them silently. */
#define NUL_TEXT "must not contain U+0000 (NUL)"

typedef struct parser {
    lm_serve_request *r;
    const lm_serve_limits *lim;
    lm_serve_param_error *pe;
} parser;

__attribute__((format(printf, 3, 4))) static int fail(parser *p, const char *param, const char *fmt, ...) {
    /* the field's path, with control bytes (a key may hold "\n") as '?', so that the message stays one line */
    snprintf(p->pe->param, sizeof p->pe->param, "%s", param);
    for (char *c = p->pe->param; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    param = p->pe->param;
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (*param) snprintf(p->pe->msg, sizeof p->pe->msg, "%s: %s", param, detail);
    else snprintf(p->pe->msg, sizeof p->pe->msg, "%s", detail);
    return -1;
}

static const char *kind_of(const json_value *v) {
    if (v->type == JSON_NUMBER) return v->is_int ? "an integer" : "a number";
    if (v->type == JSON_STRING) return "a string";
    if (v->type == JSON_ARRAY) return "an array";
    if (v->type == JSON_OBJECT) return "an object";
    if (v->type == JSON_NULL) return "null";
    return "a boolean";
}

static int get_bool(parser *p, const json_value *v, const char *name, int *out) {
    if (!json_as_bool(v, out)) return fail(p, name, "expected true or false, got %s", kind_of(v));
    return 0;
}

static int get_number(parser *p, const json_value *v, const char *name, double lo, double hi, int lo_open,
                      double *out) {
    if (v->type != JSON_NUMBER) return fail(p, name, "expected a number, got %s", kind_of(v));
    double x = v->is_int ? (double)v->inum : v->num;
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return fail(p, name, "expected a number in %s%g, %g], got %.17g", lo_open ? "(" : "[", lo, hi, x);
    *out = x;
    return 0;
}

static int get_int(parser *p, const json_value *v, const char *name, int64_t lo, int64_t hi, int64_t *out) {
    int64_t x;
    if (v->type != JSON_NUMBER || !json_as_int(v, &x))
        return fail(p, name, "expected an integer, got %s", v->type == JSON_NUMBER ? "a number with a fraction or out of range" : kind_of(v));
    if (x < lo || x > hi) return fail(p, name, "expected an integer in %lld..%lld, got %lld", (long long)lo, (long long)hi, (long long)x);
    *out = x;
    return 0;
}

/* A message's content: a string, or a list of text parts joined. */
static int get_content(parser *p, const json_value *v, const char *name, const char **out) {
    if (v->type == JSON_STRING) {
        if (strlen(v->str) != v->len) return fail(p, name, NUL_TEXT);
        *out = v->str;
        return 0;
    }
    if (v->type != JSON_ARRAY) return fail(p, name, "expected a string or a list of text parts, got %s", kind_of(v));
    lm_text t = {0};
    size_t i = 0;
    char where[160];
    for (const json_value *part = v->child; part; part = part->next, i++) {
        snprintf(where, sizeof where, "%s[%zu]", name, i);
        const json_value *type = json_get(part, "type"), *text = json_get(part, "text");
        if (part->type != JSON_OBJECT) return lm_text_free(&t), fail(p, where, "expected an object, got %s", kind_of(part));
        if (!type || type->type != JSON_STRING || strcmp(type->str, "text"))
            return lm_text_free(&t), fail(p, where, "only parts of type \"text\" are supported");
        if (!text || text->type != JSON_STRING) return lm_text_free(&t), fail(p, where, "a text part needs a \"text\" string");
        if (strlen(text->str) != text->len) return lm_text_free(&t), fail(p, where, NUL_TEXT);
        for (const json_value *m = part->child; m; m = m->next)
            if (strcmp(m->key, "type") && strcmp(m->key, "text"))
                return lm_text_free(&t), fail(p, where, "unknown field \"%.40s\"", m->key);
        if (lm_text_append(&t, text->str, text->len)) return lm_text_free(&t), fail(p, name, "out of memory");
    }
    if (!t.data && !(t.data = calloc(1, 1))) return fail(p, name, "out of memory"); /* [] is "" */
    lm_serve_request *r = p->r;
    char **j = realloc(r->joined, (r->njoined + 1) * sizeof *j);
    if (!j) return lm_text_free(&t), fail(p, name, "out of memory");
    r->joined = j;
    r->joined[r->njoined++] = t.data;
    *out = t.data;
    return 0;
}

static int parse_messages(parser *p, const json_value *v) {
    lm_serve_request *r = p->r;
    if (v->type != JSON_ARRAY) return fail(p, "messages", "expected a list of messages, got %s", kind_of(v));
    if (v->len == 0) return fail(p, "messages", "must not be empty");
    if (!(r->msgs = calloc(v->len, sizeof *r->msgs))) return fail(p, "messages", "out of memory");
    int users = 0;
    size_t i = 0;
    char where[48], field[128];
    for (const json_value *m = v->child; m; m = m->next, i++) {
        snprintf(where, sizeof where, "messages[%zu]", i);
        if (m->type != JSON_OBJECT) return fail(p, where, "expected an object, got %s", kind_of(m));
        lm_chat_msg *msg = &r->msgs[i];
        const json_value *role = NULL, *content = NULL;
        for (const json_value *f = m->child; f; f = f->next) {
            snprintf(field, sizeof field, "%s.%.40s", where, f->key);
            if (!strcmp(f->key, "role")) role = f;
            else if (!strcmp(f->key, "content")) content = f;
            else if (!strcmp(f->key, "name")) {
                if (f->type != JSON_STRING && f->type != JSON_NULL) return fail(p, field, "expected a string, got %s", kind_of(f));
            } else if (!strcmp(f->key, "reasoning_content") || !strcmp(f->key, "reasoning")) {
                if (f->type == JSON_NULL) continue;
                if (f->type != JSON_STRING) return fail(p, field, "expected a string, got %s", kind_of(f));
                if (strlen(f->str) != f->len) return fail(p, field, NUL_TEXT);
                msg->reasoning = f->str;
            } else if (!strcmp(f->key, "tool_calls") || !strcmp(f->key, "tool_call_id") || !strcmp(f->key, "function_call")) {
                if (f->type != JSON_NULL && !(f->type == JSON_ARRAY && f->len == 0))
                    return fail(p, field, "tool calls are not supported");
            } else if (!strcmp(f->key, "refusal")) {
                if (f->type != JSON_NULL) return fail(p, field, "refusals are not supported");
            } else {
                return fail(p, field, "unknown field");
            }
        }
        snprintf(field, sizeof field, "%s.role", where);
        if (!role) return fail(p, field, "missing");
        if (role->type != JSON_STRING) return fail(p, field, "expected a string, got %s", kind_of(role));
        if (!strcmp(role->str, "system") || !strcmp(role->str, "developer")) msg->role = "system";
        else if (!strcmp(role->str, "user")) msg->role = "user", users++;
        else if (!strcmp(role->str, "assistant")) msg->role = "assistant";
        else {
            char q[64];
            return fail(p, field, "expected one of system, developer, user, assistant, got %s",
                        json_quote(q, sizeof q, role->str, role->len));
        }
        if (msg->reasoning && strcmp(msg->role, "assistant")) {
            snprintf(field, sizeof field, "%s.reasoning_content", where);
            return fail(p, field, "only an assistant turn may carry reasoning");
        }
        snprintf(field, sizeof field, "%s.content", where);
        if (!content || content->type == JSON_NULL) return fail(p, field, "missing (a message needs text content)");
        if (get_content(p, content, field, &msg->content)) return -1;
    }
    r->nmsgs = v->len;
    if (!users) return fail(p, "messages", "needs at least one user message");
    return 0;
}

static int parse_prompt(parser *p, const json_value *v) {
    lm_serve_request *r = p->r;
    if (v->type == JSON_STRING) {
        r->prompt = v->str;
        r->prompt_len = v->len;
        return 0;
    }
    if (v->type != JSON_ARRAY) return fail(p, "prompt", "expected a string or a list of token ids, got %s", kind_of(v));
    if (v->len == 0) return fail(p, "prompt", "must not be empty");
    /* [["a"]] batches and ["a"] lists of strings: one prompt per request here */
    if (v->child->type == JSON_STRING) {
        if (v->len != 1) return fail(p, "prompt", "a list of several prompts is not supported (send one request each)");
        r->prompt = v->child->str;
        r->prompt_len = v->child->len;
        return 0;
    }
    if (!(r->prompt_ids = malloc(v->len * sizeof *r->prompt_ids))) return fail(p, "prompt", "out of memory");
    size_t i = 0;
    char where[48];
    for (const json_value *e = v->child; e; e = e->next, i++) {
        snprintf(where, sizeof where, "prompt[%zu]", i);
        int64_t id;
        if (e->type == JSON_ARRAY) return fail(p, where, "a list of several prompts is not supported (send one request each)");
        if (get_int(p, e, where, 0, INT32_MAX, &id)) return -1;
        r->prompt_ids[i] = (int32_t)id;
    }
    r->nprompt_ids = v->len;
    return 0;
}

static int parse_stop(parser *p, const json_value *v) {
    lm_serve_request *r = p->r;
    if (v->type == JSON_STRING) {
        if (!v->len) return fail(p, "stop", "must not be empty");
        if (strlen(v->str) != v->len) return fail(p, "stop", NUL_TEXT);
        if (!(r->stop = malloc(sizeof *r->stop))) return fail(p, "stop", "out of memory");
        r->stop[0] = v->str;
        r->nstop = 1;
        return 0;
    }
    if (v->type != JSON_ARRAY) return fail(p, "stop", "expected a string or a list of strings, got %s", kind_of(v));
    if (v->len > (size_t)p->lim->max_stop) return fail(p, "stop", "at most %d strings, got %zu", p->lim->max_stop, v->len);
    if (v->len && !(r->stop = malloc(v->len * sizeof *r->stop))) return fail(p, "stop", "out of memory");
    char where[32];
    int i = 0;
    for (const json_value *e = v->child; e; e = e->next, i++) {
        snprintf(where, sizeof where, "stop[%d]", i);
        if (e->type != JSON_STRING) return fail(p, where, "expected a string, got %s", kind_of(e));
        if (!e->len) return fail(p, where, "must not be empty");
        if (strlen(e->str) != e->len) return fail(p, where, NUL_TEXT);
        r->stop[i] = e->str;
    }
    r->nstop = i;
    return 0;
}

/* Fields OpenAI defines that lemma leaves at their neutral value. */
static int neutral(parser *p, const json_value *v, const char *name) {
    int b;
    if (v->type == JSON_NULL) return 0;
    if (!strcmp(name, "frequency_penalty") || !strcmp(name, "presence_penalty")) {
        double x;
        if (get_number(p, v, name, -2, 2, 0, &x)) return -1;
        if (x != 0) return fail(p, name, "is not supported (only 0)");
        return 0;
    }
    if (!strcmp(name, "logit_bias") || !strcmp(name, "metadata")) {
        if (v->type != JSON_OBJECT) return fail(p, name, "expected an object, got %s", kind_of(v));
        if (v->len && !strcmp(name, "logit_bias")) return fail(p, name, "is not supported (only {})");
        return 0;
    }
    if (!strcmp(name, "user") || !strcmp(name, "service_tier")) {
        if (v->type != JSON_STRING) return fail(p, name, "expected a string, got %s", kind_of(v));
        return 0;
    }
    if (!strcmp(name, "store") || !strcmp(name, "parallel_tool_calls")) return get_bool(p, v, name, &b);
    if (!strcmp(name, "echo")) {
        if (get_bool(p, v, name, &b)) return -1;
        if (b) return fail(p, name, "is not supported (only false)");
        return 0;
    }
    if (!strcmp(name, "suffix")) return fail(p, name, "is not supported");
    if (!strcmp(name, "tools") || !strcmp(name, "functions")) {
        if (v->type == JSON_ARRAY && v->len == 0) return 0;
        return fail(p, name, "tool calls are not supported");
    }
    if (!strcmp(name, "tool_choice") || !strcmp(name, "function_call")) {
        if (v->type == JSON_STRING && !strcmp(v->str, "none")) return 0;
        return fail(p, name, "tool calls are not supported (only \"none\")");
    }
    if (!strcmp(name, "response_format")) {
        const json_value *t = json_get(v, "type");
        if (v->type == JSON_OBJECT && t && t->type == JSON_STRING && !strcmp(t->str, "text") && v->len == 1) return 0;
        return fail(p, name, "only {\"type\":\"text\"} is supported");
    }
    return 1; /* not one of them */
}

static int parse_fields(parser *p, const json_value *root) {
    lm_serve_request *r = p->r;
    int chat = r->kind == LM_SERVE_CHAT;
    const json_value *messages = NULL, *prompt = NULL, *max_tokens = NULL, *max_completion = NULL;
    const json_value *logprobs = NULL, *top_logprobs = NULL, *best_of = NULL;
    int64_t x;
    for (const json_value *f = root->child; f; f = f->next) {
        const char *k = f->key;
        if (chat && !strcmp(k, "messages")) messages = f;
        else if (!chat && !strcmp(k, "prompt")) prompt = f;
        else if (f->type == JSON_NULL) continue; /* null = absent, for every optional field */
        else if (!strcmp(k, "model")) {
            if (f->type != JSON_STRING) return fail(p, k, "expected a string, got %s", kind_of(f));
            r->model = f->str;
        } else if (!strcmp(k, "max_tokens")) max_tokens = f;
        else if (chat && !strcmp(k, "max_completion_tokens")) max_completion = f;
        else if (!strcmp(k, "temperature")) {
            if (get_number(p, f, k, 0, 2, 0, &r->temperature)) return -1;
        } else if (!strcmp(k, "top_p")) {
            if (get_number(p, f, k, 0, 1, 1, &r->top_p)) return -1;
        } else if (!strcmp(k, "min_p")) {
            if (get_number(p, f, k, 0, 1, 0, &r->min_p)) return -1;
        } else if (!strcmp(k, "top_k")) {
            /* vLLM: -1 (or 0) means off */
            if (get_int(p, f, k, -1, INT32_MAX, &x)) return -1;
            r->top_k = x < 0 ? 0 : (int)x;
        } else if (!strcmp(k, "seed")) {
            if (get_int(p, f, k, 0, INT64_MAX, &x)) return -1;
            r->seed = (uint64_t)x;
            r->has_seed = 1;
        } else if (!strcmp(k, "stop")) {
            if (parse_stop(p, f)) return -1;
        } else if (!strcmp(k, "n")) {
            if (get_int(p, f, k, 1, p->lim->max_n, &x)) return -1;
            r->n = (int)x;
        } else if (!strcmp(k, "best_of") && !chat) best_of = f;
        else if (!strcmp(k, "ignore_eos")) {
            if (get_bool(p, f, k, &r->ignore_eos)) return -1;
        } else if (!strcmp(k, "stream")) {
            if (get_bool(p, f, k, &r->stream)) return -1;
        } else if (!strcmp(k, "stream_options")) {
            if (f->type != JSON_OBJECT) return fail(p, k, "expected an object, got %s", kind_of(f));
            for (const json_value *o = f->child; o; o = o->next) {
                if (!strcmp(o->key, "include_usage")) {
                    if (o->type != JSON_NULL && get_bool(p, o, "stream_options.include_usage", &r->include_usage)) return -1;
                } else if (strcmp(o->key, "continuous_usage_stats") || o->type != JSON_FALSE) {
                    char where[96];
                    snprintf(where, sizeof where, "stream_options.%.40s", o->key);
                    return fail(p, where, "unknown field");
                }
            }
        } else if (!strcmp(k, "logprobs")) logprobs = f;
        else if (chat && !strcmp(k, "top_logprobs")) top_logprobs = f;
        else if (chat && !strcmp(k, "chat_template_kwargs")) {
            if (f->type != JSON_OBJECT) return fail(p, k, "expected an object, got %s", kind_of(f));
            for (const json_value *o = f->child; o; o = o->next) {
                char where[96];
                snprintf(where, sizeof where, "chat_template_kwargs.%.40s", o->key);
                if (strcmp(o->key, "thinking") && strcmp(o->key, "enable_thinking")) return fail(p, where, "unknown field (only thinking)");
                if (get_bool(p, o, where, &r->thinking)) return -1;
            }
        } else {
            int rc = neutral(p, f, k);
            if (rc < 0) return -1;
            if (rc > 0) return fail(p, k, "unknown field");
        }
    }
    if (chat) {
        if (!messages) return fail(p, "messages", "missing");
        if (parse_messages(p, messages)) return -1;
    } else {
        if (!prompt || prompt->type == JSON_NULL) return fail(p, "prompt", "missing");
        if (parse_prompt(p, prompt)) return -1;
    }
    if (max_tokens && max_completion) return fail(p, "max_completion_tokens", "give max_tokens or max_completion_tokens, not both");
    const json_value *mt = max_completion ? max_completion : max_tokens;
    if (mt && get_int(p, mt, mt->key, 1, p->lim->max_ctx, &r->max_tokens)) return -1;
    if (best_of) {
        if (get_int(p, best_of, "best_of", 1, p->lim->max_n, &x)) return -1;
        if (x != r->n) return fail(p, "best_of", "is not supported (only equal to n)");
    }
    if (chat) {
        if (logprobs && get_bool(p, logprobs, "logprobs", &r->logprobs)) return -1;
        if (top_logprobs) {
            if (get_int(p, top_logprobs, "top_logprobs", 0, p->lim->max_top_logprobs, &x)) return -1;
            if (!r->logprobs) return fail(p, "top_logprobs", "needs logprobs: true");
            r->top_logprobs = (int)x;
        }
    } else if (logprobs) {
        /* completions: logprobs is the number of alternatives (0 = the sampled token only) */
        if (get_int(p, logprobs, "logprobs", 0, p->lim->max_top_logprobs, &x)) return -1;
        r->logprobs = 1;
        r->top_logprobs = (int)x;
    }
    if (r->include_usage && !r->stream) return fail(p, "stream_options", "only with stream: true");
    return 0;
}

int lm_serve_request_parse(lm_serve_kind kind, const char *body, size_t len, const lm_serve_limits *lim,
                           lm_serve_request *out, lm_serve_param_error *pe) {
    memset(out, 0, sizeof *out);
    pe->msg[0] = pe->param[0] = 0;
    out->kind = kind;
    out->max_tokens = -1;
    out->temperature = 1;
    out->top_p = 1;
    out->n = 1;
    parser p = {out, lim, pe};
    lm_error err;
    if (!(out->doc = json_parse(body, len, &err))) {
        snprintf(pe->msg, sizeof pe->msg, "the body is not valid JSON: %.400s", err.msg);
        return -1;
    }
    const json_value *root = json_root(out->doc);
    if (root->type != JSON_OBJECT) {
        fail(&p, "", "the body must be a JSON object, got %s", kind_of(root));
    } else if (parse_fields(&p, root) == 0) {
        return 0;
    }
    lm_serve_request_free(out);
    return -1;
}

void lm_serve_request_free(lm_serve_request *r) {
    for (size_t i = 0; i < r->njoined; i++) free(r->joined[i]);
    free(r->joined);
    free(r->msgs);
    free(r->prompt_ids);
    free(r->stop);
    json_free(r->doc);
    memset(r, 0, sizeof *r);
}
