/* cmd_serve.c — lemma serve: the OpenAI-compatible server (serve/server.h). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/memcheck.h"
#include "cli/options.h"
#include "infer/engine.h"
#include "serve/server.h"

typedef struct serve_cli {
    const char *dir, *host, *key_env, *name;
    int64_t port, max_seqs, max_queue, ctx, max_body, max_header, idle, max_conns;
    int threads;
    int fp8;                     /* --fp8-emulation */
    double grace, load_delay;
    int no_memory_check;
} serve_cli;

static const cli_arg serve_args[] = {{"MODEL_DIR", CLI_ARG_AT(serve_cli, dir), CLI_REQUIRED}};
static const cli_opt serve_opts[] = {
    {"--host", NULL, CLI_STRING, CLI_AT(serve_cli, host), .flags = CLI_NONEMPTY, .def = "127.0.0.1", .metavar = "ADDR",
     .help = "numeric address to listen on (a warning when it is not loopback and no key is set)"},
    {"--port", NULL, CLI_INT, CLI_AT(serve_cli, port), .min = 0, .max = 65535, .def = "8080", .metavar = "N",
     .help = "TCP port; 0 picks a free one (printed)"},
    {"--api-key-env", NULL, CLI_STRING, CLI_AT(serve_cli, key_env), .flags = CLI_NONEMPTY, .def = "LEMMA_API_KEY",
     .metavar = "VAR", .help = "when this variable is set and not empty, requests need\n"
                               "'Authorization: Bearer <its value>' (/health never does)"},
    {"--max-seqs", NULL, CLI_INT, CLI_AT(serve_cli, max_seqs), .min = 1, .max = 4096, .def = "64", .metavar = "N",
     .help = "sequences decoded together (also the largest n of a request)"},
    {"--max-queue", NULL, CLI_INT, CLI_AT(serve_cli, max_queue), .min = 1, .max = 1 << 20, .def = "256",
     .metavar = "N", .help = "requests waiting to start; beyond, 429"},
    {"--ctx", NULL, CLI_INT, CLI_AT(serve_cli, ctx), .min = 2, .max = 1ll << 24, .def = "8192", .metavar = "N",
     .help = "positions per sequence, prompt and completion"},
    {"--max-body", NULL, CLI_INT, CLI_AT(serve_cli, max_body), .min = 64, .max = 1ll << 32, .def = "1048576",
     .metavar = "BYTES", .help = "request body size at most; beyond, 413"},
    {"--max-header", NULL, CLI_INT, CLI_AT(serve_cli, max_header), .min = 4096, .max = 1 << 24, .def = "32768",
     .metavar = "BYTES", .flags = CLI_HIDDEN, .help = "memory for a request's head"},
    {"--load-delay", NULL, CLI_REAL, CLI_AT(serve_cli, load_delay), .lo = 0, .hi = 60, .def = "0", .metavar = "S",
     .flags = CLI_HIDDEN, .help = "wait S seconds before loading (tests see /health answer 503)"},
    {"--idle-timeout", NULL, CLI_INT, CLI_AT(serve_cli, idle), .min = 1, .max = 86400, .def = "60", .metavar = "S",
     .help = "close a connection silent for S seconds"},
    {"--max-connections", NULL, CLI_INT, CLI_AT(serve_cli, max_conns), .min = 1, .max = 65536, .def = "512",
     .metavar = "N", .help = "connections at once (one thread each)"},
    CLI_OPT_THREADS(serve_cli, threads, "compute threads"),
    CLI_OPT_FP8_EMULATION(serve_cli, fp8),
    {"--served-name", NULL, CLI_STRING, CLI_AT(serve_cli, name), .flags = CLI_NONEMPTY, .def = "lemma",
     .metavar = "NAME", .help = "the model's name in /v1/models and in answers"},
    {"--grace", NULL, CLI_REAL, CLI_AT(serve_cli, grace), .lo = 0, .hi = 86400, .def = "10", .metavar = "SECONDS",
     .help = "on SIGINT/SIGTERM, time for running requests to finish; the rest\n"
             "end with finish_reason \"length\""},
    CLI_OPT_NO_MEMORY_CHECK(serve_cli, no_memory_check),
};
static int serve_run(const void *dest);
const cli_spec cli_serve_spec = {
    .cmd = "serve",
    .usage = "MODEL_DIR [--host 127.0.0.1] [--port 8080] [--api-key-env LEMMA_API_KEY] [--ctx 8192] [options]",
    .about = "An OpenAI-compatible HTTP server on the batched engine: POST /v1/chat/completions,\n"
             "POST /v1/completions, GET /v1/models, GET /health, GET /metrics. Prints one line\n"
             "when it listens and one when the model is loaded; stops on SIGINT/SIGTERM.",
    CLI_ARGS(serve_args), CLI_OPTS(serve_opts), .size = sizeof(serve_cli), .run = serve_run,
};

static int serve_run(const void *dest) {
    const serve_cli *o = dest;
    lm_serve_opts so = lm_serve_opts_default();
    so.host = o->host;
    so.port = (int)o->port;
    so.api_key = getenv(o->key_env);
    so.served_name = o->name;
    so.max_seqs = (int)o->max_seqs;
    so.max_queue = (int)o->max_queue;
    so.ctx = o->ctx;
    so.max_body = (size_t)o->max_body;
    so.max_header = (size_t)o->max_header;
    so.threads = o->threads;
    so.no_fp8_emulation = !o->fp8;
    so.idle_timeout_s = (int)o->idle;
    so.max_connections = (int)o->max_conns;
    int keyed = so.api_key && *so.api_key;
    if (!keyed && !lm_serve_is_loopback(o->host))
        fprintf(stderr, "lemma serve: warning: listening on %s without an API key: anyone who can reach it may use "
                        "it (set %s)\n", o->host, o->key_env);
    /* The signals are taken by sigwait below, in this thread; every thread
     * started from here on inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    lm_engine_opts eo = lm_engine_opts_default(); /* what lm_serve_load's engine reserves */
    lm_memplan_req mr = {.ctx = o->ctx, .seqs = o->max_seqs, .threads = o->threads, .attn = eo.attn,
                         .rows = eo.max_batch_tokens > o->max_seqs ? eo.max_batch_tokens : o->max_seqs,
                         .cache_tokens = cli_engine_cache_tokens(o->dir, o->ctx, o->max_seqs, eo.attn),
                         .fp8_off = !o->fp8};
    if (cli_memory_check("serve", o->dir, &mr, o->no_memory_check)) return 1;
    lm_error err;
    lm_server *s = lm_serve_start(&so, &err);
    if (!s) {
        fprintf(stderr, "lemma serve: %s\n", err.msg);
        return 1;
    }
    const char *h = o->host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "lemma serve: listening on http://%s%s%s:%d (loading %s)\n", v6 ? "[" : "", h, v6 ? "]" : "",
            lm_serve_port(s), o->dir);
    if (o->load_delay > 0) {
        struct timespec ts = {(time_t)o->load_delay, (long)((o->load_delay - (double)(time_t)o->load_delay) * 1e9)};
        nanosleep(&ts, NULL);
    }
    if (lm_serve_load(s, o->dir, &err)) {
        fprintf(stderr, "lemma serve: %s\n", err.msg);
        lm_serve_free(s);
        return 1;
    }
    fprintf(stderr, "lemma serve: ready: http://%s%s%s:%d/v1 serves %s (ctx %lld, max-seqs %lld%s)\n", v6 ? "[" : "",
            h, v6 ? "]" : "", lm_serve_port(s), o->name, (long long)o->ctx, (long long)o->max_seqs,
            keyed ? ", API key required" : "");
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "lemma serve: %s: no new requests; %.0f s for the running ones\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", o->grace);
    lm_serve_shutdown(s, o->grace);
    lm_serve_free(s);
    fprintf(stderr, "lemma serve: stopped\n");
    return 0;
}
