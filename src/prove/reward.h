/* reward.h — the verifier's reward of DeepSeekMath-V2 (eq. 1–2): how well
 * one sampled verification of a proof agrees with the label s the exact
 * checker gives that proof, the reward of the `verifier_rl` recipe stage.
 *
 *   lm_verify_reward r;
 *   lm_verify_reward_of(text, len, 0.5, &r);     // r.reward = r.format * r.score
 *
 * R = R_format · R_score with R_score = 1 − |s′ − s|, s′ the verification's
 * score. R_format is 1 when the text (after its thinking, "</think>", if
 * any) has all of, in this order:
 *   1. the phrase "Here is my evaluation of the solution:";
 *   2. after it, the phrase "Based on my evaluation, the final overall
 *      score should be:";
 *   3. after that phrase, a \boxed{} — the last non-empty one of the text,
 *      as the pipeline reads scores (prove/answer.h) — whose content reads
 *      as exactly 0, 0.5 or 1 (lm_parse_score: "1", "1.0" and "0.50"
 *      count, "0.7", "yes" and "1/2" do not);
 * else 0, and then R_score and R are 0 too (a score that cannot be read has
 * no agreement). The phrases are the verification format of the released
 * proof_verification prompt, which lemma's SFT targets
 * (lm_task_verification_text) also end with. Pure; never allocates. */
#ifndef LEMMA_PROVE_REWARD_H
#define LEMMA_PROVE_REWARD_H

#include <stddef.h>

#define LM_VERIFY_PHRASE_OPEN "Here is my evaluation of the solution:"
#define LM_VERIFY_PHRASE_SCORE "Based on my evaluation, the final overall score should be:"

typedef enum lm_verify_format {
    LM_VFMT_OK = 0,
    LM_VFMT_NO_OPEN,        /* phrase 1 missing */
    LM_VFMT_NO_SCORE_PHRASE,/* phrase 2 missing after phrase 1 */
    LM_VFMT_NO_BOX,         /* no \boxed{} after phrase 2 */
    LM_VFMT_BAD_SCORE,      /* the box holds something other than 0, 0.5 or 1 */
} lm_verify_format;

typedef struct lm_verify_reward {
    lm_verify_format why;   /* LM_VFMT_OK when format is 1 */
    double format;          /* R_format: 0 or 1 */
    double predicted;       /* s′ (0, 0.5 or 1); -1 when the format fails */
    double score;           /* R_score = 1 − |s′ − s|, 0 when the format fails */
    double reward;          /* R = format · score */
} lm_verify_reward;

/* A short name of a format failure ("ok", "no_open_phrase", ...). */
const char *lm_verify_format_name(lm_verify_format f);

/* The reward of text[0..n) against label (0, 0.5 or 1; any value in [0, 1]
 * is accepted). Returns r->reward. */
double lm_verify_reward_of(const char *text, size_t n, double label, lm_verify_reward *r);

#endif
