/* route.c — DeepSeekMoE expert choice for one token; see route.h. The
 * inference forward and the training forward both call this one function,
 * so the two can never route differently. */
#include "model/route.h"

#include <math.h>
#include <string.h>

#include "core/kernels.h"
#include "core/mathfn.h"

void lm_route_token(const lm_config *c, const float *bias, float *scores, int32_t *idx, float *w) {
    int64_t E = c->n_routed_experts, k = c->num_experts_per_tok;
    if (c->scoring_func == LM_SCORING_SOFTMAX)
        lm_softmax(scores, E);
    else
        for (int64_t e = 0; e < E; e++) scores[e] = lm_sigmoidf(scores[e]);
    float sel[E];
    for (int64_t e = 0; e < E; e++) sel[e] = scores[e] + (bias && c->topk_method == LM_TOPK_NOAUX_TC ? bias[e] : 0.0f);
    if (c->topk_method != LM_TOPK_GREEDY && c->n_group > 1) {
        int64_t G = c->n_group, per = E / G;
        float gscore[G];
        for (int64_t g = 0; g < G; g++) {
            const float *v = sel + g * per;
            if (c->topk_method == LM_TOPK_NOAUX_TC) {
                int top[2];
                int n2 = per < 2 ? (int)per : 2;
                lm_topk(v, per, n2, top);
                gscore[g] = 0;
                for (int i = 0; i < n2; i++) gscore[g] += v[top[i]];
            } else {
                float mx = v[0];
                for (int64_t i = 1; i < per; i++) mx = v[i] > mx ? v[i] : mx;
                gscore[g] = mx;
            }
        }
        int keep[G];
        lm_topk(gscore, G, (int)c->topk_group, keep);
        char kept[G];
        memset(kept, 0, (size_t)G);
        for (int64_t i = 0; i < c->topk_group; i++) kept[keep[i]] = 1;
        for (int64_t e = 0; e < E; e++)
            if (!kept[e / per]) sel[e] = -INFINITY; /* conv. 22 */
    }
    int top[k];
    lm_topk(sel, E, (int)k, top);
    double sum = 0;
    for (int64_t i = 0; i < k; i++) {
        idx[i] = top[i];
        w[i] = scores[top[i]]; /* unbiased (conv. 20) */
        sum += w[i];
    }
    if (c->norm_topk_prob && k > 1)
        for (int64_t i = 0; i < k; i++) w[i] = (float)(w[i] / (sum + 1e-20));
    for (int64_t i = 0; i < k; i++) w[i] *= (float)c->routed_scaling_factor; /* conv. 24 */
}
