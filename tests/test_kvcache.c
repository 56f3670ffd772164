/* test_kvcache.c — the paged KV cache and the batched forward
 * (model/kvcache.h) on the golden checkpoints (tests/golden): every
 * sequence's logits in a batch are bit-identical to the same sequence run
 * alone through lm_infer_forward, whatever the batch holds, how its rows
 * are split into steps, which blocks it got, whether its prompt is shared
 * (copy on write), in both attention modes and at 1 and 2 threads. */
#include <dirent.h>
#include <stdint.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "model/kvcache.h"
#include "model/model.h"
#include "test.h"

enum { NSEQ = 6, MAXT = 40 };

static char dirs[32][300];
static int ndirs;

static void find_goldens(void) {
    DIR *d = opendir("tests/golden");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && ndirs < 32) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "tests/golden/%.250s/config.json", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        fclose(f);
        snprintf(dirs[ndirs++], sizeof dirs[0], "tests/golden/%.250s", e->d_name);
    }
    closedir(d);
    qsort(dirs, (size_t)ndirs, sizeof dirs[0], (int (*)(const void *, const void *))strcmp);
}

/* Deterministic token lists: sequences 4 and 5 share the first `shared`
 * tokens of sequence 0 (they are forked from it). */
static void make_ids(int32_t ids[NSEQ][MAXT], int64_t V, int64_t shared) {
    for (int j = 0; j < NSEQ; j++)
        for (int t = 0; t < MAXT; t++) ids[j][t] = (int32_t)((t * 7 + j * 13 + (t * t) % 5) % V);
    for (int j = 4; j < NSEQ; j++)
        for (int t = 0; t < shared; t++) ids[j][t] = ids[0][t];
}

static uint64_t next_u(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* One schedule on one model: returns the number of rows compared. */
static int64_t run_schedule(lm_model *m, lm_attn_mode mode, int nthreads, uint64_t seed, float *ref /* [NSEQ][MAXT][V] */,
                            int32_t ids[NSEQ][MAXT], int64_t shared) {
    lm_error err;
    int64_t V = m->cfg.vocab_size;
    lm_pool *pool = lm_pool_create(nthreads);
    lm_kvcache *kc = lm_kvcache_create(m, mode, 3, NSEQ * (MAXT / 3 + 2), &err);
    lm_fwd *f = lm_fwd_create(m, mode, 24, MAXT, nthreads, &err);
    float *logits = malloc((size_t)(24 * V) * sizeof(float));
    CHECKF(kc && f, "%s", err.msg);
    lm_kvseq seq[NSEQ];
    memset(seq, 0, sizeof seq);
    int64_t compared = 0;
    /* Sequences 1 and 3 first take a few blocks, so that 0's blocks are not
     * consecutive and the forward must gather them. */
    lm_batch_seg pre[2] = {{&seq[1], ids[1], 4}, {&seq[3], ids[3], 2}};
    CHECKF(lm_batch_forward(f, pool, kc, pre, 2, logits, LM_LOGITS_LAST, &err) == 0, "%s", err.msg);
    CHECK(!memcmp(logits, ref + ((size_t)1 * MAXT + 3) * V, (size_t)V * sizeof(float)));
    CHECK(!memcmp(logits + V, ref + ((size_t)3 * MAXT + 1) * V, (size_t)V * sizeof(float)));
    int forked = 0;
    uint64_t st = seed;
    for (int step = 0; step < 200; step++) {
        lm_batch_seg segs[NSEQ];
        int nseg = 0;
        int64_t rows = 0;
        for (int j = 0; j < NSEQ; j++) {
            if (j >= 4 && !forked) continue;
            if (j == 0 && !forked && seq[0].pos + 1 > shared) continue; /* stops at the fork point */
            int64_t left = MAXT - seq[j].pos;
            if (j == 0 && !forked) left = shared - seq[0].pos;
            if (left <= 0 || next_u(&st) % 3 == 0) continue;
            int64_t n = 1 + (int64_t)(next_u(&st) % 5);
            if (n > left) n = left;
            if (rows + n > 24) break;
            segs[nseg++] = (lm_batch_seg){&seq[j], ids[j] + seq[j].pos, n};
            rows += n;
        }
        if (!nseg) {
            if (!forked && seq[0].pos == shared) {
                CHECK(lm_kvseq_fork(kc, &seq[4], &seq[0], &err) == 0);
                CHECK(lm_kvseq_fork(kc, &seq[5], &seq[0], &err) == 0);
                forked = 1;
                continue;
            }
            int done = 1;
            for (int j = 0; j < NSEQ; j++) done &= seq[j].pos == MAXT;
            if (done) break;
            continue;
        }
        lm_logits_mode lm = next_u(&st) % 4 == 0 ? LM_LOGITS_ALL : LM_LOGITS_LAST;
        CHECKF(lm_batch_forward(f, pool, kc, segs, nseg, logits, lm, &err) == 0, "%s", err.msg);
        int64_t r = 0;
        for (int g = 0; g < nseg; g++) {
            int j = (int)(segs[g].seq - seq);
            int64_t end = segs[g].seq->pos; /* after the step */
            for (int64_t p = lm == LM_LOGITS_ALL ? end - segs[g].n : end - 1; p < end; p++, r++) {
                int same = !memcmp(logits + r * V, ref + ((size_t)j * MAXT + p) * V, (size_t)V * sizeof(float));
                CHECKF(same, "%s mode %d threads %d: sequence %d position %lld differs from its lone forward", m->dir,
                       mode, nthreads, j, (long long)p);
                compared++;
            }
        }
    }
    for (int j = 0; j < NSEQ; j++) CHECKF(seq[j].pos == MAXT, "sequence %d stopped at %lld", j, (long long)seq[j].pos);
    for (int j = 0; j < NSEQ; j++) lm_kvseq_release(kc, &seq[j]);
    CHECK(lm_kvcache_blocks_used(kc) == 0);
    free(logits);
    lm_fwd_free(f);
    lm_kvcache_free(kc);
    lm_pool_free(pool);
    return compared;
}

TEST(batched_rows_equal_lone_forward) {
    if (!ndirs) find_goldens();
    CHECK(ndirs > 0);
    for (int i = 0; i < ndirs; i++) {
        lm_error err;
        lm_model *m;
        if (lm_model_load(dirs[i], &m, &err)) {
            CHECKF(0, "%s", err.msg);
            continue;
        }
        int64_t V = m->cfg.vocab_size, shared = 7; /* not a multiple of the block size 3: copy on write */
        int32_t ids[NSEQ][MAXT];
        make_ids(ids, V, shared);
        float *ref = malloc((size_t)(NSEQ * MAXT * V) * sizeof(float));
        for (int mode = 0; mode < 2; mode++) {
            /* The reference: each sequence alone, one chunk, one thread. */
            for (int j = 0; j < NSEQ; j++) {
                lm_infer *s = lm_infer_create(m, (lm_attn_mode)mode, MAXT, MAXT, 1, &err);
                CHECKF(s && lm_infer_forward(s, NULL, ids[j], MAXT, ref + (size_t)j * MAXT * V, LM_LOGITS_ALL, &err) == 0,
                       "%s", err.msg);
                lm_infer_free(s);
            }
            for (int nt = 1; nt <= 2; nt++)
                for (uint64_t seed = 1; seed <= 3; seed++) {
                    int64_t n = run_schedule(m, (lm_attn_mode)mode, nt, seed * 977 + (uint64_t)i, ref, ids, shared);
                    CHECKF(n >= NSEQ * 8, "%s: only %lld rows compared", dirs[i], (long long)n);
                }
        }
        free(ref);
        lm_model_free(m);
    }
}

TEST(cache_blocks_follow_tokens) {
    if (!ndirs) find_goldens();
    CHECK(ndirs > 0);
    lm_error err;
    lm_model *m;
    CHECKF(lm_model_load(dirs[0], &m, &err) == 0, "%s", err.msg);
    lm_kvcache *kc = lm_kvcache_create(m, LM_ATTN_LATENT, 4, 5, &err);
    lm_fwd *f = lm_fwd_create(m, LM_ATTN_LATENT, 16, 32, 1, &err);
    float *logits = malloc((size_t)(16 * m->cfg.vocab_size) * sizeof(float));
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = i % 7 + 1;
    lm_kvseq a = {0}, b = {0}, c = {0};
    lm_batch_seg sa = {&a, ids, 6};
    CHECK(lm_batch_forward(f, NULL, kc, &sa, 1, logits, LM_LOGITS_LAST, &err) == 0);
    CHECK(lm_kvcache_blocks_used(kc) == 2 && a.pos == 6);
    /* a fork shares both blocks; its first append copies the shared half-full one */
    CHECK(lm_kvseq_fork(kc, &b, &a, &err) == 0 && b.pos == 6);
    CHECK(lm_kvcache_blocks_used(kc) == 2);
    CHECK(lm_kvseq_blocks_needed(kc, &b, 1) == 1 && lm_kvseq_blocks_needed(kc, &b, 3) == 2);
    lm_batch_seg sb = {&b, ids + 6, 1};
    CHECK(lm_batch_forward(f, NULL, kc, &sb, 1, logits, LM_LOGITS_LAST, &err) == 0);
    CHECK(lm_kvcache_blocks_used(kc) == 3 && b.block[0] == a.block[0] && b.block[1] != a.block[1]);
    /* a full cache refuses the whole batch and changes nothing */
    lm_batch_seg two[2] = {{&a, ids + 6, 4}, {&c, ids, 9}};
    CHECK(lm_batch_forward(f, NULL, kc, two, 2, logits, LM_LOGITS_LAST, &err) == -1);
    CHECKF(strstr(err.msg, "KV cache full"), "%s", err.msg);
    CHECK(a.pos == 6 && c.pos == 0 && lm_kvcache_blocks_used(kc) == 3);
    /* bad batches */
    lm_batch_seg dup[2] = {{&a, ids, 1}, {&a, ids, 1}};
    CHECK(lm_batch_forward(f, NULL, kc, dup, 2, logits, LM_LOGITS_LAST, &err) == -1 && strstr(err.msg, "same sequence"));
    int32_t bad = (int32_t)m->cfg.vocab_size;
    lm_batch_seg sbad = {&a, &bad, 1};
    CHECK(lm_batch_forward(f, NULL, kc, &sbad, 1, logits, LM_LOGITS_LAST, &err) == -1 && strstr(err.msg, "out of range"));
    lm_batch_seg big = {&c, ids, 17};
    CHECK(lm_batch_forward(f, NULL, kc, &big, 1, logits, LM_LOGITS_LAST, &err) == -1 && strstr(err.msg, "rows"));
    lm_kvseq_truncate(kc, &a, 4);
    CHECK(a.pos == 4 && lm_kvcache_blocks_used(kc) == 2); /* a's second block was a's alone */
    lm_kvseq_release(kc, &a);
    lm_kvseq_release(kc, &b);
    lm_kvseq_release(kc, &c);
    CHECK(lm_kvcache_blocks_used(kc) == 0);
    free(logits);
    lm_fwd_free(f);
    lm_kvcache_free(kc);
    lm_model_free(m);
}

int main(void) {
    RUN(batched_rows_equal_lone_forward);
    RUN(cache_blocks_follow_tokens);
    return test_report("test_kvcache");
}
