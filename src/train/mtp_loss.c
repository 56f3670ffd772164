/* mtp_loss.c — the multi-token-prediction loss of DeepSeek-V3 (section 2.2)
 * with one MTP layer, as model/mtp.h runs it at inference:
 *
 *   x_t   = eh_proj [enorm(embed(t_{t+1})) ; hnorm(model.norm(h_t))]
 *   y     = MTP decoder layer (acts[L]) over the rows of each sequence
 *   L_mtp = lambda / denom * sum_t CE(head(shared_head.norm(y_t)), t_{t+2})
 *
 * The embedding and head are the main ones (params.h): their gradients, and
 * that of model.norm, join the main pass's before its one add per element
 * (tr_head, tr_backward; step.h's accumulation contract, which keeps
 * data-parallel runs bit-identical to one process). Positions whose token t+1 is past the end of
 * the sequence run with their own token as a placeholder and no target:
 * attention is causal, so they change no other row (only the MoE balance
 * term, which counts them like every row of the layer). Everything runs in a fixed order
 * (the kernels' and the rows' own), so the gradients do not depend on the
 * thread count. */
#include <string.h>

#include "train/tkernels.h"
#include "train/trainer.h"

void tr_mtp_pass(lm_trainer *tr, lm_pool *pool, const int32_t *ids, const int32_t *targets, int64_t nseq, double denom,
                 int64_t denom_seqs) {
    lm_params *p = tr->p;
    const lm_config *c = &p->cfg;
    int64_t T = tr->T, N = nseq * T, D = c->hidden_size, L = c->num_hidden_layers;
    float eps = (float)c->rms_norm_eps;
    const float *embed = lm_mat_data(&p->W.embed);
    for (int64_t n = 0; n < N; n++) {
        int last = n % T == T - 1;
        tr->mids[n] = last ? ids[n] : ids[n + 1];
        tr->mtgt[n] = last ? -1 : targets[n + 1];
    }
    /* eh_proj input: the normalised embedding rows, then the normalised main
     * output (model.norm, then hnorm), side by side in mcat. */
    float *e = tr->tmp, *en = tr->xn, *hh = tr->dxn;
    for (int64_t n = 0; n < N; n++) memcpy(e + n * D, embed + (int64_t)tr->mids[n] * D, (size_t)D * sizeof(float));
    tr_norm_rows(pool, en, tr->r_e, e, p->WM.enorm, N, D, eps);
    tr_norm_rows(pool, tr->hn, tr->r_fin, tr->x_fin, p->W.final_norm, N, D, eps);
    tr_norm_rows(pool, hh, tr->r_h, tr->hn, p->WM.hnorm, N, D, eps);
    for (int64_t n = 0; n < N; n++) {
        memcpy(tr->mcat + n * 2 * D, en + n * D, (size_t)D * sizeof(float));
        memcpy(tr->mcat + n * 2 * D + D, hh + n * D, (size_t)D * sizeof(float));
    }
    lm_matmul(pool, tr->acts[L].x_in, tr->mcat, N, &p->WM.eh_proj);
    tr->bal_sum += tr_layer_forward(tr, pool, L, nseq, denom_seqs, 1, tr->x_mfin);
    /* Head and loss: tr->dx becomes the gradient of x_mfin (scaled by lambda). */
    int64_t cnt = 0;
    tr_head_rows(tr, pool, tr->x_mfin, tr->r_mfin, p->WM.head_norm, p->GM.head_norm, tr->mtgt, nseq,
                 denom / tr->o.mtp_weight, 1, NULL, NULL, &tr->mtp_loss_sum, &cnt, 0, 0, NULL);
    tr_layer_backward(tr, pool, L, nseq, denom_seqs);
    /* eh_proj */
    lm_tk_linear_dw(pool, lm_mat_data(&p->GM.eh_proj), tr->dx, tr->mcat, N, D, 2 * D, tr->ws, 0); /* f32: bf16 refuses MTP */
    lm_tk_linear_dx(pool, tr->dcat, tr->dx, N, lm_mat_data(&p->WM.eh_proj), D, 2 * D, 0, tr->ws, 0);
    float *de = tr->xn, *dh = tr->dxn; /* the two halves of dcat, then their norms' input gradients */
    for (int64_t n = 0; n < N; n++) {
        memcpy(de + n * D, tr->dcat + n * 2 * D, (size_t)D * sizeof(float));
        memcpy(dh + n * D, tr->dcat + n * 2 * D + D, (size_t)D * sizeof(float));
    }
    /* hnorm: the gradient of hn, model.norm's output (its backward runs
     * once, with the main head's, in tr_head) */
    lm_tk_rmsnorm_dw(pool, p->GM.hnorm, dh, tr->hn, tr->r_h, N, D);
    tr_norm_bwd_rows(pool, tr->dfin, dh, tr->hn, p->WM.hnorm, tr->r_h, N, D, 0);
    /* enorm (its input rows gathered again: the layer used tmp): the
     * gradient of the embedding rows mids[n], into dcat's first N*D floats
     * for tr_backward */
    for (int64_t n = 0; n < N; n++) memcpy(e + n * D, embed + (int64_t)tr->mids[n] * D, (size_t)D * sizeof(float));
    lm_tk_rmsnorm_dw(pool, p->GM.enorm, de, e, tr->r_e, N, D);
    tr_norm_bwd_rows(pool, tr->dcat, de, e, p->WM.enorm, tr->r_e, N, D, 0);
    tr->mtp_pending = 1;
}
