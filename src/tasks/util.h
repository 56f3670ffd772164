/* util.h — what the theorem domains share beyond tasks.h: the solution's
 * lines, exact integers, a whitespace-tolerant template matcher for the step
 * languages, and building answers.
 *
 *   lm_task_lines L;
 *   lm_task_split_lines(solution, strlen(solution), &L);      // non-empty lines, numbered from 1
 *   int64_t q, r;
 *   int m = lm_task_match(L.line[0].text, L.line[0].len, "84 = %u*36 + %u", &q, &r);
 *   // m: 1 matched, 0 not in that template, -1 a number out of int64 range
 *   lm_task_lines_free(&L);
 *
 * Templates (lm_task_match, lm_scan_fmt): white space in the input is allowed
 * between any two tokens of the template (a token is a run of letters, a
 * number or one punctuation character) and required only where the template
 * has a space between two letters: "7+8" matches "7 + 8", "Finalcarry" does
 * not match "Final carry". A word must not run on into a letter or digit
 * ("carry" matches neither "carrying" nor "carry1"), nor a number into a
 * digit. Everything else is exact (case included). Conversions:
 *   %u  an integer without sign: "0" or [1-9][0-9]* (no leading zeros)
 *   %d  the same with an optional '-' right before the digits ("-0" is not one)
 *   %p  "n" for n >= 0, "(-n)" for n < 0: a factor in a product, "(-2)*36"
 *       (white space allowed inside the parentheses, not after the '-')
 *   %%  a literal '%'
 * Each conversion stores an int64_t through the next int64_t * argument.
 *
 * Thread safety: no global state. */
#ifndef LEMMA_TASKS_UTIL_H
#define LEMMA_TASKS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "tasks/tasks.h"

/* ---- lines ---------------------------------------------------------------- */

typedef struct lm_task_line {
    const char *text; /* into the split text, without surrounding white space */
    size_t len;
    int number;       /* 1-based among the non-empty lines */
} lm_task_line;

typedef struct lm_task_lines {
    lm_task_line *line; /* malloc'd */
    int n;
} lm_task_lines;

/* The lines of text[0..len) that hold something other than white space,
 * trimmed. '\n' ends a line ("\r\n" too: '\r' is white space). 0, or -1 when
 * out of memory. */
int lm_task_split_lines(const char *text, size_t len, lm_task_lines *out);
void lm_task_lines_free(lm_task_lines *lines);

/* ---- exact integers ------------------------------------------------------- */

enum {
    LM_INT_MINUS = 1, /* allow a leading '-' */
    LM_INT_PLUS = 2,  /* allow a leading '+' */
};

/* Parses an integer at the start of s[0..len): an optional sign (as signs
 * allows, directly before the digits), then digits without leading zeros
 * ("0" itself is fine, "-0" and "+0" are not). Returns 1 with *out and *used
 * (bytes read), 0 when s does not start with such a number (or has a leading
 * zero), -1 when the number is outside int64. */
int lm_task_parse_int(const char *s, size_t len, int signs, int64_t *out, size_t *used);

/* ---- templates ------------------------------------------------------------ */

typedef struct lm_scan {
    const char *p, *end;
} lm_scan;

void lm_scan_init(lm_scan *sc, const char *s, size_t len);
/* Matches the template at sc's position (a prefix of what is left): 1 and
 * advances, 0 (no match) or -1 (a number out of range) and leaves sc alone. */
int lm_scan_fmt(lm_scan *sc, const char *tmpl, ...);
/* 1 when only white space is left. */
int lm_scan_end(const lm_scan *sc);
/* The whole of s[0..len) against the template (trailing white space allowed). */
int lm_task_match(const char *s, size_t len, const char *tmpl, ...);

/* ---- random draws ---------------------------------------------------------- */

/* Draws for one generate or corrupt call: lm_rng_u64(seed, LM_RNG_TASKS, k)
 * for k = 0, 1, 2, ... in call order, so the result is a pure function of
 * the seed. */
typedef struct lm_task_rng {
    uint64_t seed, counter;
} lm_task_rng;

/* Uniform in [lo, hi] (lo <= hi; the modulo bias is below 2^-40 for the
 * small ranges used here). */
int64_t lm_task_rng_range(lm_task_rng *r, int64_t lo, int64_t hi);

/* ---- checking and corrupting ---------------------------------------------- */

/* d->check on the solution part of answer (lm_task_solution_part). */
int lm_task_check_answer(const lm_task_domain *d, const char *question, const char *answer,
                         lm_check_result *res, lm_error *err);
/* For corrupters: 0 when proof checks as 1 under d; else -1, err saying why. */
int lm_task_require_correct(const lm_task_domain *d, const char *question, const char *proof, lm_error *err);
/* For corrupters: 0 when d's check of answer gives exactly c's label, kind
 * and step; else -1, err naming both (a defect of the domain, never of the
 * input). */
int lm_task_confirm(const lm_task_domain *d, const char *question, const char *answer,
                    const lm_corruption *c, lm_error *err);
/* The end of every corrupter: appends the answer around the flawed solution
 * body, fills c (kind, step, label 0.5 for LM_ERR_OMITTED, else 0) and
 * confirms it with lm_task_confirm. */
int lm_task_corrupted_answer(const lm_task_domain *d, const char *question, const lm_text *body, const char *kind,
                             int step, lm_text *out, lm_corruption *c, lm_error *err);

/* ---- building answers ----------------------------------------------------- */

/* n as a %p factor: "7" or "(-7)". buf has room for 24 bytes. */
const char *lm_task_factor(char buf[24], int64_t n);
/* v in decimal ("-17"); buf has room for 48 bytes. */
const char *lm_task_i128_text(char buf[48], __int128 v);
/* The full answer for a solution body (one step per line, each ending in
 * '\n'): "## Solution\n" body, then the self-evaluation block. */
int lm_task_answer(const char *body, size_t len, lm_text *out);
/* body with n_delete lines removed at 1-based line `at` and, when insert is
 * non-NULL, the line insert put there (at = lines + 1 appends). body's lines
 * each end in '\n'; so do out's. 0, or -1 (out of memory, at out of range). */
int lm_task_edit_lines(const char *body, int at, int n_delete, const char *insert, lm_text *out);
/* Number of '\n'-terminated lines in body. */
int lm_task_count_lines(const char *body);

#endif
