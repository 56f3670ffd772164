/* pool.h — pool.jsonl: every answer the proof pipeline received (or failed
 * to receive), one JSON object a line, appended as each reply arrives.
 *
 *   {"id": "r1.g5", "problem_id": "7", "kind": "proof", "parent": ["r0.g2"],
 *    "round": 1, "score": 1, "self_score": 1, "text": "...", "reasoning": "",
 *    "finish_reason": "stop", "backend": "local", "prompt_tokens": 310,
 *    "completion_tokens": 95, "seconds": 1.3, "prompt_hash": "9f2c...",
 *    "seed": "8c1d...", "dropped": null}
 *
 * kind is proof, verification or meta_verification; parent is null (first
 * proofs), the list of proof ids a refined proof was refined from, the proof
 * id a verification judges, or the verification id a meta-verification
 * judges. score is the parsed \boxed{} (for a proof: its self-evaluation) or
 * null; self_score (proofs) is the value ranking uses (0 when unparsable).
 * dropped says why an answer is not used (did not finish, cannot be split,
 * no score), else null. A transport failure is {"id", "problem_id", "kind",
 * "parent", "round", "failed": true, "error", "backend", "seconds",
 * "prompt_hash", "seed"}.
 *
 * An answer is found again by (problem_id, id, prompt_hash): the pipeline
 * reuses a received answer only for the very prompt it answered. Failed
 * records are kept (the history) but never reused.
 *
 * Reading: a last line without its newline is a write cut short by a crash:
 * it is kept when it parses as a complete record (the newline is added),
 * else dropped, the file truncated to the last full line and a warning
 * given. Any other line that does not parse or lacks a field is an error
 * "pool.jsonl:LINE: ...", and nothing is changed. */
#ifndef LEMMA_PROVE_POOL_H
#define LEMMA_PROVE_POOL_H

#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

enum { LM_KIND_PROOF, LM_KIND_VERIFICATION, LM_KIND_META, LM_KIND_COUNT };
const char *lm_kind_name(int kind);

typedef struct lm_pool_rec {
    char *id, *problem_id;
    int kind;
    int round;
    char **parents;          /* n_parents ids */
    int n_parents;
    int parent_is_list;      /* refined proofs: a JSON list */
    int failed;
    char *error;             /* failed */
    int has_score;
    double score;
    int has_self_score;
    double self_score;
    char *text, *reasoning, *finish_reason, *backend;
    char *dropped;           /* NULL when used */
    int64_t prompt_tokens, completion_tokens;
    double seconds;
    char prompt_hash[17];
    uint64_t seed;
    int64_t line;            /* 1-based line in pool.jsonl */
} lm_pool_rec;

typedef struct lm_proof_pool lm_proof_pool;

/* Opens (creating) path, reads its records. warn gets one line per
 * repair made (a dropped partial line), else stays empty. */
lm_proof_pool *lm_proof_pool_open(const char *path, lm_text *warn, lm_error *err);
void lm_proof_pool_close(lm_proof_pool *p);

/* The first received (not failed) answer with these keys, or NULL. */
const lm_pool_rec *lm_proof_pool_find(const lm_proof_pool *p, const char *problem_id, const char *id, const char *prompt_hash);

/* Appends r as one line (a single write, so a crash leaves at most one
 * partial line) and keeps a copy; returns the copy, or NULL with err. */
const lm_pool_rec *lm_proof_pool_append(lm_proof_pool *p, const lm_pool_rec *r, lm_error *err);
/* fdatasync: what was appended is on disk. */
int lm_proof_pool_sync(lm_proof_pool *p, lm_error *err);

int lm_proof_pool_count(const lm_proof_pool *p);
const lm_pool_rec *lm_proof_pool_at(const lm_proof_pool *p, int i);
/* Records that were in the file when it was opened. */
int lm_proof_pool_loaded(const lm_proof_pool *p);

/* The line for a record (no newline), as lm_proof_pool_append writes it. */
int lm_pool_rec_format(const lm_pool_rec *r, lm_text *out);
/* Parses one line; name and line for messages. */
int lm_pool_rec_parse(const char *s, size_t n, const char *name, int64_t line, lm_pool_rec *r, lm_error *err);
void lm_pool_rec_clear(lm_pool_rec *r);

/* First 16 hex digits of the SHA-256 of a prompt. */
void lm_prompt_hash(const char *prompt, size_t n, char out[17]);

#endif
