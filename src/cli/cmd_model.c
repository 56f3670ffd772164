/* cmd_model.c — info, logits, generate and bench on a checkpoint directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/rng.h"
#include "formats/safetensors.h"
#include "infer/generate.h"
#include "infer/sample.h"
#include "model/model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int parse_attn(args *a, const char *v, lm_attn_mode *mode) {
    if (v && !strcmp(v, "latent")) *mode = LM_ATTN_LATENT;
    else if (v && !strcmp(v, "naive")) *mode = LM_ATTN_NAIVE;
    else {
        fprintf(stderr, "lemma %s: --attn '%s': expected latent or naive\n", a->cmd, v ? v : "");
        a->bad = 1;
        return -1;
    }
    return 0;
}

static lm_model *load_or_die(const char *cmd, const char *dir) {
    lm_error err;
    lm_model *m;
    if (lm_model_load(dir, &m, &err)) {
        fprintf(stderr, "lemma %s: %s\n", cmd, err.msg);
        return NULL;
    }
    return m;
}

static const char *human(double bytes, char *buf, size_t n) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* ---- info ---- */

/* Progress of --check-weights on stderr: a redrawn line with rate and ETA on
 * a terminal, a plain line every 10% (or 30 s) otherwise. */
typedef struct scan_progress {
    int tty;
    double t0, last_print;
    int last_decile;
} scan_progress;

static int show_scan_progress(void *ctx, uint64_t done, uint64_t total) {
    scan_progress *p = ctx;
    double t = now_s(), el = t - p->t0;
    double frac = total ? (double)done / (double)total : 1;
    double gibs = el > 0 ? done / el / 1073741824.0 : 0;
    double eta = frac > 0 && frac < 1 ? el * (1 - frac) / frac : 0;
    char b1[32], b2[32];
    human((double)done, b1, sizeof b1);
    human((double)total, b2, sizeof b2);
    if (p->tty) {
        if (t - p->last_print < 0.1 && done < total) return 0;
        p->last_print = t;
        fprintf(stderr, "\r\033[Kcheck-weights %3.0f%%  %s of %s  %.2f GiB/s  ETA %.0fs", frac * 100, b1, b2, gibs, eta);
        if (done >= total) fputc('\n', stderr);
    } else {
        int dec = (int)(frac * 10);
        if (dec == p->last_decile && t - p->last_print < 30) return 0;
        p->last_decile = dec;
        p->last_print = t;
        fprintf(stderr, "check-weights: %3.0f%% (%s of %s, %.2f GiB/s, ETA %.0fs)\n", frac * 100, b1, b2, gibs, eta);
    }
    return 0;
}

int cmd_info(int argc, char **argv) {
    args a = {argc, argv, 1, "info", 0};
    const char *dir = NULL, *v;
    int64_t ctx = 4096, threads = args_default_threads();
    int check_weights = 0;
    for (; a.i < argc; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma info MODEL_DIR [--ctx N] [--check-weights [--threads N]]\n"
                   "  Architecture, parameters (total and active per token), tensor dtypes and the\n"
                   "  memory a run needs: mapped weights plus the KV cache for --ctx tokens (default 4096).\n"
                   "  --check-weights  read every tensor and fail on the first NaN or infinity (loading\n"
                   "                   checks only norms, biases, routers and FP8 scales; the forward\n"
                   "                   checks the logits). Progress on stderr.\n"
                   "  --threads N      threads for --check-weights (default: all cores)\n");
            return 0;
        } else if (args_opt(&a, "--check-weights", NULL, NULL)) {
            check_weights = 1;
        } else if (args_opt(&a, "--threads", "-t", &v)) {
            args_int(&a, "--threads", v, 1, 1024, &threads);
        } else if (args_opt(&a, "--ctx", NULL, &v)) {
            args_int(&a, "--ctx", v, 1, 1ll << 30, &ctx);
        } else if (argv[a.i][0] == '-') {
            fprintf(stderr, "lemma info: unknown option '%s'\n", argv[a.i]);
            return 2;
        } else if (!dir) {
            dir = argv[a.i];
        } else {
            fprintf(stderr, "lemma info: unexpected argument '%s'\n", argv[a.i]);
            return 2;
        }
    }
    if (a.bad) return 2;
    if (!dir) {
        fprintf(stderr, "lemma info: missing MODEL_DIR\n");
        return 2;
    }
    lm_model *m = load_or_die("info", dir);
    if (!m) return 1;
    const lm_config *c = &m->cfg;
    lm_param_count p = lm_model_params(m);
    char b1[32], b2[32], b3[32];
    printf("model        %s\n", dir);
    printf("architecture DeepSeek-V%d (%s gate, %s routing)\n", c->arch, c->scoring_func ? "sigmoid" : "softmax",
           c->topk_method == LM_TOPK_NOAUX_TC ? "noaux_tc" : c->topk_method == LM_TOPK_GREEDY ? "greedy" : "group_limited_greedy");
    printf("layers       %lld (%lld dense first, MoE every %lld)\n", (long long)c->num_hidden_layers,
           (long long)c->first_k_dense_replace, (long long)c->moe_layer_freq);
    printf("hidden       %lld, vocab %lld, heads %lld\n", (long long)c->hidden_size, (long long)c->vocab_size,
           (long long)c->num_attention_heads);
    printf("MLA          q_lora %lld, kv_lora %lld, nope %lld, rope %lld, v %lld\n", (long long)c->q_lora_rank,
           (long long)c->kv_lora_rank, (long long)c->qk_nope_head_dim, (long long)c->qk_rope_head_dim,
           (long long)c->v_head_dim);
    if (c->n_routed_experts)
        printf("MoE          %lld routed (top-%lld, %lld groups keep %lld), %lld shared, width %lld, scale %g%s\n",
               (long long)c->n_routed_experts, (long long)c->num_experts_per_tok, (long long)c->n_group,
               (long long)c->topk_group, (long long)c->n_shared_experts, (long long)c->moe_intermediate_size,
               c->routed_scaling_factor, c->norm_topk_prob ? ", normalised" : "");
    printf("rope         theta %g%s", c->rope_theta, c->rope_yarn ? ", yarn" : "\n");
    if (c->rope_yarn)
        printf(" factor %g, original %lld, softmax scale %.6f\n", c->yarn_factor, (long long)c->yarn_original_max_pos,
               lm_config_softmax_scale(c));
    printf("parameters   %.3f M total, %.3f M active per token (embedding %.3f M)\n", p.total / 1e6, p.active / 1e6,
           p.embedding / 1e6);
    /* dtype histogram over all tensors in the files */
    lm_tensor_report tensors;
    lm_model_tensor_report(m, &tensors);
    const int64_t *count = tensors.count;
    const double *bytes = tensors.bytes;
    printf("dtypes      ");
    for (int d = 0; d < LM_DTYPE_COUNT; d++)
        if (count[d]) printf(" %s: %lld tensors (%s)", lm_dtype_name((lm_dtype)d), (long long)count[d], human(bytes[d], b1, sizeof b1));
    printf("\n");
    double wbytes = (double)lm_st_total_bytes(m->tensors);
    double lat = (double)lm_kv_floats_per_token(c, LM_ATTN_LATENT) * c->num_hidden_layers * 4;
    double nai = (double)lm_kv_floats_per_token(c, LM_ATTN_NAIVE) * c->num_hidden_layers * 4;
    printf("KV cache     %s per token latent (MLA), %s per token naive (expanded)\n", human(lat, b1, sizeof b1),
           human(nai, b2, sizeof b2));
    printf("memory       weights %s (memory-mapped) + KV %s for %lld tokens = %s\n", human(wbytes, b1, sizeof b1),
           human(lat * ctx, b2, sizeof b2), (long long)ctx, human(wbytes + lat * ctx, b3, sizeof b3));
    printf("decode reads %s of weights per token\n", human(lm_model_active_weight_bytes(m), b1, sizeof b1));
    int rc = 0;
    if (check_weights) {
        lm_error err;
        fflush(stdout); /* the summary above first, also when stderr and stdout share a terminal */
        lm_pool *pool = lm_pool_create_err((int)threads, &err);
        scan_progress sp = {isatty(2), now_s(), 0, -1};
        int64_t nbad = 0;
        if (!pool || lm_st_check_finite(m->tensors, pool, show_scan_progress, &sp, &nbad, &err)) {
            fprintf(stderr, "lemma info: %s\n", err.msg);
            rc = 1;
        } else {
            printf("weights      every value finite (%s checked in %.1f s)\n", human(wbytes, b1, sizeof b1),
                   now_s() - sp.t0);
        }
        lm_pool_free(pool);
    }
    lm_model_free(m);
    return rc;
}

/* ---- shared option parsing for logits / generate / bench ---- */

typedef struct run_opts {
    const char *dir;
    int32_t *ids;
    int64_t nids;
    int64_t threads;
    lm_attn_mode attn;
    int64_t chunk;
} run_opts;

/* Handles the options common to computing commands; returns 1 when argv[i]
 * was consumed. */
static int common_opt(args *a, run_opts *o) {
    const char *v;
    if (args_opt(a, "--threads", "-t", &v)) {
        args_int(a, "--threads", v, 1, 1024, &o->threads);
        return 1;
    }
    if (args_opt(a, "--attn", NULL, &v)) {
        parse_attn(a, v, &o->attn);
        return 1;
    }
    if (args_opt(a, "--ids", NULL, &v)) {
        free(o->ids);
        o->ids = NULL;
        args_ids(a, "--ids", v, &o->ids, &o->nids);
        return 1;
    }
    if (args_opt(a, "--chunk", NULL, &v)) {
        args_int(a, "--chunk", v, 1, 1 << 20, &o->chunk);
        return 1;
    }
    return 0;
}

static int positional(args *a, run_opts *o) {
    if (a->argv[a->i][0] == '-') {
        fprintf(stderr, "lemma %s: unknown option '%s' (see --help)\n", a->cmd, a->argv[a->i]);
        a->bad = 1;
    } else if (!o->dir) {
        o->dir = a->argv[a->i];
    } else {
        fprintf(stderr, "lemma %s: unexpected argument '%s'\n", a->cmd, a->argv[a->i]);
        a->bad = 1;
    }
    return 0;
}

#define COMMON_HELP                                                                              \
    "  --threads N    worker threads (default: all cores)\n"                                    \
    "  --attn MODE    latent (MLA latent cache, default) or naive (expanded K/V cache)\n"        \
    "  --chunk N      tokens per forward chunk (default 256)\n"

/* ---- logits ---- */

int cmd_logits(int argc, char **argv) {
    args a = {argc, argv, 1, "logits", 0};
    run_opts o = {.threads = args_default_threads(), .attn = LM_ATTN_NAIVE, .chunk = 256};
    const char *out = NULL, *v;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma logits MODEL_DIR --ids 1,5,9 [--out FILE] [options]\n"
                   "  Full-sequence forward; the logits of every position. With --out, writes raw\n"
                   "  little-endian float32 [T, vocab], row-major; else prints argmax and top values.\n"
                   "  The full forward uses --attn naive by default.\n" COMMON_HELP);
            free(o.ids);
            return 0;
        } else if (args_opt(&a, "--out", "-o", &v)) {
            out = v;
        } else if (!common_opt(&a, &o)) {
            positional(&a, &o);
        }
    }
    if (!a.bad && (!o.dir || !o.ids)) {
        fprintf(stderr, "lemma logits: needs MODEL_DIR and --ids\n");
        a.bad = 1;
    }
    if (a.bad) {
        free(o.ids);
        return 2;
    }
    lm_model *m = load_or_die("logits", o.dir);
    if (!m) {
        free(o.ids);
        return 1;
    }
    int64_t V = m->cfg.vocab_size, T = o.nids;
    lm_error err;
    int rc = 1;
    float *logits = NULL;
    lm_infer *s = NULL;
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (pool) s = lm_infer_create(m, o.attn, T, o.chunk, (int)o.threads, &err);
    if (!s) {
        fprintf(stderr, "lemma logits: %s\n", err.msg);
        goto done;
    }
    logits = malloc((size_t)(T * V) * sizeof(float));
    if (!logits) {
        fprintf(stderr, "lemma logits: out of memory for %lld x %lld logits\n", (long long)T, (long long)V);
        goto done;
    }
    if (lm_infer_forward(s, pool, o.ids, T, logits, LM_LOGITS_ALL, &err)) {
        fprintf(stderr, "lemma logits: %s\n", err.msg);
        goto done;
    }
    if (out) {
        if (lm_write_file_atomic(out, logits, (size_t)(T * V) * sizeof(float), &err)) {
            fprintf(stderr, "lemma logits: %s\n", err.msg);
            goto done;
        }
        fprintf(stderr, "wrote %lld x %lld float32 logits to %s\n", (long long)T, (long long)V, out);
    } else {
        for (int64_t t = 0; t < T; t++) {
            int top[5];
            int k = V < 5 ? (int)V : 5;
            lm_topk(logits + t * V, V, k, top);
            printf("pos %lld id %d: argmax %d", (long long)t, o.ids[t], top[0]);
            for (int i = 0; i < k; i++) printf(" %d:%.4f", top[i], logits[t * V + top[i]]);
            printf("\n");
        }
    }
    rc = 0;
done:
    free(logits);
    lm_infer_free(s);
    lm_pool_free(pool);
    lm_model_free(m);
    free(o.ids);
    return rc;
}

/* ---- generate ---- */

/* Streams the text; a failed write cancels the generation (reported after). */
static int emit_stdout(void *user, const char *text, size_t len) {
    (void)user;
    return stdout_write(text, len);
}

int cmd_generate(int argc, char **argv) {
    args a = {argc, argv, 1, "generate", 0};
    run_opts o = {.threads = args_default_threads(), .attn = LM_ATTN_LATENT, .chunk = 256};
    lm_gen_params gp = lm_gen_params_default();
    int64_t n = 32, seed = 0, top_k = 0, samples = 1, ctx = 0;
    double temp = 0, top_p = 1, min_p = 0;
    int ignore_eos = 0, no_bos = 0;
    const char *v, *prompt = NULL, *tok_dir = NULL;
    const char *stops[16];
    int nstop = 0;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma generate MODEL_DIR (--ids 1,5,9 | -p TEXT) [-n 32] [options]\n"
                   "  KV-cached generation. With --ids, prints the generated ids (not the prompt),\n"
                   "  comma-separated, on one line of stdout. With -p, encodes TEXT with the model's\n"
                   "  tokenizer.json (BOS first) and streams the generated text to stdout.\n"
                   "  Stops after -n tokens, at the model's EOS, or at a --stop string.\n"
                   "  -n N             tokens to generate (default 32)\n"
                   "  --temperature T  0 = greedy (default 0)\n"
                   "  --top-k K        keep the K most likely (default 0 = off)\n"
                   "  --top-p P        nucleus mass (default 1 = off)\n"
                   "  --min-p P        drop tokens below P x the top probability (default 0)\n"
                   "  --seed S         sampling seed (default 0); same seed, same output\n"
                   "  --stop STR       stop before STR (repeatable, text mode)\n"
                   "  --samples K      K continuations sharing the prompt's KV cache; sample k uses seed S+k\n"
                   "  --tokenizer DIR  tokenizer.json location (default MODEL_DIR)\n"
                   "  --no-bos         do not put BOS before the -p text\n"
                   "  --ctx N          context size (default prompt + n)\n"
                   "  --ignore-eos     do not stop at EOS\n" COMMON_HELP);
            free(o.ids);
            return 0;
        } else if (args_opt(&a, "-n", NULL, &v) || args_opt(&a, "--max-tokens", NULL, &v)) {
            args_int(&a, "-n", v, 1, 1 << 24, &n);
        } else if (args_opt(&a, "--prompt", "-p", &v)) {
            prompt = v;
        } else if (args_opt(&a, "--tokenizer", NULL, &v)) {
            tok_dir = v;
        } else if (args_opt(&a, "--stop", NULL, &v)) {
            if (nstop == 16 || !v || !*v) {
                fprintf(stderr, "lemma generate: --stop needs a non-empty string (at most 16)\n");
                a.bad = 1;
            } else {
                stops[nstop++] = v;
            }
        } else if (args_opt(&a, "--temperature", NULL, &v)) {
            args_double(&a, "--temperature", v, 0, 100, &temp);
        } else if (args_opt(&a, "--top-p", NULL, &v)) {
            args_double(&a, "--top-p", v, 0, 1, &top_p);
        } else if (args_opt(&a, "--min-p", NULL, &v)) {
            args_double(&a, "--min-p", v, 0, 1, &min_p);
        } else if (args_opt(&a, "--top-k", NULL, &v)) {
            args_int(&a, "--top-k", v, 0, 1ll << 31, &top_k);
        } else if (args_opt(&a, "--seed", NULL, &v)) {
            args_int(&a, "--seed", v, 0, INT64_MAX, &seed);
        } else if (args_opt(&a, "--samples", NULL, &v)) {
            args_int(&a, "--samples", v, 1, 4096, &samples);
        } else if (args_opt(&a, "--ctx", NULL, &v)) {
            args_int(&a, "--ctx", v, 2, 1ll << 24, &ctx);
        } else if (args_opt(&a, "--ignore-eos", NULL, NULL)) {
            ignore_eos = 1;
        } else if (args_opt(&a, "--no-bos", NULL, NULL)) {
            no_bos = 1;
        } else if (!common_opt(&a, &o)) {
            positional(&a, &o);
        }
    }
    if (!a.bad && (!o.dir || (!o.ids == !prompt))) {
        fprintf(stderr, "lemma generate: needs MODEL_DIR and one of --ids or -p\n");
        a.bad = 1;
    }
    if (!a.bad && prompt && !*prompt) {
        fprintf(stderr, "lemma generate: empty prompt\n");
        a.bad = 1;
    }
    if (a.bad) {
        free(o.ids);
        return 2;
    }
    gp.max_tokens = n;
    gp.sampling.temperature = (float)temp;
    gp.sampling.top_k = (int)top_k;
    gp.sampling.top_p = (float)top_p;
    gp.sampling.min_p = (float)min_p;
    gp.sampling.seed = (uint64_t)seed;
    gp.stop = stops;
    gp.nstop = nstop;
    gp.stop_at_eos = !ignore_eos;
    lm_model *m = load_or_die("generate", o.dir);
    if (!m) {
        free(o.ids);
        return 1;
    }
    lm_error err;
    int rc = 1;
    lm_tokenizer *tok = NULL;
    lm_generator *g = NULL;
    lm_gen_result *res = NULL;
    lm_ids pids = {0};
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (!pool) {
        fprintf(stderr, "lemma generate: %s\n", err.msg);
        goto done;
    }
    if (prompt) {
        tok = lm_tokenizer_load(tok_dir ? tok_dir : o.dir, &err);
        if (!tok) {
            fprintf(stderr, "lemma generate: %s\n", err.msg);
            goto done;
        }
        int32_t bos = lm_tokenizer_bos(tok);
        if (!no_bos && bos >= 0 && lm_ids_push(&pids, bos)) goto oom;
        if (lm_tokenizer_encode(tok, prompt, strlen(prompt), LM_TOK_SPECIAL, &pids, &err)) {
            fprintf(stderr, "lemma generate: %s\n", err.msg);
            goto done;
        }
    } else {
        for (int64_t i = 0; i < o.nids; i++)
            if (lm_ids_push(&pids, o.ids[i])) goto oom;
    }
    if (!pids.n) {
        fprintf(stderr, "lemma generate: the prompt encodes to no tokens\n");
        goto done;
    }
    g = lm_generator_create(m, tok, pool, ctx ? ctx : (int64_t)pids.n + n + 1, o.attn, &err);
    res = calloc((size_t)samples, sizeof *res);
    if (!g || !res) {
        if (g) fprintf(stderr, "lemma generate: out of memory for %lld results\n", (long long)samples);
        else fprintf(stderr, "lemma generate: %s\n", err.msg);
        goto done;
    }
    int failed;
    if (samples == 1)
        failed = lm_generate(g, pids.ids, (int64_t)pids.n, &gp, emit_stdout, NULL, &res[0], &err);
    else
        failed = lm_generate_n(g, pids.ids, (int64_t)pids.n, &gp, (int)samples, res, &err);
    if (failed) {
        fprintf(stderr, "\nlemma generate: %s\n", err.msg);
        goto done;
    }
    if (stdout_failed("generate")) goto done;
    for (int64_t k = 0; k < samples; k++) {
        if (samples > 1) {
            if (tok) {
                printf("%s--- sample %lld (seed %lld) ---\n", k ? "\n" : "", (long long)k, (long long)(seed + k));
                fwrite(res[k].text.data, 1, res[k].text.len, stdout);
            } else {
                for (size_t i = 0; i < res[k].ids.n; i++) printf(i ? ",%d" : "%d", res[k].ids.ids[i]);
            }
        }
        if (!tok || samples > 1) printf("\n");
    }
    if (tok && samples == 1) printf("\n");
    stdout_write(NULL, 0);
    if (stdout_failed("generate")) goto done;
    double dec = 0;
    int64_t made = 0;
    for (int64_t k = 0; k < samples; k++) {
        dec += res[k].decode_s;
        made += (int64_t)res[k].ids.n;
    }
    fprintf(stderr, "prompt %lld tokens in %.3f s (%.1f tok/s); generated %lld in %.3f s (%.1f tok/s); finish: %s\n",
            (long long)res[0].prompt_tokens, res[0].prefill_s, res[0].prompt_tokens / (res[0].prefill_s + 1e-12),
            (long long)made, dec, made / (dec + 1e-12), lm_finish_name(res[samples - 1].finish));
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "lemma generate: out of memory\n");
done:
    if (res)
        for (int64_t k = 0; k < samples; k++) lm_gen_result_free(&res[k]);
    free(res);
    lm_ids_free(&pids);
    lm_generator_free(g);
    lm_tokenizer_free(tok);
    lm_pool_free(pool);
    lm_model_free(m);
    free(o.ids);
    return rc;
}

/* ---- bench ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    args a = {argc, argv, 1, "bench", 0};
    run_opts o = {.threads = args_default_threads(), .attn = LM_ATTN_LATENT, .chunk = 512};
    int64_t prompt = 512, gen = 128, reps = 3;
    const char *v;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma bench MODEL_DIR [--prompt 512] [--gen 128] [--reps 3] [options]\n"
                   "  Prints one JSON line. Timed as llama-bench does: one untimed warm-up; prefill =\n"
                   "  one forward of --prompt random ids into an empty cache; decode = --gen single-token\n"
                   "  steps from an empty cache, no sampling. Medians over --reps.\n" COMMON_HELP);
            return 0;
        } else if (args_opt(&a, "--prompt", "-p", &v)) {
            args_int(&a, "--prompt", v, 1, 1 << 20, &prompt);
        } else if (args_opt(&a, "--gen", "-g", &v)) {
            args_int(&a, "--gen", v, 1, 1 << 20, &gen);
        } else if (args_opt(&a, "--reps", "-r", &v)) {
            args_int(&a, "--reps", v, 1, 1000, &reps);
        } else if (!common_opt(&a, &o)) {
            positional(&a, &o);
        }
    }
    if (!a.bad && !o.dir) {
        fprintf(stderr, "lemma bench: missing MODEL_DIR\n");
        a.bad = 1;
    }
    if (a.bad) {
        free(o.ids);
        return 2;
    }
    lm_model *m = load_or_die("bench", o.dir);
    if (!m) return 1;
    int64_t V = m->cfg.vocab_size, ctx = prompt > gen ? prompt : gen;
    lm_error err;
    int rc = 1;
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof(float));
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    lm_infer *s = NULL;
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (pool) s = lm_infer_create(m, o.attn, ctx, o.chunk, (int)o.threads, &err);
    if (!s) {
        fprintf(stderr, "lemma bench: %s\n", err.msg);
        goto done;
    }
    if (!ids || !logits || !pp || !tg) {
        fprintf(stderr, "lemma bench: out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < ctx; i++) ids[i] = (int32_t)(lm_rng_u64(1, LM_RNG_BENCH, (uint64_t)i) % (uint64_t)V);
    /* Warm-up: touches every weight page and buffer once. */
    lm_infer_reset(s);
    if (lm_infer_forward(s, pool, ids, prompt < 16 ? prompt : 16, logits, LM_LOGITS_LAST, &err)) goto fail;
    for (int64_t r = 0; r < reps; r++) {
        lm_infer_reset(s);
        double t0 = now_s();
        if (lm_infer_forward(s, pool, ids, prompt, logits, LM_LOGITS_LAST, &err)) goto fail;
        pp[r] = prompt / (now_s() - t0);
        lm_infer_reset(s);
        t0 = now_s();
        for (int64_t g = 0; g < gen; g++)
            if (lm_infer_forward(s, pool, ids + g, 1, logits, LM_LOGITS_LAST, &err)) goto fail;
        tg[r] = gen / (now_s() - t0);
    }
    qsort(pp, (size_t)reps, sizeof *pp, cmp_double);
    qsort(tg, (size_t)reps, sizeof *tg, cmp_double);
    double pmed = pp[reps / 2], tmed = tg[reps / 2];
    lm_param_count pc = lm_model_params(m);
    double abytes = lm_model_active_weight_bytes(m);
    printf("{\"model\":\"%s\",\"threads\":%lld,\"attn\":\"%s\",\"prompt\":%lld,\"gen\":%lld,\"reps\":%lld,"
           "\"prefill_tok_s\":%.1f,\"decode_tok_s\":%.1f,\"prefill_gflop_s\":%.2f,\"decode_weight_gb_s\":%.2f,"
           "\"active_weight_bytes\":%.0f,\"kv_bytes_per_token\":%lld,\"params\":%lld,\"active_params\":%lld,"
           "\"peak_rss_mib\":%.1f}\n",
           o.dir, (long long)o.threads, o.attn == LM_ATTN_LATENT ? "latent" : "naive", (long long)prompt, (long long)gen,
           (long long)reps, pmed, tmed, 2.0 * pc.active * pmed / 1e9, abytes * tmed / 1e9, abytes,
           (long long)lm_infer_kv_bytes_per_token(s), (long long)pc.total, (long long)pc.active, peak_rss_mib());
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lemma bench: %s\n", err.msg);
done:
    free(ids);
    free(logits);
    free(pp);
    free(tg);
    lm_infer_free(s);
    lm_pool_free(pool);
    lm_model_free(m);
    return rc;
}
