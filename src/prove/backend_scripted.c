/* backend_scripted.c — answers chosen by a JSON script; see
 * backend_scripted.h. */
#include "prove/backend_scripted.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "formats/json.h"

typedef struct rule {
    char *name;
    char **when, **unless, **replies;
    int n_when, n_unless, n_replies;
    char *reasoning, *finish_reason, *fail;
} rule;

typedef struct script {
    rule *rules;
    int n;
    int64_t delay_ms;
    int log_fd;
} script;

static void script_free(script *s) {
    for (int i = 0; i < s->n; i++) {
        rule *r = &s->rules[i];
        for (int k = 0; k < r->n_when; k++) free(r->when[k]);
        for (int k = 0; k < r->n_unless; k++) free(r->unless[k]);
        for (int k = 0; k < r->n_replies; k++) free(r->replies[k]);
        free(r->when);
        free(r->unless);
        free(r->replies);
        free(r->name);
        free(r->reasoning);
        free(r->finish_reason);
        free(r->fail);
    }
    free(s->rules);
    if (s->log_fd >= 0) close(s->log_fd);
    free(s);
}

static int str_list(const json_value *v, const char *name, const char *what, char ***out, int *n, lm_error *err) {
    *out = NULL;
    *n = 0;
    if (!v) return 0;
    if (v->type != JSON_ARRAY) return lm_fail(err, "%s: byte %zu: %s: expected a list of strings", name, v->offset, what);
    if (!(*out = calloc(v->len + 1, sizeof **out))) return lm_fail(err, "out of memory");
    for (const json_value *e = v->child; e; e = e->next) {
        if (e->type != JSON_STRING) return lm_fail(err, "%s: byte %zu: %s: expected strings", name, e->offset, what);
        if (!((*out)[(*n)++] = strdup(e->str))) return lm_fail(err, "out of memory");
    }
    return 0;
}

static int opt_str(const json_value *o, const char *key, const char *name, char **out, lm_error *err) {
    const json_value *v = json_get(o, key);
    *out = NULL;
    if (!v) return 0;
    if (v->type != JSON_STRING) return lm_fail(err, "%s: byte %zu: %s: expected a string", name, v->offset, key);
    return (*out = strdup(v->str)) ? 0 : lm_fail(err, "out of memory");
}

static int matches(const rule *r, const char *prompt) {
    for (int k = 0; k < r->n_when; k++)
        if (!strstr(prompt, r->when[k])) return 0;
    for (int k = 0; k < r->n_unless; k++)
        if (strstr(prompt, r->unless[k])) return 0;
    return 1;
}

static int scripted_run(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
                        volatile int *stop, lm_error *err) {
    script *s = b->impl;
    for (int i = 0; i < n; i++) {
        if (stop && *stop) return lm_fail(err, "interrupted");
        if (s->delay_ms > 0) {
            struct timespec ts = {s->delay_ms / 1000, (s->delay_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        const lm_chat_request *q = &reqs[i];
        const rule *r = NULL;
        for (int k = 0; k < s->n && !r; k++)
            if (matches(&s->rules[k], q->prompt)) r = &s->rules[k];
        lm_chat_reply rep;
        memset(&rep, 0, sizeof rep);
        rep.key = q->key;
        rep.content = rep.reasoning = rep.finish_reason = rep.error = "";
        rep.prompt_tokens = rep.completion_tokens = -1;
        rep.attempts = 1;
        if (!r) {
            rep.error = "scripted backend: no rule matches the prompt";
        } else if (r->fail) {
            rep.error = r->fail;
        } else {
            rep.ok = 1;
            rep.content = r->n_replies ? r->replies[q->seed % (uint64_t)r->n_replies] : "";
            rep.reasoning = r->reasoning ? r->reasoning : "";
            rep.finish_reason = r->finish_reason ? r->finish_reason : "stop";
            rep.prompt_tokens = (int64_t)strlen(q->prompt) / 4;
            rep.completion_tokens = (int64_t)strlen(rep.content) / 4;
        }
        if (s->log_fd >= 0) {
            char line[200];
            int len = snprintf(line, sizeof line, "%016" PRIx64 " %.100s\n", q->seed, r ? r->name : "-");
            if (write(s->log_fd, line, (size_t)len) != len) return lm_fail(err, "scripted backend: cannot write its log");
        }
        on_reply(user, &rep);
    }
    return 0;
}

static void scripted_free(lm_backend *b) {
    if (!b) return;
    script_free(b->impl);
    free(b);
}

lm_backend *lm_backend_scripted_create(const char *json, size_t len, const char *name, lm_error *err) {
    script *s = calloc(1, sizeof *s);
    lm_backend *b = calloc(1, sizeof *b);
    json_doc *doc = NULL;
    if (!s || !b) goto oom;
    s->log_fd = -1;
    if (!(doc = json_parse(json, len, err))) {
        lm_fail_prefix(err, "%s", name);
        goto fail;
    }
    const json_value *root = json_root(doc), *rules = json_get(root, "rules"), *v;
    if (!rules || rules->type != JSON_ARRAY) {
        lm_fail(err, "%s: expected an object with \"rules\": a list", name);
        goto fail;
    }
    if ((v = json_get(root, "delay_ms")) && (!json_as_int(v, &s->delay_ms) || s->delay_ms < 0 || s->delay_ms > 60000)) {
        lm_fail(err, "%s: delay_ms: expected 0..60000", name);
        goto fail;
    }
    if ((v = json_get(root, "log"))) {
        if (v->type != JSON_STRING) {
            lm_fail(err, "%s: log: expected a path", name);
            goto fail;
        }
        if ((s->log_fd = open(v->str, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
            lm_fail(err, "%s: log %s: %s", name, v->str, strerror(errno));
            goto fail;
        }
    }
    if (!(s->rules = calloc(rules->len + 1, sizeof *s->rules))) goto oom;
    for (const json_value *o = rules->child; o; o = o->next) {
        rule *r = &s->rules[s->n++];
        if (o->type != JSON_OBJECT) {
            lm_fail(err, "%s: byte %zu: a rule must be an object", name, o->offset);
            goto fail;
        }
        if (str_list(json_get(o, "when"), name, "when", &r->when, &r->n_when, err) ||
            str_list(json_get(o, "unless"), name, "unless", &r->unless, &r->n_unless, err) ||
            str_list(json_get(o, "replies"), name, "replies", &r->replies, &r->n_replies, err) ||
            opt_str(o, "name", name, &r->name, err) || opt_str(o, "reasoning", name, &r->reasoning, err) ||
            opt_str(o, "finish_reason", name, &r->finish_reason, err) || opt_str(o, "fail", name, &r->fail, err))
            goto fail;
        if (!r->name) {
            char nb[32];
            snprintf(nb, sizeof nb, "rule%d", s->n - 1);
            if (!(r->name = strdup(nb))) goto oom;
        }
        if (!r->fail && r->n_replies == 0) {
            lm_fail(err, "%s: rule %s: needs \"replies\" or \"fail\"", name, r->name);
            goto fail;
        }
    }
    json_free(doc);
    b->name = "scripted";
    b->run = scripted_run;
    b->free = scripted_free;
    b->impl = s;
    return b;
oom:
    lm_fail(err, "out of memory");
fail:
    json_free(doc);
    if (s) script_free(s);
    free(b);
    return NULL;
}

lm_backend *lm_backend_scripted_load(const char *path, lm_error *err) {
    char *text;
    size_t len;
    if (lm_read_file(path, 64u << 20, &text, &len, err)) return NULL;
    lm_backend *b = lm_backend_scripted_create(text, len, path, err);
    free(text);
    return b;
}
