/* gen_reward.h — the generator's reward of DeepSeekMath-V2 (eq. 5–6), the
 * reward of the `grpo` recipe stage: a proof is rewarded for being right (by
 * the verifier's judgement R_Y) and for judging itself honestly (R_Z).
 *
 *   lm_gen_reward r;
 *   lm_gen_reward_of(text, r_y, s, LM_GEN_ALPHA, LM_GEN_BETA, 1.0, &r);   // r.reward
 *
 *   R   = R_format · (α · R_Y + β · R_Z)
 *   R_Z = R_score(s′, s) · R_meta = (1 − |s′ − s|) · R_meta
 *
 * with R_Y the proof's score from the verifier (the grpo stage passes the
 * mean of K verifications, or the exact checker's score in its `reward:
 * checker` ablation), s′ the proof's own self-score, s the verifier's score
 * (the same R_Y) and R_meta the meta-verifier's judgement of the verifier's
 * analysis (1 until meta-verification is trained). α = 0.76, β = 0.24 are
 * the paper's.
 *
 * R_format is 1 when the answer (after its thinking, "</think>", if any)
 * has "## Solution" and, after it, "## Self Evaluation" (prove/answer.h's
 * split, as the pipeline reads a proof), and the self-evaluation's last
 * non-empty \boxed{} reads as exactly 0, 0.5 or 1; else 0 and so is R
 * (an answer the pipeline would drop earns nothing). Pure; never allocates. */
#ifndef LEMMA_PROVE_GEN_REWARD_H
#define LEMMA_PROVE_GEN_REWARD_H

#include <stddef.h>

#define LM_GEN_ALPHA 0.76
#define LM_GEN_BETA 0.24

typedef enum lm_gen_format {
    LM_GFMT_OK = 0,
    LM_GFMT_NO_SPLIT,        /* "## Solution" or "## Self Evaluation" after it missing */
    LM_GFMT_NO_SELF_SCORE,   /* no non-empty \boxed{} in the self-evaluation */
    LM_GFMT_BAD_SELF_SCORE,  /* the box holds something other than 0, 0.5 or 1 */
} lm_gen_format;

typedef struct lm_gen_reward {
    lm_gen_format why;
    double format;           /* R_format: 0 or 1 */
    double self_score;       /* s′ (0, 0.5 or 1); -1 when the format fails */
    double r_y, r_z;         /* R_Y as given; R_Z (0 when the format fails) */
    double reward;           /* R */
} lm_gen_reward;

/* "ok", "no_solution_split", "no_self_score", "bad_self_score". */
const char *lm_gen_format_name(lm_gen_format f);

/* Format and self-score of a NUL-terminated answer; *solution (may be NULL)
 * gets the solution part between the headings (stripped) when the split
 * succeeds, else NULL. Returns the format verdict. */
lm_gen_format lm_gen_answer_read(const char *text, double *self_score, const char **solution, size_t *solution_len);

/* The reward of a NUL-terminated answer given R_Y, s, α, β and R_Meta (all
 * in [0, 1]). Returns r->reward. */
double lm_gen_reward_of(const char *text, double r_y, double s, double alpha, double beta, double r_meta,
                        lm_gen_reward *r);

#endif
