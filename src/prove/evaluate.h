/* evaluate.h — `lemma eval`: DeepSeekMath-V2's evaluation table from a
 * finished `lemma prove` run, every number judged by the exact checker of the
 * synthetic domains (report.h's lm_report_checker).
 *
 *   lm_text md = {0};
 *   lm_eval_report(res, lm_report_task_checker(), "runs/eval", pipeline_md, &md, NULL, &err);
 *   // runs/eval/results.json, report.md, best_of_n.svg, pass_by_round.svg
 *
 * Only problems with a domain are graded (the others are counted). A proof
 * passes when the checker scores it 1; a proof that was not received or
 * cannot be split into solution and self-evaluation fails. Per problem, with
 * n = the first proofs (round 0, --samples) and c = those that pass:
 *
 *   pass@1            c / n
 *   oracle pass@k     1 - C(n-c, k) / C(n, k): some proof of a random
 *                     k-subset passes (Chen et al. 2021's unbiased estimator)
 *   best-of-k         the expected checker pass of the proof the model's own
 *                     verification ranks first in a random k-subset: proofs
 *                     rank by (mean counted verification score, then
 *                     self-score), as the pipeline picks (lm_prove_best);
 *                     proofs still tied are an even draw, so the rule is
 *                     exact and seed-free: a tied group G (m proofs, c_G
 *                     passing, a proofs ranked above it) is the subset's top
 *                     with probability (C(n-a, k) - C(n-a-m, k)) / C(n, k)
 *                     and then passes with probability c_G / m. Proofs with
 *                     no counted verification are never picked (a subset of
 *                     only such proofs has no answer: a fail).
 *   best_of_n         best-of-k at k = n
 *   pass_by_round[r]  the same pick (ties even) among the proofs of rounds
 *                     <= r: the pipeline's answer after refinement round r
 *   pass_at_1_by_round[r]  c / n over the proofs generated in round r
 *                     (a problem that stopped keeps its last round's value)
 *
 * and each is the mean over the graded problems. verifier_agreement: the
 * fraction of the valid verifications of received proofs whose score equals
 * the checker's (confusion over {0, 0.5, 1} x {0, 0.5, 1, other});
 * self_evaluation: the same for the generator's own \boxed{} self-score.
 *
 * Every file is written atomically and depends only on the answers, so a
 * rerun on the same pool writes the same bytes. */
#ifndef LEMMA_PROVE_EVALUATE_H
#define LEMMA_PROVE_EVALUATE_H

#include "core/buf.h"
#include "core/error.h"
#include "prove/pipeline.h"
#include "prove/report.h"

/* The best-of-N curve runs N = 1..min(LM_EVAL_MAX_CURVE, samples). */
#define LM_EVAL_MAX_CURVE 32

/* 1 - C(n-c, k) / C(n, k): the chance that a k-subset of n samples, c of
 * them correct, holds a correct one (0 when n or k out of range). */
double lm_eval_pass_at_k(int n, int c, int k);

/* A problem's ranked first proofs for best-of-k: groups[g] proofs tie at
 * the g-th best key, passes[g] of them pass; n_groups groups; n first proofs
 * in all (the ones in no group have no counted verification). Returns the
 * expected pass of the top-ranked proof of a uniformly random k-subset. */
double lm_eval_best_of_k(int n, const int *groups, const int *passes, int n_groups, int k);

/* Grades res (a prove run) and writes results.json, report.md,
 * best_of_n.svg and pass_by_round.svg into dir unless dir is NULL.
 * pipeline_md (may be NULL) is lemma prove's report.md, appended as a
 * section. md (may be NULL) gets the Markdown, json (may be NULL) the JSON.
 * Errors: a verify-mode result, no problem with a domain, out of memory, a
 * write. */
int lm_eval_report(const lm_prove_result *res, const lm_report_checker *chk, const char *dir, const char *pipeline_md,
                   lm_text *md, lm_text *json, lm_error *err);

#endif
