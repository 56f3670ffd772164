/* cmd_model.c — info, logits, generate and bench on a checkpoint directory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/memcheck.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "formats/safetensors.h"
#include "infer/engine.h"
#include "infer/generate.h"
#include "model/mtp.h"
#include "infer/sample.h"
#include "model/indexer.h"
#include "model/kvcache.h"
#include "model/memplan.h"
#include "model/model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (every thread). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* req: the memory the command will need (memcheck.h), NULL for info. */
static lm_model *load_or_die(const char *cmd, const char *dir, const lm_memplan_req *req, int no_memory_check) {
    lm_error err;
    lm_model *m;
    if (req && cli_memory_check(cmd, dir, req, no_memory_check)) return NULL;
    /* info reads the tensors, never multiplies: no panels (model.h) */
    int rc = strcmp(cmd, "info") ? lm_model_load(dir, &m, &err) : lm_model_load_flags(dir, LM_LOAD_ROWS, &m, &err);
    if (rc) {
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

typedef struct info_cli {
    const char *dir;
    int64_t ctx;
    int threads;
    int check_weights;
    int plan_only;
} info_cli;

static const cli_arg info_args[] = {{"MODEL_DIR", CLI_ARG_AT(info_cli, dir), CLI_REQUIRED}};
static const cli_opt info_opts[] = {
    {"--ctx", NULL, CLI_INT, CLI_AT(info_cli, ctx), .min = 1, .max = 1ll << 30, .def = "4096", .metavar = "N",
     .help = "tokens of KV cache counted in the memory line"},
    {"--check-weights", NULL, CLI_FLAG, CLI_AT(info_cli, check_weights),
     .help = "read every tensor and fail on the first NaN or infinity (loading\n"
             "checks only norms, biases, routers and FP8 scales; the forward\n"
             "checks the logits). Progress on stderr."},
    CLI_OPT_THREADS(info_cli, threads, "threads for --check-weights"),
    {"--plan", NULL, CLI_FLAG, CLI_AT(info_cli, plan_only),
     .help = "only the memory plan, from config.json and the safetensors headers\n"
             "(no weight is read: instant even for a 685B checkpoint)"},
};
static int info_run(const void *dest);
const cli_spec cli_info_spec = {
    .cmd = "info", .usage = "MODEL_DIR [--ctx N] [--plan] [--check-weights [--threads N]]",
    .about = "Architecture, parameters (total and active per token), tensor dtypes and the\n"
             "memory plan of a run: mapped weights (MTP and indexer tensors included), the KV\n"
             "cache for --ctx tokens and the forward's buffers, against the machine's\n"
             "available memory (MemAvailable, or LEMMA_MEM_AVAILABLE=64G). Commands that load\n"
             "the model refuse to start when their plan does not fit (--no-memory-check).",
    CLI_ARGS(info_args), CLI_OPTS(info_opts), .size = sizeof(info_cli),
    .run = info_run,
};

/* The plan's lines of lemma info (memplan.h). */
static void print_plan(const lm_memplan *p, const lm_meminfo *mi, int threads, int64_t rows) {
    char b1[32], b2[32], b3[32];
    printf("memory plan  weights %s in %lld files (memory-mapped, stored dtypes", lm_human_bytes(p->weight_bytes, b1, sizeof b1),
           (long long)p->files);
    if (p->mtp_tensors) printf("; MTP layers %s", lm_human_bytes(p->mtp_bytes, b2, sizeof b2));
    if (p->indexer_tensors) printf("; DSA indexer %s", lm_human_bytes(p->indexer_bytes, b3, sizeof b3));
    printf(")\n");
    printf("             cache %s for %lld tokens (%s per token latent", lm_human_bytes(p->cache_bytes, b1, sizeof b1),
           (long long)p->cache_tokens, lm_human_bytes(p->kv_bytes_per_token, b2, sizeof b2));
    if (p->index_bytes_per_token > 0) printf(" + %s index keys", lm_human_bytes(p->index_bytes_per_token, b3, sizeof b3));
    printf(")\n");
    printf("             buffers %s (forward of %lld rows on %d threads)\n", lm_human_bytes(p->buffer_bytes, b1, sizeof b1),
           (long long)rows, threads);
    char b4[32];
    printf("             total %s; the machine has %s available", lm_human_bytes(p->total_bytes, b1, sizeof b1),
           lm_human_bytes(mi->available, b2, sizeof b2));
    if (mi->total > mi->available) printf(" of %s", lm_human_bytes(mi->total, b4, sizeof b4));
    printf(" (%s): %s\n", mi->source,
           p->total_bytes <= mi->available ? "fits" : "does NOT fit (loading commands refuse without --no-memory-check)");
}

static int info_run(const void *dest) {
    info_cli o = *(const info_cli *)dest;
    const char *dir = o.dir;
    int64_t ctx = o.ctx, threads = o.threads;
    int check_weights = o.check_weights;
    /* the plan first, from the headers: it needs no weight, and a checkpoint
     * the loader cannot take (yet) still gets its plan */
    lm_memplan plan;
    lm_meminfo mi;
    lm_error perr;
    const int64_t plan_rows = 256; /* the --chunk default of logits and generate */
    int have_plan = !lm_meminfo_read(&mi, &perr) && !lm_memplan_read(dir, &plan, &perr);
    if (have_plan)
        lm_memplan_size(&plan, &(lm_memplan_req){.ctx = ctx, .seqs = 1, .rows = plan_rows, .threads = (int)threads,
                                                  .attn = LM_ATTN_LATENT});
    if (o.plan_only) {
        if (!have_plan) {
            fprintf(stderr, "lemma info: %s\n", perr.msg);
            return 1;
        }
        printf("model        %s\n", dir);
        int big = plan.params >= 1000000000;
        printf("tensors      %lld (%lld MTP, %lld indexer), %.3f %s parameters\n", (long long)plan.tensors,
               (long long)plan.mtp_tensors, (long long)plan.indexer_tensors, plan.params / (big ? 1e9 : 1e6),
               big ? "B" : "M");
        print_plan(&plan, &mi, (int)threads, plan_rows);
        if (plan.mismatched)
            printf("checkpoint   a tensor the config needs is missing or of another shape: loading fails\n");
        return 0;
    }
    lm_model *m = load_or_die("info", dir, NULL, 0);
    if (!m) return 1;
    const lm_config *c = &m->cfg;
    lm_param_count p = lm_model_params(m);
    char b1[32], b2[32], b3[32];
    printf("model        %s\n", dir);
    printf("architecture DeepSeek-V%s (%s gate, %s routing)\n", lm_config_has_indexer(c) ? "3.2 with DSA sparse attention" : c->arch == LM_ARCH_DEEPSEEK_V2 ? "2" : "3",
           c->scoring_func ? "sigmoid" : "softmax",
           c->topk_method == LM_TOPK_NOAUX_TC ? "noaux_tc" : c->topk_method == LM_TOPK_GREEDY ? "greedy" : "group_limited_greedy");
    if (lm_config_has_indexer(c))
        printf("DSA          index_topk %lld, indexer %lld heads x %lld, FP8 q/k and latent (%s scales); "
               "index keys %lld B per token per layer\n",
               (long long)c->index_topk, (long long)c->index_n_heads, (long long)c->index_head_dim,
               c->fp8_ue8m0 ? "ue8m0" : "amax/448", (long long)(lm_indexer_key_floats(c) * 4));
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
    if (have_plan) print_plan(&plan, &mi, (int)threads, plan_rows);
    else
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

/* ---- the options of logits / generate / bench ---- */

typedef struct token_ids {
    int32_t *v;
    int64_t n;
} token_ids;

/* "1,5,9" -> ids. */
static int parse_ids(const char *s, void *field, char *detail, size_t cap) {
    token_ids *t = field;
    int64_t n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    if (!(t->v = malloc((size_t)n * sizeof *t->v))) return snprintf(detail, cap, "out of memory"), -1;
    t->n = 0;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            snprintf(detail, cap, "bad id at character %lld", (long long)(p - s));
            return -1;
        }
        t->v[t->n++] = (int32_t)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

/* "1,4,16,64" -> batch sizes, each 1..4096. */
static int parse_batch(const char *s, void *field, char *detail, size_t cap) {
    if (parse_ids(s, field, detail, cap)) return -1;
    token_ids *t = field;
    for (int64_t i = 0; i < t->n; i++)
        if (t->v[i] < 1 || t->v[i] > 4096) {
            snprintf(detail, cap, "batch size %d is outside 1..4096", t->v[i]);
            return -1;
        }
    return 0;
}

static void free_ids(void *field) {
    token_ids *t = field;
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

typedef struct run_cli {
    const char *dir, *out, *prompt, *tok_dir;
    token_ids ids;
    int threads;
    lm_attn_mode attn;
    lm_prefill_mode prefill;               /* --prefill (absorbed | expanded) */
    int fp8;                               /* --fp8-emulation */
    int64_t chunk;
    int64_t n, seed, top_k, samples, ctx;  /* generate */
    double temp, top_p, min_p;
    int ignore_eos, no_bos;
    int speculative;                       /* generate: 0 off, 1 mtp */
    int no_memory_check;
    cli_list stops;
    int64_t prompt_len, gen, reps;         /* bench */
    token_ids batch;                       /* bench --batch */
} run_cli;

static const cli_arg run_args[] = {{"MODEL_DIR", CLI_ARG_AT(run_cli, dir), CLI_REQUIRED}};

#define RUN_IDS(required, text)                                                                            \
    {"--ids", NULL, CLI_CUSTOM, CLI_AT(run_cli, ids), .expects = "comma-separated token ids", .parse = parse_ids, \
     .release = free_ids, .metavar = "IDS", .flags = required, .help = text}
#define RUN_COMMON(attn_default, chunk_default)                                                            \
    CLI_OPT_THREADS(run_cli, threads, "worker threads"),                                                   \
    {"--attn", NULL, CLI_ENUM, CLI_AT(run_cli, attn), .choices = "naive|latent", .def = attn_default,        \
     .metavar = "MODE", .help = "latent (MLA latent cache) or naive (expanded K/V cache)"},                \
    {"--prefill", NULL, CLI_ENUM, CLI_AT(run_cli, prefill), .choices = "absorbed|expanded", .def = "absorbed", \
     .metavar = "FORM", .help = "--attn latent: absorbed, or expanded (latents decompressed for long chunks: fewer "    \
     "FLOPs; bits depend on the chunking, docs/arithmetic.md)"},                                            \
    {"--chunk", NULL, CLI_INT, CLI_AT(run_cli, chunk), .min = 1, .max = 1 << 20, .def = chunk_default,      \
     .metavar = "N", .help = "tokens per forward chunk"},                                                  \
    CLI_OPT_FP8_EMULATION(run_cli, fp8),                                                                   \
    CLI_OPT_NO_MEMORY_CHECK(run_cli, no_memory_check)

/* --prefill expanded needs the latent cache; `conflict` names an option of
 * the command it does not combine with (NULL: none). 0, or 2 (usage error). */
static int check_prefill(const char *cmd, const run_cli *o, const char *conflict) {
    if (o->prefill == LM_PREFILL_ABSORBED) return 0;
    if (o->attn != LM_ATTN_LATENT) {
        fprintf(stderr, "lemma %s: --prefill expanded needs --attn latent (the naive cache is expanded already)\n", cmd);
        return 2;
    }
    if (conflict) {
        fprintf(stderr, "lemma %s: --prefill expanded runs one sequence's forward; it does not combine with %s\n", cmd,
                conflict);
        return 2;
    }
    return 0;
}

/* ---- logits ---- */

static const cli_opt logits_opts[] = {
    RUN_IDS(CLI_REQUIRED, "the token ids, e.g. 1,5,9"),
    {"--out", "-o", CLI_PATH, CLI_AT(run_cli, out), .metavar = "FILE",
     .help = "write raw little-endian float32 [T, vocab] here"},
    RUN_COMMON("naive", "256"),
};
static int logits_run(const void *dest);
const cli_spec cli_logits_spec = {
    .cmd = "logits", .usage = "MODEL_DIR --ids 1,5,9 [--out FILE] [options]",
    .about = "Full-sequence forward; the logits of every position. With --out, writes raw\n"
             "little-endian float32 [T, vocab], row-major; else prints argmax and top values.",
    CLI_ARGS(run_args), CLI_OPTS(logits_opts), .size = sizeof(run_cli),
    .run = logits_run,
};

static int logits_run(const void *dest) {
    run_cli o = *(const run_cli *)dest;
    const char *out = o.out;
    if (check_prefill("logits", &o, NULL)) return 2;
    lm_model *m = load_or_die("logits", o.dir,
                              &(lm_memplan_req){.ctx = o.ids.n, .seqs = 1, .rows = o.chunk, .threads = o.threads,
                                                .attn = o.attn, .fp8_off = !o.fp8},
                              o.no_memory_check);
    if (!m) {
        return 1;
    }
    m->cfg.fp8_emulation = o.fp8;
    {
    }
    int64_t V = m->cfg.vocab_size, T = o.ids.n;
    lm_error err;
    int rc = 1;
    float *logits = NULL;
    lm_infer *s = NULL;
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (pool) s = lm_infer_create(m, o.attn, T, o.chunk, (int)o.threads, &err);
    if (!s || lm_infer_set_prefill(s, o.prefill, &err)) {
        fprintf(stderr, "lemma logits: %s\n", err.msg);
        goto done;
    }
    logits = malloc((size_t)(T * V) * sizeof(float));
    if (!logits) {
        fprintf(stderr, "lemma logits: out of memory for %lld x %lld logits\n", (long long)T, (long long)V);
        goto done;
    }
    if (lm_infer_forward(s, pool, o.ids.v, T, logits, LM_LOGITS_ALL, &err)) {
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
            printf("pos %lld id %d: argmax %d", (long long)t, o.ids.v[t], top[0]);
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
    return rc;
}

/* ---- generate ---- */

/* --samples K on the batched engine: the prompt prefilled once, the K
 * continuations decoded together (at most 64 in one forward); sample k uses
 * seed + k, so each equals a single run with that seed. */
typedef struct samples_run {
    lm_gen_result *res;
    int64_t first;             /* sample index of the engine request's choice 0 */
    double t0, t_first, t_end;
    int failed;
    char why[1024];
} samples_run;

typedef struct samples_job {
    samples_run *run;
    int64_t first;
} samples_job;

static void on_sample_event(void *user, const lm_engine_event *ev) {
    samples_job *job = user;
    samples_run *run = job->run;
    lm_gen_result *r = &run->res[job->first + ev->choice];
    if (ev->text_len && lm_text_append(&r->text, ev->text, ev->text_len)) run->failed = 1;
    if (ev->kind == LM_EV_TOKEN) {
        if (!run->t_first) run->t_first = now_s();
        if (lm_ids_push(&r->ids, ev->token)) run->failed = 1;
        return;
    }
    r->finish = ev->finish;
    r->prompt_tokens = ev->prompt_tokens;
    run->t_end = now_s();
    if (ev->error && !run->failed) {
        run->failed = 1;
        snprintf(run->why, sizeof run->why, "%s", ev->error);
    }
}

static int generate_samples(const lm_model *m, const lm_tokenizer *tok, lm_pool *pool, const lm_ids *prompt,
                            const lm_gen_params *gp, int64_t samples, int64_t max_ctx, lm_attn_mode attn, int64_t chunk,
                            lm_gen_result *res, lm_error *err) {
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = max_ctx;
    eo.max_seqs = samples < 64 ? (int)samples : 64;
    eo.max_queue = (int)((samples + eo.max_seqs - 1) / eo.max_seqs);
    eo.max_batch_tokens = chunk > eo.max_seqs ? chunk : eo.max_seqs;
    eo.attn = attn;
    /* the prompt once, each sample's own tokens, a block each for the copy of the shared last block */
    eo.cache_tokens = max_ctx + (int64_t)eo.max_seqs * (max_ctx - (int64_t)prompt->n + 2 * eo.block_tokens);
    int njobs = eo.max_queue;
    samples_run run = {.res = res};
    samples_job *jobs = calloc((size_t)njobs, sizeof *jobs);
    uint64_t *seeds = malloc((size_t)samples * sizeof *seeds);
    lm_engine *e = jobs && seeds ? lm_engine_create(m, tok, pool, &eo, err) : NULL;
    int rc = -1;
    if (!jobs || !seeds) lm_fail(err, "out of memory for %lld samples", (long long)samples);
    if (!e) goto done;
    for (int64_t k = 0; k < samples; k++) seeds[k] = gp->sampling.seed + (uint64_t)k;
    run.t0 = now_s();
    for (int j = 0; j < njobs; j++) {
        jobs[j] = (samples_job){.run = &run, .first = (int64_t)j * eo.max_seqs};
        int64_t n = samples - jobs[j].first < eo.max_seqs ? samples - jobs[j].first : eo.max_seqs;
        lm_engine_request r = {.prompt = prompt->ids, .prompt_len = (int64_t)prompt->n, .n = (int)n, .params = *gp,
                               .seeds = seeds + jobs[j].first, .on_event = on_sample_event, .user = &jobs[j]};
        if (lm_engine_submit(e, &r, NULL, err)) goto done;
    }
    if (lm_engine_run(e, err)) goto done;
    if (run.failed) {
        lm_fail(err, "%s", run.why[0] ? run.why : "out of memory");
        goto done;
    }
    /* prefill: until the first token; decode: the rest, over all samples (recorded on sample 0) */
    double first = run.t_first ? run.t_first : run.t_end;
    res[0].prefill_s = first - run.t0;
    res[0].decode_s = run.t_end - first;
    rc = 0;
done:
    lm_engine_free(e);
    free(jobs);
    free(seeds);
    return rc;
}

/* Streams the text; a failed write cancels the generation (reported after). */
static int emit_stdout(void *user, const char *text, size_t len) {
    (void)user;
    return stdout_write(text, len);
}

static const cli_opt generate_opts[] = {
    RUN_IDS(0, "prompt token ids, e.g. 1,5,9"),
    {"--prompt", "-p", CLI_STRING, CLI_AT(run_cli, prompt), .flags = CLI_NONEMPTY, .metavar = "TEXT",
     .help = "prompt text, encoded with the model's tokenizer.json"},
    {"--max-tokens", "-n", CLI_INT, CLI_AT(run_cli, n), .min = 1, .max = 1 << 24, .def = "32", .metavar = "N",
     .help = "tokens to generate"},
    {"--temperature", NULL, CLI_REAL, CLI_AT(run_cli, temp), .lo = 0, .hi = 100, .def = "0", .metavar = "T",
     .help = "0 = greedy"},
    {"--top-k", NULL, CLI_INT, CLI_AT(run_cli, top_k), .min = 0, .max = 1ll << 31, .def = "0", .metavar = "K",
     .help = "keep the K most likely (0 = off)"},
    {"--top-p", NULL, CLI_REAL, CLI_AT(run_cli, top_p), .lo = 0, .hi = 1, .def = "1", .metavar = "P",
     .help = "nucleus mass (1 = off)"},
    {"--min-p", NULL, CLI_REAL, CLI_AT(run_cli, min_p), .lo = 0, .hi = 1, .def = "0", .metavar = "P",
     .help = "drop tokens below P x the top probability"},
    {"--seed", NULL, CLI_INT, CLI_AT(run_cli, seed), .min = 0, .max = INT64_MAX, .def = "0", .metavar = "S",
     .help = "sampling seed; same seed, same output"},
    {"--stop", NULL, CLI_LIST, CLI_AT(run_cli, stops), .max = 16, .flags = CLI_NONEMPTY, .metavar = "STR",
     .help = "stop before STR (repeatable, at most 16; text mode)"},
    {"--samples", NULL, CLI_INT, CLI_AT(run_cli, samples), .min = 1, .max = 4096, .def = "1", .metavar = "K",
     .help = "K continuations sharing the prompt's KV cache; sample k uses seed S+k"},
    {"--tokenizer", NULL, CLI_PATH, CLI_AT(run_cli, tok_dir), .note = "MODEL_DIR", .metavar = "DIR",
     .help = "tokenizer.json location"},
    {"--no-bos", NULL, CLI_FLAG, CLI_AT(run_cli, no_bos), .help = "do not put BOS before the -p text"},
    {"--ctx", NULL, CLI_INT, CLI_AT(run_cli, ctx), .min = 2, .max = 1ll << 24, .note = "prompt + n", .metavar = "N",
     .help = "context size"},
    {"--ignore-eos", NULL, CLI_FLAG, CLI_AT(run_cli, ignore_eos), .help = "do not stop at EOS"},
    {"--speculative", NULL, CLI_ENUM, CLI_AT(run_cli, speculative), .choices = "off|mtp", .def = "off",
     .metavar = "DRAFT",
     .help = "off, or mtp: the checkpoint's MTP layer drafts, the model verifies (same greedy output)"},
    RUN_COMMON("latent", "256"),
};
static int generate_run(const void *dest);
const cli_spec cli_generate_spec = {
    .cmd = "generate", .usage = "MODEL_DIR (--ids 1,5,9 | -p TEXT) [-n 32] [options]",
    .about = "KV-cached generation. With --ids, prints the generated ids (not the prompt),\n"
             "comma-separated, on one line of stdout. With -p, encodes TEXT with the model's\n"
             "tokenizer.json (BOS first) and streams the generated text to stdout.\n"
             "Stops after -n tokens, at the model's EOS, or at a --stop string.",
    CLI_ARGS(run_args), CLI_OPTS(generate_opts),
    .one_of = (const char *const[]){"--ids|--prompt", NULL}, .size = sizeof(run_cli),
    .run = generate_run,
};

static int generate_run(const void *dest) {
    run_cli o = *(const run_cli *)dest;
    lm_gen_params gp = lm_gen_params_default();
    int64_t n = o.n, seed = o.seed, samples = o.samples, ctx = o.ctx;
    const char *prompt = o.prompt, *tok_dir = o.tok_dir;
    gp.max_tokens = n;
    gp.sampling.temperature = (float)o.temp;
    gp.sampling.top_k = (int)o.top_k;
    gp.sampling.top_p = (float)o.top_p;
    gp.sampling.min_p = (float)o.min_p;
    gp.sampling.seed = (uint64_t)seed;
    gp.stop = o.stops.items;
    gp.nstop = o.stops.n;
    gp.stop_at_eos = !o.ignore_eos;
    int no_bos = o.no_bos;
    if (o.speculative && samples > 1) {
        fprintf(stderr, "lemma generate: --speculative mtp decodes one sequence; it does not combine with --samples\n");
        return 2;
    }
    if (check_prefill("generate", &o, samples > 1 ? "--samples" : o.speculative ? "--speculative" : NULL)) return 2;
    /* -p's token count is not known before the tokenizer loads: a token is at least a byte */
    int64_t plan_ctx = ctx ? ctx : (prompt ? (int64_t)strlen(prompt) + 1 : o.ids.n) + n;
    int64_t plan_seqs = samples < 64 ? samples : 64;
    lm_model *m = load_or_die("generate", o.dir,
                              &(lm_memplan_req){.ctx = plan_ctx, .seqs = samples, .rows = o.chunk > plan_seqs ? o.chunk : plan_seqs,
                                                .cache_tokens = plan_ctx * (samples > 1 ? plan_seqs + 1 : 1),
                                                .threads = o.threads, .attn = o.attn, .fp8_off = !o.fp8},
                              o.no_memory_check);
    if (!m) {
        return 1;
    }
    m->cfg.fp8_emulation = o.fp8;
    lm_error err;
    int rc = 1;
    lm_tokenizer *tok = NULL;
    lm_generator *g = NULL;
    lm_gen_result *res = NULL;
    lm_ids pids = {0};
    lm_mtp *mtp = NULL;
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (!pool || (o.speculative && lm_mtp_load(m, &mtp, &err))) {
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
        for (int64_t i = 0; i < o.ids.n; i++)
            if (lm_ids_push(&pids, o.ids.v[i])) goto oom;
    }
    if (!pids.n) {
        fprintf(stderr, "lemma generate: the prompt encodes to no tokens\n");
        goto done;
    }
    g = lm_generator_create(m, tok, pool, ctx ? ctx : (int64_t)pids.n + n + 1, o.attn, &err);
    res = calloc((size_t)samples, sizeof *res);
    if (g && (lm_generator_set_prefill(g, o.prefill, &err) || (mtp && lm_generator_set_mtp(g, mtp, &err)))) {
        fprintf(stderr, "lemma generate: %s\n", err.msg);
        goto done;
    }
    if (!g || !res) {
        if (g) fprintf(stderr, "lemma generate: out of memory for %lld results\n", (long long)samples);
        else fprintf(stderr, "lemma generate: %s\n", err.msg);
        goto done;
    }
    int failed;
    if (samples == 1)
        failed = lm_generate(g, pids.ids, (int64_t)pids.n, &gp, emit_stdout, NULL, &res[0], &err);
    else
        failed = generate_samples(m, tok, pool, &pids, &gp, samples, lm_generator_max_ctx(g), o.attn, o.chunk, res,
                                  &err);
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
    if (mtp) {
        lm_spec_stats st = lm_generator_spec_stats(g);
        fprintf(stderr, "speculative (mtp): %lld verify forwards, %lld drafts, %lld accepted (%.1f%%)\n",
                (long long)st.steps, (long long)st.drafted, (long long)st.accepted,
                100.0 * (double)st.accepted / (double)(st.drafted ? st.drafted : 1));
    }
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
    lm_mtp_free(mtp);
    lm_tokenizer_free(tok);
    lm_pool_free(pool);
    lm_model_free(m);
    return rc;
}

/* ---- bench ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const cli_opt bench_opts[] = {
    {"--prompt", "-p", CLI_INT, CLI_AT(run_cli, prompt_len), .min = 1, .max = 1 << 20, .def = "512", .metavar = "N",
     .help = "prompt tokens of the prefill"},
    {"--gen", "-g", CLI_INT, CLI_AT(run_cli, gen), .min = 1, .max = 1 << 20, .def = "128", .metavar = "N",
     .help = "single-token decode steps"},
    {"--reps", "-r", CLI_INT, CLI_AT(run_cli, reps), .min = 1, .max = 1000, .def = "3", .metavar = "N",
     .help = "repetitions; the medians are printed"},
    {"--batch", NULL, CLI_CUSTOM, CLI_AT(run_cli, batch), .expects = "comma-separated batch sizes in 1..4096",
     .parse = parse_batch, .release = free_ids, .metavar = "B,B,...",
     .help = "the batched engine: one JSON line per batch size"},
    RUN_COMMON("latent", "512"),
};
static int bench_run(const void *dest);
const cli_spec cli_bench_spec = {
    .cmd = "bench", .usage = "MODEL_DIR [--prompt 512] [--gen 128] [--reps 3] [--batch 1,4,16,64] [options]",
    .about = "Prints one JSON line. Timed as llama-bench does: one untimed warm-up; prefill =\n"
             "one forward of --prompt random ids into an empty cache; decode = --gen single-token\n"
             "steps from an empty cache, no sampling. Medians over --reps.\n"
             "With --batch, the batched engine instead, one JSON line per batch size B: B distinct\n"
             "prompts of --prompt ids submitted together (prefill: until every sequence has its\n"
             "first token, --chunk rows per forward at most), then --gen greedy decode steps of B\n"
             "tokens each (no EOS); tokens/s aggregate over the B sequences.",
    CLI_ARGS(run_args), CLI_OPTS(bench_opts), .size = sizeof(run_cli),
    .run = bench_run,
};

/* ---- bench --batch ---- */

typedef struct batch_meter {
    int64_t started;           /* sequences that have their first token */
} batch_meter;

static void on_bench_event(void *user, const lm_engine_event *ev) {
    batch_meter *bm = user;
    if (ev->kind == LM_EV_TOKEN && ev->completion_tokens == 1) bm->started++;
}

/* One measurement at batch size B: prefill seconds, decode seconds of gen
 * full steps, and the peak of blocks in use. */
static int bench_batch_once(const lm_model *m, lm_pool *pool, const run_cli *o, int B, const int32_t *ids,
                            double *prefill_s, double *decode_s, int64_t *peak, lm_error *err) {
    int64_t P = o->prompt_len, G = o->gen;
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_seqs = B;
    eo.max_queue = B;
    eo.max_ctx = P + G + 2;
    eo.max_batch_tokens = o->chunk > B ? o->chunk : B;
    eo.attn = o->attn;
    eo.cache_tokens = (int64_t)B * (eo.max_ctx + eo.block_tokens);
    lm_engine *e = lm_engine_create(m, NULL, pool, &eo, err);
    if (!e) return -1;
    batch_meter bm = {0};
    lm_gen_params gp = lm_gen_params_default();
    gp.max_tokens = G + 2; /* never reached: the run is cancelled after G full decode steps */
    gp.stop_at_eos = 0;
    uint64_t *req_ids = calloc((size_t)B, sizeof *req_ids);
    int rc = -1;
    if (!req_ids) {
        lm_fail(err, "out of memory");
        goto done;
    }
    double t0 = now_s();
    for (int b = 0; b < B; b++) {
        lm_engine_request r = {.prompt = ids + (int64_t)b * P, .prompt_len = P, .n = 1, .params = gp,
                               .on_event = on_bench_event, .user = &bm};
        if (lm_engine_submit(e, &r, &req_ids[b], err)) goto done;
    }
    lm_engine_stats st;
    *peak = 0;
    while (bm.started < B) {
        if (lm_engine_step(e, err) < 0) goto done;
        lm_engine_stats_get(e, &st);
        if (st.blocks_used > *peak) *peak = st.blocks_used;
    }
    double t1 = now_s();
    for (int64_t g = 0; g < G; g++) {
        if (lm_engine_step(e, err) < 0) goto done;
        lm_engine_stats_get(e, &st);
        if (st.blocks_used > *peak) *peak = st.blocks_used;
    }
    double t2 = now_s();
    *prefill_s = t1 - t0;
    *decode_s = t2 - t1;
    for (int b = 0; b < B; b++) lm_engine_cancel(e, req_ids[b]);
    if (lm_engine_run(e, err)) goto done;
    rc = 0;
done:
    free(req_ids);
    lm_engine_free(e);
    return rc;
}

static int bench_batch(const run_cli *o, lm_model *m) {
    int64_t V = m->cfg.vocab_size, P = o->prompt_len, G = o->gen, reps = o->reps;
    int maxB = 1;
    for (int64_t i = 0; i < o->batch.n; i++) maxB = o->batch.v[i] > maxB ? o->batch.v[i] : maxB;
    lm_error err;
    int rc = 1;
    int32_t *ids = malloc((size_t)maxB * (size_t)P * sizeof *ids);
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double)),
           *ms = calloc((size_t)reps, sizeof(double));
    lm_pool *pool = lm_pool_create_err((int)o->threads, &err);
    if (!pool) goto fail;
    if (!ids || !pp || !tg || !ms) {
        fprintf(stderr, "lemma bench: out of memory\n");
        goto done;
    }
    /* prompt b: its own deterministic ids */
    for (int b = 0; b < maxB; b++)
        for (int64_t i = 0; i < P; i++)
            ids[(int64_t)b * P + i] = (int32_t)(lm_rng_u64(1 + (uint64_t)b, LM_RNG_BENCH, (uint64_t)i) % (uint64_t)V);
    /* warm-up: every weight page and buffer touched once */
    double ws, wd;
    int64_t wpeak;
    run_cli warm = *o;
    warm.prompt_len = P < 16 ? P : 16;
    warm.gen = 2;
    if (bench_batch_once(m, pool, &warm, 1, ids, &ws, &wd, &wpeak, &err)) goto fail;
    for (int64_t i = 0; i < o->batch.n; i++) {
        int B = o->batch.v[i];
        int64_t peak = 0;
        for (int64_t r = 0; r < reps; r++) {
            double ps, ds;
            if (bench_batch_once(m, pool, o, B, ids, &ps, &ds, &peak, &err)) goto fail;
            pp[r] = (double)B * (double)P / ps;
            tg[r] = (double)B * (double)G / ds;
            ms[r] = ds * 1e3 / (double)G;
        }
        qsort(pp, (size_t)reps, sizeof *pp, cmp_double);
        qsort(tg, (size_t)reps, sizeof *tg, cmp_double);
        qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
        printf("{\"batch\":%d,\"prompt\":%lld,\"gen\":%lld,\"threads\":%d,\"prefill_tok_s\":%.1f,"
               "\"decode_tok_s\":%.1f,\"ms_per_step\":%.3f,\"blocks_used_peak\":%lld}\n",
               B, (long long)P, (long long)G, lm_pool_size(pool), pp[reps / 2], tg[reps / 2], ms[reps / 2],
               (long long)peak);
        fflush(stdout);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lemma bench: %s\n", err.msg);
done:
    free(ids);
    free(pp);
    free(tg);
    free(ms);
    lm_pool_free(pool);
    return rc;
}

static int bench_run(const void *dest) {
    run_cli o = *(const run_cli *)dest;
    if (check_prefill("bench", &o, o.batch.n ? "--batch" : NULL)) return 2;
    if (o.batch.n) {
        int64_t maxB = 1, bctx = o.prompt_len + o.gen + 2;
        for (int64_t i = 0; i < o.batch.n; i++) maxB = o.batch.v[i] > maxB ? o.batch.v[i] : maxB;
        lm_model *m = load_or_die("bench", o.dir,
                                  &(lm_memplan_req){.ctx = bctx, .seqs = maxB, .cache_tokens = maxB * (bctx + 16),
                                                    .rows = o.chunk > maxB ? o.chunk : maxB, .threads = o.threads,
                                                    .attn = LM_ATTN_LATENT, .fp8_off = !o.fp8},
                                  o.no_memory_check);
        if (!m) return 1;
        m->cfg.fp8_emulation = o.fp8;
        int rc = bench_batch(&o, m);
        lm_model_free(m);
        return rc;
    }
    int64_t prompt = o.prompt_len, gen = o.gen, reps = o.reps;
    lm_model *m = load_or_die("bench", o.dir,
                              &(lm_memplan_req){.ctx = prompt > gen ? prompt : gen, .seqs = 1, .rows = o.chunk,
                                                .threads = o.threads, .attn = o.attn, .fp8_off = !o.fp8},
                              o.no_memory_check);
    if (!m) return 1;
    m->cfg.fp8_emulation = o.fp8;
    int64_t V = m->cfg.vocab_size, ctx = prompt > gen ? prompt : gen;
    lm_error err;
    int rc = 1;
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof(float));
    /* wall and process-CPU rates per rep: on a shared machine the CPU rate
     * is what time-sharing does not distort (at 1 thread) */
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    double *ppc = calloc((size_t)reps, sizeof(double)), *tgc = calloc((size_t)reps, sizeof(double));
    lm_infer *s = NULL;
    lm_pool *pool = lm_pool_create_err((int)o.threads, &err);
    if (pool) s = lm_infer_create(m, o.attn, ctx, o.chunk, (int)o.threads, &err);
    if (!s || lm_infer_set_prefill(s, o.prefill, &err)) {
        fprintf(stderr, "lemma bench: %s\n", err.msg);
        goto done;
    }
    if (!ids || !logits || !pp || !tg || !ppc || !tgc) {
        fprintf(stderr, "lemma bench: out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < ctx; i++) ids[i] = (int32_t)(lm_rng_u64(1, LM_RNG_BENCH, (uint64_t)i) % (uint64_t)V);
    /* Warm-up: touches every weight page and buffer once. */
    lm_infer_reset(s);
    if (lm_infer_forward(s, pool, ids, prompt < 16 ? prompt : 16, logits, LM_LOGITS_LAST, &err)) goto fail;
    for (int64_t r = 0; r < reps; r++) {
        lm_infer_reset(s);
        double t0 = now_s(), c0 = cpu_s();
        if (lm_infer_forward(s, pool, ids, prompt, logits, LM_LOGITS_LAST, &err)) goto fail;
        pp[r] = prompt / (now_s() - t0);
        ppc[r] = prompt / (cpu_s() - c0);
        lm_infer_reset(s);
        t0 = now_s(), c0 = cpu_s();
        for (int64_t g = 0; g < gen; g++)
            if (lm_infer_forward(s, pool, ids + g, 1, logits, LM_LOGITS_LAST, &err)) goto fail;
        tg[r] = gen / (now_s() - t0);
        tgc[r] = gen / (cpu_s() - c0);
    }
    qsort(pp, (size_t)reps, sizeof *pp, cmp_double);
    qsort(tg, (size_t)reps, sizeof *tg, cmp_double);
    qsort(ppc, (size_t)reps, sizeof *ppc, cmp_double);
    qsort(tgc, (size_t)reps, sizeof *tgc, cmp_double);
    double pmed = pp[reps / 2], tmed = tg[reps / 2];
    lm_param_count pc = lm_model_params(m);
    double abytes = lm_model_active_weight_bytes(m);
    printf("{\"model\":\"%s\",\"threads\":%lld,\"attn\":\"%s\",\"prefill\":\"%s\",\"prompt\":%lld,\"gen\":%lld,\"reps\":%lld,"
           "\"prefill_tok_s\":%.1f,\"decode_tok_s\":%.1f,\"prefill_tok_cpu_s\":%.1f,\"decode_tok_cpu_s\":%.1f,"
           "\"prefill_gflop_s\":%.2f,\"decode_weight_gb_s\":%.2f,"
           "\"active_weight_bytes\":%.0f,\"kv_bytes_per_token\":%lld,\"params\":%lld,\"active_params\":%lld,"
           "\"peak_rss_mib\":%.1f}\n",
           o.dir, (long long)o.threads, o.attn == LM_ATTN_LATENT ? "latent" : "naive",
           o.prefill == LM_PREFILL_EXPANDED ? "expanded" : "absorbed", (long long)prompt, (long long)gen,
           (long long)reps, pmed, tmed, ppc[reps / 2], tgc[reps / 2], 2.0 * pc.active * pmed / 1e9, abytes * tmed / 1e9, abytes,
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
    free(ppc);
    free(tgc);
    lm_infer_free(s);
    lm_pool_free(pool);
    lm_model_free(m);
    return rc;
}
