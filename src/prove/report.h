/* report.h — report.json and report.md of a `lemma prove` or `lemma
 * verify` run, measured against the exact checker where a problem belongs to
 * a synthetic domain (tasks/tasks.h).
 *
 *   lm_text md = {0};
 *   lm_prove_report(res, lm_report_task_checker(), "runs/p1", &md, &err);   // writes both files
 *   fputs(md.data, stdout);
 *
 * Both files are written atomically and depend only on the answers (no
 * times, no counts of what this run asked), so a resumed run writes the same
 * bytes as an uninterrupted one. docs/prove.md lists the fields. */
#ifndef LEMMA_PROVE_REPORT_H
#define LEMMA_PROVE_REPORT_H

#include "core/error.h"
#include "prove/pipeline.h"

/* The ground truth: which domain a question is in, and an answer's score
 * with its first failing step (the 1-based non-empty line of the solution
 * part, 0 when the answer checks or its fault is on no line; step may be
 * NULL). The step lets `lemma eval` label each verification's faithfulness
 * (prove/reward.h, lm_meta_label_of). */
typedef struct lm_report_checker {
    const char *(*domain)(void *ctx, const char *question); /* NULL: no domain */
    int (*check)(void *ctx, const char *question, const char *answer, double *score, int *step); /* 0 or -1 */
    void *ctx;
} lm_report_checker;

/* The synthetic domains' checkers (lm_task_domain_of, lm_task_check). */
const lm_report_checker *lm_report_task_checker(void);

/* Builds both reports; writes them into dir unless dir is NULL; md (may be
 * NULL) gets the Markdown, json (may be NULL) the JSON. */
int lm_prove_report(const lm_prove_result *res, const lm_report_checker *chk, const char *dir, lm_text *md,
                    lm_text *json, lm_error *err);

#endif
