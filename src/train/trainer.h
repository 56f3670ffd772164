/* trainer.h — the trainer's state, shared by tforward.c, backward.c and
 * step.c (not a public header: callers use step.h).
 *
 * Letters: B = sequences in the micro-batch, T = positions per sequence,
 * N = B*T tokens (row n = b*T + t is position t of sequence b), D, H, dn,
 * dr, dv, C, Q, E as in config.h, k = experts per token, I = dense FFN
 * width, Im = one expert's width, Is = Im * n_shared_experts. */
#ifndef LEMMA_TRAIN_TRAINER_H
#define LEMMA_TRAIN_TRAINER_H

#include <stdint.h>

#include "core/arena.h"
#include "train/adamw.h"
#include "train/params.h"
#include "train/step.h"

/* What one layer's forward keeps for its backward (see tforward.c). */
typedef struct tr_acts {
    float *x_in;                 /* [N, D] residual stream entering the layer */
    float *r1;                   /* [N] 1/rms of x_in (input_layernorm) */
    float *qa;                   /* [N, Q] q_a_proj output, before q_a_layernorm (Q > 0) */
    float *rq;                   /* [N] its 1/rms */
    float *q;                    /* [N, H*(dn+dr)] query, rope applied */
    float *ckv;                  /* [N, C] latent before kv_a_layernorm */
    float *rkv;                  /* [N] its 1/rms */
    float *kpe;                  /* [N, dr] shared rope key, rope applied */
    float *kvb;                  /* [N, H*(dn+dv)] per head [k_nope | v] */
    float *lse;                  /* [B, H, T] log-sum-exp of the scaled scores */
    float *att;                  /* [N, H*dv] attention output (o_proj input) */
    float *x_mid;                /* [N, D] residual after attention */
    float *r2;                   /* [N] 1/rms of x_mid (post_attention_layernorm) */
    float *h1, *h3;              /* [N, I] dense gate/up pre-activations; MoE: shared [N, Is] */
    float *probs;                /* [N, E] unbiased router scores (sigmoid or softmax) */
    int32_t *ridx;               /* [N, k] chosen experts */
    float *rw;                   /* [N, k] combine weights */
    int32_t *eoff;               /* [E+1] expert e's rows are erow[eoff[e] .. eoff[e+1]) */
    int32_t *erow;               /* [N*k] slot n*k+j, grouped by expert, tokens in order */
    float *eh1, *eh3;            /* [N*k, Im] expert pre-activations, in erow order */
    float *ey;                   /* [N*k, D] expert output of slot n*k+j */
} tr_acts;

struct lm_trainer {
    lm_params *p;
    lm_train_opts o;
    lm_adamw opt;
    int nthreads;
    int64_t Bm, T, N;            /* micro-batch sequences, positions, tokens */
    int64_t Imax;                /* widest SwiGLU */
    int64_t head_chunk;          /* rows of logits computed at once */
    int64_t nmoe;                /* MoE layers */
    float *cos_t, *sin_t;        /* [T, dr/2] rope tables (YaRN attention factor included) */
    tr_acts *acts;               /* [L] */
    float *x_fin;                /* [N, D] output of the last layer */
    float *r_fin;                /* [N] its 1/rms (model.norm) */
    /* scratch, reused layer by layer */
    float *xn;                   /* [N, D] normalised block input */
    float *dx;                   /* [N, D] gradient of the residual stream */
    float *dxn;                  /* [N, D] gradient of a normalised block input */
    float *tmp;                  /* [N, D] block output (forward) */
    float *qan;                  /* [N, Q] normalised q latent; backward: its gradient */
    float *kva;                  /* [N, C+dr] kv_a output; backward: its gradient */
    float *cn;                   /* [N, C] normalised kv latent; backward: its gradient */
    float *dq;                   /* [N, H*(dn+dr)] */
    float *dqa;                  /* [N, Q] */
    float *dkvb;                 /* [N, H*(dn+dv)] */
    float *dkpe_h;               /* [N, H, dr] rope-key gradient per head, summed over h afterwards */
    float *datt;                 /* [N, H*dv] */
    float *act;                  /* [N*k or N, Imax] SwiGLU output */
    float *dact, *dh1, *dh3;     /* [N, Imax] */
    float *glog;                 /* [N, E] router logits; backward: their gradient */
    float *ds;                   /* [N, E] gradient of the router scores */
    float *dw;                   /* [N, k] gradient of the combine weights */
    float *xe, *ye, *dxe;        /* [N, D] one expert's gathered rows */
    float *xc, *dxc;             /* [head_chunk, D] head input rows with a target */
    float *logits;               /* [head_chunk, V] */
    int32_t *hrows;              /* [head_chunk] their token index */
    double *hloss;               /* [head_chunk] their losses */
    float *headT;                /* [D, V] the head weight transposed, once per pass */
    float *hacc;                 /* [V, D] this pass's head (tied: + embedding) gradient */
    uint64_t *ekey;              /* [N] (id, token) keys grouping embedding rows */
    int32_t *efill;              /* [E] counters grouping slots by expert */
    float *thr;                  /* per-thread attention scratch */
    int64_t thr_floats;
    float *ws;                   /* workspace of the Linear backward products */
    int64_t *loads;              /* [nmoe, E] tokens per expert in this step */
    int32_t *moe_layer;          /* [nmoe] layer index */
    int32_t *moe_slot;           /* [L] row of the layer in loads, -1 for dense layers */
    /* MTP loss (lm_train_opts.mtp_weight > 0 on parameters with an MTP
     * layer; mtp_loss.c): acts[L] holds the MTP decoder layer's activations */
    int mtp;
    float *hn;                   /* [N, D] main output after model.norm */
    float *mcat, *dcat;          /* [N, 2D] eh_proj input [enorm(embed(next)) | hnorm(hn)], its gradient */
    float *r_e, *r_h;            /* [N] 1/rms of the embedding rows and of hn */
    float *x_mfin, *r_mfin;      /* [N, D] MTP layer output, [N] its 1/rms (shared_head.norm) */
    float *dfin;                 /* [N, D] the MTP loss's gradient of model.norm's output (hn) */
    int32_t *mids, *mtgt;        /* [N] MTP input token (t+1) and target (t+2; -1: none) */
    double mtp_loss_sum;         /* this step, unweighted */
    /* Set by tr_mtp_pass for the pass's tr_head and tr_backward: hacc holds
     * the MTP head's gradient, dfin the gradient of hn, dcat [N, D] that of
     * the embedding rows mids[n]. They join the main gradients before the
     * single add per element of the pass (step.h's accumulation contract). */
    int mtp_pending;
    double loss_sum, bal_sum;    /* this step */
    int64_t tok_count, denom_tokens;
    int loss_kind;               /* since lm_train_begin: 0 nothing, 1 cross-entropy, 2 token loss */
    lm_row_loss_fn row_fn;       /* set only during lm_train_accumulate_row_loss / lm_train_row_forward: */
    void *row_ctx;               /* tr_head then calls it on each row with a target instead of fn */
    lm_arena arena;              /* the one allocation behind every buffer */
    /* Mixed precision (step.h): bf16 set; the forward's products read Wf,
     * which is p->W, or Wb: BF16 views of w16 (n_floats, refreshed from
     * p->w at every forward; in the arena). */
    int bf16;
    uint16_t *w16;
    lm_weights Wb;
    void *wb_ptrs;
    const lm_weights *Wf;
};

/* tforward.c */
void tr_forward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, int64_t nseq, int64_t denom_seqs, int count_loads);
/* Final norm, head, masked cross-entropy over the N = nseq*T rows; with grad,
 * also G.head, G.final_norm and tr->dx (gradient of x_fin) with the loss
 * scaled by 1/denom. Adds to *loss_sum and *count. With fn (step.h,
 * lm_token_loss_fn), each row's loss is fn(logp) instead of -logp and its
 * gradient fn'(logp) d logp (denom is then not used). While tr->row_fn is
 * set (lm_train_accumulate_row_loss, lm_train_row_forward), each row's loss
 * and gradient come from it instead, from the whole logits row. */
void tr_head(lm_trainer *tr, lm_pool *pool, const int32_t *targets, int64_t nseq, double denom, int grad,
             lm_token_loss_fn fn, void *fn_ctx, double *loss_sum, int64_t *count);

/* tr_head on other rows: x [N, D] normalised with norm_w (1/rms into r),
 * gradient of the norm into norm_g. keep_hacc: add to the head gradient
 * already in hacc (else start it at zero); fold_head: add hacc to G.head at
 * the end (tr_head: unless tied, see tr_backward); extra_dxn [N, D]: a
 * gradient of the normalised rows from elsewhere, added before the norm's
 * backward (or NULL). */
void tr_head_rows(lm_trainer *tr, lm_pool *pool, const float *x, float *r, const float *norm_w, float *norm_g,
                  const int32_t *targets, int64_t nseq, double denom, int grad, lm_token_loss_fn fn, void *fn_ctx,
                  double *loss_sum, int64_t *count, int keep_hacc, int fold_head, const float *extra_dxn);
/* One decoder layer l (acts[l].x_in filled) into next [N, D]; returns its
 * balance term. And its backward from tr->dx (gradient of next) to tr->dx
 * (gradient of acts[l].x_in). */
double tr_layer_forward(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs, int count_loads,
                        float *next);
void tr_layer_backward(lm_trainer *tr, lm_pool *pool, int64_t l, int64_t nseq, int64_t denom_seqs);
/* mtp_loss.c: the MTP layer's forward, weighted loss and backward for the
 * micro-batch whose main forward just ran: the MTP tensors' gradients are
 * added to G; those of the shared head, model.norm and the embedding are
 * left for the pass's tr_head and tr_backward (mtp_pending). */
void tr_mtp_pass(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq, double denom,
                 int64_t denom_seqs);

/* Gathers head h of sequence b into contiguous Q [T, dn+dr] (roped),
 * K [T, dn+dr] ([k_nope | shared k_pe]) and V [T, dv] (tforward.c). */
void tr_attn_gather(const lm_trainer *tr, const tr_acts *A, int64_t b, int64_t h, float *Q, float *K, float *V);

/* backward.c: from tr->dx (gradient of x_fin) down to G.embed. */
void tr_backward(lm_trainer *tr, lm_pool *pool, const int32_t *ids, int64_t nseq, int64_t denom_seqs);

/* Row helpers (tforward.c), threaded over rows through the pool:
 * xn[n] = rmsnorm(x[n]) * w and r[n] = 1/rms; the backward recomputes
 * xn = x * r * w from the kept x and r. */
void tr_norm_rows(lm_pool *pool, float *xn, float *r, const float *x, const float *w, int64_t N, int64_t d, float eps);
void tr_renorm_rows(lm_pool *pool, float *xn, const float *r, const float *x, const float *w, int64_t N, int64_t d);
/* dx[n] (+)= RMSNorm backward of dy[n] (lm_tk_rmsnorm_bwd per row). */
void tr_norm_bwd_rows(lm_pool *pool, float *dx, const float *dy, const float *x, const float *w, const float *r,
                      int64_t N, int64_t d, int accumulate);
void tr_swiglu_rows(lm_pool *pool, float *a, const float *h1, const float *h3, int64_t N, int64_t I);
void tr_swiglu_bwd_rows(lm_pool *pool, float *dh1, float *dh3, const float *da, const float *h1, const float *h3,
                        int64_t N, int64_t I);
/* Sequence-wise balance: f_i of each expert for sequence b (tforward.c). */
void tr_balance_f(const lm_trainer *tr, const tr_acts *A, int64_t b, double *f);

#endif
