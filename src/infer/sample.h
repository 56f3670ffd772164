/* sample.h — choosing the next token from logits.
 *
 * Order of the filters, as in Hugging Face's generate and llama.cpp's
 * default chain: temperature, then top-k, then top-p (nucleus, smallest set
 * whose probability reaches p, always at least one token), then min-p
 * (drop tokens whose probability is below min_p x the largest), renormalise,
 * draw with u = lm_rng_uniform(seed, LM_RNG_SAMPLING, step). temperature 0
 * is greedy (argmax, ties to the smaller id). Candidates are ordered by
 * logit, ties to the smaller id, so a draw is a pure function of
 * (logits, settings, seed, step). */
#ifndef LEMMA_INFER_SAMPLE_H
#define LEMMA_INFER_SAMPLE_H

#include <stdint.h>

typedef struct lm_sampling {
    float temperature;       /* 0 = greedy */
    int top_k;               /* 0 = off */
    float top_p;             /* 1 = off */
    float min_p;             /* 0 = off */
    uint64_t seed;
} lm_sampling;

lm_sampling lm_sampling_default(void); /* greedy */

typedef struct lm_sampler lm_sampler;
lm_sampler *lm_sampler_create(int64_t vocab);
void lm_sampler_free(lm_sampler *s);

/* Next token for logits[vocab] at draw number `step`. */
int32_t lm_sample(lm_sampler *s, const float *logits, const lm_sampling *cfg, uint64_t step);

/* The filtered, renormalised distribution the draw uses: writes up to vocab
 * (id, prob) pairs in candidate order and returns their count (tests). */
int64_t lm_sample_distribution(lm_sampler *s, const float *logits, const lm_sampling *cfg, int32_t *ids,
                               double *probs);

#endif
