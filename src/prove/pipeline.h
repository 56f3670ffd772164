/* pipeline.h — DeepSeekMath-V2's test-time pipeline: generate proofs,
 * verify each several times, meta-verify the verifications that report
 * issues, refine the best proofs with their verifications, repeat
 * (docs/prove.md).
 *
 *   lm_prove_ctx c = {&templates, backend, pool, &opts, progress, ctx, &stop};
 *   lm_prove_result *res;
 *   if (lm_prove_run(&problems, &c, &res, &err)) ...     // lemma prove
 *   if (lm_verify_run(&proofs, &c, &res, &err)) ...      // lemma verify
 *   ... res->problems[i].proofs[j] ...                   // see prove/report.h
 *   lm_prove_result_free(res);
 *
 * Resumable by construction: every request has an id that is a function of
 * its place in the algorithm — "r0.g3" (round 0, proof 3), "r2.g5" (round
 * 2, refined proof 5), "r0.g3.v1" (verification 1 of that proof),
 * "r0.g3.v1.m" (its meta-verification); with `lemma verify` the given proof
 * is "given" — and a seed that is a function of (opts.seed, problem id, id).
 * The run replays the whole algorithm from the start, taking each answer
 * from the pool when the pool holds one for the same (problem id, id,
 * prompt) and asking the backend only for the others; every reply is
 * appended to the pool as it arrives. So a run stopped at any point
 * continues where it stopped, never asks a received answer again, and with
 * a deterministic backend ends exactly as an uninterrupted run.
 *
 * The result borrows the problem set and the pool's records: keep both
 * until lm_prove_result_free. */
#ifndef LEMMA_PROVE_PIPELINE_H
#define LEMMA_PROVE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "prove/backend.h"
#include "prove/pool.h"
#include "prove/problems.h"
#include "prove/templates.h"

typedef struct lm_prove_opts {
    int samples;              /* first proofs per problem (N) */
    int verifications;        /* verifications per first proof (M) */
    int rounds;               /* refinement rounds after the first (R) */
    int refine_top;           /* best proofs refined per round (K) */
    int refine_samples;       /* new proofs per refined proof (S) */
    int refine_verifications; /* verifications per refined proof */
    int64_t max_tokens;
    double temperature, top_p;
    uint64_t seed;
    int meta;                 /* meta-verify verifications scoring <= 0.75; a 0 rejects them */
} lm_prove_opts;

/* lemma's defaults, scaled from the released run (128 proofs, 64
 * verifications, 16 rounds, top 32 x 4 samples): 8 proofs, 4
 * verifications, 4 rounds, top 2 x 4 samples, 4 verifications, 4096
 * tokens, temperature 1, top_p 0.95, seed 1, meta on. */
void lm_prove_opts_default(lm_prove_opts *o);
/* The released ratios for what the user did not set: refine_top =
 * max(1, samples / 4) when refine_top <= 0, refine_samples = 4 when <= 0,
 * refine_verifications = verifications when <= 0. */
void lm_prove_opts_complete(lm_prove_opts *o);

/* Verifications with a score at most this go to meta-verification. */
#define LM_META_THRESHOLD 0.75
/* A problem stops once a proof's mean verification score exceeds this. */
#define LM_PASS_THRESHOLD 0.99999
/* A refinement prompt carries at most this many verifications of its
 * proof, at most LM_REFINE_PER_SCORE per score value (LM_REFINE_MAX_VERIFS
 * when they all have one score), lowest scores first. */
#define LM_REFINE_MAX_VERIFS 8
#define LM_REFINE_PER_SCORE 4

typedef struct lm_prove_phase {
    int round;
    const char *name;   /* "generate", "refine", "verify", "meta-verify" */
    int total;          /* requests of the phase */
    int from_pool;      /* answered from the pool */
    int done;           /* replies received from the backend so far */
    int failed;         /* of which transport failures */
    double elapsed;     /* seconds since the backend was called */
    int finished;       /* the last call for this phase */
} lm_prove_phase;
typedef void (*lm_prove_progress_fn)(void *ctx, const lm_prove_phase *ph);

typedef struct lm_prove_ctx {
    const lm_prompt_templates *templates;
    lm_backend *backend;
    lm_proof_pool *pool;
    const lm_prove_opts *opts;
    lm_prove_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
    volatile int *stop;              /* non-zero: stop at the next reply ("interrupted"); may be NULL */
} lm_prove_ctx;

typedef struct lm_verif_state {
    char *id;
    const lm_pool_rec *rec;      /* NULL: failed in transport (asked again next run) */
    int valid;                   /* finished with a score */
    double score;
    const char *rating;          /* the answer after its thinking, stripped (into rec->text) */
    size_t rating_len;
    const lm_pool_rec *meta;     /* the meta-verification answer, if one was received */
    int meta_valid;
    double meta_score;
    int rejected;                /* the meta-verifier scored it 0 */
} lm_verif_state;

typedef struct lm_proof_state {
    char *id;
    int round;
    int index;                   /* within its round */
    char *parent;                /* the proof it was refined from (NULL for first proofs) */
    const lm_pool_rec *rec;      /* NULL: failed in transport */
    int usable;                  /* finished and split into solution and self-evaluation */
    const char *from_solution;   /* "## Solution" to the end (into rec->text) */
    size_t from_solution_len;
    const char *solution;        /* the solution part, stripped: what verifiers see */
    size_t solution_len;
    int has_self_score;
    double self_score;           /* 0 when it does not parse */
    lm_verif_state *verifs;
    int n_verifs;
    int n_counted;               /* valid and not rejected verifications */
    double mean;                 /* their mean score (0 when none) */
    uint64_t tie;                /* orders proofs of equal (mean, self_score) */
} lm_proof_state;

typedef struct lm_problem_state {
    const lm_problem *problem;   /* borrowed */
    lm_proof_state *proofs;
    int n_proofs, cap;
    int stopped;                 /* a proof passed every counted verification */
    int exhausted;               /* nothing to refine (no proof with a counted verification) */
    int rounds_used;             /* refinement rounds it took part in */
    int *best_after;             /* best proof index at the end of round r = 0..rounds, -1 none */
} lm_problem_state;

typedef struct lm_prove_result {
    lm_problem_state *problems;
    int n;
    lm_prove_opts opts;
    int verify_mode;             /* lemma verify: one given proof per item */
    const char *backend;
    /* this run only (not in the report: they differ between a run and its resumption) */
    int asked, from_pool, failed;
    lm_pool_rec *given;          /* verify mode: the given proofs as records (owned) */
} lm_prove_result;

int lm_prove_run(const lm_problem_set *ps, const lm_prove_ctx *c, lm_prove_result **out, lm_error *err);
int lm_verify_run(const lm_problem_set *ps, const lm_prove_ctx *c, lm_prove_result **out, lm_error *err);
void lm_prove_result_free(lm_prove_result *r);

/* The best proof of a problem among those of rounds <= round — the highest
 * (mean, self_score), ties broken by the seeded tie key — counting only
 * usable proofs with at least one counted verification; -1 when none. */
int lm_prove_best(const lm_problem_state *p, int round);

/* The seed of request id of problem problem_id. */
uint64_t lm_prove_seed(uint64_t base, const char *problem_id, const char *id);

/* The refinement prompt of proof pr of problem q (exposed for tests). */
int lm_prove_refine_prompt(const lm_prompt_templates *t, const char *question, const lm_proof_state *pr,
                           lm_text *out, lm_error *err);

#endif
