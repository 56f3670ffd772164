/* vrl_meta.h — meta-verification prompts for the verifier_rl stage
 * (DeepSeekMath-V2 §2.1.2): the verifications a meta-verifier is trained to
 * judge when they come from the exact checker, and the prompt that asks for
 * the judgement (the pipeline's meta_verification template). The label of
 * what is judged is lm_meta_label_of (prove/reward.h), read from the text
 * itself, so a rating and its label can never disagree.
 *
 *   lm_text rating = {0}, prompt = {0};
 *   lm_vrl_meta_rating(question, solution, &check, seed, &rating, &err);
 *   lm_vrl_meta_prompt(&templates, question, solution, rating.data, rating.len, &prompt, &err);
 */
#ifndef LEMMA_RECIPE_VRL_META_H
#define LEMMA_RECIPE_VRL_META_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "prove/templates.h"
#include "tasks/tasks.h"

/* A verification of solution (its solution part) written from the
 * checker's result r, one of five kinds chosen by seed (a pure function of
 * (solution, r, seed)):
 *   the checker's own analysis (lm_task_verification_text)   3 in 6, faithful: label 1;
 *   a made-up fault on a line known correct                   1 in 6, invented: 0;
 *   the checker's analysis with a wrong score                 1 in 6, 0;
 *   the analysis with the real faulty line's verdict replaced
 *   by a vague sentence (only when the fault is on a line)    1 in 6, missed: 0.5
 * (a kind that does not apply to this proof falls back to a wrong score). */
/* The analyses carry the checker's working (lm_task_worked_verification);
 * question NULL gives them without it (lm_task_verification_text). */
int lm_vrl_meta_rating(const char *question, const char *solution, const lm_check_result *r, uint64_t seed,
                       lm_text *out, lm_error *err);

/* The meta_verification template with the question, the solution and the
 * rating, rendered as a one-turn chat with the generation prompt — what the
 * pipeline's meta-verify phase sends. Appends to out. */
int lm_vrl_meta_prompt(const lm_prompt_templates *tp, const char *question, const char *solution, const char *rating,
                       size_t rating_len, lm_text *out, lm_error *err);

/* The part of a sampled verification that a meta-verifier is shown, as
 * the pipeline passes it: the answer after its thinking, ending with its
 * score's box (what a sampler wrote after the box is dropped), stripped.
 * *begin points into text. */
void lm_vrl_meta_rating_of(const char *text, const char **begin, size_t *len);

#endif
