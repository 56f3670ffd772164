/* route.h — the router of DeepSeekMoE for one token (conventions 19-24 of
 * docs/deepseek-conventions.md):
 *   scores = softmax (V2) or sigmoid (V3) of the gate logits;
 *   selection = scores + e_score_correction_bias (noaux_tc only);
 *   group limit: keep the topk_group best groups (noaux_tc: sum of the top-2
 *   selection scores of a group; group_limited_greedy: the max), others -inf;
 *   top-k of the selection (ties to the smaller expert id);
 *   weights = the unbiased scores of the chosen experts, divided by their sum
 *   when norm_topk_prob and k > 1, then times routed_scaling_factor. */
#ifndef LEMMA_MODEL_ROUTE_H
#define LEMMA_MODEL_ROUTE_H

#include <stdint.h>

#include "model/config.h"

/* scores[E] holds the gate logits on entry and the unbiased scores on
 * return; idx[k] and w[k] get the chosen experts (best first) and their
 * combine weights. bias may be NULL. */
void lm_route_token(const lm_config *c, const float *bias, float *scores, int32_t *idx, float *w);

#endif
