/* test_sample.c — the sampling filters against a plain reference written
 * here from their definitions (sort by logit, softmax in double, cut), and
 * determinism of draws under a seed. */
#include "core/rng.h"
#include "infer/sample.h"
#include "test.h"

/* Reference: returns the kept ids in order and their renormalised probs. */
static int64_t ref_distribution(const float *logits, int64_t V, const lm_sampling *c, int32_t *ids, double *p) {
    for (int64_t i = 0; i < V; i++) ids[i] = (int32_t)i;
    /* insertion sort: descending logit, ties to the smaller id */
    for (int64_t i = 1; i < V; i++) {
        int32_t x = ids[i];
        int64_t j = i - 1;
        while (j >= 0 && (logits[ids[j]] < logits[x] || (logits[ids[j]] == logits[x] && ids[j] > x))) {
            ids[j + 1] = ids[j];
            j--;
        }
        ids[j + 1] = x;
    }
    int64_t n = c->top_k > 0 && c->top_k < V ? c->top_k : V;
    double z = 0;
    for (int64_t i = 0; i < n; i++) z += p[i] = exp((logits[ids[i]] - (double)logits[ids[0]]) / c->temperature);
    for (int64_t i = 0; i < n; i++) p[i] /= z;
    if (c->top_p < 1) {
        double cum = 0;
        int64_t k = 0;
        while (k < n && cum < c->top_p) cum += p[k++];
        n = k;
    }
    if (c->min_p > 0) {
        int64_t k = 0;
        while (k < n && p[k] >= c->min_p * p[0]) k++;
        n = k;
    }
    z = 0;
    for (int64_t i = 0; i < n; i++) z += p[i];
    for (int64_t i = 0; i < n; i++) p[i] /= z;
    return n;
}

TEST(filters_match_reference) {
    enum { V = 50 };
    float logits[V];
    int32_t ids[V], rids[V];
    double p[V], rp[V];
    lm_sampler *s = lm_sampler_create(V);
    const lm_sampling cases[] = {
        {1.0f, 0, 1.0f, 0.0f, 1},  {0.7f, 0, 0.95f, 0.0f, 1}, {1.3f, 5, 1.0f, 0.0f, 1}, {1.0f, 10, 0.5f, 0.0f, 1},
        {0.8f, 0, 1.0f, 0.1f, 1},  {1.0f, 7, 0.9f, 0.05f, 1}, {2.0f, 1, 1.0f, 0.0f, 1}, {1.0f, 0, 0.0001f, 0.0f, 1},
    };
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++)
            logits[i] = (float)(4 * lm_rng_uniform(7, 9, (uint64_t)(trial * V + i)) - 2);
        if (trial % 4 == 0) logits[3] = logits[17] = logits[30]; /* ties */
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int64_t n = lm_sample_distribution(s, logits, &cases[c], ids, p);
            int64_t rn = ref_distribution(logits, V, &cases[c], rids, rp);
            CHECKF(n == rn, "trial %d case %zu: kept %lld, reference %lld", trial, c, (long long)n, (long long)rn);
            for (int64_t i = 0; i < n && i < rn; i++) {
                CHECK(ids[i] == rids[i]);
                CHECK_NEAR(p[i], rp[i], 1e-12, 1e-9);
            }
        }
    }
    lm_sampler_free(s);
}

TEST(greedy_and_seeded_draws) {
    enum { V = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)lm_rng_uniform(3, 9, (uint64_t)i);
    logits[500] = logits[700] = 5.0f;
    lm_sampler *s = lm_sampler_create(V);
    lm_sampling g = lm_sampling_default();
    CHECK(lm_sample(s, logits, &g, 0) == 500); /* tie to the smaller id */
    lm_sampling t = {1.0f, 0, 0.9f, 0.0f, 42};
    int32_t a[64], b[64];
    for (int i = 0; i < 64; i++) a[i] = lm_sample(s, logits, &t, (uint64_t)i);
    for (int i = 0; i < 64; i++) b[i] = lm_sample(s, logits, &t, (uint64_t)i);
    CHECK(!memcmp(a, b, sizeof a));
    t.seed = 43;
    int same = 0;
    for (int i = 0; i < 64; i++) same += lm_sample(s, logits, &t, (uint64_t)i) == a[i];
    CHECK(same < 64);
    lm_sampler_free(s);
}

/* The draw frequencies follow the filtered distribution (chi-square-like
 * bound on a 4-token distribution over 20000 draws). */
TEST(draw_frequencies) {
    float logits[4] = {1.0f, 0.5f, 0.0f, -3.0f};
    lm_sampler *s = lm_sampler_create(4);
    lm_sampling c = {1.0f, 0, 1.0f, 0.0f, 5};
    int32_t ids[4];
    double p[4];
    int64_t n = lm_sample_distribution(s, logits, &c, ids, p);
    CHECK(n == 4);
    int count[4] = {0};
    const int N = 20000;
    for (int i = 0; i < N; i++) count[lm_sample(s, logits, &c, (uint64_t)i)]++;
    for (int i = 0; i < 4; i++) {
        double expect = 0;
        for (int j = 0; j < 4; j++)
            if (ids[j] == i) expect = p[j] * N;
        CHECKF(fabs(count[i] - expect) < 5 * sqrt(expect + 1), "token %d drawn %d times, expected %.0f", i, count[i], expect);
    }
    lm_sampler_free(s);
}

/* A vocabulary large enough for the radix sort, full of ties (logits on a
 * grid, -0 beside +0): the same ids and the same probability bits as the
 * reference order, with and without top-k. */
TEST(large_vocabulary_with_ties) {
    enum { V = 3000 };
    static float logits[V];
    static int32_t ids[V], rids[V];
    static double p[V], rp[V];
    for (int64_t i = 0; i < V; i++) {
        logits[i] = (float)(lm_rng_u64(5, LM_RNG_SAMPLING, (uint64_t)i) % 41) * 0.25f - 5.0f;
        if (logits[i] == 0 && i % 2) logits[i] = -0.0f;
    }
    lm_sampler *s = lm_sampler_create(V);
    const lm_sampling cases[] = {{1.0f, 0, 1.0f, 0.0f, 1}, {0.7f, 0, 0.9f, 0.0f, 1}, {1.0f, 2000, 1.0f, 0.0f, 1},
                                 {1.0f, 100, 0.95f, 0.01f, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t n = lm_sample_distribution(s, logits, &cases[c], ids, p);
        int64_t rn = ref_distribution(logits, V, &cases[c], rids, rp);
        CHECKF(n == rn && !memcmp(ids, rids, (size_t)n * sizeof *ids), "case %zu: %lld vs %lld ids", c, (long long)n,
               (long long)rn);
        int same = n == rn;
        for (int64_t i = 0; same && i < n; i++) same = fabs(p[i] - rp[i]) <= 1e-12;
        CHECKF(same, "case %zu: probabilities differ", c);
    }
    lm_sampler_free(s);
}

int main(void) {
    RUN(filters_match_reference);
    RUN(greedy_and_seeded_draws);
    RUN(draw_frequencies);
    RUN(large_vocabulary_with_ties);
    return test_report("test_sample");
}
