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

/* ---- meta-verification (DeepSeekMath-V2 §2.1.2, eq. 3) ----------------------
 *
 * A meta-verifier reads a proof and one verification of it and rates the
 * verification: is each defect it claims real, and does its score follow?
 * lemma's label of a verification's faithfulness uses only what the exact
 * checker establishes about the proof (lm_meta_truth): its score s, the
 * first failing line f (0 when the proof checks or the fault is on no line:
 * a missing conclusion, an omitted justification), and so which lines are
 * known correct — the lines before f, or every line when f = 0. Lines after
 * f are unknown: the checker stops at the first fault.
 *
 * The verification's claims are read from the lines between its two phrases:
 * a line "Step k checks..." claims line k is correct; any other line that
 * starts "Step k" (after white space, '*' or '-') claims a defect on line k
 * (the SFT targets' "Step k (kind): message."). Other prose claims nothing
 * checkable: the SFT targets' "Line k: <working>." before each verdict
 * (tasks.h lm_task_worked_verification) included. The label, first rule that applies:
 *   0    R_format of the verification is 0 (no score to judge);
 *   0    its score s′ ≠ s;
 *   0    it claims a defect on a line known correct, or on a line the
 *        solution does not have (an invented defect);
 *   0    it claims line f checks (it denies the real defect);
 *   0.5  f > 0 and it claims no defect on line f (right score, no false
 *        claim, but the real defect goes unnamed);
 *   1    otherwise: right score and the real first defect named (or, on a
 *        clean proof or a fault on no line, no line blamed).
 * A defect claimed after f is neither real nor invented as far as the
 * checker knows, and does not change the label. */
typedef struct lm_meta_truth {
    double score;               /* the checker's score of the proof */
    int step;                   /* its first failing line, 0 for none */
    int n_steps;                /* non-empty lines of the solution */
} lm_meta_truth;

typedef enum lm_meta_fault {
    LM_META_FAITHFUL = 0,       /* label 1 */
    LM_META_BAD_FORMAT,         /* 0 */
    LM_META_WRONG_SCORE,        /* 0 */
    LM_META_INVENTED_DEFECT,    /* 0 */
    LM_META_DENIED_DEFECT,      /* 0 */
    LM_META_MISSED_DEFECT,      /* 0.5 */
} lm_meta_fault;

typedef struct lm_meta_label {
    double label;               /* 0, 0.5 or 1 */
    lm_meta_fault why;
    int claimed_step;           /* the first line it blames, 0 for none */
} lm_meta_label;

/* "faithful", "bad_format", "wrong_score", "invented_defect", ... */
const char *lm_meta_fault_name(lm_meta_fault f);

/* The truth of a solution (its solution part) from its check result. */
lm_meta_truth lm_meta_truth_of(const char *solution, double score, int step);

/* The faithfulness label of verification[0..n) (rules above). Returns
 * out->label. */
double lm_meta_label_of(const char *verification, size_t n, const lm_meta_truth *t, lm_meta_label *out);

#define LM_META_PHRASE_OPEN "Here is my analysis of the \"solution evaluation\":"
#define LM_META_PHRASE_SCORE "Based on my analysis, I will rate the \"solution evaluation\" as:"

/* The meta-verifier's reward R = R_format · R_score against the label:
 * R_format as for a verification with the two phrases above (the SFT set's
 * meta-verification targets, prove/taskset), R_score = 1 − |s′ − label|. */
double lm_meta_reward_of(const char *text, size_t n, double label, lm_verify_reward *r);

#endif
