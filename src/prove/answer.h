/* answer.h — reading a model's answer the way DeepSeekMath-V2's pipeline
 * reads it: the part after the thinking, the `## Solution` / `## Self
 * Evaluation` split and the score in the last \boxed{}.
 *
 *   const char *a = lm_answer_after_think(reply);           // after the last "</think>"
 *   lm_answer_parts p;
 *   if (lm_answer_split(a, &p) == 0) ...                     // p.solution, p.self_eval
 *   double s;
 *   if (lm_answer_score(p.self_eval, p.self_eval_len, &s) == 0) ...   // 0, 0.5, 1, ...
 *
 * All functions are pure and never allocate; spans point into the text. */
#ifndef LEMMA_PROVE_ANSWER_H
#define LEMMA_PROVE_ANSWER_H

#include <stddef.h>

/* The text after the last "</think>", or text itself when there is none. */
const char *lm_answer_after_think(const char *text);

/* Python's str.strip(): the span of s[0..n) without leading and trailing
 * white space as str.isspace() defines it (ASCII \t\n\v\f\r, U+001C..U+001F,
 * space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000). */
void lm_py_strip(const char *s, size_t n, const char **begin, size_t *len);

/* The content, stripped, of the last \boxed{...} (by where it starts)
 * whose content is not empty after stripping. Braces nest; a backslash
 * escapes the next character, so \{ and \} do not count; an unclosed
 * \boxed{ is not a box. "\boxed{\boxed{1}}" gives "1". Returns 0, or -1
 * when there is none. Linear in n. */
int lm_answer_last_boxed(const char *s, size_t n, const char **begin, size_t *len);

/* A score as Python's float() reads the stripped text (ASCII digits, sign,
 * '.', exponent, '_' between digits), required to be finite and in [0, 1].
 * Returns 0, or -1 when the text is no such number. */
int lm_parse_score(const char *s, size_t n, double *out);

/* The score of an answer: the last non-empty \boxed{} of s[0..n) read by
 * lm_parse_score. 0 or -1. */
int lm_answer_score(const char *s, size_t n, double *out);

typedef struct lm_answer_parts {
    const char *from_solution;  /* "## Solution" ... end of text (stripped at the end) */
    size_t from_solution_len;
    const char *solution;       /* between the headings, stripped */
    size_t solution_len;
    const char *self_eval;      /* from "## Self Evaluation" to the end, stripped */
    size_t self_eval_len;
} lm_answer_parts;

/* Splits an answer (already past its thinking) at the first "## Solution"
 * and the first "## Self Evaluation" after it. -1 when either heading is
 * missing: such an answer cannot be judged and is dropped. */
int lm_answer_split(const char *text, lm_answer_parts *p);

#endif
