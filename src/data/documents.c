/* documents.c — cutting lemma data's inputs into documents (a whole file,
 * every line, paragraphs, or JSONL records) and checking JSONL records; the
 * rules are in shards.h ("Documents"). */
#include "data/shards.h"

#include <string.h>

#include "data/shards_internal.h"

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space((unsigned char)s[i])) return 0;
    return 1;
}

int lm_data_each_doc(const lm_mapped *m, int jsonl, int doc_sep, lm_doc_fn fn, void *ctx) {
    const char *p = m->p, *end = m->p + m->len;
    if (!m->len) return 0;
    if (!jsonl && doc_sep == LM_DOC_FILE) {
        size_t n = m->len;
        while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
        if (all_space(p, n)) return 0;
        lm_doc_span d = {p, n, 1};
        return fn(ctx, &d);
    }
    size_t line = 1;
    const char *dstart = NULL, *dend = NULL;  /* blank mode: the paragraph so far */
    size_t dline = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--;
        int blank = all_space(p, n);
        if (jsonl || doc_sep == LM_DOC_LINE) {
            if (!blank) {
                lm_doc_span d = {p, n, line};
                int rc = fn(ctx, &d);
                if (rc) return rc;
            }
        } else if (blank) {
            if (dstart) {
                lm_doc_span d = {dstart, (size_t)(dend - dstart), dline};
                int rc = fn(ctx, &d);
                if (rc) return rc;
                dstart = NULL;
            }
        } else {
            if (!dstart) {
                dstart = p;
                dline = line;
            }
            dend = p + n;
        }
        p = nl ? nl + 1 : end;
        line++;
    }
    if (dstart) {
        lm_doc_span d = {dstart, (size_t)(dend - dstart), dline};
        return fn(ctx, &d);
    }
    return 0;
}

int lm_data_check_record(const json_value *r, const char *path, size_t line, lm_error *err) {
    if (!r || r->type != JSON_OBJECT)
        return lm_fail(err, "%s:%zu: expected a JSON object with \"text\" or \"segments\"", path, line);
    const json_value *t = json_get(r, "text"), *s = json_get(r, "segments");
    if (t && s) return lm_fail(err, "%s:%zu: a record has \"text\" or \"segments\", not both", path, line);
    if (t) {
        if (t->type != JSON_STRING) return lm_fail(err, "%s:%zu: byte %zu: \"text\": expected a string", path, line, t->offset);
        return 0;
    }
    if (!s) return lm_fail(err, "%s:%zu: expected a JSON object with \"text\" or \"segments\"", path, line);
    if (s->type != JSON_ARRAY || !s->len)
        return lm_fail(err, "%s:%zu: byte %zu: \"segments\": expected a non-empty array", path, line, s->offset);
    for (const json_value *e = s->child; e; e = e->next) {
        const json_value *et = json_get(e, "text"), *el = json_get(e, "loss");
        int b;
        if (e->type != JSON_OBJECT || !et || et->type != JSON_STRING || (el && !json_as_bool(el, &b)))
            return lm_fail(err, "%s:%zu: byte %zu: a segment is {\"text\": string, \"loss\": true|false}", path, line,
                           e->offset);
    }
    return 0;
}
