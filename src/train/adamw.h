/* adamw.h — AdamW with decoupled weight decay and global gradient-norm
 * clipping over an lm_params block, deterministic at any thread count.
 *
 *   lm_adamw opt;
 *   lm_adamw_init(&opt, p, &(lm_adamw_opts){0.9, 0.95, 1e-8, 0.1}, &err);
 *   double norm = lm_adamw_grad_norm(&opt, pool, p);
 *   double s = lm_adamw_clip_scale(norm, 1.0);       // 1 when within the clip
 *   lm_adamw_update(&opt, pool, p, lr, s);             // one step, opt.step++
 *
 * The update is PyTorch's torch.optim.AdamW (1.13, single-tensor path) with
 * the gradient multiplied by s first (what clip_grad_norm_ does in place):
 *   t = step + 1;  w *= 1 - lr*wd             (only tensors with decay = 1)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * in F32 with the constants computed in double. Weight decay applies to
 * trainable 2-D tensors only (params.h: never norms, never the MoE bias);
 * non-trainable tensors are not touched.
 *
 * The gradient norm is a double sum over fixed chunks of 16384 elements
 * (partial sums in chunk order), so its bits do not depend on the threads. */
#ifndef LEMMA_TRAIN_ADAMW_H
#define LEMMA_TRAIN_ADAMW_H

#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/params.h"

typedef struct lm_adamw_opts {
    double beta1, beta2, eps;
    double weight_decay;         /* decoupled, times lr */
} lm_adamw_opts;

typedef struct lm_adamw {
    lm_adamw_opts o;
    int64_t step;                /* updates done so far (the bias-correction t is step + 1) */
    int64_t n_chunks;
    int64_t *chunk_off;          /* [n_chunks] float offset into the blocks */
    int32_t *chunk_len;          /* [n_chunks] */
    uint8_t *chunk_decay;        /* [n_chunks] */
    double *partial;             /* [n_chunks] */
} lm_adamw;

/* PyTorch's defaults except weight decay: betas (0.9, 0.999), eps 1e-8, wd 0. */
lm_adamw_opts lm_adamw_opts_default(void);

int lm_adamw_init(lm_adamw *a, const lm_params *p, const lm_adamw_opts *o, lm_error *err);
void lm_adamw_free(lm_adamw *a);

/* L2 norm of the gradient of every trainable tensor. */
double lm_adamw_grad_norm(lm_adamw *a, lm_pool *pool, const lm_params *p);
/* clip / (norm + 1e-6) when norm exceeds clip (torch.nn.utils.clip_grad_norm_),
 * else 1; clip <= 0 means no clipping. */
double lm_adamw_clip_scale(double norm, double clip);
/* One AdamW step with gradient g * grad_scale and learning rate lr. */
void lm_adamw_update(lm_adamw *a, lm_pool *pool, lm_params *p, double lr, double grad_scale);

#endif
