/* cmd_prove.c — lemma prove, lemma verify and lemma eval: DeepSeekMath-V2's
 * proof pipeline over a problems file (prove/pipeline.h, docs/prove.md), and
 * its evaluation table (prove/evaluate.h).
 *
 *   lemma prove PROBLEMS (--model DIR | --api-base URL --api-model NAME) --out DIR [options]
 *   lemma verify PROOFS.jsonl (--model DIR | --api-base URL --api-model NAME) --out DIR [options]
 *   lemma eval MODEL_DIR --problems FILE --out DIR [options]
 *
 * lemma eval is lemma prove with the evaluation on top: its folder is a prove
 * run (run.json says "prove"), so either command continues the other's run.
 * --api-base may be repeated, or the endpoints listed in --endpoints FILE:
 * the requests fan out over them (prove/backend.h, docs/backends.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/memcheck.h"
#include "cli/options.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "formats/jsonw.h"
#include "infer/engine.h"
#include "prove/backend.h"
#include "prove/backend_scripted.h"
#include "prove/evaluate.h"
#include "prove/fingerprint.h"
#include "prove/outdir.h"
#include "prove/pipeline.h"
#include "prove/pool.h"
#include "prove/problems.h"
#include "prove/report.h"
#include "prove/templates.h"

static volatile int stop_flag;
/* The first Ctrl-C stops at the next reply (everything received is in the
 * pool); a second one kills at once. */
static void on_signal(int sig) {
    stop_flag = 1;
    signal(sig, SIG_DFL);
}

typedef struct ui {
    const char *cmd;
    int tty, quiet;
    int live;           /* a transient line is on screen */
    double last;        /* when the last transient line was shown */
} ui;

static void fmt_eta(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* One line per phase when it ends; while it runs a live line on a
 * terminal, else a line at most every 30 s. */
static void on_progress(void *ctx, const lm_prove_phase *ph) {
    ui *u = ctx;
    if (u->quiet && !ph->finished) return;
    int asked = ph->total - ph->from_pool;
    double rate = ph->elapsed > 0 ? ph->done / ph->elapsed : 0;
    char line[300], eta[32];
    int n = snprintf(line, sizeof line, "round %d %-11s %d/%d", ph->round, ph->name, ph->from_pool + ph->done,
                     ph->total);
    if (ph->from_pool) n += snprintf(line + n, sizeof line - (size_t)n, " (%d from the pool)", ph->from_pool);
    if (asked > 0) {
        n += snprintf(line + n, sizeof line - (size_t)n, "  %.2f/s", rate);
        if (ph->failed) n += snprintf(line + n, sizeof line - (size_t)n, "  %d failed", ph->failed);
        if (!ph->finished && rate > 0) {
            fmt_eta(eta, sizeof eta, (asked - ph->done) / rate);
            n += snprintf(line + n, sizeof line - (size_t)n, "  ETA %s", eta);
        } else if (ph->finished) {
            fmt_eta(eta, sizeof eta, ph->elapsed);
            snprintf(line + n, sizeof line - (size_t)n, "  in %s", eta);
        }
    }
    double t = lm_now_s();
    if (ph->finished) {
        fprintf(stderr, "%slemma %s: %s\n", u->live ? "\r\033[K" : "", u->cmd, line);
        u->live = 0;
    } else if (u->tty) {
        if (t - u->last < 0.2) return;
        fprintf(stderr, "\r\033[Klemma %s: %.150s", u->cmd, line);
        u->live = 1;
        u->last = t;
    } else if (ph->done > 0 && t - u->last >= 30) {
        fprintf(stderr, "lemma %s: %s\n", u->cmd, line);
        u->last = t;
    }
}

typedef struct cli {
    int verify, eval;
    const char *model_arg;  /* lemma eval's MODEL_DIR */
    const char *input, *out, *templates_path, *model, *api_model, *api_key_env, *script, *endpoints_path;
    cli_list api_base;                  /* --api-base, repeatable */
    lm_openai_endpoint *endpoints;      /* from api_base or endpoints_path (prove_run's) */
    int n_endpoints;
    int parallel, threads, retries;
    int fp8;                            /* --fp8-emulation (local engine) */
    double timeout, backoff;
    lm_prove_opts o;
    int quiet;
    int no_memory_check;
} cli;

static const cli_arg prove_args[] = {{"PROBLEMS", CLI_ARG_AT(cli, input), CLI_REQUIRED}};
static const cli_arg verify_args[] = {{"PROOFS.jsonl", CLI_ARG_AT(cli, input), CLI_REQUIRED}};
static const cli_arg eval_args[] = {{"MODEL_DIR", CLI_ARG_AT(cli, model_arg), 0}};

#define COUNT_OPT(name, field, lo, var, text)                                                              \
    {name, NULL, CLI_INT, CLI_AT(cli, o.field), .min = lo, .max = 100000, .flags = CLI_SHOW_FIELD, .metavar = var, \
     .help = text}
#define REFINE_OPT(name, field, var, text, default_note)                                                   \
    {name, NULL, CLI_INT, CLI_AT(cli, o.field), .min = 1, .max = 100000, .note = default_note, .metavar = var, \
     .help = text}
/* The options of both commands; the defaults shown are lm_prove_opts_default's. */
#define SHARED_OPTS                                                                                         \
    {"--out", "-o", CLI_PATH, CLI_AT(cli, out), .flags = CLI_REQUIRED, .metavar = "DIR",                      \
     .help = "the run's folder: pool.jsonl (every answer, appended as it arrives),\n"                        \
             "run.json, report.json, report.md; rerun the same command to continue"},                        \
    {"--model", NULL, CLI_PATH, CLI_AT(cli, model), .metavar = "DIR",                                         \
     .help = "answer with the local engine (an HF model directory)"},                                        \
    {"--api-base", NULL, CLI_LIST, CLI_AT(cli, api_base), .max = LM_OPENAI_MAX_ENDPOINTS,                   \
     .flags = CLI_NONEMPTY, .needs = "--api-model", .metavar = "URL",                                        \
     .help = "answer with an OpenAI-compatible endpoint (e.g. http://host:8000/v1);\n"                       \
             "repeat it for replicas of one model: the requests fan out over them"},                         \
    {"--endpoints", NULL, CLI_PATH, CLI_AT(cli, endpoints_path), .needs = "--api-model", .metavar = "FILE",    \
     .help = "the endpoints, one a line: URL [parallel=K] (docs/backends.md)"},                              \
    {"--api-model", NULL, CLI_STRING, CLI_AT(cli, api_model), .metavar = "NAME",                              \
     .help = "the endpoint's model name"},                                                                   \
    {"--api-key-env", NULL, CLI_STRING, CLI_AT(cli, api_key_env), .needs = "--api-model",                    \
     .note = "OPENAI_API_KEY; sent only when set", .metavar = "VAR",                                         \
     .help = "environment variable holding the API key"},                                                    \
    {"--backend-script", NULL, CLI_PATH, CLI_AT(cli, script), .flags = CLI_HIDDEN, .metavar = "FILE",        \
     .help = "answers from a script (tests)"},                                                               \
    {"--parallel", NULL, CLI_INT, CLI_AT(cli, parallel), .min = 1, .max = 4096, .def = "8", .metavar = "K",  \
     .help = "requests in flight to each endpoint"},                                                          \
    {"--timeout", NULL, CLI_REAL, CLI_AT(cli, timeout), .lo = 0.001, .hi = 1e6, .def = "600", .metavar = "S", \
     .help = "seconds per request attempt"},                                                                 \
    {"--retries", NULL, CLI_INT, CLI_AT(cli, retries), .min = 0, .max = 1000, .def = "5", .metavar = "N",    \
     .help = "tries after the first for a request that fails (on another endpoint when\n"                    \
             "there are several); every endpoint failing more than N times in a row stops the run"},          \
    {"--backoff", NULL, CLI_REAL, CLI_AT(cli, backoff), .lo = 0, .hi = 3600, .def = "1", .metavar = "S",      \
     .help = "an endpoint that failed gets no work for S seconds, doubled per failure\n"                     \
             "in a row (60 at most), then one request to probe it"},                                         \
    CLI_OPT_THREADS(cli, threads, "local engine threads"),                                                   \
    CLI_OPT_FP8_EMULATION(cli, fp8),                                                                         \
    CLI_OPT_NO_MEMORY_CHECK(cli, no_memory_check),                                                          \
    {"--templates", NULL, CLI_PATH, CLI_AT(cli, templates_path), .note = "lemma's own, templates/lemma.json", \
     .metavar = "FILE", .help = "prompt templates"},                                                         \
    {"--max-tokens", NULL, CLI_INT, CLI_AT(cli, o.max_tokens), .min = 1, .max = (int64_t)1 << 40,             \
     .flags = CLI_SHOW_FIELD, .metavar = "T", .help = "completion tokens per answer"},                       \
    {"--temperature", NULL, CLI_REAL, CLI_AT(cli, o.temperature), .lo = 0, .hi = 100, .flags = CLI_SHOW_FIELD, \
     .metavar = "X", .help = "sampling temperature"},                                                        \
    {"--top-p", NULL, CLI_REAL, CLI_AT(cli, o.top_p), .lo = 0, .hi = 1, .flags = CLI_SHOW_FIELD, .metavar = "P", \
     .help = "nucleus mass"},                                                                                \
    {"--seed", NULL, CLI_INT, CLI_AT(cli, o.seed), .min = 0, .max = INT64_MAX, .flags = CLI_SHOW_FIELD,       \
     .metavar = "S", .help = "base of every request's seed"},                                                \
    {"--no-meta", NULL, CLI_UNSET, CLI_AT(cli, o.meta), .help = "no meta-verification"},                     \
    {"--quiet", "-q", CLI_FLAG, CLI_AT(cli, quiet), .help = "phase lines only, no live progress"}

#define PROVE_OPTS                                                                                          \
    COUNT_OPT("--samples", samples, 1, "N", "first proofs per problem"),                                    \
    COUNT_OPT("--verifications", verifications, 1, "M", "verifications per proof"),                         \
    {"--rounds", NULL, CLI_INT, CLI_AT(cli, o.rounds), .min = 0, .max = 10000, .flags = CLI_SHOW_FIELD,     \
     .metavar = "R", .help = "refinement rounds"},                                                          \
    REFINE_OPT("--refine-top", refine_top, "K", "best proofs refined per round", "samples/4, at least 1"), \
    REFINE_OPT("--refine-samples", refine_samples, "S", "new proofs per refined proof", "4"),               \
    REFINE_OPT("--refine-verifications", refine_verifications, "V", "verifications per refined proof", "M"), \
    SHARED_OPTS
static const cli_opt prove_opts[] = {PROVE_OPTS};
static const cli_opt eval_opts[] = {
    {"--problems", NULL, CLI_PATH, CLI_AT(cli, input), .flags = CLI_REQUIRED, .metavar = "FILE",
     .help = "problems of the synthetic domains (lemma tasks gen), JSON array or JSONL"},
    PROVE_OPTS,
};
static const cli_opt verify_opts[] = {
    COUNT_OPT("--verifications", verifications, 1, "M", "verifications per proof"),
    SHARED_OPTS,
};
static const char *const one_backend[] = {"--model|--api-base|--endpoints|--backend-script", NULL};

/* An endpoint's URL without its user:password@ part, as run.json and the
 * progress lines on stderr show it (a terminal log is no place for a
 * password). Writes into buf, truncating to its size. */
static const char *url_shown(const char *url, char *buf, size_t size) {
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (!at || (slash && slash < at)) return url;
    snprintf(buf, size, "%.*s%s", (int)(host - url), url, at + 1);
    return buf;
}

/* The same for run.json, whole however long it is. */
static int jw_url(lm_text *j, const char *url) {
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (!at || (slash && slash < at)) return jw_str(j, url);
    lm_text t = {0};
    int e = lm_text_append(&t, url, (size_t)(host - url)) || lm_text_append(&t, at + 1, strlen(at + 1)) ||
            jw_str(j, t.data);
    lm_text_free(&t);
    return e;
}

/* run.json: the arguments that decide the answers (keys named like the
 * options). Paths are informative; the files' contents are compared. */
static int run_args(const cli *c, const lm_problem_set *ps, const lm_prompt_templates *t, const char *model_sha256,
                    lm_text *j) {
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->o.seed);
    const char *backend = c->model ? "local" : c->n_endpoints ? "openai" : "scripted";
    int e = jw_raw(j, "{\"command\":") || jw_str(j, c->verify ? "verify" : "prove") || jw_raw(j, ",\"input\":") ||
            jw_str(j, c->input) || jw_raw(j, ",\"input-sha256\":") || jw_str(j, ps->sha256) ||
            jw_raw(j, ",\"templates\":") || jw_str(j, c->templates_path ? c->templates_path : "built-in") ||
            jw_raw(j, ",\"templates-sha256\":") || jw_str(j, t->sha256) || jw_raw(j, ",\"backend\":") ||
            jw_str(j, backend);
    if (c->model)
        e = e || jw_raw(j, ",\"model\":") || jw_str(j, c->model) || jw_raw(j, ",\"model-sha256\":") ||
            jw_str(j, model_sha256);
    /* Only when off, so that the run.json of runs before the option still matches. */
    if (c->model && !c->fp8) e = e || jw_raw(j, ",\"fp8-emulation\":\"off\"");
    if (c->n_endpoints) {
        /* the endpoints of the run that wrote run.json (operational: a rerun may use others) */
        e = e || jw_raw(j, ",\"endpoints\":[");
        for (int k = 0; k < c->n_endpoints; k++)
            e = e || jw_raw(j, k ? "," : "") || jw_url(j, c->endpoints[k].api_base);
        e = e || jw_raw(j, "],\"api-model\":") || jw_str(j, c->api_model);
    }
    if (c->script) e = e || jw_raw(j, ",\"backend-script\":") || jw_str(j, c->script);
    if (!c->verify)
        e = e || jw_raw(j, ",\"samples\":") || jw_int(j, c->o.samples) || jw_raw(j, ",\"rounds\":") ||
            jw_int(j, c->o.rounds) || jw_raw(j, ",\"refine-top\":") || jw_int(j, c->o.refine_top) ||
            jw_raw(j, ",\"refine-samples\":") || jw_int(j, c->o.refine_samples) ||
            jw_raw(j, ",\"refine-verifications\":") || jw_int(j, c->o.refine_verifications);
    return e || jw_raw(j, ",\"verifications\":") || jw_int(j, c->o.verifications) || jw_raw(j, ",\"max-tokens\":") ||
           jw_int(j, c->o.max_tokens) || jw_raw(j, ",\"temperature\":") || jw_num(j, c->o.temperature) ||
           jw_raw(j, ",\"top-p\":") || jw_num(j, c->o.top_p) || jw_raw(j, ",\"seed\":") || jw_str(j, seed) ||
           jw_raw(j, ",\"meta\":") || jw_raw(j, c->o.meta ? "true" : "false") || jw_raw(j, "}");
}

static lm_backend *make_backend(const cli *c, lm_error *err) {
    if (c->script) return lm_backend_scripted_load(c->script, err);
    if (c->model) {
        lm_local_opts lo = {.model_dir = c->model, .threads = (int)c->threads, .no_fp8_emulation = !c->fp8};
        return lm_backend_local_create(&lo, err);
    }
    lm_openai_opts oo;
    lm_openai_opts_default(&oo);
    oo.endpoints = c->endpoints;
    oo.n_endpoints = c->n_endpoints;
    oo.model = c->api_model;
    if (c->api_key_env) oo.api_key_env = c->api_key_env;
    oo.parallel = (int)c->parallel;
    oo.timeout_s = c->timeout;
    oo.max_retries = c->retries;
    oo.backoff_s = c->backoff;
    return lm_backend_openai_create(&oo, err);
}

static void print_settings(const cli *c, const lm_problem_set *ps, int loaded) {
    const char *cmd = c->verify ? "verify" : c->eval ? "eval" : "prove";
    const lm_prove_opts *o = &c->o;
    char shown[1024];
    fprintf(stderr, "lemma %s: %d %s from %s; %s %s\n", cmd, ps->n,
            c->verify ? (ps->n == 1 ? "proof" : "proofs") : (ps->n == 1 ? "problem" : "problems"), c->input,
            loaded ? "continuing the run in" : "writing", c->out);
    if (loaded) fprintf(stderr, "lemma %s: %d answers already in %s/pool.jsonl\n", cmd, loaded, c->out);
    if (c->verify)
        fprintf(stderr, "lemma %s: %d verifications per proof; meta-verification %s\n", cmd, o->verifications,
                o->meta ? "on" : "off (--no-meta)");
    else
        fprintf(stderr,
                "lemma %s: --samples %d --verifications %d --rounds %d --refine-top %d --refine-samples %d "
                "--refine-verifications %d; meta-verification %s\n",
                cmd, o->samples, o->verifications, o->rounds, o->refine_top, o->refine_samples,
                o->refine_verifications, o->meta ? "on" : "off (--no-meta)");
    fprintf(stderr, "lemma %s: --max-tokens %lld --temperature %g --top-p %g --seed %llu; templates %s; backend %s%s%s\n",
            cmd, (long long)o->max_tokens, o->temperature, o->top_p, (unsigned long long)o->seed,
            c->templates_path ? c->templates_path : "built-in (templates/lemma.json)",
            c->model ? "local " : c->n_endpoints ? "openai " : "scripted ",
            c->model ? c->model : c->n_endpoints ? url_shown(c->endpoints[0].api_base, shown, sizeof shown) : c->script,
            c->n_endpoints > 1 ? " and more" : "");
    if (c->n_endpoints > 1) {
        fprintf(stderr, "lemma %s: %d endpoints:", cmd, c->n_endpoints);
        for (int k = 0; k < c->n_endpoints; k++) {
            int par = c->endpoints[k].parallel > 0 ? c->endpoints[k].parallel : c->parallel;
            fprintf(stderr, " %s (parallel %d)", url_shown(c->endpoints[k].api_base, shown, sizeof shown), par);
        }
        fputc('\n', stderr);
    }
}

/* The endpoints prove_run made: the file's own strings, or argv's. */
static void free_endpoints(cli *c) {
    if (c->endpoints_path) lm_openai_endpoints_free(c->endpoints, c->n_endpoints);
    else free(c->endpoints);
    c->endpoints = NULL;
    c->n_endpoints = 0;
}

static int prove_run(const void *dest) {
    cli c = *(const cli *)dest;
    int verify = c.verify;
    const char *cmd = verify ? "verify" : c.eval ? "eval" : "prove";
    if (c.eval) {
        int backends = (c.model_arg != NULL) + (c.model != NULL) + (c.api_base.n > 0 || c.endpoints_path != NULL) +
                       (c.script != NULL);
        if (backends != 1)
            return cli_fail(&cli_eval_spec, backends ? "give one of MODEL_DIR, --model, --api-base, --backend-script"
                                                     : "missing MODEL_DIR (or --api-base URL --api-model NAME)");
        if (c.model_arg) c.model = c.model_arg;
    }
    lm_prove_opts_complete(&c.o);
    /* Before anything else: a Ctrl-C while the folder is being opened must
     * stop the run too (background jobs start with SIGINT ignored). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    lm_error err;
    lm_problem_set ps;
    lm_prompt_templates t;
    memset(&t, 0, sizeof t);
    lm_backend *backend = NULL;
    lm_proof_pool *pool = NULL;
    lm_prove_result *res = NULL;
    lm_text warn = {0}, args_json = {0}, md = {0};
    lm_dir_lock lock = {.fd = -1};
    int rc = 1;
    char pool_path[4200], model_sha256[65] = "";

    if (c.api_model && !c.api_base.n && !c.endpoints_path)
        return cli_fail(verify ? &cli_verify_spec : c.eval ? &cli_eval_spec : &cli_prove_spec,
                        "--api-model goes with --api-base URL or --endpoints FILE");
    if (c.endpoints_path) {
        if (lm_openai_endpoints_load(c.endpoints_path, &c.endpoints, &c.n_endpoints, &err)) {
            fprintf(stderr, "lemma %s: %s\n", cmd, err.msg);
            return 1;
        }
    } else if (c.api_base.n) {
        if (!(c.endpoints = calloc((size_t)c.api_base.n, sizeof *c.endpoints))) {
            fprintf(stderr, "lemma %s: out of memory\n", cmd);
            return 1;
        }
        for (int k = 0; k < c.api_base.n; k++) c.endpoints[k].api_base = c.api_base.items[k];
        c.n_endpoints = c.api_base.n;
    }
    if (lm_problems_load(c.input, verify, &ps, &err)) {
        free_endpoints(&c);
        fprintf(stderr, "lemma %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (c.eval) { /* before any folder or model is opened: an evaluation needs the checker */
        const lm_report_checker *chk = lm_report_task_checker();
        int graded = 0;
        for (int i = 0; i < ps.n; i++) graded += chk->domain(chk->ctx, ps.items[i].question) != NULL;
        if (!graded) {
            fprintf(stderr, "lemma eval: %s: none of the %d problems belongs to a synthetic domain (lemma tasks list): "
                            "the checker can grade none\n", c.input, ps.n);
            lm_problems_free(&ps);
            return 1;
        }
    }
    if (c.templates_path ? lm_templates_load(c.templates_path, &t, &err) : lm_templates_builtin(&t, &err)) goto fail;
    if (c.model) { /* the local backend's engine (backend.h lm_local_opts defaults) */
        lm_engine_opts eo = lm_engine_opts_default();
        lm_config mc;
        lm_memplan_req mr = {.ctx = lm_config_load(c.model, &mc, &err) ? 1 : mc.max_position_embeddings,
                             .seqs = 64, .rows = eo.max_batch_tokens, .threads = c.threads, .attn = eo.attn,
                             .cache_tokens = cli_engine_cache_tokens(c.model, 0, 64, eo.attn), .fp8_off = !c.fp8};
        if (cli_memory_check(cmd, c.model, &mr, c.no_memory_check)) {
            rc = 1;
            goto done;
        }
    }
    if (lm_outdir_open(c.out, &lock, &err)) goto fail;
    /* The backend before run.json: a run whose model or endpoint cannot even
     * be opened must not tie the folder to those arguments. */
    if (!(backend = make_backend(&c, &err))) goto fail;
    /* The pool's answers are the weights' answers: a model rebuilt under the
     * same path must not continue the run (fingerprint.h). */
    if (c.model && lm_model_fingerprint(c.model, LM_FINGERPRINT_FULL_LIMIT, model_sha256, NULL, &err)) goto fail;
    if (run_args(&c, &ps, &t, model_sha256, &args_json)) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto fail;
    }
    static const char *const operational[] = {"input", "templates", "parallel", "threads", "timeout", "api-key-env",
                                              "endpoints", "api-base", "retries", "backoff", NULL};
    if (lm_run_args_check(c.out, args_json.data, operational, &err)) goto fail;
    snprintf(pool_path, sizeof pool_path, "%s/pool.jsonl", c.out);
    if (!(pool = lm_proof_pool_open(pool_path, &warn, &err))) goto fail;
    if (warn.len) fprintf(stderr, "lemma %s: warning: %s", cmd, warn.data);

    print_settings(&c, &ps, lm_proof_pool_loaded(pool));

    ui u = {cmd, isatty(2), c.quiet, 0, lm_now_s()};
    lm_prove_ctx ctx = {&t, backend, pool, &c.o, on_progress, &u, &stop_flag};
    int prc = verify ? lm_verify_run(&ps, &ctx, &res, &err) : lm_prove_run(&ps, &ctx, &res, &err);
    if (u.live) fputs("\r\033[K", stderr);
    if (prc) {
        if (stop_flag && !strcmp(err.msg, "interrupted")) {
            fprintf(stderr, "lemma %s: interrupted; %d answers are in %s (rerun the same command to continue)\n", cmd,
                    lm_proof_pool_count(pool), pool_path);
            rc = 130;
            goto done;
        }
        goto fail;
    }
    if (c.eval) {
        /* the pipeline's report.json as lemma prove writes it; report.md is the evaluation's, with it inside */
        lm_text pipeline_md = {0}, pipeline_json = {0};
        char path[4200];
        snprintf(path, sizeof path, "%s/report.json", c.out);
        int erc = lm_prove_report(res, lm_report_task_checker(), NULL, &pipeline_md, &pipeline_json, &err) ||
                  lm_write_file_atomic(path, pipeline_json.data, pipeline_json.len, &err) ||
                  lm_eval_report(res, lm_report_task_checker(), c.out, pipeline_md.data, &md, NULL, &err);
        lm_text_free(&pipeline_md);
        lm_text_free(&pipeline_json);
        if (erc) goto fail;
    } else if (lm_prove_report(res, lm_report_task_checker(), c.out, &md, NULL, &err)) {
        goto fail;
    }
    fputs(md.data ? md.data : "", stdout);
    if (fflush(stdout) || ferror(stdout)) {
        snprintf(err.msg, sizeof err.msg, "cannot write the report to stdout");
        goto fail;
    }
    fprintf(stderr, "lemma %s: %s/%s written (%d asked, %d from the pool, %d failed)\n", cmd, c.out,
            c.eval ? "results.json, report.md, best_of_n.svg, pass_by_round.svg, report.json"
                   : "report.md and report.json",
            res->asked, res->from_pool, res->failed);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lemma %s: %s\n", cmd, err.msg);
    rc = 1;
done:
    lm_prove_result_free(res);
    if (backend) backend->free(backend);
    lm_proof_pool_close(pool);
    lm_outdir_unlock(&lock);
    lm_templates_free(&t);
    lm_problems_free(&ps);
    lm_text_free(&warn);
    lm_text_free(&args_json);
    lm_text_free(&md);
    free_endpoints(&c);
    return rc;
}

static void prove_defaults(void *dest) {
    cli *c = dest;
    lm_prove_opts_default(&c->o);
    c->o.refine_top = c->o.refine_samples = c->o.refine_verifications = 0; /* completed from the others */
}

static void verify_defaults(void *dest) {
    prove_defaults(dest);
    ((cli *)dest)->verify = 1;
}

const cli_spec cli_prove_spec = {
    .cmd = "prove", .usage = "PROBLEMS (--model DIR | --api-base URL --api-model NAME) --out DIR [options]",
    .about = "DeepSeekMath-V2's pipeline: N proofs per problem, M verifications per proof, meta-verification\n"
             "of the verifications scoring <= 0.75, then up to R rounds refining the best proofs with their\n"
             "verifications, until a proof passes every verification (docs/prove.md). PROBLEMS is a JSON\n"
             "array or JSONL of objects with \"question\" and optional \"id\".",
    CLI_ARGS(prove_args), CLI_OPTS(prove_opts), .one_of = one_backend, .size = sizeof(cli),
    .run = prove_run, .init = prove_defaults,
};
const cli_spec cli_verify_spec = {
    .cmd = "verify", .usage = "PROOFS.jsonl (--model DIR | --api-base URL --api-model NAME) --out DIR [options]",
    .about = "Verifies given proofs (JSONL lines, or a JSON array, with \"question\" and \"proof\"; optional\n"
             "\"id\") M times each with the verification prompt, meta-verifies the verifications that\n"
             "report issues, and writes DIR/report.json and DIR/report.md (per-proof mean score and, where\n"
             "the question belongs to a synthetic domain, the checker's score and the agreement).",
    CLI_ARGS(verify_args), CLI_OPTS(verify_opts), .one_of = one_backend, .size = sizeof(cli),
    .run = prove_run, .init = verify_defaults,
};

static void eval_defaults(void *dest) {
    prove_defaults(dest);
    ((cli *)dest)->eval = 1;
}

const cli_spec cli_eval_spec = {
    .cmd = "eval",
    .usage = "MODEL_DIR --problems FILE --out DIR [--samples N --verifications M --rounds R] [options]\n"
             "--api-base URL --api-model NAME --problems FILE --out DIR [options]",
    .about = "Runs (or continues) lemma prove's pipeline on problems of the synthetic domains into DIR,\n"
             "then grades every proof and verification with the exact checker: DIR/results.json\n"
             "(pass_at_1, best_of_n by the model's own verification, oracle_pass_at_n,\n"
             "verifier_agreement, pass_by_round, the best-of-N curve for N = 1..min(32, samples), the\n"
             "verifier's and the self-evaluation's confusion against the checker; all problems and per\n"
             "domain), DIR/report.md and the charts DIR/best_of_n.svg and DIR/pass_by_round.svg\n"
             "(docs/prove.md). DIR is a lemma prove run: a rerun asks nothing new.",
    CLI_ARGS(eval_args), CLI_OPTS(eval_opts), .size = sizeof(cli),
    .run = prove_run, .init = eval_defaults,
};
