/* steptext.h — the text side of a step language: the non-empty lines of a
 * solution, a token scanner that matches one line against a fixed template,
 * and a line list for writing (and corrupting) answers.
 *
 *   lm_lines it = {solution};
 *   const char *b, *e;
 *   while (lm_lines_next(&it, &b, &e)) {           // it.step: 1-based step number
 *       lm_steps s = {b, e};
 *       int64_t a, k;
 *       if (lm_steps_num(&s, &a) && lm_steps_sym(&s, "^") && lm_steps_num(&s, &k) && lm_steps_end(&s)) ...
 *   }
 *
 * Tokens: a number is [0-9]+ in canonical form (no leading zero, fits in
 * int64; else it is a bad number that matches nothing); a word is [A-Za-z]+;
 * "≡" (UTF-8) is one symbol; every other byte is a one-byte symbol. White
 * space between tokens is ignored, so templates are whitespace-tolerant but
 * otherwise exact: "3x" and "3 x" are the same tokens, "3x" and "3*x" are not.
 * The scanner functions consume the token only when it matches. */
#ifndef LEMMA_TASKS_STEPTEXT_H
#define LEMMA_TASKS_STEPTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define LM_SYM_CONGRUENT "\xe2\x89\xa1" /* ≡ */

typedef struct lm_lines {
    const char *p; /* next unread byte of the solution */
    int step;      /* number of the line last returned (1-based); 0 before the first */
} lm_lines;

/* The next line that is not empty or white space only, trimmed: [*b, *e).
 * 1 when there is one, 0 at the end. */
int lm_lines_next(lm_lines *it, const char **b, const char **e);
/* How many such lines the text has: the number of its last step. */
int lm_lines_count(const char *text);

typedef enum { LM_TOK_END, LM_TOK_NUM, LM_TOK_BADNUM, LM_TOK_WORD, LM_TOK_SYM } lm_tok_kind;

typedef struct lm_tok {
    lm_tok_kind kind;
    const char *s;
    size_t n;      /* bytes of s */
    int64_t value; /* LM_TOK_NUM */
} lm_tok;

typedef struct lm_steps {
    const char *p, *end;
} lm_steps;

/* The next token without consuming it. */
lm_tok lm_steps_peek(const lm_steps *s);
/* 1 (consumed) when the next token is exactly this symbol / word / number. */
int lm_steps_sym(lm_steps *s, const char *sym);
int lm_steps_word(lm_steps *s, const char *word);
int lm_steps_num(lm_steps *s, int64_t *v);
/* Consumes a sequence of words separated by spaces in `words`: "for all real x". */
int lm_steps_words(lm_steps *s, const char *words);
/* 1 when nothing but white space is left. */
int lm_steps_end(const lm_steps *s);
/* 1 when the line [b, e) holds a number that is too large or not canonical:
 * lets a checker say why the line did not parse. */
int lm_steps_has_bad_number(const char *b, const char *e);
/* 1 when the token sequences of [b1, e1) and [b2, e2) are equal. */
int lm_steps_same_tokens(const char *b1, const char *e1, const char *b2, const char *e2);

/* A list of owned lines, for writing an answer or editing one. */
typedef struct lm_linebuf {
    char **line;
    int n, cap;
} lm_linebuf;

void lm_linebuf_free(lm_linebuf *lb);
/* Appends a line (a copy of the first n bytes of s). 0, or -1 out of memory. */
int lm_linebuf_push(lm_linebuf *lb, const char *s, size_t n);
int lm_linebuf_pushf(lm_linebuf *lb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replaces line i (0-based) with a copy of s. */
int lm_linebuf_set(lm_linebuf *lb, int i, const char *s);
void lm_linebuf_remove(lm_linebuf *lb, int i);
/* The non-empty lines of a solution text. */
int lm_linebuf_from_solution(lm_linebuf *lb, const char *solution);
/* Appends "## Solution\n", the lines, and the self-evaluation block. */
int lm_linebuf_answer(const lm_linebuf *lb, lm_text *out);
/* Appends the lines joined by '\n' (no heading): a solution part. */
int lm_linebuf_join(const lm_linebuf *lb, lm_text *out);


/* An integer in [lo, hi] (hi - lo < 2^32) from lm_rng_u64(seed, stream,
 * counter); the modulo bias is below 2^-31. */
int64_t lm_steptext_pick(uint64_t seed, uint64_t stream, uint64_t counter, int64_t lo, int64_t hi);

#endif
