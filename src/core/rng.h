/* rng.h — counter-based random numbers: every draw is a pure function of
 * (seed, stream, counter), so results never depend on call order, thread
 * count or how a run was split and resumed.
 *
 *   double u = lm_rng_uniform(seed, LM_RNG_SAMPLING, step);   // [0, 1)
 *
 * The mixer is SplitMix64's finaliser applied to a Weyl-sequence combination
 * of the three keys; streams separate unrelated uses of one seed. */
#ifndef LEMMA_CORE_RNG_H
#define LEMMA_CORE_RNG_H

#include <stdint.h>

enum lm_rng_stream {
    LM_RNG_SAMPLING = 1,
    LM_RNG_INIT = 2,
    LM_RNG_DATA = 3,
    LM_RNG_BENCH = 4,
    LM_RNG_TASKS = 5, /* theorem domains (src/tasks): problems, corruptions, per-problem seeds */
    LM_RNG_RL = 6,    /* post-training stages: prompts and sampling seeds per (seed, step) */
};

static inline uint64_t lm_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t lm_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint64_t k = lm_mix64(seed + 0x9e3779b97f4a7c15ull * (stream + 1));
    return lm_mix64(k + 0x9e3779b97f4a7c15ull * (counter + 1));
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double lm_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    return (double)(lm_rng_u64(seed, stream, counter) >> 11) * 0x1.0p-53;
}

#endif
