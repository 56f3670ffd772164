/* mtp.h — the multi-token-prediction (MTP) layer of a DeepSeek-V3
 * checkpoint, bound and run as a draft model for speculative decoding.
 *
 * A checkpoint with num_nextn_predict_layers = 1 stores, after its
 * num_hidden_layers decoder layers, one more layer L = num_hidden_layers:
 * a full decoder layer (model.layers.L.self_attn.*, mlp.*, the two norms)
 * plus enorm, hnorm, eh_proj [D, 2D], embed_tokens [V, D] and
 * shared_head.{norm,head}. At position i it predicts token i+2 from the
 * main model's final hidden state h_i (after model.norm) and token i+1:
 *
 *   x_i = eh_proj · [enorm(embed(t_{i+1})) ; hnorm(h_i)]      (embedding first)
 *   y_i = block(x_i) at rope position i, attending to the MTP positions <= i
 *   logits_i = shared_head.head · shared_head.norm(y_i)
 *
 * (docs/deepseek-conventions.md item 30 says where each choice comes from.)
 *
 * The block runs on the batched forward of kvcache.h as a one-layer model
 * (lm_mtp_model): its own paged cache and work buffers, the same kernels,
 * the same bits at any batch split or thread count. Its embedding and head
 * are the main model's (packed) views when the stored copies hold the same
 * bytes, as in checkpoints trained with a shared head; otherwise its own.
 *
 *   lm_mtp *mtp; lm_mtp_load(model, &mtp, &err);
 *   lm_fwd *f = lm_fwd_create(lm_mtp_model(mtp), LM_ATTN_LATENT, rows, ctx, nt, &err);
 *   lm_mtp_mix(mtp, pool, resid, next_ids, n, x, &err);   // x [n, D] from the main residual rows
 *   lm_batch_forward_rows(f, pool, kc, &seg, 1, x, logits, LM_LOGITS_LAST, &err);
 */
#ifndef LEMMA_MODEL_MTP_H
#define LEMMA_MODEL_MTP_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"

typedef struct lm_mtp lm_mtp;

/* Binds MTP layer 0 (model.layers.{num_hidden_layers}.*) of m's files;
 * m must outlive it. Fails naming the tensor when one is missing or of the
 * wrong shape, and when the config has no MTP layer. Its matrices are
 * packed into panels like m's unless m was loaded row-major. */
int lm_mtp_load(const lm_model *m, lm_mtp **out, lm_error *err);
void lm_mtp_free(lm_mtp *mtp);

/* The block as a one-layer model: what lm_fwd_create / lm_kvcache_create
 * take. Its w.final_norm is shared_head.norm and w.head shared_head.head. */
const lm_model *lm_mtp_model(const lm_mtp *mtp);
/* Whether embed_tokens / shared_head.head are the main model's bytes. */
int lm_mtp_shares_embedding(const lm_mtp *mtp);
int lm_mtp_shares_head(const lm_mtp *mtp);

/* x [n, D] = eh_proj · [enorm(embed(next_ids[r])) ; hnorm(model.norm(resid[r]))]
 * for the n rows of resid [n, D], the main model's residual stream before
 * its final norm (lm_fwd_residual). Up to max_rows rows per call (the
 * scratch is sized at load: 256); fails on an id out of range. */
enum { LM_MTP_MAX_ROWS = 256 };
int lm_mtp_mix(lm_mtp *mtp, lm_pool *pool, const float *resid, const int32_t *next_ids, int64_t n, float *x,
               lm_error *err);

#endif
