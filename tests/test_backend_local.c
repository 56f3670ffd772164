/* test_backend_local.c — the local engine behind prove/backend.h, on a tiny
 * random DeepSeek-V3 model with a tokenizer trained here: answers are pure
 * functions of (prompt, sampling, seed) whatever else a call holds and in
 * whatever order; forked answers equal a fresh generator's; finish reasons,
 * token counts, reasoning split, prompts longer than the context, the stop
 * flag, a bad model directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "infer/generate.h"
#include "model/config.h"
#include "model/init.h"
#include "prove/backend.h"
#include "test.h"
#include "tokenizer/chat.h"
#include "tokenizer/train.h"

static char model_dir[256];

static const char CORPUS[] =
    "Prove that the sum of two even numbers is even.\n"
    "## Solution\nLet a = 2m and b = 2n. Then a + b = 2(m + n), which is even.\n"
    "## Self Evaluation\nThe proof is complete. \\boxed{1}\n"
    "Find all integers x with 3x + 4 = 19 and prove there are no others.\n"
    "## Solution\n3x = 15, so x = 5. Substituting: 3*5 + 4 = 19.\n";

static const char CONFIG[] =
    "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"model_type\": \"deepseek_v3\",\n"
    " \"vocab_size\": %d, \"hidden_size\": 48, \"intermediate_size\": 96, \"moe_intermediate_size\": 32,\n"
    " \"num_hidden_layers\": 2, \"first_k_dense_replace\": 1, \"num_attention_heads\": 4,\n"
    " \"n_routed_experts\": 4, \"n_shared_experts\": 1, \"num_experts_per_tok\": 2, \"n_group\": 2,\n"
    " \"topk_group\": 1, \"topk_method\": \"noaux_tc\", \"scoring_func\": \"sigmoid\", \"norm_topk_prob\": true,\n"
    " \"routed_scaling_factor\": 2.5, \"q_lora_rank\": 24, \"kv_lora_rank\": 16, \"qk_nope_head_dim\": 16,\n"
    " \"qk_rope_head_dim\": 8, \"v_head_dim\": 20, \"rope_theta\": 10000, \"rms_norm_eps\": 1e-6,\n"
    " \"max_position_embeddings\": 512, \"tie_word_embeddings\": false, \"bos_token_id\": 0, \"eos_token_id\": 1}\n";

/* Trains a tokenizer on CORPUS and writes a random model of its vocabulary
 * into a fresh temporary directory. */
static int make_model(void) {
    lm_error err;
    snprintf(model_dir, sizeof model_dir, "/tmp/lemma_backend_local_XXXXXX");
    if (!mkdtemp(model_dir)) return -1;
    lm_bpe_train_opts to;
    lm_bpe_train_defaults(&to);
    to.vocab_size = 320;
    lm_bpe_trainer *t = lm_bpe_trainer_new(&to, &err);
    lm_text js = {0}, tcfg = {0};
    int rc = -1;
    char path[512], cfg[sizeof CONFIG + 16];
    if (!t || lm_bpe_trainer_feed(t, CORPUS, sizeof CORPUS - 1, &err) || lm_bpe_trainer_finish(t, &js, &tcfg, &err))
        goto out;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (lm_write_file_atomic(path, js.data, js.len, &err)) goto out;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (lm_write_file_atomic(path, tcfg.data, tcfg.len, &err)) goto out;
    lm_tokenizer *tok = lm_tokenizer_load(model_dir, &err);
    if (!tok) goto out;
    int vocab = lm_tokenizer_vocab_size(tok);
    lm_tokenizer_free(tok);
    /* 64 embedding rows past the tokenizer's last id, as a trained vocabulary
     * that stopped short of vocab_size leaves them: never to be sampled */
    int len = snprintf(cfg, sizeof cfg, CONFIG, vocab + 64);
    lm_config c;
    if (lm_config_parse(cfg, (size_t)len, "config", &c, &err)) goto out;
    lm_init_opts io = lm_init_opts_default();
    io.seed = 3;
    io.std = 0.3; /* peaked enough that seeds and prompts matter */
    if (lm_model_init_random(&c, cfg, (size_t)len, model_dir, &io, NULL, &err)) goto out;
    rc = 0;
out:
    if (rc) printf("  make_model: %s\n", err.msg);
    lm_bpe_trainer_free(t);
    lm_text_free(&js);
    lm_text_free(&tcfg);
    return rc;
}

static void remove_model(void) {
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", model_dir, files[i]);
        unlink(path);
    }
    rmdir(model_dir);
}

/* ---- collecting replies ---- */

typedef struct got_reply {
    uint64_t key;
    int ok, attempts;
    char *content, *reasoning, *finish, *error;
    int64_t prompt_tokens, completion_tokens;
    double seconds;
} got_reply;

enum { MAXR = 256 };
typedef struct collector {
    got_reply r[MAXR];
    int n;
    int stop_after;
    volatile int stop;
} collector;

static void on_reply(void *user, const lm_chat_reply *rep) {
    collector *c = user;
    if (c->n < MAXR)
        c->r[c->n] = (got_reply){.key = rep->key, .ok = rep->ok, .attempts = rep->attempts,
                                 .content = strdup(rep->content), .reasoning = strdup(rep->reasoning),
                                 .finish = strdup(rep->finish_reason), .error = strdup(rep->error),
                                 .prompt_tokens = rep->prompt_tokens, .completion_tokens = rep->completion_tokens,
                                 .seconds = rep->seconds};
    c->n++;
    if (c->stop_after && c->n >= c->stop_after) c->stop = 1;
}

static void collector_free(collector *c) {
    for (int i = 0; i < c->n && i < MAXR; i++) {
        free(c->r[i].content);
        free(c->r[i].reasoning);
        free(c->r[i].finish);
        free(c->r[i].error);
    }
    memset(c, 0, sizeof *c);
}

static const got_reply *by_key(const collector *c, uint64_t key) {
    for (int i = 0; i < c->n && i < MAXR; i++)
        if (c->r[i].key == key) return &c->r[i];
    return NULL;
}

static int same_reply(const got_reply *a, const got_reply *b) {
    return a && b && a->ok == b->ok && !strcmp(a->content, b->content) && !strcmp(a->reasoning, b->reasoning) &&
           !strcmp(a->finish, b->finish) && a->prompt_tokens == b->prompt_tokens &&
           a->completion_tokens == b->completion_tokens;
}

static lm_backend *backend(int64_t max_ctx, int thinking) {
    lm_local_opts o = {.model_dir = model_dir, .threads = 1, .max_ctx = max_ctx, .thinking = thinking};
    lm_error err;
    lm_backend *b = lm_backend_local_create(&o, &err);
    if (!b) printf("  create: %s\n", err.msg);
    return b;
}

static int run(lm_backend *b, const lm_chat_request *reqs, int n, collector *c) {
    lm_error err;
    int rc = b->run(b, reqs, n, on_reply, c, &c->stop, &err);
    if (rc) printf("  run: %s\n", err.msg);
    return rc;
}

static lm_chat_request req(uint64_t key, const char *prompt, uint64_t seed, int64_t max_tokens) {
    return (lm_chat_request){.key = key, .prompt = prompt, .temperature = 1.0, .top_p = 0.95,
                             .max_tokens = max_tokens, .seed = seed};
}

/* ---- tests ---- */

static const char *P1 = "Prove that the sum of two even numbers is even.";
static const char *P2 = "Find all integers x with 3x + 4 = 19.";

TEST(same_request_same_answer_other_seed_other_answer) {
    lm_backend *b = backend(0, 0);
    if (!b) { CHECK(0); return; }
    CHECK(!strcmp(b->name, "local"));
    lm_chat_request r[4] = {req(0, P1, 11, 24), req(1, P1, 11, 24), req(2, P1, 12, 24), req(3, P1, 13, 24)};
    collector c = {0};
    CHECK(run(b, r, 4, &c) == 0 && c.n == 4);
    const got_reply *a = by_key(&c, 0), *a2 = by_key(&c, 1), *x = by_key(&c, 2), *y = by_key(&c, 3);
    CHECK(a && a->ok && a->content[0] && a->attempts == 1 && a->seconds > 0 && !strcmp(a->error, ""));
    CHECK(same_reply(a, a2));
    CHECKF(x && y && strcmp(a->content, x->content) && strcmp(a->content, y->content) && strcmp(x->content, y->content),
           "seeds 11, 12, 13 gave %s | %s | %s", a->content, x ? x->content : "", y ? y->content : "");
    /* again, in another call: the same text */
    collector c2 = {0};
    CHECK(run(b, r, 1, &c2) == 0 && c2.n == 1 && same_reply(a, &c2.r[0]));
    collector_free(&c);
    collector_free(&c2);
    b->free(b);
}

/* Each answer is the same alone, among others, and in reverse order. */
TEST(order_and_company_do_not_change_answers) {
    lm_backend *b = backend(0, 0);
    if (!b) { CHECK(0); return; }
    lm_chat_request r[6] = {req(0, P1, 1, 20), req(1, P2, 2, 20), req(2, P1, 3, 20),
                            req(3, P2, 4, 20), req(4, "", 5, 20),  req(5, P1, 6, 12)};
    r[3].temperature = 0; /* greedy */
    r[5].top_p = 1;
    collector all = {0}, rev = {0};
    CHECK(run(b, r, 6, &all) == 0 && all.n == 6);
    lm_chat_request back[6];
    for (int i = 0; i < 6; i++) back[i] = r[5 - i];
    CHECK(run(b, back, 6, &rev) == 0 && rev.n == 6);
    /* replies come in groups of one prompt, in order of first appearance */
    CHECK(all.r[0].key == 0 && all.r[1].key == 2 && all.r[2].key == 5 && all.r[3].key == 1);
    for (int i = 0; i < 6; i++) {
        collector one = {0};
        CHECK(run(b, &r[i], 1, &one) == 0 && one.n == 1);
        CHECKF(same_reply(by_key(&all, (uint64_t)i), &one.r[0]), "request %d alone differs", i);
        CHECKF(same_reply(by_key(&rev, (uint64_t)i), &one.r[0]), "request %d reversed differs", i);
        collector_free(&one);
    }
    collector_free(&all);
    collector_free(&rev);
    b->free(b);
}

/* The backend's answer equals lm_generate on a fresh generator with the
 * prompt rendered and encoded by hand: token counts included. */
TEST(answer_equals_a_fresh_generator) {
    lm_error err;
    lm_model *m = NULL;
    lm_tokenizer *tok = lm_tokenizer_load(model_dir, &err);
    CHECK(tok && lm_model_load(model_dir, &m, &err) == 0);
    if (!tok || !m) goto out;
    lm_chat_msg msg = {.role = "user", .content = P2};
    lm_chat_opts co = {.add_generation_prompt = 1};
    lm_text text = {0};
    lm_ids ids = {0};
    CHECK(lm_chat_render(&msg, 1, &co, &text, &err) == 0 &&
          lm_tokenizer_encode(tok, text.data, text.len, LM_TOK_SPECIAL, &ids, &err) == 0);
    lm_generator *g = lm_generator_create(m, tok, NULL, 512, LM_ATTN_LATENT, &err);
    lm_gen_params p = lm_gen_params_default();
    p.max_tokens = 30;
    p.sampling.temperature = 1.0f;
    p.sampling.top_p = 0.95f;
    p.sampling.seed = 42;
    lm_gen_result res = {0};
    CHECK(g && lm_generate(g, ids.ids, (int64_t)ids.n, &p, NULL, NULL, &res, &err) == 0);
    lm_backend *b = backend(512, 0);
    lm_chat_request r = req(9, P2, 42, 30);
    collector c = {0};
    CHECK(b && run(b, &r, 1, &c) == 0 && c.n == 1);
    if (c.n == 1) {
        lm_chat_split sp;
        lm_chat_split_output(res.text.data ? res.text.data : "", res.text.len, 0, &sp);
        CHECK(strlen(c.r[0].content) == sp.answer_len && !memcmp(c.r[0].content, sp.answer, sp.answer_len));
        CHECK(c.r[0].prompt_tokens == (int64_t)ids.n && c.r[0].completion_tokens == (int64_t)res.ids.n);
        CHECK(!strcmp(c.r[0].finish, res.finish == LM_FINISH_EOS ? "stop" : "length"));
    }
    /* lm_generate_fork needs a prefilled prompt */
    CHECK(g && lm_generate_fork(g, &p, &res, &err) == -1 && strstr(err.msg, "lm_generator_prefill"));
    collector_free(&c);
    if (b) b->free(b);
    lm_gen_result_free(&res);
    lm_generator_free(g);
    lm_text_free(&text);
    lm_ids_free(&ids);
out:
    lm_tokenizer_free(tok);
    lm_model_free(m);
}

/* Over many seeds: EOS gives "stop" with fewer tokens than max_tokens (the
 * EOS counted), max_tokens gives "length" with exactly max_tokens. */
TEST(finish_reasons_and_token_counts) {
    lm_backend *b = backend(0, 0);
    if (!b) { CHECK(0); return; }
    enum { N = 120, MAXTOK = 16 };
    lm_chat_request r[N];
    for (int i = 0; i < N; i++) r[i] = req((uint64_t)i, i % 2 ? P1 : P2, (uint64_t)i, MAXTOK);
    collector c = {0};
    CHECK(run(b, r, N, &c) == 0 && c.n == N);
    int stops = 0, lengths = 0;
    for (int i = 0; i < c.n; i++) {
        const got_reply *g = &c.r[i];
        CHECK(g->ok && g->prompt_tokens > 3);
        if (!strcmp(g->finish, "stop")) {
            stops++;
            CHECK(g->completion_tokens >= 1 && g->completion_tokens < MAXTOK + 1);
        } else if (!strcmp(g->finish, "length")) {
            lengths++;
            CHECK(g->completion_tokens == MAXTOK);
        } else {
            CHECKF(0, "finish %s", g->finish);
        }
    }
    CHECKF(stops > 0 && lengths > 0, "%d stop, %d length", stops, lengths);
    collector_free(&c);
    b->free(b);
}

/* Near-uniform sampling over a model vocabulary 64 ids larger than the
 * tokenizer's: every answer still comes back (an id with no text would fail
 * the request; before the sampler was bounded by the tokenizer, about one
 * token in six was such an id). */
TEST(ids_past_the_tokenizer_are_never_sampled) {
    lm_backend *b = backend(0, 0);
    if (!b) { CHECK(0); return; }
    enum { N = 8 };
    lm_chat_request r[N];
    for (int i = 0; i < N; i++) {
        r[i] = req((uint64_t)i, P1, (uint64_t)i + 100, 48);
        r[i].temperature = 50;
        r[i].top_p = 1;
    }
    collector c = {0};
    CHECK(run(b, r, N, &c) == 0 && c.n == N);
    for (int i = 0; i < c.n; i++) CHECKF(c.r[i].ok && c.r[i].completion_tokens > 0, "reply %d failed", i);
    collector_free(&c);
    b->free(b);
}

TEST(context_limits) {
    lm_backend *b = backend(24, 0);
    if (!b) { CHECK(0); return; }
    /* a long prompt does not fit: a failure, nothing generated; a short one
     * runs into the context: "length" */
    lm_chat_request r[3] = {req(0, P1, 1, 100), req(1, "hi", 1, 100), req(2, P1, 2, 100)};
    r[1].temperature = 0;
    collector c = {0};
    CHECK(run(b, r, 3, &c) == 0 && c.n == 3);
    const got_reply *g = by_key(&c, 0);
    CHECKF(g && !g->ok && strstr(g->error, "no room to generate") && g->prompt_tokens >= 24 &&
               g->completion_tokens == -1 && !strcmp(g->content, ""),
           "%s", g ? g->error : "");
    g = by_key(&c, 2);
    CHECK(g && !g->ok);
    g = by_key(&c, 1);
    CHECKF(g && g->ok && g->prompt_tokens + g->completion_tokens <= 24 &&
               (!strcmp(g->finish, "length") || !strcmp(g->finish, "stop")),
           "%s %lld+%lld", g ? g->finish : "", (long long)(g ? g->prompt_tokens : 0),
           (long long)(g ? g->completion_tokens : 0));
    collector_free(&c);
    b->free(b);
}

/* max_tokens <= 0: up to the context. */
TEST(no_max_tokens_means_the_context) {
    lm_backend *b = backend(40, 0);
    if (!b) { CHECK(0); return; }
    lm_chat_request r[8];
    for (int i = 0; i < 8; i++) r[i] = req((uint64_t)i, "hi", (uint64_t)i, 0);
    collector c = {0};
    CHECK(run(b, r, 8, &c) == 0 && c.n == 8);
    int reached = 0;
    for (int i = 0; i < c.n; i++) {
        CHECK(c.r[i].ok && c.r[i].prompt_tokens + c.r[i].completion_tokens <= 40);
        reached += !strcmp(c.r[i].finish, "length") && c.r[i].prompt_tokens + c.r[i].completion_tokens == 40;
    }
    CHECK(reached > 0);
    collector_free(&c);
    b->free(b);
}

/* With thinking, the answer starts inside <think>: what the model writes
 * before </think> is reasoning, the rest the content. */
TEST(thinking_splits_reasoning) {
    lm_backend *b = backend(0, 1), *plain = backend(0, 0);
    if (!b || !plain) {
        CHECK(0);
        if (b) b->free(b);
        if (plain) plain->free(plain);
        return;
    }
    enum { N = 10 };
    lm_chat_request r[N];
    for (int i = 0; i < N; i++) r[i] = req((uint64_t)i, P1, (uint64_t)i, 12);
    collector c = {0}, p = {0};
    CHECK(run(b, r, N, &c) == 0 && c.n == N);
    CHECK(run(plain, r, N, &p) == 0 && p.n == N);
    int unfinished = 0;
    for (int i = 0; i < N; i++) {
        const got_reply *t = by_key(&c, (uint64_t)i), *q = by_key(&p, (uint64_t)i);
        CHECK(t && t->ok && q && q->ok);
        if (!t || !q) continue;
        CHECK(t->prompt_tokens == q->prompt_tokens + 2); /* "<think>" and "\n" appended */
        /* reasoning never closed: all of it is reasoning, the content empty */
        unfinished += t->reasoning[0] && !t->content[0];
    }
    CHECK(unfinished > 0);
    collector_free(&c);
    collector_free(&p);
    b->free(b);
    plain->free(plain);
}

TEST(stop_flag) {
    lm_backend *b = backend(0, 0);
    if (!b) { CHECK(0); return; }
    lm_chat_request r[4] = {req(0, P1, 1, 8), req(1, P1, 2, 8), req(2, P2, 3, 8), req(3, P2, 4, 8)};
    collector c = {.stop_after = 1};
    lm_error err;
    CHECK(b->run(b, r, 4, on_reply, &c, &c.stop, &err) == -1 && strstr(err.msg, "interrupted") && c.n == 1);
    collector_free(&c);
    collector none = {0};
    CHECK(b->run(b, r, 0, on_reply, &none, NULL, &err) == 0 && none.n == 0);
    b->free(b);
}

TEST(bad_model_directory) {
    lm_local_opts o = {.model_dir = "/nonexistent/lemma-model"};
    lm_error err;
    CHECK(!lm_backend_local_create(&o, &err) && strstr(err.msg, "/nonexistent/lemma-model") &&
          !strchr(err.msg, '\n'));
    o.model_dir = NULL;
    CHECK(!lm_backend_local_create(&o, &err) && strstr(err.msg, "no model directory"));
    /* a model directory without tokenizer.json */
    o.model_dir = "tests/golden/v3_f32";
    CHECK(!lm_backend_local_create(&o, &err) && strstr(err.msg, "tokenizer"));
}

int main(void) {
    if (make_model()) {
        printf("test_backend_local: cannot build the tiny model\n");
        remove_model();
        return 1;
    }
    RUN(same_request_same_answer_other_seed_other_answer);
    RUN(order_and_company_do_not_change_answers);
    RUN(answer_equals_a_fresh_generator);
    RUN(finish_reasons_and_token_counts);
    RUN(ids_past_the_tokenizer_are_never_sampled);
    RUN(context_limits);
    RUN(no_max_tokens_means_the_context);
    RUN(thinking_splits_reasoning);
    RUN(stop_flag);
    RUN(bad_model_directory);
    remove_model();
    return test_report("test_backend_local");
}
