/* fingerprint.h — what identifies the weights behind a local model's
 * answers, so that `lemma prove` never continues a run (reuses its pool)
 * with a model whose files changed under the same path.
 *
 *   char hex[65]; int by_headers;
 *   if (lm_model_fingerprint("build/default/prover", LM_FINGERPRINT_FULL_LIMIT, hex, &by_headers, &err)) ...
 *
 * The fingerprint is a SHA-256 over, in this order, each file that is
 * present of config.json, tokenizer.json, tokenizer_config.json and
 * model.safetensors.index.json, then every *.safetensors file of the folder
 * in byte order of their names. Each file contributes its name and size,
 * then its whole content. When the *.safetensors files hold more than
 * full_limit bytes in all, reading them on every start would take minutes,
 * so each contributes instead its name, size, modification time and its
 * safetensors header (names, dtypes, shapes, offsets) — *by_headers is then
 * 1. A copy of the same weights (another mtime) then counts as other
 * weights: a rerun refuses the pool, which is the safe mistake. The two
 * kinds are hashed under different leading tags and so never equal. */
#ifndef LEMMA_PROVE_FINGERPRINT_H
#define LEMMA_PROVE_FINGERPRINT_H

#include <stdint.h>

#include "core/error.h"

/* 8 GiB: about 20-40 s of hashing at the hash's few hundred MB/s. */
#define LM_FINGERPRINT_FULL_LIMIT ((uint64_t)8 << 30)

/* 0 with the 64 hex digits in hex; -1 with err naming the file that could
 * not be read (or "DIR: no *.safetensors files"). */
int lm_model_fingerprint(const char *dir, uint64_t full_limit, char hex[65], int *by_headers, lm_error *err);

#endif
