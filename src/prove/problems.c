/* problems.c — reading problem and proof files; see problems.h. */
#include "prove/problems.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/sha256.h"
#include "formats/json.h"

/* Where an object came from, for messages: "file:LINE" or "file: element N". */
typedef struct where {
    const char *name;
    int line;         /* JSONL: 1-based line; 0 for an array */
    int element;      /* array: 1-based element */
    size_t base;      /* JSONL: byte offset of the line in the file */
} where;

static const char *where_str(const where *w, char *buf, size_t cap) {
    if (w->line) snprintf(buf, cap, "%s:%d", w->name, w->line);
    else snprintf(buf, cap, "%s: element %d", w->name, w->element);
    return buf;
}

static int add_item(lm_problem_set *ps, const json_value *obj, const where *w, int need_proof, lm_error *err) {
    char at[600], q[80];
    where_str(w, at, sizeof at);
    if (obj->type != JSON_OBJECT)
        return lm_fail(err, "%s: expected an object with \"question\", found %s", at, json_type_name(obj->type));
    const json_value *qv = json_get(obj, "question"), *iv = json_get(obj, "id"), *pv = json_get(obj, "proof");
    if (!qv) return lm_fail(err, "%s: missing \"question\"", at);
    if (qv->type != JSON_STRING || qv->len == 0 || strlen(qv->str) != qv->len)
        return lm_fail(err, "%s: \"question\" must be a non-empty string without NUL bytes", at);
    if (need_proof) {
        if (!pv) return lm_fail(err, "%s: missing \"proof\" (lemma verify judges the proof each line carries)", at);
        if (pv->type != JSON_STRING || strlen(pv->str) != pv->len)
            return lm_fail(err, "%s: \"proof\" must be a string without NUL bytes", at);
    }
    char idbuf[32];
    const char *id;
    if (!iv) {
        snprintf(idbuf, sizeof idbuf, "%d", ps->n + 1);
        id = idbuf;
    } else if (iv->type == JSON_STRING && iv->len > 0 && strlen(iv->str) == iv->len) {
        id = iv->str;
    } else if (iv->type == JSON_NUMBER && iv->is_int) {
        snprintf(idbuf, sizeof idbuf, "%" PRId64, iv->inum);
        id = idbuf;
    } else {
        return lm_fail(err, "%s: \"id\" must be a non-empty string or an integer", at);
    }
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->items[i].id, id))
            return lm_fail(err, "%s: id %s is used twice (also by problem %d)", at, json_quote(q, sizeof q, id, strlen(id)),
                           i + 1);
    if (ps->n % 64 == 0) {
        lm_problem *p = realloc(ps->items, (size_t)(ps->n + 64) * sizeof *p);
        if (!p) return lm_fail(err, "out of memory");
        ps->items = p;
    }
    lm_problem *it = &ps->items[ps->n];
    memset(it, 0, sizeof *it);
    it->id = strdup(id);
    it->question = strdup(qv->str);
    it->proof = need_proof ? strdup(pv->str) : NULL;
    ps->n++;
    if (!it->id || !it->question || (need_proof && !it->proof)) return lm_fail(err, "out of memory");
    return 0;
}

int lm_problems_parse(const char *text, size_t len, const char *name, int need_proof, lm_problem_set *ps,
                      lm_error *err) {
    memset(ps, 0, sizeof *ps);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
    int rc = 0;
    if (i < len && text[i] == '[') {
        json_doc *doc = json_parse(text, len, err);
        if (!doc) {
            rc = lm_fail_prefix(err, "%s", name);
        } else {
            where w = {name, 0, 0, 0};
            for (const json_value *v = json_root(doc)->child; v && !rc; v = v->next) {
                w.element++;
                rc = add_item(ps, v, &w, need_proof, err);
            }
            json_free(doc);
        }
    } else {
        where w = {name, 0, 0, 0};
        size_t pos = 0;
        while (pos < len && !rc) {
            const char *nl = memchr(text + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - text) : len;
            w.line++;
            size_t b = pos, e = end;
            while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) b++;
            if (b < e) {
                json_doc *doc = json_parse(text + pos, end - pos, err);
                if (!doc) {
                    rc = lm_fail_prefix(err, "%s:%d", name, w.line);
                } else {
                    rc = add_item(ps, json_root(doc), &w, need_proof, err);
                    json_free(doc);
                }
            }
            pos = end + 1;
        }
    }
    if (!rc && ps->n == 0)
        rc = lm_fail(err, "%s: no problems (expected a JSON array of objects or JSONL lines with \"question\")", name);
    if (rc) {
        lm_problems_free(ps);
        return -1;
    }
    uint8_t d[32];
    lm_sha256_buf(text, len, d);
    lm_sha256_hex(d, ps->sha256);
    return 0;
}

int lm_problems_load(const char *path, int need_proof, lm_problem_set *ps, lm_error *err) {
    char *text;
    size_t len;
    if (lm_read_file(path, (size_t)1 << 32, &text, &len, err)) return -1;
    int rc = lm_problems_parse(text, len, path, need_proof, ps, err);
    free(text);
    return rc;
}

void lm_problems_free(lm_problem_set *ps) {
    for (int i = 0; i < ps->n; i++) {
        free(ps->items[i].id);
        free(ps->items[i].question);
        free(ps->items[i].proof);
    }
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}
