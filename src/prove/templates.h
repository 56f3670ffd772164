/* templates.h — the four prompt templates of the proof pipeline, read from
 * a JSON object {"proof_generation", "proof_verification",
 * "meta_verification", "proof_refinement"} (the released DeepSeekMath-V2
 * templates.json, or lemma's own templates/lemma.json, which is compiled
 * into the binary so that `lemma prove` works from any directory).
 *
 *   lm_prompt_templates t;
 *   if (lm_templates_load(path, &t, &err)) ...      // or lm_templates_builtin(&t, &err)
 *   lm_template_fill(t.text[LM_TPL_VERIFY], keys, vals, 2, &out, &err);
 *   lm_templates_free(&t);
 *
 * Each template is checked when it is read: it must format under Python's
 * str.format (prove/template.h) and use exactly the placeholders of its
 * kind — proof_generation {question}; proof_verification {statement},
 * {proof}; meta_verification {statement}, {proof}, {rating};
 * proof_refinement {instruction}, {proofs_to_refine}. A missing or unknown
 * placeholder, a missing or unknown key is an error naming the file, the key
 * and the placeholder. */
#ifndef LEMMA_PROVE_TEMPLATES_H
#define LEMMA_PROVE_TEMPLATES_H

#include <stddef.h>

#include "core/error.h"

enum { LM_TPL_GEN, LM_TPL_VERIFY, LM_TPL_META, LM_TPL_REFINE, LM_TPL_COUNT };

typedef struct lm_prompt_templates {
    char *text[LM_TPL_COUNT];
    char sha256[65];          /* of the file's bytes: identifies the prompts in run.json */
} lm_prompt_templates;

/* "proof_generation", ... */
const char *lm_templates_key(int kind);
/* The placeholders kind needs, NULL-terminated. */
const char *const *lm_templates_fields(int kind);

/* From JSON bytes; name is used in messages (a path or "built-in"). */
int lm_templates_parse(const char *json, size_t len, const char *name, lm_prompt_templates *t, lm_error *err);
int lm_templates_load(const char *path, lm_prompt_templates *t, lm_error *err);
/* lemma's own templates (templates/lemma.json, compiled in). */
int lm_templates_builtin(lm_prompt_templates *t, lm_error *err);
/* The compiled-in bytes of templates/lemma.json. */
const char *lm_templates_builtin_json(void);
void lm_templates_free(lm_prompt_templates *t);

#endif
