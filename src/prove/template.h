/* template.h — prompt templates with Python str.format placeholders, filled
 * exactly as Python's str.format fills them with keyword arguments:
 * "{name}" is replaced by the value of name, "{{" and "}}" stand for "{" and
 * "}". Anything else Python would treat specially is refused with the byte
 * offset: a single "{" or "}" that is not part of a placeholder, a positional
 * or empty field ("{}", "{0}"), a conversion or format spec ("{x!r}",
 * "{x:>5}"), an attribute or index ("{a.b}", "{a[0]}"), and a name that is
 * not among the keys given (Python: KeyError).
 *
 *   const char *keys[] = {"statement", "proof"}, *vals[] = {q, p};
 *   lm_template_fill(tmpl, keys, vals, 2, &out, &err);
 */
#ifndef LEMMA_PROVE_TEMPLATE_H
#define LEMMA_PROVE_TEMPLATE_H

#include "core/buf.h"
#include "core/error.h"

/* Appends the filled template to out. */
int lm_template_fill(const char *tmpl, const char *const *keys, const char *const *vals, int n, lm_text *out,
                     lm_error *err);

/* The placeholder names of a template, in order of first use, each once
 * (names[i] malloc'd; free with lm_template_names_free). -1 with the offset
 * on a template that would not format. */
int lm_template_names(const char *tmpl, char ***names, int *n, lm_error *err);
void lm_template_names_free(char **names, int n);

/* A field name for a message: "{name}", or the name JSON-quoted when it holds
 * control characters or is long, so that a message stays one line. */
const char *lm_template_show_field(char *buf, size_t cap, const char *name, size_t n);

#endif
