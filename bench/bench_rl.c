/* bench_rl.c — throughput of one GRPO step as the post-training stages run
 * it (src/recipe/stage_grpo.c without the verifier): P problems of the
 * synthetic domains, G proofs each sampled through the batched engine on
 * the trainer's weights, rewards from the exact checker, logp_old and the
 * reference's logp (trainer forwards), then lm_rl_step (forward, backward,
 * AdamW) on the P*G rows padded to seq.
 *
 *   build/release/bench/bench_rl MODEL_DIR [--threads N] [--steps S]
 *       [--prompts P] [--group G] [--max-tokens M] [--seq T] [--seed S]
 *
 * MODEL_DIR is a trained prover (build/default/prover: what the stages
 * start from; a random model would never stop at EOS). Step s draws its
 * problems and seeds from (seed, s), so a run is reproducible. Prints one
 * JSON line: samples/s and completion tokens/s of whole steps, the share of
 * a step spent sampling, and the training part alone (lm_rl_step:
 * rows*seq / its time, the figure bench/torch_train.py gives for a step of
 * the same shape). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "prove/template.h"
#include "prove/templates.h"
#include "recipe/rl_common.h"
#include "tasks/tasks.h"
#include "tokenizer/tokenizer.h"
#include "train/params.h"
#include "train/rl.h"
#include "train/step.h"

static int fail(const char *what, const lm_error *err) {
    fprintf(stderr, "bench_rl: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int threads = 1;
    int64_t steps = 2, P = 8, G = 4, max_tokens = 256, T = 512;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--steps") && v) steps = atoll(v), i++;
        else if (!strcmp(a, "--prompts") && v) P = atoll(v), i++;
        else if (!strcmp(a, "--group") && v) G = atoll(v), i++;
        else if (!strcmp(a, "--max-tokens") && v) max_tokens = atoll(v), i++;
        else if (!strcmp(a, "--seq") && v) T = atoll(v), i++;
        else if (!strcmp(a, "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (a[0] != '-' && !dir) dir = a;
        else {
            fprintf(stderr, "usage: bench_rl MODEL_DIR [--threads N] [--steps S] [--prompts P] [--group G] "
                            "[--max-tokens M] [--seq T] [--seed S]\n");
            return 2;
        }
    }
    if (!dir || threads < 1 || steps < 1 || P < 1 || G < 1 || max_tokens < 1 || T <= max_tokens) {
        fprintf(stderr, "bench_rl: give MODEL_DIR and positive sizes with max_tokens < seq\n");
        return 2;
    }
    lm_error err;
    lm_model *m = NULL;
    lm_params *p = NULL;
    if (lm_model_load_flags(dir, LM_LOAD_ROWS, &m, &err)) return fail(dir, &err);
    if (lm_params_create(&m->cfg, &p, &err) || lm_params_load_model(p, m, &err)) return fail("params", &err);
    lm_model_free(m);
    lm_tokenizer *tok = lm_tokenizer_load(dir, &err);
    if (!tok) return fail("tokenizer", &err);
    lm_prompt_templates tp;
    if (lm_templates_builtin(&tp, &err)) return fail("templates", &err);
    const lm_task_domain *ds[64];
    int nd = 0;
    for (int i = 0; i < lm_task_count(); i++) ds[nd++] = lm_task_domain_at(i);
    int64_t n = P * G;
    lm_train_opts to = lm_train_opts_default();
    to.batch = to.micro_batch = n;
    to.seq = T;
    to.adamw.weight_decay = 0;
    to.bias_gamma = 0;
    lm_pool *pool = lm_pool_create(threads);
    lm_trainer *tr = lm_trainer_create(p, &to, threads, &err);
    if (!pool || !tr) return fail("trainer", &err);
    lm_rl_opts ro = lm_rl_opts_default();
    lm_qset none = {0};
    double sample_s = 0, logp_s = 0, step_s = 0;
    int64_t completion_tokens = 0, passed = 0;
    int32_t *ids_buf = malloc((size_t)(n * T) * sizeof *ids_buf), *tgt_buf = malloc((size_t)(n * T) * sizeof *tgt_buf);
    float *lp_buf = malloc((size_t)(n * T) * sizeof *lp_buf);
    for (int64_t step = 0; step < steps; step++) {
        lm_text *qs = calloc((size_t)P, sizeof *qs), answer = {0}, user = {0}, chat = {0};
        lm_ids *pids = calloc((size_t)P, sizeof *pids);
        int64_t *gs = malloc((size_t)P * sizeof *gs);
        uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
        lm_rls_sample *sm = calloc((size_t)n, sizeof *sm);
        lm_rl_sample *rs = calloc((size_t)n, sizeof *rs);
        float **lold = calloc((size_t)n, sizeof *lold), **lref = calloc((size_t)n, sizeof *lref);
        for (int64_t j = 0; j < P; j++) {
            uint64_t pseed;
            const char *k[] = {"question"}, *v[1];
            if (lm_rls_draw_problem(seed, step, j, P, ds, nd, 1, 1, &none, &qs[j], &answer, &pseed, &err))
                return fail("problem", &err);
            v[0] = qs[j].data;
            user.len = 0;
            if (lm_template_fill(tp.text[LM_TPL_GEN], k, v, 1, &user, &err) ||
                lm_rls_chat_prompt(user.data, &chat, &err) ||
                lm_tokenizer_encode(tok, chat.data, chat.len, LM_TOK_SPECIAL, &pids[j], &err))
                return fail("prompt", &err);
            gs[j] = G;
        }
        for (int64_t i = 0; i < n; i++) seeds[i] = lm_rls_step_key(seed, step, LM_RLS_KEY_SAMPLE, (uint64_t)i);
        lm_rls_gen gen = {.max_tokens = max_tokens, .max_ctx = T, .temperature = 1.0, .top_p = 1.0};
        double t0 = lm_now_s();
        if (lm_rls_sample_groups(p, tok, pool, "bench", pids, P, gs, seeds, &gen, sm, &err)) return fail("sample", &err);
        double t1 = lm_now_s();
        for (int64_t i = 0; i < n; i++) {
            lm_check_result cr;
            if (lm_task_check(qs[i / G].data, sm[i].text.data ? sm[i].text.data : "", &cr, &err))
                return fail("check", &err);
            passed += cr.score == 1;
            int64_t pl = (int64_t)pids[i / G].n, len = pl + (int64_t)sm[i].completion.n;
            int32_t *ids = malloc((size_t)len * sizeof *ids);
            uint8_t *train = calloc((size_t)len, 1);
            lold[i] = calloc((size_t)len, sizeof(float));
            lref[i] = calloc((size_t)len, sizeof(float));
            memcpy(ids, pids[i / G].ids, (size_t)pl * sizeof *ids);
            memcpy(ids + pl, sm[i].completion.ids, sm[i].completion.n * sizeof *ids);
            memset(train + pl, 1, sm[i].completion.n);
            completion_tokens += (int64_t)sm[i].completion.n;
            rs[i] = (lm_rl_sample){.ids = ids, .len = len, .train = train, .logp_old = lold[i], .logp_ref = lref[i],
                                   .reward = cr.score, .group = i / G};
        }
        double t2 = lm_now_s();
        /* logp_old, and the reference's (the same weights here: the cost is one more forward) */
        if (lm_rls_logprobs(tr, pool, rs, n, n, T, lold, ids_buf, tgt_buf, lp_buf, &err) ||
            lm_rls_logprobs(tr, pool, rs, n, n, T, lref, ids_buf, tgt_buf, lp_buf, &err))
            return fail("logprobs", &err);
        double t3 = lm_now_s();
        lm_rl_stats st;
        if (lm_rl_step(tr, pool, &ro, rs, n, P, 1e-4, &st, &err)) return fail("rl step", &err);
        double t4 = lm_now_s();
        sample_s += t1 - t0;
        logp_s += t3 - t2;
        step_s += t4 - t3;
        for (int64_t i = 0; i < n; i++) {
            free((void *)rs[i].ids);
            free((void *)rs[i].train);
            free(lold[i]);
            free(lref[i]);
        }
        for (int64_t j = 0; j < P; j++) lm_text_free(&qs[j]), lm_ids_free(&pids[j]);
        lm_rls_sample_free(sm, n);
        lm_text_free(&answer);
        lm_text_free(&user);
        lm_text_free(&chat);
        free(qs), free(pids), free(gs), free(seeds), free(sm), free(rs), free(lold), free(lref);
    }
    double total = sample_s + logp_s + step_s;
    const char *name = strrchr(dir, '/');
    printf("{\"bench\": \"lemma_rl\", \"model\": \"%s\", \"threads\": %d, \"steps\": %lld, \"prompts\": %lld, "
           "\"group\": %lld, \"seq\": %lld, \"samples_per_s\": %.3f, \"completion_tokens_per_s\": %.1f, "
           "\"sample_share\": %.3f, \"logp_share\": %.3f, \"step_share\": %.3f, \"sample_tokens_per_s\": %.1f, "
           "\"train_step_s\": %.4f, \"train_tokens_per_s\": %.1f, \"mean_completion\": %.1f, \"pass\": %.3f}\n",
           name ? name + 1 : dir, threads, (long long)steps, (long long)P, (long long)G, (long long)T,
           (double)(n * steps) / total, (double)completion_tokens / total, sample_s / total, logp_s / total,
           step_s / total, (double)completion_tokens / sample_s, step_s / (double)steps,
           (double)(n * T * steps) / step_s, (double)completion_tokens / (double)(n * steps),
           (double)passed / (double)(n * steps));
    free(ids_buf);
    free(tgt_buf);
    free(lp_buf);
    lm_trainer_free(tr);
    lm_pool_free(pool);
    lm_params_free(p);
    lm_tokenizer_free(tok);
    lm_templates_free(&tp);
    return 0;
}
