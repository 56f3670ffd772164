/* taskset.h — training and evaluation sets made from the synthetic domains:
 * what the default recipe builds its prover from (docs/tasks.md, "Data
 * sets"). Every set is a pure function of its options: the same options give
 * the same bytes.
 *
 *   lm_taskset_opts o; lm_taskset_defaults(&o);
 *   o.kind = LM_TASKSET_SFT; o.seed = 1; o.n = 20000; o.templates_json = text;
 *   lm_text out = {0};
 *   lm_taskset_build(&o, &out, &err);      // JSONL, one record a line
 *
 * Problem i of a set (i = 0, 1, ...) is drawn from domain i mod D (D the
 * domains chosen, in registry order) with seed lm_rng_u64(seed, LM_RNG_TASKS,
 * i) and a difficulty drawn uniformly in [dmin, dmax] from the same stream.
 * A problem whose question is in the exclusion list (the held-out set) is
 * skipped and the set draws on, so a training set never holds a held-out
 * question.
 *
 * Kinds:
 *   problems  {"id", "domain", "difficulty", "seed", "question", "proof"}: a
 *             problem set (the held-out set `lemma prove` runs on);
 *   text      {"text": ...}: pretraining documents — the question followed by
 *             its reference answer, and the question, a proof (clean or
 *             corrupted) and the checker's analysis of it (with its
 *             working, tasks.h lm_task_worked_verification, when working);
 *   sft       {"segments": [{"text": prompt, "loss": false}, {"text": answer,
 *             "loss": true}]}: chat-format examples (DeepSeek-V3 template,
 *             without the BOS, which the data stage adds) that teach one model
 *             both jobs: proof generation (the proof_generation template →
 *             the reference answer) and verification (the proof_verification
 *             template with a clean or corrupted solution → the checker's
 *             analysis ending in \boxed{score}); with p_refine > 0,
 *             refinement (the pipeline's own refinement prompt, built by
 *             lm_prove_refine_prompt, with a corrupted proof and its
 *             analysis → the reference answer); with p_meta > 0,
 *             meta-verification (a verification naming the real first
 *             defect → \boxed{1}; one naming a made-up defect in the clean
 *             solution → \boxed{0}). */
#ifndef LEMMA_RECIPE_TASKSET_H
#define LEMMA_RECIPE_TASKSET_H

#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "formats/json.h"

typedef enum lm_taskset_kind { LM_TASKSET_PROBLEMS = 1, LM_TASKSET_TEXT, LM_TASKSET_SFT } lm_taskset_kind;

typedef struct lm_taskset_opts {
    lm_taskset_kind kind;
    uint64_t seed;
    int64_t n;                  /* problems drawn (each gives one or more records) */
    int dmin, dmax;             /* difficulty range, 1..5 */
    const char *domains;        /* "all" or "add,gcd,..." */
    const char *exclude;        /* JSONL text of a problems set whose questions are excluded, or NULL */
    size_t exclude_len;
    const char *templates_json; /* sft: a templates file (JSON object with the four templates) */
    /* sft: examples per problem, as probabilities drawn per problem */
    double p_generate;          /* proof generation (default 1) */
    double p_verify_clean;      /* verification of the reference solution (default 0.5) */
    double p_verify_flawed;     /* verification of a corrupted solution (default 0.5) */
    double p_refine;            /* refinement: the pipeline's refinement prompt with a corrupted
                                   solution and its analysis -> the reference answer (default 0) */
    double p_meta;              /* meta-verification: a verification reporting a real defect -> 1,
                                   a made-up defect in the clean solution -> 0 (default 0) */
    int working;                /* text, sft: the checker's analyses with its working
                                   (lm_task_worked_verification; recipe key "working": true),
                                   else the verdicts alone (lm_task_verification_text; default) */
    /* Optional progress: called every 1000 problems; non-zero stops with "interrupted". */
    int (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} lm_taskset_opts;

void lm_taskset_defaults(lm_taskset_opts *o);
int lm_taskset_kind_parse(const char *s, lm_taskset_kind *out);

/* The recipe's built-in input {"builtin": "tasks", "set": "problems"|"text"|
 * "sft", "seed", "n", "difficulty": [lo, hi] or d, "domains": "all" or
 * "add,gcd", "exclude": NAME (an earlier tasks input), "templates": PATH
 * (sft; relative to the recipe), "p_generate", "p_verify_clean",
 * "p_verify_flawed", "p_refine", "p_meta", "working"}: reads the keys into o (exclude and templates are left
 * NULL) and the names/paths into *exclude_name and *templates_path (NULL when
 * absent). Errors name the recipe file, the input and the byte offset. */
int lm_taskset_opts_from_json(const json_value *def, const char *recipe_path, const char *input_name,
                              lm_taskset_opts *o, const char **exclude_name, const char **templates_path,
                              lm_error *err);

/* Appends the set (JSONL) to out. */
int lm_taskset_build(const lm_taskset_opts *o, lm_text *out, lm_error *err);

#endif
