/* problems.h — the input of `lemma prove` and `lemma verify`.
 *
 * A file is a JSON array of objects (the bundled DeepSeekMath-V2 inputs) or
 * JSONL, one object a line (blank lines skipped). Each object has "question"
 * (a non-empty string) and an optional "id" (a string or an integer; default:
 * the object's position, counted from 1); `lemma verify` also needs "proof"
 * (the answer to judge). Other fields are ignored, so the lines `lemma tasks
 * gen` writes (with "domain", "proof", ...) are valid problems; their
 * reference proof is not used by `lemma prove`. Ids must be distinct.
 *
 *   lm_problem_set ps;
 *   if (lm_problems_load("problems.jsonl", 0, &ps, &err)) ...
 *   ps.items[i].id, ps.items[i].question
 *   lm_problems_free(&ps);
 *
 * Errors name the file and the line (JSONL) or the array element and byte
 * (JSON array). */
#ifndef LEMMA_PROVE_PROBLEMS_H
#define LEMMA_PROVE_PROBLEMS_H

#include <stddef.h>

#include "core/error.h"

typedef struct lm_problem {
    char *id;
    char *question;
    char *proof;        /* with need_proof; NULL otherwise */
} lm_problem;

typedef struct lm_problem_set {
    lm_problem *items;
    int n;
    char sha256[65];    /* of the file's bytes */
} lm_problem_set;

int lm_problems_parse(const char *text, size_t len, const char *name, int need_proof, lm_problem_set *ps,
                      lm_error *err);
int lm_problems_load(const char *path, int need_proof, lm_problem_set *ps, lm_error *err);
void lm_problems_free(lm_problem_set *ps);

#endif
