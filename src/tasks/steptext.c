/* steptext.c — solution lines, the step-template scanner, answer lines. */
#include "tasks/steptext.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tasks/tasks.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

int lm_lines_next(lm_lines *it, const char **b, const char **e) {
    while (it->p && *it->p) {
        const char *start = it->p, *nl = strchr(start, '\n');
        const char *stop = nl ? nl : start + strlen(start);
        it->p = nl ? nl + 1 : stop;
        while (start < stop && is_space(*start)) start++;
        while (stop > start && is_space(stop[-1])) stop--;
        if (start < stop) {
            it->step++;
            *b = start;
            *e = stop;
            return 1;
        }
    }
    return 0;
}

int lm_lines_count(const char *text) {
    lm_lines it = {.p = text};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e)) {}
    return it.step;
}

lm_tok lm_steps_peek(const lm_steps *s) {
    lm_tok t = {LM_TOK_END, s->end, 0, 0};
    const char *p = s->p;
    while (p < s->end && is_space(*p)) p++;
    if (p >= s->end) return t;
    t.s = p;
    if (is_digit(*p)) {
        const char *q = p;
        uint64_t v = 0;
        int overflow = 0;
        while (q < s->end && is_digit(*q)) {
            unsigned d = (unsigned)(*q - '0');
            if (v > (uint64_t)(INT64_MAX - d) / 10) overflow = 1;
            else v = v * 10 + d;
            q++;
        }
        t.n = (size_t)(q - p);
        /* "07" would let two spellings of one number into the language */
        t.kind = overflow || (t.n > 1 && *p == '0') ? LM_TOK_BADNUM : LM_TOK_NUM;
        t.value = t.kind == LM_TOK_NUM ? (int64_t)v : 0;
    } else if (is_alpha(*p)) {
        const char *q = p;
        while (q < s->end && is_alpha(*q)) q++;
        t.kind = LM_TOK_WORD;
        t.n = (size_t)(q - p);
    } else {
        t.kind = LM_TOK_SYM;
        size_t cl = strlen(LM_SYM_CONGRUENT);
        t.n = (size_t)(s->end - p) >= cl && !memcmp(p, LM_SYM_CONGRUENT, cl) ? cl : 1;
    }
    return t;
}

static void take(lm_steps *s, const lm_tok *t) { s->p = t->s + t->n; }

static int take_text(lm_steps *s, lm_tok_kind kind, const char *text) {
    lm_tok t = lm_steps_peek(s);
    if (t.kind != kind || t.n != strlen(text) || memcmp(t.s, text, t.n)) return 0;
    take(s, &t);
    return 1;
}

int lm_steps_sym(lm_steps *s, const char *sym) { return take_text(s, LM_TOK_SYM, sym); }
int lm_steps_word(lm_steps *s, const char *word) { return take_text(s, LM_TOK_WORD, word); }

int lm_steps_num(lm_steps *s, int64_t *v) {
    lm_tok t = lm_steps_peek(s);
    if (t.kind != LM_TOK_NUM) return 0;
    *v = t.value;
    take(s, &t);
    return 1;
}

int lm_steps_words(lm_steps *s, const char *words) {
    lm_steps save = *s;
    while (*words) {
        const char *sp = strchr(words, ' ');
        size_t n = sp ? (size_t)(sp - words) : strlen(words);
        char w[64];
        if (n == 0 || n >= sizeof w) goto fail;
        memcpy(w, words, n);
        w[n] = 0;
        if (!(is_alpha(w[0]) ? lm_steps_word(s, w) : lm_steps_sym(s, w))) goto fail;
        words += n;
        while (*words == ' ') words++;
    }
    return 1;
fail:
    *s = save;
    return 0;
}

int lm_steps_end(const lm_steps *s) { return lm_steps_peek(s).kind == LM_TOK_END; }

int lm_steps_has_bad_number(const char *b, const char *e) {
    lm_steps s = {b, e};
    for (lm_tok t = lm_steps_peek(&s); t.kind != LM_TOK_END; t = lm_steps_peek(&s)) {
        if (t.kind == LM_TOK_BADNUM) return 1;
        take(&s, &t);
    }
    return 0;
}

int lm_steps_same_tokens(const char *b1, const char *e1, const char *b2, const char *e2) {
    lm_steps s1 = {b1, e1}, s2 = {b2, e2};
    for (;;) {
        lm_tok t1 = lm_steps_peek(&s1), t2 = lm_steps_peek(&s2);
        if (t1.kind != t2.kind || t1.n != t2.n || (t1.n && memcmp(t1.s, t2.s, t1.n))) return 0;
        if (t1.kind == LM_TOK_END) return 1;
        take(&s1, &t1);
        take(&s2, &t2);
    }
}

void lm_linebuf_free(lm_linebuf *lb) {
    for (int i = 0; i < lb->n; i++) free(lb->line[i]);
    free(lb->line);
    lb->line = NULL;
    lb->n = lb->cap = 0;
}

int lm_linebuf_push(lm_linebuf *lb, const char *s, size_t n) {
    if (lb->n == lb->cap) {
        int cap = lb->cap ? lb->cap * 2 : 16;
        char **l = realloc(lb->line, (size_t)cap * sizeof *l);
        if (!l) return -1;
        lb->line = l;
        lb->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n);
    c[n] = 0;
    lb->line[lb->n++] = c;
    return 0;
}

int lm_linebuf_pushf(lm_linebuf *lb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    int rc = lm_linebuf_push(lb, s, (size_t)n);
    free(s);
    return rc;
}

int lm_linebuf_set(lm_linebuf *lb, int i, const char *s) {
    char *c = strdup(s);
    if (!c) return -1;
    free(lb->line[i]);
    lb->line[i] = c;
    return 0;
}

void lm_linebuf_remove(lm_linebuf *lb, int i) {
    free(lb->line[i]);
    memmove(lb->line + i, lb->line + i + 1, (size_t)(lb->n - i - 1) * sizeof *lb->line);
    lb->n--;
}

int lm_linebuf_from_solution(lm_linebuf *lb, const char *solution) {
    lm_lines it = {solution, 0};
    const char *b, *e;
    while (lm_lines_next(&it, &b, &e))
        if (lm_linebuf_push(lb, b, (size_t)(e - b))) return -1;
    return 0;
}

int lm_linebuf_join(const lm_linebuf *lb, lm_text *out) {
    for (int i = 0; i < lb->n; i++)
        if ((i && lm_text_append(out, "\n", 1)) || lm_text_append(out, lb->line[i], strlen(lb->line[i])))
            return -1;
    return 0;
}

int lm_linebuf_answer(const lm_linebuf *lb, lm_text *out) {
    return lm_text_append(out, "## Solution\n", 12) || lm_linebuf_join(lb, out) || lm_text_append(out, "\n", 1) ||
           lm_task_append_self_eval(out);
}


int64_t lm_steptext_pick(uint64_t seed, uint64_t stream, uint64_t counter, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(lm_rng_u64(seed, stream, counter) % span);
}
