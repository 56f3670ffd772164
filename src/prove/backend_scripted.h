/* backend_scripted.h — a backend whose answers a JSON script chooses, for
 * tests of the pipeline and of `lemma prove` (hidden option
 * --backend-script FILE).
 *
 *   {
 *     "delay_ms": 5,                      optional: wait before each reply
 *     "log": "asked.log",                 optional: append "<seed> <rule>\n" per reply
 *     "rules": [
 *       {"name": "bad-proof-verdict",     optional (default: "rule<i>")
 *        "when": ["Evaluate", "BAD"],     every string must occur in the prompt
 *        "unless": ["GOOD"],              none may occur
 *        "replies": ["...", "..."],       the reply is replies[seed % n]
 *        "reasoning": "...",              optional
 *        "finish_reason": "stop",         optional (default "stop")
 *        "fail": "connection refused"}    optional: a transport failure instead
 *     ]
 *   }
 *
 * The first rule that matches answers; when none does the request fails in
 * transport ("no rule matches"). Deterministic: a request's answer depends
 * only on its prompt and seed. Token counts are bytes / 4. */
#ifndef LEMMA_PROVE_BACKEND_SCRIPTED_H
#define LEMMA_PROVE_BACKEND_SCRIPTED_H

#include <stddef.h>

#include "prove/backend.h"

lm_backend *lm_backend_scripted_create(const char *json, size_t len, const char *name, lm_error *err);
lm_backend *lm_backend_scripted_load(const char *path, lm_error *err);

#endif
