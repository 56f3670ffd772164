/* intpoly.h — polynomials in one variable with int64 coefficients: exact
 * arithmetic with overflow checks, and their canonical text.
 *
 *   const char *text = "x^2 - x - 6";
 *   lm_steps s = {text, text + strlen(text)};
 *   lm_ipoly p, q;
 *   lm_ipoly_scan(&s, 'x', &p);                // 1: parsed, in normal form
 *   lm_ipoly_subst_linear(&q, &p, 3, 1);       // q(k) = p(3k + 1); -1 on overflow
 *   lm_ipoly_append(out, &q, 'k');             // "9k^2 + ..."
 *
 * Normal form (the only spelling the scanner accepts for a polynomial):
 * terms in strictly decreasing degree, no zero coefficient, each monomial
 * written [c][v[^d]] with the coefficient left out exactly when it is 1 and
 * the degree is at least 1, "v" for degree 1, "v^d" for d >= 2; the first
 * term carries a leading "-" when negative, the others " + " or " - ". The
 * zero polynomial is "0". */
#ifndef LEMMA_TASKS_INTPOLY_H
#define LEMMA_TASKS_INTPOLY_H

#include <stdint.h>

#include "tasks/steptext.h"

#define LM_IPOLY_MAX_DEG 24
#define LM_IPOLY_MAX_TERMS 64 /* longest list of monomials a line may hold */

typedef struct lm_ipoly {
    int deg; /* -1 for the zero polynomial */
    int64_t c[LM_IPOLY_MAX_DEG + 1];
} lm_ipoly;

typedef struct lm_mono {
    int64_t c; /* non-zero */
    int deg;
} lm_mono;

void lm_ipoly_zero(lm_ipoly *p);
/* p = c v^deg; -1 when deg is out of range. */
int lm_ipoly_set_mono(lm_ipoly *p, int64_t c, int deg);
/* Results may alias the operands. Each returns -1 on int64 overflow or a
 * degree above LM_IPOLY_MAX_DEG (r is then unspecified), else 0. */
int lm_ipoly_add(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b);
int lm_ipoly_sub(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b);
int lm_ipoly_mul(lm_ipoly *r, const lm_ipoly *a, const lm_ipoly *b);
int lm_ipoly_scale(lm_ipoly *r, const lm_ipoly *a, int64_t k);
int lm_ipoly_add_mono(lm_ipoly *p, int64_t c, int deg);
/* r(k) = p(a k + b). */
int lm_ipoly_subst_linear(lm_ipoly *r, const lm_ipoly *p, int64_t a, int64_t b);
/* p(x) into *v; -1 on overflow. */
int lm_ipoly_eval(const lm_ipoly *p, int64_t x, int64_t *v);
int lm_ipoly_equal(const lm_ipoly *a, const lm_ipoly *b);
int lm_ipoly_nterms(const lm_ipoly *p);
/* The non-zero terms in decreasing degree; returns their number. */
int lm_ipoly_terms(const lm_ipoly *p, lm_mono *terms);
/* 1 when every coefficient is divisible by m (m > 0). */
int lm_ipoly_divisible(const lm_ipoly *p, int64_t m);

/* Text. `var` is the variable's letter. */
int lm_ipoly_append(lm_text *out, const lm_ipoly *p, char var);
/* A monomial as a sum term: first ("-3x", "x^2") or continuing (" - 3x", " + x^2"). */
int lm_mono_append_term(lm_text *out, lm_mono m, char var, int first);
/* A monomial as a factor of a product: "x", "3x^2", "(-x)", "(-6)". */
int lm_mono_append_factor(lm_text *out, lm_mono m, char var);

/* The same into a fixed buffer, truncated to fit (for messages). */
void lm_ipoly_format(char *buf, size_t n, const lm_ipoly *p, char var);
void lm_mono_format_factor(char *buf, size_t n, lm_mono m, char var);
/* A monomial as a first sum term ("-3x"). */
void lm_mono_format_term(char *buf, size_t n, lm_mono m, char var);
/* "the x^2 coefficient", "the x coefficient", "the constant term". */
void lm_ipoly_format_degree(char *buf, size_t n, int deg, char var);

/* Scanning (see steptext.h). Each returns 1 and consumes the text when it
 * matches, else 0 and consumes nothing. */
/* A polynomial in normal form. */
int lm_ipoly_scan(lm_steps *s, char var, lm_ipoly *p);
/* A sum of signed monomials in any order ("x^2 - 3x + 2x - 6"); at most
 * `max` terms. */
int lm_mono_scan_sum(lm_steps *s, char var, lm_mono *terms, int max, int *n);
/* A product factor: an unsigned monomial or "(-" monomial ")". */
int lm_mono_scan_factor(lm_steps *s, char var, lm_mono *m);

#endif
