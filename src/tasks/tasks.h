/* tasks.h — synthetic theorem domains: problems a program can generate,
 * prove, check exactly and corrupt with a known label. They are the ground
 * truth the learned verifier is measured against (docs/tasks.md).
 *
 *   const lm_task_domain *d = lm_task_domain_find("gcd");
 *   lm_text q = {0}, proof = {0};
 *   d->generate(seed, difficulty, &q, &proof, &err);       // question + reference answer
 *   lm_check_result r;
 *   lm_task_check(q.data, proof.data, &r, &err);            // r.score == 1
 *   lm_text bad = {0}; lm_corruption c;
 *   d->corrupt(q.data, proof.data, seed, &bad, &c, &err);   // lm_task_check(q, bad) gives c.label
 *
 * ---- Answers ---------------------------------------------------------------
 * A reference answer is in the DeepSeekMath-V2 answer format:
 *
 *   ## Solution
 *   <one checkable step per line, in the domain's step language>
 *   ...
 *   <a conclusion line that restates the question's claim>
 *
 *   ## Self Evaluation
 *
 *   Here is my evaluation of the solution:
 *   <a short analysis>
 *
 *   Based on my evaluation, the final overall score should be:
 *   \boxed{1}
 *
 * The checker reads only the solution: the text between "## Solution" and
 * "## Self Evaluation" when those headings are present, else the whole text
 * (lm_task_solution_part). Lines that are empty or only white space are
 * skipped; step numbers in messages count the non-empty lines of the
 * solution from 1.
 *
 * ---- Scores ----------------------------------------------------------------
 * 1    complete and correct;
 * 0.5  correct conclusion with a minor omission (a missing justification
 *      line);
 * 0    any wrong step, a wrong or missing conclusion, an unparseable step, a
 *      proof of a different statement, a skipped case, a circular step.
 * Everything is exact: int64 arithmetic with overflow checks (__int128 where
 * a product may overflow), rationals or polynomials with integer
 * coefficients; never floating point. A number too large to represent is an
 * unparseable step, not a crash.
 *
 * Thread safety: every function here is pure (no global state); domains may
 * be used from many threads at once. */
#ifndef LEMMA_TASKS_TASKS_H
#define LEMMA_TASKS_TASKS_H

#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* Error kinds. Fatal kinds give 0, minor kinds 0.5. */
#define LM_ERR_ARITHMETIC "arithmetic"          /* a step's computation is false */
#define LM_ERR_CONCLUSION "wrong_conclusion"    /* the conclusion is false or not the question's claim */
#define LM_ERR_MISSING_CONCLUSION "missing_conclusion"
#define LM_ERR_MISSING_CASE "missing_case"      /* a case of a case split is skipped */
#define LM_ERR_CIRCULAR "circular"              /* a step uses what is to be proved, or a fact not yet derived */
#define LM_ERR_UNPARSEABLE "unparseable"        /* a line that is not in the step language */
#define LM_ERR_WRONG_PROBLEM "wrong_problem"    /* the proof is about other numbers / another statement */
#define LM_ERR_OMITTED "omitted_justification"  /* minor: a justification line is missing (score 0.5) */

typedef struct lm_check_result {
    double score;       /* 0, 0.5 or 1 */
    int step;           /* 1-based non-empty solution line of the first failing step; 0 when score is 1
                           or when the fault is not on one line (e.g. a missing conclusion) */
    char kind[32];      /* one of LM_ERR_*, "" when score is 1 */
    char message[256];  /* one line, e.g. "7 + 8 + 1 = 16, not 15"; "" when score is 1 */
} lm_check_result;

typedef struct lm_corruption {
    char kind[32];      /* the LM_ERR_* kind the corrupter introduced */
    double label;       /* the score the checker must give: 0 (fatal kinds) or 0.5 (LM_ERR_OMITTED) */
    int step;           /* the step the checker must report first (0 where the kind has none) */
} lm_corruption;

/* The working of a check: for each step whose computation the checker redoes,
 * that computation as one short line of text in the domain's step language
 * ("5*30 = 150, 150 + 7 = 157"), derived from the question and the lines
 * above and never from the step's own claimed result, so it reads the same
 * whether the step is right or wrong. Filled by lm_task_domain.check_work;
 * the caller owns it (lm_task_work_free). */
#define LM_TASK_WORK_MAX 256 /* bytes of one step's working with its NUL, at most */
typedef struct lm_task_work {
    int *step;    /* step numbers, ascending */
    char **text;  /* text[i]: the working of step[i] */
    int n, cap;
    int oom;      /* an append ran out of memory: the working is incomplete */
} lm_task_work;

void lm_task_work_free(lm_task_work *w);
/* Records the working of a step (no-op when w is NULL; truncated to
 * LM_TASK_WORK_MAX - 1 bytes). */
void lm_task_work_add(lm_task_work *w, int step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The working of a step, or NULL. */
const char *lm_task_work_of(const lm_task_work *w, int step);

typedef struct lm_task_domain {
    const char *name;        /* short, [a-z_]+: "add", "gcd", ... */
    const char *summary;     /* one line for `lemma tasks list` */
    const char *difficulty;  /* what difficulty 1..5 changes, one line */

    /* A problem: question text in the domain's canonical wording, and the
     * reference answer (format above). Pure function of (seed, difficulty);
     * difficulty in 1..5 (larger: longer proofs). Appends to q and proof. */
    int (*generate)(uint64_t seed, int difficulty, lm_text *question, lm_text *proof, lm_error *err);

    /* 1 when the question is in this domain's canonical wording (cheap: a
     * prefix or pattern test; the full parse is in check). */
    int (*recognizes)(const char *question);

    /* Judges a solution text (the solution part only; see
     * lm_task_solution_part) against the question. Returns 0 with *res set
     * for any solution text, whatever its content; -1 with err only when
     * the question is not a well-formed question of this domain. */
    int (*check)(const char *question, const char *solution, lm_check_result *res, lm_error *err);

    /* check, also recording the working of every step it recomputes, up to
     * and including the first failing one (work may be NULL). */
    int (*check_work)(const char *question, const char *solution, lm_check_result *res, lm_task_work *work,
                      lm_error *err);

    /* A flawed version of a correct answer (reference format in, same format
     * out), of a kind chosen by the seed among the kinds the domain
     * supports, with the label and step the checker must report.
     * Deterministic in (question, proof, seed). */
    int (*corrupt)(const char *question, const char *proof, uint64_t seed, lm_text *out, lm_corruption *c,
                   lm_error *err);
} lm_task_domain;

/* The domains, in a fixed order (the order of `lemma tasks list`):
 * lm_task_domain_at(i) for i in [0, lm_task_count()). */
int lm_task_count(void);
const lm_task_domain *lm_task_domain_at(int i);

const lm_task_domain *lm_task_domain_find(const char *name);
/* The domain whose canonical wording the question uses, or NULL. */
const lm_task_domain *lm_task_domain_of(const char *question);

/* The solution part of an answer: between "## Solution" and
 * "## Self Evaluation" (either may be absent). Pointers into text. */
void lm_task_solution_part(const char *text, const char **begin, size_t *len);
/* The same part without surrounding blank lines and spaces (the form the
 * verification prompts show), as a new string the caller frees; NULL when
 * out of memory. */
char *lm_task_solution_copy(const char *text);

/* Finds the domain from the question, extracts the solution part of the
 * answer and checks it. -1 with err when no domain recognises the question or
 * the question does not parse. */
int lm_task_check(const char *question, const char *answer, lm_check_result *res, lm_error *err);

/* The verifier's training target for a check result of solution (the
 * solution part of an answer): a verdict for every non-empty line up to the
 * first failing one, then the score, so that a small model judges one line
 * at a time:
 *
 *   Here is my evaluation of the solution:
 *   Step 1 checks.
 *   Step 2 (arithmetic): 0 + 5 + 1 = 6, not 7.
 *
 *   Based on my evaluation, the final overall score should be:
 *   \boxed{0}
 *
 * A proof that checks gets a verdict per line and "Every step checks and the
 * conclusion is the claim."; a fault on no line (step 0: a missing
 * conclusion, an omitted justification) gets a verdict per line, then
 * "(kind): message.". */
int lm_task_verification_text(const char *solution, const lm_check_result *r, lm_text *out);

/* The verifier's training target with the checker's working: as
 * lm_task_verification_text, but every step with a working is preceded by
 * a line "Line k: <working>." that redoes its computation before the
 * verdict on it, so that the verdict compares two numbers already written
 * instead of doing the arithmetic in one token:
 *
 *   Here is my evaluation of the solution:
 *   Line 1: 2*44 = 88, 88 + 11 = 99.
 *   Step 1 checks.
 *   Line 2: 5*30 = 150, 150 + 7 = 157.
 *   Step 2 (arithmetic): 5*30 + 7 = 157, not 156.
 *
 *   Based on my evaluation, the final overall score should be:
 *   \boxed{0}
 *
 * "Line" lines claim nothing for lm_meta_label_of (src/prove/reward.h):
 * only "Step k" lines do. The verdicts follow r (which may name an invented
 * defect); the working is the checker's own for the question and solution.
 * A step's working is at most LM_TASK_WORK_MAX bytes. -1 with err when the
 * question is in no domain or malformed, or out of memory. */
int lm_task_worked_verification(const char *question, const char *solution, const lm_check_result *r, lm_text *out,
                                lm_error *err);

/* Shared by the domains (src/tasks/common.c). */
/* The self-evaluation block every reference answer ends with. */
int lm_task_append_self_eval(lm_text *out);
/* Sets *res to a verdict. */
void lm_check_set(lm_check_result *res, double score, int step, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
