/* sample.c — temperature / top-k / top-p / min-p sampling; see sample.h. */
#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mathfn.h"
#include "core/rng.h"

struct lm_sampler {
    int64_t vocab;
    int32_t *order;          /* candidate ids */
    double *prob;            /* their probabilities */
    uint32_t *key, *key_tmp; /* radix sort: sort keys, and a second buffer for them */
    int32_t *order_tmp;      /* and for the ids */
};

lm_sampling lm_sampling_default(void) {
    lm_sampling s = {0.0f, 0, 1.0f, 0.0f, 0};
    return s;
}

lm_sampler *lm_sampler_create(int64_t vocab) {
    lm_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->vocab = vocab;
    s->order = malloc((size_t)vocab * sizeof *s->order);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    s->key = malloc((size_t)vocab * sizeof *s->key);
    s->key_tmp = malloc((size_t)vocab * sizeof *s->key_tmp);
    s->order_tmp = malloc((size_t)vocab * sizeof *s->order_tmp);
    if (!s->order || !s->prob || !s->key || !s->key_tmp || !s->order_tmp) {
        lm_sampler_free(s);
        return NULL;
    }
    return s;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    free(s->order);
    free(s->prob);
    free(s->key);
    free(s->key_tmp);
    free(s->order_tmp);
    free(s);
}

/* Descending logit, ties to the smaller id; NaN last. */
static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *logits = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float x = logits[i], y = logits[j];
    int xn = x != x, yn = y != y;
    if (xn != yn) return xn - yn;
    if (x > y) return -1;
    if (x < y) return 1;
    return (i > j) - (i < j);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best] || (x[best] != x[best] && x[i] == x[i])) best = i;
    return (int32_t)best;
}

/* Moves the m largest (by cmp_desc) to the front, sorted: a partial
 * selection with a bounded heap would do, but quickselect + sort is simple
 * and O(V + m log m). */
static void select_top(int32_t *ids, int64_t n, int64_t m, const float *logits) {
    void *ctx = (void *)logits;
    int64_t lo = 0, hi = n - 1, want = m - 1;
    while (lo < hi) {
        int32_t pivot = ids[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&ids[i], &pivot, ctx) < 0) i++;
            while (cmp_desc(&ids[j], &pivot, ctx) > 0) j--;
            if (i <= j) {
                int32_t t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    qsort_r(ids, (size_t)m, sizeof *ids, cmp_desc, ctx);
}

/* The key whose ascending order is cmp_desc's order: larger logits first,
 * -0 equal to +0, NaN last (a stable sort then puts ties in id order). */
static uint32_t desc_key(float x) {
    if (x != x) return UINT32_MAX;
    if (x == 0) x = 0; /* -0 and +0 tie, as in cmp_desc */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending in x */
    return ~u;                                     /* descending; never UINT32_MAX for a number */
}

/* All n ids (0..n-1) into cmp_desc order: an LSD radix sort on the keys,
 * stable, so ties keep the ascending ids; O(n) where a comparison sort of a
 * 129k vocabulary costs ~15 ms a token. The order is exactly cmp_desc's, so
 * the softmax below adds its terms in the same order as before. */
static void sort_all(lm_sampler *s, const float *logits, int32_t *ids, int64_t n) {
    uint32_t *key = s->key, *key2 = s->key_tmp;
    int32_t *ord = ids, *ord2 = s->order_tmp;
    for (int64_t i = 0; i < n; i++) {
        key[i] = desc_key(logits[i]);
        ord[i] = (int32_t)i;
    }
    for (int shift = 0; shift < 32; shift += 11) {
        int64_t count[2048 + 1] = {0};
        for (int64_t i = 0; i < n; i++) count[((key[i] >> shift) & 2047) + 1]++;
        if (count[((key[0] >> shift) & 2047) + 1] == n) continue; /* one digit value: nothing moves */
        for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
        for (int64_t i = 0; i < n; i++) {
            int64_t at = count[(key[i] >> shift) & 2047]++;
            key2[at] = key[i];
            ord2[at] = ord[i];
        }
        uint32_t *tk = key;
        key = key2;
        key2 = tk;
        int32_t *to = ord;
        ord = ord2;
        ord2 = to;
    }
    if (ord != ids) memcpy(ids, ord, (size_t)n * sizeof *ids);
}

int64_t lm_sample_distribution(lm_sampler *s, const float *logits, const lm_sampling *cfg, int32_t *ids,
                               double *probs) {
    int64_t V = s->vocab;
    if (cfg->temperature <= 0) {
        ids[0] = argmax(logits, V);
        probs[0] = 1.0;
        return 1;
    }
    int64_t n = V;
    if (cfg->top_k > 0 && cfg->top_k < V) n = cfg->top_k;
    if (n > 1024 || n * 16 > V) {
        sort_all(s, logits, ids, V);
    } else {
        for (int64_t i = 0; i < V; i++) ids[i] = (int32_t)i;
        select_top(ids, V, n, logits);
    }
    /* Softmax (in double) over the top-k kept: top-p then works on the
     * renormalised top-k distribution (HF warper order). NaN logits sort
     * last and get probability 0. */
    double inv_t = 1.0 / cfg->temperature, mx = logits[ids[0]];
    double zk = 0;
    for (int64_t i = 0; i < n; i++) {
        float li = logits[ids[i]];
        probs[i] = li == li ? lm_exp(((double)li - mx) * inv_t) : 0.0;
        zk += probs[i];
    }
    for (int64_t i = 0; i < n; i++) probs[i] /= zk;
    if (cfg->top_p < 1.0f) {
        double cum = 0;
        int64_t keep = 0;
        while (keep < n) {
            cum += probs[keep++];
            if (cum >= cfg->top_p) break;
        }
        n = keep;
    }
    if (cfg->min_p > 0.0f) {
        double cut = cfg->min_p * probs[0];
        int64_t keep = 1;
        while (keep < n && probs[keep] >= cut) keep++;
        n = keep;
    }
    double zz = 0;
    for (int64_t i = 0; i < n; i++) zz += probs[i];
    for (int64_t i = 0; i < n; i++) probs[i] /= zz;
    return n;
}

int32_t lm_sample(lm_sampler *s, const float *logits, const lm_sampling *cfg, uint64_t step) {
    if (cfg->temperature <= 0) return argmax(logits, s->vocab);
    int64_t n = lm_sample_distribution(s, logits, cfg, s->order, s->prob);
    double u = lm_rng_uniform(cfg->seed, LM_RNG_SAMPLING, step), cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += s->prob[i];
        if (u < cum) return s->order[i];
    }
    return s->order[n - 1];
}
