/* template.c — Python str.format filling; see template.h. */
#include "prove/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"

const char *lm_template_show_field(char *buf, size_t cap, const char *name, size_t n) {
    int plain = n < 100;
    for (size_t i = 0; i < n && plain; i++) plain = (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
    if (plain) {
        snprintf(buf, cap, "{%.*s}", (int)n, name);
        return buf;
    }
    return json_quote(buf, cap, name, n); /* one line whatever the name holds */
}

/* Walks the template; for each literal run calls lit, for each field calls
 * field with the name. Returns -1 with err on a malformed template. */
typedef int (*lit_fn)(void *u, const char *s, size_t n);
typedef int (*field_fn)(void *u, const char *name, size_t n, size_t offset);

static int walk(const char *t, lit_fn lit, field_fn field, void *u, lm_error *err) {
    size_t i = 0, run = 0;
    while (t[i]) {
        char c = t[i];
        if (c != '{' && c != '}') {
            i++;
            continue;
        }
        if (lit(u, t + run, i - run)) return lm_fail(err, "out of memory");
        if (t[i + 1] == c) { /* "{{" or "}}" */
            if (lit(u, t + i, 1)) return lm_fail(err, "out of memory");
            i += 2;
            run = i;
            continue;
        }
        if (c == '}') return lm_fail(err, "byte %zu: single '}' encountered (write '}}' for a literal brace)", i);
        size_t b = i + 1, e = b;
        while (t[e] && t[e] != '}' && t[e] != '{') e++;
        if (t[e] != '}') return lm_fail(err, "byte %zu: '{' without a matching '}' (write '{{' for a literal brace)", i);
        if (e == b) return lm_fail(err, "byte %zu: empty field '{}': only named fields like {question} are supported", i);
        for (size_t k = b; k < e; k++) {
            char d = t[k];
            if (d == '!' || d == ':' || d == '.' || d == '[') {
                char q[128];
                return lm_fail(err, "byte %zu: field %s: conversions, format specs, attributes and indexes are not supported",
                               i, lm_template_show_field(q, sizeof q, t + b, e - b));
            }
        }
        if (t[b] >= '0' && t[b] <= '9') {
            char q[128];
            return lm_fail(err, "byte %zu: positional field %s: only named fields are supported", i,
                           lm_template_show_field(q, sizeof q, t + b, e - b));
        }
        if (field(u, t + b, e - b, i)) return -1;
        i = e + 1;
        run = i;
    }
    if (lit(u, t + run, i - run)) return lm_fail(err, "out of memory");
    return 0;
}

typedef struct fill_ctx {
    const char *const *keys, *const *vals;
    int n;
    lm_text *out;
    lm_error *err;
} fill_ctx;

static int fill_lit(void *u, const char *s, size_t n) {
    fill_ctx *c = u;
    return n ? lm_text_append(c->out, s, n) : 0;
}

static int fill_field(void *u, const char *name, size_t n, size_t offset) {
    fill_ctx *c = u;
    for (int i = 0; i < c->n; i++)
        if (strlen(c->keys[i]) == n && !memcmp(c->keys[i], name, n)) {
            if (lm_text_append(c->out, c->vals[i], strlen(c->vals[i]))) return lm_fail(c->err, "out of memory");
            return 0;
        }
    char q[128];
    return lm_fail(c->err, "byte %zu: unknown placeholder %s", offset, lm_template_show_field(q, sizeof q, name, n));
}

int lm_template_fill(const char *tmpl, const char *const *keys, const char *const *vals, int n, lm_text *out,
                     lm_error *err) {
    fill_ctx c = {keys, vals, n, out, err};
    if (lm_text_append(out, "", 0)) return lm_fail(err, "out of memory");
    return walk(tmpl, fill_lit, fill_field, &c, err);
}

typedef struct names_ctx {
    char **names;
    int n, cap;
    lm_error *err;
} names_ctx;

static int names_lit(void *u, const char *s, size_t n) {
    (void)u, (void)s, (void)n;
    return 0;
}

static int names_field(void *u, const char *name, size_t n, size_t offset) {
    (void)offset;
    names_ctx *c = u;
    for (int i = 0; i < c->n; i++)
        if (strlen(c->names[i]) == n && !memcmp(c->names[i], name, n)) return 0;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 4;
        char **p = realloc(c->names, (size_t)cap * sizeof *p);
        if (!p) return lm_fail(c->err, "out of memory");
        c->names = p;
        c->cap = cap;
    }
    if (!(c->names[c->n] = strndup(name, n))) return lm_fail(c->err, "out of memory");
    c->n++;
    return 0;
}

int lm_template_names(const char *tmpl, char ***names, int *n, lm_error *err) {
    names_ctx c = {NULL, 0, 0, err};
    if (walk(tmpl, names_lit, names_field, &c, err)) {
        lm_template_names_free(c.names, c.n);
        return -1;
    }
    *names = c.names;
    *n = c.n;
    return 0;
}

void lm_template_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}
