/* buf.c — growable text and id buffers; see buf.h. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lm_ids_free(lm_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

int lm_ids_push(lm_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *nv = realloc(v->ids, cap * sizeof *nv);
        if (!nv) return -1;
        v->ids = nv;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

void lm_text_free(lm_text *t) {
    free(t->data);
    t->data = NULL;
    t->len = t->cap = 0;
}

/* Room for n more bytes and the NUL. */
static int text_reserve(lm_text *t, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1) cap *= 2;
        char *nd = realloc(t->data, cap);
        if (!nd) return -1;
        t->data = nd;
        t->cap = cap;
    }
    return 0;
}

int lm_text_append(lm_text *t, const char *s, size_t n) {
    if (text_reserve(t, n)) return -1;
    if (n) memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = 0;
    return 0;
}

int lm_text_appendf(lm_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || text_reserve(t, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return 0;
}
